"""The MAAS socket (masc/daemon/maas.py, masc/daemon/ndjson.py) over real Unix sockets.

A fake backend stands in for the daemon (grant table and claim engine), so these tests pin
the socket's contract: every request gets an answer in order, every bad or unauthorised one a
structured error on a connection that stays usable, a client that does not read is cut off
without stalling the others, and the socket file's mode and group decide who may connect.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
from collections import defaultdict
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from masc.api.maas import (
    GrantInfo,
    MaasError,
    MaasEvent,
    RequestResult,
    UsageReport,
)
from masc.daemon.maas import MaasConnection, MaasServer
from masc.daemon.ndjson import TOO_LARGE, LineReader, bind_unix, resolve_group
from masc.maas.client import open_maas_client

WAIT = 10.0  # a guard against hangs, never a pause: tests wait for events, not time

GRANT_A = GrantInfo.build(ip_network("239.192.4.0/26"), expires=1_700_000_000.0, active=True)
GRANT_B = GrantInfo.build(ip_network("239.192.4.64/26"), expires=1_700_000_000.0, active=True)


class FakeBackend:
    """A MaasBackend that records what reaches it.  Names starting with ``slow`` wait in
    ``request`` until :attr:`release` is set, like the real one waiting for the engine."""

    def __init__(self) -> None:
        self.connections: dict[str, MaasConnection] = {}
        self.registered: list[tuple[str, list[str]]] = []
        self.unregistered: list[str] = []
        self.gone: defaultdict[str, trio.Event] = defaultdict(trio.Event)
        self.usage: list[tuple[str, UsageReport]] = []
        self.requests: list[tuple[str, int]] = []
        self.table: dict[str, list[GrantInfo]] = {}
        self.release = trio.Event()
        self.waiting = trio.Event()  # a request is waiting for release

    def identity(self) -> dict[str, Any]:
        return {"domain_id": 64600, "node_id": "192.0.2.1", "address_family": "ipv4"}

    async def register(
        self, name: str, scopes: list[str], connection: MaasConnection
    ) -> list[GrantInfo]:
        await trio.lowlevel.checkpoint()
        if name == "refused":
            raise MaasError("no_space", "the domain has no space for a new MAAS")
        self.connections[name] = connection
        self.registered.append((name, scopes))
        return self.table.setdefault(name, [GRANT_A])

    def unregister(self, name: str, connection: MaasConnection) -> None:
        assert self.connections.pop(name) is connection
        self.unregistered.append(name)
        self.gone[name].set()

    def grants(self, name: str) -> list[GrantInfo]:
        if name == "buggy":
            raise RuntimeError("a bug in the backend")
        return self.table[name]

    async def report_usage(self, name: str, usage: UsageReport) -> None:
        await trio.lowlevel.checkpoint()
        self.usage.append((name, usage))

    async def request(self, name: str, size: int) -> RequestResult:
        if name.startswith("slow"):
            self.waiting.set()
            await self.release.wait()
        self.requests.append((name, size))
        if size > 1 << 16:
            raise MaasError("no_space", f"{size} addresses is more than the domain can claim")
        if name == "odd":
            raise MaasError("not a code", "a backend bug")
        self.table[name].append(GRANT_B)
        return RequestResult(granted=[GRANT_B], outstanding=size - 64 if size > 64 else 0)

    def push(self, name: str, kind: str = "granted", reason: str = "") -> None:
        event = MaasEvent.model_validate(
            {"event": kind, "maas": name, "grant": GRANT_B, "reason": reason}
        )
        self.connections[name].push(event)


class Raw:
    """A client that writes bytes as given: for requests no well-behaved client sends."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = bytearray()

    @classmethod
    async def connect(cls, path: Path) -> Raw:
        return cls(await trio.open_unix_socket(str(path)))

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def line(self) -> dict[str, Any]:
        with trio.fail_after(WAIT):
            while (end := self.buffer.find(b"\n")) < 0:
                data = await self.stream.receive_some(65536)
                assert data, "the server closed the connection"
                self.buffer += data
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 1]
        value = json.loads(line)
        assert isinstance(value, dict)
        return value

    async def ask(self, request: bytes | dict[str, Any]) -> dict[str, Any]:
        if isinstance(request, dict):
            request = json.dumps(request).encode()
        await self.send(request + b"\n")
        return await self.line()

    async def closed(self) -> bool:
        """True once the server has closed the connection (after reading what is left)."""
        with trio.fail_after(WAIT):
            while True:
                try:
                    data = await self.stream.receive_some(65536)
                except trio.BrokenResourceError:
                    return True
                if not data:
                    return True


