"""The claim engine driven by demand: the RFC 2909 Appendix A allocator wired in (§17.1).

``x`` is a leaf domain under parent ``p`` (space 239.192.0.0/16), as in test_engine.py.
Its MAASs' demand comes in through ``set_demand``; these tests check what the engine claims,
renews, halves and lets expire because of it, and what survives a restart (§13).  The
last tests make ``x`` (and a TLD of real engines) a parent, whose demand on its managed set
is its children's claims (§17.1.2, §12.2).
"""

from __future__ import annotations

from ipaddress import ip_network
from typing import Any

import pytest

from masc.daemon import state
from masc.protocol.allocation import AllocatorConfig, Demand
from masc.protocol.constants import ClaimType, Role
from masc.protocol.engine import LocalPiece
from masc.protocol.events import (
    ClaimSent,
    PolicyNotice,
    PrefixAllocated,
    PrefixDeprecated,
    PrefixGone,
    SendUpdate,
    SpaceKind,
)
from masc.protocol.wire.messages import DomainId, Prefix
from tests.protocol.engine_helpers import DAY, T0, WAIT, Net, claim, net4, of_type, rejects
from tests.protocol.test_engine import (
    CTE,
    P_DOM,
    P_NODE,
    PARENT_SPACE,
    PIU,
    WD,
    I,
    allocated,
    kid,
    parent_pm,
    sib,
    sub,
    world,
)

DOMAIN = SpaceKind.DOMAIN
LOCAL = SpaceKind.LOCAL


def grown(net: Any, seconds: float) -> list[ClaimSent]:
    net.run_for(seconds)
    return [c for c in net.events("x", ClaimSent) if c.purpose != "renew"]


def test_s17_1_2_no_demand_reported_holds_initial_size() -> None:
    net = world()
    ours = allocated(net)
    assert ours.num_addresses == 256
    net.run_for(3 * DAY)
    assert [c for c in net.events("x", ClaimSent) if c.purpose == "new"] == []


def test_s17_1_2_demand_that_fits_the_band_claims_nothing_more() -> None:
    net = world()
    allocated(net)
    net.call("x", "set_demand", Demand(in_use=200))  # 78 % of 256
    assert grown(net, WAIT + 700) == []


def test_a_leaf_with_nowhere_to_claim_from_plans_again_once_its_parent_has_space() -> None:
    """A leaf's plan that found nothing is remembered until what it read changes
    (ClaimEngine._plan): here nothing to claim from (§5.1), until the parent's
    PREFIX_MANAGED arrives (§11.6.1), which is not time passing nor a change of ours."""
    net = world(pm=False)
    net.call("x", "set_demand", Demand(in_use=200))
    net.run_for(WAIT + 700)
    assert net.events("x", ClaimSent) == []
    net.inject("p", "x", parent_pm(ts=net.now))
    net.run_for(700)
    assert [c.purpose for c in net.events("x", ClaimSent)] == ["new"]


def test_a_leaf_plans_again_when_its_parents_withdraw_of_all_its_space_times_out() -> None:
    """§11.7.4: while the parent's WITHDRAW of its whole space lives, a leaf has nowhere
    to claim from; its plan that found nothing is remembered (ClaimEngine._plan), but
    only until the WITHDRAW expires, which no input announces."""
    net = world(start=False)
    net.inject(
        "p", "x", claim(WD, I, PARENT_SPACE, domain=P_DOM, node=P_NODE, ts=net.now, lifetime=DAY)
    )
    net.call("x", "set_demand", Demand(in_use=200))
    net.start("x")
    net.run_for(DAY / 2)
    assert net.events("x", ClaimSent) == []
    net.run_for(DAY / 2 + 700)
    assert [c.purpose for c in net.events("x", ClaimSent)] == ["new"]


def test_s17_1_2_predicted_demand_above_the_band_claims_ahead() -> None:
    """In use 200 now, growing 1 address per 10 minutes: over one waiting period (+ the
    claim delay) that is 200 + 288 + ... > 90 % of 256, so more is claimed *now*."""
    net = world()
    allocated(net)
    net.call("x", "set_demand", Demand(in_use=200, rate=1 / 600))
    sent = grown(net, 700)
    assert len(sent) == 1 and sent[0].purpose in ("new", "expand")


def test_s17_1_4_more_demand_claims_the_neighbour_prefix() -> None:
    """§17.1.4: 224.0/16 held and 256 more needed -> 224.1.0/24; here a /24 held and 64
    more needed -> the first /26 of the /24's buddy."""
    net = world()
    ours = allocated(net)
    net.call("x", "set_demand", Demand(in_use=240))
    (sent,) = grown(net, 700)
    buddy = next(ours.supernet().address_exclude(ours))  # the other half of the /23
    assert sent.claim.type is ClaimType.NEW_CLAIM
    assert sent.claim.prefix == ip_network((buddy.network_address, 26))
    net.run_for(WAIT + 10)
    assert sent.claim.prefix in net["x"].managed_space() or any(
        p.supernet_of(sent.claim.prefix) for p in net["x"].managed_space()
    )


