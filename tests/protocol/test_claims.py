"""The claim cache and the claim comparison function (RFC 2909 §5.1.1, §11.1, §12.3)."""

from __future__ import annotations

from bisect import insort
from dataclasses import replace
from ipaddress import IPv6Network, ip_network
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from masc.protocol.claims import (
    _BY_VALUE,
    _KNOWN,
    _RELABELLED,
    COMPARABLE,
    CacheEntry,
    ClaimCache,
    _insort,
    identity,
    is_hint,
    precedence,
    relabelled,
    shared,
    wins,
)
from masc.protocol.constants import ClaimType, Role
from masc.protocol.wire.messages import Claim, DomainId, NodeId, OptionalParameter
from tests.protocol.engine_helpers import T0, claim, net4

GRACE = 3_600.0


# An origin domain no other test uses: the claims shared in this process (and kept alive
# by engines of earlier tests, or by ``relabelled``'s last few) must not include these.
_UNHEARD = DomainId(0x5EED_0A11)


@pytest.fixture(autouse=True)
def _no_relabelled_claims_kept() -> None:
    """``relabelled`` keeps its last claims alive: start each test without them."""
    _RELABELLED.clear()


def _claim(t: ClaimType = ClaimType.NEW_CLAIM, **kw: Any) -> Claim:
    fields: dict[str, Any] = {"domain": 21, "node": 0x15000001, "ts": T0}
    fields.update(kw)
    prefix = fields.pop("prefix", "239.192.0.0/24")
    return claim(t, Role.SIBLING, prefix, **fields)


# --- §5.1.1 ---------------------------------------------------------------------------------

ORDER = [
    ClaimType.PREFIX_IN_USE,
    ClaimType.CLAIM_DENIED,
    ClaimType.CLAIM_TO_EXPAND,
    ClaimType.NEW_CLAIM,
]


@pytest.mark.parametrize("stronger", range(len(ORDER)))
def test_s5_1_1_type_precedence_beats_timestamp_and_node(stronger: int) -> None:
    """PREFIX_IN_USE > CLAIM_DENIED > CLAIM_TO_EXPAND > NEW_CLAIM, whatever the rest."""
    for weaker in ORDER[stronger + 1 :]:
        a = _claim(ORDER[stronger], ts=T0 + 1000, node=0xFFFFFFFF)
        b = _claim(weaker, ts=T0, node=1)
        assert wins(a, b)
        assert not wins(b, a)


def test_s5_1_1_earlier_timestamp_wins() -> None:
    early, late = _claim(ts=T0, node=9), _claim(ts=T0 + 1, node=1)
    assert wins(early, late)
    assert not wins(late, early)


def test_s5_1_1_same_timestamp_smallest_origin_node_wins() -> None:
    small, big = _claim(node=1), _claim(node=2)
    assert wins(small, big)
    assert not wins(big, small)


def test_s5_1_1_a_claim_does_not_beat_itself() -> None:
    c = _claim()
    assert not wins(c, c)


def test_s5_1_1_prefix_managed_and_withdraw_are_not_compared() -> None:
    assert ClaimType.PREFIX_MANAGED not in COMPARABLE
    assert ClaimType.WITHDRAW not in COMPARABLE
    assert set(COMPARABLE) == set(ORDER)


def test_s5_1_1_precedence_is_type_then_timestamp_then_node() -> None:
    c = _claim(ClaimType.CLAIM_TO_EXPAND, ts=T0 + 5, node=7)
    assert precedence(c) == (int(ClaimType.CLAIM_TO_EXPAND), int(T0) + 5, 7)


# --- §11.5 hints ----------------------------------------------------------------------------


def test_s11_5_new_claim_with_address_zero_is_a_hint() -> None:
    assert is_hint(_claim(prefix="0.0.0.0/24"))
    assert is_hint(_claim(prefix=IPv6Network("::/120")))


@pytest.mark.parametrize("t", [t for t in ClaimType if t is not ClaimType.NEW_CLAIM])
def test_s11_5_only_a_new_claim_is_a_hint(t: ClaimType) -> None:
    assert not is_hint(_claim(t, prefix="0.0.0.0/24"))


