"""The control socket: a Unix socket (mode 0600) speaking newline-delimited JSON.

Never a TCP listener: who may steer the daemon is decided by file permissions.  A malformed
request gets a structured error and the connection stays usable.  The verbs here are the
read-only ``show summary``, ``show peers``, ``show prefixes`` and ``show claims``; the
operator control plane adds more.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import trio

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
from masc.daemon.ndjson import (
    TOO_LARGE,
    LineReader,
    Oversized,
    RequestError,
    parse_request,
    serve_unix,
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
        busy = ErrorInfo(code="busy", message="too many control clients; try again")
        await serve_unix(
            path,
            self._serve_client,
            mode=_SOCKET_MODE,
            max_clients=_MAX_CLIENTS,
            busy_line=Response(ok=False, error=busy).model_dump_json().encode() + b"\n",
            logger=log,
            name="control",
            task_status=task_status,
        )

    async def _serve_client(self, stream: trio.SocketStream) -> None:
        """Requests until EOF; a client idle for _IDLE_TIMEOUT is let go, and so is one that
        sent a line over MAX_REQUEST_BYTES (mascctl never does)."""
        reader = LineReader(stream, MAX_REQUEST_BYTES, strict=False)
        while True:
            line: bytes | Oversized | None = None
            with trio.move_on_after(_IDLE_TIMEOUT):
                line = await reader.receive_line()
            if line is None:
                return  # end of stream, or idle
            if line is TOO_LARGE:
                reply = _error("too_large", "request line too long")
            else:
                reply = self.respond(line)
            try:
                await stream.send_all(reply + b"\n")
            except (trio.BrokenResourceError, OSError):
                return
            if line is TOO_LARGE:
                return

    def respond(self, line: bytes) -> bytes:
        """One request line in, one response line out (without the newline)."""
        try:
            request = parse_request(line, Request)
            handler = self._verbs.get(request.verb)
            if handler is None:
                raise RequestError(
                    "unknown_verb",
                    f"unknown verb {request.verb!r}; known: {', '.join(sorted(self._verbs))}",
                )
            try:
                result = handler(request.args)
            except Exception:
                # A bug in one verb must not take the daemon and its sessions down with it:
                # log it loudly, answer the client, carry on.
                log.exception("control verb %r failed", request.verb, extra={"event": "bug"})
                raise RequestError("internal", f"internal error in {request.verb!r}") from None
        except RequestError as error:
            return _error(error.code, str(error))
        return Response(ok=True, result=result).model_dump_json().encode()

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


def _error(code: str, message: str) -> bytes:
    error = ErrorInfo.model_validate({"code": code, "message": message})
    return Response(ok=False, error=error).model_dump_json().encode()


def _kind(kind: SpaceKind) -> Literal["managed", "local"]:
    return "managed" if kind is SpaceKind.DOMAIN else "local"
