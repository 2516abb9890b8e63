"""The scopes a MADCAP server serves (RFC 2730 §2.7, §2.8, §2.10, §3.5, §3.10; RFC 2907 §2-§3).

A :class:`Scope` is the operator's definition of one multicast scope zone: its address range
(the Scope ID is its first address, §3.5), its TTL (§2.8), its names (§3.10), which part of
it this server may allocate from, the lease limits, and the scopes it nests inside (RFC 2907,
learnt here "by means of static configuration", §3).  It is a value: the server core builds
its tables from a sequence of them once.

Also here, pure functions over scopes:

* :func:`choose_names`: the zone names to return for a Requested Language (§3.10);
* :func:`nesting_matrix` and :func:`scope_order`: the RFC 2907 §3.2 matrix of the
  transitive "X nests inside Y" relation (built by :mod:`masc.madcap.nesting`) and the
  smallest-to-largest order of the Multicast Scope List (§3.10 "SHOULD be listed from
  smallest ... to largest");
* :func:`check_scopes`: the rules a set of scopes must obey together (unique names, unique
  Scope IDs, §3.10 "The Scope IDs of entries in the list MUST be unique", known ``inside``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Literal

from masc.madcap import nesting
from masc.madcap.constants import AddressFamily
from masc.madcap.messages import Address, NestingState, ScopeEntry, ScopeName

__all__ = [
    "Scope",
    "check_scopes",
    "choose_names",
    "nesting_matrix",
    "scope_entry",
    "scope_order",
]

# A zone holds at most this many names on the wire (§3.10 Name Count is one octet).
MAX_NAMES = 255


def _family(address: Address) -> AddressFamily:
    return AddressFamily.IPV4 if isinstance(address, IPv4Address) else AddressFamily.IPV6


@dataclass(frozen=True, slots=True, kw_only=True)
class Scope:
    """One scope zone served by this server.

    ``ranges`` are the inclusive address ranges a ``static`` scope allocates from (empty: the
    scope is listed by GETINFO but nothing is allocated from it); ``exclusions`` are taken
    out of them (and out of the grants of a ``masc`` scope).  A ``masc`` scope allocates only
    from the grants the MASC daemon gives it (``MadcapServer.set_grants``), clipped to the
    zone, so its ``ranges`` must be empty.  Leases last ``default_lease`` when the client asks
    for no Lease Time and never more than ``max_lease``.  ``inside`` names the scopes this one
    nests inside (RFC 2907 "X/Y"); the relation is closed transitively by the server.
    """

    name: str
    first: Address
    last: Address
    names: tuple[ScopeName, ...]
    ttl: int = 255  # §2.8: "SHOULD be 255" where administrative scoping is in use
    ranges: tuple[tuple[Address, Address], ...] = ()
    exclusions: tuple[tuple[Address, Address], ...] = ()
    default_lease: float = 3600.0
    max_lease: float = 30 * 86400.0
    source: Literal["static", "masc"] = "static"
    inside: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a scope needs a name")
        if type(self.first) is not type(self.last) or self.first > self.last:  # type: ignore[operator]
            raise ValueError(f"scope {self.name!r}: first {self.first} must be <= last {self.last}")
        if int(self.last) - int(self.first) < 1:
            # §2.10: the server multicast address is last - 1, which must lie in the zone.
            raise ValueError(f"scope {self.name!r}: a zone holds at least two addresses")
        if not 1 <= self.ttl <= 255:
            raise ValueError(f"scope {self.name!r}: ttl {self.ttl} not in 1..255")
        if not 1 <= len(self.names) <= MAX_NAMES:
            raise ValueError(f"scope {self.name!r}: needs 1..{MAX_NAMES} names (§3.10)")
        for entry in self.names:
            if not entry.language or not entry.name:
                # §3.10: Lang Length and Name Length "MUST NOT be zero".
                raise ValueError(f"scope {self.name!r}: empty language tag or name")
            if not entry.language.isascii():
                raise ValueError(f"scope {self.name!r}: language tag {entry.language!r}")
        for kind, pairs in (("range", self.ranges), ("exclusion", self.exclusions)):
            for low, high in pairs:
                if type(low) is not type(self.first) or type(high) is not type(self.first):
                    raise ValueError(f"scope {self.name!r}: {kind} {low}-{high} family")
                if not self.first <= low <= high <= self.last:  # type: ignore[operator]
                    raise ValueError(
                        f"scope {self.name!r}: {kind} {low}-{high} not inside the zone "
                        f"{self.first}-{self.last}"
                    )
        if self.source == "masc" and self.ranges:
            raise ValueError(f"scope {self.name!r}: a masc scope takes its ranges from grants")
        if self.source not in ("static", "masc"):
            raise ValueError(f"scope {self.name!r}: unknown source {self.source!r}")
        if not 0 < self.default_lease <= self.max_lease:
            raise ValueError(f"scope {self.name!r}: need 0 < default_lease <= max_lease")
        if self.name in self.inside:
            raise ValueError(f"scope {self.name!r} cannot nest inside itself")

    @property
    def scope_id(self) -> Address:
        """§3.5: "The Scope ID is the first multicast address in the scope"."""
        return self.first

    @property
    def server_address(self) -> Address:
        """§2.10: the MADCAP Server Multicast Address, "a relative offset of -1 from the last
        address of a multicast scope"."""
        return self.last - 1

    @property
    def family(self) -> AddressFamily:
        return _family(self.first)


