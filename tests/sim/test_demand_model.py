"""The demand model (masc.sim.demand): the sans-IO session arithmetic, then the driver playing
MAASs against a small simulated network in virtual time (RFC 2909 §17.1, RFC 2908 §3, §5)."""

from __future__ import annotations

import math
import random
import statistics
from ipaddress import IPv4Network

import pytest
import trio.testing

from masc.maas.grants import GrantConfig
from masc.protocol.constants import Role
from masc.protocol.wire.messages import DomainId, NodeId
from masc.sim.demand import (
    LOOKAHEAD,
    TICK,
    DemandDriver,
    DemandSpec,
    DomainDemand,
    GrowthSessions,
    MaasModel,
    PoissonSessions,
    Shape,
    growth_fraction,
    growth_inverse,
    growth_target,
)
from masc.sim.network import DAY, HOUR, SimNetwork, SimTimers
from masc.sim.topology import DomainSpec, LinkSpec, NodeSpec, Topology, strawman

Clock = trio.testing.MockClock
SEED = 20240607
P1 = IPv4Network("239.192.0.0/28")  # 16 addresses
P2 = IPv4Network("239.192.0.16/28")


class Script:
    """A session source from a list of (arrival, lifetime)."""

    def __init__(self, sessions: list[tuple[float, float]]) -> None:
        self._sessions = list(sessions)

    def draw(self) -> tuple[float, float]:
        return self._sessions.pop(0) if self._sessions else (math.inf, math.inf)


def model(sessions: list[tuple[float, float]], size: int = 1) -> MaasModel:
    return MaasModel(Script(sessions), DomainDemand("D", "Da"), size=size)


# --- session sources -------------------------------------------------------------------------


def test_poisson_arrivals_have_the_asked_mean_rate() -> None:
    print("seed", SEED)
    source = PoissonSessions(random.Random(SEED), rate=10 / HOUR, median=DAY, sigma=1.0)
    times = [source.draw()[0] for _ in range(20_000)]
    gaps = [b - a for a, b in zip([0.0, *times], times, strict=False)]
    assert statistics.fmean(gaps) == pytest.approx(HOUR / 10, rel=0.03)
    assert times == sorted(times)


def test_lifetimes_are_log_normal_with_the_asked_median() -> None:
    source = PoissonSessions(random.Random(SEED), rate=1.0, median=7 * DAY, sigma=1.0)
    lifetimes = [source.draw()[1] for _ in range(20_000)]
    assert statistics.median(lifetimes) == pytest.approx(7 * DAY, rel=0.04)
    logs = [math.log(x) for x in lifetimes]
    assert statistics.stdev(logs) == pytest.approx(1.0, rel=0.03)


def test_sources_are_deterministic_per_seed() -> None:
    def draws(seed: int) -> list[tuple[float, float]]:
        source = PoissonSessions(random.Random(seed), rate=1 / HOUR, median=DAY, sigma=1.0)
        return [source.draw() for _ in range(50)]

    assert draws(SEED) == draws(SEED)
    assert draws(SEED) != draws(SEED + 1)


def test_poisson_with_no_arrivals_draws_nothing() -> None:
    source = PoissonSessions(random.Random(1), rate=0.0, median=DAY, sigma=1.0)
    assert source.draw() == (math.inf, math.inf)


SHAPES: list[Shape] = ["linear", "exponential", "logistic"]


@pytest.mark.parametrize("shape", SHAPES)
def test_growth_curves_run_from_start_to_end_and_invert(shape: Shape) -> None:
    xs = [i / 20 for i in range(21)]
    ys = [growth_fraction(shape, x, start=10, end=1000) for x in xs]
    assert ys[0] == pytest.approx(0.0, abs=1e-12) and ys[-1] == pytest.approx(1.0)
    assert ys == sorted(ys)
    for x, y in zip(xs, ys, strict=True):
        assert growth_inverse(shape, y, start=10, end=1000) == pytest.approx(x, abs=1e-9)


