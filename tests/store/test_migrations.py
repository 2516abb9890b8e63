"""Schema versions of the store (RFC 2909 §13 storage): forward migration, refusal of newer.

The shipped schema is version 2 (version 2 added what a pending claim replaces, §17.1.4).
Its step is tested on a file built by version 1 alone; the mechanism also by injecting a
fake version-3 step into ``migrations.MIGRATIONS``: that is what a future change will be.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import astuple, replace
from pathlib import Path

import pytest

from masc.store import (
    HistoryRecord,
    Store,
    StoredAllocation,
    StoredGrant,
    StoredPending,
    StoreError,
    migrations,
)

ALLOCATION = StoredAllocation("domain", "239.0.1.0/24", None, 1_700_000_000, 86_400, 7, 1.5)
GRANT = StoredGrant("madcap-a", "239.0.1.0/26", 1_700_086_400.0, True, 1_700_000_100.0)
EVENT = HistoryRecord(1_700_000_000.0, "claim", "239.0.1.0/24", "")
PENDING = StoredPending(
    "domain", "239.0.2.0/23", 2, 1_700_000_000, 86_400, 86_400, 64512, "new", 1.7e9, None
)
CURRENT = len(migrations.MIGRATIONS)


def _about(path: Path) -> str:
    """A StoreError message starts by naming the file."""
    return re.escape(f"{path}: ")


def _meta_version(path: Path) -> object:
    with sqlite3.connect(path) as raw:
        (value,) = raw.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return value


def _current_file(path: Path) -> None:
    with Store.open(path) as store:
        store.save(allocations=[ALLOCATION], grants=[GRANT])
        store.record([EVENT])


def test_s13_version_2_gives_a_version_1_files_pending_claims_nothing_to_replace(
    tmp_path: Path,
) -> None:
    """A file written by a masc of schema version 1 (no ``replaces`` column): its pending
    claims come back replacing nothing, as that daemon believed, and from then on what a
    claim replaces is kept (a restarted daemon stops renewing those prefixes, §17.1.4)."""
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as raw:  # what a version-1 masc built and wrote
        for statement in migrations.MIGRATIONS[0]:
            raw.execute(statement)
        raw.execute("INSERT INTO meta (key, value) VALUES ('schema_version', 1)")
        raw.execute(
            "INSERT INTO pending VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            astuple(PENDING)[:-1],  # every field but `replaces`, which version 1 lacks
        )
    with Store.open(path) as store:
        assert store.schema_version == 2
        assert store.load().pending == (PENDING,)
        assert PENDING.replaces == ()
        replacing = replace(PENDING, replaces=("239.0.1.0/24", "239.0.4.0/24"))
        store.save(pending=[replacing])
    assert _meta_version(path) == 2
    with Store.open(path) as store:
        assert store.load().pending == (replacing,)


def test_s13_a_new_file_gets_the_current_version(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with Store.open(path) as store:
        assert store.schema_version == len(migrations.MIGRATIONS) == 2
    assert _meta_version(path) == 2
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA application_id").fetchone() == (migrations.APPLICATION_ID,)


def test_s13_a_newer_schema_is_refused_naming_both_versions_and_left_untouched(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    _current_file(path)
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE meta SET value = 7 WHERE key = 'schema_version'")
    content = path.read_bytes()
    with pytest.raises(
        StoreError,
        match=_about(path) + r"the store has schema version 7, newer than this masc's version 2",
    ):
        Store.open(path)
    assert path.read_bytes() == content


def test_s13_a_masc_file_without_a_version_is_refused_as_damaged(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    _current_file(path)
    with sqlite3.connect(path) as raw:
        raw.execute("DELETE FROM meta")
    with pytest.raises(StoreError, match=_about(path) + r"damaged masc store: no schema version"):
        Store.open(path)


def test_s13_an_injected_step_migrates_a_current_file_to_the_next_version_keeping_its_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.db"
    _current_file(path)
    step = (
        "ALTER TABLE grants ADD COLUMN note TEXT NOT NULL DEFAULT ''",
        "CREATE TABLE peers (name TEXT PRIMARY KEY) WITHOUT ROWID",
        "INSERT INTO peers VALUES ('tld-b')",
    )
    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, step])
    with Store.open(path) as store:
        assert store.schema_version == CURRENT + 1
        snapshot = store.load()
        assert (snapshot.allocations, snapshot.grants, snapshot.history) == (
            (ALLOCATION,),
            (GRANT,),
            (EVENT,),
        )
    assert _meta_version(path) == CURRENT + 1
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT note FROM grants").fetchall() == [("",)]
        assert raw.execute("SELECT name FROM peers").fetchall() == [("tld-b",)]
    with Store.open(path) as store:  # already current: nothing more to do
        assert store.schema_version == CURRENT + 1


def test_s13_a_migration_is_one_transaction_a_failing_step_leaves_the_file_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.db"
    _current_file(path)
    broken = (
        "CREATE TABLE peers (name TEXT PRIMARY KEY) WITHOUT ROWID",
        "DELETE FROM allocations",
        "ALTER TABLE no_such_table ADD COLUMN x",
    )
    with monkeypatch.context() as patch:
        patch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, broken])
        with pytest.raises(
            StoreError,
            match=_about(path)
            + rf"migrating to schema version {CURRENT + 1} failed: no such table",
        ):
            Store.open(path)
    assert _meta_version(path) == CURRENT
    with sqlite3.connect(path) as raw:
        tables = {name for (name,) in raw.execute("SELECT name FROM sqlite_master")}
    assert "peers" not in tables
    with Store.open(path) as store:
        assert store.schema_version == CURRENT
        assert store.load().allocations == (ALLOCATION,)


def test_s13_building_v1_is_one_transaction_a_failure_leaves_an_empty_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even the application_id set by the first step is rolled back: the file stays "v0", so
    the next open builds it afresh instead of calling it damaged."""
    path = tmp_path / "state.db"
    with monkeypatch.context() as patch:
        patch.setattr(migrations, "MIGRATIONS", [(*migrations.MIGRATIONS[0], "SELECT nonsense(")])
        with pytest.raises(StoreError, match="migrating to schema version 1 failed"):
            Store.open(path)
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA application_id").fetchone() == (0,)
        assert raw.execute("SELECT name FROM sqlite_master").fetchall() == []
    with Store.open(path) as store:
        assert store.schema_version == CURRENT
