"""The trio shell around one session: connection lifecycle and the session's view of it.

Streams are trio's in-memory test streams (``lockstep_stream_pair``: a send completes only
when the other side reads, so a peer that never reads is easy to play) and time is a
MockClock that jumps whenever every task is blocked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from ipaddress import IPv4Address
from typing import Any

import pytest
import trio
import trio.testing

from masc.daemon import peer as peer_module
from masc.daemon.peer import PeerRunner, _Connection, _InboxEvent, _Lost
from masc.protocol.session import State
from masc.protocol.wire import Framer, Keepalive, Notification, Open, decode, encode
from tests.protocol.fsm_helpers import config, peer_open

Inbox = tuple[trio.MemorySendChannel[_InboxEvent], trio.MemoryReceiveChannel[_InboxEvent]]


def inbox() -> Inbox:
    return trio.open_memory_channel[_InboxEvent](100)


def passive_runner(**overrides: Any) -> PeerRunner:
    return PeerRunner(
        config(passive=True, **overrides),
        address=IPv4Address("127.0.0.3"),
        port=2587,
        local_address=None,
        label="test",
    )


class Peer:
    """The far end of a memory stream, reading whole MASC messages."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.framer = Framer()

    async def read(self) -> Any:
        while (frame := self.framer.next_frame()) is None:
            self.framer.feed(await self.stream.receive_some())
        return decode(frame)

    async def handshake(self, runner: PeerRunner) -> None:
        """Open a connection the runner accepted: our OPEN first (the runner takes the
        connection only with it), then its OPEN and KEEPALIVE, then Established."""
        await self.stream.send_all(encode(peer_open(runner.session.config)))
        assert isinstance(await self.read(), Open)
        assert isinstance(await self.read(), Keepalive)
        await self.stream.send_all(encode(Keepalive()))
        await runner.established.wait()


def lost_count(rx: trio.MemoryReceiveChannel[_InboxEvent]) -> int:
    count = 0
    while True:
        try:
            count += isinstance(rx.receive_nowait(), _Lost)
        except trio.WouldBlock:
            return count


async def test_writer_stall_ends_the_connection_and_reports_it_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ours, _theirs = trio.testing.lockstep_stream_pair()  # never reads
    conn = _Connection(1, ours, stall=30.0)  # type: ignore[arg-type]
    tx, rx = inbox()
    conn.outbox.send_nowait(b"never read")
    started = trio.current_time()
    await conn.run(tx)
    assert trio.current_time() - started == pytest.approx(30.0)
    assert lost_count(rx) == 1


async def test_writer_failure_reports_lost_even_while_the_reader_waits() -> None:
    ours, _theirs = trio.testing.memory_stream_pair()
    conn = _Connection(1, ours, stall=30.0)  # type: ignore[arg-type]
    tx, rx = inbox()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(conn.run, tx)
        await trio.testing.wait_all_tasks_blocked()
        await ours.send_stream.aclose()  # the next write fails; the reader still waits
        conn.outbox.send_nowait(b"x")
    assert lost_count(rx) == 1


async def test_peer_eof_reports_lost_once() -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    conn = _Connection(1, ours, stall=30.0)  # type: ignore[arg-type]
    tx, rx = inbox()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(conn.run, tx)
        await theirs.aclose()
    assert lost_count(rx) == 1


async def test_close_flushes_then_half_closes_and_waits_for_the_peer() -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    conn = _Connection(1, ours, stall=30.0)  # type: ignore[arg-type]
    tx, rx = inbox()
    received = bytearray()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(conn.run, tx)
        conn.outbox.send_nowait(b"last words")
        conn.close()
        while data := await theirs.receive_some():  # everything, then our EOF
            received += data
        assert not conn.done.is_set()  # still waiting for the peer to close its side
        await theirs.aclose()
    assert bytes(received) == b"last words"
    assert lost_count(rx) == 1


