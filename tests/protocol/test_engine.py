"""The claim engine, one test per RFC 2909 rule (§4-§5, §8.3, §11, §12, §14).

Most tests put one engine, ``x`` (domain 20), among scripted peers (stubs) and script what
they say; a few wire several engines.  Everything runs on a fake Unix clock through
:class:`tests.protocol.engine_helpers.Net`.

The world of ``x``::

       p, p2 (domain 10)   (a parent domain of x; x also names 11 as a parent)
          |
   s ---- x ==== i          s: sibling w.r.t. parent 10 (domain 21); i: internal (domain 20)
   t --/  |  \\             t: sibling w.r.t. parent 11 (domain 22)
        c, c2  d            c, c2: nodes of child domain 30; d: child domain 31
"""

from __future__ import annotations

import random
from dataclasses import replace
from ipaddress import IPv4Network
from typing import Any

import pytest

from masc.protocol import engine as engine_module
from masc.protocol.allocation import Demand
from masc.protocol.claims import CacheEntry
from masc.protocol.constants import ClaimType, Role
from masc.protocol.engine import (
    ClashResolution,
    Policy,
    RequestRefused,
)
from masc.protocol.errors import UpdateSubcode
from masc.protocol.events import (
    ClaimCancelled,
    ClaimSent,
    ClashDetected,
    GribInject,
    GribRemove,
    LeafModeChanged,
    PolicyNotice,
    PrefixAllocated,
    PrefixGone,
    RangeWithdrawn,
    RejectClaim,
    SendUpdate,
    SpaceKind,
)
from masc.protocol.propagation import sync_rank
from masc.protocol.space import covers
from masc.protocol.wire.codec import encode_claim
from masc.protocol.wire.messages import Claim, DomainId, Prefix
from tests.protocol.engine_helpers import (
    DAY,
    T0,
    WAIT,
    Net,
    claim,
    general_rule_violations,
    net4,
    of_type,
    receivers,
    rejects,
    sends,
)

PIU = ClaimType.PREFIX_IN_USE
CD = ClaimType.CLAIM_DENIED
CTE = ClaimType.CLAIM_TO_EXPAND
NEW = ClaimType.NEW_CLAIM
PM = ClaimType.PREFIX_MANAGED
WD = ClaimType.WITHDRAW
I, C, S, P = Role.INTERNAL, Role.CHILD, Role.SIBLING, Role.PARENT  # noqa: E741
Sub = UpdateSubcode

P_DOM, X_DOM, S_DOM, T_DOM, C_DOM, D_DOM = 10, 20, 21, 22, 30, 31
X_NODE, I_NODE = 0x14000001, 0x14000002
P_NODE, P2_NODE = 0x0A000001, 0x0A000002
S_NODE, T_NODE = 0x15000001, 0x16000001
C_NODE, C2_NODE, D_NODE = 0x1E000001, 0x1E000002, 0x1F000001
PARENT_SPACE = "239.192.0.0/16"
PM_LIFETIME = 100 * DAY


def world(*, pm: bool = True, start: bool = True, seed: int = 1, **config: Any) -> Net:
    """``x`` and its stubs, all sessions up; ``pm``: p has sent P's PREFIX_MANAGED."""
    net = Net()
    config.setdefault("parent_domain_ids", (DomainId(P_DOM), DomainId(11)))
    net.engine("x", X_DOM, X_NODE, seed=seed, **config)
    for name, domain, node in (
        ("p", P_DOM, P_NODE),
        ("p2", P_DOM, P2_NODE),
        ("s", S_DOM, S_NODE),
        ("t", T_DOM, T_NODE),
        ("i", X_DOM, I_NODE),
        ("c", C_DOM, C_NODE),
        ("c2", C_DOM, C2_NODE),
        ("d", D_DOM, D_NODE),
    ):
        net.stub(name, domain, node)
    net.link("x", "p", P)
    net.link("x", "p2", P)
    net.link("x", "s", S, parent=P_DOM)
    net.link("x", "t", S, parent=11)
    net.link("x", "i", I)
    net.link("x", "c", C)
    net.link("x", "c2", C)
    net.link("x", "d", C)
    if pm:
        net.inject("p", "x", parent_pm())
    if start:
        net.start("x")
    net.clear()
    return net


def parent_pm(prefix: str = PARENT_SPACE, **kw: Any) -> Claim:
    kw.setdefault("lifetime", PM_LIFETIME)
    return claim(PM, I, prefix, domain=P_DOM, node=P_NODE, **kw)


def allocated(net: Net) -> Prefix:
    """Run until ``x`` holds its first DOMAIN prefix; returns it."""
    end = net.now + WAIT + 700
    while not net["x"].allocations and net.now < end:
        deadline = net["x"].next_deadline()
        assert deadline is not None
        net.run_until(min(deadline, end))
    (prefix,) = net["x"].managed_space()
    net.clear()
    return prefix


def pending(net: Net) -> Claim:
    """Run until ``x`` has sent its first claim; returns it."""
    net.run_for(700)
    (sent,) = net.events("x", ClaimSent)
    net.clear()
    return sent.claim


def subcodes(events: list[Any]) -> list[int]:
    return [r.error.subcode for r in rejects(events)]


def no_sends(events: list[Any]) -> bool:
    return not of_type(events, SendUpdate)


def sib(t: ClaimType, prefix: Prefix | str, **kw: Any) -> Claim:
    """An attribute the sibling s originated, as s sends it (Rol=INTERNAL)."""
    kw.setdefault("ts", T0)
    return claim(t, I, prefix, domain=S_DOM, node=S_NODE, **kw)


def kid(t: ClaimType, prefix: Prefix | str, **kw: Any) -> Claim:
    """An attribute child c originated, as c sends it (Rol=INTERNAL)."""
    return claim(t, I, prefix, domain=C_DOM, node=C_NODE, **kw)


def sub(prefix: Prefix, length: int, index: int = 0) -> Prefix:
    return list(prefix.subnets(new_prefix=length))[index]


# --- §11.1 accept / reject ------------------------------------------------------------------


def test_s11_1_table1_child_from_sibling_is_illegal_origin_role() -> None:
    net = world(start=False)
    bad = claim(PIU, C, "239.192.7.0/24", domain=S_DOM, node=S_NODE)
    events = net.inject("s", "x", bad)
    (reject,) = rejects(events)
    assert (reject.peer, reject.error.subcode) == ("s", Sub.ILLEGAL_ORIGIN_ROLE)
    assert reject.error.data == encode_claim(bad)
    assert no_sends(events)
    assert not any(e.claim.prefix == bad.prefix for e in net["x"].cache)


@pytest.mark.parametrize(
    ("peer", "rol"),
    [("s", C), ("c", C), ("p", S), ("p", P), ("c", P)],
)
def test_s11_1_table1_dashes_are_illegal_origin_role(peer: str, rol: Role) -> None:
    """The five "---" cells; x is PARENT to c, CHILD to p, SIBLING to s."""
    net = world(start=False)
    node = net.nodes[peer]
    bad = claim(WD, rol, "239.192.7.0/24", domain=int(node.domain) + 100, node=node.node)
    events = net.inject(peer, "x", bad)
    assert subcodes(events) == [Sub.ILLEGAL_ORIGIN_ROLE]
    assert rejects(events)[0].error.data == encode_claim(bad)
    assert no_sends(events)
    assert len(net["x"].cache) == 1  # the parent's PREFIX_MANAGED only


def test_s11_1_internal_origin_from_another_domain_is_illegal_origin_role() -> None:
    net = world(start=False)
    bad = claim(PM, I, "239.192.7.0/24", domain=99, node=I_NODE)
    events = net.inject("i", "x", bad)
    assert subcodes(events) == [Sub.ILLEGAL_ORIGIN_ROLE]
    assert not net["x"].allocations
    assert no_sends(events)


@pytest.mark.parametrize("age", [0, 1])
def test_s11_1_expired_claim_is_silently_dropped(age: int) -> None:
    """Timestamp + Claim Holdtime <= CurrentTime: no answer, nothing cached or sent."""
    net = world(start=False)
    old = sib(PIU, "239.192.7.0/24", ts=T0 - 1000 - age, lifetime=1000)
    events = net.inject("s", "x", old)
    assert events == []
    assert len(net["x"].cache) == 1


def test_s11_1_claim_one_second_from_expiry_is_accepted() -> None:
    net = world(start=False)
    events = net.inject("s", "x", sib(PIU, "239.192.7.0/24", ts=T0 - 999, lifetime=1000))
    assert rejects(events) == []
    assert receivers(events, sib(PIU, "239.192.7.0/24", ts=T0 - 999)) == {"i", "p", "p2"}


def test_s11_1_duplicate_is_silently_dropped_and_not_propagated_twice() -> None:
    net = world(start=False)
    piu = sib(PIU, "239.192.7.0/24")
    first = net.inject("s", "x", piu)
    assert sends(first)
    again = net.inject("s", "x", piu)
    assert again == []


def test_s11_1_duplicate_over_a_second_path_is_dropped() -> None:
    """The same attribute from another node with the same updated role (a loop)."""
    net = world(start=False)
    net.stub("s2", S_DOM, S_NODE + 1)
    net.link("x", "s2", S, parent=P_DOM)
    net.clear()
    piu = sib(PIU, "239.192.7.0/24")
    net.inject("s", "x", piu)
    assert net.inject("s2", "x", piu) == []


# --- §11.2 PREFIX_IN_USE --------------------------------------------------------------------


def test_s11_2_1_prefix_in_use_by_parent_is_illegal_origin_role() -> None:
    net = world(start=False)
    events = net.inject("p", "x", claim(PIU, I, "239.192.7.0/24", domain=P_DOM, node=P_NODE))
    assert subcodes(events) == [Sub.ILLEGAL_ORIGIN_ROLE]
    assert no_sends(events)


def test_s11_4_2_a_sibling_claim_after_the_parents_prefix_managed_expired_is_refused() -> None:
    """The parent's PREFIX_MANAGED that claims are associated with (§11) is remembered
    between inputs (engine._managed_by), but only while it lives: once it expires a
    sibling's claim has no parent prefix to lie in."""
    net = world(pm=False, start=False)
    net.inject("p", "x", parent_pm(ts=net.now, lifetime=DAY))
    assert subcodes(net.inject("s", "x", sib(NEW, "239.192.7.0/24", ts=net.now))) == []
    net.run_for(DAY + 1)
    late = net.inject("s", "x", sib(NEW, "239.192.9.0/24", ts=net.now))
    assert subcodes(late) == [Sub.NO_APPROPRIATE_PARENT_PREFIX]


def test_s11_2_2_prefix_in_use_by_sibling_without_parent_space_is_no_appropriate_parent() -> None:
    net = world(pm=False, start=False)
    bad = sib(PIU, "239.192.7.0/24")
    events = net.inject("s", "x", bad)
    assert subcodes(events) == [Sub.NO_APPROPRIATE_PARENT_PREFIX]
    assert rejects(events)[0].error.data == encode_claim(bad)
    assert no_sends(events)
    assert len(net["x"].cache) == 0


