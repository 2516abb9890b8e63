"""The scope nesting matrix of RFC 2907 (§2, §3.2, §5), as plain functions.

``NestingState.rows[x][y]`` is the relation x/y, "scope x nests inside scope y", over the
order of the Multicast Scope List it travels with.  So **row x** lists the scopes x is
inside (the larger ones) and **column y** the scopes inside y (the smaller ones).

A server learns some relations (static configuration here) and must announce the implied
ones too: Figure 4 lists S1/S2, S2/S3, ... and its matrix has S1/S7.  :func:`closure` is
that transitive closure.  Both x/y and y/x may be true (§2 case 4, "exactly the same
border"); the diagonal x/x is never on the wire and always False here.

The wire encoding itself (bit packing, padding) is in :mod:`masc.madcap.codec`.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import TypeVar

from masc.madcap.messages import NestingState, Options

__all__ = ["closure", "larger", "nesting_for", "relations", "smaller", "usable"]

K = TypeVar("K", bound=Hashable)


def closure(keys: Sequence[K], inside: Iterable[tuple[K, K]]) -> NestingState:
    """The matrix over ``keys`` (in that order) of the transitive closure of the given
    (inner, outer) relations.  A relation naming a key not in ``keys`` is a ValueError (our
    own misuse); (k, k) and relations implied through a cycle back to k are dropped: the
    diagonal stays False (RFC 2907 §3.2)."""
    index = {key: i for i, key in enumerate(keys)}
    if len(index) != len(keys):
        raise ValueError("RFC 2907: scope keys must be unique")
    count = len(keys)
    outer: list[set[int]] = [set() for _ in range(count)]
    for inner, out in inside:
        if inner not in index or out not in index:
            raise ValueError(f"nesting relation {inner!r}/{out!r} names an unknown scope")
        outer[index[inner]].add(index[out])
    # Warshall: through each intermediate scope k, whatever is inside k is inside what k is.
    for k in range(count):
        for i in range(count):
            if k in outer[i]:
                outer[i] |= outer[k]
    return NestingState(
        tuple(tuple(j in outer[i] and j != i for j in range(count)) for i in range(count))
    )


def larger(state: NestingState, scope: int) -> tuple[int, ...]:
    """Row ``scope``: the indices of the scopes it nests inside, in list order."""
    return tuple(j for j, bit in enumerate(state.rows[scope]) if bit)


def smaller(state: NestingState, scope: int) -> tuple[int, ...]:
    """Column ``scope``: the indices of the scopes nested inside it, in list order."""
    return tuple(i for i, row in enumerate(state.rows) if row[scope])


def relations(state: NestingState) -> frozenset[tuple[int, int]]:
    """Every true x/y as an (inner, outer) index pair."""
    return frozenset((i, j) for i, row in enumerate(state.rows) for j, bit in enumerate(row) if bit)


def usable(state: NestingState, scope_count: int) -> bool:
    """RFC 2907 §5: the Count "MUST be identical to the Count field in the preceding
    Multicast [Scope] List option. If this is not the case the scope nesting state
    information MUST BE ignored"."""
    return state.count == scope_count


def nesting_for(options: Options) -> NestingState | None:
    """The nesting state of a message to act on: None when absent, when there is no
    Multicast Scope List to index it (RFC 2907 §3.3), or when the counts differ (§5)."""
    if options.nesting is None or options.scope_list is None:
        return None
    return options.nesting if usable(options.nesting, len(options.scope_list)) else None
