"""Address-set arithmetic on prefixes (RFC 2909 §4.1, §5.1, §17.1.1)."""

from __future__ import annotations

import random
from ipaddress import IPv4Network, IPv6Network, ip_network

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from masc.protocol.space import (
    aligned_blocks,
    choose_free,
    collapse,
    covers,
    free_runs,
    host_bits_for,
    intersection,
    overlaps,
    prefix_at,
    prefix_length_for,
    same,
    span_of,
    spans_of,
    subtract,
)
from masc.protocol.wire.messages import Prefix
from tests.protocol.engine_helpers import net4


def nets(*texts: str) -> list[Prefix]:
    return [net4(t) for t in texts]


class FirstChoice:
    """An rng that always takes the first candidate (and records how many there were)."""

    def __init__(self) -> None:
        self.spans: list[int] = []

    def random(self) -> float:
        return 0.5

    def randrange(self, start: int, stop: int, /) -> int:
        self.spans.append(stop - start)
        return start


class LastChoice(FirstChoice):
    def randrange(self, start: int, stop: int, /) -> int:
        self.spans.append(stop - start)
        return stop - 1


# --- covers / overlaps / intersection --------------------------------------------------------


def test_covers_is_inclusive_and_directional() -> None:
    big, small = net4("239.192.0.0/16"), net4("239.192.4.0/24")
    assert covers(big, small)
    assert covers(big, big)
    assert not covers(small, big)
    assert not covers(big, net4("239.193.0.0/24"))


def test_covers_never_across_families() -> None:
    assert not covers(IPv6Network("::/0"), net4("239.0.0.0/8"))
    assert not overlaps(IPv6Network("::/0"), net4("239.0.0.0/8"))


def test_overlaps_either_way_but_not_neighbours() -> None:
    a, b = net4("239.192.0.0/23"), net4("239.192.1.0/24")
    assert overlaps(a, b)
    assert overlaps(b, a)
    assert not overlaps(net4("239.192.0.0/24"), net4("239.192.1.0/24"))


any_prefixes = st.one_of(
    st.builds(
        lambda a, n: IPv4Network((a >> (32 - n) << (32 - n), n)),
        st.integers(0, 2**32 - 1),
        st.integers(0, 32),
    ),
    st.builds(
        lambda a, n: IPv6Network((a >> (128 - n) << (128 - n), n)),
        st.integers(0, 2**128 - 1),
        st.integers(0, 128),
    ),
)


@settings(max_examples=500)
@given(a=any_prefixes, b=any_prefixes)
def test_covers_and_overlaps_agree_with_ipaddress(a: Prefix, b: Prefix) -> None:
    """They read ipaddress's private fields for speed (space.py): this is the check that
    those still mean what they meant."""
    same_family = a.version == b.version
    assert covers(a, b) == (same_family and b.subnet_of(a))  # type: ignore[arg-type]
    assert overlaps(a, b) == (same_family and a.overlaps(b))
    assert same(a, b) == (a == b)
    twin = type(a)((a.network_address, a.prefixlen))  # equal, another object
    assert same(a, twin) and same(twin, a)
    start = int(a.network_address)
    assert span_of(a) == (a.max_prefixlen, start, start + a.num_addresses)
    assert spans_of([a, b]) == [(*span_of(a), a), (*span_of(b), b)]


def test_same_tells_apart_lengths_families_and_addresses() -> None:
    a = ip_network("239.1.0.0/16")
    assert same(a, ip_network("239.1.0.0/16"))
    assert not same(a, ip_network("239.1.0.0/17"))
    assert not same(a, ip_network("239.2.0.0/16"))
    # The same number and length in the other family is another prefix.
    assert not same(ip_network("::/16"), ip_network("0.0.0.0/16"))
    # So is a scoped one, as ipaddress's == has it.
    assert not same(ip_network("ff0e::%eth0/16"), ip_network("ff0e::/16"))
    assert same(ip_network("ff0e::%eth0/16"), ip_network("ff0e::%eth0/16"))


@given(
    base=st.integers(0, 2**24 - 1).map(lambda a: a << 8),
    outer=st.integers(8, 24),
    inner=st.integers(8, 32),
)
def test_covers_and_overlaps_on_nested_prefixes(base: int, outer: int, inner: int) -> None:
    """Random pairs rarely nest; these always do, one way or the other."""
    a = IPv4Network((base >> (32 - outer) << (32 - outer), outer))
    b = IPv4Network((int(a.network_address) >> (32 - inner) << (32 - inner), inner))
    assert covers(a, b) == (inner >= outer) == b.subnet_of(a)
    assert overlaps(a, b) and overlaps(b, a)


