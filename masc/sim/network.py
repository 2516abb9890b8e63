"""An in-process MASC network in virtual time (RFC 2909 §4-§5, §10-§12, §14).

Theory of operation
-------------------
Each node of a :class:`~masc.sim.topology.Topology` runs exactly what a daemon runs: a
:class:`~masc.daemon.domain.DomainRunner` owning the node's sans-IO
:class:`~masc.protocol.engine.ClaimEngine`, and one
:class:`~masc.daemon.peer.PeerRunner` (with its :class:`~masc.protocol.session.PeerSession`
FSM) per session.  Only the transport differs: a runner's ``connect`` asks the network for
an in-memory stream pair (:func:`stream_pair`), hands one end to the
matching runner of the remote node as an accepted connection and returns the other.  The
streams are :class:`SimStream` pairs: the contract of ``trio.testing.memory_stream_pair``
without its deliberate extra checkpoints (two per call, there to catch misuse in tests),
which with thousands of nodes were a good part of a simulation's wall time.  Under
``trio.testing.MockClock(autojump_threshold=0)`` the clock jumps whenever every task is
blocked, so days of protocol time (48-hour waiting periods, 30-day lifetimes) pass in
seconds; the engines read ``EPOCH + trio.current_time()`` as their Unix clock.  One task,
the :class:`Pump`, delivers what the streams carry: to the receiving peer runner in place
when its loop is idle and its reader task waits (the daemon's own shortcut for bytes read,
``masc.daemon.peer``), in the order written; otherwise to the reader task, as over TCP.

Faults act on the transport and on node lifetimes, never on protocol state:

* :meth:`SimNetwork.partition` closes the link's streams (both ends see the connection
  drop at once, as after a TCP reset) and makes dials fail until :meth:`SimNetwork.heal`;
* :meth:`SimNetwork.crash` cancels the node's tasks: its engine and sessions are lost and
  its peers see their connections drop; dials to it fail;
* :meth:`SimNetwork.restart` starts the node again with a fresh engine and the same
  configuration.  It re-learns its domain's state from its neighbours (§14); what it
  trusts is ``Policy.restore_from``.

Sessions start in §12.1 order, as the daemon starts them: PARENT and INTERNAL first, CHILD
and SIBLING once those are Established or after one ConnectRetry interval.

Reproducibility: a seed fixes each engine's randomness; the faults are whatever the caller
scripts.  Trio's scheduler orders the tasks that run at one virtual instant at random, so
two runs with one seed agree on every timer but not necessarily on which of two
simultaneous messages is handled first; :func:`seed_scheduler` makes that order follow a
seed too (best effort: task sets ordered by object identity in the daemon's runners can
still differ between runs).  Messages the pump delivers in place keep the order they were
written in, whatever the seed: a seed varies the order of the tasks (timers, dials, the
messages a busy runner queued), not of those.  The protocol must be (and the safety
checker checks that it is) correct under any such order.
"""

from __future__ import annotations

import errno
import logging
import random
import sys
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Collection, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from types import TracebackType
from typing import TYPE_CHECKING, Final, Protocol

import trio
import trio.testing

from masc.daemon.domain import DomainRunner
from masc.daemon.grib import RecordingExporter
from masc.daemon.peer import PeerRunner, Stream
from masc.maas.grants import GrantConfig, GrantEvent, GrantTable
from masc.protocol.allocation import AllocatorConfig, Demand, Strategy
from masc.protocol.constants import (
    HOLDTIME,
    INITIATE_CLAIM_DELAY,
    RESTART_BACKOFF_INITIAL,
    WAITING_PERIOD,
    AddressFamily,
    Role,
)
from masc.protocol.engine import ClaimEngine, EngineConfig, Neighbor, Policy
from masc.protocol.events import EngineEvent, SendUpdate, SpaceKind
from masc.protocol.open_checks import SessionConfig
from masc.protocol.session import State
from masc.protocol.space import collapse
from masc.protocol.wire.messages import Prefix, Update
from masc.sim.safety import Violation, check_safety
from masc.sim.topology import LinkSpec, Topology

if TYPE_CHECKING:
    from masc.sim.split import Bridge

log = logging.getLogger("masc.sim")

EPOCH: Final = 1_700_000_000.0  # Unix time at virtual time 0 (Nov 2023)
MINUTE: Final = 60.0
HOUR: Final = 3_600.0
DAY: Final = 86_400.0
_EARLY: Final = (Role.PARENT, Role.INTERNAL)  # §12.1: sessions started first

EngineCall = Callable[[ClaimEngine, float], list[EngineEvent]]


class _Wakes(Protocol):
    """What a pipe's writer calls when there is something new to read (or EOF)."""

    def unpark_all(self) -> object: ...


