"""The trio task that runs one peering session: moves bytes and fires timers, nothing else.

A :class:`PeerRunner` owns one sans-IO :class:`~masc.protocol.session.PeerSession`.  Its
single loop waits for the next inbox event or the session's next deadline, feeds the
session, and carries out the effects it returns.  Each TCP connection gets a reader task
(bytes in -> inbox) and a writer task (a bounded channel -> ``send_all``), so a peer that
stops reading can never block the loop that owns the timers: when its channel is full the
connection is dropped as lost.

Two shortcuts keep the cost per message low (a simulation runs thousands of runners):
when the loop is idle -- parked on an empty inbox, not inside a handler -- the bytes a
reader got are handled at once by the reader instead of being queued for the loop, and so
are the UPDATEs the claim engine sends (by the domain runner: ``send_update``).  That is
the order the loop would have used (nothing was queued before them), and trio switches
tasks only at ``await``, so the session is still fed one input at a time; the loop then
re-arms its timer from the session's next deadline.  Any other event, or one that arrives while the
loop is busy, is queued, and from then on everything is queued until the loop has caught
up.  And the writer sends every frame queued so far in one ``send_all``; a stream that
can take bytes without waiting (the simulator's, ``send_nowait``) is written at once
when nothing is queued for it.  A stream that can hand bytes over as they are written
(the simulator's again, ``set_in_place_reader``) gives them to the idle loop the same way
without waking the reader task at all.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from ipaddress import IPv4Address, IPv6Address
from typing import Final, Protocol

import trio

from masc.daemon.channels import buffered, waiting_receivers
from masc.daemon.transport import dial
from masc.protocol.errors import ProtocolError, UpdateMessageError, describe
from masc.protocol.open_checks import SessionConfig
from masc.protocol.session import (
    Close,
    Dial,
    Effect,
    LimitExceeded,
    NotificationReceived,
    NotificationSent,
    PeerSession,
    Send,
    SessionDown,
    SessionUp,
    State,
    StateChanged,
    UpdateReceived,
)
from masc.protocol.wire.framing import Framer
from masc.protocol.wire.messages import Update

log = logging.getLogger("masc.peer")
Stream = trio.abc.HalfCloseableStream  # a TCP connection, or an in-memory one in simulation

# Accepted connections of one session waiting for the peer's OPEN: a session takes at
# most one inbound connection anyway (docs/conformance.md choice 17).
_MAX_AWAITING_OPEN: Final = 2


@dataclass(slots=True)
class FirstFrame:
    """What the peer sent first on a connection: one whole message (``frame``, None if the
    connection closed, stayed silent or broke first), every byte read (``seen``), and
    the framing error if its Length was impossible."""

    frame: bytes | None
    seen: bytes
    error: ProtocolError | None = None


async def read_first_frame(stream: Stream, timeout: float) -> FirstFrame:
    """Read until one whole message has arrived, for at most ``timeout`` seconds."""
    framer, seen = Framer(), bytearray()
    with trio.move_on_after(timeout):
        try:
            while True:
                data = await stream.receive_some(4096)
                if not data:
                    break
                seen += data
                framer.feed(bytes(data))
                frame = framer.next_frame()
                if frame is not None:
                    return FirstFrame(frame, bytes(seen))
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        except ProtocolError as error:  # Bad Message Length
            return FirstFrame(None, bytes(seen), error)
    return FirstFrame(None, bytes(seen))


# Messages queued for one connection before a non-reading peer is declared lost.
_OUTBOX_DEPTH: Final = 1024
# How long a closing connection may take to flush what was queued (a final NOTIFICATION).
_CLOSE_GRACE: Final = 5.0
_READ_SIZE: Final = 65536
_READ_CREDIT: Final = 4
_DRAIN_BEFORE_TIMERS: Final = 256
# Queued events the loop handles before it lets other tasks run (a checkpoint).
_BATCH: Final = 64
# Frames the writer joins into one send_all (at most this many more than _OUTBOX_DEPTH are
# in flight, so what a non-reading peer costs us stays bounded).
_WRITE_BATCH: Final = 64
_connection_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class _Incoming:
    stream: Stream
    initial: bytes


@dataclass(frozen=True, slots=True)
class _Connected:
    stream: Stream
    dial: int


@dataclass(frozen=True, slots=True)
class _DialFailed:
    dial: int
    error: str


@dataclass(frozen=True, slots=True)
class _Data:
    """Bytes a reader queued, holding one unit of the connection's read credit."""

    connection: _Connection
    data: bytes


