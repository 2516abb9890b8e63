"""Operator control plane figures: what a ``mascctl`` request and a Prometheus scrape cost a
daemon holding a large state.

    .venv/bin/python benchmarks/control.py [--prefixes N] [--cached M] [--runs R]

Builds an in-process Daemon (not serving: the figures are the daemon's own work, without
socket latency) holding N allocated prefixes (half managed, half local), M foreign claims in
the claim cache, 20 MAASs with one grant per local prefix, and a store with 10 history lines
per prefix.  Then measures (median of R runs, ``time.perf_counter``):

1. each ``show`` verb through ``ControlServer.respond`` (parse, build, validate, serialise);
2. one metrics scrape (``generate_latest`` of the daemon's registry).

These requests run on the daemon's event loop, so their time is time the sessions wait:
the figures say how much state one request may cover before an operator stalls keepalives.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from ipaddress import IPv4Network
from pathlib import Path

import trio
from prometheus_client import generate_latest

from masc.config import parse_config_text
from masc.daemon.control import ControlServer
from masc.daemon.main import Daemon
from masc.daemon.metrics import metrics_registry
from masc.maas.grants import Grant
from masc.protocol.claims import CacheEntry
from masc.protocol.constants import ClaimType, Role
from masc.protocol.engine import Allocation
from masc.protocol.events import SpaceKind
from masc.protocol.wire.messages import Claim, DomainId, NodeId
from masc.store import HistoryRecord, Store

NOW = 1_700_000_000.0
CONFIG = """
[local]
domain_id = 65001
node_id = "127.0.9.1"
global_pool = ["228.0.0.0/6"]
"""


def build(prefixes: int, cached: int, workdir: Path) -> Daemon:
    store = Store.open(workdir / "state.db", history_limit=10 * prefixes)
    daemon = Daemon(parse_config_text(CONFIG, source="b.toml"), clock=lambda: NOW, store=store)
    engine, rng = daemon.engine, random.Random(1)
    blocks = list(IPv4Network("228.0.0.0/8").subnets(new_prefix=24))
    for i in range(prefixes):
        kind = SpaceKind.DOMAIN if i % 2 == 0 else SpaceKind.LOCAL
        prefix = blocks[i]
        engine.allocations[(kind, prefix)] = Allocation(
            prefix, kind, DomainId(0), int(NOW), 30 * 86400, NodeId(1), NOW
        )
    for i in range(cached):
        claim = Claim(
            type=rng.choice([ClaimType.PREFIX_IN_USE, ClaimType.PREFIX_MANAGED]),
            origin_role=Role.SIBLING,
            timestamp=int(NOW),
            lifetime=30 * 86400,
            holdtime=30 * 86400,
            origin_domain=DomainId(70000 + i % 500),
            origin_node=NodeId(i + 10),
            prefix=IPv4Network(blocks[prefixes + i % (len(blocks) - prefixes)]),
        )
        engine.cache.add(CacheEntry(claim, via="peer", parent=DomainId(0)))
    grants = [
        Grant(f"maas-{i % 20}", p, NOW + 86400, True, NOW)
        for (kind, p) in engine.allocations
        if kind is SpaceKind.LOCAL
    ]
    daemon.grants.restore(grants, [(f"maas-{i}", ("global",)) for i in range(20)])
    store.record(
        HistoryRecord(NOW, "allocated", str(p), "new (domain)")
        for (_, p) in engine.allocations
        for _ in range(10)
    )
    return daemon


def median(runs: int, fn: Callable[[], Awaitable[object]]) -> float:
    async def timed() -> float:
        samples = []
        for _ in range(runs):
            start = time.perf_counter()
            await fn()
            samples.append(time.perf_counter() - start)
        return statistics.median(samples)

    return trio.run(timed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prefixes", type=int, default=1000)
    parser.add_argument("--cached", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        daemon = build(args.prefixes, args.cached, Path(tmp))
        server = ControlServer(daemon)
        print(
            f"state: {args.prefixes} prefixes, {len(daemon.engine.cache)} cached claims, "
            f"{len(daemon.grants.grants())} MAAS grants, {10 * args.prefixes} history lines"
        )
        for verb, extra in [
            ("show summary", ""),
            ("show peers", ""),
            ("show prefixes", ""),
            ("show prefixes", ', "args": {"history": 0}'),
            ("show claims", ""),
            ("show claims", ', "args": {"domain_id": 70001}'),
            ("show maas", ""),
        ]:
            line = f'{{"verb": "{verb}"{extra}}}'.encode()
            seconds = median(args.runs, lambda line=line: server.respond(line))  # type: ignore[misc]
            size = len(trio.run(server.respond, line))
            print(f"{verb + extra:45s} {seconds * 1000:8.1f} ms  ({size / 1024:.0f} KiB)")
        registry = metrics_registry(daemon)

        async def scrape() -> bytes:
            return generate_latest(registry)

        seconds = median(args.runs, scrape)
        size = len(generate_latest(registry))
        print(f"{'metrics scrape':45s} {seconds * 1000:8.1f} ms  ({size / 1024:.0f} KiB)")
        assert daemon.store is not None
        daemon.store.close()


if __name__ == "__main__":
    main()