def test_s11_2_2_prefix_in_use_by_sibling_cancels_pending_claim() -> None:
    net = world()
    mine = pending(net)
    events = net.inject("s", "x", sib(PIU, mine.prefix, ts=T0 + 10_000))
    (cancelled,) = of_type(events, ClaimCancelled)
    assert cancelled.prefix == mine.prefix
    assert cancelled.winner is not None and cancelled.winner.origin_domain == S_DOM
    # §5.1 c): a new prefix is chosen and claimed; the old Claim-Timer never fires.
    net.run_for(WAIT + 1400)
    (again,) = net.events("x", ClaimSent)
    assert not again.claim.prefix.overlaps(mine.prefix)
    assert [a.prefix for a in net.events("x", PrefixAllocated)] == [again.claim.prefix]


def test_s11_2_2_prefix_in_use_by_sibling_that_covers_our_pending_claim_cancels_it() -> None:
    net = world()
    mine = pending(net)
    events = net.inject("s", "x", sib(PIU, mine.prefix.supernet(2), ts=T0 + 10_000))
    assert [c.prefix for c in of_type(events, ClaimCancelled)] == [mine.prefix]


def test_s11_2_2_s12_4_clash_lost_sends_withdraw_with_exact_fields() -> None:
    net = world()
    ours = allocated(net)
    alloc = net["x"].allocations[(SpaceKind.DOMAIN, ours)]
    winner = sib(PIU, ours, ts=alloc.timestamp - 50, lifetime=20 * DAY)
    events = net.inject("s", "x", winner)
    (clash,) = of_type(events, ClashDetected)
    assert (clash.local, clash.winner.prefix, clash.manual) == (ours, ours, False)
    withdraws = [c for c in sends(events) if c.type is WD]
    assert withdraws, "no WITHDRAW sent"
    w = withdraws[0]
    # §12.4: Role INTERNAL; origin ids of our PREFIX_IN_USE; the rest from the winner.
    assert w.origin_role is I
    assert (w.origin_domain, w.origin_node) == (X_DOM, X_NODE)
    assert (w.timestamp, w.lifetime, w.holdtime, w.prefix) == (
        winner.timestamp,
        winner.lifetime,
        winner.holdtime,
        winner.prefix,
    )
    # §11.7.3: to internal peers, the parent's nodes, siblings of that parent, children.
    assert receivers(events, w) == {"i", "p", "p2", "s", "c", "c2", "d"}
    assert GribRemove(ours) in events
    assert net["x"].managed_space() == []


def test_s11_2_2_s12_4_clash_won_does_nothing() -> None:
    net = world()
    ours = allocated(net)
    loser = sib(PIU, ours, ts=net.now)  # later than our PREFIX_IN_USE
    events = net.inject("s", "x", loser)
    assert of_type(events, ClashDetected) == []
    assert [c for c in sends(events) if c.type is WD] == []
    assert of_type(events, GribRemove) == []
    assert net["x"].managed_space() == [ours]


def test_s12_4_clash_lost_on_timestamp_tie_by_larger_node_id() -> None:
    net = world()
    ours = allocated(net)
    ts = net["x"].allocations[(SpaceKind.DOMAIN, ours)].timestamp
    smaller = claim(PIU, I, ours, domain=S_DOM, node=X_NODE - 1, ts=ts)
    events = net.inject("s", "x", smaller)
    assert len(of_type(events, ClashDetected)) == 1


def test_s11_2_2_prefix_in_use_by_sibling_propagation() -> None:
    """To internal peers, the nodes of the parent domain and siblings with that parent;
    not back to the sender, not to children, not to a sibling of another parent."""
    net = world(start=False)
    piu = sib(PIU, "239.192.7.0/24")
    events = net.inject("s", "x", piu)
    assert receivers(events, piu) == {"i", "p", "p2"}
    (forwarded,) = [c for c in net.inbox("i") if c.prefix == piu.prefix]
    assert forwarded.origin_role is S  # Rol is the updated role: a sibling of x


def test_s11_2_3_prefix_in_use_by_child_outside_managed_space_is_no_appropriate_parent() -> None:
    net = world()
    ours = allocated(net)
    outside = kid(PIU, "239.192.200.0/28")
    assert not outside.prefix.overlaps(ours)
    events = net.inject("c", "x", outside)
    assert subcodes(events) == [Sub.NO_APPROPRIATE_PARENT_PREFIX]
    assert no_sends(events)


def test_s11_2_3_prefix_in_use_by_child_inside_goes_to_internal_and_children() -> None:
    net = world()
    ours = allocated(net)
    piu = kid(PIU, sub(ours, 28))
    events = net.inject("c", "x", piu)
    assert rejects(events) == []
    assert receivers(events, piu) == {"i", "c2", "d"}
    assert all(c.origin_role is C for c in sends(events) if c.prefix == piu.prefix)


def test_s11_2_4_prefix_in_use_by_internal_is_recorded_like_prefix_managed() -> None:
    net = world(start=False)
    piu = claim(PIU, I, "239.192.9.0/24", domain=X_DOM, node=I_NODE, lifetime=20 * DAY)
    events = net.inject("i", "x", piu)
    assert rejects(events) == []
    alloc = net["x"].allocations[(SpaceKind.DOMAIN, piu.prefix)]
    assert (alloc.origin_node, alloc.expires) == (I_NODE, piu.timestamp + piu.lifetime)
    assert GribInject(piu.prefix) in events
    assert net["x"].managed_space() == [piu.prefix]


# --- §11.3 CLAIM_DENIED ---------------------------------------------------------------------


@pytest.mark.parametrize("peer", ["c", "s"])
def test_s11_3_1_claim_denied_by_child_or_sibling_is_illegal_origin_role(peer: str) -> None:
    net = world(start=False)
    node = net.nodes[peer]
    denial = claim(CD, I, "239.192.7.0/24", domain=99, node=node.node)
    events = net.inject(peer, "x", denial)
    assert subcodes(events) == [Sub.ILLEGAL_ORIGIN_ROLE]
    assert no_sends(events)


def test_s11_3_2_claim_denied_by_internal_goes_to_internal_and_the_denied_child() -> None:
    net = world()
    ours = allocated(net)
    asked = kid(NEW, sub(ours, 28), ts=net.now, lifetime=DAY)
    net.inject("c", "x", asked)
    net.stub("i2", X_DOM, I_NODE + 1)
    net.link("x", "i2", I)
    net.clear()
    denial = claim(CD, I, asked.prefix, domain=C_DOM, node=C_NODE, ts=net.now, lifetime=0)
    events = net.inject("i", "x", denial)
    assert rejects(events) == []
    assert receivers(events, denial) == {"i2", "c", "c2"}


def test_s11_3_3_claim_denied_by_parent_cancels_our_pending_claim_and_we_retry_shorter() -> None:
    net = world()
    mine = pending(net)
    allowed = 10 * DAY
    denial = replace(mine, type=CD, origin_role=I, lifetime=int(allowed))
    events = net.inject("p", "x", denial)
    (cancelled,) = of_type(events, ClaimCancelled)
    assert cancelled.prefix == mine.prefix
    assert cancelled.winner == replace(denial, origin_role=P)  # stored with the updated role
    # §11.3.3: propagated to internal peers, the parent's nodes, siblings of that parent.
    assert receivers(events, denial) == {"i", "p2", "s"}
    net.run_for(700)
    (retry,) = net.events("x", ClaimSent)
    # §8.3: "CLAIM_DENIED ... filled with the longest acceptable lifetime".
    assert retry.claim.timestamp + retry.claim.lifetime <= denial.timestamp + allowed
    assert retry.claim.lifetime > 0
    net.run_for(WAIT)
    assert [a.prefix for a in net.events("x", PrefixAllocated)] == [retry.claim.prefix]


def test_s11_3_3_claim_denied_by_parent_without_matching_claim_is_no_appropriate_internal() -> None:
    net = world()
    mine = pending(net)
    stray = replace(mine, type=CD, origin_role=I, timestamp=mine.timestamp - 1)
    events = net.inject("p", "x", stray)
    assert subcodes(events) == [Sub.NO_APPROPRIATE_INTERNAL_PREFIX]
    assert of_type(events, ClaimCancelled) == []
    assert no_sends(events)
    assert [p.claim for p in net["x"].pending] == [mine]


def test_s11_3_3_claim_denied_by_parent_of_a_sibling_claim_goes_up() -> None:
    net = world(start=False)
    asked = sib(NEW, "239.192.7.0/24")
    net.inject("s", "x", asked)
    net.clear()
    denial = claim(CD, I, asked.prefix, domain=S_DOM, node=S_NODE, lifetime=0)
    events = net.inject("p", "x", denial)
    assert rejects(events) == []
    assert receivers(events, denial) == {"i", "p2", "s"}


def test_s11_3_3_claim_denied_for_a_sibling_outside_parent_space_is_no_appropriate_parent() -> None:
    net = world(start=False)
    denial = claim(CD, I, "239.200.0.0/24", domain=S_DOM, node=S_NODE, lifetime=0)
    assert subcodes(net.inject("p", "x", denial)) == [Sub.NO_APPROPRIATE_PARENT_PREFIX]


# --- §11.4 CLAIM_TO_EXPAND / §11.5 NEW_CLAIM ------------------------------------------------


def test_s11_4_1_claim_to_expand_by_parent_is_illegal_origin_role() -> None:
    net = world(start=False)
    events = net.inject("p", "x", claim(CTE, I, "239.192.7.0/24", domain=P_DOM, node=P_NODE))
    assert subcodes(events) == [Sub.ILLEGAL_ORIGIN_ROLE]


def test_s11_4_2_claim_to_expand_by_sibling_without_its_prefix_in_use_is_no_sibling_prefix() -> (
    None
):
    net = world(start=False)
    events = net.inject("s", "x", sib(CTE, "239.192.7.0/24"))
    assert subcodes(events) == [Sub.NO_APPROPRIATE_SIBLING_PREFIX]
    assert no_sends(events)


def test_s11_4_2_claim_to_expand_by_sibling_outside_parent_space_is_no_parent_prefix() -> None:
    net = world(start=False)
    events = net.inject("s", "x", sib(CTE, "239.200.0.0/24"))
    assert subcodes(events) == [Sub.NO_APPROPRIATE_PARENT_PREFIX]


def test_s11_4_2_claim_to_expand_by_sibling_beats_our_new_claim_and_goes_up() -> None:
    net = world()
    mine = pending(net)
    used = sib(PIU, sub(mine.prefix.supernet(), 24, 1), ts=T0 - DAY)
    net.inject("s", "x", used)
    expand = sib(CTE, mine.prefix.supernet(), ts=net.now + 100)  # later, but CTE > NEW
    events = net.inject("s", "x", expand)
    assert rejects(events) == []
    assert [c.prefix for c in of_type(events, ClaimCancelled)] == [mine.prefix]
    assert receivers(events, expand) == {"i", "p", "p2"}


def test_s11_4_3_claim_to_expand_by_child_without_its_prefix_in_use_is_no_child_prefix() -> None:
    net = world()
    ours = allocated(net)
    events = net.inject("c", "x", kid(CTE, sub(ours, 27), ts=net.now, lifetime=DAY))
    assert subcodes(events) == [Sub.NO_APPROPRIATE_CHILD_PREFIX]
    assert no_sends(events)


