"""The durable store (RFC 2909 §13): round trips, diffing saves, history, file safety.

Every test works on a fresh SQLite file in pytest's tmp dir.  Writes are observed from the
outside where possible (``PRAGMA data_version`` of a second connection changes when another
connection commits) and, for "no statement at all", through a tracing ``sqlite3.connect``.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import stat
import tempfile
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import masc.store.sqlite
from masc.store import (
    HistoryRecord,
    Snapshot,
    Store,
    StoredAllocation,
    StoredGrant,
    StoredMaas,
    StoredPending,
    StoreError,
)


def _about(path: Path) -> str:
    """A StoreError message starts by naming the file."""
    return re.escape(f"{path}: ")


def _allocation(n: int, *, kind: str = "domain", renewing: bool = True) -> StoredAllocation:
    return StoredAllocation(
        kind=kind,
        prefix=f"239.{n >> 8 & 255}.{n & 255}.0/24",
        parent=None if n % 2 else 65000 + n,
        timestamp=1_700_000_000 + n,
        lifetime=30 * 86_400,
        origin_node=0xC0000201,
        allocated_at=1_700_172_800.5 + n,
        renewing=renewing,
    )


def _pending(n: int, *, purpose: str = "grow", extends: str | None = None) -> StoredPending:
    return StoredPending(
        kind="domain",
        prefix=f"ff3e:{n:x}::/96",
        claim_type=1,
        timestamp=1_700_000_000 + n,
        lifetime=30 * 86_400,
        holdtime=30 * 86_400,
        parent=None if n % 2 else 64512,
        purpose=purpose,
        deadline=1_700_172_800.25 + n,
        extends=extends,
    )


def _grant(n: int, *, maas: str = "madcap-a", active: bool = True) -> StoredGrant:
    return StoredGrant(
        maas=maas,
        prefix=f"239.192.{n}.0/26",
        expires=1_702_592_000.0 + n,
        active=active,
        granted_at=1_700_172_900.0 + n,
    )


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


@pytest.fixture
def store(path: Path) -> Iterator[Store]:
    with Store.open(path) as opened:
        yield opened


@pytest.fixture
def traced(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every SQL statement the store's connection runs, captured by wrapping ``connect``."""
    statements: list[str] = []
    real_connect = sqlite3.connect

    def connect(*args: object, **kwargs: object) -> sqlite3.Connection:
        conn = real_connect(*args, **kwargs)  # type: ignore[call-overload]
        conn.set_trace_callback(statements.append)
        return conn  # type: ignore[no-any-return]

    monkeypatch.setattr(sqlite3, "connect", connect)
    yield statements


def _data_version(reader: sqlite3.Connection) -> int:
    (version,) = reader.execute("PRAGMA data_version").fetchone()
    assert isinstance(version, int)
    return version


def _reopened(path: Path) -> Snapshot:
    with Store.open(path) as store:
        return store.load()


# -- round trips -------------------------------------------------------------------------


def test_s13_a_new_file_loads_empty(store: Store) -> None:
    assert store.load() == Snapshot()
    assert store.history() == []


def test_s13_every_record_type_round_trips_through_the_file(path: Path) -> None:
    """Every field, including None, False, empty and non-ASCII values, comes back equal and
    of its declared type (SQLite has no bool: 0/1 must turn back into False/True)."""
    allocations = [_allocation(1), _allocation(2, renewing=False), _allocation(3, kind="child")]
    pending = [_pending(1), _pending(2, purpose="expand", extends="ff3e:2::/97")]
    grants = [_grant(1), _grant(2, maas="madcap-b", active=False)]
    maas = [
        StoredMaas("madcap-a", ("global", "admin-scope"), 1_700_000_100.0),
        StoredMaas("madcap-ø", (), 1_700_000_200.0),
    ]
    history = [
        HistoryRecord(1_700_000_000.0, "claim", "239.0.1.0/24", "waiting 172800 s"),
        HistoryRecord(1_700_000_001.0, "clash", "239.0.1.0/24", "with domain 65002"),
        HistoryRecord(1_700_000_002.0, "withdraw", "", ""),
    ]
    with Store.open(path) as store:
        store.save(allocations=allocations, pending=pending, grants=grants, maas=maas)
        store.record(history)
    snapshot = _reopened(path)
    assert snapshot == Snapshot(
        allocations=tuple(sorted(allocations, key=lambda a: (a.kind, a.prefix))),
        pending=tuple(pending),
        grants=tuple(grants),
        maas=tuple(maas),
        history=tuple(history),
    )
    assert [type(a.renewing) for a in snapshot.allocations] == [bool] * 3
    assert [type(g.active) for g in snapshot.grants] == [bool] * 2
    assert type(snapshot.maas[0].scopes) is tuple


