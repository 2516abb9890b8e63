"""MAAS demand for the simulator: seeded session processes driving each domain's MAAS
(RFC 2909 §17.1, Appendix A; RFC 2908 §3, §5).

Theory of operation
-------------------
Each *demanding* domain (the leaves, or every domain) has one MAAS, registered as
``"maas"`` with the domain's first node (by sorted name).  Clients of the MAAS open
*sessions*, each holding ``addresses_per_session`` multicast addresses for its lifetime:

``poisson``
    sessions arrive as a Poisson process of ``arrivals_per_hour`` per domain and last a
    log-normal time (median ``lifetime_median``, shape ``lifetime_sigma``);
``growth``
    sessions arrive so that the addresses wanted follow a curve from ``start`` at the
    beginning to ``end`` after ``ramp`` seconds (``linear``, ``exponential`` or
    ``logistic``), scaled per domain by a random factor in [1 - jitter, 1 + jitter]; they
    never end;
``none``
    no MAAS at all: every domain just holds its initial size.

The arithmetic is sans-IO (:class:`PoissonSessions`, :class:`GrowthSessions`,
:class:`MaasModel`: a random generator and times in, counts and the next time something
happens out), and one trio task, :class:`DemandDriver`, plays every MAAS.  It must stay cheap
at the strawman's 8,192 demanding domains, where sessions are millions, so the models are
*lazy*: a model is brought up to date (``advance``) only when it is looked at, and the
driver keeps a heap holding, per domain, the earliest time at which its MAAS may have to
*say* something to its node.  Between two such times every arrival provably fits in the
MAAS's free granted space (departures only add room), so nothing is lost by not looking.

What a MAAS says (the MAAS API's ``register``, ``usage`` and ``request``):

* a session that fits in the MAAS's free *active* granted space is served at once; one
  that does not waits, in FIFO order, and is served as soon as room appears (a grant, or a
  departure freeing active space), its latency (demand -> usable address) recorded;
* when a session starts waiting the MAAS reports its usage at once, and asks for the
  shortfall (``request``) whenever the waiting sessions need more than it has asked for
  (at least doubling what it has asked for, so a long queue makes a few requests);
* and, waiting or not, it reports its usage at most every ``report_interval``, when
  ``in_use`` moved by at least ``report_change`` of the last reported value, or crossed the
  grant table's high mark of its active space (so the table grants the next block before
  it is needed, §17.1.2-§17.1.3).  Each report carries a growth rate (addresses/s, a
  smoothed slope of in-use plus waiting addresses), which the grant table and the engine's
  planner predict demand with (``allocation.predicted``: §17.1.2, App. A).  (Until the
  fourteenth round of docs/evaluation.md a MAAS with sessions waiting did not report
  again until its queue drained; under demand that keeps growing the queue never did, and
  its node planned from the in-use count and rate of the day it started waiting.)

Local modelling choices (documented for the metrics' readers):

* Sessions are exchangeable: the model counts the addresses in use per grant, not which
  session holds which address.  A session ending frees an address in a deprecated grant
  first (deprecated space drains, §17.1.4-§17.1.5), else in an active one.
* A revoked grant (clash withdraw §12.4, expiry, release) *displaces* the sessions on it:
  they are counted in ``displaced`` and queued at the head of the waiting queue, keeping
  their end time; served again elsewhere, their wait is in ``rehome_latency_max``.
* A crashed node: its MAAS keeps serving sessions from the grants it holds (RFC 2908 §5: a
  range is the MAAS's until its lifetime ends) and says nothing until the node is back.  A
  restarted node has a fresh grant table (the simulator keeps no store, §13), so the MAAS
  registers again; its sessions *keep their addresses* (the old grants become an
  "orphan" count that still counts as in use and drains first as sessions end) while new
  sessions use only the new grants.
"""

from __future__ import annotations

import heapq
import math
import random
from array import array
from bisect import insort
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol

import trio

from masc.maas.grants import (
    Deprecated,
    Extended,
    Granted,
    GrantEvent,
    Revoked,
    UnknownMaas,
)
from masc.protocol.wire.messages import Prefix
from masc.sim.network import HOUR, SimNetwork

