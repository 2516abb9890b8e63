"""A simulation split across processes (masc.sim.split): who runs what, the connections that
cross between processes, the barriers, and whole runs against the same run in one process."""

from __future__ import annotations

import math
import multiprocessing
import multiprocessing.process
import os
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

import masc.sim.run as run_module
import masc.sim.split as split_module
from masc.config import ConfigError
from masc.protocol.session import State
from masc.sim.metrics import Report
from masc.sim.network import SHORT_TIMERS, SimError, SimNetwork, SimStream, stream_pair
from masc.sim.run import run_simulation
from masc.sim.scenario_file import SimScenario, load_and_resolve
from masc.sim.split import (
    Addressed,
    AtBarrier,
    Bridge,
    Close,
    Coordinator,
    Data,
    Done,
    Eof,
    Failed,
    Open,
    Proceed,
    barrier_after,
    partition,
)
from masc.sim.topology import figure1, random_topology, strawman
from tests.sim.test_run import RANDOM100, check

# --- who runs what ---------------------------------------------------------------------------


def test_each_tlds_subtree_runs_whole_in_one_process_and_the_processes_share_the_nodes() -> None:
    topo = strawman(tlds=5, children=3, seed=1)
    parts = partition(topo, 2)
    assert len(parts) == 2
    assert set().union(*parts) == set(topo.nodes) and not parts[0] & parts[1]
    assert sorted(len(p) for p in parts) == [8, 12]  # 5 subtrees of 4 nodes, dealt out
    for part in parts:
        for node in part:
            for parent in topo.domain_of(node).parents:
                assert topo.domains[parent].name in {topo.nodes[n].domain for n in part}


def test_a_domain_with_parents_in_two_subtrees_joins_them() -> None:
    topo = random_topology(domains=60, levels=3, tlds=6, multi_parent=0.5, seed=3)
    joined = [d for d in topo.domains.values() if len(d.parents) > 1]
    assert joined  # the topology has some
    parts = partition(topo, 4)
    where = {topo.nodes[n].domain: i for i, part in enumerate(parts) for n in part}
    for domain in topo.domains.values():
        for parent in domain.parents:
            assert where[parent] == where[domain.name]


def test_never_more_processes_than_subtrees_and_never_an_empty_one() -> None:
    topo = figure1()  # a customer with two parents joins the two trees: one group
    assert partition(topo, 64) == [frozenset(topo.nodes)]
    topo = strawman(tlds=3, children=2, seed=1)  # three groups
    parts = partition(topo, 64)
    assert len(parts) == 3 and all(parts)
    assert set().union(*parts) == set(topo.nodes)
    assert partition(topo, 1) == [frozenset(topo.nodes)]
    with pytest.raises(ValueError):
        partition(topo, 0)


# --- barriers --------------------------------------------------------------------------------


def test_the_barrier_after_next_skips_only_what_is_quiet_everywhere() -> None:
    """Decided at the exchange of barrier 90, for after barrier 100 (``following``)."""
    assert barrier_after(100.0, [250.0, 101.0], crossed=True, every=10.0) == 110.0
    assert barrier_after(100.0, [250.0, 105.0], crossed=False, every=10.0) == 110.0
    assert barrier_after(100.0, [250.0, 137.5], crossed=False, every=10.0) == 140.0
    # Due exactly at a barrier: that barrier (what the task due then sends crosses at the
    # one after it, 10 s later, as if none had been skipped).
    assert barrier_after(100.0, [250.0, 140.0], crossed=False, every=10.0) == 140.0
    # Something crossed at one of the last two exchanges: it is handed over at the
    # barrier before `following` or at it, and may be answered at once.
    assert barrier_after(100.0, [250.0, 250.0], crossed=True, every=10.0) == 110.0
    # Due up to `following` (reported before it): not quiet, whatever crossed.
    assert barrier_after(100.0, [250.0, 95.0], crossed=False, every=10.0) == 110.0
    assert barrier_after(100.0, [250.0, 100.0], crossed=False, every=10.0) == 110.0
    assert barrier_after(100.0, [math.inf, math.inf], crossed=False, every=10.0) == math.inf


class _Recording:
    """The two calls the barriers make on a bridge: what to send out, and what came in."""

    def __init__(self) -> None:
        self.out: Addressed = []
        self.delivered: list[Addressed] = []

    def outgoing(self) -> Addressed:
        out, self.out = self.out, []
        return out

    def deliver(self, incoming: Addressed) -> None:
        self.delivered.append(incoming)


