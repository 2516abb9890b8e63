"""Prometheus exposition: what a scrape shows of the daemon's state (the MASC MIB's
information), and an HTTP endpoint that answers scrapers and survives anything else.

The claim engine is driven directly through its own timers (no sessions, no sockets) with a
settable Unix clock; the HTTP tests use a real loopback socket on an ephemeral port.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from ipaddress import ip_network
from typing import Any

import pytest
import trio
import trio.testing
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import masc
from masc.config import parse_config_text
from masc.daemon.grib import GribTable
from masc.daemon.main import Daemon
from masc.daemon.metrics import metrics_registry, serve_metrics
from masc.maas.grants import Space
from masc.protocol.claims import CacheEntry
from masc.protocol.constants import ClaimType, Role
from masc.protocol.engine import Clash
from masc.protocol.events import SpaceKind
from masc.protocol.session import State
from masc.protocol.wire.messages import Claim, DomainId, NodeId, Prefix

EPOCH = 1_700_000_000.0
CONFIG = """
[local]
domain_id = 65001
node_id = "127.0.9.200"
global_pool = ["239.192.0.0/14"]
[control]
socket = "/tmp/unused.sock"
[[peers]]
address = "127.0.9.201"
relation = "child"
domain_id = 65003
"""
CHILD_PEER = {"peer": "127.0.9.201", "relation": "child", "domain_id": "65003"}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class Clock:
    def __init__(self) -> None:
        self.now = EPOCH

    def __call__(self) -> float:
        return self.now


def make_daemon() -> tuple[Daemon, Clock]:
    clock = Clock()
    return Daemon(parse_config_text(CONFIG, source="t.toml"), clock=clock), clock


def scrape(daemon: Daemon) -> Samples:
    return parse(generate_latest(metrics_registry(daemon)).decode())


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[name, frozenset(labels.items())]


def names(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


def allocate(daemon: Daemon, clock: Clock) -> None:
    """Run the engine's own timers until its first prefix is allocated (§5.1 a, b, d)."""
    engine = daemon.engine
    engine.start(now=clock.now)
    while not engine.allocations:
        deadline = engine.next_deadline()
        assert deadline is not None
        clock.now = max(clock.now, deadline)
        engine.handle_timer(now=clock.now)


async def test_a_fresh_daemon_exposes_every_family_with_zeros() -> None:
    daemon, _ = make_daemon()
    samples = scrape(daemon)
    assert (
        value(
            samples,
            "masc_info",
            version=masc.__version__,
            domain_id="65001",
            node_id="127.0.9.200",
        )
        == 1
    )
    assert value(samples, "masc_start_time_seconds") == daemon.started_at
    assert value(samples, "masc_non_leaf") == 0
    # §10: every state is present, zeros included, so a series never vanishes.
    by_state = {s.value: value(samples, "masc_peers", state=s.value) for s in State}
    assert by_state == {
        "Idle": 1,
        "Connect": 0,
        "Active": 0,
        "OpenSent": 0,
        "OpenConfirm": 0,
        "Established": 0,
    }
    assert value(samples, "masc_peer_up", **CHILD_PEER) == 0
    for direction in ("in", "out"):
        for kind in ("OPEN", "UPDATE", "NOTIFICATION", "KEEPALIVE"):
            labels = {"peer": "127.0.9.201", "direction": direction, "type": kind}
            assert value(samples, "masc_peer_messages_total", **labels) == 0
    assert value(samples, "masc_peer_flaps_total", peer="127.0.9.201") == 0
    for kind in ("managed", "local"):
        for state in ("active", "deprecated"):
            assert value(samples, "masc_prefixes", kind=kind, state=state) == 0
    for kind in ("managed", "local", "granted", "in_use"):
        assert value(samples, "masc_addresses", kind=kind) == 0
    assert value(samples, "masc_utilization") == 0
    assert value(samples, "masc_reloads_total", result="ok") == 0
    assert value(samples, "masc_reloads_total", result="failed") == 0
    assert value(samples, "masc_collisions_total") == 0
    assert value(samples, "masc_clashes_total") == 0
    assert value(samples, "masc_clashes_pending") == 0
    assert value(samples, "masc_child_prefixes") == 0
    assert value(samples, "masc_claims_sent_total", type="NEW_CLAIM") == 0