def test_growth_curve_shapes() -> None:
    assert growth_fraction("linear", 0.5) == 0.5
    # Exponential: slow first (convex); from 0 addresses it grows addresses + 1.
    assert growth_fraction("exponential", 0.5, start=0, end=1023) == pytest.approx(31 / 1023)
    # Logistic: symmetric S-curve, flat at both ends, steepest in the middle.
    assert growth_fraction("logistic", 0.5) == pytest.approx(0.5)
    assert growth_fraction("logistic", 0.2) == pytest.approx(1 - growth_fraction("logistic", 0.8))
    assert growth_fraction("logistic", 0.1) < 0.05


def test_growth_target_is_flat_after_the_ramp_and_scaled() -> None:
    spec = DemandSpec(model="growth", start=100, end=1100, ramp=10 * DAY)
    assert growth_target(spec, 0.0) == 100
    assert growth_target(spec, 5 * DAY) == pytest.approx(600)
    assert growth_target(spec, 10 * DAY) == growth_target(spec, 20 * DAY) == 1100
    assert growth_target(spec, 5 * DAY, scale=1.5) == pytest.approx(900)


@pytest.mark.parametrize("shape", SHAPES)
def test_growth_sessions_follow_the_target(shape: Shape) -> None:
    spec = DemandSpec(
        model="growth", start=20, end=500, ramp=10 * DAY, shape=shape, addresses_per_session=4
    )
    source = GrowthSessions(spec, scale=1.2, begin=HOUR)
    arrivals = []
    while (t := source.draw()[0]) != math.inf:
        arrivals.append(t)
    assert arrivals == sorted(arrivals)
    assert len(arrivals) == int(1.2 * 500) // 4
    for day in (0.0, 2.5, 5.0, 7.5, 10.0):
        t = HOUR + day * DAY
        served = sum(1 for a in arrivals if a <= t + 1e-6)
        assert served == int(growth_target(spec, t - HOUR, scale=1.2) + 1e-6) // 4


def test_demand_spec_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="start <= end"):
        DemandSpec(start=10, end=5)
    with pytest.raises(ValueError, match="addresses_per_session"):
        DemandSpec(addresses_per_session=0)
    with pytest.raises(ValueError, match="jitter"):
        DemandSpec(jitter=1.0)


# --- one MAAS --------------------------------------------------------------------------------


def test_sessions_fit_wait_and_are_served_fifo_when_space_arrives() -> None:
    m = model([(float(t), 100.0) for t in range(1, 21)])
    m.granted(P1, active=True, now=0.0)
    m.advance(20.0)
    assert (m.stats.arrivals, m.stats.served_at_once, m.stats.waited) == (20, 16, 4)
    assert m.in_use == 16 and len(m.waiting) == 4 and m.shortfall() == 4
    m.granted(P2, active=True, now=30.0)
    assert m.in_use == 20 and not m.waiting
    # Arrived at 17..20, served at 30.
    assert list(m.stats.latencies) == [13.0, 12.0, 11.0, 10.0]


def test_a_departure_makes_room_for_the_head_of_the_queue_at_once() -> None:
    m = model([(1.0, 5.0), (2.0, 100.0), (3.0, 100.0)])
    m.granted(IPv4Network("239.192.0.0/31"), active=True, now=0.0)  # room for two
    m.advance(10.0)
    # The first session ends at 6: the third, waiting since 3, is served then.
    assert list(m.stats.latencies) == [3.0]
    assert m.in_use == 2 and m.stats.departures == 1


