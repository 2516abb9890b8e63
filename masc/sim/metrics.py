"""What a simulation measures: address-space efficiency, G-RIB size, claim latency and
protocol cost (RFC 2909 §1, §17.1, Appendix B; RFC 2908 §3).

Definitions (per domain, over the domain's *running* nodes):

``held``
    addresses of the domain's allocations of kind DOMAIN that have not expired (the
    managed set of §4.1, collapsed over its nodes): what is "allocated" to the domain.  A
    range withdrawn after a clash counts until the allocation holding it goes.
``delegated``
    addresses the domain's children hold inside it (the children's ``held`` prefixes, each
    counted once, that lie inside one of the domain's); ``local = held - delegated``.
``in_use``
    addresses the domain's MAAS has in use (:mod:`masc.sim.demand`).
``utilization``
    ``(in_use + delegated) / held``: how much of what the domain holds is used, by its
    own clients or by its children.  Overall: ``sum(in_use) / sum(held of top-level
    domains)``, the efficiency of the global pool (the MASC paper's measure).  Leaf
    utilization: ``sum(in_use) / sum(local)`` over the domains with a MAAS (the leaves when
    there is no demand model), the Appendix A band's measure (§17.1.3).  Summed over *all*
    domains, ``local`` telescopes to the top-level domains' ``held`` when every child's
    space lies in its parent's, which would make it the overall figure again.
``prefixes``
    distinct DOMAIN allocations the domain holds (§17.1.4 wants few).
G-RIB before aggregation
    (domain, prefix) entries the domains inject (§5.1 d), each node's G-RIB set unioned
    per domain); *after*: once a prefix covered by one an ancestor domain injects is
    dropped and each domain's remaining prefixes are collapsed.  The gap is what the
    hierarchy saves the inter-domain routing tables.
collisions, denials, clashes, withdraws
    the nodes' runner counts (:meth:`~masc.sim.network.SimNetwork.counts`): claims lost to
    another claim (ClaimCancelled, §5.1 c), parents' CLAIM_DENIED (§8.3), sibling clashes
    (§12.4), and prefixes gone (``gone:*``: expired, released, withdrawn).
messages, octets
    MASC messages (every type, keepalives included) and octets sent by the domain's nodes.

Cost: :meth:`Collector.sample` runs every virtual hour, so it reads each node only when the
node's runner has handled something since the last sample (``DomainRunner.turns`` and the
incarnation are the cache key: the engine changes only in turns) and recomputes a domain,
its parent's ``delegated`` and its descendants' G-RIB aggregation only when it changed.
What changes every sample regardless (sessions count keepalives) is summed directly from
the session counters.
"""

from __future__ import annotations

import heapq
import math
import resource
import sys
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from itertools import compress
from operator import attrgetter, ne
from typing import Any, Final

import trio

from masc import compiled_modules
from masc.protocol.events import SpaceKind
from masc.protocol.session import SessionStats
from masc.protocol.space import collapse, covers
from masc.protocol.wire.messages import Prefix
from masc.sim.demand import DemandDriver, DomainDemand
from masc.sim.network import SimNetwork, SimNode
from masc.sim.safety import Violation

HOURS: Final = 3600.0
_NO_PREFIXES: Final[frozenset[Prefix]] = frozenset()


@dataclass(frozen=True, slots=True)
class Sample:
    """Network totals at one moment."""

    time_hours: float
    held: int  # addresses the top-level domains hold: the global pool allocated
    local: int  # held - delegated, summed over the domains with a MAAS
    in_use: int  # addresses the MAASs have in use
    waiting: int  # sessions waiting for space
    utilization: float  # in_use / held
    leaf_utilization: float  # in_use / local
    grib_before: int
    grib_after: int
    prefixes: int
    collisions: int  # cumulative, like the next four
    clashes: int
    withdraws: int
    messages: int
    octets: int
    nodes_up: int


SERIES: Final = tuple(f.name for f in fields(Sample))


