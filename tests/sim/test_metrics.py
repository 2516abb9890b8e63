"""The simulator's measurements (masc.sim.metrics): the definitions on exact cases, then the
collector on RFC 2909 Figure 1 checked against a naive recomputation from the engines."""

from __future__ import annotations

import math
from array import array
from ipaddress import IPv4Network

import pytest
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from masc.maas.grants import GrantConfig
from masc.protocol.engine import Policy
from masc.protocol.events import SpaceKind
from masc.protocol.space import collapse, covers
from masc.protocol.wire.messages import Prefix
from masc.sim.demand import DemandDriver, DemandSpec
from masc.sim.metrics import (
    SERIES,
    Collector,
    Part,
    Report,
    Sample,
    aggregated,
    build_report,
    delegated,
    latency_figures,
)
from masc.sim.network import DAY, HOUR, SimNetwork, SimTimers
from masc.sim.safety import Violation
from masc.sim.topology import figure1

Clock = trio.testing.MockClock
N = IPv4Network
FAST = SimTimers(
    waiting_period=1800.0, initiate_claim_delay=60.0, claim_lifetime=4 * DAY, hold_time=0
)
POLICY = Policy(min_child_prefix_size=16)


@given(
    st.lists(st.lists(st.floats(0, 1e7, allow_nan=False), max_size=30), max_size=8),
    st.integers(0, 100),
)
def test_latency_figures_are_those_of_all_waits_sorted(
    runs: list[list[float]], at_once: int
) -> None:
    # The per-domain waits are merged, not concatenated and sorted (memory at the end of a
    # large run): every figure must be what the sorted whole gives.
    waits = sorted(x for run in runs for x in run)
    served = at_once + len(waits)

    def latency(q: float) -> float:  # sessions served at once waited 0 s
        if not served:
            return 0.0
        rank = max(0, math.ceil(q * served) - 1)
        return 0.0 if rank < at_once else waits[rank - at_once]

    assert latency_figures([array("d", run) for run in runs], at_once) == {
        "latency_mean": sum(waits) / served if served else 0.0,
        "latency_p50": latency(0.5),
        "latency_p95": latency(0.95),
        "latency_max": waits[-1] if waits else 0.0,
        "wait_mean": sum(waits) / len(waits) if waits else 0.0,
        "wait_p50": waits[len(waits) // 2] if waits else 0.0,
    }


def test_delegated_counts_children_inside_the_parent_once() -> None:
    held = [N("10.0.0.0/22")]
    children = [
        N("10.0.0.0/24"),
        N("10.0.1.0/24"),
        N("10.0.0.0/25"),  # inside another child's: counted once
        N("11.0.0.0/24"),  # not inside the parent's space
    ]
    assert delegated(held, children) == 512
    assert delegated([], children) == 0
    assert delegated([N("10.0.0.0/23"), N("10.0.4.0/24")], [N("10.0.4.0/26")]) == 64


def test_aggregation_drops_what_an_ancestor_covers_and_collapses_the_rest() -> None:
    own = [N("10.0.0.0/24"), N("12.0.0.0/25"), N("12.0.0.128/25"), N("13.0.0.0/24")]
    above = [N("10.0.0.0/16"), N("13.0.0.0/25")]  # covers the first only
    assert aggregated(own, above) == [N("12.0.0.0/24"), N("13.0.0.0/24")]
    assert aggregated([N("10.0.0.0/25"), N("10.0.0.128/25")], []) == [N("10.0.0.0/24")]


def naive(net: SimNetwork) -> dict[str, dict[str, int]]:
    """The definitions of masc.sim.metrics, computed the slow obvious way."""
    topo, now = net.topology, net.now()
    engines = net.engines()
    held: dict[str, list[Prefix]] = {}
    allocations: dict[str, set[Prefix]] = {}
    grib: dict[str, set[Prefix]] = {}
    for domain in topo.domains:
        nodes = [n for n in topo.nodes_of(domain) if n in engines]
        allocations[domain] = {
            a.prefix
            for n in nodes
            for a in engines[n].allocations.values()
            if a.kind is SpaceKind.DOMAIN and a.expires > now
        }
        held[domain] = collapse(allocations[domain])
        grib[domain] = {p for n in nodes for p in net.grib(n)}
    out: dict[str, dict[str, int]] = {}
    for domain, spec in topo.domains.items():
        children = [c for c, s in topo.domains.items() if domain in s.parents]
        inside = collapse(
            p for c in children for p in held[c] if any(covers(h, p) for h in held[domain])
        )
        above = [p for a in topo.ancestors(domain) for p in grib[a]]
        kept = collapse(p for p in grib[domain] if not any(covers(a, p) for a in above))
        out[domain] = {
            "held": sum(p.num_addresses for p in held[domain]),
            "delegated": sum(p.num_addresses for p in inside),
            "prefixes": len(allocations[domain]),
            "grib": len(grib[domain]),
            "grib_after": len(kept),
            "tld": int(spec.is_tld),
        }
    return out


async def test_figure1_metrics_match_their_definitions(autojump_clock: Clock) -> None:
    topo = figure1()
    net = SimNetwork(topo, timers=FAST, policy=POLICY, maas=GrantConfig(), seed=1, record=False)
    spec = DemandSpec(arrivals_per_hour=10, lifetime_median=6 * HOUR, after=6 * HOUR)
    driver = DemandDriver(net, spec, seed=1)
    collector = Collector(net, driver, interval=HOUR)
    async with net.running(), trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        await nursery.start(collector.run)
        await net.advance(2 * DAY)
        expected = naive(net)
        report = collector.finish(
            scenario={"name": "figure1", "seed": 1}, wall_seconds=1.5, violations=[]
        )
        nursery.cancel_scope.cancel()
    rows = report.domains
    for domain, want in expected.items():
        row = rows[domain]
        for key in ("held", "delegated", "prefixes", "grib", "grib_after"):
            assert row[key] == want[key], (domain, key)
        assert row["local"] == row["held"] - row["delegated"]
        used = row["in_use"] + row["delegated"]
        assert row["utilization"] == (used / row["held"] if row["held"] else 0.0)
    # Exact for Figure 1 once converged: the customers hold their 256 addresses in one
    # prefix (more only if their MAAS needs it), everything nests, so after aggregation
    # the G-RIB holds only the top-level domains' prefixes.
    for customer in ("C5", "C6", "C7"):
        assert rows[customer]["held"] >= 256 and rows[customer]["delegated"] == 0
        assert rows[customer]["level"] == 2 and rows[customer]["arrivals"] > 0
    assert rows["T1"]["level"] == 0 and rows["P3"]["level"] == 1
    assert report.totals["grib_after"] == rows["T1"]["grib_after"] + rows["T2"]["grib_after"]
    assert report.totals["grib_before"] == sum(w["grib"] for w in expected.values())
    top = sum(w["held"] for w in expected.values() if w["tld"])
    in_use = sum(rows[c]["in_use"] for c in ("C5", "C6", "C7"))
    local = sum(rows[c]["local"] for c in ("C5", "C6", "C7"))
    totals = report.totals
    assert totals["held"] == top and totals["in_use"] == in_use > 0
    assert totals["utilization"] == in_use / top
    assert totals["leaf_utilization"] == in_use / local
    assert totals["prefixes"] == sum(w["prefixes"] for w in expected.values())
    # Series: one sample at the start, one per hour, one at the end.
    assert set(report.series) == set(SERIES)
    assert report.series["time_hours"][:3] == [0.0, 1.0, 2.0]
    assert report.series["time_hours"][-1] == 48.0
    assert len(report.series["held"]) == totals["samples"] == 2 * 24 + 2
    assert report.series["held"][0] == 0 and report.series["held"][-1] == top
    assert report.ok and report.safety == [] and report.wall_seconds == 1.5
    assert report.peak_rss_bytes > 10 * 2**20
    assert totals["arrivals"] == sum(rows[c]["arrivals"] for c in ("C5", "C6", "C7"))
    assert 0.0 < totals["fraction_served_at_once"] <= 1.0
    assert totals["latency_p50"] <= totals["latency_p95"] <= totals["latency_max"]


async def test_counts_and_traffic_add_up_over_a_clash(autojump_clock: Clock) -> None:
    """Partitioned from the start the top-level domains claim the same first block; on heal
    one loses (§12.4).  The collector's totals are the nodes' counts and messages."""
    topo = figure1()
    net = SimNetwork(topo, timers=FAST, policy=POLICY, seed=7, record=False)
    net.partition("T1a", "T2a")
    collector = Collector(net, None, interval=HOUR)
    async with net.running(), trio.open_nursery() as nursery:
        await nursery.start(collector.run)
        await net.advance(DAY)
        net.heal("T1a", "T2a")
        await net.advance(DAY)
        violations = net.check_safety()
        report = collector.finish(scenario={}, wall_seconds=0.0, violations=violations)
        counts = {n: net.counts(n) for n in topo.nodes}
        traffic = {n: net.traffic(n) for n in topo.nodes}
        nursery.cancel_scope.cancel()
    totals = report.totals
    assert totals["clashes"] == sum(c["clashes"] for c in counts.values()) >= 1
    assert totals["collisions"] == sum(c["collisions"] for c in counts.values())
    gone = sum(v for c in counts.values() for k, v in c.items() if k.startswith("gone:"))
    assert totals["withdraws"] == gone
    sent = sum(v for c in counts.values() for k, v in c.items() if k.startswith("claims_sent:"))
    assert totals["claims_sent"] == sent
    assert totals["messages"] == sum(t["messages_out"] for t in traffic.values()) > 0
    assert report.series["messages"][-1] == totals["messages"]
    assert report.series["clashes"][-1] == totals["clashes"]
    assert report.series["messages"] == sorted(report.series["messages"])  # cumulative
    for domain, row in report.domains.items():
        nodes = topo.nodes_of(domain)
        assert row["messages_in"] == sum(traffic[n]["messages_in"] for n in nodes)
        assert row["octets_out"] == sum(traffic[n]["octets_out"] for n in nodes)
    # No demand: leaf utilization is over the leaves, which use nothing.
    assert totals["in_use"] == 0 and totals["arrivals"] == 0
    assert report.ok == (violations == [])


async def test_a_crashed_node_holds_nothing_and_its_counts_survive(
    autojump_clock: Clock,
) -> None:
    topo = figure1()
    net = SimNetwork(topo, timers=FAST, policy=POLICY, seed=3, record=False)
    collector = Collector(net, None)
    async with net.running():
        await net.advance(DAY)
        before = collector.sample()
        sent = net.traffic("C7a")["messages_out"]
        net.crash("C7a")
        await net.advance(HOUR)
        during = collector.sample()
        assert during.nodes_up == before.nodes_up - 1
        assert during.messages >= before.messages and sent > 0
        report = collector.finish(scenario={}, wall_seconds=0.0, violations=[])
        assert report.domains["C7"]["held"] == 0
        assert report.domains["C7"]["messages_out"] == sent
        await net.restart("C7a")
        await net.advance(DAY)
        after = collector.sample()
        assert after.nodes_up == before.nodes_up


def test_report_is_not_ok_with_violations_or_waiting_demand() -> None:
    base = Report(
        scenario={},
        series={},
        domains={},
        totals={"waiting": 0},
        safety=[],
        wall_seconds=0.0,
        peak_rss_bytes=0,
        ok=True,
    )
    assert Report.from_dict(base.to_dict()) == base
    assert str(Violation("overlap", "T1 and T2")) == "overlap: T1 and T2"


def _sample(hours: float, held: int, local: int, in_use: int, messages: int) -> Sample:
    return Sample(
        time_hours=hours,
        held=held,
        local=local,
        in_use=in_use,
        waiting=1,
        utilization=in_use / held,
        leaf_utilization=in_use / local,
        grib_before=2,
        grib_after=1,
        prefixes=2,
        collisions=1,
        clashes=0,
        withdraws=0,
        messages=messages,
        octets=10 * messages,
        nodes_up=3,
    )


def _part(samples: list[Sample], domain: str) -> Part:
    row = {"prefixes": 2, "messages_out": samples[-1].messages, "octets_out": 0}
    return Part(samples, {domain: row}, {}, (1, 0, 0, 0, 2), 3, 0)


def test_the_parts_of_a_split_run_add_up_sample_by_sample() -> None:
    a = _part([_sample(0, 100, 50, 10, 5), _sample(1, 200, 100, 40, 9)], "B")
    b = _part([_sample(0, 300, 150, 30, 7), _sample(1, 200, 100, 60, 11)], "A")
    report = build_report([a, b], scenario={}, wall_seconds=1.0, violations=[])
    assert report.series["held"] == [400, 400]
    assert report.series["in_use"] == [40, 100]
    assert report.series["utilization"] == [0.1, 0.25]  # recomputed, not added
    assert report.series["leaf_utilization"] == [0.2, 0.5]
    assert report.series["messages"] == [12, 20]
    assert report.series["time_hours"] == [0, 1]
    assert list(report.domains) == ["A", "B"]  # sorted, as in one process
    assert report.totals["collisions"] == 2 and report.totals["claims_sent"] == 4
    assert report.totals["nodes"] == 6 and report.totals["processes"] == 2


def test_parts_with_different_samples_are_refused() -> None:
    a = _part([_sample(0, 100, 50, 10, 5)], "A")
    b = _part([_sample(0, 100, 50, 10, 5), _sample(1, 100, 50, 10, 5)], "B")
    with pytest.raises(ValueError, match="different numbers of samples"):
        build_report([a, b], scenario={}, wall_seconds=1.0, violations=[])
