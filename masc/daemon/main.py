"""The masc daemon: listeners, one runner per peering session, control socket, signals.

Start-up follows RFC 2909 §12.1: sessions to PARENT and INTERNAL_PEER nodes start first;
CHILD and SIBLING sessions start once those are Established, or after one ConnectRetry
interval at the latest, so the node learns its parents' state before its children's.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import socket
import struct
import time
from collections.abc import Callable, Sequence
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Final

import trio

import masc
from masc.config import MascConfig, PeerConfig, Relation
from masc.daemon.control import ControlServer
from masc.daemon.domain import DomainRunner
from masc.daemon.grib import RecordingExporter
from masc.daemon.maas import MaasServer
from masc.daemon.maas_backend import DomainMaasBackend
from masc.daemon.peer import PeerRunner
from masc.maas.grants import GrantConfig, GrantTable
from masc.protocol.allocation import AllocatorConfig, Strategy
from masc.protocol.constants import HOLDTIME
from masc.protocol.engine import ClaimEngine, ClashResolution, EngineConfig, Policy
from masc.protocol.errors import ProtocolError
from masc.protocol.open_checks import SessionConfig, select_session
from masc.protocol.session import State
from masc.protocol.wire import DomainId, NodeId, Notification, Open, decode, encode
from masc.protocol.wire.framing import Framer
from masc.store.sqlite import Store

log = logging.getLogger("masc.daemon")

_EARLY: Final = (Relation.PARENT, Relation.INTERNAL)  # §12.1: these first
_SHUTDOWN_GRACE: Final = 6.0
# Connections to an address shared by several sibling sessions, waiting for their OPEN.
_MAX_IDENTIFYING: Final = 16


def session_config(cfg: MascConfig, peer: PeerConfig) -> SessionConfig:
    """The sans-IO session's view of one configured peer."""
    hold = cfg.hold_time_for(peer)
    return SessionConfig(
        local_domain=DomainId(cfg.local.domain_id),
        local_node=NodeId(int(cfg.local.node_id)),
        family=cfg.local.family,
        peer_role=peer.relation.role,
        peer_domain=DomainId(peer.domain_id),
        parent_domain_ids=tuple(DomainId(p) for p in cfg.parent_domain_ids),
        session_parent=(
            DomainId(cfg.sibling_parent(peer)) if peer.relation is Relation.SIBLING else None
        ),
        hold_time=hold,
        connect_retry=cfg.timers.connect_retry,
        passive=peer.passive,
        restart_backoff_initial=cfg.timers.restart_backoff_initial,
        restart_backoff_max=cfg.timers.restart_backoff_max,
        open_hold_time=float(max(hold, HOLDTIME)),
    )


def engine_config(cfg: MascConfig) -> EngineConfig:
    """The claim engine's view of the configuration."""
    p = cfg.policy
    return EngineConfig(
        local_domain=DomainId(cfg.local.domain_id),
        local_node=NodeId(int(cfg.local.node_id)),
        family=cfg.local.family,
        parent_domain_ids=tuple(DomainId(d) for d in cfg.parent_domain_ids),
        global_pool=tuple(cfg.local.global_pool),
        waiting_period=cfg.timers.waiting_period,
        initiate_claim_delay=cfg.timers.initiate_claim_delay,
        clock_skew_grace=cfg.timers.clock_skew_grace,
        claim_lifetime=cfg.allocation.claim_lifetime,
        initial_size=cfg.allocation.initial_size,
        allocator=AllocatorConfig(
            target_utilization=cfg.allocation.target_utilization,
            max_prefixes=cfg.allocation.max_prefixes,
            renew_interval=cfg.allocation.renew_interval,
            strategy=Strategy(cfg.allocation.strategy),
        ),
        policy=Policy(
            clash_resolution=ClashResolution(p.clash_resolution),
            max_child_lifetime=p.max_child_lifetime,
            min_child_lifetime=p.min_child_lifetime,
            min_child_prefix_size=p.min_child_prefix_size,
            max_child_prefix_size=p.max_child_prefix_size,
            child_soft_threshold=p.child_soft_threshold,
            child_hard_threshold=p.child_hard_threshold,
            timestamp_tolerance=p.timestamp_tolerance,
            max_claim_holdtime=p.max_claim_holdtime,
            min_claim_holdtime=p.min_claim_holdtime,
            restore_from=frozenset(r.role for r in p.restore_from),
        ),
    )


def grant_config(cfg: MascConfig) -> GrantConfig:
    """How the locally-allocated set is split between MAASs."""
    return GrantConfig(
        target_utilization=cfg.allocation.target_utilization,
        horizon=cfg.maas.grant_horizon,
        expiry_warning=cfg.maas.expiry_warning,
        min_grant=cfg.maas.min_grant,
    )