async def test_claims_show_as_scheduled_then_pending_then_the_prefix_as_held() -> None:
    daemon, clock = make_daemon()
    engine = daemon.engine
    engine.start(now=clock.now)  # §5.1 a: a claim waits out its random delay
    samples = scrape(daemon)
    assert value(samples, "masc_claims", type="NEW_CLAIM", state="scheduled") == 1
    assert value(samples, "masc_claims", type="NEW_CLAIM", state="pending") == 0

    (scheduled,) = engine.scheduled
    clock.now = scheduled.at
    engine.handle_timer(now=clock.now)  # §5.1 b: sent, Claim-Timer running
    samples = scrape(daemon)
    assert value(samples, "masc_claims", type="NEW_CLAIM", state="scheduled") == 0
    assert value(samples, "masc_claims", type="NEW_CLAIM", state="pending") == 1
    assert value(samples, "masc_claims", type="NEW_CLAIM", state="cached") == 1
    assert value(samples, "masc_prefixes", kind="managed", state="active") == 0

    allocate(daemon, clock)  # §5.1 d: the waiting period passed with no collision
    samples = scrape(daemon)
    assert value(samples, "masc_claims", type="NEW_CLAIM", state="pending") == 0
    assert value(samples, "masc_prefixes", kind="managed", state="active") == 1
    # A leaf domain's locally-allocated set is its managed set (§12.2).
    assert value(samples, "masc_addresses", kind="managed") == 256
    assert value(samples, "masc_addresses", kind="local") == 256
    # Our announcements are in the cache: PREFIX_IN_USE and PREFIX_MANAGED (§5.1 d).
    assert value(samples, "masc_claims", type="PREFIX_IN_USE", state="cached") == 1
    assert value(samples, "masc_claims", type="PREFIX_MANAGED", state="cached") == 1


async def test_values_follow_state_changes_between_scrapes() -> None:
    daemon, clock = make_daemon()
    registry = metrics_registry(daemon)  # one registry, scraped twice
    before = parse(generate_latest(registry).decode())
    allocate(daemon, clock)
    after = parse(generate_latest(registry).decode())
    assert value(before, "masc_prefixes", kind="managed", state="active") == 0
    assert value(after, "masc_prefixes", kind="managed", state="active") == 1
    assert value(before, "masc_addresses", kind="managed") == 0
    assert value(after, "masc_addresses", kind="managed") == 256

    (alloc,) = daemon.engine.allocations.values()
    alloc.renewing = False  # deprecated (§17.1.4): still held, no longer renewed
    samples = parse(generate_latest(registry).decode())
    assert value(samples, "masc_prefixes", kind="managed", state="active") == 0
    assert value(samples, "masc_prefixes", kind="managed", state="deprecated") == 1

    clock.now = alloc.expires  # expired: no longer counted even before the engine's timer
    samples = parse(generate_latest(registry).decode())
    assert value(samples, "masc_prefixes", kind="managed", state="deprecated") == 0
    assert value(samples, "masc_addresses", kind="managed") == 0


async def test_appendix_a_utilization_is_maas_usage_over_the_locally_allocated_set() -> None:
    daemon, clock = make_daemon()
    allocate(daemon, clock)
    grants, now = daemon.grants, clock.now
    pieces = daemon.engine.local_pieces(now=now)
    grants.sync([Space(p.prefix, float(p.expires), p.active) for p in pieces], now=now)
    grants.register("maas-1", ["global"], now=now)
    grants.report_usage("maas-1", in_use=64, rate=0.0, by_prefix={}, now=now)
    granted = sum(g.prefix.num_addresses for g in grants.grants())
    assert granted > 0
    samples = scrape(daemon)
    assert value(samples, "masc_addresses", kind="granted") == granted
    assert value(samples, "masc_addresses", kind="in_use") == 64
    assert value(samples, "masc_utilization") == pytest.approx(64 / 256)


