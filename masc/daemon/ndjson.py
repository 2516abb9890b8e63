"""What the daemon's local sockets share: newline-delimited JSON on a Unix socket.

The control socket (mascctl) and the MAAS socket (address allocation servers) differ in what
they say, not in how: both bind a Unix socket whose file permissions decide who may talk,
accept a bounded number of clients without letting an accept error stop the daemon, read
lines of bounded length, and map a line that is not a request to one structured error
(``bad_json`` or ``bad_request`` naming the field).  Each of those exists once, here.

Never a TCP listener: who may use these sockets is decided by the file's owner, group and
mode, which the operator sets in the configuration.
"""

from __future__ import annotations

import contextlib
import enum
import grp
import json
import logging
import os
import socket
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final, TypeVar

import trio
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

_LISTEN_BACKLOG: Final = 64
_ACCEPT_RETRY: Final = 0.1  # seconds to wait after a failed accept (EMFILE and the like)


class RequestError(Exception):
    """A request answered with a structured error; ``code`` is the wire code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# --- parsing -----------------------------------------------------------------------------------


def load_json(line: bytes) -> Any:
    """The JSON value of one line, or ``RequestError("bad_json")``."""
    try:
        return json.loads(line)
    except (ValueError, RecursionError) as error:  # RecursionError: "[[[[..."
        raise RequestError("bad_json", f"request is not JSON: {error}") from None


def validate(model: type[M], data: Any, *, where: str = "") -> M:
    """``data`` as ``model``, or ``RequestError("bad_request")`` naming the first bad field,
    dotted from ``where`` (``args.size: Input should be a valid integer``)."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join([*([where] if where else []), *(str(p) for p in first["loc"])])
        raise RequestError("bad_request", f"{field or 'request'}: {first['msg']}") from None


def parse_request(line: bytes, model: type[M]) -> M:
    """One request line as ``model``, with the error mapping of :func:`load_json` and
    :func:`validate`."""
    return validate(model, load_json(line))


# --- framing -----------------------------------------------------------------------------------


class Oversized(enum.Enum):
    """Returned by :meth:`LineReader.receive_line` in place of a line that was too long."""

    LINE = "line"


TOO_LARGE: Final = Oversized.LINE


class LineReader:
    """Lines from a byte stream, none longer than ``max_bytes`` (without the newline).

    A longer line is reported as :data:`TOO_LARGE` as soon as it is known to be too long (a
    client that never sends the newline cannot make the daemon buffer without bound), then
    the rest of it is discarded up to its newline, so the next line is read normally.
    Cancel-safe: the buffer changes only after a receive has returned.

    ``strict=False`` is the control socket's older rule, kept because mascctl users and
    tests rely on it: only the unterminated end of the buffer is held to ``max_bytes``, so a
    longer line whose newline arrives within the next read (of ``max_bytes``) is returned
    whole.  Memory stays bounded (two reads); the line length does not.
    """

    def __init__(
        self, stream: trio.abc.ReceiveStream, max_bytes: int, *, strict: bool = True
    ) -> None:
        self._stream = stream
        self._max = max_bytes
        self._strict = strict
        self._buffer = bytearray()
        self._scanned = 0  # bytes of the buffer known to hold no newline
        self._discarding = False

    async def receive_line(self) -> bytes | Oversized | None:
        """The next line without its newline, :data:`TOO_LARGE`, or None at end of stream
        (an unterminated last line is dropped: a line ends with its newline)."""
        while True:
            end = self._buffer.find(b"\n", self._scanned)
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                self._scanned = 0
                if self._discarding:
                    self._discarding = False
                    continue
                return TOO_LARGE if self._strict and len(line) > self._max else line
            if self._discarding:
                self._buffer.clear()
            elif len(self._buffer) > self._max:
                self._buffer.clear()
                self._discarding = True
                self._scanned = 0
                return TOO_LARGE
            self._scanned = len(self._buffer)
            try:
                data = await self._stream.receive_some(self._max)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                return None
            if not data:
                return None
            self._buffer += data


# --- the socket --------------------------------------------------------------------------------


def resolve_group(group: str | int | None) -> int | None:
    """A group name or number as a gid; OSError naming the group when there is none."""
    if group is None or isinstance(group, int):
        return group
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        if group.isdigit():
            return int(group)
        raise OSError(f"no group named {group!r}") from None


async def bind_unix(
    path: Path, *, mode: int, group: str | int | None = None
) -> trio.socket.SocketType:
    """A listening Unix socket at ``path`` with ``mode`` and, if given, ``group``.

    A stale socket file (left by a crash: nobody answers on it) is replaced; a regular file
    or the socket of a daemon that still runs is not.  The socket is created under umask
    0177, so it is never wider than 0600 before its group and mode are set.
    """
    gid = resolve_group(group)  # before touching the file system: a typo fails cleanly
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise OSError(f"{path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()  # nobody answers: left over from a crash
        else:
            raise OSError(f"{path} is in use by a running daemon")
        finally:
            probe.close()
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    try:
        old_umask = os.umask(0o177)
        try:
            await sock.bind(str(path))
        finally:
            os.umask(old_umask)
        try:
            if gid is not None:
                os.chown(path, -1, gid)
            os.chmod(path, mode)
        except OSError as error:
            path.unlink()
            raise OSError(
                f"cannot set group {group!r} and mode {mode:#o} on {path}: {error}"
            ) from None
        sock.listen(_LISTEN_BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


async def serve_unix(
    path: Path,
    handler: Callable[[trio.SocketStream], Awaitable[None]],
    *,
    mode: int,
    group: str | int | None = None,
    max_clients: int,
    busy_line: bytes,
    logger: logging.Logger,
    name: str,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Bind ``path`` and run ``handler`` for each client until cancelled, then remove the
    socket file.  Beyond ``max_clients`` at once a client gets ``busy_line`` and is closed.
    ``handler`` owns nothing but the protocol: the stream is closed here when it returns.
    Log events are ``<name>_listening``, ``<name>_busy`` and ``accept_failed``."""
    sock = await bind_unix(path, mode=mode, group=group)
    listener = trio.SocketListener(sock)
    logger.info("%s socket %s", name, path, extra={"event": f"{name}_listening", "path": str(path)})
    active = 0

    async def client(stream: trio.SocketStream) -> None:
        nonlocal active
        async with stream:
            if active >= max_clients:
                logger.warning(
                    "%s: more than %d clients; refusing one",
                    name,
                    max_clients,
                    extra={"event": f"{name}_busy", "path": str(path)},
                )
                with contextlib.suppress(trio.BrokenResourceError, OSError):
                    await stream.send_all(busy_line)
                return
            active += 1
            try:
                await handler(stream)
            finally:
                active -= 1

    try:
        async with trio.open_nursery() as nursery:
            task_status.started()
            while True:
                try:
                    stream = await listener.accept()
                except OSError as error:
                    # Out of descriptors and the like: the daemon must carry on.
                    logger.error(
                        "%s accept failed: %s", name, error, extra={"event": "accept_failed"}
                    )
                    await trio.sleep(_ACCEPT_RETRY)
                    continue
                nursery.start_soon(client, stream)
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
