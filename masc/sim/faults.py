"""The fault schedule of a scenario file: scheduled and seeded random faults.

``[faults]`` in a scenario file (docs/simulation.md) lists faults at given times::

    [[faults.event]]
    at = "3d"                 # virtual time after the start
    kind = "partition"        # partition | heal | crash | restart | claim | expand | release
    a = "T1a"
    b = "T2a"                 # the other end, for a partition or heal
    heal_after = "2h"         # optional: heal the partition / restart the node this later

and draws more at random from the scenario's seed::

    random = 4                      # how many random faults
    kinds = ["partition", "crash"]  # what they may be
    between = ["1d", "3d"]          # when they may start (default: the whole run)
    heal_after = ["30m", "6h"]      # how long each lasts: a duration or [shortest, longest]

A partition cuts every session between two nodes (a transport failure: both ends see the
connection drop, §10); a crash loses a node's state, which its restart re-learns from its
neighbours (§14).  Claim, expand and release are the operator requests of §5.1, §5.3 and
§5.4, carried out as :func:`masc.sim.scenario.apply` does.  Everything is healed and every
node restarted at the end of the run (:mod:`masc.sim.run`), so faults that would outlast it
are cut short there.

:func:`fault_actions` turns the section into the :class:`~masc.sim.scenario.Action` values
:func:`~masc.sim.scenario.play` carries out, checking node names against the topology; a
problem is a :class:`~masc.config.loader.ConfigError` naming the key.
"""

from __future__ import annotations

import random
from typing import Annotated, Final, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from masc.config.durations import parse_duration
from masc.config.loader import ConfigError
from masc.config.models import Duration, KeyedProblems, KeyPath, PositiveDuration, format_key_path
from masc.sim.scenario import Action, ActionKind
from masc.sim.topology import Topology

__all__ = ["FaultEvent", "FaultsConfig", "fault_actions"]

RandomKind = Literal["partition", "crash"]
# What a scheduled fault names: two nodes (the sessions between them), or one node.
_TWO_NODES: Final = ("partition", "heal")
# What a scheduled fault may undo by itself after ``heal_after``.
_UNDONE_BY: Final[dict[str, ActionKind]] = {"partition": "heal", "crash": "restart"}


def _span(value: object) -> object:
    """A duration, or ``[shortest, longest]``: how long a random fault lasts."""
    if isinstance(value, list | tuple):
        if len(value) != 2:
            raise ValueError(f"must be a duration or [shortest, longest], got {value!r}")
        low, high = parse_duration(value[0]), parse_duration(value[1])
    else:
        low = high = parse_duration(value)
    if low > high:
        raise ValueError(f"must be [shortest, longest] with shortest <= longest, got {value!r}")
    if high <= 0:
        raise ValueError("must be greater than 0 seconds")
    return (low, high)


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FaultEvent(_Section):
    """``[[faults.event]]``: one fault at a given time."""

    at: Duration
    kind: Literal["partition", "heal", "crash", "restart", "claim", "expand", "release"]
    a: str
    b: str | None = None
    heal_after: PositiveDuration | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        problems: list[tuple[KeyPath, str]] = []
        if self.kind in _TWO_NODES and self.b is None:
            problems.append((("b",), f"required for kind = {self.kind!r} (the other node)"))
        if self.kind not in _TWO_NODES and self.b is not None:
            problems.append((("b",), f"only a partition or heal names two nodes, not {self.kind}"))
        if self.heal_after is not None and self.kind not in _UNDONE_BY:
            problems.append((("heal_after",), "only a partition or a crash can be undone"))
        if problems:
            raise KeyedProblems(problems)
        return self


