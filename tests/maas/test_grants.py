"""The grant table: the domain's local space split between its MAASs (RFC 2908 §3, §5).

RFC 2908 §3's Layer 2 must make sure that no two MAASs allocate the same address and that a
MAAS allocates only from ranges the domain holds; the tests below pin each rule the table
keeps for that, then a seeded random walk checks the invariants after every step.
"""

from __future__ import annotations

import ast
import itertools
import random
import sys
from collections.abc import Iterable, Sequence
from ipaddress import ip_network
from pathlib import Path

import pytest

import masc.maas.grants as grants_module
from masc.maas.grants import (
    EXPIRED,
    RELEASED,
    WITHDRAWN,
    Deprecated,
    ExpiringSoon,
    Extended,
    Grant,
    GrantConfig,
    Granted,
    GrantEvent,
    GrantTable,
    Revoked,
    Space,
    UnknownMaas,
)
from masc.protocol.allocation import Strategy
from masc.protocol.space import collapse, covers, overlaps
from masc.protocol.wire.messages import Prefix


def N(text: str) -> Prefix:
    return ip_network(text)


class FirstRng:
    """``randrange`` returns its start: choose_prefix then follows strict RBO order."""

    def random(self) -> float:
        return 0.0

    def randrange(self, start: int, stop: int, /) -> int:
        return start


def make_table(seed: int | None = 1, **config: object) -> GrantTable:
    rng = FirstRng() if seed is None else random.Random(seed)
    return GrantTable(GrantConfig(**config), rng=rng)  # type: ignore[arg-type]


def piece(text: str, expires: float = 1000.0, active: bool = True) -> Space:
    return Space(N(text), expires, active)


def granted(events: Iterable[GrantEvent]) -> list[Grant]:
    return [e.grant for e in events if isinstance(e, Granted)]


def revoked(events: Iterable[GrantEvent], reason: str) -> list[Prefix]:
    return [e.grant.prefix for e in events if isinstance(e, Revoked) and e.reason == reason]


def assert_disjoint(held: Sequence[Grant]) -> None:
    ordered = sorted(held, key=lambda g: (int(g.prefix.network_address), g.prefix.prefixlen))
    for a, b in itertools.pairwise(ordered):
        assert not overlaps(a.prefix, b.prefix), (a, b)


def cover_of(space: Iterable[Space], prefix: Prefix) -> list[Space]:
    return [s for s in space if covers(s.prefix, prefix)]


# --- RFC 2908 §3 / §5: disjoint grants, only from the domain's space -----------------------


def test_rfc2908_s3_two_maas_never_hold_overlapping_grants() -> None:
    """Layer 2 "ensure[s] they do not allocate duplicate addresses": whatever mix of pools,
    requests and usage, no address is granted twice."""
    table = make_table()
    table.sync([piece("239.192.0.0/24")], now=0)
    for name in ("a", "b", "c"):
        table.register(name, ["global"], now=0)
    table.request("a", 40, now=1)
    table.report_usage("b", in_use=50, rate=0.0, by_prefix={}, now=1)
    table.request("c", 16, now=1)
    table.report_usage("c", in_use=30, rate=0.001, by_prefix={}, now=2)
    held = table.grants()
    assert {g.maas for g in held} == {"a", "b", "c"}
    assert_disjoint(held)
    for name in ("a", "b", "c"):
        others = [g for g in held if g.maas != name]
        for mine in table.grants(name):
            assert not any(overlaps(mine.prefix, o.prefix) for o in others)


def test_rfc2908_s5_register_gives_a_pool_of_min_grant_from_the_space() -> None:
    """RFC 2908 §5: a MAAS may "pre-reserve a small pool" so its first client need not wait;
    the grant takes the lifetime of the piece it comes from."""
    table = make_table()
    table.sync([piece("239.192.0.0/24", expires=500.0)], now=0)
    [grant] = granted(table.register("a", ["global"], now=3))
    assert grant.maas == "a" and grant.prefix.num_addresses == 16
    assert covers(N("239.192.0.0/24"), grant.prefix)
    assert (grant.expires, grant.active, grant.granted_at) == (500.0, True, 3)
    # Re-registering (a MAAS restart) changes nothing but the scopes.
    assert table.register("a", ["global", "local"], now=4) == []
    assert table.grants("a") == [grant]
    assert table.maas() == {"a": ("global", "local")}


def test_rfc2908_s5_pool_waits_for_space_and_is_counted_in_demand() -> None:
    """Before the domain holds any space the pool cannot be granted; the domain is told to
    claim for it (demand().requested), and the sync that brings space grants it."""
    table = make_table()
    assert table.register("a", ["global"], now=0) == []
    assert table.demand().requested == 16
    assert table.outstanding("a") == 0  # not an explicit request
    [grant] = granted(table.sync([piece("239.192.0.0/24")], now=1))
    assert grant.maas == "a"
    assert table.demand().requested == 0


