"""The claim-collide engine of one MASC node (RFC 2909 §4-§5, §11-§12, §14).

Theory of operation
-------------------
One :class:`ClaimEngine` runs per node.  It is sans-IO: the shell tells it when a session
comes up or goes down, hands it every UPDATE received, calls :meth:`ClaimEngine.handle_timer`
at :meth:`ClaimEngine.next_deadline`, and carries out the returned
:mod:`~masc.protocol.events`.  ``now`` is always Unix time in seconds, because claim
timestamps are (§7.3); the shell owns the clock.

State
  * the :class:`~masc.protocol.claims.ClaimCache`: every attribute accepted or originated,
    with its updated origin role (§11.1).  Parents' PREFIX_MANAGED, siblings' and children's
    claims, our own domain's claims and WITHDRAWs all live here, so a peer whose session
    comes up can be sent everything relevant in §11.8 order;
  * :attr:`ClaimEngine.allocations`: prefixes the domain holds (§4.1).  ``DOMAIN``
    allocations are the managed set, claimed from a parent (or, for a top-level domain,
    from the configured global pool, which plays the parent's PREFIX_MANAGED); ``LOCAL``
    ones are what a non-leaf domain claimed as a child of itself (§12.2).  The
    locally-allocated set is the managed set for a leaf domain and the LOCAL allocations
    for a non-leaf one; WITHDRAWs in the cache cut ranges out of both (§11.7.3, §12.4);
  * pending claims (sent, Claim-Timer running, §5.1 b) and scheduled claims (waiting out
    the random INITIATE_CLAIM_DELAY, §5.1 a).

Every input runs the same way: handle it, then *plan* (claim when the domain needs space
and may claim), then flush the UPDATEs queued per session, then diff the G-RIB set and
report what changed.  A peer's bad attribute becomes a :class:`RejectClaim` carrying the
NOTIFICATION of §8.3/§11; nothing a peer sends makes the engine raise.

Demand: until the shell reports one (:meth:`ClaimEngine.set_demand`, from the MAASs' usage)
a leaf domain simply holds ``initial_size`` addresses (§12.2, App. B); a non-leaf domain's
managed set follows its children's claims (:meth:`ClaimEngine._children_demand`).  With a
demand, the Appendix A allocator (:mod:`masc.protocol.allocation`) decides: claim ahead of
demand over one waiting period (§17.1.2), keep utilization in the band and the prefixes few
(§17.1.3-4), and at each renewal renew, halve or drop a prefix (§17.1.5-6).  Which free
prefix to claim is always its choice (reverse bit ordering, neighbours first, §17.1.1, §17.1.4).
Choices where the RFC is loose are listed in docs/conformance.md and docs/protocol.md.
"""

from __future__ import annotations

import enum
import itertools
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Final, Literal

from masc.protocol.allocation import (
    AllocatorConfig,
    Demand,
    Grow,
    Held,
    Trend,
    can_double,
    choose_prefix,
    first_release,
    largest_free,
    plan_growth,
    plan_renewal,
)
from masc.protocol.claims import (
    CLAIMS,
    COMPARABLE,
    CacheEntry,
    ClaimCache,
    is_hint,
    relabelled,
    wins,
)
from masc.protocol.constants import (
    HEADER_LENGTH,
    INITIATE_CLAIM_DELAY,
    MAX_MESSAGE_LENGTH,
    TLD_ID,
    WAITING_PERIOD,
    AddressFamily,
    ClaimType,
    Role,
)
from masc.protocol.errors import CoreMisuse, UpdateMessageError, UpdateSubcode
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
    SpaceKind,
)
from masc.protocol.propagation import Audience, audience, sync_order, updated_origin_role
from masc.protocol.space import (
    Randomness,
    Span,
    collapse,
    covers,
    host_bits_for,
    overlaps,
    same,
    span_of,
    spans_of,
    subtract,
)
from masc.protocol.wire.codec import encode_claim
from masc.protocol.wire.messages import Claim, DomainId, NodeId, Prefix, Update

Sub = UpdateSubcode
DOMAIN, LOCAL = SpaceKind.DOMAIN, SpaceKind.LOCAL
_MAX_U32: Final = 0xFFFFFFFF
_UPDATE_ROOM: Final = MAX_MESSAGE_LENGTH - HEADER_LENGTH
HALF_YEAR: Final = 15_768_000  # §8.3's example of a too long lifetime / holdtime


class ClashResolution(enum.Enum):
    """§12.4: a node MUST be configured for one of these."""

    AUTOMATIC = "automatic"
    MANUAL = "manual"


class ThirdParty(enum.Enum):
    """§14: which relayed ("third-party") UPDATEs of siblings and children we accept.

    ``via-parent``: a sibling's UPDATE only from that sibling itself or via the common
    parent (so never relayed by another sibling), and, in the parent, a child's UPDATE only
    from that child domain's own nodes.  Sibling TLDs have no common parent domain to go
    through, so their mesh keeps relaying.  ``strict`` adds §14's last clause: a child's
    UPDATE only "directly from a child node that is same as the Origin Node ID" (or via an
    internal peer).  ``accept`` takes everything Table 1 allows.
    """

    ACCEPT = "accept"
    VIA_PARENT = "via-parent"
    STRICT = "strict"


@dataclass(frozen=True, slots=True)
class Policy:
    """Local policy toward claims, mostly a parent's toward its children (§8.3, §11.4.3,
    App. B).  Sizes are in addresses, times in seconds."""

    clash_resolution: ClashResolution = ClashResolution.AUTOMATIC
    max_child_lifetime: float = HALF_YEAR
    min_child_lifetime: float = 0.0
    min_child_prefix_size: int = 16
    max_child_prefix_size: int | None = None
    child_soft_threshold: int | None = None
    child_hard_threshold: int | None = None
    timestamp_tolerance: float = 86_400.0
    max_claim_holdtime: float = HALF_YEAR
    min_claim_holdtime: float = 0.0
    restore_from: frozenset[Role] = frozenset({Role.PARENT, Role.INTERNAL})
    third_party: ThirdParty = ThirdParty.VIA_PARENT


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """The engine's view of the node's configuration."""

    local_domain: DomainId
    local_node: NodeId
    family: AddressFamily
    parent_domain_ids: tuple[DomainId, ...] = (DomainId(TLD_ID),)
    global_pool: tuple[Prefix, ...] = ()
    waiting_period: float = float(WAITING_PERIOD)
    initiate_claim_delay: float = float(INITIATE_CLAIM_DELAY)
    clock_skew_grace: float = 86_400.0
    claim_lifetime: float = 30 * 86_400.0
    initial_size: int = 256
    policy: Policy = field(default_factory=Policy)
    allocator: AllocatorConfig = field(default_factory=AllocatorConfig)

    def __post_init__(self) -> None:
        if not self.parent_domain_ids:
            raise CoreMisuse("parent_domain_ids must name the parents, or be (TLD_ID,)")

    @property
    def is_tld(self) -> bool:
        """§4: a domain with no parent is a Top-Level Domain."""
        return self.parent_domain_ids == (DomainId(TLD_ID),)


@dataclass(frozen=True, slots=True)
class Neighbor:
    """An Established session, as the engine sees it.

    ``role`` is what the peer is to us.  ``session_parent`` is, for a sibling session, the
    common parent it belongs to (§4.4; TLD_ID between top-level domains).
    ``scope_boundary`` lists admin-scope zones this session crosses (§4.5).
    """

    key: str
    role: Role
    domain: DomainId
    node: NodeId
    generation: int
    session_parent: DomainId | None = None
    scope_boundary: tuple[Prefix, ...] = ()


@dataclass(slots=True)
class Allocation:
    """A prefix the domain holds (§4.1); ``parent`` is where it was claimed from (TLD_ID for
    the global pool, our own domain for LOCAL space)."""

    prefix: Prefix
    kind: SpaceKind
    parent: DomainId | None
    timestamp: int
    lifetime: int
    origin_node: NodeId
    allocated_at: float
    renew_retry_at: float = 0.0
    renewing: bool = True  # False: deprecated, left to expire (§17.1.4, §17.1.5)
    renewed_at: float | None = None  # when the last renewal finished (None: allocated_at)

    @property
    def expires(self) -> int:
        return self.timestamp + self.lifetime

    def announcement(self, claim_type: ClaimType, domain: DomainId) -> Claim:
        """Our PREFIX_IN_USE / PREFIX_MANAGED for it: holdtime = lifetime (§7.3)."""
        return Claim(
            type=claim_type,
            origin_role=Role.INTERNAL if self.kind is DOMAIN else Role.CHILD,
            timestamp=self.timestamp,
            lifetime=self.lifetime,
            holdtime=self.lifetime,
            origin_domain=domain,
            origin_node=self.origin_node,
            prefix=self.prefix,
        )


# "shrink": a CLAIM_TO_EXPAND renewing one half of a prefix we hold (§17.1.5).
Purpose = Literal["new", "renew", "expand", "shrink"]


@dataclass(slots=True)
class PendingClaim:
    """A claim sent with its Claim-Timer running (§5.1 b)."""

    claim: Claim
    kind: SpaceKind
    parent: DomainId | None
    purpose: Purpose
    deadline: float
    extends: Prefix | None = None  # renew / expand / shrink: the allocation it extends
    replaces: tuple[Prefix, ...] = ()  # §17.1.4: stop renewing these once allocated


@dataclass(slots=True)
class ScheduledClaim:
    """A claim waiting out its random delay (§5.1 a)."""

    at: float
    kind: SpaceKind
    size: int
    lifetime: int
    purpose: Purpose
    prefix: Prefix | None = None
    extends: Prefix | None = None
    end_by: int | None = None  # a parent's CLAIM_DENIED said: not beyond this (§8.3)
    replaces: tuple[Prefix, ...] = ()
    fallback: int = 0  # Grow.fallback: the smaller claim if no block of ``size`` is free
    automatic: bool = False  # planned by the engine from demand, not asked for
    operator: bool = False  # asked for by the operator: sent even if space is usable

    @property
    def claim_type(self) -> ClaimType:
        """What it will be sent as: a new prefix is a NEW_CLAIM; a renewal, expansion or
        shrink extends one we hold, a CLAIM_TO_EXPAND (§5.2, §5.3)."""
        return ClaimType.NEW_CLAIM if self.purpose == "new" else ClaimType.CLAIM_TO_EXPAND


@dataclass(slots=True)
class Clash:
    """§12.4: a sibling's PREFIX_IN_USE that beat one of our prefixes."""

    clash_id: int
    local: Prefix
    kind: SpaceKind
    winner: Claim
    detected_at: float
    state: Literal["pending", "withdrawn", "accepted"] = "pending"


@dataclass(frozen=True, slots=True)
class LocalPiece:
    """A usable piece of the locally-allocated set (§4.1): what MAASs may be given.
    ``active`` is False for a deprecated prefix (no new addresses from it)."""

    prefix: Prefix
    expires: int
    active: bool


@dataclass(frozen=True, slots=True)
class _Stuck:
    """A claim for new space found no free block (§5.1, Appendix A): the largest free
    aligned block then had 2**``bits`` addresses (-1: none).  Until ``signature`` (what
    could free space: the cache, denials, sessions, our prefixes and claims) changes, time
    alone frees something (``until``) or the ``demand`` the claim was planned for changes
    (another demand may be served by a doubling instead), a claim needing more is not
    tried again: it could only fail the same way (performance only, the outcome is the
    same)."""

    signature: tuple[object, ...]
    bits: int
    until: float
    # The demand the failed claim was planned for: another may call for a doubling instead.
    demand: Demand | None = None


class RequestRefused(Exception):
    """An operator or allocator request the engine cannot carry out (never sent to a peer)."""


class _Refuse(Exception):
    """A received attribute breaks a rule: answer with this UPDATE Message Error subcode."""

    def __init__(self, subcode: Sub, reason: str) -> None:
        super().__init__(reason)
        self.subcode = subcode
        self.reason = reason


_MemoKey = tuple[int, int, float]  # cache reshaped, room generation, grace


def _u32(value: float) -> int:
    return max(0, min(_MAX_U32, int(value)))


# What a child claims or holds (§11.2-§11.4): space a parent must not shrink away from.
_CHILD_HOLDS: Final = frozenset(
    {ClaimType.NEW_CLAIM, ClaimType.CLAIM_TO_EXPAND, ClaimType.PREFIX_IN_USE}
)
# The claims that keep space from us (_cache_taken), in the order it takes them.
_ROOM_TYPES: Final = (ClaimType.PREFIX_IN_USE, ClaimType.CLAIM_TO_EXPAND, ClaimType.NEW_CLAIM)
# Claims cached and not yet added into the memos of occupied space are kept up to a
# quarter of the cache's size (at least this many): past that, rebuilding the memos when
# next read costs about as much as adding them in, and memory stays a small part of the
# cache's.
_ARRIVALS_KEPT: Final = 64


