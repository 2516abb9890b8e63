"""The trio task that owns the claim engine: timers in Unix time, requests, G-RIB hand-off.

Virtual time only (MockClock, autojump): the engine's 48-hour waiting period passes at once.
"""

from __future__ import annotations

import random
from ipaddress import ip_network

import pytest
import trio
import trio.testing

from masc.daemon.domain import DomainRunner
from masc.daemon.grib import RecordingExporter
from masc.protocol.constants import WAITING_PERIOD, AddressFamily
from masc.protocol.engine import ClaimEngine, EngineConfig, RequestRefused
from masc.protocol.events import EngineEvent
from masc.protocol.wire.messages import DomainId, NodeId

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
