"""Address-set arithmetic on prefixes (RFC 2909 §4.1, §5.1).

MASC domains hold *sets* of addresses: the managed set, the locally-allocated set, a
parent's PREFIX_MANAGED space minus what siblings claim.  These helpers keep such sets as
lists of disjoint prefixes of one family, which is what the claim engine and the G-RIB need.
The simplest choice of *which* free prefix to claim (best fit) lives here too; the Appendix A
allocator (:mod:`masc.protocol.allocation`) builds on it.

Set differences are computed on integers, not prefix objects: each set becomes sorted,
merged half-open runs ``[start, stop)`` per address width, one sweep subtracts, and each
free run is cut back into its maximal aligned blocks.  That is O(n log n) in the number of
prefixes, which matters to a parent holding thousands of children's sub-allocations
(``benchmarks/allocator.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from ipaddress import IPv4Network, IPv6Network, collapse_addresses
from typing import Any, Protocol

from masc.protocol.wire.messages import Prefix

# A free run of addresses: (address width in bits, first address, one past the last).
FreeRun = tuple[int, int, int]


class Randomness(Protocol):
    """The slice of ``random.Random`` the core uses; injected so runs are reproducible."""

    def random(self) -> float: ...

    def randrange(self, start: int, stop: int, /) -> int: ...


# covers(), overlaps(), same() and the spans and runs below read ipaddress's own fields
# (_version, _prefixlen, _max_prefixlen, network_address._ip) rather than its properties,
# which are Python functions: the engine asks them hundreds of times per input (a
# parent's children's claims against its prefixes), and the properties made them four
# times slower.  These fields have been ipaddress's since Python 3.3;
# tests/protocol/test_space.py checks them against ipaddress's own subnet_of(),
# overlaps(), ==, network_address and num_addresses.


def covers(outer: Prefix, inner: Prefix) -> bool:
    """``inner`` lies wholly inside ``outer`` (same family)."""
    o: Any = outer
    i: Any = inner
    plen = o._prefixlen
    if plen > i._prefixlen or o._version != i._version:
        return False
    shift = o._max_prefixlen - plen
    return bool(i.network_address._ip >> shift == o.network_address._ip >> shift)


def overlaps(a: Prefix, b: Prefix) -> bool:
    """Two prefixes share an address: one covers the other."""
    x: Any = a
    y: Any = b
    if x._version != y._version:
        return False
    shift = x._max_prefixlen - min(x._prefixlen, y._prefixlen)
    return bool(x.network_address._ip >> shift == y.network_address._ip >> shift)


def same(a: Prefix, b: Prefix) -> bool:
    """``a == b``, reading the fields as :func:`covers` does: ipaddress's ``__eq__`` is a
    Python function, and the engine compares a claim's prefix with its subject's and its
    renewals' on every input.  An IPv6 scope (``ff0e::%eth0/16``, which no MASC message
    carries) tells prefixes apart as ``==`` does."""
    if a is b:
        return True
    x: Any = a
    y: Any = b
    return bool(
        x._prefixlen == y._prefixlen
        and x._version == y._version
        and x.network_address._ip == y.network_address._ip
        and scope_of(a) == scope_of(b)
    )


def scope_of(prefix: Prefix) -> str | None:
    """The IPv6 scope (zone) of ``prefix``'s address, if any; None for IPv4."""
    scope: str | None = getattr(prefix.network_address, "_scope_id", None)
    return scope


def collapse(prefixes: Iterable[Prefix]) -> list[Prefix]:
    """The smallest list of disjoint prefixes with the same addresses, sorted."""
    v4 = [p for p in prefixes if isinstance(p, IPv4Network)]
    v6 = [p for p in prefixes if isinstance(p, IPv6Network)]
    out: list[Prefix] = list(collapse_addresses(v4))
    out += collapse_addresses(v6)
    return out


# A prefix as integers, for quick overlap tests: (address width, first address, one past
# the last, the prefix).
Span = tuple[int, int, int, Prefix]


def span_of(prefix: Prefix) -> tuple[int, int, int]:
    """``(width, start, stop)`` of ``prefix``: two prefixes of one width overlap exactly
    when each starts before the other stops.  Read from the fields, as :func:`covers`
    does: the engine takes the spans of every occupied prefix when it plans."""
    p: Any = prefix
    width: int = p._max_prefixlen
    start: int = p.network_address._ip
    return width, start, start + (1 << (width - p._prefixlen))


def spans_of(prefixes: Iterable[Prefix]) -> list[Span]:
    """:func:`span_of` of each prefix, the prefix kept alongside."""
    return [(*span_of(p), p) for p in prefixes]


def prefix_at(width: int, start: int, prefixlen: int) -> Prefix:
    """The prefix of ``prefixlen`` at integer address ``start`` in a ``width``-bit family."""
    if width == 32:
        return IPv4Network((start, prefixlen))
    return IPv6Network((start, prefixlen))


