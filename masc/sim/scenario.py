"""Scripted and seeded random fault scenarios for :class:`~masc.sim.network.SimNetwork`.

A :class:`Scenario` is a topology, the timers, and a list of timed :class:`Action` values:
transport partitions and heals, node crashes and restarts, and operator requests (claim,
expand, release; §5.1, §5.3, §5.4).  Its *active* phase ends with every link healed and
every node running; a *quiet* phase follows, long enough for the protocol to converge, after
which :func:`~masc.sim.safety.check_safety` must find nothing.

The quiet phase is sized from the timers: sessions come back within the restart back-off
and ConnectRetry; state that only expiry can clear (a prefix whose parent space was lost
while its holder was cut off) is gone one claim lifetime plus the §12.3 grace later; claims
sent before the network healed, with what their claimer knew then, are allocated and
compared within one initiate delay and waiting period per level (§5.1), the claims of
each level depending on its parent's.
"""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass, field
from typing import Final, Literal

import trio

from masc.protocol.constants import Role
from masc.protocol.engine import Policy, RequestRefused
from masc.protocol.events import SpaceKind
from masc.sim.network import MINUTE, SimNetwork, SimTimers, seed_scheduler
from masc.sim.safety import Violation
from masc.sim.topology import Topology, random_topology

ActionKind = Literal["partition", "heal", "crash", "restart", "claim", "expand", "release"]
_OPERATOR: Final[tuple[ActionKind, ...]] = ("claim", "expand", "release")


@dataclass(frozen=True, slots=True)
class Action:
    """At ``at`` seconds of virtual time after the start: do ``kind`` to node ``a`` (and
    ``b`` for a partition or heal of the sessions between ``a`` and ``b``)."""

    at: float
    kind: ActionKind
    a: str
    b: str = ""

    def __str__(self) -> str:
        who = f"{self.a}-{self.b}" if self.b else self.a
        return f"t={self.at:.0f}s {self.kind} {who}"


@dataclass(frozen=True)
class Scenario:
    """What to simulate; see the module docstring for the phases."""

    seed: int
    topology: Topology
    timers: SimTimers
    actions: tuple[Action, ...]
    active: float
    quiet: float
    policy: Policy = field(default_factory=Policy)

    def describe(self) -> str:
        topo = self.topology
        return (
            f"seed {self.seed}: {len(topo.domains)} domains, {len(topo.nodes)} nodes, "
            f"{len(topo.links)} sessions, hold {self.timers.hold_time}s, lifetime "
            f"{self.timers.claim_lifetime:.0f}s; " + "; ".join(map(str, self.actions))
        )


def quiet_period(timers: SimTimers, levels: int) -> float:
    """How long a network needs without faults to converge (module docstring): sessions
    back, state only expiry can clear gone, and every level of the hierarchy through one
    more round of claims."""
    reconnect = timers.restart_backoff_max + 2 * timers.connect_retry
    per_level = timers.waiting_period + timers.initiate_claim_delay
    return reconnect + timers.claim_lifetime + timers.clock_skew_grace + (levels + 1) * per_level