class _Notify:
    """A pipe's reader that is a callback, not a task: the end of a connection that
    :mod:`masc.sim.split` forwards to another process reads its pipe at each barrier, and
    only the connections written to since are looked at."""

    __slots__ = ("_changed",)

    def __init__(self, changed: Callable[[], None]) -> None:
        self._changed = changed

    def unpark_all(self) -> None:
        self._changed()


class _Pipe:
    """One direction of an in-memory connection: bytes written and not yet read."""

    __slots__ = ("data", "eof", "in_place", "lot", "pump", "queued", "reader_closed")

    def __init__(self, wakes: _Wakes | None = None, pump: Pump | None = None) -> None:
        self.data = bytearray()
        self.eof = False  # the writer half-closed (or closed) its side
        self.reader_closed = False  # the reading end is gone: writes fail as after a reset
        # A reader waiting for data or EOF: a parked task, or a _Notify.
        self.lot: _Wakes = trio.lowlevel.ParkingLot() if wakes is None else wakes
        # What may take the bytes as they come instead of the parked task (see Pump), and
        # the pump that offers them (None: the reader is always woken).
        self.in_place: Callable[[bytes], bool] | None = None
        self.pump = pump
        self.queued = False  # in the pump's queue


class Pump:
    """Delivers bytes written on in-memory connections without a task switch per message.

    A reader that can take bytes in place (``SimStream.set_in_place_reader``: the daemon's
    peer runner, when its loop is idle) is offered them by this one task, in the order
    they were written, instead of its parked reader task being woken: a parent relays
    each claim to every child (§11.2.3, §11.4.3), and waking one task per child per claim
    was a good part of a simulation's time.  What a reader declines (its loop is busy),
    or bytes on a pipe whose reader task is not parked or that has seen EOF, go the usual
    way: the reader task is woken and reads them, in order, as it would have.  What the
    readers send meanwhile joins the queue: a cascade at one virtual instant is handled
    breadth-first in this task, and no reader is called from inside another (a runner's
    handling still runs its domain runner and engine in place, as the daemon's reader
    task would).  The whole buffer is offered at once, whatever its size: the session's
    framer takes any number of octets.  No checkpoint between offers: they all happen at
    one virtual instant, at which every other task would wait for them anyway."""

    __slots__ = ("_lot", "_queue", "_running")

    def __init__(self) -> None:
        self._queue: deque[_Pipe] = deque()
        self._lot = trio.lowlevel.ParkingLot()
        self._running = False

    def push(self, pipe: _Pipe) -> None:
        """``pipe`` has new bytes for its in-place reader."""
        if not pipe.queued:
            pipe.queued = True
            self._queue.append(pipe)
            if not self._running:
                self._lot.unpark_all()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        queue = self._queue
        while True:
            if not queue:
                await self._lot.park()
            self._running = True
            try:
                while queue:
                    self._offer(queue.popleft())
            finally:
                self._running = False

    @staticmethod
    def _offer(pipe: _Pipe) -> None:
        pipe.queued = False
        data, lot, reader = pipe.data, pipe.lot, pipe.in_place
        if not data:
            return
        # Only to a reader whose task is parked in receive_some, so that no bytes it read
        # earlier are still on their way to the runner (they would come after these).
        parked = isinstance(lot, trio.lowlevel.ParkingLot) and len(lot) > 0
        if reader is None or pipe.eof or pipe.reader_closed or not parked:
            lot.unpark_all()
            return
        chunk = bytes(data)
        data.clear()
        if not reader(chunk):
            data[:0] = chunk  # declined: its reader task reads them
            lot.unpark_all()


