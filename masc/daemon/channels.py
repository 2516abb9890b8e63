"""What a trio memory channel's ``statistics()`` tells, read without building it.

The runners ask, for every message, whether their loop is parked in ``receive`` and
whether a writer's queue is empty (masc.daemon.domain, masc.daemon.peer).  ``statistics()``
builds a fresh object each time; in a simulation of thousands of nodes that was a few per
cent of the wall time.  These views read the channel's own bookkeeping instead, and fall
back to ``statistics()`` should a trio release keep it elsewhere.
"""

from __future__ import annotations

from collections.abc import Sized
from typing import Any

import trio


class _Statistic:
    """The fallback view: ``len()`` is one field of ``rx.statistics()``."""

    __slots__ = ("_field", "_rx")

    def __init__(self, rx: trio.MemoryReceiveChannel[Any], field: str) -> None:
        self._rx = rx
        self._field = field

    def __len__(self) -> int:
        count: int = getattr(self._rx.statistics(), self._field)
        return count


def _view(rx: trio.MemoryReceiveChannel[Any], state_field: str, statistic: str) -> Sized:
    """The channel state's own ``state_field`` (a live container), else the fallback."""
    found = getattr(getattr(rx, "_state", None), state_field, None)
    return found if isinstance(found, Sized) else _Statistic(rx, statistic)


def waiting_receivers(rx: trio.MemoryReceiveChannel[Any]) -> Sized:
    """A live view whose ``len()`` is ``rx.statistics().tasks_waiting_receive``: a task
    handed an item (or cancelled) stops counting at once, before it runs again."""
    return _view(rx, "receive_tasks", "tasks_waiting_receive")


def buffered(rx: trio.MemoryReceiveChannel[Any]) -> Sized:
    """A live view whose ``len()`` is ``rx.statistics().current_buffer_used``."""
    return _view(rx, "data", "current_buffer_used")
