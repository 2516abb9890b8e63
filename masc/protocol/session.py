"""The per-peer MASC session FSM (RFC 2909 §10, §8.4-§8.8, §4.4, §7.4).

Theory of operation
-------------------
One :class:`PeerSession` exists per configured session: per peer, and for siblings with
several common parents one per common parent (§4.4).  It is sans-IO: the shell feeds it
events with the current (monotonic) time and executes the :data:`Effect` values it returns;
:meth:`PeerSession.next_deadline` says when to call :meth:`PeerSession.handle_timer`.

§10 describes one FSM per session, but §8.8 (connection collision) needs two TCP
connections of one session alive at once.  So the FSM is split the way BGP speakers split it:

* the *session level* holds Idle, Connect and Active, the ConnectRetry timer and the
  automatic-restart back-off; its events are Start, Stop, timer expiries and transport
  connections appearing or failing (:data:`SESSION_TABLE`);
* each TCP connection, outbound or inbound (at most one of each), has its own state among
  OpenSent, OpenConfirm and Established, its framer, Hold and KeepAlive timers
  (:data:`CONNECTION_TABLE`).

The state reported for the session is that of its most advanced connection, or the
session-level state when it has none.  Both tables are complete: every (state, event) cell
is written out, so an unexpected event is handled by a named cell (for connections, the §10
"any other event" FSM Error), never by a fall-through.

Peer faults arrive as ProtocolError from the codec or the OPEN checks and are turned into a
NOTIFICATION in one place, :meth:`PeerSession._fail`.  Local policy where §10 is loose is in
docs/conformance.md.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from masc.protocol.constants import (
    HEADER_LENGTH,
    MIN_KEEPALIVE_INTERVAL,
    MessageType,
    Role,
)
from masc.protocol.errors import (
    CeaseSubcode,
    CoreMisuse,
    ErrorCode,
    FsmError,
    FsmSubcode,
    HoldTimerExpired,
    HoldTimerSubcode,
    NotificationMessageError,
    NotificationSubcode,
    OpenMessageError,
    OpenSubcode,
    ProtocolError,
    UpdateMessageError,
    describe,
    is_defined,
    requires_close,
)
from masc.protocol.limits import Exceeded, UpdateLimiter
from masc.protocol.open_checks import SessionConfig, check_open
from masc.protocol.space import Randomness
from masc.protocol.wire.codec import decode, encode
from masc.protocol.wire.framing import Framer
from masc.protocol.wire.messages import Keepalive, Message, Notification, Open, Update


class State(enum.Enum):
    """§10 states; the value is the RFC's name, which is what operators see."""

    IDLE = "Idle"
    CONNECT = "Connect"
    ACTIVE = "Active"
    OPEN_SENT = "OpenSent"
    OPEN_CONFIRM = "OpenConfirm"
    ESTABLISHED = "Established"

    # Members are singletons compared by identity: hashed by identity too, in C, rather
    # than by name in Python (enum's default); the FSM tables are looked up several times
    # per message.  Iteration order of sets of members was never fixed (names hash with
    # the per-process seed) and nothing may rely on it.
    __hash__ = object.__hash__


# Message Type octet -> name, for the per-type counters (without an enum call per message).
_TYPE_NAMES: Final = {t.value: t.name for t in MessageType}

# NOTIFICATIONs sent in answer to one UPDATE with several bad claims (docs/conformance.md).
MAX_REPORTS_PER_UPDATE: Final = 8

_PROGRESS: Final = {
    State.IDLE: 0,
    State.CONNECT: 1,
    State.ACTIVE: 1,
    State.OPEN_SENT: 2,
    State.OPEN_CONFIRM: 3,
    State.ESTABLISHED: 4,
}
SESSION_STATES: Final = (State.IDLE, State.CONNECT, State.ACTIVE)
CONNECTION_STATES: Final = (State.OPEN_SENT, State.OPEN_CONFIRM, State.ESTABLISHED)


class SessionEvent(enum.Enum):
    """Events the session level reacts to (§10)."""

    START = "Start"
    STOP = "Stop"
    CONNECT_RETRY_EXPIRED = "ConnectRetry timer expired"
    RESTART_TIMER_EXPIRED = "automatic restart timer expired"
    TRANSPORT_CONNECTED = "outbound transport connection succeeded"
    TRANSPORT_FAILED = "outbound transport connection failed"
    INCOMING_CONNECTION = "inbound transport connection"

    __hash__ = object.__hash__  # as State's


class ConnectionEvent(enum.Enum):
    """Events one connection reacts to (§10, §8)."""

    OPEN = "OPEN received"
    KEEPALIVE = "KEEPALIVE received"
    UPDATE = "UPDATE received"
    NOTIFICATION = "NOTIFICATION received"
    MESSAGE_ERROR = "malformed message received"
    HOLD_TIMER_EXPIRED = "Hold timer expired"
    KEEPALIVE_TIMER_EXPIRED = "KeepAlive timer expired"
    TRANSPORT_CLOSED = "transport disconnected"
    STOP = "Stop"

    __hash__ = object.__hash__  # as State's


# --- effects: what the shell must do ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Dial:
    """Open a transport connection to the peer from our listen address; report the result
    with connection_made(outbound=True) or connect_failed()."""