async def test_event_counts_peer_counters_and_reloads_are_counters() -> None:
    daemon, _ = make_daemon()
    daemon.domain.counts.update(
        {
            "claims_sent:NEW_CLAIM": 3,
            "claims_sent:CLAIM_TO_EXPAND": 2,
            "collisions": 1,
            "denials": 9,
            "clashes": 4,
            "allocated": 5,
            "deprecated": 6,
            "gone:expired": 7,
            "gone:released": 8,
        }
    )
    runner = daemon.runners["127.0.9.201", None]
    runner.session.stats.messages_in["UPDATE"] = 11
    runner.session.stats.messages_out["KEEPALIVE"] = 12
    runner.session.stats.flaps = 2
    daemon.reloads, daemon.reload_failures = 3, 1
    samples = scrape(daemon)
    assert value(samples, "masc_claims_sent_total", type="NEW_CLAIM") == 3
    assert value(samples, "masc_claims_sent_total", type="CLAIM_TO_EXPAND") == 2
    assert value(samples, "masc_collisions_total") == 1
    assert value(samples, "masc_claim_denials_total") == 9
    assert value(samples, "masc_clashes_total") == 4
    assert value(samples, "masc_prefixes_allocated_total") == 5
    assert value(samples, "masc_prefixes_deprecated_total") == 6
    assert value(samples, "masc_prefixes_gone_total", reason="expired") == 7
    assert value(samples, "masc_prefixes_gone_total", reason="released") == 8
    peer = "127.0.9.201"
    assert (
        value(samples, "masc_peer_messages_total", peer=peer, direction="in", type="UPDATE") == 11
    )
    out = {"peer": peer, "direction": "out", "type": "KEEPALIVE"}
    assert value(samples, "masc_peer_messages_total", **out) == 12
    assert value(samples, "masc_peer_flaps_total", peer=peer) == 2
    assert value(samples, "masc_reloads_total", result="ok") == 3
    assert value(samples, "masc_reloads_total", result="failed") == 1


async def test_s12_4_pending_clashes_and_child_prefixes_of_other_domains_are_counted() -> None:
    daemon, clock = make_daemon()
    allocate(daemon, clock)
    engine, now = daemon.engine, clock.now
    (ours,) = engine.allocations.values()

    def claim(domain: int, prefix: str, timestamp: int) -> Claim:
        return Claim(
            type=ClaimType.PREFIX_IN_USE,
            origin_role=Role.CHILD,
            timestamp=timestamp,
            lifetime=86_400,
            holdtime=86_400,
            origin_domain=DomainId(domain),
            origin_node=NodeId(0x7F000902),
            prefix=ip_network(prefix),
        )

    child = str(next(ours.prefix.subnets(new_prefix=28)))
    # The same child prefix announced twice (a renewal has a new timestamp): counted once.
    for entry in (
        CacheEntry(claim(65003, child, int(now)), via="127.0.9.201", parent=None),
        CacheEntry(claim(65003, child, int(now) + 1), via="127.0.9.201", parent=None),
    ):
        engine.cache.add(entry)
    winner = claim(65002, str(ours.prefix), int(now) - 10)
    engine.clashes[99] = Clash(99, ours.prefix, SpaceKind.DOMAIN, winner, now)
    engine.clashes[100] = Clash(100, ours.prefix, SpaceKind.DOMAIN, winner, now, "accepted")
    samples = scrape(daemon)
    assert value(samples, "masc_child_prefixes") == 1
    assert value(samples, "masc_clashes_pending") == 1


