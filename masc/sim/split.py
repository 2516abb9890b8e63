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
barrier's time.  So a message between processes sent at
virtual time ``t`` arrives at the first barrier after ``t``: those sessions have a latency
of up to ``sync_interval`` (10 s by default), the others none.  For a protocol whose
claims wait 48 hours (§6 WAITING_PERIOD) that delay changes no outcome in kind; it is a
link latency, which the protocol must (and the safety checker checks that it does) cope
with.  A barrier at which nothing crossed and no process has anything due before the next
one is skipped: the next barrier is the first one after the earliest deadline of all.

The barriers depend on virtual time only, so a split run is as reproducible as a run in one
process: the same seed and the same number of processes give the same report.  Process 0
(the caller) coordinates: at a barrier each other process sends it its messages and next
deadline and waits for its own messages and the next barrier.  At the end each process
returns its collector's part of the report, the demand its MAASs saw and its nodes' space
for the safety checker, and process 0 merges them (:func:`masc.sim.metrics.merge`).

Faults are not supported across processes (a scenario with faults runs in one process):
partitions, crashes and restarts act on one process's streams and nodes.
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

from masc.sim.network import SimError, SimNetwork, SimStream, stream_pair
from masc.sim.topology import Topology

SYNC_INTERVAL: Final = 10.0  # virtual seconds between barriers (scenario: sync_interval)

# A connection's name in every process: (the dialling process, a serial number there).
Conn = tuple[int, int]
# What crosses at a barrier: ("open", conn, link index, dialling node), ("data", conn,
# bytes), ("eof", conn) or ("close", conn).
Message = tuple[object, ...]
# Messages by destination process.
Outgoing = list[tuple[int, Message]]


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
    opened: Message | None = None  # the "open" still to send, for a dial of ours
    eof_sent: bool = False


@dataclass(slots=True)
class Bridge:
    """This process's end of the sessions to other processes (module docstring)."""

    part: int
    owner: Mapping[str, int]  # node name -> the process that runs it
    net: SimNetwork | None = None
    _conns: dict[Conn, _Far] = field(default_factory=dict)
    _changed: set[Conn] = field(default_factory=set)
    _serial: int = 0
    _inbox: list[tuple[int, Message]] = field(default_factory=list)  # (sender, message)
    _replies: Outgoing = field(default_factory=list)
    _lot: trio.lowlevel.ParkingLot = field(default_factory=trio.lowlevel.ParkingLot)

    def dial(self, index: int, node: str, peer: str) -> SimStream:
        """``node`` dials ``peer`` (run elsewhere) over link ``index``: the stream it gets."""
        self._serial += 1
        conn = (self.part, self._serial)
        ours, theirs = stream_pair(self._marker(conn))
        far = _Far(theirs, self.owner[peer], opened=("open", conn, index, node))
        self._conns[conn] = far
        self._changed.add(conn)
        return ours

    def _marker(self, conn: Conn) -> Callable[[], None]:
        changed = self._changed

        def mark() -> None:
            changed.add(conn)

        return mark

    def outgoing(self) -> Outgoing:
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
                out.append((far.part, ("data", conn, data)))
            if far.end.peer_closed:
                out.append((far.part, ("close", conn)))
                del self._conns[conn]
            elif far.end.received_eof and not far.eof_sent:
                out.append((far.part, ("eof", conn)))
                far.eof_sent = True
        self._changed.clear()
        return out

    def deliver(self, incoming: Sequence[tuple[int, Message]]) -> None:
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
        kind, conn = message[0], message[1]
        assert isinstance(conn, tuple)
        if kind == "open":
            index, node = message[2], message[3]
            assert isinstance(index, int) and isinstance(node, str)
            self._accept(sender, conn, index, node)
            return
        far = self._conns.get(conn)
        if far is None:
            return  # we closed it already; our "close" is on its way
        if kind == "data":
            data = message[2]
            assert isinstance(data, bytes)
            if not far.end.peer_closed:
                far.end.send_nowait(data)
        elif kind == "eof":
            far.end.send_eof_nowait()
        elif kind == "close":
            del self._conns[conn]
            far.end.close()

    def _accept(self, sender: int, conn: Conn, index: int, dialler: str) -> None:
        assert self.net is not None
        ours, theirs = stream_pair(self._marker(conn))
        if not self.net.accept_from_elsewhere(index, dialler, ours):
            self._replies.append((sender, ("close", conn)))
            return
        self._conns[conn] = _Far(theirs, sender)