@dataclass(slots=True)
class Report:
    """Everything a run measured; :meth:`to_dict` is its JSON form."""

    scenario: dict[str, Any]
    series: dict[str, list[float]]  # per sample: SERIES -> values
    domains: dict[str, dict[str, Any]]  # per domain, at the end
    totals: dict[str, Any]
    safety: list[str]
    wall_seconds: float
    peak_rss_bytes: int
    ok: bool

    def to_dict(self) -> dict[str, Any]:
        """The fields by name.  They hold JSON values already, and are shared, not copied:
        ``dataclasses.asdict``'s deep copy of 8,000 domains' figures took seconds."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        return cls(**{f.name: data[f.name] for f in fields(cls)})


@dataclass(slots=True)
class _NodeView:
    """What the collector last read of one node, and what tells it whether to read again."""

    sim: SimNode
    up: bool
    turns: int
    keys: tuple[tuple[SpaceKind, Prefix], ...]  # the engine's allocation keys, in order
    allocations: frozenset[Prefix]  # DOMAIN allocations, unexpired
    grib: frozenset[Prefix]
    runner_counts: dict[str, int]  # the running incarnation's DomainRunner.counts
    counts: tuple[int, int, int, int, int]  # collisions, denials, clashes, withdraws, claims

    def same_space(self, sim: SimNode) -> bool:
        """The allocations and the G-RIB set did not change.  C-level comparisons that do
        not hash prefixes (ipaddress hashes in Python): a tuple of the same key objects
        compares by identity; sets compare by their stored hashes."""
        return tuple(sim.engine.allocations) == self.keys and sim.grib.prefixes == self.grib


@dataclass(slots=True)
class _DomainView:
    held_prefixes: tuple[Prefix, ...] = ()
    held: int = 0
    prefixes: int = 0
    grib: frozenset[Prefix] = _NO_PREFIXES
    grib_after: int = 0
    delegated: int = 0
    counts: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)


_NO_KEYS: Final[tuple[tuple[SpaceKind, Prefix], ...]] = ()
_OCTETS_OUT: Final = attrgetter("octets_out")


class Collector:
    """Samples ``net`` (and ``demand``) every ``interval`` virtual seconds and turns it all
    into a :class:`Report` (module docstring)."""

    def __init__(
        self, net: SimNetwork, demand: DemandDriver | None, *, interval: float = HOURS
    ) -> None:
        if not interval > 0:
            raise ValueError("the sample interval must be > 0")
        self.net = net
        self.demand = demand
        self.interval = interval
        self.samples: list[Sample] = []
        topo = net.topology
        # This process's nodes and their domains (all but in a split run, masc.sim.split,
        # which keeps each domain's parents, children and descendants in one process).
        mine = net.local_domains
        self._levels = topo.levels()
        self._nodes_of: dict[str, list[str]] = {d: [] for d in topo.domains}
        for name in sorted(net.local):
            self._nodes_of[topo.nodes[name].domain].append(name)
        self._node_domain = [
            (name, spec.domain) for name, spec in sorted(topo.nodes.items()) if name in net.local
        ]
        self._parents = {d: spec.parents for d, spec in topo.domains.items()}
        self._children: dict[str, list[str]] = {d: [] for d in topo.domains}
        self._descendants: dict[str, list[str]] = {d: [] for d in topo.domains}
        for name in sorted(topo.domains):
            for parent in self._parents[name]:
                self._children[parent].append(name)
            for ancestor in topo.ancestors(name):
                self._descendants[ancestor].append(name)
        self._ancestors = {d: sorted(topo.ancestors(d)) for d in topo.domains}
        if demand is not None:
            self._demanding = frozenset(demand.domains)
        else:
            self._demanding = frozenset(d for d, c in self._children.items() if not c and d in mine)
        # Caches (module docstring).
        self._domain_of = {name: spec.domain for name, spec in topo.nodes.items()}
        self._node: dict[str, _NodeView] = {}  # the nodes started so far
        self._sessions: list[SessionStats] = []  # of nodes up in their first incarnation
        self._session_octets: list[int] = []
        self._session_messages: list[int] = []
        self._messages = 0  # sum of _session_messages
        self._elsewhere: list[str] = []  # the other nodes
        self._view = {d: _DomainView() for d in topo.domains if d in mine}
        self._held_top = 0
        self._local = 0
        self._grib_before = 0
        self._grib_after = 0
        self._prefixes = 0
        self._counts = [0, 0, 0, 0, 0]
        self._start: float | None = None

    # -- the task -------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Sample now and every ``interval`` until cancelled."""
        self._start = trio.current_time()
        self.sample()
        task_status.started()
        while True:
            await trio.sleep_until(self._start + len(self.samples) * self.interval)
            self.sample()

    # -- sampling -------------------------------------------------------------------------

    def sample(self) -> Sample:
        """Record the network totals now (module docstring); cheap when little changed."""
        now = trio.current_time()
        if self._start is None:
            self._start = now
        in_use = waiting = 0
        if self.demand is not None:
            in_use, waiting = self.demand.totals(now)
        messages, octets, up = self._refresh(self.net.now())
        held, local = self._held_top, self._local
        sample = Sample(
            time_hours=(now - self._start) / HOURS,
            held=held,
            local=local,
            in_use=in_use,
            waiting=waiting,
            utilization=in_use / held if held else 0.0,
            leaf_utilization=in_use / local if local else 0.0,
            grib_before=self._grib_before,
            grib_after=self._grib_after,
            prefixes=self._prefixes,
            collisions=self._counts[0],
            clashes=self._counts[2],
            withdraws=self._counts[3],
            messages=messages,
            octets=octets,
            nodes_up=up,
        )
        self.samples.append(sample)
        return sample

    def _refresh(self, unix_now: float) -> tuple[int, int, int]:
        """Bring the caches up to date; return (messages, octets, nodes up)."""
        net = self.net
        changed: set[str] = set()
        rebuild = False
        up = 0
        if len(self._node) < len(self._node_domain):
            for name, _ in self._node_domain:  # the nodes started since the last sample
                if name not in self._node and net.is_up(name):
                    self._node[name] = self._read(name, net.node(name), unix_now)
                    changed.add(self._domain_of[name])
                    rebuild = True
        for name, seen in self._node.items():
            sim = seen.sim
            if sim.up:
                up += 1
                if seen.up and seen.turns == sim.domain.turns:
                    continue  # the engine changes only in the runner's turns
                if seen.up and seen.same_space(sim):
                    seen.turns = sim.domain.turns
                    if sim.domain.counts != seen.runner_counts:
                        self._recount(name, seen)
                    continue
            else:
                # A crashed incarnation stays down; a restart is a new SimNode.
                sim = net.node(name)
                if sim is seen.sim and not seen.up:
                    continue
                up += sim.up
            rebuild = rebuild or sim is not seen.sim or sim.up != seen.up
            self._node[name] = self._read(name, sim, unix_now)
            changed.add(self._domain_of[name])
        if rebuild:
            self._rebuild_sessions()
        if changed:
            self._update(changed)
        messages, octets = self._traffic()
        return messages, octets, up

    def _rebuild_sessions(self) -> None:
        self._sessions = [
            runner.session.stats
            for seen in self._node.values()
            if seen.up and seen.sim.incarnation == 1
            for runner in seen.sim.runners.values()
        ]
        self._session_octets = [-1] * len(self._sessions)
        self._session_messages = [0] * len(self._sessions)
        self._messages = 0
        self._elsewhere = [
            name for name, seen in self._node.items() if not seen.up or seen.sim.incarnation != 1
        ]

    def _traffic(self) -> tuple[int, int]:
        """Messages and octets sent so far.  A session's message counts are summed again
        only when its octet count moved (a C-level list comparison finds which)."""
        sessions = self._sessions
        octets_now = list(map(_OCTETS_OUT, sessions))
        if octets_now != self._session_octets:
            counted = self._session_messages
            for i in compress(range(len(octets_now)), map(ne, octets_now, self._session_octets)):
                sent = sum(sessions[i].messages_out.values())
                self._messages += sent - counted[i]
                counted[i] = sent
            self._session_octets = octets_now
        messages, octets = self._messages, sum(octets_now)
        for name in self._elsewhere:  # crashed or restarted: earlier incarnations count
            traffic = self.net.traffic(name)
            messages += traffic["messages_out"]
            octets += traffic["octets_out"]
        return messages, octets

    def _recount(self, name: str, seen: _NodeView) -> None:
        """Only the node's counts changed (a renewal's claim, say): no space to recompute."""
        totals = _count_totals(self.net.counts(name))
        view = self._view[self._domain_of[name]]
        delta = [new - old for new, old in zip(totals, seen.counts, strict=True)]
        view.counts = (
            view.counts[0] + delta[0],
            view.counts[1] + delta[1],
            view.counts[2] + delta[2],
            view.counts[3] + delta[3],
            view.counts[4] + delta[4],
        )
        for i, d in enumerate(delta):
            self._counts[i] += d
        seen.counts = totals
        seen.runner_counts = dict(seen.sim.domain.counts)

    def _read(self, name: str, sim: SimNode, unix_now: float) -> _NodeView:
        totals = _count_totals(self.net.counts(name))
        if not sim.up:
            return _NodeView(sim, False, -1, _NO_KEYS, _NO_PREFIXES, _NO_PREFIXES, {}, totals)
        allocations = sim.engine.allocations
        held = frozenset(
            a.prefix
            for a in allocations.values()
            if a.kind is SpaceKind.DOMAIN and a.expires > unix_now
        )
        return _NodeView(
            sim,
            True,
            sim.domain.turns,
            tuple(allocations),
            held,
            frozenset(sim.grib.prefixes),
            dict(sim.domain.counts),
            totals,
        )

    def _update(self, changed: Iterable[str]) -> None:
        delegated_dirty: set[str] = set()
        grib_dirty: set[str] = set()
        for domain in changed:
            view = self._view[domain]
            nodes = [self._node[n] for n in self._nodes_of[domain] if n in self._node]
            allocations = _union(v.allocations for v in nodes)
            grib = _union(v.grib for v in nodes)
            counts = tuple(sum(v.counts[i] for v in nodes) for i in range(5))
            for i, (new, old) in enumerate(zip(counts, view.counts, strict=True)):
                self._counts[i] += new - old
            view.counts = (counts[0], counts[1], counts[2], counts[3], counts[4])
            self._prefixes += len(allocations) - view.prefixes
            view.prefixes = len(allocations)
            held_prefixes = tuple(collapse(allocations))
            if held_prefixes != view.held_prefixes:
                held = sum(p.num_addresses for p in held_prefixes)
                if not self._parents[domain]:
                    self._held_top += held - view.held
                if domain in self._demanding:  # delegated is subtracted in its own pass
                    self._local += held - view.held
                view.held_prefixes, view.held = held_prefixes, held
                delegated_dirty.add(domain)
                delegated_dirty.update(self._parents[domain])
            if grib != view.grib:
                self._grib_before += len(grib) - len(view.grib)
                view.grib = grib
                grib_dirty.add(domain)
                grib_dirty.update(self._descendants[domain])
        for domain in delegated_dirty:
            view = self._view[domain]
            delegated = self._delegated(domain)
            if domain in self._demanding:
                self._local -= delegated - view.delegated
            view.delegated = delegated
        for domain in grib_dirty:
            view = self._view[domain]
            after = self._grib_after_of(domain)
            self._grib_after += after - view.grib_after
            view.grib_after = after

    def _delegated(self, domain: str) -> int:
        children = self._children[domain]
        held = self._view[domain].held_prefixes
        if not held or not children:
            return 0
        return delegated(held, (p for c in children for p in self._view[c].held_prefixes))

    def _grib_after_of(self, domain: str) -> int:
        above = [p for a in self._ancestors[domain] for p in self._view[a].grib]
        return len(aggregated(self._view[domain].grib, above))

    # -- the end --------------------------------------------------------------------------

    def finish(
        self,
        *,
        scenario: Mapping[str, object],
        wall_seconds: float,
        violations: Sequence[Violation],
    ) -> Report:
        """Take a last sample and build the report: series, per-domain table, totals."""
        return build_report(
            [self.part()], scenario=scenario, wall_seconds=wall_seconds, violations=violations
        )

    def part(self) -> Part:
        """Take a last sample and return this process's figures (:func:`build_report` builds the
        whole run's report from those of every process)."""
        self.sample()
        demand = self.demand.stats() if self.demand is not None else {}
        domains = {name: self._domain_row(name, demand.get(name)) for name in sorted(self._view)}
        return Part(
            samples=self.samples,
            domains=domains,
            demand=demand,
            counts=(
                self._counts[0],
                self._counts[1],
                self._counts[2],
                self._counts[3],
                self._counts[4],
            ),
            nodes=len(self._node_domain),
            peak_rss_bytes=peak_rss_bytes(),
        )

    def _domain_row(self, name: str, demand: DomainDemand | None) -> dict[str, Any]:
        view = self._view[name]
        in_use = demand.in_use if demand is not None else 0
        traffic = {"messages_in": 0, "messages_out": 0, "octets_in": 0, "octets_out": 0}
        for node in self._nodes_of[name]:
            got = self.net.traffic(node)
            for key in traffic:
                traffic[key] += got[key]
        collisions, denials, clashes, withdraws, claims = view.counts
        row: dict[str, Any] = {
            "level": self._levels[name],
            "nodes": len(self._nodes_of[name]),
            "held": view.held,
            "delegated": view.delegated,
            "local": view.held - view.delegated,
            "in_use": in_use,
            "utilization": (in_use + view.delegated) / view.held if view.held else 0.0,
            "prefixes": view.prefixes,
            "held_prefixes": [str(p) for p in view.held_prefixes],
            "grib": len(view.grib),
            "grib_after": view.grib_after,
            "collisions": collisions,
            "denials": denials,
            "clashes": clashes,
            "withdraws": withdraws,
            "claims_sent": claims,
            **traffic,
        }
        if demand is not None:
            lat = demand.latencies
            row |= {
                "arrivals": demand.arrivals,
                "served_at_once": demand.served_at_once,
                "waited": demand.waited,
                "waiting": demand.waiting,
                "displaced": demand.displaced,
                "granted": demand.granted,
                "peak_in_use": demand.peak_in_use,
                "reports": demand.reports,
                "requests": demand.requests,
                "registrations": demand.registrations,
                "latency_mean": sum(lat) / len(lat) if lat else 0.0,
                "latency_max": max(lat, default=0.0),
            }
        return row


