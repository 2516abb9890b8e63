"""The harness itself: real runners over in-memory streams, faults, restarts (§10, §12.1,
§14).  Virtual time: ``autojump_clock`` jumps whenever every task is blocked."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import pytest
import trio
import trio.testing

from masc.daemon import peer as peer_module
from masc.protocol.constants import Role
from masc.protocol.engine import Policy
from masc.protocol.events import ClaimSent, PrefixAllocated
from masc.protocol.session import State
from masc.sim.network import (
    DAY,
    EPOCH,
    HOUR,
    MINUTE,
    SHORT_TIMERS,
    Pump,
    SimError,
    SimNetwork,
    SimStream,
    SimTimers,
    seed_scheduler,
    stream_pair,
)
from masc.sim.scenario import Action, Scenario, quiet_period, run_scenario
from masc.sim.topology import figure1

Clock = trio.testing.MockClock


async def test_every_session_of_figure1_comes_up(autojump_clock: Clock) -> None:
    net = SimNetwork(figure1(), timers=SHORT_TIMERS)
    async with net.running():
        await net.advance(MINUTE)
        assert net.all_established()
        assert len(list(net.sessions())) == 2 * len(net.topology.links)
        # The session FSMs agreed on the roles of the configuration (§8.2 OPEN checks).
        peer = net.node("P4a").runners
        roles = {r.key: r.session.config.peer_role for r in peer.values()}
        assert roles == {
            "T2a": Role.PARENT,
            "P4b": Role.INTERNAL,
            "C5b": Role.CHILD,
            "C6a": Role.CHILD,
        }
        sibling = next(r for r in net.node("C7a").runners.values() if "C6b" in r.key)
        assert sibling.key == "C6b/parent=65004"  # §4.4: the session of common parent P4


@pytest.mark.parametrize("seed", range(8))
async def test_partition_drops_the_session_at_once_and_heal_restores_it(
    autojump_clock: Clock, seed: int
) -> None:
    # The order of tasks runnable at one instant decides whether two ends' dials collide
    # (§8.8); seeded, so that it does not depend on what earlier tests left.  Without the
    # ConnectRetry jitter, both ends of a healed link dial at the same instant, and in 5 of
    # these 8 seeds the collision drops both connections for another ConnectRetry or more.
    seed_scheduler(seed)
    net = SimNetwork(figure1(), timers=SHORT_TIMERS, seed=seed)
    async with net.running():
        await net.advance(MINUTE)
        net.partition("T1a", "T2a")
        await net.settle()
        assert net.session_state("T1a", "T2a") is not State.ESTABLISHED
        assert net.session_state("T2a", "T1a") is not State.ESTABLISHED
        assert net.partitioned("T1a", "T2a")
        await net.advance(10 * MINUTE)  # dials fail while partitioned
        assert net.session_state("T1a", "T2a") is not State.ESTABLISHED
        net.heal("T2a", "T1a")
        await net.advance(SHORT_TIMERS.connect_retry + 1)
        assert net.all_established()
        net.isolate("C6b")
        await net.settle()
        assert [s for _, peer, s in net.sessions() if peer == "C6b"] == [State.ACTIVE] * 3
        net.heal_all()
        await net.advance(SHORT_TIMERS.connect_retry + 1)
        assert net.all_established()


async def test_crash_loses_the_engine_and_restart_relearns_it_s14(
    autojump_clock: Clock,
) -> None:
    net = SimNetwork(figure1(), timers=SHORT_TIMERS)
    async with net.running():
        await net.advance(2 * HOUR)
        held = net.engine("P4b").managed_space()
        assert held
        old = net.node("P4b")
        net.crash("P4b")
        await net.settle()
        assert not net.is_up("P4b")
        assert "P4b" not in net.engines()
        assert net.session_state("P4a", "P4b") is not State.ESTABLISHED
        assert net.session_state("C7a", "P4b") is not State.ESTABLISHED
        with pytest.raises(SimError):
            await net.restart("P4a")  # still running
        await net.restart("P4b")
        assert net.node("P4b") is not old
        assert net.node("P4b").incarnation == 2
        assert net.engine("P4b").managed_space() == []  # a fresh engine
        await net.advance(MINUTE)
        # §14: the restarted node re-learned its domain's space from its neighbours.
        assert net.engine("P4b").managed_space() == held
        assert net.snapshot()["P4"] == held
        learned = [
            e.event
            for e in net.events_of("P4b", PrefixAllocated)
            if isinstance(e.event, PrefixAllocated) and e.event.purpose == "learned"
        ]
        assert learned
        assert net.all_established()
        assert net.check_safety() == []


async def test_views_name_unknown_nodes(autojump_clock: Clock) -> None:
    net = SimNetwork(figure1(), timers=SHORT_TIMERS)
    with pytest.raises(SimError, match="has not started"):
        net.engine("T1a")
    async with net.running():
        with pytest.raises(SimError, match="no node"):
            net.engine("X9z")
        with pytest.raises(SimError, match="no session"):
            net.partition("T1a", "C7a")


async def test_the_clock_is_virtual(autojump_clock: Clock) -> None:
    # No keepalives (hold time 0, §7.2): 30 days of 90-second hold times would be 2.5
    # million messages.
    net = SimNetwork(figure1(), timers=SimTimers(hold_time=0))
    async with net.running():
        before, started = net.now(), time.monotonic()
        await net.advance(30 * DAY)
        assert net.now() - before == pytest.approx(30 * DAY)
        assert time.monotonic() - started < 30  # seconds of wall time, in fact about one


async def test_a_scripted_scenario_runs_its_actions_in_order(autojump_clock: Clock) -> None:
    timers = replace(SHORT_TIMERS, hold_time=1_800)
    actions = (
        Action(5 * MINUTE, "partition", "T1a", "T2a"),  # during the TLDs' waiting period
        Action(15 * MINUTE, "heal", "T2a", "T1a"),
        Action(40 * MINUTE, "crash", "P4a"),
        Action(45 * MINUTE, "claim", "C7a"),
        Action(50 * MINUTE, "restart", "P4a"),
        Action(55 * MINUTE, "crash", "C6b"),  # restarted when the active phase ends
    )
    scenario = Scenario(
        seed=1,
        topology=figure1(),
        timers=timers,
        actions=actions,
        active=HOUR,
        quiet=quiet_period(timers, 3),
        policy=Policy(restore_from=frozenset(Role)),
    )
    net, violations = await run_scenario(scenario)
    assert violations == []
    assert net.node("P4a").incarnation == 2
    assert net.node("C6b").incarnation == 2
    assert net.node("T1a").incarnation == 1
    claims = [e for e in net.events_of("C7a", ClaimSent) if e.time >= EPOCH + 45 * MINUTE]
    assert claims  # the operator's claim (§5.1), after the random delay


# --- the pump: bytes handed to an idle reader in place, in order -----------------------------


class _InPlace:
    """An in-place reader that takes (or declines) what it is offered, and notes whether it
    was ever called from inside another in-place reader."""

    inside = False

    def __init__(self, *, takes: bool = True, then: SimStream | None = None) -> None:
        self.takes = takes
        self.then = then  # a stream it writes to when it takes something
        self.got: list[bytes] = []
        self.offered: list[bytes] = []
        self.nested = False

    def __call__(self, data: bytes) -> bool:
        self.offered.append(data)
        if not self.takes:
            return False
        self.nested |= _InPlace.inside
        _InPlace.inside = True
        try:
            self.got.append(data)
            if self.then is not None:
                self.then.send_nowait(b"relayed " + data)
        finally:
            _InPlace.inside = False
        return True


async def _read_all(stream: SimStream, into: list[bytes]) -> None:
    while chunk := await stream.receive_some():
        into.append(chunk)
    into.append(b"<eof>")


@asynccontextmanager
async def _pumped(
    reader: _InPlace,
) -> AsyncIterator[tuple[SimStream, SimStream, list[bytes]]]:
    """A stream pair through a running pump, ``reader`` reading its second end in place
    and a task parked reading it the usual way: (first end, second end, what the task
    read)."""
    pump = Pump()
    a, b = stream_pair(pump=pump)
    b.set_in_place_reader(reader)
    task_got: list[bytes] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(pump.run)
        nursery.start_soon(_read_all, b, task_got)
        await trio.testing.wait_all_tasks_blocked()
        yield a, b, task_got
        nursery.cancel_scope.cancel()


async def test_the_pump_hands_what_is_written_to_an_idle_reader_in_order() -> None:
    """Written bytes go to the in-place reader, in the order written, and its parked task
    wakes only for the EOF."""
    reader = _InPlace()
    async with _pumped(reader) as (a, _, task_got):
        a.send_nowait(b"one,")
        a.send_nowait(b"two,")
        await trio.testing.wait_all_tasks_blocked()
        a.send_nowait(b"three")
        await trio.testing.wait_all_tasks_blocked()
        assert b"".join(reader.got) == b"one,two,three" and task_got == []
        await a.send_eof()
        await trio.testing.wait_all_tasks_blocked()
        assert task_got == [b"<eof>"]


async def test_what_the_in_place_reader_declines_its_task_reads_in_order() -> None:
    """Declined bytes go back where they were: the reader task reads them, and what was
    written after them, in order (its loop was busy: the daemon's runner then queues)."""
    reader = _InPlace(takes=False)
    async with _pumped(reader) as (a, _, task_got):
        a.send_nowait(b"one,")
        await trio.testing.wait_all_tasks_blocked()
        assert reader.offered == [b"one,"] and task_got == [b"one,"]
        a.send_nowait(b"two,")
        await trio.lowlevel.checkpoint()  # the pump declines it; the reader task not yet run
        a.send_nowait(b"three")
        await trio.testing.wait_all_tasks_blocked()
        a.send_eof_nowait()
        await trio.testing.wait_all_tasks_blocked()
        assert b"".join(task_got) == b"one,two,three<eof>" and reader.got == []


async def test_without_a_parked_reader_task_or_after_eof_the_task_reads_them() -> None:
    """Bytes written while the reader task is not parked in receive_some, or followed by
    an EOF before the pump runs, are not taken in place: the task might hold earlier bytes,
    and must see the data before the EOF."""
    pump = Pump()
    a, b = stream_pair(pump=pump)
    reader = _InPlace()
    b.set_in_place_reader(reader)
    async with trio.open_nursery() as nursery:
        await nursery.start(pump.run)
        a.send_nowait(b"early")  # nobody reading yet
        await trio.testing.wait_all_tasks_blocked()
        assert reader.got == [] and await b.receive_some() == b"early"
        task_got: list[bytes] = []
        nursery.start_soon(_read_all, b, task_got)
        await trio.testing.wait_all_tasks_blocked()
        a.send_nowait(b"last")
        a.send_eof_nowait()
        await trio.testing.wait_all_tasks_blocked()
        assert reader.got == [] and task_got == [b"last", b"<eof>"]
        nursery.cancel_scope.cancel()


async def test_a_reader_removed_is_offered_nothing() -> None:
    """A reader removed after bytes were written for it (its connection ended) is not
    offered them: the reader task reads them."""
    reader = _InPlace()
    async with _pumped(reader) as (a, b, task_got):
        a.send_nowait(b"x")  # queued for the pump
        b.set_in_place_reader(None)
        await trio.testing.wait_all_tasks_blocked()
        assert reader.offered == [] and task_got == [b"x"]


async def test_what_an_in_place_reader_sends_is_offered_after_it_returns() -> None:
    """A reader that sends (a parent relaying to its children) is never called into from
    inside another: what it writes joins the pump's queue, breadth-first."""
    pump = Pump()
    a, b = stream_pair(pump=pump)
    c, d = stream_pair(pump=pump)
    last = _InPlace()
    first = _InPlace(then=c)
    b.set_in_place_reader(first)
    d.set_in_place_reader(last)
    async with trio.open_nursery() as nursery:
        await nursery.start(pump.run)
        for stream in (b, d):
            nursery.start_soon(_read_all, stream, [])
        await trio.testing.wait_all_tasks_blocked()
        a.send_nowait(b"claim")
        await trio.testing.wait_all_tasks_blocked()
        assert first.got == [b"claim"] and last.got == [b"relayed claim"]
        assert not first.nested and not last.nested
        nursery.cancel_scope.cancel()


async def test_the_daemons_connections_read_in_place_while_they_last(
    autojump_clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """masc.daemon.peer's connections offer an in-place reader on the simulator's streams
    while they run, take bytes through it, and withdraw it when they end."""
    taken = []
    take = peer_module._Connection._take_in_place

    def counted(conn: peer_module._Connection, runner: peer_module.PeerRunner, data: bytes) -> bool:
        ok = take(conn, runner, data)
        taken.append(ok)
        return ok

    monkeypatch.setattr(peer_module._Connection, "_take_in_place", counted)
    net = SimNetwork(figure1(), timers=SHORT_TIMERS)
    async with net.running():
        await net.advance(MINUTE)
        assert net.all_established()
        index = next(
            i for i, link in enumerate(net.topology.links) if {"T1a", "T2a"} <= {link.a, link.b}
        )
        ends = net._streams[index]
        assert ends and all(e._in.in_place is not None for e in ends if not e._closed)
        assert sum(taken) > len(net.topology.links)  # OPENs, KEEPALIVEs, UPDATEs
        net.partition("T1a", "T2a")
        await net.settle()
        assert all(e._in.in_place is None for e in ends)
