"""Who an UPDATE comes from and who it goes to (RFC 2909 §4, §11.1 Table 1, §11.2-§11.8).

Table 1 is checked cell by cell against a transcription of the RFC's own drawing, so a typo
in :data:`masc.protocol.propagation.UPDATED_ROLE` and a typo here would have to agree to
pass.
"""

from __future__ import annotations

from itertools import pairwise, product

import pytest

from masc.protocol.constants import ClaimType, Role
from masc.protocol.propagation import (
    SYNC_GROUPS,
    Audience,
    audience,
    sync_order,
    sync_rank,
    updated_origin_role,
)
from masc.protocol.wire.messages import Claim, DomainId
from tests.protocol.engine_helpers import claim, general_rule_violations

# §11.1 Table 1, as drawn in the RFC (columns: Locally-Configured Role).
TABLE_1 = """
   Origin
   Role     || INTERNAL_PEER | CHILD   | SIBLING | PARENT
   =========++===============+=========+=========+=========
   INTERNAL || INTERNAL_PEER | PARENT  | SIBLING | CHILD
   CHILD    || CHILD         | SIBLING | ---     | ---
   SIBLING  || SIBLING       | ---     | SIBLING | CHILD
   PARENT   || PARENT        | ---     | PARENT  | ---
"""


def _transcribe(text: str) -> dict[tuple[Role, Role], Role | None]:
    names = {"INTERNAL_PEER": Role.INTERNAL, "---": None}
    lines = [line for line in text.splitlines() if "||" in line and "Role" not in line]
    columns = [Role.INTERNAL, Role.CHILD, Role.SIBLING, Role.PARENT]
    cells: dict[tuple[Role, Role], Role | None] = {}
    for line in lines:
        origin, rest = (part.strip() for part in line.split("||"))
        for column, value in zip(columns, (v.strip() for v in rest.split("|")), strict=True):
            cells[(Role[origin], column)] = names[value] if value in names else Role[value]
    return cells


TABLE = _transcribe(TABLE_1)
LOCAL, REMOTE, OTHER = DomainId(20), DomainId(30), DomainId(99)


def test_transcription_has_all_sixteen_cells() -> None:
    assert len(TABLE) == 16
    assert sum(v is None for v in TABLE.values()) == 5


@pytest.mark.parametrize(("origin", "local"), sorted(TABLE))
@pytest.mark.parametrize("claim_type", list(ClaimType))
def test_s11_1_table1_cell(origin: Role, local: Role, claim_type: ClaimType) -> None:
    """Every cell, for an origin domain that triggers no special case."""
    got = updated_origin_role(
        origin,
        local,
        claim_type,
        origin_domain=OTHER,
        local_domain=LOCAL,
        remote_domain=REMOTE,
    )
    assert got is TABLE[(origin, local)]


@pytest.mark.parametrize(("origin", "local"), [k for k, v in TABLE.items() if v is Role.SIBLING])
def test_s11_1_special_case_1_own_domain_as_sibling_is_internal(origin: Role, local: Role) -> None:
    """Our own UPDATEs back from a parent or sibling (after a reboot, or an internal
    partition) are INTERNAL, not SIBLING."""
    got = updated_origin_role(
        origin,
        local,
        ClaimType.PREFIX_IN_USE,
        origin_domain=LOCAL,
        local_domain=LOCAL,
        remote_domain=REMOTE,
    )
    assert got is Role.INTERNAL


@pytest.mark.parametrize("claim_type", list(ClaimType))
def test_s11_1_special_case_2_parent_parent_own_domain_is_internal(claim_type: ClaimType) -> None:
    """A parent receives its own UPDATEs through its children."""
    got = updated_origin_role(
        Role.PARENT,
        Role.PARENT,
        claim_type,
        origin_domain=LOCAL,
        local_domain=LOCAL,
        remote_domain=REMOTE,
    )
    assert got is Role.INTERNAL


def test_s11_1_special_case_3_parent_parent_claim_denied_of_remote_is_internal() -> None:
    """A parent's CLAIM_DENIED comes back through the child whose claim it denied."""
    got = updated_origin_role(
        Role.PARENT,
        Role.PARENT,
        ClaimType.CLAIM_DENIED,
        origin_domain=REMOTE,
        local_domain=LOCAL,
        remote_domain=REMOTE,
    )
    assert got is Role.INTERNAL


def test_s11_1_special_case_3_claim_denied_of_a_third_party_child_is_internal() -> None:
    """§11.1 "...but is same as some of the other MASC children domains, the Updated Origin Role
    still should be changed to INTERNAL"."""
    got = updated_origin_role(
        Role.PARENT,
        Role.PARENT,
        ClaimType.CLAIM_DENIED,
        origin_domain=OTHER,
        local_domain=LOCAL,
        remote_domain=REMOTE,
        child_domains=frozenset({REMOTE, OTHER}),
    )
    assert got is Role.INTERNAL


