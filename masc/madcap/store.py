"""The MADCAP server's leases on disk: one SQLite file in WAL mode (RFC 2730 §2.2.5; RFC 2908 §3).

RFC 2908 §3 asks a MAAS for "stable storage, or an equivalent robustness mechanism, so that
uniqueness survives MAAS crashes and reboots": an address a client was told it holds must not
be handed to anyone else after a restart.  So the server shell writes every lease the core
creates, changes or deletes here, and the transaction is committed -- durably: WAL with
``synchronous=FULL`` fsyncs the log at every commit -- *before* the ACK that announces it is
sent.  A ``kill -9`` at any moment loses at most a lease no client was told about.

Two tables:

* ``leases``: one row per Lease Identifier (§2.4), with its scope, its address ranges (§3.11,
  kept as JSON ``[["239.192.1.7", 2], ...]``), start, end, when it was granted and the
  client it was granted to (for the logs);
* ``grants``: the space the MASC daemon last granted each ``masc`` scope (docs/maas-api.md).
  A restarted server that cannot reach the daemon yet still knows which addresses are its
  own until they expire, so it renews the leases it holds in them instead of refusing them.

Safety around the file, as for the daemon's store (masc/store/sqlite.py): created 0600 in a
directory created 0700; an exclusive ``flock`` while open so that two servers pointed at one
file are refused rather than both handing out its addresses; a file that is not SQLite, or an
SQLite file of another program (``PRAGMA application_id``), or a newer schema, is refused
with a :class:`LeaseStoreError` naming the file and left untouched.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Final

from masc.madcap.messages import AddressRange
from masc.madcap.server import Grant, Lease
from masc.store.files import LockedDatabase

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "LeaseStore", "LeaseStoreError"]

# "MDCP": tells this file from the daemon's store and from other programs' databases.
APPLICATION_ID: Final = 0x4D444350
SCHEMA_VERSION: Final = 1
BUSY_TIMEOUT_MS: Final = 1_000

_SCHEMA: Final = (
    """CREATE TABLE leases (
        lease_id BLOB PRIMARY KEY,
        scope TEXT NOT NULL,
        ranges TEXT NOT NULL,
        start REAL NOT NULL,
        "end" REAL NOT NULL,
        granted_at REAL NOT NULL,
        client TEXT NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE grants (
        scope TEXT NOT NULL,
        prefix TEXT NOT NULL,
        expires REAL NOT NULL,
        active INTEGER NOT NULL,
        PRIMARY KEY (scope, prefix)
    ) WITHOUT ROWID""",
)
_UPSERT_LEASE: Final = (
    'INSERT OR REPLACE INTO leases (lease_id, scope, ranges, start, "end", granted_at, client) '
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


class LeaseStoreError(Exception):
    """The lease file cannot be opened, read or written; the message names the file."""


def _ranges_text(ranges: Sequence[AddressRange]) -> str:
    return json.dumps([[str(r.start), r.count] for r in ranges])


def _ranges_of(text: str) -> tuple[AddressRange, ...]:
    return tuple(AddressRange(ip_address(start), count) for start, count in json.loads(text))


class LeaseStore(LockedDatabase):
    """The server's leases and grants; see the module docstring.  Create with :meth:`open`."""

    error = LeaseStoreError
    what = "lease store"
    in_use = "another `masc madcap` with the same [server] database?"

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> LeaseStore:
        """Open (creating if missing) the lease file at ``path``.  Raises LeaseStoreError."""
        return cls._open_file(Path(path), cls)

    # -- reading ---------------------------------------------------------------------------

    def leases(self) -> list[Lease]:
        """Every stored lease, in Lease Identifier order."""
        sql = 'SELECT lease_id, scope, ranges, start, "end", granted_at, client FROM leases'
        try:
            rows = self._connection().execute(sql + " ORDER BY lease_id").fetchall()
            return [
                Lease(
                    lease_id=bytes(lid),
                    scope=scope,
                    ranges=_ranges_of(ranges),
                    start=start,
                    end=end,
                    granted_at=granted_at,
                    client=client,
                )
                for lid, scope, ranges, start, end, granted_at, client in rows
            ]
        except (sqlite3.Error, ValueError, TypeError) as exc:
            raise LeaseStoreError(f"{self._path}: reading the leases failed: {exc}") from exc

    def grants(self) -> dict[str, list[Grant]]:
        """The last grants of each ``masc`` scope, by scope name."""
        out: dict[str, list[Grant]] = {}
        sql = "SELECT scope, prefix, expires, active FROM grants ORDER BY scope, prefix"
        try:
            for scope, prefix, expires, active in self._connection().execute(sql):
                grant = Grant(prefix=ip_network(prefix), expires=expires, active=active != 0)
                out.setdefault(scope, []).append(grant)
        except (sqlite3.Error, ValueError) as exc:
            raise LeaseStoreError(f"{self._path}: reading the grants failed: {exc}") from exc
        return out

    # -- writing ---------------------------------------------------------------------------

    def apply(self, *, saved: Iterable[Lease] = (), deleted: Iterable[bytes] = ()) -> None:
        """Write ``saved`` (new or changed leases) and delete ``deleted`` (Lease Identifiers)
        in one transaction, durable when this returns.  Nothing given writes nothing."""
        rows = [
            (
                lease.lease_id,
                lease.scope,
                _ranges_text(lease.ranges),
                lease.start,
                lease.end,
                lease.granted_at,
                lease.client,
            )
            for lease in saved
        ]
        gone = [(lease_id,) for lease_id in deleted]
        if not rows and not gone:
            return
        with self._transaction("saving leases") as conn:
            if gone:
                conn.executemany("DELETE FROM leases WHERE lease_id = ?", gone)
            if rows:
                conn.executemany(_UPSERT_LEASE, rows)

    def save_grants(self, grants: Mapping[str, Sequence[Grant]]) -> None:
        """Make ``grants`` the stored grants of the scopes it names (others are kept)."""
        with self._transaction("saving grants") as conn:
            for scope, scope_grants in grants.items():
                conn.execute("DELETE FROM grants WHERE scope = ?", (scope,))
                conn.executemany(
                    "INSERT INTO grants (scope, prefix, expires, active) VALUES (?, ?, ?, ?)",
                    [(scope, str(g.prefix), g.expires, int(g.active)) for g in scope_grants],
                )

    # -- internals -------------------------------------------------------------------------

    def _prepare(self) -> None:
        conn = self._connection()
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        version = self._identify(conn)
        if version > SCHEMA_VERSION:
            raise LeaseStoreError(
                f"{self._path}: the lease store has schema version {version}, newer than this "
                f"masc's {SCHEMA_VERSION}; run a newer masc or move the file aside"
            )
        (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        if mode != "wal":
            raise LeaseStoreError(f"{self._path}: cannot switch to WAL (got {mode!r})")
        # Every COMMIT fsyncs the WAL: a lease is on disk before its ACK leaves.
        conn.execute("PRAGMA synchronous = FULL")
        if version == 0:
            with self._transaction("creating the lease store") as tx:
                for statement in _SCHEMA:
                    tx.execute(statement)
                tx.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                tx.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _identify(self, conn: sqlite3.Connection) -> int:
        """The file's schema version: 0 for a new, empty file."""
        try:
            (application_id,) = conn.execute("PRAGMA application_id").fetchone()
        except sqlite3.DatabaseError as exc:
            if exc.sqlite_errorname == "SQLITE_NOTADB":
                raise LeaseStoreError(
                    f"{self._path}: not a MADCAP lease store: not an SQLite database ({exc})"
                ) from exc
            raise
        tables = sorted(
            name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        )
        if application_id == APPLICATION_ID:
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            return int(version)
        if application_id == 0 and not tables:
            return 0
        raise LeaseStoreError(
            f"{self._path}: not a MADCAP lease store: an SQLite database of another program "
            f"(application_id {application_id:#010x}, tables: {', '.join(tables) or 'none'})"
        )