async def serve(
    nursery: trio.Nursery, path: Path, backend: FakeBackend | None = None, **kwargs: Any
) -> tuple[MaasServer, FakeBackend]:
    backend = backend or FakeBackend()
    server = MaasServer(backend, path, **kwargs)
    await nursery.start(server.serve)
    return server, backend


def ok(reply: dict[str, Any], request_id: int) -> dict[str, Any]:
    assert reply["format_version"] == 1
    assert reply["id"] == request_id and reply["ok"] is True, reply
    assert "error" not in reply
    result = reply["result"]
    assert isinstance(result, dict)
    return result


def error(reply: dict[str, Any], code: str, request_id: int | None = None) -> str:
    assert reply["format_version"] == 1
    assert reply["ok"] is False and reply["error"]["code"] == code, reply
    assert reply["id"] == request_id and "result" not in reply
    message = reply["error"]["message"]
    assert isinstance(message, str) and message
    return message


GRANT_A_JSON = {
    "prefix": "239.192.4.0/26",
    "start": "239.192.4.0",
    "end": "239.192.4.63",
    "expires": 1_700_000_000.0,
    "state": "active",
}


# --- verbs ----------------------------------------------------------------------------------------


async def test_register_returns_the_identity_and_the_grants(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    path = tmp_path / "maas.sock"
    _, backend = await serve(nursery, path)
    client = await Raw.connect(path)
    reply = await client.ask(
        {"id": 1, "verb": "register", "args": {"name": "madcap-a", "scopes": ["global"]}}
    )
    assert ok(reply, 1) == {
        "name": "madcap-a",
        "domain_id": 64600,
        "node_id": "192.0.2.1",
        "address_family": "ipv4",
        "grants": [GRANT_A_JSON],
    }
    assert backend.registered == [("madcap-a", ["global"])]


async def test_space_lists_the_grants_of_the_registered_name(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    path = tmp_path / "maas.sock"
    _, backend = await serve(nursery, path)
    backend.table["madcap-a"] = [GRANT_A, GRANT_B.model_copy(update={"state": "deprecated"})]
    client = await Raw.connect(path)
    ok(await client.ask({"id": 1, "verb": "register", "args": {"name": "madcap-a"}}), 1)
    grants = ok(await client.ask({"id": 2, "verb": "space"}), 2)["grants"]
    assert [(g["prefix"], g["state"]) for g in grants] == [
        ("239.192.4.0/26", "active"),
        ("239.192.4.64/26", "deprecated"),
    ]


async def test_events_reach_only_a_subscribed_connection_of_their_name(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    path = tmp_path / "maas.sock"
    _, backend = await serve(nursery, path)
    client = await Raw.connect(path)
    ok(await client.ask({"id": 1, "verb": "register", "args": {"name": "madcap-a"}}), 1)
    backend.push("madcap-a", reason="not subscribed yet")  # dropped: no subscription
    result = ok(await client.ask({"id": 2, "verb": "subscribe"}), 2)
    assert result == {"grants": [GRANT_A_JSON]}
    other = MaasEvent.model_validate({"event": "granted", "maas": "someone-else", "grant": GRANT_B})
    backend.connections["madcap-a"].push(other)  # dropped: another name
    backend.push("madcap-a", "revoked", reason="withdrawn")
    event = await client.line()
    assert event == {
        "format_version": 1,
        "event": "revoked",
        "maas": "madcap-a",
        "grant": {
            "prefix": "239.192.4.64/26",
            "start": "239.192.4.64",
            "end": "239.192.4.127",
            "expires": 1_700_000_000.0,
            "state": "active",
        },
        "reason": "withdrawn",
    }
    ok(await client.ask({"id": 3, "verb": "space"}), 3)  # nothing else was queued before


async def test_usage_and_requests_reach_the_backend(nursery: trio.Nursery, tmp_path: Path) -> None:
    path = tmp_path / "maas.sock"
    _, backend = await serve(nursery, path)
    client = await Raw.connect(path)
    ok(await client.ask({"id": 1, "verb": "register", "args": {"name": "madcap-a"}}), 1)
    usage = {"in_use": 40, "rate": 0.001, "by_prefix": {"239.192.4.0/26": 40}}
    assert ok(await client.ask({"id": 2, "verb": "usage", "args": usage}), 2) == {}
    assert backend.usage == [
        (
            "madcap-a",
            UsageReport(in_use=40, rate=0.001, by_prefix={ip_network("239.192.4.0/26"): 40}),
        )
    ]
    result = ok(await client.ask({"id": 3, "verb": "request", "args": {"size": 256}}), 3)
    assert result["outstanding"] == 192 and result["granted"][0]["prefix"] == "239.192.4.64/26"
    reply = await client.ask({"id": 4, "verb": "request", "args": {"size": 1 << 20}})
    assert "more than the domain" in error(reply, "no_space", 4)
    assert backend.requests == [("madcap-a", 256), ("madcap-a", 1 << 20)]


# --- bad requests ---------------------------------------------------------------------------------

BAD_LINES = [
    pytest.param(b"not json", "bad_json", None, "JSON", id="bad-json"),
    pytest.param(b"[" * 5000, "bad_json", None, "JSON", id="deep-nesting"),
    pytest.param(b"[1, 2]", "bad_request", None, "JSON object", id="json-array"),
    pytest.param(b'{"verb": "space"}', "bad_request", None, "id", id="no-id"),
    pytest.param(b'{"id": "7", "verb": "space"}', "bad_request", None, "id", id="id-string"),
    pytest.param(b'{"id": 7, "verb": "space", "x": 1}', "bad_request", 7, "x", id="extra"),
    pytest.param(b'{"id": 7, "verb": "launch"}', "unknown_verb", 7, "launch", id="unknown"),
    pytest.param(b'{"id": 7, "verb": "register"}', "bad_request", 7, "args.name", id="no-name"),
    pytest.param(
        b'{"id": 7, "verb": "register", "args": {"name": 5}}',
        "bad_request",
        7,
        "args.name",
        id="name-int",
    ),
    pytest.param(
        b'{"id": 7, "verb": "register", "args": {"name": "a b"}}',
        "bad_request",
        7,
        "args.name",
        id="name-space",
    ),
    pytest.param(
        b'{"id": 7, "verb": "register", "args": {"name": "x", "scopes": "global"}}',
        "bad_request",
        7,
        "args.scopes",
        id="scopes-str",
    ),
    pytest.param(b"x" * 70_000, "too_large", None, "65536", id="oversized-70KB"),
]


@pytest.mark.parametrize(("line", "code", "request_id", "mentions"), BAD_LINES)
async def test_a_bad_line_gets_its_error_and_the_connection_stays_usable(
    nursery: trio.Nursery,
    tmp_path: Path,
    line: bytes,
    code: str,
    request_id: int | None,
    mentions: str,
) -> None:
    path = tmp_path / "maas.sock"
    await serve(nursery, path)
    client = await Raw.connect(path)
    assert mentions in error(await client.ask(line), code, request_id)
    reply = await client.ask({"id": 8, "verb": "register", "args": {"name": "madcap-a"}})
    assert ok(reply, 8)["name"] == "madcap-a"


BAD_ARGS = [
    ({"verb": "space", "args": {"x": 1}}, "args.x"),
    ({"verb": "usage", "args": {}}, "args.in_use"),
    ({"verb": "usage", "args": {"in_use": -1}}, "args.in_use"),
    ({"verb": "usage", "args": {"in_use": True}}, "args.in_use"),
    ({"verb": "usage", "args": {"in_use": 1, "rate": "fast"}}, "args.rate"),
    ({"verb": "usage", "args": {"in_use": 1, "by_prefix": {"239.192.4.1/26": 1}}}, "by_prefix"),
    ({"verb": "usage", "args": {"in_use": 1, "by_prefix": {"239.192.4.0/26": -1}}}, "by_prefix"),
    ({"verb": "request", "args": {}}, "args.size"),
    ({"verb": "request", "args": {"size": 0}}, "args.size"),
    ({"verb": "request", "args": {"size": 64.0}}, "args.size"),
    ({"verb": "request", "args": {"size": "64"}}, "args.size"),
]


@pytest.mark.parametrize(("request_", "mentions"), BAD_ARGS)
async def test_missing_or_ill_typed_args_are_bad_requests_naming_the_field(
    nursery: trio.Nursery, tmp_path: Path, request_: dict[str, Any], mentions: str
) -> None:
    path = tmp_path / "maas.sock"
    await serve(nursery, path)
    client = await Raw.connect(path)
    ok(await client.ask({"id": 1, "verb": "register", "args": {"name": "madcap-a"}}), 1)
    assert mentions in error(await client.ask({"id": 2, **request_}), "bad_request", 2)
    ok(await client.ask({"id": 3, "verb": "space"}), 3)


async def test_every_error_in_one_stream_is_answered_in_order(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """Bad lines, an oversized one among them, sent in one write: one answer each."""
    path = tmp_path / "maas.sock"
    await serve(nursery, path)
    client = await Raw.connect(path)
    await client.send(
        b'{"id": 1, "verb": "space"}\n'
        + b"y" * 100_000
        + b"\nnot json\n"
        + b'{"id": 2, "verb": "register", "args": {"name": "madcap-a"}}\n'
        + b'{"id": 3, "verb": "space"}\n'
    )
    error(await client.line(), "not_registered", 1)
    error(await client.line(), "too_large")
    error(await client.line(), "bad_json")
    ok(await client.line(), 2)
    ok(await client.line(), 3)


@pytest.mark.parametrize(
    "request_",
    [
        {"verb": "space"},
        {"verb": "subscribe"},
        {"verb": "usage", "args": {"in_use": 1}},
        {"verb": "request", "args": {"size": 64}},
    ],
)
async def test_verbs_before_register_are_not_registered(
    nursery: trio.Nursery, tmp_path: Path, request_: dict[str, Any]
) -> None:
    path = tmp_path / "maas.sock"
    _, backend = await serve(nursery, path)
    client = await Raw.connect(path)
    assert "register" in error(await client.ask({"id": 1, **request_}), "not_registered", 1)
    assert backend.usage == [] and backend.requests == []


async def test_a_name_is_in_use_until_its_connection_closes(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    path = tmp_path / "maas.sock"
    _, backend = await serve(nursery, path)
    first, second = await Raw.connect(path), await Raw.connect(path)
    register = {"id": 1, "verb": "register", "args": {"name": "madcap-a"}}
    ok(await first.ask(register), 1)
    error(await second.ask(register), "name_in_use", 1)
    error(await second.ask({"id": 2, "verb": "space"}), "not_registered", 2)  # still nobody
    # Registered under one name, a connection cannot switch to another.
    reply = await first.ask({"id": 2, "verb": "register", "args": {"name": "madcap-b"}})
    assert "madcap-a" in error(reply, "bad_request", 2)
    await first.stream.aclose()
    with trio.fail_after(WAIT):
        await backend.gone["madcap-a"].wait()
    assert backend.unregistered == ["madcap-a"]
    ok(await second.ask(register), 1)
    assert backend.connections["madcap-a"] is not None


async def test_a_registration_the_backend_refuses_leaves_the_connection_unregistered(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    path = tmp_path / "maas.sock"
    _, backend = await serve(nursery, path)
    client = await Raw.connect(path)
    error(
        await client.ask({"id": 1, "verb": "register", "args": {"name": "refused"}}), "no_space", 1
    )
    error(await client.ask({"id": 2, "verb": "space"}), "not_registered", 2)
    ok(await client.ask({"id": 3, "verb": "register", "args": {"name": "madcap-a"}}), 3)
    await client.stream.aclose()
    with trio.fail_after(WAIT):
        await backend.gone["madcap-a"].wait()
    assert backend.unregistered == ["madcap-a"]  # never "refused"


async def test_a_backend_bug_is_an_internal_error_and_the_connection_stays_usable(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "maas.sock"
    await serve(nursery, path)
    client = await Raw.connect(path)
    ok(await client.ask({"id": 1, "verb": "register", "args": {"name": "buggy"}}), 1)
    with caplog.at_level(logging.ERROR, logger="masc.maas"):
        error(await client.ask({"id": 2, "verb": "space"}), "internal", 2)
    assert any(getattr(r, "event", None) == "bug" for r in caplog.records)
    ok(await client.ask({"id": 3, "verb": "request", "args": {"size": 1}}), 3)

    other = await Raw.connect(path)
    ok(await other.ask({"id": 1, "verb": "register", "args": {"name": "odd"}}), 1)
    # A MaasError with a code outside the API is a backend bug too.
    error(await other.ask({"id": 2, "verb": "request", "args": {"size": 1}}), "internal", 2)


# --- concurrency ----------------------------------------------------------------------------------


async def test_a_waiting_request_holds_up_its_connection_only(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """Requests on one connection are answered in order; while one waits for the backend
    (the real one waits for the claim engine), other connections are served."""
    path = tmp_path / "maas.sock"
    _, backend = await serve(nursery, path)
    waiting, other = await Raw.connect(path), await Raw.connect(path)
    ok(await waiting.ask({"id": 1, "verb": "register", "args": {"name": "slow-a"}}), 1)
    await waiting.send(
        b'{"id": 2, "verb": "request", "args": {"size": 64}}\n{"id": 3, "verb": "space"}\n'
    )
    ok(await other.ask({"id": 1, "verb": "register", "args": {"name": "madcap-b"}}), 1)
    ok(await other.ask({"id": 2, "verb": "request", "args": {"size": 64}}), 2)
    assert backend.requests == [("madcap-b", 64)]
    backend.release.set()
    assert ok(await waiting.line(), 2)["outstanding"] == 0
    assert len(ok(await waiting.line(), 3)["grants"]) == 2


async def test_a_pipelining_client_is_slowed_down_not_dropped(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """Far more requests than the queue holds, in one write: back-pressure, every answer."""
    path = tmp_path / "maas.sock"
    _, backend = await serve(nursery, path, queue_lines=16)
    client = await Raw.connect(path)
    ok(await client.ask({"id": 0, "verb": "register", "args": {"name": "madcap-a"}}), 0)
    count = 2000
    requests = b"".join(b'{"id": %d, "verb": "space"}\n' % i for i in range(1, count + 1))
    async with trio.open_nursery() as inner:
        inner.start_soon(client.send, requests)
        for i in range(1, count + 1):
            ok(await client.line(), i)
    assert backend.unregistered == []


async def test_a_client_that_does_not_read_is_dropped_without_stalling_others(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "maas.sock"
    _, backend = await serve(nursery, path, queue_lines=64)
    stuck = await Raw.connect(path)
    ok(await stuck.ask({"id": 1, "verb": "register", "args": {"name": "stuck"}}), 1)
    ok(await stuck.ask({"id": 2, "verb": "subscribe"}), 2)
    big = "x" * 4000  # fills the socket buffers quickly
    with caplog.at_level(logging.WARNING, logger="masc.maas"):
        async with open_maas_client(path) as reader:
            await reader.register("reader")
            await reader.subscribe()
            events = reader.events()
            with trio.fail_after(WAIT):
                pushed = 0
                while not backend.gone["stuck"].is_set():
                    backend.push("stuck", reason=big)
                    backend.push("reader", "extended", reason=str(pushed))
                    pushed += 1
                    assert (await anext(events)).reason == str(pushed - 1)
            assert pushed > 64
            assert await reader.space() == [GRANT_A]  # still served
    assert await stuck.closed()
    drops = [r for r in caplog.records if getattr(r, "event", None) == "maas_slow_client"]
    assert len(drops) == 1 and drops[0].levelno == logging.WARNING
    assert getattr(drops[0], "maas", None) == "stuck"


async def test_the_65th_client_is_busy(nursery: trio.Nursery, tmp_path: Path) -> None:
    path = tmp_path / "maas.sock"
    await serve(nursery, path)
    clients = [await Raw.connect(path) for _ in range(64)]
    for client in clients:  # each one is being served
        error(await client.ask({"id": 1, "verb": "space"}), "not_registered", 1)
    extra = await Raw.connect(path)
    assert "too many" in error(await extra.line(), "busy")
    assert await extra.closed()
    error(await clients[0].ask({"id": 2, "verb": "space"}), "not_registered", 2)


async def test_an_unregistered_client_is_let_go_when_idle_a_registered_one_is_not(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "maas.sock"
    await serve(nursery, path, idle_timeout=0.2)
    registered = await Raw.connect(path)
    ok(await registered.ask({"id": 1, "verb": "register", "args": {"name": "madcap-a"}}), 1)
    with caplog.at_level(logging.INFO, logger="masc.maas"):
        idle = await Raw.connect(path)
        assert await idle.closed()
    assert any(getattr(r, "event", None) == "maas_idle" for r in caplog.records)
    ok(await registered.ask({"id": 2, "verb": "space"}), 2)


async def test_answers_are_flushed_to_a_client_that_stops_sending(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """``printf '...' | nc -U``: the client half-closes after its requests."""
    path = tmp_path / "maas.sock"
    _, backend = await serve(nursery, path)
    client = await Raw.connect(path)
    await client.send(
        b'{"id": 1, "verb": "register", "args": {"name": "madcap-a"}}\n{"id": 2, "verb": "space"}\n'
    )
    await client.stream.send_eof()
    ok(await client.line(), 1)
    ok(await client.line(), 2)
    assert await client.closed()
    with trio.fail_after(WAIT):
        await backend.gone["madcap-a"].wait()


# --- the socket file ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("group", "gid"),
    [(None, os.getgid()), (0, 0), ("root", 0), (65534, 65534), ("nogroup", 65534)],
)
async def test_socket_mode_is_0660_and_the_group_is_applied(
    nursery: trio.Nursery, tmp_path: Path, group: str | int | None, gid: int
) -> None:
    if os.geteuid() != 0 and gid not in os.getgroups():
        pytest.skip("only root may give a file to a group it is not in")
    path = tmp_path / "maas.sock"
    await serve(nursery, path, group=group)
    info = path.lstat()
    assert stat.S_ISSOCK(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o660
    assert info.st_gid == gid


async def test_the_configured_mode_is_applied(nursery: trio.Nursery, tmp_path: Path) -> None:
    path = tmp_path / "maas.sock"
    await serve(nursery, path, mode=0o600)
    assert stat.S_IMODE(path.lstat().st_mode) == 0o600


async def test_an_unknown_group_fails_before_the_socket_exists(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="no-such-group"):
        await bind_unix(tmp_path / "maas.sock", mode=0o660, group="no-such-group")
    assert not (tmp_path / "maas.sock").exists()
    assert resolve_group("4242") == 4242 and resolve_group(7) == 7 and resolve_group(None) is None


async def test_a_stale_socket_is_replaced_a_regular_file_is_not(tmp_path: Path) -> None:
    stale = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX) as left_over:
        left_over.bind(str(stale))  # bound, never listening: what a crash leaves
    (await bind_unix(stale, mode=0o660)).close()
    assert stat.S_ISSOCK(stale.lstat().st_mode)

    regular = tmp_path / "notes.txt"
    regular.write_text("keep me")
    with pytest.raises(OSError, match="not a socket"):
        await bind_unix(regular, mode=0o660)
    assert regular.read_text() == "keep me"


async def test_a_socket_in_use_is_not_taken_over(nursery: trio.Nursery, tmp_path: Path) -> None:
    path = tmp_path / "maas.sock"
    await serve(nursery, path)
    with pytest.raises(OSError, match="in use"):
        await bind_unix(path, mode=0o660)
    client = await Raw.connect(path)  # the first server still answers
    error(await client.ask({"id": 1, "verb": "space"}), "not_registered", 1)


async def test_the_socket_file_is_removed_when_the_server_stops(tmp_path: Path) -> None:
    path = tmp_path / "maas.sock"
    async with trio.open_nursery() as nursery:
        await serve(nursery, path)
        assert path.exists()
        nursery.cancel_scope.cancel()
    assert not path.exists()


# --- framing --------------------------------------------------------------------------------------


async def lines_of(
    chunks: list[bytes], max_bytes: int, *, strict: bool = True
) -> list[bytes | str | None]:
    """What a LineReader makes of ``chunks`` arriving one by one, up to end of stream."""
    send, receive = trio.testing.memory_stream_one_way_pair()
    reader = LineReader(receive, max_bytes, strict=strict)
    out: list[bytes | str | None] = []
    for chunk in chunks:
        await send.send_all(chunk)
        await trio.testing.wait_all_tasks_blocked()
    await send.aclose()
    while True:
        line = await reader.receive_line()
        out.append("TOO_LARGE" if line is TOO_LARGE else line)
        if line is None:
            return out


async def test_line_reader_joins_chunks_and_drops_an_unterminated_tail() -> None:
    assert await lines_of([b"ab", b"c\nde", b"f\n\ng"], 10) == [b"abc", b"def", b"", None]


async def test_line_reader_reports_an_oversized_line_then_reads_the_next() -> None:
    assert await lines_of([b"0123456789", b"X", b"tail\nok\n"], 10) == [
        "TOO_LARGE",
        b"ok",
        None,
    ]
    assert await lines_of([b"0123456789X\nok\n"], 10) == ["TOO_LARGE", b"ok", None]
    assert await lines_of([b"0123456789\n"], 10) == [b"0123456789", None]  # the limit is fine


async def test_line_reader_reports_a_line_without_end_before_it_ends() -> None:
    """A client that never sends the newline cannot make the daemon buffer without bound."""
    send, receive = trio.testing.memory_stream_one_way_pair()
    reader = LineReader(receive, 10)
    await send.send_all(b"x" * 11)
    with trio.fail_after(WAIT):
        assert await reader.receive_line() is TOO_LARGE
    await send.send_all(b"x" * 1000 + b"\nnext\n")
    assert await reader.receive_line() == b"next"


async def test_line_reader_lenient_mode_holds_only_the_unterminated_end_to_the_limit() -> None:
    """The control socket's rule (tests/e2e: a 100,000-byte line is answered, 70,000 bytes
    without a newline are too_large): a line whose newline comes within the next read (of
    max_bytes) is whole, one that needs two more is too large."""
    assert await lines_of([b"0123456789", b"X\nok\n"], 10, strict=False) == [
        b"0123456789X",
        b"ok",
        None,
    ]
    assert await lines_of([b"0123456789", b"X" * 11, b"\nok\n"], 10, strict=False) == [
        "TOO_LARGE",
        b"ok",
        None,
    ]
