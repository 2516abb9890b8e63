"""RFC 2909 Appendix A (§17.1): prefix choice and the demand planner.

The examples are the RFC's own, written the RFC's way where they are bit strings: the
4-bit parent ``xxxx`` is 224.0.0.0/28, so child ``1100`` is 224.0.0.12/32 and ``11xx``
is 224.0.0.12/30.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from ipaddress import IPv4Network, IPv6Network

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from masc.protocol.allocation import (
    AllocatorConfig,
    Demand,
    Grow,
    Held,
    Strategy,
    Trend,
    buddy,
    can_double,
    choose_prefix,
    expandability,
    first_release,
    largest_free,
    plan_growth,
    plan_renewal,
    predicted,
    rbo_key,
    reverse_bit_order,
    usage_within,
)
from masc.protocol.space import choose_free, collapse, covers, host_bits_for, overlaps
from masc.protocol.wire.messages import Prefix

# An rng whose ``randrange`` returns its start: pure Reverse Bit Ordering.
from tests.protocol.test_space import FirstChoice

CONFIG = AllocatorConfig()  # band 0.7-0.9, three prefixes
DAY = 86_400.0
PROPERTY = settings(max_examples=400, derandomize=True, deadline=None)


def n(text: str) -> Prefix:
    return IPv6Network(text) if ":" in text else IPv4Network(text)


def bits(pattern: str) -> Prefix:
    """A sub-prefix of the RFC's 4-bit parent ``xxxx`` = 224.0.0.0/28, e.g. ``"11xx"``."""
    fixed = pattern.rstrip("x")
    offset = int(fixed, 2) << (4 - len(fixed)) if fixed else 0
    return IPv4Network((0xE000_0000 + offset, 28 + len(fixed)))


XXXX = bits("")


# --- §17.1.1 Reverse Bit Ordering --------------------------------------------------------------

RFC_ORDER = ["0000", "1000", "0100", "1100", "0010", "1010", "0110", "1110"]
RFC_ORDER += ["0001", "1001", "0101", "1101", "0011", "1011", "0111", "1111"]


def test_s17_1_1_reverse_bit_order_of_4_bit_example() -> None:
    """Parent xxxx: children A 0000, B 1000, C 0100, D 1100, then on through all sixteen."""
    assert list(reverse_bit_order(XXXX, 32)) == [bits(b) for b in RFC_ORDER]


def test_s17_1_1_reverse_bit_order_of_wider_children() -> None:
    assert list(reverse_bit_order(XXXX, 30)) == [bits(b) for b in ("00xx", "10xx", "01xx", "11xx")]
    assert list(reverse_bit_order(XXXX, 28)) == [XXXX]
    with pytest.raises(ValueError):
        list(reverse_bit_order(XXXX, 27))
    with pytest.raises(ValueError):
        list(reverse_bit_order(XXXX, 33))


def test_s17_1_1_rbo_key_is_the_rank_in_reverse_bit_order() -> None:
    for length in (30, 31, 32):
        for rank, block in enumerate(reverse_bit_order(XXXX, length)):
            assert rbo_key(block, XXXX) == rank
    parent = n("ff3e::/112")
    for rank, block in enumerate(reverse_bit_order(parent, 120)):
        assert rbo_key(block, parent) == rank
    with pytest.raises(ValueError):
        rbo_key(n("224.0.1.0/32"), XXXX)


def test_s17_1_1_four_successive_choices_follow_the_4_bit_example() -> None:
    """With an rng that takes the first candidate, choose_prefix is the RFC's strict order:
    A 0000, B 1000, C 0100, D 1100 (and on: the next child is always the rank that
    reverse_bit_order gives)."""
    rng = FirstChoice()
    taken: list[Prefix] = []
    for expected in RFC_ORDER:
        got = choose_prefix([XXXX], taken, 1, rng)
        assert got == bits(expected)
        taken.append(got)
    assert choose_prefix([XXXX], taken, 1, rng) is None


def test_s17_1_1_buddy_is_the_other_half_of_the_supernet() -> None:
    assert buddy(bits("0000")) == bits("0001")
    assert buddy(bits("11xx")) == bits("10xx")
    assert buddy(n("224.0.0.0/16")) == n("224.1.0.0/16")
    assert buddy(n("ff3e:0:8000::/33")) == n("ff3e::/33")
    with pytest.raises(ValueError):
        buddy(n("0.0.0.0/0"))


def test_s17_1_1_doubling_example() -> None:
    """A 0000 -> 000x -> 00xx and D 1100 -> 110x -> 11xx, each doubling from the right
    while the buddy is free; A stops at 00xx because C holds 0100."""
    a, b, c, d = (bits(x) for x in ("0000", "1000", "0100", "1100"))
    taken = [a, b, c, d]
    assert can_double(a, [XXXX], taken)
    assert a.supernet() == bits("000x")
    assert can_double(bits("000x"), [XXXX], [bits("000x"), b, c, d])
    assert bits("000x").supernet() == bits("00xx")
    assert not can_double(bits("00xx"), [XXXX], [bits("00xx"), b, c, d])
    assert expandability(a, [XXXX], taken) == 2
    assert can_double(d, [XXXX], taken)
    assert d.supernet() == bits("110x")
    assert can_double(bits("110x"), [XXXX], [a, b, c, bits("110x")])
    assert bits("110x").supernet() == bits("11xx")
    assert expandability(d, [XXXX], taken) == 2
    assert expandability(bits("11xx"), [XXXX], [a, b, c, bits("11xx")]) == 0