def test_intersection_is_the_longer_prefix_or_none() -> None:
    a, b = net4("239.192.0.0/23"), net4("239.192.1.0/24")
    assert intersection(a, b) == b
    assert intersection(b, a) == b
    assert intersection(net4("239.192.0.0/24"), b) is None


# --- collapse / subtract -----------------------------------------------------------------------


def test_collapse_merges_adjacent_and_covered_prefixes() -> None:
    got = collapse(nets("239.192.1.0/24", "239.192.0.0/24", "239.192.0.128/25"))
    assert got == nets("239.192.0.0/23")


def test_collapse_keeps_families_apart() -> None:
    v6 = IPv6Network("ff3e::/120")
    assert collapse([v6, net4("239.192.0.0/24")]) == [net4("239.192.0.0/24"), v6]


def test_subtract_a_hole_in_the_middle() -> None:
    got = subtract(nets("239.192.0.0/22"), nets("239.192.1.0/24"))
    assert got == nets("239.192.0.0/24", "239.192.2.0/23")


def test_subtract_everything_leaves_nothing() -> None:
    assert subtract(nets("239.192.0.0/24"), nets("239.192.0.0/16")) == []


def test_subtract_disjoint_leaves_the_space() -> None:
    assert subtract(nets("239.192.0.0/24"), nets("239.193.0.0/24")) == nets("239.192.0.0/24")


def test_subtract_several_cuts_from_several_pieces_is_sorted_and_disjoint() -> None:
    got = subtract(
        nets("239.192.2.0/23", "239.192.0.0/23"),
        nets("239.192.0.0/25", "239.192.3.0/24", "239.192.3.0/25"),
    )
    assert got == nets("239.192.0.128/25", "239.192.1.0/24", "239.192.2.0/24")
    assert collapse(got) == nets("239.192.0.128/25", "239.192.1.0/24", "239.192.2.0/24")


def test_subtract_merges_touching_space_and_touching_cuts() -> None:
    got = subtract(
        nets("239.192.0.0/24", "239.192.1.0/24", "239.192.2.0/23"),
        nets("239.192.1.0/25", "239.192.1.128/25"),
    )
    assert got == nets("239.192.0.0/24", "239.192.2.0/23")


def test_subtract_ipv6_and_mixed_families() -> None:
    v6 = IPv6Network("ff3e::/32")
    got = subtract([v6, net4("239.192.0.0/23")], [IPv6Network("ff3e::/33"), net4("239.192.0.0/24")])
    assert got == [net4("239.192.1.0/24"), IPv6Network("ff3e:0:8000::/33")]
    whole = IPv6Network("::/0")
    assert subtract([whole], []) == [whole]
    assert subtract([net4("0.0.0.0/0")], [net4("128.0.0.0/1")]) == nets("0.0.0.0/1")


def test_free_runs_are_maximal_half_open_ranges_per_width() -> None:
    got = free_runs(nets("239.192.0.0/22"), nets("239.192.1.0/24", "239.192.3.0/25"))
    base = int(net4("239.192.0.0/32").network_address)
    assert got == [
        (32, base, base + 256),
        (32, base + 512, base + 768),
        (32, base + 896, base + 1024),
    ]


def test_free_runs_without_join_keep_adjacent_space_prefixes_apart() -> None:
    """§11.4.3: a claim lies inside one prefix of its parent's; two adjacent ones are two
    runs, while nested ones still make one."""
    base = int(net4("239.192.0.0/32").network_address)
    adjacent = nets("239.192.0.0/23", "239.192.2.0/23")
    assert free_runs(adjacent, []) == [(32, base, base + 1024)]
    apart = [(32, base, base + 512), (32, base + 512, base + 1024)]
    assert free_runs(adjacent, [], join=False) == apart
    nested = nets("239.192.0.0/22", "239.192.2.0/23")
    assert free_runs(nested, [], join=False) == [(32, base, base + 1024)]


def test_choose_free_never_straddles_two_adjacent_space_prefixes() -> None:
    assert choose_free(nets("239.192.0.0/23", "239.192.2.0/23"), [], 1024, FirstChoice()) is None
    got = choose_free(nets("239.192.0.0/23", "239.192.2.0/23"), [], 512, FirstChoice())
    assert got == net4("239.192.0.0/23")