def test_s17_1_4_demand_that_needs_a_doubling_expands_in_place() -> None:
    net = world()
    ours = allocated(net)
    net.call("x", "set_demand", Demand(in_use=450))  # needs about 256 more
    (sent,) = grown(net, 700)
    assert sent.purpose == "expand" and sent.claim.prefix == ours.supernet()
    net.run_for(WAIT + 10)
    assert net["x"].managed_space() == [ours.supernet()]
    assert [g.reason for g in net.events("x", PrefixGone)] == ["replaced"]


def _holding_both_halves(net: Any) -> Prefix:
    """Run until ``x`` holds its first /24 and, claimed by hand, the buddy /24 too (so the
    first cannot double: at a cap of one prefix the engine must consolidate elsewhere);
    returns the first."""
    ours = allocated(net)
    buddy = next(ours.supernet().address_exclude(ours))
    net["x"].claim(0, prefix=buddy, now=net.now, at=net.now)
    net.run_for(WAIT + 700)
    return ours


def test_s17_1_4_above_max_prefixes_one_larger_prefix_replaces_the_old_ones() -> None:
    net = world(allocator=AllocatorConfig(max_prefixes=1))
    ours = _holding_both_halves(net)
    net.clear()
    held = sorted(net["x"].managed_space())
    assert len(held) == 1 and held[0] == ours.supernet()  # collapsed: both halves ours
    net.call("x", "set_demand", Demand(in_use=1000))
    net.run_for(2 * WAIT)
    deprecated = net.events("x", PrefixDeprecated)
    assert {d.reason for d in deprecated} == {"replaced"}
    active = [a for a in net["x"].allocations.values() if a.renewing]
    assert len(active) == 1 and active[0].prefix.num_addresses >= 1000 / 0.9


def test_s17_1_5_falling_demand_renews_the_better_used_half() -> None:
    net = world(allocator=AllocatorConfig(renew_interval=DAY))
    ours = allocated(net)
    net.call("x", "set_demand", Demand(in_use=450))
    net.run_for(WAIT + 700)
    (big,) = net["x"].managed_space()
    assert big == ours.supernet()
    _low, high = big.subnets()
    net.clear()
    # Demand falls to 100 addresses, all of them in the upper half.
    net.call("x", "set_demand", Demand(in_use=100, by_prefix={high: 100}))
    net.run_for(DAY + 700)
    (shrink,) = [c for c in net.events("x", ClaimSent) if c.purpose == "shrink"]
    assert shrink.claim.prefix == high and shrink.claim.type is ClaimType.CLAIM_TO_EXPAND
    net.run_for(WAIT + 10)
    (dep,) = net.events("x", PrefixDeprecated)
    assert (dep.prefix, dep.reason) == (big, "shrunk")
    pieces = net["x"].local_pieces()
    assert LocalPiece(high, net["x"].allocations[(DOMAIN, high)].expires, True) in pieces
    # The whole stays, deprecated, until it expires: grants across it are not cut short.
    assert LocalPiece(big, dep.expires, False) in pieces
    # The deprecated /23 is never renewed; when it ends only the /24 is left.
    net.run_for(40 * DAY)
    assert not [c for c in net.events("x", ClaimSent) if c.claim.prefix == big]
    assert net["x"].managed_space() == [high]


def test_s17_1_5_shrinking_stops_at_initial_size() -> None:
    net = world(allocator=AllocatorConfig(renew_interval=DAY))
    ours = allocated(net)
    net.call("x", "set_demand", Demand(in_use=0))
    net.run_for(5 * DAY)
    assert not [c for c in net.events("x", ClaimSent) if c.purpose == "shrink"]
    assert not net.events("x", PrefixDeprecated)
    assert net["x"].managed_space() == [ours]


def test_s17_1_6_renewal_every_renew_interval() -> None:
    net = world(allocator=AllocatorConfig(renew_interval=2 * DAY))
    allocated(net)
    (alloc,) = net["x"].allocations.values()
    before = alloc.expires
    net.run_for(2 * DAY + 700)
    renewals = [c for c in net.events("x", ClaimSent) if c.purpose == "renew"]
    assert len(renewals) == 1
    net.run_for(WAIT + 10)
    (done,) = [a for a in net.events("x", PrefixAllocated) if a.purpose == "renew"]
    assert done.expires > before


def test_s13_restore_defends_unexpired_prefixes_and_drops_expired_ones() -> None:
    net = world()
    allocated(net)
    (alloc,) = net["x"].allocations.values()
    fresh = world(start=False)
    expired = type(alloc)(
        prefix=ip_network("239.192.200.0/24"),
        kind=DOMAIN,
        parent=alloc.parent,
        timestamp=int(net.now - 40 * DAY),
        lifetime=int(30 * DAY),
        origin_node=alloc.origin_node,
        allocated_at=net.now - 40 * DAY,
    )
    fresh.now = net.now
    events = fresh["x"].restore([alloc, expired], [], now=net.now)
    (restored,) = of_type(events, PrefixAllocated)
    assert (restored.prefix, restored.purpose) == (alloc.prefix, "restored")
    assert fresh["x"].managed_space() == [alloc.prefix]
    # Its PREFIX_IN_USE is in the cache: every session that comes up hears it (§11.8).
    assert any(
        e.claim.type is ClaimType.PREFIX_IN_USE and e.claim.prefix == alloc.prefix
        for e in fresh["x"].cache
    )