@dataclass(frozen=True, slots=True)
class Send:
    connection: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection once everything sent before it has been written."""

    connection: int


@dataclass(frozen=True, slots=True)
class StateChanged:
    old: State
    new: State
    reason: str


@dataclass(frozen=True, slots=True)
class SessionUp:
    """A connection reached Established; ``internal`` per §10 OpenSent."""

    connection: int
    remote: Open
    hold_time: int
    internal: bool


@dataclass(frozen=True, slots=True)
class SessionDown:
    """The Established connection is gone: all state derived from it must go (§10)."""

    reason: str


@dataclass(frozen=True, slots=True)
class UpdateReceived:
    update: Update


@dataclass(frozen=True, slots=True)
class LimitExceeded:
    """A per-peer limit (§14, masc.protocol.limits) was crossed; ``exceeded.action`` says
    what was done about it."""

    exceeded: Exceeded


@dataclass(frozen=True, slots=True)
class NotificationSent:
    connection: int
    notification: Notification
    reason: str


@dataclass(frozen=True, slots=True)
class NotificationReceived:
    """``erratic`` marks a NOTIFICATION with an error in it (§8.6), logged for the admin."""

    connection: int
    notification: Notification
    erratic: bool


Effect = (
    Dial
    | Send
    | Close
    | StateChanged
    | SessionUp
    | SessionDown
    | UpdateReceived
    | LimitExceeded
    | NotificationSent
    | NotificationReceived
)


# --- per-connection state ----------------------------------------------------------------


class _Gone(enum.Enum):
    """Why a connection went away; decides what the session does if it was the last one."""

    ERROR = "error"  # §10: Idle, automatic restart only after the back-off
    CLOSED = "closed"  # Cease or disconnect: Idle, then Active at once (local policy)
    OPEN_SENT_CLOSED = "open-sent-closed"  # §10 OpenSent: Active, restart ConnectRetry
    STOPPED = "stopped"  # Stop event: Idle, no automatic restart
    COLLISION = "collision"  # §8.8 loser: the other connection carries on


@dataclass(slots=True)
class _Connection:
    id: int
    outbound: bool
    state: State = State.OPEN_SENT
    framer: Framer = field(default_factory=Framer)
    remote: Open | None = None
    hold_time: int = 0
    hold_at: float | None = None
    keepalive_at: float | None = None
    established_at: float | None = None
    limiter: UpdateLimiter | None = None  # from Established on


@dataclass(slots=True)
class SessionStats:
    """Counters for operators (mascctl show peer, metrics)."""

    messages_in: dict[str, int] = field(default_factory=lambda: {t.name: 0 for t in MessageType})
    messages_out: dict[str, int] = field(default_factory=lambda: {t.name: 0 for t in MessageType})
    octets_in: int = 0  # whole messages, header included (§7.1)
    octets_out: int = 0
    flaps: int = 0
    last_error: str = ""
    # §14 per-peer limits: attributes not handed to the engine, sessions reset.
    limit_drops: int = 0
    limit_resets: int = 0
    established_at: float | None = None


@dataclass(frozen=True, slots=True)
class _Received:
    """A decoded message with the exact bytes it came in (NOTIFICATION Data needs them)."""

    message: Message
    frame: bytes


_Arg = _Received | ProtocolError | None
_SessionHandler = Callable[["PeerSession", float, int | None], None]
_ConnectionHandler = Callable[["PeerSession", _Connection, float, _Arg], None]


class PeerSession:
    """One MASC peering session (§10).  See the module docstring."""

    def __init__(self, config: SessionConfig, *, rng: Randomness | None = None) -> None:
        """``rng`` draws the ConnectRetry jitter; without one every period is exact."""
        self.config = config
        self.stats = SessionStats()
        self._base = State.IDLE
        self._connections: dict[int, _Connection] = {}
        self._connect_retry_at: float | None = None
        self._restart_at: float | None = None
        self._restart_failures = 0
        self._rng = rng
        self._admin_down = True  # nothing happens until the first Start
        self._effects: list[Effect] = []
        self._before = State.IDLE
        self._reason = ""

    # --- what the shell reads ------------------------------------------------------------

    @property
    def state(self) -> State:
        """The §10 state an operator sees: the most advanced connection's, else the session's."""
        best = self._base
        for conn in self._connections.values():
            if _PROGRESS[conn.state] > _PROGRESS[best]:
                best = conn.state
        return best

    @property
    def established(self) -> _Connection | None:
        for conn in self._connections.values():
            if conn.state is State.ESTABLISHED:
                return conn
        return None

    @property
    def remote(self) -> Open | None:
        """The peer's OPEN on the Established connection."""
        conn = self.established
        return conn.remote if conn else None

    @property
    def negotiated_hold_time(self) -> int | None:
        conn = self.established
        return conn.hold_time if conn else None

    @property
    def admin_down(self) -> bool:
        """Stopped (no Start since the last Stop): it neither dials nor accepts."""
        return self._admin_down

    @property
    def restart_at(self) -> float | None:
        """When the automatic restart after an error will fire, if one is pending."""
        return self._restart_at

    def next_deadline(self) -> float | None:
        # Asked after every input (the shell re-arms its timer): no lists built.
        best = self._connect_retry_at
        restart = self._restart_at
        if restart is not None and (best is None or restart < best):
            best = restart
        for conn in self._connections.values():
            for d in (conn.hold_at, conn.keepalive_at):
                if d is not None and (best is None or d < best):
                    best = d
        return best

    # --- inputs --------------------------------------------------------------------------

    def start(self, *, now: float) -> list[Effect]:
        """The Start event from the operator or the system; also lifts an earlier Stop."""
        self._admin_down = False
        self._restart_failures = 0
        return self._run_session(SessionEvent.START, now, None, "start")

    def stop(self, *, now: float, reason: str = "administrative stop") -> list[Effect]:
        """The Stop event: Cease to the peer (§8.7), Idle, no automatic restart."""
        self._admin_down = True
        return self._run_session(SessionEvent.STOP, now, None, reason)

    def connect_failed(self, *, now: float) -> list[Effect]:
        return self._run_session(SessionEvent.TRANSPORT_FAILED, now, None, "connect failed")

    def connection_made(self, connection: int, *, outbound: bool, now: float) -> list[Effect]:
        if connection in self._connections:
            raise CoreMisuse(f"connection {connection} already known")
        event = SessionEvent.TRANSPORT_CONNECTED if outbound else SessionEvent.INCOMING_CONNECTION
        return self._run_session(event, now, connection, event.value)

    def data_received(self, connection: int, data: bytes, *, now: float) -> list[Effect]:
        """Bytes from the transport: frame, decode, and run each message through the FSM."""
        conn = self._connection(connection)
        self._begin()
        conn.framer.feed(data)
        while conn.id in self._connections:
            try:
                frame = conn.framer.next_frame()
                if frame is None:
                    break
                message = decode(frame)
            except ProtocolError as error:
                self._dispatch(conn, ConnectionEvent.MESSAGE_ERROR, now, error)
                if isinstance(error, UpdateMessageError) and conn.id in self._connections:
                    self._deliver_salvaged(conn, error, now)
                continue
            self._count_in(frame)
            self._dispatch(conn, _EVENT_OF[type(message)], now, _Received(message, frame))
        return self._finish()

    def connection_lost(self, connection: int, *, now: float) -> list[Effect]:
        """The transport closed under us.  Unknown ids are ignored: we may have closed it."""
        self._begin()
        conn = self._connections.get(connection)
        if conn is not None:
            self._dispatch(conn, ConnectionEvent.TRANSPORT_CLOSED, now, None)
        return self._finish()

    def send_update(self, update: Update, *, now: float) -> list[Effect]:
        """Send an UPDATE on the Established connection (§11: only in Established)."""
        conn = self.established
        if conn is None:
            raise CoreMisuse("send_update while not Established")
        self._begin()
        self._send(conn, update, now)
        return self._finish()

    def reject_update(
        self, error: UpdateMessageError, *, connection: int, now: float
    ) -> list[Effect]:
        """Answer an attribute the claim engine refused (§8.3, §11) with its NOTIFICATION.

        The engine judged an UPDATE received on ``connection``; if that connection is no
        longer the Established one the answer is moot and nothing is sent.  CC subcodes
        keep the connection open, as for the codec's own CC errors.
        """
        conn = self.established
        self._begin()
        if conn is not None and conn.id == connection:
            self._fail(conn, error, now)
        return self._finish()

    def handle_timer(self, *, now: float) -> list[Effect]:
        """Fire every timer due at ``now``."""
        self._begin()
        if self._connect_retry_at is not None and self._connect_retry_at <= now:
            self._connect_retry_at = None
            self._session_cell(SessionEvent.CONNECT_RETRY_EXPIRED, now, None)
        if self._restart_at is not None and self._restart_at <= now:
            self._restart_at = None
            self._session_cell(SessionEvent.RESTART_TIMER_EXPIRED, now, None)
        for conn in list(self._connections.values()):
            if conn.id in self._connections and conn.hold_at is not None and conn.hold_at <= now:
                conn.hold_at = None
                self._dispatch(conn, ConnectionEvent.HOLD_TIMER_EXPIRED, now, None)
            if (
                conn.id in self._connections
                and conn.keepalive_at is not None
                and conn.keepalive_at <= now
            ):
                conn.keepalive_at = None
                self._dispatch(conn, ConnectionEvent.KEEPALIVE_TIMER_EXPIRED, now, None)
        return self._finish()

    # --- plumbing ------------------------------------------------------------------------

    def _connection(self, connection: int) -> _Connection:
        try:
            return self._connections[connection]
        except KeyError:
            raise CoreMisuse(f"unknown connection {connection}") from None

    def _begin(self) -> State:
        if self._effects:
            raise CoreMisuse("re-entrant call into PeerSession")
        self._before = self.state
        self._reason = ""
        return self._before

    def _finish(self) -> list[Effect]:
        after = self.state
        if after is not self._before:
            self._effects.append(StateChanged(self._before, after, self._reason))
        effects, self._effects = self._effects, []
        return effects

    def _note_state(self, reason: str) -> None:
        """Record an intermediate state so a pass through it (e.g. Idle) is reported."""
        current = self.state
        if current is not self._before:
            self._effects.append(StateChanged(self._before, current, reason))
            self._before = current
        self._reason = reason

    def _run_session(
        self, event: SessionEvent, now: float, connection: int | None, reason: str
    ) -> list[Effect]:
        self._begin()
        self._reason = reason
        self._session_cell(event, now, connection)
        return self._finish()

    def _session_cell(self, event: SessionEvent, now: float, connection: int | None) -> None:
        SESSION_TABLE[(self.state, event)](self, now, connection)

    def _dispatch(self, conn: _Connection, event: ConnectionEvent, now: float, arg: _Arg) -> None:
        CONNECTION_TABLE[(conn.state, event)](self, conn, now, arg)

    def _send(self, conn: _Connection, message: Message, now: float) -> None:
        data = encode(message)
        self.stats.messages_out[_TYPE_NAMES[data[2]]] += 1
        self.stats.octets_out += len(data)
        self._effects.append(Send(conn.id, data))
        # §10 Established: sending a KEEPALIVE or UPDATE restarts the KeepAlive timer.
        if conn.state is not State.OPEN_SENT and isinstance(message, Keepalive | Update):
            self._arm_keepalive(conn, now)

    def _count_in(self, frame: bytes) -> None:
        self.stats.messages_in[_TYPE_NAMES[frame[2]]] += 1  # a frame decoded: a known Type
        self.stats.octets_in += len(frame)

    def _arm_keepalive(self, conn: _Connection, now: float) -> None:
        # §7.4: one third of the hold time, never more often than once a second; none at all
        # when the negotiated hold time is zero.
        if conn.hold_time:
            conn.keepalive_at = now + max(conn.hold_time / 3, MIN_KEEPALIVE_INTERVAL)
        else:
            conn.keepalive_at = None

    def _arm_hold(self, conn: _Connection, now: float) -> None:
        conn.hold_at = now + conn.hold_time if conn.hold_time else None

    def _open_message(self) -> Open:
        c = self.config
        return Open(
            family=c.family,
            role=c.local_role,
            hold_time=c.hold_time,
            domain_id=c.local_domain,
            node_id=c.local_node,
            parent_domain_id=c.advertised_parent,
        )

    def _accept(self, connection: int, outbound: bool, now: float) -> None:
        """A transport connection is up: send OPEN, large Hold Timer, OpenSent (§10)."""
        self._connect_retry_at = None
        conn = _Connection(connection, outbound)
        self._connections[connection] = conn
        conn.hold_at = now + self.config.open_hold_time
        self._send(conn, self._open_message(), now)

    def _refuse(self, connection: int) -> None:
        self._effects.append(Close(connection))

    def _notify(
        self,
        conn: _Connection,
        code: int,
        subcode: int,
        data: bytes,
        *,
        keep_open: bool,
        now: float,
        reason: str,
    ) -> None:
        notification = Notification(keep_open, code, subcode, data)
        self._send(conn, notification, now)
        self._effects.append(NotificationSent(conn.id, notification, reason))

    def _fail(self, conn: _Connection, error: ProtocolError, now: float) -> None:
        """The one place a peer fault becomes a NOTIFICATION (§8).

        CC errors keep the connection open only in Established (local policy); MC errors,
        and every error before Established, close it.
        """
        keep_open = not error.must_close and conn.state is State.ESTABLISHED
        self._notify(
            conn,
            error.code,
            error.subcode,
            error.data,
            keep_open=keep_open,
            now=now,
            reason=str(error),
        )
        if not keep_open:
            self.stats.last_error = f"sent {error}"
            self._drop(conn, _Gone.ERROR, now, f"sent NOTIFICATION: {error}")

    def _cease(self, conn: _Connection, gone: _Gone, now: float, reason: str) -> None:
        """§8.7 / §8.8: close with Cease, which is never used for a fatal error."""
        self._notify(
            conn,
            ErrorCode.CEASE,
            CeaseSubcode.UNSPECIFIC,
            b"",
            keep_open=False,
            now=now,
            reason=reason,
        )
        self._drop(conn, gone, now, reason)

    def _drop(self, conn: _Connection, gone: _Gone, now: float, reason: str) -> None:
        """Close one connection and, if it was the last, move the session on (§10)."""
        del self._connections[conn.id]
        self._effects.append(Close(conn.id))
        if conn.state is State.ESTABLISHED:
            self.stats.flaps += 1
            self.stats.established_at = None
            self._effects.append(SessionDown(reason))
            stable_for = now - (conn.established_at or now)
            if stable_for >= self.config.restart_backoff_initial:
                # A session that stayed up that long has recovered: the next error starts
                # the back-off from the beginning again (docs/conformance.md).
                self._restart_failures = 0
        if self._connections:
            self._reason = reason
            return
        self._reason = reason
        if gone is _Gone.STOPPED or self._admin_down:
            self._base = State.IDLE
            self._connect_retry_at = None
            self._restart_at = None
        elif gone is _Gone.ERROR:
            self._enter_idle_after_error(now, reason)
        elif gone is _Gone.OPEN_SENT_CLOSED:
            self._base = State.ACTIVE
            self._arm_connect_retry(now)
        else:
            # OpenConfirm/Established lost without an error (Cease, disconnect, collision
            # loser with no winner left): §10 says Idle; we restart at once into Active so
            # the peer's reconnection is accepted, and dial again after ConnectRetry.
            self._base = State.IDLE
            self._note_state(reason)
            self._base = State.ACTIVE
            self._arm_connect_retry(now)

    def _enter_idle_after_error(self, now: float, reason: str) -> None:
        """§10 Idle: automatic Start events after an error back off exponentially from
        60 s, doubling per consecutive retry, capped at 24 h."""
        c = self.config
        delay = self._jittered(
            min(c.restart_backoff_initial * 2**self._restart_failures, c.restart_backoff_max)
        )
        self._restart_failures += 1
        self._base = State.IDLE
        self._connect_retry_at = None
        self._restart_at = now + delay
        self._reason = f"{reason}; automatic restart in {delay:g}s"

    def _arm_connect_retry(self, now: float) -> None:
        """ConnectRetry exists to dial again; a passive session never dials, so never has it."""
        self._connect_retry_at = None if self.config.passive else now + self._connect_retry()

    def _connect_retry(self) -> float:
        return self._jittered(self.config.connect_retry)

    def _jittered(self, period: float) -> float:
        """A ConnectRetry period or an automatic-restart delay, drawn from [1 - jitter, 1]
        times its value (SessionConfig.connect_retry_jitter): the two ends of a session
        that failed together then do not dial each other at the same instant."""
        jitter = self.config.connect_retry_jitter
        if self._rng is None or not jitter:
            return period
        return period * (1 - jitter * self._rng.random())

    def _begin_connecting(self, now: float) -> None:
        """Start: ConnectRetry running, dial unless passive, listen either way (§10 Idle)."""
        self._restart_at = None
        self._arm_connect_retry(now)
        if self.config.passive:
            self._base = State.ACTIVE
        else:
            self._base = State.CONNECT
            self._effects.append(Dial())

    def _deliver_salvaged(self, conn: _Connection, error: UpdateMessageError, now: float) -> None:
        """After a CC UPDATE error: report the other bad claims, deliver the good ones.

        At most MAX_REPORTS_PER_UPDATE NOTIFICATIONs answer one UPDATE: a 4096-octet UPDATE
        of 1023 bad 4-octet attributes must not make us write a thousand messages.
        """
        if conn.id not in self._connections:
            return
        # §10 Established: an UPDATE restarts the Hold Timer, even one whose claims we reject.
        self._arm_hold(conn, now)
        for further in error.further[: MAX_REPORTS_PER_UPDATE - 1]:
            self._fail(conn, further, now)
            if conn.id not in self._connections:
                return
        if error.salvaged is not None:
            self._deliver(conn, error.salvaged, now)

    # --- session-level cells (§10 Idle, Connect, Active) ----------------------------------

    def _s_ignore(self, now: float, connection: int | None) -> None:
        """§10: "Any other event received in the Idle state is ignored"; Start is ignored in
        every state but Idle."""

    def _s_start(self, now: float, connection: int | None) -> None:
        self._begin_connecting(now)

    def _s_restart(self, now: float, connection: int | None) -> None:
        if not self._admin_down:
            self._reason = "automatic restart"
            self._begin_connecting(now)

    def _s_stop_unconnected(self, now: float, connection: int | None) -> None:
        """Connect/Active, "any other event": release resources, Idle."""
        self._base = State.IDLE
        self._connect_retry_at = None
        self._restart_at = None

    def _s_stop_connected(self, now: float, connection: int | None) -> None:
        for conn in list(self._connections.values()):
            self._dispatch(conn, ConnectionEvent.STOP, now, None)
        self._s_stop_unconnected(now, connection)

    def _s_retry_dial(self, now: float, connection: int | None) -> None:
        """Connect/Active + ConnectRetry expired: restart it, dial, (go to) Connect."""
        if self.config.passive:
            raise CoreMisuse("ConnectRetry fired on a passive session, which never arms it")
        self._connect_retry_at = now + self._connect_retry()
        self._base = State.CONNECT
        self._reason = "ConnectRetry expired"
        self._effects.append(Dial())

    def _s_connect_failed(self, now: float, connection: int | None) -> None:
        """Connect: transport connect failed -> restart ConnectRetry, Active."""
        self._arm_connect_retry(now)
        self._base = State.ACTIVE

    def _s_take_outbound(self, now: float, connection: int | None) -> None:
        self._take(connection, True, now)

    def _s_take_inbound(self, now: float, connection: int | None) -> None:
        self._take(connection, False, now)

    def _take(self, connection: int | None, outbound: bool, now: float) -> None:
        """A transport connection in Connect/Active, or a second one while another is open
        (§8.8 resolves the collision once its OPEN arrives).  One of each direction.

        A dial that completes after another connection has reached OpenConfirm is closed
        before it sends its OPEN: we have sent a KEEPALIVE there, the peer may already hold
        that connection Established, and an OPEN on this one could only make it choose
        differently from us (docs/conformance.md choice 17).  A peer that takes an accepted
        connection only with its OPEN, as masc does (``PeerRunner.incoming``), never sees
        this one.
        """
        assert connection is not None
        if any(c.outbound == outbound for c in self._connections.values()) or (
            outbound and any(c.state is not State.OPEN_SENT for c in self._connections.values())
        ):
            self._refuse(connection)
            return
        self._accept(connection, outbound, now)

    def _s_refuse(self, now: float, connection: int | None) -> None:
        """Idle refuses all incoming connections (§10); a late dial result is closed too."""
        assert connection is not None
        self._refuse(connection)

    def _s_misuse(self, now: float, connection: int | None) -> None:
        raise CoreMisuse(f"timer fired in state {self.state.value} where it cannot be armed")

    def _c_misuse(self, conn: _Connection, now: float, arg: _Arg) -> None:
        raise CoreMisuse(f"KeepAlive timer fired in {conn.state.value} where it is never armed")

    # --- connection-level cells (§10 OpenSent, OpenConfirm, Established) ------------------

    def _c_open(self, conn: _Connection, now: float, arg: _Arg) -> None:
        """OpenSent + OPEN: check it (§8.2), resolve collisions (§8.8), KEEPALIVE, OpenConfirm."""
        assert isinstance(arg, _Received) and isinstance(arg.message, Open)
        message, frame = arg.message, arg.frame
        try:
            body = frame[HEADER_LENGTH:]
            check_open(message, body, self.config)
            self._check_collision(conn, message, body, now)
        except ProtocolError as error:
            self._fail(conn, error, now)
            return
        if conn.id not in self._connections:
            return  # lost the collision
        conn.remote = message
        # §7.2: the smaller of our configured and the received Hold Time.
        conn.hold_time = min(self.config.hold_time, message.hold_time)
        conn.state = State.OPEN_CONFIRM
        self._reason = "OPEN accepted"
        self._arm_hold(conn, now)
        if conn.hold_time == 0:
            # §10 starts no timer for hold time 0, but a peer that then never sends its
            # KEEPALIVE would hold this connection in OpenConfirm for ever: keep the large
            # OpenSent value until Established (docs/conformance.md).
            conn.hold_at = now + self.config.open_hold_time
        self._send(conn, Keepalive(), now)

    def _check_collision(self, conn: _Connection, message: Open, body: bytes, now: float) -> None:
        """§8.8 against the other connection of this session, in whatever state it is.

        §8.8 lets a speaker examine a connection in OpenSent "if it knows the MASC Node
        Identifier of the remote node by means outside of the protocol": both connections of
        a session run to the one configured peer address (and parent), so the node id this
        OPEN carries is that connection's too.  Without it, an end could answer this OPEN
        with a KEEPALIVE on a connection it is about to lose by node id; the other end then
        holds it Established, keeps it ("Established wins") and closes the one we keep,
        and the session is lost on both (docs/conformance.md choice 17).
        """
        for other in list(self._connections.values()):
            if other is conn:
                continue
            if other.remote is not None and other.remote.node_id != message.node_id:
                raise OpenMessageError(
                    OpenSubcode.BAD_PEER_NODE_ID,
                    body,
                    reason="a second node id on an already open session",
                )
            if other.state is State.ESTABLISHED:
                self._cease(conn, _Gone.COLLISION, now, "collision: Established connection wins")
                return
            # Keep the connection initiated by the speaker with the higher node id.
            keep_outbound = self.config.local_node > message.node_id
            loser = conn if conn.outbound != keep_outbound else other
            self._cease(loser, _Gone.COLLISION, now, "connection collision (§8.8)")
            return

    def _c_keepalive_confirm(self, conn: _Connection, now: float, arg: _Arg) -> None:
        """OpenConfirm + KEEPALIVE: Established."""
        assert conn.remote is not None
        conn.state = State.ESTABLISHED
        conn.established_at = now
        self.stats.established_at = now
        self._arm_hold(conn, now)
        conn.limiter = UpdateLimiter(self.config.limits, now=now)
        self._reason = "KEEPALIVE received"
        internal = (
            conn.remote.domain_id == self.config.local_domain and conn.remote.role is Role.INTERNAL
        )
        self._effects.append(SessionUp(conn.id, conn.remote, conn.hold_time, internal))

    def _c_refresh(self, conn: _Connection, now: float, arg: _Arg) -> None:
        """Established + KEEPALIVE: restart the Hold Timer."""
        self._arm_hold(conn, now)

    def _c_update(self, conn: _Connection, now: float, arg: _Arg) -> None:
        assert isinstance(arg, _Received) and isinstance(arg.message, Update)
        self._arm_hold(conn, now)
        self._deliver(conn, arg.message, now)

    def _deliver(self, conn: _Connection, update: Update, now: float) -> None:
        """Hand an UPDATE to the engine, within the peer's limits (§14)."""
        limiter = conn.limiter
        if limiter is None or not self.config.limits.any:
            self._effects.append(UpdateReceived(update))
            return
        limiter.limits = self.config.limits  # a reload may have changed them
        admission = limiter.admit(update, now=now)
        self.stats.limit_drops += admission.dropped
        self._effects.extend(LimitExceeded(e) for e in admission.exceeded)
        if admission.reset:
            self.stats.limit_resets += 1
            self.stats.last_error = "per-peer limit exceeded"
            # Cease, not an error code: the peer sent nothing malformed (§8.7); _Gone.ERROR
            # so the automatic-restart back-off (§10) holds the session down, as BGP's
            # maximum-prefix restart does.
            self._cease(conn, _Gone.ERROR, now, "per-peer limit exceeded (§14)")
            return
        if admission.update is not None:
            self._effects.append(UpdateReceived(admission.update))

    def _c_notification(self, conn: _Connection, now: float, arg: _Arg) -> None:
        """NOTIFICATION in any state: §8.6 first, then O-bit zero closes, O-bit one is an
        error report on a connection the peer keeps (only meaningful in Established)."""
        assert isinstance(arg, _Received) and isinstance(arg.message, Notification)
        message, frame = arg.message, arg.frame
        erratic = not is_defined(message.code, message.subcode) or (
            message.open_bit and requires_close(message.code, message.subcode)
        )
        self._effects.append(NotificationReceived(conn.id, message, erratic))
        if erratic and message.open_bit:
            # §8.6: O-bit zeroed, NOTIFICATION Error / Unspecific, Data = the erratic message.
            self._fail(
                conn,
                NotificationMessageError(
                    NotificationSubcode.UNSPECIFIC, frame, reason="erratic NOTIFICATION"
                ),
                now,
            )
            return
        if not message.open_bit:
            label = describe(message.code, message.subcode)
            if message.code == ErrorCode.CEASE:
                self._drop(conn, _Gone.CLOSED, now, f"peer sent {label}")
            else:
                self.stats.last_error = f"received {label}"
                self._drop(conn, _Gone.ERROR, now, f"peer sent {label}")
            return
        if conn.state is State.ESTABLISHED:
            self._arm_hold(conn, now)
            return
        self._c_fsm_error(conn, now, arg)

    def _c_message_error(self, conn: _Connection, now: float, arg: _Arg) -> None:
        assert isinstance(arg, ProtocolError)
        self._fail(conn, arg, now)

    def _c_hold_expired(self, conn: _Connection, now: float, arg: _Arg) -> None:
        """§8.4: Hold Timer Expired NOTIFICATION (O-bit zero), close."""
        expired = HoldTimerExpired(HoldTimerSubcode.UNSPECIFIC, reason="no message in hold time")
        self._fail(conn, expired, now)

    def _c_keepalive_due(self, conn: _Connection, now: float, arg: _Arg) -> None:
        self._send(conn, Keepalive(), now)

    def _c_closed_open_sent(self, conn: _Connection, now: float, arg: _Arg) -> None:
        self._drop(conn, _Gone.OPEN_SENT_CLOSED, now, "transport closed in OpenSent")

    def _c_closed(self, conn: _Connection, now: float, arg: _Arg) -> None:
        self._drop(conn, _Gone.CLOSED, now, f"transport closed in {conn.state.value}")

    def _c_stop(self, conn: _Connection, now: float, arg: _Arg) -> None:
        self._cease(conn, _Gone.STOPPED, now, self._reason or "stop")

    def _c_fsm_error(self, conn: _Connection, now: float, arg: _Arg) -> None:
        """§10 "any other event": FSM Error.  The state text names the subcode: Open/Close
        MASC Connection FSM Error in OpenSent, Unspecific in OpenConfirm and Established."""
        subcode = (
            FsmSubcode.OPEN_CLOSE_FSM_ERROR
            if conn.state is State.OPEN_SENT
            else FsmSubcode.UNSPECIFIC
        )
        what = type(arg.message).__name__ if isinstance(arg, _Received) else "event"
        self._fail(conn, FsmError(subcode, reason=f"{what} in {conn.state.value}"), now)


