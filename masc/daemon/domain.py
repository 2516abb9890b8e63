"""The trio task that owns the claim engine: moves UPDATEs and fires its timers.

One :class:`DomainRunner` per daemon holds the node's sans-IO
:class:`~masc.protocol.engine.ClaimEngine`.  Peer runners tell it when their session comes
up or goes down and hand it every UPDATE (through :class:`SessionListener` callbacks that
only queue); it feeds the engine in arrival order, waits for the engine's next deadline,
and carries out the events: UPDATEs and NOTIFICATIONs go back to the peer runners, G-RIB
changes to the exporter, the rest to the log.

With a store (RFC 2909 §13) the runner restores the engine's and the grant table's state
before it starts, and writes every change durably *before* it carries out the events that
announce it: a PREFIX_IN_USE is never on the wire, nor a grant in a MAAS's hands, before the
prefix is on disk.  With a grant table it splits the locally-allocated set between the
domain's MAASs after every change (the job of the withdrawn intra-domain AAP, RFC 2908), and
feeds their demand back to the engine's Appendix A allocator.

The engine works in Unix time (claim timestamps are, RFC 2909 §7.3).  The runner takes the
wall clock as an injected function, so under ``trio.testing.MockClock`` a test passes
``lambda: EPOCH + trio.current_time()`` and 48-hour waiting periods pass in milliseconds.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import trio

from masc.api.maas import MaasError
from masc.daemon import state
from masc.daemon.channels import waiting_receivers
from masc.daemon.grib import GribExporter
from masc.daemon.peer import PeerRunner
from masc.maas.grants import GrantEvent, GrantTable, Space
from masc.protocol.constants import ClaimType
from masc.protocol.engine import ClaimEngine, Neighbor, RequestRefused
from masc.protocol.events import (
    ClaimCancelled,
    ClaimSent,
    ClashDetected,
    EngineEvent,
    GribInject,
    GribRemove,
    LeafModeChanged,
    PolicyNotice,
    PrefixAllocated,
    PrefixDeprecated,
    PrefixGone,
    RangeWithdrawn,
    RejectClaim,
    SendUpdate,
)
from masc.protocol.session import SessionUp
from masc.protocol.wire.messages import Prefix, Update
from masc.store.records import HistoryRecord
from masc.store.sqlite import Store

log = logging.getLogger("masc.domain")
# After a restart, how long MAASs have to report their usage before the demand of those that
# did is taken for the whole domain's (a MAAS reports at least this often; docs/maas-api.md).
UNHEARD_GRACE: Final = 3600.0
# What a request may be refused with and the runner carries on.
REFUSALS: Final = (RequestRefused, LookupError, ValueError, MaasError)
# Queued inputs handled before the runner lets other tasks run (a checkpoint).
_BATCH: Final = 64
# A timer fires when trio's clock reaches it; our clock (Unix seconds) may then read a hair
# earlier: a deadline this close counts as met.
_CLOCK_SLACK: Final = 1e-3

WallClock = Callable[[], float]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Up:
    runner: PeerRunner
    up: SessionUp


@dataclass(frozen=True, slots=True)
class _Down:
    runner: PeerRunner


@dataclass(frozen=True, slots=True)
class _Received:
    runner: PeerRunner
    update: Update


@dataclass(slots=True)
class _Call:
    """Run ``fn(now)`` inside the runner's task (operator and MAAS requests)."""

    fn: Callable[[float], Any]
    done: trio.Event
    result: Any = None
    error: Exception | None = None


_Event = _Up | _Down | _Received | _Call


