"""Address x time reservations and the choice of addresses (RFC 2730 §2.12, §3.8, §3.11).

Theory of operation.  An address is never given to two leases whose times could meet.  A
lease from ``start`` to ``end`` *reserves* its addresses from ``start - padding`` to
``end + padding``, where ``padding`` is [EXTRA-ALLOCATION-TIME] (§2.12: "ensuring that
multicast addresses are allocated for an extra period of time ... on either side of the
lease given to the client", so that a client or a session announcement whose clock is off
by less than that cannot collide with the next user).  Two reservations of one address
never overlap in (padded) time; a new lease therefore starts at least ``2 * padding`` after
the previous lease of the same address ended.

:class:`Pool` holds the reservations of one address family, keyed by an owner (a lease or an
offer).  Addresses are ints (``int(IPv4Address)``) and sets of addresses are *blocks*:
sorted, disjoint, non-adjacent inclusive ``(low, high)`` pairs, so that a /8 costs one pair.
The pool checks nothing on ``reserve`` (a restart must restore what the store holds even if
the settings changed); the server asks :meth:`Pool.free` first.

:func:`choose` picks ``minimum..desired`` addresses from free blocks, preferring few blocks:
the whole request from the smallest free block that holds it (best fit, which keeps large
blocks whole for large requests), else from the largest blocks first (fewest pieces).
Costs: the pool keeps every reserved block in an address-sorted index.  ``free`` walks the
index between the first and last candidate address (O(log R + k log k) for the k blocks
there), ``latest_end`` and ``conflicts`` only the blocks meeting theirs; ``reserve`` and
``drop`` are a binary search and a list insertion per block.
"""

from __future__ import annotations

import bisect
from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from masc.madcap.messages import AddressRange

__all__ = [
    "MAX_BLOCK",
    "Block",
    "Pool",
    "Reservation",
    "blocks_of",
    "choose",
    "intersect",
    "normalise",
    "ranges_of",
    "size",
    "subtract",
]

Block = tuple[int, int]  # inclusive (low, high) address ints
MAX_BLOCK = 0xFFFF  # §3.11: a block size is two octets


def normalise(blocks: Iterable[Block]) -> tuple[Block, ...]:
    """Sorted, disjoint, adjacent ones merged; empty pairs (low > high) dropped."""
    out: list[Block] = []
    for low, high in sorted(b for b in blocks if b[0] <= b[1]):
        if out and low <= out[-1][1] + 1:
            if high > out[-1][1]:
                out[-1] = (out[-1][0], high)
        else:
            out.append((low, high))
    return tuple(out)


def size(blocks: Iterable[Block]) -> int:
    return sum(high - low + 1 for low, high in blocks)


def subtract(blocks: Sequence[Block], taken: Sequence[Block]) -> tuple[Block, ...]:
    """``blocks`` minus ``taken``; both normalised."""
    out: list[Block] = []
    j = 0
    for low, high in blocks:
        while j < len(taken) and taken[j][1] < low:
            j += 1
        k = j
        cursor = low
        while k < len(taken) and taken[k][0] <= high:
            if taken[k][0] > cursor:
                out.append((cursor, taken[k][0] - 1))
            cursor = max(cursor, taken[k][1] + 1)
            k += 1
        if cursor <= high:
            out.append((cursor, high))
    return tuple(out)


def intersect(a: Sequence[Block], b: Sequence[Block]) -> tuple[Block, ...]:
    """``a`` and ``b`` in common; both normalised."""
    out: list[Block] = []
    i = j = 0
    while i < len(a) and j < len(b):
        low, high = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if low <= high:
            out.append((low, high))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def blocks_of(ranges: Iterable[AddressRange]) -> tuple[Block, ...]:
    """§3.11 List of Address Ranges -> blocks."""
    return normalise((int(r.start), int(r.start) + r.count - 1) for r in ranges)


