"""Seeded random networks under random faults: once the faults stop and the network has had
time to converge, no two unrelated domains share space, every child's space is inside a
parent's, internal peers agree and locally-allocated sets are disjoint (§4.1, §12.4).

Each seed is one test.  A failure names the seed and the script; replay it with
``trio.run(run_scenario, random_scenario(seed), clock=MockClock(autojump_threshold=0))``.
"""

from __future__ import annotations

import pytest
import trio.testing

from masc.sim.scenario import quiet_period, random_scenario, run_scenario

SEEDS = range(200)


@pytest.mark.parametrize("seed", SEEDS, ids=lambda seed: f"seed{seed}")
async def test_random_scenario_is_safe_once_converged(
    seed: int, autojump_clock: trio.testing.MockClock
) -> None:
    scenario = random_scenario(seed)
    _, violations = await run_scenario(scenario)
    report = "\n".join(str(v) for v in violations)
    assert violations == [], f"{scenario.describe()}\n{report}"


def test_random_scenarios_are_a_function_of_the_seed() -> None:
    assert random_scenario(3) == random_scenario(3)
    assert random_scenario(3) != random_scenario(4)


@pytest.mark.parametrize("seed", range(20))
def test_faults_end_before_the_quiet_period(seed: int) -> None:
    scenario = random_scenario(seed)
    assert all(0 <= a.at < scenario.active for a in scenario.actions)
    levels = max(scenario.topology.levels().values()) + 1
    assert scenario.quiet == quiet_period(scenario.timers, levels)
    # Long enough for anything only expiry can clear (§4.2) and for every level to claim
    # again (§5.1).
    assert scenario.quiet > scenario.timers.claim_lifetime + levels * scenario.timers.waiting_period