class SimStream(trio.abc.HalfCloseableStream):
    """One end of an in-memory connection (see :func:`stream_pair`).

    What ``trio.testing.memory_stream_pair`` gives, at one checkpoint per call: writes never
    block (the buffer is unbounded, as the peer runner's own outbox bounds what it queues);
    ``send_eof`` is a FIN (the peer reads what was sent, then ``b""``); :meth:`close` shuts
    both directions, as a reset does: our pending and later reads raise
    ``ClosedResourceError``, the peer reads EOF and its writes raise
    ``BrokenResourceError``."""

    __slots__ = ("_closed", "_in", "_out", "_send_closed")

    def __init__(self, inbound: _Pipe, outbound: _Pipe) -> None:
        self._in = inbound
        self._out = outbound
        self._send_closed = False
        self._closed = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()
        self.send_nowait(data)

    def send_nowait(self, data: bytes | bytearray | memoryview) -> None:
        """:meth:`send_all` without the checkpoint: writes never wait, so the peer runner
        writes in place instead of waking its writer task (masc.daemon.peer)."""
        if self._send_closed:
            raise trio.ClosedResourceError("this stream was closed for sending")
        out = self._out
        if out.reader_closed:
            raise trio.BrokenResourceError("the peer closed the connection")
        if data:
            out.data += data
            if out.pump is not None and out.in_place is not None:
                out.pump.push(out)
            else:
                out.lot.unpark_all()

    def set_in_place_reader(self, reader: Callable[[bytes], bool] | None) -> None:
        """Offer what the other end writes to ``reader`` first (through the stream pair's
        :class:`Pump`): ``reader(data)`` handles the bytes now and returns True, or
        returns False and the task in :meth:`receive_some` gets them.  None: stop."""
        self._in.in_place = reader

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def send_eof(self) -> None:
        await trio.lowlevel.checkpoint()
        self._shut_send()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        pipe = self._in
        if not (pipe.data or pipe.eof or self._closed):
            lot = pipe.lot
            assert isinstance(lot, trio.lowlevel.ParkingLot), "this end is read by a callback"
            await lot.park()
        else:
            await trio.lowlevel.checkpoint()
        if self._closed:
            raise trio.ClosedResourceError("this stream was closed")
        size = len(pipe.data) if max_bytes is None else min(max_bytes, len(pipe.data))
        chunk = bytes(pipe.data[:size])
        del pipe.data[:size]
        return chunk  # b"" once the peer has sent EOF and everything was read

    # -- the end a callback reads (masc.sim.split: a connection to another process) -----

    def take_received(self) -> bytes:
        """What the other end wrote and this end has not read, without waiting."""
        pipe = self._in
        chunk = bytes(pipe.data)
        pipe.data.clear()
        return chunk

    @property
    def received_eof(self) -> bool:
        """The other end sent EOF (or closed)."""
        return self._in.eof

    @property
    def peer_closed(self) -> bool:
        """The other end closed (a reset): our writes would fail."""
        return self._out.reader_closed

    def send_eof_nowait(self) -> None:
        """:meth:`send_eof` without the checkpoint."""
        self._shut_send()

    def close(self) -> None:
        """Shut both directions now (a reset): see the class docstring."""
        self._shut_send()
        if not self._closed:
            self._closed = True
            self._in.reader_closed = True
            self._in.data.clear()
            self._in.lot.unpark_all()
            # After a half-close the peer's reader was told of our EOF already; a reader
            # that is a callback (masc.sim.split) must also learn that we are gone.
            self._out.lot.unpark_all()

    def _shut_send(self) -> None:
        if not self._send_closed:
            self._send_closed = True
            self._out.eof = True
            self._out.lot.unpark_all()

    async def aclose(self) -> None:
        self.close()
        await trio.lowlevel.checkpoint()


def stream_pair(
    changed: Callable[[], None] | None = None, *, pump: Pump | None = None
) -> tuple[SimStream, SimStream]:
    """Two connected ends of an in-memory connection.  With ``changed``, the second end is
    read by a callback: ``changed()`` is called whenever the first end writes, sends EOF or
    closes, and the second end's reads are :meth:`SimStream.take_received` (never
    ``receive_some``).  With ``pump``, an end's in-place reader
    (:meth:`SimStream.set_in_place_reader`) is offered what the other end writes."""
    # An end read by the callback is never read in place.
    a_to_b = _Pipe(pump=pump) if changed is None else _Pipe(_Notify(changed))
    b_to_a = _Pipe(pump=pump)
    return SimStream(b_to_a, a_to_b), SimStream(a_to_b, b_to_a)


def seed_scheduler(seed: int) -> None:
    """Make trio order the tasks runnable at one instant from ``seed`` (see the module
    docstring).  This is the hook trio gives Hypothesis and pytest-trio for reproducible
    runs: a module-level ``random.Random`` plus a flag, both private to trio, so they are
    looked up defensively and the call does nothing if a trio version drops them."""
    module = sys.modules.get("trio._core._run")
    rng = getattr(module, "_r", None)
    if module is None or not isinstance(rng, random.Random):
        return
    setattr(module, "_ALLOW_DETERMINISTIC_SCHEDULING", True)  # noqa: B010 (a Final)
    rng.seed(seed)


@dataclass(frozen=True, slots=True)
class SimTimers:
    """The timers every node of a simulated network uses.  The defaults are the RFC's
    (§6: 48-hour waiting period, 10-minute initiate delay; §12.3: 24 hours of clock-skew
    grace; 30-day lifetimes); :data:`SHORT_TIMERS` makes scenarios quick."""

    waiting_period: float = float(WAITING_PERIOD)
    initiate_claim_delay: float = float(INITIATE_CLAIM_DELAY)
    claim_lifetime: float = 30 * DAY
    clock_skew_grace: float = DAY
    hold_time: int = 90
    connect_retry: float = 30.0
    restart_backoff_initial: float = RESTART_BACKOFF_INITIAL
    restart_backoff_max: float = HOUR