def test_s13_restore_keeps_a_pending_claim_with_its_timestamp_until_its_timer() -> None:
    net = world()
    net.run_for(700)
    (pending,) = net["x"].pending
    fresh = world(start=False)
    fresh.now = net.now
    fresh["x"].restore([], [pending], now=net.now)
    assert [p.claim for p in fresh["x"].pending] == [pending.claim]
    late = world(start=False)
    late.now = pending.deadline + 1
    late["x"].restore([], [pending], now=late.now)
    assert late["x"].pending == []


def test_s13_a_restored_consolidating_claim_still_replaces_what_it_was_claimed_for() -> None:
    """§17.1.4 across a restart: what a pending claim replaces is stored with it (store
    schema version 2), so the restarted daemon stops renewing those prefixes once the
    larger one is allocated, as it would have without the restart."""
    capped = AllocatorConfig(max_prefixes=1)
    net = world(allocator=capped)
    _holding_both_halves(net)
    net.call("x", "set_demand", Demand(in_use=1000))
    net.run_for(700)
    (pending,) = [p for p in net["x"].pending if p.replaces]
    allocations = state.stored_allocations(net["x"])
    claims = state.stored_pending(net["x"])
    fresh = world(start=False, allocator=capped)
    fresh.now = net.now
    engine = fresh["x"]
    engine.restore(
        state.allocations_from(allocations), state.pending_from(claims, engine), now=fresh.now
    )
    assert [p.replaces for p in engine.pending if p.replaces] == [pending.replaces]
    fresh.start("x")
    fresh.run_for(WAIT + 10)
    deprecated = {d.prefix: d.reason for d in fresh.events("x", PrefixDeprecated)}
    assert deprecated == dict.fromkeys(pending.replaces, "replaced")
    assert [a.prefix for a in engine.allocations.values() if a.renewing] == [pending.claim.prefix]


def test_release_of_a_prefix_containing_another_held_one_is_refused() -> None:
    import pytest

    from masc.protocol.engine import RequestRefused

    net = world(allocator=AllocatorConfig(renew_interval=DAY))
    ours = allocated(net)
    net.call("x", "set_demand", Demand(in_use=450))
    net.run_for(WAIT + 700)
    big = ours.supernet()
    _low, high = big.subnets()
    net.call("x", "set_demand", Demand(in_use=100, by_prefix={high: 100}))
    net.run_for(DAY + WAIT + 1400)
    assert (DOMAIN, high) in net["x"].allocations
    with pytest.raises(RequestRefused, match="still held"):
        net["x"].release(big, now=net.now)


def test_s13_restore_restarts_the_renewal_cadence() -> None:
    """renewed_at is not stored: a restored prefix is renewed one renew_interval after the
    restart (or at half its lifetime), never at once for being old."""
    net = world(allocator=AllocatorConfig(renew_interval=2 * DAY))
    allocated(net)
    (alloc,) = net["x"].allocations.values()
    fresh = world(start=False, allocator=AllocatorConfig(renew_interval=2 * DAY))
    later = net.now + 5 * DAY
    fresh.now = later
    alloc.renewed_at = None
    fresh["x"].restore([alloc], [], now=later)
    fresh["x"].set_demand(Demand(), now=later)
    deadline = fresh["x"].next_deadline()
    assert deadline is not None and deadline >= min(later + 2 * DAY, alloc.expires - WAIT - 600)


def test_s12_2_restored_local_space_keeps_the_domain_non_leaf_until_children_return() -> None:
    net = world()
    ours = allocated(net)
    (alloc,) = net["x"].allocations.values()
    local = type(alloc)(
        prefix=next(ours.subnets(new_prefix=28)),
        kind=SpaceKind.LOCAL,
        parent=alloc.parent,
        timestamp=alloc.timestamp,
        lifetime=alloc.lifetime,
        origin_node=alloc.origin_node,
        allocated_at=alloc.allocated_at,
    )
    fresh = world(start=False)
    fresh.now = net.now
    fresh["x"].restore([alloc, local], [], now=net.now)
    assert fresh["x"].non_leaf
    # MAASs get the LOCAL space, not the children's part of the managed space.
    assert [p.prefix for p in fresh["x"].local_pieces()] == [local.prefix]


def test_s13_restore_drops_a_renewal_of_a_prefix_that_expired_meanwhile() -> None:
    net = world(allocator=AllocatorConfig(renew_interval=DAY))
    allocated(net)
    net.run_for(DAY + 700)
    (renewal,) = [p for p in net["x"].pending if p.purpose == "renew"]
    fresh = world(start=False)
    fresh.now = net.now
    fresh["x"].restore([], [renewal], now=net.now)
    assert fresh["x"].pending == []