class ClaimEngine:
    """Claims, defends, renews and releases a domain's multicast space (module docstring)."""

    def __init__(self, config: EngineConfig, *, rng: Randomness) -> None:
        self.config = config
        self.rng = rng
        self.cache = ClaimCache(config.clock_skew_grace, local=config.local_domain)
        self.cache.on_claim = self._claim_cached
        self.allocations: dict[tuple[SpaceKind, Prefix], Allocation] = {}
        self.pending: list[PendingClaim] = []
        self.scheduled: list[ScheduledClaim] = []
        self.clashes: dict[int, Clash] = {}
        self.neighbors: dict[str, Neighbor] = {}
        # The domains of the CHILD and the PARENT neighbors (_neighbors_changed).
        self._child_domains: frozenset[DomainId] = frozenset()
        self._parents_up: frozenset[DomainId] = frozenset()
        self.non_leaf = False
        self.grib: frozenset[Prefix] = frozenset()
        self._withdrawn: frozenset[Prefix] = frozenset()
        # Bumped whenever local_pieces may answer differently (the shell re-splits the
        # local space between the MAASs only then).
        self.local_version = 0
        self._local_signature: object = None
        self._clash_ids = itertools.count(1)
        self._blocked_until: dict[SpaceKind, float] = {DOMAIN: 0.0, LOCAL: 0.0}
        # §8.3: a child denied once for lifetime / size gets the NOTIFICATION next time.
        self._denied_lifetime: dict[tuple[DomainId, Prefix], float] = {}
        self._denied_size: dict[DomainId, float] = {}
        self._started = False
        self._now = 0.0
        self.demand: Demand | None = None  # None: a leaf holds initial_size (module docstring)
        self._restored_non_leaf_until = 0.0
        self._children_trend = Trend(self._horizon)  # §17.1.2, see _children_demand
        self._events: list[EngineEvent] = []
        self._outbox: dict[str, list[Claim]] = {}
        self._children_memo: tuple[object, float, Demand | None] = ((), 0.0, None)
        # child domain -> ((origin version, room generation), valid until, claimed)
        self._child_memo: dict[DomainId, tuple[tuple[int, int], float, int]] = {}
        # Derived-state caches (performance only; see _cache_taken and _Stuck).
        self._room_gen = 0  # bumped by inputs that may free space the cache cannot see
        # kind -> (key, claims' first time out, WITHDRAWs' first expiry, taken)
        self._taken_memo: dict[SpaceKind, tuple[_MemoKey, float, float, dict[Prefix, float]]] = {}
        # Claims cached since the memos were last brought up to date (_claim_cached).
        self._arrived: list[tuple[CacheEntry, CacheEntry | None]] = []
        self._stuck: dict[SpaceKind, _Stuck] = {}
        self._grib_memo: tuple[object, frozenset[Prefix]] = ((), frozenset())
        # (key, computed at, valid until) of the last plan that found nothing (_plan).
        self._plan_memo: tuple[object, float, float] = (None, 0.0, 0.0)
        # parent -> (its origin version, computed at, valid until, found): _managed_by
        self._managed_memo: dict[
            DomainId, tuple[int, float, float, tuple[list[Claim], list[Prefix]]]
        ] = {}

    # --- inputs --------------------------------------------------------------------------

    def start(self, *, now: float) -> list[EngineEvent]:
        """Begin claiming (§12.1: the shell starts sessions to parents first)."""
        self._begin(now)
        self._started = True
        return self._finish()

    def peer_up(self, neighbor: Neighbor, *, now: float) -> list[EngineEvent]:
        """A session reached Established: send it the full relevant state in §11.8 order."""
        self._begin(now)
        self.neighbors[neighbor.key] = neighbor
        self._neighbors_changed()
        claims = [
            e.claim for e in self.cache.live(now) if neighbor in self._audience_of(e, exclude=None)
        ]
        self._outbox.setdefault(neighbor.key, []).extend(sync_order(neighbor.role, claims))
        return self._finish()

    def peer_down(self, key: str, *, now: float) -> list[EngineEvent]:
        """The session is gone.  What it told us stays cached until it expires: MASC state
        is store-and-forward, and the origin is usually not the peer."""
        self._begin(now)
        self.neighbors.pop(key, None)
        self._neighbors_changed()
        self._outbox.pop(key, None)
        return self._finish()

    def _neighbors_changed(self) -> None:
        self._room_gen += 1
        self._child_domains = frozenset(
            n.domain for n in self.neighbors.values() if n.role is Role.CHILD
        )
        self._parents_up = frozenset(
            n.domain for n in self.neighbors.values() if n.role is Role.PARENT
        )

    def update_received(self, key: str, update: Update, *, now: float) -> list[EngineEvent]:
        """§11: process every attribute of an UPDATE from the session ``key``."""
        self._begin(now)
        neighbor = self.neighbors.get(key)
        if neighbor is not None:
            for claim in update.attributes:
                try:
                    self._receive(neighbor, claim)
                except _Refuse as refusal:
                    self._events.append(
                        RejectClaim(
                            neighbor.key,
                            neighbor.generation,
                            UpdateMessageError(
                                refusal.subcode, encode_claim(claim), reason=refusal.reason
                            ),
                        )
                    )
        return self._finish()

    def handle_timer(self, *, now: float) -> list[EngineEvent]:
        """Fire everything due at ``now``: claim delays, Claim-Timers, lifetimes, renewals,
        cache expiry."""
        self._begin(now)
        for scheduled in sorted(self.scheduled, key=lambda s: s.at):
            if scheduled.at <= now and scheduled in self.scheduled:
                self.scheduled.remove(scheduled)
                self._send_claim(scheduled)
        for pending in sorted(self.pending, key=lambda p: p.deadline):
            if pending.deadline <= now and pending in self.pending:
                self.pending.remove(pending)
                self._claim_timer_expired(pending)
        due: list[Allocation] = []
        for alloc in list(self.allocations.values()):
            if alloc.expires <= now:
                self._drop_allocation(alloc, "expired")  # §4.2
            elif self._renewal_due(alloc):
                due.append(alloc)
        if due:
            self._renew_together(due)
        self.cache.purge(now)
        for table in (self._denied_lifetime, self._denied_size):
            for key in [k for k, until in table.items() if until <= now]:
                del table[key]  # type: ignore[arg-type]
        return self._finish()

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` must next be called (Unix time)."""
        now = self._now
        times: list[float] = [s.at for s in self.scheduled]
        times += [p.deadline for p in self.pending]
        for alloc in self.allocations.values():
            times.append(alloc.expires)
            if self._may_renew(alloc):
                times.append(max(self._renew_at(alloc), alloc.renew_retry_at))
        # Only the expiry of attributes that change what we report or plan needs a wake-up
        # (ours, our parents', WITHDRAWs, and the last child's for the leaf mode, §12.2);
        # others' claims are read with ``now`` when needed, and purged at the next timer.
        watched = self.cache.next_watched(now)
        if watched is not None:
            times.append(watched)
        if self.cache.child_expiry > now:
            times.append(self.cache.child_expiry)
        times += self._denied_lifetime.values()
        times += self._denied_size.values()
        for kind, until in self._blocked_until.items():
            stuck = self._stuck_still(kind) if self._stuck else None
            if stuck is None:
                if until > now:
                    times.append(until)
            elif stuck.until > now and stuck.until != float("inf"):
                times.append(max(stuck.until, until))
        return min(times) if times else None

    # --- operator / allocator requests ---------------------------------------------------

    def claim(
        self,
        size: int,
        *,
        now: float,
        lifetime: float | None = None,
        prefix: Prefix | None = None,
        kind: SpaceKind = DOMAIN,
        at: float | None = None,
        check_room: bool = False,
    ) -> list[EngineEvent]:
        """Claim ``size`` addresses (or exactly ``prefix``) after the §5.1 a) random delay,
        or at ``at``.

        ``check_room`` (an operator's request): refuse now, saying why, if no free block
        of ``size`` could be chosen now; otherwise the operator is told "scheduled" and
        only the log says, after the delay, that it could not be sent."""
        if size < 1 and prefix is None:
            raise RequestRefused("size must be at least 1")
        self._begin(now)
        if check_room and prefix is None:
            problem = self._room_problem(kind, size)
            if problem is not None:
                raise RequestRefused(problem)
        self.scheduled.append(
            ScheduledClaim(
                at=self._claim_time() if at is None else at,
                kind=kind,
                size=prefix.num_addresses if prefix is not None else size,
                lifetime=_u32(lifetime if lifetime is not None else self.config.claim_lifetime),
                purpose="new",
                prefix=prefix,
                operator=True,
            )
        )
        return self._finish()

    def renew(self, prefix: Prefix, *, now: float) -> list[EngineEvent]:
        """§5.2: extend the lifetime of an allocated prefix with CLAIM_TO_EXPAND."""
        self._begin(now)
        alloc = self._own(prefix)
        self._refuse_withdrawn(alloc)
        self._schedule_renewal(alloc)
        return self._finish()

    def expand(self, prefix: Prefix, *, now: float) -> list[EngineEvent]:
        """§5.3: claim the prefix twice the size of ``prefix`` that contains it."""
        self._begin(now)
        alloc = self._own(prefix)
        self._refuse_withdrawn(alloc)
        if prefix.prefixlen == 0:
            raise RequestRefused(f"{prefix} cannot be expanded")
        larger = prefix.supernet()
        space = self._claim_space(alloc.kind, alloc.parent)
        if not any(covers(s, larger) for s in space):
            raise RequestRefused(f"{larger} is not inside the space {prefix} was claimed from")
        if any(overlaps(p, larger) for p in self._occupied_around(alloc.kind, alloc.prefix)):
            raise RequestRefused(f"the other half of {larger} is not free")
        self._schedule_expansion(alloc)
        return self._finish()

    def release(self, prefix: Prefix, *, now: float) -> list[EngineEvent]:
        """§5.4: give back an allocated prefix with a WITHDRAW, if nothing inside it is in
        use by our own MAASs (LOCAL space) or by children."""
        self._begin(now)
        alloc = self._own(prefix)
        if alloc.kind is DOMAIN:
            inside = [
                e
                for e in self.cache.of_role(Role.CHILD)
                if e.expires > now
                and e.claim.type in CLAIMS
                and overlaps(e.claim.prefix, prefix)
                and not self._released(e)
            ]
            if inside:
                raise RequestRefused(
                    f"{prefix} has sub-ranges claimed by children or for local use"
                )
        inner = [
            a.prefix
            for a in self.allocations.values()
            if a is not alloc and a.kind is alloc.kind and covers(prefix, a.prefix)
        ]
        if inner:
            # A WITHDRAW of the whole would cut them too (§11.7.3).
            raise RequestRefused(
                f"{prefix} contains {', '.join(map(str, inner))}, still held; "
                f"let {prefix} expire instead"
            )
        # Same timestamp, lifetime and holdtime as our PREFIX_IN_USE: the WITHDRAW is held
        # exactly as long as the prefix would have been.
        withdraw = alloc.announcement(ClaimType.WITHDRAW, self.config.local_domain)
        self._originate(withdraw, parent=alloc.parent)
        self._drop_allocation(alloc, "released")
        return self._finish()

    def reconfigure(self, config: EngineConfig, *, now: float) -> list[EngineEvent]:
        """A reload's new timers, policy, allocator settings and pool, applied without
        touching sessions: claims already sent keep the timers they were sent with (their
        holdtimes are on the wire), everything decided from now on uses the new values.
        The node's identity and parents are not reloadable (they are in every OPEN)."""
        old = self.config
        fixed = ("local_domain", "local_node", "family", "parent_domain_ids")
        changed = [name for name in fixed if getattr(old, name) != getattr(config, name)]
        if changed:
            raise CoreMisuse(f"{', '.join(changed)} cannot change without a restart")
        self._begin(now)
        self.config = config
        self.cache.grace = config.clock_skew_grace
        self._children_trend.window = self._horizon
        self._room_gen += 1
        return self._finish()

    def set_demand(self, demand: Demand | None, *, now: float) -> list[EngineEvent]:
        """The MAASs' demand for the locally-allocated set (§17.1.2: "constantly monitors
        the demand"); None returns a leaf to holding ``initial_size``."""
        self._begin(now)
        self.demand = demand
        return self._finish()

    def restore(
        self,
        allocations: Iterable[Allocation],
        pending: Iterable[PendingClaim],
        *,
        now: float,
    ) -> list[EngineEvent]:
        """§13: state read back from stable storage after a restart, before :meth:`start`.

        Unexpired prefixes are ours again and defended: their announcements go into the
        cache, so every session that comes up hears them (§11.8).  A claim whose Claim-Timer
        was still running goes on with its original timestamp, which keeps its place in any
        collision (§5.1.1); one whose timer ran out while we were down is dropped, because
        we could not hear collisions meanwhile (docs/conformance.md)."""
        self._begin(now)
        for alloc in allocations:
            if alloc.expires <= now:
                continue
            # The renewal cadence restarts with us; half the lifetime still bounds it.
            alloc.renewed_at = max(alloc.allocated_at, now)
            self.allocations[(alloc.kind, alloc.prefix)] = alloc
            self._announce(alloc)
            self._events.append(
                PrefixAllocated(
                    alloc.prefix, alloc.kind, alloc.expires, int(alloc.origin_node), "restored"
                )
            )
        if any(a.kind is LOCAL for a in self.allocations.values()):
            self._restored_non_leaf_until = now + self.config.waiting_period
        for claim in pending:
            if claim.deadline <= now or any(
                p.claim.prefix == claim.claim.prefix and p.kind is claim.kind for p in self.pending
            ):
                continue
            if claim.extends is not None and (claim.kind, claim.extends) not in self.allocations:
                continue  # it extended a prefix that expired while we were down
            self.pending.append(claim)
            self._originate(claim.claim, parent=claim.parent)
        return self._finish()

    def resolve_clash(self, clash_id: int, *, withdraw: bool, now: float) -> list[EngineEvent]:
        """Manual clash mode (§12.4): the operator withdraws our range, or accepts keeping it."""
        self._begin(now)
        clash = self.clashes.get(clash_id)
        if clash is None or clash.state != "pending":
            raise RequestRefused(f"no pending clash {clash_id}")
        alloc = self.allocations.get((clash.kind, clash.local))
        if withdraw and alloc is not None:
            self._withdraw_for_clash(alloc, clash.winner)
            clash.state = "withdrawn"
        else:
            clash.state = "accepted"
        return self._finish()

    # --- views ---------------------------------------------------------------------------

    def managed_space(self, *, now: float | None = None) -> list[Prefix]:
        """§4.1 the managed set: DOMAIN allocations minus withdrawn ranges."""
        return self._usable(DOMAIN, self._now if now is None else now)

    def local_space(self, *, now: float | None = None) -> list[Prefix]:
        """§4.1 the locally-allocated set, what the domain's MAASs may use (§12.2)."""
        when = self._now if now is None else now
        return self._usable(LOCAL if self.non_leaf else DOMAIN, when)

    def usable(self, alloc: Allocation, *, now: float | None = None) -> list[Prefix]:
        """What of ``alloc`` may be used: the prefix minus withdrawn ranges (§11.7.3)."""
        return self._usable_of(alloc, self._now if now is None else now)

    def usable_all(
        self, *, now: float | None = None
    ) -> dict[tuple[SpaceKind, Prefix], list[Prefix]]:
        """:meth:`usable` of every allocation, with the withdrawn ranges gathered once per
        kind (one cache scan, not one per allocation: operators list thousands)."""
        when = self._now if now is None else now
        withdrawn = {kind: self._withdrawn_ranges(kind, when) for kind in (DOMAIN, LOCAL)}
        return {
            key: subtract([alloc.prefix], withdrawn[alloc.kind])
            if withdrawn[alloc.kind]
            else [alloc.prefix]
            for key, alloc in self.allocations.items()
        }

    def child_prefixes(self, *, now: float | None = None) -> list[Claim]:
        """The prefixes child domains hold: live PREFIX_IN_USE from the child role of other
        domains (§11.1 cache), one per (domain, prefix) however many nodes announced it."""
        when = self._now if now is None else now
        found: dict[tuple[DomainId, Prefix], Claim] = {}
        for entry in self.cache.of_type(ClaimType.PREFIX_IN_USE):
            c = entry.claim
            if (
                entry.expires > when
                and c.origin_role is Role.CHILD
                and c.origin_domain != self.config.local_domain
            ):
                found.setdefault((c.origin_domain, c.prefix), c)
        return list(found.values())

    def local_pieces(self, *, now: float | None = None) -> list[LocalPiece]:
        """The locally-allocated set, per allocation, with its end of lifetime: what the
        shell splits between the MAASs.  A deprecated prefix and its renewed half (§17.1.5)
        both appear: a grant inside the half stays active, one across the whole is
        deprecated, never cut short."""
        when = self._now if now is None else now
        kind = LOCAL if self.non_leaf else DOMAIN
        cuts = self._withdrawn_ranges(kind, when)
        pieces = [
            LocalPiece(piece, alloc.expires, alloc.renewing)
            for alloc in self.allocations.values()
            if alloc.kind is kind and alloc.expires > when
            for piece in (subtract([alloc.prefix], cuts) if cuts else [alloc.prefix])
        ]
        return sorted(pieces, key=lambda p: (int(p.prefix.network_address), p.prefix.prefixlen))

    def parent_space(self, parent: DomainId, *, now: float | None = None) -> list[Prefix]:
        """The space a parent manages, as we know it (global pool for TLD_ID)."""
        return self._parent_space(parent, self._now if now is None else now)

    # --- the input envelope --------------------------------------------------------------

    def _begin(self, now: float) -> None:
        self._now = now
        self._events = []
        self._outbox = {}

    def _finish(self) -> list[EngineEvent]:
        now = self._now
        self._update_leaf_mode()
        if self._started:
            self._plan()
        self._flush_outbox()
        withdrawn = frozenset(
            self._withdrawn_ranges(DOMAIN, now) + self._withdrawn_ranges(LOCAL, now)
        )
        if withdrawn != self._withdrawn:
            for prefix in sorted(withdrawn - self._withdrawn, key=str):
                self._events.append(RangeWithdrawn(prefix, restored=False))
            for prefix in sorted(self._withdrawn - withdrawn, key=str):
                self._events.append(RangeWithdrawn(prefix, restored=True))
            self._withdrawn = withdrawn
        local = (
            self.non_leaf,
            withdrawn,
            tuple((k, a.expires, a.renewing) for k, a in self.allocations.items()),
        )
        if local != self._local_signature:
            self._local_signature = local
            self.local_version += 1
        grib = self._grib_set(now)
        if grib is not self.grib:
            for prefix in sorted(self.grib - grib, key=str):
                self._events.append(GribRemove(prefix))
            for prefix in sorted(grib - self.grib, key=str):
                self._events.append(GribInject(prefix))
            self.grib = grib
        events, self._events = self._events, []
        return events

    def _flush_outbox(self) -> None:
        """Turn the claims queued per session into UPDATEs."""
        if not self._outbox:
            return
        outbox, self._outbox = self._outbox, {}
        # A relay queues the same claims for many sessions (a parent's to all its
        # children): pack each distinct list once.
        packed: dict[tuple[int, ...], list[Update]] = {}
        for key, claims in outbox.items():
            neighbor = self.neighbors.get(key)
            if neighbor is not None and claims:
                ids = tuple(map(id, claims))
                updates = packed.get(ids)
                if updates is None:
                    updates = packed[ids] = list(_pack(claims))
                for update in updates:
                    self._events.append(SendUpdate(key, neighbor.generation, update))

    # --- receiving (§11) -----------------------------------------------------------------

    def _receive(self, nb: Neighbor, claim: Claim) -> None:
        cfg, now = self.config, self._now
        if claim.family is not cfg.family:
            # The session's family was agreed in the OPEN (§7.2); a claim of another family
            # is not ours to judge and is dropped (docs/conformance.md).
            self._events.append(
                PolicyNotice("family_mismatch", f"ignored {claim.family.name} {claim.prefix}")
            )
            return
        local_role = nb.role.counterpart  # what we are to the forwarder (Table 1 column)
        role = updated_origin_role(
            claim.origin_role,
            local_role,
            claim.type,
            origin_domain=claim.origin_domain,
            local_domain=cfg.local_domain,
            remote_domain=nb.domain,
            child_domains=self._child_domains,
        )
        if role is None:
            raise _Refuse(
                Sub.ILLEGAL_ORIGIN_ROLE,
                f"origin role {claim.origin_role.name} from a {nb.role.name} (§11.1 Table 1)",
            )
        if (
            role is Role.INTERNAL
            and claim.origin_domain != cfg.local_domain
            and claim.type is not ClaimType.CLAIM_DENIED
        ):
            raise _Refuse(Sub.ILLEGAL_ORIGIN_ROLE, "INTERNAL origin from another domain (§11.1)")
        # §11.1: an expired claim is silently dropped.
        if claim.timestamp + claim.holdtime <= now:
            return
        stored = relabelled(claim, role)
        if stored in self.cache:
            # §11.1 duplicate, dropped before the §8.3 checks: a copy arriving later over
            # another path must not earn its sender a NOTIFICATION the first copy did not.
            return
        if self.cache.stale(stored):
            # So is an older copy of what a renewal replaced (choice 103): taken afresh it
            # could collide with the renewal, or be refused where the renewal was not.
            return
        if self._third_party_refused(nb, claim, role):
            # §14: legal per Table 1, so no NOTIFICATION; just not believed.
            self._events.append(
                PolicyNotice(
                    "third_party_ignored",
                    f"ignored {claim.type.name} {claim.prefix} of domain {claim.origin_domain} "
                    f"node {claim.origin_node} relayed by {nb.role.name.lower()} {nb.domain} "
                    "(§14: accepted only via the common parent)",
                )
            )
            return
        self._check_sanity(claim)
        handler = _HANDLERS[claim.type]
        try:
            entry = handler(self, nb, stored)
        except _Refuse as refusal:
            if (
                refusal.subcode is Sub.NO_APPROPRIATE_INTERNAL_PREFIX
                and claim.origin_domain == cfg.local_domain
                and nb.role not in cfg.policy.restore_from
            ):
                # §14: we drop our own UPDATEs from relations we do not trust
                # (Policy.restore_from), so we may not know the prefix this one is about;
                # that is no fault of the sibling or child that relayed it.
                self._events.append(
                    PolicyNotice(
                        "restore_ignored",
                        f"ignored our own {claim.type.name} {claim.prefix} from a "
                        f"{nb.role.name} (§14)",
                    )
                )
                return
            raise
        if entry is None:
            return
        if self.cache.add(entry):
            self._propagate(entry, exclude=nb.key)

    def _third_party_refused(self, nb: Neighbor, claim: Claim, role: Role) -> bool:
        """§14: "a third-party UPDATE (e.g. by a non-directly connected sibling) is accepted
        only if it is sent via the common parent domain, and the MASC nodes in the parent
        domain accept children UPDATEs only if they come via an internal peer, or come
        directly from a child node that is same as the Origin Node ID" (see ThirdParty)."""
        mode = self.config.policy.third_party
        if (
            mode is ThirdParty.ACCEPT
            or claim.origin_domain == self.config.local_domain  # ours: restore_from decides
            or role is not nb.role
            or claim.type in (ClaimType.CLAIM_DENIED, ClaimType.PREFIX_MANAGED)
        ):
            # Only a sibling's claims from a sibling session, and a child's from a child
            # session, can be third-party; parents and internal peers relay by design.  A
            # sibling's or child's CLAIM_DENIED / PREFIX_MANAGED is illegal whoever relays
            # it, and gets its NOTIFICATION from the handler (§11.3.1, §11.6.2).
            return False
        if role is Role.SIBLING:
            common_parent = nb.session_parent
            return (
                common_parent is not None
                and common_parent != TLD_ID
                and claim.origin_domain != nb.domain
            )
        if role is Role.CHILD:
            if claim.origin_domain != nb.domain:
                return True
            return mode is ThirdParty.STRICT and claim.origin_node != nb.node
        return False

    def _check_sanity(self, claim: Claim) -> None:
        """§8.3 timestamp and holdtime checks (local policy in :class:`Policy`)."""
        policy, now = self.config.policy, self._now
        if claim.timestamp > now + policy.timestamp_tolerance:
            raise _Refuse(Sub.CLAIM_TIMESTAMP_TOO_NEW, f"timestamp {claim.timestamp} is ahead")
        if claim.type in (ClaimType.NEW_CLAIM, ClaimType.CLAIM_TO_EXPAND) and (
            claim.timestamp < now - self.config.waiting_period - policy.timestamp_tolerance
        ):
            raise _Refuse(Sub.CLAIM_TIMESTAMP_TOO_OLD, f"claim from {claim.timestamp}")
        if claim.holdtime > policy.max_claim_holdtime:
            raise _Refuse(Sub.CLAIM_HOLDTIME_TOO_LONG, f"holdtime {claim.holdtime}")
        if claim.holdtime < policy.min_claim_holdtime:
            raise _Refuse(Sub.CLAIM_HOLDTIME_TOO_SHORT, f"holdtime {claim.holdtime}")

    # PREFIX_IN_USE, §11.2
    def _on_prefix_in_use(self, nb: Neighbor, claim: Claim) -> CacheEntry | None:
        role, local = claim.origin_role, self.config.local_domain
        if role is Role.PARENT:
            raise _Refuse(Sub.ILLEGAL_ORIGIN_ROLE, "PREFIX_IN_USE by a parent (§11.2.1)")
        if role is Role.SIBLING:  # §11.2.2
            parent = self._require_parent(claim)
            self._collide(claim, DOMAIN)
            self._check_clash(claim, DOMAIN)
            return CacheEntry(claim, nb.key, parent)
        if role is Role.CHILD:  # §11.2.3
            if claim.origin_domain == local:
                # Our own space for local use, told by an internal peer (§12.2).
                if not self._restorable(nb, claim):
                    return None
                self._adopt(claim, LOCAL)
                return CacheEntry(claim, nb.key, local)
            if not any(covers(a, claim.prefix) for a in self._held_prefixes(DOMAIN)):
                raise _Refuse(Sub.NO_APPROPRIATE_PARENT_PREFIX, "not inside our managed space")
            self._collide(claim, LOCAL)
            self._check_clash(claim, LOCAL)
            return CacheEntry(claim, nb.key, local)
        # INTERNAL, §11.2.4: processed as PREFIX_MANAGED.
        return self._internal_managed(nb, claim)

    # CLAIM_DENIED, §11.3
    def _on_claim_denied(self, nb: Neighbor, claim: Claim) -> CacheEntry | None:
        role, local = claim.origin_role, self.config.local_domain
        if role in (Role.CHILD, Role.SIBLING):
            raise _Refuse(Sub.ILLEGAL_ORIGIN_ROLE, f"CLAIM_DENIED by a {role.name} (§11.3.1)")
        if role is Role.INTERNAL:  # §11.3.2
            self._mark_denied(claim, Role.CHILD)
            return CacheEntry(claim, nb.key, local)
        # PARENT, §11.3.3
        parent = self._associate(claim.prefix)
        if claim.origin_domain != local:
            if parent is None:
                raise _Refuse(Sub.NO_APPROPRIATE_PARENT_PREFIX, "denial outside any parent space")
            self._mark_denied(claim, Role.SIBLING)
            return CacheEntry(claim, nb.key, parent)
        match = [
            p
            for p in self.pending
            if p.kind is DOMAIN
            and p.claim.timestamp == claim.timestamp
            and p.claim.prefix == claim.prefix
        ]
        if not match:
            raise _Refuse(Sub.NO_APPROPRIATE_INTERNAL_PREFIX, "no pending claim of ours matches")
        for pending in match:
            self.pending.remove(pending)
            self._events.append(
                ClaimCancelled(claim.prefix, DOMAIN, "denied by the parent", winner=claim)
            )
            self._retry_after_denial(pending, claim)
        return CacheEntry(claim, nb.key, parent if parent is not None else match[0].parent)

    # CLAIM_TO_EXPAND §11.4 and NEW_CLAIM §11.5
    def _on_claim(self, nb: Neighbor, claim: Claim) -> CacheEntry | None:
        role, local = claim.origin_role, self.config.local_domain
        expand = claim.type is ClaimType.CLAIM_TO_EXPAND
        if role is Role.PARENT:
            raise _Refuse(Sub.ILLEGAL_ORIGIN_ROLE, f"{claim.type.name} by a parent (§11.4.1)")
        if is_hint(claim):
            # §11.5: a hint stays among the child's domain and its parent's; a parent here
            # records it (the Appendix A allocator may act on it), others drop it (§11.8.1).
            if role in (Role.CHILD, Role.INTERNAL):
                return CacheEntry(claim, nb.key, None)
            return None
        if role is Role.SIBLING:  # §11.4.2
            parent = self._require_parent(claim)
            if expand and not self._in_use_by(claim.origin_domain, claim.prefix):
                raise _Refuse(Sub.NO_APPROPRIATE_SIBLING_PREFIX, "expands nothing the sibling uses")
            self._collide(claim, DOMAIN)
            return CacheEntry(claim, nb.key, parent)
        if role is Role.CHILD:  # §11.4.3
            if not any(covers(a, claim.prefix) for a in self._held_prefixes(DOMAIN)):
                raise _Refuse(Sub.NO_APPROPRIATE_PARENT_PREFIX, "not inside our managed space")
            if expand and not self._in_use_by(claim.origin_domain, claim.prefix):
                raise _Refuse(Sub.NO_APPROPRIATE_CHILD_PREFIX, "expands nothing the child uses")
            self._collide(claim, LOCAL)
            entry = CacheEntry(claim, nb.key, local)
            if claim.origin_domain != local:
                entry.denied = self._apply_child_policy(claim)
            return entry
        # INTERNAL, §11.4.4 / §11.5
        parent = self._require_parent(claim)
        if expand and not any(overlaps(a, claim.prefix) for a in self._held_prefixes(DOMAIN)):
            raise _Refuse(Sub.NO_APPROPRIATE_INTERNAL_PREFIX, "expands nothing our domain uses")
        self._collide(claim, DOMAIN)
        if claim.origin_node == self.config.local_node:
            self._restore_pending(claim, parent)
        elif not expand:
            # §5.1 a): another node of ours is claiming; our own scheduled claim for new
            # space is unnecessary.
            self._cancel_scheduled(DOMAIN, "an internal peer is claiming")
        return CacheEntry(claim, nb.key, parent)

    # PREFIX_MANAGED, §11.6
    def _on_prefix_managed(self, nb: Neighbor, claim: Claim) -> CacheEntry | None:
        role = claim.origin_role
        if role in (Role.CHILD, Role.SIBLING):
            raise _Refuse(Sub.ILLEGAL_ORIGIN_ROLE, f"PREFIX_MANAGED by a {role.name} (§11.6.2)")
        if role is Role.PARENT:  # §11.6.1
            if claim.origin_domain not in self.config.parent_domain_ids:
                raise _Refuse(
                    Sub.NO_APPROPRIATE_PARENT_PREFIX,
                    f"domain {claim.origin_domain} is not one of our parents",
                )
            return CacheEntry(claim, nb.key, claim.origin_domain)
        return self._internal_managed(nb, claim)  # §11.6.3

    # WITHDRAW, §11.7
    def _on_withdraw(self, nb: Neighbor, claim: Claim) -> CacheEntry | None:
        role, local = claim.origin_role, self.config.local_domain
        if role is Role.CHILD:  # §11.7.1
            if not self._withdraw_matches(claim, Role.CHILD):
                raise _Refuse(Sub.NO_APPROPRIATE_CHILD_PREFIX, "withdraws nothing the child holds")
            if claim.origin_domain == local:
                self._drop_released(claim)  # our own LOCAL space, released by another node
            return CacheEntry(claim, nb.key, local)
        if role is Role.SIBLING:  # §11.7.2
            if not self._withdraw_matches(claim, Role.SIBLING):
                raise _Refuse(
                    Sub.NO_APPROPRIATE_SIBLING_PREFIX, "withdraws nothing the sibling holds"
                )
            return CacheEntry(claim, nb.key, self._associate(claim.prefix))
        if role is Role.INTERNAL:  # §11.7.3
            ours = any(overlaps(a, claim.prefix) for a in self._held_prefixes(DOMAIN))
            if not ours and not self._withdraw_matches(claim, Role.INTERNAL):
                raise _Refuse(Sub.NO_APPROPRIATE_INTERNAL_PREFIX, "withdraws nothing we hold")
            self._cancel_matching_pending(claim)
            alloc = next(
                (a for a in self.allocations.values() if overlaps(a.prefix, claim.prefix)), None
            )
            entry = CacheEntry(
                claim, nb.key, alloc.parent if alloc else self._associate(claim.prefix)
            )
            self._drop_released(claim)
            return entry
        # PARENT, §11.7.4
        parent = self._associate(claim.prefix, parent_origin=claim.origin_domain)
        if parent is None:
            raise _Refuse(Sub.NO_APPROPRIATE_PARENT_PREFIX, "withdraw outside any parent space")
        entry = CacheEntry(claim, nb.key, parent)
        if self.cache.add(entry):
            self._propagate(entry, exclude=nb.key)
        for alloc in list(self.allocations.values()):
            if alloc.kind is DOMAIN and overlaps(alloc.prefix, claim.prefix):
                cut = alloc.prefix if covers(claim.prefix, alloc.prefix) else claim.prefix
                self._originate(
                    Claim(
                        type=ClaimType.WITHDRAW,
                        origin_role=Role.INTERNAL,
                        timestamp=claim.timestamp,
                        lifetime=claim.lifetime,
                        holdtime=max(claim.holdtime, claim.lifetime),
                        origin_domain=local,
                        origin_node=alloc.origin_node,
                        prefix=cut,
                    ),
                    parent=alloc.parent,
                )
        # A claim of ours still waiting inside the withdrawn range can no longer become
        # ours: the parent does not manage that space any more (§11.7.4; §11.4.3 would
        # refuse it).  Stop its Claim-Timer and let _plan choose elsewhere (§5.1 c).
        for pending in [
            p
            for p in self.pending
            if p.kind is DOMAIN and p.parent == parent and overlaps(p.claim.prefix, claim.prefix)
        ]:
            self.pending.remove(pending)
            self._events.append(
                ClaimCancelled(pending.claim.prefix, DOMAIN, "the parent withdrew the space")
            )
            self._blocked_until[DOMAIN] = 0.0
        return None  # already cached and propagated

    # --- §11 helpers ---------------------------------------------------------------------

    def _drop_released(self, withdraw: Claim) -> None:
        """§5.4: another node of our domain released a prefix.  Its WITHDRAW repeats the
        PREFIX_IN_USE's prefix, timestamp and lifetime (a clash WITHDRAW carries the
        winner's); the prefix is then no longer the domain's, here either."""
        kind = DOMAIN if withdraw.origin_role is Role.INTERNAL else LOCAL
        alloc = self.allocations.get((kind, withdraw.prefix))
        if alloc is not None and (alloc.timestamp, alloc.lifetime) == (
            withdraw.timestamp,
            withdraw.lifetime,
        ):
            self._drop_allocation(alloc, "released")

    def _require_parent(self, claim: Claim) -> DomainId:
        parent = self._associate(claim.prefix)
        if parent is None:
            raise _Refuse(
                Sub.NO_APPROPRIATE_PARENT_PREFIX, "no parent's PREFIX_MANAGED covers it (§11)"
            )
        return parent

    def _associate(self, prefix: Prefix, parent_origin: DomainId | None = None) -> DomainId | None:
        """§11: the parent domain whose PREFIX_MANAGED covers ``prefix``."""
        for parent in self.config.parent_domain_ids:
            if parent_origin is not None and parent != parent_origin:
                continue
            if any(covers(space, prefix) for space in self._managed_prefixes(parent)):
                return parent
        return None

    def _parent_managed(self, parent: DomainId) -> list[Claim]:
        """The live PREFIX_MANAGED of a parent domain (§11.6.1); the caller must not
        change the list."""
        return self._managed_by(parent)[0]

    def _managed_by(self, parent: DomainId) -> tuple[list[Claim], list[Prefix]]:
        """:meth:`_parent_managed` and their prefixes, memoized until the parent's cached
        entries change or the first of these expires: every sibling's claim is associated
        with them (§11.2.2, §11.4.2) and every plan asks whether the parent has space."""
        now = self._now
        version = self.cache.origin_versions.get(parent, 0)
        memo = self._managed_memo.get(parent)
        if memo is not None and memo[0] == version and memo[1] <= now < memo[2]:
            return memo[3]
        live = [
            e
            for e in self.cache.of_origin(ClaimType.PREFIX_MANAGED, parent)
            if e.expires > now and e.claim.origin_role is Role.PARENT
        ]
        until = min((e.expires for e in live), default=math.inf)
        found = ([e.claim for e in live], [e.claim.prefix for e in live])
        self._managed_memo[parent] = (version, now, until, found)
        return found

    def _managed_prefixes(self, parent: DomainId) -> Sequence[Prefix]:
        """The parent's managed prefixes (the global pool for a TLD); not to be changed."""
        if parent == TLD_ID:
            return self.config.global_pool
        return self._managed_by(parent)[1]

    def _parent_prefixes(self, parent: DomainId) -> list[Prefix]:
        """:meth:`_managed_prefixes` as a new list."""
        return list(self._managed_prefixes(parent))

    def _parent_space(self, parent: DomainId, now: float) -> list[Prefix]:
        """A parent's managed space minus what it withdrew (§11.6.1, §11.7.4), one piece
        list per PREFIX_MANAGED (see :func:`_pieces`)."""
        withdrawn = [
            e.claim.prefix
            for e in self.cache.of_origin(ClaimType.WITHDRAW, parent)
            if e.expires > now and e.claim.origin_role is Role.PARENT
        ]
        return _pieces(self._parent_prefixes(parent), withdrawn)

    def _held_prefixes(self, kind: SpaceKind) -> list[Prefix]:
        return [a.prefix for a in self.allocations.values() if a.kind is kind]

    def _live_prefixes(self, kind: SpaceKind, now: float) -> list[Prefix]:
        """Our prefixes of ``kind`` not expired at ``now`` (withdrawn ranges included)."""
        return [a.prefix for a in self.allocations.values() if a.kind is kind and a.expires > now]

    def _in_use_by(self, domain: DomainId, prefix: Prefix) -> bool:
        """§11.4.2-§11.4.3: an overlapping PREFIX_IN_USE by the claim's own domain."""
        now = self._now
        return any(
            e.expires > now and overlaps(e.claim.prefix, prefix)
            for e in self.cache.of_origin(ClaimType.PREFIX_IN_USE, domain)
        )

    def _withdraw_matches(self, claim: Claim, role: Role) -> bool:
        """§11.7.1-§11.7.3: a PREFIX_IN_USE of the origin domain covers the WITHDRAW's range,
        or a NEW_CLAIM / CLAIM_TO_EXPAND of it has the same Address, Mask and Timestamp
        (docs/conformance.md reads the RFC's "or" as either being enough)."""
        now, domain = self._now, claim.origin_domain
        for e in self.cache.of_origin(ClaimType.PREFIX_IN_USE, domain):
            if e.expires > now and covers(e.claim.prefix, claim.prefix):
                return True
        for t in (ClaimType.NEW_CLAIM, ClaimType.CLAIM_TO_EXPAND):
            for e in self.cache.of_origin(t, domain):
                c = e.claim
                if e.expires > now and c.prefix == claim.prefix and c.timestamp == claim.timestamp:
                    return True
        if role is Role.INTERNAL:
            return any(
                p.claim.prefix == claim.prefix and p.claim.timestamp == claim.timestamp
                for p in self.pending
            )
        return False

    def _internal_managed(self, nb: Neighbor, claim: Claim) -> CacheEntry | None:
        """§11.6.3 (and §11.2.4): our domain holds this prefix; another node claimed it."""
        if not self._restorable(nb, claim):
            return None
        parent = self._associate(claim.prefix)
        self._adopt(claim, DOMAIN, parent)
        self._reapply_parent_withdraws(nb, claim.prefix)
        return CacheEntry(claim, nb.key, parent)

    def _reapply_parent_withdraws(self, nb: Neighbor, prefix: Prefix) -> None:
        """§14 with §11.7.4: after a restart a parent's WITHDRAW arrives before our own
        PREFIX_IN_USE (§11.8.1 order), when we hold nothing to withdraw yet.  Once the
        prefix is re-learned, withdraw its part in the parent's withdrawn space."""
        now = self._now
        for entry in list(self.cache.of_type(ClaimType.WITHDRAW)):
            w = entry.claim
            if (
                entry.expires > now
                and w.origin_role is Role.PARENT
                and overlaps(w.prefix, prefix)
                and self._associate(w.prefix, parent_origin=w.origin_domain) is not None
            ):
                self._on_withdraw(nb, w)  # cached already: only the §11.7.4 WITHDRAWs

    def _restorable(self, nb: Neighbor, claim: Claim) -> bool:
        """§14: after a reboot our own UPDATEs come back; adopt unknown ones only from the
        relations we trust (``Policy.restore_from``)."""
        kind = LOCAL if claim.origin_role is Role.CHILD else DOMAIN
        if (kind, claim.prefix) in self.allocations or nb.role in self.config.policy.restore_from:
            return True
        self._events.append(
            PolicyNotice(
                "restore_ignored",
                f"ignored our own {claim.type.name} {claim.prefix} from a {nb.role.name} (§14)",
            )
        )
        return False

    def _adopt(self, claim: Claim, kind: SpaceKind, parent: DomainId | None = None) -> None:
        """Record a prefix of our domain learned from a peer (§11.6.3, §14)."""
        if claim.timestamp + claim.lifetime <= self._now:
            return
        key = (kind, claim.prefix)
        alloc = self.allocations.get(key)
        if alloc is None and any(
            a.kind is kind and covers(a.prefix, claim.prefix) and a.timestamp >= claim.timestamp
            for a in self.allocations.values()
        ):
            return  # an older announcement of a prefix since expanded (§5.3)
        if alloc is None:
            alloc = Allocation(
                prefix=claim.prefix,
                kind=kind,
                parent=parent if kind is DOMAIN else self.config.local_domain,
                timestamp=claim.timestamp,
                lifetime=claim.lifetime,
                origin_node=claim.origin_node,
                allocated_at=self._now,
            )
            self.allocations[key] = alloc
            # An expansion by another of our nodes (§5.3) replaces the prefix it doubled.
            for older in [
                a
                for a in self.allocations.values()
                if a.kind is kind and a is not alloc and covers(claim.prefix, a.prefix)
            ]:
                self._drop_allocation(older, "replaced")
            self._events.append(
                PrefixAllocated(
                    claim.prefix, kind, alloc.expires, int(alloc.origin_node), "learned"
                )
            )
            if kind is DOMAIN and claim.type is ClaimType.PREFIX_MANAGED:
                # §14: re-learned from a PREFIX_MANAGED that a child or internal peer kept;
                # our parent and siblings may have lost our PREFIX_IN_USE with a restart of
                # their own, and would claim the prefix as free.  Say it again.
                self._originate(
                    alloc.announcement(ClaimType.PREFIX_IN_USE, self.config.local_domain),
                    parent=parent,
                )
            # A pending claim of ours for the same prefix was won by another of our nodes.
            for pending in [p for p in self.pending if p.claim.prefix == claim.prefix]:
                if pending.purpose == "new":
                    self.pending.remove(pending)
        elif claim.timestamp + claim.lifetime > alloc.expires:
            # A renewal by another of our nodes (§5.2): take its timestamp and lifetime.
            alloc.timestamp, alloc.lifetime = claim.timestamp, claim.lifetime
        if alloc.parent is None and parent is not None:
            alloc.parent = parent

    def _collide(self, claim: Claim, kind: SpaceKind) -> None:
        """§5.1 c): a received claim overlapping our pending claims; the loser stops."""
        if claim.type not in COMPARABLE:
            return
        local = self.config.local_domain
        for pending in list(self.pending):
            mine = pending.claim
            if pending.kind is not kind or not overlaps(mine.prefix, claim.prefix):
                continue
            if (
                claim.origin_domain == local
                and claim.type is ClaimType.PREFIX_IN_USE
                and pending.extends is not None
                and (covers(mine.prefix, claim.prefix) or claim.prefix == pending.extends)
            ):
                continue  # our own prefix that this renewal / expansion / shrink extends
            if (claim.origin_node, claim.timestamp) == (mine.origin_node, mine.timestamp):
                continue  # our own claim coming back
            if wins(claim, mine):
                self.pending.remove(pending)
                self._events.append(
                    ClaimCancelled(mine.prefix, kind, "lost a collision (§5.1.1)", winner=claim)
                )
                if claim.origin_domain != local and pending.purpose == "new":
                    # §5.1 c): pick another prefix; _plan schedules the new claim.
                    self._blocked_until[kind] = 0.0

    def _check_clash(self, claim: Claim, kind: SpaceKind) -> None:
        """§12.4: a PREFIX_IN_USE of another domain over one of our prefixes."""
        local = self.config.local_domain
        if claim.origin_domain == local:
            return
        for alloc in list(self.allocations.values()):
            if alloc.kind is not kind or not overlaps(alloc.prefix, claim.prefix):
                continue
            if not wins(
                claim, alloc.announcement(ClaimType.PREFIX_IN_USE, local)
            ) and not self._yielded_to(claim):
                continue  # we win: nothing to do, the other side withdraws
            manual = self.config.policy.clash_resolution is ClashResolution.MANUAL
            if any(c.local == alloc.prefix and c.winner == claim for c in self.clashes.values()):
                continue
            clash = Clash(next(self._clash_ids), alloc.prefix, kind, claim, self._now)
            self.clashes[clash.clash_id] = clash
            self._events.append(ClashDetected(clash.clash_id, alloc.prefix, claim, manual))
            if not manual:
                self._withdraw_for_clash(alloc, claim)
                clash.state = "withdrawn"

    def _yielded_to(self, claim: Claim) -> bool:
        """We already withdrew part of ``claim``'s range after losing a clash to its domain
        (a live WITHDRAW of ours matching a live PREFIX_IN_USE of that domain, §12.4).

        The winner's renewal announces a later timestamp (see _claim_timer_expired), which
        would now lose to our older one; by then we have stopped using the range, and
        comparing afresh would let us take it back when our WITHDRAW times out while the
        winner still holds it.  So we keep yielding: the renewed PREFIX_IN_USE gets a new
        WITHDRAW, held as long as it is."""
        now, local = self._now, self.config.local_domain
        ours = {
            (e.claim.timestamp, e.claim.prefix)
            for e in self.cache.of_origin(ClaimType.WITHDRAW, local)
            if e.expires > now and overlaps(e.claim.prefix, claim.prefix)
        }
        return bool(ours) and any(
            e.expires > now and (e.claim.timestamp, e.claim.prefix) in ours
            for e in self.cache.of_origin(ClaimType.PREFIX_IN_USE, claim.origin_domain)
        )

    def _withdraw_for_clash(self, alloc: Allocation, winner: Claim) -> None:
        """§12.4: WITHDRAW with Role INTERNAL, our origin ids, and the winner's timestamp,
        lifetime, holdtime, address and mask; then processed as §11.7 says."""
        withdraw = Claim(
            type=ClaimType.WITHDRAW,
            origin_role=Role.INTERNAL if alloc.kind is DOMAIN else Role.CHILD,
            timestamp=winner.timestamp,
            lifetime=winner.lifetime,
            holdtime=winner.holdtime,
            origin_domain=self.config.local_domain,
            origin_node=alloc.origin_node,
            prefix=winner.prefix,
        )
        self._originate(withdraw, parent=alloc.parent, clash=True)
        for pending in [p for p in self.pending if p.extends == alloc.prefix]:
            if covers(winner.prefix, alloc.prefix):
                self.pending.remove(pending)

    def _mark_denied(self, denial: Claim, role: Role) -> None:
        now = self._now
        for t in (ClaimType.NEW_CLAIM, ClaimType.CLAIM_TO_EXPAND):
            for entry in self.cache.of_origin(t, denial.origin_domain):
                c = entry.claim
                if (
                    entry.expires > now
                    and c.origin_role is role
                    and c.timestamp == denial.timestamp
                    and c.prefix == denial.prefix
                ):
                    entry.denied = True
                    self._room_gen += 1  # a denied claim holds no space (_occupied)

    def _cancel_matching_pending(self, withdraw: Claim) -> None:
        for pending in list(self.pending):
            if (pending.claim.prefix, pending.claim.timestamp) == (
                withdraw.prefix,
                withdraw.timestamp,
            ):
                self.pending.remove(pending)
                self._events.append(
                    ClaimCancelled(
                        pending.claim.prefix, pending.kind, "withdrawn by an internal peer"
                    )
                )

    def _restore_pending(self, claim: Claim, parent: DomainId) -> None:
        """§14: our own claim, replayed to us after a restart; its Claim-Timer runs on."""
        if any(
            p.claim.timestamp == claim.timestamp and p.claim.prefix == claim.prefix
            for p in self.pending
        ):
            return
        expand = claim.type is ClaimType.CLAIM_TO_EXPAND
        extends = None
        if expand:
            held = [a for a in self._held_prefixes(DOMAIN) if covers(claim.prefix, a)]
            extends = held[0] if held else None
        self.pending.append(
            PendingClaim(
                claim=replace(claim, origin_role=Role.INTERNAL),
                kind=DOMAIN,
                parent=parent,
                purpose=("renew" if extends == claim.prefix else "expand") if expand else "new",
                deadline=claim.timestamp + self.config.waiting_period,
                extends=extends,
            )
        )

    def _apply_child_policy(self, claim: Claim) -> bool:
        """§8.3, §11.4.3, App. B: a parent's checks on a child's claim.  Returns True when
        the claim is answered with CLAIM_DENIED (to the child's nodes) instead of being
        passed to the children; raises for the NOTIFICATION cases."""
        policy, now = self.config.policy, self._now
        size = claim.prefix.num_addresses
        if size < policy.min_child_prefix_size:
            raise _Refuse(Sub.CLAIM_PREFIX_SIZE_TOO_SMALL, f"{size} addresses")
        if claim.lifetime < policy.min_child_lifetime:
            raise _Refuse(Sub.CLAIM_LIFETIME_TOO_SHORT, f"lifetime {claim.lifetime}")
        covering = [
            a
            for a in self.allocations.values()
            if a.kind is DOMAIN and covers(a.prefix, claim.prefix)
        ]
        managed_end = max((a.expires for a in covering), default=0)
        allowed = int(min(policy.max_child_lifetime, managed_end - claim.timestamp))
        if claim.lifetime > allowed:
            key = (claim.origin_domain, claim.prefix)
            if key in self._denied_lifetime:
                raise _Refuse(Sub.CLAIM_LIFETIME_TOO_LONG, f"lifetime {claim.lifetime} > {allowed}")
            self._denied_lifetime[key] = now + self.config.waiting_period
            self._deny(claim, max(allowed, 0), "lifetime")
            return True
        if policy.max_child_prefix_size is not None and size > policy.max_child_prefix_size:
            if claim.origin_domain in self._denied_size:
                raise _Refuse(Sub.CLAIM_PREFIX_SIZE_TOO_LARGE, f"{size} addresses")
            self._denied_size[claim.origin_domain] = now + self.config.waiting_period
            self._deny(claim, claim.lifetime, "size")
            return True
        held = self._child_holding(claim.origin_domain) + size
        if policy.child_hard_threshold is not None and held > policy.child_hard_threshold:
            self._deny(claim, claim.lifetime, "hard threshold")
            return True
        if policy.child_soft_threshold is not None and held >= policy.child_soft_threshold:
            self._events.append(
                PolicyNotice(
                    "soft_threshold",
                    f"child domain {claim.origin_domain} claims {held} addresses "
                    f"(soft threshold {policy.child_soft_threshold}, App. B)",
                )
            )
        return False

    def _child_holding(self, domain: DomainId) -> int:
        now = self._now
        prefixes = {
            e.claim.prefix
            for t in CLAIMS
            for e in self.cache.of_origin(t, domain)
            if e.expires > now and not e.denied and not self._released(e)
        }
        return sum(p.num_addresses for p in collapse(prefixes))

    def _deny(self, claim: Claim, lifetime: int, why: str) -> None:
        """§11.4.3: CLAIM_DENIED, the claim itself with Rol=INTERNAL and the longest
        lifetime we allow, to the nodes of the child's domain."""
        self._originate(
            replace(
                claim, type=ClaimType.CLAIM_DENIED, origin_role=Role.INTERNAL, lifetime=lifetime
            ),
            parent=self.config.local_domain,
        )
        self._events.append(
            PolicyNotice(
                "claim_denied", f"denied {claim.prefix} of domain {claim.origin_domain}: {why}"
            )
        )

    def _retry_after_denial(self, pending: PendingClaim, denial: Claim) -> None:
        """§8.3: a parent's CLAIM_DENIED carries the longest lifetime it accepts; claim
        again within it.  A denial for another reason (size, threshold) is retried at half
        the size (docs/conformance.md)."""
        size = pending.claim.prefix.num_addresses
        end_by: int | None = None
        if denial.lifetime < pending.claim.lifetime:
            end_by = denial.timestamp + denial.lifetime
        elif size > 1:
            size //= 2
        if end_by is not None and end_by - self._now <= self.config.waiting_period:
            self._events.append(
                PolicyNotice("claim_denied", f"parent allows {denial.prefix} only until {end_by}")
            )
            return
        self.scheduled.append(
            ScheduledClaim(
                at=self._claim_time(),
                kind=pending.kind,
                size=size,
                lifetime=pending.claim.lifetime,
                purpose=pending.purpose,
                prefix=None if pending.purpose == "new" else pending.claim.prefix,
                extends=pending.extends,
                end_by=end_by,
            )
        )

    # --- originating (§5) ----------------------------------------------------------------

    def _claim_time(self) -> float:
        """§5.1 a), §6: a random delay in the open interval (0, INITIATE_CLAIM_DELAY)."""
        span = self.config.initiate_claim_delay
        delay = self.rng.random() * span
        while span > 0 and delay <= 0.0:
            delay = self.rng.random() * span
        return self._now + delay

    def _plan(self) -> None:
        """Claim space when the domain needs it and may claim (§5.1, §12.2, §17.1.2).

        A leaf's plan that found nothing to do is not redone until what it read changes
        (:meth:`_plan_key`) or time reaches a moment that could change it: a leaf hears
        each of its siblings' claims relayed (§11.2.3, §11.4.3), and a plan that claims
        nothing does not read them."""
        key = self._plan_key()
        if key is not None:
            known, since, until = self._plan_memo
            if key == known and since <= self._now < until:
                return
        scheduled = len(self.scheduled)
        self._plan_kinds()
        if key is not None and len(self.scheduled) == scheduled and self._plan_key() == key:
            self._plan_memo = (key, self._now, self._plan_valid_until())

    def _plan_key(self) -> tuple[object, ...] | None:
        """Everything a leaf's :meth:`_plan_kinds` reads but the clock, when it decides to
        claim nothing: then it reads neither others' claims (only whether any space is
        left to claim from, which they do not change) nor the rng.  None (not memoized):
        a non-leaf's plan reads its children's claims and their trend over time, and one
        with no demand reported reads other nodes' claims for our domain over time."""
        if self.non_leaf or self.demand is None or not self._started:
            return None
        return (
            self.config,
            self.demand,
            self._blocked_until[DOMAIN],
            self._parents_up,
            self.cache.room_version,
            self._room_gen,
            self._stuck.get(DOMAIN),
            tuple((k, a.expires, a.renewing) for k, a in self.allocations.items()),
            tuple((s.kind, s.purpose, s.size, s.prefix) for s in self.scheduled),
            tuple((p.kind, p.purpose, p.claim.prefix) for p in self.pending),
        )

    def _plan_valid_until(self) -> float:
        """The first moment time alone could change what a leaf's plan decides: a prefix
        of ours, a parent's PREFIX_MANAGED or a WITHDRAW expiring (they are the cache's
        watched entries), the claim block or a :class:`_Stuck` record ending."""
        now = self._now
        times: list[float] = [a.expires for a in self.allocations.values()]
        blocked = self._blocked_until[DOMAIN]
        if blocked > now:
            times.append(blocked)
        stuck = self._stuck.get(DOMAIN)
        if stuck is not None:
            times.append(stuck.until)
        watched = self.cache.next_watched(now)
        if watched is not None:
            times.append(watched)
        return min(times, default=math.inf)

    def _plan_kinds(self) -> None:
        cfg, now = self.config, self._now
        for kind in (DOMAIN, LOCAL):
            if kind is LOCAL and not self.non_leaf:
                continue
            if now < self._blocked_until[kind]:
                continue
            if self._demand_for(kind) is None and (self._claiming(kind) or self._expanding(kind)):
                continue  # holding initial_size: one claim at a time
            if kind is DOMAIN and not self._eligible_parents():
                continue
            if kind is LOCAL and not self._has_usable(DOMAIN, now):
                continue
            stuck = self._stuck_still(kind)
            if stuck is not None:
                quick = self._growth(kind, doubles=False)
                if quick is None or host_bits_for(_smallest(quick)) > stuck.bits:
                    continue  # it would fail as the last one did (_Stuck)
            grow = self._growth(kind)
            if grow is None:
                continue
            if grow.expand is not None:
                alloc = self.allocations.get((kind, grow.expand))
                if alloc is not None:
                    self._schedule_expansion(alloc)
                continue
            if kind is LOCAL and self._no_room_for(LOCAL, _smallest(grow)):
                # §12.2 / §5.3: the children took the managed space; grow it to make room.
                self._expand_for_room()
                continue
            self.scheduled.append(
                ScheduledClaim(
                    at=self._claim_time(),
                    kind=kind,
                    size=grow.size,
                    lifetime=_u32(cfg.claim_lifetime),
                    purpose="new",
                    replaces=grow.replaces,
                    fallback=grow.fallback,
                    automatic=True,
                )
            )

    def _room_signature(self, kind: SpaceKind) -> tuple[object, ...]:
        return (
            self.cache.room_version,
            self._room_gen,
            tuple((k, a.expires, a.renewing) for k, a in self.allocations.items()),
            tuple(p.claim.prefix for p in self.pending if p.kind is kind),
            tuple(s.prefix for s in self.scheduled if s.kind is kind),
        )

    def _stuck_still(self, kind: SpaceKind) -> _Stuck | None:
        """The kind's :class:`_Stuck` record while it still holds (else forget it)."""
        stuck = self._stuck.get(kind)
        if stuck is None:
            return None
        if (
            self._now >= stuck.until
            or stuck.signature != self._room_signature(kind)
            or stuck.demand != self._demand_for(kind)
        ):
            del self._stuck[kind]
            return None
        return stuck

    def _note_stuck(
        self, kind: SpaceKind, parents: list[DomainId | None], *, planned: bool
    ) -> None:
        """A new claim found no room (see :class:`_Stuck`); only DOMAIN space: a LOCAL one
        makes room by expanding (_expand_for_room), which must be retried.

        ``planned``: the planner chose this new claim for the demand as it is, over
        doubling a prefix that can (Appendix A), so until the room or the demand changes
        it would choose it again and fail again (choice 102).  An operator's claim says
        nothing of the demand: while a prefix can double, the planner's expansion must
        stay free to happen, and no record is taken."""
        if kind is not DOMAIN:
            return
        if not planned and any(held.can_double for held in self._held(kind)):
            return
        now, until = self._now, float("inf")
        taken = self._cache_taken(kind)
        bits = self._largest_free(kind, parents, self._occupied(kind))
        for parent in parents:
            if parent is not None and parent != TLD_ID:
                # A parent's WITHDRAW timing out gives the space back (§11.7.4).
                for e in self.cache.of_origin(ClaimType.WITHDRAW, parent):
                    if e.expires > now and e.claim.origin_role is Role.PARENT:
                        until = min(until, e.expires)
        forever = [a.prefix for a in self.allocations.values() if a.kind is kind]
        forever += [p.claim.prefix for p in self.pending if p.kind is kind]
        forever += [s.prefix for s in self.scheduled if s.kind is kind and s.prefix is not None]
        until = min(until, first_release(taken, forever))
        self._stuck[kind] = _Stuck(self._room_signature(kind), bits, until, self._demand_for(kind))

    @property
    def _horizon(self) -> float:
        """§17.1.2: how long until a claim started now is usable."""
        return self.config.waiting_period + self.config.initiate_claim_delay

    def _demand_for(self, kind: SpaceKind) -> Demand | None:
        """The demand on ``kind`` space: the MAASs' on the locally-allocated set (the
        managed set of a leaf).  On the managed set of a non-leaf domain (§17.1.2: it
        "monitors the demand for addresses from its children (or MAASs)"), the children's
        (:meth:`_children_demand`) plus what its own LOCAL space holds (§12.2, at least
        ``initial_size``) and its MAASs' growth.  None: nothing reported, hold
        ``initial_size``."""
        if kind is LOCAL or not self.non_leaf:
            return self.demand
        children = self._children_demand()
        if children is None:
            return self.demand
        held = sum(a.prefix.num_addresses for a in self.allocations.values() if a.kind is LOCAL)
        own_rate = max(self.demand.rate, 0.0) if self.demand is not None else 0.0
        return Demand(
            in_use=max(held, self.config.initial_size) + children.in_use,
            rate=own_rate + children.rate,
        )

    def _children_demand(self) -> Demand | None:
        """What the children need from the managed set, or None with no child known.

        A parent sees only its children's claims (§12.2), so their demand is: the space
        they claim or hold (one count per address: a renewal or an expansion claims space
        the child already holds); at least ``initial_size`` for every child domain with a
        session, even one that has claimed nothing yet (App. B: each starts with the
        initial claim, and a child that finds no room sends no claim at all); and their
        growth over the last horizon (waiting period + claim delay) as the rate (§17.1.2),
        so that the parent claims ahead of them instead of one waiting period behind
        (docs/conformance.md choice 94).
        """
        now, local = self._now, self.config.local_domain
        # Only CHILD-role entries (claims and WITHDRAWs) and the sessions (_room_gen) count.
        key = (self.cache.role_versions.get(Role.CHILD), self._room_gen, self.config.initial_size)
        memo_key, valid_until, memo = self._children_memo
        if memo_key == key and now < valid_until:
            return memo
        valid_until = math.inf
        each: dict[DomainId, int] = {}
        for domain in self.cache.child_domains:
            if domain == local:
                continue
            claimed, until = self._child_claimed(domain)
            valid_until = min(valid_until, until)
            if claimed:
                each[domain] = claimed
        for gone in self._child_memo.keys() - self.cache.child_domains.keys():
            del self._child_memo[gone]
        known = {nb.domain for nb in self.neighbors.values() if nb.role is Role.CHILD}
        demand: Demand | None = None
        if each or known:
            claimed = sum(each.values())
            floor = sum(max(0, self.config.initial_size - each.get(d, 0)) for d in known)
            # The floor is growth foreseen: a child's first claim only replaces it.
            self._children_trend.note(now, claimed + floor)
            rate = self._children_trend.rate(now)
            demand = Demand(in_use=claimed + floor, rate=rate)
            if rate > 0:  # the rate decays as its samples age: recompute now and then
                valid_until = min(valid_until, now + self._horizon / 16)
        self._children_memo = (key, valid_until, demand)
        return demand

    def _child_claimed(self, domain: DomainId) -> tuple[int, float]:
        """Addresses one child domain claims or holds (each once), and until when that
        holds unless its entries change: :meth:`_children_demand` for one child, kept per
        child so that one child's UPDATE does not recount all the others."""
        now = self._now
        key = (self.cache.origin_versions.get(domain, 0), self._room_gen)
        memo = self._child_memo.get(domain)
        if memo is not None and memo[0] == key and now < memo[1]:
            return memo[2], memo[1]
        valid_until = math.inf
        blocks: list[Prefix] = []
        for t in _CHILD_HOLDS:
            for e in self.cache.of_origin(t, domain):
                c = e.claim
                # Hints ask for nothing yet (choice 43); a denied claim gets no space (§8.3).
                if (
                    c.origin_role is Role.CHILD
                    and e.expires > now
                    and not e.denied
                    and not is_hint(c)
                    and not self._released(e)
                ):
                    blocks.append(c.prefix)
                    valid_until = min(valid_until, e.expires)
        # A WITHDRAW timing out un-releases (see _released).
        for w in self.cache.of_origin(ClaimType.WITHDRAW, domain):
            if w.expires > now:
                valid_until = min(valid_until, w.expires)
        claimed = sum(p.num_addresses for p in collapse(blocks))
        self._child_memo[domain] = (key, valid_until, claimed)
        return claimed, valid_until

    def _held(self, kind: SpaceKind, *, doubles: bool = True) -> list[Held]:
        now = self._now
        allocs = [
            a
            for a in self.allocations.values()
            if a.kind is kind and a.expires > now and self._usable_of(a, now)
        ]
        # One occupied list for all of them: each _doubles would build it again.
        occupied = spans_of(self._occupied(kind)) if doubles and allocs else []
        return [Held(a.prefix, a.renewing, doubles and self._doubles(a, occupied)) for a in allocs]

    def _doubles(self, alloc: Allocation, occupied: list[Span] | None = None) -> bool:
        """§5.3, §17.1.1: the prefix can double in place (our own, and its buddy free).
        ``occupied``: :meth:`_occupied` of its kind, if the caller has it already."""
        if alloc.origin_node != self.config.local_node or alloc.prefix.prefixlen == 0:
            return False
        space = self._claim_space(alloc.kind, alloc.parent)
        around = self._occupied_around(alloc.kind, alloc.prefix, occupied)
        return can_double(alloc.prefix, space, around)

    def _occupied_around(
        self,
        kind: SpaceKind,
        prefix: Prefix,
        occupied: list[Span] | None = None,
        *,
        within: Prefix | None = None,
    ) -> list[Prefix]:
        """What stops ``prefix`` doubling: what of :meth:`_occupied` (or ``occupied``)
        overlaps the doubled prefix, less ``prefix`` itself and our own prefixes inside the
        doubled prefix, which it aggregates (§17.1.4: "both prefixes can be automatically
        aggregated").  Nothing outside the doubled prefix can stop it.  ``within``: look
        there instead (a restored or retried expansion's prefix need not be the doubled
        one of the prefix it extends)."""
        larger = prefix.supernet()
        taken = spans_of(self._occupied(kind)) if occupied is None else occupied
        width, start, stop = span_of(larger if within is None else within)
        near = [p for w, a, b, p in taken if a < stop and b > start and w == width and p != prefix]
        if not near:
            return near
        ours = [
            a.prefix
            for a in self.allocations.values()
            if a.kind is kind and a.renewing and covers(larger, a.prefix)
        ]
        return [p for p in near if not any(covers(o, p) for o in ours)]

    def _growth(self, kind: SpaceKind, *, doubles: bool = True) -> Grow | None:
        """What to add to ``kind`` space now, if anything (Appendix A).  ``doubles=False``
        skips finding which prefixes could double (the sizes are the same)."""
        cfg, now = self.config, self._now
        demand = self._demand_for(kind)
        usable = self._has_usable(kind, now)
        if demand is None:
            # No demand reported: hold initial_size (§12.2, App. B).
            return None if usable or cfg.initial_size <= 0 else Grow(cfg.initial_size)
        pending = self._pending_growth(kind)
        if kind is DOMAIN and self.non_leaf:
            # A parent's managed set: one new claim at a time (ours or another node's of
            # our domain), but an expansion under way counts as held instead of holding
            # back the children's growth (docs/conformance.md choice 95).
            if self._claiming(kind):
                return None
        elif pending:
            return None  # one growth claim at a time: see below
        # Whether to grow does not depend on which prefixes can double: ask that first.
        held = self._held(kind, doubles=False)
        if plan_growth(held, pending, demand, self._horizon, cfg.allocator) is None:
            grow = None  # §17.1.2: what is held lasts beyond one waiting period
        else:
            if doubles:
                held = self._held(kind)
            # The next claim can start only once this one is allocated, one horizon from
            # now, and needs another to be usable: size this one for the demand two
            # horizons ahead, so growth never waits (docs/conformance.md).
            grow = plan_growth(held, pending, demand, 2 * self._horizon, cfg.allocator)
        if pending:
            return grow
        if not usable and cfg.initial_size > 0:
            # App. B: the first claim is at least the initial claim size.
            size = max(cfg.initial_size, grow.size if grow is not None else 0)
            return Grow(size)
        return grow

    def _pending_growth(self, kind: SpaceKind) -> int:
        """Addresses that claims under way (new ones and expansions) will add to ``kind``
        space."""
        if not self.scheduled and not self.pending:
            return 0
        planned = [(s.purpose, s.size) for s in self.scheduled if s.kind is kind]
        planned += [
            (p.purpose, p.claim.prefix.num_addresses) for p in self.pending if p.kind is kind
        ]
        return sum(
            size if purpose == "new" else size // 2
            for purpose, size in planned
            if purpose in ("new", "expand")
        )

    def _expanding(self, kind: SpaceKind) -> bool:
        return any(s.kind is kind and s.purpose == "expand" for s in self.scheduled) or any(
            p.kind is kind and p.purpose == "expand" for p in self.pending
        )

    def _schedule_expansion(self, alloc: Allocation) -> None:
        """§5.3: claim the prefix twice the size of ``alloc``'s that contains it."""
        self._schedule_on(alloc, alloc.prefix.supernet(), "expand")

    def _schedule_on(
        self, alloc: Allocation, prefix: Prefix, purpose: Purpose, *, at: float | None = None
    ) -> None:
        """A CLAIM_TO_EXPAND of ``prefix`` extending ``alloc``: renewal (§5.2), expansion
        (§5.3) or shrink (§17.1.5), after the §5.1 a) random delay (or at ``at``, one
        delay drawn for several renewals sent together)."""
        self.scheduled.append(
            ScheduledClaim(
                at=self._claim_time() if at is None else at,
                kind=alloc.kind,
                size=prefix.num_addresses,
                lifetime=_u32(self.config.claim_lifetime),
                purpose=purpose,
                prefix=prefix,
                extends=alloc.prefix,
            )
        )

    def _no_room_for(self, kind: SpaceKind, size: int) -> bool:
        space = self._claim_space(kind, self.config.local_domain)
        return self._choose(kind, space, size) is None

    def _choose(self, kind: SpaceKind, space: list[Prefix], size: int) -> Prefix | None:
        """Appendix A: a free prefix of ``size`` in ``space``, next to ours if possible."""
        near = [a.prefix for a in self.allocations.values() if a.kind is kind and a.renewing]
        return choose_prefix(
            space,
            self._occupied(kind),
            size,
            self.rng,
            strategy=self.config.allocator.strategy,
            near=near,
        )

    def _expand_for_room(self) -> None:
        """Schedule a §5.3 expansion of a DOMAIN prefix of ours whose other half is free."""
        if self._expanding(DOMAIN) or self._expanding(LOCAL):
            return
        for alloc in sorted(self.allocations.values(), key=lambda a: a.prefix.prefixlen):
            if alloc.kind is DOMAIN and alloc.renewing and self._doubles(alloc):
                self._schedule_expansion(alloc)
                return
        self._blocked_until[LOCAL] = self._now + max(self.config.initiate_claim_delay, 1.0)

    def _claiming(self, kind: SpaceKind) -> bool:
        """A claim for new space is under way, by us or by another node of our domain.

        Our own claims count only while pending: one that lost a collision or was denied
        stays cached, but §5.1 c) wants a new claim at once, not after its holdtime."""
        if any(s.kind is kind and s.purpose == "new" for s in self.scheduled):
            return True
        if any(p.kind is kind and p.purpose == "new" for p in self.pending):
            return True
        role = Role.INTERNAL if kind is DOMAIN else Role.CHILD
        now = self._now
        return any(
            e.expires > now
            and e.claim.origin_role is role
            and e.claim.origin_node != self.config.local_node
            and e.claim.timestamp + self.config.waiting_period > now
            and not e.denied
            and not is_hint(e.claim)
            for e in self.cache.of_origin(ClaimType.NEW_CLAIM, self.config.local_domain)
        )

    def _room_problem(self, kind: SpaceKind, size: int) -> str | None:
        """Why a new claim of ``size`` addresses of ``kind`` could not be placed now, if
        it could not: the same space and occupied set the claim will be chosen from."""
        parents: list[DomainId | None]
        parents = [self.config.local_domain] if kind is LOCAL else list(self._eligible_parents())
        spaces = [space for space in (self._claim_space(kind, p) for p in parents) if space]
        if not spaces:
            if kind is LOCAL:
                return (
                    "no space to claim from: this domain holds no usable managed prefix "
                    "(none yet, or all withdrawn or expired)"
                )
            if self.config.is_tld:
                return "no space to claim from: no global pool is configured"
            return (
                "no space to claim from: no parent session is Established with space "
                "announced (PREFIX_MANAGED, RFC 2909 §11.1)"
            )
        bits = self._largest_free(kind, parents, self._occupied(kind))
        if bits < host_bits_for(size):
            largest = "none" if bits < 0 else f"{1 << bits} addresses"
            return (
                f"no free block of {size} addresses in the space to claim from now "
                f"(largest free block: {largest})"
            )
        return None

    def _largest_free(
        self, kind: SpaceKind, parents: list[DomainId | None], occupied: list[Prefix]
    ) -> int:
        """``k`` of the largest free block of 2**k addresses a new claim could take in any
        of ``parents``' space (-1: none)."""
        return max(
            (largest_free(self._claim_space(kind, p), occupied) for p in parents), default=-1
        )

    def _eligible_parents(self) -> list[DomainId]:
        """§5.1: a non-TLD claims from a parent only while a session to it is Established."""
        cfg = self.config
        if cfg.is_tld:
            return [DomainId(TLD_ID)] if cfg.global_pool else []
        up = self._parents_up
        return [p for p in cfg.parent_domain_ids if p in up and self._has_parent_space(p)]

    def _has_parent_space(self, parent: DomainId) -> bool:
        """``bool(self._parent_space(parent, now))``, without the set arithmetic when the
        parent has withdrawn nothing (asked on every input)."""
        now = self._now
        if any(
            e.expires > now and e.claim.origin_role is Role.PARENT
            for e in self.cache.of_origin(ClaimType.WITHDRAW, parent)
        ):
            return bool(self._parent_space(parent, now))
        return bool(self._managed_prefixes(parent))

    def _claim_space(self, kind: SpaceKind, parent: DomainId | None) -> list[Prefix]:
        """Where a claim of ``kind`` may lie: inside one of the prefixes that manage it, less
        their withdrawn ranges.  The prefixes stay apart (:func:`_pieces`; the allocator
        never chooses across two): a parent accepts a claim only inside one of its
        prefixes (§11.4.3), and a sibling only inside one PREFIX_MANAGED (§11.1)."""
        if kind is LOCAL:
            now = self._now
            return _pieces(self._live_prefixes(DOMAIN, now), self._withdrawn_ranges(DOMAIN, now))
        if parent is None:
            return []
        return self._parent_space(parent, self._now)

    def _occupied(self, kind: SpaceKind, ignore: Prefix | None = None) -> list[Prefix]:
        """Space that is not free to claim: ours, our claims, and others' claims and
        prefixes still held in the cache (which includes the §12.3 grace)."""
        taken = [a.prefix for a in self.allocations.values() if a.kind is kind]
        taken += [p.claim.prefix for p in self.pending if p.kind is kind]
        taken += [s.prefix for s in self.scheduled if s.kind is kind and s.prefix is not None]
        taken += self._cache_taken(kind)
        if ignore is None:
            return taken
        return [p for p in taken if not same(p, ignore)]

    def _cache_taken(self, kind: SpaceKind) -> dict[Prefix, float]:
        """The cached part of :meth:`_occupied`, each prefix with the moment time alone
        frees it (its last holder's expiry plus the §12.3 grace).  Kept until the cache
        changes other than by a claim's arrival (added in when next read:
        :meth:`_take_in_arrivals`), a denial mark changes, or a WITHDRAW's expiry puts a
        claim back (see _released); time taking claims out only takes their prefixes out
        (:meth:`_taken_now`): inputs ask several times each, timers often come with
        nothing changed, and a busy cache changes mostly by arrivals."""
        taken = self._taken_now(kind)
        if taken is not None:
            return taken
        if self._arrived:
            self._take_in_arrivals()  # the other kinds' memos; this one reads them all
        now = self._now
        grace = self.cache.grace
        claims_until = withdraws_until = math.inf
        # One pass over the cache, sorted into Types; then taken in Type order.
        by_type: dict[ClaimType, list[CacheEntry]] = {t: [] for t in _ROOM_TYPES}
        for e in self.cache:
            t = e.claim.type
            if t is ClaimType.WITHDRAW:
                if e.expires > now:
                    withdraws_until = min(withdraws_until, e.expires)
            elif t in by_type:
                by_type[t].append(e)
        taken = {}
        for entries in by_type.values():
            for e in entries:
                if self._holds_room(e, kind):
                    until = e.expires + grace
                    taken[e.claim.prefix] = max(taken.get(e.claim.prefix, until), until)
                    claims_until = min(claims_until, until)
        # Our own live WITHDRAWs (§5.4 release, §12.4 clash) would cut a new allocation of
        # the same range at once (§11.7.3): we do not claim it again until they time out.
        own = Role.INTERNAL if kind is DOMAIN else Role.CHILD
        for e in self.cache.of_origin(ClaimType.WITHDRAW, self.config.local_domain):
            if e.expires > now and e.claim.origin_role is own:
                p = e.claim.prefix
                taken[p] = max(taken.get(p, e.expires), e.expires)
        self._taken_memo[kind] = (self._taken_key(), claims_until, withdraws_until, taken)
        return taken

    def _taken_now(self, kind: SpaceKind) -> dict[Prefix, float] | None:
        """The remembered :meth:`_cache_taken` of ``kind`` as it is now, or None when it
        must be rebuilt.  Claims timing out (their expiry plus grace) only free their
        prefixes: each prefix is kept with its last holder's time, so those whose time
        has come are the ones to drop, and no other claim changes whether it holds room
        unless a WITHDRAW times out, which is a rebuild."""
        memo = self._taken_memo.get(kind)
        now = self._now
        if memo is None or memo[0] != self._taken_key() or now >= memo[2]:
            return None
        if self._arrived:
            self._take_in_arrivals()
            memo = self._taken_memo.get(kind)
            if memo is None:
                return None
        key, claims_until, withdraws_until, taken = memo
        if now >= claims_until:
            for prefix in [p for p, until in taken.items() if until <= now]:
                del taken[prefix]
            claims_until = min(taken.values(), default=math.inf)
            self._taken_memo[kind] = (key, claims_until, withdraws_until, taken)
        return taken

    def _taken_key(self) -> _MemoKey:
        return (self.cache.reshaped, self._room_gen, self.cache.grace)

    def _holds_room(self, entry: CacheEntry, kind: SpaceKind) -> bool:
        """Whether a cached claim keeps ``kind`` space from us now (:meth:`_cache_taken`):
        a sibling's or internal peer's for DOMAIN space, a child's for LOCAL space, not
        denied, not a hint, not given back, and not past its expiry plus grace."""
        c = entry.claim
        roles = (Role.SIBLING, Role.INTERNAL) if kind is DOMAIN else (Role.CHILD,)
        return (
            entry.expires + self.cache.grace > self._now
            and c.origin_role in roles
            and not entry.denied
            and not is_hint(c)
            and not self._released(entry)
        )

    def _claim_cached(self, entry: CacheEntry, superseded: CacheEntry | None) -> None:
        """A claim arrived in the cache: noted, and added into each :meth:`_cache_taken`
        memo when one is next read (:meth:`_take_in_arrivals`).  A leaf hears each of its
        siblings' claims (§11.2.3, §11.4.3) but reads the memos only when it plans a
        claim, so most arrivals are taken in many at a time, or never (a memo that
        must be rebuilt drops them: the rebuild reads the whole cache).  Too many
        waiting (:data:`_ARRIVALS_KEPT`): the memos are dropped instead, as a rebuild then
        costs about as much as adding them in."""
        if self._taken_memo:
            self._arrived.append((entry, superseded))
            if len(self._arrived) > max(_ARRIVALS_KEPT, len(self.cache) // 4):
                self._taken_memo.clear()  # rebuilt when next read
                self._arrived.clear()

    def _take_in_arrivals(self) -> None:
        """Add the claims cached since into each memo still valid, rather than drop it.
        A renewal that supersedes an entry holds no less long, so the maximum stays
        right, unless the old entry held room and the new one does not (a denied
        renewal): then the memo is rebuilt when next asked.  Judged now rather than on
        arrival: a claim that stopped holding room meanwhile would have been taken out
        by now anyway (:meth:`_taken_now` drops the prefixes whose time has come)."""
        arrived, self._arrived = self._arrived, []
        now, grace, key_now = self._now, self.cache.grace, self._taken_key()
        for kind in list(self._taken_memo):
            key, claims_until, withdraws_until, taken = self._taken_memo[kind]
            if key != key_now or now >= withdraws_until:
                del self._taken_memo[kind]  # rebuilt when next asked
                continue
            for entry, superseded in arrived:
                holds = self._holds_room(entry, kind)
                if superseded is not None and not holds and self._holds_room(superseded, kind):
                    del self._taken_memo[kind]
                    break
                if holds:
                    p, until = entry.claim.prefix, entry.expires + grace
                    taken[p] = max(taken.get(p, until), until)
                    claims_until = min(claims_until, until)
            else:
                self._taken_memo[kind] = (key, claims_until, withdraws_until, taken)

    def _released(self, entry: CacheEntry) -> bool:
        """A claim its domain gave back with a WITHDRAW of the same prefix, sent at or after
        the claim's timestamp (a renewed prefix is announced again with the renewal's
        timestamp, and its release withdraws the older announcements too)."""
        c = entry.claim
        if c.type is ClaimType.WITHDRAW:
            return False
        now = self._now
        return any(
            w.expires > now and w.claim.prefix == c.prefix and w.claim.timestamp >= c.timestamp
            for w in self.cache.of_origin(ClaimType.WITHDRAW, c.origin_domain)
        )

    def _send_claim(self, scheduled: ScheduledClaim) -> None:
        """§5.1 b): send the claim and start its Claim-Timer."""
        cfg, now, kind = self.config, self._now, scheduled.kind
        # This claim has left self.scheduled, so _claiming sees only the others.
        if scheduled.purpose == "new" and scheduled.prefix is None and not scheduled.operator:
            if scheduled.automatic and self._demand_for(kind) is not None:
                # Whether to grow does not depend on which prefixes can double.
                needed = self._growth(kind, doubles=False) is not None
            else:
                needed = not (self._claiming(kind) or self._has_usable(kind, now))
            if not needed:
                return  # §5.1 a): no longer needed
        parents: list[DomainId | None]
        if kind is LOCAL:
            parents = [cfg.local_domain]
        elif scheduled.extends is not None:
            alloc = self.allocations.get((kind, scheduled.extends))
            parents = [alloc.parent] if alloc is not None else []
            if (
                alloc is not None
                and not cfg.is_tld
                and alloc.parent not in self._eligible_parents()
            ):
                parents = []
        else:
            parents = list(self._eligible_parents())
        chosen: tuple[DomainId | None, Prefix] | None = None
        for parent in parents:
            space = self._claim_space(kind, parent)
            if scheduled.prefix is not None:
                if scheduled.purpose == "expand" and scheduled.extends is not None:
                    taken = self._occupied_around(kind, scheduled.extends, within=scheduled.prefix)
                else:
                    taken = self._occupied(kind, ignore=scheduled.extends)
                ok = any(covers(s, scheduled.prefix) for s in space) and not any(
                    overlaps(p, scheduled.prefix) for p in taken
                )
                if ok or scheduled.purpose in ("renew", "shrink"):
                    chosen = (parent, scheduled.prefix)
                    break
            else:
                prefix = self._choose(kind, space, scheduled.size)
                if prefix is not None:
                    chosen = (parent, prefix)
                    break
        replaces = scheduled.replaces
        if chosen is None and scheduled.prefix is None and scheduled.fallback:
            # Choice 105: no parent has a block for the prefix the cap asked for (§17.1.4);
            # the smaller claim it replaced, keeping the older prefixes.
            for parent in parents:
                prefix = self._choose(kind, self._claim_space(kind, parent), scheduled.fallback)
                if prefix is not None:
                    chosen, replaces = (parent, prefix), ()
                    break
        if chosen is None:
            if scheduled.prefix is None and parents:
                self._note_stuck(kind, parents, planned=scheduled.automatic)
            what = scheduled.prefix or f"{scheduled.size} addresses"
            self._events.append(
                PolicyNotice("claim_impossible", f"cannot claim {what} ({kind.value}) now")
            )
            self._blocked_until[kind] = now + max(cfg.initiate_claim_delay, 1.0)
            if scheduled.extends is not None:
                alloc = self.allocations.get((kind, scheduled.extends))
                if alloc is not None:
                    alloc.renew_retry_at = now + max(cfg.initiate_claim_delay, 1.0)
            return
        parent, prefix = chosen
        timestamp = _u32(now)
        lifetime = scheduled.lifetime
        for end in (scheduled.end_by, self._parent_end(kind, parent, prefix)):
            if end is not None:
                lifetime = min(lifetime, end - timestamp)
        if lifetime <= 0:
            self._events.append(
                PolicyNotice("claim_impossible", f"no lifetime left for {prefix} ({kind.value})")
            )
            self._blocked_until[kind] = now + max(cfg.initiate_claim_delay, 1.0)
            return
        claim = Claim(
            type=scheduled.claim_type,
            origin_role=Role.INTERNAL if kind is DOMAIN else Role.CHILD,
            timestamp=timestamp,
            lifetime=lifetime,
            holdtime=_u32(cfg.waiting_period),  # §7.3: claims are held for WAITING_PERIOD
            origin_domain=cfg.local_domain,
            origin_node=cfg.local_node,
            prefix=prefix,
        )
        self.pending.append(
            PendingClaim(
                claim=claim,
                kind=kind,
                parent=parent,
                purpose=scheduled.purpose,
                deadline=claim.timestamp + cfg.waiting_period,
                extends=scheduled.extends,
                replaces=replaces,
            )
        )
        self._events.append(ClaimSent(claim, kind, scheduled.purpose))
        self._originate(claim, parent=parent)

    def _parent_end(self, kind: SpaceKind, parent: DomainId | None, prefix: Prefix) -> int | None:
        """When the space we claim from ends: a child asks no longer than that (§11.4.3
        would deny it)."""
        if kind is LOCAL:
            ends = [
                a.expires
                for a in self.allocations.values()
                if a.kind is DOMAIN and covers(a.prefix, prefix)
            ]
        elif parent is None or parent == TLD_ID:
            return None
        else:
            ends = [
                c.timestamp + c.lifetime
                for c in self._parent_managed(parent)
                if covers(c.prefix, prefix)
            ]
        return max(ends) if ends else None

    def _cancel_scheduled(self, kind: SpaceKind, reason: str) -> None:
        for scheduled in [
            s for s in self.scheduled if s.kind is kind and s.purpose == "new" and s.prefix is None
        ]:
            self.scheduled.remove(scheduled)
            self._events.append(ClaimCancelled(None, kind, reason))

    def _claim_timer_expired(self, pending: PendingClaim) -> None:
        """§5.1 d), §5.2, §5.3: no collision for WAITING_PERIOD: the prefix is ours."""
        cfg, claim = self.config, pending.claim
        kind = pending.kind
        end = claim.timestamp + claim.lifetime
        if pending.purpose == "renew" and pending.extends is not None:
            alloc = self.allocations.get((kind, pending.extends))
            if alloc is None:
                return
            if end > alloc.expires:
                # §7.3: Lifetime and Holdtime count from the Claim Timestamp.  The renewed
                # PREFIX_IN_USE carries the renewal's timestamp, so its holdtime stays one
                # lifetime instead of growing with every renewal past what peers accept
                # (§8.3 Claim Holdtime Too Long; docs/conformance.md).
                alloc.timestamp, alloc.lifetime = claim.timestamp, claim.lifetime
            alloc.renewed_at = self._now
        else:
            alloc = Allocation(
                prefix=claim.prefix,
                kind=kind,
                parent=pending.parent,
                timestamp=claim.timestamp,
                lifetime=claim.lifetime,
                origin_node=cfg.local_node,
                allocated_at=self._now,
            )
            old = self.allocations.get((kind, pending.extends)) if pending.extends else None
            if old is not None and pending.purpose == "shrink":
                # §17.1.5: the half is renewed; the rest of the old prefix ends with it.
                self._deprecate(old, "shrunk")
            elif old is not None:
                self._drop_allocation(old, "replaced")
            if pending.purpose == "expand":
                # §17.1.4: our prefixes inside the doubled one are aggregated into it.
                for inner in [
                    a
                    for a in self.allocations.values()
                    if a.kind is kind and covers(claim.prefix, a.prefix)
                ]:
                    self._drop_allocation(inner, "aggregated")
            self.allocations[(kind, claim.prefix)] = alloc
            for prefix in pending.replaces:
                # §17.1.4: the new larger prefix takes over; stop re-claiming the old ones.
                older = self.allocations.get((kind, prefix))
                if older is not None and older is not alloc:
                    self._deprecate(older, "replaced")
        self._announce(alloc)
        self._events.append(
            PrefixAllocated(
                alloc.prefix, kind, alloc.expires, int(alloc.origin_node), pending.purpose
            )
        )

    def _announce(self, alloc: Allocation) -> None:
        """§5.1 d): PREFIX_IN_USE to the parent and siblings, PREFIX_MANAGED to children and
        internal peers (for LOCAL space, as a child of ourselves: PREFIX_IN_USE, Rol=CHILD,
        to internal peers and children)."""
        local = self.config.local_domain
        self._originate(alloc.announcement(ClaimType.PREFIX_IN_USE, local), parent=alloc.parent)
        if alloc.kind is DOMAIN:
            self._originate(
                alloc.announcement(ClaimType.PREFIX_MANAGED, local), parent=alloc.parent
            )
        # §12.4 both ways: the clash check runs when a PREFIX_IN_USE arrives, against our
        # announcement of then.  Ours just changed (new, renewed, expanded prefix), so a
        # PREFIX_IN_USE we already hold may win over it now: compare again.
        role = Role.SIBLING if alloc.kind is DOMAIN else Role.CHILD
        now = self._now
        overlapping = [
            e.claim
            for e in self.cache.of_type(ClaimType.PREFIX_IN_USE)
            if e.expires > now
            and e.claim.origin_role is role
            and e.claim.origin_domain != local
            and overlaps(e.claim.prefix, alloc.prefix)
        ]
        for c in overlapping:
            inside = c.prefix if covers(alloc.prefix, c.prefix) else alloc.prefix
            if any(
                w.expires > now and covers(w.claim.prefix, inside)
                for w in self.cache.of_origin(ClaimType.WITHDRAW, c.origin_domain)
            ):
                continue  # released (§5.4) or lost in a clash (§12.4): no longer theirs
            self._check_clash(c, alloc.kind)

    def _drop_allocation(self, alloc: Allocation, reason: str) -> None:
        self.allocations.pop((alloc.kind, alloc.prefix), None)
        for pending in [
            p for p in self.pending if p.extends == alloc.prefix and p.kind is alloc.kind
        ]:
            if reason != "replaced":
                self.pending.remove(pending)
        for scheduled in [s for s in self.scheduled if s.extends == alloc.prefix]:
            self.scheduled.remove(scheduled)
        self._events.append(PrefixGone(alloc.prefix, alloc.kind, reason))

    def _refuse_withdrawn(self, alloc: Allocation) -> None:
        """A prefix withdrawn whole (§11.7, §12.4) is not ours to renew or expand: a
        renewal is sent without checking who else holds the space."""
        if not self._usable_of(alloc, self._now):
            raise RequestRefused(f"{alloc.prefix} is withdrawn")

    def _own(self, prefix: Prefix) -> Allocation:
        for kind in (DOMAIN, LOCAL):
            alloc = self.allocations.get((kind, prefix))
            if alloc is not None:
                return alloc
        raise RequestRefused(f"{prefix} is not allocated to this domain")

    # --- renewal (§4.2, §5.2) ------------------------------------------------------------

    def _renew_at(self, alloc: Allocation) -> float:
        """Start renewing at half the lifetime (at the latest when the claim delay and the
        Claim-Timer still end before expiry).  A child's lifetime is capped at its parent's
        (§11.4.3), so it can be extended only after the parent's own renewal: half a
        lifetime leaves room for a chain of them down the hierarchy, where one spare
        waiting period per prefix did not."""
        cfg = self.config
        least = cfg.waiting_period + cfg.initiate_claim_delay
        lead = max(least, alloc.lifetime / 2)
        # §17.1.6: re-claimed every renew_interval (48 hours), or earlier as above.  Counted
        # from when the last claim finished, not from its timestamp: with the RFC's 48-hour
        # waiting period the latter would start the next renewal at once.
        since = alloc.allocated_at if alloc.renewed_at is None else alloc.renewed_at
        return min(alloc.expires - lead, since + cfg.allocator.renew_interval)

    def _may_renew(self, alloc: Allocation) -> bool:
        if not alloc.renewing or alloc.origin_node != self.config.local_node:
            return False
        prefix = alloc.prefix
        for extends in (p.extends for p in self.pending):
            if extends is not None and same(extends, prefix):
                return False
        for extends in (s.extends for s in self.scheduled):
            if extends is not None and same(extends, prefix):
                return False
        return bool(self._usable_of(alloc, self._now))

    def _renewal_due(self, alloc: Allocation) -> bool:
        return (
            self._may_renew(alloc)
            and self._now >= self._renew_at(alloc)
            and self._now >= alloc.renew_retry_at
        )

    def _renew_together(self, due: list[Allocation]) -> None:
        """§17.1.6: renew the prefixes ``due`` now, and with them every other prefix of
        the same kind that would fall due within half a renewal cycle and would be renewed
        whole, all after one §5.1 a) delay: their CLAIM_TO_EXPANDs then leave in one
        UPDATE, and one waiting period later their PREFIX_IN_USEs (and PREFIX_MANAGEDs) do
        too.  Renewed one by one, a domain holding three prefixes sent, and every parent
        relayed to each of its children, three times the UPDATEs for the same claims.  A
        cycle is ``renew_interval`` plus the waiting period (:meth:`_renew_at` counts from
        when the last renewal ended); half of one merges any two cycles at the first
        renewal of either (docs/conformance.md choice 104).

        Only whole renewals are taken along: a prefix that would be halved or let go
        (§17.1.5) waits for its own time, where it is judged against what the ones due
        now became, as it was before (two halvings judged against the same total could
        leave less than the demand)."""
        cfg, now = self.config, self._now
        ahead = now + (cfg.allocator.renew_interval + cfg.waiting_period) / 2
        kinds = {a.kind for a in due}
        chosen = {id(a) for a in due}
        # A prefix that a claim under way will replace (§17.1.4) is left to lapse.
        replaced = {p for c in self.pending for p in c.replaces}
        replaced.update(p for c in self.scheduled for p in c.replaces)
        along = [
            a
            for a in self.allocations.values()
            if id(a) not in chosen
            and a.kind in kinds
            and a.prefix not in replaced
            and self._may_renew(a)
            and now >= a.renew_retry_at
            and self._renew_at(a) <= ahead
        ]
        at = self._claim_time()
        for alloc in due:
            self._renew_or_shrink(alloc, at=at)
        for alloc in along:
            if self._renewal_keeps(alloc) == alloc.prefix:
                self._schedule_renewal(alloc, at=at)

    def _renew_or_shrink(self, alloc: Allocation, *, at: float | None = None) -> None:
        """§17.1.5-6: at a renewal, renew the prefix whole, renew its better-used half, or
        let it expire, as the demand says; never below ``initial_size`` held.  ``at``: when
        to send the claim (else after a §5.1 a) delay of its own)."""
        keep = self._renewal_keeps(alloc)
        if keep is None:
            self._deprecate(alloc, "under-used")
        elif keep == alloc.prefix:
            self._schedule_renewal(alloc, at=at)
        else:
            self._schedule_on(alloc, keep, "shrink", at=at)

    def _renewal_keeps(self, alloc: Allocation) -> Prefix | None:
        """What a renewal of ``alloc`` would re-claim now: the prefix, its better-used half,
        or nothing (:meth:`_renew_or_shrink`)."""
        demand = self._demand_for(alloc.kind)
        if demand is None:
            return alloc.prefix
        held = self._held(alloc.kind, doubles=False)  # plan_renewal ignores can_double
        keep = plan_renewal(alloc.prefix, held, demand, self._horizon, self.config.allocator)
        floor = self.config.initial_size
        if keep is None:
            rest = (
                sum(h.prefix.num_addresses for h in held if h.renewing) - alloc.prefix.num_addresses
            )
            if rest < floor:
                keep = alloc.prefix
        elif keep != alloc.prefix and keep.num_addresses < floor:
            keep = alloc.prefix
        if keep != alloc.prefix and self._would_strand(alloc, keep):
            keep = alloc.prefix
        return keep

    def _would_strand(self, alloc: Allocation, keep: Prefix | None) -> bool:
        """Whether keeping only ``keep`` of a managed prefix (nothing when None) would leave
        a child's prefix or our own LOCAL space outside it: §17.1.5 returns *unused*
        space, and the demand's counts do not say where in the prefix the use is."""
        if alloc.kind is not DOMAIN or not self.non_leaf:
            return False
        now, outer = self._now, alloc.prefix
        inner = [a.prefix for a in self.allocations.values() if a.kind is LOCAL]
        # Our own LOCAL claims under way count as our LOCAL space already does, and ...
        inner += [p.claim.prefix for p in self.pending if p.kind is LOCAL]
        # ... children's claims under way count too: they become prefixes a waiting
        # period on.
        inner += [
            e.claim.prefix
            for e in self.cache.of_role(Role.CHILD)
            if e.claim.type in _CHILD_HOLDS
            and e.expires > now
            and e.claim.origin_domain != self.config.local_domain
        ]
        return any(
            covers(outer, p) and (keep is None or not covers(keep, p))
            for p in inner
            if p.version == outer.version
        )

    def _deprecate(self, alloc: Allocation, reason: str) -> None:
        if alloc.renewing:
            alloc.renewing = False
            self._events.append(PrefixDeprecated(alloc.prefix, alloc.kind, alloc.expires, reason))

    def _schedule_renewal(self, alloc: Allocation, *, at: float | None = None) -> None:
        if not any(s.extends == alloc.prefix for s in self.scheduled):
            self._schedule_on(alloc, alloc.prefix, "renew", at=at)

    # --- propagation ---------------------------------------------------------------------

    def _originate(self, claim: Claim, *, parent: DomainId | None, clash: bool = False) -> None:
        entry = CacheEntry(claim, None, parent, clash=clash)
        if self.cache.add(entry):
            self._propagate(entry, exclude=None)

    def _propagate(self, entry: CacheEntry, *, exclude: str | None) -> None:
        # Rol on the wire is the updated role: what the origin is to us (§7.3, §11.1).
        if len(self.neighbors) == (exclude in self.neighbors):
            return  # no session but the one it came on (a leaf hearing its parent's relay)
        for neighbor in self._audience_of(entry, exclude=exclude):
            self._outbox.setdefault(neighbor.key, []).append(entry.claim)

    def _audience_of(self, entry: CacheEntry, *, exclude: str | None) -> list[Neighbor]:
        c = entry.claim
        who: Audience = audience(
            c.type,
            c.origin_role,
            hint=is_hint(c),
            origin_domain=c.origin_domain,
            denied=entry.denied,
        )
        out = []
        for n in self.neighbors.values():
            if n.key == exclude:
                continue
            if any(covers(z, c.prefix) for z in n.scope_boundary):
                # §4.5: a message of a scope (its prefix inside the zone's range) does not
                # cross that zone's boundary; one of an enclosing scope still does.
                continue
            if n.role is Role.INTERNAL:
                ok = who.internal
            elif n.role is Role.PARENT:
                ok = who.all_parents or (
                    who.parent_nodes and entry.parent is not None and n.domain == entry.parent
                )
            elif n.role is Role.SIBLING:
                ok = who.siblings and entry.parent is not None and n.session_parent == entry.parent
            else:
                ok = who.children and (who.children_of is None or n.domain == who.children_of)
            if ok:
                out.append(n)
        return out

    # --- derived sets ----------------------------------------------------------------------

    def _update_leaf_mode(self) -> None:
        """§12.2: non-leaf while any UPDATE originated by a child is cached."""
        # Some UPDATE of a child is live exactly when the latest of them expires later.
        non_leaf = self.cache.child_expiry > self._now
        if not non_leaf and self._now < self._restored_non_leaf_until:
            # Restored from storage with LOCAL space: the children's claims are not stored
            # and come back only as their sessions do (§11.8); until then the MAASs keep
            # the LOCAL space, not the children's.
            non_leaf = any(a.kind is LOCAL for a in self.allocations.values())
        if non_leaf != self.non_leaf:
            self.non_leaf = non_leaf
            self._events.append(LeafModeChanged(non_leaf))

    def _withdrawn_ranges(self, kind: SpaceKind, now: float) -> list[Prefix]:
        """Our domain's live WITHDRAWs over ``kind`` space.  LOCAL space lies inside the
        DOMAIN space, so a WITHDRAW of DOMAIN space cuts it too (§11.7.3: "stop advertising
        the WITHDRAW range to the MAASs")."""
        withdraws = self.cache.of_origin(ClaimType.WITHDRAW, self.config.local_domain)
        if not withdraws:
            return []
        roles = {Role.INTERNAL} if kind is DOMAIN else {Role.INTERNAL, Role.CHILD}
        held = self._held_prefixes(kind)
        return [
            e.claim.prefix
            for e in withdraws
            if e.expires > now
            and e.claim.origin_role in roles
            and any(overlaps(e.claim.prefix, a) for a in held)
        ]

    def _usable_of(self, alloc: Allocation, now: float) -> list[Prefix]:
        cuts = self._withdrawn_ranges(alloc.kind, now)
        return subtract([alloc.prefix], cuts) if cuts else [alloc.prefix]

    def _has_usable(self, kind: SpaceKind, now: float) -> bool:
        """Whether :meth:`_usable` is not empty, without building it: the planner asks on
        every input, and our own WITHDRAWs, which would cut it, are rare."""
        held = self._live_prefixes(kind, now)
        if not held or not self.cache.of_origin(ClaimType.WITHDRAW, self.config.local_domain):
            return bool(held)
        return bool(subtract(held, self._withdrawn_ranges(kind, now)))

    def _usable(self, kind: SpaceKind, now: float) -> list[Prefix]:
        return subtract(self._live_prefixes(kind, now), self._withdrawn_ranges(kind, now))

    def _grib_set(self, now: float) -> frozenset[Prefix]:
        """§5.1 d), §4.2, §11.7.3: the DOMAIN prefixes minus withdrawn ranges, except a
        clash WITHDRAW of a sub-range held shorter than the prefix (§11.7.3 special case).
        The same set object while nothing it is made of changed."""
        pieces: list[Prefix] = []
        withdraws = [
            e
            for e in self.cache.of_origin(ClaimType.WITHDRAW, self.config.local_domain)
            if e.expires > now and e.claim.origin_role is Role.INTERNAL
        ]
        # The same prefixes and WITHDRAWs give the same set (every input asks).
        key = (
            tuple(self._live_prefixes(DOMAIN, now)),
            tuple(id(w) for w in withdraws),
        )
        if not withdraws and self._grib_memo[0] == key:
            return self._grib_memo[1]
        for alloc in self.allocations.values():
            if alloc.kind is not DOMAIN or alloc.expires <= now:
                continue
            cuts = [
                w.claim.prefix
                for w in withdraws
                if overlaps(w.claim.prefix, alloc.prefix)
                and not (
                    w.clash
                    and covers(alloc.prefix, w.claim.prefix)
                    and w.claim.prefix != alloc.prefix
                    and w.claim.holdtime < alloc.lifetime
                )
            ]
            pieces += subtract([alloc.prefix], cuts) if cuts else [alloc.prefix]
        grib = frozenset(collapse(pieces))
        if grib == self.grib:
            grib = self.grib
        if not withdraws:
            self._grib_memo = (key, grib)
        return grib


_HANDLERS: Final = {
    ClaimType.PREFIX_IN_USE: ClaimEngine._on_prefix_in_use,
    ClaimType.CLAIM_DENIED: ClaimEngine._on_claim_denied,
    ClaimType.CLAIM_TO_EXPAND: ClaimEngine._on_claim,
    ClaimType.NEW_CLAIM: ClaimEngine._on_claim,
    ClaimType.PREFIX_MANAGED: ClaimEngine._on_prefix_managed,
    ClaimType.WITHDRAW: ClaimEngine._on_withdraw,
}


def _smallest(grow: Grow) -> int:
    """The fewest addresses a planned claim can take: its choice-105 fallback, if any."""
    return grow.fallback or grow.size


def _pieces(bases: list[Prefix], cuts: list[Prefix]) -> list[Prefix]:
    """``bases`` less ``cuts``, each base's remainder on its own: unlike :func:`subtract`,
    two adjacent bases are not joined into one larger prefix."""
    if not cuts:
        return bases
    return [piece for base in bases for piece in subtract([base], cuts)]


def _pack(claims: Iterable[Claim]) -> Iterator[Update]:
    """UPDATEs of at most MAX_MESSAGE_LENGTH octets, each claim once, order kept."""
    seen: set[Claim] = set()
    batch: list[Claim] = []
    room = _UPDATE_ROOM
    for claim in claims:
        if claim in seen:
            continue
        seen.add(claim)
        size = len(encode_claim(claim))
        if batch and size > room:
            yield Update(tuple(batch))
            batch, room = [], _UPDATE_ROOM
        batch.append(claim)
        room -= size
    if batch:
        yield Update(tuple(batch))
