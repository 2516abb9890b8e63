"""The claim-collide scenarios, run on the real engines and session FSMs in virtual time:
collisions (§5.1 c, §5.1.1), a clash after a partition (§12.4), and a prefix's life:
renewal, expiry, expansion and release (§4.2, §5.2-§5.4)."""

from __future__ import annotations

from ipaddress import IPv4Network

import trio.testing

from masc.protocol.constants import ClaimType, Role
from masc.protocol.engine import ClaimEngine, Policy
from masc.protocol.events import (
    ClaimCancelled,
    ClaimSent,
    ClashDetected,
    GribRemove,
    PrefixAllocated,
    PrefixGone,
    RangeWithdrawn,
    SpaceKind,
)
from masc.protocol.space import covers, overlaps
from masc.protocol.wire.messages import Claim, DomainId, NodeId, Prefix
from masc.sim.network import DAY, HOUR, MINUTE, SHORT_TIMERS, SimEvent, SimNetwork, SimTimers
from masc.sim.topology import DomainSpec, LinkSpec, NodeSpec, Topology, figure1

Clock = trio.testing.MockClock
WAIT = SHORT_TIMERS.waiting_period
# Far from what the top-level domains pick for themselves (the lowest free block first).
CONTESTED = IPv4Network("239.195.0.0/24")


def own_claims(net: SimNetwork, node: str, prefix: Prefix) -> list[Claim]:
    return [
        e.event.claim
        for e in net.events_of(node, ClaimSent)
        if isinstance(e.event, ClaimSent) and e.event.claim.prefix == prefix
    ]


def cancelled(net: SimNetwork, node: str, prefix: Prefix) -> list[ClaimCancelled]:
    return [
        e.event
        for e in net.events_of(node, ClaimCancelled)
        if isinstance(e.event, ClaimCancelled) and e.event.prefix == prefix
    ]


def allocated(net: SimNetwork, node: str, prefix: Prefix) -> list[SimEvent]:
    return [
        e
        for e in net.events_of(node, PrefixAllocated)
        if isinstance(e.event, PrefixAllocated) and e.event.prefix == prefix
    ]


def holds(engine: ClaimEngine, prefix: Prefix) -> bool:
    return any(covers(p, prefix) for p in engine.managed_space())


# --- §5.1 c), §5.1.1: two siblings claim the same prefix --------------------------------------


async def test_s5_1_1_same_timestamp_smaller_origin_node_id_wins(autojump_clock: Clock) -> None:
    net = SimNetwork(figure1(), timers=SHORT_TIMERS)
    t1a, t2a = net.topology.nodes["T1a"].node_id, net.topology.nodes["T2a"].node_id
    assert t1a < t2a  # 127.0.0.11 < 127.0.0.12
    async with net.running():
        await net.advance(MINUTE)
        at = float(int(net.now()) + MINUTE)
        await net.claim("T2a", prefix=CONTESTED, at=at)
        await net.claim("T1a", prefix=CONTESTED, at=at)
        await net.advance(2 * MINUTE)
        # Both claims went out at the same second, crossing on the wire.
        (mine,) = own_claims(net, "T1a", CONTESTED)
        (theirs,) = own_claims(net, "T2a", CONTESTED)
        assert mine.type is theirs.type is ClaimType.NEW_CLAIM
        assert mine.timestamp == theirs.timestamp == int(at)
        # T2a's claim loses: its Claim-Timer is cancelled; T1a's runs on.
        (lost,) = cancelled(net, "T2a", CONTESTED)
        assert lost.winner is not None and lost.winner.origin_node == t1a
        assert cancelled(net, "T1a", CONTESTED) == []
        await net.advance(WAIT)
        assert allocated(net, "T1a", CONTESTED) and not allocated(net, "T2a", CONTESTED)
        assert holds(net.engine("T1a"), CONTESTED)
        assert not holds(net.engine("T2a"), CONTESTED)
        assert net.check_safety() == []


async def test_s5_1_1_earlier_timestamp_wins_over_smaller_node_id(autojump_clock: Clock) -> None:
    """T2a claims first while the two cannot hear each other; when they can, T1a's later
    claim loses although T1a has the smaller node id."""
    net = SimNetwork(figure1(), timers=SHORT_TIMERS)
    async with net.running():
        await net.advance(MINUTE)
        net.partition("T1a", "T2a")
        start = float(int(net.now()) + MINUTE)
        await net.claim("T2a", prefix=CONTESTED, at=start)
        await net.claim("T1a", prefix=CONTESTED, at=start + 30)
        await net.advance(2 * MINUTE)
        (mine,) = own_claims(net, "T1a", CONTESTED)
        (theirs,) = own_claims(net, "T2a", CONTESTED)
        assert theirs.timestamp < mine.timestamp
        net.heal("T1a", "T2a")  # well within the waiting period
        await net.advance(SHORT_TIMERS.connect_retry + MINUTE)
        (lost,) = cancelled(net, "T1a", CONTESTED)
        assert lost.winner is not None and lost.winner.timestamp == theirs.timestamp
        assert cancelled(net, "T2a", CONTESTED) == []
        await net.advance(WAIT)
        assert holds(net.engine("T2a"), CONTESTED)
        assert not holds(net.engine("T1a"), CONTESTED)
        assert net.check_safety() == []