@dataclass(slots=True)
class Part:
    """What one process's collector measured over its nodes (all of them but in a split
    run): :func:`build_report` adds the parts up."""

    samples: list[Sample]
    domains: dict[str, dict[str, Any]]  # the per-domain rows of the report
    demand: dict[str, DomainDemand]
    counts: tuple[int, int, int, int, int]  # collisions, denials, clashes, withdraws, claims
    nodes: int
    peak_rss_bytes: int


def build_report(
    parts: Sequence[Part],
    *,
    scenario: Mapping[str, object],
    wall_seconds: float,
    violations: Sequence[Violation],
) -> Report:
    """The run's report from every process's :class:`Part` (the same sample times in each;
    ``parts[0]`` is this process's): the series summed sample by sample, the domains' rows
    side by side, the totals over all.  Peak RSS is the sum of the processes' peaks: an
    upper bound on what the machine held, as a forked process's peak also counts the pages
    it still shares with process 0.  This process's is read again at the end, so that it
    counts building the report."""
    samples = _summed(p.samples for p in parts)
    domains = {name: row for p in parts for name, row in p.domains.items()}
    domains = dict(sorted(domains.items()))
    demand = {name: d for p in parts for name, d in p.demand.items()}
    counts = [sum(p.counts[i] for p in parts) for i in range(5)]
    nodes = sum(p.nodes for p in parts)
    totals = _totals(samples, domains, demand, counts, nodes)
    totals["processes"] = len(parts)
    totals["compiled_modules"] = len(compiled_modules())  # 0: pure Python (setup.py)
    series = {name: [getattr(s, name) for s in samples] for name in SERIES}
    safety = [str(v) for v in violations]
    return Report(
        scenario=_jsonable(scenario),
        series=series,
        domains=domains,
        totals=totals,
        safety=safety,
        wall_seconds=wall_seconds,
        peak_rss_bytes=peak_rss_bytes() + sum(p.peak_rss_bytes for p in parts[1:]),
        ok=not safety and totals["waiting"] == 0,
    )


