"""The claim engine driven by demand: the RFC 2909 Appendix A allocator wired in (§17.1).

``x`` is a leaf domain under parent ``p`` (space 239.192.0.0/16), as in test_engine.py.
Its MAASs' demand comes in through ``set_demand``; these tests check what the engine claims,
renews, halves and lets expire because of it, and what survives a restart (§13).
"""

from __future__ import annotations

from ipaddress import ip_network
from typing import Any

from masc.protocol.allocation import AllocatorConfig, Demand
from masc.protocol.constants import ClaimType
from masc.protocol.engine import LocalPiece
from masc.protocol.events import (
    ClaimSent,
    PrefixAllocated,
    PrefixDeprecated,
    PrefixGone,
    SpaceKind,
)
from tests.protocol.engine_helpers import DAY, WAIT, of_type
from tests.protocol.test_engine import allocated, world

DOMAIN = SpaceKind.DOMAIN


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


def test_s17_1_4_above_max_prefixes_one_larger_prefix_replaces_the_old_ones() -> None:
    net = world(allocator=AllocatorConfig(max_prefixes=1))
    ours = allocated(net)
    # Take the buddy so the /24 cannot double: the engine must consolidate elsewhere.
    buddy = next(ours.supernet().address_exclude(ours))
    net["x"].claim(0, prefix=buddy, now=net.now, at=net.now)
    net.run_for(WAIT + 700)
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