def _coordinator() -> tuple[Coordinator, _Recording, Any]:
    ours, theirs = multiprocessing.Pipe()
    bridge = _Recording()
    return Coordinator(bridge, [ours], 10.0), bridge, theirs  # type: ignore[arg-type]


def test_a_process_a_barrier_ahead_goes_on_without_waiting_for_the_other() -> None:
    """The worker reached barriers 10 and 20 while process 0 was still before 10: process
    0's exchange of barrier 10 completes at once, and the worker's answer for barrier 20
    is on its pipe before process 0 has gone past 10 (it would wait for it otherwise)."""
    coordinator, _, worker = _coordinator()
    worker.send(AtBarrier(10.0, [], 15.0))
    worker.send(AtBarrier(20.0, [], 25.0))
    assert coordinator.sync(10.0, 12.0) == 20.0
    assert worker.poll(5) and worker.recv() == Proceed(20.0, [], 30.0)
    assert not worker.poll(0.2)  # exchange 20 waits for process 0's own report


def test_every_report_waiting_is_read_so_each_exchange_completes_as_early_as_it_can() -> None:
    """Process 0 passed barrier 10 before the worker reported it; the worker then reported
    10 and 20.  At process 0's barrier 20 both exchanges complete, so the worker, at 30,
    need not wait for process 0 to reach 30."""
    coordinator, _, worker = _coordinator()
    assert coordinator.sync(10.0, 12.0) == 20.0
    worker.send(AtBarrier(10.0, [], 15.0))
    worker.send(AtBarrier(20.0, [], 25.0))
    assert coordinator.sync(20.0, 22.0) == 30.0
    assert worker.poll(5) and worker.recv() == Proceed(20.0, [], 30.0)
    assert worker.poll(5) and worker.recv() == Proceed(30.0, [], 40.0)


def test_a_worker_whose_run_ended_first_does_not_fail_the_run() -> None:
    """The worker ran a barrier ahead to the end of its run (its last barrier 20), sent
    its figures and exited; process 0 then completes the exchange of barrier 20, which
    nobody needs, without writing to the closed pipe (a failure after a whole run)."""
    coordinator, _, worker = _coordinator()
    worker.send(AtBarrier(10.0, [], 15.0))
    worker.send(AtBarrier(20.0, [], 25.0))
    figures = Done(None, None)  # type: ignore[arg-type]
    worker.send(figures)
    worker.close()
    assert coordinator.sync(10.0, 12.0) == 20.0
    assert coordinator.sync(20.0, 22.0) == 30.0
    assert coordinator.last_word(1) == figures
    coordinator.close()


def test_a_worker_that_ended_before_a_barrier_others_need_fails_the_run() -> None:
    """Its report for barrier 10 will never come: process 0 says so instead of waiting."""
    coordinator, _, worker = _coordinator()
    figures = Done(None, None)  # type: ignore[arg-type]
    worker.send(figures)
    assert coordinator.sync(10.0, 12.0) == 20.0
    raised: list[BaseException] = []

    def at_20() -> None:
        try:
            coordinator.sync(20.0, 22.0)
        except SimError as error:
            raised.append(error)

    waiting = threading.Thread(target=at_20, daemon=True)  # without the check: for ever
    waiting.start()
    waiting.join(timeout=10)
    assert [str(e) for e in raised] == ["simulation process 1 ended before barrier 10.0"]
    coordinator.close()


