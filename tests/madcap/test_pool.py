"""Address x time reservations and the choice of addresses (masc.madcap.pool): RFC 2730
§2.12 (EXTRA-ALLOCATION-TIME on both sides), §3.8 (minimum..desired), §3.11 (two-octet
block sizes)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from masc.madcap.messages import AddressRange
from masc.madcap.pool import (
    Pool,
    blocks_of,
    choose,
    intersect,
    normalise,
    ranges_of,
    size,
    subtract,
)

FAST = settings(max_examples=200, derandomize=True, deadline=None)
HOUR = 3600.0


def test_normalise_sorts_merges_adjacent_and_drops_empty() -> None:
    assert normalise([(10, 12), (1, 3), (4, 5), (20, 19), (11, 15)]) == ((1, 5), (10, 15))


def test_subtract_and_intersect() -> None:
    a = ((0, 9), (20, 29))
    b = ((5, 22),)
    assert subtract(a, b) == ((0, 4), (23, 29))
    assert intersect(a, b) == ((5, 9), (20, 22))
    assert subtract(a, ()) == a
    assert intersect(a, ()) == ()


blocks_strategy = st.lists(
    st.tuples(st.integers(0, 200), st.integers(0, 20)).map(lambda t: (t[0], t[0] + t[1])),
    max_size=8,
).map(normalise)


@FAST
@given(blocks_strategy, blocks_strategy)
def test_set_algebra_agrees_with_python_sets(a: tuple, b: tuple) -> None:  # type: ignore[type-arg]
    def expand(blocks: tuple) -> set[int]:  # type: ignore[type-arg]
        return {i for low, high in blocks for i in range(low, high + 1)}

    assert expand(subtract(a, b)) == expand(a) - expand(b)
    assert expand(intersect(a, b)) == expand(a) & expand(b)
    assert size(a) == len(expand(a))


def test_s3_11_ranges_split_at_the_two_octet_block_size() -> None:
    ranges = ranges_of([(0, 70_000)], ipv6=False)
    assert [r.count for r in ranges] == [65535, 4466]
    assert ranges[1].start == IPv4Address(65535)
    assert blocks_of(ranges) == ((0, 70_000),)


def test_s3_11_ipv6_ranges() -> None:
    base = int(IPv6Address("ff15::"))
    assert ranges_of([(base, base + 1)], ipv6=True) == (AddressRange(IPv6Address("ff15::"), 2),)


def test_s3_8_choose_takes_desired_from_one_block_best_fit() -> None:
    free = ((0, 99), (200, 209), (300, 303))
    # 4 addresses: the smallest block that holds them all.
    assert choose(free, 1, 4) == ((300, 303),)
    assert choose(free, 1, 10) == ((200, 209),)
    assert choose(free, 1, 11) == ((0, 10),)


def test_s3_8_choose_uses_fewest_blocks_when_none_holds_all() -> None:
    free = ((0, 9), (100, 104), (200, 201), (300, 319))
    assert choose(free, 1, 27) == ((0, 6), (300, 319))


def test_s3_8_choose_gives_fewer_than_desired_but_at_least_minimum() -> None:
    free = ((0, 2), (10, 11))
    assert choose(free, 4, 10) == ((0, 2), (10, 11))
    assert choose(free, 6, 10) is None


def test_s3_8_choose_refuses_nonsense_counts() -> None:
    with pytest.raises(ValueError):
        choose(((0, 9),), 3, 2)
    with pytest.raises(ValueError):
        choose(((0, 9),), 0, 0)


def test_s2_12_reservation_is_padded_on_both_sides() -> None:
    pool = Pool(padding=HOUR)
    pool.reserve("a", [(5, 5)], start=10 * HOUR, end=12 * HOUR)
    (held,) = pool.reservations()
    assert (held.start, held.end) == (9 * HOUR, 13 * HOUR)


def test_s2_12_next_lease_of_an_address_starts_two_paddings_after_the_last_ended() -> None:
    pool = Pool(padding=HOUR)
    pool.reserve("a", [(5, 5)], start=0.0, end=2 * HOUR)
    assert pool.free([(5, 5)], start=4 * HOUR - 1, end=5 * HOUR) == ()
    assert pool.free([(5, 5)], start=4 * HOUR, end=5 * HOUR) == ((5, 5),)
    # ... and before it, symmetrically.
    assert pool.free([(5, 5)], start=-5 * HOUR, end=-2 * HOUR + 1) == ()
    assert pool.free([(5, 5)], start=-5 * HOUR, end=-2 * HOUR) == ((5, 5),)


def test_s2_12_padding_is_configurable_down_to_zero() -> None:
    pool = Pool(padding=0.0)
    pool.reserve("a", [(5, 5)], start=0.0, end=10.0)
    assert pool.free([(5, 5)], start=10.0, end=20.0) == ((5, 5),)
    with pytest.raises(ValueError):
        Pool(padding=-1.0)


def test_free_ignores_the_owner_itself() -> None:
    pool = Pool(padding=HOUR)
    pool.reserve("a", [(0, 9)], start=0.0, end=HOUR)
    assert pool.free([(0, 9)], start=0.0, end=HOUR) == ()
    assert pool.free([(0, 9)], start=0.0, end=HOUR, ignore=["a"]) == ((0, 9),)


def test_free_subtracts_only_overlapping_addresses() -> None:
    pool = Pool(padding=0.0)
    pool.reserve("a", [(3, 4)], start=0.0, end=10.0)
    assert pool.free([(0, 9)], start=5.0, end=6.0) == ((0, 2), (5, 9))


def test_latest_end_stops_before_the_next_reservation() -> None:
    pool = Pool(padding=HOUR)
    pool.reserve("next", [(5, 5)], start=10 * HOUR, end=11 * HOUR)
    # The next one is reserved from 9 h; ours must end by 8 h so its padding ends at 9 h.
    assert pool.latest_end([(5, 5)], start=0.0) == 8 * HOUR
    assert pool.latest_end([(6, 6)], start=0.0) == float("inf")
    assert pool.latest_end([(5, 5)], start=8 * HOUR) == 8 * HOUR  # room for nothing more
    assert pool.latest_end([(5, 5)], start=8 * HOUR + 1) is None


def test_latest_end_ignores_what_ended_before_our_padding() -> None:
    pool = Pool(padding=HOUR)
    pool.reserve("old", [(5, 5)], start=0.0, end=HOUR)  # reserved until 2 h
    assert pool.latest_end([(5, 5)], start=3 * HOUR) == float("inf")
    assert pool.latest_end([(5, 5)], start=3 * HOUR - 1) is None


def test_reserve_replaces_and_drop_removes() -> None:
    pool = Pool(padding=1.0)
    pool.reserve("a", [(0, 0)], start=0.0, end=1.0)
    pool.reserve("a", [(1, 1)], start=0.0, end=5.0)
    assert [r.blocks for r in pool.reservations()] == [((1, 1),)]
    assert pool.drop("a") is not None
    assert pool.drop("a") is None
    assert pool.reservations() == []
    with pytest.raises(ValueError):
        pool.reserve("c", [(0, 0)], start=2.0, end=1.0)


# --- the address index agrees with a plain scan ------------------------------------------------

reservation_strategy = st.tuples(
    st.integers(0, 5),  # owner
    blocks_strategy,
    st.integers(0, 50).map(float),  # start
    st.integers(0, 30).map(float),  # length
)


@FAST
@given(
    st.lists(st.one_of(reservation_strategy, st.integers(0, 5)), max_size=25),
    blocks_strategy,
    st.integers(0, 60).map(float),
    st.integers(0, 30).map(float),
    st.integers(0, 5),
)
def test_index_answers_as_a_scan_of_every_reservation(
    steps: list,  # type: ignore[type-arg]
    candidates: tuple,  # type: ignore[type-arg]
    start: float,
    length: float,
    ignored: int,
) -> None:
    """free, latest_end and conflicts (answered from the address index) against the same
    questions asked of every reservation in turn, after random reserves and drops."""
    pool = Pool(padding=3.0)
    for step in steps:
        if isinstance(step, int):
            pool.drop(step)
        else:
            owner, blocks, begin, span = step
            pool.reserve(owner, blocks, start=begin, end=begin + span)
    end = start + length
    low, high = start - 3.0, end + 3.0
    others = [r for r in pool.reservations() if r.owner != ignored]

    def expand(blocks: tuple) -> set[int]:  # type: ignore[type-arg]
        return {i for a, b in blocks for i in range(a, b + 1)}

    meeting = [r for r in others if r.meets(candidates, low, high)]
    busy = set().union(*(expand(r.blocks) for r in others if r.start < high and low < r.end))
    free = pool.free(candidates, start=start, end=end, ignore=[ignored])
    assert expand(free) == expand(candidates) - busy
    assert free == normalise(free)
    got = pool.conflicts(candidates, start=start, end=end, ignore=[ignored])
    assert {id(r) for r in got} == {id(r) for r in meeting}
    if candidates:
        ahead = [r for r in others if r.end > low and intersect(r.blocks, candidates)]
        expected: float | None = float("inf")
        if any(r.start < start + 3.0 for r in ahead):
            expected = None
        elif ahead:
            expected = min(r.start for r in ahead) - 3.0
        assert pool.latest_end(candidates, start=start, ignore=[ignored]) == expected