def test_s17_1_1_can_double_needs_the_supernet_inside_the_space() -> None:
    """Doubling 0xxx would take 1xxx, outside a space of 0xxx alone, and outside any one
    prefix of a space of 0xxx and 1xxx (two PREFIX_MANAGED: §11.4.3 wants the claim inside
    one); inside XXXX it can.  A parent /28 cannot double at all inside itself."""
    assert not can_double(bits("0xxx"), [bits("0xxx")], [])
    assert not can_double(XXXX, [XXXX], [])
    assert not can_double(bits("0xxx"), [bits("0xxx"), bits("1xxx")], [])
    assert can_double(bits("0xxx"), [XXXX], [])
    assert can_double(bits("0xxx"), [XXXX, bits("0xxx")], [])  # nested space prefixes merge
    assert expandability(bits("0000"), [bits("0xxx")], []) == 3


def test_s17_1_1_can_double_ignores_the_prefix_itself_and_what_is_inside_it() -> None:
    """The caller may pass every occupied prefix, the doubling one and its own children
    included; only what lies outside it can block it."""
    occupied = [bits("00xx"), bits("0001"), bits("0010")]
    assert expandability(bits("00xx"), [XXXX], occupied) == 2
    assert not can_double(bits("0000"), [XXXX], [bits("000x")])  # a block around it does


def test_s17_1_1_random_choice_among_equally_expandable_candidates() -> None:
    """Free 01xx, 10xx, 110x: "chosen with probability of 50% for 01xx and 50% for 10xx".
    A two-address block fits 110x too but could not grow there, so it is never chosen."""
    occupied = [bits("00xx"), bits("111x")]
    rng = random.Random(2909)
    draws = 2000
    seen = Counter()
    for _ in range(draws):
        got = choose_prefix([XXXX], occupied, 2, rng)
        assert got is not None
        seen[next(p for p in ("01xx", "10xx", "110x") if covers(bits(p), got))] += 1
    assert seen["110x"] == 0
    assert abs(seen["01xx"] - draws / 2) < 0.05 * draws, seen
    assert seen["01xx"] + seen["10xx"] == draws
    # The whole free prefix, as the RFC words it: 01xx or 10xx, never 110x (too small).
    assert {choose_prefix([XXXX], occupied, 4, rng) for _ in range(100)} == {
        bits("01xx"),
        bits("10xx"),
    }


def test_s17_1_1_candidates_rank_by_space_order_then_reverse_bit_order() -> None:
    """Two space prefixes: candidates of the first listed come first, each in its own RBO."""
    one, two = n("239.192.4.0/24"), n("239.192.0.0/24")
    rng = FirstChoice()
    assert choose_prefix([one, two], [], 64, rng) == n("239.192.4.0/26")
    assert rng.spans == [2]
    taken = [n("239.192.4.0/26"), n("239.192.0.0/26")]
    assert choose_prefix([one, two], taken, 64, FirstChoice()) == n("239.192.4.128/26")


# --- §17.1.4 the neighbour ---------------------------------------------------------------------

PARENT = n("224.0.0.0/8")
OWN = n("224.0.0.0/16")


def test_s17_1_4_neighbour_of_224_0_16_for_256_addresses_is_224_1_0_24() -> None:
    for rng in (FirstChoice(), random.Random(1)):
        assert choose_prefix([PARENT], [OWN], 256, rng, near=[OWN]) == n("224.1.0.0/24")


def test_s17_1_4_neighbour_grows_to_224_1_16_and_aggregates_into_224_0_15() -> None:
    """ "the second prefix will eventually grow to 224.1/16, and then both prefixes can be
    automatically aggregated into 224.0/15"."""
    second = n("224.1.0.0/24")
    assert expandability(second, [PARENT], [OWN, second]) == 8
    assert collapse([OWN, n("224.1.0.0/16")]) == [n("224.0.0.0/15")]


def test_s17_1_4_neighbour_taken_then_another_prefix_is_chosen() -> None:
    """ "Only if 224.0.1/24 [sic: 224.1.0/24] could not be allocated, a MASC node will choose
    another prefix (eventually random among the unused prefixes).\""""
    taken = [OWN, n("224.1.0.0/24")]
    for seed in range(20):
        got = choose_prefix([PARENT], taken, 256, random.Random(seed), near=[OWN])
        assert got is not None
        assert got.prefixlen == 24
        assert covers(PARENT, got)
        assert not any(overlaps(got, t) for t in taken)