# --- §17.1.2 a parent's demand is its children's (§12.2: it sees only their claims) -------


def holding(prefix: str, maas: Demand | None) -> tuple[Net, Prefix]:
    """``x`` (children c, c2 of domain 30 and d of domain 31, MAAS demand ``maas``) holding
    ``prefix``, claimed by the operator, and nothing else; no child has claimed yet."""
    net = world()
    net.call("x", "set_demand", maas)
    space = ip_network(prefix)
    net.call("x", "claim", 0, prefix=space, at=net.now + 1)
    net.run_for(WAIT + 10)
    assert net["x"].managed_space() == [space]
    assert not net["x"].non_leaf
    net.clear()
    return net, space


# The MAASs' demand is on the LOCAL space (§12.2): with or without it, the managed set of
# a domain with children is sized by the children's claims and the LOCAL space held.
MAAS = pytest.mark.parametrize("maas", [None, Demand(in_use=0)], ids=["no-maas", "maas"])


@MAAS
def test_s17_1_2_children_demand_counts_a_renewal_and_an_expansion_once(
    maas: Demand | None,
) -> None:
    """A child's renewal (CLAIM_TO_EXPAND of the prefix it holds, §5.2) and its expansion
    (CLAIM_TO_EXPAND of the supernet, §5.3) claim space it already holds: the parent counts
    the child's /23 once, not /24 + /24 + /23."""
    net, space = holding("239.192.4.0/22", maas)
    size = net["x"].config.initial_size
    held, larger = sub(space, 24, 0), sub(space, 23, 0)
    for attribute, prefix in ((PIU, held), (CTE, held), (CTE, larger)):  # renewal, expansion
        # A lifetime x accepts (§11.4.3): a denied claim would not count at all.
        claim = kid(attribute, prefix, ts=net.now, lifetime=DAY)
        assert rejects(net.inject("c", "x", claim)) == []
        net.run_for(60)
    assert not any(e.denied for e in net["x"].cache)
    assert net["x"].non_leaf
    demand = net["x"]._demand_for(DOMAIN)
    assert demand is not None
    # c: its /23; d: a session but no claim, initial_size; x's own LOCAL: initial_size.
    assert demand.in_use == larger.num_addresses + size + size


@MAAS
def test_s17_1_2_a_child_with_a_session_but_no_claim_counts_as_initial_size(
    maas: Demand | None,
) -> None:
    """App. B: every child starts with the initial claim, and one that finds no room in
    its parent sends no claim at all, so the parent cannot wait to see it: a child domain
    with a session counts as ``initial_size`` from the moment the parent has children.
    Here c (two nodes, one domain) holds a /24 and d has claimed nothing."""
    net, space = holding("239.192.4.0/22", maas)
    size = net["x"].config.initial_size
    assert net["x"]._demand_for(DOMAIN) == maas  # a leaf: its MAASs' demand
    theirs = sub(space, 24, 1)
    assert rejects(net.inject("c", "x", kid(PIU, theirs, ts=net.now))) == []
    assert net["x"].non_leaf
    demand = net["x"]._demand_for(DOMAIN)
    assert demand is not None
    # c's /24 (once for its two nodes), d's initial claim to come, x's own LOCAL space.
    assert demand.in_use == theirs.num_addresses + size + size
    net.down("x", "d")  # no session: d is not a child x knows of
    demand = net["x"]._demand_for(DOMAIN)
    assert demand is not None and demand.in_use == theirs.num_addresses + size


def test_s17_1_2_an_expansion_for_local_room_does_not_hold_back_the_childrens_claim() -> None:
    """Regression: c takes x's whole /24, so x schedules a §5.3 expansion to make room for
    its own LOCAL space (§12.2), and must also claim for d's initial claim to come.  The
    expansion under way counts as held; it used to block every other growth claim, so the
    children's claim was dropped when its delay ran out and waited for the expansion to
    finish, one more waiting period."""
    net = world()
    ours = allocated(net)
    assert rejects(net.inject("c", "x", kid(PIU, ours, ts=net.now, lifetime=20 * DAY))) == []
    net.run_for(net["x"].config.initiate_claim_delay + 1)
    sent = [c for c in net.events("x", ClaimSent) if c.kind is DOMAIN]
    assert [c.claim.prefix for c in sent if c.purpose == "expand"] == [ours.supernet()]
    (new,) = [c.claim for c in sent if c.purpose == "new"]
    assert new.type is ClaimType.NEW_CLAIM
    size = net["x"].config.initial_size
    # With the expansion's new half: room for c's /24, d's initial claim and x's own.
    assert ours.num_addresses + ours.num_addresses + new.prefix.num_addresses >= 3 * size