MAAS_NAME: Final = "maas"
# How far ahead a model looks for the arrival that may not fit: a MAAS with more free room
# is looked at again after this many arrivals (bounds the pre-drawn sessions per domain).
LOOKAHEAD: Final = 64
# Smoothing time of the reported growth rate.
RATE_TAU: Final = 6 * HOUR
# A MAAS whose node is down tries again this often (virtual seconds).
RECONNECT: Final = 30.0
# The driver's visits are rounded up to this many (virtual) seconds, so that the MAASs due
# within one tick are visited on one wake-up of its task: thousands of MAASs each waking on
# its own for every arrival cost more in trio's timer bookkeeping than the visits
# themselves.  Arrivals and grants keep their exact times (the model replays them); only
# reports and requests leave up to one tick late.
TICK: Final = 60.0
# A call to a node that has not answered within this (virtual) time was lost in a crash.
CALL_TIMEOUT: Final = 1.0
# Logistic growth: steepness over the ramp (10 -> 0.7 % to 99.3 % of the rise).
LOGISTIC_STEEPNESS: Final = 10.0

Model = Literal["none", "poisson", "growth"]
Shape = Literal["linear", "exponential", "logistic"]


@dataclass(frozen=True, slots=True)
class DemandSpec:
    """The demand model of a scenario (module docstring).  Times are in seconds."""

    model: Model = "poisson"
    domains: Literal["leaves", "all"] = "leaves"  # which domains have a MAAS
    arrivals_per_hour: float = 1.0  # poisson: per demanding domain
    lifetime_median: float = 7 * 86400.0  # poisson: log-normal session lifetime (s)
    lifetime_sigma: float = 1.0
    addresses_per_session: int = 1
    start: int = 0  # growth: addresses in use at t=0
    end: int = 1024  # growth: ... at t=ramp (then flat)
    ramp: float = 30 * 86400.0
    shape: Shape = "linear"
    jitter: float = 0.5  # growth: per-domain random scale in [1-j, 1+j]
    report_interval: float = 600.0  # how often a MAAS reports usage when it changed
    report_change: float = 0.1  # ... by at least this fraction of the last report
    after: float = 0.0  # the MAASs register and demand begins this long after the start

    def __post_init__(self) -> None:
        if self.model not in ("none", "poisson", "growth"):
            raise ValueError(f"unknown demand model {self.model!r}")
        if self.domains not in ("leaves", "all"):
            raise ValueError(f"domains must be 'leaves' or 'all', not {self.domains!r}")
        if self.shape not in ("linear", "exponential", "logistic"):
            raise ValueError(f"unknown growth shape {self.shape!r}")
        if not (math.isfinite(self.arrivals_per_hour) and self.arrivals_per_hour >= 0):
            raise ValueError("arrivals_per_hour must be >= 0")
        if not (self.lifetime_median > 0 and self.lifetime_sigma >= 0):
            raise ValueError("lifetime_median must be > 0 and lifetime_sigma >= 0")
        if self.addresses_per_session < 1:
            raise ValueError("addresses_per_session must be >= 1")
        if not 0 <= self.start <= self.end:
            raise ValueError("growth needs 0 <= start <= end")
        if not self.ramp > 0:
            raise ValueError("ramp must be > 0")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        if not (self.report_interval >= 0 and self.report_change >= 0 and self.after >= 0):
            raise ValueError("report_interval, report_change and after must be >= 0")


# --- growth curves (pure) ---------------------------------------------------------------------


def _logistic(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-LOGISTIC_STEEPNESS * (x - 0.5)))


def growth_fraction(shape: Shape, x: float, *, start: int = 0, end: int = 1) -> float:
    """How far along its rise (0 to 1) a curve of ``shape`` is at ``x`` (0 to 1) of the ramp.

    ``exponential`` grows ``addresses + 1`` by a constant factor (so that it is defined from
    0 addresses); ``logistic`` is an S-curve, normalised to run exactly from 0 to 1."""
    x = min(max(x, 0.0), 1.0)
    if shape == "linear":
        return x
    if shape == "exponential":
        ratio = (end + 1) / (start + 1)
        return x if ratio == 1 else (ratio**x - 1) / (ratio - 1)
    low, high = _logistic(0.0), _logistic(1.0)
    return (_logistic(x) - low) / (high - low)