def ranges_of(blocks: Iterable[Block], *, ipv6: bool) -> tuple[AddressRange, ...]:
    """Blocks -> §3.11 entries, each at most 65535 addresses (the two-octet block size)."""
    make = IPv6Address if ipv6 else IPv4Address
    out: list[AddressRange] = []
    for low, high in blocks:
        while low <= high:
            count = min(high - low + 1, MAX_BLOCK)
            out.append(AddressRange(make(low), count))
            low += count
    return tuple(out)


def choose(
    free: Sequence[Block], minimum: int, desired: int, *, max_pieces: int | None = None
) -> tuple[Block, ...] | None:
    """§3.8: between ``minimum`` and ``desired`` addresses (as many as there are, up to
    ``desired``) from the normalised ``free`` blocks, in at most ``max_pieces`` blocks, or
    None when fewer than ``minimum`` can be had.  Prefers one block: the smallest free block
    holding the whole request (lowest address first on ties); else the largest blocks
    first, so the answer has as few ranges as the free space allows (and, with a bound on
    the pieces, as many addresses as it can)."""
    if minimum > desired or desired < 1:
        raise ValueError(f"need 1 <= desired and minimum <= desired, got {minimum}..{desired}")
    if max_pieces is not None and max_pieces < 1:
        raise ValueError(f"max_pieces must be >= 1, got {max_pieces}")
    available = size(free)
    if available < max(minimum, 1):
        return None
    want = min(desired, available)
    fitting = [b for b in free if b[1] - b[0] + 1 >= want]
    if fitting:
        low, _ = min(fitting, key=lambda b: (b[1] - b[0], b[0]))
        return ((low, low + want - 1),)
    picked: list[Block] = []
    for low, high in sorted(free, key=lambda b: (-(b[1] - b[0]), b[0])):
        take = min(high - low + 1, want)
        picked.append((low, low + take - 1))
        want -= take
        if not want or len(picked) == max_pieces:
            break
    if size(picked) < max(minimum, 1):
        return None
    return normalise(picked)


@dataclass(frozen=True, slots=True)
class Reservation:
    """``blocks`` are held from ``start`` to ``end`` (padded times, ``end`` exclusive)."""

    owner: Hashable
    blocks: tuple[Block, ...]
    start: float
    end: float

    def meets(self, blocks: Sequence[Block], start: float, end: float) -> bool:
        return self.start < end and start < self.end and bool(intersect(self.blocks, blocks))