def test_every_grant_lies_inside_one_usable_piece_never_straddling_two() -> None:
    """Two adjacent /25 pieces (different lifetimes) hold 256 free addresses, but no /24
    piece is the domain's (the allocator keeps adjacent space prefixes apart), so a request
    for 256 waits, while 128 fits one piece and takes that piece's lifetime."""
    table = make_table()
    pool = Grant("a", N("239.192.1.0/28"), 300.0, True, 0)
    table.restore([pool], [("a", ("global",))])
    halves = [piece("239.192.0.0/25", expires=100.0), piece("239.192.0.128/25", expires=200.0)]
    space = [*halves, piece("239.192.1.0/28", expires=300.0)]
    assert table.sync(space, now=0) == []
    free = [h.prefix for h in halves]
    assert grants_module.choose_prefix(free, [], 256, FirstRng()) is None
    assert grants_module.choose_prefix([N("239.192.0.0/24")], [], 256, FirstRng()) == N(
        "239.192.0.0/24"
    )
    assert table.request("a", 256, now=0) == []
    assert table.outstanding("a") == 256
    [grant] = granted(table.request("a", 128, now=0))
    [home] = cover_of(space, grant.prefix)
    assert home in halves and grant.expires == home.expires
    assert table.outstanding("a") == 256 and table.demand().requested == 256


def test_nested_pieces_s17_1_5_renewed_half_keeps_its_grants_active() -> None:
    """§17.1.5: the engine stops renewing 239.192.0.0/24 and renews its better-used half
    instead; while both are held, grants in that half follow the half (active, its later
    expiry) and grants in the other half are deprecated."""
    table = make_table(seed=None)
    table.sync([piece("239.192.0.0/24", expires=100.0)], now=0)
    table.register("a", ["global"], now=0)
    table.register("b", ["global"], now=0)
    [a_grant] = table.grants("a")
    [b_grant] = table.grants("b")
    assert covers(N("239.192.0.0/25"), a_grant.prefix)
    assert covers(N("239.192.0.128/25"), b_grant.prefix)
    events = table.sync(
        [piece("239.192.0.0/24", expires=100.0, active=False), piece("239.192.0.0/25", 300.0)],
        now=1,
    )
    assert Extended(Grant("a", a_grant.prefix, 300.0, True, 0)) in events
    assert Deprecated(Grant("b", b_grant.prefix, 100.0, False, 0)) in events
    # b keeps its deprecated grant and gets a new pool in active space (the renewed half).
    [new] = granted(events)
    assert new.maas == "b" and covers(N("239.192.0.0/25"), new.prefix)


# --- RFC 2909 §11.7 / §12.4 withdraws, §5.2 renewals, §17.1.5 deprecation -------------------


def test_s11_7_clash_withdraw_of_part_of_the_space_revokes_only_grants_touching_it() -> None:
    """A clash takes 239.192.0.64/26 away (the engine's space becomes the /24 minus it):
    exactly the grants touching it are revoked ("withdrawn": stop using now), the others
    stay, untouched."""
    table = make_table(seed=7)
    table.sync([piece("239.192.0.0/24")], now=0)
    for name in ("a", "b", "c", "d"):
        table.register(name, ["global"], now=0)
        table.request(name, 32, now=0)
    before = table.grants()
    lost = N("239.192.0.64/26")
    assert any(overlaps(g.prefix, lost) for g in before)
    rest = [Space(p, 1000.0, True) for p in N("239.192.0.0/24").address_exclude(lost)]  # type: ignore[arg-type]
    events = table.sync(rest, now=1)
    touching = [g.prefix for g in before if overlaps(g.prefix, lost)]
    assert sorted(revoked(events, WITHDRAWN)) == sorted(touching)
    kept = [g for g in before if not overlaps(g.prefix, lost)]
    assert [g for g in table.grants() if g in before] == kept
    assert all(cover_of(rest, g.prefix) for g in table.grants())


def test_grant_spanning_a_split_piece_is_revoked() -> None:
    """A /25 grant inside a /24 piece that the engine now holds as a /25 and a /26 minus
    part: the grant is no longer wholly inside one piece, so it goes."""
    table = make_table(min_grant=128, seed=None)
    table.sync([piece("239.192.0.0/24")], now=0)
    [grant] = granted(table.register("a", ["global"], now=0))
    assert grant.prefix == N("239.192.0.0/25")
    events = table.sync([piece("239.192.0.0/26"), piece("239.192.0.128/25")], now=1)
    assert revoked(events, WITHDRAWN) == [grant.prefix]