def test_s11_5_a_claim_for_real_space_is_not_a_hint() -> None:
    assert not is_hint(_claim())


# --- §11.1 duplicates -----------------------------------------------------------------------

BASE = _claim(ClaimType.PREFIX_IN_USE, lifetime=10_000)

# Each field §11.1 lists, changed on its own: the attribute is no longer a duplicate.
CHANGED = {
    "Role": replace(BASE, origin_role=Role.CHILD),
    "D-bit": replace(BASE, deprecated=True),
    "Type": replace(BASE, type=ClaimType.NEW_CLAIM),
    "AddrFam": replace(BASE, prefix=IPv6Network("ff3e::/120")),
    "Claim Timestamp": replace(BASE, timestamp=BASE.timestamp + 1),
    "Claim Lifetime": replace(BASE, lifetime=BASE.lifetime + 1),
    "Claim Holdtime": replace(BASE, holdtime=BASE.holdtime + 1),
    "Origin Domain Identifier": replace(BASE, origin_domain=DomainId(22)),
    "Origin Node Identifier": replace(BASE, origin_node=NodeId(2)),
    "Address": replace(BASE, prefix=net4("239.192.1.0/24")),
    "Mask": replace(BASE, prefix=net4("239.192.0.0/23")),
}


def test_s11_1_identical_update_is_a_duplicate() -> None:
    cache = ClaimCache(GRACE)
    assert cache.add(CacheEntry(BASE, "s", None))
    assert not cache.add(CacheEntry(replace(BASE), "other", None))
    assert len(cache) == 1
    assert BASE in cache


def test_s11_1_optional_parameters_are_not_compared() -> None:
    """§11.1 lists the fields compared; optional parameters are not among them."""
    cache = ClaimCache(GRACE)
    cache.add(CacheEntry(BASE, "s", None))
    other = replace(BASE, parameters=(OptionalParameter(200, b"x"),))
    assert not cache.add(CacheEntry(other, "s", None))


@pytest.mark.parametrize("field", list(CHANGED))
def test_s11_1_a_difference_in_any_listed_field_is_not_a_duplicate(field: str) -> None:
    cache = ClaimCache(GRACE)
    cache.add(CacheEntry(BASE, "s", None))
    assert identity(CHANGED[field]) != identity(BASE)
    assert cache.add(CacheEntry(CHANGED[field], "s", None))
    assert CHANGED[field] in cache
    # A later timestamp of the same subject is a renewal: it replaces the older entry.
    assert len(cache) == (1 if field == "Claim Timestamp" else 2)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("0.0.0.0/24", "::/24"),  # the same number and length in the two families
        ("ff3e::/120", "ff3e::%eth0/120"),  # an IPv6 scope, as ipaddress's == has it
    ],
)
def test_s11_1_prefixes_equal_as_numbers_but_not_as_prefixes_are_not_duplicates(
    a: str, b: str
) -> None:
    """The identity holds the prefix as numbers (claims._identity): still the prefix's own
    equality."""
    first, second = (replace(BASE, prefix=ip_network(p)) for p in (a, b))
    assert identity(first) != identity(second)
    cache = ClaimCache(GRACE)
    assert cache.add(CacheEntry(first, "s", None))
    assert cache.add(CacheEntry(second, "s", None))
    assert len(cache) == 2


# --- renewals replace what they renew (docs/conformance.md choice 103) ----------------------


def test_a_renewal_replaces_the_entry_it_renews() -> None:
    cache = ClaimCache(GRACE)
    cache.add(CacheEntry(BASE, "s", None))
    renewal = replace(BASE, timestamp=BASE.timestamp + 172_800)
    assert cache.add(CacheEntry(renewal, "s", None))
    assert BASE not in cache and renewal in cache
    assert [e.claim for e in cache.of_origin(ClaimType.PREFIX_IN_USE, BASE.origin_domain)] == [
        renewal
    ]


def test_an_older_copy_arriving_after_the_renewal_is_stale() -> None:
    """Not stored, so the engine does not pass it on (ClaimCache.add returns False)."""
    cache = ClaimCache(GRACE)
    renewal = replace(BASE, timestamp=BASE.timestamp + 172_800)
    cache.add(CacheEntry(renewal, "s", None))
    assert not cache.add(CacheEntry(BASE, "other", None))
    assert len(cache) == 1 and renewal in cache