def test_s11_4_3_claim_to_expand_by_child_outside_managed_space_is_no_parent_prefix() -> None:
    net = world()
    allocated(net)
    events = net.inject("c", "x", kid(CTE, "239.192.200.0/27", ts=net.now, lifetime=DAY))
    assert subcodes(events) == [Sub.NO_APPROPRIATE_PARENT_PREFIX]


def test_s11_4_3_claim_to_expand_by_child_goes_to_internal_and_children() -> None:
    net = world()
    ours = allocated(net)
    net.inject("c", "x", kid(PIU, sub(ours, 28), ts=net.now, lifetime=DAY))
    net.clear()
    expand = kid(CTE, sub(ours, 27), ts=net.now, lifetime=DAY)
    events = net.inject("c", "x", expand)
    assert rejects(events) == []
    assert receivers(events, expand) == {"i", "c2", "d"}


def _too_long(net: Net, ours: Prefix) -> tuple[Claim, int]:
    alloc = net["x"].allocations[(SpaceKind.DOMAIN, ours)]
    asked = kid(NEW, sub(ours, 28), ts=net.now, lifetime=alloc.expires - int(net.now) + DAY)
    return asked, alloc.expires - asked.timestamp


def test_s11_4_3_child_claim_longer_than_our_prefix_is_answered_with_claim_denied() -> None:
    net = world()
    ours = allocated(net)
    asked, allowed = _too_long(net, ours)
    events = net.inject("c", "x", asked)
    assert rejects(events) == []
    denials = [c for c in sends(events) if c.type is CD]
    assert denials, "no CLAIM_DENIED"
    # The claim itself, Rol=INTERNAL, lifetime = the longest we allow.
    assert set(denials) == {replace(asked, type=CD, origin_role=I, lifetime=allowed)}
    # To the nodes of the child's domain (and internal peers), not to other children.
    assert receivers(events, denials[0]) == {"c", "c2", "i"}
    # The claim goes to internal peers only, not to the other children.
    assert receivers(events, asked) == {"i"}


def test_s11_4_3_child_claim_longer_than_policy_allows_is_answered_with_claim_denied() -> None:
    net = world(policy=Policy(max_child_lifetime=2 * DAY))
    ours = allocated(net)
    asked = kid(NEW, sub(ours, 28), ts=net.now, lifetime=3 * DAY)
    events = net.inject("c", "x", asked)
    (denial,) = {c for c in sends(events) if c.type is CD}
    assert denial.lifetime == 2 * DAY


def test_s8_3_s11_4_3_second_too_long_claim_is_claim_lifetime_too_long() -> None:
    net = world()
    ours = allocated(net)
    asked, _ = _too_long(net, ours)
    net.inject("c", "x", asked)
    net.run_for(60)
    again = replace(asked, timestamp=int(net.now))
    events = net.inject("c", "x", again)
    assert subcodes(events) == [Sub.CLAIM_LIFETIME_TOO_LONG]
    assert no_sends(events)


def test_s11_4_3_child_claim_within_the_allowed_lifetime_is_passed_to_children() -> None:
    net = world()
    ours = allocated(net)
    asked, allowed = _too_long(net, ours)
    net.inject("c", "x", asked)
    net.run_for(60)
    fine = replace(asked, timestamp=int(net.now), lifetime=allowed - 60)
    events = net.inject("c", "x", fine)
    assert rejects(events) == []
    assert receivers(events, fine) == {"i", "c2", "d"}


def test_s11_4_4_claim_to_expand_by_internal_without_our_prefix_is_no_internal_prefix() -> None:
    net = world(start=False)
    expand = claim(CTE, I, "239.192.7.0/24", domain=X_DOM, node=I_NODE)
    events = net.inject("i", "x", expand)
    assert subcodes(events) == [Sub.NO_APPROPRIATE_INTERNAL_PREFIX]


def test_s11_4_4_claim_to_expand_by_internal_goes_to_the_parent() -> None:
    net = world(start=False)
    net.inject("i", "x", claim(PIU, I, "239.192.7.0/24", domain=X_DOM, node=I_NODE))
    net.clear()
    expand = claim(CTE, I, "239.192.6.0/23", domain=X_DOM, node=I_NODE)
    events = net.inject("i", "x", expand)
    assert rejects(events) == []
    assert {"p", "p2"} <= receivers(events, expand)
    assert "c" not in receivers(events, expand)


def test_s11_5_new_claim_by_sibling_goes_up() -> None:
    net = world(start=False)
    new = sib(NEW, "239.192.7.0/24")
    events = net.inject("s", "x", new)
    assert rejects(events) == []
    assert receivers(events, new) == {"i", "p", "p2"}


def test_s11_5_new_claim_needs_no_prefix_in_use() -> None:
    net = world()
    ours = allocated(net)
    new = kid(NEW, sub(ours, 28), ts=net.now, lifetime=DAY)
    events = net.inject("c", "x", new)
    assert rejects(events) == []
    assert receivers(events, new) == {"i", "c2", "d"}


def test_s11_5_hint_from_child_is_kept_among_child_domain_and_parent() -> None:
    net = world()
    allocated(net)
    hint = kid(NEW, "0.0.0.0/24", ts=net.now)
    events = net.inject("c", "x", hint)
    assert rejects(events) == []
    assert receivers(events, hint) == {"i"}  # not other children, not up


def test_s11_5_hint_from_sibling_is_dropped() -> None:
    net = world(start=False)
    events = net.inject("s", "x", sib(NEW, "0.0.0.0/24"))
    assert events == []


# --- §11.6 PREFIX_MANAGED -------------------------------------------------------------------


def test_s11_6_1_prefix_managed_by_parent_is_recorded_and_propagated() -> None:
    net = world(pm=False, start=False)
    pm = parent_pm()
    events = net.inject("p", "x", pm)
    assert rejects(events) == []
    assert net["x"].parent_space(DomainId(P_DOM)) == [net4(PARENT_SPACE)]
    # The parent's other nodes, internal peers, siblings with that parent; not children,
    # not a sibling of another parent, not back to p.
    assert receivers(events, pm) == {"p2", "i", "s"}


def test_s11_6_1_prefix_managed_of_a_domain_that_is_not_our_parent_is_no_parent_prefix() -> None:
    net = world(pm=False, start=False)
    foreign = claim(PM, P, "239.193.0.0/16", domain=12, node=0x0C000001, lifetime=PM_LIFETIME)
    events = net.inject("s", "x", foreign)  # s's parent 12 is not one of ours
    assert subcodes(events) == [Sub.NO_APPROPRIATE_PARENT_PREFIX]
    assert net["x"].parent_space(DomainId(12)) == []
    assert no_sends(events)


def test_s11_6_1_prefix_managed_with_foreign_origin_from_parent_is_no_parent_prefix() -> None:
    net = world(pm=False, start=False)
    events = net.inject("p", "x", claim(PM, I, "239.193.0.0/16", domain=12, node=P_NODE))
    assert subcodes(events) == [Sub.NO_APPROPRIATE_PARENT_PREFIX]


@pytest.mark.parametrize("peer", ["c", "s"])
def test_s11_6_2_prefix_managed_by_child_or_sibling_is_illegal_origin_role(peer: str) -> None:
    net = world(start=False)
    node = net.nodes[peer]
    pm = claim(PM, I, "239.192.7.0/24", domain=node.domain, node=node.node)
    events = net.inject(peer, "x", pm)
    assert subcodes(events) == [Sub.ILLEGAL_ORIGIN_ROLE]
    assert no_sends(events)


def test_s11_6_3_prefix_managed_by_internal_is_allocated_and_injected() -> None:
    net = world(start=False)
    pm = claim(PM, I, "239.192.9.0/24", domain=X_DOM, node=I_NODE, lifetime=20 * DAY)
    events = net.inject("i", "x", pm)
    assert rejects(events) == []
    assert (SpaceKind.DOMAIN, pm.prefix) in net["x"].allocations
    assert of_type(events, PrefixAllocated)[0].purpose == "learned"
    assert GribInject(pm.prefix) in events
    assert net["x"].local_space() == [pm.prefix]  # a) advertised to the MAASs
    # Propagated to internal peers (none but the sender here) and the children.
    assert receivers(events, pm) == {"c", "c2", "d"}


# --- §11.7 WITHDRAW -------------------------------------------------------------------------


def test_s11_7_1_withdraw_by_child_without_its_claim_is_no_appropriate_child_prefix() -> None:
    net = world()
    ours = allocated(net)
    events = net.inject("c", "x", kid(WD, sub(ours, 28), ts=net.now))
    assert subcodes(events) == [Sub.NO_APPROPRIATE_CHILD_PREFIX]
    assert no_sends(events)


def test_s11_7_1_withdraw_by_child_goes_to_internal_and_children() -> None:
    net = world()
    ours = allocated(net)
    held = kid(PIU, sub(ours, 28), ts=net.now, lifetime=DAY)
    net.inject("c", "x", held)
    withdraw = replace(held, type=WD)
    events = net.inject("c", "x", withdraw)
    assert rejects(events) == []
    assert receivers(events, withdraw) == {"i", "c2", "d"}


def test_s11_7_1_withdraw_matching_a_child_new_claim_is_accepted() -> None:
    net = world()
    ours = allocated(net)
    asked = kid(NEW, sub(ours, 28), ts=net.now, lifetime=DAY)
    net.inject("c", "x", asked)
    events = net.inject("c", "x", replace(asked, holdtime=int(DAY), type=WD))
    assert rejects(events) == []


def test_s11_7_2_withdraw_by_sibling_without_its_claim_is_no_appropriate_sibling_prefix() -> None:
    net = world(start=False)
    events = net.inject("s", "x", sib(WD, "239.192.7.0/24"))
    assert subcodes(events) == [Sub.NO_APPROPRIATE_SIBLING_PREFIX]
    assert no_sends(events)


def test_s11_7_2_withdraw_by_sibling_goes_up() -> None:
    net = world(start=False)
    held = sib(PIU, "239.192.7.0/24")
    net.inject("s", "x", held)
    withdraw = sib(WD, "239.192.7.0/26")
    events = net.inject("s", "x", withdraw)
    assert rejects(events) == []
    assert receivers(events, withdraw) == {"i", "p", "p2"}


def test_s11_7_3_withdraw_by_internal_without_our_prefix_is_no_appropriate_internal() -> None:
    net = world(start=False)
    events = net.inject("i", "x", claim(WD, I, "239.192.7.0/24", domain=X_DOM, node=I_NODE))
    assert subcodes(events) == [Sub.NO_APPROPRIATE_INTERNAL_PREFIX]
    assert no_sends(events)


def test_s11_7_3_withdraw_by_internal_removes_the_range_from_maas_and_grib() -> None:
    net = world()
    ours = allocated(net)
    cut = sub(ours, 26, 1)
    withdraw = claim(WD, I, cut, domain=X_DOM, node=I_NODE, ts=net.now, lifetime=DAY)
    events = net.inject("i", "x", withdraw)
    assert rejects(events) == []
    rest = sorted(set(ours.address_exclude(cut)), key=lambda p: p.network_address)
    assert net["x"].local_space() == rest
    assert net["x"].grib == frozenset(rest)
    assert GribRemove(ours) in events
    assert RangeWithdrawn(cut, restored=False) in events
    # To internal peers, the parent's nodes, siblings of that parent and the children.
    assert receivers(events, withdraw) == {"p", "p2", "s", "c", "c2", "d"}