SHORT_TIMERS: Final = SimTimers(
    waiting_period=600.0,
    initiate_claim_delay=60.0,
    claim_lifetime=3 * HOUR,
    clock_skew_grace=60.0,
    hold_time=90,
    connect_retry=10.0,
    restart_backoff_initial=10.0,
    restart_backoff_max=120.0,
)


@dataclass(frozen=True, slots=True)
class SimEvent:
    """One engine event, when (Unix seconds) and where it happened; ``turn`` counts the
    inputs the node's runner had handled (events of one input share it)."""

    time: float
    node: str
    event: EngineEvent
    turn: int = 0


@dataclass(frozen=True, slots=True)
class SimGrantEvent:
    """One grant-table event handed to a node's MAASs (see :class:`SimEvent`)."""

    time: float
    node: str
    event: GrantEvent
    turn: int = 0


class _TappedEngine(ClaimEngine):
    """A ClaimEngine that also reports every event it returns (the shell still carries
    them out); the simulator's window onto what each node did."""

    def __init__(
        self,
        config: EngineConfig,
        *,
        rng: random.Random,
        tap: Callable[[list[EngineEvent], float], None],
    ) -> None:
        super().__init__(config, rng=rng)
        self._tap = tap

    def _seen(self, events: list[EngineEvent], now: float) -> list[EngineEvent]:
        self._tap(events, now)
        return events

    def start(self, *, now: float) -> list[EngineEvent]:
        return self._seen(super().start(now=now), now)

    def peer_up(self, neighbor: Neighbor, *, now: float) -> list[EngineEvent]:
        return self._seen(super().peer_up(neighbor, now=now), now)

    def peer_down(self, key: str, *, now: float) -> list[EngineEvent]:
        return self._seen(super().peer_down(key, now=now), now)

    def update_received(self, key: str, update: Update, *, now: float) -> list[EngineEvent]:
        return self._seen(super().update_received(key, update, now=now), now)

    def set_demand(self, demand: Demand | None, *, now: float) -> list[EngineEvent]:
        return self._seen(super().set_demand(demand, now=now), now)

    def handle_timer(self, *, now: float) -> list[EngineEvent]:
        return self._seen(super().handle_timer(now=now), now)


@dataclass(slots=True)
class SimNode:
    """One running incarnation of a node: what a daemon process would hold."""

    name: str
    incarnation: int
    engine: ClaimEngine
    domain: DomainRunner
    grib: RecordingExporter
    runners: dict[int, PeerRunner]  # link index -> the runner of this end of the link
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    done: trio.Event = field(default_factory=trio.Event)
    up: bool = False


class SimError(Exception):
    """The simulation was asked for something that does not exist or cannot be done."""


