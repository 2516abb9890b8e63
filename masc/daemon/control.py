"""The control socket: a Unix socket (mode 0600) speaking newline-delimited JSON.

Never a TCP listener: who may steer the daemon is decided by file permissions.  A malformed
request gets a structured error and the connection stays usable.  The verbs here are the
read-only ``show summary`` and ``show peers``; the operator control plane adds more.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import trio
from pydantic import ValidationError

import masc
from masc.api.control import (
    MAX_REQUEST_BYTES,
    ErrorInfo,
    PeerInfo,
    PeersResult,
    Request,
    Response,
    SummaryResult,
)
from masc.protocol.wire.messages import format_id

if TYPE_CHECKING:
    from masc.daemon.main import Daemon

log = logging.getLogger("masc.control")
_SOCKET_MODE: Final = 0o600


class ControlError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class ControlServer:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self._verbs: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "show summary": self._show_summary,
            "show peers": self._show_peers,
        }

    async def serve(
        self, path: Path, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        sock = await _bind_unix(path)
        listener = trio.SocketListener(sock)
        log.info("control socket %s", path, extra={"event": "control_listening", "path": str(path)})
        try:
            async with trio.open_nursery() as nursery:
                task_status.started()
                while True:
                    stream = await listener.accept()
                    nursery.start_soon(self._client, stream)
        finally:
            with contextlib.suppress(OSError):
                path.unlink()

    async def _client(self, stream: trio.SocketStream) -> None:
        buffer = bytearray()
        async with stream:
            try:
                while data := await stream.receive_some(65536):
                    buffer += data
                    while (end := buffer.find(b"\n")) >= 0:
                        line, buffer = bytes(buffer[:end]), buffer[end + 1 :]
                        await stream.send_all(self.respond(line) + b"\n")
                    if len(buffer) > MAX_REQUEST_BYTES:
                        error = ErrorInfo(code="too_large", message="request line too long")
                        reply = Response(ok=False, error=error).model_dump_json()
                        await stream.send_all(reply.encode() + b"\n")
                        return
            except (trio.BrokenResourceError, OSError):
                return

    def respond(self, line: bytes) -> bytes:
        """One request line in, one response line out (without the newline)."""
        try:
            try:
                raw = json.loads(line)
            except (ValueError, UnicodeDecodeError) as error:
                raise ControlError("bad_json", f"request is not JSON: {error}") from None
            try:
                request = Request.model_validate(raw)
            except ValidationError as error:
                first = error.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "request"
                raise ControlError("bad_request", f"{where}: {first['msg']}") from None
            handler = self._verbs.get(request.verb)
            if handler is None:
                raise ControlError(
                    "unknown_verb",
                    f"unknown verb {request.verb!r}; known: {', '.join(sorted(self._verbs))}",
                )
            response = Response(ok=True, result=handler(request.args))
        except ControlError as error:
            response = Response(
                ok=False,
                error=ErrorInfo.model_validate({"code": error.code, "message": str(error)}),
            )
        return response.model_dump_json().encode()

    # --- verbs -----------------------------------------------------------------------------

    def _show_summary(self, args: dict[str, Any]) -> dict[str, Any]:
        cfg = self.daemon.config
        return SummaryResult(
            version=masc.__version__,
            domain_id=cfg.local.domain_id,
            node_id=str(cfg.local.node_id),
            address_family=cfg.local.address_family,
            top_level_domain=cfg.is_tld,
            parent_domain_ids=list(cfg.parent_domain_ids),
            peers_configured=len(cfg.peers),
            peers_established=self.daemon.established_count,
            uptime=time.time() - self.daemon.started_at,
        ).model_dump()

    def _show_peers(self, args: dict[str, Any]) -> dict[str, Any]:
        cfg = self.daemon.config
        now = trio.current_time()
        rows = []
        for peer, runner in self.daemon.peer_rows():
            session = runner.session
            remote = session.remote
            stats = session.stats
            rows.append(
                PeerInfo(
                    address=str(peer.address),
                    port=peer.port,
                    relation=peer.relation.value,
                    domain_id=peer.domain_id,
                    parent_domain_id=session.config.session_parent,
                    state=session.state.value,
                    passive=peer.passive,
                    hold_time=session.negotiated_hold_time,
                    configured_hold_time=cfg.hold_time_for(peer),
                    remote_node_id=format_id(remote.node_id, remote.family) if remote else None,
                    internal=(None if remote is None else remote.domain_id == cfg.local.domain_id),
                    established_for=(
                        None if stats.established_at is None else now - stats.established_at
                    ),
                    flaps=stats.flaps,
                    last_error=stats.last_error,
                    messages_in=dict(stats.messages_in),
                    messages_out=dict(stats.messages_out),
                )
            )
        return PeersResult(peers=rows).model_dump()


async def _bind_unix(path: Path) -> trio.socket.SocketType:
    """Bind the control socket at ``path``, replacing a stale socket but nothing else: not
    a regular file, and not the socket of a daemon that is still running."""
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
    old_umask = os.umask(0o177)  # never a window where the socket is wider than 0600
    try:
        await sock.bind(str(path))
    finally:
        os.umask(old_umask)
    os.chmod(path, _SOCKET_MODE)
    sock.listen(64)
    return sock