def test_deprecated_grants_take_no_new_sessions_and_drain_first() -> None:
    m = model([(1.0, 10.0), (2.0, 100.0), (20.0, 100.0)])
    m.granted(P1, active=True, now=0.0)
    m.advance(5.0)
    m.set_active(P1, False, now=5.0)
    m.granted(P2, active=True, now=5.0)
    m.advance(30.0)  # the session ending at 11 frees P1 (deprecated) first
    assert m.rooms[P1].used == 1 and m.rooms[P2].used == 1
    assert m.by_prefix() == {P1: 1, P2: 1}


def test_a_revoked_grant_displaces_its_sessions_which_rehome() -> None:
    m = model([(float(t), 1000.0) for t in range(1, 6)])
    m.granted(P1, active=True, now=0.0)
    m.advance(10.0)
    assert m.revoked(P1, now=10.0) == 5
    assert m.in_use == 0 and len(m.waiting) == 5 and m.stats.displaced == 5
    m.granted(P2, active=True, now=25.0)
    assert m.in_use == 5 and m.stats.rehomed == 5 and m.stats.rehome_latency_max == 15.0
    assert list(m.stats.latencies) == []  # not new demand: counted apart


def test_sessions_that_never_end_are_displaced_before_those_that_do() -> None:
    # Growth sessions never end (their end is counted, not kept among the sorted ends): a
    # revoked grant displaces the sessions ending last, so these first.
    m = model([(1.0, 100.0), (2.0, math.inf), (3.0, math.inf), (4.0, 50.0), (5.0, 10.0)])
    m.granted(IPv4Network("239.192.0.0/30"), active=True, now=0.0)  # room for four
    m.advance(10.0)  # the fifth waits
    m.granted(P1, active=True, now=10.0)  # ... and is served here, ending at 20
    assert m.revoked(P1, now=10.0) == 1
    assert [w.end for w in m.waiting.displaced] == [math.inf]
    m.granted(P2, active=True, now=12.0)
    assert m.stats.rehomed == 1 and m.in_use == 5 and not m.waiting
    m.advance(60.0)  # the ones ending at 20 and 54 are gone; 101 is still ahead
    assert m.in_use == 3 and m.stats.departures == 2
    m.advance(1e9)
    assert m.in_use == 2 and m.stats.departures == 3  # the endless two stay


def test_the_wait_queue_keeps_fifo_order_across_its_compactions() -> None:
    # Thousands wait, more arrive behind them, and grants serve them a few thousand at a
    # time: the queue's arrays shed their served part without losing or reordering one.
    n, more = 10_000, 3_000
    arrivals = [float(t) for t in range(1, n + 1)]
    arrivals += [n + 1 + k / more for k in range(more)]
    lifetimes = [1e6 + i for i in range(n + more)]  # each its own, so a mix-up shows
    m = model(list(zip(arrivals, lifetimes, strict=True)))
    m.advance(float(n))
    m.granted(IPv4Network("239.1.0.0/20"), active=True, now=n + 1.0)  # 4,096
    m.advance(n + 1.5)
    m.granted(IPv4Network("239.2.0.0/21"), active=True, now=n + 2.0)  # 2,048
    m.advance(n + 2.5)
    m.granted(IPv4Network("239.3.0.0/19"), active=True, now=n + 3.0)  # 8,192
    assert m.stats.served_after_wait == n + more and not m.waiting
    served_at = [n + 1.0] * 4096 + [n + 2.0] * 2048 + [n + 3.0] * (n + more - 6144)
    assert list(m.stats.latencies) == [g - a for g, a in zip(served_at, arrivals, strict=True)]
    ends = [g + life for g, life in zip(served_at, lifetimes, strict=True)]
    for t in (n + 1e6 + 3000.5, n + 1e6 + 7000.5):
        m.advance(t)
        assert m.stats.departures == sum(end <= t for end in ends)