class Barriers:
    """The task that stops the process at each barrier (module docstring): it sleeps until
    the barrier, waits until every other task is blocked (everything due up to the barrier
    has been handled), then calls ``sync(barrier, next_deadline)``, which exchanges with the
    other processes (blocking the whole process, which has nothing else to do), hands what
    came in to the bridge and returns the next barrier."""

    def __init__(self, sync: Callable[[float, float], float], every: float) -> None:
        self._sync = sync
        self.every = every
        self.passed = 0  # barriers synced at

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        barrier = self.every
        while barrier < math.inf:
            await trio.sleep_until(barrier)
            await trio.testing.wait_all_tasks_blocked()
            now = trio.current_time()
            due = now + trio.lowlevel.current_statistics().seconds_to_next_deadline
            barrier = self._sync(barrier, due)
            self.passed += 1
        await trio.sleep_forever()


def next_barrier(barrier: float, deadlines: Sequence[float], crossed: bool, every: float) -> float:
    """The barrier after ``barrier``: the next multiple of ``every`` if anything crossed or
    is due at once, else the first one after the earliest of ``deadlines``."""
    soonest = min(deadlines, default=math.inf)
    if crossed or soonest <= barrier:
        return barrier + every
    if soonest == math.inf:
        return math.inf
    return (math.floor(soonest / every) + 1) * every


@dataclass(slots=True)
class Coordinator:
    """Process 0's side of the barriers: one pipe to each other process."""

    bridge: Bridge
    workers: Sequence[Connection]  # to processes 1..n-1, in order
    every: float

    def sync(self, barrier: float, deadline: float) -> float:
        parts = len(self.workers) + 1
        routed: list[list[tuple[int, Message]]] = [[] for _ in range(parts)]
        deadlines = [deadline]
        crossed = False
        sent: list[tuple[int, Outgoing]] = [(0, self.bridge.outgoing())]
        for i, worker in enumerate(self.workers, start=1):
            got = worker.recv()
            if not (isinstance(got, tuple) and len(got) == 3 and got[0] == "barrier"):
                raise failed(i, got)
            sent.append((i, got[1]))
            deadlines.append(got[2])
        for sender, out in sent:
            for dest, message in out:
                routed[dest].append((sender, message))
                crossed = True
        nxt = next_barrier(barrier, deadlines, crossed, self.every)
        for i, worker in enumerate(self.workers, start=1):
            worker.send((routed[i], nxt))
        self.bridge.deliver(routed[0])
        return nxt


@dataclass(slots=True)
class Worker:
    """Another process's side of the barriers: its pipe to process 0."""

    bridge: Bridge
    pipe: Connection

    def sync(self, barrier: float, deadline: float) -> float:
        self.pipe.send(("barrier", self.bridge.outgoing(), deadline))
        incoming, nxt = self.pipe.recv()
        self.bridge.deliver(incoming)
        return float(nxt)


def failed(index: int, message: object) -> SimError:
    """The error for process ``index`` sending ``message`` where another was expected: the
    traceback it sent when it failed, or what it sent instead (then the processes disagree
    on the barriers, which would be a bug here)."""
    if isinstance(message, tuple) and message and message[0] == "error":
        return SimError(f"simulation process {index} failed:\n{message[1]}")
    kind = message[0] if isinstance(message, tuple) and message else type(message).__name__
    return SimError(f"simulation process {index} sent {kind!r} out of turn")