def growth_inverse(shape: Shape, y: float, *, start: int = 0, end: int = 1) -> float:
    """The ``x`` at which :func:`growth_fraction` reaches ``y`` (both in 0 to 1)."""
    y = min(max(y, 0.0), 1.0)
    if shape == "linear":
        return y
    if shape == "exponential":
        ratio = (end + 1) / (start + 1)
        return y if ratio == 1 else math.log1p(y * (ratio - 1)) / math.log(ratio)
    low, high = _logistic(0.0), _logistic(1.0)
    s = low + y * (high - low)
    return min(max(0.5 + math.log(s / (1 - s)) / LOGISTIC_STEEPNESS, 0.0), 1.0)


def growth_target(spec: DemandSpec, t: float, *, scale: float = 1.0) -> float:
    """Addresses a ``growth`` domain wants ``t`` seconds after demand began."""
    if t < 0:
        return 0.0
    rise = growth_fraction(spec.shape, t / spec.ramp, start=spec.start, end=spec.end)
    return scale * (spec.start + (spec.end - spec.start) * rise)


# --- session sources (pure, seeded) ----------------------------------------------------------


class SessionSource(Protocol):
    """Session arrivals in time order: ``(arrival time, lifetime)``, time ``inf`` when no
    more will come."""

    def draw(self) -> tuple[float, float]: ...


class PoissonSessions:
    """Poisson arrivals (exponential gaps, ``rate`` per second) from ``begin``, each with a
    log-normal lifetime of median ``median`` and shape ``sigma``."""

    def __init__(
        self, rng: random.Random, *, rate: float, median: float, sigma: float, begin: float = 0.0
    ) -> None:
        self._rng = rng
        self._rate = rate
        self._mu = math.log(median)
        self._sigma = sigma
        self._t = begin

    def draw(self) -> tuple[float, float]:
        if self._rate <= 0:
            return math.inf, math.inf
        self._t += self._rng.expovariate(self._rate)
        return self._t, self._rng.lognormvariate(self._mu, self._sigma)


class GrowthSessions:
    """Sessions of ``size`` addresses arriving as :func:`growth_target` (times ``scale``)
    passes each multiple of ``size``; they never end."""

    def __init__(self, spec: DemandSpec, *, scale: float, begin: float = 0.0) -> None:
        self._spec = spec
        self._scale = scale
        self._begin = begin
        self._count = 0
        self._low = scale * spec.start
        self._high = scale * spec.end

    def draw(self) -> tuple[float, float]:
        spec = self._spec
        self._count += 1
        wanted = self._count * spec.addresses_per_session  # this session's last address
        if wanted <= self._low:
            return self._begin, math.inf
        if wanted > self._high:
            return math.inf, math.inf
        y = (wanted / self._scale - spec.start) / (spec.end - spec.start)
        x = growth_inverse(spec.shape, y, start=spec.start, end=spec.end)
        return self._begin + x * spec.ramp, math.inf


# --- one MAAS (pure) ---------------------------------------------------------------------------


@dataclass(slots=True)
class DomainDemand:
    """What one domain's MAAS saw (counts of sessions, addresses, seconds)."""

    domain: str
    node: str
    arrivals: int = 0  # sessions that arrived
    served_at_once: int = 0  # ... and fitted in the MAAS's free granted space
    waited: int = 0  # ... and had to wait for space
    served_after_wait: int = 0
    departures: int = 0
    displaced: int = 0  # sessions moved off a revoked grant
    rehomed: int = 0  # ... and served again
    rehome_latency_max: float = 0.0
    waiting: int = 0  # sessions waiting now
    in_use: int = 0  # addresses in use now
    peak_in_use: int = 0
    granted: int = 0  # addresses of the MAAS's active grants now
    reports: int = 0  # usage reports sent
    requests: int = 0  # explicit requests sent
    requested: int = 0  # addresses asked for in them
    registrations: int = 0
    # Seconds, of sessions that waited.  Doubles in an array, not float objects in a list:
    # the strawman's 8,320 MAASs record millions of waits (8 octets each instead of 32).
    latencies: array[float] = field(default_factory=lambda: array("d"))

    @property
    def latency_sum(self) -> float:
        return sum(self.latencies)

    @property
    def latency_max(self) -> float:
        return max(self.latencies, default=0.0)


