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

With ``processes`` > 1 (:func:`run_split`), each of several processes does the above for its
share of the nodes (:mod:`masc.sim.split`), and this one merges their figures and checks
the safety of every node's space.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import multiprocessing
import os
import random
import time
import traceback
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Final, TypeVar

import trio
import trio.testing

from masc.protocol.wire.messages import Prefix
from masc.sim.demand import DemandDriver
from masc.sim.metrics import Collector, Part, Report, build_report
from masc.sim.network import SimError, SimNetwork, seed_scheduler
from masc.sim.report import INSTALL_HINT, PlotUnavailable, write_json
from masc.sim.report import plot as plot_report
from masc.sim.safety import Space, Violation, check_space_safety, space_of
from masc.sim.scenario import apply
from masc.sim.scenario_file import SimScenario, load_and_resolve
from masc.sim.split import (
    Barriers,
    Bridge,
    Coordinator,
    Done,
    Failed,
    Worker,
    partition,
    process_error,
    send,
)
from masc.sim.topology import Topology

__all__ = [
    "PlotUnavailable",
    "check_plotting",
    "default_out_dir",
    "run_scenario_file",
    "run_simulation",
    "run_split",
    "simulate",
    "simulate_part",
]

T = TypeVar("T")

REPORT_JSON: Final = "report.json"
REPORT_PNG: Final = "report.png"


async def simulate(scenario: SimScenario) -> Report:
    """Run ``scenario`` in this process (inside ``trio.run`` with a MockClock; module
    docstring) and return its report.  ``wall_seconds`` in the report is the real time
    this took."""
    started = time.perf_counter()
    part, space = await simulate_part(scenario)
    return build_report(
        [part],
        scenario=scenario.echo,
        wall_seconds=time.perf_counter() - started,
        violations=_violations(scenario.topology, [space]),
    )


async def simulate_part(
    scenario: SimScenario,
    *,
    local: Collection[str] | None = None,
    bridge: Bridge | None = None,
    barriers: Barriers | None = None,
) -> tuple[Part, Space]:
    """Run the nodes ``local`` of ``scenario`` (all by default; the rest run in other
    processes, reached through ``bridge`` and kept in step by ``barriers``:
    :mod:`masc.sim.split`) and return what they measured and their space at the end."""
    seed_scheduler(scenario.seed)
    net = SimNetwork(
        scenario.topology,
        timers=scenario.timers,
        policy=scenario.policy,
        seed=scenario.seed,
        record=False,
        allocator=scenario.allocator,
        maas=scenario.grants,
        local=local,
        bridge=bridge,
    )
    driver = None
    if scenario.demand.model != "none":
        driver = DemandDriver(net, scenario.demand, seed=scenario.seed)
    collector = Collector(net, driver, interval=scenario.sample_interval)
    async with trio.open_nursery() as nursery:
        if barriers is not None:
            await nursery.start(barriers.run)
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
        for node in sorted(net.local):
            if not net.is_up(node):
                await net.restart(node)
        await net.advance(scenario.quiet)
        space = space_of(net.topology, net.engines(), now=net.now())
        part = collector.part()
        nursery.cancel_scope.cancel()
    return part, space


def run_split(scenario: SimScenario) -> Report:
    """Run ``scenario`` in ``scenario.processes`` processes (:mod:`masc.sim.split`): this one
    and forked others, each with its share of the nodes, and merge what they measured.
    One process (or a topology of one group of subtrees): :func:`simulate`, here."""
    started = time.perf_counter()
    parts = partition(scenario.topology, scenario.processes)
    if len(parts) == 1:
        return _in_virtual_time(partial(simulate, scenario))
    owner = {node: i for i, nodes in enumerate(parts) for node in nodes}
    context = multiprocessing.get_context("fork")
    pipes: list[Connection] = []
    workers: list[multiprocessing.process.BaseProcess] = []
    coordinator: Coordinator | None = None
    try:
        for index in range(1, len(parts)):
            ours, theirs = context.Pipe()
            process = context.Process(
                target=_worker,
                args=(scenario, parts[index], index, owner, theirs, [*pipes, ours]),
                name=f"masc-sim-{index}",
                daemon=True,
            )
            process.start()
            theirs.close()  # so that our reads end (EOFError) if the worker dies
            pipes.append(ours)
            workers.append(process)
        bridge = Bridge(0, owner)
        coordinator = Coordinator(bridge, pipes, scenario.sync_interval)
        try:
            results = [
                _in_virtual_time(
                    partial(
                        simulate_part,
                        scenario,
                        local=parts[0],
                        bridge=bridge,
                        barriers=Barriers(coordinator.sync, scenario.sync_interval),
                    )
                )
            ]
        except* SimError as failure:  # from Coordinator.sync: another process failed
            raise _first(failure) from None
        for index in range(1, len(parts)):
            results.append(_result(index, coordinator.last_word(index)))
    finally:
        if coordinator is not None:
            coordinator.close()
        for pipe in pipes:
            pipe.close()  # a worker still waiting at a barrier reads EOF and ends
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()
                worker.join()
    return build_report(
        [part for part, _ in results],
        scenario=scenario.echo,
        wall_seconds=time.perf_counter() - started,
        violations=_violations(scenario.topology, [space for _, space in results]),
    )


def _in_virtual_time(run: Callable[[], Awaitable[T]]) -> T:
    """``trio.run`` under a fresh MockClock that jumps whenever every task waits."""
    return trio.run(run, clock=trio.testing.MockClock(autojump_threshold=0))


def _violations(topology: Topology, spaces: Iterable[Space]) -> list[Violation]:
    """The safety checker over the nodes of every process (each node is in one)."""
    managed: dict[str, list[Prefix]] = {}
    local: dict[str, list[Prefix]] = {}
    parents: dict[str, list[Prefix]] = {}
    for space in spaces:
        managed |= space.managed
        local |= space.local
        parents |= space.parents
    return check_space_safety(topology, managed, local, parent_space=parents)


def _worker(
    scenario: SimScenario,
    local: frozenset[str],
    index: int,
    owner: dict[str, int],
    pipe: Connection,
    inherited: list[Connection],
) -> None:
    """Process ``index`` of a split run: its nodes, then its figures sent to process 0."""
    for other in inherited:
        # Process 0's ends of the pipes, copied by fork: were they left open here, this
        # process would never read EOF on its own pipe should process 0 die.
        other.close()
    try:
        bridge = Bridge(index, owner)
        barriers = Barriers(
            Worker(bridge, pipe, scenario.sync_interval).sync, scenario.sync_interval
        )
        part, space = _in_virtual_time(
            partial(simulate_part, scenario, local=local, bridge=bridge, barriers=barriers)
        )
        send(0, pipe, Done(part, space))
    except BaseException:
        with contextlib.suppress(SimError):
            send(0, pipe, Failed(traceback.format_exc()))
        raise


def _result(index: int, message: object) -> tuple[Part, Space]:
    """What worker ``index`` sent at the end of its run, if it is its figures."""
    if isinstance(message, Done):
        return message.part, message.space
    raise process_error(index, message, expected="its figures")


def _first(group: BaseExceptionGroup[SimError]) -> SimError:
    """The first SimError of a group (trio's nurseries wrap what their tasks raise)."""
    first = group.exceptions[0]
    return first if isinstance(first, SimError) else _first(first)


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
    with _fewer_collections():
        report = run_split(scenario)  # in this process alone when processes = 1
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