def test_s11_7_3_withdraw_by_internal_matching_our_claim_cancels_its_claim_timer() -> None:
    net = world()
    mine = pending(net)
    withdraw = replace(mine, type=WD, origin_node=I_NODE)
    events = net.inject("i", "x", withdraw)
    assert rejects(events) == []
    assert [c.prefix for c in of_type(events, ClaimCancelled)] == [mine.prefix]
    net.run_for(WAIT)
    assert net.events("x", PrefixAllocated) == []


def test_s11_7_4_withdraw_by_parent_outside_its_space_is_no_appropriate_parent_prefix() -> None:
    net = world(start=False)
    events = net.inject("p", "x", claim(WD, I, "239.200.0.0/24", domain=P_DOM, node=P_NODE))
    assert subcodes(events) == [Sub.NO_APPROPRIATE_PARENT_PREFIX]
    assert no_sends(events)


def test_s11_7_4_withdraw_by_parent_is_propagated_and_we_withdraw_the_intersection() -> None:
    net = world()
    ours = allocated(net)
    theirs = claim(
        WD, I, ours.supernet(4), domain=P_DOM, node=P_NODE, ts=net.now, lifetime=DAY,
        holdtime=2 * DAY,
    )  # fmt: skip
    events = net.inject("p", "x", theirs)
    assert rejects(events) == []
    # Propagated to internal peers and siblings with that parent.
    assert receivers(events, theirs) == {"i", "s"}
    ours_wd = [c for c in sends(events) if c.type is WD and c.origin_domain == X_DOM]
    assert ours_wd, "no WITHDRAW of our own"
    w = ours_wd[0]
    assert w.prefix == ours  # the intersection
    assert w.origin_node == X_NODE  # the Origin Node ID of our PREFIX_IN_USE
    assert w.holdtime >= theirs.holdtime
    assert w.origin_role is I
    assert GribRemove(ours) in events
    assert net["x"].local_space() == []


def test_s11_7_4_withdraw_by_parent_of_part_of_our_prefix_withdraws_that_part() -> None:
    net = world()
    ours = allocated(net)
    part = sub(ours, 26, 2)
    theirs = claim(WD, I, part, domain=P_DOM, node=P_NODE, ts=net.now, lifetime=DAY)
    events = net.inject("p", "x", theirs)
    (w,) = {c for c in sends(events) if c.type is WD and c.origin_domain == X_DOM}
    assert w.prefix == part
    assert net["x"].grib == frozenset(ours.address_exclude(part))


# --- §5.1 claiming --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_s5_1_a_claim_is_sent_after_a_random_delay_in_0_to_initiate_claim_delay(seed: int) -> None:
    net = world(seed=seed, initiate_claim_delay=600.0)
    expected = T0 + random.Random(seed).random() * 600.0  # the engine's first draw
    net.run_for(700)
    (record,) = net.records("x", ClaimSent)
    assert record.time == expected
    assert T0 < record.time < T0 + 600
    assert record.event.claim.timestamp == int(expected)  # §7.3: when it was initiated


def test_s5_1_non_tld_does_not_claim_without_an_established_parent_session() -> None:
    net = Net()
    net.engine("x", X_DOM, X_NODE, parent_domain_ids=(DomainId(P_DOM),))
    net.stub("i", X_DOM, I_NODE)
    net.stub("p", P_DOM, P_NODE)
    net.link("x", "i", I)
    # The parent's space is known through an internal peer, but no parent session is up.
    net.inject("i", "x", claim(PM, P, PARENT_SPACE, domain=P_DOM, node=P_NODE, lifetime=50 * DAY))
    net.start("x")
    net.run_for(2 * DAY)
    assert net.events("x", ClaimSent) == []
    net.link("x", "p", P)
    net.run_for(700)
    (sent,) = net.events("x", ClaimSent)
    assert net.now - 700 < sent.claim.timestamp
    assert "p" in receivers([r.event for r in net.log], sent.claim)


def test_s5_1_non_tld_claims_once_the_parent_is_up_and_its_space_known() -> None:
    net = world(pm=False)
    net.run_for(DAY)
    assert net.events("x", ClaimSent) == []  # parent up, but no PREFIX_MANAGED yet
    net.inject("p", "x", parent_pm())
    net.run_for(700)
    (sent,) = net.events("x", ClaimSent)
    assert covers(net4(PARENT_SPACE), sent.claim.prefix)


def test_s5_1_b_claim_goes_to_parent_nodes_siblings_of_that_parent_and_internal_peers() -> None:
    net = world()
    net.run_for(700)
    (sent,) = net.events("x", ClaimSent)
    c = sent.claim
    assert (c.type, c.origin_role, c.origin_domain, c.origin_node) == (NEW, I, X_DOM, X_NODE)
    assert c.holdtime == WAIT  # §7.3
    assert receivers([r.event for r in net.log], c) == {"p", "p2", "s", "i"}


def test_s5_1_b_claim_timer_is_waiting_period() -> None:
    net = world(waiting_period=5_000.0)
    net.run_for(700)
    (sent,) = net.events("x", ClaimSent)
    net.run_until(sent.claim.timestamp + 5_000 - 1)
    assert net.events("x", PrefixAllocated) == []
    net.run_until(sent.claim.timestamp + 5_000)
    (record,) = net.records("x", PrefixAllocated)
    assert record.time == sent.claim.timestamp + 5_000


def test_s5_1_d_claim_timer_expiry_announces_and_injects() -> None:
    net = world()
    net.run_for(700)
    net.clear()
    net.run_for(WAIT)
    (alloc,) = net.events("x", PrefixAllocated)
    events = [r.event for r in net.log]
    sent = sends(events)
    (piu,) = {c for c in sent if c.type is PIU}
    (pm,) = {c for c in sent if c.type is PM}
    assert piu.prefix == pm.prefix == alloc.prefix
    assert piu.lifetime == piu.holdtime and pm.lifetime == pm.holdtime  # §7.3
    # PREFIX_IN_USE to the parent and the siblings with that parent (internal peers too,
    # §11.2.4); PREFIX_MANAGED to the children and internal peers.
    assert receivers(events, piu) >= {"p", "p2", "s"}
    assert receivers(events, piu) & {"c", "c2", "d", "t"} == set()
    assert receivers(events, pm) == {"c", "c2", "d", "i"}
    assert GribInject(alloc.prefix) in events
    assert net["x"].managed_space() == [alloc.prefix] == net["x"].local_space()


def test_s5_1_a_scheduled_claim_is_cancelled_by_an_internal_peers_new_claim() -> None:
    net = world(initiate_claim_delay=600.0)
    theirs = claim(NEW, I, "239.192.42.0/24", domain=X_DOM, node=I_NODE, ts=net.now)
    events = net.inject("i", "x", theirs)
    (cancelled,) = of_type(events, ClaimCancelled)
    assert (cancelled.prefix, cancelled.kind) == (None, SpaceKind.DOMAIN)
    net.run_for(WAIT - 1)
    assert net.events("x", ClaimSent) == []


def test_s5_1_c_losing_collision_cancels_and_claims_another_prefix() -> None:
    net = world()
    mine = pending(net)
    earlier = sib(NEW, mine.prefix, ts=mine.timestamp - 1)
    events = net.inject("s", "x", earlier)
    (cancelled,) = of_type(events, ClaimCancelled)
    assert cancelled.prefix == mine.prefix
    assert cancelled.winner is not None and cancelled.winner.timestamp == earlier.timestamp
    net.run_for(700)
    (again,) = net.events("x", ClaimSent)
    assert not again.claim.prefix.overlaps(mine.prefix)


def test_s5_1_c_winning_collision_keeps_our_claim() -> None:
    net = world()
    mine = pending(net)
    later = sib(NEW, mine.prefix, ts=mine.timestamp + 1)
    events = net.inject("s", "x", later)
    assert of_type(events, ClaimCancelled) == []
    net.run_for(WAIT)
    assert [a.prefix for a in net.events("x", PrefixAllocated)] == [mine.prefix]


@pytest.mark.parametrize(("their_node", "we_lose"), [(X_NODE - 1, True), (X_NODE + 1, False)])
def test_s5_1_1_same_timestamp_smallest_origin_node_wins(their_node: int, we_lose: bool) -> None:
    net = world()
    mine = pending(net)
    same = claim(NEW, I, mine.prefix, domain=S_DOM, node=their_node, ts=mine.timestamp)
    events = net.inject("s", "x", same)
    assert bool(of_type(events, ClaimCancelled)) is we_lose


def test_s5_1_c_losing_to_a_claim_of_our_own_domain_starts_no_new_claim() -> None:
    net = world()
    mine = pending(net)
    theirs = claim(NEW, I, mine.prefix, domain=X_DOM, node=I_NODE, ts=mine.timestamp - 1)
    events = net.inject("i", "x", theirs)
    assert [c.prefix for c in of_type(events, ClaimCancelled)] == [mine.prefix]
    net.run_for(WAIT - 700)
    assert net.events("x", ClaimSent) == []


def _tld_pair(node_a: int, node_b: int) -> Net:
    net = Net()
    pool = (net4("239.192.0.0/16"),)
    net.engine("a", 1, node_a, global_pool=pool, initial_size=0)
    net.engine("b", 2, node_b, global_pool=pool, initial_size=0)
    net.link("a", "b", S, parent=0)
    net.start()
    return net


def _claim_at_once(net: Net, prefix: Prefix, at_a: float, at_b: float) -> None:
    """Both siblings send a claim for ``prefix`` before hearing of the other's."""
    net.call("a", "claim", 0, prefix=prefix, at=at_a)
    net.call("b", "claim", 0, prefix=prefix, at=at_b)
    events_a = net["a"].handle_timer(now=at_a)
    events_b = net["b"].handle_timer(now=at_b)
    assert of_type(events_a, ClaimSent) and of_type(events_b, ClaimSent)
    net.now = max(at_a, at_b)
    net.deliver("a", events_a)
    net.deliver("b", events_b)
    net.run_for(WAIT + 10)


@pytest.mark.parametrize(
    ("at_a", "at_b", "winner"),
    [
        (T0 + 10, T0 + 11, "a"),  # earliest timestamp wins...
        (T0 + 11, T0 + 10, "b"),
        (T0 + 10, T0 + 10, "b"),  # ...then the smallest Origin Node Identifier
    ],
)
def test_s5_1_1_two_siblings_claiming_the_same_prefix(
    at_a: float, at_b: float, winner: str
) -> None:
    net = _tld_pair(node_a=0x02000002, node_b=0x01000001)
    prefix = net4("239.192.5.0/24")
    _claim_at_once(net, prefix, at_a, at_b)
    loser = "a" if winner == "b" else "b"
    assert [a.prefix for a in net.events(winner, PrefixAllocated)] == [prefix]
    assert net.events(loser, PrefixAllocated) == []
    (cancelled,) = net.events(loser, ClaimCancelled)
    assert cancelled.winner is not None
    assert cancelled.winner.origin_domain == net.nodes[winner].domain
    assert net[winner].grib == {prefix}
    assert net[loser].grib == frozenset()