def test_s17_1_2_app_b_tld_claims_ahead_for_all_its_children_at_once() -> None:
    """App. B: a TLD with no MAAS demand of its own and 8 children, each wanting the
    initial claim.  The first child takes the TLD's whole first /24; from then on the TLD
    knows of 8 children and claims room for all of them in one go (§17.1.2), so every
    child holds space one waiting period after the TLD does.  It used to grow one doubling
    per waiting period, as the children's claims trickled in: after three waiting periods
    only two of the eight held anything."""
    net = Net()
    top = net.engine("top", 10, 100, global_pool=(net4("228.0.0.0/6"),))
    kids = [f"c{i}" for i in range(8)]
    for i, name in enumerate(kids):
        net.engine(name, 20 + i, 200 + i, parent_domain_ids=(DomainId(10),), seed=i + 2)
        net.link(name, "top", Role.PARENT)
    for i, a in enumerate(kids):
        for b in kids[i + 1 :]:
            net.link(a, b, Role.SIBLING, parent=10)
    net.start()
    size, delay = top.config.initial_size, top.config.initiate_claim_delay
    step = WAIT + delay  # a claim's random delay, then its waiting period (§5.1)
    # Step 1: the TLD's initial /24.  Step 2: the first child's claim makes it non-leaf
    # (and takes the /24), and the TLD's claim for all eight is held.
    net.run_until(T0 + 2 * step + delay)
    held = sum(p.num_addresses for p in top.managed_space())
    assert held >= len(kids) * size + size  # the children's initial claims and its own
    # Step 3: every child's claim in that room.
    net.run_until(T0 + 3 * step + delay)
    assert [name for name in kids if not net[name].managed_space()] == []


def test_s17_1_2_a_childs_hint_adds_nothing_to_the_parents_demand() -> None:
    """A hint (address 0, §11.5) asks for nothing yet (docs/conformance.md choice 43): a
    child's hint of a /18 must not make its parent claim a /17 upstream."""
    net = world()
    allocated(net)
    hint = kid(ClaimType.NEW_CLAIM, "0.0.0.0/18", ts=net.now)
    assert rejects(net.inject("c", "x", hint)) == []
    assert net["x"].non_leaf
    demand = net["x"]._demand_for(DOMAIN)
    assert demand is not None
    size = net["x"].config.initial_size
    assert demand.in_use == 3 * size  # x's own LOCAL, and c's and d's initial claims


def test_s17_1_2_two_nodes_of_a_parent_make_one_claim_for_their_children() -> None:
    """Both nodes of a TLD see the same children: while one node's claim for them is under
    way the other does not claim the same growth again (§5.1 a)."""
    net = Net()
    for name, node, seed in (("t1", 100, 1), ("t2", 101, 7)):
        net.engine(name, 10, node, global_pool=(net4("228.0.0.0/6"),), seed=seed)
    net.link("t1", "t2", Role.INTERNAL)
    kids = [f"c{i}" for i in range(8)]
    for i, name in enumerate(kids):
        net.engine(name, 20 + i, 200 + i, parent_domain_ids=(DomainId(10),), seed=i + 2)
        net.link(name, "t1", Role.PARENT)
        net.link(name, "t2", Role.PARENT)
    net.start()
    step = WAIT + net["t1"].config.initiate_claim_delay
    net.run_until(T0 + 4 * step)
    new = [
        e
        for n in ("t1", "t2")
        for e in net.events(n, ClaimSent)
        if e.kind is DOMAIN and e.purpose == "new"
    ]
    held = {p for n in ("t1", "t2") for p in net[n].managed_space()}
    assert len(new) == 2  # the initial claim, then one for the children
    assert len(held) <= 2
    assert all(net[name].managed_space() for name in kids)


def test_s11_4_3_a_local_claim_lies_inside_one_domain_prefix_never_across_two() -> None:
    """Regression (random scenario seed 42): x holds two adjacent /23s, two prefixes and
    two PREFIX_MANAGED.  A parent accepts a claim only inside one of its prefixes (§11.4.3)
    and a child only a sibling's claim inside one PREFIX_MANAGED (§11.1), so x's LOCAL claim
    for 1024 addresses may not take the /22 the two make together.  It used to: the child
    then refused x's LOCAL PREFIX_IN_USE, claimed inside it, and both used the range."""
    net = world()
    net.call("x", "set_demand", Demand(in_use=800))
    low, high = ip_network("239.192.4.0/23"), ip_network("239.192.6.0/23")
    theirs = ip_network("239.192.16.0/24")  # the child's, away from the two
    for prefix in (low, high, theirs):
        net.call("x", "claim", 0, prefix=prefix, at=net.now + 1)
    net.run_for(WAIT + 10)
    assert {a.prefix for a in net["x"].allocations.values()} == {low, high, theirs}
    assert rejects(net.inject("c", "x", kid(PIU, theirs, ts=net.now))) == []
    assert net["x"].non_leaf
    net.clear()
    local_claims = 0
    end = net.now + 3 * WAIT
    while net.now < end:
        deadline = net["x"].next_deadline()
        net.run_until(end if deadline is None else min(deadline, end))
        held = [a.prefix for a in net["x"].allocations.values() if a.kind is DOMAIN]
        for sent in net.events("x", ClaimSent):
            if sent.kind is SpaceKind.LOCAL:
                local_claims += 1
                assert any(h.supernet_of(sent.claim.prefix) for h in held), sent.claim
        net.clear()
    assert local_claims > 0
    assert any(a.kind is SpaceKind.LOCAL for a in net["x"].allocations.values())


