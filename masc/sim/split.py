"""One simulation in several processes: the two cores of the strawman's machine (issue 7).

Theory of operation
-------------------
The topology's domains fall into groups that no parent-child session joins: the subtrees of
the top-level domains (joined where a domain has parents in two subtrees).  :func:`partition`
deals these groups out to the processes, largest first, so that each runs about as many
nodes.  Each process runs a :class:`~masc.sim.network.SimNetwork` of its own nodes only,
with its own demand driver and collector: everything a domain's figures are computed from
(its parents, children and descendants) runs in the same process.  What crosses between
processes is the sessions whose two ends run in different ones: in the strawman, the TLDs'
sibling mesh (RFC 2909 §4, §18).

Those sessions are carried by a :class:`Bridge` in each process.  A node dialling a peer in
another process gets an in-memory stream at once, as a TCP connect that succeeds; the
bridge holds the stream's other end and forwards what is written to it (and its EOF or
close) to the other process, where the peer's runner gets it as an accepted connection (or
the dial is answered by a close if the peer's node is not running).

Time.  Every process runs under trio's MockClock, which jumps from one deadline to the next
whenever every task is blocked.  A :class:`Barriers` task makes each *barrier*, a multiple
of the scenario's ``sync_interval``, one of those deadlines.  At a barrier, once what was
due by then has been handled, the processes exchange what their bridges forwarded since the
last one and their next deadlines, and each hands what it received to its nodes at the
barrier's time.  So a message between processes sent at virtual time ``t`` arrives at the
first barrier at or after ``t`` (the next one if it was sent at a barrier's time after
that barrier's exchange): those sessions have a latency of up to ``sync_interval`` (10 s
by default), the others none.  For a protocol whose claims wait 48 hours (§6
WAITING_PERIOD) that delay changes no outcome in kind; it is a link latency, which the
protocol must (and the safety checker checks that it does) cope with.  Barriers at which
nothing would cross are skipped: when nothing crossed at one, the next is the first at or
after the earliest deadline of all processes.

The barriers depend on virtual time only, so a split run is as reproducible as a run in one
process: the same seed and the same number of processes give the same report.  Process 0
(the caller) coordinates: at a barrier each other process sends it what crossed out of it
and its next deadline (:class:`AtBarrier`) and waits for what came in for it and the next
barrier (:class:`Proceed`).  At the end each process sends its collector's figures and its
nodes' space (:class:`Done`, or :class:`Failed` with a traceback), and process 0 merges
them (:func:`masc.sim.metrics.build_report`, and the safety checker over every node's
space: :func:`masc.sim.run.run_split`).  The other processes are forked (``fork``: Linux
and macOS).

A scenario that asks for processes and has faults is refused: partitions, crashes and
restarts act on one process's streams and nodes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Final

import trio
import trio.lowlevel
import trio.testing

from masc.sim.metrics import Part
from masc.sim.network import SimError, SimStream, stream_pair
from masc.sim.safety import Space
from masc.sim.topology import Topology

SYNC_INTERVAL: Final = 10.0  # virtual seconds between barriers (scenario: sync_interval)

MAX_PROCESSES: Final = 64  # the most a scenario may ask for

# A connection's name in every process: (the dialling process, a serial number there).
Conn = tuple[int, int]


# --- what crosses between processes at a barrier ------------------------------------------


@dataclass(frozen=True, slots=True)
class Open:
    """``dialler`` dialled the node at the other end of link ``link``."""

    conn: Conn
    link: int
    dialler: str


@dataclass(frozen=True, slots=True)
class Data:
    conn: Conn
    data: bytes


@dataclass(frozen=True, slots=True)
class Eof:
    """The sender half-closed: the receiver reads EOF once it has read the data before."""

    conn: Conn


@dataclass(frozen=True, slots=True)
class Close:
    """The sender closed (or refused the dial): the receiver's writes fail from now on."""

    conn: Conn


Message = Open | Data | Eof | Close
# Messages with the process they go to, or (in a delivery) the one they come from.
Addressed = list[tuple[int, Message]]


# --- what process 0 and the others say to each other ------------------------------------------


@dataclass(frozen=True, slots=True)
class AtBarrier:
    """A worker reached ``barrier``: what crossed out of it since the last one, and when it
    has something due next (``math.inf``: nothing)."""

    barrier: float
    out: Addressed
    due: float


@dataclass(frozen=True, slots=True)
class Proceed:
    """Process 0's answer at a barrier: what came in for the worker, and the next barrier."""

    incoming: Addressed
    next_barrier: float


@dataclass(frozen=True, slots=True)
class Done:
    """A worker's run ended: what its collector measured and its nodes' space."""

    part: Part
    space: Space