def test_s17_1_4_neighbour_whose_whole_buddy_is_free_first() -> None:
    """A neighbour that can later double up to its buddy's size beats one that cannot."""
    a, b = n("224.0.0.0/16"), n("224.2.0.0/16")
    foreign = n("224.1.128.0/17")  # in a's buddy, not where a's neighbour /24 would go
    assert choose_prefix([PARENT], [a, b, foreign], 256, FirstChoice(), near=[a, b]) == n(
        "224.3.0.0/24"
    )
    # Neither buddy wholly free: the larger, then lower, own prefix whose block is free.
    busy = [a, b, foreign, n("224.3.255.0/24")]
    assert choose_prefix([PARENT], busy, 256, FirstChoice(), near=[b, a]) == n("224.1.0.0/24")


def test_s17_1_4_neighbour_of_the_larger_own_prefix_first() -> None:
    small, large = n("224.4.0.0/20"), n("224.0.0.0/16")
    got = choose_prefix([PARENT], [small, large], 256, FirstChoice(), near=[small, large])
    assert got == n("224.1.0.0/24")


def test_s17_1_4_neighbour_needs_an_own_prefix_at_least_as_large_as_the_block() -> None:
    own = n("224.0.0.0/24")
    got = choose_prefix([PARENT], [own], 65536, FirstChoice(), near=[own])
    assert got is not None and got.prefixlen == 16 and got != n("224.1.0.0/16")
    assert got == n("224.128.0.0/16")  # the most expandable /16, first in RBO


def test_s17_1_4_neighbour_outside_the_space_is_not_taken() -> None:
    """224.0/16's buddy is 224.1/16; with a space of 224.0/16 alone it is not ours to claim."""
    got = choose_prefix([OWN], [n("224.0.0.0/24")], 256, FirstChoice(), near=[OWN])
    assert got == n("224.0.128.0/24")  # the most expandable block inside the space


# --- strategies --------------------------------------------------------------------------------

SPACE = [n("239.192.0.0/22")]
TAKEN = [n("239.192.0.0/24")]  # free: 239.192.1.0/24 and 239.192.2.0/23


def test_rbo_takes_the_most_expandable_piece() -> None:
    assert choose_prefix(SPACE, TAKEN, 256, random.Random(0)) == n("239.192.2.0/24")


def test_best_fit_takes_the_smallest_piece_that_fits_like_choose_free() -> None:
    for seed in range(10):
        got = choose_prefix(SPACE, TAKEN, 256, random.Random(seed), strategy=Strategy.BEST_FIT)
        assert got == n("239.192.1.0/24")
        assert got == choose_free(SPACE, TAKEN, 256, random.Random(seed))


def test_best_fit_random_among_equally_small_pieces() -> None:
    space = [n("239.192.0.0/24"), n("239.192.2.0/24")]
    seen = {
        choose_prefix(space, [], 128, random.Random(s), strategy=Strategy.BEST_FIT)
        for s in range(20)
    }
    assert seen == {n("239.192.0.0/25"), n("239.192.2.0/25")}


def test_first_fit_takes_the_lowest_address_block_and_ignores_near() -> None:
    taken = [n("239.192.0.0/25"), n("239.192.2.0/24")]
    got = choose_prefix(
        SPACE, taken, 128, random.Random(0), strategy=Strategy.FIRST_FIT, near=[taken[1]]
    )
    assert got == n("239.192.0.128/25")
    assert choose_prefix(SPACE, taken, 512, FirstChoice(), strategy=Strategy.FIRST_FIT) is None
    got = choose_prefix(SPACE, taken, 256, FirstChoice(), strategy=Strategy.FIRST_FIT)
    assert got == n("239.192.1.0/24")


@pytest.mark.parametrize("strategy", list(Strategy))
def test_choose_prefix_none_when_nothing_fits(strategy: Strategy) -> None:
    rng = FirstChoice()
    assert choose_prefix([], [], 1, rng, strategy=strategy) is None
    assert choose_prefix(SPACE, SPACE, 1, rng, strategy=strategy) is None
    assert choose_prefix(SPACE, TAKEN, 1024, rng, strategy=strategy) is None
    assert choose_prefix(SPACE, [], 1 << 33, rng, strategy=strategy) is None


@pytest.mark.parametrize("strategy", list(Strategy))
def test_choose_prefix_ipv6(strategy: Strategy) -> None:
    space = [n("ff3e::/32")]
    rng = random.Random(6)
    taken: list[Prefix] = []
    for _ in range(16):
        got = choose_prefix(space, taken, 1 << 92, rng, strategy=strategy)
        assert got is not None and got.prefixlen == 36 and covers(space[0], got)
        assert not any(overlaps(got, t) for t in taken)
        taken.append(got)
    assert choose_prefix(space, taken, 1, rng, strategy=strategy) is None


def test_s17_1_1_ipv6_reverse_bit_order_and_neighbour() -> None:
    space = [n("ff3e::/32")]
    rng = FirstChoice()
    first = choose_prefix(space, [], 1 << 80, rng)
    assert first is not None
    second = choose_prefix(space, [first], 1 << 80, rng)
    assert (first, second) == (n("ff3e::/48"), n("ff3e:0:8000::/48"))
    own = n("ff3e::/40")
    got = choose_prefix(space, [own], 1 << 80, rng, near=[own])
    assert got == n("ff3e:0:100::/48")


