"""The G-RIB table and its exporters' sync loop (RFC 2909 §3, §5.1 d), §4.2, §12.4), with a
fake target under virtual time: what each sync adds, deletes and keeps, and how errors,
changes and drift made behind masc's back are handled."""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import ip_network

import pytest
import trio
from trio.testing import MockClock

from masc.daemon.grib import GribError, GribTable
from masc.protocol.wire.messages import Prefix

A, B, C = ip_network("239.192.0.0/24"), ip_network("239.192.1.0/24"), ip_network("ff3e:10::/32")


class FakeTarget:
    name = "fake"

    def __init__(self, held: set[Prefix] | None = None, foreign: set[Prefix] | None = None):
        self.held = set(held or ())
        self.others = set(foreign or ())
        self.foreign: set[Prefix] = set()
        self.calls: list[tuple[list[Prefix], list[Prefix]]] = []
        self.fail_next = 0  # so many of the next apply calls raise
        self.reads = 0

    async def installed(self) -> set[Prefix]:
        self.reads += 1
        self.foreign = set(self.others)
        return set(self.held)

    async def apply(self, add: Sequence[Prefix], delete: Sequence[Prefix]) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise GribError("target unreachable")
        self.calls.append((list(add), list(delete)))
        self.held |= set(add)
        self.held -= set(delete)

    async def verify(self, desired: frozenset[Prefix]) -> list[str]:
        return [f"{p} missing" for p in desired - self.held - self.others]


async def _synced(table: GribTable) -> None:
    await table.syncs[0].synced.wait()


async def test_first_sync_keeps_what_is_still_allocated_and_deletes_only_the_stale(
    autojump_clock: MockClock,
) -> None:
    """A restart reconciles without a flap: a route of the previous run that is still
    allocated is neither deleted nor re-added."""
    target = FakeTarget(held={A, B})
    table = GribTable([target])
    table.inject(A)  # what the engine restored from the store
    table.inject(C)
    async with trio.open_nursery() as nursery:
        await nursery.start(table.run)
        await _synced(table)
        nursery.cancel_scope.cancel()
    assert target.calls == [([C], [B])]
    assert target.held == {A, C}
    status = table.statuses[0]
    assert status.in_sync and status.installed == 2 and status.last_error == ""


async def test_every_change_is_carried_out_and_removal_deletes_the_route(
    autojump_clock: MockClock,
) -> None:
    target = FakeTarget()
    table = GribTable([target], resync_interval=3600)
    async with trio.open_nursery() as nursery:
        await nursery.start(table.run)
        await _synced(table)
        table.inject(A)
        await _synced(table)
        assert target.held == {A}
        table.inject(B)
        table.remove(A)  # §4.2 expiry / §5.4 release / §12.4 withdraw
        await _synced(table)
        assert target.held == {B}
        nursery.cancel_scope.cancel()
    assert target.calls == [([A], []), ([B], [A])]


async def test_a_failed_sync_is_retried_with_back_off_and_reported(
    autojump_clock: MockClock,
) -> None:
    target = FakeTarget()
    target.fail_next = 3
    table = GribTable([target], resync_interval=60)
    table.inject(A)
    async with trio.open_nursery() as nursery:
        await nursery.start(table.run)
        await trio.sleep(0.5)
        status = table.statuses[0]
        assert not status.in_sync and status.failures == 1
        assert status.last_error == "target unreachable"
        start = trio.current_time()
        await _synced(table)
        # retries after 1 s, 2 s and 4 s (from the first failure at t=0)
        assert trio.current_time() - start == pytest.approx(7 - 0.5)
        nursery.cancel_scope.cancel()
    assert target.held == {A} and status.in_sync and status.failures == 3


async def test_the_periodic_resync_repairs_a_change_made_behind_masc_s_back(
    autojump_clock: MockClock,
) -> None:
    target = FakeTarget()
    table = GribTable([target], resync_interval=60)
    table.inject(A)
    async with trio.open_nursery() as nursery:
        await nursery.start(table.run)
        await _synced(table)
        target.held.clear()  # an operator flushed the table
        target.held.add(B)  # and something of ours that is not allocated appeared
        await trio.sleep(61)
        nursery.cancel_scope.cancel()
    assert target.held == {A}


async def test_the_operators_own_entries_are_never_added_over_or_deleted(
    autojump_clock: MockClock,
) -> None:
    target = FakeTarget(foreign={A, B})
    table = GribTable([target])
    table.inject(A)  # masc wants A, but the operator already originates it
    async with trio.open_nursery() as nursery:
        await nursery.start(table.run)
        await _synced(table)
        nursery.cancel_scope.cancel()
    assert target.calls == [] and table.statuses[0].in_sync


async def test_with_no_exporter_the_table_still_records_the_set() -> None:
    table = GribTable()
    table.inject(A)
    table.inject(B)
    table.remove(A)
    assert table.prefixes == {B} and table.statuses == []


async def test_an_unexpected_exception_in_an_exporter_does_not_end_the_daemon(
    autojump_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Only the export waits: the error is logged with its traceback and retried."""
    target = FakeTarget()
    calls = 0
    real = target.installed

    async def broken_once() -> set[Prefix]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ValueError("'not json' is not JSON")
        return await real()

    target.installed = broken_once  # type: ignore[method-assign]
    table = GribTable([target])
    table.inject(A)
    async with trio.open_nursery() as nursery:
        await nursery.start(table.run)
        await _synced(table)
        nursery.cancel_scope.cancel()
    status = table.statuses[0]
    assert status.failures == 1 and status.in_sync and target.held == {A}
    errors = [r for r in caplog.records if getattr(r, "event", "") == "grib_error"]
    assert len(errors) == 1 and errors[0].exc_info is not None
