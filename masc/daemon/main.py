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
from functools import partial
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path
from typing import Final

import trio

import masc
from masc.api.control import ReloadResult
from masc.config import ConfigError, MascConfig, PeerConfig, Relation, config_warnings, load_config
from masc.daemon.control import ControlServer
from masc.daemon.domain import DomainRunner
from masc.daemon.errors import ReloadRefused, UnknownPeer
from masc.daemon.grib import GribTable, GribTarget
from masc.daemon.grib.frr import FrrTarget
from masc.daemon.grib.kernel import KernelTarget
from masc.daemon.maas import MaasServer
from masc.daemon.maas_backend import DomainMaasBackend
from masc.daemon.metrics import metrics_registry, serve_metrics
from masc.daemon.peer import PeerRunner, read_first_frame
from masc.daemon.reload import ReloadPlan, plan_reload
from masc.daemon.sdnotify import Notifier, run_watchdog
from masc.daemon.settings import engine_config, grant_config, session_config
from masc.daemon.transport import clear_min_ttl, listen, set_gtsm, set_md5_key
from masc.maas.grants import GrantTable
from masc.protocol.allocation import Strategy
from masc.protocol.engine import ClaimEngine
from masc.protocol.errors import ProtocolError
from masc.protocol.open_checks import select_session
from masc.protocol.session import State
from masc.protocol.wire import Notification, Open, decode, encode
from masc.store.sqlite import Store

log = logging.getLogger("masc.daemon")

_EARLY: Final = (Relation.PARENT, Relation.INTERNAL)  # §12.1: these first
_SHUTDOWN_GRACE: Final = 6.0
# Connections to an address shared by several sibling sessions, waiting for their OPEN.
_MAX_IDENTIFYING: Final = 16


PeerKey = tuple[str, int | None]  # (address, common parent for a sibling), as cfg.peer_key


def session_key(peer: PeerConfig, parent: int | None) -> str:
    """How logs and the claim engine name a session: the peer's address, plus the common
    parent for a sibling peer with several sessions (§4.4)."""
    return str(peer.address) if parent is None else f"{peer.address}/parent={parent}"


def grib_targets(cfg: MascConfig) -> list[GribTarget]:
    """The exporters ``[grib]`` enables (RFC 2909 §3, §5.1)."""
    targets: list[GribTarget] = []
    if cfg.grib.kernel.enabled:
        targets.append(KernelTarget(cfg.grib.kernel))
    if cfg.grib.frr.enabled:
        targets.append(FrrTarget(cfg.grib.frr))
    return targets


