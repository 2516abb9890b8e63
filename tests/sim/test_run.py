"""Running scenario files end to end (masc.sim.run): RFC 2909 Figure 1 and a 100-domain
random hierarchy for a few virtual days under a MockClock.  The safety checker finds
nothing, every demanding domain's demand is served (nothing left waiting, every arrival
served), and the metrics, JSON and PNG are produced.

The claim timers are shortened (a 2-hour waiting period instead of §6's 48 hours) so that
three levels hold space on the first day; keepalives are off (§7.2 allows a zero hold
time), as they would be most of the events.  The random hierarchy has 20 top-level domains,
so that a parent has a few children: with four, a parent with a dozen children and no MAAS
of its own does not grow its managed space for them (the engine plans growth from MAAS
demand), and some children are left without space.
"""

from __future__ import annotations

import gc
import json
from pathlib import Path

import pytest
import trio
import trio.testing

from masc.protocol.engine import ClaimEngine
from masc.sim.metrics import Report
from masc.sim.run import _GC_THRESHOLDS, run_scenario_file, run_simulation, simulate
from masc.sim.scenario_file import SimScenario, load_and_resolve

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

TIMERS = """
[timers]
waiting_period = "2h"
initiate_claim_delay = "5m"
hold_time = 0
"""

FIGURE1 = (
    """
name = "fig1"
seed = 1
duration = "3d"
[topology]
kind = "figure1"
[demand]
model = "poisson"
arrivals_per_hour = 2.0
lifetime_median = "6h"
"""
    + TIMERS
)

RANDOM100 = (
    """
name = "random100"
seed = 7
duration = "2d"
sample_interval = "2h"
[topology]
kind = "random"
domains = 100
levels = 3
tlds = 20
max_nodes = 1
sibling_degree = 0.5
[demand]
model = "poisson"
arrivals_per_hour = 0.5
lifetime_median = "6h"
"""
    + TIMERS
)


def scenario(tmp_path: Path, text: str) -> SimScenario:
    path = tmp_path / "s.toml"
    path.write_text(text)
    return load_and_resolve(path)


async def run(s: SimScenario) -> Report:
    return await simulate(s)


def check(report: Report, s: SimScenario) -> None:
    assert report.safety == []
    assert report.ok
    domains = report.domains
    assert set(domains) == set(s.topology.domains)  # the per-domain table is complete
    demanding = [row for row in domains.values() if "arrivals" in row]
    assert demanding
    for row in demanding:
        assert row["arrivals"] > 0
        assert row["waiting"] == 0
        assert row["served_at_once"] + row["waited"] == row["arrivals"]
        assert row["held"] > 0
    totals = report.totals
    assert totals["arrivals"] == sum(row["arrivals"] for row in demanding)
    assert totals["waiting"] == 0
    assert 0 < totals["fraction_served_at_once"] <= 1
    series = report.series
    assert len(series["time_hours"]) >= s.duration / s.sample_interval
    assert max(series["held"]) > 0 and max(series["in_use"]) > 0
    assert max(series["grib_before"]) >= max(series["grib_after"]) > 0
    assert report.scenario["name"] == s.name