def test_s5_2_renewed_piece_extends_its_grants_once() -> None:
    """A renewal (§5.2) moves the piece's expiry: each grant in it is pushed as Extended with
    the new expiry; the same space again changes nothing."""
    table = make_table()
    table.sync([piece("239.192.0.0/24", expires=100.0)], now=0)
    table.register("a", ["global"], now=0)
    table.request("a", 64, now=0)
    events = table.sync([piece("239.192.0.0/24", expires=400.0)], now=50)
    assert [type(e) for e in events] == [Extended, Extended]
    assert all(e.grant.expires == 400.0 for e in events)
    assert table.sync([piece("239.192.0.0/24", expires=400.0)], now=60) == []
    assert all(g.expires == 400.0 for g in table.grants())


def test_s17_1_5_inactive_piece_deprecates_grants_and_never_feeds_new_ones() -> None:
    """§17.1.4/§17.1.5: a piece the engine stops renewing drains: its grants are pushed as
    Deprecated (still the MAAS's until they expire) and no new grant comes from it, even
    when it is the only free space; requests wait for active space."""
    table = make_table()
    active, old = piece("239.192.0.0/26"), piece("239.192.1.0/24")
    table.sync([active, old], now=0)
    table.register("a", ["global"], now=0)
    table.request("a", 100, now=0)  # 128: only the /24 can hold it
    [in_old] = [g for g in table.grants("a") if g.prefix.num_addresses == 128]
    assert covers(old.prefix, in_old.prefix)
    old_off = Space(old.prefix, old.expires, False)
    events = table.sync([active, old_off], now=1)
    assert Deprecated(Grant("a", in_old.prefix, old.expires, False, 0)) in events
    assert table.request("a", 128, now=2) == []  # free only in the deprecated piece
    table.register("b", ["global"], now=2)
    table.request("b", 32, now=2)
    for grant in table.grants():
        if grant.active:
            assert covers(active.prefix, grant.prefix)
    assert all(covers(active.prefix, g.prefix) for g in table.grants("b"))
    # The engine renews it again: the grant is active again, pushed as Extended.
    events = table.sync([active, Space(old.prefix, 2000.0, True)], now=3)
    assert Extended(Grant("a", in_old.prefix, 2000.0, True, 0)) in events


def test_rfc2908_s5_expired_grant_is_revoked_at_handle_timer() -> None:
    """A range "is not revoked before the lifetime has expired", and not used after: at the
    expiry handle_timer revokes it ("expired"); next_deadline says when."""
    table = make_table(expiry_warning=0.0)
    table.sync([piece("239.192.0.0/24", expires=100.0)], now=0)
    [grant] = granted(table.register("a", ["global"], now=0))
    table.sync([piece("239.192.0.0/24", expires=100.0, active=False)], now=1)
    assert table.next_deadline() == 100.0
    assert table.handle_timer(now=99.0) == []
    events = table.handle_timer(now=100.0)
    assert revoked(events, EXPIRED) == [grant.prefix]
    assert table.grants() == [] and table.next_deadline() is None


def test_rfc2908_s5_expired_grant_is_revoked_at_sync() -> None:
    table = make_table()
    table.sync([piece("239.192.0.0/24", expires=100.0)], now=0)
    [grant] = granted(table.register("a", ["global"], now=0))
    events = table.sync([piece("239.192.0.0/24", expires=100.0, active=False)], now=150.0)
    assert revoked(events, EXPIRED) == [grant.prefix]
    assert granted(events) == []  # no active space left to re-home the pool


def test_expiring_soon_once_per_grant_per_expiry_value() -> None:
    """A deprecated grant is announced ExpiringSoon expiry_warning before its end, once;
    a new expiry value earns a new warning; active grants are never warned about (the
    engine renews them)."""
    table = make_table(expiry_warning=30.0)
    table.sync([piece("239.192.0.0/24", expires=100.0)], now=0)
    [grant] = granted(table.register("a", ["global"], now=0))
    assert table.next_deadline() == 100.0  # active: only its expiry
    table.sync([piece("239.192.0.0/24", expires=100.0, active=False)], now=10)
    assert table.next_deadline() == 70.0
    assert table.handle_timer(now=69.0) == []
    events = table.handle_timer(now=70.0)
    assert events == [ExpiringSoon(Grant("a", grant.prefix, 100.0, False, 0))]
    assert table.next_deadline() == 100.0
    assert table.handle_timer(now=80.0) == []
    # A new expiry value (still not renewed as a whole, e.g. a longer final lifetime).
    events = table.sync([piece("239.192.0.0/24", expires=200.0, active=False)], now=85)
    assert [type(e) for e in events] == [Extended]
    assert table.next_deadline() == 170.0
    assert [type(e) for e in table.handle_timer(now=171.0)] == [ExpiringSoon]
    assert table.handle_timer(now=180.0) == []