@dataclass(frozen=True, slots=True)
class Failed:
    """A worker failed: its traceback."""

    traceback: str


def partition(topology: Topology, processes: int) -> list[frozenset[str]]:
    """The node names each process runs: the groups of domains that parent-child sessions
    join (module docstring), dealt out largest first to the process with the fewest nodes.
    Fewer than ``processes`` sets if there are fewer groups; never an empty one."""
    if processes < 1:
        raise ValueError("processes must be >= 1")
    root = {name: name for name in topology.domains}

    def find(domain: str) -> str:
        while root[domain] != domain:
            root[domain] = root[root[domain]]
            domain = root[domain]
        return domain

    for name in sorted(topology.domains):
        for parent in topology.domains[name].parents:
            a, b = find(name), find(parent)
            if a != b:
                root[max(a, b)] = min(a, b)
    groups: dict[str, list[str]] = {}
    for node in sorted(topology.nodes):
        groups.setdefault(find(topology.nodes[node].domain), []).append(node)
    parts: list[list[str]] = [[] for _ in range(min(processes, len(groups)))]
    for group in sorted(groups.values(), key=lambda g: (-len(g), g[0])):
        min(parts, key=len).extend(group)
    return [frozenset(p) for p in parts if p]


@dataclass(slots=True)
class _Far:
    """One connection to another process: our end of it, and where its messages go."""

    end: SimStream  # the end the bridge reads; the node's runner has the other
    part: int  # the process running the peer's node
    opened: Open | None = None  # still to send, for a dial of ours
    eof_sent: bool = False


# What a bridge calls when a node elsewhere dials one of ours: (link index, dialling node,
# the stream for our node) -> False if our node is down (SimNetwork.accept_from_elsewhere).
Accept = Callable[[int, str, SimStream], bool]