def test_process_0_and_a_worker_writing_more_than_a_pipe_holds_to_each_other_go_on() -> None:
    """Each writes 1 MiB to the other at the same time: the worker its report of barrier
    20 (it is a barrier ahead), process 0 its answer to barrier 10's exchange.  That
    answer is written by a thread, so neither write waits for the other to read, and the
    answers still arrive in order."""
    coordinator, bridge, worker = _coordinator()
    conn = (1, 1)
    big = b"x" * (1 << 20)
    writer = threading.Thread(
        target=lambda: (
            worker.send(AtBarrier(10.0, [], 15.0)),
            worker.send(AtBarrier(20.0, [(0, Data(conn, big))], 25.0)),
        ),
        daemon=True,
    )
    writer.start()
    assert coordinator.workers[0].poll(5)  # the first report is there
    bridge.out = [(1, Data(conn, big))]
    returned: list[float] = []
    ours = threading.Thread(
        target=lambda: returned.append(coordinator.sync(10.0, 12.0)), daemon=True
    )
    ours.start()
    ours.join(timeout=20)
    assert returned == [20.0]  # not stuck writing its answer (with a blocking write: for ever)
    assert worker.poll(5) and worker.recv() == Proceed(20.0, [(0, Data(conn, big))], 30.0)
    writer.join(timeout=20)
    assert coordinator.sync(20.0, 22.0) == 30.0
    assert bridge.delivered[-1] == []  # barrier 10's exchange brought nothing for process 0
    assert worker.poll(5) and worker.recv() == Proceed(30.0, [], 40.0)  # after the big one
    assert coordinator.sync(30.0, 32.0) == 40.0
    assert bridge.delivered[-1] == [(1, Data(conn, big))]  # the worker's big report
    coordinator.close()


def test_what_crosses_is_handed_over_at_the_barrier_after_its_exchange() -> None:
    """Sent before barrier 10, exchanged at 10, handed over at 20: between one and two
    sync intervals after it was sent, each way."""
    coordinator, bridge, worker = _coordinator()
    conn = (1, 1)
    worker.send(AtBarrier(10.0, [(0, Data(conn, b"up"))], 15.0))
    bridge.out = [(1, Data(conn, b"down"))]
    assert coordinator.sync(10.0, 12.0) == 20.0
    assert bridge.delivered == [[]]  # nothing at barrier 10
    assert worker.recv() == Proceed(20.0, [(0, Data(conn, b"down"))], 30.0)
    worker.send(AtBarrier(20.0, [], 25.0))
    assert coordinator.sync(20.0, 22.0) == 30.0
    assert bridge.delivered[-1] == [(1, Data(conn, b"up"))]


def test_a_quiet_stretch_is_skipped_two_exchanges_after_the_last_crossing() -> None:
    coordinator, _, worker = _coordinator()
    worker.send(AtBarrier(10.0, [], 500.0))
    assert coordinator.sync(10.0, 700.0) == 20.0
    # Nothing crossed at barrier 10 (nor before it), nothing due up to 20 anywhere: the
    # barrier after 20 is the one at the earliest deadline.
    assert worker.recv() == Proceed(20.0, [], 500.0)


def test_process_0_passes_over_reports_nobody_waits_for_at_the_end() -> None:
    coordinator, _, worker = _coordinator()
    worker.send(AtBarrier(10.0, [], 15.0))
    assert coordinator.sync(10.0, 12.0) == 20.0
    worker.send(AtBarrier(20.0, [], math.inf))  # its last barrier; then its run ended
    worker.send(Failed("the end"))
    assert coordinator.last_word(1) == Failed("the end")


# --- the connections that cross ----------------------------------------------------------------


class _Net:
    """What the bridge asks of the network when a dial from elsewhere arrives."""

    def __init__(self, up: bool) -> None:
        self.up = up
        self.accepted: list[tuple[int, str, SimStream]] = []

    def accept_from_elsewhere(self, index: int, dialler: str, stream: SimStream) -> bool:
        if self.up:
            self.accepted.append((index, dialler, stream))
        return self.up


def _bridge(part: int, net: _Net) -> Bridge:
    return Bridge(part, {"A": 0, "B": 1}, accept=net.accept_from_elsewhere)


async def _handed(bridge: Bridge, messages: Addressed) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(bridge.run)
        bridge.deliver(messages)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()


