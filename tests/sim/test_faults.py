"""The fault schedule of a scenario file: scheduled events checked against the topology,
seeded random partitions and crashes, each undone after a while (masc.sim.faults)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from masc.config.loader import ConfigError
from masc.sim.faults import FaultsConfig, fault_actions
from masc.sim.network import DAY, HOUR
from masc.sim.scenario import Action
from masc.sim.topology import figure1

TOPO = figure1()


def actions(duration: float = 4 * DAY, seed: int = 1, **section: Any) -> tuple[Action, ...]:
    return fault_actions(
        FaultsConfig.model_validate(section), TOPO, duration=duration, seed=seed, source="f.toml"
    )


def test_no_faults_by_default() -> None:
    assert actions() == ()


def test_scheduled_events_in_time_order_with_their_undoing() -> None:
    got = actions(
        event=[
            {"at": "2d", "kind": "crash", "a": "P4a", "heal_after": "3h"},
            {"at": "1d", "kind": "partition", "a": "T1a", "b": "T2a", "heal_after": "2h"},
            {"at": "1d", "kind": "claim", "a": "C7a"},
            {"at": 3600, "kind": "heal", "a": "C6b", "b": "C7a"},
        ]
    )
    assert got == (
        Action(HOUR, "heal", "C6b", "C7a"),
        Action(DAY, "partition", "T1a", "T2a"),
        Action(DAY, "claim", "C7a"),
        Action(DAY + 2 * HOUR, "heal", "T1a", "T2a"),
        Action(2 * DAY, "crash", "P4a"),
        Action(2 * DAY + 3 * HOUR, "restart", "P4a"),
    )


def test_undoing_after_the_end_is_left_to_the_final_heal() -> None:
    got = actions(
        duration=DAY, event=[{"at": "23h", "kind": "crash", "a": "C5a", "heal_after": "2h"}]
    )
    assert got == (Action(23 * HOUR, "crash", "C5a"),)


@pytest.mark.parametrize(
    ("event", "key", "text"),
    [
        ({"at": "1d", "kind": "crash", "a": "X9"}, "faults.event[0].a", "no node 'X9'"),
        (
            {"at": "1d", "kind": "partition", "a": "T1a", "b": "Nope"},
            "faults.event[0].b",
            "no node 'Nope'",
        ),
        (
            {"at": "1d", "kind": "partition", "a": "T1a", "b": "C7a"},
            "faults.event[0].b",
            "no session between T1a and C7a",
        ),
        ({"at": "1d", "kind": "heal", "a": "T1a", "b": "T1a"}, "faults.event[0].b", "differ"),
        ({"at": "5d", "kind": "crash", "a": "T1a"}, "faults.event[0].at", "before the end"),
    ],
)
def test_a_bad_event_is_a_config_error_naming_the_key(
    event: dict[str, Any], key: str, text: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        actions(event=[event])
    assert caught.value.file == "f.toml"
    assert caught.value.key == key
    assert text in caught.value.problem


@pytest.mark.parametrize(
    "event",
    [
        {"at": "1d", "kind": "partition", "a": "T1a"},  # b missing
        {"at": "1d", "kind": "crash", "a": "T1a", "b": "T2a"},  # b not for a crash
        {"at": "1d", "kind": "heal", "a": "T1a", "b": "T2a", "heal_after": "1h"},
        {"at": "1d", "kind": "explode", "a": "T1a"},
        {"at": "-1d", "kind": "crash", "a": "T1a"},
        {"kind": "crash", "a": "T1a"},
        {"at": "1d", "kind": "crash", "a": "T1a", "when": "now"},
    ],
)
def test_malformed_events_are_refused(event: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        FaultsConfig.model_validate({"event": [event]})


def test_random_faults_are_a_function_of_the_seed() -> None:
    first = actions(random=6, between=["1d", "3d"], heal_after=["30m", "2h"])
    assert first == actions(random=6, between=["1d", "3d"], heal_after=["30m", "2h"])
    assert first != actions(seed=2, random=6, between=["1d", "3d"], heal_after=["30m", "2h"])
    assert len(first) == 12
    starts = [a for a in first if a.kind in ("partition", "crash")]
    assert len(starts) == 6
    for start in starts:
        assert DAY <= start.at <= 3 * DAY
        undo = "heal" if start.kind == "partition" else "restart"
        (end,) = [a for a in first if a.kind == undo and (a.a, a.b) == (start.a, start.b) and
                  start.at + 30 * 60 <= a.at <= start.at + 2 * HOUR]  # fmt: skip
        assert end
    assert [a.at for a in first] == sorted(a.at for a in first)


def test_random_partitions_cut_sessions_of_the_topology() -> None:
    got = actions(random=10, kinds=["partition"])
    assert {a.kind for a in got} == {"partition", "heal"}
    for action in got:
        assert any(link.joins(action.a, action.b) for link in TOPO.links)


def test_random_crashes_name_nodes() -> None:
    got = actions(random=10, kinds=["crash"], heal_after="1h")
    assert {a.kind for a in got} == {"crash", "restart"}
    assert {a.a for a in got} <= set(TOPO.nodes)


def test_random_window_must_end_by_the_end_of_the_run() -> None:
    with pytest.raises(ConfigError) as caught:
        actions(duration=DAY, random=1, between=["1h", "2d"])
    assert caught.value.key == "faults.between"


@pytest.mark.parametrize(
    "section",
    [
        {"random": -1},
        {"random": 1.5},
        {"kinds": []},
        {"kinds": ["meteor"]},
        {"between": ["2d", "1d"]},
        {"between": ["1d"]},
        {"heal_after": ["2h", "1h"]},
        {"heal_after": ["1h", "2h", "3h"]},
        {"heal_after": 0},
        {"heal_after": "soon"},
    ],
)
def test_bad_random_settings_are_refused(section: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        FaultsConfig.model_validate(section)
