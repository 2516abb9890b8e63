"""Run a scenario (:mod:`masc.sim.scenario_file`) and measure it: what ``masc sim`` does.

One run, in virtual time (``trio.testing.MockClock(autojump_threshold=0)``):

1. every node of the topology starts (:class:`~masc.sim.network.SimNetwork`, the daemon's
   engines, session FSMs and grant tables over in-memory streams), with trio's scheduler
   seeded from the scenario's seed (:func:`~masc.sim.network.seed_scheduler`);
2. the demand driver (:mod:`masc.sim.demand`) plays each demanding domain's MAAS and the
   collector (:mod:`masc.sim.metrics`) samples every ``sample_interval``;
3. the fault schedule (:mod:`masc.sim.faults`) is carried out until ``duration``;
4. at ``duration`` every partition is healed and every crashed node restarted, and the run
   goes on for the quiet period (demand and sampling continuing) so that the protocol can
   converge (:func:`~masc.sim.scenario.quiet_period`);
5. the safety checker (:mod:`masc.sim.safety`) runs, and the collector turns what it saw
   into a :class:`~masc.sim.metrics.Report`, written as JSON and, with matplotlib, a PNG
   (:mod:`masc.sim.report`).
"""

from __future__ import annotations

import gc
import importlib.util
import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import trio
import trio.testing

from masc.sim.demand import DemandDriver
from masc.sim.metrics import Collector, Report
from masc.sim.network import SimNetwork, seed_scheduler
from masc.sim.report import INSTALL_HINT, PlotUnavailable, write_json
from masc.sim.report import plot as plot_report
from masc.sim.scenario import apply
from masc.sim.scenario_file import SimScenario, load_and_resolve

__all__ = [
    "PlotUnavailable",
    "check_plotting",
    "default_out_dir",
    "run_scenario_file",
    "run_simulation",
    "simulate",
]

REPORT_JSON: Final = "report.json"
REPORT_PNG: Final = "report.png"


async def simulate(scenario: SimScenario) -> Report:
    """Run ``scenario`` (inside ``trio.run`` with a MockClock; module docstring) and return
    its report.  ``wall_seconds`` in the report is the real time this took."""
    started = time.perf_counter()
    seed_scheduler(scenario.seed)
    net = SimNetwork(
        scenario.topology,
        timers=scenario.timers,
        policy=scenario.policy,
        seed=scenario.seed,
        record=False,
        allocator=scenario.allocator,
        maas=scenario.grants,
    )
    driver = None
    if scenario.demand.model != "none":
        driver = DemandDriver(net, scenario.demand, seed=scenario.seed)
    collector = Collector(net, driver, interval=scenario.sample_interval)
    async with trio.open_nursery() as nursery:
        await nursery.start(net.run)
        start = trio.current_time()
        if driver is not None:
            await nursery.start(driver.run)
        await nursery.start(collector.run)
        # Every action is before `duration` (fault_actions drops the rest), so none is cut
        # off half done; a fault script cannot know the state, so apply() skips what no
        # longer makes sense (crashing a node that is down).
        rng = random.Random(f"{scenario.seed}/actions")
        for action in scenario.actions:
            await trio.sleep_until(start + action.at)
            await apply(net, action, rng)
        await trio.sleep_until(start + scenario.duration)
        net.heal_all()
        for node in sorted(net.topology.nodes):
            if not net.is_up(node):
                await net.restart(node)
        await net.advance(scenario.quiet)
        violations = net.check_safety()
        report = collector.finish(
            scenario=scenario.echo,
            wall_seconds=time.perf_counter() - started,
            violations=violations,
        )
        nursery.cancel_scope.cancel()
    return report


def check_plotting() -> None:
    """Raise :class:`~masc.sim.report.PlotUnavailable` unless matplotlib can be imported:
    checked before a run that is to be plotted, rather than after minutes of simulation."""
    if importlib.util.find_spec("matplotlib") is None:
        raise PlotUnavailable(
            f"matplotlib is not installed: {INSTALL_HINT}, or run without the plot (--no-plot)"
        )


def default_out_dir(scenario: SimScenario) -> Path:
    """``./sim-out/<name>``."""
    return Path("sim-out") / scenario.name


# The cyclic garbage collector's thresholds during a run: a simulation allocates millions
# of long-lived objects (cached claims, grants) and very little cyclic garbage, so the
# default (a young collection every 700 allocations, older ones in proportion) spent about
# a fifth of a 1,000-domain run scanning live objects.  Cycles are still collected.
_GC_THRESHOLDS: Final = (100_000, 50, 100)


@contextmanager
def _fewer_collections() -> Iterator[None]:
    saved = gc.get_threshold()
    gc.set_threshold(*_GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*saved)


def run_simulation(
    scenario: SimScenario, out_dir: str | os.PathLike[str] | None, *, plot_png: bool = True
) -> Report:
    """Run ``scenario`` under a fresh MockClock and, unless ``out_dir`` is None, write
    ``out_dir/report.json`` and (with ``plot_png``) ``out_dir/report.png``."""
    if plot_png and out_dir is not None:
        check_plotting()
    clock = trio.testing.MockClock(autojump_threshold=0)
    with _fewer_collections():
        report = trio.run(simulate, scenario, clock=clock)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_json(report, out / REPORT_JSON)
        if plot_png:
            plot_report(report, out / REPORT_PNG)
    return report


def run_scenario_file(
    path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    plot: bool = True,
    duration: float | None = None,
    seed: int | None = None,
) -> Report:
    """Load the scenario file at ``path`` (ConfigError if it is bad), run it, and write the
    report to ``out_dir`` (default ``./sim-out/<name>``).  ``duration`` and ``seed``
    override the file's."""
    scenario = load_and_resolve(path, duration=duration, seed=seed)
    target = out_dir if out_dir is not None else default_out_dir(scenario)
    return run_simulation(scenario, target, plot_png=plot)