def test_stale_tells_the_engine_before_it_handles_an_older_copy() -> None:
    cache = ClaimCache(GRACE)
    renewal = replace(BASE, timestamp=BASE.timestamp + 172_800)
    assert not cache.stale(BASE)
    cache.add(CacheEntry(renewal, "s", None))
    assert cache.stale(BASE) and not cache.stale(renewal)
    longer = replace(BASE, holdtime=BASE.holdtime + 1_000_000)  # outlives the renewal
    assert not cache.stale(longer)
    assert not cache.stale(replace(BASE, origin_node=NodeId(9)))  # another subject


def test_the_kept_newest_lookup_is_used_only_while_the_cache_is_unchanged() -> None:
    """The cache keeps its last newest-of-subject answer for ``stale`` and then ``add``
    (the engine asks both about each claim); a change of the cache, or another claim,
    looks again."""
    cache = ClaimCache(GRACE)
    renewal = replace(BASE, timestamp=BASE.timestamp + 172_800)
    cache.add(CacheEntry(BASE, "s", None))
    assert not cache.stale(renewal)  # kept: BASE is the newest of the subject
    cache.discard(BASE)  # the cache changed since, without a look
    # Were the kept answer used, add would replace BASE, which is gone (a KeyError).
    assert cache.add(CacheEntry(renewal, "s", None))
    assert len(cache) == 1 and renewal in cache
    # Kept for BASE now: the renewal is newer, so BASE is stale and refused.
    assert cache.stale(BASE) and not cache.add(CacheEntry(BASE, "s", None))
    # Another claim (another subject) is looked up afresh: not stale, stored.
    other = replace(BASE, origin_node=NodeId(9))
    assert cache.add(CacheEntry(other, "s", None))
    assert other in cache and renewal in cache


def test_stale_without_a_cached_subject_is_not_stale() -> None:
    cache = ClaimCache(GRACE)
    assert not cache.stale(BASE) and not cache.stale(BASE)  # the kept answer too


def test_a_newer_claim_that_holds_less_long_does_not_replace_the_older() -> None:
    """The older one still holds its space after the newer one expires: both are kept."""
    cache = ClaimCache(GRACE)
    cache.add(CacheEntry(BASE, "s", None))
    shorter = replace(BASE, timestamp=BASE.timestamp + 10, holdtime=BASE.holdtime - 100)
    assert cache.add(CacheEntry(shorter, "s", None))
    assert len(cache) == 2
    third = replace(BASE, timestamp=BASE.timestamp + 20)
    assert cache.add(CacheEntry(third, "s", None))  # replaces the newest only
    assert BASE in cache and shorter not in cache and third in cache
    for gone in cache.purge(third.timestamp + third.holdtime + GRACE):
        assert gone.claim in (BASE, third)
    assert len(cache) == 0


def test_renewals_of_other_subjects_are_kept_apart() -> None:
    cache = ClaimCache(GRACE)
    cache.add(CacheEntry(BASE, "s", None))
    other_node = replace(BASE, origin_node=NodeId(2), timestamp=BASE.timestamp + 5)
    other_type = replace(BASE, type=ClaimType.CLAIM_TO_EXPAND, timestamp=BASE.timestamp + 5)
    assert cache.add(CacheEntry(other_node, "s", None))
    assert cache.add(CacheEntry(other_type, "s", None))
    assert len(cache) == 3


def test_cache_get_and_discard() -> None:
    cache = ClaimCache(GRACE)
    entry = CacheEntry(BASE, "s", DomainId(10))
    cache.add(entry)
    assert cache.get(replace(BASE)) is entry
    cache.discard(BASE)
    assert cache.get(BASE) is None
    assert len(cache) == 0


# --- §11.1 expiry and the §12.3 grace -------------------------------------------------------

HOLD = 1_000


def _entry(ts: float = T0) -> CacheEntry:
    return CacheEntry(_claim(ClaimType.PREFIX_IN_USE, ts=ts, lifetime=HOLD), "s", None)