def test_deprecated_piece_past_warning_warns_at_the_same_sync() -> None:
    table = make_table(expiry_warning=86400.0)
    table.sync([piece("239.192.0.0/24", expires=1000.0)], now=0)
    table.register("a", ["global"], now=0)
    events = table.sync([piece("239.192.0.0/24", expires=1000.0, active=False)], now=1)
    assert [type(e) for e in events] == [Deprecated, ExpiringSoon]


# --- explicit requests -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("min_grant", "size", "block"),
    [(16, 1, 16), (16, 16, 16), (16, 17, 32), (16, 100, 128), (16, 128, 128), (64, 1, 64)],
)
def test_request_size_is_rounded_to_a_power_of_two_at_least_min_grant(
    min_grant: int, size: int, block: int
) -> None:
    """§17.1.1 contiguous masks: a grant is a prefix, so a power of two; never below the
    configured min_grant."""
    table = make_table(min_grant=min_grant)
    assert table.register("a", ["global"], now=0) == []  # no space yet: pool waits
    assert table.request("a", size, now=0) == []
    assert table.outstanding("a") == block
    events = table.sync([piece("239.192.0.0/22")], now=1)
    assert block in [g.prefix.num_addresses for g in granted(events)]
    assert table.outstanding("a") == 0


def test_outstanding_request_counts_in_demand_and_is_granted_by_the_sync_bringing_space() -> None:
    """A request the space cannot hold stays outstanding, makes the domain claim for it
    (demand().requested), survives syncs that bring too little, and is granted by the first
    sync that brings enough."""
    table = make_table()
    table.sync([piece("239.192.0.0/27")], now=0)
    table.register("a", ["global"], now=0)
    table.register("b", ["global"], now=0)  # the /27 is now full
    assert table.request("a", 64, now=1) == []
    assert table.outstanding("a") == 64
    assert table.demand().requested == 64
    assert table.sync([piece("239.192.0.0/27", expires=2000.0)], now=2) == [
        Extended(g) for g in [replace_expiry(g, 2000.0) for g in table.grants()]
    ]
    assert table.outstanding("a") == 64
    events = table.sync([piece("239.192.0.0/27", 2000.0), piece("239.192.1.0/24")], now=3)
    [grant] = granted(events)
    assert grant.maas == "a" and grant.prefix.num_addresses == 64
    assert covers(N("239.192.1.0/24"), grant.prefix)
    assert table.outstanding("a") == 0 and table.demand().requested == 0


def replace_expiry(grant: Grant, expires: float) -> Grant:
    return Grant(grant.maas, grant.prefix, expires, grant.active, grant.granted_at)


def test_requests_are_served_in_arrival_order() -> None:
    table = make_table()
    table.sync([], now=0)
    table.register("a", ["global"], now=0)
    table.register("b", ["global"], now=0)
    table.request("b", 64, now=0)
    table.request("a", 64, now=0)
    events = table.sync([piece("239.192.0.0/25")], now=1)
    # 128 addresses: b's request first, then a's; those serve as their pools too.
    assert [(g.maas, g.prefix.num_addresses) for g in granted(events)] == [("b", 64), ("a", 64)]
    assert table.demand().requested == 0


# --- RFC 2909 §17.1.2-§17.1.4 applied to a MAAS ----------------------------------------------


def test_s17_1_2_usage_above_the_high_mark_grants_ahead_of_demand() -> None:
    """§17.1.2/§17.1.3: a MAAS whose predicted use exceeds high x its active space gets a
    block at once, sized to bring it back inside the band."""
    table = make_table()
    table.sync([piece("239.192.0.0/24")], now=0)
    table.register("a", ["global"], now=0)  # 16 addresses
    assert table.report_usage("a", in_use=14, rate=0.0, by_prefix={}, now=1) == []  # 87.5%
    [grant] = granted(table.report_usage("a", in_use=15, rate=0.0, by_prefix={}, now=2))
    total = sum(g.prefix.num_addresses for g in table.grants("a"))
    assert 0.9 * total >= 15
    assert grant.prefix.num_addresses == 16  # plan_growth's 4, raised to min_grant


def test_s17_1_2_growth_rate_is_predicted_over_the_horizon() -> None:
    """in_use 5 now but 0.01/s over the one-hour horizon predicts 41: granted before use."""
    table = make_table(horizon=3600.0)
    table.sync([piece("239.192.0.0/24")], now=0)
    table.register("a", ["global"], now=0)
    table.report_usage("a", in_use=5, rate=0.01, by_prefix={}, now=1)
    total = sum(g.prefix.num_addresses for g in table.grants("a"))
    assert 41 <= 0.9 * total <= 41 / 0.7


