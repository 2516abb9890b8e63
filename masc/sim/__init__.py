"""The virtual-time MASC simulator: real engines and session FSMs in one process.

* :mod:`masc.sim.topology`: RFC 2909 Figure 1 and seeded random hierarchies;
* :mod:`masc.sim.network`: :class:`SimNetwork`, the nodes wired by in-memory streams under
  a mock clock, with partitions, crashes and restarts;
* :mod:`masc.sim.safety`: what must hold between domains once the protocol converged;
* :mod:`masc.sim.scenario`: timed fault scripts, seeded random ones, and their runner.
"""

from masc.sim.network import (
    DAY,
    EPOCH,
    HOUR,
    MINUTE,
    SHORT_TIMERS,
    SimError,
    SimEvent,
    SimNetwork,
    SimNode,
    SimTimers,
    seed_scheduler,
)
from masc.sim.safety import Violation, check_safety
from masc.sim.scenario import (
    Action,
    Scenario,
    play,
    quiet_period,
    random_scenario,
    run_scenario,
)
from masc.sim.topology import (
    DomainSpec,
    LinkSpec,
    NodeSpec,
    Topology,
    TopologyError,
    figure1,
    random_topology,
)

__all__ = [
    "DAY",
    "EPOCH",
    "HOUR",
    "MINUTE",
    "SHORT_TIMERS",
    "Action",
    "DomainSpec",
    "LinkSpec",
    "NodeSpec",
    "Scenario",
    "SimError",
    "SimEvent",
    "SimNetwork",
    "SimNode",
    "SimTimers",
    "Topology",
    "TopologyError",
    "Violation",
    "check_safety",
    "figure1",
    "play",
    "quiet_period",
    "random_scenario",
    "random_topology",
    "run_scenario",
    "seed_scheduler",
]