def test_s11_1_claim_expires_when_timestamp_plus_holdtime_reaches_now() -> None:
    entry = _entry()
    assert entry.expires == int(T0) + HOLD
    assert entry.live(T0 + HOLD - 1)
    assert not entry.live(T0 + HOLD)  # Timestamp + Claim Holdtime <= CurrentTime


def test_s12_3_expired_entry_still_holds_its_space_during_the_grace() -> None:
    cache = ClaimCache(GRACE)
    cache.add(_entry())
    at = T0 + HOLD + GRACE - 1
    assert list(cache.live(at)) == []
    assert len(list(cache.held(at))) == 1
    assert cache.purge(at) == []
    assert len(cache) == 1


def test_s12_3_entry_is_purged_after_holdtime_plus_grace() -> None:
    cache = ClaimCache(GRACE)
    entry = _entry()
    cache.add(entry)
    assert cache.next_purge() == entry.expires + GRACE
    assert cache.purge(T0 + HOLD + GRACE) == [entry]
    assert len(cache) == 0
    assert list(cache.held(T0 + HOLD + GRACE)) == []
    assert cache.next_purge() is None


def test_s12_3_purge_keeps_younger_entries() -> None:
    cache = ClaimCache(GRACE)
    old, young = _entry(T0), _entry(T0 + 10_000)
    # Another node's claim: the same node's later one would replace it (choice 103).
    young = CacheEntry(replace(young.claim, origin_node=NodeId(9)), "s", None)
    cache.add(old)
    cache.add(young)
    assert cache.next_purge() == old.expires + GRACE
    assert cache.purge(old.expires + GRACE) == [old]
    assert list(cache) == [young]


def test_s11_1_a_purged_claim_is_no_longer_a_duplicate() -> None:
    cache = ClaimCache(0.0)
    cache.add(_entry())
    cache.purge(T0 + HOLD)
    assert cache.add(_entry())


# --- the indexes (performance only: the same answers as a scan) ------------------------------


def test_cache_indexes_follow_adds_and_purges() -> None:
    cache = ClaimCache(GRACE, local=DomainId(21))
    mine = CacheEntry(_claim(ClaimType.PREFIX_IN_USE, lifetime=HOLD), None, None)
    other = CacheEntry(_claim(ClaimType.WITHDRAW, domain=22, ts=T0 + 10, lifetime=HOLD), "s", None)
    child = CacheEntry(
        replace(_claim(domain=23, ts=T0 + 20, lifetime=HOLD), origin_role=Role.CHILD), "c", None
    )
    for entry in (mine, other, child):
        cache.add(entry)
    assert list(cache.of_type(ClaimType.PREFIX_IN_USE)) == [mine]
    assert list(cache.of_origin(ClaimType.WITHDRAW, DomainId(22))) == [other]
    assert list(cache.of_origin(ClaimType.WITHDRAW, DomainId(21))) == []
    assert list(cache.of_role(Role.CHILD)) == [child]
    assert cache.child_expiry == child.expires
    # Watched: our own entry and the WITHDRAW, not the child's NEW_CLAIM.
    assert cache.next_watched(T0) == mine.expires
    assert cache.next_watched(mine.expires) == other.expires
    assert cache.next_watched(child.expires) == mine.expires + GRACE
    assert cache.purge(mine.expires + GRACE) == [mine]
    assert list(cache.of_type(ClaimType.PREFIX_IN_USE)) == []
    assert cache.next_purge() == other.expires + GRACE
    assert cache.purge(child.expires + GRACE) == [other, child]
    assert len(cache) == 0 and cache.next_watched(T0) is None


def test_cache_room_version_moves_only_for_what_may_free_space() -> None:
    cache = ClaimCache(GRACE)
    before = cache.room_version
    cache.add(_entry())
    assert cache.room_version == before  # a claim only takes space
    cache.add(CacheEntry(_claim(ClaimType.WITHDRAW, lifetime=HOLD), "s", None))
    assert cache.room_version == before + 1


