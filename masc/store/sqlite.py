"""The durable store: one SQLite file in WAL mode (RFC 2909 §13).

§13 says a MASC speaker with local storage should keep "the prefixes allocated by the local
domain" there rather than in its MAASs.  This store keeps those, the domain's own pending
claims, the per-MAAS grants and a bounded claim history, so that a restarted daemon restores
its state, keeps defending unexpired prefixes and re-learns the rest from its peers.

Theory of operation.  One task of the daemon owns the store and calls it synchronously (no
threads).  ``open`` reads every table into memory; ``save`` takes the *full current set* of
each collection it is given, diffs it against what it last wrote (dicts keyed by primary key,
O(n) in Python) and writes only the inserts, updates and deletes, all in one transaction that
is durable when ``save`` returns (WAL, ``synchronous=FULL``: the WAL is fsynced at every
commit).  Nothing changed means no transaction at all.  The daemon writes a prefix before it
announces it or grants it, so a crash between two saves loses at most what was never
announced: each save is atomic, and SQLite discards a half-written WAL tail on the next open
(its frames carry checksums and only frames up to the last commit count).

Safety around the file:
* created 0600 (and any missing directory 0700): it names the domain's address space and
  its MAASs;
* held with an exclusive ``flock`` while open, so a second daemon pointed at the same file
  is refused instead of silently interleaving its diffs with ours (other programs may still
  read it with sqlite3); the lock dies with the process, so a ``kill -9`` leaves nothing to
  clean up.  Local filesystems only: WAL needs shared memory, and NFS emulates ``flock``
  with the same POSIX locks SQLite uses;
* a file that is not SQLite, another program's SQLite database (told apart by
  ``PRAGMA application_id``) or a masc store of a newer schema is refused with a
  :class:`StoreError` naming the file, and left untouched.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Any, Final, Generic, TypeVar

from masc.store import migrations
from masc.store.files import LockedDatabase
from masc.store.records import (
    HistoryRecord,
    Snapshot,
    StoredAllocation,
    StoredGrant,
    StoredMaas,
    StoredPending,
)

DEFAULT_HISTORY_LIMIT: Final = 10_000
# How long a write waits for a lock held by another reader/writer (e.g. the sqlite3 shell)
# before failing; the owning task blocks meanwhile, so keep it short.
BUSY_TIMEOUT_MS: Final = 1_000

R = TypeVar("R")
Key = tuple[Any, ...]
Row = tuple[Any, ...]


class StoreError(Exception):
    """The store file cannot be opened, read or written; the message names the file."""


@dataclass(frozen=True, slots=True)
class _Table(Generic[R]):
    """How one record type maps onto its table (columns in record field order)."""

    name: str
    columns: tuple[str, ...]
    key_columns: tuple[str, ...]
    key: Callable[[R], Key]
    to_row: Callable[[R], Row]
    from_row: Callable[[Row], R]

    @property
    def select_sql(self) -> str:
        return (
            f"SELECT {', '.join(self.columns)} FROM {self.name} "
            f"ORDER BY {', '.join(self.key_columns)}"
        )

    @property
    def upsert_sql(self) -> str:
        marks = ", ".join("?" * len(self.columns))
        return f"INSERT OR REPLACE INTO {self.name} ({', '.join(self.columns)}) VALUES ({marks})"

    @property
    def delete_sql(self) -> str:
        where = " AND ".join(f"{column} = ?" for column in self.key_columns)
        return f"DELETE FROM {self.name} WHERE {where}"


_ALLOCATION_FIELDS: Final = (
    "kind",
    "prefix",
    "parent",
    "timestamp",
    "lifetime",
    "origin_node",
    "allocated_at",
    "renewing",
)
_PENDING_FIELDS: Final = (
    "kind",
    "prefix",
    "claim_type",
    "timestamp",
    "lifetime",
    "holdtime",
    "parent",
    "purpose",
    "deadline",
    "extends",
    "replaces",
)
_GRANT_FIELDS: Final = ("maas", "prefix", "expires", "active", "granted_at")

# A pending claim's row but its `replaces` (a JSON array, as a MAAS's scopes below).
_PENDING_ROW: Final = attrgetter(*_PENDING_FIELDS[:-1])

# SQLite has no boolean: `renewing` and `active` are stored as 0/1 and turned back here.
ALLOCATIONS: Final[_Table[StoredAllocation]] = _Table(
    name="allocations",
    columns=_ALLOCATION_FIELDS,
    key_columns=("kind", "prefix"),
    key=attrgetter("kind", "prefix"),
    to_row=attrgetter(*_ALLOCATION_FIELDS),
    from_row=lambda r: StoredAllocation(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7] != 0),
)
PENDING: Final[_Table[StoredPending]] = _Table(
    name="pending",
    columns=_PENDING_FIELDS,
    key_columns=("kind", "prefix", "purpose"),
    key=attrgetter("kind", "prefix", "purpose"),
    to_row=lambda p: (*_PENDING_ROW(p), json.dumps(list(p.replaces))),
    from_row=lambda r: StoredPending(
        r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], tuple(json.loads(r[10]))
    ),
)
GRANTS: Final[_Table[StoredGrant]] = _Table(
    name="grants",
    columns=_GRANT_FIELDS,
    key_columns=("prefix",),
    key=lambda g: (g.prefix,),
    to_row=attrgetter(*_GRANT_FIELDS),
    from_row=lambda r: StoredGrant(r[0], r[1], r[2], r[3] != 0, r[4]),
)
# A MAAS's scopes are a JSON array: a handful of names, never queried on their own.
MAAS: Final[_Table[StoredMaas]] = _Table(
    name="maas",
    columns=("name", "scopes", "registered_at"),
    key_columns=("name",),
    key=lambda m: (m.name,),
    to_row=lambda m: (m.name, json.dumps(list(m.scopes)), m.registered_at),
    from_row=lambda r: StoredMaas(r[0], tuple(json.loads(r[1])), r[2]),
)

_HISTORY_INSERT: Final = "INSERT INTO history (at, event, prefix, detail) VALUES (?, ?, ?, ?)"
# Keep the newest `limit` rows: delete the (limit+1)-th newest and everything older.
_HISTORY_PRUNE: Final = (
    "DELETE FROM history WHERE id <= (SELECT id FROM history ORDER BY id DESC LIMIT 1 OFFSET ?)"
)
_HISTORY_OVER: Final = "SELECT 1 FROM history ORDER BY id DESC LIMIT 1 OFFSET ?"


@dataclass(slots=True)
class _Change(Generic[R]):
    records: dict[Key, R]
    upserts: list[Row]
    deletes: list[Key]


class _Cached(Generic[R]):
    """What one table holds, as last written: the base of the next diff."""

    __slots__ = ("in_key_order", "records", "table")

    def __init__(self, table: _Table[R]) -> None:
        self.table = table
        self.records: dict[Key, R] = {}
        self.in_key_order = True

    def read(self, conn: sqlite3.Connection) -> None:
        records = list(map(self.table.from_row, conn.execute(self.table.select_sql)))
        self.records = dict(zip(map(self.table.key, records), records, strict=True))
        self.in_key_order = True

    def diff(self, given: Iterable[R]) -> _Change[R]:
        table, old = self.table, self.records
        new: dict[Key, R] = {}
        upserts: list[Row] = []
        kept = 0  # keys of `old` still present
        for record in given:
            key = table.key(record)
            if key in new:
                raise ValueError(f"two {table.name} records share the key {key!r}")
            new[key] = record
            before = old.get(key)
            if before is None:
                upserts.append(table.to_row(record))
                continue
            kept += 1
            if before is not record and before != record:
                upserts.append(table.to_row(record))
        # Only look for deletions when some old key is missing (saves a pass over `old`).
        deletes = [key for key in old if key not in new] if kept < len(old) else []
        return _Change(new, upserts, deletes)

    def commit(self, change: _Change[R]) -> None:
        self.records = change.records
        self.in_key_order = False

    def snapshot(self) -> tuple[R, ...]:
        if not self.in_key_order:
            self.records = dict(sorted(self.records.items()))
            self.in_key_order = True
        return tuple(self.records.values())


class Store(LockedDatabase):
    """The daemon's durable state; see the module docstring.  Create with :meth:`open`."""

    error = StoreError
    what = "store"
    in_use = "another masc daemon with the same [storage] path?"

    def __init__(
        self, path: Path, conn: sqlite3.Connection, lock_fd: int, history_limit: int
    ) -> None:
        super().__init__(path, conn, lock_fd)
        self._history_limit = history_limit
        self._schema_version = 0
        self._allocations = _Cached(ALLOCATIONS)
        self._pending = _Cached(PENDING)
        self._grants = _Cached(GRANTS)
        self._maas = _Cached(MAAS)

    # -- opening and closing ---------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, *, history_limit: int = DEFAULT_HISTORY_LIMIT) -> Store:
        """Open (creating if missing) and migrate the store at ``path``; read it into memory.

        Raises :class:`StoreError` when the file cannot be created or opened, is held by
        another process, is not a masc store, or has a newer schema than this masc knows.
        """
        if history_limit < 0:
            raise ValueError(f"history_limit must be >= 0, not {history_limit}")
        return cls._open_file(
            Path(path), lambda path, conn, lock_fd: cls(path, conn, lock_fd, history_limit)
        )

    @property
    def schema_version(self) -> int:
        """The file's schema version (the current one once ``open`` has migrated it)."""
        return self._schema_version

    # -- reading ---------------------------------------------------------------------------

    def load(self) -> Snapshot:
        """Everything stored: the records as last written, history oldest first."""
        conn = self._connection()
        try:
            history = tuple(
                HistoryRecord(*row)
                for row in conn.execute("SELECT at, event, prefix, detail FROM history ORDER BY id")
            )
        except sqlite3.Error as exc:
            raise StoreError(f"{self._path}: reading the history failed: {exc}") from exc
        return Snapshot(
            allocations=self._allocations.snapshot(),
            pending=self._pending.snapshot(),
            grants=self._grants.snapshot(),
            maas=self._maas.snapshot(),
            history=history,
        )

    def set_history_limit(self, limit: int) -> None:
        """A reload's new ``[storage] history_limit``; a lower one prunes at once."""
        if limit < 0:
            raise ValueError(f"history_limit must be >= 0, not {limit}")
        self._history_limit = limit
        self._prune_history(self._connection())

    def _prune_history(self, conn: sqlite3.Connection) -> None:
        """Keep at most ``history_limit`` rows; writes only when there are more."""
        if conn.execute(_HISTORY_OVER, (self._history_limit,)).fetchone() is not None:
            with self._transaction("pruning history") as tx:
                tx.execute(_HISTORY_PRUNE, (self._history_limit,))

    def history(self, prefix: str | None = None, limit: int = 100) -> list[HistoryRecord]:
        """The newest ``limit`` history records (of ``prefix`` if given), oldest first."""
        if limit < 0:
            raise ValueError(f"limit must be >= 0, not {limit}")
        where, args = (
            ("WHERE prefix = ?", (prefix, limit)) if prefix is not None else ("", (limit,))
        )
        sql = (
            "SELECT at, event, prefix, detail FROM (SELECT id, at, event, prefix, detail "
            f"FROM history {where} ORDER BY id DESC LIMIT ?) ORDER BY id"
        )
        try:
            return [HistoryRecord(*row) for row in self._connection().execute(sql, args)]
        except sqlite3.Error as exc:
            raise StoreError(f"{self._path}: reading the history failed: {exc}") from exc

    # -- writing ---------------------------------------------------------------------------

    def save(
        self,
        *,
        allocations: Iterable[StoredAllocation] | None = None,
        pending: Iterable[StoredPending] | None = None,
        grants: Iterable[StoredGrant] | None = None,
        maas: Iterable[StoredMaas] | None = None,
    ) -> None:
        """Make each given collection the full stored set, durably, in one transaction.

        A collection left ``None`` is not touched.  Only the difference from what was last
        written goes to disk; when there is none, nothing is written at all.  On failure
        (:class:`StoreError`) the memory is left as it was, so the next save retries the
        whole diff; its upserts and deletes are idempotent, so the retry also converges if
        the failed commit did reach the file.  Two records of one collection with the same
        key are a ``ValueError`` (and nothing is written).
        """
        self._connection()
        given: tuple[tuple[_Cached[Any], Iterable[Any] | None], ...] = (
            (self._allocations, allocations),
            (self._pending, pending),
            (self._grants, grants),
            (self._maas, maas),
        )
        # Diff everything first: a ValueError leaves the file and the memory untouched.
        work: list[tuple[_Cached[Any], _Change[Any]]] = []
        for cached, records in given:
            if records is not None:
                change = cached.diff(records)
                if change.upserts or change.deletes:
                    work.append((cached, change))
        if not work:
            return
        with self._transaction("saving") as conn:
            for cached, change in work:
                if change.deletes:
                    conn.executemany(cached.table.delete_sql, change.deletes)
                if change.upserts:
                    conn.executemany(cached.table.upsert_sql, change.upserts)
        for cached, change in work:
            cached.commit(change)

    def record(self, history: Iterable[HistoryRecord]) -> None:
        """Append history records durably, in one transaction, keeping the newest
        ``history_limit`` rows.  Nothing to append (or a limit of 0) writes nothing."""
        rows = [(h.at, h.event, h.prefix, h.detail) for h in history]
        if not rows or self._history_limit == 0:
            self._connection()
            return
        with self._transaction("recording history") as conn:
            conn.executemany(_HISTORY_INSERT, rows[-self._history_limit :])
            conn.execute(_HISTORY_PRUNE, (self._history_limit,))

    # -- internals -------------------------------------------------------------------------

    def _prepare(self) -> None:
        """Identify the file, switch it to WAL, migrate it, prune history, read it in."""
        conn = self._connection()
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        version = self._identify(conn)
        target = len(migrations.MIGRATIONS)
        if version > target:
            raise StoreError(
                f"{self._path}: the store has schema version {version}, newer than this masc's "
                f"version {target}; run a newer masc or move the file aside"
            )
        (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        if mode != "wal":
            raise StoreError(f"{self._path}: cannot switch the store to WAL (got {mode!r})")
        conn.execute("PRAGMA synchronous = FULL")
        for step in range(version, target):
            with self._transaction(f"migrating to schema version {step + 1}") as tx:
                for statement in migrations.MIGRATIONS[step]:
                    tx.execute(statement)
                tx.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                    (step + 1,),
                )
        self._schema_version = target
        self._prune_history(conn)  # a lowered [storage] history_limit takes effect at once
        for cached in (self._allocations, self._pending, self._grants, self._maas):
            cached.read(conn)

    def _identify(self, conn: sqlite3.Connection) -> int:
        """The file's schema version: 0 for an empty file; StoreError if not a masc store."""
        try:
            (application_id,) = conn.execute("PRAGMA application_id").fetchone()
        except sqlite3.DatabaseError as exc:
            if exc.sqlite_errorname == "SQLITE_NOTADB":
                raise StoreError(
                    f"{self._path}: not a masc store: not an SQLite database ({exc})"
                ) from exc
            raise
        tables = sorted(
            name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        )
        if application_id == migrations.APPLICATION_ID:
            row = None
            if "meta" in tables:
                row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None or not isinstance(row[0], int):
                raise StoreError(f"{self._path}: damaged masc store: no schema version")
            version: int = row[0]
            return version
        if application_id == 0 and not tables:
            return 0
        raise StoreError(
            f"{self._path}: not a masc store: an SQLite database of another program "
            f"(application_id {application_id:#010x}, tables: {', '.join(tables) or 'none'})"
        )
