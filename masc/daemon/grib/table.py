"""The domain's G-RIB set and the tasks that keep each exporter's target equal to it.

The engine's events arrive in the domain runner, which must never wait on a netlink socket
or a vtysh process; so :class:`GribTable` only records the set and wakes the exporters.
Each :class:`TargetSync` is level-triggered: it reads back what its target holds of ours,
adds what is missing, deletes what is stale, and checks the result.  The same loop is the
start-up reconciliation (routes of a previous run that are still allocated are kept, so a
restart does not flap them), the repair after an error or after someone else changed the
target, and the periodic resync.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import trio

from masc.protocol.wire.messages import Prefix

log = logging.getLogger("masc.grib")

# After a failed sync the exporter retries after 1 s, doubling up to the resync interval.
_FIRST_RETRY = 1.0


class GribError(Exception):
    """A target could not be read or changed; the message says what and why."""


class GribExporter(Protocol):
    """Receives every change of the domain's G-RIB set, in order, exactly once."""

    def inject(self, prefix: Prefix) -> None: ...

    def remove(self, prefix: Prefix) -> None: ...


class GribTarget(Protocol):
    """One place the G-RIB is exported to.  Every method may raise :class:`GribError`."""

    name: str
    # Prefixes someone else originates there (as :meth:`installed` last found them): masc
    # counts them as present and neither adds over nor deletes them.
    foreign: set[Prefix]

    async def installed(self) -> set[Prefix]:
        """The prefixes masc owns there now (never what others put there)."""
        ...

    async def apply(self, add: Sequence[Prefix], delete: Sequence[Prefix]) -> None: ...

    async def verify(self, desired: frozenset[Prefix]) -> list[str]:
        """What is wrong after a sync (empty when the target shows exactly ``desired``)."""
        ...


class RecordingExporter:
    """Keeps the G-RIB set in memory, with the history of changes, and logs each change.

    What the simulation and the unit tests use: nothing leaves the process.
    """

    def __init__(self) -> None:
        self.prefixes: set[Prefix] = set()
        self.history: list[tuple[Literal["inject", "remove"], Prefix]] = []

    def inject(self, prefix: Prefix) -> None:
        self.prefixes.add(prefix)
        self.history.append(("inject", prefix))
        _log_change("inject", prefix)

    def remove(self, prefix: Prefix) -> None:
        self.prefixes.discard(prefix)
        self.history.append(("remove", prefix))
        _log_change("remove", prefix)


def _log_change(change: Literal["inject", "remove"], prefix: Prefix) -> None:
    log.info(
        "G-RIB %s %s", change, prefix, extra={"event": f"grib_{change}", "prefix": str(prefix)}
    )


@dataclass(slots=True)
class TargetStatus:
    """What `mascctl show status` and the metrics say about one exporter."""

    name: str
    in_sync: bool = False
    installed: int = 0
    syncs: int = 0
    failures: int = 0
    last_sync: float | None = None  # Unix time of the last sync that ended in agreement
    last_error: str = ""


class GribTable:
    """The G-RIB set as the engine last decided it, and the exporters that carry it out."""

    def __init__(self, targets: Sequence[GribTarget] = (), *, resync_interval: float = 60.0):
        self.prefixes: set[Prefix] = set()
        self.syncs = [TargetSync(self, target, resync_interval) for target in targets]

    def inject(self, prefix: Prefix) -> None:
        self.prefixes.add(prefix)
        _log_change("inject", prefix)
        self._wake()

    def remove(self, prefix: Prefix) -> None:
        self.prefixes.discard(prefix)
        _log_change("remove", prefix)
        self._wake()

    def _wake(self) -> None:
        for sync in self.syncs:
            sync.changed.set()

    @property
    def statuses(self) -> list[TargetStatus]:
        return [sync.status for sync in self.syncs]

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start once the engine holds its restored state: the first sync of each target
        then keeps what is still allocated and removes only what is not."""
        async with trio.open_nursery() as nursery:
            for sync in self.syncs:
                nursery.start_soon(sync.run)
            task_status.started()


class TargetSync:
    """Keeps one target equal to the table: on every change, after errors, periodically."""

    def __init__(self, table: GribTable, target: GribTarget, resync_interval: float) -> None:
        self.table = table
        self.target = target
        self.resync_interval = resync_interval
        self.status = TargetStatus(target.name)
        self.changed = trio.Event()
        self.synced = trio.Event()  # set after each sync that ended in agreement (tests wait)

    async def run(self) -> None:
        retry = _FIRST_RETRY
        while True:
            # Renewed before the set is read: a change during the sync wakes the next round.
            self.changed = trio.Event()
            try:
                await self.sync_once()
            except Exception as error:
                # A GribError is the target's expected failure; anything else is a bug in
                # an exporter, logged with its traceback, and must not end the daemon.
                self.status.in_sync = False
                self.status.failures += 1
                self.status.last_error = str(error) or type(error).__name__
                log.warning(
                    "G-RIB %s: %s; retrying in %gs",
                    self.target.name,
                    self.status.last_error,
                    retry,
                    exc_info=not isinstance(error, GribError),
                    extra={"event": "grib_error", "exporter": self.target.name},
                )
                wait, retry = retry, min(retry * 2, self.resync_interval)
            else:
                retry = _FIRST_RETRY
                wait = self.resync_interval
            with trio.move_on_after(wait):
                await self.changed.wait()

    async def sync_once(self) -> None:
        desired = frozenset(self.table.prefixes)
        have = await self.target.installed()
        add = sorted(desired - have - self.target.foreign, key=_order)
        delete = sorted(have - desired, key=_order)
        if add or delete:
            await self.target.apply(add, delete)
            for prefix in add:
                _log_target("added", self.target.name, prefix)
            for prefix in delete:
                _log_target("deleted", self.target.name, prefix)
        problems = await self.target.verify(desired)
        self.status.syncs += 1
        if problems:
            raise GribError("; ".join(problems))
        self.status.in_sync = True
        self.status.installed = len(desired - self.target.foreign)
        self.status.last_sync = time.time()
        self.status.last_error = ""
        log.debug(
            "G-RIB %s: in sync, %d prefix(es)",
            self.target.name,
            len(desired),
            extra={"event": "grib_synced", "exporter": self.target.name, "prefixes": len(desired)},
        )
        self.synced.set()
        self.synced = trio.Event()


def _order(prefix: Prefix) -> tuple[int, int, int]:
    return (prefix.version, int(prefix.network_address), prefix.prefixlen)


def _log_target(what: str, exporter: str, prefix: Prefix) -> None:
    log.info(
        "G-RIB %s: %s %s",
        exporter,
        what,
        prefix,
        extra={"event": f"grib_{what}", "exporter": exporter, "prefix": str(prefix)},
    )