def test_on_claim_hears_each_claim_arrival_and_what_it_superseded() -> None:
    cache = ClaimCache(GRACE)
    heard: list[tuple[Claim, Claim | None]] = []
    cache.on_claim = lambda e, old: heard.append((e.claim, old.claim if old else None))
    cache.add(CacheEntry(BASE, "s", None))
    renewal = replace(BASE, timestamp=BASE.timestamp + 172_800)
    cache.add(CacheEntry(renewal, "s", None))
    cache.add(CacheEntry(BASE, "s", None))  # stale: not stored, not heard
    cache.add(CacheEntry(_claim(ClaimType.WITHDRAW, lifetime=HOLD), "s", None))  # not a claim
    assert heard == [(BASE, None), (renewal, BASE)]


def test_cache_reshaped_moves_for_withdraws_and_discards_only() -> None:
    """What a view of the claims holding room kept up to date by on_claim cannot follow:
    a WITHDRAW, which releases claims (§11.7), and a discard.  Not a claim's arrival or a
    purge, nor a PREFIX_MANAGED or a CLAIM_DENIED, which hold no room (though they change
    the space there is, room_version)."""
    cache = ClaimCache(GRACE)
    cache.add(_entry())
    cache.add(CacheEntry(replace(BASE, timestamp=BASE.timestamp + 60), "s", None))
    assert cache.reshaped == 0
    assert cache.purge(T0 + 20 * HOLD + GRACE) and cache.reshaped == 0
    room = cache.room_version
    for kind in (ClaimType.PREFIX_MANAGED, ClaimType.CLAIM_DENIED):
        cache.add(CacheEntry(_claim(kind, lifetime=HOLD), "s", None))
    assert cache.reshaped == 0 and cache.room_version == room + 2
    cache.add(CacheEntry(_claim(ClaimType.WITHDRAW, lifetime=HOLD), "s", None))
    assert cache.reshaped == 1
    cache.discard(_claim(ClaimType.WITHDRAW, lifetime=HOLD))
    assert cache.reshaped == 2


def test_entries_expiring_together_leave_the_expiry_orders_one_by_one() -> None:
    """Entries with the same expiry keep the order they were cached in (the orders are
    keyed by expiry alone); taking one out of the middle, by renewal or discard, leaves
    the others, and purge returns them in that order."""
    cache = ClaimCache(GRACE, local=DomainId(21))  # the claims' domain: all watched
    claims = [_claim(ClaimType.PREFIX_IN_USE, prefix=f"239.192.{i}.0/24") for i in range(5)]
    for c in claims:
        cache.add(CacheEntry(c, "s", None))
    other = _claim(ClaimType.PREFIX_IN_USE, domain=_UNHEARD, prefix="239.193.0.0/24")
    cache.add(CacheEntry(other, "s", None))  # not watched, same expiry
    renewal = replace(claims[2], timestamp=claims[2].timestamp + 10)
    cache.add(CacheEntry(renewal, "s", None))  # supersedes claims[2]
    cache.discard(claims[1])
    assert [e.claim for e in cache._expiry] == [claims[0], claims[3], claims[4], other, renewal]
    assert [e.claim for e in cache._watched] == [claims[0], claims[3], claims[4], renewal]
    expiry = claims[0].timestamp + claims[0].holdtime
    assert cache.next_watched(expiry - 1) == expiry
    assert cache.next_watched(expiry) == expiry + 10
    gone = cache.purge(expiry + GRACE)
    assert [e.claim for e in gone] == [claims[0], claims[3], claims[4], other]
    assert [e.claim for e in cache._expiry] == [e.claim for e in cache._watched] == [renewal]
    assert len(cache) == 1 and renewal in cache


def _next_watched_afresh(cache: ClaimCache, now: float) -> float | None:
    """What ``next_watched`` says, worked out from the entries themselves."""
    order = sorted((e for e in cache if cache._is_watched(e.claim)), key=lambda e: e.expires)
    times = [order[0].expires + cache.grace] if order and order[0].expires <= now else []
    times += [e.expires for e in order if e.expires > now][:1]
    return min(times, default=None)


