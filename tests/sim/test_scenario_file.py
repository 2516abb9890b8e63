"""Scenario files (masc.sim.scenario_file): defaults, every key, and errors that name the
key, as ``file: key: problem`` (exit 2 in ``masc sim``)."""

from __future__ import annotations

from ipaddress import IPv4Network
from pathlib import Path

import pytest

from masc.config.loader import ConfigError
from masc.maas.grants import GrantConfig
from masc.protocol.allocation import AllocatorConfig, Strategy
from masc.protocol.constants import Role
from masc.protocol.engine import ClashResolution, Policy
from masc.sim.demand import DemandSpec
from masc.sim.network import DAY, HOUR, MINUTE, SimTimers
from masc.sim.scenario import Action, quiet_period
from masc.sim.scenario_file import ScenarioFile, SimScenario, load_and_resolve, load_scenario
from masc.sim.topology import DEFAULT_POOL, figure1, random_topology, strawman

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def resolved(tmp_path: Path, text: str, name: str = "s") -> SimScenario:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return load_and_resolve(path)


def error(tmp_path: Path, text: str) -> ConfigError:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_and_resolve(path)
    assert caught.value.file == str(path)
    return caught.value


def test_an_empty_file_is_figure1_with_the_rfcs_settings(tmp_path: Path) -> None:
    s = resolved(tmp_path, "", name="empty")
    assert s.name == "empty"  # the file's stem
    assert s.seed == 0
    assert s.topology == figure1()
    assert s.timers == SimTimers()
    assert s.timers.waiting_period == 48 * HOUR and s.timers.claim_lifetime == 30 * DAY
    assert s.allocator == AllocatorConfig()
    assert s.grants == GrantConfig()
    assert s.policy == Policy()
    assert s.demand == DemandSpec()
    assert s.actions == ()
    assert s.duration == 30 * DAY
    assert s.quiet == 0.0  # no faults: nothing to converge from
    assert s.sample_interval == HOUR
    assert s.echo["name"] == "empty" and s.echo["domains"] == 7


def test_every_key(tmp_path: Path) -> None:
    s = resolved(
        tmp_path,
        """
name = "every-key"
seed = 9
duration = "2d"
sample_interval = "30m"
quiet = "5h"
[topology]
kind = "random"
seed = 4
domains = 30
levels = 2
tlds = 2
max_nodes = 2
multi_parent = 0.5
sibling_links = 0.1
sibling_degree = 1.5
extra_links = 0.25
leaf_demand = 64
demand_factor = 2
pool = ["239.1.0.0/16"]
[timers]
waiting_period = "1h"
initiate_claim_delay = "1m"
claim_lifetime = "3d"
clock_skew_grace = "2m"
hold_time = 0
connect_retry = "5s"
restart_backoff_initial = "3s"
restart_backoff_max = "1m"
[allocator]
target_utilization = [0.5, 0.8]
max_prefixes = 2
renew_interval = "12h"
strategy = "first-fit"
[policy]
clash_resolution = "manual"
min_child_prefix_size = 4
child_hard_threshold = 4096
restore_from = ["parent", "child"]
[maas]
horizon = "2h"
expiry_warning = "6h"
min_grant = 4
[demand]
model = "growth"
domains = "all"
arrivals_per_hour = 3.0
lifetime_median = "2h"
lifetime_sigma = 0.5
addresses_per_session = 2
start = 10
end = 500
ramp = "1d"
shape = "logistic"
jitter = 0.25
report_interval = "5m"
[faults]
random = 2
kinds = ["crash"]
between = ["1h", "1d"]
heal_after = ["10m", "20m"]
[[faults.event]]
at = "3h"
kind = "crash"
a = "D1a"
heal_after = "1h"
""",
    )
    assert s.name == "every-key" and s.seed == 9
    assert (s.duration, s.sample_interval, s.quiet) == (2 * DAY, 30 * MINUTE, 5 * HOUR)
    assert s.topology == random_topology(
        4,
        domains=30,
        levels=2,
        tlds=2,
        max_nodes=2,
        multi_parent=0.5,
        sibling_links=0.1,
        sibling_degree=1.5,
        extra_links=0.25,
        leaf_demand=64,
        demand_factor=2,
        pool=(IPv4Network("239.1.0.0/16"),),
    )
    assert s.timers == SimTimers(
        waiting_period=HOUR,
        initiate_claim_delay=MINUTE,
        claim_lifetime=3 * DAY,
        clock_skew_grace=2 * MINUTE,
        hold_time=0,
        connect_retry=5.0,
        restart_backoff_initial=3.0,
        restart_backoff_max=MINUTE,
    )
    assert s.allocator == AllocatorConfig((0.5, 0.8), 2, 12 * HOUR, Strategy.FIRST_FIT)
    assert s.grants == GrantConfig((0.5, 0.8), 2 * HOUR, 6 * HOUR, 4)
    assert s.policy.clash_resolution is ClashResolution.MANUAL
    assert s.policy.min_child_prefix_size == 4
    assert s.policy.child_hard_threshold == 4096
    assert s.policy.restore_from == {Role.PARENT, Role.CHILD}
    assert s.demand == DemandSpec(
        model="growth",
        domains="all",
        arrivals_per_hour=3.0,
        lifetime_median=2 * HOUR,
        lifetime_sigma=0.5,
        addresses_per_session=2,
        start=10,
        end=500,
        ramp=DAY,
        shape="logistic",
        jitter=0.25,
        report_interval=5 * MINUTE,
    )
    assert s.actions[:2] == (Action(3 * HOUR, "crash", "D1a"), Action(4 * HOUR, "restart", "D1a"))
    assert len(s.actions) == 6