# --- §5.2 renew, §5.3 expand, §5.4 release, §4.2 expiry -----------------------------------


def test_s5_2_renewal_keeps_the_prefix_past_its_first_lifetime() -> None:
    net = world()
    ours = allocated(net)
    first = net["x"].allocations[(SpaceKind.DOMAIN, ours)].expires
    net.run_until(first + DAY)
    alloc = net["x"].allocations[(SpaceKind.DOMAIN, ours)]
    assert alloc.expires > first + DAY
    assert net.events("x", PrefixGone) == []
    assert net["x"].grib == {ours}
    renewals = [c for c in net.inbox("p") if c.type is CTE]
    assert renewals and all(c.prefix == ours for c in renewals)  # §5.2: same Address, Mask
    assert "renew" in [a.purpose for a in net.events("x", PrefixAllocated)]


def test_s5_2_operator_renewal_extends_the_lifetime() -> None:
    net = world()
    ours = allocated(net)
    before = net["x"].allocations[(SpaceKind.DOMAIN, ours)].expires
    net.call("x", "renew", ours)
    net.run_for(WAIT + 700)
    (renewed,) = net.events("x", PrefixAllocated)
    assert renewed.purpose == "renew"
    assert renewed.expires > before
    (cte,) = [c for c in net.inbox("p") if c.type is CTE]
    assert cte.prefix == ours


def test_s5_3_expansion_doubles_the_prefix() -> None:
    net = world()
    ours = allocated(net)
    net.call("x", "expand", ours)
    net.run_for(WAIT + 700)
    larger = ours.supernet()
    (cte,) = [c for c in net.inbox("p") if c.type is CTE]
    assert cte.prefix == larger  # §5.3: the desired Address and Mask
    assert net["x"].managed_space() == [larger]
    assert net["x"].grib == {larger}
    assert PrefixGone(ours, SpaceKind.DOMAIN, "replaced") in net.events("x", PrefixGone)


def test_s5_3_expansion_refused_when_the_other_half_is_taken() -> None:
    net = world()
    ours = allocated(net)
    other = next(p for p in ours.supernet().subnets() if p != ours)
    net.inject("s", "x", sib(PIU, other))
    with pytest.raises(RequestRefused):
        net.call("x", "expand", ours)


def test_s5_4_release_sends_withdraw_and_frees_the_prefix() -> None:
    net = world(initial_size=0)
    net.call("x", "claim", 256)
    ours = allocated(net)
    events = net.call("x", "release", ours)
    (w,) = {c for c in sends(events) if c.type is WD}
    assert (w.prefix, w.origin_domain, w.origin_node, w.origin_role) == (ours, X_DOM, X_NODE, I)
    # §5.4: to the parent domain, siblings with that parent, internal peers.
    assert receivers(events, w) >= {"p", "p2", "s", "i"}
    assert GribRemove(ours) in events
    assert PrefixGone(ours, SpaceKind.DOMAIN, "released") in events
    assert net["x"].allocations == {}


def test_s5_4_released_prefix_can_be_claimed_by_a_sibling() -> None:
    net = Net()
    pool = (net4("239.192.0.0/24"),)
    net.engine("a", 1, 0x01000001, global_pool=pool, initial_size=0)
    net.engine("b", 2, 0x02000002, global_pool=pool, initial_size=256)
    net.link("a", "b", S, parent=0)
    net.call("a", "claim", 256, at=net.now + 1)
    net.run_for(10)
    net.start("b")
    net.run_for(WAIT + 10)
    assert net["a"].grib == set(pool)
    assert net.events("b", ClaimSent) == []  # nothing free
    net.call("a", "release", pool[0])
    net.run_for(WAIT + 1_000)
    assert net["b"].grib == set(pool)
    assert net["b"].managed_space() == list(pool)


def test_s5_4_release_refused_while_a_child_holds_a_sub_range() -> None:
    net = world()
    ours = allocated(net)
    net.inject("c", "x", kid(PIU, sub(ours, 28), ts=net.now, lifetime=DAY))
    with pytest.raises(RequestRefused):
        net.call("x", "release", ours)
    assert net["x"].managed_space() == [ours]


def test_s4_2_lifetime_expiry_frees_the_prefix_when_renewal_is_impossible() -> None:
    net = world()
    ours = allocated(net)
    expires = net["x"].allocations[(SpaceKind.DOMAIN, ours)].expires
    net.down("x", "p")
    net.down("x", "p2")
    net.run_until(expires - 1)
    assert net["x"].grib == {ours}
    net.run_until(expires)
    assert PrefixGone(ours, SpaceKind.DOMAIN, "expired") in net.events("x", PrefixGone)
    assert GribRemove(ours) in net.events("x", GribRemove)
    assert net["x"].managed_space() == []
    assert [c for c in net.inbox("p") if c.type is CTE] == []


# --- §12.2 leaf / non-leaf ------------------------------------------------------------------


def test_s12_2_first_child_update_makes_the_domain_non_leaf_and_it_claims_for_local_use() -> None:
    net = world()
    ours = allocated(net)
    assert net["x"].local_space() == [ours]  # leaf: all managed space is for the MAASs
    held = kid(PIU, sub(ours, 28, 5), ts=net.now, lifetime=10 * DAY)
    events = net.inject("c", "x", held)
    assert LeafModeChanged(non_leaf=True) in events
    assert net["x"].non_leaf
    net.run_for(3 * WAIT)
    local = [s for s in net.events("x", ClaimSent) if s.kind is SpaceKind.LOCAL]
    assert local, "no claim for local use"
    assert local[0].claim.origin_role is C  # §11: a child of itself
    assert local[0].claim.origin_domain == X_DOM
    # LOCAL claims go to internal peers and children, never to the parent.
    assert "p" not in receivers([r.event for r in net.log], local[0].claim)
    (got,) = [a for a in net.events("x", PrefixAllocated) if a.kind is SpaceKind.LOCAL]
    assert net["x"].local_space() == [got.prefix]
    assert not got.prefix.overlaps(held.prefix)
    assert any(covers(m, got.prefix) for m in net["x"].managed_space())


def test_s12_2_back_to_leaf_after_the_last_child_update_expires() -> None:
    net = world()
    ours = allocated(net)
    held = kid(PIU, sub(ours, 28, 5), ts=net.now, lifetime=3 * DAY)
    net.inject("c", "x", held)
    net.run_until(held.timestamp + held.holdtime - 1)
    assert net["x"].non_leaf
    net.run_until(held.timestamp + held.holdtime)
    assert LeafModeChanged(non_leaf=False) in net.events("x", LeafModeChanged)
    assert not net["x"].non_leaf
    assert net["x"].local_space() == net["x"].managed_space()


# --- §12.3 clock skew grace -----------------------------------------------------------------


def test_s12_3_expired_prefix_is_not_claimed_again_until_holdtime_plus_grace() -> None:
    grace = DAY
    net = Net()
    net.engine("x", 1, 0x01000001, global_pool=(net4("239.192.0.0/23"),), clock_skew_grace=grace)
    net.stub("s", 2, 0x02000001)
    net.link("x", "s", S, parent=0)
    soon = claim(PIU, I, "239.192.0.0/24", domain=2, node=0x02000001, ts=T0 - 10, lifetime=100)
    later = claim(PIU, I, "239.192.1.0/24", domain=2, node=0x02000001, lifetime=50 * DAY)
    net.inject("s", "x", soon, later)
    net.start("x")
    expired = soon.timestamp + soon.holdtime
    net.run_until(expired + grace - 1)
    assert net.events("x", ClaimSent) == []  # expired, but maybe not everywhere yet
    net.run_until(expired + grace + 1_300)  # a retry is at most 2 claim delays away
    (sent,) = net.events("x", ClaimSent)
    assert sent.claim.prefix == soon.prefix
    assert sent.claim.timestamp >= expired + grace


# --- §12.4 clash resolution -----------------------------------------------------------------


def _clash(net: Net, ours: Prefix, winner_prefix: Prefix, lifetime: float) -> Claim:
    alloc = net["x"].allocations[(SpaceKind.DOMAIN, ours)]
    return sib(PIU, winner_prefix, ts=alloc.timestamp - 50, lifetime=lifetime)


def test_s12_4_manual_mode_reports_and_waits_for_the_operator() -> None:
    net = world(policy=Policy(clash_resolution=ClashResolution.MANUAL))
    ours = allocated(net)
    winner = _clash(net, ours, ours, 20 * DAY)
    events = net.inject("s", "x", winner)
    (clash,) = of_type(events, ClashDetected)
    assert clash.manual
    assert [c for c in sends(events) if c.type is WD] == []
    assert of_type(events, GribRemove) == []
    net.run_for(DAY)
    assert net["x"].grib == {ours}
    events = net.call("x", "resolve_clash", clash.clash_id, withdraw=True)
    (w,) = {c for c in sends(events) if c.type is WD}
    assert (w.prefix, w.timestamp, w.holdtime) == (ours, winner.timestamp, winner.holdtime)
    assert GribRemove(ours) in events
    with pytest.raises(RequestRefused):
        net.call("x", "resolve_clash", clash.clash_id, withdraw=True)


def test_s12_4_manual_mode_operator_may_keep_the_range() -> None:
    net = world(policy=Policy(clash_resolution=ClashResolution.MANUAL))
    ours = allocated(net)
    (clash,) = of_type(net.inject("s", "x", _clash(net, ours, ours, 20 * DAY)), ClashDetected)
    events = net.call("x", "resolve_clash", clash.clash_id, withdraw=False)
    assert no_sends(events)
    assert net["x"].grib == {ours}


def test_s12_4_withdraw_timeout_injects_the_range_back() -> None:
    net = world()
    ours = allocated(net)
    winner = _clash(net, ours, ours, 3 * DAY)
    events = net.inject("s", "x", winner)
    assert GribRemove(ours) in events
    assert RangeWithdrawn(ours, restored=False) in events
    net.run_until(winner.timestamp + winner.holdtime - 1)
    assert net["x"].grib == frozenset()
    net.clear()
    net.run_until(winner.timestamp + winner.holdtime)
    assert RangeWithdrawn(ours, restored=True) in net.events("x", RangeWithdrawn)
    assert GribInject(ours) in net.events("x", GribInject)
    assert net["x"].local_space() == [ours]


def test_s11_7_3_clash_withdraw_of_a_shorter_held_subrange_stays_in_the_grib() -> None:
    """§11.7.3 "...the WITHDRAW's range should not be withdrawn from the G-RIB" (but the
    MAASs stop using it)."""
    net = world()
    ours = allocated(net)
    part = sub(ours, 26, 1)
    events = net.inject("s", "x", _clash(net, ours, part, 3 * DAY))
    assert [c.prefix for c in sends(events) if c.type is WD] != []
    assert of_type(events, GribRemove) == []
    assert net["x"].grib == {ours}
    assert RangeWithdrawn(part, restored=False) in events
    assert part not in net["x"].local_space()
    assert not any(p.overlaps(part) for p in net["x"].local_space())


