"""The control sockets: Unix sockets speaking newline-delimited JSON (docs/operations.md).

Never a TCP listener: who may steer the daemon is decided by file permissions.  The full
socket (mode 0600 by default) serves every verb; the optional read-only socket serves only
``show`` verbs and answers any other with ``read_only``, so monitoring can be given read
access without the power to release prefixes or reset sessions.  A malformed request gets a
structured error and the connection stays usable.

Actions run inside the domain runner's task (``DomainRunner.call``): they are serialised
with the protocol's own inputs, persisted before they are announced (RFC 2909 §13), and a
refusal by the engine comes back as the ``refused`` error with the engine's reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from ipaddress import ip_network
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

import trio
from pydantic import BaseModel

import masc
from masc.api.control import (
    MAX_REQUEST_BYTES,
    ActionResult,
    CachedClaim,
    ClaimArgs,
    ClaimInfo,
    ClaimsArgs,
    ClaimsResult,
    ClashArgs,
    ClashesResult,
    ClashInfo,
    ErrorInfo,
    GrantHolding,
    GribExporterInfo,
    HistoryItem,
    MaasForgetArgs,
    MaasInfo,
    MaasResult,
    NoArgs,
    PeerActionArgs,
    PeerArgs,
    PeerDetail,
    PeerDetailResult,
    PeerInfo,
    PeersResult,
    PrefixArgs,
    PrefixesArgs,
    PrefixesResult,
    PrefixInfo,
    ReloadArgs,
    Request,
    Response,
    SummaryResult,
)
from masc.daemon.errors import ReloadRefused, UnknownPeer
from masc.daemon.ndjson import (
    TOO_LARGE,
    LineReader,
    Oversized,
    RequestError,
    parse_request,
    serve_unix,
    validate,
)
from masc.daemon.peer import PeerRunner
from masc.protocol.engine import ClaimEngine, RequestRefused, ScheduledClaim
from masc.protocol.events import SpaceKind
from masc.protocol.wire.messages import Prefix, format_id

if TYPE_CHECKING:
    from masc.config import PeerConfig
    from masc.daemon.main import Daemon

log = logging.getLogger("masc.control")
_MAX_CLIENTS: Final = 32
_IDLE_TIMEOUT: Final = 300.0
M = TypeVar("M", bound=BaseModel)
Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class _Verb:
    handler: Handler
    read_only: bool  # served on the read-only socket too


class ControlServer:
    """Answers control requests for one daemon, on the full or the read-only socket."""

    def __init__(self, daemon: Daemon, *, read_only: bool = False) -> None:
        self.daemon = daemon
        self.read_only = read_only
        shows: dict[str, Handler] = {
            "show summary": self._show_summary,
            "show peers": self._show_peers,
            "show peer": self._show_peer,
            "show prefixes": self._show_prefixes,
            "show claims": self._show_claims,
            "show clashes": self._show_clashes,
            "show maas": self._show_maas,
        }
        actions: dict[str, Handler] = {
            "claim": self._claim,
            "renew": self._renew,
            "release": self._release,
            "clash": self._clash,
            "peer": self._peer,
            "maas forget": self._maas_forget,
            "reload": self._reload,
        }
        self._verbs: dict[str, _Verb] = {v: _Verb(h, True) for v, h in shows.items()}
        self._verbs |= {v: _Verb(h, False) for v, h in actions.items()}

    async def serve(
        self,
        path: Path,
        *,
        mode: int = 0o600,
        group: str | int | None = None,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        busy = ErrorInfo(code="busy", message="too many control clients; try again")
        await serve_unix(
            path,
            self._serve_client,
            mode=mode,
            group=group,
            max_clients=_MAX_CLIENTS,
            busy_line=Response(ok=False, error=busy).model_dump_json().encode() + b"\n",
            logger=log,
            name="control_readonly" if self.read_only else "control",
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
                reply = await self.respond(line)
            try:
                await stream.send_all(reply + b"\n")
            except (trio.BrokenResourceError, OSError):
                return
            if line is TOO_LARGE:
                return

    async def respond(self, line: bytes) -> bytes:
        """One request line in, one response line out (without the newline)."""
        try:
            request = parse_request(line, Request)
            verb = self._verbs.get(request.verb)
            if verb is None:
                raise RequestError(
                    "unknown_verb",
                    f"unknown verb {request.verb!r}; known: {', '.join(sorted(self._verbs))}",
                )
            if self.read_only and not verb.read_only:
                raise RequestError(
                    "read_only",
                    f"{request.verb!r} changes state; this is the read-only socket "
                    f"(use {self.daemon.config.control.socket})",
                )
            try:
                result = await verb.handler(request.args)
            except RequestError:
                raise
            except RequestRefused as refusal:
                raise RequestError("refused", str(refusal)) from None
            except UnknownPeer as missing:
                raise RequestError("not_found", str(missing)) from None
            except Exception:
                # A bug in one verb must not take the daemon and its sessions down with it:
                # log it loudly, answer the client, carry on.
                log.exception("control verb %r failed", request.verb, extra={"event": "bug"})
                raise RequestError("internal", f"internal error in {request.verb!r}") from None
        except RequestError as error:
            return _error(error.code, str(error))
        return Response(ok=True, result=result).model_dump_json().encode()

    # --- show verbs ----------------------------------------------------------------------

    async def _show_summary(self, args: dict[str, Any]) -> dict[str, Any]:
        _args(NoArgs, args)
        d = self.daemon
        cfg, engine, grants = d.config, d.engine, d.grants
        now = d.domain.clock()
        managed = engine.managed_space(now=now)
        local = engine.local_space(now=now)
        kinds = [a.kind for a in engine.allocations.values()]
        return SummaryResult(
            version=masc.__version__,
            domain_id=cfg.local.domain_id,
            node_id=str(cfg.local.node_id),
            address_family=cfg.local.address_family,
            top_level_domain=cfg.is_tld,
            parent_domain_ids=list(cfg.parent_domain_ids),
            peers_configured=len(d.runners),
            peers_established=d.established_count,
            uptime=time.time() - d.started_at,
            non_leaf=engine.non_leaf,
            clash_resolution=cfg.policy.clash_resolution,
            prefixes_managed=kinds.count(SpaceKind.DOMAIN),
            prefixes_local=kinds.count(SpaceKind.LOCAL),
            addresses_managed=sum(p.num_addresses for p in managed),
            addresses_local=sum(p.num_addresses for p in local),
            addresses_granted=sum(g.prefix.num_addresses for g in grants.grants()),
            addresses_in_use=grants.demand().in_use,
            claims_pending=len(engine.pending),
            claims_scheduled=len(engine.scheduled),
            claims_cached=len(engine.cache),
            clashes_pending=sum(c.state == "pending" for c in engine.clashes.values()),
            maas_registered=len(grants.maas()),
            config_path=None if d.config_path is None else str(d.config_path),
            reloads=d.reloads,
            last_reload=d.last_reload,
            grib_prefixes=len(d.grib.prefixes),
            grib_exporters=[
                GribExporterInfo(
                    name=t.name,
                    in_sync=t.in_sync,
                    installed=t.installed,
                    syncs=t.syncs,
                    failures=t.failures,
                    last_sync=t.last_sync,
                    last_error=t.last_error,
                )
                for t in d.grib.statuses
            ],
        ).model_dump()

    async def _show_peers(self, args: dict[str, Any]) -> dict[str, Any]:
        _args(NoArgs, args)
        rows = [self._peer_info(peer, runner) for peer, runner in self.daemon.peer_rows()]
        return PeersResult(peers=rows).model_dump()

    async def _show_peer(self, args: dict[str, Any]) -> dict[str, Any]:
        a = _args(PeerArgs, args)
        d = self.daemon
        now = trio.current_time()
        rows = []
        for key in d.sessions_at(a.address, a.parent_domain_id):
            peer, runner = d.peers[key], d.runners[key]
            session = runner.session
            restart = session.restart_at
            rows.append(
                PeerDetail(
                    **self._peer_info(peer, runner).model_dump(),
                    session_key=runner.key,
                    local_address=None
                    if runner.local_address is None
                    else str(runner.local_address),
                    connect_retry=session.config.connect_retry,
                    scope_boundary=[str(p) for p in peer.scope_boundary],
                    restart_at=None if restart is None else max(0.0, restart - now),
                    remote_hold_time=None if session.remote is None else session.remote.hold_time,
                )
            )
        return PeerDetailResult(peers=rows).model_dump()

    def _peer_info(self, peer: PeerConfig, runner: PeerRunner) -> PeerInfo:
        cfg = self.daemon.config
        now = trio.current_time()
        session = runner.session
        remote = session.remote
        stats = session.stats
        return PeerInfo(
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
            established_for=(None if stats.established_at is None else now - stats.established_at),
            flaps=stats.flaps,
            last_error=stats.last_error,
            messages_in=dict(stats.messages_in),
            messages_out=dict(stats.messages_out),
            limit_drops=stats.limit_drops,
            limit_resets=stats.limit_resets,
            security=[
                name
                for name, on in (("md5", peer.md5_key), ("ttl-security", peer.ttl_security))
                if on
            ],
            admin_down=session.admin_down,
        )

    async def _show_prefixes(self, args: dict[str, Any]) -> dict[str, Any]:
        a = _args(PrefixesArgs, args)
        d = self.daemon
        engine, cfg, store = d.engine, d.config, d.store
        family = cfg.local.family
        now = d.domain.clock()
        usable = engine.usable_all(now=now)
        held = {prefix for (_, prefix) in engine.allocations}
        holdings: dict[Prefix, list[GrantHolding]] = {}
        for g in d.grants.grants():
            # A grant lies inside the space it was carved from (grants.py): list it under
            # every held prefix containing it, found by its supernets (no pairwise scan).
            for sup in _supernets(g.prefix):
                if sup in held:
                    holdings.setdefault(sup, []).append(
                        GrantHolding(
                            maas=g.maas,
                            prefix=str(g.prefix),
                            expires=int(g.expires),
                            active=g.active,
                        )
                    )
        rows = []
        for (kind, prefix), alloc in sorted(engine.allocations.items(), key=_allocation_order):
            history = []
            if store is not None and a.history:
                records = store.history(prefix=str(prefix), limit=a.history)
                history = [
                    HistoryItem(at=r.at, event=r.event, prefix=r.prefix, detail=r.detail)
                    for r in reversed(records)
                ]
            pieces = usable[(kind, prefix)]
            rows.append(
                PrefixInfo(
                    prefix=str(prefix),
                    kind=_kind(kind),
                    expires=alloc.expires,
                    claimed_at=alloc.timestamp,
                    origin_node=format_id(alloc.origin_node, family),
                    domain_id=cfg.local.domain_id,
                    parent_domain_id=alloc.parent if kind is SpaceKind.DOMAIN else None,
                    usable=[str(p) for p in pieces],
                    in_grib=_in_grib(prefix, pieces, engine.grib),
                    state="active" if alloc.renewing else "deprecated",
                    renewed_at=alloc.renewed_at,
                    maas=holdings.get(prefix, []),
                    history=history,
                )
            )
        for c in engine.child_prefixes(now=now):
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

    async def _show_claims(self, args: dict[str, Any]) -> dict[str, Any]:
        a = _args(ClaimsArgs, args)
        d = self.daemon
        engine, cfg = d.engine, d.config
        now = d.domain.clock()
        within = None if a.prefix is None else _prefix(a.prefix)
        claims = [_scheduled_info(s, now) for s in engine.scheduled]
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
        foreign = []
        for entry in engine.cache.live(now):
            c = entry.claim
            if (
                c.origin_domain == cfg.local.domain_id
                or (a.type is not None and c.type.name != a.type)
                or (a.domain_id is not None and c.origin_domain != a.domain_id)
                or (within is not None and not c.prefix.overlaps(within))
            ):
                continue
            foreign.append(
                CachedClaim(
                    type=c.type.name,
                    prefix=str(c.prefix),
                    origin_domain=c.origin_domain,
                    origin_node=format_id(c.origin_node, cfg.local.family),
                    origin_role=c.origin_role.name,
                    timestamp=c.timestamp,
                    lifetime=c.lifetime,
                    holdtime=c.holdtime,
                    expires=int(entry.expires),
                )
            )
        foreign.sort(key=lambda c: (c.origin_domain, c.prefix, c.type))
        return ClaimsResult(
            claims=claims,
            cached=len(engine.cache),
            foreign=foreign[: a.limit],
            foreign_total=len(foreign),
            clashes=_clashes(engine),
        ).model_dump()

    async def _show_clashes(self, args: dict[str, Any]) -> dict[str, Any]:
        _args(NoArgs, args)
        return ClashesResult(
            clash_resolution=self.daemon.config.policy.clash_resolution,
            clashes=_clashes(self.daemon.engine),
        ).model_dump()

    async def _show_maas(self, args: dict[str, Any]) -> dict[str, Any]:
        _args(NoArgs, args)
        d = self.daemon
        grants, connected = d.grants, d.maas_backend.connections
        rows = [
            MaasInfo(
                name=name,
                scopes=list(scopes),
                connected=name in connected,
                registered_at=d.domain.registered_at.get(name),
                in_use=grants.in_use(name),
                grants=[
                    GrantHolding(
                        maas=g.maas, prefix=str(g.prefix), expires=int(g.expires), active=g.active
                    )
                    for g in grants.grants(name)
                ],
            )
            for name, scopes in sorted(grants.maas().items())
        ]
        return MaasResult(maas=rows).model_dump()

    # --- actions -------------------------------------------------------------------------

    async def _claim(self, args: dict[str, Any]) -> dict[str, Any]:
        """§5.1: a NEW_CLAIM after the random delay, even if the domain has space already."""
        a = _args(ClaimArgs, args)
        kind = SpaceKind.DOMAIN if a.kind == "managed" else SpaceKind.LOCAL
        size = 1 << (a.size - 1).bit_length()  # a prefix holds a power of two addresses
        engine = self.daemon.engine
        space = 1 << (8 * self.daemon.config.local.family.id_length)
        if size > space:
            raise RequestRefused(f"{a.size} addresses is more than the address family has")
        if kind is SpaceKind.LOCAL and not engine.non_leaf:
            raise RequestRefused(
                "local space is claimed only by a non-leaf domain (RFC 2909 §12.2); "
                "this domain is a leaf: its managed space is its local space"
            )
        before = {id(s) for s in engine.scheduled}

        def claim(e: ClaimEngine, now: float) -> list[Any]:
            return e.claim(size, now=now, lifetime=a.lifetime, kind=kind, check_room=True)

        await self.daemon.domain.call(claim)
        now = self.daemon.domain.clock()
        new = [s for s in engine.scheduled if id(s) not in before and s.operator]
        info = _scheduled_info(new[-1], now) if new else None
        where = "" if info is None else f", sent in {info.time_left:.0f}s"
        return ActionResult(
            message=f"claim for {size} addresses ({a.kind}) scheduled (RFC 2909 §5.1){where}",
            claim=info,
        ).model_dump()

    async def _renew(self, args: dict[str, Any]) -> dict[str, Any]:
        prefix = _prefix(_args(PrefixArgs, args).prefix)
        await self.daemon.domain.call(lambda e, now: e.renew(prefix, now=now))
        return ActionResult(
            message=f"renewal of {prefix} scheduled (CLAIM_TO_EXPAND, RFC 2909 §5.2)",
            prefix=str(prefix),
        ).model_dump()

    async def _release(self, args: dict[str, Any]) -> dict[str, Any]:
        prefix = _prefix(_args(PrefixArgs, args).prefix)
        await self.daemon.domain.call(lambda e, now: e.release(prefix, now=now))
        return ActionResult(
            message=f"released {prefix}: WITHDRAW sent (RFC 2909 §5.4)", prefix=str(prefix)
        ).model_dump()

    async def _clash(self, args: dict[str, Any]) -> dict[str, Any]:
        a = _args(ClashArgs, args)
        withdraw = a.action == "withdraw"
        clash = self.daemon.engine.clashes.get(a.id)
        await self.daemon.domain.call(
            lambda e, now: e.resolve_clash(a.id, withdraw=withdraw, now=now)
        )
        local = None if clash is None else str(clash.local)
        what = "withdrawn (WITHDRAW sent, RFC 2909 §12.4)" if withdraw else "kept (accepted)"
        return ActionResult(message=f"clash {a.id}: {local} {what}", prefix=local).model_dump()

    async def _peer(self, args: dict[str, Any]) -> dict[str, Any]:
        a = _args(PeerActionArgs, args)
        keys = self.daemon.peer_action(
            a.address, a.action, reason=a.reason, parent=a.parent_domain_id
        )
        done = {"up": "started", "down": "stopped (Cease, RFC 2909 §8.7)", "reset": "reset"}
        return ActionResult(
            message=f"{', '.join(keys)}: {done[a.action]}", sessions=keys
        ).model_dump()

    async def _maas_forget(self, args: dict[str, Any]) -> dict[str, Any]:
        name = _args(MaasForgetArgs, args).name
        d = self.daemon
        if name not in d.grants.maas():
            raise RequestError("not_found", f"no MAAS named {name!r}")
        if name in d.maas_backend.connections:
            raise RequestRefused(f"MAAS {name!r} is connected; forget it once it has gone")
        events = await d.domain.forget_maas(name)
        return ActionResult(
            message=f"forgot MAAS {name!r}: {len(events)} grant(s) revoked"
        ).model_dump()

    async def _reload(self, args: dict[str, Any]) -> dict[str, Any]:
        a = _args(ReloadArgs, args)
        try:
            result = await self.daemon.reload(dry_run=a.dry_run)
        except ReloadRefused as refused:
            raise RequestError(refused.code, str(refused)) from None
        return result.model_dump()


def _supernets(prefix: Prefix) -> list[Prefix]:
    """``prefix`` and every prefix containing it."""
    return [prefix.supernet(new_prefix=length) for length in range(prefix.prefixlen, -1, -1)]


def _in_grib(prefix: Prefix, usable: list[Prefix], grib: frozenset[Prefix]) -> bool:
    """Whether the G-RIB carries any of ``prefix``: the prefix or a prefix around it (LOCAL
    space lies inside a DOMAIN prefix), or one of its usable pieces after a withdraw."""
    return any(p in grib for p in _supernets(prefix)) or any(p in grib for p in usable)


def _allocation_order(item: tuple[tuple[SpaceKind, Prefix], Any]) -> tuple[str, int, int]:
    (kind, prefix), _ = item
    return (kind.value, int(prefix.network_address), prefix.prefixlen)


def _args(model: type[M], args: dict[str, Any]) -> M:
    return validate(model, args, where="args")


def _prefix(text: str) -> Prefix:
    try:
        return ip_network(text)
    except ValueError as error:
        raise RequestError("bad_request", f"args.prefix: {error}") from None


def _scheduled_info(s: ScheduledClaim, now: float) -> ClaimInfo:
    return ClaimInfo(
        prefix=None if s.prefix is None else str(s.prefix),
        type=s.claim_type.name,
        kind=_kind(s.kind),
        purpose=s.purpose,
        state="scheduled",
        lifetime=s.lifetime,
        time_left=max(0.0, s.at - now),
    )


def _clashes(engine: ClaimEngine) -> list[ClashInfo]:
    return [
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


def _error(code: str, message: str) -> bytes:
    error = ErrorInfo.model_validate({"code": code, "message": message})
    return Response(ok=False, error=error).model_dump_json().encode()


def _kind(kind: SpaceKind) -> Literal["managed", "local"]:
    return "managed" if kind is SpaceKind.DOMAIN else "local"
