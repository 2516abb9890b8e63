"""Claim engine figures: attributes processed per second, and Figure 1 under virtual time.

    .venv/bin/python benchmarks/claims.py [--claims N] [--days D]

1. One TLD engine with a sibling session receives N distinct sibling PREFIX_IN_USE
   attributes (disjoint /24s of the pool, one per UPDATE) and passes each on: the §11.1
   checks, the §11.2.2 association, collision and clash checks, caching and propagation.
   The cache grows with every attribute; it is indexed (by type, origin domain, role and
   expiry), so the rate should hardly fall as N grows: the figure is printed for N and for
   N/10 to show it.
2. RFC 2909 Figure 1 (12 nodes, 17 sessions) with the RFC's timers (48 h waiting period)
   run for D virtual days in the in-process network (real engines, session FSMs and
   runners on in-memory streams under MockClock): wall seconds and UPDATEs exchanged.
"""

from __future__ import annotations

import argparse
import random
import time
from ipaddress import IPv4Network

import trio
import trio.testing

from masc.protocol.constants import AddressFamily, ClaimType, Role
from masc.protocol.engine import ClaimEngine, EngineConfig, Neighbor, Policy
from masc.protocol.wire.messages import Claim, DomainId, NodeId, Update
from masc.sim.network import DAY, SimNetwork, SimTimers
from masc.sim.topology import figure1

POOL = IPv4Network("228.0.0.0/6")
NOW = 1_700_000_000.0


def engine_rate(count: int) -> float:
    engine = ClaimEngine(
        EngineConfig(
            local_domain=DomainId(1),
            local_node=NodeId(0x7F000001),
            family=AddressFamily.IPV4,
            global_pool=(POOL,),
            initial_size=0,
        ),
        rng=random.Random(1),
    )
    for key, domain in (("s1", 2), ("s2", 3)):
        engine.peer_up(
            Neighbor(key, Role.SIBLING, DomainId(domain), NodeId(domain), 1, DomainId(0)),
            now=NOW,
        )
    blocks = POOL.subnets(new_prefix=24)
    updates = [
        Update(
            (
                Claim(
                    type=ClaimType.PREFIX_IN_USE,
                    origin_role=Role.INTERNAL,
                    timestamp=int(NOW) - 10,
                    lifetime=30 * 86_400,
                    holdtime=30 * 86_400,
                    origin_domain=DomainId(2),
                    origin_node=NodeId(2),
                    prefix=next(blocks),
                ),
            )
        )
        for _ in range(count)
    ]
    started = time.perf_counter()
    for update in updates:
        engine.update_received("s1", update, now=NOW)
    return count / (time.perf_counter() - started)


def figure1_run(days: float) -> tuple[float, int]:
    result: list[tuple[float, int]] = []

    async def main() -> None:
        net = SimNetwork(
            figure1(), timers=SimTimers(hold_time=3 * 3_600), policy=Policy(), record=False
        )
        started = time.perf_counter()
        async with net.running():
            await net.advance(days * DAY)
            updates = sum(
                runner.session.stats.messages_out.get("UPDATE", 0)
                for node in net.topology.nodes
                for runner in net.node(node).runners.values()
            )
            assert net.check_safety() == []
        result.append((time.perf_counter() - started, updates))

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return result[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", type=int, default=2000)
    parser.add_argument("--days", type=float, default=9.0)
    args = parser.parse_args()
    print("engine: sibling PREFIX_IN_USE attributes processed and passed on, per second")
    for n in (args.claims // 10, args.claims):
        print(f"  {n:>7} attributes into a fresh engine: {engine_rate(n):>10,.0f} /s")
    wall, updates = figure1_run(args.days)
    print(f"Figure 1, RFC timers, {args.days:g} virtual days: {wall:.2f} s wall, {updates} UPDATEs")


if __name__ == "__main__":
    main()