# The Sample fields that add up across processes; the rest are the time and two ratios.
_ADDED: Final = tuple(
    n for n in SERIES if n not in ("time_hours", "utilization", "leaf_utilization")
)


def _summed(runs: Iterable[list[Sample]]) -> list[Sample]:
    """Samples of several processes added up, sample by sample (one process's: as they are)."""
    runs = list(runs)
    if len(runs) == 1:
        return runs[0]
    if len({len(r) for r in runs}) != 1:
        raise ValueError(
            f"the processes took different numbers of samples: {[len(r) for r in runs]}"
        )
    out = []
    for row in zip(*runs, strict=True):
        added = {n: sum(getattr(s, n) for s in row) for n in _ADDED}
        held, local, in_use = added["held"], added["local"], added["in_use"]
        out.append(
            Sample(
                time_hours=row[0].time_hours,
                utilization=in_use / held if held else 0.0,
                leaf_utilization=in_use / local if local else 0.0,
                **added,
            )
        )
    return out


def _totals(
    samples: Sequence[Sample],
    domains: Mapping[str, Mapping[str, Any]],
    demand: Mapping[str, DomainDemand],
    counts: Sequence[int],
    nodes: int,
) -> dict[str, Any]:
    last = samples[-1]
    arrivals = sum(d.arrivals for d in demand.values())
    at_once = sum(d.served_at_once for d in demand.values())
    latency = latency_figures([d.latencies for d in demand.values()], at_once)
    return {
        "domains": len(domains),
        "demanding_domains": len(demand),
        "nodes": nodes,
        "held": last.held,
        "local": last.local,
        "in_use": last.in_use,
        "utilization": last.utilization,
        "leaf_utilization": last.leaf_utilization,
        "mean_utilization": _mean(s.utilization for s in samples if s.held),
        "grib_before": last.grib_before,
        "grib_after": last.grib_after,
        "prefixes": last.prefixes,
        "prefixes_per_domain": last.prefixes / len(domains) if domains else 0.0,
        "max_prefixes": max((d["prefixes"] for d in domains.values()), default=0),
        "arrivals": arrivals,
        "served_at_once": at_once,
        "fraction_served_at_once": at_once / arrivals if arrivals else 1.0,
        "waited": sum(d.waited for d in demand.values()),
        "waiting": sum(d.waiting for d in demand.values()),
        "displaced": sum(d.displaced for d in demand.values()),
        **latency,
        "collisions": counts[0],
        "denials": counts[1],
        "clashes": counts[2],
        "withdraws": counts[3],
        "claims_sent": counts[4],
        "messages": sum(d["messages_out"] for d in domains.values()),
        "octets": sum(d["octets_out"] for d in domains.values()),
        "samples": len(samples),
        "virtual_hours": last.time_hours,
    }


