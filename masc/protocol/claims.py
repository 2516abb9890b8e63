"""The claim cache and the claim comparison function (RFC 2909 §5.1.1, §11.1, §12.3).

Every UPDATE attribute a node accepts, and every one it originates, is kept in one
:class:`ClaimCache`, stored with its *Updated* Origin Role (what the origin is to this
node, Table 1 of §11.1).  Storing the updated role makes the §11.1 duplicate test also
stop loops: the same claim reaching a node over two paths has the same updated role, so the
second copy is dropped.  The cache is also the node's memory of who holds what, which is
how a free prefix is found and how the full state is replayed to a peer (§11.8).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from masc.protocol.constants import AddressFamily, ClaimType, Role
from masc.protocol.wire.messages import Claim, DomainId, NodeId, Prefix

# §5.1.1: PREFIX_IN_USE > CLAIM_DENIED > CLAIM_TO_EXPAND > NEW_CLAIM.  The type codes are
# already in that order (0 beats 3); PREFIX_MANAGED and WITHDRAW are never compared.
COMPARABLE = frozenset(
    {
        ClaimType.PREFIX_IN_USE,
        ClaimType.CLAIM_DENIED,
        ClaimType.CLAIM_TO_EXPAND,
        ClaimType.NEW_CLAIM,
    }
)
CLAIMS = frozenset({ClaimType.PREFIX_IN_USE, ClaimType.CLAIM_TO_EXPAND, ClaimType.NEW_CLAIM})


def precedence(claim: Claim) -> tuple[int, int, int]:
    """§5.1.1 as a sort key: the smallest key wins."""
    return (int(claim.type), claim.timestamp, int(claim.origin_node))


def wins(a: Claim, b: Claim) -> bool:
    """Whether claim ``a`` beats claim ``b`` by §5.1.1: type precedence, then the earliest
    timestamp, then the smallest Origin Node Identifier."""
    return precedence(a) < precedence(b)


def is_hint(claim: Claim) -> bool:
    """§11.5: a NEW_CLAIM with Address 0 is a child's hint that it wants more space."""
    return claim.type is ClaimType.NEW_CLAIM and int(claim.prefix.network_address) == 0


Identity = tuple[Role, bool, ClaimType, AddressFamily, int, int, int, DomainId, NodeId, Prefix]


def identity(claim: Claim) -> Identity:
    """§11.1: the fields whose equality makes a new UPDATE a duplicate of a cached one.

    ``claim.origin_role`` is the *updated* role here (module docstring)."""
    return (
        claim.origin_role,
        claim.deprecated,
        claim.type,
        claim.family,
        claim.timestamp,
        claim.lifetime,
        claim.holdtime,
        claim.origin_domain,
        claim.origin_node,
        claim.prefix,
    )


@dataclass(slots=True)
class CacheEntry:
    """One cached attribute.

    ``claim.origin_role`` is the updated role, which is also the Rol this node writes when
    it passes the attribute on.  ``via`` is the session it came from (None: originated
    here).  ``parent`` is the parent domain whose space the prefix was associated with
    (§11), when that is known.  ``denied`` marks a child claim this node answered with
    CLAIM_DENIED (it is then passed to internal peers only, §11.4.3) or a claim that some
    parent denied; ``clash`` marks a WITHDRAW this domain originated because of a clash
    (§11.7.3).
    """

    claim: Claim
    via: str | None
    parent: DomainId | None
    denied: bool = False
    clash: bool = False

    @property
    def expires(self) -> int:
        """§11.1: the claim is expired once Timestamp + Holdtime <= now."""
        return self.claim.timestamp + self.claim.holdtime

    def live(self, now: float) -> bool:
        return self.expires > now


class ClaimCache:
    """Cached attributes by §11.1 identity, kept until expiry plus the §12.3 grace."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self._entries: dict[Identity, CacheEntry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[CacheEntry]:
        return iter(list(self._entries.values()))

    def __contains__(self, claim: Claim) -> bool:
        return identity(claim) in self._entries

    def add(self, entry: CacheEntry) -> bool:
        """Store ``entry``; False (and nothing stored) if it is a duplicate."""
        key = identity(entry.claim)
        if key in self._entries:
            return False
        self._entries[key] = entry
        return True

    def get(self, claim: Claim) -> CacheEntry | None:
        return self._entries.get(identity(claim))

    def discard(self, claim: Claim) -> None:
        self._entries.pop(identity(claim), None)

    def purge(self, now: float) -> list[CacheEntry]:
        """Forget entries past expiry plus grace (§12.3): only then is their space free."""
        gone = [e for k, e in self._entries.items() if e.expires + self.grace <= now]
        for entry in gone:
            del self._entries[identity(entry.claim)]
        return gone

    def next_purge(self) -> float | None:
        if not self._entries:
            return None
        return min(e.expires for e in self._entries.values()) + self.grace

    def held(self, now: float) -> Iterator[CacheEntry]:
        """Entries that still hold their space: not past expiry plus grace (§12.3)."""
        for entry in self._entries.values():
            if entry.expires + self.grace > now:
                yield entry

    def live(self, now: float) -> Iterator[CacheEntry]:
        """Entries that have not expired (Timestamp + Holdtime > now)."""
        for entry in self._entries.values():
            if entry.live(now):
                yield entry