def test_s5_3_an_expansion_not_of_the_doubled_prefix_checks_all_of_its_range() -> None:
    """What stops ``ours`` doubling lies inside the doubled prefix; a restored or retried
    CLAIM_TO_EXPAND may claim a larger prefix than that (§13 restore keeps its prefix), and
    everything occupied anywhere in it must still stop the claim (review finding)."""
    net = world()
    ours = allocated(net)
    doubled, larger = ours.supernet(), ours.supernet().supernet()
    theirs = next(p for p in larger.subnets(prefixlen_diff=1) if p != doubled)
    assert rejects(net.inject("s", "x", sib(PIU, theirs, ts=net.now))) == []
    engine = net["x"]
    assert theirs not in engine._occupied_around(DOMAIN, ours)
    assert theirs in engine._occupied_around(DOMAIN, ours, within=larger)


def test_choice_102_a_planned_claim_without_room_waits_for_the_room_or_the_demand() -> None:
    """One prefix allowed (max_prefixes = 1): the demand asks for one larger prefix (a
    doubling would hold too little) and the parent's space has no room for it (a sibling
    holds everything but our /25's /24).  The claim fails once and is not tried again
    while neither the room nor the demand changes, though our /25 could double.  When the
    demand falls to one a doubling serves, the /25 is doubled at once (§17.1.4), though
    the larger prefix the old record remembers still would not fit."""
    net = world(initial_size=128, allocator=AllocatorConfig(max_prefixes=1))
    ours = allocated(net)
    assert ours.num_addresses == 128
    for prefix in ip_network(PARENT_SPACE).address_exclude(ours.supernet()):
        net.inject("s", "x", sib(PIU, prefix, ts=net.now))
    net.clear()
    net.call("x", "set_demand", Demand(in_use=1000))  # one prefix of 2,048
    net.run_for(DAY)
    impossible = [n for n in net.events("x", PolicyNotice) if n.event == "claim_impossible"]
    assert len(impossible) == 1  # tried once, not every 10 minutes
    assert net.events("x", ClaimSent) == []
    net.call("x", "set_demand", Demand(in_use=200))  # 256 held would serve it
    net.run_for(700)
    sent = net.events("x", ClaimSent)
    assert [(c.purpose, c.claim.prefix) for c in sent] == [("expand", ours.supernet())]


def test_choice_102_a_failed_operator_claim_does_not_hold_back_a_doubling() -> None:
    """An operator's claim that cannot be placed is not turned into a doubling (the
    operator asked for a new prefix), and it leaves no stuck record while one of ours can
    double: the demand that arrives next doubles it in place at once (§17.1.4), not after
    what is held changes."""
    net = world(initial_size=128, allocator=AllocatorConfig(max_prefixes=1))
    ours = allocated(net)
    for prefix in ip_network(PARENT_SPACE).address_exclude(ours.supernet()):
        net.inject("s", "x", sib(PIU, prefix, ts=net.now))
    net.clear()
    net.call("x", "claim", 1024)  # no free /22 anywhere
    net.run_for(700)
    assert [n.event for n in net.events("x", PolicyNotice)] == ["claim_impossible"]
    assert net.events("x", ClaimSent) == []
    net.call("x", "set_demand", Demand(in_use=200))  # 128 held: double the /25
    net.run_for(700)
    sent = net.events("x", ClaimSent)
    assert [(c.purpose, c.claim.prefix) for c in sent] == [("expand", ours.supernet())]


def test_choice_105_a_consolidating_claim_without_room_falls_back_to_the_replaced_claim() -> None:
    """One prefix allowed (max_prefixes = 1): the demand asks for one prefix of 2,048 to
    replace our /25 (§17.1.4), but the parent's space has no free /21, only a /22.  The
    /22 the cap replaced is claimed instead, and the /25 is kept (not replaced); a second
    prefix is within twice the cap."""
    net = world(initial_size=128, allocator=AllocatorConfig(max_prefixes=1))
    ours = allocated(net)
    assert ours.num_addresses == 128
    space = ip_network(PARENT_SPACE)
    free = next(p for p in space.subnets(new_prefix=22) if not p.overlaps(ours))
    for prefix in space.address_exclude(ours.supernet()):
        for piece in [prefix] if not prefix.overlaps(free) else prefix.address_exclude(free):
            net.inject("s", "x", sib(PIU, piece, ts=net.now))
    net.clear()
    net.call("x", "set_demand", Demand(in_use=1000))  # consolidate into 2,048, or add 1,024
    net.run_for(700)
    (sent,) = net.events("x", ClaimSent)
    assert (sent.purpose, sent.claim.prefix) == ("new", free)
    net.run_for(WAIT + 10)
    assert sorted(net["x"].managed_space()) == sorted([ours, free])
    assert net.events("x", PrefixDeprecated) == []  # the /25 is not replaced
    assert all(a.renewing for a in net["x"].allocations.values())