def test_strawman_topology_keys(tmp_path: Path) -> None:
    s = resolved(
        tmp_path,
        '[topology]\nkind = "strawman"\ntlds = 4\nchildren = 3\nlevel3 = 1.0\n'
        'mesh_degree = 2\ninitial = 128\npool = ["228.0.0.0/8"]\nseed = 5\n',
    )
    assert s.topology == strawman(
        5,
        tlds=4,
        children=3,
        level3=1.0,
        mesh_degree=2,
        initial=128,
        pool=(IPv4Network("228.0.0.0/8"),),
    )


def test_strawman_defaults_are_appendix_b(tmp_path: Path) -> None:
    s = resolved(tmp_path, 'seed = 2\n[topology]\nkind = "strawman"\n')
    assert s.topology == strawman(2)
    assert len(s.topology.domains) == 128 + 8192


def test_quiet_auto_follows_the_timers_when_there_are_faults(tmp_path: Path) -> None:
    s = resolved(
        tmp_path,
        'duration = "1d"\n[[faults.event]]\nat = "1h"\nkind = "crash"\na = "C7a"\n',
    )
    assert s.actions == (Action(HOUR, "crash", "C7a"),)
    assert s.quiet == quiet_period(s.timers, 3)


def test_overrides_of_duration_and_seed(tmp_path: Path) -> None:
    path = tmp_path / "o.toml"
    path.write_text('seed = 1\nduration = "1d"\n[topology]\nkind = "random"\ndomains = 20\n')
    s = load_and_resolve(path, duration=2 * DAY, seed=3)
    assert (s.duration, s.seed) == (2 * DAY, 3)
    # The scenario's defaults for a random hierarchy (TopologySection's docstring).
    assert s.topology == random_topology(
        3,
        domains=20,
        max_nodes=1,
        multi_parent=0.0,
        sibling_links=0.0,
        extra_links=0.0,
        pool=DEFAULT_POOL,
    )


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.toml")), ids=lambda p: p.stem)
def test_the_shipped_scenarios_load(path: Path) -> None:
    s = load_and_resolve(path)
    assert s.name == path.stem
    assert s.topology.domains


def test_the_strawman_scenario_is_appendix_b() -> None:
    s = load_and_resolve(SCENARIOS / "strawman.toml")
    assert len(s.topology.domains) == 8320
    assert s.timers.hold_time == 0
    assert s.timers.waiting_period == 48 * HOUR
    assert s.timers.claim_lifetime == 30 * DAY
    assert s.allocator.renew_interval == 48 * HOUR
    assert s.duration == 30 * DAY
    assert (s.processes, s.sync_interval) == (2, 10.0)  # the CI machine's two cores
    assert not s.actions  # which a split run needs