def test_orphaned_sessions_keep_their_addresses_but_take_no_new_ones() -> None:
    m = model([(1.0, 50.0), (2.0, 50.0), (60.0, 50.0)])
    m.granted(P1, active=True, now=0.0)
    m.advance(10.0)
    m.orphan_all(now=10.0)  # the node restarted
    assert m.in_use == 2 and m.orphan == 2 and m.room() == 0
    m.advance(58.0)
    assert m.in_use == 0 and m.orphan == 0
    m.advance(60.0)
    assert len(m.waiting) == 1  # no grant from the new incarnation yet


def test_usage_reports_are_due_on_change_interval_and_high_mark() -> None:
    m = model([(float(t), 1e6) for t in range(1, 100)])
    m.granted(IPv4Network("239.192.0.0/26"), active=True, now=0.0)  # 64
    m.advance(30.0)
    kw = {"interval": 600.0, "change": 0.1, "high": 0.9}
    assert not m.report_due(30.0, last=0.0, reported=28, **kw)  # too soon
    assert m.report_due(600.0, last=0.0, reported=20, **kw)  # moved >= 10 %
    assert not m.report_due(600.0, last=0.0, reported=29, **kw)  # moved 1 < 2.9
    m.advance(58.0)  # 58 >= 0.9 x 64 = 57.6: crossed the high mark
    assert m.report_due(700.0, last=0.0, reported=56, **kw)
    assert not m.report_due(700.0, last=0.0, reported=58, **kw)  # nothing new


def test_next_wake_never_misses_a_wait() -> None:
    """Between now and next_wake no arrival waits, whatever the departures (conservative)."""
    rng = random.Random(SEED)
    for _ in range(200):
        source = PoissonSessions(rng, rate=1 / 60, median=600.0, sigma=1.5)
        m = MaasModel(source, DomainDemand("D", "Da"))
        m.granted(IPv4Network("239.192.0.0/27"), active=True, now=0.0)
        now = 0.0
        for _ in range(20):
            wake = m.next_wake(
                last=now, reported=m.in_use, interval=600.0, change=0.1, high=0.9, requested=0
            )
            assert wake > now or m.waiting
            before = m.stats.waited
            m.advance(min(wake, now + 1e5) - 1e-9)
            assert m.stats.waited == before
            now = min(wake, now + 1e5)
            m.advance(now)
            if m.waiting:
                m.granted(IPv4Network("239.192.0.0/26"), active=True, now=now)
    assert LOOKAHEAD >= 1


# --- the driver, on a small network ----------------------------------------------------------

FAST = SimTimers(
    waiting_period=600.0, initiate_claim_delay=60.0, claim_lifetime=2 * DAY, hold_time=0
)


def two_tlds() -> Topology:
    return Topology(
        {
            "T1": DomainSpec("T1", DomainId(64_601), demand=256),
            "T2": DomainSpec("T2", DomainId(64_602), demand=256),
        },
        {
            "T1a": NodeSpec("T1a", "T1", NodeId(0x0A000101)),
            "T2a": NodeSpec("T2a", "T2", NodeId(0x0A000201)),
        },
        (LinkSpec("T1a", "T2a", Role.SIBLING),),
    )


async def one_day_of_sessions() -> tuple[SimNetwork, dict[str, DomainDemand]]:
    """Two TLDs, 30 sessions an hour from the first hour, run for a day: the network and
    the driver's stats."""
    net = SimNetwork(two_tlds(), timers=FAST, maas=GrantConfig(), seed=1, record=False)
    spec = DemandSpec(arrivals_per_hour=30, lifetime_median=2 * HOUR, after=HOUR)
    driver = DemandDriver(net, spec, seed=SEED)
    async with net.running(), trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        await net.advance(DAY)
        stats = driver.stats(now=trio.current_time())
        nursery.cancel_scope.cancel()
    return net, stats


