"""What the durable store holds (RFC 2909 §13): plain, frozen records.

The records carry only plain types (str, int, float, bool, None) so that the store never
imports the engine and the engine never imports SQLite: the daemon converts between its own
state and these records at the boundary.  Prefixes are strings, stored as given; the daemon
writes canonical CIDR strings (``str(IPv4Network(...))``), so the same prefix always has the
same key.  Each record type has a primary key (noted on the class) which is also the key of
its SQLite table: within one saved collection no two records may share it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StoredAllocation:
    """A prefix allocated to the domain (or sub-allocated), with its lifetime.

    Key: ``(kind, prefix)``.  ``kind`` says which of the daemon's sets the prefix belongs to;
    ``parent`` identifies where it came from (``None`` for the global pool);
    ``timestamp``/``lifetime``/``origin_node`` are the claim's wire values (§8.3);
    ``allocated_at`` is the Unix time the waiting period ended; ``renewing`` False marks a
    prefix left to expire (App. A §17.1.4-§17.1.5).
    """

    kind: str
    prefix: str
    parent: int | None
    timestamp: int
    lifetime: int
    origin_node: int
    allocated_at: float
    renewing: bool = True


@dataclass(frozen=True, slots=True)
class StoredPending:
    """One of the domain's own claims still in its waiting period.

    Key: ``(kind, prefix, purpose)``.  §13 does not require claims in progress to be saved;
    keeping them lets a restarted daemon resume the claim instead of starting over.
    ``deadline`` is the Unix time the waiting period ends; ``extends`` names the prefix an
    expansion claim doubles (§5.3), if any; ``replaces`` the prefixes the domain stops
    renewing once this claim is allocated (§17.1.4: a larger prefix claimed at the prefix
    cap), which a restarted daemon would otherwise go on renewing beside it.
    """

    kind: str
    prefix: str
    claim_type: int
    timestamp: int
    lifetime: int
    holdtime: int
    parent: int | None
    purpose: str
    deadline: float
    extends: str | None
    replaces: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StoredGrant:
    """A piece of the domain's space handed to one MAAS.  Key: ``prefix``."""

    maas: str
    prefix: str
    expires: float
    active: bool
    granted_at: float


@dataclass(frozen=True, slots=True)
class StoredMaas:
    """A registered MAAS and the scopes it serves.  Key: ``name``."""

    name: str
    scopes: tuple[str, ...]
    registered_at: float


@dataclass(frozen=True, slots=True)
class HistoryRecord:
    """One line of claim history: a claim, a clash, a withdraw (append-only, pruned)."""

    at: float
    event: str
    prefix: str
    detail: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the store holds, each collection in primary-key order; history oldest first."""

    allocations: tuple[StoredAllocation, ...] = ()
    pending: tuple[StoredPending, ...] = ()
    grants: tuple[StoredGrant, ...] = ()
    maas: tuple[StoredMaas, ...] = ()
    history: tuple[HistoryRecord, ...] = ()