def test_s12_4_the_winners_renewals_keep_us_yielding_though_each_replaces_the_last() -> None:
    """The winner renews its PREFIX_IN_USE with later timestamps (which alone would lose
    to ours), and each renewal replaces the cached one before it (choice 103): we still
    yield, with a new WITHDRAW per renewal, and never use the range again."""
    net = world()
    ours = allocated(net)
    part = sub(ours, 26, 1)
    first = _clash(net, ours, part, 20 * DAY)
    net.inject("s", "x", first)
    for n in (1, 2, 3):
        net.run_for(2 * DAY)
        renewal = replace(first, timestamp=int(net.now))
        events = net.inject("s", "x", renewal)
        withdraws = [c for c in sends(events) if c.type is WD]
        assert [(w.timestamp, w.prefix) for w in withdraws[:1]] == [(renewal.timestamp, part)]
        cached = [e.claim for e in net["x"].cache.of_origin(PIU, DomainId(S_DOM))]
        # The renewal replaced the one before it.
        assert [(c.timestamp, c.prefix) for c in cached] == [(renewal.timestamp, part)], n
        assert not any(p.overlaps(part) for p in net["x"].local_space())


def test_choice_103_a_replayed_copy_of_our_denied_claim_does_not_cancel_its_retry() -> None:
    """Our renewal CTE(T1) is denied (lifetime), retried as CTE(T2) of the same prefix,
    which replaces T1 in the cache.  An internal peer's §11.8 replay then brings T1 back:
    it is stale (an older copy of what T2 replaced), dropped like a duplicate, so it
    neither cancels T2 by §5.1.1 nor comes back as a pending claim of the refused
    lifetime."""
    net = world()
    ours = allocated(net)
    x = net["x"]
    net.call("x", "renew", ours)
    net.run_for(700)
    (t1,) = [e.claim for e in net.events("x", ClaimSent)]
    net.inject("p", "x", replace(t1, type=CD, origin_role=I, lifetime=int(10 * DAY)))
    net.clear()
    net.run_for(700)
    (t2,) = [e.claim for e in net.events("x", ClaimSent)]
    assert t2.prefix == t1.prefix and t2.timestamp > t1.timestamp
    net.clear()
    events = net.inject("i", "x", t1)
    assert of_type(events, ClaimCancelled) == [] and rejects(events) == []
    assert no_sends(events)  # not passed on either
    assert [(p.claim.timestamp, p.claim.lifetime) for p in x.pending] == [
        (t2.timestamp, t2.lifetime)
    ]


def test_choice_103_a_late_copy_of_a_denied_child_claim_earns_no_notification() -> None:
    """A child's NEW_CLAIM(T1) is denied for its lifetime, its retry T2 of the same prefix
    is accepted; a copy of T1 arriving later through the child's other node is stale: no
    §8.3 "second offence" NOTIFICATION for a claim the child already replaced."""
    net = world(policy=Policy(max_child_lifetime=10 * DAY))
    ours = allocated(net)
    block = sub(ours, 28, 3)
    t1 = kid(NEW, block, ts=net.now, lifetime=20 * DAY)
    first = net.inject("c", "x", t1)
    assert [n.event for n in of_type(first, PolicyNotice)] == ["claim_denied"]
    net.run_for(300)
    net.inject("c", "x", kid(NEW, block, ts=net.now, lifetime=9 * DAY))
    late = net.inject("c2", "x", t1)
    assert rejects(late) == [] and no_sends(late)


def test_an_operator_claim_with_no_parent_space_is_refused_with_the_reason() -> None:
    net = world(pm=False)
    with pytest.raises(RequestRefused, match="no parent session is Established with space"):
        net.call("x", "claim", 256, check_room=True)
    assert net["x"].scheduled == []
    net.call("x", "claim", 256)  # unchecked (a scenario's claim): scheduled as before
    assert len(net["x"].scheduled) == 1


def test_an_operator_claim_larger_than_the_free_space_is_refused_with_the_largest_block() -> None:
    net = world()
    allocated(net)
    with pytest.raises(RequestRefused, match=r"no free block of 65536 .* 32768 addresses"):
        net.call("x", "claim", 65536, check_room=True)
    net.call("x", "claim", 4096, check_room=True)
    assert [s.size for s in net["x"].scheduled if s.operator] == [4096]


def _taken_memo_is_exact(net: Net, kind: SpaceKind) -> dict[Prefix, float]:
    """``x``'s remembered occupied set of ``kind``, after checking it against a rebuild."""
    x = net["x"]
    kept = x._cache_taken(kind)
    memo = x._taken_memo.pop(kind)
    assert x._cache_taken(kind) == kept
    x._taken_memo[kind] = memo
    return kept


def test_the_occupied_set_follows_claim_arrivals_without_a_rebuild() -> None:
    """Claims arriving (new ones, renewals that supersede an entry) are added into the
    remembered set (engine._claim_cached) instead of dropping it: the same set, kept
    exact (it was a third of a full-scale simulation's time)."""
    net = world(policy=Policy(max_child_lifetime=10 * DAY))
    ours = allocated(net)
    x = net["x"]
    free = [p for p in IPv4Network(PARENT_SPACE).subnets(new_prefix=24) if not p.overlaps(ours)]
    domain, local = x._cache_taken(SpaceKind.DOMAIN), x._cache_taken(SpaceKind.LOCAL)
    arrivals = [
        ("s", sib(PIU, free[0], ts=net.now)),
        ("s", sib(NEW, free[1], ts=net.now)),
        ("s", sib(PIU, free[0], ts=net.now + 60)),  # a renewal: supersedes the first
        ("c", kid(NEW, sub(ours, 28, 1), ts=net.now, lifetime=5 * DAY)),
        ("c", kid(NEW, sub(ours, 28, 2), ts=net.now, lifetime=5 * DAY)),
    ]
    for origin, attribute in arrivals:
        net.inject(origin, "x", attribute)
        net.run_for(1)
        assert _taken_memo_is_exact(net, SpaceKind.DOMAIN) is domain
        assert _taken_memo_is_exact(net, SpaceKind.LOCAL) is local
    assert set(domain) >= {free[0], free[1]}
    (renewal,) = x.cache.of_origin(PIU, DomainId(S_DOM))  # the first one was superseded
    assert domain[free[0]] == renewal.expires + x.cache.grace
    assert set(local) >= {sub(ours, 28, 1), sub(ours, 28, 2)}


def test_claims_arriving_are_added_into_the_occupied_set_only_when_it_is_read() -> None:
    """A leaf hears every sibling's claim but reads the occupied set only when it plans a
    claim: arrivals wait (engine._arrived) and are added in when the set is next read,
    judged then.  One that stopped holding room meanwhile (past its expiry plus grace)
    is simply not added: the set is the rebuild's either way."""
    net = world()
    ours = allocated(net)
    x = net["x"]
    free = _free_blocks(ours)
    domain = x._cache_taken(SpaceKind.DOMAIN)
    net.inject("s", "x", sib(NEW, free[0], ts=net.now))  # holdtime: one waiting period
    net.inject("s", "x", sib(PIU, free[1], ts=net.now))  # holdtime: 30 days
    assert [e.claim.prefix for e, _ in x._arrived] == [free[0], free[1]]
    assert free[0] not in domain and free[1] not in domain  # not yet read
    net.run_for(WAIT + x.cache.grace + 1)  # the NEW_CLAIM's time is over, unread
    net.call("x", "handle_timer")  # others' claims timing out wake nothing: ask now
    assert _taken_memo_is_exact(net, SpaceKind.DOMAIN) is domain
    assert x._arrived == []
    assert free[0] not in domain and free[1] in domain


def test_too_many_claims_waiting_to_be_added_drop_the_occupied_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What waits to be added is bounded (engine._ARRIVALS_KEPT, or a quarter of the
    cache): past the bound the remembered sets are dropped, arrivals and all, and the
    next read rebuilds them from the cache."""
    monkeypatch.setattr(engine_module, "_ARRIVALS_KEPT", 2)
    net = world()
    ours = allocated(net)
    x = net["x"]
    free = _free_blocks(ours)
    x._cache_taken(SpaceKind.DOMAIN)
    assert len(x.cache) // 4 <= 2
    for block in free[:2]:
        net.inject("s", "x", sib(PIU, block, ts=net.now))
    assert len(x._arrived) == 2 and SpaceKind.DOMAIN in x._taken_memo
    net.inject("s", "x", sib(PIU, free[2], ts=net.now))
    assert x._arrived == [] and x._taken_memo == {}
    assert set(free[:3]) <= set(_taken_memo_is_exact(net, SpaceKind.DOMAIN))


def test_a_denied_renewal_that_supersedes_a_held_claim_frees_its_room() -> None:
    """A renewal cached as denied supersedes an entry that held room: the remembered set
    cannot lower a maximum, so it is dropped and rebuilt without the prefix.  (The cache
    is fed directly, as the engine does with a claim it denies on arrival.)"""
    net = world()
    ours = allocated(net)
    x = net["x"]
    block = sub(ours, 28, 3)
    held = kid(NEW, block, ts=net.now, lifetime=5 * DAY)
    net.inject("c", "x", held)
    assert block in _taken_memo_is_exact(net, SpaceKind.LOCAL)
    renewal = replace(held, origin_role=C, timestamp=held.timestamp + 60)
    assert x.cache.add(CacheEntry(renewal, "c", DomainId(X_DOM), denied=True))
    assert [e.claim for e in x.cache.of_origin(NEW, DomainId(C_DOM))] == [renewal]
    assert block not in _taken_memo_is_exact(net, SpaceKind.LOCAL)


def _free_blocks(ours: Prefix) -> list[Prefix]:
    return [p for p in IPv4Network(PARENT_SPACE).subnets(new_prefix=24) if not p.overlaps(ours)]


def test_a_claim_timing_out_leaves_the_occupied_set_without_a_rebuild() -> None:
    """A claim past its expiry plus the §12.3 grace only frees its own prefix: the
    remembered set drops it in place (engine._taken_now) and stays the rebuild's."""
    net = world()
    ours = allocated(net)
    free = _free_blocks(ours)
    net.inject("s", "x", sib(NEW, free[0], ts=net.now))  # holdtime: one waiting period
    net.inject("s", "x", sib(PIU, free[1], ts=net.now))  # holdtime: 30 days
    net.run_for(1)
    domain = _taken_memo_is_exact(net, SpaceKind.DOMAIN)
    assert {free[0], free[1]} <= set(domain)
    net.run_for(WAIT + net["x"].cache.grace + 1)
    net.call("x", "handle_timer")  # others' claims timing out wake nothing: ask now
    assert _taken_memo_is_exact(net, SpaceKind.DOMAIN) is domain
    assert free[0] not in domain and free[1] in domain


def test_a_withdraw_timing_out_gives_the_claim_it_released_its_room_back() -> None:
    """§11.7: a sibling's WITHDRAW releases its claim of the same prefix while it lasts;
    once it times out the claim holds the room again, which dropping prefixes whose time
    has come cannot show: the remembered set is rebuilt then."""
    net = world()
    ours = allocated(net)
    free = _free_blocks(ours)
    net.inject("s", "x", sib(PIU, free[0], ts=net.now))
    net.run_for(1)
    assert free[0] in _taken_memo_is_exact(net, SpaceKind.DOMAIN)
    net.inject("s", "x", sib(WD, free[0], ts=net.now, lifetime=DAY))
    net.run_for(1)
    assert free[0] not in _taken_memo_is_exact(net, SpaceKind.DOMAIN)
    net.run_for(DAY)
    assert free[0] in _taken_memo_is_exact(net, SpaceKind.DOMAIN)