def session_key(peer: PeerConfig, parent: int | None) -> str:
    """How logs and the claim engine name a session: the peer's address, plus the common
    parent for a sibling peer with several sessions (§4.4)."""
    return str(peer.address) if parent is None else f"{peer.address}/parent={parent}"


class Daemon:
    """Everything one running masc process owns."""

    def __init__(
        self,
        config: MascConfig,
        *,
        clock: Callable[[], float] = time.time,
        store: Store | None = None,
    ) -> None:
        self.config = cfg = config
        self.runners: dict[tuple[str, int | None], PeerRunner] = {}
        self.peers: dict[tuple[str, int | None], PeerConfig] = {}
        self.by_address: dict[IPv4Address | IPv6Address, list[PeerRunner]] = {}
        self.started_at = time.time()
        self._shutdown_requested = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._accepting = trio.CancelScope()  # cancelled first at shutdown
        self.served = trio.Event()
        self._identifying = 0
        self.grib = RecordingExporter()
        self.engine = ClaimEngine(engine_config(cfg), rng=random.Random())
        self.grants = GrantTable(
            grant_config(cfg),
            rng=random.Random(),
            strategy=Strategy(cfg.allocation.strategy),
        )
        self.store = store
        self.domain = DomainRunner(
            self.engine, clock=clock, grib=self.grib, store=store, grants=self.grants
        )
        self.maas_backend = DomainMaasBackend(cfg, self.domain, self.grants)
        local = cfg.local.listen[0] if cfg.local.listen else None
        for peer in cfg.peers:
            key = cfg.peer_key(peer)
            runner = PeerRunner(
                session_config(cfg, peer),
                address=peer.address,
                port=peer.port,
                local_address=None if local is None or local.is_unspecified else local,
                label=f"{peer.domain_id} {peer.relation.value}",
                key=session_key(peer, key[1]),
            )
            self.domain.attach(runner, scope_boundary=tuple(peer.scope_boundary))
            self.runners[key] = runner
            self.peers[key] = peer
            self.by_address.setdefault(peer.address, []).append(runner)

    # --- running -------------------------------------------------------------------------

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled, or until :meth:`request_shutdown` and the Cease to every peer."""
        cfg = self.config
        listeners: list[trio.SocketListener] = []
        for address in cfg.local.listen:
            listeners += await trio.open_tcp_listeners(cfg.local.port, host=str(address))
        for address in cfg.local.listen:
            log.info(
                "listening on %s port %d",
                address,
                cfg.local.port,
                extra={"event": "listening", "address": str(address), "port": cfg.local.port},
            )
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            control = ControlServer(self)
            await nursery.start(control.serve, cfg.control.socket)
            await nursery.start(self.domain.run)
            maas = MaasServer(
                self.maas_backend, cfg.maas.socket, mode=cfg.maas.mode, group=cfg.maas.group
            )
            await nursery.start(maas.serve)
            for runner in self.runners.values():
                await nursery.start(runner.run)
            for listener in listeners:
                nursery.start_soon(self._accept_loop, listener, self._accepting)
            nursery.start_soon(self._start_sessions)
            task_status.started()
            await self._shutdown_requested.wait()
            await self._stop_all()
            nursery.cancel_scope.cancel()
        self.served.set()

    def request_shutdown(self) -> None:
        self._shutdown_requested.set()

    @property
    def shutdown_requested(self) -> bool:
        return self._shutdown_requested.is_set()

    async def _start_sessions(self) -> None:
        early = [k for k, p in self.peers.items() if p.relation in _EARLY]
        late = [k for k in self.peers if k not in early]
        for key in early:
            self.runners[key].admin(start=True, reason="start")
        if early and late:
            with trio.move_on_after(self.config.timers.connect_retry):
                for key in early:
                    await self.runners[key].established.wait()
        for key in late:
            self.runners[key].admin(start=True, reason="start")

    async def _stop_all(self) -> None:
        """Cease to every peer (§8.7) and let the NOTIFICATIONs reach the wire."""
        log.info("shutting down: Cease to every peer", extra={"event": "shutdown"})
        self._accepting.cancel()  # no new connections while the sessions close
        for runner in self.runners.values():
            runner.admin(start=False, reason="shutdown")
        with trio.move_on_after(_SHUTDOWN_GRACE):
            for runner in self.runners.values():
                await runner.finished.wait()

    # --- incoming connections --------------------------------------------------------------

    async def _accept_loop(self, listener: trio.SocketListener, scope: trio.CancelScope) -> None:
        async with listener:
            with scope:
                while True:
                    try:
                        stream = await listener.accept()
                    except OSError as error:
                        # Out of descriptors and the like: keep serving, but do not spin.
                        log.error("accept failed: %s", error, extra={"event": "accept_failed"})
                        await trio.sleep(0.1)
                        continue
                    self._dispatch(stream)

    def _dispatch(self, stream: trio.SocketStream) -> None:
        assert self._nursery is not None
        try:
            remote = ip_address(str(stream.socket.getpeername()[0]).split("%")[0])
        except (OSError, ValueError):
            self._nursery.start_soon(trio.aclose_forcefully, stream)
            return
        runners = self.by_address.get(remote, [])
        if not runners:
            # §10 Active: a connection from an address that is not a configured peer is
            # rejected.
            self._refuse(stream, remote, "not a configured peer")
        elif len(runners) == 1:
            runners[0].incoming(stream)
        elif self._identifying >= _MAX_IDENTIFYING:
            self._refuse(stream, remote, "too many connections still to identify")
        else:
            self._nursery.start_soon(self._identify, stream, runners)

    def _refuse(self, stream: trio.SocketStream, remote: object, why: str) -> None:
        """Reset the connection (RST) rather than leave the remote guessing."""
        assert self._nursery is not None
        log.warning(
            "refused connection from %s: %s",
            remote,
            why,
            extra={"event": "connection_refused", "remote": str(remote)},
        )
        _reset(stream)
        self._nursery.start_soon(trio.aclose_forcefully, stream)

    async def _identify(self, stream: trio.SocketStream, runners: Sequence[PeerRunner]) -> None:
        """Several sibling sessions share this address (§4.4): the OPEN's Parent's Domain
        Identifier says which one the connection belongs to."""
        self._identifying += 1
        try:
            await self._identify_one(stream, runners)
        finally:
            self._identifying -= 1

    async def _identify_one(self, stream: trio.SocketStream, runners: Sequence[PeerRunner]) -> None:
        framer, seen = Framer(), bytearray()
        frame = None
        with trio.move_on_after(runners[0].session.config.open_hold_time):
            try:
                while frame is None:
                    data = await stream.receive_some(4096)
                    if not data:
                        break
                    seen += data
                    framer.feed(data)
                    frame = framer.next_frame()
            except (trio.BrokenResourceError, OSError):
                frame = None
            except ProtocolError as error:  # Bad Message Length: answered as a session would
                notification = Notification(False, error.code, error.subcode, error.data)
                await _refuse_with(stream, notification)
                return
        if frame is None:
            await trio.aclose_forcefully(stream)
            return
        try:
            message = decode(frame)
            if not isinstance(message, Open):
                raise _NotOpen
            index = select_session(message, frame[4:], [r.session.config for r in runners])
        except ProtocolError as error:
            await _refuse_with(stream, Notification(False, error.code, error.subcode, error.data))
            return
        except _NotOpen:
            # Hand it to any of the sessions: its FSM answers a non-OPEN in OpenSent (§10).
            index = 0
        runners[index].incoming(stream, bytes(seen))

    # --- what the control socket shows ---------------------------------------------------

    def peer_rows(self) -> list[tuple[PeerConfig, PeerRunner]]:
        return [(self.peers[k], self.runners[k]) for k in self.runners]

    @property
    def established_count(self) -> int:
        return sum(r.state is State.ESTABLISHED for r in self.runners.values())


class _NotOpen(Exception):
    pass


def _reset(stream: trio.SocketStream) -> None:
    """Make the close an RST (SO_LINGER 0): an explicit refusal."""
    with contextlib.suppress(OSError):
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def _refuse_with(stream: trio.SocketStream, notification: Notification) -> None:
    with trio.move_on_after(5):
        with contextlib.suppress(trio.BrokenResourceError, OSError):
            await stream.send_all(encode(notification))
    await trio.aclose_forcefully(stream)


async def run_daemon(config: MascConfig) -> None:
    """``masc run``: serve until SIGTERM or SIGINT, then Cease to every peer and exit."""
    store = Store.open(config.storage.path, history_limit=config.storage.history_limit)
    try:
        await _serve_until_signal(Daemon(config, store=store))
    finally:
        store.close()


async def _serve_until_signal(daemon: Daemon) -> None:
    config = daemon.config
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(daemon.serve)
            log.info(
                "masc %s running: domain %s node %s, %d peer(s)",
                masc.__version__,
                config.local.domain_id,
                config.local.node_id,
                len(config.peers),
                extra={"event": "started", "pid": os.getpid()},
            )
            async for signum in signals:
                name = signal.Signals(signum).name
                if not daemon.shutdown_requested:
                    log.info("received %s", name, extra={"event": "signal"})
                    daemon.request_shutdown()
                    nursery.start_soon(_exit_when_served, daemon, nursery.cancel_scope)
                else:  # a second signal: stop waiting for peers
                    log.warning("received %s again: exiting now", name, extra={"event": "signal"})
                    nursery.cancel_scope.cancel()


async def _exit_when_served(daemon: Daemon, scope: trio.CancelScope) -> None:
    await daemon.served.wait()
    scope.cancel()