def _parent_with_local_space() -> tuple[Net, Prefix, Prefix]:
    """x holding the managed /22 239.192.4.0/22 (one prefix of each kind allowed), made a
    parent by its child's /25 at the bottom, run until its own LOCAL /25 is allocated
    (§12.2): the net, the /22 and the LOCAL /25 (239.192.6.0/25)."""
    net = world(initial_size=128, allocator=AllocatorConfig(max_prefixes=1))
    ours = ip_network("239.192.4.0/22")
    net.call("x", "claim", 0, prefix=ours, at=net.now + 1)
    net.run_for(WAIT + 10)
    assert rejects(net.inject("c", "x", kid(PIU, "239.192.4.0/25", ts=net.now))) == []
    end = net.now + WAIT + 1400
    while not any(a.kind is LOCAL for a in net["x"].allocations.values()) and net.now < end:
        deadline = net["x"].next_deadline()
        assert deadline is not None
        net.run_until(min(deadline, end))
    (local,) = [a.prefix for a in net["x"].allocations.values() if a.kind is LOCAL]
    assert local == ip_network("239.192.6.0/25")
    return net, ours, local


def test_choice_92_a_local_claim_under_way_keeps_its_half_of_the_managed_prefix() -> None:
    """Regression: x, a parent holding a /22 with no use reported in it, renews it while its
    own LOCAL claim for the upper half's first /25 waits out its waiting period (§5.1).
    The renewal must keep the whole /22 (choice 92: our own LOCAL space lies in the half
    that would go); it used to count LOCAL space only once allocated, and shrank the /22
    to its lower /23, which would leave the LOCAL /25 outside x's managed space."""
    net, ours, _ = _parent_with_local_space()
    # The /22's renewal fell due (48 hours after it was allocated) while the LOCAL claim
    # was pending, and leaves after its §5.1 a) delay.
    net.run_for(net["x"].config.initiate_claim_delay)
    records = net.records("x", ClaimSent)
    (local_sent,) = [r.time for r in records if r.event.kind is LOCAL]
    renewals = [r for r in records if r.event.kind is DOMAIN and r.time > local_sent]
    assert [(r.event.purpose, r.event.claim.prefix) for r in renewals] == [("renew", ours)]


def test_choice_105_a_parents_local_claim_falls_back_too() -> None:
    """x, a parent, holds a /22 and LOCAL space in it (§12.2); one LOCAL prefix allowed.
    Its child takes all of the /22 but x's LOCAL /25 and one /24, so the LOCAL /25 cannot
    double and no /23 is free: the demand asks for one LOCAL /23, and the /24 the cap
    replaced is claimed instead.  Before, no LOCAL claim was planned while no /23 was free
    (only a §5.3 expansion of the managed space for room)."""
    net, _, local = _parent_with_local_space()
    free = ip_network("239.192.7.0/24")
    for prefix in ("239.192.4.0/23", "239.192.6.128/25"):
        assert rejects(net.inject("c", "x", kid(PIU, prefix, ts=net.now))) == []
    net.clear()
    net.call("x", "set_demand", Demand(in_use=300))  # one LOCAL /23, or add a /24
    net.run_for(700)
    sent = [(c.purpose, c.claim.prefix) for c in net.events("x", ClaimSent) if c.kind is LOCAL]
    assert sent == [("new", free)]
    net.run_for(WAIT + 10)
    held = {a.prefix for a in net["x"].allocations.values() if a.kind is LOCAL and a.renewing}
    assert held == {local, free}


def _updates_to(net: Any, peer: str, claim_type: ClaimType) -> list[tuple[float, list[Prefix]]]:
    """(time, prefixes) of each UPDATE ``x`` sent ``peer`` carrying ``claim_type``."""
    return [
        (r.time, [c.prefix for c in r.event.update.attributes if c.type is claim_type])
        for r in net.records("x", SendUpdate)
        if r.event.peer == peer and any(c.type is claim_type for c in r.event.update.attributes)
    ]


def _apart_from(*prefixes: Prefix) -> Prefix:
    """A /24 of the parent's space that cannot aggregate with any of ``prefixes``
    (§17.1.4)."""
    return next(
        p
        for p in net4(PARENT_SPACE).subnets(new_prefix=24)
        if not any(p.overlaps(q.supernet(4)) for q in prefixes)
    )


def test_choice_104_prefixes_renew_together_in_one_update() -> None:
    """Two prefixes allocated 48 hours apart, renewed every 6 days: the first renewal takes
    the second along (due within half a cycle of 6 days plus the waiting period), so one
    UPDATE carries both CLAIM_TO_EXPANDs to the parent, and one, a waiting period later,
    both PREFIX_IN_USEs."""
    net = world(allocator=AllocatorConfig(renew_interval=6 * DAY))
    first = allocated(net)
    start = net.now
    net.call("x", "claim", 256, prefix=_apart_from(first), at=net.now + 1)
    net.run_for(WAIT + 10)
    assert len(net["x"].managed_space()) == 2
    net.clear()
    net.run_until(start + 6 * DAY + 3600)
    (renewals,) = _updates_to(net, "p", ClaimType.CLAIM_TO_EXPAND)
    assert renewals[0] >= start + 6 * DAY
    assert sorted(renewals[1]) == sorted(net["x"].managed_space())
    net.run_for(WAIT + 700)
    announced = [u for u in _updates_to(net, "p", ClaimType.PREFIX_IN_USE) if u[0] > renewals[0]]
    assert [sorted(p) for _, p in announced] == [sorted(renewals[1])]