def test_processes_and_sync_interval_default_to_one_process_and_10_seconds(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.toml"
    path.write_text("seed = 1\n")
    s = load_and_resolve(path)
    assert (s.processes, s.sync_interval) == (1, 10.0)
    assert load_and_resolve(path, processes=3).processes == 3
    with pytest.raises(ConfigError) as caught:
        load_and_resolve(path, processes=0)  # an override is checked too
    assert caught.value.key == "processes"


def test_the_faults_scenario_schedules_faults() -> None:
    s = load_and_resolve(SCENARIOS / "faults.toml")
    kinds = {a.kind for a in s.actions}
    assert {"partition", "heal", "crash", "restart"} <= kinds
    assert s.quiet > 0


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("colour = 1", "colour", "unknown key"),
        ("seed = -1", "seed", "greater than or equal to 0"),
        ("seed = true", "seed", "expected an integer"),
        ('duration = "0s"', "duration", "greater than 0"),
        ('duration = "3 days"', "duration", "invalid duration"),
        ('sample_interval = "-1h"', "sample_interval", "negative"),
        ("processes = 0", "processes", "greater than or equal to 1"),
        ("processes = 65", "processes", "less than or equal to 64"),
        ('sync_interval = "0s"', "sync_interval", "greater than 0"),
        ('quiet = "later"', "quiet", "invalid duration"),
        ('name = "a b"', "name", "should match pattern"),
        ("[topology]\nkind = 'ring'", "topology.kind", "must be"),
        ("[topology]\ntlds = 3", "topology.tlds", "not a key of kind = 'figure1'"),
        ("[topology]\nkind = 'strawman'\ndomains = 3", "topology.domains", "not a key"),
        ("[topology]\nkind = 'random'\ndomains = 0", "topology.domains", "greater than"),
        ("[topology]\nkind = 'random'\nmulti_parent = 2.0", "topology.multi_parent", "less"),
        ("[topology]\nkind = 'strawman'\ninitial = 100", "topology.initial", "power of two"),
        ("[topology]\nkind = 'random'\ndemand_factor = 3", "topology.demand_factor", "power"),
        ("[topology]\ndemand = [4096, 1024]", "topology.demand[2]", "missing"),
        ("[topology]\npool = ['10.0.0.0/8']", "topology.pool[0]", "multicast"),
        ("[topology]\npool = ['239.1.2.3/16']", "topology.pool[0]", "not a prefix"),
        ("[topology]\npool = []", "topology.pool", ""),
        ("[timers]\nhold_time = 2", "timers.hold_time", "§7.2"),
        ("[timers]\nclaim_lifetime = 0", "timers.claim_lifetime", "greater than 0"),
        ("[timers]\nwait = '1h'", "timers.wait", "unknown key"),
        (
            "[timers]\nrestart_backoff_initial = '2m'\nrestart_backoff_max = '1m'",
            "timers.restart_backoff_max",
            ">= restart_backoff_initial",
        ),
        ("[allocator]\ntarget_utilization = [0.9, 0.7]", "allocator.target_utilization", "low"),
        ("[allocator]\ntarget_utilization = 0.8", "allocator.target_utilization", "[low, high]"),
        ("[allocator]\nstrategy = 'worst-fit'", "allocator.strategy", "must be"),
        ("[allocator]\nmax_prefixes = 0", "allocator.max_prefixes", "greater than"),
        ("[policy]\nmin_child_prefix_size = 10", "policy.min_child_prefix_size", "power of two"),
        ("[policy]\nrestore_from = ['friend']", "policy.restore_from[0]", "must be"),
        ("[maas]\nmin_grant = 3", "maas.min_grant", "power of two"),
        ("[maas]\nhorizon = 0", "maas.horizon", "greater than 0"),
        ("[demand]\nmodel = 'bursty'", "demand.model", "must be"),
        ("[demand]\narrivals_per_hour = -1.0", "demand.arrivals_per_hour", "greater than"),
        ("[demand]\njitter = 1.0", "demand.jitter", "less than 1"),
        ("[demand]\naddresses_per_session = 0", "demand.addresses_per_session", "greater"),
        ("[demand]\nlifetime_median = 'a week'", "demand.lifetime_median", "invalid"),
        ("[faults]\nrandom = -2", "faults.random", "greater than or equal to 0"),
        ("[faults]\nkinds = ['flood']", "faults.kinds[0]", "must be"),
        (
            "[[faults.event]]\nat = '1h'\nkind = 'crash'\na = 'Z9'",
            "faults.event[0].a",
            "no node 'Z9' in the topology",
        ),
        (
            "[[faults.event]]\nat = '1h'\nkind = 'partition'\na = 'T1a'",
            "faults.event[0].b",
            "required",
        ),
        (
            "duration = '1d'\n[[faults.event]]\nat = '2d'\nkind = 'crash'\na = 'T1a'",
            "faults.event[0].at",
            "before the end",
        ),
        (
            "[topology]\nkind = 'random'\ndomains = 3\nlevels = 1\ntlds = 3\nmax_nodes = 1\n"
            "[faults]\nrandom = 1\nbetween = ['1d', '40d']",
            "faults.between",
            "end by",
        ),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, key: str, problem: str) -> None:
    found = error(tmp_path, text)
    assert found.key == key, str(found)
    assert problem in found.problem, str(found)
    assert str(found).startswith(f"{found.file}: {key}: ")


def test_not_toml_and_missing_files(tmp_path: Path) -> None:
    assert "invalid TOML" in error(tmp_path, "seed = = 1").problem
    with pytest.raises(ConfigError, match="cannot read file"):
        load_scenario(tmp_path / "absent.toml")


def test_several_problems_are_reported_together(tmp_path: Path) -> None:
    found = error(tmp_path, "seed = -1\n[timers]\nhold_time = 1\n")
    assert [found.key, *(o.key for o in found.others)] == ["seed", "timers.hold_time"]


def test_the_model_is_frozen_and_complete() -> None:
    assert set(ScenarioFile.model_fields) == {
        "name", "seed", "duration", "sample_interval", "quiet", "processes", "sync_interval",
        "topology", "timers", "allocator", "policy", "maas", "demand", "faults",
    }  # fmt: skip
