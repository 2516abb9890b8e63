"""``masc madcap``: the trio shell around the sans-IO MADCAP server (RFC 2730; RFC 2908 §3).

The core (:class:`~masc.madcap.server.MadcapServer`) decides every answer; this module gives
it datagrams, time, the lease store and the MASC daemon's grants, and carries out what it
returns.

Theory of operation.  :class:`MadcapService` runs these tasks:

* one *receiver* per UDP socket: a socket per ``[server] listen`` address bound to
  (address, port), and -- when ``multicast_interface`` is set -- one per MADCAP Server
  Multicast Address (the last address of each scope minus one, RFC 2730 §2.10, and the
  Local Scope's 239.255.255.254), bound to (group, port) and joined on that interface.  A
  receiver only queues ``(bytes, Arrival)`` on the bounded inbox; when the inbox is full
  the datagram is dropped, as the network would drop it (clients retransmit, §2.3);
* the *owner*, the only task that touches the core and the store.  For each datagram it
  calls ``handle_datagram``, writes ``Outcome.saved``/``deleted`` to SQLite in one committed
  transaction, and only then sends the reply -- so a lease announced by an ACK is on disk
  (WAL, synchronous=FULL) before the client can know of it, and a ``kill -9`` at any moment
  loses nothing a client was told.  Replies always leave from the unicast socket of the
  Server Identifier (§2.1: servers answer by unicast to the source).  Between datagrams it
  sleeps until ``next_deadline()`` and calls ``handle_timer`` (ended leases, offers);
* with a ``[masc]`` section, the *MAAS link* (docs/maas-api.md): connect to the daemon's
  socket, ``register`` with the names of the ``masc`` scopes, ``subscribe``, and follow the
  grant events.  Every change replaces the grants of the scopes with ``set_grants`` (a grant
  belongs to the ``masc`` scope whose zone holds it) and is saved, so a restarted server
  knows its space before the daemon answers.  While attached, a *reporter* sends usage
  (``in_use``, ``rate``, ``by_prefix``) about a second after each change and every
  ``usage_interval``, and a *requester* asks for the addresses a ``masc`` scope lacked
  (``Outcome.demand``), at most once a second.  When the daemon is not there, or goes away,
  the link retries with a doubling back-off; static scopes are served all along, and
  ``masc`` scopes keep serving from the last grants until they expire.

Failure policy: a datagram never stops the server -- the core's decoder is total, a socket
error is logged, and should the core raise anyway (a bug), the datagram is dropped and the
bug logged with its traceback, as the daemon's MAAS socket does.  A store that cannot be
written *does* stop it (exit 1): the core would otherwise hold, and the response cache
re-send, leases that are not on disk; a restart reloads a consistent state.
"""

from __future__ import annotations

import logging
import math
import signal
import socket
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Any, Final, TypeVar

import trio

from masc.api.maas import GrantInfo, MaasError, MaasEvent
from masc.maas.client import MaasClient, open_maas_client
from masc.madcap.config import MadcapConfig, ScopeSection
from masc.madcap.constants import GLOBAL_SCOPE_LAST, LOCAL_SCOPE_SERVER_ADDRESS
from masc.madcap.messages import Address
from masc.madcap.server import (
    Arrival,
    Grant,
    Lease,
    MadcapServer,
    Outcome,
    Prefix,
    ServerSettings,
    Usage,
)
from masc.madcap.store import LeaseStore, LeaseStoreError

__all__ = ["MadcapService", "run_madcap"]

log = logging.getLogger("masc.madcap")

T = TypeVar("T")

INBOX_SIZE: Final = 1024  # datagrams (and calls) waiting for the owner
RECEIVE_BYTES: Final = 65535  # a UDP datagram never exceeds this
USAGE_DEBOUNCE: Final = 1.0  # seconds between a change and its usage report
REQUEST_INTERVAL: Final = 1.0  # at most one `request` to the daemon per second
# The usage rate is the growth of in_use over the last RATE_WINDOW seconds (at least); a
# shorter window would turn a burst of requests into an absurd prediction (RFC 2909 §17.1.2
# multiplies the rate by the horizon).
RATE_WINDOW: Final = 60.0
SOCKET_ERROR_PAUSE: Final = 0.01