def test_s13_load_returns_records_in_key_order_whatever_order_they_were_saved_in(
    store: Store, path: Path
) -> None:
    allocations = [_allocation(n) for n in (5, 1, 4, 2, 3)]
    store.save(allocations=allocations)
    expected = tuple(sorted(allocations, key=lambda a: a.prefix))
    assert store.load().allocations == expected
    store.close()
    assert _reopened(path).allocations == expected


# -- diffing saves -------------------------------------------------------------------------


def test_s13_save_inserts_updates_and_deletes_to_match_the_given_set(path: Path) -> None:
    with Store.open(path) as store:
        store.save(allocations=[_allocation(1), _allocation(2), _allocation(3)])
        changed = _allocation(2, renewing=False)
        store.save(allocations=[_allocation(1), changed, _allocation(4)])
        assert store.load().allocations == (_allocation(1), changed, _allocation(4))
    assert _reopened(path).allocations == (_allocation(1), changed, _allocation(4))
    with sqlite3.connect(path) as raw:
        rows = raw.execute("SELECT prefix, renewing FROM allocations ORDER BY prefix").fetchall()
    assert rows == [("239.0.1.0/24", 1), ("239.0.2.0/24", 0), ("239.0.4.0/24", 1)]


def test_s13_save_of_unchanged_sets_runs_no_statement_and_commits_nothing(
    traced: list[str], path: Path
) -> None:
    """Equal (not identical) records count as unchanged: the daemon rebuilds them each time."""
    store = Store.open(path)
    reader = sqlite3.connect(path)
    try:
        store.save(
            allocations=[_allocation(1), _allocation(2)],
            pending=[_pending(1)],
            grants=[_grant(1)],
            maas=[StoredMaas("madcap-a", ("global",), 1.0)],
        )
        before = _data_version(reader)
        traced.clear()  # (the reader is traced too: it runs nothing until the asserts)
        store.save(
            allocations=[_allocation(2), _allocation(1)],
            pending=[_pending(1)],
            grants=[_grant(1)],
            maas=[StoredMaas("madcap-a", ("global",), 1.0)],
        )
        store.save()
        store.record([])
        assert traced == []
        assert _data_version(reader) == before
        store.save(allocations=[_allocation(1)])
        assert _data_version(reader) != before, "a real change is committed"
    finally:
        reader.close()
        store.close()


def test_s13_a_save_is_one_transaction_however_many_collections_change(
    traced: list[str], store: Store
) -> None:
    store.save(allocations=[_allocation(1)])
    traced.clear()
    store.save(
        allocations=[_allocation(2)],
        pending=[_pending(1)],
        grants=[_grant(1)],
        maas=[StoredMaas("madcap-a", ("global",), 1.0)],
    )
    assert [s for s in traced if s in ("BEGIN IMMEDIATE", "COMMIT", "ROLLBACK")] == [
        "BEGIN IMMEDIATE",
        "COMMIT",
    ]
    assert sum(s.startswith("DELETE") for s in traced) == 1
    assert sum(s.startswith("INSERT") for s in traced) == 4


def test_s13_a_collection_not_given_is_left_alone(store: Store) -> None:
    store.save(allocations=[_allocation(1)], grants=[_grant(1)])
    store.save(grants=[])
    assert store.load().allocations == (_allocation(1),)
    assert store.load().grants == ()


def test_s13_two_records_with_one_key_are_refused_and_nothing_is_written(
    store: Store, path: Path
) -> None:
    store.save(allocations=[_allocation(1)])
    with pytest.raises(ValueError, match="share the key"):
        store.save(
            allocations=[_allocation(2)],
            grants=[_grant(1), _grant(1, maas="madcap-b")],
        )
    assert store.load().allocations == (_allocation(1),)
    store.close()
    assert _reopened(path).allocations == (_allocation(1),)