async def test_session_learns_at_once_when_a_non_reading_peer_is_dropped(
    monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock
) -> None:
    """Review finding C1: a full outbox drops the connection, and the session must hear of
    it then, not a hold time later."""
    # Two slots: the OPEN and KEEPALIVE that answer the peer's OPEN are queued together.
    monkeypatch.setattr(peer_module, "_OUTBOX_DEPTH", 2)
    runner = passive_runner()  # hold time 90
    ours, theirs = trio.testing.lockstep_stream_pair()
    async with trio.open_nursery() as nursery:
        await nursery.start(runner.run)
        runner.admin(start=True, reason="test")
        runner.incoming(ours)  # type: ignore[arg-type]
        await Peer(theirs).handshake(runner)
        # From now on we read nothing.  Bad Message Type is CC: in Established each one is
        # answered with a NOTIFICATION and the session stays up.  The first answer blocks in
        # the writer, the next two fill the outbox, the fourth finds no room.
        before = trio.current_time()
        await theirs.send_all(bytes([0, 4, 9, 0]) * 4)
        await trio.testing.wait_all_tasks_blocked()
        assert trio.current_time() == before  # no timer was needed to notice
        assert runner.session.state is State.ACTIVE  # told of the loss: Idle, then Active
        assert runner.session.stats.flaps == 1
        assert not runner._connections
        nursery.cancel_scope.cancel()


async def test_runner_session_over_memory_streams_reaches_established(
    autojump_clock: trio.testing.MockClock,
) -> None:
    runner = passive_runner(hold_time=9)
    ours, theirs = trio.testing.memory_stream_pair()
    peer = Peer(theirs)
    read = peer.read
    async with trio.open_nursery() as nursery:
        await nursery.start(runner.run)
        runner.admin(start=True, reason="test")
        runner.incoming(ours)  # type: ignore[arg-type]
        await peer.handshake(runner)
        # Keepalives every 3 s of virtual time (§7.4: a third of 9) while we answer them.
        for _ in range(5):
            sent_at = trio.current_time()
            assert isinstance(await read(), Keepalive)
            assert trio.current_time() - sent_at == pytest.approx(3.0)
            await theirs.send_all(encode(Keepalive()))
        assert runner.session.state is State.ESTABLISHED
        # Then we fall silent: 9 s later the hold timer ends it (§8.4).
        silent_from = trio.current_time()
        message = await read()
        while isinstance(message, Keepalive):
            message = await read()
        assert isinstance(message, Notification) and message.code == 4
        assert trio.current_time() - silent_from == pytest.approx(9.0)
        nursery.cancel_scope.cancel()


def dialing_runner() -> tuple[PeerRunner, trio.MemoryReceiveChannel[trio.abc.Stream]]:
    """An active runner whose dials hand the far end of a new memory stream to the test."""
    far_ends, far_rx = trio.open_memory_channel[trio.abc.Stream](10)

    async def connect() -> trio.abc.HalfCloseableStream:
        ours, theirs = trio.testing.memory_stream_pair()
        far_ends.send_nowait(theirs)
        return ours

    runner = PeerRunner(
        config(connect_retry=5.0),
        address=IPv4Address("127.0.0.3"),
        port=2587,
        local_address=None,
        label="test",
        connect=connect,
    )
    return runner, far_rx


@asynccontextmanager
async def established(
    runner: PeerRunner, far_ends: trio.MemoryReceiveChannel[trio.abc.Stream]
) -> AsyncIterator[tuple[trio.Nursery, Peer]]:
    """``runner`` running and Established with the far end of its first dial."""
    async with trio.open_nursery() as nursery:
        await nursery.start(runner.run)
        runner.admin(start=True, reason="test")
        first = Peer(await far_ends.receive())
        await first.handshake(runner)
        yield nursery, first


async def read_until_notification(peer: Peer) -> Notification:
    while not isinstance(message := await peer.read(), Notification):
        pass
    return message


async def test_s8_7_operator_down_ceases_and_keeps_the_runner_until_up(
    autojump_clock: trio.testing.MockClock,
) -> None:
    runner, far_ends = dialing_runner()
    async with established(runner, far_ends) as (nursery, first):
        runner.admin(start=False, reason="operator down")
        assert (await read_until_notification(first)).code == 7  # Cease
        await trio.sleep(60)  # many ConnectRetry periods: a stopped session does not dial
        assert runner.session.admin_down and runner.state is State.IDLE
        assert not runner.finished.is_set()
        with pytest.raises(trio.WouldBlock):
            far_ends.receive_nowait()
        runner.admin(start=True, reason="operator up")
        second = Peer(await far_ends.receive())
        assert isinstance(await second.read(), Open)
        assert not runner.session.admin_down
        nursery.cancel_scope.cancel()