def test_s17_1_4_growth_block_is_the_buddy_of_the_maas_grant_so_they_aggregate() -> None:
    """§17.1.4: "a second 'neighbor' prefix is chosen" so the two can aggregate: a MAAS on
    239.192.0.0/26 that needs 64 more gets 239.192.0.64/26, and together they are one /25."""
    table = make_table(seed=None, min_grant=64)
    table.sync([piece("239.192.0.0/24")], now=0)
    assert [g.prefix for g in granted(table.register("a", ["global"], now=0))] == [
        N("239.192.0.0/26")
    ]
    table.register("b", ["global"], now=0)
    [grant] = granted(table.report_usage("a", in_use=60, rate=0.0, by_prefix={}, now=1))
    assert grant.prefix == N("239.192.0.64/26")
    assert collapse(g.prefix for g in table.grants("a")) == [N("239.192.0.0/25")]


def test_s17_1_4_rfc_example_224_0_16_then_256_more_is_224_1_0_24() -> None:
    """The Appendix A example itself, as a MAAS's grant and an explicit request."""
    table = make_table(seed=None)
    table.restore([Grant("a", N("224.0.0.0/16"), 1000.0, True, 0)], [("a", ("global",))])
    table.sync([piece("224.0.0.0/12")], now=0)
    [grant] = granted(table.request("a", 256, now=1))
    assert grant.prefix == N("224.1.0.0/24")


def test_usage_that_does_not_fit_in_one_block_is_served_in_smaller_ones() -> None:
    """The planned block (128) does not fit the fragmented space, but 64 + 32 do: the MAAS is
    served now from what the domain holds rather than after the domain's next claim."""
    table = make_table(seed=None)
    table.sync([piece("239.192.0.0/24")], now=0)
    table.register("a", ["global"], now=0)  # 239.192.0.0/28
    table.register("b", ["global"], now=0)  # 239.192.0.128/28
    events = table.report_usage("a", in_use=100, rate=0.0, by_prefix={}, now=1)
    assert len(granted(events)) >= 2
    total = sum(g.prefix.num_addresses for g in table.grants("a"))
    assert 0.9 * total >= 100
    assert table.demand().requested == 0
    assert_disjoint(table.grants())


def test_usage_the_space_cannot_hold_is_owed_in_demand() -> None:
    table = make_table()
    table.sync([piece("239.192.0.0/27")], now=0)
    table.register("a", ["global"], now=0)
    table.register("b", ["global"], now=0)
    assert granted(table.report_usage("a", in_use=100, rate=0.0, by_prefix={}, now=1)) == []
    assert table.demand().requested > 0
    assert table.outstanding("a") == 0
    events = table.sync([piece("239.192.0.0/27"), piece("239.192.1.0/24")], now=2)
    assert granted(events) and table.demand().requested == 0


# --- demand for the engine's planner -------------------------------------------------------


def test_s17_1_2_demand_sums_maas_usage_and_reports_usage_per_grant() -> None:
    """The engine plans the domain's claims from the MAASs' sum (§17.1.2) and shrinks by
    per-block use (§17.1.5): by_prefix gives every grant's use, reported, or else the MAAS's
    in_use spread over its active grants by size (largest remainder: the sum is exact)."""
    table = make_table(seed=None)
    table.sync([piece("239.192.0.0/24")], now=0)
    table.register("a", ["global"], now=0)
    table.register("b", ["global"], now=0)
    table.request("b", 32, now=0)
    [a16] = table.grants("a")
    b16, b32 = sorted(table.grants("b"), key=lambda g: g.prefix.num_addresses)
    table.report_usage("a", in_use=9, rate=0.001, by_prefix={a16.prefix: 9}, now=1)
    table.report_usage("b", in_use=31, rate=-0.25, by_prefix={}, now=1)
    table.request("a", 512, now=1)  # cannot fit in a /24: outstanding
    demand = table.demand()
    assert (demand.in_use, demand.requested) == (40, 512)
    assert demand.rate == pytest.approx(-0.249)
    assert dict(demand.by_prefix) == {a16.prefix: 9, b16.prefix: 10, b32.prefix: 21}


def test_demand_by_prefix_counts_reports_inside_a_grant() -> None:
    """A MAAS may report finer blocks: they count inside the grant holding them."""
    table = make_table(seed=None, min_grant=64)
    table.sync([piece("239.192.0.0/24")], now=0)
    [grant] = granted(table.register("a", ["global"], now=0))
    lower, upper = grant.prefix.subnets(prefixlen_diff=1)
    table.report_usage("a", in_use=12, rate=0.0, by_prefix={lower: 5, upper: 7}, now=1)
    assert dict(table.demand().by_prefix) == {grant.prefix: 12}