class SimNetwork:
    """Real engines and session FSMs of a whole topology, over in-memory streams.

    Use under a MockClock::

        net = SimNetwork(figure1())
        async with net.running():
            await net.advance(8 * DAY)
            assert net.check_safety() == []

    (``await nursery.start(net.run)`` does the same in a nursery of the caller's.)

    Every node gets ``timers`` and ``policy`` (the engine's default policy if None: a
    restarted node then re-learns only what parents and internal peers tell it, §14), its
    domain's ``demand`` as the engine's initial size, and randomness derived from ``seed``,
    the node and its incarnation.  ``record`` keeps every engine event but the UPDATEs in
    :attr:`events`.

    With ``maas`` every node splits its locally-allocated space between MAASs as the daemon
    does (a :class:`~masc.maas.grants.GrantTable` in its runner); :meth:`maas_register`,
    :meth:`maas_usage` and :meth:`maas_request` act as a MAAS on the API would, and
    :attr:`grant_events` records what the MAASs were told.  ``allocator`` is every engine's
    Appendix A configuration.
    """

    def __init__(
        self,
        topology: Topology,
        *,
        timers: SimTimers = SimTimers(),
        policy: Policy | None = None,
        seed: int = 0,
        record: bool = True,
        allocator: AllocatorConfig | None = None,
        maas: GrantConfig | None = None,
        local: Collection[str] | None = None,
        bridge: Bridge | None = None,
    ) -> None:
        self.topology = topology
        # The nodes this process runs (all of them but in a split run, masc.sim.split),
        # and what carries the sessions to the others.
        self.local = frozenset(topology.nodes) if local is None else frozenset(local)
        if not self.local <= topology.nodes.keys():
            raise SimError(f"no nodes {sorted(n for n in self.local if n not in topology.nodes)}")
        # ... and their domains (all of them, nodeless ones included, when it runs all).
        self.local_domains = (
            frozenset(topology.domains)
            if local is None
            else frozenset(topology.nodes[n].domain for n in self.local)
        )
        if bridge is None and self.local != topology.nodes.keys():
            raise SimError("a network running some of the nodes needs a bridge to the others")
        self.bridge = bridge
        if bridge is not None:
            bridge.accept = self.accept_from_elsewhere
        self.timers = timers
        self.allocator = allocator if allocator is not None else AllocatorConfig()
        self.maas = maas
        self.grant_events: list[SimGrantEvent] = []
        self.policy = policy if policy is not None else Policy()
        self.seed = seed
        self.record = record
        self.events: list[SimEvent] = []  # every engine event but the UPDATEs sent
        self._nodes: dict[str, SimNode] = {}
        self._incarnations: dict[str, int] = dict.fromkeys(topology.nodes, 0)
        self._partitioned: set[int] = set()  # link indexes
        self._streams: dict[int, list[SimStream]] = {}
        self._nursery: trio.Nursery | None = None
        self._pump = Pump()  # delivers what the in-memory connections carry (run)
        # What earlier incarnations of each node counted (DomainRunner.counts, and the
        # sessions' messages and octets), so that totals survive crashes.
        self._retired_counts: dict[str, Counter[str]] = {n: Counter() for n in topology.nodes}
        self._retired_traffic: dict[str, Counter[str]] = {n: Counter() for n in topology.nodes}
        # Called with (node, events) whenever a node's grant table tells its MAASs
        # something (the MAAS API's push), e.g. by a simulated MAAS.
        self.grant_listener: Callable[[str, Sequence[GrantEvent]], None] | None = None

    # --- configuration ---------------------------------------------------------------------

    def engine_config(self, node: str) -> EngineConfig:
        """The engine configuration of ``node``: what `masc run` would derive from its
        config file (main.engine_config)."""
        topo, t = self.topology, self.timers
        spec = topo.nodes[node]
        domain = topo.domains[spec.domain]
        return EngineConfig(
            local_domain=domain.domain_id,
            local_node=spec.node_id,
            family=AddressFamily.IPV4,
            parent_domain_ids=topo.parent_ids(domain.name),
            global_pool=topo.global_pool if domain.is_tld else (),
            waiting_period=t.waiting_period,
            initiate_claim_delay=t.initiate_claim_delay,
            clock_skew_grace=t.clock_skew_grace,
            claim_lifetime=t.claim_lifetime,
            initial_size=domain.demand,
            policy=self.policy,
            allocator=self.allocator,
        )

    def session_config(self, node: str, index: int) -> SessionConfig:
        """The session configuration of ``node``'s end of link ``index`` (main.session_config)."""
        topo, t = self.topology, self.timers
        link = topo.links[index]
        peer, role = self._far_end(link, node)
        domain = topo.domain_of(node)
        return SessionConfig(
            local_domain=domain.domain_id,
            local_node=topo.nodes[node].node_id,
            family=AddressFamily.IPV4,
            peer_role=role,
            peer_domain=topo.domain_of(peer).domain_id,
            parent_domain_ids=topo.parent_ids(domain.name),
            session_parent=topo.session_parent_id(link),
            hold_time=t.hold_time,
            connect_retry=t.connect_retry,
            restart_backoff_initial=t.restart_backoff_initial,
            restart_backoff_max=max(t.restart_backoff_max, t.restart_backoff_initial),
            open_hold_time=float(max(t.hold_time, HOLDTIME)),
        )

    @staticmethod
    def _far_end(link: LinkSpec, node: str) -> tuple[str, Role]:
        for near, far, role in link.ends():
            if near == node:
                return far, role
        raise SimError(f"{node} is not an end of {link.a}-{link.b}")

    # --- running -------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start every node and run until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await nursery.start(self._pump.run)
            if self.bridge is not None:
                await nursery.start(self.bridge.run)
            for name in self.topology.nodes:
                if name in self.local:
                    await nursery.start(self._run_node, self._build(name))
            task_status.started()
            await trio.sleep_forever()

    def running(self) -> _Running:
        """``async with net.running():`` runs the network for the body of the block."""
        return _Running(self)

    def now(self) -> float:
        """The engines' clock: Unix seconds."""
        return EPOCH + trio.current_time()

    async def advance(self, seconds: float) -> None:
        """Let ``seconds`` of virtual time pass, then wait until every task is idle, so
        that what is due at the new time has been handled."""
        await trio.sleep(seconds)
        await self.settle()

    async def settle(self) -> None:
        """Return once every task is blocked: messages in flight have been handled."""
        await trio.testing.wait_all_tasks_blocked()

    def _build(self, name: str) -> SimNode:
        self._incarnations[name] += 1
        incarnation = self._incarnations[name]
        rng = random.Random(f"{self.seed}/{name}/{incarnation}")

        def tap(events: list[EngineEvent], now: float) -> None:
            self._record(name, events, now)

        engine = _TappedEngine(self.engine_config(name), rng=rng, tap=tap)
        grib = RecordingExporter()
        grants = None
        if self.maas is not None:
            grants = GrantTable(
                self.maas,
                rng=random.Random(f"{self.seed}/{name}/{incarnation}/grants"),
                strategy=Strategy(self.allocator.strategy),
            )
        domain = DomainRunner(engine, clock=self.now, grib=grib, grants=grants)

        def told(events: Sequence[GrantEvent]) -> None:
            if self.record:
                now, turn = self.now(), domain.turns
                self.grant_events += [SimGrantEvent(now, name, e, turn) for e in events]
            if self.grant_listener is not None:
                self.grant_listener(name, events)

        domain.on_grant_events = told
        runners = {}
        for index, link in self.topology.links_of(name):
            peer, role = self._far_end(link, name)
            parent = self.topology.session_parent_id(link)
            runner = PeerRunner(
                self.session_config(name, index),
                address=IPv4Address(self.topology.nodes[peer].node_id),
                port=0,
                local_address=None,
                label=f"{name}->{peer} {role.name.lower()}",
                key=peer if parent is None else f"{peer}/parent={parent}",
                connect=self._connector(name, index),
                rng=random.Random(f"{self.seed}/{name}/{incarnation}/{index}"),
            )
            domain.attach(runner)
            runners[index] = runner
        return SimNode(name, incarnation, engine, domain, grib, runners)

    async def _run_node(
        self, node: SimNode, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        try:
            with node.scope:
                async with trio.open_nursery() as nursery:
                    await nursery.start(node.domain.run)
                    for runner in node.runners.values():
                        await nursery.start(runner.run)
                    self._nodes[node.name] = node
                    node.up = True
                    nursery.start_soon(self._start_sessions, node)
                    task_status.started()
        finally:
            node.up = False
            self._retired_counts[node.name] += node.domain.counts
            self._retired_traffic[node.name] += _traffic(node)
            node.done.set()

    async def _start_sessions(self, node: SimNode) -> None:
        """§12.1: PARENT and INTERNAL sessions first (the daemon's order)."""
        early: list[PeerRunner] = []
        late: list[PeerRunner] = []
        for index, runner in node.runners.items():
            _, role = self._far_end(self.topology.links[index], node.name)
            (early if role in _EARLY else late).append(runner)
        for runner in early:
            runner.admin(start=True, reason="start")
        if early and late:
            with trio.move_on_after(self.timers.connect_retry):
                for runner in early:
                    await runner.established.wait()
        for runner in late:
            runner.admin(start=True, reason="start")

    def _connector(self, node: str, index: int) -> Callable[[], Awaitable[Stream]]:
        link = self.topology.links[index]
        peer, _ = self._far_end(link, node)

        async def connect() -> Stream:
            await trio.lowlevel.checkpoint()
            if index in self._partitioned:
                raise OSError(errno.ENETUNREACH, f"{node}-{peer} is partitioned")
            if peer not in self.local:
                assert self.bridge is not None
                return self.bridge.dial(index, node, peer)
            remote = self._nodes.get(peer)
            if remote is None or not remote.up:
                raise OSError(errno.ECONNREFUSED, f"{peer} is down")
            ours, theirs = stream_pair(pump=self._pump)
            self._streams.setdefault(index, []).extend((ours, theirs))
            remote.runners[index].incoming(theirs)
            return ours

        return connect

    def accept_from_elsewhere(self, index: int, dialler: str, stream: SimStream) -> bool:
        """A node in another process dialled ours over link ``index`` (masc.sim.split):
        hand ``stream`` to our node's runner, unless the node is down or the link cut."""
        node, _ = self._far_end(self.topology.links[index], dialler)
        running = self._nodes.get(node)
        if index in self._partitioned or running is None or not running.up:
            return False
        running.runners[index].incoming(stream)
        return True

    def _record(self, node: str, events: list[EngineEvent], now: float) -> None:
        if self.record:
            sim = self._nodes.get(node)
            turn = sim.domain.turns if sim is not None else 0
            self.events += [
                SimEvent(now, node, e, turn) for e in events if not isinstance(e, SendUpdate)
            ]

    # --- faults ----------------------------------------------------------------------------

    def partition(self, a: str, b: str) -> None:
        """Cut every session between nodes ``a`` and ``b``: connections drop now, dials
        fail until :meth:`heal`."""
        self._here(a, b)
        log.info("partition %s-%s", a, b, extra={"event": "sim_partition", "nodes": [a, b]})
        for index in self._links_between(a, b):
            self._partitioned.add(index)
            self._abort(index)

    def heal(self, a: str, b: str) -> None:
        """Undo :meth:`partition`; the sessions come back at their next ConnectRetry."""
        log.info("heal %s-%s", a, b, extra={"event": "sim_heal", "nodes": [a, b]})
        for index in self._links_between(a, b):
            self._partitioned.discard(index)

    def isolate(self, node: str) -> None:
        """Partition ``node`` from every peer."""
        for _, link in self.topology.links_of(node):
            self.partition(link.a, link.b)

    def heal_all(self) -> None:
        self._partitioned.clear()

    def partitioned(self, a: str, b: str) -> bool:
        return any(i in self._partitioned for i in self._links_between(a, b))

    def crash(self, node: str) -> None:
        """Stop ``node`` dead: its tasks are cancelled and its state is lost."""
        self._here(node)
        running = self._node(node)
        log.info("crash %s", node, extra={"event": "sim_crash", "node": node})
        running.up = False
        running.scope.cancel()
        for index, _ in self.topology.links_of(node):
            self._abort(index)

    async def restart(self, node: str) -> None:
        """Start a crashed ``node`` again: fresh engine, same configuration (§14)."""
        self._here(node)
        old = self._nodes.get(node)
        if old is not None:
            if old.up:
                raise SimError(f"{node} is running; crash it first")
            await old.done.wait()
        if self._nursery is None:
            raise SimError("the network is not running")
        log.info("restart %s", node, extra={"event": "sim_restart", "node": node})
        await self._nursery.start(self._run_node, self._build(node))

    def is_up(self, node: str) -> bool:
        running = self._nodes.get(node)
        return running is not None and running.up

    def _here(self, *nodes: str) -> None:
        """Faults act on this process's streams and nodes only (masc.sim.split)."""
        elsewhere = [n for n in nodes if n in self.topology.nodes and n not in self.local]
        if elsewhere:
            raise SimError(f"{', '.join(elsewhere)} runs in another process: no faults there")

    def _links_between(self, a: str, b: str) -> list[int]:
        found = [i for i, link in enumerate(self.topology.links) if link.joins(a, b)]
        if not found:
            raise SimError(f"no session between {a} and {b}")
        return found

    def _abort(self, index: int) -> None:
        """Close both ends of every stream of the link, as a reset would."""
        for stream in self._streams.pop(index, []):
            stream.close()

    # --- requests --------------------------------------------------------------------------

    # --- MAASs (with ``maas``) ---------------------------------------------------------------

    def grants(self, node: str) -> GrantTable:
        table = self._node(node).domain.grants
        if table is None:
            raise SimError("the network was built without maas=GrantConfig(...)")
        return table

    async def maas_register(self, node: str, name: str, scopes: tuple[str, ...] = ()) -> None:
        """A MAAS registers with ``node`` (the API's ``register``)."""
        self.grants(node)
        await self._node(node).domain.register_maas(name, scopes)

    async def maas_usage(
        self,
        node: str,
        name: str,
        in_use: int,
        rate: float = 0.0,
        by_prefix: dict[Prefix, int] | None = None,
    ) -> None:
        """A MAAS reports its usage (the API's ``usage``)."""
        self.grants(node)
        await self._node(node).domain.report_usage(
            name, in_use=in_use, rate=rate, by_prefix=by_prefix or {}
        )

    async def maas_request(self, node: str, name: str, size: int) -> None:
        """A MAAS asks for ``size`` more addresses (the API's ``request``)."""
        self.grants(node)
        await self._node(node).domain.request_space(name, size)

    async def call(self, node: str, fn: EngineCall) -> None:
        """Run ``fn(engine, now)`` in ``node``'s engine task, as the control socket does;
        re-raises what it raised (e.g. RequestRefused)."""

        def recorded(engine: ClaimEngine, now: float) -> list[EngineEvent]:
            events = fn(engine, now)
            self._record(node, events, now)
            return events

        await self._node(node).domain.call(recorded)

    async def claim(
        self,
        node: str,
        size: int = 0,
        *,
        prefix: Prefix | None = None,
        at: float | None = None,
        lifetime: float | None = None,
        kind: SpaceKind = SpaceKind.DOMAIN,
    ) -> None:
        """§5.1: ``node`` claims ``size`` addresses (or exactly ``prefix``), after the random
        delay or at Unix time ``at``."""

        def request(engine: ClaimEngine, now: float) -> list[EngineEvent]:
            return engine.claim(size, now=now, prefix=prefix, at=at, lifetime=lifetime, kind=kind)

        await self.call(node, request)

    async def renew(self, node: str, prefix: Prefix) -> None:
        """§5.2."""
        await self.call(node, lambda e, now: e.renew(prefix, now=now))

    async def expand(self, node: str, prefix: Prefix) -> None:
        """§5.3."""
        await self.call(node, lambda e, now: e.expand(prefix, now=now))

    async def release(self, node: str, prefix: Prefix) -> None:
        """§5.4."""
        await self.call(node, lambda e, now: e.release(prefix, now=now))

    # --- views -----------------------------------------------------------------------------

    def _node(self, node: str) -> SimNode:
        running = self._nodes.get(node)
        if running is None:
            if node in self.topology.nodes:
                raise SimError(f"{node} has not started")
            raise SimError(f"no node {node}")
        return running

    def node(self, node: str) -> SimNode:
        """The current incarnation of ``node`` (running or crashed)."""
        return self._node(node)

    def engine(self, node: str) -> ClaimEngine:
        return self._node(node).engine

    def engines(self) -> dict[str, ClaimEngine]:
        """The engines of the nodes that are up."""
        return {name: n.engine for name, n in self._nodes.items() if n.up}

    def counts(self, node: str) -> Counter[str]:
        """What ``node``'s domain runner counted (claims sent by type, collisions, denials,
        clashes, allocated, deprecated, gone:<reason>), over all its incarnations."""
        total = Counter(self._retired_counts[node])
        running = self._nodes.get(node)
        if running is not None and running.up:
            total += running.domain.counts
        return total

    def traffic(self, node: str) -> Counter[str]:
        """``messages_in``/``messages_out`` (MASC messages of every type) and
        ``octets_in``/``octets_out`` of ``node``'s sessions, over all its incarnations."""
        total = Counter(self._retired_traffic[node])
        running = self._nodes.get(node)
        if running is not None and running.up:
            total += _traffic(running)
        return total

    def grib(self, node: str) -> frozenset[Prefix]:
        """What ``node`` has injected into the G-RIB (§5.1 d)."""
        return frozenset(self._node(node).grib.prefixes)

    def session_state(self, a: str, b: str) -> State:
        """The state of ``a``'s (first) session with ``b``."""
        index = self._links_between(a, b)[0]
        return self._node(a).runners[index].state

    def sessions(self) -> Iterator[tuple[str, str, State]]:
        """(node, peer, state) for every session end of the nodes that are up."""
        for name, node in self._nodes.items():
            if not node.up:
                continue
            for index, runner in node.runners.items():
                peer, _ = self._far_end(self.topology.links[index], name)
                yield name, peer, runner.state

    def all_established(self) -> bool:
        """Every session of every running node is Established (none partitioned)."""
        return all(state is State.ESTABLISHED for _, _, state in self.sessions())

    def events_of(self, node: str, kind: type[object] | None = None) -> list[SimEvent]:
        return [
            e for e in self.events if e.node == node and (kind is None or isinstance(e.event, kind))
        ]

    def snapshot(self) -> dict[str, list[Prefix]]:
        """Domain name -> what its running nodes manage (§4.1), collapsed."""
        now = self.now()
        out: dict[str, list[Prefix]] = {}
        for name, engine in sorted(self.engines().items()):
            domain = self.topology.nodes[name].domain
            out[domain] = collapse([*out.get(domain, []), *engine.managed_space(now=now)])
        return out

    def check_safety(self) -> list[Violation]:
        """:func:`~masc.sim.safety.check_safety` over the running nodes, now."""
        return check_safety(self.topology, self.engines(), now=self.now())


class _Running:
    """:meth:`SimNetwork.running`'s context manager: the network runs in a nursery of its
    own for the body of the block.  A class, not an ``asynccontextmanager`` generator:
    mypyc (setup.py) compiles no async generators."""

    def __init__(self, net: SimNetwork) -> None:
        self._net = net
        self._manager: AbstractAsyncContextManager[trio.Nursery] | None = None
        self._nursery: trio.Nursery | None = None

    async def __aenter__(self) -> SimNetwork:
        self._manager = trio.open_nursery()
        self._nursery = await self._manager.__aenter__()
        try:
            await self._nursery.start(self._net.run)
        except BaseException as error:
            await self._manager.__aexit__(type(error), error, error.__traceback__)
            raise  # the body never runs (as a generator that failed before its yield)
        return self._net

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        assert self._manager is not None and self._nursery is not None
        self._nursery.cancel_scope.cancel()
        return bool(await self._manager.__aexit__(kind, error, traceback))


def _traffic(node: SimNode) -> Counter[str]:
    total: Counter[str] = Counter()
    for runner in node.runners.values():
        stats = runner.session.stats
        total["messages_in"] += sum(stats.messages_in.values())
        total["messages_out"] += sum(stats.messages_out.values())
        total["octets_in"] += stats.octets_in
        total["octets_out"] += stats.octets_out
    return total
