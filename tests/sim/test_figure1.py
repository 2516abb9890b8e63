"""RFC 2909 Figure 1 with the RFC's timers: 48-hour waiting period, 10-minute initiate delay,
30-day lifetimes (§6), pool 239.192.0.0/14.  Every domain ends up holding space nested in
its parent's, siblings disjoint, internal peers in agreement (§4, §5.1, §12.2, §12.4)."""

from __future__ import annotations

import trio.testing

from masc.protocol.constants import INITIATE_CLAIM_DELAY, WAITING_PERIOD
from masc.protocol.engine import Policy
from masc.protocol.space import covers, overlaps
from masc.protocol.wire.messages import Prefix
from masc.sim.network import DAY, SimNetwork, SimTimers
from masc.sim.topology import figure1

# The RFC's claim timers.  Keepalives every hour: sessions are not under test here, and 90 s
# hold times over ten days would be a million messages.
RFC_TIMERS = SimTimers(hold_time=3 * 3_600)
# Each level wants a quarter of its parent's demand (4096, 1024, 256 addresses), well
# above the smallest prefix a parent grants.
POLICY = Policy(min_child_prefix_size=16)
SIBLINGS = [("T1", "T2"), ("P3", "P4"), ("C5", "C6"), ("C5", "C7"), ("C6", "C7")]


def test_the_timers_are_the_rfcs() -> None:
    assert RFC_TIMERS.waiting_period == WAITING_PERIOD == 48 * 3_600
    assert RFC_TIMERS.initiate_claim_delay == INITIATE_CLAIM_DELAY == 600
    assert RFC_TIMERS.claim_lifetime == 30 * DAY


async def test_s4_figure1_converges_to_a_safe_nested_allocation(
    autojump_clock: trio.testing.MockClock,
) -> None:
    topo = figure1()
    net = SimNetwork(topo, timers=RFC_TIMERS, policy=POLICY)
    async with net.running():
        # Three levels each wait out one 48-hour waiting period (days 2, 4 and 6); a
        # regional's children fill its first prefix, so it expands it (§5.3) before it can
        # claim its own local space (§12.2, day 8): after 9 days everything is settled.
        await net.advance(9 * DAY)
        assert net.all_established()
        now = net.now()
        space: dict[str, list[Prefix]] = {}
        for domain in topo.domains:
            views = {n: net.engine(n).managed_space(now=now) for n in topo.nodes_of(domain)}
            first = next(iter(views.values()))
            assert first, f"{domain} holds nothing"
            assert all(v == first for v in views.values()), views  # §11.6.3
            space[domain] = first
        for domain, spec in topo.domains.items():
            # Each prefix of a child lies inside a prefix of one of its parents (§11.4.3);
            # C5 has two parents and takes from one of them.
            inside = [p for parent in spec.parents for p in space[parent]]
            assert not spec.parents or all(any(covers(p, c) for p in inside) for c in space[domain])
        for x, y in SIBLINGS:
            assert not any(overlaps(a, b) for a in space[x] for b in space[y]), (x, y)
        # Leaf domains hand their managed space to their MAASs; the regionals claimed local
        # space of their own once their children showed up (§12.2).
        for node in ("C5a", "C5b", "C5c", "C6a", "C6b", "C7a", "P3a", "P3b", "P4a", "P4b"):
            assert net.engine(node).local_space(now=now), node
        for node in ("T1a", "T2a", "P3a", "P4b"):
            assert net.engine(node).non_leaf, node
        # Every node routes what its domain manages (§5.1 d).
        for node in topo.nodes:
            assert net.grib(node) == set(net.engine(node).managed_space(now=now)), node
        assert net.check_safety() == []
        # Renewals are weeks away: nothing moves over the next days.
        await net.advance(2 * DAY)
        assert {d: net.engine(topo.nodes_of(d)[0]).managed_space() for d in topo.domains} == space
        assert net.check_safety() == []