# --- §12.4: a partition between the top-level domains ---------------------------------------


async def test_s12_4_partitioned_tlds_clash_and_the_loser_withdraws(autojump_clock: Clock) -> None:
    """With the RFC's timers: T1 and T2 cannot hear each other for three days, both claim
    the lowest free block of the pool and allocate it, with their children below.  When the
    partition heals, the PREFIX_IN_USE with the earlier timestamp wins; the loser withdraws
    the range (WITHDRAW, G-RIB) and its whole subtree moves elsewhere."""
    net = SimNetwork(
        figure1(), timers=SimTimers(hold_time=3 * 3_600), policy=Policy(min_child_prefix_size=16)
    )
    net.partition("T1a", "T2a")  # from the start
    async with net.running():
        await net.advance(3 * DAY)
        t1, t2 = net.engine("T1a"), net.engine("T2a")
        (p1,), (p2,) = t1.managed_space(), t2.managed_space()
        assert p1 == p2 == IPv4Network("239.192.0.0/20")  # both took the lowest block
        assert {v.rule for v in net.check_safety()} >= {"overlap"}
        claims = {n: own_claims(net, n, p1)[0] for n in ("T1a", "T2a")}
        winner, loser = sorted(claims, key=lambda n: (claims[n].timestamp, claims[n].origin_node))
        healed_at = net.now()
        net.heal("T1a", "T2a")
        await net.advance(MINUTE)

        def since(node: str, kind: type[object]) -> list[object]:
            return [e.event for e in net.events_of(node, kind) if e.time >= healed_at]

        # The loser detected the clash, withdrew the range and took it out of the G-RIB.
        (clash,) = since(loser, ClashDetected)
        assert isinstance(clash, ClashDetected) and clash.local == p1
        assert clash.winner.origin_domain == net.topology.domain_of(winner).domain_id
        assert RangeWithdrawn(p1, restored=False) in since(loser, RangeWithdrawn)
        assert GribRemove(p1) in since(loser, GribRemove)
        assert p1 not in net.grib(loser)
        assert net.engine(loser).managed_space() == []
        # §12.4: its WITHDRAW has Role INTERNAL, its own origin, and the winner's timestamp,
        # lifetime, holdtime, address and mask; the winner received it.
        loser_id = net.topology.domain_of(loser).domain_id
        withdraws = [
            e.claim
            for e in net.engine(winner).cache
            if e.claim.type is ClaimType.WITHDRAW and e.claim.origin_domain == loser_id
        ]
        assert withdraws
        w = withdraws[0]
        assert (w.timestamp, w.lifetime, w.holdtime, w.prefix) == (
            clash.winner.timestamp,
            clash.winner.lifetime,
            clash.winner.holdtime,
            clash.winner.prefix,
        )
        assert w.origin_node == net.topology.nodes[loser].node_id
        # The winner keeps it.
        assert p1 in net.grib(winner)
        assert since(winner, ClashDetected) == []
        # The loser claims other space; its subtree follows; all is safe again.
        await net.advance(10 * DAY)
        assert net.check_safety() == []
        (fresh,) = net.engine(loser).managed_space()
        assert not overlaps(fresh, p1)
        for node in net.topology.nodes:
            assert net.engine(node).managed_space(), node


# --- §4.2, §5.2-§5.4: the life of a prefix ------------------------------------------------------


def parent_and_child() -> Topology:
    """A top-level domain T (one node) and its child C (two nodes, one with the session to
    T)."""
    return Topology(
        {
            "T": DomainSpec("T", DomainId(64_601), demand=1024),
            "C": DomainSpec("C", DomainId(64_602), ("T",), demand=256),
        },
        {
            "Ta": NodeSpec("Ta", "T", NodeId(0x0A000101)),
            "Ca": NodeSpec("Ca", "C", NodeId(0x0A000201)),
            "Cb": NodeSpec("Cb", "C", NodeId(0x0A000202)),
        },
        (
            LinkSpec("Ta", "Ca", Role.CHILD),
            LinkSpec("Ca", "Cb", Role.INTERNAL),
        ),
    )


LIFE = SimTimers(
    waiting_period=600.0,
    initiate_claim_delay=60.0,
    claim_lifetime=2 * HOUR,
    clock_skew_grace=60.0,
    hold_time=90,
    connect_retry=10.0,
)


