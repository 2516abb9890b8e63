"""Address-set arithmetic on prefixes (RFC 2909 §4.1, §5.1).

MASC domains hold *sets* of addresses: the managed set, the locally-allocated set, a
parent's PREFIX_MANAGED space minus what siblings claim.  These helpers keep such sets as
lists of disjoint prefixes of one family, which is what the claim engine and the G-RIB need.
The choice of *which* free prefix to claim lives here in its simplest form (best fit); the
Appendix A allocator replaces it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from ipaddress import IPv4Network, IPv6Network, collapse_addresses, ip_network
from typing import Protocol

from masc.protocol.wire.messages import Prefix


class Randomness(Protocol):
    """The slice of ``random.Random`` the core uses; injected so runs are reproducible."""

    def random(self) -> float: ...

    def randrange(self, start: int, stop: int, /) -> int: ...


def covers(outer: Prefix, inner: Prefix) -> bool:
    """``inner`` lies wholly inside ``outer`` (same family)."""
    return (
        outer.version == inner.version
        and outer.prefixlen <= inner.prefixlen
        and int(inner.network_address) >> (outer.max_prefixlen - outer.prefixlen)
        == int(outer.network_address) >> (outer.max_prefixlen - outer.prefixlen)
    )


def overlaps(a: Prefix, b: Prefix) -> bool:
    """Two prefixes share an address: one covers the other."""
    return covers(a, b) or covers(b, a)


def collapse(prefixes: Iterable[Prefix]) -> list[Prefix]:
    """The smallest list of disjoint prefixes with the same addresses, sorted."""
    v4 = [p for p in prefixes if isinstance(p, IPv4Network)]
    v6 = [p for p in prefixes if isinstance(p, IPv6Network)]
    out: list[Prefix] = list(collapse_addresses(v4))
    out += collapse_addresses(v6)
    return out


def subtract(space: Iterable[Prefix], removed: Iterable[Prefix]) -> list[Prefix]:
    """``space`` minus ``removed``, as disjoint prefixes."""
    result = collapse(space)
    for cut in collapse(removed):
        nxt: list[Prefix] = []
        for piece in result:
            if covers(cut, piece):
                continue
            if covers(piece, cut):
                nxt.extend(piece.address_exclude(cut))  # type: ignore[arg-type]
            else:
                nxt.append(piece)
        result = nxt
    return sorted(result, key=lambda p: (int(p.network_address), p.prefixlen))


def intersection(a: Prefix, b: Prefix) -> Prefix | None:
    """The overlap of two prefixes, which is the longer one when they overlap."""
    if covers(a, b):
        return b
    if covers(b, a):
        return a
    return None


def prefix_length_for(size: int, max_prefixlen: int) -> int:
    """The prefix length of a block of at least ``size`` addresses."""
    if size <= 1:
        return max_prefixlen
    return max_prefixlen - (size - 1).bit_length()


def choose_free(
    space: Sequence[Prefix],
    occupied: Iterable[Prefix],
    size: int,
    rng: Randomness,
) -> Prefix | None:
    """A free, aligned block of ``size`` addresses inside ``space``, or None.

    Best fit: the block is carved from the smallest free prefix that can hold it, so large
    free prefixes stay whole for later expansion (RFC 2909 §17.1.1 aims at the same);
    among equally small free prefixes one is drawn at random so that domains choosing at
    once rarely collide.
    """
    if not space:
        return None
    length = prefix_length_for(size, space[0].max_prefixlen)
    free = [p for p in subtract(space, occupied) if p.prefixlen <= length]
    if not free:
        return None
    best = max(p.prefixlen for p in free)
    candidates = [p for p in free if p.prefixlen == best]
    chosen = candidates[rng.randrange(0, len(candidates))]
    # The lowest aligned block: same network address, longer mask.
    return ip_network((chosen.network_address, length))