def test_a_parents_prefix_managed_leaves_the_occupied_set_as_it_was() -> None:
    """A parent's PREFIX_MANAGED holds no room of ours (§11.6.1): its arrival, a renewal
    superseding the one cached, keeps the remembered set (each of a parent's renewals
    reached all its children, and each rebuilt its set for nothing)."""
    net = world()
    allocated(net)
    domain = _taken_memo_is_exact(net, SpaceKind.DOMAIN)
    net.inject("p", "x", parent_pm(ts=net.now))
    net.run_for(1)
    assert _taken_memo_is_exact(net, SpaceKind.DOMAIN) is domain


# --- §11.8 replay on session establishment ------------------------------------------------


def _rich_world() -> tuple[Net, Prefix]:
    """``x`` non-leaf with live attributes of every origin: parent, sibling, own (DOMAIN and
    LOCAL), child, and its own CLAIM_DENIED of a child's claim."""
    net = world()
    ours = allocated(net)
    net.inject("c", "x", kid(PIU, sub(ours, 28, 5), ts=net.now, lifetime=20 * DAY))
    net.run_for(3 * WAIT)  # x expands and claims for local use (§12.2)
    assert any(k is SpaceKind.LOCAL for k, _ in net["x"].allocations)
    # x also claims ahead for its children (§17.1.2); ours grew in place (§5.3).
    (ours,) = [p for p in net["x"].managed_space() if covers(p, ours)]
    alloc = net["x"].allocations[(SpaceKind.DOMAIN, ours)]
    now = net.now
    for peer, attribute in [
        ("p", claim(WD, I, "239.192.128.0/24", domain=P_DOM, node=P_NODE, ts=now)),
        ("s", sib(PIU, "239.192.8.0/24", ts=now)),
        ("s", sib(NEW, "239.192.9.0/24", ts=now)),
        ("s", sib(WD, "239.192.8.0/26", ts=now)),
        ("p", claim(CD, I, "239.192.9.0/24", domain=S_DOM, node=S_NODE, ts=now, lifetime=0)),
        ("c", kid(WD, sub(ours, 30, 20), ts=now)),
        ("c", kid(NEW, sub(ours, 28, 6), ts=now, lifetime=90 * DAY)),  # we deny it
        # A sibling's PREFIX_IN_USE beats part of ours: our clash WITHDRAW.
        ("s", sib(PIU, sub(ours, 27, 15), ts=alloc.timestamp - 1, lifetime=20 * DAY)),
    ]:
        assert rejects(net.inject(peer, "x", attribute)) == [], attribute
    kinds = {(e.claim.origin_role, e.claim.type) for e in net["x"].cache.live(net.now)}
    assert {(I, WD), (I, CD), (P, CD), (P, WD), (S, NEW), (C, WD)} <= kinds
    net.clear()
    return net, ours


@pytest.mark.parametrize(
    ("role", "domain", "node"),
    [
        (C, C_DOM, 0x1E000003),
        (C, 32, 0x20000001),
        (P, P_DOM, 0x0A000003),
        (S, 23, 0x17000001),
        (I, X_DOM, I_NODE + 5),
    ],
)
def test_s11_8_replay_on_peer_up_is_in_group_order(role: Role, domain: int, node: int) -> None:
    net, _ = _rich_world()
    net.stub("new", domain, node)
    net.link("x", "new", role, parent=P_DOM)
    got = net.inbox("new")
    assert len(got) >= 3
    assert general_rule_violations(got) == []
    # Group order (§11.8.1-§11.8.4) holds among the attributes the general rules do not
    # move: those of other domains.
    ranks = [sync_rank(role, c.origin_role, c.type) for c in got if c.origin_domain != X_DOM]
    assert ranks == sorted(ranks)
    assert len({(c.type, c.origin_domain, c.prefix, c.timestamp) for c in got}) == len(got)


def test_s11_8_1_parent_to_child_starts_with_our_prefix_managed() -> None:
    net, _ = _rich_world()
    net.stub("new", 32, 0x20000001)
    net.link("x", "new", C)
    got = net.inbox("new")
    assert (got[0].type, got[0].origin_role, got[0].origin_domain) == (PM, I, X_DOM)
    # Only our own attributes and our children's: nothing of siblings or the parent, and
    # not the CLAIM_DENIED addressed to another child domain (§11.4.3).
    assert {c.origin_domain for c in got} == {X_DOM, C_DOM}
    assert CD not in {c.type for c in got}


def test_s11_8_1_parent_to_child_sends_our_claim_denied_to_the_denied_childs_nodes() -> None:
    net, _ = _rich_world()
    net.stub("new", C_DOM, 0x1E000003)
    net.link("x", "new", C)
    got = net.inbox("new")
    assert [c.type for c in got if c.type is CD] == [CD]
    (denied,) = [c for c in got if c.type is CD]
    assert all(sync_rank(C, c.origin_role, c.type)[0] < 3 for c in got[: got.index(denied)])


def test_s11_8_2_child_to_parent_starts_with_the_parents_space() -> None:
    net, _ = _rich_world()
    net.stub("new", P_DOM, 0x0A000003)
    net.link("x", "new", P)
    got = net.inbox("new")
    assert (got[0].type, got[0].origin_role) == (PM, P)
    assert {c.origin_domain for c in got} == {P_DOM, X_DOM, S_DOM}  # nothing of children
    assert got[-1].type is WD


def test_s11_7_3_s12_2_withdrawn_range_leaves_the_local_space_of_a_non_leaf_domain() -> None:
    """§11.7.3 "stop advertising the WITHDRAW range to the MAASs": also where it lies inside
    space the non-leaf domain claimed from itself for local use."""
    net, _ = _rich_world()
    local = [a for (k, _), a in net["x"].allocations.items() if k is SpaceKind.LOCAL]
    inside = sub(local[0].prefix, local[0].prefix.prefixlen + 2, 1)
    owner = [a for a in net["x"].allocations.values() if covers(a.prefix, inside)]
    earlier = min(a.timestamp for a in owner) - 1
    net.inject("s", "x", sib(PIU, inside, ts=earlier, lifetime=20 * DAY))
    clashes = [e.claim for e in net["x"].cache if e.claim.type is WD and e.clash]
    (clash,) = [c for c in clashes if covers(local[0].prefix, c.prefix)]
    assert not any(p.overlaps(clash.prefix) for p in net["x"].local_space())


# --- §14 restart -----------------------------------------------------------------------------


def _hierarchy(restore_from: frozenset[Role] | None = None) -> Net:
    """Real engines: TLD parent "top" (10), x and x2 (domain 20), sibling "y" (21)."""
    net = Net()
    net.engine("top", P_DOM, P_NODE, global_pool=(net4(PARENT_SPACE),), initial_size=0)
    policy = Policy() if restore_from is None else Policy(restore_from=restore_from)
    for name, domain, node in (("x", X_DOM, X_NODE), ("x2", X_DOM, I_NODE), ("y", S_DOM, S_NODE)):
        net.engine(name, domain, node, parent_domain_ids=(DomainId(P_DOM),), policy=policy)
    net.call("top", "claim", 0, prefix=net4("239.192.0.0/20"), lifetime=PM_LIFETIME, at=T0 + 1)
    net.start("top")
    net.run_for(WAIT + 10)
    net.link("x", "top", P)
    net.link("x2", "top", P)
    net.link("y", "top", P)
    net.link("x", "x2", I)
    net.link("x", "y", S, parent=P_DOM)
    net.start("x", "y")
    net.run_for(WAIT + 1_000)
    net.clear()
    return net


def _restart_x(net: Net, peers: tuple[str, ...], **config: Any) -> None:
    old = net["x"].config
    for peer in ("top", "x2", "y"):
        if ("x", peer) in net.live:
            net.down("x", peer)
    net.engine(
        "x", X_DOM, X_NODE, parent_domain_ids=old.parent_domain_ids, policy=old.policy, **config
    )
    for peer in peers:
        net.up("x", peer)


def test_s14_restart_relearns_the_allocation_from_parent_and_internal_peer() -> None:
    net = _hierarchy()
    (before,) = net["x"].managed_space()
    for peers in (("top",), ("x2",)):
        _restart_x(net, peers)
        assert net["x"].managed_space() == [before], peers
        (learned,) = net.events("x", PrefixAllocated)
        assert learned.purpose == "learned"
        assert net["x"].grib == {before}
        net.clear()


def test_s14_restart_ignores_its_own_prefix_coming_from_a_sibling() -> None:
    net = _hierarchy(restore_from=frozenset({Role.PARENT, Role.INTERNAL}))
    (before,) = net["x"].managed_space()
    _restart_x(net, ("y",))
    assert net["x"].managed_space() == []
    notices = [n for n in net.events("x", PolicyNotice) if n.event == "restore_ignored"]
    assert notices
    net.up("x", "top")
    assert net["x"].managed_space() == [before]


def test_s14_restart_may_trust_siblings_when_configured() -> None:
    net = _hierarchy(restore_from=frozenset({Role.PARENT, Role.INTERNAL, Role.SIBLING}))
    (before,) = net["x"].managed_space()
    _restart_x(net, ("y",))
    assert net["x"].managed_space() == [before]


def test_s14_restarted_node_keeps_renewing_what_it_relearned() -> None:
    net = _hierarchy()
    (before,) = net["x"].managed_space()
    first = next(iter(net["x"].allocations.values())).expires
    _restart_x(net, ("top", "x2", "y"))
    net.start("x")
    net.run_until(first + DAY)
    assert net["x"].managed_space() == [before]
    assert net.events("x", ClaimSent)[0].purpose == "renew"


# --- §8.3 claim policy ------------------------------------------------------------------------


def test_s8_3_claim_timestamp_too_new() -> None:
    net = world(start=False, policy=Policy(timestamp_tolerance=100))
    assert rejects(net.inject("s", "x", sib(PIU, "239.192.7.0/24", ts=T0 + 100))) == []
    events = net.inject("s", "x", sib(PIU, "239.192.8.0/24", ts=T0 + 101))
    assert subcodes(events) == [Sub.CLAIM_TIMESTAMP_TOO_NEW]
    assert no_sends(events)


def test_s8_3_claim_timestamp_too_old() -> None:
    net = world(start=False, policy=Policy(timestamp_tolerance=100))
    old = sib(NEW, "239.192.7.0/24", ts=T0 - WAIT - 101, holdtime=10 * DAY)
    events = net.inject("s", "x", old)
    assert subcodes(events) == [Sub.CLAIM_TIMESTAMP_TOO_OLD]


def test_s8_3_claim_holdtime_too_long() -> None:
    net = world(start=False, policy=Policy(max_claim_holdtime=50 * DAY))
    events = net.inject("s", "x", sib(PIU, "239.192.7.0/24", lifetime=50 * DAY + 1))
    assert subcodes(events) == [Sub.CLAIM_HOLDTIME_TOO_LONG]


def test_s8_3_claim_holdtime_too_short() -> None:
    net = world(start=False, policy=Policy(min_claim_holdtime=60))
    events = net.inject("s", "x", sib(PIU, "239.192.7.0/24", lifetime=59))
    assert subcodes(events) == [Sub.CLAIM_HOLDTIME_TOO_SHORT]


