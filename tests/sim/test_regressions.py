"""Engine bugs the simulator found, replayed as small scripted networks (RFC 2909 §11.7.4,
§12.4, §14).  Each ended in two unrelated domains using the same addresses, or a child
using addresses its parent had given up."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Network

import trio.testing

from masc.protocol.constants import Role
from masc.protocol.engine import Policy
from masc.protocol.wire.messages import DomainId, NodeId
from masc.sim.network import HOUR, MINUTE, SHORT_TIMERS, SimNetwork
from masc.sim.topology import DomainSpec, LinkSpec, NodeSpec, Topology

Clock = trio.testing.MockClock
TIMERS = replace(SHORT_TIMERS, claim_lifetime=HOUR, hold_time=1_800)
WAIT = TIMERS.waiting_period
TRUST_ALL = Policy(restore_from=frozenset(Role))  # §14: re-learn from any neighbour


def two_tlds(*, children: str = "") -> Topology:
    """Top-level domains T and U (one node each, siblings), with child C under T and child
    D under U for each letter in ``children``."""
    domains = {
        "T": DomainSpec("T", DomainId(64_701), demand=1024),
        "U": DomainSpec("U", DomainId(64_702), demand=1024),
    }
    nodes = {
        "Ta": NodeSpec("Ta", "T", NodeId(0x0A000101)),
        "Ua": NodeSpec("Ua", "U", NodeId(0x0A000201)),
    }
    links = [LinkSpec("Ta", "Ua", Role.SIBLING)]
    for number, (child, parent) in enumerate((("C", "T"), ("D", "U")), start=3):
        if child in children:
            domains[child] = DomainSpec(child, DomainId(64_700 + number), (parent,), demand=256)
            nodes[f"{child}a"] = NodeSpec(f"{child}a", child, NodeId(0x0A000001 + (number << 8)))
            links.append(LinkSpec(f"{parent}a", f"{child}a", Role.CHILD))
    return Topology(domains, nodes, tuple(links))


async def test_s12_4_the_loser_keeps_yielding_to_renewals(autojump_clock: Clock) -> None:
    """The clash loser's WITHDRAW is held as long as the winner's PREFIX_IN_USE.  The
    winner renews, and its renewed PREFIX_IN_USE carries a later timestamp than the loser's
    prefix: compared afresh the loser "wins", and took the range back when its WITHDRAW
    timed out, while the winner still held it."""
    contested = IPv4Network("239.195.0.0/22")
    net = SimNetwork(two_tlds(), timers=TIMERS)
    net.partition("Ta", "Ua")
    async with net.running():
        start = net.now()
        await net.claim("Ua", prefix=contested, at=start + MINUTE)  # the winner
        await net.claim("Ta", prefix=contested, at=start + 6 * MINUTE)
        await net.advance(6 * MINUTE + WAIT + MINUTE)
        assert any(v.rule == "overlap" for v in net.check_safety())
        net.heal("Ta", "Ua")
        await net.advance(MINUTE)
        assert net.check_safety() == []
        # Through three of the winner's renewals, and past the end of the loser's own
        # lifetime, the range is never used twice.
        for _ in range(int(3 * HOUR // 30)):
            await net.advance(30)
            assert net.check_safety() == [], net.now()
        assert any(p == contested for p in net.engine("Ua").managed_space())


async def test_s11_7_4_children_restarted_after_their_parents_clash_stay_inside(
    autojump_clock: Clock,
) -> None:
    """Children that were down while their parents clashed re-learn their prefixes after a
    restart (§14) together with their parents' WITHDRAWs (§11.7.4), in whatever order the
    neighbours send them (§11.8.1): what ends up withdrawn at the parent ends up withdrawn
    at the child."""
    net = SimNetwork(two_tlds(children="CD"), timers=TIMERS)
    net.partition("Ta", "Ua")
    async with net.running():
        await net.advance(3 * WAIT)  # both parents and both children allocated
        assert net.engine("Ca").managed_space() and net.engine("Da").managed_space()
        assert net.engine("Ca").managed_space() == net.engine("Da").managed_space()
        net.crash("Ca")
        net.crash("Da")
        net.heal("Ta", "Ua")
        await net.advance(MINUTE)  # one parent withdraws its prefix (§12.4)
        await net.restart("Ca")
        await net.restart("Da")
        await net.advance(MINUTE)
        assert net.check_safety() == []
        await net.advance(3 * WAIT)
        assert net.check_safety() == []


async def test_s14_a_prefix_restored_from_a_child_is_announced_again(autojump_clock: Clock) -> None:
    """T and U both restart.  T re-learns its prefix from its child's copy of its
    PREFIX_MANAGED; U re-learns nothing (its child was never told U's PREFIX_IN_USE), so
    unless T says PREFIX_IN_USE again, U claims T's prefix as free."""
    net = SimNetwork(two_tlds(children="C"), timers=TIMERS, policy=TRUST_ALL)
    async with net.running():
        await net.advance(3 * WAIT)
        held = net.engine("Ta").managed_space()
        assert held and net.engine("Ua").managed_space()
        net.crash("Ta")
        net.crash("Ua")
        await net.restart("Ta")
        await net.restart("Ua")
        await net.advance(MINUTE)
        assert net.engine("Ta").managed_space() == held  # re-learned from C
        await net.advance(2 * WAIT)
        assert net.engine("Ua").managed_space()
        assert net.check_safety() == []