@pytest.mark.parametrize("claim_type", [t for t in ClaimType if t is not ClaimType.CLAIM_DENIED])
def test_s11_1_special_case_3_only_for_claim_denied(claim_type: ClaimType) -> None:
    got = updated_origin_role(
        Role.PARENT,
        Role.PARENT,
        claim_type,
        origin_domain=REMOTE,
        local_domain=LOCAL,
        remote_domain=REMOTE,
        child_domains=frozenset({REMOTE}),
    )
    assert got is None


def test_s11_1_special_case_3_not_for_an_unknown_domain() -> None:
    got = updated_origin_role(
        Role.PARENT,
        Role.PARENT,
        ClaimType.CLAIM_DENIED,
        origin_domain=OTHER,
        local_domain=LOCAL,
        remote_domain=REMOTE,
        child_domains=frozenset({REMOTE}),
    )
    assert got is None


# --- audience rules (§4, §11.2-§11.7) -----------------------------------------------------

UP = Audience(internal=True, parent_nodes=True, siblings=True)
DOWN = Audience(internal=True, children=True)


def _aud(t: ClaimType, role: Role, *, hint: bool = False, denied: bool = False) -> Audience:
    return audience(t, role, hint=hint, origin_domain=REMOTE, denied=denied)


@pytest.mark.parametrize(
    ("claim_type", "role", "expected"),
    [
        # §11.2.2 / §11.4.2 / §11.5 / §11.7.2: by a sibling, up to internal, parent, siblings
        (ClaimType.PREFIX_IN_USE, Role.SIBLING, UP),
        (ClaimType.CLAIM_TO_EXPAND, Role.SIBLING, UP),
        (ClaimType.NEW_CLAIM, Role.SIBLING, UP),
        (ClaimType.WITHDRAW, Role.SIBLING, UP),
        # §11.2.3 / §11.4.3 / §11.7.1: by a child, to internal peers and children
        (ClaimType.PREFIX_IN_USE, Role.CHILD, DOWN),
        (ClaimType.CLAIM_TO_EXPAND, Role.CHILD, DOWN),
        (ClaimType.NEW_CLAIM, Role.CHILD, DOWN),
        (ClaimType.WITHDRAW, Role.CHILD, DOWN),
        # §11.6.1 PREFIX_MANAGED, §11.3.3 CLAIM_DENIED by a parent: parent nodes, internal,
        # siblings with that parent
        (ClaimType.PREFIX_MANAGED, Role.PARENT, UP),
        (ClaimType.CLAIM_DENIED, Role.PARENT, UP),
        # §11.7.4: a parent's WITHDRAW to internal peers and siblings with that parent
        (ClaimType.WITHDRAW, Role.PARENT, Audience(internal=True, siblings=True)),
        # §5.1 b), d), §11.4.4: our claims and PREFIX_IN_USE go up
        (ClaimType.PREFIX_IN_USE, Role.INTERNAL, UP),
        (ClaimType.NEW_CLAIM, Role.INTERNAL, UP),
        (ClaimType.CLAIM_TO_EXPAND, Role.INTERNAL, UP),
        # §5.1 d), §11.6.3: our PREFIX_MANAGED goes down
        (ClaimType.PREFIX_MANAGED, Role.INTERNAL, DOWN),
        # §11.7.3: our WITHDRAW goes everywhere
        (
            ClaimType.WITHDRAW,
            Role.INTERNAL,
            Audience(internal=True, parent_nodes=True, siblings=True, children=True),
        ),
        # §11.3.2, §11.4.3: our CLAIM_DENIED to internal peers and the denied child's nodes
        (
            ClaimType.CLAIM_DENIED,
            Role.INTERNAL,
            Audience(internal=True, children=True, children_of=REMOTE),
        ),
    ],
)
def test_s11_audience(claim_type: ClaimType, role: Role, expected: Audience) -> None:
    assert _aud(claim_type, role) == expected


@pytest.mark.parametrize(
    ("claim_type", "role"),
    [
        (ClaimType.PREFIX_IN_USE, Role.PARENT),  # §11.2.1
        (ClaimType.CLAIM_TO_EXPAND, Role.PARENT),  # §11.4.1
        (ClaimType.NEW_CLAIM, Role.PARENT),  # §11.4.1 / §11.5
        (ClaimType.CLAIM_DENIED, Role.CHILD),  # §11.3.1
        (ClaimType.CLAIM_DENIED, Role.SIBLING),
        (ClaimType.PREFIX_MANAGED, Role.CHILD),  # §11.6.2
        (ClaimType.PREFIX_MANAGED, Role.SIBLING),
    ],
)
def test_s11_illegal_combinations_go_nowhere(claim_type: ClaimType, role: Role) -> None:
    assert _aud(claim_type, role) == Audience()


def test_s11_4_3_denied_child_claim_goes_to_internal_peers_only() -> None:
    assert _aud(ClaimType.NEW_CLAIM, Role.CHILD, denied=True) == Audience(internal=True)


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        (Role.CHILD, Audience(internal=True)),  # a child's hint: within the parent domain
        (Role.INTERNAL, Audience(internal=True, all_parents=True)),  # ours: to our parents
        (Role.SIBLING, Audience()),
        (Role.PARENT, Audience()),
    ],
)
def test_s11_5_hint_stays_among_child_domain_and_parent(role: Role, expected: Audience) -> None:
    assert _aud(ClaimType.NEW_CLAIM, role, hint=True) == expected


