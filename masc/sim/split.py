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
due by then has been handled, each process reports what its bridge forwarded since the
last one and its next deadline; the reports of one barrier from every process make that
barrier's *exchange*.  What an exchange carries is handed to the nodes at the barrier
*after* it, so a process at barrier ``k`` needs only the exchange of barrier ``k - 1``:
it may be up to a barrier ahead of the others, working while they finish a burst of
their own, instead of waiting for each at every barrier.  (The work comes in bursts: one
level-2 domain's claim is relayed by its TLD to its 63 siblings, all in one process; with
the exchange handed over at its own barrier, one process waited out the other's burst at
nearly every barrier, and each was idle a fifth to a third of the time.)

So a message between processes sent at virtual time ``t`` is exchanged at the first
barrier at or after ``t`` and arrives at the barrier after that: those sessions have a
latency of one to two ``sync_interval`` (10-20 s by default), the others none.  For a
protocol whose claims wait 48 hours (§6 WAITING_PERIOD) that delay changes no outcome in
kind; it is a link latency, which the protocol must (and the safety checker checks that it
does) cope with.  The barriers are decided one ahead, at the exchange two before them
(:func:`barrier_after`): the next multiple of ``sync_interval``, unless the whole run is
quiet (nothing crossed at the last two exchanges, nothing due anywhere up to the barrier
already decided), when the quiet stretch up to the earliest deadline is skipped.

The barriers depend on virtual time only, so a split run is as reproducible as a run in one
process: the same seed and the same number of processes give the same report.  Process 0
(the caller) coordinates: at a barrier each other process sends it its report
(:class:`AtBarrier`) and waits for the answer to the exchange before (:class:`Proceed`:
what came in for it, and the barrier after this one); process 0 answers an exchange once
it has every report of it, at one of its own barriers or while it waits
(:class:`Coordinator`).  At the end each process sends its collector's figures and its
nodes' space (:class:`Done`, or :class:`Failed` with a traceback), and process 0 merges
them (:func:`masc.sim.metrics.build_report`, and the safety checker over every node's
space: :func:`masc.sim.run.run_split`).  The other processes are forked (``fork``: Linux
and macOS).