@dataclass(frozen=True, slots=True)
class _Lost:
    """A connection's tasks have ended, for whatever reason; sent exactly once per connection."""

    connection: _Connection


@dataclass(frozen=True, slots=True)
class _Admin:
    """Start or Stop from the daemon (boot, shutdown, reload) or the operator.  ``final``
    ends the runner once its connections have closed; ``reset`` is a Stop then a Start."""

    start: bool
    reason: str
    final: bool = False
    reset: bool = False


@dataclass(frozen=True, slots=True)
class _SendUpdate:
    """An UPDATE from the claim engine, for the Established connection ``generation``."""

    generation: int
    update: Update


@dataclass(frozen=True, slots=True)
class _Reject:
    """The claim engine refused an attribute received on connection ``generation``."""

    generation: int
    error: UpdateMessageError


@dataclass(frozen=True, slots=True)
class _Reconfigure:
    config: SessionConfig


class _ResetStart:
    """The Start half of a reset, once the closed connections are gone (``token`` says
    which reset; a later admin event makes it stale).  Not a dataclass: mypyc (setup.py)
    cannot build a dataclass with a field typed ``object``."""

    __slots__ = ("token",)

    def __init__(self, token: object) -> None:
        self.token = token


@dataclass(frozen=True, slots=True)
class _Wake:
    """Nothing to do but look again (the runner finished while the loop was parked)."""


_InboxEvent = (
    _Wake
    | _Incoming
    | _Connected
    | _DialFailed
    | _Data
    | _Lost
    | _Admin
    | _Reconfigure
    | _ResetStart
    | _SendUpdate
    | _Reject
)


class SessionListener(Protocol):
    """Who hears about the session: the domain runner feeding the claim engine.  Called from
    the runner's task; implementations only queue (they must not block)."""

    def session_up(self, runner: PeerRunner, up: SessionUp) -> None: ...

    def session_down(self, runner: PeerRunner) -> None: ...

    def update_received(self, runner: PeerRunner, update: Update) -> None: ...


