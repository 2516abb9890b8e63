"""The control socket's request boundary: every bad request gets a structured error, and
nothing a client sends can take the daemon down (review findings C3, C4)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from masc.api.control import Response
from masc.config import parse_config_text
from masc.daemon.control import ControlServer, _Verb
from masc.daemon.main import Daemon

CONFIG = """
[local]
domain_id = 65001
node_id = "127.0.9.200"
[control]
socket = "/tmp/unused.sock"
[[peers]]
address = "127.0.9.201"
relation = "child"
domain_id = 65003
"""


async def respond(line: bytes, server: ControlServer | None = None) -> Response:
    server = server or ControlServer(Daemon(parse_config_text(CONFIG, source="t.toml")))
    return Response.model_validate_json(await server.respond(line))


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b"not json", "bad_json"),
        (b"[" * 5000, "bad_json"),  # RecursionError inside json, not a ValueError
        (b"\xff\xfe", "bad_json"),
        (b"[]", "bad_request"),
        (b'{"verb": ""}', "bad_request"),
        (b'{"verb": "show peers", "extra": 1}', "bad_request"),
        (b'{"verb": "launch missiles"}', "unknown_verb"),
    ],
)
async def test_bad_requests_get_structured_errors(line: bytes, code: str) -> None:
    response = await respond(line)
    assert response.ok is False and response.error is not None
    assert response.error.code == code
    assert response.format_version == 1


async def test_a_failing_verb_is_an_internal_error_not_a_crash() -> None:
    server = ControlServer(Daemon(parse_config_text(CONFIG, source="t.toml")))

    async def broken(args: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("bug")

    server._verbs["show summary"] = _Verb(broken, read_only=True)
    response = await respond(b'{"verb": "show summary"}', server)
    assert response.error is not None and response.error.code == "internal"


async def test_show_peers_result_matches_the_contract() -> None:
    result = (await respond(b'{"verb": "show peers"}')).result
    assert result is not None
    (peer,) = result["peers"]
    assert {k: peer[k] for k in ("address", "relation", "domain_id", "state")} == {
        "address": "127.0.9.201",
        "relation": "child",
        "domain_id": 65003,
        "state": "Idle",
    }
    json.dumps(result)