# --- restart, unregister, forget -----------------------------------------------------------


def test_s13_restore_brings_back_grants_without_events_and_sync_reconciles() -> None:
    """After a daemon restart the stored grants come back silently; the first sync then
    revokes what the domain no longer holds and extends what was renewed meanwhile."""
    stored = [
        Grant("a", N("239.192.0.0/26"), 100.0, True, 5.0),
        Grant("a", N("239.192.1.0/28"), 100.0, True, 5.0),
        Grant("b", N("239.192.0.64/26"), 100.0, True, 6.0),
    ]
    table = make_table()
    table.restore(stored, [("a", ("global",)), ("b", ("global", "local"))])
    assert table.grants() == sorted(stored, key=lambda g: int(g.prefix.network_address))
    assert table.maas() == {"a": ("global",), "b": ("global", "local")}
    events = table.sync([piece("239.192.0.0/25", expires=300.0)], now=10)
    assert revoked(events, WITHDRAWN) == [N("239.192.1.0/28")]
    assert {e.grant.prefix for e in events if isinstance(e, Extended)} == {
        N("239.192.0.0/26"),
        N("239.192.0.64/26"),
    }
    assert granted(events) == []  # both still hold active space
    assert table.sync([piece("239.192.0.0/25", expires=300.0)], now=11) == []


def test_restore_refuses_overlapping_grants() -> None:
    table = make_table()
    with pytest.raises(ValueError, match="overlap"):
        table.restore(
            [
                Grant("a", N("239.192.0.0/24"), 100.0, True, 0),
                Grant("b", N("239.192.0.16/28"), 100.0, True, 0),
            ],
            [],
        )


def test_restore_names_the_maas_of_a_grant_even_without_its_record() -> None:
    table = make_table()
    table.restore([Grant("a", N("239.192.0.0/28"), 100.0, True, 0)], [])
    assert table.maas() == {"a": ()}
    assert [g.prefix for g in table.grants("a")] == [N("239.192.0.0/28")]


def test_rfc2908_s3_unregister_keeps_grants_and_forget_releases_them() -> None:
    """A MAAS "must ... ensure that uniqueness is preserved across MAAS failures and
    reboots": its grants outlive its connection.  Only forget() returns them ("released"),
    and the freed space serves others at the next sync."""
    table = make_table()
    table.sync([piece("239.192.0.0/27")], now=0)
    table.register("a", ["global"], now=0)
    table.register("b", ["global"], now=0)
    a_grants = table.grants("a")
    assert table.unregister("a") is None
    assert table.grants("a") == a_grants and "a" in table.maas()
    assert table.request("b", 16, now=1) == []  # the /27 is full
    events = table.forget("a")
    assert events == [Revoked(g, RELEASED) for g in a_grants]
    assert "a" not in table.maas() and table.grants("a") == []
    assert table.forget("a") == []
    [grant] = granted(table.sync([piece("239.192.0.0/27")], now=2))
    assert (grant.maas, grant.prefix) == ("b", a_grants[0].prefix)


def test_unknown_maas_cannot_report_or_request() -> None:
    table = make_table()
    with pytest.raises(UnknownMaas):
        table.request("ghost", 16, now=0)
    with pytest.raises(UnknownMaas):
        table.report_usage("ghost", in_use=1, rate=0.0, by_prefix={}, now=0)
    assert table.outstanding("ghost") == 0 and table.grants("ghost") == []