async def test_a_dial_crosses_with_its_bytes_its_eof_and_its_close() -> None:
    a_net, b_net = _Net(up=True), _Net(up=True)
    a, b = _bridge(0, a_net), _bridge(1, b_net)
    dialled = a.dial(7, "A", "B")
    dialled.send_nowait(b"OPEN")
    out = a.outgoing()
    conn = (0, 1)
    assert out == [(1, Open(conn, 7, "A")), (1, Data(conn, b"OPEN"))]
    assert a.outgoing() == []  # nothing new since
    await _handed(b, [(0, m) for _, m in out])
    [(index, dialler, accepted)] = b_net.accepted
    assert (index, dialler) == (7, "A")
    assert await accepted.receive_some() == b"OPEN"
    await accepted.send_all(b"OPEN too")
    back = b.outgoing()
    assert back == [(0, Data(conn, b"OPEN too"))]
    await _handed(a, [(1, m) for _, m in back])
    assert await dialled.receive_some() == b"OPEN too"
    await dialled.send_eof()
    assert a.outgoing() == [(1, Eof(conn))]
    await _handed(b, [(0, Eof(conn))])
    assert await accepted.receive_some() == b""  # the EOF
    await accepted.send_all(b"still open this way")  # a half-close
    await _handed(a, [(1, m) for _, m in b.outgoing()])
    assert await dialled.receive_some() == b"still open this way"
    dialled.close()
    assert a.outgoing() == [(1, Close(conn))]
    await _handed(b, [(0, Close(conn))])
    with pytest.raises(trio.BrokenResourceError):
        await accepted.send_all(b"late")  # as after a reset
    assert b.outgoing() == []  # the connection is gone on both sides
    await _handed(b, [(0, Data(conn, b"stale"))])  # after the close: dropped


async def test_a_dial_to_a_node_that_is_not_running_is_closed() -> None:
    a, b = _bridge(0, _Net(up=True)), _bridge(1, _Net(up=False))
    dialled = a.dial(3, "A", "B")
    await _handed(b, [(0, m) for _, m in a.outgoing()])
    assert b.outgoing() == [(0, Close((0, 1)))]
    await _handed(a, [(1, Close((0, 1)))])
    assert await dialled.receive_some() == b""
    with pytest.raises(trio.BrokenResourceError):
        await dialled.send_all(b"OPEN")


def test_a_stream_read_by_a_callback_says_when_its_peer_wrote() -> None:
    changes: list[str] = []
    ours, theirs = stream_pair(lambda: changes.append("changed"))
    ours.send_nowait(b"x")
    assert changes == ["changed"] and theirs.take_received() == b"x"
    assert theirs.take_received() == b"" and not theirs.received_eof
    trio.run(ours.send_eof)
    assert len(changes) == 2 and theirs.received_eof and not theirs.peer_closed
    ours.close()  # after the half-close: still told, now that ours is gone
    assert len(changes) == 3 and theirs.peer_closed


def test_a_network_of_some_nodes_needs_a_bridge() -> None:
    topo = figure1()
    some = sorted(topo.nodes)[:3]
    with pytest.raises(SimError, match="bridge"):
        SimNetwork(topo, local=some)
    with pytest.raises(SimError, match="no nodes"):
        SimNetwork(topo, local=["nowhere"], bridge=Bridge(0, {}))


# --- whole runs ----------------------------------------------------------------------------------


def _scenario(tmp_path: Path, text: str) -> SimScenario:
    path = tmp_path / "s.toml"
    path.write_text(text)
    return load_and_resolve(path)


def _without_timing(report: Report) -> dict[str, Any]:
    data = report.to_dict()
    data.pop("wall_seconds")
    data.pop("peak_rss_bytes")
    return data


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[SimScenario, Report]]:
    """RANDOM100 (20 TLD subtrees, TLD siblings meshed) in one process, in two (twice) and
    in three."""
    tmp = tmp_path_factory.mktemp("split")
    one = _scenario(tmp, RANDOM100)
    out: dict[str, tuple[SimScenario, Report]] = {"1": (one, run_simulation(one, None))}
    for label, n in (("2", 2), ("2 again", 2), ("3", 3)):
        s = _scenario(tmp, RANDOM100.replace("seed = 7", f"seed = 7\nprocesses = {n}"))
        assert s.processes == n
        out[label] = (s, run_simulation(s, None))
    return out


def test_a_split_run_is_safe_serves_every_demand_and_reports_every_domain(
    runs: dict[str, tuple[SimScenario, Report]],
) -> None:
    for label in ("2", "3"):
        s, report = runs[label]
        check(report, s)
        assert report.scenario["processes"] == report.totals["processes"] == s.processes
        assert report.totals["nodes"] == len(s.topology.nodes)


def test_a_split_run_is_reproducible(runs: dict[str, tuple[SimScenario, Report]]) -> None:
    assert _without_timing(runs["2"][1]) == _without_timing(runs["2 again"][1])