def test_aligned_blocks_are_the_fewest_prefixes_of_a_range() -> None:
    assert list(aligned_blocks(3, 14, 32)) == [(3, 0), (4, 2), (8, 2), (12, 1)]
    assert list(aligned_blocks(0, 1 << 32, 32)) == [(0, 32)]
    assert list(aligned_blocks(5, 5, 32)) == []


def test_prefix_at_builds_either_family() -> None:
    assert prefix_at(32, 0xEFC00000, 10) == net4("239.192.0.0/10")
    assert prefix_at(128, 0xFF3E << 112, 16) == IPv6Network("ff3e::/16")
    assert prefix_at(128, 5, 128) == IPv6Network("::5/128")  # a small integer stays IPv6


small_prefixes = st.builds(
    lambda length, offset: IPv4Network(
        (0xEFC0_0000 + (offset >> (32 - length) << (32 - length)), length)
    ),
    st.integers(22, 32),
    st.integers(0, 1023),
)


@settings(max_examples=400, derandomize=True, deadline=None)
@given(space=st.lists(small_prefixes, max_size=6), removed=st.lists(small_prefixes, max_size=12))
def test_s4_1_subtract_matches_address_sets(space: list[Prefix], removed: list[Prefix]) -> None:
    """The sweep gives exactly the addresses of ``space`` not in ``removed``, as the fewest
    disjoint prefixes, sorted: what the prefix-by-prefix version gave."""

    def addresses(prefixes: list[Prefix]) -> set[int]:
        return {
            int(a)
            for p in prefixes
            for a in (p.network_address + i for i in range(p.num_addresses))
        }

    got = subtract(space, removed)
    assert addresses(got) == addresses(space) - addresses(removed)
    assert collapse(got) == got  # disjoint, fewest, sorted
    assert sum(p.num_addresses for p in got) == len(addresses(got))


# --- prefix_length_for / choose_free -----------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "length"), [(0, 32), (1, 32), (2, 31), (3, 30), (256, 24), (257, 23)]
)
def test_prefix_length_for_rounds_up_to_a_power_of_two(size: int, length: int) -> None:
    assert prefix_length_for(size, 32) == length
    assert host_bits_for(size) == 32 - length


def test_choose_free_returns_an_aligned_block_of_the_size() -> None:
    got = choose_free(nets("239.192.0.0/16"), [], 256, FirstChoice())
    assert got == net4("239.192.0.0/24")


def test_choose_free_avoids_occupied_space() -> None:
    got = choose_free(nets("239.192.0.0/23"), nets("239.192.0.0/24"), 256, FirstChoice())
    assert got == net4("239.192.1.0/24")


def test_choose_free_best_fit_keeps_the_large_free_block_whole() -> None:
    """Carved from the smallest free prefix that can hold it (§17.1.1: expandability)."""
    space = nets("239.192.0.0/22")
    occupied = nets("239.192.0.0/24")  # free: 239.192.1.0/24 and 239.192.2.0/23
    got = choose_free(space, occupied, 256, LastChoice())
    assert got == net4("239.192.1.0/24")


def test_choose_free_draws_at_random_among_equally_small_blocks() -> None:
    space = nets("239.192.0.0/24", "239.192.2.0/24")
    rng = LastChoice()
    assert choose_free(space, [], 256, rng) == net4("239.192.2.0/24")
    assert rng.spans == [2]
    assert choose_free(space, [], 256, FirstChoice()) == net4("239.192.0.0/24")


def test_choose_free_ipv6() -> None:
    space = [IPv6Network("ff3e::/32")]
    got = choose_free(space, [IPv6Network("ff3e::/33")], 1 << 90, FirstChoice())
    assert got == IPv6Network("ff3e:0:8000::/38")


def test_choose_free_none_when_full_or_too_small() -> None:
    assert choose_free(nets("239.192.0.0/24"), nets("239.192.0.0/24"), 1, FirstChoice()) is None
    assert choose_free(nets("239.192.0.0/25"), [], 256, FirstChoice()) is None
    assert choose_free([], [], 1, FirstChoice()) is None


def test_choose_free_with_a_real_rng_stays_inside_and_free() -> None:
    rng = random.Random(7)
    space = nets("239.192.0.0/20")
    taken: list[Prefix] = []
    for _ in range(16):
        got = choose_free(space, taken, 256, rng)
        assert got is not None
        assert covers(space[0], got)
        assert not any(overlaps(got, t) for t in taken)
        taken.append(got)
    assert choose_free(space, taken, 1, rng) is None