_EVENT_OF: Final[dict[type, ConnectionEvent]] = {
    Open: ConnectionEvent.OPEN,
    Keepalive: ConnectionEvent.KEEPALIVE,
    Update: ConnectionEvent.UPDATE,
    Notification: ConnectionEvent.NOTIFICATION,
}

_P = PeerSession
_SE = SessionEvent
_ST = State

# (state the session shows, session event) -> handler.  Every cell is written out.
SESSION_TABLE: Final[dict[tuple[State, SessionEvent], _SessionHandler]] = {
    # Idle: Start begins; everything else is ignored, and connections are refused.
    (_ST.IDLE, _SE.START): _P._s_start,
    (_ST.IDLE, _SE.STOP): _P._s_stop_unconnected,
    (_ST.IDLE, _SE.CONNECT_RETRY_EXPIRED): _P._s_misuse,
    (_ST.IDLE, _SE.RESTART_TIMER_EXPIRED): _P._s_restart,
    (_ST.IDLE, _SE.TRANSPORT_CONNECTED): _P._s_refuse,
    (_ST.IDLE, _SE.TRANSPORT_FAILED): _P._s_ignore,
    (_ST.IDLE, _SE.INCOMING_CONNECTION): _P._s_refuse,
    # Connect: waiting for our dial.
    (_ST.CONNECT, _SE.START): _P._s_ignore,
    (_ST.CONNECT, _SE.STOP): _P._s_stop_unconnected,
    (_ST.CONNECT, _SE.CONNECT_RETRY_EXPIRED): _P._s_retry_dial,
    (_ST.CONNECT, _SE.RESTART_TIMER_EXPIRED): _P._s_misuse,
    (_ST.CONNECT, _SE.TRANSPORT_CONNECTED): _P._s_take_outbound,
    (_ST.CONNECT, _SE.TRANSPORT_FAILED): _P._s_connect_failed,
    (_ST.CONNECT, _SE.INCOMING_CONNECTION): _P._s_take_inbound,
    # Active: listening for the peer.
    (_ST.ACTIVE, _SE.START): _P._s_ignore,
    (_ST.ACTIVE, _SE.STOP): _P._s_stop_unconnected,
    (_ST.ACTIVE, _SE.CONNECT_RETRY_EXPIRED): _P._s_retry_dial,
    (_ST.ACTIVE, _SE.RESTART_TIMER_EXPIRED): _P._s_misuse,
    (_ST.ACTIVE, _SE.TRANSPORT_CONNECTED): _P._s_take_outbound,
    (_ST.ACTIVE, _SE.TRANSPORT_FAILED): _P._s_ignore,
    (_ST.ACTIVE, _SE.INCOMING_CONNECTION): _P._s_take_inbound,
}
for _state in CONNECTION_STATES:
    # With a connection open: Start is ignored, Stop Ceases every connection, a second
    # connection is taken for §8.8 to judge, a failed (late) dial changes nothing.
    SESSION_TABLE[(_state, _SE.START)] = _P._s_ignore
    SESSION_TABLE[(_state, _SE.STOP)] = _P._s_stop_connected
    SESSION_TABLE[(_state, _SE.CONNECT_RETRY_EXPIRED)] = _P._s_misuse
    SESSION_TABLE[(_state, _SE.RESTART_TIMER_EXPIRED)] = _P._s_misuse
    SESSION_TABLE[(_state, _SE.TRANSPORT_CONNECTED)] = _P._s_take_outbound
    SESSION_TABLE[(_state, _SE.TRANSPORT_FAILED)] = _P._s_ignore
    SESSION_TABLE[(_state, _SE.INCOMING_CONNECTION)] = _P._s_take_inbound

