"""Durable state of the daemon (RFC 2909 §13): records and the SQLite store."""

from masc.store.records import (
    HistoryRecord,
    Snapshot,
    StoredAllocation,
    StoredGrant,
    StoredMaas,
    StoredPending,
)
from masc.store.sqlite import DEFAULT_HISTORY_LIMIT, Store, StoreError

__all__ = [
    "DEFAULT_HISTORY_LIMIT",
    "HistoryRecord",
    "Snapshot",
    "Store",
    "StoreError",
    "StoredAllocation",
    "StoredGrant",
    "StoredMaas",
    "StoredPending",
]