@dataclass(slots=True)
class _Room:
    """One grant as the MAAS sees it: addresses, how many are in use, still active."""

    capacity: int
    used: int
    active: bool


@dataclass(slots=True)
class _Displaced:
    """A session moved off a revoked grant, waiting to be served again."""

    since: float
    end: float  # it keeps its end time


class WaitQueue:
    """The sessions waiting for space, in FIFO order.

    Displaced sessions are queued at the head (module docstring) and new arrivals at the
    tail, so the queue is always the displaced ones, then the new ones: two queues served
    in that order.  The new ones, millions at the strawman's scale, are two arrays of
    doubles (arrival time, lifetime) read from a moving head, not an object each."""

    __slots__ = ("_head", "_lifetime", "_since", "displaced")

    def __init__(self) -> None:
        self.displaced: deque[_Displaced] = deque()
        self._since = array("d")
        self._lifetime = array("d")
        self._head = 0

    def __len__(self) -> int:
        return len(self.displaced) + len(self._since) - self._head

    def append(self, since: float, lifetime: float) -> None:
        """A new session that found no room."""
        self._since.append(since)
        self._lifetime.append(lifetime)

    def first_new(self) -> tuple[float, float]:
        """The (arrival time, lifetime) of the first new session (the queue holds one)."""
        return self._since[self._head], self._lifetime[self._head]

    def pop_new(self) -> None:
        """Drop the first new session; the arrays shed their served part now and then."""
        self._head += 1
        if self._head == len(self._since):
            del self._since[:], self._lifetime[:]
            self._head = 0
        elif self._head >= 4096 and 2 * self._head >= len(self._since):
            del self._since[: self._head], self._lifetime[: self._head]
            self._head = 0


