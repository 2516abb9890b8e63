"""What of the claim engine and the grant table goes to stable storage, and back (RFC 2909 §13).

§13 asks a MASC speaker with local storage to keep "the prefixes allocated by the local
domain"; we also keep our own pending claims (so a restart inside a waiting period keeps
the claim's timestamp and its place in collisions) and the MAAS grants (a MAAS must never
find its range handed to another after our restart).  The store holds plain records; this
module is the only place that knows both shapes.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import ip_network

from masc.maas.grants import Grant, GrantTable
from masc.protocol.constants import ClaimType, Role
from masc.protocol.engine import Allocation, ClaimEngine, PendingClaim
from masc.protocol.events import SpaceKind
from masc.protocol.wire.messages import Claim, DomainId, NodeId
from masc.store.records import StoredAllocation, StoredGrant, StoredMaas, StoredPending


def stored_allocations(engine: ClaimEngine) -> list[StoredAllocation]:
    return [
        StoredAllocation(
            kind=a.kind.value,
            prefix=str(a.prefix),
            parent=None if a.parent is None else int(a.parent),
            timestamp=a.timestamp,
            lifetime=a.lifetime,
            origin_node=int(a.origin_node),
            allocated_at=a.allocated_at,
            renewing=a.renewing,
        )
        for a in engine.allocations.values()
    ]


def stored_pending(engine: ClaimEngine) -> list[StoredPending]:
    return [
        StoredPending(
            kind=p.kind.value,
            prefix=str(p.claim.prefix),
            claim_type=int(p.claim.type),
            timestamp=p.claim.timestamp,
            lifetime=p.claim.lifetime,
            holdtime=p.claim.holdtime,
            parent=None if p.parent is None else int(p.parent),
            purpose=p.purpose,
            deadline=p.deadline,
            extends=None if p.extends is None else str(p.extends),
            replaces=tuple(map(str, p.replaces)),
        )
        for p in engine.pending
    ]


def allocations_from(records: Iterable[StoredAllocation]) -> list[Allocation]:
    return [
        Allocation(
            prefix=ip_network(r.prefix),
            kind=SpaceKind(r.kind),
            parent=None if r.parent is None else DomainId(r.parent),
            timestamp=r.timestamp,
            lifetime=r.lifetime,
            origin_node=NodeId(r.origin_node),
            allocated_at=r.allocated_at,
            renewing=r.renewing,
        )
        for r in records
    ]


def pending_from(records: Iterable[StoredPending], engine: ClaimEngine) -> list[PendingClaim]:
    """Our own claims: origin domain and node are ours; the role is what the claim was
    for (INTERNAL for the domain's space, CHILD for LOCAL space claimed as a child of
    ourselves, §12.2)."""
    cfg = engine.config
    out: list[PendingClaim] = []
    for r in records:
        kind = SpaceKind(r.kind)
        claim = Claim(
            type=ClaimType(r.claim_type),
            origin_role=Role.INTERNAL if kind is SpaceKind.DOMAIN else Role.CHILD,
            timestamp=r.timestamp,
            lifetime=r.lifetime,
            holdtime=r.holdtime,
            origin_domain=cfg.local_domain,
            origin_node=cfg.local_node,
            prefix=ip_network(r.prefix),
        )
        out.append(
            PendingClaim(
                claim=claim,
                kind=kind,
                parent=None if r.parent is None else DomainId(r.parent),
                purpose=r.purpose,  # type: ignore[arg-type]  # written from the Literal
                deadline=r.deadline,
                extends=None if r.extends is None else ip_network(r.extends),
                replaces=tuple(map(ip_network, r.replaces)),
            )
        )
    return out


def stored_grants(table: GrantTable) -> list[StoredGrant]:
    return [
        StoredGrant(
            maas=g.maas,
            prefix=str(g.prefix),
            expires=g.expires,
            active=g.active,
            granted_at=g.granted_at,
        )
        for g in table.grants()
    ]


def stored_maas(table: GrantTable, registered_at: dict[str, float]) -> list[StoredMaas]:
    return [
        StoredMaas(name=name, scopes=tuple(scopes), registered_at=registered_at.get(name, 0.0))
        for name, scopes in table.maas().items()
    ]


def grants_from(records: Iterable[StoredGrant]) -> list[Grant]:
    return [
        Grant(
            maas=r.maas,
            prefix=ip_network(r.prefix),
            expires=r.expires,
            active=r.active,
            granted_at=r.granted_at,
        )
        for r in records
    ]
