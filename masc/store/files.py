"""A SQLite file that one process holds alone: the daemon's state store (RFC 2909 §13) and
the MADCAP server's lease store (RFC 2730) are both one (:class:`LockedDatabase`).

The file is created 0600 (missing directories 0700), its new directory entry is fsynced so a
crash cannot lose the file itself, and an exclusive ``flock`` keeps a second process with
the same configuration from writing it too.  Every failure is the caller's error type with a
message naming the file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self, TypeVar

D = TypeVar("D", bound="LockedDatabase")


class LockedDatabase:
    """An open SQLite connection on a file flocked by :func:`open_locked`; closing it
    releases both.  A subclass names its error type and how people call the file, reads
    and writes it, and checks it in ``_prepare`` (run once, right after opening)."""

    error: ClassVar[type[Exception]]  # raised with a message naming the file
    what: ClassVar[str]  # "store", "lease store"
    in_use: ClassVar[str]  # the likely cause when another process holds the file

    def __init__(self, path: Path, conn: sqlite3.Connection, lock_fd: int) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = conn
        self._lock_fd = lock_fd

    @classmethod
    def _open_file(cls, path: Path, build: Callable[[Path, sqlite3.Connection, int], D]) -> D:
        """Lock ``path``, connect, ``build`` the object and prepare it; on any failure
        nothing stays open."""
        lock_fd = open_locked(path, what=cls.what, in_use=cls.in_use, error=cls.error)
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(
                path.absolute().as_uri() + "?mode=rw", uri=True, isolation_level=None
            )
            database = build(path, conn, lock_fd)
            database._prepare()
            return database
        except BaseException as exc:
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            # After SQLite let go of the file: closing any descriptor of a file drops the
            # process's POSIX locks on it, SQLite's included.
            os.close(lock_fd)
            if isinstance(exc, sqlite3.Error):
                raise cls.error(f"{path}: cannot open the {cls.what}: {exc}") from exc
            raise

    def _prepare(self) -> None:
        """Identify, migrate and read the file; a subclass's job."""
        raise NotImplementedError

    def close(self) -> None:
        """Close the file (SQLite checkpoints the WAL into it) and release the lock."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.close()
        except sqlite3.Error as exc:
            raise self.error(f"{self._path}: closing the {self.what} failed: {exc}") from exc
        finally:
            os.close(self._lock_fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def path(self) -> Path:
        return self._path

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise self.error(f"{self._path}: the {self.what} is closed")
        return self._conn

    @contextlib.contextmanager
    def _transaction(self, what: str) -> Iterator[sqlite3.Connection]:
        """One write transaction, committed (durably) on leaving, rolled back on error."""
        conn = self._connection()
        try:
            # IMMEDIATE: take the write lock now, so a busy file fails before any work.
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise self.error(f"{self._path}: {what} failed: {exc}") from exc


def open_locked(path: Path, *, what: str, in_use: str, error: Callable[[str], Exception]) -> int:
    """Open (creating it) and flock ``path``; the descriptor.  ``what`` names the file for
    people ("store", "lease store"); ``in_use`` is the likely cause when another process
    holds it."""
    try:
        _make_directories(path.parent)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            created = True
        except FileExistsError:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            created = False
    except OSError as exc:
        raise error(f"{path}: cannot open the {what}: {_os_error(exc, path)}") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise error(f"{path}: cannot open the {what}: not a regular file")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise error(f"{path}: the {what} is in use by another process ({in_use})") from None
        # SQLite would only say "unable to open database file" when it fails to create the
        # WAL and shared-memory files next to the file.
        if not os.access(path.parent, os.W_OK | os.X_OK):
            raise error(
                f"{path}: cannot open the {what}: its directory {path.parent} is not writable "
                f"(the WAL and shared-memory files live next to the {what})"
            )
        if created:
            _fsync_directory(path.parent)
    except BaseException as exc:
        os.close(fd)
        if isinstance(exc, OSError):
            raise error(f"{path}: cannot open the {what}: {_os_error(exc, path)}") from exc
        raise
    return fd


def _make_directories(directory: Path) -> None:
    missing: list[Path] = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for each in reversed(missing):
        with contextlib.suppress(FileExistsError):
            each.mkdir(mode=0o700)


def _fsync_directory(directory: Path) -> None:
    """Make a new file's directory entry durable (a crash must not lose the file itself)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _os_error(exc: OSError, path: Path) -> str:
    """The OS error's text, naming the file it concerns when that is not ``path`` itself."""
    text = exc.strerror or str(exc)
    if exc.filename is None or os.fsdecode(exc.filename) == str(path):
        return text
    return f"{text} ({os.fsdecode(exc.filename)})"