# --- §11.8 ordering ------------------------------------------------------------------------

# §11.8.1-§11.8.4 transcribed: (peer's relation to us) -> groups of (updated role, types).
_CLAIMS = (ClaimType.PREFIX_IN_USE, ClaimType.CLAIM_TO_EXPAND, ClaimType.NEW_CLAIM)
I, C, S, P = Role.INTERNAL, Role.CHILD, Role.SIBLING, Role.PARENT  # noqa: E741
PM, WD, CD = ClaimType.PREFIX_MANAGED, ClaimType.WITHDRAW, ClaimType.CLAIM_DENIED
SECTION_11_8: dict[Role, list[list[tuple[Role, ClaimType]]]] = {
    # §11.8.1 parent to child
    C: [[(I, PM), (I, WD)], [(C, t) for t in _CLAIMS], [(I, CD), (C, WD)]],
    # §11.8.2 child to parent
    P: [[(P, PM), (P, WD)], [(r, t) for r in (I, S) for t in _CLAIMS], [(P, CD), (I, WD), (S, WD)]],
    # §11.8.3 sibling to sibling
    S: [[(P, PM), (P, WD)], [(r, t) for r in (I, S) for t in _CLAIMS], [(P, CD), (I, WD), (S, WD)]],
    # §11.8.4 internal to internal
    I: [
        [(P, PM), (P, WD)],
        [(r, t) for r in (I, S) for t in _CLAIMS],
        [(P, CD), (I, WD), (S, WD)],
        [(C, t) for t in _CLAIMS],
        [(I, CD), (C, WD)],
    ],
}


@pytest.mark.parametrize("peer", list(SECTION_11_8))
def test_s11_8_groups_follow_the_rfc(peer: Role) -> None:
    for number, group in enumerate(SECTION_11_8[peer], start=1):
        for role, claim_type in group:
            assert sync_rank(peer, role, claim_type)[0] == number, (role, claim_type)


@pytest.mark.parametrize("peer", list(SECTION_11_8))
def test_s11_8_later_groups_sort_after_earlier_ones(peer: Role) -> None:
    groups = SECTION_11_8[peer]
    for earlier, later in pairwise(groups):
        for (r1, t1), (r2, t2) in product(earlier, later):
            assert sync_rank(peer, r1, t1) < sync_rank(peer, r2, t2)


def test_s11_8_every_relation_has_a_table() -> None:
    assert set(SYNC_GROUPS) == set(Role)


def _c(t: ClaimType, role: Role, domain: int, prefix: str = "239.192.0.0/24") -> Claim:
    return claim(t, role, prefix, domain=domain, node=domain)


@pytest.mark.parametrize("peer", list(SECTION_11_8))
def test_s11_8_general_rules_over_a_domain_that_is_its_own_child(peer: Role) -> None:
    """A non-leaf domain's own LOCAL claims have Rol=CHILD (§11, §12.2): its PREFIX_IN_USE
    falls in the "children" group, its DOMAIN WITHDRAW in an earlier one.  The rules that
    "always apply" win over the groups."""
    ours = int(LOCAL)
    state = [
        _c(PM, I, ours),
        _c(WD, I, ours, "239.192.2.0/24"),
        _c(ClaimType.NEW_CLAIM, I, ours, "239.192.4.0/24"),
        _c(ClaimType.PREFIX_IN_USE, C, ours, "239.192.0.0/28"),
        _c(ClaimType.NEW_CLAIM, C, ours, "239.192.0.16/28"),
        _c(ClaimType.PREFIX_IN_USE, C, 30, "239.192.0.64/26"),
        _c(WD, C, 30, "239.192.0.64/26"),
        _c(ClaimType.PREFIX_IN_USE, S, 21, "239.192.8.0/24"),
        _c(WD, S, 21, "239.192.8.0/24"),
        _c(PM, P, 10, "239.192.0.0/16"),
        _c(WD, P, 10, "239.192.128.0/24"),
    ]
    for attempt in (state, list(reversed(state))):
        order = sync_order(peer, attempt)
        assert sorted(order, key=repr) == sorted(attempt, key=repr)
        assert general_rule_violations(order) == []


@pytest.mark.parametrize("peer", list(SECTION_11_8))
def test_s11_8_sync_order_keeps_the_groups_when_the_general_rules_allow(peer: Role) -> None:
    state = [
        _c(WD, P, 10, "239.192.128.0/24"),
        _c(ClaimType.NEW_CLAIM, S, 21, "239.192.9.0/24"),
        _c(PM, P, 10, "239.192.0.0/16"),
        _c(CD, P, 21, "239.192.9.0/24"),
        _c(ClaimType.PREFIX_IN_USE, S, 21, "239.192.8.0/24"),
        _c(WD, C, 30, "239.192.0.64/26"),
        _c(ClaimType.PREFIX_IN_USE, C, 30, "239.192.0.64/26"),
    ]
    order = sync_order(peer, state)
    ranks = [sync_rank(peer, c.origin_role, c.type) for c in order]
    assert ranks == sorted(ranks)