def test_s13_a_failed_save_writes_nothing_and_the_next_save_retries_the_whole_diff(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another connection holding the write lock makes the save fail (after a short busy
    wait); the store's memory must still match the file, so the retry writes everything."""
    monkeypatch.setattr(masc.store.sqlite, "BUSY_TIMEOUT_MS", 20)
    with Store.open(path) as store:
        store.save(allocations=[_allocation(1)])
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreError, match=_about(path) + r"saving failed: database is locked"):
            store.save(allocations=[_allocation(2)], pending=[_pending(1)])
        blocker.execute("ROLLBACK")
        blocker.close()
        assert store.load().allocations == (_allocation(1),)
        store.save(allocations=[_allocation(2)], pending=[_pending(1)])
    snapshot = _reopened(path)
    assert (snapshot.allocations, snapshot.pending) == ((_allocation(2),), (_pending(1),))


def test_s13_a_closed_store_refuses_use(store: Store, path: Path) -> None:
    store.close()
    store.close()  # idempotent
    calls: list[Callable[[], object]] = [
        store.load,
        store.history,
        lambda: store.save(allocations=[]),
        lambda: store.record([]),
    ]
    for call in calls:
        with pytest.raises(StoreError, match=_about(path) + r"the store is closed"):
            call()


# -- history ---------------------------------------------------------------------------------


def _event(n: int, prefix: str) -> HistoryRecord:
    return HistoryRecord(at=1_700_000_000.0 + n, event="claim", prefix=prefix, detail=str(n))


def test_s13_history_appends_prunes_to_the_limit_and_queries_by_prefix(path: Path) -> None:
    a, b = "239.0.1.0/24", "239.0.2.0/24"
    with Store.open(path, history_limit=5) as store:
        store.record([_event(1, a), _event(2, b), _event(3, a)])
        assert store.history() == [_event(1, a), _event(2, b), _event(3, a)]
        store.record([_event(4, b), _event(5, a), _event(6, a)])
        assert store.history() == [
            _event(n, p) for n, p in ((2, b), (3, a), (4, b), (5, a), (6, a))
        ]
        assert store.history(a) == [_event(3, a), _event(5, a), _event(6, a)]
        assert store.history(a, limit=2) == [_event(5, a), _event(6, a)], "newest, oldest first"
        assert store.history(limit=0) == []
        assert store.history("239.9.9.0/24") == []
        # More than the limit in one call: only the newest are kept.
        store.record([_event(n, b) for n in range(7, 20)])
        assert store.history() == [_event(n, b) for n in range(15, 20)]
        assert store.load().history == tuple(_event(n, b) for n in range(15, 20))


def test_s13_history_order_is_insertion_order_not_wall_time(store: Store) -> None:
    """Wall time may step back (NTP); what happened later is still listed later."""
    store.record([_event(5, "p")])
    store.record([_event(1, "p")])
    assert [h.detail for h in store.history()] == ["5", "1"]


def test_s13_a_lowered_history_limit_prunes_at_open(path: Path) -> None:
    with Store.open(path) as store:
        store.record([_event(n, "p") for n in range(10)])
    with Store.open(path, history_limit=3) as store:
        assert [h.detail for h in store.load().history] == ["7", "8", "9"]
    with Store.open(path, history_limit=0) as store:
        store.record([_event(10, "p")])
        assert store.load().history == ()


def test_s13_limits_must_not_be_negative(path: Path, store: Store) -> None:
    with pytest.raises(ValueError, match="history_limit"):
        Store.open(path, history_limit=-1)
    with pytest.raises(ValueError, match="limit"):
        store.history(limit=-1)


# -- the file ----------------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_s13_a_new_file_is_0600_in_new_directories_0700(tmp_path: Path) -> None:
    """The file names the domain's space and its MAASs; SQLite gives the WAL and shared-memory
    files the database file's mode."""
    path = tmp_path / "var" / "lib" / "masc" / "state.db"
    with Store.open(path) as store:
        store.save(allocations=[_allocation(1)])
        assert _mode(path) == 0o600
        assert _mode(Path(f"{path}-wal")) == 0o600
        assert _mode(Path(f"{path}-shm")) == 0o600
    for directory in (tmp_path / "var", tmp_path / "var" / "lib", path.parent):
        assert _mode(directory) == 0o700


def test_s13_an_existing_file_keeps_its_mode(path: Path) -> None:
    path.touch(mode=0o640)
    os.chmod(path, 0o640)
    Store.open(path).close()
    assert _mode(path) == 0o640