# --- properties against brute force ------------------------------------------------------------

BOX = n("224.0.0.0/24")  # the space of the properties


def blocks_in(parent: Prefix, length: int) -> list[Prefix]:
    return list(parent.subnets(new_prefix=length))


def brute_expandability(block: Prefix, space: list[Prefix], occupied: list[Prefix]) -> int:
    others = [o for o in occupied if not covers(block, o)]
    count = 0
    while block.prefixlen > 0:
        up = block.supernet()
        if not any(covers(s, up) for s in collapse(space)):
            break
        if any(overlaps(buddy(block), o) for o in others):
            break
        block, count = up, count + 1
    return count


prefixes_near_box = st.builds(
    lambda length, offset, outside: IPv4Network(
        (0xE000_0000 + (outside << 8) + (offset >> (32 - length) << (32 - length)), length)
    ),
    st.integers(24, 32),
    st.integers(0, 255),
    st.sampled_from([0, 0, 0, 1]),
)


@PROPERTY
@given(
    occupied=st.lists(prefixes_near_box, max_size=10),
    need=st.integers(0, 6),
    strategy=st.sampled_from(list(Strategy)),
    near=st.lists(prefixes_near_box, max_size=3),
    seed=st.integers(0, 2**32 - 1),
)
def test_s17_1_1_choose_prefix_matches_brute_force(
    occupied: list[Prefix], need: int, strategy: Strategy, near: list[Prefix], seed: int
) -> None:
    """Always a free aligned block inside the space, None only when there is none; first fit
    is the lowest such block, best fit one of the least expandable, RBO (with no neighbour)
    one of the most expandable (§17.1.1), RBO with a neighbour the block at its buddy."""
    space = [BOX]
    got = choose_prefix(
        space, occupied, 1 << need, random.Random(seed), strategy=strategy, near=near
    )
    free = [b for b in blocks_in(BOX, 32 - need) if not any(overlaps(b, o) for o in occupied)]
    if not free:
        assert got is None
        return
    assert got in free
    growth = {b: brute_expandability(b, space, occupied) for b in free}
    if strategy is Strategy.FIRST_FIT:
        assert got == free[0]
    elif strategy is Strategy.BEST_FIT:
        assert growth[got] == min(growth.values())
    else:
        neighbours = {
            IPv4Network((int(buddy(p).network_address), 32 - need))
            for p in near
            if 0 < p.prefixlen <= 32 - need
        }
        if neighbours & set(free):
            assert got in neighbours
        else:
            assert growth[got] == max(growth.values())


@PROPERTY
@given(
    occupied=st.lists(prefixes_near_box, max_size=10),
    need=st.integers(0, 8),
    strategy=st.sampled_from(list(Strategy)),
    near=st.lists(prefixes_near_box, max_size=3),
    seed=st.integers(0, 2**32 - 1),
)
def test_s11_4_3_choose_prefix_never_straddles_two_space_prefixes(
    occupied: list[Prefix], need: int, strategy: Strategy, near: list[Prefix], seed: int
) -> None:
    """A space of two adjacent prefixes (two PREFIX_MANAGED): the block is inside one of
    them, None only when neither has a free block, and the halves never double into BOX."""
    halves = list(BOX.subnets(prefixlen_diff=1))
    got = choose_prefix(
        halves, occupied, 1 << need, random.Random(seed), strategy=strategy, near=near
    )
    free = [
        b
        for half in halves
        if half.prefixlen <= 32 - need
        for b in blocks_in(half, 32 - need)
        if not any(overlaps(b, o) for o in occupied)
    ]
    assert (got is None) == (not free)
    assert got is None or got in free
    assert not can_double(halves[0], halves, [])
    assert largest_free(halves, []) == 31 - BOX.prefixlen


@PROPERTY
@given(block=prefixes_near_box, occupied=st.lists(prefixes_near_box, max_size=10))
def test_s17_1_1_expandability_matches_brute_force(block: Prefix, occupied: list[Prefix]) -> None:
    space = [BOX]
    assert expandability(block, space, occupied) == (
        brute_expandability(block, space, occupied) if covers(BOX, block) else 0
    )
    assert can_double(block, space, occupied) == (expandability(block, space, occupied) > 0)


# --- §17.1.2 prediction, usage -----------------------------------------------------------------


def test_s17_1_2_predicted_is_use_plus_growth_over_the_horizon_plus_requests() -> None:
    assert predicted(Demand(in_use=100, rate=0.01, requested=5), 3600.0) == 100 + 36 + 5
    assert predicted(Demand(in_use=100, rate=0.0001), 3600.0) == 101  # rounded up
    assert predicted(Demand(in_use=100, rate=-1.0), 3600.0) == 100  # a fall predicts no fall
    assert predicted(Demand(), 3600.0) == 0
    assert predicted(Demand(in_use=2**100 + 1, rate=0.5), 3.0) == 2**100 + 3  # exact


