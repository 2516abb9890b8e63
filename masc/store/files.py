"""Opening a SQLite file that one process holds alone: the daemon's state store (RFC 2909
§13) and the MADCAP server's lease store (RFC 2730) both need it.

The file is created 0600 (missing directories 0700), its new directory entry is fsynced so a
crash cannot lose the file itself, and an exclusive ``flock`` keeps a second process with
the same configuration from writing it too.  Every failure is the caller's error type with a
message naming the file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from collections.abc import Callable
from pathlib import Path


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
