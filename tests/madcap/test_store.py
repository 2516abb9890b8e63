"""The MADCAP lease store (masc/madcap/store.py): what is written survives a reopen and a
crash, one file has one owner, and foreign files are refused untouched (RFC 2908 §3:
"uniqueness survives MAAS crashes and reboots")."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from ipaddress import ip_address, ip_network
from pathlib import Path

import pytest

from masc.madcap.messages import AddressRange
from masc.madcap.server import Grant, Lease
from masc.madcap.store import APPLICATION_ID, LeaseStore, LeaseStoreError


def lease(n: int, *, end: float = 2_000_000_000.0, count: int = 1) -> Lease:
    return Lease(
        lease_id=bytes([0]) + n.to_bytes(16, "big"),
        scope="Org",
        ranges=(AddressRange(ip_address(f"239.192.1.{n}"), count),),
        start=1_700_000_000.0,
        end=end,
        granted_at=1_700_000_000.5,
        client=f"127.0.0.1:{40000 + n}",
    )


def test_a_new_store_is_empty_private_and_ours(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "madcap.db"
    with LeaseStore.open(path) as store:
        assert store.leases() == [] and store.grants() == {}
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA application_id").fetchone() == (APPLICATION_ID,)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()


def test_leases_survive_a_reopen_with_every_field(tmp_path: Path) -> None:
    path = tmp_path / "madcap.db"
    v6 = Lease(
        lease_id=b"\x01\x00\x02" + bytes(16),
        scope="V6",
        ranges=(AddressRange(ip_address("ff15::10"), 3), AddressRange(ip_address("ff15::20"), 1)),
        start=1.5,
        end=2.5,
        granted_at=1.25,
        client="[::1]:5000",
    )
    with LeaseStore.open(path) as store:
        store.apply(saved=[lease(2, count=4), lease(1), v6])
    with LeaseStore.open(path) as store:
        assert store.leases() == [lease(1), lease(2, count=4), v6]


def test_apply_replaces_changed_leases_and_deletes_in_one_go(tmp_path: Path) -> None:
    path = tmp_path / "madcap.db"
    with LeaseStore.open(path) as store:
        store.apply(saved=[lease(1), lease(2)])
        renewed = lease(1, end=2_100_000_000.0)
        store.apply(saved=[renewed], deleted=[lease(2).lease_id, b"\x00unknown"])
        assert store.leases() == [renewed]
        store.apply()  # nothing to do writes nothing
    with LeaseStore.open(path) as store:
        assert store.leases() == [renewed]


def test_grants_are_replaced_per_scope(tmp_path: Path) -> None:
    path = tmp_path / "madcap.db"
    a = Grant(prefix=ip_network("224.2.0.0/24"), expires=2e9, active=True)
    b = Grant(prefix=ip_network("224.2.1.0/25"), expires=2e9, active=False)
    with LeaseStore.open(path) as store:
        store.save_grants({"Global": [a, b], "Other": [a]})
        store.save_grants({"Global": [b]})
    with LeaseStore.open(path) as store:
        assert store.grants() == {"Global": [b], "Other": [a]}


def test_a_second_opener_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "madcap.db"
    with LeaseStore.open(path), pytest.raises(LeaseStoreError, match="in use by another"):
        LeaseStore.open(path)
    LeaseStore.open(path).close()  # free again once closed


def test_foreign_files_are_refused_untouched(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_bytes(b"this is not a database at all, just some text" * 20)
    before = text.read_bytes()
    with pytest.raises(LeaseStoreError, match="not an SQLite database"):
        LeaseStore.open(text)
    assert text.read_bytes() == before
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(LeaseStoreError, match="another program"):
        LeaseStore.open(other)


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "madcap.db"
    LeaseStore.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(LeaseStoreError, match="schema version 99"):
        LeaseStore.open(path)


def test_a_directory_is_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(LeaseStoreError, match="cannot open"):
        LeaseStore.open(tmp_path)


def test_a_closed_store_says_so(tmp_path: Path) -> None:
    store = LeaseStore.open(tmp_path / "madcap.db")
    store.close()
    store.close()  # twice is harmless
    with pytest.raises(LeaseStoreError, match="closed"):
        store.apply(saved=[lease(1)])


_WRITER = """
import os, sys
from masc.madcap.store import LeaseStore
from tests.madcap.test_store import lease
store = LeaseStore.open(sys.argv[1])
for n in range(1, 6):
    store.apply(saved=[lease(n)])
    print(n, flush=True)
os.kill(os.getpid(), 9)
"""


def test_what_apply_returned_from_survives_kill_9(tmp_path: Path) -> None:
    """apply() returns after COMMIT with synchronous=FULL: the process dying right after,
    without closing the file, loses nothing (and leaves no lock behind)."""
    path = tmp_path / "madcap.db"
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", _WRITER, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert proc.returncode == -9, proc.stderr
    assert proc.stdout.split() == ["1", "2", "3", "4", "5"]
    with LeaseStore.open(path) as store:
        assert store.leases() == [lease(n) for n in range(1, 6)]