def latency_figures(runs: Sequence[Sequence[float]], at_once: int) -> dict[str, float]:
    """The report's latency figures from every domain's waits (``runs``, seconds) and the
    count of sessions served at once (a latency of 0 s each): over every session served,
    the mean, median, 95th percentile and maximum; over those that waited, the mean and
    median.

    At the strawman's scale the waits number millions: a sorted list of them as float
    objects was the largest allocation of a run's last moments, when its peak RSS is
    reached.  So each domain's waits (doubles) are sorted on their own and the runs merged
    in one pass, which picks the ranks wanted as they go by and is summed in ascending
    order, as ``sum(sorted(waits))`` would be."""
    waited = sum(map(len, runs))
    served = at_once + waited

    def rank(q: float) -> int:  # in the waits; negative: among those served at once
        return max(0, math.ceil(q * served) - 1) - at_once

    p50, p95, mid, top = rank(0.5), rank(0.95), waited // 2, waited - 1
    wanted, found = {p50, p95, mid, top}, {}

    def merged() -> Iterator[float]:
        for i, value in enumerate(heapq.merge(*(array("d", sorted(run)) for run in runs))):
            if i in wanted:
                found[i] = value
            yield value

    total = sum(merged())

    def at(r: int) -> float:
        return found[r] if 0 <= r < waited else 0.0

    return {
        "latency_mean": total / served if served else 0.0,
        "latency_p50": at(p50),
        "latency_p95": at(p95),
        "latency_max": at(top),
        "wait_mean": total / waited if waited else 0.0,
        "wait_p50": at(mid),
    }