async def test_reset_ceases_then_dials_as_soon_as_the_peer_has_closed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The new connection waits for the peer to read the Cease and close: sooner, the peer
    would still be Established and refuse it, and both sides would wait a ConnectRetry."""
    runner, far_ends = dialing_runner()
    async with established(runner, far_ends) as (nursery, first):
        runner.reset(reason="operator reset")
        assert (await read_until_notification(first)).code == 7
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.WouldBlock):
            far_ends.receive_nowait()  # not before the peer has closed
        closed_at = trio.current_time()
        await first.stream.aclose()
        second = Peer(await far_ends.receive())
        assert isinstance(await second.read(), Open)
        assert trio.current_time() == closed_at  # no back-off, no ConnectRetry wait
        nursery.cancel_scope.cancel()


async def test_reset_dials_after_the_close_grace_if_the_peer_never_closes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    runner, far_ends = dialing_runner()
    async with established(runner, far_ends) as (nursery, _first):
        before = trio.current_time()
        runner.reset(reason="operator reset")
        second = Peer(await far_ends.receive())
        assert isinstance(await second.read(), Open)
        assert trio.current_time() - before == pytest.approx(peer_module._CLOSE_GRACE)
        nursery.cancel_scope.cancel()


async def test_a_stop_after_a_reset_cancels_its_start(
    autojump_clock: trio.testing.MockClock,
) -> None:
    runner, far_ends = dialing_runner()
    async with established(runner, far_ends) as (nursery, _first):
        runner.reset(reason="operator reset")
        runner.admin(start=False, reason="operator down")
        await trio.sleep(60)
        with pytest.raises(trio.WouldBlock):
            far_ends.receive_nowait()
        assert runner.session.admin_down
        nursery.cancel_scope.cancel()


async def test_final_stop_ends_the_runner_and_a_later_start_or_reset_does_not_revive_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    runner, far_ends = dialing_runner()
    async with established(runner, far_ends) as (_nursery, first):
        runner.admin(start=False, reason="removed", final=True)
        runner.reset(reason="too late")
        runner.admin(start=True, reason="too late")
        assert (await read_until_notification(first)).code == 7
        await first.stream.aclose()
        with trio.fail_after(10):
            await runner.finished.wait()
    with pytest.raises(trio.WouldBlock):
        far_ends.receive_nowait()


def unreachable_runner(*, passive: bool) -> tuple[PeerRunner, list[float]]:
    """A runner whose every dial fails at once; returns the dial times."""
    dials: list[float] = []

    async def connect() -> trio.abc.HalfCloseableStream:
        dials.append(trio.current_time())
        raise ConnectionRefusedError("refused")

    runner = PeerRunner(
        # Exact periods: these tests count dials (the jitter has tests of its own).
        config(connect_retry=5.0, passive=passive, connect_retry_jitter=0.0),
        address=IPv4Address("127.0.0.3"),
        port=2587,
        local_address=None,
        label="test",
        connect=connect,
    )
    return runner, dials


async def test_becoming_passive_while_dialling_stops_the_dials(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Review finding: the ConnectRetry armed before the change used to fire on a passive
    session and end the daemon."""
    runner, dials = unreachable_runner(passive=False)
    async with trio.open_nursery() as nursery:
        await nursery.start(runner.run)
        runner.admin(start=True, reason="test")
        await trio.sleep(12)
        assert len(dials) == 3  # at 0, 5, 10
        runner.reconfigure(replace(runner.session.config, passive=True))
        await trio.sleep(60)
        assert len(dials) == 3 and runner.state is State.ACTIVE
        nursery.cancel_scope.cancel()


async def test_becoming_active_while_listening_starts_dialling(
    autojump_clock: trio.testing.MockClock,
) -> None:
    runner, dials = unreachable_runner(passive=True)
    async with trio.open_nursery() as nursery:
        await nursery.start(runner.run)
        runner.admin(start=True, reason="test")
        await trio.sleep(30)
        assert dials == []
        runner.reconfigure(replace(runner.session.config, passive=False))
        await trio.sleep(11)
        assert len(dials) == 3
        nursery.cancel_scope.cancel()


async def test_a_reset_leaves_a_session_the_operator_stopped_stopped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    runner, dials = unreachable_runner(passive=False)
    async with trio.open_nursery() as nursery:
        await nursery.start(runner.run)
        runner.admin(start=True, reason="test")
        runner.admin(start=False, reason="operator down")
        await trio.sleep(1)
        runner.reset(reason="operator reset")
        runner.reconfigure(replace(runner.session.config, passive=True))
        await trio.sleep(60)
        assert len(dials) == 1 and runner.session.admin_down
        assert runner.session.config.passive  # the new settings are taken all the same
        nursery.cancel_scope.cancel()


