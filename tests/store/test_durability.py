"""Durability of the store (RFC 2909 §13): what a save acknowledged survives a crash.

The kill test runs a real child process that saves growing snapshots and prints
``saved N`` after each save returns, and SIGKILLs it at random moments (a seeded
``random.Random``; the seed is printed in every failure message).  Real time is the point
here: the kill must land anywhere in Python, SQLite or the fsync, including while the child
creates and migrates the file.  After each kill the file must hold every acknowledged save,
at most one more (committed, then killed before the print), and each save whole.
"""

from __future__ import annotations

import os
import random
import selectors
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from masc.store import Snapshot, Store, StoredAllocation

KILLS = 25
SEED = 20_250_404
REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0  # for the child's first save: a failure, never a wait in a passing run

# Save n adds allocation n, moves the "counter" pending claim to n and replaces the churn
# claim n-1 by n (an insert, an update and a delete per save), then records one history line.
CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    from masc.store import HistoryRecord, Store, StoredAllocation, StoredPending

    def pending(prefix, n):
        return StoredPending("domain", prefix, 1, n, 3600, 3600, None, "grow", float(n), None)

    store = Store.open(Path(sys.argv[1]))
    allocations = list(store.load().allocations)
    n = max((a.timestamp for a in allocations), default=0)
    while True:
        n += 1
        allocations.append(
            StoredAllocation("domain", f"10.{n >> 8}.{n & 255}.0/24", None, n, 3600, 7, n / 2)
        )
        store.save(
            allocations=allocations,
            pending=[pending("counter", n), pending(f"churn-{n}", n)],
        )
        store.record([HistoryRecord(float(n), "saved", "", str(n))])
        print(f"saved {n}", flush=True)
    """
)


def _run_until_killed(
    script: Path, path: Path, delay: float, *, from_first_save: bool, stderr_path: Path
) -> list[int]:
    """Start the child and SIGKILL it ``delay`` s after it starts or, with
    ``from_first_save``, after it acknowledges its first save (so the kill lands in the
    save loop however slow the machine starts Python); return the saves it acknowledged."""
    with stderr_path.open("wb") as stderr:
        child = subprocess.Popen(
            [sys.executable, str(script), str(path)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
    assert child.stdout is not None
    output = b""
    started = time.monotonic()
    deadline = started + (START_TIMEOUT if from_first_save else delay)
    with selectors.DefaultSelector() as selector:
        selector.register(child.stdout, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if selector.select(left):
                chunk = os.read(child.stdout.fileno(), 65_536)
                if not chunk:
                    break
                if from_first_save and b"\n" in chunk and b"\n" not in output:
                    deadline = time.monotonic() + delay
                output += chunk
    running = child.poll() is None
    child.send_signal(signal.SIGKILL)
    child.wait()
    output += child.stdout.read()
    child.stdout.close()
    assert running, f"the child stopped by itself:\n{stderr_path.read_text()}"
    assert output or not from_first_save, f"no save in {START_TIMEOUT} s"
    lines = output.split(b"\n")[:-1]  # a line cut by the kill acknowledges nothing
    return [int(line.removeprefix(b"saved ")) for line in lines]


def _check(snapshot: Snapshot, acknowledged: set[int], label: str) -> int:
    """The snapshot is exactly saves 1..m, each whole, with every acknowledged history line;
    return m."""
    numbers = [a.timestamp for a in snapshot.allocations]
    m = len(numbers)
    assert sorted(numbers) == list(range(1, m + 1)), f"{label}: lost or duplicated saves"
    assert len({a.prefix for a in snapshot.allocations}) == m, f"{label}: duplicated prefix"
    pending = {p.prefix: p.timestamp for p in snapshot.pending}
    assert pending == ({"counter": m, f"churn-{m}": m} if m else {}), f"{label}: a torn save"
    history = [int(h.detail) for h in snapshot.history]
    assert history == sorted(set(history)), f"{label}: history doubled or out of order"
    assert acknowledged <= set(history), f"{label}: acknowledged history lost"
    # A kill between save n and its history line loses that line (it was never
    # acknowledged); the next run's lines follow on.
    assert not history or history[-1] in (m - 1, m), f"{label}: history out of step"
    return m


def test_s13_every_acknowledged_save_survives_kill_9_at_random_moments(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    path = tmp_path / "state" / "state.db"
    stored = 0  # saves in the file after the previous kill
    acknowledged: set[int] = set()
    killed_while_saving = 0
    for kill in range(KILLS):
        label = f"seed {SEED}, kill {kill}"
        # One kill in four anywhere from the start (opening, creating, migrating the file).
        acked = _run_until_killed(
            script,
            path,
            rng.uniform(0.0, 0.25),
            from_first_save=rng.random() >= 0.25,
            stderr_path=tmp_path / f"stderr-{kill}",
        )
        assert acked == list(range(stored + 1, stored + 1 + len(acked))), (
            f"{label}: the child did not continue from the stored state"
        )
        acknowledged.update(acked)
        last = acked[-1] if acked else stored
        with Store.open(path) as store:
            stored = _check(store.load(), acknowledged, label)
        assert stored in (last, last + 1), f"{label}: {stored} saves stored, {last} acknowledged"
        killed_while_saving += bool(acked)
    print(f"seed {SEED}: {KILLS} kills, {killed_while_saving} in the save loop, {stored} saves")
    assert killed_while_saving >= KILLS // 2


def _allocation(n: int) -> StoredAllocation:
    return StoredAllocation("domain", f"10.0.{n}.0/24", None, n, 3600, 7, float(n))


def test_s13_a_torn_wal_tail_is_discarded_and_the_last_whole_save_restored(
    tmp_path: Path,
) -> None:
    """A crash in the middle of writing the WAL: the copy of an open store's files, cut
    inside its last frame, must open with the save before the last one, whole."""
    path = tmp_path / "state.db"
    store = Store.open(path)
    try:
        for n in range(1, 4):
            store.save(allocations=[_allocation(k) for k in range(1, n + 1)])
        # Copy while open: nothing is checkpointed yet, the three saves are in the WAL.
        crashed = tmp_path / "crashed"
        crashed.mkdir()
        shutil.copy(path, crashed / "state.db")
        shutil.copy(f"{path}-wal", crashed / "state.db-wal")
    finally:
        store.close()
    wal = crashed / "state.db-wal"
    os.truncate(wal, wal.stat().st_size - 100)
    with Store.open(crashed / "state.db") as recovered:
        assert recovered.load().allocations == (_allocation(1), _allocation(2))
        recovered.save(allocations=[_allocation(9)])  # and it is writable again
    with Store.open(crashed / "state.db") as recovered:
        assert recovered.load().allocations == (_allocation(9),)