_STEPS = st.lists(
    st.tuples(
        st.sampled_from(["add", "discard", "purge", "ask", "grace"]),
        st.integers(0, 7),  # which claim
        st.integers(0, 6 * HOLD),  # a time offset
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(_STEPS)
def test_next_watched_remembered_is_what_the_order_says(steps: list[tuple[str, int, int]]) -> None:
    """next_watched keeps its answer until the watched entries change or time reaches the
    first live one's expiry (the engine asks after every input): under any mix of adds,
    renewals, discards, purges, grace changes and times, forwards and back, it answers
    as the order read afresh does."""
    cache = ClaimCache(GRACE, local=DomainId(21))
    kinds = [ClaimType.PREFIX_IN_USE, ClaimType.WITHDRAW, ClaimType.NEW_CLAIM]
    for op, i, offset in steps:
        domain = 21 if i % 2 else 22  # ours are watched, and so are WITHDRAWs
        c = _claim(
            kinds[i % 3], domain=domain, prefix=f"239.192.{i}.0/24", ts=T0 + offset, lifetime=HOLD
        )
        if op == "add":
            cache.add(CacheEntry(c, "s", None))
        elif op == "discard":
            for e in list(cache):
                if e.claim.prefix == c.prefix:
                    cache.discard(e.claim)
        elif op == "purge":
            cache.purge(T0 + offset)
        elif op == "grace":
            cache.grace = float(offset % 7_200)
        now = T0 + offset
        assert cache.next_watched(now) == _next_watched_afresh(cache, now)
        assert cache.next_watched(now) == _next_watched_afresh(cache, now)  # remembered


def test_shared_gives_one_claim_and_one_identity_tuple_per_value() -> None:
    """Every cache in the process keys the same claim by the same tuple (memory)."""
    a = _claim(prefix="239.192.7.0/24", domain=_UNHEARD)
    b = _claim(prefix="239.192.7.0/24", domain=_UNHEARD)
    assert a == b and a is not b
    assert shared(a) is a and shared(b) is a and shared(a) is a
    assert identity(b) == identity(a) and identity(b) is not identity(a)
    first, second = ClaimCache(GRACE), ClaimCache(GRACE)
    first.add(CacheEntry(shared(a), "s", None))
    second.add(CacheEntry(shared(b), "t", None))
    (k1,), (k2,) = first._entries, second._entries
    assert k1 is k2 is identity(a)
    other = replace(a, parameters=(OptionalParameter(9, b"x"),))
    assert shared(other) is other  # a different value: not merged


def test_relabelled_is_the_shared_claim_with_the_role_and_the_same_for_each_child() -> None:
    """A relay's claim reaches many children, each giving it the same updated role (§11.1
    Table 1): one relabelled value, the process's shared one."""
    received = replace(_claim(prefix="239.192.9.0/24"), origin_role=Role.CHILD)  # relayed
    sibling = relabelled(received, Role.SIBLING)
    assert sibling == replace(received, origin_role=Role.SIBLING)
    assert shared(replace(received, origin_role=Role.SIBLING)) is sibling
    assert relabelled(received, Role.SIBLING) is sibling
    assert relabelled(received, Role.INTERNAL).origin_role is Role.INTERNAL
    copy = replace(received)  # an equal claim decoded apart: the same shared value
    assert relabelled(copy, Role.SIBLING) is sibling


def test_shared_forgets_a_claim_no_one_holds() -> None:
    before = (len(_KNOWN), len(_BY_VALUE))
    c = shared(_claim(prefix="239.192.8.0/24", domain=_UNHEARD))
    assert (len(_KNOWN), len(_BY_VALUE)) == (before[0] + 1, before[1] + 1)
    del c
    assert (len(_KNOWN), len(_BY_VALUE)) == before


@settings(max_examples=300)
@given(st.lists(st.integers(0, 20), max_size=40))
def test_the_expiry_order_is_insorts_after_equal_keys(holds: list[int]) -> None:
    """claims._insort (which appends without a search when it can) gives the order of
    ``insort(..., key=)``: entries expiring together in the order they came."""
    order: list[CacheEntry] = []
    expected: list[CacheEntry] = []
    for i, hold in enumerate(holds):
        c = replace(BASE, timestamp=int(T0), holdtime=hold, origin_node=NodeId(i))
        entry = CacheEntry(c, "s", None)
        _insort(order, entry)
        insort(expected, entry, key=lambda e: e.expires)
    assert [id(e) for e in order] == [id(e) for e in expected]
