"""The channel views (masc.daemon.channels) say what ``statistics()`` says, at every step
of a receiver's life: parked, handed an item, cancelled; and so does their fallback."""

from __future__ import annotations

from collections.abc import Callable, Sized
from typing import Any

import pytest
import trio
import trio.testing

from masc.daemon import channels
from masc.daemon.channels import buffered, waiting_receivers

Views = Callable[[trio.MemoryReceiveChannel[Any]], tuple[Sized, Sized]]


def _views(rx: trio.MemoryReceiveChannel[Any]) -> tuple[Sized, Sized]:
    return waiting_receivers(rx), buffered(rx)


def _fallback(rx: trio.MemoryReceiveChannel[Any]) -> tuple[Sized, Sized]:
    return (
        channels._Statistic(rx, "tasks_waiting_receive"),
        channels._Statistic(rx, "current_buffer_used"),
    )


@pytest.mark.parametrize("views", [_views, _fallback], ids=["state", "statistics"])
async def test_views_follow_statistics_through_a_receivers_life(views: Views) -> None:
    tx, rx = trio.open_memory_channel[int](10)
    waiting, queued = views(rx)

    def agree(receivers: int, items: int) -> None:
        stats = rx.statistics()
        assert (len(waiting), len(queued)) == (receivers, items)
        assert (stats.tasks_waiting_receive, stats.current_buffer_used) == (receivers, items)

    agree(0, 0)
    tx.send_nowait(1)
    agree(0, 1)
    assert rx.receive_nowait() == 1
    got: list[int] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: _receive_into(rx, got))
        await trio.testing.wait_all_tasks_blocked()
        agree(1, 0)  # parked in receive
        tx.send_nowait(2)
        agree(0, 0)  # handed the item: no longer waiting, though it has not run yet
    assert got == [2]
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: _receive_into(rx, got))
            await trio.testing.wait_all_tasks_blocked()
            agree(1, 0)
            scope.cancel()
            agree(0, 0)  # cancelled: out of the channel's waiters at once


async def _receive_into(rx: trio.MemoryReceiveChannel[int], got: list[int]) -> None:
    got.append(await rx.receive())


def test_a_channel_without_the_expected_bookkeeping_gets_the_fallback() -> None:
    class Bare:
        def statistics(self) -> Any:
            return trio.open_memory_channel[int](1)[1].statistics()

    bare: Any = Bare()
    assert isinstance(waiting_receivers(bare), channels._Statistic)
    assert isinstance(buffered(bare), channels._Statistic)
    assert (len(waiting_receivers(bare)), len(buffered(bare))) == (0, 0)
    _tx, rx = trio.open_memory_channel[int](1)
    assert not isinstance(waiting_receivers(rx), channels._Statistic)