class Daemon:
    """Everything one running masc process owns."""

    def __init__(
        self,
        config: MascConfig,
        *,
        clock: Callable[[], float] = time.time,
        store: Store | None = None,
        config_path: Path | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.config = cfg = config
        self.config_path = config_path  # what a reload re-reads
        self.runners: dict[PeerKey, PeerRunner] = {}
        self.peers: dict[PeerKey, PeerConfig] = {}
        self.by_address: dict[IPv4Address | IPv6Address, list[PeerRunner]] = {}
        self.started_at = time.time()
        self.reloads = 0
        self.reload_failures = 0
        self.last_reload: float | None = None
        self.notifier = notifier or Notifier(None)  # run_daemon passes systemd's
        self._reload_lock = trio.Lock()
        self._held_down: set[PeerRunner] = set()  # stopped by the operator (peer ... down)
        self._shutdown_requested = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._accepting = trio.CancelScope()  # cancelled first at shutdown
        self.served = trio.Event()
        self._identifying = 0
        self._listeners: list[tuple[trio.SocketListener, int]] = []  # with their family
        self._keyed: set[IPv4Address | IPv6Address] = set()  # addresses with an MD5 key
        self._listener_min_ttl = False  # the listeners enforce a minimum TTL (GTSM)
        self.grib = GribTable(grib_targets(cfg), resync_interval=cfg.grib.resync_interval)
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
        for peer in cfg.peers:
            self._add_peer(peer)

    def _add_peer(self, peer: PeerConfig) -> PeerRunner:
        """A runner for ``peer``'s session, attached to the engine (not yet running)."""
        cfg = self.config
        key = cfg.peer_key(peer)
        local = cfg.local.listen[0] if cfg.local.listen else None
        runner = PeerRunner(
            session_config(cfg, peer),
            address=peer.address,
            port=peer.port,
            local_address=None if local is None or local.is_unspecified else local,
            label=f"{peer.domain_id} {peer.relation.value}",
            key=session_key(peer, key[1]),
            md5_key=peer.md5_key,
            ttl_hops=peer.ttl_security,
        )
        self.domain.attach(runner, scope_boundary=tuple(peer.scope_boundary))
        self.runners[key] = runner
        self.peers[key] = peer
        self.by_address.setdefault(peer.address, []).append(runner)
        return runner

    def _remove_peer(self, key: PeerKey) -> PeerRunner:
        """Forget a session at once: a connection from its address is refused from now on."""
        runner = self.runners.pop(key)
        peer = self.peers.pop(key)
        left = [r for r in self.by_address.get(peer.address, []) if r is not runner]
        if left:
            self.by_address[peer.address] = left
        else:
            self.by_address.pop(peer.address, None)
        return runner

    # --- running -------------------------------------------------------------------------

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled, or until :meth:`request_shutdown` and the Cease to every peer."""
        cfg = self.config
        listeners: list[trio.SocketListener] = []
        for address in cfg.local.listen:
            listener = await listen(address, cfg.local.port, prepare=self._secure_listener)
            family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
            self._listeners.append((listener, family))
            listeners.append(listener)
        self._note_listener_security()
        for address in cfg.local.listen:
            log.info(
                "listening on %s port %d",
                address,
                cfg.local.port,
                extra={"event": "listening", "address": str(address), "port": cfg.local.port},
            )
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            ctl = cfg.control
            await nursery.start(
                partial(ControlServer(self).serve, ctl.socket, mode=ctl.mode, group=ctl.group)
            )
            if ctl.readonly_socket is not None:
                readonly = ControlServer(self, read_only=True)
                await nursery.start(
                    partial(
                        readonly.serve,
                        ctl.readonly_socket,
                        mode=ctl.readonly_mode,
                        group=ctl.readonly_group,
                    )
                )
            if cfg.metrics.listen is not None:
                host, port = cfg.metrics.listen
                await nursery.start(serve_metrics, metrics_registry(self), str(host), port)
            await nursery.start(self.domain.run)
            # After the engine restored its prefixes: the exporters' first sync keeps them.
            await nursery.start(self.grib.run)
            maas = MaasServer(
                self.maas_backend, cfg.maas.socket, mode=cfg.maas.mode, group=cfg.maas.group
            )
            await nursery.start(maas.serve)
            for runner in self.runners.values():
                await nursery.start(runner.run)
            for listener in listeners:
                nursery.start_soon(self._accept_loop, listener, self._accepting)
            nursery.start_soon(self._start_sessions)
            await nursery.start(run_watchdog, self.notifier, self.healthy)
            task_status.started()
            self.notifier.ready()
            self.notifier.status(
                f"serving domain {cfg.local.domain_id}, {len(self.runners)} peer(s)"
            )
            await self._shutdown_requested.wait()
            self.notifier.stopping()
            await self._stop_all()
            nursery.cancel_scope.cancel()
        self.served.set()

    async def healthy(self) -> bool:
        """The watchdog's check: the engine's task still takes and finishes a request (a
        live event loop alone would not show a wedged or dead runner)."""
        try:
            return await self.domain.run_in(lambda now: True)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False

    def request_shutdown(self) -> None:
        self._shutdown_requested.set()

    @property
    def shutdown_requested(self) -> bool:
        return self._shutdown_requested.is_set()

    async def _start_sessions(self) -> None:
        """§12.1 order.  The runners are taken now: a reload meanwhile may remove some (they
        are skipped) or add some (a reload starts those itself), and one the operator
        stopped meanwhile stays stopped."""
        early = [r for k, r in self.runners.items() if self.peers[k].relation in _EARLY]
        late = [r for r in self.runners.values() if r not in early]
        for runner in early:
            self._boot(runner)
        if early and late:
            with trio.move_on_after(self.config.timers.connect_retry):
                for runner in early:
                    await runner.established.wait()
        for runner in late:
            self._boot(runner)

    def _boot(self, runner: PeerRunner) -> None:
        if runner in self.runners.values() and runner not in self._held_down:
            runner.admin(start=True, reason="start")

    async def _stop_all(self) -> None:
        """Cease to every peer (§8.7) and let the NOTIFICATIONs reach the wire.  A reload
        under way finishes first, so every session it added is stopped too."""
        log.info("shutting down: Cease to every peer", extra={"event": "shutdown"})
        self._accepting.cancel()  # no new connections while the sessions close
        async with self._reload_lock:
            runners = list(self.runners.values())
        for runner in runners:
            runner.admin(start=False, reason="shutdown", final=True)
        with trio.move_on_after(_SHUTDOWN_GRACE):
            for runner in runners:
                await runner.finished.wait()

    # --- incoming connections --------------------------------------------------------------

    def _secure_listener(self, sock: trio.socket.SocketType, family: int) -> None:
        """§14: the peers' TCP MD5 keys (per address: the kernel drops an unsigned or
        wrongly signed SYN from a keyed address) and GTSM on a listening socket.

        Only addresses that have or had a key are touched, so a kernel without TCP MD5
        support runs unsigned configurations.  The listener sends with TTL 255 whenever a
        peer uses GTSM (its SYN-ACK must pass that peer's minimum TTL); it enforces a
        minimum TTL itself only when every peer does, the loosest of theirs.  Each accepted
        connection then gets its own peer's (:meth:`_dispatch`)."""
        six = family == socket.AF_INET6
        peers = [p for p in self.config.peers if (p.address.version == 6) == six]
        keys = {p.address: p.md5_key for p in peers if p.md5_key}
        for address in keys.keys() | {a for a in self._keyed if (a.version == 6) == six}:
            set_md5_key(sock, address, keys.get(address))  # None removes a key a reload took away
        hops = [p.ttl_security for p in peers]
        if peers and all(h is not None for h in hops):
            set_gtsm(sock, family, max(h for h in hops if h is not None))
            return
        if self._listener_min_ttl:
            clear_min_ttl(sock, family)
        if any(h is not None for h in hops):
            set_gtsm(sock, family, None)

    def _secure_listeners(self) -> None:
        """After a reload: the listeners take the new keys and TTL settings.  A kernel
        refusal is logged, not fatal: the sessions themselves still dial with their keys."""
        for listener, family in self._listeners:
            try:
                self._secure_listener(listener.socket, family)
            except OSError as error:
                log.error(
                    "could not set TCP MD5 keys or GTSM on the listener: %s",
                    error,
                    extra={"event": "listener_security_failed"},
                )
        self._note_listener_security()

    def _note_listener_security(self) -> None:
        peers = self.config.peers
        self._keyed = {p.address for p in peers if p.md5_key}
        self._listener_min_ttl = bool(peers) and all(p.ttl_security for p in peers)

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
            return
        if runners[0].ttl_hops is not None:
            # §14 GTSM for this peer (all its sessions share it: config validation).
            try:
                set_gtsm(stream.socket, stream.socket.family, runners[0].ttl_hops)
            except OSError:
                self._nursery.start_soon(trio.aclose_forcefully, stream)
                return
        if len(runners) == 1:
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
        first = await read_first_frame(stream, runners[0].session.config.open_hold_time)
        if first.error is not None:  # Bad Message Length: answered as a session would
            error = first.error
            await _refuse_with(stream, Notification(False, error.code, error.subcode, error.data))
            return
        frame, seen = first.frame, first.seen
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
        runner = runners[index]
        if runner not in self.by_address.get(runner.address, []):
            # A reload removed that session while its OPEN was on the way.
            self._refuse(stream, runner.address, "no longer a configured peer")
            return
        runner.incoming(stream, bytes(seen))

    # --- operator actions ----------------------------------------------------------------

    def sessions_at(self, address: str, parent: int | None = None) -> list[PeerKey]:
        """The configured sessions to ``address`` (one per common parent for a sibling,
        §4.4), or only the one with common parent ``parent``."""
        try:
            wanted = str(ip_address(address))
        except ValueError:
            raise UnknownPeer(f"{address!r} is not an IP address") from None
        keys = [k for k in self.runners if k[0] == wanted and (parent is None or k[1] == parent)]
        if not keys:
            which = "" if parent is None else f" with common parent {parent}"
            raise UnknownPeer(f"no configured peer {wanted}{which}")
        return keys

    def peer_action(
        self, address: str, action: str, *, reason: str = "", parent: int | None = None
    ) -> list[str]:
        """``mascctl peer ADDR up|down|reset``: Start, Stop (Cease, §8.7) or both.  A
        stopped session stays down until ``up`` or a restart of the daemon (it is not
        written to the configuration)."""
        keys = self.sessions_at(address, parent)
        why = f"operator {action}" + (f": {reason}" if reason else "")
        for key in keys:
            runner = self.runners[key]
            if action == "up":
                self._held_down.discard(runner)
                runner.admin(start=True, reason=why)
            elif action == "down":
                self._held_down.add(runner)
                runner.admin(start=False, reason=why)
            else:
                runner.reset(reason=why)  # a stopped session stays stopped
            log.info(
                "peer %s: %s",
                runner.key,
                why,
                extra={"event": "peer_admin", "peer": key[0], "action": action, "reason": reason},
            )
        return [self.runners[k].key for k in keys]

    # --- reload -------------------------------------------------------------------------

    async def reload(self, *, dry_run: bool = False) -> ReloadResult:
        """Re-read the configuration file; apply it unless ``dry_run`` (module
        :mod:`masc.daemon.reload`).  Raises :class:`ReloadRefused` and changes nothing when
        the file does not load or needs a restart."""
        async with self._reload_lock:
            if self.shutdown_requested:
                raise ReloadRefused("busy", "the daemon is shutting down")
            path = self.config_path
            if path is None:
                raise ReloadRefused("bad_config", "started without a configuration file")
            try:
                new = load_config(path)
            except ConfigError as error:
                self._reload_failed(str(error), dry_run)
                raise ReloadRefused("bad_config", str(error)) from None
            plan = plan_reload(self.config, new)
            warnings = [f"{path}: {w}" for w in config_warnings(new)]
            if dry_run:
                return plan.result(applied=False, config_path=path, warnings=warnings)
            if plan.restart_required:
                problem = (
                    f"{path}: {', '.join(plan.restart_required)} changed, and only a restart "
                    "applies that; nothing was changed"
                )
                self._reload_failed(problem, dry_run)
                raise ReloadRefused("restart_required", problem)
            self.notifier.reloading()
            try:
                await self._apply(new, plan)
            finally:
                self.notifier.ready()
            self.reloads += 1
            self.last_reload = time.time()
            log.info(
                "reloaded %s: %s",
                path,
                ", ".join(f"{s.key[0]} {s.action}" for s in plan.peers if s.action != "no-op")
                or "no session changed",
                extra={"event": "reloaded", "settings": [c.key for c in plan.settings]},
            )
            return plan.result(applied=True, config_path=path, warnings=warnings)

    def _reload_failed(self, problem: str, dry_run: bool) -> None:
        if not dry_run:
            self.reload_failures += 1
        log.error(
            "reload refused: %s", problem, extra={"event": "reload_failed", "dry_run": dry_run}
        )

    async def _apply(self, new: MascConfig, plan: ReloadPlan) -> None:
        """Carry out a validated plan: settings first (the engine replans with them), then
        the sessions."""
        if self.store is not None:  # the one step that may fail (StoreError): first
            self.store.set_history_limit(new.storage.history_limit)
        engine, grants = engine_config(new), grant_config(new)
        strategy = Strategy(new.allocation.strategy)
        await self.domain.call(lambda e, now: e.reconfigure(engine, now=now))
        await self.domain.run_in(lambda now: self.grants.reconfigure(grants, strategy=strategy))
        self.config = new
        self.maas_backend.config = new
        self._secure_listeners()
        assert self._nursery is not None
        for step in plan.peers:
            where = {"peer": step.key[0], "action": step.action, "changed": list(step.changed)}
            if step.action != "no-op":
                log.info(
                    "reload: peer %s %s (%s)",
                    step.key[0],
                    step.action,
                    step.reason,
                    extra={"event": "reload_peer", **where},
                )
            if step.action == "stop":
                runner = self._remove_peer(step.key)
                self._held_down.discard(runner)
                runner.admin(start=False, reason="removed from the configuration", final=True)
                self._nursery.start_soon(self._retire, runner)
                continue
            assert step.new is not None
            if step.action == "start":
                runner = self._add_peer(step.new)
                await self._nursery.start(runner.run)
                runner.admin(start=True, reason="added by reload")
                continue
            runner = self.runners[step.key]
            self.peers[step.key] = step.new
            if step.action in ("update", "reset"):
                runner.reconfigure(session_config(new, step.new))
                runner.port = step.new.port
                runner.md5_key = step.new.md5_key
                runner.ttl_hops = step.new.ttl_security
                runner.label = f"{step.new.domain_id} {step.new.relation.value}"
                self.domain.attach(runner, scope_boundary=tuple(step.new.scope_boundary))
            if step.action == "reset":
                runner.reset(reason=f"configuration changed: {', '.join(step.changed)}")

    async def _retire(self, runner: PeerRunner) -> None:
        """Detach a removed session once its Cease is out and its runner has ended."""
        await runner.finished.wait()
        self.domain.detach(runner)

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


async def run_daemon(config: MascConfig, config_path: Path | None = None) -> None:
    """``masc run``: serve until SIGTERM or SIGINT, then Cease to every peer and exit;
    SIGHUP reloads ``config_path``."""
    store = Store.open(config.storage.path, history_limit=config.storage.history_limit)
    try:
        daemon = Daemon(
            config, store=store, config_path=config_path, notifier=Notifier.from_environ()
        )
        await _serve_until_signal(daemon)
    finally:
        store.close()


async def _reload_on_signal(daemon: Daemon) -> None:
    """SIGHUP: as ``mascctl reload``; the outcome goes to the log (nobody waits for it)."""
    with contextlib.suppress(ReloadRefused):  # already logged by Daemon.reload
        await daemon.reload()


async def _serve_until_signal(daemon: Daemon) -> None:
    config = daemon.config
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
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
                if signum == signal.SIGHUP:
                    log.info("received SIGHUP: reloading", extra={"event": "signal"})
                    if not daemon.shutdown_requested:
                        nursery.start_soon(_reload_on_signal, daemon)
                elif not daemon.shutdown_requested:
                    log.info("received %s", name, extra={"event": "signal"})
                    daemon.request_shutdown()
                    nursery.start_soon(_exit_when_served, daemon, nursery.cancel_scope)
                else:  # a second signal: stop waiting for peers
                    log.warning("received %s again: exiting now", name, extra={"event": "signal"})
                    nursery.cancel_scope.cancel()


async def _exit_when_served(daemon: Daemon, scope: trio.CancelScope) -> None:
    await daemon.served.wait()
    scope.cancel()
