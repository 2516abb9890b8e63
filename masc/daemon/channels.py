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


class _Receivers:
    __slots__ = ("_rx",)

    def __init__(self, rx: trio.MemoryReceiveChannel[Any]) -> None:
        self._rx = rx

    def __len__(self) -> int:
        return self._rx.statistics().tasks_waiting_receive


class _Buffered:
    __slots__ = ("_rx",)

    def __init__(self, rx: trio.MemoryReceiveChannel[Any]) -> None:
        self._rx = rx

    def __len__(self) -> int:
        return self._rx.statistics().current_buffer_used


def _state_field(rx: trio.MemoryReceiveChannel[Any], name: str) -> Sized | None:
    found = getattr(getattr(rx, "_state", None), name, None)
    return found if isinstance(found, Sized) else None


def waiting_receivers(rx: trio.MemoryReceiveChannel[Any]) -> Sized:
    """A live view whose ``len()`` is ``rx.statistics().tasks_waiting_receive``: a task
    handed an item (or cancelled) stops counting at once, before it runs again."""
    found = _state_field(rx, "receive_tasks")
    return _Receivers(rx) if found is None else found


def buffered(rx: trio.MemoryReceiveChannel[Any]) -> Sized:
    """A live view whose ``len()`` is ``rx.statistics().current_buffer_used``."""
    found = _state_field(rx, "data")
    return _Buffered(rx) if found is None else found