@pytest.mark.parametrize(
    "config",
    [
        {"min_grant": 24},
        {"min_grant": 0},
        {"target_utilization": (0.9, 0.7)},
        {"target_utilization": (0.0, 0.9)},
        {"horizon": -1.0},
    ],
)
def test_config_is_checked(config: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        GrantConfig(**config)  # type: ignore[arg-type]


def test_bad_inputs_are_refused() -> None:
    table = make_table()
    with pytest.raises(ValueError):
        table.register("", ["global"], now=0)
    table.register("a", ["global"], now=0)
    with pytest.raises(ValueError):
        table.request("a", 0, now=0)
    with pytest.raises(ValueError):
        table.report_usage("a", in_use=-1, rate=0.0, by_prefix={}, now=0)
    with pytest.raises(ValueError):
        table.report_usage("a", in_use=1, rate=float("nan"), by_prefix={}, now=0)


# --- cost and the sans-IO line --------------------------------------------------------------


def test_sync_cost_hundreds_of_grants_unchanged_space_places_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """sync runs after every engine batch: with the space unchanged it must not re-plan, and
    in a full domain a pass must not try a placement per starving MAAS."""
    calls = 0
    real = grants_module.choose_prefix

    def counting(*args: object, **kwargs: object) -> Prefix | None:
        nonlocal calls
        calls += 1
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(grants_module, "choose_prefix", counting)
    table = make_table()
    table.sync([piece("239.192.0.0/22")], now=0)  # 1024 addresses
    for i in range(64):
        table.register(f"m{i}", ["global"], now=0)  # 64 pools of 16: full
    assert len(table.grants()) == 64 and calls == 64
    for i in range(64):
        table.report_usage(f"m{i}", in_use=15, rate=0.0, by_prefix={}, now=1)
    assert calls == 64  # full: rejected without a placement attempt
    assert table.demand().requested == 64 * 16
    for _ in range(100):
        assert table.sync([piece("239.192.0.0/22")], now=2) == []
    events = table.sync([piece("239.192.0.0/22", expires=2000.0)], now=3)
    assert len(events) == 64 and calls == 64
    # Now enough space arrives: every MAAS is served in one sync.
    events = table.sync([piece("239.192.0.0/22", 2000.0), piece("239.192.8.0/22")], now=4)
    assert len(granted(events)) == 64 and table.demand().requested == 0
    assert_disjoint(table.grants())


def test_grants_module_is_sans_io() -> None:
    """STYLE.md: the grant table is pure -- stdlib and masc.protocol only, no clock, no
    randomness of its own, no I/O."""
    path = Path(grants_module.__file__).with_name("grants.py")  # also when it runs compiled
    allowed = set(sys.stdlib_module_names) - {"time", "random", "os", "socket", "sqlite3"}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                assert alias.name.split(".")[0] in allowed, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            root = node.module.split(".")[0]
            assert root in allowed | {"masc", "__future__"}, node.module
            if root == "masc":
                assert node.module.startswith("masc.protocol"), node.module


# --- a seeded random walk --------------------------------------------------------------------

PARENT = N("239.192.0.0/20")
NAMES = [f"maas-{i}" for i in range(6)]


class Model:
    """What a MAAS-side observer knows from the events alone; it must match the table."""

    def __init__(self) -> None:
        self.grants: dict[Prefix, Grant] = {}
        self.warned: set[tuple[Prefix, float]] = set()

    def apply(self, events: Sequence[GrantEvent], usable: Sequence[Space] | None) -> None:
        for event in events:
            grant = event.grant
            if isinstance(event, Granted):
                assert not any(overlaps(grant.prefix, p) for p in self.grants), event
                assert grant.active
                if usable is not None:  # carved from active, unexpired space
                    assert any(s.active and covers(s.prefix, grant.prefix) for s in usable), event
                self.grants[grant.prefix] = grant
            elif isinstance(event, Revoked):
                assert self.grants.pop(grant.prefix) == grant, event
            elif isinstance(event, Extended | Deprecated):
                assert grant.prefix in self.grants, event
                self.grants[grant.prefix] = grant
            else:
                assert isinstance(event, ExpiringSoon)
                assert self.grants[grant.prefix] == grant and not grant.active
                key = (grant.prefix, grant.expires)
                assert key not in self.warned, event
                self.warned.add(key)


def withdraw(space: dict[Prefix, Space], cut: Prefix) -> None:
    """The engine loses ``cut`` (a clash): pieces inside it go, a piece around it shrinks."""
    for prefix, held in list(space.items()):
        if covers(cut, prefix):
            del space[prefix]
        elif covers(prefix, cut):
            del space[prefix]
            for rest in prefix.address_exclude(cut):  # type: ignore[arg-type]
                space[rest] = Space(rest, held.expires, held.active)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_random_walk_keeps_the_invariants(seed: int) -> None:
    print(f"seed={seed}")
    rng = random.Random(seed)
    table = GrantTable(
        GrantConfig(expiry_warning=40.0, horizon=100.0), rng=random.Random(seed + 1000)
    )
    model = Model()
    space: dict[Prefix, Space] = {}
    synced: list[Space] | None = None  # the engine space at the last sync
    usage: dict[str, int] = {}
    now = 0.0
    ops = ["register", "unregister", "forget", "usage", "request", "sync", "timer", "space"]
    weights = [6, 2, 1, 14, 10, 14, 6, 14]
    for step in range(300):
        op = rng.choices(ops, weights)[0]
        known = list(table.maas())
        events: list[GrantEvent] = []
        usable = None if synced is None else [s for s in synced if s.active and s.expires > now]
        if op == "register":
            name = rng.choice(NAMES)
            events = table.register(name, ["global"], now=now)
        elif op == "unregister" and known:
            table.unregister(rng.choice(known))
        elif op == "forget" and known:
            name = rng.choice(known)
            events = table.forget(name)
            assert all(isinstance(e, Revoked) and e.reason == RELEASED for e in events)
            usage.pop(name, None)
        elif op == "usage" and known:
            name = rng.choice(known)
            in_use = rng.randrange(0, 400)
            mine = table.grants(name)
            by_prefix = (
                {g.prefix: rng.randrange(0, g.prefix.num_addresses + 1) for g in mine}
                if mine and rng.random() < 0.5
                else {}
            )
            rate = rng.uniform(-0.5, 1.0)
            events = table.report_usage(
                name, in_use=in_use, rate=rate, by_prefix=by_prefix, now=now
            )
            usage[name] = in_use
        elif op == "request" and known:
            events = table.request(rng.choice(known), rng.randrange(1, 300), now=now)
        elif op == "timer":
            now += rng.uniform(0, 30)
            deadline = table.next_deadline()
            events = table.handle_timer(now=now)
            if deadline is not None and deadline <= now:
                assert all(g.expires > now for g in table.grants())
            usable = None if synced is None else [s for s in synced if s.active and s.expires > now]
        elif op == "space":
            change = rng.randrange(6)
            if change == 0 or not space:  # claim a new piece (may nest in a held one)
                length = rng.randrange(22, 27)
                prefix = next(PARENT.subnets(new_prefix=length))
                offset = rng.randrange(0, 1 << (length - PARENT.prefixlen))
                prefix = ip_network(
                    (int(prefix.network_address) + offset * prefix.num_addresses, length)
                )
                space[prefix] = Space(prefix, now + rng.uniform(20, 200), True)
            else:
                prefix = rng.choice(sorted(space, key=lambda p: int(p.network_address)))
                held = space[prefix]
                if change == 1:  # renewal
                    space[prefix] = Space(prefix, held.expires + rng.uniform(1, 100), held.active)
                elif change == 2:  # stop or resume renewing
                    space[prefix] = Space(prefix, held.expires, not held.active)
                elif change == 3:  # partial (or whole) clash withdraw
                    extra = rng.randrange(0, min(5, 33 - prefix.prefixlen))
                    cut = next(prefix.subnets(prefixlen_diff=extra)) if extra else prefix
                    shift = rng.randrange(0, 1 << extra) * cut.num_addresses
                    withdraw(space, ip_network((int(cut.network_address) + shift, cut.prefixlen)))
                elif change == 4:  # the engine drops what expired
                    for p in [p for p, s in space.items() if s.expires <= now]:
                        del space[p]
                else:
                    del space[prefix]
        if op in ("sync", "space"):
            now += rng.uniform(0, 5)
            pieces = list(space.values())
            rng.shuffle(pieces)
            events = table.sync(pieces, now=now)
            synced = pieces
            usable = [s for s in synced if s.active and s.expires > now]
            for gone in revoked(events, WITHDRAWN):  # "only those" that left the space
                assert not cover_of(synced, gone), (step, gone)
        model.apply(events, usable)

        # Invariants after every step.
        held = table.grants()
        assert {g.prefix: g for g in held} == model.grants, step
        assert_disjoint(held)
        for name in table.maas():
            assert table.outstanding(name) >= 0
            assert all(g.maas == name for g in table.grants(name))
        demand = table.demand()
        assert demand.requested >= sum(table.outstanding(n) for n in table.maas())
        assert demand.in_use == sum(usage.get(n, 0) for n in table.maas())
        assert set(demand.by_prefix) == {g.prefix for g in held}
        if op in ("sync", "space") and synced is not None:
            for grant in held:
                home = cover_of(synced, grant.prefix)
                assert home, (step, grant)
                assert grant.expires == max(s.expires for s in home) > now, (step, grant)
                assert grant.active == any(s.active for s in home), (step, grant)
    assert model.grants  # the walk did grant something


def test_a_reload_that_lengthens_the_horizon_sizes_the_next_grant_anew() -> None:
    """The table remembers each MAAS's growth between serve passes; a reconfigure (the
    daemon's reload) changes what it is computed from, so the next sync grants by the new
    horizon instead of the remembered size."""
    table = make_table()
    space = [piece("239.192.0.0/16", expires=1e9)]
    table.sync(space, now=0)
    table.register("m", ["global"], now=0)
    table.report_usage("m", in_use=10, rate=0.01, by_prefix={}, now=0)
    before = sum(g.prefix.num_addresses for g in table.grants("m"))
    table.sync(space, now=1)
    assert sum(g.prefix.num_addresses for g in table.grants("m")) == before  # nothing new
    table.reconfigure(GrantConfig(horizon=100 * 3600.0), strategy=Strategy.RBO)
    table.sync(space, now=2)
    after = sum(g.prefix.num_addresses for g in table.grants("m"))
    assert after >= 0.01 * 100 * 3600  # ~3,600 addresses predicted over 100 hours