def test_s17_1_5_usage_within_counts_blocks_inside_whole_and_around_pro_rata() -> None:
    by_prefix = {n("224.0.0.0/24"): 100, n("224.0.1.0/25"): 7, n("224.0.0.0/22"): 400}
    assert usage_within(n("224.0.0.0/23"), by_prefix) == 100 + 7 + 200
    assert usage_within(n("224.0.2.0/23"), by_prefix) == 200
    assert usage_within(n("224.0.3.255/32"), by_prefix) == 1  # 400/1024, rounded up
    assert usage_within(n("224.1.0.0/16"), by_prefix) == 0
    assert usage_within(n("ff3e::/16"), by_prefix) == 0


# --- §17.1.2 Trend: a rate for demand nobody reports (a parent's children) ------------------


def test_s17_1_2_trend_one_sample_predicts_no_growth() -> None:
    """One total says nothing about growth: a parent that has seen a single state of its
    children must not extrapolate anything from it."""
    trend = Trend(100.0)
    assert trend.rate(0.0) == 0.0
    trend.note(0.0, 500)
    assert trend.rate(0.0) == 0.0
    assert trend.rate(1_000.0) == 0.0


def test_s17_1_2_trend_of_linear_growth_is_its_slope() -> None:
    """Two addresses a second, noted every 10 s for twice the window: the rate is 2/s,
    measured over the last window only."""
    trend = Trend(100.0)
    for t in range(0, 201, 10):
        trend.note(float(t), 2 * t)
    assert trend.rate(200.0) == pytest.approx(2.0)


def test_s17_1_2_trend_spreads_a_burst_over_at_least_one_window() -> None:
    """1000 addresses claimed within one second are not a rate of 1000/s: §17.1.2 predicts
    one waiting period ahead, and a burst extrapolated at its own speed would claim a
    thousand times what was seen."""
    trend = Trend(100.0)
    trend.note(0.0, 0)
    trend.note(1.0, 1_000)
    assert trend.rate(1.0) == pytest.approx(1_000 / 100)


def test_s17_1_2_trend_drops_samples_older_than_the_window_but_keeps_a_baseline() -> None:
    """Growth before the window no longer counts, but the last total before it stays as
    the baseline: without it a single recent change would show no growth at all."""
    trend = Trend(100.0)
    trend.note(0.0, 0)
    trend.note(50.0, 100)
    trend.note(300.0, 400)
    # Baseline (50, 100): not (0, 0), which would give 400/300, nor nothing, which gives 0.
    assert trend.rate(300.0) == pytest.approx((400 - 100) / (300 - 50))
    # With no further change the rate decays as the baseline ages.
    assert 0 < trend.rate(1_000.0) < trend.rate(300.0)


def test_s17_1_2_trend_never_negative_when_the_total_falls() -> None:
    """Children giving space back predict no negative growth: shrinking is §17.1.5's
    business, at renewal, not a reason to claim less than is held now."""
    trend = Trend(100.0)
    trend.note(0.0, 500)
    trend.note(10.0, 200)
    assert trend.rate(10.0) == 0.0
    trend.note(20.0, 300)  # up again, but still below the baseline
    assert trend.rate(20.0) == 0.0


def test_s17_1_2_trend_noting_an_unchanged_total_is_a_no_op() -> None:
    """The engine notes the children's total every time it recomputes their demand: an
    unchanged total must not move the baseline forward (it would shorten the span the
    growth is spread over)."""
    trend = Trend(100.0)
    trend.note(0.0, 0)
    trend.note(100.0, 100)
    trend.note(150.0, 100)  # unchanged: the total has been 100 since t=100, not t=150
    trend.note(260.0, 200)
    assert trend.rate(260.0) == pytest.approx((200 - 100) / (260 - 100))


# --- §17.1.3/§17.1.4 plan_growth ---------------------------------------------------------------


def grow_result(held: list[Held], pending: int, plan: Grow) -> int:
    """Addresses held and pending once the plan is carried out and `replaces` dropped."""
    kept = [h for h in held if h.renewing and h.prefix not in plan.replaces]
    return sum(h.prefix.num_addresses for h in kept) + pending + plan.size


def test_s17_1_2_no_claim_while_predicted_demand_fits_under_the_high_mark() -> None:
    held = [Held(n("224.0.0.0/24"))]
    assert plan_growth(held, 0, Demand(in_use=230), DAY, CONFIG) is None  # 230 <= 0.9 * 256
    assert plan_growth(held, 0, Demand(in_use=200, rate=0.001), DAY, CONFIG) is not None
    assert plan_growth(held, 256, Demand(in_use=300), DAY, CONFIG) is None  # pending counts
    assert plan_growth([], 0, Demand(), DAY, CONFIG) is None