A scenario that asks for processes and has faults is refused: partitions, crashes and
restarts act on one process's streams and nodes.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.reduction import ForkingPickler
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
    """Process 0's answer to an exchange: what came in for the worker, to be handed to its
    nodes at barrier ``at`` (the one after the exchange's), and the barrier after ``at``."""

    at: float
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
    (which only a fault could cause), the dial is closed a few barriers later instead of
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
    has been handled), then calls ``sync(barrier, next_deadline)``, which reports to the
    other processes, waits for the exchange of the barrier before if it is not complete
    yet (blocking the whole process, which has nothing else to do), hands what that
    exchange brought to the bridge and returns the next barrier."""

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


def barrier_after(
    following: float, deadlines: Sequence[float], crossed: bool, every: float
) -> float:
    """The barrier after ``following``, decided one barrier ahead (module docstring): the
    next multiple of ``every`` unless the whole run is quiet until its earliest deadline,
    then the first multiple at or after it.  Quiet means: nothing crossed at the last two
    exchanges (``crossed`` is False), so nothing is handed over at the barrier before
    ``following`` or at ``following``; and no process has anything due up to
    ``following`` (``deadlines``, as each reported them at the exchange).  Then nothing
    happens anywhere until the earliest deadline, and what is sent from then on still
    crosses within two intervals."""
    soonest = min(deadlines, default=math.inf)
    if crossed or soonest <= following:
        return following + every
    if soonest == math.inf:
        return math.inf
    return max(following + every, math.ceil(soonest / every) * every)


class Coordinator:
    """Process 0's side of the barriers: one pipe to each other process.

    Every process reports at each of its barriers (:class:`AtBarrier`), in order; the
    reports of barrier ``j`` from all processes make exchange ``j``, which this side
    completes once it has them all, at one of its own barriers or while it waits (not
    while it works), and answers with a :class:`Proceed` to each process.  A process at
    its barrier ``k`` waits only for exchange ``k - 1`` (module docstring), so while this
    process works through a burst the others read its reports of the barrier before and
    go on.

    The answers are written so that no two blocking writes can wait for each other
    (:class:`_Sender`), and a worker that has ended (its run is over, or it died) is not
    written to any more: what became of it is read from its pipe when it is next
    needed."""

    def __init__(self, bridge: Bridge, workers: Sequence[Connection], every: float) -> None:
        self.bridge = bridge
        self.workers = workers
        self.every = every
        self._calls = 0  # our own barriers so far
        self._done = 0  # exchanges completed (their Proceeds sent)
        self._crossed = False  # whether anything crossed at the last exchange completed
        # Barrier j of the run, known two exchanges ahead (the first two are fixed).
        self._barriers: dict[int, float] = {1: every, 2: 2 * every}
        self._reports: dict[int, list[AtBarrier | None]] = {}
        self._received = [0] * len(workers)  # reports read from each worker
        self._own: dict[int, Proceed] = {}  # our Proceed of each exchange, until used
        self._ended: dict[int, object] = {}  # a worker's last word, read while waiting
        self._senders = [_Sender(index, pipe) for index, pipe in enumerate(workers, start=1)]

    def close(self) -> None:
        """Stop writing answers (and any thread that writes them), once the run is over."""
        for sender in self._senders:
            sender.close()

    def sync(self, barrier: float, deadline: float) -> float:
        self._calls += 1
        k = self._calls
        if barrier != self._barriers[k]:
            raise SimError(f"process 0 stopped at {barrier} where barrier {k} is due")
        self._store(k, 0, AtBarrier(barrier, self.bridge.outgoing(), deadline))
        self._read(block=False)
        while self._done < k - 1:
            self._read(block=True)
        proceed = self._own.pop(k - 1) if k > 1 else Proceed(barrier, [], self._barriers[2])
        self.bridge.deliver(proceed.incoming)
        return proceed.next_barrier

    def last_word(self, index: int) -> object:
        """What worker ``index`` sent after its last report (its :class:`Done` or
        :class:`Failed`), once its run has ended: reports it sent for exchanges no
        process waits for any more are passed over."""
        ended = self._ended.pop(index, None)
        if ended is not None:
            return ended
        pipe = self.workers[index - 1]
        while True:
            got = receive(index, pipe)
            if not isinstance(got, AtBarrier):
                return got

    def _read(self, *, block: bool) -> None:
        """Read what the workers have sent (at least one message if ``block``), and
        complete every exchange that then has all its reports."""
        waiting = [
            pipe for index, pipe in enumerate(self.workers, start=1) if index not in self._ended
        ]
        if block:
            # Our own report of the exchange waited for is in (sync stores it first).
            needed = self._reports[self._done + 1]
            for index in self._ended:
                if needed[index] is None:
                    # Its run ended before a barrier the others still reach: they would
                    # wait for its report for ever.
                    raise SimError(
                        f"simulation process {index} ended before barrier "
                        f"{self._barriers[self._done + 1]}"
                    )
        for pipe in wait(waiting, timeout=None if block else 0):
            assert isinstance(pipe, Connection)
            index = self.workers.index(pipe) + 1
            while index not in self._ended:  # every report waiting there, not only the first
                got = receive(index, pipe)
                if isinstance(got, AtBarrier):
                    self._received[index - 1] += 1
                    self._store(self._received[index - 1], index, got)
                elif isinstance(got, Done):
                    self._ended[index] = got  # its run ended: kept for run_split
                    self._senders[index - 1].close()
                else:
                    raise process_error(index, got, expected="a report at a barrier")
                if not pipe.poll():
                    break

    def _store(self, exchange: int, index: int, report: AtBarrier) -> None:
        reports = self._reports.setdefault(exchange, [None] * (len(self.workers) + 1))
        reports[index] = report
        while True:
            ready = self._reports.get(self._done + 1)
            if ready is None or any(r is None for r in ready):
                return
            self._complete(self._done + 1, [r for r in ready if r is not None])

    def _complete(self, j: int, reports: list[AtBarrier]) -> None:
        """Exchange ``j``: route what crossed to be handed over at barrier ``j + 1``, and
        decide barrier ``j + 2``."""
        del self._reports[j]
        routed: list[Addressed] = [[] for _ in range(len(self.workers) + 1)]
        crossed = False
        barrier = self._barriers.pop(j)
        for sender, report in enumerate(reports):
            if report.barrier != barrier:
                raise process_error(sender, report, expected=f"barrier {barrier}")
            for dest, message in report.out:
                routed[dest].append((sender, message))
                crossed = True
        following = self._barriers[j + 1]
        after = barrier_after(
            following, [r.due for r in reports], crossed or self._crossed, self.every
        )
        self._barriers[j + 2] = after
        for index, answers in enumerate(self._senders, start=1):
            answers.put(Proceed(following, routed[index], after))
        self._own[j] = Proceed(following, routed[0], after)
        self._crossed = crossed
        self._done = j


class _Sender:
    """Writes process 0's answers to one worker, in order (:class:`Coordinator`).

    An answer is written at once when it is small (:data:`_WRITTEN_AT_ONCE`) and nothing
    is still being written: the worker is never more than a barrier behind, so at most
    two answers wait unread in the pipe, and a small write then always finds room.  A
    larger one, and any answer while one is being written, goes to a thread: a worker
    may be writing its next report while an answer is written to it, and were both larger
    than the pipe's buffer, two blocking writes would wait for each other for ever.  (Not
    every answer goes through the thread: it needs the interpreter lock to write, which
    a busy process yields only every switch interval, 5 ms.)  A write that fails (the
    worker ended or died) stops the writing: what became of the worker is for its pipe's
    reader to find."""

    def __init__(self, index: int, pipe: Connection) -> None:
        self._index = index
        self._pipe = pipe
        self._gone = False
        self._lock = threading.Lock()
        self._writing = 0  # answers queued for the thread or being written by it
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def put(self, answer: Proceed) -> None:
        if self._gone:
            return
        data = bytes(ForkingPickler.dumps(answer))  # what Connection.send writes
        with self._lock:
            at_once = self._writing == 0 and len(data) <= _WRITTEN_AT_ONCE
            if not at_once:
                self._writing += 1
        if at_once:
            try:
                self._pipe.send_bytes(data)
            except OSError:
                self._gone = True
            return
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"masc-sim-answers-{self._index}", daemon=True
            )
            self._thread.start()
        self._queue.put(data)

    def close(self) -> None:
        """No more answers; wait a moment for the thread to finish what it writes, so that
        the pipe is not closed under it.  A write still blocked then (a worker that no
        longer reads) ends when the worker's end closes."""
        self._gone = True
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=1.0)

    def _run(self) -> None:
        while (data := self._queue.get()) is not None:
            if not self._gone:
                try:
                    self._pipe.send_bytes(data)
                except Exception:  # closed under us, or the worker is gone
                    self._gone = True
            with self._lock:
                self._writing -= 1


# The largest answer written at once rather than by a thread (_Sender): far below a
# pipe's buffer (about 200 KiB on Linux), far above a strawman barrier's few KiB.
_WRITTEN_AT_ONCE: Final = 16 * 1024


@dataclass(slots=True)
class Worker:
    """Another process's side of the barriers: its pipe to process 0."""

    bridge: Bridge
    pipe: Connection
    every: float
    _calls: int = field(default=0, init=False)

    def sync(self, barrier: float, deadline: float) -> float:
        self._calls += 1
        send(0, self.pipe, AtBarrier(barrier, self.bridge.outgoing(), deadline))
        if self._calls == 1:
            return 2 * self.every  # nothing crossed before the first barrier
        got = receive(0, self.pipe)
        if not isinstance(got, Proceed) or got.at != barrier:
            raise process_error(0, got, expected=f"what crosses at barrier {barrier}")
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
