"""Wire claim engines to each other, or to scripted peers, with no I/O and no trio.

A :class:`Net` holds named nodes.  A node is either a real :class:`ClaimEngine` or a
*stub*: a scripted peer that records what it is sent and speaks only when a test makes it
(:meth:`Net.inject`).  ``SendUpdate`` events are delivered synchronously, in the order they
were produced (breadth first), over links that are up and only to the session generation
they were computed for.  Time is a plain Unix-seconds number: :meth:`Net.run_until` calls
``handle_timer`` at each engine's ``next_deadline()``, which is what the trio shell does.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from typing import Any, Final, TypeVar

from masc.protocol.constants import TLD_ID, WAITING_PERIOD, AddressFamily, ClaimType, Role
from masc.protocol.engine import ClaimEngine, EngineConfig, Neighbor
from masc.protocol.events import EngineEvent, RejectClaim, SendUpdate
from masc.protocol.wire.messages import Claim, DomainId, NodeId, Prefix, Update

T0: Final = 1_700_000_000.0  # an arbitrary "now", in Unix seconds like claim timestamps
WAIT: Final = float(WAITING_PERIOD)
TLD: Final = DomainId(TLD_ID)
DAY: Final = 86_400.0

E = TypeVar("E")


def net4(text: str) -> IPv4Network:
    return IPv4Network(text)


def claim(
    claim_type: ClaimType,
    role: Role,
    prefix: Prefix | str,
    *,
    domain: int,
    node: int,
    ts: float = T0,
    lifetime: float = 30 * DAY,
    holdtime: float | None = None,
    deprecated: bool = False,
) -> Claim:
    """A §7.3 attribute with the holdtime §7.3 suggests by default: the lifetime for
    PREFIX_IN_USE, PREFIX_MANAGED (and WITHDRAW), WAITING_PERIOD for the other claims."""
    if holdtime is None:
        long_lived = (ClaimType.PREFIX_IN_USE, ClaimType.PREFIX_MANAGED, ClaimType.WITHDRAW)
        holdtime = lifetime if claim_type in long_lived else WAIT
    return Claim(
        type=claim_type,
        origin_role=role,
        timestamp=int(ts),
        lifetime=int(lifetime),
        holdtime=int(holdtime),
        origin_domain=DomainId(domain),
        origin_node=NodeId(node),
        prefix=IPv4Network(prefix) if isinstance(prefix, str) else prefix,
        deprecated=deprecated,
    )


def of_type(events: Iterable[Any], kind: type[E]) -> list[E]:
    return [e for e in events if isinstance(e, kind)]


def sends(events: Iterable[EngineEvent], peer: str | None = None) -> list[Claim]:
    """The attributes the events send (to ``peer``, or to anyone), in order."""
    return [
        c
        for e in events
        if isinstance(e, SendUpdate) and (peer is None or e.peer == peer)
        for c in e.update.attributes
    ]


def receivers(events: Iterable[EngineEvent], attribute: Claim) -> set[str]:
    """The sessions an attribute (compared without its Rol) was sent on."""
    return {
        e.peer
        for e in events
        if isinstance(e, SendUpdate)
        for c in e.update.attributes
        if _same(c, attribute)
    }


def _same(a: Claim, b: Claim) -> bool:
    return (a.type, a.timestamp, a.origin_domain, a.origin_node, a.prefix) == (
        b.type,
        b.timestamp,
        b.origin_domain,
        b.origin_node,
        b.prefix,
    )


def general_rule_violations(order: Iterable[Claim]) -> list[str]:
    """§11.8, the rules that always apply, per origin domain: PREFIX_IN_USE before
    CLAIM_TO_EXPAND, NEW_CLAIM and WITHDRAW; WITHDRAW after PREFIX_IN_USE, CLAIM_TO_EXPAND,
    NEW_CLAIM and PREFIX_MANAGED."""
    seq = list(order)
    claims = (ClaimType.CLAIM_TO_EXPAND, ClaimType.NEW_CLAIM)
    out = []
    for i, a in enumerate(seq):
        for b in seq[i + 1 :]:
            if a.origin_domain != b.origin_domain:
                continue
            if b.type is ClaimType.PREFIX_IN_USE and a.type in (*claims, ClaimType.WITHDRAW):
                out.append(f"{a.type.name} {a.prefix} before PREFIX_IN_USE {b.prefix}")
            if a.type is ClaimType.WITHDRAW and b.type in (
                *claims,
                ClaimType.PREFIX_IN_USE,
                ClaimType.PREFIX_MANAGED,
            ):
                out.append(f"WITHDRAW {a.prefix} before {b.type.name} {b.prefix}")
    return out


def rejects(events: Iterable[EngineEvent]) -> list[RejectClaim]:
    return of_type(events, RejectClaim)


@dataclass
class Node:
    name: str
    domain: DomainId
    node: NodeId
    engine: ClaimEngine | None  # None: a stub
    inbox: list[tuple[str, Claim]] = field(default_factory=list)  # stubs: (from, attribute)


@dataclass(frozen=True)
class Record:
    time: float
    node: str
    event: EngineEvent


class Net:
    """Engines and stubs joined by sessions, driven by a fake Unix clock."""

    def __init__(self, now: float = T0) -> None:
        self.now = now
        self.nodes: dict[str, Node] = {}
        self.links: dict[tuple[str, str], Neighbor] = {}  # (a, b): b as a sees it
        self.live: set[tuple[str, str]] = set()
        self.log: list[Record] = []
        self._generation = 0

    # --- building ------------------------------------------------------------------------

    def engine(
        self,
        name: str,
        domain: int,
        node: int,
        *,
        seed: int = 1,
        **config: Any,
    ) -> ClaimEngine:
        config.setdefault("family", AddressFamily.IPV4)
        cfg = EngineConfig(local_domain=DomainId(domain), local_node=NodeId(node), **config)
        engine = ClaimEngine(cfg, rng=random.Random(seed))
        self.nodes[name] = Node(name, DomainId(domain), NodeId(node), engine)
        return engine

    def stub(self, name: str, domain: int, node: int) -> None:
        self.nodes[name] = Node(name, DomainId(domain), NodeId(node), None)

    def link(
        self,
        a: str,
        b: str,
        b_is: Role,
        *,
        parent: int | None = None,
        scope: tuple[Prefix, ...] = (),
        up: bool = True,
    ) -> list[EngineEvent]:
        """A session between ``a`` and ``b``; ``b_is`` is what ``b`` is to ``a``; ``parent``
        is the common parent of a sibling session (§4.4)."""
        na, nb = self.nodes[a], self.nodes[b]
        session_parent = DomainId(parent if parent is not None else TLD_ID)
        sp = session_parent if b_is is Role.SIBLING else None
        self.links[(a, b)] = Neighbor(b, b_is, nb.domain, nb.node, 0, sp, scope)
        self.links[(b, a)] = Neighbor(a, b_is.counterpart, na.domain, na.node, 0, sp, scope)
        return self.up(a, b) if up else []

    def up(self, a: str, b: str) -> list[EngineEvent]:
        """Both ends see the session Established (a new generation); returns ``a``'s events."""
        self._generation += 1
        out: list[EngineEvent] = []
        for x, y in ((a, b), (b, a)):
            nb = self.links[(x, y)]
            self.links[(x, y)] = Neighbor(
                nb.key, nb.role, nb.domain, nb.node, self._generation, nb.session_parent,
                nb.scope_boundary,
            )  # fmt: skip
            self.live.add((x, y))
        for x, y in ((a, b), (b, a)):
            engine = self.nodes[x].engine
            if engine is not None:
                events = engine.peer_up(self.links[(x, y)], now=self.now)
                if x == a:
                    out = events
                self.deliver(x, events)
        return out

    def down(self, a: str, b: str) -> None:
        for x, y in ((a, b), (b, a)):
            self.live.discard((x, y))
            engine = self.nodes[x].engine
            if engine is not None:
                self.deliver(x, engine.peer_down(y, now=self.now))

    def start(self, *names: str) -> None:
        for name in names or list(self.nodes):
            engine = self.nodes[name].engine
            if engine is not None:
                self.deliver(name, engine.start(now=self.now))

    def __getitem__(self, name: str) -> ClaimEngine:
        engine = self.nodes[name].engine
        assert engine is not None, f"{name} is a stub"
        return engine

    # --- driving -------------------------------------------------------------------------

    def inject(self, frm: str, to: str, *claims: Claim) -> list[EngineEvent]:
        """The stub ``frm`` sends one UPDATE to the engine ``to``; returns ``to``'s events
        (and delivers what they send)."""
        assert (frm, to) in self.live, f"no session {frm} -> {to}"
        events = self[to].update_received(frm, Update(tuple(claims)), now=self.now)
        self.deliver(to, events)
        return events

    def call(self, name: str, method: str, *args: Any, **kwargs: Any) -> list[EngineEvent]:
        """Call an engine input (``claim``, ``renew``...) at the current time and deliver."""
        events: list[EngineEvent] = getattr(self[name], method)(*args, now=self.now, **kwargs)
        self.deliver(name, events)
        return events

    def deliver(self, origin: str, events: list[EngineEvent]) -> None:
        queue: deque[tuple[str, list[EngineEvent]]] = deque([(origin, events)])
        while queue:
            sender, batch = queue.popleft()
            for event in batch:
                self.log.append(Record(self.now, sender, event))
                if not isinstance(event, SendUpdate):
                    continue
                if (sender, event.peer) not in self.live:
                    continue
                if self.links[(sender, event.peer)].generation != event.generation:
                    continue  # computed for a session that has since gone down
                target = self.nodes[event.peer]
                if target.engine is None:
                    target.inbox.extend((sender, c) for c in event.update.attributes)
                else:
                    result = target.engine.update_received(sender, event.update, now=self.now)
                    queue.append((target.name, result))

    def run_until(self, end: float) -> None:
        """Fire every engine's timers in time order up to ``end``; the clock ends at ``end``."""
        last: tuple[float, str] | None = None
        repeats = 0
        while True:
            due = [
                (d, name)
                for name, n in self.nodes.items()
                if n.engine is not None and (d := n.engine.next_deadline()) is not None
            ]
            if not due:
                break
            deadline, name = min(due)
            if deadline > end:
                break
            repeats = repeats + 1 if (deadline, name) == last else 0
            assert repeats < 100, f"{name} keeps asking for a timer at {deadline}"
            last = (deadline, name)
            self.now = max(self.now, deadline)
            self.deliver(name, self[name].handle_timer(now=self.now))
        self.now = max(self.now, end)

    def run_for(self, seconds: float) -> None:
        self.run_until(self.now + seconds)

    # --- reading -------------------------------------------------------------------------

    def events(self, name: str, kind: type[E], since: float | None = None) -> list[E]:
        return [
            r.event
            for r in self.log
            if r.node == name and isinstance(r.event, kind) and (since is None or r.time >= since)
        ]

    def records(self, name: str, kind: type[Any]) -> list[Record]:
        return [r for r in self.log if r.node == name and isinstance(r.event, kind)]

    def inbox(self, stub: str, frm: str | None = None) -> list[Claim]:
        return [c for s, c in self.nodes[stub].inbox if frm is None or s == frm]

    def clear(self) -> None:
        """Forget the log and the stubs' inboxes (a test's "from here on")."""
        self.log.clear()
        for n in self.nodes.values():
            n.inbox.clear()