@pytest.mark.parametrize(
    ("held_sizes", "need", "size"),
    [
        ([], 100, 128),  # 100/128 = 78%
        ([], 1000, 2048),  # 1024 would be 98%: no power of two in the band, so 49% ...
        ([256], 300, 128),  # 300/384 = 78%
        ([256], 600, 512),  # 600/768 = 78%
        ([1024], 1000, 256),  # 1000/1280 = 78%
        ([64, 16], 300, 256),  # 300/336 = 89%
    ],
)
def test_s17_1_3_new_prefix_lands_demand_inside_the_band(
    held_sizes: list[int], need: int, size: int
) -> None:
    held = [
        Held(IPv4Network((0xE000_0000 + (i << 16), 33 - s.bit_length())))
        for i, s in enumerate(held_sizes)
    ]
    plan = plan_growth(held, 0, Demand(in_use=need), DAY, CONFIG)
    assert plan == Grow(size=size)
    total = grow_result(held, 0, plan)
    assert need <= 0.9 * total
    assert need >= 0.7 * total or size == 2048  # ... the least a power of two does


@PROPERTY
@given(
    sizes=st.lists(st.tuples(st.integers(0, 20), st.booleans(), st.booleans()), max_size=5),
    pending=st.integers(0, 1 << 20),
    in_use=st.integers(0, 1 << 22),
    rate=st.floats(-1.0, 10.0),
    requested=st.integers(0, 1 << 16),
    band=st.tuples(st.floats(0.05, 1.0), st.floats(0.05, 1.0)).map(sorted),
    cap=st.integers(1, 4),
)
def test_s17_1_3_a_grow_never_leaves_predicted_demand_above_the_high_mark(
    sizes: list[tuple[int, bool, bool]],
    pending: int,
    in_use: int,
    rate: float,
    requested: int,
    band: list[float],
    cap: int,
) -> None:
    config = AllocatorConfig(target_utilization=(band[0], band[1]), max_prefixes=cap)
    held = [
        Held(IPv4Network((0xE000_0000 + (i << 24), 32 - k)), renewing=r, can_double=d)
        for i, (k, r, d) in enumerate(sizes)
    ]
    demand = Demand(in_use=in_use, rate=rate, requested=requested)
    plan = plan_growth(held, pending, demand, DAY, config)
    need = predicted(demand, DAY)
    total = sum(h.prefix.num_addresses for h in held if h.renewing) + pending
    if plan is None:
        assert need <= band[1] * total
        return
    assert plan.size & (plan.size - 1) == 0  # a power of two
    assert need <= band[1] * grow_result(held, pending, plan) * (1 + 1e-12)
    if plan.expand is not None:
        assert plan.size == plan.expand.num_addresses
        assert Held(plan.expand, can_double=True) in held
    active = [h for h in held if h.renewing]
    if plan.replaces or (plan.expand is None and len(active) + 1 > cap):
        assert plan.expand is None
        assert len(active) - len(plan.replaces) + 1 <= cap
        assert set(plan.replaces) <= {h.prefix for h in active}


def test_s17_1_4_expand_preferred_when_the_prefix_can_double() -> None:
    held = [Held(n("224.0.0.0/24"), can_double=True)]
    plan = plan_growth(held, 0, Demand(in_use=400), DAY, CONFIG)
    assert plan == Grow(size=256, expand=n("224.0.0.0/24"))  # 400/512 = 78%
    # Without the free buddy the same need gets a neighbour prefix of the same size.
    assert plan_growth([Held(n("224.0.0.0/24"))], 0, Demand(in_use=400), DAY, CONFIG) == Grow(256)


def test_s17_1_4_expand_the_smallest_prefix_whose_doubling_fits_the_band() -> None:
    held = [
        Held(n("224.0.0.0/22"), can_double=True),
        Held(n("224.1.0.0/24"), can_double=True),
        Held(n("224.2.0.0/28"), can_double=True),  # doubling adds too little
    ]
    plan = plan_growth(held, 0, Demand(in_use=1300), DAY, CONFIG)  # 1300/(1296+256) = 84%
    assert plan == Grow(size=256, expand=n("224.1.0.0/24"))


def test_s17_1_4_doubling_too_small_for_the_need_gets_a_new_prefix() -> None:
    held = [Held(n("224.0.0.0/28"), can_double=True)]
    assert plan_growth(held, 0, Demand(in_use=200), DAY, CONFIG) == Grow(size=256)


def test_s17_1_4_at_max_prefixes_one_larger_prefix_replaces_the_non_expandable() -> None:
    """ "If the number of allocated prefixes increases above some threshold, and none of them
    can be extended ... claim a new larger prefix and ... stop re-claiming the older
    non-expandable prefixes" (three: "a reasonable threshold")."""
    held = [Held(n("224.0.0.0/22")), Held(n("224.1.0.0/23")), Held(n("224.2.0.0/24"))]
    need = 1792 + 400  # held 1792; a 4th prefix would be needed
    plan = plan_growth(held, 0, Demand(in_use=need), DAY, CONFIG)
    assert plan is not None
    assert plan.expand is None
    assert plan.size == 4096  # holds all 2192 under 90% on its own
    assert set(plan.replaces) == {h.prefix for h in held}
    assert plan.fallback == 1024  # choice 105: the fourth prefix the cap replaced
    # Below the cap the same shortfall is a plain third prefix (1936/2560 = 76%).
    assert plan_growth(held[:2], 0, Demand(in_use=1536 + 400), DAY, CONFIG) == Grow(size=1024)