async def _stop_behind_a_batch(clock: trio.testing.MockClock) -> bool:
    """64 queued inputs, then an operator Stop; the ConnectRetry timer comes due while the
    loop gives other tasks their turn after the 64th.  Whether the Stop got through."""

    async def never() -> Any:
        await trio.sleep_forever()

    runner = PeerRunner(
        config(),
        address=IPv4Address("127.0.0.3"),
        port=2587,
        local_address=None,
        label="t",
        connect=never,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(runner.run)
        runner.admin(start=True, reason="boot")
        await trio.testing.wait_all_tasks_blocked()
        for _ in range(peer_module._BATCH):
            runner.inbox.send_nowait(peer_module._Wake())
        runner.admin(start=False, reason="operator stop")

        async def time_passes() -> None:
            while runner._inbox_rx.statistics().current_buffer_used > 1:
                await trio.lowlevel.checkpoint()
            clock.jump(40)  # past ConnectRetry, while the loop sits in its checkpoint

        nursery.start_soon(time_passes)
        await trio.testing.wait_all_tasks_blocked()
        stopped = runner.session.admin_down
        nursery.cancel_scope.cancel()
    return stopped


def test_an_input_queued_behind_a_batch_survives_a_timer_firing_in_between() -> None:
    """The loop handles queued inputs in a row and checkpoints every _BATCH of them; the
    checkpoint comes before the next input is taken, so a timer cancelling it loses none
    (an earlier version lost the input taken just before it in about 4 runs out of 10)."""
    for _ in range(10):
        clock = trio.testing.MockClock()
        assert trio.run(_stop_behind_a_batch, clock, clock=clock)


async def test_an_accepted_connection_joins_the_session_only_with_the_peers_open(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """§8.8, docs/conformance.md choice 17: until the peer's OPEN arrives we send nothing
    on an accepted connection, and one closed or silent until then never reaches the
    session."""
    runner = passive_runner()
    async with trio.open_nursery() as nursery:
        await nursery.start(runner.run)
        runner.admin(start=True, reason="test")
        await trio.testing.wait_all_tasks_blocked()
        # Closed before a word: never a connection.
        closed, closer = trio.testing.memory_stream_pair()
        runner.incoming(closed)  # type: ignore[arg-type]
        await closer.aclose()
        # Silent, or stopped inside its first message: closed after the OpenSent hold
        # time, never taken either.
        silent, mute = trio.testing.memory_stream_pair()
        partial, stalled = trio.testing.memory_stream_pair()
        runner.incoming(silent)  # type: ignore[arg-type]
        runner.incoming(partial)  # type: ignore[arg-type]
        await stalled.send_all(encode(peer_open(runner.session.config))[:5])
        await trio.testing.wait_all_tasks_blocked()
        assert runner.session.state is State.ACTIVE and not runner.session._connections
        with trio.move_on_after(1):
            assert await mute.receive_some() == b"unreachable"  # nothing sent meanwhile
        started = trio.current_time()
        assert await mute.receive_some() == b""  # EOF: we closed it
        assert await stalled.receive_some() == b""
        assert trio.current_time() - started == pytest.approx(
            runner.session.config.open_hold_time - 1
        )
        assert runner.session.state is State.ACTIVE and runner.session.stats.flaps == 0
        # With the OPEN, the session takes it and answers.
        ours, theirs = trio.testing.memory_stream_pair()
        runner.incoming(ours)  # type: ignore[arg-type]
        await Peer(theirs).handshake(runner)
        assert runner.session.state is State.ESTABLISHED
        nursery.cancel_scope.cancel()


async def test_a_connection_awaiting_its_open_is_closed_when_the_runner_stops(
    autojump_clock: trio.testing.MockClock,
) -> None:
    runner = passive_runner()
    waiting, peer = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        await nursery.start(runner.run)
        runner.admin(start=True, reason="test")
        runner.incoming(waiting)  # type: ignore[arg-type]
        await trio.testing.wait_all_tasks_blocked()
        runner.admin(start=False, reason="removed from the configuration", final=True)
        with trio.fail_after(1):
            assert await peer.receive_some() == b""  # closed, not left to the GC
    assert runner._awaiting_open == 0