class FaultsConfig(_Section):
    """``[faults]``: scheduled faults (``event``) and ``random`` ones drawn from the seed."""

    random: Annotated[int, Field(strict=True, ge=0)] = 0
    kinds: Annotated[tuple[RandomKind, ...], Field(min_length=1)] = ("partition", "crash")
    between: tuple[Duration, Duration] | None = None
    heal_after: Annotated[tuple[float, float], BeforeValidator(_span)] = (3600.0, 3600.0)
    event: tuple[FaultEvent, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.between is not None and self.between[0] >= self.between[1]:
            raise KeyedProblems(
                [(("between",), "must be [earliest, latest] with earliest < latest")]
            )
        return self


def fault_actions(
    faults: FaultsConfig,
    topology: Topology,
    *,
    duration: float,
    seed: int,
    source: str = "<scenario>",
) -> tuple[Action, ...]:
    """The faults of ``faults`` as timed actions, in time order.

    Scheduled events must start before ``duration`` and name nodes (and, for a partition or
    heal, a session) of ``topology``; random ones are drawn from ``seed`` (the same schedule
    for the same seed) inside ``between``.  Undoing actions that would fall at or after
    ``duration`` are left out: the run heals everything then.  Raises ConfigError naming
    the key (e.g. ``faults.event[2].a``) in ``source``.
    """
    actions: list[Action] = []
    for index, event in enumerate(faults.event):
        actions += _scheduled(event, ("faults", "event", index), topology, duration, source)
    actions += _random(faults, topology, duration, seed, source)
    actions = [a for a in actions if a.at < duration]
    actions.sort(key=lambda a: a.at)  # stable: events at one time keep their file order
    return tuple(actions)


def _scheduled(
    event: FaultEvent, key: KeyPath, topology: Topology, duration: float, source: str
) -> list[Action]:
    def problem(field: str, text: str) -> ConfigError:
        return ConfigError(source, format_key_path((*key, field)), text)

    if event.at >= duration:
        raise problem(
            "at", f"must be before the end of the run ({duration:g} s), got {event.at:g} s"
        )
    for field, node in (("a", event.a), ("b", event.b)):
        if node is not None and node not in topology.nodes:
            raise problem(field, f"no node {node!r} in the topology ({_some(topology)})")
    if event.b is not None:
        if event.a == event.b:
            raise problem("b", "must differ from a")
        if not any(link.joins(event.a, event.b) for link in topology.links):
            raise problem("b", f"no session between {event.a} and {event.b}")
    first = Action(event.at, event.kind, event.a, event.b or "")
    if event.heal_after is None:
        return [first]
    undo = Action(event.at + event.heal_after, _UNDONE_BY[event.kind], event.a, event.b or "")
    return [first, undo]


def _random(
    faults: FaultsConfig, topology: Topology, duration: float, seed: int, source: str
) -> list[Action]:
    if not faults.random:
        return []
    earliest, latest = faults.between if faults.between is not None else (0.0, duration)
    if latest > duration:
        raise ConfigError(
            source,
            "faults.between",
            f"must end by the end of the run ({duration:g} s), got {latest:g} s",
        )
    if "partition" in faults.kinds and not topology.links and "crash" not in faults.kinds:
        raise ConfigError(source, "faults.kinds", "the topology has no sessions to partition")
    rng = random.Random(f"{seed}/faults")
    nodes = sorted(topology.nodes)
    shortest, longest = faults.heal_after
    actions: list[Action] = []
    for _ in range(faults.random):
        kind: RandomKind = rng.choice(faults.kinds)
        at = rng.uniform(earliest, latest)
        until = at + rng.uniform(shortest, longest)
        if kind == "partition" and topology.links:
            link = rng.choice(topology.links)
            actions += [
                Action(at, "partition", link.a, link.b),
                Action(until, "heal", link.a, link.b),
            ]
        else:
            node = rng.choice(nodes)
            actions.append(Action(at, "crash", node))
            actions.append(Action(until, "restart", node))
    return actions


def _some(topology: Topology) -> str:
    """A few node names, to show what the names look like."""
    names = list(topology.nodes)
    shown = ", ".join(names[:5])
    return f"nodes: {shown}, ..." if len(names) > 5 else f"nodes: {shown}"