# Outcome.event -> (log event, level).  "timer" is not logged.
_LOGGED: Final[dict[str, tuple[str, int]]] = {
    "granted": ("lease_granted", logging.INFO),
    "renewed": ("lease_renewed", logging.INFO),
    "released": ("lease_released", logging.INFO),
    "expired": ("lease_expired", logging.INFO),
    "retry_after": ("retry_after", logging.INFO),
    "nak": ("nak", logging.INFO),
    "offer": ("offer", logging.INFO),
    "offer_dropped": ("offer_dropped", logging.DEBUG),
    "info": ("getinfo", logging.DEBUG),
    "ignored": ("ignored", logging.DEBUG),
    "cached": ("retransmission", logging.DEBUG),
}


@dataclass(frozen=True, slots=True)
class _Datagram:
    data: bytes
    arrival: Arrival


class _Call:
    """A function of ``now`` to run in the owner task; the caller waits for its result."""

    __slots__ = ("done", "error", "fn", "result")

    def __init__(self, fn: Callable[[float], Any]) -> None:
        self.fn = fn
        self.done = trio.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class _RateMeter:
    """Growth of in_use per second over the last ``window`` seconds."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._samples: deque[tuple[float, int]] = deque()

    def rate(self, now: float, in_use: int) -> float:
        samples = self._samples
        samples.append((now, in_use))
        while len(samples) > 2 and now - samples[1][0] >= self.window:
            samples.popleft()
        then, before = samples[0]
        if now - then < 1.0:
            return 0.0
        return (in_use - before) / (now - then)


def _family(address: Address) -> socket.AddressFamily:
    return socket.AF_INET6 if isinstance(address, IPv6Address) else socket.AF_INET


def _lease_fields(lease: Lease) -> dict[str, Any]:
    return {
        "lease_id": lease.lease_id.hex(),
        "scope": lease.scope,
        "addresses": [
            f"{r.start}+{r.count}" if r.count > 1 else str(r.start) for r in lease.ranges
        ],
        "start": lease.start,
        "end": lease.end,
    }


class MadcapService:
    """The MADCAP server of one ``masc madcap`` process; see the module docstring."""

    def __init__(self, config: MadcapConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        server = config.server
        self.settings = ServerSettings(
            server_id=server.identifier,
            response_cache_interval=server.response_cache,
            offer_hold=server.offer_hold,
            clock_skew_allowance=server.clock_skew_allowance,
            extra_allocation_time=server.extra_allocation_time,
            retry_interval=server.retry_interval,
        )
        self.scopes = tuple(section.to_scope() for section in config.scope)
        self._masc_scopes: tuple[ScopeSection, ...] = config.masc_scopes
        self.server: MadcapServer | None = None
        self.store: LeaseStore | None = None
        self._inbox_send, self._inbox = trio.open_memory_channel[_Datagram | _Call](INBOX_SIZE)
        self._reply_sockets: dict[socket.AddressFamily, trio.socket.SocketType] = {}
        self._sockets: list[tuple[trio.socket.SocketType, Address | None]] = []
        self.groups: list[Address] = []  # multicast groups joined
        # The MAAS link's view of the daemon: prefix -> grant, as pushed.
        self._grant_infos: dict[Prefix, GrantInfo] = {}
        self._grants_event = trio.Event()
        self._usage_event = trio.Event()
        self._demand = 0
        self._demand_event = trio.Event()
        self.attached = False
        self.dropped = 0  # datagrams dropped on a full inbox

    # --- the service ---------------------------------------------------------------------------

    async def run(
        self, *, task_status: trio.TaskStatus[MadcapService] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until cancelled.  Ready -- store open, leases restored, sockets bound and
        groups joined -- when it reports ``started`` (with itself)."""
        path = self.config.server.database
        self.store = LeaseStore.open(path)
        try:
            now = self.clock()
            leases = self.store.leases()
            self.server = MadcapServer(self.settings, self.scopes, leases=leases, now=now)
            restored = self._restore_grants(now)
            log.info(
                "restored %d lease(s) and %d grant(s) from %s",
                len(leases),
                restored,
                path,
                extra={"event": "madcap_restored", "leases": len(leases), "grants": restored},
            )
            await self._open_sockets()
            async with trio.open_nursery() as nursery:
                for sock, group in self._sockets:
                    nursery.start_soon(self._receive, sock, group)
                nursery.start_soon(self._own)
                if self.config.masc is not None:
                    nursery.start_soon(self._maas_link)
                log.info(
                    "serving MADCAP on %s port %d%s",
                    ", ".join(map(str, self.config.server.listen)),
                    self.config.server.port,
                    f" and groups {', '.join(map(str, self.groups))}" if self.groups else "",
                    extra={
                        "event": "madcap_listening",
                        "listen": [str(a) for a in self.config.server.listen],
                        "port": self.config.server.port,
                        "groups": [str(g) for g in self.groups],
                        "server_id": str(self.settings.server_id),
                        "scopes": [s.name for s in self.scopes],
                    },
                )
                task_status.started(self)
        finally:
            for sock, _ in self._sockets:
                sock.close()
            try:
                self.store.close()
            except LeaseStoreError as error:  # already failing or stopping: say so, go on
                log.error("%s", error, extra={"event": "store_failed", "error": str(error)})
            log.info("MADCAP server stopped", extra={"event": "madcap_stopped"})

    async def run_in(self, fn: Callable[[float], T]) -> T:
        """Run ``fn(now)`` in the owner task (the only one touching the core and the store)
        and return its result."""
        call = _Call(fn)
        await self._inbox_send.send(call)
        await call.done.wait()
        if call.error is not None:
            raise call.error
        result: T = call.result
        return result

    async def grants_changed(self) -> None:
        """Wait until the installed grants next change (for tools and tests)."""
        await self._grants_event.wait()

    def _core(self) -> MadcapServer:
        assert self.server is not None, "the service is not running"
        return self.server

    def _store(self) -> LeaseStore:
        assert self.store is not None, "the service is not running"
        return self.store

    # --- sockets ---------------------------------------------------------------------------------

    async def _open_sockets(self) -> None:
        server = self.config.server
        for address in server.listen:
            sock = trio.socket.socket(_family(address), socket.SOCK_DGRAM)
            self._sockets.append((sock, None))
            # No SO_REUSEADDR here: with it a second server (another lease store) could bind
            # the same unicast address and port and silently take its traffic -- and lease
            # the same addresses again.  Refused, it fails to start instead.
            await _bind(sock, str(address), server.port)
            # Replies leave from the Server Identifier's socket; a client of the other
            # family (if any) is answered from the first listen address of its family.
            family = _family(address)
            if address == server.identifier or family not in self._reply_sockets:
                self._reply_sockets[family] = sock
        interface = server.multicast_interface
        if interface is None:
            return
        assert isinstance(interface, IPv4Address)  # config: IPv4 only
        for group in self._multicast_groups():
            sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._sockets.append((sock, group))
            # Shared: every MADCAP server of the host hears the group (§2.10).
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            await _bind(sock, str(group), server.port)
            membership = struct.pack("4s4s", group.packed, interface.packed)
            try:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
            except OSError as error:
                raise OSError(
                    error.errno,
                    f"cannot join {group} on the interface of {interface} "
                    f"(server.multicast_interface): {error.strerror}",
                ) from None
            self.groups.append(group)

    def _multicast_groups(self) -> list[Address]:
        """§2.10: each IPv4 scope's server address, and the Local Scope's (§2.9: where a
        client with no configuration sends).  Not the global scope's: §2.11 "the client
        MUST NOT send a MADCAP message to the MADCAP Server Multicast Address associated
        with the global scope"."""
        groups: list[Address] = []
        for scope in self.scopes:
            if isinstance(scope.first, IPv4Address) and str(scope.last) != GLOBAL_SCOPE_LAST:
                groups.append(scope.server_address)
        groups.append(IPv4Address(LOCAL_SCOPE_SERVER_ADDRESS))
        return list(dict.fromkeys(groups))

    async def _receive(self, sock: trio.socket.SocketType, group: Address | None) -> None:
        while True:
            try:
                data, source = await sock.recvfrom(RECEIVE_BYTES)
            except OSError as error:
                # e.g. an ICMP error reported on the socket: nothing to do with the next one.
                log.debug("receive failed: %s", error, extra={"event": "receive_failed"})
                await trio.sleep(SOCKET_ERROR_PAUSE)
                continue
            datagram = _Datagram(data, Arrival((source[0], source[1]), group))
            try:
                self._inbox_send.send_nowait(datagram)
            except trio.WouldBlock:
                self.dropped += 1
                log.debug(
                    "inbox full: datagram from %s dropped",
                    source[0],
                    extra={"event": "datagram_dropped", "client": source[0]},
                )

    # --- the owner -------------------------------------------------------------------------------

    async def _own(self) -> None:
        core = self._core()
        while True:
            deadline = core.next_deadline()
            wake = math.inf
            if deadline is not None:
                wake = trio.current_time() + max(0.0, deadline - self.clock())
            item: _Datagram | _Call | None = None
            # Only the receive waits under the timer's deadline: a reply's sendto must not
            # be cancelled because a lease ended while its store write ran (STYLE §6).
            with trio.move_on_at(wake):
                item = await self._inbox.receive()
            if isinstance(item, _Call):
                self._call(item)
            elif item is not None:
                await self._datagram(item)
            else:
                self._settle(core.handle_timer(now=max(self.clock(), deadline or 0.0)), None)

    def _call(self, call: _Call) -> None:
        try:
            call.result = call.fn(self.clock())
        except Exception as error:
            call.error = error
        call.done.set()

    async def _datagram(self, datagram: _Datagram) -> None:
        arrival = datagram.arrival
        try:
            outcome = self._core().handle_datagram(datagram.data, arrival=arrival, now=self.clock())
        except Exception:
            # The core promises never to raise on peer bytes; if it does, that is a bug:
            # log it with the datagram, drop the datagram, serve the next one.
            log.exception(
                "bug: the MADCAP core raised on a datagram from %s (%s)",
                arrival.source[0],
                datagram.data.hex(),
                extra={"event": "bug", "client": arrival.source[0]},
            )
            return
        self._settle(outcome, arrival)
        if outcome.reply is not None:
            await self._send(outcome.reply, arrival)

    def _settle(self, outcome: Outcome, arrival: Arrival | None) -> None:
        """Write the outcome's lease changes durably (LeaseStoreError ends the server), then
        note its log line, usage change and demand."""
        if outcome.saved or outcome.deleted:
            self._store().apply(saved=outcome.saved, deleted=outcome.deleted)
        if outcome.saved or outcome.deleted or outcome.event == "expired":
            self._usage_changed()
        if outcome.demand > 0:
            self._demand += outcome.demand
            self._demand_event.set()
        self._log(outcome, arrival)

    async def _send(self, reply: bytes, arrival: Arrival) -> None:
        host, port = arrival.source
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            sock = self._reply_sockets.get(family)
            if sock is None:
                raise OSError(f"no listen address of the family of {host}")
            await sock.sendto(reply, (host, port))
        except OSError as error:
            log.warning(
                "cannot answer %s:%d: %s",
                host,
                port,
                error,
                extra={"event": "send_failed", "client": host, "error": str(error)},
            )

    def _log(self, outcome: Outcome, arrival: Arrival | None) -> None:
        entry = _LOGGED.get(outcome.event)
        if entry is None:
            return
        event, level = entry
        if not log.isEnabledFor(level):
            return
        extra: dict[str, Any] = {"event": event, "detail": outcome.detail}
        if arrival is not None:
            extra["client"] = f"{arrival.source[0]}:{arrival.source[1]}"
            if arrival.group is not None:
                extra["group"] = str(arrival.group)
        if len(outcome.saved) == 1:
            extra.update(_lease_fields(outcome.saved[0]))
        elif outcome.deleted:
            extra["lease_ids"] = [lid.hex() for lid in outcome.deleted]
        if outcome.demand:
            extra["demand"] = outcome.demand
        where = f" from {extra['client']}" if "client" in extra else ""
        log.log(level, "%s%s: %s", event, where, outcome.detail, extra=extra)

    def _usage_changed(self) -> None:
        self._usage_event.set()

    # --- grants ----------------------------------------------------------------------------------

    def _restore_grants(self, now: float) -> int:
        """Install the grants saved at the last change, those not yet expired.  Each goes to
        the masc scope whose zone holds it, as a grant from the daemon does (the scope may
        have been renamed since; a grant no zone holds any more is dropped)."""
        by_scope: dict[str, list[Grant]] = {s.name: [] for s in self._masc_scopes}
        for grants in self._store().grants().values():
            for grant in grants:
                section = self._scope_of_grant(grant.prefix)
                if grant.expires <= now or section is None:
                    continue
                by_scope[section.name].append(grant)
                self._grant_infos[grant.prefix] = GrantInfo.build(
                    grant.prefix, expires=grant.expires, active=grant.active
                )
        for name, grants in by_scope.items():
            self._core().set_grants(name, grants, now=now)
        return sum(len(grants) for grants in by_scope.values())

    def _scope_of_grant(self, prefix: Prefix) -> ScopeSection | None:
        for section in self._masc_scopes:
            first, last = section.zone
            if (
                prefix.version == first.version
                and first <= prefix.network_address  # type: ignore[operator]
                and prefix.broadcast_address <= last  # type: ignore[operator]
            ):
                return section
        return None

    def _install_grants(self, now: float) -> None:
        """Owner task: make the core's grants those of ``_grant_infos`` and save them."""
        by_scope: dict[str, list[Grant]] = {s.name: [] for s in self._masc_scopes}
        for info in self._grant_infos.values():
            section = self._scope_of_grant(info.prefix)
            if section is None:
                continue  # logged when it arrived
            by_scope[section.name].append(
                Grant(prefix=info.prefix, expires=info.expires, active=info.state == "active")
            )
        core = self._core()
        for name, grants in by_scope.items():
            core.set_grants(name, grants, now=now)
        self._store().save_grants(by_scope)
        self._usage_changed()
        self._grants_event.set()
        self._grants_event = trio.Event()

    def _take_grant(self, info: GrantInfo) -> None:
        if self._scope_of_grant(info.prefix) is None:
            log.warning(
                "grant %s lies in no masc scope's zone; not used",
                info.prefix,
                extra={"event": "grant_outside_scopes", "prefix": str(info.prefix)},
            )
        self._grant_infos[info.prefix] = info

    async def _apply_event(self, event: MaasEvent) -> None:
        info = event.grant
        if event.event == "revoked":
            self._grant_infos.pop(info.prefix, None)
        else:
            self._take_grant(info)
        log.info(
            "grant %s %s%s",
            info.prefix,
            event.event,
            f" ({event.reason})" if event.reason else "",
            extra={
                "event": f"grant_{event.event}",
                "prefix": str(info.prefix),
                "expires": info.expires,
                "state": info.state,
                "reason": event.reason,
            },
        )
        await self.run_in(self._install_grants)

    # --- the MAAS link ---------------------------------------------------------------------------

    async def _maas_link(self) -> None:
        masc = self.config.masc
        assert masc is not None
        delay = masc.reconnect_initial
        streak = 0  # failed attempts in a row
        while True:
            try:
                try:
                    async with open_maas_client(masc.maas_socket) as maas:
                        await self._attached(maas)
                except BaseExceptionGroup as group:
                    raise _maas_error(group) from None
            except MaasError as error:
                was_attached, self.attached = self.attached, False
                if was_attached:
                    delay = masc.reconnect_initial
                    streak = 0
                streak += 1
                log.log(
                    logging.WARNING if streak == 1 else logging.DEBUG,
                    "%s the MASC daemon (%s); static scopes go on, masc scopes serve their last "
                    "grants; retrying in %.0f s",
                    "lost" if was_attached else "cannot reach",
                    error,
                    delay,
                    extra={
                        "event": "maas_lost" if was_attached else "maas_unavailable",
                        "code": error.code,
                        "error": error.message,
                        "retry_in": delay,
                    },
                )
            await trio.sleep(delay)
            delay = min(delay * 2, masc.reconnect_max)

    async def _attached(self, maas: MaasClient) -> None:
        masc = self.config.masc
        assert masc is not None
        names = [s.name for s in self._masc_scopes]
        hello = await maas.register(masc.name, names)
        grants = await maas.subscribe()
        # The subscription's snapshot is the whole truth: what is missing was revoked
        # while we were away.
        self._grant_infos = {}
        for info in grants:
            self._take_grant(info)
        await self.run_in(self._install_grants)
        self.attached = True
        self._demand = 0
        log.info(
            "attached to the MASC daemon of domain %d as %r: %d grant(s)",
            hello.domain_id,
            masc.name,
            len(grants),
            extra={
                "event": "maas_attached",
                "maas": masc.name,
                "domain": hello.domain_id,
                "grants": [str(g.prefix) for g in grants],
            },
        )
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._report_usage, maas, masc.usage_interval)
            nursery.start_soon(self._request_space, maas)
            async for event in maas.events():
                await self._apply_event(event)
            nursery.cancel_scope.cancel()
        raise MaasError("disconnected", "the daemon's event stream ended")

    async def _report_usage(self, maas: MaasClient, interval: float) -> None:
        meter = _RateMeter(max(RATE_WINDOW, interval))
        while True:
            # A fresh event before reading: a change from here on triggers the next report.
            self._usage_event = trio.Event()
            usage: Usage = await self.run_in(lambda now: self._core().usage(now=now))
            rate = meter.rate(self.clock(), usage.in_use)
            by_prefix: dict[Prefix | str, int] = {p: n for p, n in usage.by_prefix.items()}
            await maas.report_usage(usage.in_use, rate, by_prefix)
            log.debug(
                "usage reported: %d in use",
                usage.in_use,
                extra={
                    "event": "usage_reported",
                    "in_use": usage.in_use,
                    "rate": rate,
                    "by_prefix": {str(p): n for p, n in usage.by_prefix.items()},
                },
            )
            with trio.move_on_after(interval):
                await self._usage_event.wait()
                await trio.sleep(USAGE_DEBOUNCE)

    async def _request_space(self, maas: MaasClient) -> None:
        while True:
            await self._demand_event.wait()
            self._demand_event = trio.Event()
            wanted, self._demand = self._demand, 0
            if wanted <= 0:
                continue
            try:
                result = await maas.request(wanted)
            except MaasError as error:
                if error.code in ("disconnected", "closed"):
                    raise
                log.warning(
                    "the MASC daemon refused %d more addresses: %s",
                    wanted,
                    error,
                    extra={"event": "space_refused", "size": wanted, "code": error.code},
                )
            else:
                log.info(
                    "asked the MASC daemon for %d more addresses: %d granted now, %d to come",
                    wanted,
                    sum(g.prefix.num_addresses for g in result.granted),
                    result.outstanding,
                    extra={
                        "event": "space_requested",
                        "size": wanted,
                        "granted": [str(g.prefix) for g in result.granted],
                        "outstanding": result.outstanding,
                    },
                )
                if result.granted:
                    for info in result.granted:
                        self._take_grant(info)
                    await self.run_in(self._install_grants)
            await trio.sleep(REQUEST_INTERVAL)