@dataclass(slots=True)
class Bridge:
    """This process's end of the sessions to other processes (module docstring).

    A dial always succeeds here, as a TCP connect would; if the peer's node is not running
    (which only a fault could cause), the dial is closed at the next barrier instead of
    being refused at once as within one process."""

    part: int
    owner: Mapping[str, int]  # node name -> the process that runs it
    accept: Accept | None = None  # set by the SimNetwork that uses the bridge
    _conns: dict[Conn, _Far] = field(default_factory=dict, init=False)
    _changed: set[Conn] = field(default_factory=set, init=False)
    _serial: int = field(default=0, init=False)
    _inbox: Addressed = field(default_factory=list, init=False)  # (sender, message)
    _replies: Addressed = field(default_factory=list, init=False)
    _lot: trio.lowlevel.ParkingLot = field(default_factory=trio.lowlevel.ParkingLot, init=False)

    def dial(self, index: int, node: str, peer: str) -> SimStream:
        """``node`` dials ``peer`` (run elsewhere) over link ``index``: the stream it gets."""
        self._serial += 1
        conn = (self.part, self._serial)
        ours, theirs = stream_pair(self._marker(conn))
        self._conns[conn] = _Far(theirs, self.owner[peer], opened=Open(conn, index, node))
        self._changed.add(conn)
        return ours

    def _marker(self, conn: Conn) -> Callable[[], None]:
        changed = self._changed

        def mark() -> None:
            changed.add(conn)

        return mark

    def outgoing(self) -> Addressed:
        """What crossed out of this process since the last barrier, in the order of the
        connections' names (so that it does not depend on set order)."""
        out, self._replies = self._replies, []
        for conn in sorted(self._changed):
            far = self._conns.get(conn)
            if far is None:
                continue
            if far.opened is not None:
                out.append((far.part, far.opened))
                far.opened = None
            data = far.end.take_received()
            if data:
                out.append((far.part, Data(conn, data)))
            if far.end.peer_closed:
                out.append((far.part, Close(conn)))
                del self._conns[conn]
            elif far.end.received_eof and not far.eof_sent:
                out.append((far.part, Eof(conn)))
                far.eof_sent = True
        self._changed.clear()
        return out

    def deliver(self, incoming: Addressed) -> None:
        """Messages from other processes (sender, message), handed to the nodes by
        :meth:`run` at the barrier's time."""
        if incoming:
            self._inbox.extend(incoming)
            self._lot.unpark_all()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Hand over what arrives at each barrier, until cancelled."""
        task_status.started()
        while True:
            await self._lot.park()
            inbox, self._inbox = self._inbox, []
            for sender, message in inbox:
                self._handle(sender, message)

    def _handle(self, sender: int, message: Message) -> None:
        if isinstance(message, Open):
            self._accept(sender, message)
            return
        far = self._conns.get(message.conn)
        if far is None:
            return  # we closed it already; our Close is on its way
        if isinstance(message, Data):
            if not far.end.peer_closed:
                far.end.send_nowait(message.data)
        elif isinstance(message, Eof):
            far.end.send_eof_nowait()
        else:
            del self._conns[message.conn]
            far.end.close()

    def _accept(self, sender: int, dial: Open) -> None:
        if self.accept is None:
            raise SimError("the bridge is not attached to a network")
        ours, theirs = stream_pair(self._marker(dial.conn))
        if not self.accept(dial.link, dial.dialler, ours):
            self._replies.append((sender, Close(dial.conn)))
            return
        self._conns[dial.conn] = _Far(theirs, sender)


class Barriers:
    """The task that stops the process at each barrier (module docstring): it sleeps until
    the barrier, waits until every other task is blocked (everything due up to the barrier
    has been handled), then calls ``sync(barrier, next_deadline)``, which exchanges with the
    other processes (blocking the whole process, which has nothing else to do), hands what
    came in to the bridge and returns the next barrier."""

    def __init__(self, sync: Callable[[float, float], float], every: float) -> None:
        self._sync = sync
        self.every = every

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        barrier = self.every
        while barrier < math.inf:
            await trio.sleep_until(barrier)
            await trio.testing.wait_all_tasks_blocked()
            now = trio.current_time()
            due = now + trio.lowlevel.current_statistics().seconds_to_next_deadline
            barrier = self._sync(barrier, due)
        await trio.sleep_forever()


def next_barrier(barrier: float, deadlines: Sequence[float], crossed: bool, every: float) -> float:
    """The barrier after ``barrier``: the next multiple of ``every`` if anything crossed,
    else the first one at or after the earliest of ``deadlines``.  The barriers skipped
    would have passed with nothing to exchange, so skipping them changes no arrival: what
    is sent crosses at the first barrier whose exchange comes after it was sent."""
    soonest = min(deadlines, default=math.inf)
    if crossed or soonest <= barrier + every:
        return barrier + every
    if soonest == math.inf:
        return math.inf
    return math.ceil(soonest / every) * every


@dataclass(slots=True)
class Coordinator:
    """Process 0's side of the barriers: one pipe to each other process."""

    bridge: Bridge
    workers: Sequence[Connection]  # to processes 1..n-1, in order
    every: float

    def sync(self, barrier: float, deadline: float) -> float:
        routed: list[Addressed] = [[] for _ in range(len(self.workers) + 1)]
        deadlines = [deadline]
        sent: list[tuple[int, Addressed]] = [(0, self.bridge.outgoing())]
        for index, worker in enumerate(self.workers, start=1):
            got = receive(index, worker)
            if not isinstance(got, AtBarrier) or got.barrier != barrier:
                raise process_error(index, got, expected=f"barrier {barrier}")
            sent.append((index, got.out))
            deadlines.append(got.due)
        crossed = False
        for sender, out in sent:
            for dest, message in out:
                routed[dest].append((sender, message))
                crossed = True
        after = next_barrier(barrier, deadlines, crossed, self.every)
        for index, worker in enumerate(self.workers, start=1):
            send(index, worker, Proceed(routed[index], after))
        self.bridge.deliver(routed[0])
        return after


@dataclass(slots=True)
class Worker:
    """Another process's side of the barriers: its pipe to process 0."""

    bridge: Bridge
    pipe: Connection

    def sync(self, barrier: float, deadline: float) -> float:
        send(0, self.pipe, AtBarrier(barrier, self.bridge.outgoing(), deadline))
        got = receive(0, self.pipe)
        if not isinstance(got, Proceed):
            raise process_error(0, got, expected="the next barrier")
        self.bridge.deliver(got.incoming)
        return got.next_barrier


def send(index: int, pipe: Connection, message: object) -> None:
    """Send ``message`` to process ``index``; a SimError if it is gone."""
    try:
        pipe.send(message)
    except OSError as error:
        raise SimError(f"simulation process {index} is gone ({error})") from None


def receive(index: int, pipe: Connection) -> object:
    """The next message from process ``index``; a SimError if it ended without one."""
    try:
        return pipe.recv()
    except (EOFError, OSError):
        raise SimError(f"simulation process {index} ended without a word") from None


def process_error(index: int, message: object, *, expected: str) -> SimError:
    """The error for process ``index`` sending ``message`` instead of ``expected``: the
    traceback it sent when it failed, or what it sent (the processes then disagree on the
    barriers, which would be a bug here)."""
    if isinstance(message, Failed):
        return SimError(f"simulation process {index} failed:\n{message.traceback}")
    got = type(message).__name__
    if isinstance(message, AtBarrier):
        got += f" at barrier {message.barrier}"
    return SimError(f"simulation process {index} sent {got} where {expected} was due")
