"""The virtual-time MASC simulator: real engines and session FSMs in one process (or a few).

* :mod:`masc.sim.topology`: RFC 2909 Figure 1 and seeded random hierarchies;
* :mod:`masc.sim.network`: :class:`SimNetwork`, the nodes wired by in-memory streams under
  a mock clock, with partitions, crashes and restarts;
* :mod:`masc.sim.safety`: what must hold between domains once the protocol converged;
* :mod:`masc.sim.scenario`: timed fault scripts, seeded random ones, and their runner;
* :mod:`masc.sim.scenario_file`, :mod:`masc.sim.faults`: the TOML scenarios of ``masc sim``;
* :mod:`masc.sim.demand`: simulated MAASs whose sessions arrive and leave (the demand);
* :mod:`masc.sim.metrics`, :mod:`masc.sim.report`: what a run measured, as JSON and a plot;
* :mod:`masc.sim.run`: a scenario file run end to end (docs/simulation.md);
* :mod:`masc.sim.split`: one run shared between processes, one per core.
"""

from masc.sim.demand import DemandDriver, DemandSpec
from masc.sim.metrics import Collector, Report
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
from masc.sim.run import run_scenario_file, simulate
from masc.sim.safety import Violation, check_safety
from masc.sim.scenario import (
    Action,
    Scenario,
    play,
    quiet_period,
    random_scenario,
    run_scenario,
)
from masc.sim.scenario_file import SimScenario, load_and_resolve
from masc.sim.topology import (
    STRAWMAN_POOL,
    DomainSpec,
    LinkSpec,
    NodeSpec,
    Topology,
    TopologyError,
    figure1,
    random_topology,
    strawman,
)

__all__ = [
    "DAY",
    "EPOCH",
    "HOUR",
    "MINUTE",
    "SHORT_TIMERS",
    "STRAWMAN_POOL",
    "Action",
    "Collector",
    "DemandDriver",
    "DemandSpec",
    "DomainSpec",
    "LinkSpec",
    "NodeSpec",
    "Report",
    "Scenario",
    "SimError",
    "SimEvent",
    "SimNetwork",
    "SimNode",
    "SimScenario",
    "SimTimers",
    "Topology",
    "TopologyError",
    "Violation",
    "check_safety",
    "figure1",
    "load_and_resolve",
    "play",
    "quiet_period",
    "random_scenario",
    "random_topology",
    "run_scenario",
    "run_scenario_file",
    "seed_scheduler",
    "simulate",
    "strawman",
]
