"""§14: third-party UPDATEs of siblings and children are believed only via the common parent
(``Policy.third_party``; docs/conformance.md).

"A Denial of Service attack that uses multiple origin addresses can be prevented if a
third-party UPDATE (e.g. by a non-directly connected sibling) is accepted only if it is sent
via the common parent domain, and the MASC nodes in the parent domain accept children
UPDATEs only if they come via an internal peer, or come directly from a child node that is
same as the Origin Node ID."  The world is ``tests.protocol.test_engine``'s.
"""

from __future__ import annotations

from typing import Any

import pytest

from masc.protocol.constants import TLD_ID, ClaimType, Role
from masc.protocol.engine import Policy, ThirdParty
from masc.protocol.events import PolicyNotice
from masc.protocol.wire.messages import Claim
from tests.protocol.engine_helpers import T0, Net, claim, net4, of_type, rejects, sends
from tests.protocol.test_engine import (
    C_DOM,
    C_NODE,
    NEW,
    P_DOM,
    P_NODE,
    S_DOM,
    S_NODE,
    X_DOM,
    X_NODE,
    allocated,
    sub,
    world,
)

I, C, S, P = Role.INTERNAL, Role.CHILD, Role.SIBLING, Role.PARENT  # noqa: E741
OTHER_SIBLING = 23  # a child of P that x has no session with
OTHER_NODE = 0x17000001
PREFIX = "239.192.77.0/24"


def _world(mode: ThirdParty, **kw: Any) -> Net:
    return world(policy=Policy(third_party=mode), **kw)


def _believed(net: Net, c: Claim) -> bool:
    return any(e.claim.prefix == c.prefix and e.claim.origin_domain == c.origin_domain
               for e in net["x"].cache)  # fmt: skip


def _ignored(events: list[Any]) -> list[PolicyNotice]:
    return [n for n in of_type(events, PolicyNotice) if n.event == "third_party_ignored"]


def _relayed_by_sibling() -> Claim:
    """A claim of domain 23, relayed by sibling s: Rol=SIBLING as s sees it."""
    return claim(NEW, S, PREFIX, domain=OTHER_SIBLING, node=OTHER_NODE, ts=T0)


def test_s14_a_claim_of_a_non_adjacent_sibling_relayed_by_a_sibling_is_ignored() -> None:
    net = _world(ThirdParty.VIA_PARENT)
    relayed = _relayed_by_sibling()
    events = net.inject("s", "x", relayed)
    assert len(_ignored(events)) == 1
    assert not rejects(events), "a legal UPDATE is not answered with a NOTIFICATION"
    assert not _believed(net, relayed)
    assert not sends(events), "an ignored claim is not passed on"


def test_s14_the_same_claim_via_the_common_parent_is_believed() -> None:
    net = _world(ThirdParty.VIA_PARENT)
    # The parent relays its child 23's claim: Rol=CHILD as p sees it (Table 1 -> SIBLING).
    via_parent = claim(NEW, C, PREFIX, domain=OTHER_SIBLING, node=OTHER_NODE, ts=T0)
    events = net.inject("p", "x", via_parent)
    assert not _ignored(events) and not rejects(events)
    assert _believed(net, via_parent)


def test_s14_a_sibling_s_own_claim_is_believed() -> None:
    net = _world(ThirdParty.VIA_PARENT)
    own = claim(NEW, I, PREFIX, domain=S_DOM, node=S_NODE, ts=T0)
    events = net.inject("s", "x", own)
    assert not _ignored(events)
    assert _believed(net, own)


def test_s14_accept_mode_believes_what_table_1_allows() -> None:
    net = _world(ThirdParty.ACCEPT)
    relayed = _relayed_by_sibling()
    events = net.inject("s", "x", relayed)
    assert not _ignored(events)
    assert _believed(net, relayed)


def test_s14_sibling_tlds_keep_relaying_they_have_no_common_parent_domain() -> None:
    """Top-level domains form a sparse mesh (App. B): a TLD hears a far TLD's claims only
    through other TLDs."""
    net = Net()
    net.engine("x", X_DOM, X_NODE, global_pool=(net4("239.192.0.0/16"),),
               policy=Policy(third_party=ThirdParty.VIA_PARENT))  # fmt: skip
    net.stub("s", S_DOM, S_NODE)
    net.link("x", "s", S, parent=TLD_ID)
    far_tld = claim(NEW, S, PREFIX, domain=OTHER_SIBLING, node=OTHER_NODE, ts=T0)
    events = net.inject("s", "x", far_tld)
    assert not _ignored(events)
    assert _believed(net, far_tld)