def test_sessions_between_processes_carry_what_they_carry_in_one(
    runs: dict[str, tuple[SimScenario, Report]],
) -> None:
    """Only the TLDs' sibling mesh crosses between processes, and each TLD hears about as
    much from its siblings and children as in one process.  Not exactly as much: the cut
    delays what crosses by one to two barriers (10-20 s), and TLDs claiming from the pool at the
    same time then collide a few more times at bootstrap (§5.1 c), each collision a few
    messages more.  A broken bridge would leave a TLD only its own process's peers."""
    s, one = runs["1"]
    tlds = [d for d, spec in s.topology.domains.items() if spec.is_tld]
    for n in (2, 3):
        where = {node: i for i, part in enumerate(partition(s.topology, n)) for node in part}
        crossing = [link for link in s.topology.links if where[link.a] != where[link.b]]
        assert crossing and all(
            s.topology.domain_of(link.a).is_tld and s.topology.domain_of(link.b).is_tld
            for link in crossing
        )
    for label in ("2", "3"):
        split = runs[label][1]
        for tld in tlds:
            got, want = split.domains[tld]["messages_in"], one.domains[tld]["messages_in"]
            assert abs(got - want) <= 0.25 * want, (label, tld, got, want)
        assert split.totals["held"] == pytest.approx(one.totals["held"], rel=0.1)


def test_the_series_add_up_across_processes(runs: dict[str, tuple[SimScenario, Report]]) -> None:
    _, report = runs["2"]
    series, totals = report.series, report.totals
    assert series["messages"][-1] == totals["messages"]
    assert series["held"][-1] == totals["held"]
    assert series["prefixes"][-1] == totals["prefixes"]
    assert series["nodes_up"][-1] == totals["nodes"]
    last = len(series["held"]) - 1
    assert series["utilization"][last] == series["in_use"][last] / series["held"][last]


def test_a_split_run_takes_no_faults(tmp_path: Path) -> None:
    text = RANDOM100.replace("seed = 7", "seed = 7\nprocesses = 2") + (
        '\n[faults]\nrandom = 2\nbetween = ["1h", "2h"]\nheal_after = ["10m", "20m"]\n'
    )
    with pytest.raises(ConfigError) as caught:
        _scenario(tmp_path, text)
    assert caught.value.key == "processes"


def _short(tmp_path: Path, processes: int = 2) -> SimScenario:
    s = _scenario(tmp_path, RANDOM100.replace('duration = "2d"', 'duration = "2h"'))
    return replace(s, processes=processes)


def _in_worker(
    monkeypatch: pytest.MonkeyPatch, s: SimScenario, act: Callable[[], None]
) -> list[multiprocessing.process.BaseProcess]:
    """Make the last process call ``act`` before it runs; returns a list that will hold the
    workers killed because they did not end by themselves."""
    last = partition(s.topology, s.processes)[-1]
    real = run_module.simulate_part

    async def replaced(scenario: SimScenario, **kwargs: Any) -> Any:
        if kwargs.get("local") == last:
            act()
        return await real(scenario, **kwargs)

    monkeypatch.setattr(run_module, "simulate_part", replaced)
    return _kills(monkeypatch)


def _kills(monkeypatch: pytest.MonkeyPatch) -> list[multiprocessing.process.BaseProcess]:
    killed: list[multiprocessing.process.BaseProcess] = []
    real_kill = multiprocessing.process.BaseProcess.kill

    def kill(process: multiprocessing.process.BaseProcess) -> None:
        killed.append(process)
        real_kill(process)

    monkeypatch.setattr(multiprocessing.process.BaseProcess, "kill", kill)
    return killed


def test_a_failing_process_fails_the_run_with_its_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = _short(tmp_path, processes=3)

    def fail() -> None:
        raise RuntimeError("the worker broke")

    killed = _in_worker(monkeypatch, s, fail)
    with pytest.raises(SimError, match=r"(?s)simulation process 2 failed:.*the worker broke"):
        run_simulation(s, None)
    assert killed == []  # worker 1, left waiting at a barrier, ended by itself


def test_a_process_that_dies_without_a_word_fails_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = _short(tmp_path)
    killed = _in_worker(monkeypatch, s, lambda: os._exit(3))
    with pytest.raises(SimError, match="simulation process 1 ended without a word"):
        run_simulation(s, None)
    assert killed == []