def _runs(prefixes: Iterable[Prefix], *, join: bool = True) -> dict[int, list[tuple[int, int]]]:
    """Per address width, the addresses of ``prefixes`` as sorted, merged half-open runs;
    ``join=False`` merges only overlapping prefixes, not adjacent ones."""
    by_width: dict[int, list[tuple[int, int]]] = {}
    for p in prefixes:
        width, start, stop = span_of(p)
        by_width.setdefault(width, []).append((start, stop))
    for width, runs in by_width.items():
        runs.sort()
        merged: list[tuple[int, int]] = []
        for start, stop in runs:
            if merged and (start < merged[-1][1] or (join and start == merged[-1][1])):
                if stop > merged[-1][1]:
                    merged[-1] = (merged[-1][0], stop)
            else:
                merged.append((start, stop))
        by_width[width] = merged
    return by_width


def free_runs(
    space: Iterable[Prefix], removed: Iterable[Prefix], *, join: bool = True
) -> list[FreeRun]:
    """``space`` minus ``removed`` as maximal runs of addresses, sorted by (width, start).

    ``join=False`` keeps adjacent prefixes of ``space`` apart, so that no run (and no block
    chosen from it) straddles two of them: a claim must lie inside one PREFIX_MANAGED of
    its parent (§11.4.3: "within the address space managed"; one held prefix each), and a
    domain's two adjacent prefixes may have different parents and lifetimes."""
    cuts = _runs(removed)
    out: list[FreeRun] = []
    for width, runs in sorted(_runs(space, join=join).items()):
        holes = cuts.get(width, [])
        i = 0
        for start, stop in runs:
            # Holes are sorted and disjoint, and so are the runs: one forward sweep.
            while i < len(holes) and holes[i][1] <= start:
                i += 1
            j = i
            while start < stop and j < len(holes) and holes[j][0] < stop:
                if holes[j][0] > start:
                    out.append((width, start, holes[j][0]))
                start = max(start, holes[j][1])
                j += 1
            if start < stop:
                out.append((width, start, stop))
    return out


def aligned_blocks(start: int, stop: int, width: int) -> Iterator[tuple[int, int]]:
    """The maximal aligned blocks of ``[start, stop)``, in address order, as ``(start, k)``
    for a block of 2**k addresses: the fewest prefixes with exactly these addresses."""
    while start < stop:
        k = (start & -start).bit_length() - 1 if start else width
        k = min(k, (stop - start).bit_length() - 1)
        yield start, k
        start += 1 << k


def subtract(space: Iterable[Prefix], removed: Iterable[Prefix]) -> list[Prefix]:
    """``space`` minus ``removed``, as disjoint prefixes (the fewest), sorted."""
    runs = free_runs(space, removed)
    result = [
        prefix_at(width, block, width - k)
        for width, start, stop in runs
        for block, k in aligned_blocks(start, stop, width)
    ]
    if len({width for width, _, _ in runs}) > 1:  # one family comes out sorted already
        result.sort(key=lambda p: (int(p.network_address), p.prefixlen))
    return result


def intersection(a: Prefix, b: Prefix) -> Prefix | None:
    """The overlap of two prefixes, which is the longer one when they overlap."""
    if covers(a, b):
        return b
    if covers(b, a):
        return a
    return None


def prefix_length_for(size: int, max_prefixlen: int) -> int:
    """The prefix length of a block of at least ``size`` addresses."""
    return max_prefixlen - host_bits_for(size)


def host_bits_for(size: int) -> int:
    """``k`` of the smallest block of 2**k addresses holding ``size`` addresses."""
    return (size - 1).bit_length() if size > 1 else 0


def choose_free(
    space: Sequence[Prefix],
    occupied: Iterable[Prefix],
    size: int,
    rng: Randomness,
) -> Prefix | None:
    """A free, aligned block of ``size`` addresses inside one prefix of ``space``, or None.

    Best fit: the block is carved from the smallest free prefix that can hold it, so large
    free prefixes stay whole for later expansion (RFC 2909 §17.1.1 aims at the same);
    among equally small free prefixes one is drawn at random so that domains choosing at
    once rarely collide.  This is ``Strategy.BEST_FIT`` of :mod:`masc.protocol.allocation`.
    """
    if not space:
        return None
    need = host_bits_for(size)
    best = -1  # k of the smallest fitting free block so far
    candidates: list[tuple[int, int]] = []  # (width, start), in address order
    for width, start, stop in free_runs(space, occupied, join=False):
        if need > width or stop - start < 1 << need:
            continue
        for block, k in aligned_blocks(start, stop, width):
            if k < need or (best != -1 and k > best):
                continue
            if k != best:
                best, candidates = k, []
            candidates.append((width, block))
    if not candidates:
        return None
    width, block = candidates[rng.randrange(0, len(candidates))]
    # The lowest aligned block of the chosen free prefix: same start, longer mask.
    return prefix_at(width, block, width - need)