def choose_names(scope: Scope, language: str | None) -> tuple[ScopeName, ...]:
    """§3.10: the names to list for ``scope`` answering a GETINFO.

    No Requested Language: all names ("SHOULD return all zone names").  Otherwise at most one
    ("MUST return no more than one"): the first whose tag equals ``language`` compared
    case-insensitively as ASCII; else the first flagged default (0x80, "SHOULD give
    preference"); else the first name.  Local policy: the match is exact, not an RFC 1766
    prefix match ("en" does not match "en-GB"), as §3.10 describes a plain comparison.
    """
    if language is None:
        return scope.names
    wanted = language.lower()
    for preference in (
        lambda n: n.language.lower() == wanted,
        lambda n: n.default,
        lambda n: True,
    ):
        for entry in scope.names:
            if preference(entry):
                return (entry,)
    return ()


def scope_entry(scope: Scope, language: str | None) -> ScopeEntry:
    """§3.10: the Multicast Scope List tuple of ``scope``."""
    return ScopeEntry(scope.first, scope.last, scope.ttl, choose_names(scope, language))


def check_scopes(scopes: Sequence[Scope]) -> None:
    """The rules a server's scopes obey together; ValueError naming the first one broken."""
    names = [scope.name for scope in scopes]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"scope names must be unique: {', '.join(duplicates)}")
    ids = [scope.scope_id for scope in scopes]
    clashing = sorted({str(i) for i in ids if ids.count(i) > 1})
    if clashing:
        # §3.10: "The Scope IDs of entries in the list MUST be unique".
        raise ValueError(f"Scope IDs (first addresses) must be unique: {', '.join(clashing)}")
    known = set(names)
    for scope in scopes:
        missing = [name for name in scope.inside if name not in known]
        if missing:
            raise ValueError(f"scope {scope.name!r}: inside unknown scope(s) {missing}")


def nesting_matrix(scopes: Sequence[Scope]) -> NestingState:
    """RFC 2907 §3.2: rows[x][y] is "scope x nests inside scope y" over ``scopes`` in the
    given order (the order of the Multicast Scope List it travels with, §3.3), closed
    transitively (X/Y and Y/Z imply X/Z, as Figure 4's matrix shows)."""
    return nesting.closure(
        [scope.name for scope in scopes],
        [(scope.name, outer) for scope in scopes for outer in scope.inside],
    )


def scope_order(scopes: Sequence[Scope]) -> tuple[Scope, ...]:
    """§3.10: "the scopes SHOULD be listed from smallest (topologically speaking) to
    largest".  A scope nesting inside more scopes is smaller (if X/Y then X is inside
    everything Y is inside, and Y too), so sorting by that count, descending, is a linear
    extension of the nesting order; ties keep the configured order."""
    state = nesting_matrix(scopes)
    rank = {scope.name: len(nesting.larger(state, i)) for i, scope in enumerate(scopes)}
    return tuple(sorted(scopes, key=lambda s: -rank[s.name]))
