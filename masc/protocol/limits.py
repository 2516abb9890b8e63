"""Per-peer limits on what a peer may make us hold and process (RFC 2909 §14).

§14: "A misbehaving node may attempt a Denial of Service attack by sending a large number of
colliding messages that would prevent any of its siblings from allocating more addresses."
Each claim we accept occupies address space in our cache (§11.2, §12.3: we do not claim
what others claim), so a peer that floods claims can starve everyone else.  BGP answers the
same threat with a maximum-prefix limit per neighbour; this module is that for MASC:

* ``max_claims``: the number of distinct claims (origin domain, origin node, prefix) of
  the types that occupy space — PREFIX_IN_USE, CLAIM_TO_EXPAND, NEW_CLAIM — we hold from
  one session at once.  A renewal replaces its earlier copy, a WITHDRAW frees its prefix,
  and a claim counts for its Claim Holdtime from when it arrived.
* ``max_update_rate`` / ``update_burst``: UPDATE messages per second from the session, as
  a token bucket, so the §11.8 replay after an Establishment (many UPDATEs at once) fits in
  the burst while a sustained flood does not.

What happens past a limit is the ``action``: ``warn`` logs and accepts, ``drop`` ignores
what is past the limit (the rest of the UPDATE still counts), ``reset`` closes the session
with Cease and lets the automatic-restart back-off (§10) hold it down, like BGP's
maximum-prefix restart.  The limiter is sans-IO: it takes the UPDATE and the time.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from masc.protocol.constants import ClaimType
from masc.protocol.errors import CoreMisuse
from masc.protocol.wire.messages import Claim, DomainId, NodeId, Prefix, Update

# The claim types that hold address space while they live (§11.2-§11.4, §12.3).
_OCCUPYING = frozenset({ClaimType.PREFIX_IN_USE, ClaimType.CLAIM_TO_EXPAND, ClaimType.NEW_CLAIM})


class LimitAction(enum.Enum):
    WARN = "warn"
    DROP = "drop"
    RESET = "reset"


@dataclass(frozen=True, slots=True)
class UpdateLimits:
    """One session's limits; None for no limit.  ``update_burst`` None means ten seconds'
    worth of ``max_update_rate``, and never fewer than 100 UPDATEs."""

    max_claims: int | None = None
    max_update_rate: float | None = None
    update_burst: int | None = None
    action: LimitAction = LimitAction.DROP

    def __post_init__(self) -> None:
        if self.max_claims is not None and self.max_claims < 1:
            raise CoreMisuse("max_claims must be at least 1")
        if self.max_update_rate is not None and not self.max_update_rate > 0:
            raise CoreMisuse("max_update_rate must be positive")
        if self.update_burst is not None and self.update_burst < 1:
            raise CoreMisuse("update_burst must be at least 1")

    @property
    def any(self) -> bool:
        return self.max_claims is not None or self.max_update_rate is not None

    @property
    def burst(self) -> float:
        if self.update_burst is not None:
            return float(self.update_burst)
        return max(100.0, 10.0 * (self.max_update_rate or 0.0))


@dataclass(frozen=True, slots=True)
class Exceeded:
    """A limit crossed: reported once when it is first crossed, again only after the
    session fell back under it (so a flood makes one log line, not one per UPDATE)."""

    limit: str  # "max_claims" or "max_update_rate"
    action: LimitAction
    detail: str


@dataclass(frozen=True, slots=True)
class Admission:
    """What to do with one UPDATE: hand ``update`` (None: nothing of it) to the engine,
    report ``exceeded``, and close the session when ``reset``.  ``dropped`` counts the
    attributes left out."""

    update: Update | None
    exceeded: tuple[Exceeded, ...] = ()
    dropped: int = 0
    reset: bool = False


_ClaimKey = tuple[DomainId, NodeId, Prefix]


class UpdateLimiter:
    """The limits of one Established connection; a new connection starts a new limiter
    (its peer replays its whole state, §11.8)."""

    def __init__(self, limits: UpdateLimits, *, now: float) -> None:
        self.limits = limits
        # claim -> (when it stops counting on our clock, its latest Claim Timestamp)
        self._held: dict[_ClaimKey, tuple[float, int]] = {}
        self._tokens = limits.burst
        self._refilled_at = now
        self._over: set[str] = set()  # limits currently exceeded (reported already)

    @property
    def claims_held(self) -> int:
        return len(self._held)

    def admit(self, update: Update, *, now: float) -> Admission:
        limits = self.limits
        exceeded: list[Exceeded] = []
        if limits.max_update_rate is not None and not self._take_token(now):
            self._exceed(
                "max_update_rate",
                f"more than {limits.max_update_rate:g} UPDATEs/s (burst {limits.burst:g})",
                exceeded,
            )
            if limits.action is LimitAction.RESET:
                return Admission(None, tuple(exceeded), len(update.attributes), reset=True)
            if limits.action is LimitAction.DROP:
                return Admission(None, tuple(exceeded), len(update.attributes))
        else:
            self._over.discard("max_update_rate")
        if limits.max_claims is None:
            return Admission(update, tuple(exceeded))
        kept: list[Claim] = []
        for claim in update.attributes:
            if self._admit_claim(claim, now):
                kept.append(claim)
                continue
            self._exceed(
                "max_claims", f"more than {limits.max_claims} claims held from this peer", exceeded
            )
            if limits.action is LimitAction.RESET:
                return Admission(None, tuple(exceeded), len(update.attributes), reset=True)
            if limits.action is LimitAction.WARN:
                self._hold(claim, now)
                kept.append(claim)
        dropped = len(update.attributes) - len(kept)
        if not kept:
            return Admission(None, tuple(exceeded), dropped)
        admitted = update if not dropped else replace(update, attributes=tuple(kept))
        return Admission(admitted, tuple(exceeded), dropped)

    def _take_token(self, now: float) -> bool:
        rate = self.limits.max_update_rate
        assert rate is not None
        elapsed = max(0.0, now - self._refilled_at)
        self._tokens = min(self.limits.burst, self._tokens + elapsed * rate)
        self._refilled_at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def _admit_claim(self, claim: Claim, now: float) -> bool:
        """Whether ``claim`` fits under max_claims (bookkeeping done when it does).

        Times are the session's clock, not the claim's Unix timestamps: a claim counts from
        its arrival for its Claim Holdtime, never less than it can live (its timestamp is
        not later than its arrival, §12.3)."""
        if claim.type is ClaimType.WITHDRAW:
            self._withdraw(claim, now)
            return True
        if claim.type not in _OCCUPYING:
            return True
        key = (claim.origin_domain, claim.origin_node, claim.prefix)
        if key in self._held:
            self._hold(claim, now)  # a renewal or a repeat: no new space
            return True
        assert self.limits.max_claims is not None
        if len(self._held) >= self.limits.max_claims:
            self._expire(now)
        if len(self._held) >= self.limits.max_claims:
            return False
        self._over.discard("max_claims")
        self._hold(claim, now)
        return True

    def _withdraw(self, withdraw: Claim, now: float) -> None:
        """§5.4, §11.7: a WITHDRAW frees the claims of its domain on its prefix, but only
        those it outlives and does not predate: the engine stops counting a claim as
        withdrawn when the WITHDRAW expires (a WITHDRAW with a holdtime of one second must
        not buy a slot for a claim that blocks space for days)."""
        until = now + withdraw.holdtime
        gone = [
            k
            for k, (held_until, timestamp) in self._held.items()
            if k[0] == withdraw.origin_domain
            and k[2] == withdraw.prefix
            and withdraw.timestamp >= timestamp
            and until >= held_until
        ]
        for key in gone:
            del self._held[key]

    def _hold(self, claim: Claim, now: float) -> None:
        if claim.type in _OCCUPYING:
            key = (claim.origin_domain, claim.origin_node, claim.prefix)
            until, timestamp = self._held.get(key, (0.0, 0))
            self._held[key] = (max(until, now + claim.holdtime), max(timestamp, claim.timestamp))

    def _expire(self, now: float) -> None:
        for key in [k for k, (until, _) in self._held.items() if until <= now]:
            del self._held[key]

    def _exceed(self, limit: str, detail: str, into: list[Exceeded]) -> None:
        """Report ``limit`` into ``into`` the first time it is exceeded since it was last
        respected."""
        if limit not in self._over:
            self._over.add(limit)
            into.append(Exceeded(limit, self.limits.action, detail))