_CE = ConnectionEvent
# (connection state, connection event) -> handler.  Every cell is written out.
CONNECTION_TABLE: Final[dict[tuple[State, ConnectionEvent], _ConnectionHandler]] = {
    (_ST.OPEN_SENT, _CE.OPEN): _P._c_open,
    (_ST.OPEN_SENT, _CE.KEEPALIVE): _P._c_fsm_error,
    (_ST.OPEN_SENT, _CE.UPDATE): _P._c_fsm_error,
    (_ST.OPEN_SENT, _CE.NOTIFICATION): _P._c_notification,
    (_ST.OPEN_SENT, _CE.MESSAGE_ERROR): _P._c_message_error,
    (_ST.OPEN_SENT, _CE.HOLD_TIMER_EXPIRED): _P._c_hold_expired,
    (_ST.OPEN_SENT, _CE.KEEPALIVE_TIMER_EXPIRED): _P._c_misuse,
    (_ST.OPEN_SENT, _CE.TRANSPORT_CLOSED): _P._c_closed_open_sent,
    (_ST.OPEN_SENT, _CE.STOP): _P._c_stop,
    (_ST.OPEN_CONFIRM, _CE.OPEN): _P._c_fsm_error,
    (_ST.OPEN_CONFIRM, _CE.KEEPALIVE): _P._c_keepalive_confirm,
    (_ST.OPEN_CONFIRM, _CE.UPDATE): _P._c_fsm_error,
    (_ST.OPEN_CONFIRM, _CE.NOTIFICATION): _P._c_notification,
    (_ST.OPEN_CONFIRM, _CE.MESSAGE_ERROR): _P._c_message_error,
    (_ST.OPEN_CONFIRM, _CE.HOLD_TIMER_EXPIRED): _P._c_hold_expired,
    (_ST.OPEN_CONFIRM, _CE.KEEPALIVE_TIMER_EXPIRED): _P._c_keepalive_due,
    (_ST.OPEN_CONFIRM, _CE.TRANSPORT_CLOSED): _P._c_closed,
    (_ST.OPEN_CONFIRM, _CE.STOP): _P._c_stop,
    (_ST.ESTABLISHED, _CE.OPEN): _P._c_fsm_error,
    (_ST.ESTABLISHED, _CE.KEEPALIVE): _P._c_refresh,
    (_ST.ESTABLISHED, _CE.UPDATE): _P._c_update,
    (_ST.ESTABLISHED, _CE.NOTIFICATION): _P._c_notification,
    (_ST.ESTABLISHED, _CE.MESSAGE_ERROR): _P._c_message_error,
    (_ST.ESTABLISHED, _CE.HOLD_TIMER_EXPIRED): _P._c_hold_expired,
    (_ST.ESTABLISHED, _CE.KEEPALIVE_TIMER_EXPIRED): _P._c_keepalive_due,
    (_ST.ESTABLISHED, _CE.TRANSPORT_CLOSED): _P._c_closed,
    (_ST.ESTABLISHED, _CE.STOP): _P._c_stop,
}
