"""The trio task that owns the claim engine: timers in Unix time, requests, G-RIB hand-off.

Virtual time only (MockClock, autojump): the engine's 48-hour waiting period passes at once.
"""

from __future__ import annotations

import random
from ipaddress import ip_network
from pathlib import Path

import pytest
import trio
import trio.testing

from masc.daemon.domain import DomainRunner
from masc.daemon.grib import RecordingExporter
from masc.maas.grants import GrantConfig, GrantTable
from masc.protocol.constants import WAITING_PERIOD, AddressFamily
from masc.protocol.engine import ClaimEngine, EngineConfig, RequestRefused
from masc.protocol.events import EngineEvent
from masc.protocol.wire.messages import DomainId, NodeId
from masc.store.sqlite import Store

EPOCH = 1_700_000_000.0
POOL = ip_network("239.192.0.0/14")


def _runner() -> tuple[DomainRunner, RecordingExporter]:
    engine = ClaimEngine(
        EngineConfig(
            local_domain=DomainId(65001),
            local_node=NodeId(0x7F000001),
            family=AddressFamily.IPV4,
            global_pool=(POOL,),
            initial_size=256,
        ),
        rng=random.Random(7),
    )
    grib = RecordingExporter()
    return DomainRunner(engine, clock=lambda: EPOCH + trio.current_time(), grib=grib), grib


async def test_s5_1_d_a_tld_alone_allocates_after_delay_and_waiting_period_and_injects(
    autojump_clock: trio.testing.MockClock,
) -> None:
    runner, grib = _runner()
    async with trio.open_nursery() as nursery:
        await nursery.start(runner.run)
        await trio.sleep(WAITING_PERIOD - 1)
        assert not grib.prefixes, "nothing may be used before the waiting period ends"
        await trio.sleep(600 + 2)  # + INITIATE_CLAIM_DELAY
        assert len(grib.prefixes) == 1
        (prefix,) = grib.prefixes
        assert prefix.subnet_of(POOL) and prefix.num_addresses == 256  # type: ignore[arg-type]
        assert grib.history == [("inject", prefix)]
        nursery.cancel_scope.cancel()


async def test_requests_run_in_the_engine_task_and_refusals_reach_the_caller(
    autojump_clock: trio.testing.MockClock,
) -> None:
    runner, grib = _runner()
    async with trio.open_nursery() as nursery:
        await nursery.start(runner.run)
        with pytest.raises(RequestRefused):
            await runner.call(
                lambda engine, now: engine.release(ip_network("239.192.0.0/24"), now=now)
            )

        def claim(engine: ClaimEngine, now: float) -> list[EngineEvent]:
            return engine.claim(1, prefix=ip_network("239.193.0.0/20"), now=now, at=now)

        await runner.call(claim)
        await trio.sleep(WAITING_PERIOD + 1)
        assert ip_network("239.193.0.0/20") in grib.prefixes
        # §5.4: release withdraws it from the G-RIB at once.
        await runner.call(lambda engine, now: engine.release(ip_network("239.193.0.0/20"), now=now))
        assert ip_network("239.193.0.0/20") not in grib.prefixes
        assert grib.history[-1] == ("remove", ip_network("239.193.0.0/20"))
        nursery.cancel_scope.cancel()


# --- §13: store and MAAS grants ----------------------------------------------------------


def _stored_runner(path: Path) -> tuple[DomainRunner, GrantTable, Store]:
    runner, _grib = _runner()
    store = Store.open(path)
    grants = GrantTable(GrantConfig(), rng=random.Random(3))
    runner = DomainRunner(
        runner.engine, clock=runner.clock, grib=runner.grib, store=store, grants=grants
    )
    return runner, grants, store


async def test_s13_allocation_and_grants_are_on_disk_before_they_are_announced(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    runner, _grants, store = _stored_runner(tmp_path / "state.db")
    seen: list[tuple[str, bool]] = []

    def told(events: object) -> None:
        on_disk = {g.prefix for g in store.load().grants}
        seen.extend((str(e.grant.prefix), str(e.grant.prefix) in on_disk) for e in events)  # type: ignore[attr-defined]

    runner.on_grant_events = told
    async with trio.open_nursery() as nursery:
        await nursery.start(runner.run)
        await runner.register_maas("m", ())
        await trio.sleep(WAITING_PERIOD + 700)
        (alloc,) = store.load().allocations
        assert alloc.prefix in {str(p) for p in runner.grib.prefixes}  # type: ignore[attr-defined]
        assert seen and all(on_disk for _, on_disk in seen)
        nursery.cancel_scope.cancel()
    store.close()


async def test_s13_restored_maas_demand_is_unknown_until_it_reports(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """After a restart the MAASs' usage is not known: the engine is told no demand (hold
    what it has) rather than zero (which would shrink the space the MAASs use)."""
    runner, grants, store = _stored_runner(tmp_path / "state.db")
    async with trio.open_nursery() as nursery:
        await nursery.start(runner.run)
        await runner.register_maas("m", ())
        await trio.sleep(WAITING_PERIOD + 700)
        assert runner.engine.demand is not None
        nursery.cancel_scope.cancel()
    store.close()
    runner, grants, store = _stored_runner(tmp_path / "state.db")
    async with trio.open_nursery() as nursery:
        await nursery.start(runner.run)
        assert grants.grants("m") and runner.engine.allocations
        assert runner.engine.demand is None
        await runner.report_usage("m", in_use=3, rate=0.0, by_prefix={})
        assert runner.engine.demand is not None and runner.engine.demand.in_use == 3
        nursery.cancel_scope.cancel()
    store.close()