class Pool:
    """The reservations of one address family (see the module docstring).

    ``reserve``/``free``/``conflicts`` take *lease* times and pad them by ``padding``;
    ``reservations()`` shows the padded times.

    Every block of every reservation is also kept in an address-sorted index, so that a
    question about some addresses visits only the reservations near them: an allocation
    from one MASC grant among many, or a renewal, does not walk every lease of the server.
    """

    def __init__(self, *, padding: float) -> None:
        if padding < 0:
            raise ValueError(f"padding must be >= 0, got {padding}")
        self.padding = padding
        self._held: dict[Hashable, Reservation] = {}
        # (low, high, serial, reservation) of every reserved block, sorted (the unique
        # serial keeps comparisons from reaching the reservation).
        self._index: list[tuple[int, int, int, Reservation]] = []
        self._serials: dict[Hashable, int] = {}
        self._next_serial = 0
        # high - low of the widest block ever indexed: no block starting further below an
        # address than this can reach it.
        self._widest = 0

    def reserve(
        self, owner: Hashable, blocks: Iterable[Block], *, start: float, end: float
    ) -> None:
        """Hold ``blocks`` for ``owner`` over the lease ``start..end`` (replacing what the
        owner held before).  Unchecked: call :meth:`free` or :meth:`conflicts` first."""
        if end < start:
            raise ValueError(f"end {end} before start {start}")
        reservation = Reservation(
            owner, normalise(blocks), start - self.padding, end + self.padding
        )
        self.drop(owner)
        serial = self._next_serial
        self._next_serial += 1
        self._held[owner] = reservation
        self._serials[owner] = serial
        for low, high in reservation.blocks:
            bisect.insort(self._index, (low, high, serial, reservation))
            self._widest = max(self._widest, high - low)

    def drop(self, owner: Hashable) -> Reservation | None:
        reservation = self._held.pop(owner, None)
        if reservation is None:
            return None
        serial = self._serials.pop(owner)
        for low, high in reservation.blocks:
            i = bisect.bisect_left(self._index, (low, high, serial))
            del self._index[i]  # (low, high, serial) sorts just before its 4-tuple
        return reservation

    def reservations(self) -> list[Reservation]:
        return list(self._held.values())

    def blocks_within(self, low: int, high: int) -> list[tuple[Reservation, Block]]:
        """Each reserved block that shares an address with ``low..high``, with its
        reservation (a reservation once per such block), in address order."""
        return [
            (reservation, (block_low, block_high))
            for block_low, block_high, _, reservation in self._slice(low, high)
            if block_high >= low
        ]

    def _slice(self, low: int, high: int) -> list[tuple[int, int, int, Reservation]]:
        """The index entries that may share an address with ``low..high`` (a superset:
        those starting within the widest block below ``low`` may end before it)."""
        index = self._index
        i = bisect.bisect_left(index, (low - self._widest,))
        j = bisect.bisect_left(index, (high + 1,), lo=i)
        return index[i:j]

    def _near(self, blocks: Sequence[Block]) -> dict[int, Reservation]:
        """The reservations with a block sharing an address with ``blocks``, by serial."""
        found: dict[int, Reservation] = {}
        for low, high in blocks:
            for reservation, _ in self.blocks_within(low, high):
                found.setdefault(self._serials[reservation.owner], reservation)
        return found

    def conflicts(
        self,
        blocks: Sequence[Block],
        *,
        start: float,
        end: float,
        ignore: Iterable[Hashable] = (),
    ) -> Iterator[Reservation]:
        """Reservations other than ``ignore``'s that a lease of ``blocks`` over
        ``start..end`` would meet."""
        skip = set(ignore)
        low, high = start - self.padding, end + self.padding
        for reservation in self._near(blocks).values():
            if reservation.owner not in skip and reservation.meets(blocks, low, high):
                yield reservation

    def free(
        self,
        candidates: Sequence[Block],
        *,
        start: float,
        end: float,
        ignore: Iterable[Hashable] = (),
    ) -> tuple[Block, ...]:
        """The addresses of ``candidates`` (normalised) that a lease over ``start..end``
        may take: those no other reservation holds at any padded moment of it."""
        if not candidates:
            return ()
        # One walk over the index between the first and the last candidate address; a
        # block meeting the time window is busy wherever it lies (subtracting it removes
        # exactly the shared addresses).
        skip = {self._serials[owner] for owner in ignore if owner in self._serials}
        low, high = start - self.padding, end + self.padding
        busy: list[Block] = []
        for block_low, block_high, serial, held in self._slice(candidates[0][0], candidates[-1][1]):
            if held.start < high and low < held.end and serial not in skip:
                # The index is in address order: merge as we go (what normalise would do).
                if busy and block_low <= busy[-1][1] + 1:
                    if block_high > busy[-1][1]:
                        busy[-1] = (busy[-1][0], block_high)
                else:
                    busy.append((block_low, block_high))
        return subtract(candidates, busy)

    def latest_end(
        self, blocks: Sequence[Block], *, start: float, ignore: Iterable[Hashable] = ()
    ) -> float | None:
        """The latest lease end for ``blocks`` starting at ``start`` that meets no other
        reservation (``inf`` when nothing lies ahead), or None when even a lease of length
        zero at ``start`` would collide."""
        skip = set(ignore)
        low = start - self.padding
        limit = float("inf")
        for reservation in self._near(blocks).values():
            if reservation.owner in skip or reservation.end <= low:
                continue
            if reservation.start < start + self.padding:
                return None
            limit = min(limit, reservation.start - self.padding)
        return limit