def test_s17_1_4_consolidation_keeps_the_cap_with_too_small_expandable_prefixes() -> None:
    held = [
        Held(n("224.0.0.0/22")),
        Held(n("224.1.0.0/28"), can_double=True),
        Held(n("224.2.0.0/27"), can_double=True),
    ]
    plan = plan_growth(held, 0, Demand(in_use=2000), DAY, CONFIG)
    # /28, /27 and the new one (or, with no room for 4096, a fourth prefix: choice 105)
    assert plan == Grow(size=4096, replaces=(n("224.0.0.0/22"),), fallback=2048)
    # With a cap of two, the smallest expandable one goes too.
    plan = plan_growth(held, 0, Demand(in_use=2000), DAY, AllocatorConfig(max_prefixes=2))
    assert plan == Grow(size=4096, replaces=(n("224.0.0.0/22"), n("224.1.0.0/28")), fallback=2048)


def test_choice_105_the_fallback_is_the_claim_the_cap_replaced_up_to_twice_the_cap() -> None:
    """§17.1.4's cap reduces state ("should claim a new larger prefix"); when no block of
    that size is free, the claim it replaced is the engine's fallback, until the domain
    holds twice the cap."""
    held = [Held(n("224.0.0.0/22")), Held(n("224.1.0.0/23")), Held(n("224.2.0.0/24"))]
    need = 1792 + 400
    below = plan_growth(held[:2], 0, Demand(in_use=1536 + 400), DAY, CONFIG)
    assert below == Grow(size=1024)  # under the cap: no consolidation, no fallback
    at_cap = plan_growth(held, 0, Demand(in_use=need), DAY, CONFIG)
    assert at_cap is not None and (at_cap.size, at_cap.fallback) == (4096, 1024)
    # Five prefixes held with a cap of three: a sixth is still a fallback (2 x 3) ...
    five = [*held, Held(n("224.3.0.0/28")), Held(n("224.4.0.0/28"))]
    plan = plan_growth(five, 0, Demand(in_use=need), DAY, CONFIG)
    assert plan is not None and plan.fallback > 0 and plan.fallback < plan.size
    # ... a seventh is not: only the consolidating claim is made.
    six = [*five, Held(n("224.5.0.0/28"))]
    plan = plan_growth(six, 0, Demand(in_use=need), DAY, CONFIG)
    assert plan is not None and plan.replaces and plan.fallback == 0
    # With a cap of one, a second prefix is the fallback, a third is not.
    cap1 = AllocatorConfig(max_prefixes=1)
    one = plan_growth(held[:1], 0, Demand(in_use=1500), DAY, cap1)
    assert one is not None and one.replaces and 0 < one.fallback < one.size
    two = plan_growth(held[:2], 0, Demand(in_use=2000), DAY, cap1)
    assert two is not None and two.replaces and two.fallback == 0


def test_s17_1_4_deprecated_prefixes_neither_hold_demand_nor_count_against_the_cap() -> None:
    held = [
        Held(n("224.0.0.0/20"), renewing=False),
        Held(n("224.1.0.0/24")),
        Held(n("224.2.0.0/24")),
    ]
    assert plan_growth(held, 0, Demand(in_use=500), DAY, CONFIG) == Grow(size=128)  # 78%


# --- §17.1.5/§17.1.6 plan_renewal --------------------------------------------------------------

P15 = n("224.0.0.0/15")
LOW16, HIGH16 = n("224.0.0.0/16"), n("224.1.0.0/16")


def test_s17_1_5_renew_the_better_used_half_of_224_0_15() -> None:
    """224.0/15 half used, about 2^16 to return: renew 224.0/16 or 224.1/16, "whichever
    sub-prefix utilization is higher"."""
    other = n("225.0.0.0/16")  # the domain's other prefix, well used
    held = [Held(P15), Held(other)]
    by_prefix = {n("224.1.0.0/17"): 40_000, n("224.0.0.0/20"): 25_536, other: 30_000}
    demand = Demand(in_use=95_536, by_prefix=by_prefix)
    assert plan_renewal(P15, held, demand, DAY, CONFIG) == HIGH16
    swapped = {n("224.0.0.0/17"): 40_000, n("224.1.0.0/20"): 25_536, other: 30_000}
    assert plan_renewal(P15, held, Demand(95_536, by_prefix=swapped), DAY, CONFIG) == LOW16
    even = {LOW16: 30_000, HIGH16: 30_000, other: 30_000}
    assert plan_renewal(P15, held, Demand(90_000, by_prefix=even), DAY, CONFIG) == LOW16


def test_s17_1_5_unused_prefix_is_not_renewed() -> None:
    used, unused = n("224.0.0.0/16"), n("224.5.0.0/20")
    held = [Held(used), Held(unused)]
    demand = Demand(in_use=40_000, by_prefix={used: 40_000})  # 57% of 69632
    assert plan_renewal(unused, held, demand, DAY, CONFIG) is None  # 61% of the rest
    # The used one stays whole: its better half alone would hold it at 108%.
    assert plan_renewal(used, held, demand, DAY, CONFIG) == used


