"""The store's schema, as the list of steps that build it (RFC 2909 §13 storage).

``MIGRATIONS[n]`` takes a file from schema version ``n`` to ``n + 1``; the current version is
``len(MIGRATIONS)``.  Version 0 is an empty file (no tables).  :class:`masc.store.Store`
applies each missing step in its own transaction together with the new version number, so a
crash during a migration leaves the file at the old version, intact.  To change the schema,
append one step (plain SQL statements; SQLite's DDL is transactional) and never edit a
shipped one: files in the field were built by it.

Every table's primary key is the key of its record type, so a save can upsert and delete by
key; there are no foreign keys (each collection is saved whole, and a MAAS's grants outlive
its registration).  ``WITHOUT ROWID`` keeps rows in key order, which is the order ``load``
returns them in, at no sorting cost.
"""

from __future__ import annotations

from typing import Final

# PRAGMA application_id: the 4 octets "MASC" in the SQLite header (offset 68), which is how
# `open` tells a masc store from another program's SQLite database.
APPLICATION_ID: Final = 0x4D415343

Migration = tuple[str, ...]

_V1: Final[Migration] = (
    f"PRAGMA application_id = {APPLICATION_ID}",
    "CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value) WITHOUT ROWID",
    """CREATE TABLE allocations (
        kind TEXT NOT NULL,
        prefix TEXT NOT NULL,
        parent INTEGER,
        timestamp INTEGER NOT NULL,
        lifetime INTEGER NOT NULL,
        origin_node INTEGER NOT NULL,
        allocated_at REAL NOT NULL,
        renewing INTEGER NOT NULL,
        PRIMARY KEY (kind, prefix)
    ) WITHOUT ROWID""",
    """CREATE TABLE pending (
        kind TEXT NOT NULL,
        prefix TEXT NOT NULL,
        claim_type INTEGER NOT NULL,
        timestamp INTEGER NOT NULL,
        lifetime INTEGER NOT NULL,
        holdtime INTEGER NOT NULL,
        parent INTEGER,
        purpose TEXT NOT NULL,
        deadline REAL NOT NULL,
        extends TEXT,
        PRIMARY KEY (kind, prefix, purpose)
    ) WITHOUT ROWID""",
    """CREATE TABLE grants (
        prefix TEXT PRIMARY KEY NOT NULL,
        maas TEXT NOT NULL,
        expires REAL NOT NULL,
        active INTEGER NOT NULL,
        granted_at REAL NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE maas (
        name TEXT PRIMARY KEY NOT NULL,
        scopes TEXT NOT NULL,
        registered_at REAL NOT NULL
    ) WITHOUT ROWID""",
    # Insertion order (id) is the history's order: `at` is wall time and may step back.
    """CREATE TABLE history (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        event TEXT NOT NULL,
        prefix TEXT NOT NULL,
        detail TEXT NOT NULL
    )""",
    "CREATE INDEX history_by_prefix ON history (prefix, id)",
)

# Version 2: what a pending claim replaces once allocated (§17.1.4; StoredPending), a JSON
# array of prefixes; claims saved by version 1 replace nothing, as their daemon believed.
_V2: Final[Migration] = ("ALTER TABLE pending ADD COLUMN replaces TEXT NOT NULL DEFAULT '[]'",)

MIGRATIONS: list[Migration] = [_V1, _V2]
