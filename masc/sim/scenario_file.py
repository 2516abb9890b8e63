"""Scenario files for ``masc sim``: TOML read into frozen pydantic models, then resolved into
what :func:`masc.sim.run.simulate` runs.

A scenario names a topology (RFC 2909 §4 Figure 1, the Appendix B (§18) strawman, or a
seeded random hierarchy), the protocol timers (§6 defaults), the Appendix A allocator, the
local policy (§8.3, §12.4, §14, Appendix B thresholds), how each domain splits its space
between MAASs, a demand model, a fault schedule, a duration and a seed::

    name = "figure1"          # default: the file's name without .toml
    seed = 1
    duration = "4d"           # how long faults may happen and demand arrives
    sample_interval = "1h"    # how often metrics are sampled (virtual time)
    quiet = "auto"            # after `duration`: "auto" or a duration (see below)
    processes = 1             # processes sharing the nodes (masc.sim.split); no faults if > 1
    sync_interval = "10s"     # ... and how often they exchange what crosses between them
    [topology]  kind = "figure1" | "strawman" | "random", and that kind's keys
    [timers]    waiting_period, initiate_claim_delay, claim_lifetime, clock_skew_grace,
                hold_time, connect_retry, restart_backoff_initial, restart_backoff_max
    [allocator] target_utilization, max_prefixes, renew_interval, strategy
    [policy]    the daemon's [policy] section (masc.config.PolicyConfig)
    [maas]      horizon, expiry_warning, min_grant
    [demand]    model = "none" | "poisson" | "growth", and the DemandSpec fields
    [faults]    see masc.sim.faults

At ``duration`` every partition is healed and every crashed node restarted; the run then goes
on for the quiet period, sampling as before, before the safety checker runs.  ``quiet =
"auto"`` is :func:`masc.sim.scenario.quiet_period` (enough for the protocol to converge
after a fault) when the scenario has faults, else nothing.

Every problem is a :class:`~masc.config.loader.ConfigError` ``file: key: problem`` (unknown
keys included: every model forbids them), as for the daemon's own configuration.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from ipaddress import IPv4Network, ip_network
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    field_validator,
    model_validator,
)

from masc.config.durations import parse_duration
from masc.config.loader import ConfigError, load_model
from masc.config.models import (
    Duration,
    HoldTime,
    KeyedProblems,
    KeyPath,
    PolicyConfig,
    PositiveDuration,
)
from masc.daemon.settings import engine_policy
from masc.maas.grants import GrantConfig
from masc.protocol.allocation import AllocatorConfig, Strategy
from masc.protocol.engine import Policy
from masc.protocol.wire.messages import Prefix
from masc.sim.demand import DemandSpec
from masc.sim.faults import FaultsConfig, fault_actions
from masc.sim.network import DAY, HOUR, SimTimers
from masc.sim.scenario import Action, quiet_period
from masc.sim.split import MAX_PROCESSES, SYNC_INTERVAL
from masc.sim.topology import (
    DEFAULT_POOL,
    STRAWMAN_POOL,
    Topology,
    TopologyError,
    figure1,
    random_topology,
    strawman,
)

__all__ = [
    "AllocatorSection",
    "DemandSection",
    "MaasSection",
    "ScenarioFile",
    "SimScenario",
    "TimersSection",
    "TopologySection",
    "load_scenario",
    "resolve",
]

_T = SimTimers()
_A = AllocatorConfig()
_G = GrantConfig()
_D = DemandSpec()
# A random hierarchy's default pool: the whole IPv4 Organization-Local Scope (RFC 2365),
# as for Figure 1; random_topology's own default (a /16) is exhausted by 100 domains
# wanting 256-4096 addresses each.
RANDOM_POOL: Final[tuple[Prefix, ...]] = DEFAULT_POOL


def _pool_prefix(value: object) -> IPv4Network:
    """An IPv4 multicast prefix such as ``"228.0.0.0/6"`` (the simulator runs IPv4)."""
    if not isinstance(value, str):
        raise ValueError(f'must be a prefix string such as "228.0.0.0/6", got {value!r}')
    try:
        net = ip_network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a prefix: {exc}") from None
    if not isinstance(net, IPv4Network) or not net.is_multicast:
        raise ValueError(f"{value} is not an IPv4 multicast prefix (224.0.0.0/4)")
    return net


def _pair(value: object) -> object:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError(f"must be [low, high], two fractions such as [0.7, 0.9], got {value!r}")
    return value


def _quiet(value: object) -> float | Literal["auto"]:
    if value == "auto":
        return "auto"
    return parse_duration(value)


def _power_of_two(value: int) -> int:
    # A claim is a prefix (§5): it covers a power of two addresses.
    if value < 1 or value & (value - 1):
        raise ValueError(f"must be a power of two (a claim is a prefix), got {value}")
    return value


PoolPrefix = Annotated[IPv4Network, PlainValidator(_pool_prefix)]
Count = Annotated[int, Field(strict=True, ge=0)]
Positive = Annotated[int, Field(strict=True, ge=1)]
Fraction = Annotated[float, Field(strict=True, ge=0.0, le=1.0)]
Addresses = Annotated[int, Field(strict=True, ge=1)]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- [topology] ------------------------------------------------------------------------------

# Which keys each kind takes (besides ``kind``); one flat table keeps the key paths short
# (``topology.tlds``), and a key another kind takes is reported as such.
_KIND_KEYS: Final[dict[str, frozenset[str]]] = {
    "figure1": frozenset({"pool", "demand"}),
    "strawman": frozenset({"pool", "seed", "tlds", "children", "level3", "mesh_degree", "initial"}),
    "random": frozenset(
        {
            "pool",
            "seed",
            "domains",
            "levels",
            "tlds",
            "max_nodes",
            "multi_parent",
            "sibling_links",
            "sibling_degree",
            "extra_links",
            "leaf_demand",
            "demand_factor",
        }
    ),
}


class TopologySection(_Section):
    """``[topology]``: which hierarchy to simulate.

    * ``kind = "figure1"``: RFC 2909 §4 Figure 1 (12 nodes in 7 domains); ``demand`` is
      what a top-level, regional and customer domain wants (default [4096, 1024, 256]).
    * ``kind = "strawman"``: Appendix B, one node per domain
      (:func:`masc.sim.topology.strawman`): ``tlds`` (128), ``children`` per TLD (64),
      ``level3`` (mean level-3 domains per level-2 domain, 0), ``mesh_degree`` (sibling
      sessions per TLD, 3), ``initial`` (every domain's initial claim, 256), pool
      228.0.0.0/6.
    * ``kind = "random"``: :func:`masc.sim.topology.random_topology`: ``domains``,
      ``levels``, ``tlds``, ``max_nodes`` per domain, ``multi_parent`` (chance of a second
      parent), ``sibling_links`` (chance of a sibling session per pair of children) or
      ``sibling_degree`` (sibling sessions per child; wins over ``sibling_links``),
      ``extra_links``, ``leaf_demand`` and ``demand_factor`` (a leaf's initial claim, and
      how many times more each level up wants: 256 and 4).  Defaults differ from the
      function's to suit a hundred domains: 100 domains, one node each, no second
      parents, no sibling or extra internal sessions, pool 239.192.0.0/14.

    ``pool`` is the global pool the top-level domains claim from; ``seed`` (strawman and
    random) draws the topology, by default from the scenario's seed.
    """

    kind: Literal["figure1", "strawman", "random"] = "figure1"
    pool: Annotated[tuple[PoolPrefix, ...], Field(min_length=1)] | None = None
    seed: Count | None = None
    # figure1
    demand: tuple[Addresses, Addresses, Addresses] = (4096, 1024, 256)
    # strawman
    tlds: Positive | None = None
    children: Count = 64
    level3: Annotated[float, Field(strict=True, ge=0.0)] = 0.0
    mesh_degree: Annotated[float, Field(strict=True, ge=0.0)] = 3.0
    initial: Addresses = 256
    # random
    domains: Annotated[int, Field(strict=True, ge=1, le=65_535)] = 100
    levels: Positive = 3
    max_nodes: Annotated[int, Field(strict=True, ge=1, le=255)] = 1
    multi_parent: Fraction = 0.0
    sibling_links: Fraction = 0.0
    sibling_degree: Annotated[float, Field(strict=True, ge=0.0)] | None = None
    extra_links: Fraction = 0.0
    leaf_demand: Addresses = 256
    demand_factor: Annotated[int, Field(strict=True, ge=1)] = 4

    @field_validator("initial", "leaf_demand", "demand_factor")
    @classmethod
    def _prefix_size(cls, value: int) -> int:
        return _power_of_two(value)

    @field_validator("demand")
    @classmethod
    def _prefix_sizes(cls, value: tuple[int, int, int]) -> tuple[int, int, int]:
        for size in value:
            _power_of_two(size)
        return value

    @model_validator(mode="after")
    def _check(self) -> Self:
        allowed = _KIND_KEYS[self.kind]
        problems: list[tuple[KeyPath, str]] = [
            ((key,), f"not a key of kind = {self.kind!r} (its keys: {', '.join(sorted(allowed))})")
            for key in sorted(self.model_fields_set - allowed - {"kind"})
        ]
        if problems:
            raise KeyedProblems(problems)
        return self

    def build(self, seed: int) -> Topology:
        """The topology; ``seed`` is the scenario's (used unless ``seed`` is set here)."""
        seed = self.seed if self.seed is not None else seed
        if self.kind == "figure1":
            return figure1(pool=self.pool or DEFAULT_POOL, demand=self.demand)
        if self.kind == "strawman":
            return strawman(
                seed,
                tlds=self.tlds if self.tlds is not None else 128,
                children=self.children,
                level3=self.level3,
                mesh_degree=self.mesh_degree,
                pool=self.pool or STRAWMAN_POOL,
                initial=self.initial,
            )
        return random_topology(
            seed,
            domains=self.domains,
            levels=self.levels,
            tlds=self.tlds,
            max_nodes=self.max_nodes,
            multi_parent=self.multi_parent,
            sibling_links=self.sibling_links,
            sibling_degree=self.sibling_degree,
            extra_links=self.extra_links,
            pool=self.pool or RANDOM_POOL,
            leaf_demand=self.leaf_demand,
            demand_factor=self.demand_factor,
        )


# --- [timers], [allocator], [maas], [demand] ---------------------------------------------------


class TimersSection(_Section):
    """``[timers]``: every node's timers (:class:`~masc.sim.network.SimTimers`); the
    defaults are the RFC's (§6 WAITING_PERIOD 48 h, INITIATE_CLAIM_DELAY 10 min; §12.3 one
    day of clock-skew grace; Appendix B 30-day claim lifetimes).  ``hold_time = 0`` (no
    keepalives, §7.2) keeps big simulations cheap."""

    waiting_period: Duration = _T.waiting_period
    initiate_claim_delay: Duration = _T.initiate_claim_delay
    claim_lifetime: PositiveDuration = _T.claim_lifetime
    clock_skew_grace: Duration = _T.clock_skew_grace
    hold_time: HoldTime = _T.hold_time
    connect_retry: PositiveDuration = _T.connect_retry
    restart_backoff_initial: PositiveDuration = _T.restart_backoff_initial
    restart_backoff_max: PositiveDuration = _T.restart_backoff_max

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.restart_backoff_max < self.restart_backoff_initial:
            raise KeyedProblems([(("restart_backoff_max",), "must be >= restart_backoff_initial")])
        return self

    def build(self) -> SimTimers:
        return SimTimers(**self.model_dump())


class AllocatorSection(_Section):
    """``[allocator]``: the Appendix A allocator of every node
    (:class:`~masc.protocol.allocation.AllocatorConfig`); ``target_utilization`` is also
    each domain's band for its MAASs' grants, as in the daemon."""

    target_utilization: Annotated[
        tuple[
            Annotated[float, Field(strict=True, gt=0.0, le=1.0)],
            Annotated[float, Field(strict=True, gt=0.0, le=1.0)],
        ],
        BeforeValidator(_pair),
    ] = _A.target_utilization
    max_prefixes: Positive = _A.max_prefixes
    renew_interval: PositiveDuration = _A.renew_interval
    strategy: Literal["rbo", "first-fit", "best-fit"] = "rbo"

    @field_validator("target_utilization")
    @classmethod
    def _band(cls, value: tuple[float, float]) -> tuple[float, float]:
        if value[0] >= value[1]:
            raise ValueError(f"must be [low, high] with low < high, got {list(value)}")
        return value

    def build(self) -> AllocatorConfig:
        return AllocatorConfig(
            target_utilization=self.target_utilization,
            max_prefixes=self.max_prefixes,
            renew_interval=self.renew_interval,
            strategy=Strategy(self.strategy),
        )


class MaasSection(_Section):
    """``[maas]``: how each domain splits its space between MAASs
    (:class:`~masc.maas.grants.GrantConfig`, the daemon's ``[maas]`` grant settings)."""

    horizon: PositiveDuration = _G.horizon
    expiry_warning: Duration = _G.expiry_warning
    min_grant: Addresses = _G.min_grant

    @field_validator("min_grant")
    @classmethod
    def _grant(cls, value: int) -> int:
        return _power_of_two(value)

    def build(self, allocator: AllocatorSection) -> GrantConfig:
        return GrantConfig(
            target_utilization=allocator.target_utilization,
            horizon=self.horizon,
            expiry_warning=self.expiry_warning,
            min_grant=self.min_grant,
        )


class DemandSection(_Section):
    """``[demand]``: what each domain's MAAS wants (:class:`masc.sim.demand.DemandSpec`).

    ``model = "poisson"``: sessions arrive at ``arrivals_per_hour`` per demanding domain,
    each using ``addresses_per_session`` addresses for a log-normal lifetime (median
    ``lifetime_median``, ``lifetime_sigma``).  ``model = "growth"``: addresses in use go
    from ``start`` to ``end`` over ``ramp`` along a linear, exponential or logistic
    ``shape``, scaled per domain by a random factor in [1 - jitter, 1 + jitter].
    ``domains`` says who has a MAAS: the leaves of the hierarchy or every domain.  A MAAS
    reports its usage at most every ``report_interval``, when it moved by
    ``report_change`` (a fraction) of the last report; demand begins ``after`` the start.
    """

    model: Literal["none", "poisson", "growth"] = _D.model
    domains: Literal["leaves", "all"] = _D.domains
    arrivals_per_hour: Annotated[float, Field(strict=True, ge=0.0)] = _D.arrivals_per_hour
    lifetime_median: PositiveDuration = _D.lifetime_median
    lifetime_sigma: Annotated[float, Field(strict=True, ge=0.0)] = _D.lifetime_sigma
    addresses_per_session: Addresses = _D.addresses_per_session
    start: Count = _D.start
    end: Count = _D.end
    ramp: PositiveDuration = _D.ramp
    shape: Literal["linear", "exponential", "logistic"] = _D.shape
    jitter: Annotated[float, Field(strict=True, ge=0.0, lt=1.0)] = _D.jitter
    report_interval: Duration = _D.report_interval
    report_change: Annotated[float, Field(strict=True, ge=0.0)] = _D.report_change
    after: Duration = _D.after

    def build(self) -> DemandSpec:
        return DemandSpec(**self.model_dump())


# --- the file --------------------------------------------------------------------------------


class ScenarioFile(_Section):
    """A scenario file (module docstring)."""

    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")] | None = None
    seed: Count = 0
    duration: PositiveDuration = 30 * DAY
    sample_interval: PositiveDuration = HOUR
    quiet: Annotated[float | Literal["auto"], PlainValidator(_quiet)] = "auto"
    processes: Annotated[int, Field(ge=1, le=MAX_PROCESSES)] = 1
    sync_interval: PositiveDuration = SYNC_INTERVAL
    topology: TopologySection = TopologySection()
    timers: TimersSection = TimersSection()
    allocator: AllocatorSection = AllocatorSection()
    policy: PolicyConfig = PolicyConfig()
    maas: MaasSection = MaasSection()
    demand: DemandSection = DemandSection()
    faults: FaultsConfig = FaultsConfig()


@dataclass(frozen=True)
class SimScenario:
    """A scenario resolved into what the simulator runs (:func:`masc.sim.run.simulate`)."""

    name: str
    seed: int
    topology: Topology
    timers: SimTimers
    policy: Policy
    allocator: AllocatorConfig
    grants: GrantConfig
    demand: DemandSpec
    actions: tuple[Action, ...]
    duration: float
    quiet: float
    sample_interval: float
    processes: int = 1  # masc.sim.split
    sync_interval: float = SYNC_INTERVAL
    # What the report echoes: the file's settings with every default filled in.
    echo: dict[str, Any] = field(default_factory=dict)


def load_scenario(path: str | os.PathLike[str]) -> ScenarioFile:
    """Read and validate a scenario file.  Raises ConfigError."""
    return load_model(path, ScenarioFile)


def resolve(
    scenario: ScenarioFile,
    *,
    source: str = "<scenario>",
    name: str | None = None,
    duration: float | None = None,
    seed: int | None = None,
    processes: int | None = None,
) -> SimScenario:
    """Build the topology, timers, policy, demand and fault schedule of ``scenario``.

    ``duration``, ``seed`` and ``processes`` override the file's (``masc sim --duration``,
    ``--seed``, ``--processes``); the
    name is the file's ``name``, else ``name`` (the file's stem).  Problems only visible
    with the topology built (a fault naming a node that does not exist) are ConfigErrors
    naming the key in ``source``."""
    overrides = {"duration": duration, "seed": seed, "processes": processes}
    update = {key: value for key, value in overrides.items() if value is not None}
    if update:
        scenario = scenario.model_copy(update=update)
    if not scenario.duration > 0:
        raise ConfigError(source, "duration", "must be greater than 0 seconds")
    try:
        topology = scenario.topology.build(scenario.seed)
    except TopologyError as exc:
        raise ConfigError(source, "topology", str(exc)) from None
    timers = scenario.timers.build()
    actions = fault_actions(
        scenario.faults, topology, duration=scenario.duration, seed=scenario.seed, source=source
    )
    if not 1 <= scenario.processes <= MAX_PROCESSES:  # an override, not validated yet
        raise ConfigError(source, "processes", f"must be 1 to {MAX_PROCESSES}")
    if scenario.processes > 1 and actions:
        raise ConfigError(
            source,
            "processes",
            f"a run split across processes takes no faults ({len(actions)} scheduled); "
            "set processes = 1",
        )
    if (
        scenario.processes > 1
        and timers.hold_time
        and 6 * scenario.sync_interval > timers.hold_time
    ):
        # Keepalives (§7.2: every third of the hold time) between processes arrive up to
        # two sync intervals late (masc.sim.split); a session drops at two thirds.  At most
        # a sixth keeps a keepalive's margin, also for the OPEN exchange, which crosses
        # three times.
        raise ConfigError(
            source,
            "sync_interval",
            f"must be at most a sixth of timers.hold_time ({timers.hold_time} s) when the run "
            "is split across processes",
        )
    if scenario.quiet == "auto":
        levels = max(topology.levels().values(), default=0) + 1
        quiet = quiet_period(timers, levels) if actions else 0.0
    else:
        quiet = scenario.quiet
    label = scenario.name or name or "scenario"
    echo = scenario.model_dump(mode="json")
    echo.update(
        name=label,
        quiet=quiet,
        domains=len(topology.domains),
        nodes=len(topology.nodes),
        sessions=len(topology.links),
        faults_scheduled=len(actions),
    )
    return SimScenario(
        name=label,
        seed=scenario.seed,
        topology=topology,
        timers=timers,
        policy=engine_policy(scenario.policy),
        allocator=scenario.allocator.build(),
        grants=scenario.maas.build(scenario.allocator),
        demand=scenario.demand.build(),
        actions=actions,
        duration=scenario.duration,
        quiet=quiet,
        sample_interval=scenario.sample_interval,
        processes=scenario.processes,
        sync_interval=scenario.sync_interval,
        echo=echo,
    )


def load_and_resolve(
    path: str | os.PathLike[str],
    *,
    duration: float | None = None,
    seed: int | None = None,
    processes: int | None = None,
) -> SimScenario:
    """:func:`load_scenario` then :func:`resolve`, errors naming ``path``."""
    return resolve(
        load_scenario(path),
        source=os.fspath(path),
        name=Path(path).stem,
        duration=duration,
        seed=seed,
        processes=processes,
    )