async def _bind(sock: trio.socket.SocketType, host: str, port: int) -> None:
    try:
        await sock.bind((host, port))
    except OSError as error:
        # Name the address: "Address already in use" alone does not say which.
        raise OSError(
            error.errno, f"cannot bind UDP {host} port {port}: {error.strerror}"
        ) from None


def _maas_error(group: BaseExceptionGroup[BaseException]) -> MaasError:
    """The MaasError out of the link's task group, or the group itself re-raised when it
    holds anything else (a bug, a cancellation, a store failure)."""
    leaves: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        item = stack.pop()
        if isinstance(item, BaseExceptionGroup):
            stack.extend(item.exceptions)
        else:
            leaves.append(item)
    errors = [leaf for leaf in leaves if isinstance(leaf, MaasError)]
    if len(errors) != len(leaves):
        raise group
    return errors[0]


async def run_madcap(config: MadcapConfig) -> None:
    """``masc madcap``: serve until SIGTERM or SIGINT, then stop cleanly.

    SIGHUP, which a systemd ``reload`` or a closed terminal sends, does not reload: it is
    logged and ignored, so that it neither kills the server nor pretends to apply a file."""
    service = MadcapService(config)
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(service.run)
            async for signum in signals:
                if signum == signal.SIGHUP:
                    log.warning(
                        "SIGHUP: masc madcap does not reload its configuration; restart it "
                        "to apply a changed file (the leases are kept)",
                        extra={"event": "reload_unsupported", "signal": "SIGHUP"},
                    )
                    continue
                log.info(
                    "%s: stopping",
                    signal.Signals(signum).name,
                    extra={"event": "signal", "signal": signal.Signals(signum).name},
                )
                nursery.cancel_scope.cancel()
                break
