"""The control socket: a Unix socket (mode 0600) speaking newline-delimited JSON.

Never a TCP listener: who may steer the daemon is decided by file permissions.  A malformed
request gets a structured error and the connection stays usable.  The verbs here are the
read-only ``show summary``, ``show peers``, ``show prefixes`` and ``show claims``; the
operator control plane adds more.
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
from typing import TYPE_CHECKING, Any, Final, Literal

import trio
from pydantic import ValidationError

import masc
from masc.api.control import (
    MAX_REQUEST_BYTES,
    ClaimInfo,
    ClaimsResult,
    ClashInfo,
    ErrorInfo,
    PeerInfo,
    PeersResult,
    PrefixesResult,
    PrefixInfo,
    Request,
    Response,
    SummaryResult,
)
from masc.protocol.constants import ClaimType, Role
from masc.protocol.events import SpaceKind
from masc.protocol.wire.messages import format_id

if TYPE_CHECKING:
    from masc.daemon.main import Daemon

log = logging.getLogger("masc.control")
_SOCKET_MODE: Final = 0o600
_MAX_CLIENTS: Final = 32
_IDLE_TIMEOUT: Final = 300.0


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
            "show prefixes": self._show_prefixes,
            "show claims": self._show_claims,
        }

    async def serve(
        self, path: Path, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        sock = await _bind_unix(path)
        listener = trio.SocketListener(sock)
        log.info("control socket %s", path, extra={"event": "control_listening", "path": str(path)})
        limit = trio.CapacityLimiter(_MAX_CLIENTS)
        try:
            async with trio.open_nursery() as nursery:
                task_status.started()
                while True:
                    try:
                        stream = await listener.accept()
                    except OSError as error:
                        # Out of descriptors and the like: the daemon must carry on.
                        log.error(
                            "control accept failed: %s", error, extra={"event": "accept_failed"}
                        )
                        await trio.sleep(0.1)
                        continue
                    nursery.start_soon(self._client, stream, limit)
        finally:
            with contextlib.suppress(OSError):
                path.unlink()

    async def _client(self, stream: trio.SocketStream, limit: trio.CapacityLimiter) -> None:
        async with stream:
            try:
                limit.acquire_nowait()
            except trio.WouldBlock:
                await self._reply_error(stream, "busy", "too many control clients; try again")
                return
            try:
                await self._serve_client(stream)
            finally:
                limit.release()

    async def _reply_error(self, stream: trio.SocketStream, code: str, message: str) -> None:
        error = ErrorInfo.model_validate({"code": code, "message": message})
        with contextlib.suppress(trio.BrokenResourceError, OSError):
            reply = Response(ok=False, error=error).model_dump_json()
            await stream.send_all(reply.encode() + b"\n")

    async def _serve_client(self, stream: trio.SocketStream) -> None:
        """Requests until EOF; a client idle for _IDLE_TIMEOUT is let go."""
        buffer = bytearray()
        while True:
            with trio.move_on_after(_IDLE_TIMEOUT) as idle:
                try:
                    data = await stream.receive_some(65536)
                except (trio.BrokenResourceError, OSError):
                    return
            if idle.cancelled_caught or not data:
                return
            buffer += data
            while (end := buffer.find(b"\n")) >= 0:
                line = bytes(buffer[:end])
                del buffer[: end + 1]
                try:
                    await stream.send_all(self.respond(line) + b"\n")
                except (trio.BrokenResourceError, OSError):
                    return
            if len(buffer) > MAX_REQUEST_BYTES:
                await self._reply_error(stream, "too_large", "request line too long")
                return

    def respond(self, line: bytes) -> bytes:
        """One request line in, one response line out (without the newline)."""
        try:
            try:
                raw = json.loads(line)
            except (ValueError, RecursionError) as error:  # RecursionError: "[[[[..."
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
            try:
                result = handler(request.args)
            except Exception:
                # A bug in one verb must not take the daemon and its sessions down with it:
                # log it loudly, answer the client, carry on.
                log.exception("control verb %r failed", request.verb, extra={"event": "bug"})
                raise ControlError("internal", f"internal error in {request.verb!r}") from None
            response = Response(ok=True, result=result)
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

    def _show_prefixes(self, args: dict[str, Any]) -> dict[str, Any]:
        engine, cfg = self.daemon.engine, self.daemon.config
        family = cfg.local.family
        now = self.daemon.domain.clock()
        rows = []
        for alloc in sorted(engine.allocations.values(), key=lambda a: (a.kind.value, a.prefix)):
            usable = engine.usable(alloc, now=now)
            rows.append(
                PrefixInfo(
                    prefix=str(alloc.prefix),
                    kind=_kind(alloc.kind),
                    expires=alloc.expires,
                    claimed_at=alloc.timestamp,
                    origin_node=format_id(alloc.origin_node, family),
                    domain_id=cfg.local.domain_id,
                    parent_domain_id=alloc.parent if alloc.kind is SpaceKind.DOMAIN else None,
                    usable=[str(p) for p in usable],
                    in_grib=any(p.overlaps(alloc.prefix) for p in engine.grib),
                )
            )
        seen = set()
        for entry in engine.cache.live(now):
            c = entry.claim
            if (
                c.type is not ClaimType.PREFIX_IN_USE
                or c.origin_role is not Role.CHILD
                or c.origin_domain == cfg.local.domain_id
                or (c.origin_domain, c.prefix) in seen
            ):
                continue
            seen.add((c.origin_domain, c.prefix))
            rows.append(
                PrefixInfo(
                    prefix=str(c.prefix),
                    kind="child",
                    expires=c.timestamp + c.lifetime,
                    claimed_at=c.timestamp,
                    origin_node=format_id(c.origin_node, family),
                    domain_id=c.origin_domain,
                    parent_domain_id=cfg.local.domain_id,
                    usable=[str(c.prefix)],
                    in_grib=False,
                )
            )
        return PrefixesResult(non_leaf=engine.non_leaf, prefixes=rows).model_dump()

    def _show_claims(self, args: dict[str, Any]) -> dict[str, Any]:
        engine = self.daemon.engine
        now = self.daemon.domain.clock()
        claims = [
            ClaimInfo(
                prefix=None if s.prefix is None else str(s.prefix),
                type="NEW_CLAIM" if s.purpose == "new" else "CLAIM_TO_EXPAND",
                kind=_kind(s.kind),
                purpose=s.purpose,
                state="scheduled",
                lifetime=s.lifetime,
                time_left=max(0.0, s.at - now),
            )
            for s in engine.scheduled
        ]
        claims += [
            ClaimInfo(
                prefix=str(p.claim.prefix),
                type=p.claim.type.name,
                kind=_kind(p.kind),
                purpose=p.purpose,
                state="pending",
                timestamp=p.claim.timestamp,
                lifetime=p.claim.lifetime,
                time_left=max(0.0, p.deadline - now),
            )
            for p in engine.pending
        ]
        clashes = [
            ClashInfo(
                clash_id=c.clash_id,
                local=str(c.local),
                winner=str(c.winner.prefix),
                winner_domain_id=c.winner.origin_domain,
                detected_at=c.detected_at,
                state=c.state,
            )
            for c in engine.clashes.values()
        ]
        return ClaimsResult(claims=claims, cached=len(engine.cache), clashes=clashes).model_dump()


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


def _kind(kind: SpaceKind) -> Literal["managed", "local"]:
    return "managed" if kind is SpaceKind.DOMAIN else "local"