class _Connection:
    """The I/O half of one TCP connection: a reader task, a writer task fed by a bounded
    channel, and the rule that when either ends the runner hears ``_Lost`` exactly once."""

    def __init__(self, connection_id: int, stream: Stream, stall: float) -> None:
        self.id = connection_id
        self.stream = stream
        self.outbox, self._outbox_rx = trio.open_memory_channel[bytes](_OUTBOX_DEPTH)
        self._queued = buffered(self._outbox_rx)
        self._writer_parked = waiting_receivers(self._outbox_rx)
        # Reads in flight to the runner: a peer cannot make us buffer more than this.
        self.credit = trio.Semaphore(_READ_CREDIT)
        self.scope = trio.CancelScope()
        self.closing = False
        self.stall = stall
        self.done = trio.Event()

    async def run(
        self, inbox: trio.MemorySendChannel[_InboxEvent], runner: PeerRunner | None = None
    ) -> None:
        """Move bytes until the connection ends; ``runner``, if given, may take what is
        read in place (module docstring), the rest goes to ``inbox``."""
        # A stream that can hand over bytes as they are written (the simulator's) gives
        # them to the runner in place without waking the reader task: once per message
        # per child when a parent relays, that wake-up cost more than the handling.
        set_reader = getattr(self.stream, "set_in_place_reader", None)
        if set_reader is not None and runner is not None:
            set_reader(partial(self._take_in_place, runner))
        with self.scope:
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._read, inbox, runner, nursery.cancel_scope)
                    if not await self._write():
                        nursery.cancel_scope.cancel()
            finally:
                if set_reader is not None:
                    set_reader(None)
                with trio.CancelScope(shield=True):
                    await trio.aclose_forcefully(self.stream)
                with contextlib.suppress(trio.BrokenResourceError):
                    inbox.send_nowait(_Lost(self))
                self.done.set()

    def _take_in_place(self, runner: PeerRunner, data: bytes) -> bool:
        """Bytes the stream hands over as they arrive, with nothing unread before them
        and the reader task parked: taken as :meth:`_read` takes what it reads when the
        runner is idle; False (the reader gets them) otherwise."""
        return not self.closing and runner._data_in_place(self, data)

    async def _read(
        self,
        inbox: trio.MemorySendChannel[_InboxEvent],
        runner: PeerRunner | None,
        scope: trio.CancelScope,
    ) -> None:
        while True:
            try:
                data = await self.stream.receive_some(_READ_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                break
            if not data:
                break
            if self.closing:
                continue  # we are closing: read on only to see the peer's EOF
            # Handled here when the runner is idle (outside the except above: an error
            # while handling is a bug, not a lost connection); otherwise queued.
            chunk = bytes(data)
            if runner is None or not runner._data_in_place(self, chunk):
                await self.credit.acquire()
                inbox.send_nowait(_Data(self, chunk))
        if not self.closing:
            scope.cancel()  # EOF or error while open: the connection is lost

    async def _write(self) -> bool:
        """Write until the runner closes the outbox; then half-close (FIN) so the peer reads
        everything, including a final NOTIFICATION, before either side resets.  False when
        the connection failed or stalled: a peer that takes none of our bytes for a whole
        hold time is gone, and cancelling the send is harmless as nothing follows it."""
        # One scope for the whole loop, armed only around send_all (so waiting for the
        # outbox is never under it): a scope per frame cost more than the write itself.
        rx = self._outbox_rx
        try:
            with trio.CancelScope() as stalled:
                async for data in rx:
                    frames = [data]
                    while len(frames) < _WRITE_BATCH:
                        try:
                            frames.append(rx.receive_nowait())
                        except (trio.WouldBlock, trio.EndOfChannel):
                            break
                    stalled.deadline = trio.current_time() + self.stall
                    await self.stream.send_all(frames[0] if len(frames) == 1 else b"".join(frames))
                    stalled.deadline = math.inf
            if stalled.cancelled_caught:
                log.warning("peer has not read for %.0fs; dropping it", self.stall)
                return False
            await self.stream.send_eof()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            return False
        return True

    def write_now(self, data: bytes) -> bool:
        """Write ``data`` in the calling task if the stream can take bytes without waiting
        (the simulator's in-memory stream has ``send_nowait``; a TCP stream has not) and
        nothing is queued before them; False: queue them for the writer.  A write that
        fails drops the connection, as the writer's would."""
        send_nowait = getattr(self.stream, "send_nowait", None)
        if send_nowait is None or self.closing:
            return False
        if len(self._queued) or not len(self._writer_parked):
            return False
        try:
            send_nowait(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.abort()
        return True

    def close(self) -> None:
        """Flush what is queued, half-close, wait for the peer's EOF; give up after the grace
        period."""
        self.closing = True
        self.outbox.close()
        self.scope.deadline = min(self.scope.deadline, trio.current_time() + _CLOSE_GRACE)

    def abort(self) -> None:
        """Drop the connection now, unsent data and all."""
        self.closing = True
        self.scope.cancel()


class PeerRunner:
    """Runs one PeerSession on real (or mock-clocked) trio I/O."""

    def __init__(
        self,
        config: SessionConfig,
        *,
        address: IPv4Address | IPv6Address,
        port: int,
        local_address: IPv4Address | IPv6Address | None,
        label: str,
        key: str = "",
        listener: SessionListener | None = None,
        connect: Callable[[], Awaitable[Stream]] | None = None,
        rng: random.Random | None = None,
        md5_key: bytes | None = None,
        ttl_hops: int | None = None,
    ) -> None:
        # The ConnectRetry jitter: from the OS's entropy unless a simulation seeds it.
        self.session = PeerSession(config, rng=rng or random.Random())
        self.key = key or label  # how the claim engine names this session
        self.listener = listener
        # How to open a connection to the peer: TCP from our listen address, or (in the
        # in-process simulation) an in-memory stream.
        self._connect = connect or self._connect_tcp
        self.address = address
        self.port = port
        self.local_address = local_address
        # §14 transport protections of the connections we dial (masc.daemon.transport);
        # the daemon sets the listeners' side.  Read at each dial: a reload changes them.
        self.md5_key = md5_key
        self.ttl_hops = ttl_hops
        self.label = label  # how logs name the peer's domain and relation
        self.inbox, self._inbox_rx = trio.open_memory_channel[_InboxEvent](math.inf)
        self._loop_parked = waiting_receivers(self._inbox_rx)
        self.established = trio.Event()  # set the first time the session is Established
        self.finished = trio.Event()
        self._connections: dict[int, _Connection] = {}  # the session knows these
        self._flushing: set[_Connection] = set()  # every connection whose tasks still run
        self._dial_scope: trio.CancelScope | None = None
        self._dials = itertools.count(1)
        self._current_dial = 0
        self._stopping = False
        self._reset_token: object | None = None
        self._nursery: trio.Nursery | None = None
        self._awaiting_open = 0  # accepted connections read until their OPEN (incoming)
        # The loop's timer, while it waits for events (re-armed after a handling in place).
        self._waiting: trio.CancelScope | None = None
        self._busy = False  # an event is being handled: a new one must queue behind it

    # --- called by the daemon ------------------------------------------------------------

    def incoming(self, stream: Stream, initial: bytes = b"") -> None:
        """Hand over an accepted connection (and any bytes already read from it).

        The session takes it only with the peer's first message (its OPEN): until then we
        send nothing on it (:meth:`_take_with_open`).  §8.8 collision resolution relies on
        this (docs/conformance.md choice 17): a peer that closes its dial before sending
        its OPEN has then never opened a connection here, and an OPEN we would have sent
        on it could not make the peer choose differently from us."""
        self.inbox.send_nowait(_Incoming(stream, initial))

    async def _take_with_open(self, stream: Stream) -> None:
        taken = False
        try:
            first = await read_first_frame(stream, self.session.config.open_hold_time)
            # Closed, silent, or a partial message and then silence: never a connection.
            # A framing error is the session's to answer (§8: its framer finds it again).
            taken = (first.frame is not None or first.error is not None) and not self._stopping
            if taken:
                self.inbox.send_nowait(_Incoming(stream, first.seen))
        finally:
            self._awaiting_open -= 1
            if not taken:
                await trio.aclose_forcefully(stream)

    def admin(self, *, start: bool, reason: str, final: bool = False) -> None:
        """Start, or Stop (Cease, §8.7).  A Stop with ``final`` (shutdown, or the peer was
        removed from the configuration) also ends :meth:`run` once the connections are
        closed; without it the runner stays, Idle, until the next Start."""
        self.inbox.send_nowait(_Admin(start, reason, final=final))

    def reset(self, *, reason: str) -> None:
        """Cease the session and start it again at once (operator reset, or a reload that
        changed a key the OPEN carries)."""
        self.inbox.send_nowait(_Admin(True, reason, reset=True))

    def reconfigure(self, config: SessionConfig) -> None:
        """New settings that apply without a reset (ConnectRetry, back-off, passive), taken
        in turn with the session's other events.  Keys the OPEN carries need :meth:`reset`
        as well."""
        self.inbox.send_nowait(_Reconfigure(config))

    def send_update(self, generation: int, update: Update) -> None:
        """Send an UPDATE on the Established connection ``generation`` (dropped if that
        connection has gone meanwhile: the engine hears SessionDown and will resync):
        encoded at once when the loop is idle, as bytes read are (module docstring), else
        queued.  A parent relays each child's claim to all its other children, so this is
        the busiest hand-off of a simulation; waking each runner's loop for it cost more
        than the engine's work."""
        event = _SendUpdate(generation, update)
        if not self._idle():
            self.inbox.send_nowait(event)
            return
        try:
            self._in_place(event)
        except (LookupError, ValueError) as error:
            # This runs in the domain runner's task, inside its handling of one engine
            # input: a bug here must end the daemon, not pass for the engine refusing an
            # operator's or a MAAS's request (DomainRunner REFUSALS).
            raise RuntimeError(f"sending an UPDATE to {self.label}: {error!r}") from error

    def reject(self, generation: int, error: UpdateMessageError) -> None:
        self.inbox.send_nowait(_Reject(generation, error))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until stopped for shutdown and every connection has closed."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await self._loop()
                # Let the last NOTIFICATIONs (Cease) reach the wire; each connection gives
                # up on its own after the close grace period.
                for conn in list(self._flushing):
                    await conn.done.wait()
                nursery.cancel_scope.cancel()
        finally:
            self.finished.set()

    # --- the loop ------------------------------------------------------------------------

    @property
    def _done(self) -> bool:
        return self._stopping and not self._connections

    async def _loop(self) -> None:
        rx = self._inbox_rx
        while not self._done:
            # One cancel scope per timer that fires, not one per event: its deadline
            # follows the session's next deadline.
            with trio.CancelScope() as waiting:
                self._waiting = waiting
                handled = 0
                while not self._done:
                    deadline = self.session.next_deadline()
                    if deadline is not None and deadline <= trio.current_time():
                        break
                    target = math.inf if deadline is None else deadline
                    if waiting.deadline != target:
                        waiting.deadline = target
                    if handled >= _BATCH:
                        # Let other tasks run, *before* taking the next event: the timer
                        # may cancel this checkpoint, and an event taken would be lost.
                        handled = 0
                        await trio.lowlevel.checkpoint()
                    try:
                        event = rx.receive_nowait()
                    except trio.WouldBlock:
                        event = await rx.receive()
                        handled = 0
                    else:
                        handled += 1
                    self._handle(event)
            self._waiting = None
            if self._done:
                break
            # A deadline passed.  What is already queued happened before now: a KEEPALIVE
            # that arrived in time must restart the Hold Timer before that timer is judged.
            for _ in range(_DRAIN_BEFORE_TIMERS):
                try:
                    self._handle(rx.receive_nowait())
                except trio.WouldBlock:
                    break
            self._execute(self.session.handle_timer(now=trio.current_time()))

    def _idle(self) -> bool:
        """The loop waits for its next event and none is on its way: the inbox is empty and
        the loop still blocked in ``receive`` (an event sent to a waiting receiver is handed
        to it, and it stops waiting).  Not while an event is being handled."""
        return not self._busy and self._waiting is not None and len(self._loop_parked) > 0

    def _data_in_place(self, conn: _Connection, data: bytes) -> bool:
        """Handle bytes read on ``conn`` now if the loop is idle; False if they must queue."""
        if not self._idle():
            return False
        self._in_place(_Data(conn, data), credited=False)
        return True

    def _in_place(self, event: _InboxEvent, *, credited: bool = True) -> None:
        """Handle ``event`` in the calling task while the loop is parked on an empty inbox
        (module docstring), then re-arm the loop's timer from the session's next deadline,
        or wake the loop if the runner is done."""
        self._handle(event, credited=credited)
        waiting = self._waiting
        if waiting is None:
            return
        if self._done:
            self.inbox.send_nowait(_Wake())
            return
        deadline = self.session.next_deadline()
        target = math.inf if deadline is None else deadline
        if waiting.deadline != target:
            waiting.deadline = target  # one already past wakes the loop for its timers

    def _handle(self, event: _InboxEvent, *, credited: bool = True) -> None:
        self._busy = True
        try:
            self._handle_event(event, credited)
        finally:
            self._busy = False

    def _handle_event(self, event: _InboxEvent, credited: bool) -> None:
        now = trio.current_time()
        session = self.session
        if isinstance(event, _Wake):
            return
        if isinstance(event, _Data):
            conn = event.connection
            if credited:
                conn.credit.release()
            if self._connections.get(conn.id) is conn:
                self._execute(session.data_received(conn.id, event.data, now=now))
        elif isinstance(event, _SendUpdate):
            conn_now = session.established
            if conn_now is not None and conn_now.id == event.generation:
                self._execute(session.send_update(event.update, now=now))
        elif isinstance(event, _Lost):
            # Only a connection the session still has is news to it; one we closed is not.
            if self._connections.get(event.connection.id) is event.connection:
                del self._connections[event.connection.id]
                self._execute(session.connection_lost(event.connection.id, now=now))
        elif isinstance(event, _Incoming):
            if event.initial or self._nursery is None:
                self._adopt(event.stream, outbound=False, initial=event.initial)
            elif self._stopping or self._awaiting_open >= _MAX_AWAITING_OPEN:
                self._discard(event.stream)
            else:
                self._awaiting_open += 1
                self._nursery.start_soon(self._take_with_open, event.stream)
        elif isinstance(event, _Connected):
            if event.dial != self._current_dial:
                self._discard(event.stream)  # superseded by a later dial
            else:
                self._dial_scope = None
                self._adopt(event.stream, outbound=True, initial=b"")
        elif isinstance(event, _Reject):
            self._execute(session.reject_update(event.error, connection=event.generation, now=now))
        elif isinstance(event, _DialFailed):
            if event.dial == self._current_dial:
                self._dial_scope = None
                log.info(
                    "connect failed: %s",
                    event.error,
                    extra=self._extra(event="connect_failed", error=event.error),
                )
                self._execute(session.connect_failed(now=now))
        elif isinstance(event, _Reconfigure):
            passive_changed = event.config.passive != session.config.passive
            session.config = event.config
            if passive_changed and session.established is None and not session.admin_down:
                # Who dials is decided when the session starts (§10 Connect / Active):
                # start it again (no Cease: nothing is Established).
                self._cancel_dial()
                self._execute(session.stop(now=now, reason="passive changed"))
                if not self._stopping:
                    self._execute(session.start(now=now))
        elif isinstance(event, _ResetStart):
            if event.token is self._reset_token and not self._stopping:
                self._reset_token = None
                self._execute(session.start(now=now))
        elif event.reset:
            if self._stopping or session.admin_down:
                return  # finishing, or stopped by the operator: a reset does not revive it
            self._cancel_dial()
            self._execute(session.stop(now=now, reason=event.reason))
            closing = [c for c in self._flushing if c.closing]
            if closing and self._nursery is not None:
                self._reset_token = token = object()
                self._nursery.start_soon(self._start_when_closed, closing, token)
            else:
                self._execute(session.start(now=now))
        elif event.start:
            self._reset_token = None
            if not self._stopping:
                self._execute(session.start(now=now))
        else:
            self._reset_token = None  # a Stop after a reset cancels its Start
            self._stopping = self._stopping or event.final
            self._cancel_dial()
            self._execute(session.stop(now=now, reason=event.reason))

    async def _start_when_closed(self, closing: list[_Connection], token: object) -> None:
        """A reset's Start waits until the peer has read our Cease and closed its side (at
        most the close grace): a connection opened sooner finds the old session still
        Established at the peer, which refuses it, and both sides then wait a whole
        ConnectRetry."""
        for conn in closing:
            await conn.done.wait()
        self.inbox.send_nowait(_ResetStart(token))

    def _adopt(self, stream: Stream, *, outbound: bool, initial: bytes) -> None:
        if self._stopping or self._nursery is None:
            self._discard(stream)
            return
        connection_id = next(_connection_ids)
        config = self.session.config
        conn = _Connection(connection_id, stream, float(config.hold_time or config.open_hold_time))
        self._connections[connection_id] = conn
        self._flushing.add(conn)
        self._nursery.start_soon(self._run_connection, conn)
        now = trio.current_time()
        self._execute(self.session.connection_made(connection_id, outbound=outbound, now=now))
        if initial and connection_id in self._connections:
            self._execute(self.session.data_received(connection_id, initial, now=now))

    async def _run_connection(self, conn: _Connection) -> None:
        try:
            await conn.run(self.inbox, self)
        finally:
            self._flushing.discard(conn)

    def _discard(self, stream: Stream) -> None:
        if self._nursery is not None:
            self._nursery.start_soon(trio.aclose_forcefully, stream)

    # --- effects -------------------------------------------------------------------------

    def _execute(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                self._send(effect)
            elif isinstance(effect, Close):
                conn = self._connections.pop(effect.connection, None)
                if conn is not None:
                    conn.close()
            elif isinstance(effect, Dial):
                self._dial()
            else:
                self._report(effect)

    def _send(self, effect: Send) -> None:
        conn = self._connections.get(effect.connection)
        if conn is None or conn.closing or conn.write_now(effect.data):
            return
        try:
            conn.outbox.send_nowait(effect.data)
        except trio.WouldBlock:
            # The peer reads nothing.  Abort: the connection task ends and its _Lost tells
            # the session, as for any other transport loss.
            log.warning(
                "peer is not reading; dropping the connection",
                extra=self._extra(event="slow_peer"),
            )
            conn.abort()

    def _dial(self) -> None:
        assert self._nursery is not None
        self._cancel_dial()
        self._current_dial = next(self._dials)
        self._dial_scope = trio.CancelScope()
        self._nursery.start_soon(self._dial_task, self._current_dial, self._dial_scope)

    def _cancel_dial(self) -> None:
        if self._dial_scope is not None:
            self._dial_scope.cancel()
            self._dial_scope = None
        self._current_dial = 0  # whatever the cancelled dial reports is stale

    async def _dial_task(self, dial: int, scope: trio.CancelScope) -> None:
        """Connect from our listen address (so the peer sees the address it configured)."""
        with scope:
            scope.deadline = trio.current_time() + self.session.config.connect_retry
            try:
                stream = await self._connect()
            except (OSError, ValueError) as error:  # ValueError: a key the kernel refuses
                self.inbox.send_nowait(_DialFailed(dial, str(error) or type(error).__name__))
                return
            self.inbox.send_nowait(_Connected(stream, dial))
            return
        if scope.cancelled_caught and dial == self._current_dial:
            self.inbox.send_nowait(_DialFailed(dial, "connect timed out"))

    async def _connect_tcp(self) -> Stream:
        return await dial(
            self.address,
            self.port,
            local_address=self.local_address,
            md5_key=self.md5_key,
            ttl_hops=self.ttl_hops,
        )

    # --- logs ------------------------------------------------------------------------------

    def _extra(self, **kw: object) -> dict[str, object]:
        return {"peer": str(self.address), "domain": self.label, **kw}

    def _report(self, effect: Effect) -> None:
        if isinstance(effect, UpdateReceived):
            # First: nearly every effect is one.  Its debug record is built only when it
            # would be written (a relay's children each log every sibling's claim).
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "UPDATE with %d attribute(s)",
                    len(effect.update.attributes),
                    extra=self._extra(event="update_received"),
                )
            if self.listener is not None:
                self.listener.update_received(self, effect.update)
        elif isinstance(effect, StateChanged):
            log.info(
                "%s -> %s%s",
                effect.old.value,
                effect.new.value,
                f" ({effect.reason})" if effect.reason else "",
                extra=self._extra(
                    event="state", old=effect.old.value, new=effect.new.value, reason=effect.reason
                ),
            )
        elif isinstance(effect, SessionUp):
            self.established.set()
            if self.listener is not None:
                self.listener.session_up(self, effect)
            log.info(
                "session established, hold time %ds, %s",
                effect.hold_time,
                "internal" if effect.internal else "external",
                extra=self._extra(
                    event="session_up", hold_time=effect.hold_time, internal=effect.internal
                ),
            )
        elif isinstance(effect, SessionDown):
            log.warning(
                "session down: %s",
                effect.reason,
                extra=self._extra(event="session_down", reason=effect.reason),
            )
            if self.listener is not None:
                self.listener.session_down(self)
        elif isinstance(effect, LimitExceeded):
            e = effect.exceeded
            log.warning(
                "%s exceeded: %s; %s",
                e.limit,
                e.detail,
                {
                    "warn": "accepted anyway",
                    "drop": "ignoring what is past the limit",
                    "reset": "closing the session (Cease)",
                }[e.action.value],
                extra=self._extra(event="limit_exceeded", limit=e.limit, action=e.action.value),
            )
        elif isinstance(effect, NotificationSent | NotificationReceived):
            n = effect.notification
            sent = isinstance(effect, NotificationSent)
            detail = effect.reason if isinstance(effect, NotificationSent) else ""
            log.log(
                logging.INFO if n.code == 7 else logging.WARNING,
                "%s NOTIFICATION %s%s%s",
                "sent" if sent else "received",
                describe(n.code, n.subcode),
                "" if n.open_bit else " (closing)",
                f": {detail}" if detail else "",
                extra=self._extra(
                    event="notification_sent" if sent else "notification_received",
                    code=n.code,
                    subcode=n.subcode,
                    open_bit=n.open_bit,
                    data=n.data.hex(),
                    erratic=getattr(effect, "erratic", False),
                ),
            )

    @property
    def state(self) -> State:
        return self.session.state