@pytest.mark.parametrize("mode", [ThirdParty.VIA_PARENT, ThirdParty.STRICT])
def test_s14_a_parent_ignores_a_child_relaying_its_sibling_s_claim(mode: ThirdParty) -> None:
    """x is the parent of child domain 30 (c): c passes on a claim of domain 31, its
    sibling (Rol=SIBLING as c sees it); 31 is x's child too and must say it itself."""
    net = _world(mode)
    relayed = claim(NEW, S, "239.192.78.0/24", domain=31, node=0x1F000009, ts=T0)
    events = net.inject("c", "x", relayed)
    assert len(_ignored(events)) == 1 and not rejects(events)
    assert not _believed(net, relayed)


def test_s14_strict_a_child_s_claim_only_from_its_origin_node() -> None:
    """c2 is another node of child domain 30: it relays c's claim.  via-parent believes it
    (the domain is the child's own), strict wants it "directly from a child node that is
    same as the Origin Node ID"."""
    loose, strict = _world(ThirdParty.VIA_PARENT), _world(ThirdParty.STRICT)
    ours = allocated(loose)
    assert allocated(strict) == ours  # same seed, same choice
    c_claim = claim(NEW, I, sub(ours, 28), domain=C_DOM, node=C_NODE, ts=loose.now)
    events = loose.inject("c2", "x", c_claim)
    assert not _ignored(events) and not rejects(events) and _believed(loose, c_claim)
    assert len(_ignored(strict.inject("c2", "x", c_claim))) == 1
    assert not _believed(strict, c_claim)
    events = strict.inject("c", "x", c_claim)
    assert not _ignored(events) and not rejects(events) and _believed(strict, c_claim)


def test_s14_internal_peers_and_parents_relay_by_design() -> None:
    """Only sibling and child sessions are ever third-party: an internal peer passing on a
    child's claim, or a parent passing on its own, is believed in strict mode too."""
    net = _world(ThirdParty.STRICT)
    ours = allocated(net)
    via_internal = claim(NEW, C, sub(ours, 28), domain=C_DOM, node=C_NODE, ts=net.now)
    events = net.inject("i", "x", via_internal)
    assert not _ignored(events) and not rejects(events)
    assert _believed(net, via_internal)
    parents_own = claim(NEW, I, "239.192.81.0/24", domain=P_DOM, node=P_NODE, ts=T0)
    assert not _ignored(net.inject("p", "x", parents_own))


def test_s14_an_illegal_relayed_update_still_gets_its_notification() -> None:
    """A CLAIM_DENIED from a sibling is illegal (§11.3.1) whoever originated it: the
    third-party rule does not hide the NOTIFICATION."""
    net = _world(ThirdParty.VIA_PARENT)
    denial = claim(ClaimType.CLAIM_DENIED, S, PREFIX, domain=OTHER_SIBLING, node=OTHER_NODE)
    events = net.inject("s", "x", denial)
    assert rejects(events) and not _ignored(events)


def test_s14_our_own_claims_handed_back_by_a_child_are_left_to_restore_from() -> None:
    """Review finding: a non-leaf domain's local claims (Rol=CHILD, our own domain) coming
    back through a child were taken for a third party's; restore_from decides instead."""
    trusting = frozenset({Role.PARENT, Role.INTERNAL, Role.CHILD})
    net = world(policy=Policy(third_party=ThirdParty.STRICT, restore_from=trusting))
    ours = allocated(net)
    # Our local claim as the child passes it back: to the child we are a sibling of its
    # own (Table 1: CHILD via PARENT -> SIBLING), so Rol=SIBLING; to us, Rol=CHILD again.
    own_local = claim(ClaimType.PREFIX_IN_USE, S, sub(ours, 28), domain=X_DOM, node=X_NODE,
                      ts=net.now)  # fmt: skip
    events = net.inject("c", "x", own_local)
    assert not _ignored(events)


def test_policy_default_is_via_parent() -> None:
    assert Policy().third_party is ThirdParty.VIA_PARENT