def test_s17_1_5_sole_prefix_is_halved_never_dropped() -> None:
    only = n("224.0.0.0/16")
    assert plan_renewal(only, [Held(only)], Demand(), DAY, CONFIG) == n("224.0.0.0/17")


def test_s17_1_5_busy_prefix_is_renewed_whole() -> None:
    held = [Held(P15)]
    assert plan_renewal(P15, held, Demand(in_use=100_000), DAY, CONFIG) == P15  # 76%
    # Under the band, but half would be too small (70000 > 0.9 * 65536): whole again.
    assert plan_renewal(P15, held, Demand(in_use=70_000), DAY, CONFIG) == P15
    # Growth over the horizon counts: 20000 now, 80000 in a day.
    rising = Demand(in_use=20_000, rate=60_000 / DAY, by_prefix={LOW16: 20_000})
    assert plan_renewal(P15, held, rising, DAY, CONFIG) == P15
    flat = Demand(in_use=20_000, by_prefix={LOW16: 20_000})
    assert plan_renewal(P15, held, flat, DAY, CONFIG) == LOW16


def test_s17_1_5_unknown_usage_drops_nothing_whole() -> None:
    """With addresses in use but no per-block report the unused prefix cannot be told: the
    renewal shrinks by half (the lower, knowing no better) rather than drop what may be
    in use."""
    a, b = n("224.0.0.0/16"), n("224.5.0.0/20")
    got = plan_renewal(b, [Held(a), Held(b)], Demand(in_use=40_000), DAY, CONFIG)
    assert got == n("224.5.0.0/21")


@PROPERTY
@given(
    sizes=st.lists(st.tuples(st.integers(1, 20), st.booleans()), min_size=1, max_size=4),
    uses=st.lists(st.integers(0, 1 << 19), min_size=4, max_size=4),
    rate=st.floats(-1.0, 1.0),
    pick=st.integers(0, 3),
)
def test_s17_1_5_a_shrink_never_makes_plan_growth_fire(
    sizes: list[tuple[int, bool]], uses: list[int], rate: float, pick: int
) -> None:
    held = [
        Held(IPv4Network((0xE000_0000 + (i << 24), 32 - k)), renewing=r)
        for i, (k, r) in enumerate(sizes)
    ]
    by_prefix = {
        IPv4Network((int(h.prefix.network_address), h.prefix.prefixlen + 1)): min(
            u, h.prefix.num_addresses // 2
        )
        for h, u in zip(held, uses, strict=False)
    }
    demand = Demand(in_use=sum(by_prefix.values()), rate=rate, by_prefix=by_prefix)
    prefix = held[pick % len(held)].prefix
    if plan_growth(held, 0, demand, DAY, CONFIG) is not None:
        return  # growth already due: not the renewal's doing
    kept = plan_renewal(prefix, held, demand, DAY, CONFIG)
    after = [h for h in held if h.prefix != prefix]
    if kept is not None:
        assert covers(prefix, kept) and kept.prefixlen - prefix.prefixlen <= 1
        after.append(Held(kept))
    assert plan_growth(after, 0, demand, DAY, CONFIG) is None


def test_s17_1_6_renewal_every_48_hours_by_default() -> None:
    assert AllocatorConfig().renew_interval == 48 * 3600.0
    assert AllocatorConfig().max_prefixes == 3
    assert AllocatorConfig().target_utilization == (0.7, 0.9)
    assert AllocatorConfig().strategy is Strategy.RBO


@pytest.mark.parametrize(
    "kwargs",
    [
        {"target_utilization": (0.9, 0.7)},
        {"target_utilization": (0.0, 0.9)},
        {"target_utilization": (0.7, 1.5)},
        {"max_prefixes": 0},
        {"renew_interval": 0.0},
    ],
)
def test_allocator_config_refuses_nonsense(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        AllocatorConfig(**kwargs)  # type: ignore[arg-type]


# --- largest_free / first_release (the engine's _Stuck record) --------------------------------


def test_largest_free_matches_what_choose_prefix_finds() -> None:
    space = [IPv4Network("239.192.0.0/24")]
    taken = [IPv4Network("239.192.0.0/25"), IPv4Network("239.192.0.192/26")]
    assert largest_free(space, taken) == 6
    assert largest_free(space, space) == -1
    rng = random.Random(1)
    for size in (32, 64, 65, 128):
        found = choose_prefix(space, taken, size, rng)
        assert (found is not None) == (host_bits_for(size) <= 6)


def test_first_release_waits_for_the_covering_holder() -> None:
    big, small = IPv4Network("239.192.0.0/24"), IPv4Network("239.192.0.0/26")
    other = IPv4Network("239.193.0.0/24")
    # The /26 leaves at 10, but the /24 around it holds its addresses until 50.
    assert first_release({big: 50.0, small: 10.0, other: 30.0}, []) == 30.0
    assert first_release({small: 10.0}, [big]) == math.inf
    assert first_release({}, []) == math.inf
