"""Who a MASC UPDATE comes from and who it goes to (RFC 2909 §4, §11.1, §11.2-§11.8).

Three pure pieces, each a transcription of the RFC:

* :func:`updated_origin_role`: Table 1 of §11.1 with its three special cases;
* :func:`audience`: the peers an accepted (or originated) attribute is passed to, from the
  propagation sentences of §4 and §11.2-§11.7;
* :func:`sync_rank` / :func:`sync_order`: the order of §11.8 in which the full state is
  sent to a peer whose session has just been (re)established.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Final

from masc.protocol.constants import ClaimType, Role
from masc.protocol.wire.messages import Claim, DomainId

I, C, S, P = Role.INTERNAL, Role.CHILD, Role.SIBLING, Role.PARENT  # noqa: E741 (Table 1's letters)

# §11.1 Table 1: (Origin Role as received, Locally-Configured Role) -> Updated Origin Role.
# The Locally-Configured Role is what *this node* is in the session to the forwarder (a
# node is a CHILD in its session with its parent); the result is what the origin is to this
# node.  A missing cell is the table's "---": an illegal UPDATE.
UPDATED_ROLE: Final[dict[tuple[Role, Role], Role]] = {
    (I, I): I, (I, C): P, (I, S): S, (I, P): C,
    (C, I): C, (C, C): S,
    (S, I): S, (S, S): S, (S, P): C,
    (P, I): P, (P, S): P,
}  # fmt: skip


def updated_origin_role(
    origin_role: Role,
    local_role: Role,
    claim_type: ClaimType,
    *,
    origin_domain: DomainId,
    local_domain: DomainId,
    remote_domain: DomainId,
    child_domains: Collection[DomainId] = (),
) -> Role | None:
    """§11.1: the Updated Origin Role, or None when Table 1 says the UPDATE is illegal.

    ``child_domains`` are the domains of our children, for the third special case's
    third-party child."""
    updated = UPDATED_ROLE.get((origin_role, local_role))
    if updated is Role.SIBLING and origin_domain == local_domain:
        # Our own UPDATEs back from a parent or sibling after a reboot, or internal peers
        # talking through other domains during an internal partition.
        return Role.INTERNAL
    if origin_role is Role.PARENT and local_role is Role.PARENT:
        if origin_domain == local_domain:
            # A parent's own UPDATEs coming back through its children.
            return Role.INTERNAL
        if claim_type is ClaimType.CLAIM_DENIED and (
            origin_domain == remote_domain or origin_domain in child_domains
        ):
            # A parent's CLAIM_DENIED coming back through the child it denied, or through
            # another child ("still should be changed to INTERNAL"; the engine may then
            # drop it).
            return Role.INTERNAL
    return updated


@dataclass(frozen=True, slots=True)
class Audience:
    """Peers to pass an attribute to.  ``parent`` is the parent domain the attribute's prefix
    belongs to (None when unknown); ``children_of`` narrows ``children`` to the nodes of
    one child domain."""

    internal: bool = False
    parent_nodes: bool = False
    siblings: bool = False
    children: bool = False
    all_parents: bool = False
    children_of: DomainId | None = None


_NOBODY: Final = Audience()
_UP: Final = Audience(internal=True, parent_nodes=True, siblings=True)  # §11.2.2, §11.4.2
_DOWN: Final = Audience(internal=True, children=True)  # §11.2.3, §11.7.1
_INTERNAL_ONLY: Final = Audience(internal=True)


def audience(
    claim_type: ClaimType,
    role: Role,
    *,
    hint: bool,
    origin_domain: DomainId,
    denied: bool,
) -> Audience:
    """Where an attribute of ``claim_type`` whose (updated) origin role is ``role`` goes.

    The same rules serve attributes this node originates (role INTERNAL, or CHILD for the
    claims a non-leaf domain makes as a child of itself, §12.2) and attributes it passes
    on; the caller never sends one back to the session it came from (§11).
    """
    t = claim_type
    if hint:
        # §11.5: a hint travels only among the child's domain and its parent's.
        if role is Role.CHILD:
            return _INTERNAL_ONLY
        if role is Role.INTERNAL:
            return Audience(internal=True, all_parents=True)
        return _NOBODY
    if role is Role.INTERNAL:
        if t is ClaimType.PREFIX_MANAGED:
            return _DOWN  # §5.1 d), §11.6.3 a)
        if t is ClaimType.CLAIM_DENIED:
            # §11.3.2; §11.4.3: to the children of the denied claim's domain.
            return Audience(internal=True, children=True, children_of=origin_domain)
        if t is ClaimType.WITHDRAW:
            return Audience(internal=True, parent_nodes=True, siblings=True, children=True)
        # PREFIX_IN_USE, CLAIM_TO_EXPAND, NEW_CLAIM: §5.1 b) and d), §11.4.4.  Siblings
        # too (docs/conformance.md): a sibling session may sit on another of our nodes.
        return _UP
    if role is Role.CHILD:
        if t in (ClaimType.CLAIM_DENIED, ClaimType.PREFIX_MANAGED):
            return _NOBODY  # illegal, rejected before this is asked
        if denied:
            return _INTERNAL_ONLY  # §11.4.3: the CLAIM_DENIED goes to the children instead
        return _DOWN  # §11.2.3, §11.4.3, §11.7.1
    if role is Role.SIBLING:
        if t in (ClaimType.CLAIM_DENIED, ClaimType.PREFIX_MANAGED):
            return _NOBODY
        return _UP  # §11.2.2, §11.4.2, §11.7.2
    # PARENT
    if t is ClaimType.WITHDRAW:
        return Audience(internal=True, siblings=True)  # §11.7.4
    if t in (ClaimType.PREFIX_MANAGED, ClaimType.CLAIM_DENIED):
        return _UP  # §11.6.1, §11.3.3
    return _NOBODY


# §11.8: groups in which state is replayed to a peer, by the peer's relation to us.
# Key: (updated origin role of the attribute, kind of attribute); missing keys go into
# the middle group of that relation.  Within a group, attributes go in _TYPE_ORDER, which
# keeps the two rules that always apply: PREFIX_IN_USE before the claims and WITHDRAWs of
# the same domain, WITHDRAW after everything else of the same domain.
_PM, _CLAIM, _CD, _WD = "managed", "claim", "denied", "withdraw"
_KIND: Final = {
    ClaimType.PREFIX_MANAGED: _PM,
    ClaimType.PREFIX_IN_USE: _CLAIM,
    ClaimType.CLAIM_TO_EXPAND: _CLAIM,
    ClaimType.NEW_CLAIM: _CLAIM,
    ClaimType.CLAIM_DENIED: _CD,
    ClaimType.WITHDRAW: _WD,
}
_TYPE_ORDER: Final = {
    ClaimType.PREFIX_MANAGED: 0,
    ClaimType.PREFIX_IN_USE: 1,
    ClaimType.CLAIM_TO_EXPAND: 2,
    ClaimType.NEW_CLAIM: 3,
    ClaimType.CLAIM_DENIED: 4,
    ClaimType.WITHDRAW: 5,
}
_UPWARD: Final = {  # §11.8.2 child to parent, §11.8.3 sibling to sibling
    (P, _PM): 1, (P, _WD): 1,
    (I, _CLAIM): 2, (S, _CLAIM): 2,
    (P, _CD): 3, (I, _WD): 3, (S, _WD): 3,
}  # fmt: skip
SYNC_GROUPS: Final[dict[Role, dict[tuple[Role, str], int]]] = {
    # §11.8.1 parent to child (the peer is our CHILD)
    Role.CHILD: {(I, _PM): 1, (I, _WD): 1, (C, _CLAIM): 2, (I, _CD): 3, (C, _WD): 3},
    Role.PARENT: _UPWARD,
    Role.SIBLING: _UPWARD,
    # §11.8.4 internal to internal; our own PREFIX_MANAGED goes with our PREFIX_IN_USE
    Role.INTERNAL: {
        (P, _PM): 1,
        (P, _WD): 1,
        (I, _CLAIM): 2,
        (S, _CLAIM): 2,
        (I, _PM): 2,
        (P, _CD): 3,
        (I, _WD): 3,
        (S, _WD): 3,
        (C, _CLAIM): 4,
        (I, _CD): 5,
        (C, _WD): 5,
    },
}


def sync_rank(peer_role: Role, role: Role, claim_type: ClaimType) -> tuple[int, int]:
    """Sort key of an attribute in the §11.8 replay to a peer that is ``peer_role`` to us."""
    group = SYNC_GROUPS[peer_role].get((role, _KIND[claim_type]), 3)
    return (group, _TYPE_ORDER[claim_type])


_BEFORE_PIU: Final = (ClaimType.CLAIM_TO_EXPAND, ClaimType.NEW_CLAIM, ClaimType.WITHDRAW)
_BEFORE_WD: Final = (
    ClaimType.PREFIX_IN_USE,
    ClaimType.CLAIM_TO_EXPAND,
    ClaimType.NEW_CLAIM,
    ClaimType.PREFIX_MANAGED,
)


def sync_order(peer_role: Role, claims: Iterable[Claim]) -> list[Claim]:
    """The §11.8 replay of ``claims`` (stored with their updated roles) to a peer that is
    ``peer_role`` to us.

    Attributes go by :func:`sync_rank` group, except where a group would break one of the
    two rules that "always apply" for the attributes of one origin domain; then the rule
    wins.  That happens for a non-leaf domain, whose claims for local use have Rol=CHILD
    (§11, §12.2) and so fall in the "children" groups while its other attributes do not:
    a PREFIX_IN_USE moves up to the earliest group of its domain's CLAIM_TO_EXPAND,
    NEW_CLAIM and WITHDRAW, and a WITHDRAW down to the latest group of its domain's
    PREFIX_IN_USE, CLAIM_TO_EXPAND, NEW_CLAIM and PREFIX_MANAGED.  Within a group the type
    order then puts them right.
    """
    items = list(claims)
    group = [sync_rank(peer_role, c.origin_role, c.type)[0] for c in items]
    by_domain: dict[DomainId, list[int]] = {}
    for i, c in enumerate(items):
        by_domain.setdefault(c.origin_domain, []).append(i)
    for members in by_domain.values():
        later = [group[i] for i in members if items[i].type in _BEFORE_PIU]
        for i in members:
            if items[i].type is ClaimType.PREFIX_IN_USE and later:
                group[i] = min(group[i], *later)
        earlier = [group[i] for i in members if items[i].type in _BEFORE_WD]
        for i in members:
            if items[i].type is ClaimType.WITHDRAW and earlier:
                group[i] = max(group[i], *earlier)
    ranked = sorted(
        range(len(items)),
        key=lambda i: (group[i], _TYPE_ORDER[items[i].type], items[i].timestamp),
    )
    return [items[i] for i in ranked]
