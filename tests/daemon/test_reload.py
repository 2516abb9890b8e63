"""Reload plans (masc.daemon.reload): a reload resets only the sessions whose OPEN would
change (RFC 2909 §7.2), starts added peers, stops removed ones with a Cease (§8.7), applies
timers and policy live, and refuses keys only a restart applies."""

from __future__ import annotations

from pathlib import Path

from masc.config import MascConfig, parse_config_text
from masc.daemon.reload import ReloadPlan, plan_reload

BASE = """
[local]
domain_id = 65001
node_id = "127.0.9.1"
listen = ["127.0.9.1"]
global_pool = ["239.192.0.0/16"]
[timers]
hold_time = 90
connect_retry = 30
waiting_period = "1h"
[policy]
clash_resolution = "automatic"
[[peers]]
address = "127.0.9.2"
relation = "sibling"
domain_id = 65002
parent_domain_id = 0
[[peers]]
address = "127.0.9.3"
relation = "sibling"
domain_id = 65003
parent_domain_id = 0
[[peers]]
address = "127.0.9.4"
relation = "child"
domain_id = 65004
"""


def cfg(text: str) -> MascConfig:
    return parse_config_text(text, source="t.toml")


def plan(new_text: str, old_text: str = BASE) -> ReloadPlan:
    return plan_reload(cfg(old_text), cfg(new_text))


def actions(p: ReloadPlan) -> dict[str, str]:
    return {step.key[0]: step.action for step in p.peers}


def test_an_unchanged_file_is_a_no_op_for_every_session() -> None:
    p = plan(BASE)
    assert actions(p) == {"127.0.9.2": "no-op", "127.0.9.3": "no-op", "127.0.9.4": "no-op"}
    assert p.settings == () and p.restart_required == ()


def test_s7_2_a_peer_hold_time_change_resets_only_that_session_and_an_added_peer_starts() -> None:
    new = (
        BASE.replace(
            "domain_id = 65003\nparent_domain_id = 0\n",
            "domain_id = 65003\nparent_domain_id = 0\nhold_time = 30\n",
        )
        + '[[peers]]\naddress = "127.0.9.5"\nrelation = "child"\ndomain_id = 65005\n'
    )
    p = plan(new)
    assert actions(p) == {
        "127.0.9.2": "no-op",
        "127.0.9.3": "reset",
        "127.0.9.4": "no-op",
        "127.0.9.5": "start",
    }
    reset = next(s for s in p.peers if s.action == "reset")
    assert reset.changed == ("hold_time",)
    assert "OPEN" in reset.reason and "7.2" in reset.reason


def test_s8_7_a_removed_peer_stops() -> None:
    new = BASE[: BASE.index('[[peers]]\naddress = "127.0.9.4"')]
    p = plan(new)
    assert actions(p)["127.0.9.4"] == "stop"
    assert "Cease" in next(s.reason for s in p.peers if s.action == "stop")


def test_a_global_hold_time_change_resets_the_peers_without_their_own() -> None:
    old = BASE.replace(
        "domain_id = 65003\nparent_domain_id = 0\n",
        "domain_id = 65003\nparent_domain_id = 0\nhold_time = 30\n",
    )
    p = plan(old.replace("hold_time = 90", "hold_time = 60"), old)
    assert actions(p) == {"127.0.9.2": "reset", "127.0.9.3": "no-op", "127.0.9.4": "reset"}
    step = next(s for s in p.peers if s.key[0] == "127.0.9.2")
    assert step.changed == ("timers.hold_time",)


def test_timers_the_fsm_reads_afresh_and_passive_apply_without_reset() -> None:
    new = BASE.replace("connect_retry = 30", "connect_retry = 10").replace(
        "domain_id = 65004\n", "domain_id = 65004\npassive = true\n"
    )
    p = plan(new)
    assert actions(p) == {"127.0.9.2": "update", "127.0.9.3": "update", "127.0.9.4": "update"}
    child = next(s for s in p.peers if s.key[0] == "127.0.9.4")
    assert child.changed == ("passive", "timers.connect_retry")
    assert [(c.key, c.effect) for c in p.settings] == [("timers.connect_retry", "live")]


def test_s4_5_a_scope_boundary_change_resets_the_session() -> None:
    new = BASE.replace(
        "domain_id = 65004\n", 'domain_id = 65004\nscope_boundary = ["239.192.0.0/16"]\n'
    )
    step = next(s for s in plan(new).peers if s.key[0] == "127.0.9.4")
    assert step.action == "reset" and step.changed == ("scope_boundary",)
    assert "4.5" in step.reason


def test_policy_claim_and_pool_settings_apply_live_with_no_session_touched() -> None:
    new = (
        BASE.replace('waiting_period = "1h"', 'waiting_period = "2h"')
        .replace('clash_resolution = "automatic"', 'clash_resolution = "manual"')
        .replace('global_pool = ["239.192.0.0/16"]', 'global_pool = ["239.193.0.0/16"]')
    )
    p = plan(new)
    assert set(actions(p).values()) == {"no-op"}
    assert {(c.key, c.old, c.new, c.effect) for c in p.settings} == {
        ("timers.waiting_period", "3600", "7200", "live"),
        ("policy.clash_resolution", "automatic", "manual", "live"),
        ("local.global_pool", "239.192.0.0/16", "239.193.0.0/16", "live"),
    }
    assert p.restart_required == ()


def test_identity_listeners_and_sockets_need_a_restart_and_plan_no_session() -> None:
    new = BASE.replace('node_id = "127.0.9.1"', 'node_id = "127.0.9.9"') + (
        '[control]\nsocket = "/tmp/elsewhere.sock"\nmode = "0660"\n'
        '[metrics]\nlisten = "127.0.0.1:9587"\n'
        "[grib.kernel]\nenabled = true\n"
    )
    p = plan(new)
    assert p.restart_required == (
        "local.node_id",
        "control.socket",
        "control.mode",
        "metrics.listen",
        "grib.kernel",
    )
    assert p.peers == ()
    modes = {c.key: (c.old, c.new) for c in p.settings}
    assert modes["control.mode"] == ("0600", "0660")


def test_the_result_model_carries_the_plan() -> None:
    new = BASE + '[[peers]]\naddress = "127.0.9.5"\nrelation = "child"\ndomain_id = 65005\n'
    result = plan(new).result(applied=False, config_path=Path("t.toml"), warnings=["w"])
    assert result.applied is False and result.warnings == ["w"]
    assert [(p.address, p.action) for p in result.peers][-1] == ("127.0.9.5", "start")
    assert result.model_dump()["peers"][0]["parent_domain_id"] == 0


def test_s4_a_new_parent_peer_changes_the_parents_and_needs_a_restart() -> None:
    """The parent set is local.parent_domain_ids plus the parent peers; every OPEN and claim
    depends on it (review finding: the engine refused it mid-reload and the daemon died)."""
    child = (
        BASE.replace('global_pool = ["239.192.0.0/16"]\n', "").replace(
            "parent_domain_id = 0", "parent_domain_id = 65000"
        )
        + '[[peers]]\naddress = "127.0.9.9"\nrelation = "parent"\ndomain_id = 65000\n'
    )
    two_parents = (
        child + '[[peers]]\naddress = "127.0.9.8"\nrelation = "parent"\ndomain_id = 65010\n'
    )
    p = plan(two_parents, child)
    assert p.restart_required == ("parent_domain_ids",)
    assert p.peers == ()
    (change,) = [c for c in p.settings if c.key == "parent_domain_ids"]
    assert (change.old, change.new, change.effect) == ("65000", "65000, 65010", "restart")
