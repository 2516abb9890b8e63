"""The trio task that owns the claim engine: moves UPDATEs and fires its timers.

One :class:`DomainRunner` per daemon holds the node's sans-IO
:class:`~masc.protocol.engine.ClaimEngine`.  Peer runners tell it when their session comes
up or goes down and hand it every UPDATE (through :class:`SessionListener` callbacks that
only queue); it feeds the engine in arrival order, waits for the engine's next deadline,
and carries out the events: UPDATEs and NOTIFICATIONs go back to the peer runners, G-RIB
changes to the exporter, the rest to the log.

The engine works in Unix time (claim timestamps are, RFC 2909 §7.3).  The runner takes the
wall clock as an injected function, so under ``trio.testing.MockClock`` a test passes
``lambda: EPOCH + trio.current_time()`` and 48-hour waiting periods pass in milliseconds.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import trio

from masc.daemon.grib import GribExporter
from masc.daemon.peer import PeerRunner
from masc.protocol.engine import ClaimEngine, Neighbor
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
    PrefixGone,
    RangeWithdrawn,
    RejectClaim,
    SendUpdate,
)
from masc.protocol.session import SessionUp
from masc.protocol.wire.messages import Prefix, Update

log = logging.getLogger("masc.domain")

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
    """Run ``fn`` against the engine inside the runner's task (operator requests)."""

    fn: Callable[[ClaimEngine, float], list[EngineEvent]]
    done: trio.Event
    error: Exception | None = None


_Event = _Up | _Down | _Received | _Call


class DomainRunner:
    """Runs one ClaimEngine on trio; implements the peer runners' SessionListener."""

    def __init__(self, engine: ClaimEngine, *, clock: WallClock, grib: GribExporter) -> None:
        self.engine = engine
        self.clock = clock
        self.grib = grib
        self.runners: dict[str, PeerRunner] = {}
        self._scopes: dict[str, tuple[Prefix, ...]] = {}
        # Unbounded like the peer runners' inboxes: each peer's reads are bounded by its
        # read credit, so the backlog here is bounded by the number of peers.
        self._inbox, self._inbox_rx = trio.open_memory_channel[_Event](math.inf)

    def attach(self, runner: PeerRunner, *, scope_boundary: tuple[Prefix, ...] = ()) -> None:
        """Make ``runner``'s session one of the engine's neighbours."""
        self.runners[runner.key] = runner
        self._scopes[runner.key] = scope_boundary
        runner.listener = self

    # --- SessionListener (called from peer runner tasks; only queue) ---------------------

    def session_up(self, runner: PeerRunner, up: SessionUp) -> None:
        self._inbox.send_nowait(_Up(runner, up))

    def session_down(self, runner: PeerRunner) -> None:
        self._inbox.send_nowait(_Down(runner))

    def update_received(self, runner: PeerRunner, update: Update) -> None:
        self._inbox.send_nowait(_Received(runner, update))

    # --- requests --------------------------------------------------------------------------

    async def call(self, fn: Callable[[ClaimEngine, float], list[EngineEvent]]) -> None:
        """Run ``fn(engine, now)`` in the engine's task; re-raise what it raised (e.g.
        :class:`~masc.protocol.engine.RequestRefused`)."""
        call = _Call(fn, trio.Event())
        self._inbox.send_nowait(call)
        await call.done.wait()
        if call.error is not None:
            raise call.error

    # --- the loop --------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._execute(self.engine.start(now=self.clock()))
        task_status.started()
        while True:
            deadline = self.engine.next_deadline()
            if deadline is None:
                wake = math.inf
            else:
                wake = trio.current_time() + max(0.0, deadline - self.clock())
            with trio.move_on_at(wake):
                self._handle(await self._inbox_rx.receive())
                continue
            self._execute(self.engine.handle_timer(now=max(self.clock(), deadline or 0.0)))

    def _handle(self, event: _Event) -> None:
        engine, now = self.engine, self.clock()
        if isinstance(event, _Received):
            self._execute(engine.update_received(event.runner.key, event.update, now=now))
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
                events = event.fn(engine, now)
            except Exception as error:
                event.error = error
            else:
                self._execute(events)
            event.done.set()

    def _execute(self, events: list[EngineEvent]) -> None:
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
                _log_event(event)


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
    elif isinstance(event, PolicyNotice):
        log.warning(event.message, extra={"event": event.event})