async def test_figure1_scenario_is_safe_and_serves_every_demand(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    s = scenario(tmp_path, FIGURE1)
    report = await run(s)
    check(report, s)
    assert {d for d, row in report.domains.items() if "arrivals" in row} == {"C5", "C6", "C7"}


async def test_random_hierarchy_of_100_domains_is_safe_and_serves_every_demand(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    s = scenario(tmp_path, RANDOM100)
    assert len(s.topology.domains) == 100
    report = await run(s)
    check(report, s)
    assert report.totals["demanding_domains"] >= 50


async def test_faults_are_played_and_healed_before_the_safety_check(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    s = scenario(
        tmp_path,
        FIGURE1.replace('duration = "3d"', 'duration = "1d"\nquiet = "6h"')
        + """
[policy]
restore_from = ["parent", "internal", "child", "sibling"]
[faults]
random = 3
between = ["8h", "20h"]
heal_after = ["10m", "1h"]
[[faults.event]]
at = "12h"
kind = "partition"
a = "T1a"
b = "T2a"
[[faults.event]]
at = "13h"
kind = "crash"
a = "C6b"
""",
    )
    assert len(s.actions) == 8
    report = await run(s)
    assert report.safety == []
    assert report.series["nodes_up"][-1] == len(s.topology.nodes)  # C6b came back
    assert report.totals["virtual_hours"] == pytest.approx(30.0)


async def test_no_demand_model(autojump_clock: trio.testing.MockClock, tmp_path: Path) -> None:
    s = scenario(tmp_path, 'duration = "1d"\n[demand]\nmodel = "none"\n' + TIMERS)
    report = await run(s)
    assert report.ok and report.safety == []
    assert report.totals["arrivals"] == 0
    assert report.totals["held"] > 0


# A shrunk Appendix B strawman with growing demand and short timers: leaves hearing their
# siblings' claims, renewals, prefixes timing out and being replaced, within a few seconds.
SMALL_STRAWMAN = """
name = "small-strawman"
seed = 3
duration = "4d"
sample_interval = "6h"
[topology]
kind = "strawman"
tlds = 3
children = 8
[allocator]
renew_interval = "4h"
[demand]
model = "growth"
domains = "all"
end = 1024
ramp = "5d"
jitter = 0.5
after = "4h"
report_interval = "1h"
""" + TIMERS.replace("hold_time = 0", 'hold_time = 0\nclaim_lifetime = "1d"')


def test_the_plan_and_occupied_set_memos_change_no_figure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A leaf's plan that found nothing is not redone until its inputs change
    (ClaimEngine._plan): here each plan the memo skipped is run anyway, right after, and
    must change nothing.  The occupied set drops claims timing out in place
    (ClaimEngine._taken_now).  With both memos turned off the same run (each on a fresh
    clock) gives the same report."""
    s = scenario(tmp_path, SMALL_STRAWMAN)
    plan, plan_kinds = ClaimEngine._plan, ClaimEngine._plan_kinds
    count = {"made": 0, "skipped": 0}

    def counted_kinds(engine: ClaimEngine) -> None:
        count["made"] += 1
        plan_kinds(engine)

    def checked_plan(engine: ClaimEngine) -> None:
        made = count["made"]
        plan(engine)
        if count["made"] > made:
            return
        count["skipped"] += 1
        state = (
            list(engine.scheduled),
            dict(engine._blocked_until),
            dict(engine._stuck),
            list(engine._events),
            engine.rng.getstate(),  # type: ignore[attr-defined]
        )
        plan_kinds(engine)
        assert (
            list(engine.scheduled),
            engine._blocked_until,
            engine._stuck,
            engine._events,
            engine.rng.getstate(),  # type: ignore[attr-defined]
        ) == state

    monkeypatch.setattr(ClaimEngine, "_plan", checked_plan)
    monkeypatch.setattr(ClaimEngine, "_plan_kinds", counted_kinds)
    with_memos = run_simulation(s, None, plot_png=False).to_dict()
    assert count["skipped"] > count["made"] > 1000  # the memo was used, and much
    monkeypatch.setattr(ClaimEngine, "_plan_key", lambda engine: None)
    monkeypatch.setattr(ClaimEngine, "_taken_now", lambda engine, kind: None)
    without = run_simulation(s, None, plot_png=False).to_dict()
    for report in (with_memos, without):
        del report["wall_seconds"], report["peak_rss_bytes"]
    assert with_memos["totals"]["claims_sent"] > 100
    assert with_memos == without


def test_run_scenario_file_writes_json_and_png(tmp_path: Path) -> None:
    path = tmp_path / "fig1.toml"
    path.write_text(FIGURE1.replace('duration = "3d"', 'duration = "1d"'))
    out = tmp_path / "out"
    report = run_scenario_file(path, out, seed=2)
    data = json.loads((out / "report.json").read_text())
    assert data["ok"] is report.ok
    assert data["scenario"]["seed"] == 2
    assert data["scenario"]["duration"] == 86_400.0
    assert (out / "report.png").read_bytes().startswith(PNG_SIGNATURE)


def test_run_simulation_without_plot_or_files(tmp_path: Path) -> None:
    s = scenario(tmp_path, FIGURE1.replace('duration = "3d"', 'duration = "12h"'))
    run_simulation(s, tmp_path / "json-only", plot_png=False)
    assert (tmp_path / "json-only" / "report.json").exists()
    assert not (tmp_path / "json-only" / "report.png").exists()
    report = run_simulation(s, None)
    assert report.totals["virtual_hours"] == pytest.approx(12.0)
    assert not (tmp_path / "sim-out").exists()


def test_a_run_collects_cyclic_garbage_less_often_and_restores_the_thresholds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run's gc thresholds are raised (masc.sim.run._GC_THRESHOLDS) and put back."""
    seen: list[tuple[int, ...]] = []
    real = simulate

    async def recording(scenario: SimScenario) -> Report:
        seen.append(gc.get_threshold())
        return await real(scenario)

    monkeypatch.setattr("masc.sim.run.simulate", recording)
    before = gc.get_threshold()
    s = scenario(tmp_path, FIGURE1.replace('duration = "3d"', 'duration = "2h"'))
    run_simulation(s, None)
    assert seen == [_GC_THRESHOLDS] and _GC_THRESHOLDS[0] > before[0]
    assert gc.get_threshold() == before