class MaasModel:
    """The sessions of one MAAS over its grants, lazily advanced (module docstring).

    Times are the simulation's virtual seconds.  Inputs: :meth:`advance`, the grant
    changes (:meth:`granted`, :meth:`set_active`, :meth:`revoked`, :meth:`orphan_all`).
    Outputs: the counts, :meth:`shortfall`, :meth:`by_prefix`, :meth:`rate` and
    :meth:`next_wake`."""

    def __init__(self, source: SessionSource, stats: DomainDemand, *, size: int = 1) -> None:
        self.source = source
        self.stats = stats
        self.size = size
        self.now = -math.inf
        self.in_use = 0  # addresses, including the orphans
        self.orphan = 0  # addresses in use on grants of a previous node incarnation
        self.rooms: dict[Prefix, _Room] = {}
        self.waiting = WaitQueue()
        self._ahead: deque[tuple[float, float]] = deque()  # pre-drawn arrivals
        self._ends = array("d")  # end times of the sessions served that end, sorted
        self._endless = 0  # sessions served that never end (growth: millions)
        self._rate = 0.0
        self._rate_at: tuple[float, int] | None = None
        # When advance() next has something to do: a cheap check for whoever polls.
        self.next_event = -math.inf

    # -- time ---------------------------------------------------------------------------

    def _arrival(self, k: int) -> float:
        """The time of the ``k``-th next arrival (0: the next one)."""
        ahead = self._ahead
        while len(ahead) <= k:
            if ahead and ahead[-1][0] == math.inf:
                return math.inf  # the source is exhausted
            ahead.append(self.source.draw())
        return ahead[k][0]

    def advance(self, now: float) -> None:
        """Play arrivals and departures up to ``now``, in time order (a departure first
        when both happen at one instant)."""
        if now < self.now:
            return
        self.now = now
        ends, stats = self._ends, self.stats
        while True:
            arrival = self._arrival(0)
            end = ends[0] if ends else math.inf
            if end <= arrival and end <= now:
                del ends[0]
                self._free()
                stats.departures += 1
                if self.waiting:
                    self._serve(end)
            elif arrival <= now:
                t, lifetime = self._ahead.popleft()
                stats.arrivals += 1
                if not self.waiting and self._place():
                    stats.served_at_once += 1
                    self._add_end(t + lifetime)
                else:
                    self.waiting.append(t, lifetime)
                    stats.waited += 1
            else:
                break
        self.next_event = min(self._arrival(0), ends[0] if ends else math.inf)

    def _place(self) -> bool:
        """Take room for one session in an active grant."""
        size = self.size
        for room in self.rooms.values():
            if room.active and room.capacity - room.used >= size:
                room.used += size
                self.in_use += size
                if self.in_use > self.stats.peak_in_use:
                    self.stats.peak_in_use = self.in_use
                return True
        return False

    def _free(self) -> None:
        """A session ended: free its addresses, orphans first, then deprecated grants."""
        size = self.size
        self.in_use -= size
        if self.orphan >= size:
            self.orphan -= size
            return
        chosen = None
        for room in self.rooms.values():
            if room.used >= size:
                chosen = room
                if not room.active:
                    break
        if chosen is not None:
            chosen.used -= size
        else:  # cannot happen: in_use counts exactly the rooms' and the orphans' use
            raise AssertionError("a session ended that held no address")

    def _serve(self, now: float) -> None:
        """Serve waiting sessions in FIFO order while they fit."""
        waiting, stats = self.waiting, self.stats
        displaced = waiting.displaced
        while waiting:
            if displaced:
                head = displaced[0]
                if head.end <= now:
                    displaced.popleft()  # it ended while it waited
                    stats.departures += 1
                    continue
                if not self._place():
                    return
                displaced.popleft()
                stats.rehomed += 1
                stats.rehome_latency_max = max(stats.rehome_latency_max, now - head.since)
                end = head.end
            else:
                if not self._place():
                    return
                since, lifetime = waiting.first_new()
                waiting.pop_new()
                stats.served_after_wait += 1
                stats.latencies.append(now - since)
                end = now + lifetime
            self._add_end(end)
            self.next_event = min(self.next_event, end)

    def _add_end(self, end: float) -> None:
        """A session is served: remember when it ends (if it does)."""
        if end == math.inf:
            self._endless += 1
        else:
            insort(self._ends, end)

    # -- grants -------------------------------------------------------------------------

    def granted(self, prefix: Prefix, *, active: bool, now: float) -> None:
        """A new grant (or one re-announced): room for more sessions."""
        self.advance(now)
        room = self.rooms.get(prefix)
        if room is None:
            self.rooms[prefix] = _Room(prefix.num_addresses, 0, active)
        else:
            room.active = active
        self._serve(now)

    def set_active(self, prefix: Prefix, active: bool, *, now: float) -> None:
        """A grant was deprecated (no new sessions in it) or became active again."""
        self.advance(now)
        room = self.rooms.get(prefix)
        if room is None:
            self.rooms[prefix] = _Room(prefix.num_addresses, 0, active)
        else:
            room.active = active
        if active:
            self._serve(now)

    def revoked(self, prefix: Prefix, *, now: float) -> int:
        """The MAAS must stop using ``prefix``: the sessions on it are displaced (module
        docstring).  Returns how many."""
        self.advance(now)
        room = self.rooms.pop(prefix, None)
        if room is None or room.used == 0:
            return 0
        count = room.used // self.size
        self.in_use -= room.used
        # Sessions are exchangeable: those ending last are the ones displaced.
        endless = min(count, self._endless)
        self._endless -= endless
        ends, finite = self._ends, count - endless
        moved = [*ends[len(ends) - finite :], *[math.inf] * endless]
        del ends[len(ends) - finite :]
        self.next_event = min(self._arrival(0), ends[0] if ends else math.inf)
        for end in reversed(moved):
            self.waiting.displaced.appendleft(_Displaced(now, end))
        self.stats.displaced += count
        self._serve(now)
        return count

    def orphan_all(self, *, now: float) -> None:
        """The node restarted with a fresh grant table: the sessions keep their addresses,
        but no new session goes into the old grants (module docstring)."""
        self.advance(now)
        self.orphan += sum(room.used for room in self.rooms.values())
        self.rooms.clear()

    # -- outputs ------------------------------------------------------------------------

    def room(self) -> int:
        """Sessions that fit in the free active space now."""
        size = self.size
        return sum((r.capacity - r.used) // size for r in self.rooms.values() if r.active)

    def active_capacity(self) -> int:
        return sum(r.capacity for r in self.rooms.values() if r.active)

    def shortfall(self) -> int:
        """Addresses the waiting sessions need beyond the free active space."""
        return max(0, (len(self.waiting) - self.room()) * self.size)

    def demand(self) -> int:
        """Addresses wanted now: in use plus waiting."""
        return self.in_use + len(self.waiting) * self.size

    def by_prefix(self) -> dict[Prefix, int]:
        """In-use addresses per grant (the usage report's ``by_prefix``)."""
        return {prefix: room.used for prefix, room in self.rooms.items() if room.used}

    def rate(self, now: float) -> float:
        """Smoothed growth of :meth:`demand` in addresses per second, updated at ``now``
        (called once per usage report)."""
        demand = self.demand()
        if self._rate_at is None:
            self._rate_at = (now, demand)
            return 0.0
        then, before = self._rate_at
        if now > then:
            slope = (demand - before) / (now - then)
            self._rate += (slope - self._rate) * -math.expm1(-(now - then) / RATE_TAU)
            self._rate_at = (now, demand)
        return self._rate

    def report_due(
        self, now: float, *, last: float, reported: int, interval: float, change: float, high: float
    ) -> bool:
        """Whether a usage report is due (module docstring); the model is at ``now``."""
        if self.in_use == reported or now < last + interval:
            return False
        moved = abs(self.in_use - reported) >= max(self.size, change * reported)
        mark = high * self.active_capacity()
        return moved or reported < mark <= self.in_use

    def next_wake(
        self,
        *,
        last: float,
        reported: int,
        interval: float,
        change: float,
        high: float,
        requested: int,
    ) -> float:
        """The earliest time the MAAS may have something to say: the first arrival that may
        not fit (or, while sessions wait, the one that makes the shortfall exceed what was
        requested); or a report, no sooner than ``last + interval``, when enough arrivals
        or departures could have moved ``in_use`` (conservative: departures are assumed
        not to happen for the first, arrivals not to for the second)."""
        size = self.size
        if self.waiting:
            act = self._arrival(min(LOOKAHEAD, max(0, (requested - self.shortfall()) // size)))
        else:
            act = self._arrival(min(LOOKAHEAD, self.room()))
        steps = max(1, math.ceil(change * reported / size))
        ends = self._ends
        moved = min(
            self._arrival(min(LOOKAHEAD, steps - 1)),
            ends[steps - 1] if len(ends) >= steps else math.inf,
        )
        mark = high * self.active_capacity()
        if reported < mark:
            to_mark = max(0, math.ceil((mark - self.in_use) / size) - 1)
            moved = min(moved, self._arrival(min(LOOKAHEAD, to_mark)))
        return min(act, max(last + interval, moved))


def leaf_domains(net: SimNetwork) -> list[str]:
    """Domains no other domain has as a parent."""
    parents = {p for spec in net.topology.domains.values() for p in spec.parents}
    return sorted(d for d in net.topology.domains if d not in parents)


# --- the driver (trio) ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Maas:
    index: int
    domain: str
    node: str
    model: MaasModel
    incarnation: int = 0  # of the node whose grants it holds; 0: none yet
    registered: bool = False  # with that incarnation
    last: float = -math.inf  # when it last reported
    reported: int = 0  # in_use it last reported
    told_waiting: bool = False  # reported since sessions started waiting
    seq: int = -1  # the live heap entry's sequence number


class DemandDriver:
    """Plays every demanding domain's MAAS against ``net`` (module docstring).

    ``await nursery.start(driver.run)`` once the network runs; :meth:`stats` reads the
    per-domain counts.  The driver owns ``net.grant_listener`` while it runs (a listener
    set before is still called)."""

    def __init__(
        self, net: SimNetwork, spec: DemandSpec, *, seed: int, name: str = MAAS_NAME
    ) -> None:
        self.net = net
        self.spec = spec
        self.seed = seed
        self.name = name
        self.high = net.maas.target_utilization[1] if net.maas is not None else 0.9
        self._maas: list[_Maas] = []
        self._models: list[MaasModel] = []
        self._by_node: dict[str, _Maas] = {}
        self._heap: list[tuple[float, int, int]] = []
        self._seq = 0
        self._kick = trio.Event()
        self._begin = 0.0
        if spec.model == "none":
            return
        topo = net.topology
        # Domain -> its first node by name (one pass, not N^2), of the domains this process
        # runs (all of them but in a split run, masc.sim.split).
        first: dict[str, str] = {}
        for node in sorted(net.local, reverse=True):
            first[topo.nodes[node].domain] = node
        chosen = leaf_domains(net) if spec.domains == "leaves" else sorted(topo.domains)
        for domain in chosen:
            if domain not in first:
                continue
            stats = DomainDemand(domain, first[domain])
            entry = _Maas(len(self._maas), domain, first[domain], MaasModel(_Idle(), stats))
            self._maas.append(entry)
            self._models.append(entry.model)
            self._by_node[first[domain]] = entry

    def _source(self, domain: str, begin: float) -> SessionSource:
        spec = self.spec
        rng = random.Random(f"{self.seed}/demand/{domain}")
        if spec.model == "growth":
            scale = rng.uniform(1 - spec.jitter, 1 + spec.jitter)
            return GrowthSessions(spec, scale=scale, begin=begin)
        return PoissonSessions(
            rng,
            rate=spec.arrivals_per_hour / HOUR,
            median=spec.lifetime_median,
            sigma=spec.lifetime_sigma,
            begin=begin,
        )

    # -- views ---------------------------------------------------------------------------

    @property
    def domains(self) -> list[str]:
        """The demanding domains."""
        return [m.domain for m in self._maas]

    def totals(self, now: float) -> tuple[int, int]:
        """(addresses in use, sessions waiting) over every domain at virtual time ``now``
        (the collector's view: one pass, models with nothing due are not called)."""
        in_use = waiting = 0
        for model in self._models:
            if model.next_event <= now:
                model.advance(now)
            in_use += model.in_use
            waiting += len(model.waiting)
        return in_use, waiting

    def stats(self, *, now: float | None = None) -> dict[str, DomainDemand]:
        """Per demanding domain, what its MAAS saw (advanced to ``now`` if given)."""
        out = {}
        for m in self._maas:
            model = m.model
            if now is not None:
                model.advance(now)
            stats = model.stats
            stats.waiting = len(model.waiting)
            stats.in_use = model.in_use
            stats.granted = model.active_capacity()
            out[m.domain] = stats
        return out

    # -- the task ------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Play the MAASs until cancelled."""
        if not self._maas:
            task_status.started()
            return
        if self.net.maas is None:
            raise ValueError("demand needs a network built with maas=GrantConfig(...)")
        self._begin = trio.current_time() + self.spec.after
        for m in self._maas:
            m.model.source = self._source(m.domain, self._begin)
            m.model.now = self._begin
            self._schedule(m, self._begin)
        previous = self.net.grant_listener

        def listener(node: str, events: Sequence[GrantEvent]) -> None:
            self._on_grants(node, events)
            if previous is not None:
                previous(node, events)

        self.net.grant_listener = listener
        task_status.started()
        try:
            await self._loop()
        finally:
            self.net.grant_listener = previous

    async def _loop(self) -> None:
        heap = self._heap
        while True:
            self._kick = trio.Event()
            now = trio.current_time()
            while heap and heap[0][0] <= now:
                _, seq, index = heapq.heappop(heap)
                m = self._maas[index]
                if seq == m.seq:
                    m.seq = -1
                    await self._visit(m, now)
                    now = trio.current_time()
            wake = heap[0][0] if heap else math.inf
            if wake < math.inf:
                wake = math.ceil(wake / TICK) * TICK
            with trio.move_on_at(wake):
                await self._kick.wait()

    def _schedule(self, m: _Maas, when: float) -> None:
        self._seq += 1
        m.seq = self._seq
        heapq.heappush(self._heap, (when, self._seq, m.index))

    async def _visit(self, m: _Maas, now: float) -> None:
        net, spec, model = self.net, self.spec, m.model
        model.advance(now)
        if not await self._connected(m, now):
            self._schedule(m, now + RECONNECT)
            return
        due = model.report_due(
            now,
            last=m.last,
            reported=m.reported,
            interval=spec.report_interval,
            change=spec.report_change,
            high=self.high,
        )
        if model.waiting:
            if (due or not m.told_waiting) and await self._report(m, now):
                # Reported on as usual while sessions wait: the node plans its claims from
                # in_use and its rate (§17.1.2), which a queue that never drains (demand
                # that keeps growing) would otherwise freeze at its first value.
                m.told_waiting = True
            # Ask for the shortfall beyond what is asked for already, at least doubling it:
            # a few blocks while a queue builds up, not one minimum grant per session.
            outstanding = net.grants(m.node).outstanding(self.name)
            need = model.shortfall() - outstanding
            ask = max(need, outstanding)
            if need > 0 and await self._call(m, lambda: net.maas_request(m.node, self.name, ask)):
                model.stats.requests += 1
                model.stats.requested += ask
        else:
            m.told_waiting = False
            if due:
                await self._report(m, now)
        if m.seq != -1:
            return  # rescheduled by a grant event meanwhile
        if not m.registered:
            self._schedule(m, now + RECONNECT)  # its node went away during the visit
            return
        self._schedule(
            m,
            model.next_wake(
                last=m.last,
                reported=m.reported,
                interval=spec.report_interval,
                change=spec.report_change,
                high=self.high,
                requested=net.grants(m.node).outstanding(self.name),
            ),
        )

    async def _connected(self, m: _Maas, now: float) -> bool:
        """Whether the MAAS can talk to its node; (re-)registers with a new incarnation."""
        net = self.net
        if not net.is_up(m.node):
            return False
        incarnation = net.node(m.node).incarnation
        if incarnation != m.incarnation:
            if m.incarnation:
                m.model.orphan_all(now=now)
            m.incarnation, m.registered = incarnation, False
        if m.registered:
            return True
        if not await self._call(m, lambda: net.maas_register(m.node, self.name)):
            return False
        m.registered = True
        m.model.stats.registrations += 1
        m.last, m.reported, m.told_waiting = -math.inf, -1, False
        return True

    async def _report(self, m: _Maas, now: float) -> bool:
        model = m.model
        in_use, rate, by_prefix = model.in_use, model.rate(now), model.by_prefix()
        ok = await self._call(
            m, lambda: self.net.maas_usage(m.node, self.name, in_use, rate, by_prefix)
        )
        if ok:
            m.last, m.reported = now, in_use
            model.stats.reports += 1
        return ok

    async def _call(self, m: _Maas, fn: Callable[[], Awaitable[None]]) -> bool:
        """Run one MAAS API call; False if the node went away meanwhile (a crash cancels
        its runner, and a call it had queued is never answered)."""
        with trio.move_on_after(CALL_TIMEOUT):
            try:
                await fn()
            except UnknownMaas:
                m.registered = False  # the node forgot us: register again at the next visit
                return False
            return True
        m.registered = False
        return False

    def _on_grants(self, node: str, events: Sequence[GrantEvent]) -> None:
        """The node's grant table told its MAASs something (called in the node's task)."""
        m = self._by_node.get(node)
        if m is None or not m.incarnation:
            return
        now = trio.current_time()
        model, touched = m.model, False
        for event in events:
            grant = event.grant
            if grant.maas != self.name:
                continue
            touched = True
            if isinstance(event, Granted):
                model.granted(grant.prefix, active=grant.active, now=now)
            elif isinstance(event, Extended | Deprecated):
                model.set_active(grant.prefix, grant.active, now=now)
            elif isinstance(event, Revoked):
                model.revoked(grant.prefix, now=now)
        if touched:
            # Look at it now: its room changed (a report or request may be due).
            self._schedule(m, now)
            self._kick.set()


class _Idle:
    """The source of a MAAS before the driver runs: nothing arrives."""

    def draw(self) -> tuple[float, float]:
        return math.inf, math.inf
