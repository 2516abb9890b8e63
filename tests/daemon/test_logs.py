"""Structured logs: JSON lines carry the event, the peer and the node's own identity."""

from __future__ import annotations

import json
import logging

import pytest

from masc.daemon.logs import configure


def test_json_records_name_the_peer_and_the_local_domain(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure("info", "json", context={"local_domain": 65001, "node": "127.0.9.1"})
    logging.getLogger("masc.peer").info(
        "Idle -> Connect", extra={"event": "state", "peer": "127.0.9.2", "domain": "65002 child"}
    )
    record = json.loads(capsys.readouterr().err.strip())
    assert record["event"] == "state" and record["message"] == "Idle -> Connect"
    assert (record["peer"], record["domain"]) == ("127.0.9.2", "65002 child")
    assert (record["local_domain"], record["node"]) == (65001, "127.0.9.1")
    assert record["level"] == "info" and isinstance(record["ts"], float)


def test_text_is_the_default_and_names_the_peer(capsys: pytest.CaptureFixture[str]) -> None:
    configure("info", context={"local_domain": 65001, "node": "127.0.9.1"})
    logging.getLogger("masc.peer").warning(
        "session down: x", extra={"peer": "127.0.9.2", "domain": "65002 child"}
    )
    line = capsys.readouterr().err.strip()
    assert line.endswith("warning peer 127.0.9.2 (domain 65002 child): session down: x")
    assert "local_domain" not in line