def test_s8_3_claim_lifetime_too_short() -> None:
    net = world(policy=Policy(min_child_lifetime=2 * DAY))
    ours = allocated(net)
    events = net.inject("c", "x", kid(NEW, sub(ours, 28), ts=net.now, lifetime=DAY))
    assert subcodes(events) == [Sub.CLAIM_LIFETIME_TOO_SHORT]


def test_s8_3_claim_prefix_size_too_small() -> None:
    net = world(policy=Policy(min_child_prefix_size=16))
    ours = allocated(net)
    events = net.inject("c", "x", kid(NEW, sub(ours, 29), ts=net.now, lifetime=DAY))
    assert subcodes(events) == [Sub.CLAIM_PREFIX_SIZE_TOO_SMALL]
    assert no_sends(events)


def test_s8_3_claim_prefix_size_too_large_is_denied_first_then_refused() -> None:
    net = world(policy=Policy(max_child_prefix_size=64))
    ours = allocated(net)
    big = kid(NEW, sub(ours, 25), ts=net.now, lifetime=DAY)
    first = net.inject("c", "x", big)
    assert rejects(first) == []
    (denial,) = {c for c in sends(first) if c.type is CD}
    assert denial.prefix == big.prefix
    assert receivers(first, big) == {"i"}
    net.run_for(60)
    events = net.inject("c", "x", replace(big, timestamp=int(net.now)))
    assert subcodes(events) == [Sub.CLAIM_PREFIX_SIZE_TOO_LARGE]


def test_s8_3_child_over_the_hard_threshold_is_denied() -> None:
    net = world(policy=Policy(child_hard_threshold=32))
    ours = allocated(net)
    events = net.inject("c", "x", kid(NEW, sub(ours, 26), ts=net.now, lifetime=DAY))
    assert rejects(events) == []
    assert [c.type for c in sends(events, "c")] == [CD]


def test_s8_3_child_at_the_soft_threshold_is_reported() -> None:
    net = world(policy=Policy(child_soft_threshold=32))
    ours = allocated(net)
    small = kid(NEW, sub(ours, 28), ts=net.now, lifetime=DAY)
    assert of_type(net.inject("c", "x", small), PolicyNotice) == []
    second = kid(NEW, sub(ours, 28, 1), ts=net.now, lifetime=DAY)
    events = net.inject("c", "x", second)
    assert [n.event for n in of_type(events, PolicyNotice)] == ["soft_threshold"]
    assert receivers(events, second) == {"i", "c2", "d"}  # still passed on, not denied


# --- §4.5 administrative scopes -----------------------------------------------------------------


def test_s4_5_claim_inside_a_scope_is_not_sent_across_its_boundary() -> None:
    net = world(start=False)
    zone = net4("239.192.7.0/24")
    net.stub("z", S_DOM + 50, S_NODE + 50)
    net.link("x", "z", S, parent=P_DOM, scope=(zone,))
    inside, outside = sib(PIU, "239.192.7.0/26"), sib(PIU, "239.192.9.0/24")
    events = net.inject("s", "x", inside, outside)
    assert "z" not in receivers(events, inside)
    assert "z" in receivers(events, outside)
    assert "i" in receivers(events, inside)


def test_s4_5_enclosing_scope_messages_still_cross_the_boundary() -> None:
    """The parent's PREFIX_MANAGED covers the zone but belongs to the enclosing scope."""
    net = world(pm=False, start=False)
    net.stub("z", S_DOM + 50, S_NODE + 50)
    net.link("x", "z", S, parent=P_DOM, scope=(net4("239.192.7.0/24"),))
    pm = parent_pm()
    assert "z" in receivers(net.inject("p", "x", pm), pm)


# --- §11.1 special cases, end to end ----------------------------------------------------------


@pytest.mark.parametrize("peer", ["c2", "d"])
def test_s11_1_our_claim_denied_back_through_a_child_is_ours(peer: str) -> None:
    """Special case 3: our CLAIM_DENIED, returned by a node of the denied child's domain or
    (third party) of another child domain, is INTERNAL: a duplicate of what we sent."""
    net = world()
    ours = allocated(net)
    asked, _ = _too_long(net, ours)
    (denial,) = {c for c in sends(net.inject("c", "x", asked)) if c.type is CD}
    back = replace(denial, origin_role=P)  # what the child sends on: a parent's UPDATE
    assert net.inject(peer, "x", back) == []


def test_s11_1_our_prefix_in_use_back_from_the_parent_is_ours() -> None:
    """Special case 1: our own UPDATE back from a parent is INTERNAL, not SIBLING."""
    net = world()
    ours = allocated(net)
    (piu,) = [c for c in net["x"].cache if c.claim.type is PIU and c.claim.prefix == ours]
    back = replace(piu.claim, origin_role=C)  # the parent forwards it as a child's
    assert net.inject("p", "x", back) == []


# --- found by running a hierarchy for a year ---------------------------------------------------


def test_s5_2_s8_3_renewed_prefix_in_use_keeps_a_holdtime_peers_accept() -> None:
    """§7.3: Lifetime and Holdtime count from the Claim Timestamp; a renewed PREFIX_IN_USE
    carries the renewal's timestamp, so its holdtime does not grow past §8.3's limit."""
    net = world()
    ours = allocated(net)
    net.run_for(95 * DAY)  # several renewals, within the parent's 100 days
    pius = [c for c in net.inbox("p") if c.type is PIU and c.prefix == ours]
    assert len(pius) >= 3
    assert all(c.holdtime == c.lifetime <= 30 * DAY for c in pius)
    alloc = net["x"].allocations[(SpaceKind.DOMAIN, ours)]
    assert pius[-1].timestamp + pius[-1].lifetime == alloc.expires


def test_s4_2_s5_2_child_keeps_its_prefix_for_a_year_under_a_renewing_parent() -> None:
    """The child's lifetime is capped at the parent's (§11.4.3), so its renewal waits for
    the parent's; renewing at half-life leaves time for both."""
    net = _hierarchy()
    x_space, y_space = net["x"].managed_space(), net["y"].managed_space()
    assert x_space and y_space
    net.run_for(365 * DAY)
    assert net["x"].managed_space() == x_space
    assert net["y"].managed_space() == y_space
    assert [r for r in net.log if isinstance(r.event, RejectClaim)] == []
    assert [r for r in net.log if isinstance(r.event, PrefixGone)] == []


def test_s17_1_5_a_parent_never_shrinks_away_from_its_children() -> None:
    """A parent whose MAAS reports no use would halve its /20 at renewal (§17.1.5), but
    ``y`` holds a /24 in the upper half and ``x`` one in the lower: the parent renews the
    whole, and both children keep their prefixes for a year (docs/conformance.md)."""
    net = _hierarchy()
    x_space, y_space = net["x"].managed_space(), net["y"].managed_space()
    (parent,) = net["top"].managed_space()
    low, _high = parent.subnets()
    assert {covers(low, x_space[0]), covers(low, y_space[0])} == {True, False}
    net.call("top", "set_demand", Demand(in_use=0))
    net.run_for(365 * DAY)
    assert net["top"].managed_space() == [parent]
    assert net["x"].managed_space() == x_space
    assert net["y"].managed_space() == y_space
    assert [r for r in net.log if isinstance(r.event, PrefixGone)] == []


def test_s17_1_2_a_parent_counts_each_child_prefix_once() -> None:
    """A child's renewal announces its prefix again with a new timestamp: it replaces the
    cached PREFIX_IN_USE it renews (choice 103), and the parent's demand counts the prefix
    once."""
    net = _hierarchy()
    net.call("top", "set_demand", Demand(in_use=0))
    net.run_for(3 * DAY)

    def announced() -> dict[tuple[int, Prefix], int]:
        piu = [e.claim for e in net["top"].cache if e.claim.type is ClaimType.PREFIX_IN_USE]
        once = {(c.origin_domain, c.prefix): c.timestamp for c in piu}
        assert len(once) == len(piu)  # one entry per announcing domain and prefix
        return once

    first = announced()
    net.run_for(7 * DAY)
    top = net["top"]
    later = announced()
    # Renewals happened (a newer timestamp for a prefix already announced) and replaced it.
    assert any(later.get(k, 0) > ts for k, ts in first.items())
    held = top.allocations.items()
    local = sum(a.prefix.num_addresses for (k, _), a in held if k is SpaceKind.LOCAL)
    children = net["x"].managed_space() + net["y"].managed_space()
    demand = top._demand_for(SpaceKind.DOMAIN)
    assert demand is not None
    assert demand.in_use == local + sum(p.num_addresses for p in children)


def test_s5_4_release_by_an_internal_peer_frees_the_prefix_at_every_node() -> None:
    net = _hierarchy()
    (ours,) = net["x"].managed_space()
    assert net["x2"].managed_space() == [ours]
    events = net.call("x2", "release", ours)
    assert PrefixGone(ours, SpaceKind.DOMAIN, "released") in events
    assert PrefixGone(ours, SpaceKind.DOMAIN, "released") in net.events("x", PrefixGone)
    assert (SpaceKind.DOMAIN, ours) not in net["x"].allocations
    # x needs space again.  It does not claim the range it just withdrew (the WITHDRAW
    # would cut it at once, §11.7.3) but another one.
    net.run_for(WAIT + 1_300)
    (again,) = net["x"].managed_space()
    assert again != ours
    assert net["x"].local_space() == [again]


@pytest.mark.parametrize("method", ["renew", "expand"])
def test_s12_4_withdrawn_prefix_cannot_be_renewed_or_expanded(method: str) -> None:
    net = world()
    ours = allocated(net)
    net.inject("s", "x", _clash(net, ours, ours, 20 * DAY))
    with pytest.raises(RequestRefused):
        net.call("x", method, ours)


def test_s14_our_own_update_relayed_by_an_untrusted_sibling_is_ignored_not_refused() -> None:
    """Found by the property tests: x, cut off from its domain, hears of its domain's
    prefix only through a sibling.  It ignores the PREFIX_IN_USE (§14, restore_from), and
    must then ignore the renewal as well rather than blame the sibling for it."""
    net = world(start=False)
    piu = claim(PIU, S, "239.192.7.0/24", domain=X_DOM, node=I_NODE)
    renewal = claim(CTE, S, "239.192.7.0/24", domain=X_DOM, node=I_NODE, ts=T0 + 10)
    for attribute in (piu, renewal):
        events = net.inject("s", "x", attribute)
        assert rejects(events) == []
        assert [n.event for n in of_type(events, PolicyNotice)] == ["restore_ignored"]
    assert net["x"].allocations == {}


def test_s11_1_duplicate_is_dropped_before_the_s8_3_checks() -> None:
    """A copy arriving over a second path after the claim grew "too old" is still only a
    duplicate."""
    net = world(start=False, policy=Policy(timestamp_tolerance=100))
    net.stub("s2", S_DOM, S_NODE + 1)
    net.link("x", "s2", S, parent=P_DOM)
    new = sib(NEW, "239.192.7.0/24", ts=T0, holdtime=10 * DAY)
    assert rejects(net.inject("s", "x", new)) == []
    net.run_for(WAIT + 200)
    assert net.inject("s2", "x", new) == []
