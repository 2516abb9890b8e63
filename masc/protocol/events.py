"""What the claim engine tells the shell (RFC 2909 §5, §11, §12).

The engine is sans-IO: every input returns a list of these.  The shell sends the UPDATEs
and NOTIFICATIONs on the named sessions, calls the G-RIB exporter, and logs the rest.
``generation`` names one Established period of a session, so an UPDATE computed for a
session that has since gone down is never written on its successor.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from masc.protocol.errors import UpdateMessageError
from masc.protocol.wire.messages import Claim, Prefix, Update


class SpaceKind(Enum):
    """§4.1 / §12.2: space claimed for the domain (from a parent, or from the global pool
    for a top-level domain) vs claimed by a non-leaf domain as a child of itself for its own
    MAASs."""

    DOMAIN = "domain"
    LOCAL = "local"

    # Hashed by identity, in C (members are singletons compared by identity): the engine
    # keys its allocations and memos by kind (masc.protocol.session.State says more).
    __hash__ = object.__hash__


@dataclass(frozen=True, slots=True)
class SendUpdate:
    peer: str
    generation: int
    update: Update


@dataclass(frozen=True, slots=True)
class RejectClaim:
    """Answer one attribute with a NOTIFICATION (§8.3); the attribute was not accepted."""

    peer: str
    generation: int
    error: UpdateMessageError


@dataclass(frozen=True, slots=True)
class GribInject:
    """§5.1 d): the prefix is the domain's; inject it into the G-RIB."""

    prefix: Prefix


@dataclass(frozen=True, slots=True)
class GribRemove:
    """§4.2 expiry, §5.4 release, §11.7 / §12.4 withdraw: remove it from the G-RIB."""

    prefix: Prefix


@dataclass(frozen=True, slots=True)
class ClaimSent:
    claim: Claim
    kind: SpaceKind
    purpose: str  # "new", "renew", "expand", "shrink"


@dataclass(frozen=True, slots=True)
class ClaimCancelled:
    """A pending or scheduled claim of ours will not be pursued (§5.1 a, c; §11.3.3).
    ``prefix`` is None for a scheduled claim whose prefix was not chosen yet."""

    prefix: Prefix | None
    kind: SpaceKind
    reason: str
    winner: Claim | None = None


@dataclass(frozen=True, slots=True)
class PrefixAllocated:
    """The Claim-Timer expired without a collision (§5.1 d), or a renewal / expansion
    finished (§5.2, §5.3), or an internal peer told us (§11.6.3)."""

    prefix: Prefix
    kind: SpaceKind
    expires: int
    origin_node: int
    purpose: str


@dataclass(frozen=True, slots=True)
class PrefixGone:
    """The prefix is no longer the domain's as such: ``reason`` is "expired" (§4.2),
    "released" (§5.4), "replaced" (its expansion covers it) or "aggregated" (an expansion
    of a neighbour covers it, §17.1.4)."""

    prefix: Prefix
    kind: SpaceKind
    reason: str


@dataclass(frozen=True, slots=True)
class PrefixDeprecated:
    """The domain stops renewing the prefix and lets it expire (RFC 2909 §17.1.4
    consolidation, §17.1.5 shrink): addresses in use may stay until ``expires``, but no new
    ones are handed out of it.  ``reason`` is "replaced", "under-used" or "shrunk"."""

    prefix: Prefix
    kind: SpaceKind
    expires: int
    reason: str


@dataclass(frozen=True, slots=True)
class RangeWithdrawn:
    """Part of the domain's space must not be used any more (§11.7.3, §12.4); ``restored``
    when the WITHDRAW timed out and the range may be used again."""

    prefix: Prefix
    restored: bool


@dataclass(frozen=True, slots=True)
class ClashDetected:
    """§12.4: a sibling's winning PREFIX_IN_USE overlaps our prefix."""

    clash_id: int
    local: Prefix
    winner: Claim
    manual: bool


@dataclass(frozen=True, slots=True)
class LeafModeChanged:
    """§12.2: the domain became non-leaf (first child UPDATE) or leaf again."""

    non_leaf: bool


@dataclass(frozen=True, slots=True)
class PolicyNotice:
    """Something an operator should see that is not an error of ours: a child over its soft
    threshold (App. B), a claim we could not place, a restored UPDATE we ignored (§14)."""

    event: str
    message: str


EngineEvent = (
    SendUpdate
    | RejectClaim
    | GribInject
    | GribRemove
    | ClaimSent
    | ClaimCancelled
    | PrefixAllocated
    | PrefixGone
    | PrefixDeprecated
    | RangeWithdrawn
    | ClashDetected
    | LeafModeChanged
    | PolicyNotice
)