async def test_one_failing_family_is_logged_and_the_others_still_render(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    daemon, _ = make_daemon()

    def broken(**kwargs: Any) -> list[Any]:
        raise RuntimeError("bug")

    monkeypatch.setattr(daemon.engine, "managed_space", broken)
    with caplog.at_level(logging.ERROR, logger="masc.metrics"):
        samples = scrape(daemon)
    assert "masc_addresses" not in names(samples)
    assert {"masc_peers", "masc_prefixes", "masc_reloads_total"} <= names(samples)
    assert any("_addresses failed" in r.getMessage() for r in caplog.records)


async def test_each_daemon_has_its_own_registry_and_the_global_one_stays_clean() -> None:
    first, second = make_daemon()[0], make_daemon()[0]
    assert scrape(first) and scrape(second)
    assert metrics_registry(first) is not metrics_registry(first)
    assert b"masc_" not in generate_latest(REGISTRY)


# --- HTTP ------------------------------------------------------------------------------------


async def request(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``raw`` and read the whole answer (the server closes the connection)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(raw)
        data = bytearray()
        while chunk := await stream.receive_some(65536):
            data += chunk
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        key, _, val = line.partition(":")
        headers[key.strip().lower()] = val.strip()
    return int(status_line.split()[1]), headers, body


def get(path: str, method: str = "GET") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()


async def test_http_endpoint_serves_metrics_and_survives_bad_requests() -> None:
    daemon, _ = make_daemon()
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_metrics, metrics_registry(daemon), "127.0.0.1", 0)
        assert port > 0

        status, headers, body = await request(port, get("/metrics"))
        assert status == 200
        assert headers["content-type"].startswith("text/plain")
        assert headers["connection"] == "close"
        assert int(headers["content-length"]) == len(body)
        assert value(parse(body.decode()), "masc_peer_up", **CHILD_PEER) == 0

        status, headers, body = await request(port, get("/"))
        assert status == 200 and b"/metrics" in body
        assert (await request(port, get("/metrics?x=1")))[0] == 200
        assert (await request(port, get("/nope")))[0] == 404
        status, headers, _ = await request(port, get("/metrics", method="POST"))
        assert status == 405 and headers["allow"] == "GET"
        assert (await request(port, b"\x16\x03\x01\x00\xff garbage\r\n\r\n"))[0] == 400
        assert (await request(port, b"GET / HTTP/1.1\r\nX: " + b"a" * 10_000))[0] == 431

        # A client that connects and hangs up at once.
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.aclose()

        status, _, body = await request(port, get("/metrics"))  # still serving
        assert status == 200 and b"masc_peers" in body
        nursery.cancel_scope.cancel()


async def test_http_a_silent_client_is_dropped_after_the_connection_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    daemon, _ = make_daemon()
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_metrics, metrics_registry(daemon), "127.0.0.1", 0)
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            start = trio.current_time()
            assert await stream.receive_some(1024) == b""  # closed by the server
            assert trio.current_time() - start >= 10.0
        nursery.cancel_scope.cancel()


async def test_grib_size_and_each_exporter_s_state_are_exposed() -> None:
    daemon, _ = make_daemon()
    assert value(scrape(daemon), "masc_grib_prefixes") == 0
    # Two exporters' states, as their sync tasks leave them (docs/grib.md).
    daemon.grib = GribTable([_Named("kernel"), _Named("frr")])
    daemon.grib.inject(ip_network("239.192.0.0/24"))
    daemon.grib.syncs[0].status.in_sync = True
    daemon.grib.syncs[1].status.failures = 3
    samples = scrape(daemon)
    assert value(samples, "masc_grib_prefixes") == 1
    assert value(samples, "masc_grib_exporter_in_sync", exporter="kernel") == 1
    assert value(samples, "masc_grib_exporter_in_sync", exporter="frr") == 0
    assert value(samples, "masc_grib_exporter_failures_total", exporter="frr") == 3


class _Named:
    """A target that is never synced here: only its name matters."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.foreign: set[Prefix] = set()

    async def installed(self) -> set[Prefix]:
        raise AssertionError("not synced in this test")

    async def apply(self, add: Sequence[Prefix], delete: Sequence[Prefix]) -> None:
        raise AssertionError("not synced in this test")

    async def verify(self, desired: frozenset[Prefix]) -> list[str]:
        raise AssertionError("not synced in this test")