async def test_driver_serves_sessions_from_granted_space(autojump_clock: Clock) -> None:
    net, stats = await one_day_of_sessions()
    assert set(stats) == {"T1", "T2"}
    for s in stats.values():
        print(s.domain, s.arrivals, s.served_at_once, s.waited, s.in_use, s.granted, s.reports)
        assert s.arrivals > 500 and s.waiting == 0
        assert s.served_at_once / s.arrivals > 0.95
        assert 0 < s.in_use <= s.granted
        assert s.registrations == 1 and s.reports >= 2
        # Usage reports are rate limited: far fewer than arrivals and departures.
        assert s.reports < s.arrivals / 5
    assert net.check_safety() == []


async def test_waiting_sessions_are_served_when_grants_arrive(autojump_clock: Clock) -> None:
    """Demand from t=0: the domains hold nothing before their first claims' waiting period
    (§5.1), so the first sessions wait, the MAAS asks for space, and they are served as soon
    as it is granted; their latency is recorded."""
    net = SimNetwork(two_tlds(), timers=FAST, maas=GrantConfig(), seed=2, record=False)
    spec = DemandSpec(arrivals_per_hour=60, lifetime_median=HOUR)
    driver = DemandDriver(net, spec, seed=SEED)
    async with net.running(), trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        await net.advance(6 * HOUR)
        stats = driver.stats(now=trio.current_time())
        nursery.cancel_scope.cancel()
    for s in stats.values():
        assert s.waited > 0 and s.requests > 0
        assert s.served_after_wait == s.waited and s.waiting == 0
        assert len(s.latencies) == s.waited
        # Nothing is usable before one waiting period (600 s after a claim sent within the
        # first minute), so the first sessions wait minutes; a
        # session queued behind others may be served the instant the MAAS asks (0 s).
        assert min(s.latencies) >= 0 and max(s.latencies) >= 300.0
        assert max(s.latencies) <= 3 * HOUR


async def test_a_restarted_node_gets_its_maas_again(autojump_clock: Clock) -> None:
    net = SimNetwork(two_tlds(), timers=FAST, maas=GrantConfig(), seed=3, record=False)
    spec = DemandSpec(arrivals_per_hour=30, lifetime_median=6 * HOUR, after=HOUR)
    driver = DemandDriver(net, spec, seed=SEED)
    async with net.running(), trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        await net.advance(6 * HOUR)
        in_use = driver.stats(now=trio.current_time())["T1"].in_use
        assert in_use > 0
        net.crash("T1a")
        await net.advance(HOUR)
        # The MAAS keeps serving from the grants it holds while its node is down.
        down = driver.stats(now=trio.current_time())["T1"]
        assert down.registrations == 1 and down.in_use > 0
        await net.restart("T1a")
        await net.advance(HOUR)
        assert net.grants("T1a").maas() == {"maas": ()}
        assert net.grants("T1a").grants("maas")  # the new incarnation granted it space
        await net.advance(DAY)
        stats = driver.stats(now=trio.current_time())
        nursery.cancel_scope.cancel()
    t1 = stats["T1"]
    assert t1.registrations == 2 and t1.waiting == 0
    assert stats["T2"].registrations == 1
    assert net.check_safety() == []


async def test_no_demand_model_registers_nothing(autojump_clock: Clock) -> None:
    net = SimNetwork(two_tlds(), timers=FAST, maas=GrantConfig(), seed=4, record=False)
    driver = DemandDriver(net, DemandSpec(model="none"), seed=SEED)
    async with net.running(), trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        await net.advance(HOUR)
        nursery.cancel_scope.cancel()
    assert driver.stats() == {}
    assert net.grants("T1a").maas() == {}