def test_when_process_0_fails_the_others_end_by_themselves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each worker closes the copies of process 0's pipe ends it inherits, so it reads EOF
    at its barrier when process 0 is gone instead of waiting to be killed."""
    s = _short(tmp_path, processes=3)
    real_sync = split_module.Coordinator.sync

    def sync(self: split_module.Coordinator, barrier: float, deadline: float) -> float:
        if barrier > 1800:
            raise RuntimeError("process 0 broke")
        return real_sync(self, barrier, deadline)

    monkeypatch.setattr(split_module.Coordinator, "sync", sync)
    killed = _kills(monkeypatch)
    with pytest.raises(BaseExceptionGroup) as caught:
        run_simulation(s, None)
    assert caught.group_contains(RuntimeError, match="process 0 broke")
    assert killed == []


def test_sessions_across_the_cut_come_up_and_stay_up() -> None:
    """Two halves of a network, each in its own thread with its own trio run and bridge,
    kept in step by the barriers over a pipe as two processes would be: every session,
    the TLD sibling sessions across the cut included, is Established after a virtual hour
    and stays so (keepalives crossing too, 20 s late at most against a 90 s hold time)."""
    topo = strawman(tlds=4, children=2, seed=1)
    parts = partition(topo, 2)
    owner = {node: i for i, nodes in enumerate(parts) for node in nodes}
    ours, theirs = multiprocessing.Pipe()
    states: dict[int, list[tuple[str, str, State]]] = {}

    def half(index: int) -> None:
        bridge = Bridge(index, owner)
        net = SimNetwork(topo, timers=SHORT_TIMERS, local=parts[index], bridge=bridge)
        sync = (
            split_module.Coordinator(bridge, [ours], 10.0).sync
            if index == 0
            else split_module.Worker(bridge, theirs, 10.0).sync
        )

        async def main() -> None:
            async with trio.open_nursery() as nursery:
                await nursery.start(split_module.Barriers(sync, 10.0).run)
                await nursery.start(net.run)
                await net.advance(3600)  # as simulate_part ends: sleep, then settle
                states[index] = list(net.sessions())
                nursery.cancel_scope.cancel()

        trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))

    threads = [threading.Thread(target=half, args=(i,), daemon=True) for i in (0, 1)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        ours.close()  # a half still waiting at a barrier (the other failed) reads EOF
        theirs.close()
    assert set(states) == {0, 1}
    ends = [(node, peer) for i in (0, 1) for node, peer, _ in states[i]]
    across = [(n, p) for n, p in ends if owner[n] != owner[p]]
    assert across and all(topo.domain_of(n).is_tld for n, _ in across)
    assert {state for i in (0, 1) for _, _, state in states[i]} == {State.ESTABLISHED}
    assert len(ends) == 2 * len(topo.links)


def test_faults_cannot_reach_into_another_process() -> None:
    topo = strawman(tlds=2, children=1, seed=1)
    parts = partition(topo, 2)
    here, there = sorted(parts[0]), sorted(parts[1])
    net = SimNetwork(topo, local=parts[0], bridge=Bridge(0, {}))
    tld_here = next(n for n in here if topo.domain_of(n).is_tld)
    tld_there = next(n for n in there if topo.domain_of(n).is_tld)
    with pytest.raises(SimError, match="another process"):
        net.partition(tld_here, tld_there)
    with pytest.raises(SimError, match="another process"):
        net.crash(tld_there)
    with pytest.raises(SimError, match="another process"):
        trio.run(net.restart, tld_there)


def test_a_split_run_needs_keepalives_to_cross_in_time(tmp_path: Path) -> None:
    text = RANDOM100.replace("seed = 7", 'seed = 7\nprocesses = 2\nsync_interval = "31s"')
    with pytest.raises(ConfigError) as caught:
        _scenario(tmp_path, text.replace("hold_time = 0", "hold_time = 90"))
    assert caught.value.key == "sync_interval"
    assert "a sixth" in str(caught.value)
    with pytest.raises(ConfigError):  # up to 32 s late: a keepalive every 30 s is not enough
        _scenario(tmp_path, text.replace("31s", "16s").replace("hold_time = 0", "hold_time = 90"))
    fifteen = text.replace("31s", "15s").replace("hold_time = 0", "hold_time = 90")
    assert _scenario(tmp_path, fifteen).sync_interval == 15.0
    assert _scenario(tmp_path, text).sync_interval == 31.0  # no keepalives: any interval