def test_s13_the_file_is_in_wal_mode(store: Store, path: Path) -> None:
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_s13_a_second_open_of_the_same_file_is_refused_until_the_first_closes(
    store: Store, path: Path
) -> None:
    """Two daemons diffing against their own memory would undo each other's writes."""
    with pytest.raises(StoreError, match=_about(path) + r"the store is in use by another process"):
        Store.open(path)
    store.save(allocations=[_allocation(1)])  # the refused open did not disturb the owner
    store.close()
    assert _reopened(path).allocations == (_allocation(1),)


def test_s13_a_file_that_is_not_sqlite_is_refused_and_left_untouched(path: Path) -> None:
    content = b"[storage]\npath = '/var/lib/masc/state.db'\n" * 200
    path.write_bytes(content)
    with pytest.raises(
        StoreError, match=_about(path) + r"not a masc store: not an SQLite database"
    ):
        Store.open(path)
    assert path.read_bytes() == content
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.db"]


def test_s13_another_programs_sqlite_database_is_refused_and_left_untouched(path: Path) -> None:
    with sqlite3.connect(path) as other:
        other.execute("CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT)")
    content = path.read_bytes()
    with pytest.raises(
        StoreError, match=_about(path) + r"not a masc store: .*another program.*tables: moz_places"
    ):
        Store.open(path)
    assert path.read_bytes() == content
    with sqlite3.connect(path) as other:
        other.execute("PRAGMA application_id = 1")
    with pytest.raises(StoreError, match=r"application_id 0x00000001"):
        Store.open(path)


def test_s13_an_empty_file_becomes_a_store(path: Path) -> None:
    path.touch()
    with Store.open(path) as store:
        assert store.load() == Snapshot()


def _directory_in_the_way(path: Path) -> None:
    path.mkdir()


def _file_in_the_way_of_the_parent(path: Path) -> None:
    path.parent.rmdir()
    path.parent.write_text("not a directory")


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (_directory_in_the_way, "Is a directory"),
        (_file_in_the_way_of_the_parent, "Not a directory"),
    ],
    ids=["path-is-a-directory", "parent-is-a-file"],
)
def test_s13_an_unusable_path_is_a_store_error_naming_path_and_os_error(
    tmp_path: Path, make: Callable[[Path], object], error: str
) -> None:
    path = tmp_path / "sub" / "state.db"
    path.parent.mkdir()
    make(path)
    with pytest.raises(StoreError, match=_about(path) + rf"cannot open the store: {error}"):
        Store.open(path)


def unprivileged(check: Callable[[Path], None]) -> None:
    """Run ``check(directory)`` where file permissions apply: as root (CI), in a forked
    child that became nobody (uid/gid 65534), in a directory that child owns."""
    base = Path(tempfile.mkdtemp(prefix="masc-store-"))
    try:
        base.chmod(0o755)
        work = base / "work"
        work.mkdir()
        if os.geteuid() != 0:
            check(work)
            return
        os.chown(work, 65534, 65534)
        pid = os.fork()
        if pid == 0:  # the child: drop privileges for good, run, report by exit status
            code = 1
            try:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
                check(work)
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "the unprivileged check failed (above)"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_s13_a_read_only_file_is_a_store_error_naming_path_and_os_error() -> None:
    def check(work: Path) -> None:
        path = work / "state.db"
        Store.open(path).close()
        os.chmod(path, 0o400)
        with pytest.raises(
            StoreError, match=_about(path) + r"cannot open the store: Permission denied"
        ):
            Store.open(path)

    unprivileged(check)


def test_s13_an_unwritable_directory_is_a_store_error_naming_path_and_os_error() -> None:
    def check(work: Path) -> None:
        directory = work / "ro"
        directory.mkdir(mode=0o500)
        path = directory / "state.db"
        with pytest.raises(
            StoreError, match=_about(path) + r"cannot open the store: Permission denied"
        ):
            Store.open(path)

    unprivileged(check)


def test_s13_an_existing_store_in_an_unwritable_directory_is_a_clear_store_error() -> None:
    """SQLite alone would say "unable to open database file" (it cannot create the WAL)."""

    def check(work: Path) -> None:
        directory = work / "ro"
        directory.mkdir()
        path = directory / "state.db"
        Store.open(path).close()
        directory.chmod(0o500)
        try:
            with pytest.raises(
                StoreError, match=_about(path) + "cannot open the store: its directory"
            ):
                Store.open(path)
        finally:
            directory.chmod(0o700)

    unprivileged(check)