async def test_a_poisson_load_is_served_at_once_after_the_bootstrap(autojump_clock: Clock) -> None:
    """Regression: sessions queued during the bootstrap made the MAAS ask for ever larger
    blocks (doubling its outstanding request each time), which stranded large aligned
    blocks and fragmented the domain's space, so sessions waited for days while the domain
    held plenty of free space.  A MAAS asks for its shortfall only and reports what it
    wants (in use plus waiting) so the grant table pre-allocates; after the first claims,
    a Poisson load is served at once and nothing waits at the end."""
    topo = strawman(SEED, tlds=1, children=4)
    net = SimNetwork(topo, timers=FAST, maas=GrantConfig(), seed=5, record=False)
    spec = DemandSpec(arrivals_per_hour=20, lifetime_median=DAY, domains="all")
    driver = DemandDriver(net, spec, seed=SEED)
    async with net.running(), trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        await net.advance(DAY)  # the bootstrap: sessions wait for the first claims
        before = driver.stats(now=trio.current_time())
        early = {d: (s.arrivals, s.served_at_once) for d, s in before.items()}
        await net.advance(3 * DAY)
        stats = driver.stats(now=trio.current_time())
        nursery.cancel_scope.cancel()
    assert len(stats) == 5
    for s in stats.values():
        arrivals = s.arrivals - early[s.domain][0]
        at_once = s.served_at_once - early[s.domain][1]
        print(s.domain, arrivals, at_once, s.waiting, s.in_use, s.granted, s.reports, s.requests)
        assert arrivals > 1000
        assert at_once / arrivals >= 0.9
        assert s.waiting == 0
        assert s.in_use <= s.granted
    assert net.check_safety() == []


async def test_a_maas_with_sessions_waiting_still_reports_its_usage(
    autojump_clock: Clock,
) -> None:
    """Regression: a MAAS whose sessions waited reported its usage once and then only asked
    for space until its queue drained.  Under demand that keeps growing the queue never
    drains: its node kept planning (§17.1.2) from the in-use count of the hour the first
    session waited (0 here), and the MAAS never got even the space its domain could hold.
    Here the only domain's pool is a /22 and its demand grows by 65,536 addresses a day:
    sessions wait from the first hour to the end, the MAAS fills the whole /22, and the
    node's grant table knows it."""
    topo = Topology(
        {"T1": DomainSpec("T1", DomainId(64_601), demand=256)},
        {"T1a": NodeSpec("T1a", "T1", NodeId(0x0A000101))},
        (),
        global_pool=(IPv4Network("228.0.0.0/22"),),
    )
    net = SimNetwork(topo, timers=FAST, maas=GrantConfig(), seed=6, record=False)
    spec = DemandSpec(
        model="growth", end=65_536, ramp=DAY, jitter=0.0, domains="all", report_interval=HOUR
    )
    driver = DemandDriver(net, spec, seed=SEED)
    seen: list[tuple[int, int, int]] = []  # (waiting, in use, in use the node was told)
    async with net.running(), trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        for _ in range(12):
            await net.advance(HOUR)
            s = driver.stats(now=trio.current_time())["T1"]
            seen.append((s.waiting, s.in_use, net.grants("T1a").in_use("maas")))
        nursery.cancel_scope.cancel()
    print(seen)
    assert all(waiting > 0 for waiting, _, _ in seen)
    assert seen[-1][1:] == (1024, 1024)  # the whole pool in use, and the node told so


async def test_driver_visits_every_maas_due_in_one_tick_at_once(
    autojump_clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The driver wakes on TICK boundaries only, however many MAASs are due in between:
    every visit happens at a multiple of TICK (after its own due time), and there are
    fewer distinct wake-ups than visits."""
    visits: list[float] = []
    visit = DemandDriver._visit

    async def recorded(self: DemandDriver, m: object, now: float) -> None:
        visits.append(now)
        await visit(self, m, now)  # type: ignore[arg-type]

    monkeypatch.setattr(DemandDriver, "_visit", recorded)
    await one_day_of_sessions()
    assert len(visits) > 50
    # Visits prompted by grants come at once; all the others on a tick.
    on_tick = [t for t in visits if math.isclose(t / TICK, round(t / TICK), abs_tol=1e-9)]
    assert len(on_tick) >= 0.9 * len(visits)
    assert len(set(visits)) < len(visits)