def test_choice_104_a_prefix_due_beyond_half_a_cycle_is_merged_at_its_own_renewal() -> None:
    """Allocated 100 hours after the first (past half of the 6-day + 48-hour cycle): the
    first renews alone; at the second's renewal the first, 92 hours from due, goes along,
    and from then on the two renew together."""
    net = world(allocator=AllocatorConfig(renew_interval=6 * DAY))
    first = allocated(net)
    start = net.now
    net.run_for(52 * 3600)
    net.call("x", "claim", 256, prefix=_apart_from(first), at=net.now + 1)
    net.run_for(WAIT + 10)
    net.clear()
    net.run_until(start + 20 * DAY)
    sizes = [len(p) for _, p in _updates_to(net, "p", ClaimType.CLAIM_TO_EXPAND)]
    assert sizes == [1, 2, 2]


def test_choice_104_a_prefix_waiting_to_retry_its_renewal_is_not_taken_along() -> None:
    """As in the first choice-104 test, but the second prefix waits to retry a renewal
    that could not be sent (``renew_retry_at``, which _send_claim sets when no parent can
    take the renewal): the first renews alone, and the second at its own time."""
    net = world(allocator=AllocatorConfig(renew_interval=6 * DAY))
    first = allocated(net)
    start = net.now
    second = _apart_from(first)
    net.call("x", "claim", 256, prefix=second, at=net.now + 1)
    net.run_for(WAIT + 10)
    alloc = net["x"].allocations[(DOMAIN, second)]
    alloc.renew_retry_at = start + 7 * DAY  # past the first's renewal, before its own
    net.clear()
    net.run_until(start + 10 * DAY)
    renewals = _updates_to(net, "p", ClaimType.CLAIM_TO_EXPAND)
    assert [p for _, p in renewals] == [[first], [second]]
    assert renewals[0][0] >= start + 6 * DAY
    assert renewals[1][0] >= start + 8 * DAY  # its own time: 48 h later, past the retry


def test_choice_104_only_whole_renewals_are_taken_along() -> None:
    """Two /24s, 60 hours apart, each half used (300 of 512 in use) and a /26 left over:
    the first renewal halves one /24.  The other would also be halved if judged against
    the same total, leaving 256 for a demand of 300; taken along, it could be, so a
    prefix that would not be renewed whole waits for its own time."""
    net = world(allocator=AllocatorConfig(renew_interval=6 * DAY), initial_size=64)
    first = allocated(net)
    start = net.now
    b = _apart_from(first)
    net.run_for(100 * 3600)
    net.call("x", "claim", 256, prefix=b, at=net.now + 1)
    net.run_for(60 * 3600)
    c = _apart_from(first, b)
    net.call("x", "claim", 256, prefix=c, at=net.now + 1)
    net.run_for(WAIT + 10)
    net.call("x", "set_demand", Demand(in_use=300, by_prefix={b: 150, c: 150}))
    net.clear()
    net.run_until(start + 18 * DAY)
    shrinks = [r.time for r in net.records("x", ClaimSent) if r.event.purpose == "shrink"]
    assert len(shrinks) == 1
    active = [a.prefix for a in net["x"].allocations.values() if a.renewing]
    assert sum(p.num_addresses for p in active) >= 300


def test_choice_104_a_batch_takes_along_only_prefixes_of_its_own_kind() -> None:
    """x holds a managed /22 and, once a child has claimed, LOCAL space inside it (§12.2),
    allocated a waiting period later and so due 48 hours after the /22 (within half the
    6-day + 48-hour cycle).  The LOCAL prefix goes to other sessions than the managed one
    (internal peers and children, not the parent and siblings), so renewing it early
    would save no UPDATE: it renews on its own cycle."""
    net = world(allocator=AllocatorConfig(renew_interval=6 * DAY))
    space = ip_network("239.192.4.0/22")
    net.call("x", "claim", 0, prefix=space, at=net.now + 1)
    net.run_for(WAIT + 10)
    start = net.now
    assert rejects(net.inject("c", "x", kid(PIU, sub(space, 24, 1), ts=net.now))) == []
    net.run_for(WAIT + 700)
    assert any(a.kind is SpaceKind.LOCAL for a in net["x"].allocations.values())
    net.clear()
    net.run_until(start + 9 * DAY)
    renewed = {
        r.event.kind: r.time for r in net.records("x", ClaimSent) if r.event.purpose == "renew"
    }
    assert set(renewed) == {DOMAIN, SpaceKind.LOCAL}
    assert renewed[SpaceKind.LOCAL] > renewed[DOMAIN] + DAY