def random_scenario(seed: int, *, faults: int | None = None) -> Scenario:
    """A random topology (2-6 domains on 1-3 levels, 1-3 nodes each), short timers
    (10-minute waiting period, 1-minute initiate delay, 45-90 minute lifetimes), and a random
    script of partitions, crashes and operator requests over the first 45-120 minutes."""
    rng = random.Random(seed)
    topology = random_topology(
        rng.randrange(2**32),
        domains=rng.randint(2, 6),
        levels=rng.randint(1, 3),
        max_nodes=rng.randint(1, 3),
        multi_parent=0.25,
        sibling_links=0.3,
        extra_links=0.3,
    )
    # Keepalives are most of a simulation's events: a hold time of 30-90 s in some small
    # networks, 20-60 minutes elsewhere.  Partitions and crashes close the streams, so
    # failures are seen at once either way.
    fast = len(topology.nodes) <= 4 and rng.random() < 0.3
    hold = rng.randint(30, 90) if fast else rng.randint(1200, 3600)
    timers = SimTimers(
        waiting_period=600.0,
        initiate_claim_delay=60.0,
        claim_lifetime=float(rng.randint(45, 90) * MINUTE),
        clock_skew_grace=float(rng.randint(0, 120)),
        hold_time=hold,
        connect_retry=float(rng.randint(5, 30)),
        restart_backoff_initial=10.0,
        restart_backoff_max=120.0,
    )
    active = float(rng.randint(45, 120) * MINUTE)
    count = faults if faults is not None else rng.randint(2, 8)
    actions: list[Action] = []
    nodes = sorted(topology.nodes)
    for _ in range(count):
        at = rng.uniform(0, active - 10 * MINUTE)
        until = rng.uniform(at + 1, active)
        roll = rng.random()
        if roll < 0.45 and topology.links:
            link = rng.choice(topology.links)
            actions.append(Action(at, "partition", link.a, link.b))
            if rng.random() < 0.8:
                actions.append(Action(until, "heal", link.a, link.b))
        elif roll < 0.7:
            node = rng.choice(nodes)
            actions.append(Action(at, "crash", node))
            if rng.random() < 0.8:
                actions.append(Action(until, "restart", node))
        else:
            actions.append(Action(at, rng.choice(_OPERATOR), rng.choice(nodes)))
    actions.sort(key=lambda a: a.at)
    levels = max(topology.levels().values()) + 1
    # §14: a restarted node re-learns its state from every neighbour (the simulated nodes
    # trust each other); without this a lone top-level node forgets its space on restart
    # and waits for its children's to expire.
    policy = Policy(min_child_prefix_size=1, restore_from=frozenset(Role))
    return Scenario(
        seed, topology, timers, tuple(actions), active, quiet_period(timers, levels), policy
    )


async def play(net: SimNetwork, actions: tuple[Action, ...], *, seed: int = 0) -> None:
    """Carry out ``actions`` at their times (relative to now)."""
    start = trio.current_time()
    rng = random.Random(seed)
    for action in sorted(actions, key=lambda a: a.at):
        await trio.sleep_until(start + action.at)
        await apply(net, action, rng)


async def apply(net: SimNetwork, action: Action, rng: random.Random) -> None:
    """One action.  Faults that are already in effect, requests to a node that is down, and
    requests the engine refuses are skipped: a random script cannot know the state."""
    kind, a, b = action.kind, action.a, action.b
    if kind == "partition":
        net.partition(a, b)
    elif kind == "heal":
        net.heal(a, b)
    elif kind == "crash":
        if net.is_up(a):
            net.crash(a)
    elif kind == "restart":
        if not net.is_up(a):
            await net.restart(a)
    elif net.is_up(a):
        engine = net.engine(a)
        own = sorted(
            (p for (k, p), alloc in engine.allocations.items() if k is SpaceKind.DOMAIN),
            key=str,
        )
        with contextlib.suppress(RequestRefused):
            if kind == "claim":
                await net.claim(a, net.topology.domain_of(a).demand)
            elif own and kind == "expand":
                await net.expand(a, rng.choice(own))
            elif own:
                await net.release(a, rng.choice(own))


async def run_scenario(scenario: Scenario) -> tuple[SimNetwork, list[Violation]]:
    """Run ``scenario`` (inside ``trio.run`` with a MockClock) and return the network and
    what the safety checker finds at the end of the quiet phase.  The scheduler is seeded
    with the scenario's seed, so that a failing seed can be replayed."""
    seed_scheduler(scenario.seed)
    net = SimNetwork(
        scenario.topology, timers=scenario.timers, policy=scenario.policy, seed=scenario.seed
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(net.run)
        start = trio.current_time()
        await play(net, scenario.actions, seed=scenario.seed)
        await trio.sleep_until(start + scenario.active)
        net.heal_all()
        for node in sorted(net.topology.nodes):
            if not net.is_up(node):
                await net.restart(node)
        await net.advance(scenario.quiet)
        violations = net.check_safety()
        nursery.cancel_scope.cancel()
    return net, violations