def _count_totals(counts: Mapping[str, int]) -> tuple[int, int, int, int, int]:
    """(collisions, denials, clashes, withdraws, claims sent) of a runner's counts."""
    withdraws = sum(v for k, v in counts.items() if k.startswith("gone:"))
    claims = sum(v for k, v in counts.items() if k.startswith("claims_sent:"))
    get = counts.get
    return (get("collisions", 0), get("denials", 0), get("clashes", 0), withdraws, claims)


def delegated(held: Sequence[Prefix], children: Iterable[Prefix]) -> int:
    """Addresses of the ``children``'s prefixes (each address once) inside ``held``."""
    return sum(
        p.num_addresses for p in collapse(c for c in children if any(covers(h, c) for h in held))
    )


def aggregated(own: Iterable[Prefix], above: Sequence[Prefix]) -> list[Prefix]:
    """A domain's G-RIB entries left once those covered by an ancestor's entry (``above``)
    are dropped, collapsed."""
    return collapse(p for p in own if not any(covers(a, p) for a in above))


def peak_rss_bytes() -> int:
    """The process's peak resident set size (``ru_maxrss`` is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _union(sets: Iterable[frozenset[Prefix]]) -> frozenset[Prefix]:
    out: frozenset[Prefix] = _NO_PREFIXES
    for s in sets:
        out = s if not out else out | s
    return out


def _mean(values: Iterable[float]) -> float:
    total = count = 0.0
    for v in values:
        total += v
        count += 1
    return total / count if count else 0.0


def _jsonable(value: object) -> Any:
    """Plain JSON types for the scenario echo (tuples -> lists, other objects -> str)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