class DomainRunner:
    """Runs one ClaimEngine on trio; implements the peer runners' SessionListener."""

    def __init__(
        self,
        engine: ClaimEngine,
        *,
        clock: WallClock,
        grib: GribExporter,
        store: Store | None = None,
        grants: GrantTable | None = None,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.grib = grib
        self.store = store
        self.grants = grants
        # Set by the MAAS API: carries grant events to the MAASs' connections.
        self.on_grant_events: Callable[[Sequence[GrantEvent]], None] | None = None
        self.registered_at: dict[str, float] = {}
        self.turns = 0  # inputs handled: events of one input are carried out in one turn
        # What happened since start, for metrics: "claims_sent:<TYPE>", "collisions",
        # "clashes", "allocated", "deprecated", "gone:<reason>".
        self.counts: Counter[str] = Counter()
        # MAASs restored from the store whose usage we have not heard since we started:
        # until they report (or UNHEARD_GRACE passes) their demand is unknown, and the
        # engine is told none rather than zero (zero would shrink the space they use).
        self.unheard: set[str] = set()
        self.unheard_until = 0.0
        self.runners: dict[str, PeerRunner] = {}
        self._scopes: dict[str, tuple[Prefix, ...]] = {}
        # Unbounded like the peer runners' inboxes: each peer's reads are bounded by its
        # read credit, so the backlog here is bounded by the number of peers.
        self._inbox, self._inbox_rx = trio.open_memory_channel[_Event](math.inf)
        self._loop_parked = waiting_receivers(self._inbox_rx)
        # The loop's timer while it waits for inputs (re-armed after a handling in place).
        self._waiting: trio.CancelScope | None = None
        self._busy = False  # an input is being handled: a new one must queue behind it
        self._settled: tuple[int, bool] | None = None  # see _settle

    def attach(self, runner: PeerRunner, *, scope_boundary: tuple[Prefix, ...] = ()) -> None:
        """Make ``runner``'s session one of the engine's neighbours."""
        self.runners[runner.key] = runner
        self._scopes[runner.key] = scope_boundary
        runner.listener = self

    def detach(self, runner: PeerRunner) -> None:
        """Forget a session removed by a reload (its SessionDown has already been queued,
        so the engine hears it before this runner goes)."""
        if self.runners.get(runner.key) is runner:
            del self.runners[runner.key]
            self._scopes.pop(runner.key, None)

    # --- SessionListener (called from peer runner tasks) --------------------------------

    def session_up(self, runner: PeerRunner, up: SessionUp) -> None:
        self._inbox.send_nowait(_Up(runner, up))

    def session_down(self, runner: PeerRunner) -> None:
        self._inbox.send_nowait(_Down(runner))

    def update_received(self, runner: PeerRunner, update: Update) -> None:
        """Handled at once in the calling task when the loop is idle (parked on an empty
        inbox, not inside a handler), as the peer runners handle the bytes they read: the
        order is the loop's, and trio switches tasks only at ``await``, so the engine still
        takes one input at a time.  Otherwise queued.  Each UPDATE a parent relays reaches
        every child, so waking each child's loop cost more than its engine's work."""
        event = _Received(runner, update)
        if not self._idle():
            self._inbox.send_nowait(event)
            return
        self._handle(event)
        waiting = self._waiting
        if waiting is not None:
            wake = self._wake_at()
            if waiting.deadline != wake:
                waiting.deadline = wake  # one already past wakes the loop for its timers

    def _idle(self) -> bool:
        return not self._busy and self._waiting is not None and len(self._loop_parked) > 0

    def _next_deadline(self) -> float | None:
        """The engine's or the grant table's next deadline, whichever is first (our clock)."""
        deadlines = [d for d in (self.engine.next_deadline(), self._grant_deadline()) if d]
        return min(deadlines) if deadlines else None

    def _wake_at(self) -> float:
        """The trio time of :meth:`_next_deadline`."""
        deadline = self._next_deadline()
        if deadline is None:
            return math.inf
        return trio.current_time() + max(0.0, deadline - self.clock())

    # --- requests --------------------------------------------------------------------------

    async def call(self, fn: Callable[[ClaimEngine, float], list[EngineEvent]]) -> None:
        """Run ``fn(engine, now)`` in the engine's task; re-raise what it raised (e.g.
        :class:`~masc.protocol.engine.RequestRefused`)."""
        await self.run_in(lambda now: self._execute(fn(self.engine, now)))

    async def run_in(self, fn: Callable[[float], T]) -> T:
        """Run ``fn(now)`` in the engine's task, then settle the grants; return its result
        or re-raise what it raised."""
        call = _Call(fn, trio.Event())
        self._inbox.send_nowait(call)
        await call.done.wait()
        if call.error is not None:
            raise call.error
        result: T = call.result
        return result

    # --- MAAS requests (the MAAS API and the simulation both come through here) -----------

    async def register_maas(self, name: str, scopes: Sequence[str]) -> None:
        """A MAAS registers: it may get its pool of space at once."""

        def register(now: float) -> None:
            self.registered_at.setdefault(name, now)
            self._publish(self._table().register(name, scopes, now=now))

        await self.run_in(register)

    async def report_usage(
        self, name: str, *, in_use: int, rate: float, by_prefix: Mapping[Prefix, int]
    ) -> None:
        """A MAAS reports its usage; its demand is known again (see ``unheard``)."""

        def report(now: float) -> None:
            self.unheard.discard(name)
            table = self._table()
            self._publish(
                table.report_usage(name, in_use=in_use, rate=rate, by_prefix=by_prefix, now=now)
            )

        await self.run_in(report)

    async def request_space(self, name: str, size: int) -> list[GrantEvent]:
        """A MAAS asks for ``size`` more addresses; returns the grant events it caused
        (already on disk and published)."""

        def ask(now: float) -> list[GrantEvent]:
            events = self._table().request(name, size, now=now)
            self._publish(events)
            return events

        return await self.run_in(ask)

    async def forget_maas(self, name: str) -> list[GrantEvent]:
        """The operator drops a MAAS that will not come back: its grants are revoked
        ("released") and its space returns to the pool (docs/maas-api.md)."""

        def forget(now: float) -> list[GrantEvent]:
            events = self._table().forget(name)
            self.registered_at.pop(name, None)
            self.unheard.discard(name)
            self._publish(events)
            return events

        return await self.run_in(forget)

    def _table(self) -> GrantTable:
        if self.grants is None:
            raise RequestRefused("this runner splits no space between MAASs")
        return self.grants

    # --- the loop --------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        if self.store is not None:
            self._restore(self.clock())
        self._execute(self.engine.start(now=self.clock()))
        task_status.started()
        rx = self._inbox_rx
        while True:
            # One cancel scope per timer that fires, not one per event: its deadline
            # follows the engine's (and the grant table's) next deadline.
            with trio.CancelScope() as waiting:
                self._waiting = waiting
                handled = 0
                while True:
                    wake = self._wake_at()
                    if wake <= trio.current_time():
                        break
                    if waiting.deadline != wake:
                        waiting.deadline = wake
                    if handled >= _BATCH:
                        # Inputs already queued are handled in a row; other tasks get a
                        # turn every _BATCH of them, *before* the next is taken: the timer
                        # may cancel this checkpoint, and an input taken would be lost.
                        handled = 0
                        await trio.lowlevel.checkpoint()
                    try:
                        event = rx.receive_nowait()
                    except trio.WouldBlock:
                        event = await rx.receive()
                        handled = 0
                    else:
                        handled += 1
                    self._handle(event)
            self._waiting = None
            self.turns += 1
            # The deadline met, against the rounding between trio's clock and ours; not a
            # later one an input handled in place set after the timer fired.
            now = self.clock()
            deadline = self._next_deadline()
            if deadline is not None and deadline - now < _CLOCK_SLACK:
                now = max(now, deadline)
            if self.grants is not None:
                self._publish(self.grants.handle_timer(now=now))
            self._execute(self.engine.handle_timer(now=now))

    def _grant_deadline(self) -> float | None:
        return None if self.grants is None else self.grants.next_deadline()

    def _restore(self, now: float) -> None:
        """§13: what the store kept, back into the engine and the grant table."""
        assert self.store is not None
        snapshot = self.store.load()
        if self.grants is not None:
            self.grants.restore(
                state.grants_from(snapshot.grants), [(m.name, m.scopes) for m in snapshot.maas]
            )
            self.registered_at = {m.name: m.registered_at for m in snapshot.maas}
            self.unheard = {m.name for m in snapshot.maas}
            self.unheard_until = now + UNHEARD_GRACE
        events = self.engine.restore(
            state.allocations_from(snapshot.allocations),
            state.pending_from(snapshot.pending, self.engine),
            now=now,
        )
        log.info(
            "restored %d prefix(es), %d pending claim(s), %d grant(s) from %s",
            len(self.engine.allocations),
            len(self.engine.pending),
            len(snapshot.grants),
            self.store.path,
            extra={"event": "restored", "prefixes": len(self.engine.allocations)},
        )
        self._execute(events)

    def _handle(self, event: _Event) -> None:
        """One input, from the loop or in place: counted, and marked busy meanwhile."""
        self.turns += 1
        self._busy = True
        try:
            self._handle_event(event)
        finally:
            self._busy = False

    def _handle_event(self, event: _Event) -> None:
        engine, now = self.engine, self.clock()
        if isinstance(event, _Received):
            self._dispatch(engine.update_received(event.runner.key, event.update, now=now))
            # Most UPDATEs (others' claims relayed by a parent) leave the local space as
            # it was, and nothing else that _settle reads changes with one.
            self._settle(unless_unchanged=True)
        elif isinstance(event, _Up):
            config = event.runner.session.config
            remote = event.up.remote
            neighbor = Neighbor(
                key=event.runner.key,
                role=config.peer_role,
                domain=remote.domain_id,
                node=remote.node_id,
                generation=event.up.connection,
                session_parent=config.session_parent,
                scope_boundary=self._scopes.get(event.runner.key, ()),
            )
            self._execute(engine.peer_up(neighbor, now=now))
        elif isinstance(event, _Down):
            self._execute(engine.peer_down(event.runner.key, now=now))
        else:
            try:
                event.result = event.fn(now)
            except REFUSALS as error:
                # A request the engine or the grant table refuses; anything else (a store
                # error, a bug) ends the runner, and the daemon with it: carrying on with
                # state that is not on disk would break §13's promise.
                event.error = error
            self._settle()
            event.done.set()

    def _execute(self, events: list[EngineEvent]) -> None:
        """Persist, then carry out the engine's events, then re-split the local space."""
        self._dispatch(events)
        self._settle()

    def _dispatch(self, events: list[EngineEvent]) -> None:
        # §13: the prefix is on disk before its PREFIX_IN_USE leaves (events carry both).
        self._persist(events)
        for event in events:
            if isinstance(event, SendUpdate):
                runner = self.runners.get(event.peer)
                if runner is not None:
                    runner.send_update(event.generation, event.update)
            elif isinstance(event, RejectClaim):
                runner = self.runners.get(event.peer)
                if runner is not None:
                    runner.reject(event.generation, event.error)
            elif isinstance(event, GribInject):
                self.grib.inject(event.prefix)
            elif isinstance(event, GribRemove):
                self.grib.remove(event.prefix)
            else:
                self._count(event)
                _log_event(event)

    def _count(self, event: EngineEvent) -> None:
        if isinstance(event, ClaimSent):
            self.counts[f"claims_sent:{event.claim.type.name}"] += 1
        elif isinstance(event, ClaimCancelled) and event.winner is not None:
            # §5.1 c): another claim won; a parent's CLAIM_DENIED (§8.3) is not a collision.
            denied = event.winner.type is ClaimType.CLAIM_DENIED
            self.counts["denials" if denied else "collisions"] += 1
        elif isinstance(event, ClashDetected):
            self.counts["clashes"] += 1
        elif isinstance(event, PrefixAllocated):
            self.counts["allocated"] += 1
        elif isinstance(event, PrefixDeprecated):
            self.counts["deprecated"] += 1
        elif isinstance(event, PrefixGone):
            self.counts[f"gone:{event.reason}"] += 1

    def _persist(self, events: Sequence[EngineEvent]) -> None:
        if self.store is None:
            return
        self.store.save(
            allocations=state.stored_allocations(self.engine),
            pending=state.stored_pending(self.engine),
        )
        now = self.clock()
        history = [r for r in (_history(event, now) for event in events) if r is not None]
        if history:
            self.store.record(history)

    def _settle(self, *, unless_unchanged: bool = False) -> None:
        """Split the local space between the MAASs again, and give the engine their demand.

        A demand change makes the engine plan claims, which may change the space again:
        a few rounds reach a fixed point (each round's engine events are carried out).
        ``unless_unchanged``: nothing to do if the engine's local space and whether the
        MAASs' demand is known are as at the last settling (the grant table changes only
        through requests and its timers, which always settle)."""
        if self.grants is None:
            return
        mark = (self.engine.local_version, self._demand_unknown())
        if unless_unchanged and mark == self._settled:
            return
        self._settled = None
        if self._settle_rounds():
            self._settled = (self.engine.local_version, self._demand_unknown())

    def _demand_unknown(self) -> bool:
        return bool(self.unheard) and self.clock() < self.unheard_until

    def _settle_rounds(self) -> bool:
        """The rounds of :meth:`_settle`; False if they did not reach the fixed point (the
        next input then settles again, whatever it is)."""
        assert self.grants is not None
        for _ in range(4):
            now = self.clock()
            pieces = self.engine.local_pieces(now=now)
            space = [Space(p.prefix, float(p.expires), p.active) for p in pieces]
            self._publish(self.grants.sync(space, now=now))
            unknown = self._demand_unknown()
            demand = self.grants.demand() if self.grants.maas() and not unknown else None
            if demand == self.engine.demand:
                return True
            self._dispatch(self.engine.set_demand(demand, now=now))
        return False

    def _publish(self, events: Sequence[GrantEvent]) -> None:
        """Grants are on disk before any MAAS hears of them (RFC 2909 §13, issue rule)."""
        if self.grants is None:
            return
        if self.store is not None:
            self.store.save(
                grants=state.stored_grants(self.grants),
                maas=state.stored_maas(self.grants, self.registered_at),
            )
        if events and self.on_grant_events is not None:
            self.on_grant_events(events)


def _history(event: EngineEvent, now: float) -> HistoryRecord | None:
    """The claim history an operator reads in ``mascctl show prefixes``."""
    if isinstance(event, ClaimSent):
        c = event.claim
        detail = f"{c.type.name} ({event.purpose}, {event.kind.value}), lifetime {c.lifetime}s"
        return HistoryRecord(now, "claim_sent", str(c.prefix), detail)
    if isinstance(event, ClaimCancelled) and event.prefix is not None:
        detail = event.reason
        if event.winner is not None:
            w = event.winner
            detail += f"; contested by domain {w.origin_domain} node {w.origin_node}"
        return HistoryRecord(now, "claim_cancelled", str(event.prefix), detail)
    if isinstance(event, PrefixAllocated):
        detail = f"{event.purpose} ({event.kind.value}) until {event.expires}"
        return HistoryRecord(now, "allocated", str(event.prefix), detail)
    if isinstance(event, PrefixGone):
        return HistoryRecord(now, "gone", str(event.prefix), event.reason)
    if isinstance(event, PrefixDeprecated):
        detail = f"{event.reason}, in use until {event.expires}"
        return HistoryRecord(now, "deprecated", str(event.prefix), detail)
    if isinstance(event, ClashDetected):
        w = event.winner
        detail = f"clash {event.clash_id} with {w.prefix} of domain {w.origin_domain}"
        return HistoryRecord(now, "clash", str(event.local), detail)
    if isinstance(event, RangeWithdrawn):
        return HistoryRecord(
            now, "restored" if event.restored else "withdrawn", str(event.prefix), ""
        )
    return None


def _log_event(event: EngineEvent) -> None:
    """One log line per engine event an operator cares about, with structured fields."""
    if isinstance(event, ClaimSent):
        c = event.claim
        log.info(
            "claim %s %s (%s, lifetime %ds)",
            c.type.name,
            c.prefix,
            event.purpose,
            c.lifetime,
            extra={"event": "claim_sent", "prefix": str(c.prefix), "kind": event.kind.value},
        )
    elif isinstance(event, PrefixAllocated):
        log.info(
            "allocated %s (%s, %s) until %d",
            event.prefix,
            event.kind.value,
            event.purpose,
            event.expires,
            extra={
                "event": "prefix_allocated",
                "prefix": str(event.prefix),
                "expires": event.expires,
            },
        )
    elif isinstance(event, PrefixGone):
        log.info(
            "%s %s (%s)",
            event.reason,
            event.prefix,
            event.kind.value,
            extra={"event": "prefix_gone", "prefix": str(event.prefix), "reason": event.reason},
        )
    elif isinstance(event, ClaimCancelled):
        log.info(
            "claim %s cancelled: %s",
            event.prefix or "(not chosen)",
            event.reason,
            extra={"event": "claim_cancelled", "prefix": str(event.prefix)},
        )
    elif isinstance(event, ClashDetected):
        log.warning(
            "clash on %s with %s of domain %d%s",
            event.local,
            event.winner.prefix,
            event.winner.origin_domain,
            ": waiting for the operator" if event.manual else "",
            extra={"event": "clash", "prefix": str(event.local), "clash_id": event.clash_id},
        )
    elif isinstance(event, RangeWithdrawn):
        log.warning(
            "%s %s",
            "range usable again:" if event.restored else "range withdrawn:",
            event.prefix,
            extra={
                "event": "range_withdrawn",
                "prefix": str(event.prefix),
                "restored": event.restored,
            },
        )
    elif isinstance(event, LeafModeChanged):
        log.info(
            "domain is now %s (§12.2)",
            "non-leaf" if event.non_leaf else "leaf",
            extra={"event": "leaf_mode", "non_leaf": event.non_leaf},
        )
    elif isinstance(event, PrefixDeprecated):
        log.info(
            "deprecated %s (%s): %s; in use until %d",
            event.prefix,
            event.kind.value,
            event.reason,
            event.expires,
            extra={"event": "prefix_deprecated", "prefix": str(event.prefix)},
        )
    elif isinstance(event, PolicyNotice):
        # A relayed copy the §14 rule ignores is routine (siblings relay to siblings); the
        # flood limits, not this line, are what an operator watches for an attack.
        level = logging.DEBUG if event.event == "third_party_ignored" else logging.WARNING
        log.log(level, event.message, extra={"event": event.event})