async def settled(net: SimNetwork) -> Prefix:
    """Run until C holds its prefix; return it."""
    await net.advance(4 * WAIT)
    (prefix,) = net.engine("Ca").managed_space()
    assert net.engine("Cb").managed_space() == [prefix]
    assert prefix.num_addresses == 256
    return prefix


async def test_s5_2_renewal_keeps_the_prefix_past_its_first_lifetime(autojump_clock: Clock) -> None:
    net = SimNetwork(parent_and_child(), timers=LIFE)
    async with net.running():
        prefix = await settled(net)
        (first,) = allocated(net, "Ca", prefix)
        assert isinstance(first.event, PrefixAllocated)
        first_expiry = first.event.expires
        await net.advance(first_expiry - net.now() + 3 * HOUR)
        assert net.engine("Ca").managed_space() == [prefix]
        renewals = [
            e.event
            for e in allocated(net, "Ca", prefix)
            if isinstance(e.event, PrefixAllocated) and e.event.purpose == "renew"
        ]
        assert renewals and renewals[0].expires > first_expiry
        renewed = [c for c in own_claims(net, "Ca", prefix) if c.type is ClaimType.CLAIM_TO_EXPAND]
        assert renewed  # §5.2: CLAIM_TO_EXPAND with the same address and mask
        assert [e for e in net.events_of("Ca", PrefixGone)] == []
        assert net.engine("Cb").managed_space() == [prefix]
        assert net.check_safety() == []


async def test_s4_2_a_prefix_expires_when_it_cannot_be_renewed(autojump_clock: Clock) -> None:
    net = SimNetwork(parent_and_child(), timers=LIFE)
    async with net.running():
        prefix = await settled(net)
        net.partition("Ta", "Ca")  # no parent session: no renewal (§5.1)
        alloc = net.engine("Ca").allocations
        expiry = max(a.expires for a in alloc.values() if a.prefix == prefix)
        await net.advance(expiry - net.now() + 1)
        for node in ("Ca", "Cb"):
            assert net.engine(node).managed_space() == [], node
            assert net.grib(node) == set(), node
            gone = [e.event for e in net.events_of(node, PrefixGone)]
            assert PrefixGone(prefix, SpaceKind.DOMAIN, "expired") in gone
        assert net.check_safety() == []
        # With the parent back, the child claims again (§4.2: "choose and claim another").
        net.heal("Ta", "Ca")
        await net.advance(4 * WAIT)
        assert net.engine("Ca").managed_space()
        assert net.check_safety() == []


async def test_s5_3_expansion_doubles_the_prefix(autojump_clock: Clock) -> None:
    net = SimNetwork(parent_and_child(), timers=LIFE)
    async with net.running():
        prefix = await settled(net)
        await net.expand("Ca", prefix)
        await net.advance(WAIT + 2 * MINUTE)
        larger = prefix.supernet()
        assert net.engine("Ca").managed_space() == [larger]
        assert net.engine("Cb").managed_space() == [larger]
        assert larger in net.grib("Ca") and prefix not in net.grib("Ca")
        (claim,) = own_claims(net, "Ca", larger)
        assert claim.type is ClaimType.CLAIM_TO_EXPAND
        assert PrefixGone(prefix, SpaceKind.DOMAIN, "replaced") in [
            e.event for e in net.events_of("Ca", PrefixGone)
        ]
        # The parent knows the child's larger prefix as in use.
        parent_view = [
            e.claim
            for e in net.engine("Ta").cache
            if e.claim.type is ClaimType.PREFIX_IN_USE and e.claim.prefix == larger
        ]
        assert parent_view
        assert net.check_safety() == []


async def test_s5_4_release_withdraws_the_prefix(autojump_clock: Clock) -> None:
    net = SimNetwork(parent_and_child(), timers=LIFE)
    async with net.running():
        prefix = await settled(net)
        (held,) = [a for a in net.engine("Ca").allocations.values() if a.prefix == prefix]
        await net.release("Ca", prefix)
        await net.settle()
        assert prefix not in net.grib("Ca")
        assert all(not overlaps(p, prefix) for p in net.engine("Ca").managed_space())
        assert all(not overlaps(p, prefix) for p in net.engine("Cb").managed_space())
        assert [e.event for e in net.events_of("Ca", PrefixGone)][-1] == PrefixGone(
            prefix, SpaceKind.DOMAIN, "released"
        )
        # §5.4: the WITHDRAW reached the parent; it carries the prefix's own timestamp.
        withdraws = [
            e.claim
            for e in net.engine("Ta").cache
            if e.claim.type is ClaimType.WITHDRAW and e.claim.prefix == prefix
        ]
        assert [(w.timestamp, w.origin_domain) for w in withdraws] == [
            (held.timestamp, net.topology.domains["C"].domain_id)
        ]
        assert net.check_safety() == []
        # The domain still wants space, and claims again.
        await net.advance(4 * WAIT)
        assert net.engine("Ca").managed_space()
        assert net.check_safety() == []
