"""OPEN checks that depend on configuration (RFC 2909 §8.2) and §4.4 session selection.

One test per §8.2 check in ``check_open`` pins the exact subcode and Data; the default Data
is the OPEN without its header (``body``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from masc.protocol.constants import AddressFamily, Role
from masc.protocol.errors import ErrorCode, OpenMessageError, OpenSubcode
from masc.protocol.open_checks import SessionConfig, check_open, select_session
from masc.protocol.wire import DomainId, NodeId, Open, encode
from tests.protocol.fsm_helpers import LOCAL_NODE, config, peer_open

P1, P2, P3 = DomainId(65000), DomainId(65100), DomainId(65200)
TLD = DomainId(0)


def body(message: Open) -> bytes:
    return encode(message)[4:]


def ids(*values: int, length: int = 4) -> bytes:
    return b"".join(v.to_bytes(length, "big") for v in values)


def sibling(**overrides: Any) -> SessionConfig:
    """Domain 65001 peering with its sibling 65002; both are children of P1 and P2."""
    fields: dict[str, Any] = dict(
        peer_role=Role.SIBLING,
        peer_domain=DomainId(65002),
        parent_domain_ids=(P1, P2),
        session_parent=None,
    )
    fields.update(overrides)
    return config(**fields)


def internal(**overrides: Any) -> SessionConfig:
    fields: dict[str, Any] = dict(
        peer_role=Role.INTERNAL, peer_domain=DomainId(65001), parent_domain_ids=(P1,)
    )
    fields.update(overrides)
    return config(**fields)


def open_error(message: Open, cfg: SessionConfig) -> OpenMessageError:
    with pytest.raises(OpenMessageError) as info:
        check_open(message, body(message), cfg)
    return info.value


def wire(error: OpenMessageError) -> tuple[int, int, bytes, bool]:
    return (error.code, error.subcode, error.data, error.must_close)


# --- each §8.2 check -------------------------------------------------------------------------


def test_s8_2_bad_peer_domain_id() -> None:
    cfg = config()
    message = peer_open(cfg, domain_id=DomainId(65099))
    assert wire(open_error(message, cfg)) == (
        ErrorCode.OPEN_MESSAGE,
        OpenSubcode.BAD_PEER_DOMAIN_ID,
        body(message),
        True,
    )


@pytest.mark.parametrize("node", [0, LOCAL_NODE], ids=["zero", "ours"])
def test_s8_2_bad_peer_masc_node_id(node: int) -> None:
    cfg = config()
    message = peer_open(cfg, node_id=NodeId(node))
    assert wire(open_error(message, cfg)) == (
        ErrorCode.OPEN_MESSAGE,
        OpenSubcode.BAD_PEER_NODE_ID,
        body(message),
        True,
    )


_MISMATCHES = [(c, p) for c in Role for p in Role if c is not p]


@pytest.mark.parametrize(
    ("configured", "proposed"),
    _MISMATCHES,
    ids=[f"expect-{c.name}-got-{p.name}" for c, p in _MISMATCHES],
)
def test_s8_2_inconsistent_role_data_is_our_configured_role(
    configured: Role, proposed: Role
) -> None:
    cfg = config(peer_role=configured, parent_domain_ids=(P1,), session_parent=None)
    message = peer_open(cfg, role=proposed)
    assert wire(open_error(message, cfg)) == (
        ErrorCode.OPEN_MESSAGE,
        OpenSubcode.INCONSISTENT_ROLE,
        bytes([configured.counterpart]),
        True,
    )
    assert cfg.local_role is configured.counterpart


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [((TLD,), P1), ((P1, P2), TLD)],
    ids=["we-are-tld", "peer-is-tld"],
)
def test_s8_2_invalid_parent_configuration_data_is_all_our_parents(
    ours: tuple[DomainId, ...], theirs: DomainId
) -> None:
    cfg = internal(parent_domain_ids=ours)
    message = peer_open(cfg, parent_domain_id=theirs)
    assert wire(open_error(message, cfg)) == (
        ErrorCode.OPEN_MESSAGE,
        OpenSubcode.INVALID_PARENT_CONFIGURATION,
        ids(*ours),
        True,
    )


@pytest.mark.parametrize("family", list(AddressFamily), ids=lambda f: f.name)
def test_s8_2_no_common_parent_data_is_all_our_parents(family: AddressFamily) -> None:
    cfg = sibling(family=family)
    message = peer_open(cfg, parent_domain_id=P3)
    assert wire(open_error(message, cfg)) == (
        ErrorCode.OPEN_MESSAGE,
        OpenSubcode.NO_COMMON_PARENT,
        ids(P1, P2, length=family.id_length),
        True,
    )


@pytest.mark.parametrize("family", list(AddressFamily), ids=lambda f: f.name)
def test_s8_2_bad_parent_domain_id_data_is_the_peers_parent(family: AddressFamily) -> None:
    # A common parent, but not the one this sibling session is for (§4.4).
    cfg = sibling(family=family, session_parent=P1)
    message = peer_open(cfg, parent_domain_id=P2)
    assert wire(open_error(message, cfg)) == (
        ErrorCode.OPEN_MESSAGE,
        OpenSubcode.BAD_PARENT_DOMAIN_ID,
        ids(P2, length=family.id_length),
        True,
    )


@pytest.mark.parametrize("family", list(AddressFamily), ids=lambda f: f.name)
def test_s8_2_open_of_the_other_family_is_unrecognized_address_family(
    family: AddressFamily,
) -> None:
    other = AddressFamily.IPV6 if family is AddressFamily.IPV4 else AddressFamily.IPV4
    cfg = config(family=family)
    message = peer_open(cfg, family=other)
    assert wire(open_error(message, cfg)) == (
        ErrorCode.OPEN_MESSAGE,
        OpenSubcode.UNRECOGNIZED_ADDRESS_FAMILY,
        body(message),
        True,
    )


# --- correct OPENs pass ----------------------------------------------------------------------


_CORRECT = {
    "peer-is-our-parent": config(),
    "peer-is-our-child": config(
        peer_role=Role.CHILD, peer_domain=DomainId(65010), parent_domain_ids=(P1,)
    ),
    "sibling-any-common-parent": sibling(),
    "sibling-session-for-p2": sibling(session_parent=P2),
    "internal": internal(parent_domain_ids=(P1, P2)),
    "internal-both-tld": internal(parent_domain_ids=(TLD,)),
    "tld-siblings": sibling(parent_domain_ids=(TLD,)),
    "ipv6-sibling": sibling(family=AddressFamily.IPV6, session_parent=P1),
}


@pytest.mark.parametrize("name", list(_CORRECT))
def test_s8_2_correct_open_passes(name: str) -> None:
    cfg = _CORRECT[name]
    message = peer_open(cfg)
    check_open(message, body(message), cfg)


@pytest.mark.parametrize("role", [Role.PARENT, Role.CHILD], ids=lambda r: r.name)
def test_s7_2_parent_domain_id_is_ignored_unless_internal_or_sibling(role: Role) -> None:
    # §7.2: "Used only when Rol is INTERNAL_PEER or SIBLING, otherwise is ignored."
    cfg = config(peer_role=role, parent_domain_ids=(P1,))
    for parent in (TLD, P3, DomainId(0xFFFFFFFF)):
        message = peer_open(cfg, parent_domain_id=parent)
        check_open(message, body(message), cfg)


def test_s8_2_internal_peers_compare_only_tld_ness() -> None:
    # Two non-TLD internal peers may name different parents (or their own domain, §7.2).
    cfg = internal(parent_domain_ids=(P1,))
    message = peer_open(cfg, parent_domain_id=cfg.peer_domain)
    check_open(message, body(message), cfg)


# --- §4.4 which sibling session an OPEN belongs to -------------------------------------------


def _sessions() -> list[SessionConfig]:
    """One sibling session per common parent P1, P2; P3 is also our parent, without one."""
    return [sibling(parent_domain_ids=(P1, P2, P3), session_parent=p) for p in (P1, P2)]


def test_s4_4_select_session_by_parent_domain_id() -> None:
    candidates = _sessions()
    for index, parent in enumerate((P1, P2)):
        message = peer_open(candidates[index])
        assert message.parent_domain_id == parent
        assert select_session(message, body(message), candidates) == index


def test_s4_4_single_candidate_is_chosen_without_looking() -> None:
    cfg = sibling(session_parent=P1)
    message = peer_open(cfg, parent_domain_id=P3)
    assert select_session(message, body(message), [cfg]) == 0


def test_s4_4_common_parent_without_a_session_is_bad_parent_domain_id() -> None:
    candidates = _sessions()
    message = peer_open(candidates[0], parent_domain_id=P3)
    with pytest.raises(OpenMessageError) as info:
        select_session(message, body(message), candidates)
    assert wire(info.value) == (
        ErrorCode.OPEN_MESSAGE,
        OpenSubcode.BAD_PARENT_DOMAIN_ID,
        ids(P3),
        True,
    )


def test_s4_4_no_common_parent_among_the_candidates() -> None:
    candidates = _sessions()
    message = peer_open(candidates[0], parent_domain_id=DomainId(64999))
    with pytest.raises(OpenMessageError) as info:
        select_session(message, body(message), candidates)
    assert wire(info.value) == (
        ErrorCode.OPEN_MESSAGE,
        OpenSubcode.NO_COMMON_PARENT,
        ids(P1, P2, P3),
        True,
    )


def test_s4_4_selected_session_then_accepts_the_open() -> None:
    candidates = _sessions()
    message = peer_open(candidates[1])
    chosen = candidates[select_session(message, body(message), candidates)]
    check_open(message, body(message), chosen)
    with pytest.raises(OpenMessageError):
        check_open(message, body(message), replace(chosen, session_parent=P1))


def test_s4_4_a_non_sibling_sharing_an_address_with_siblings_is_chosen_by_role() -> None:
    """Should a child session share its address with sibling sessions, the OPEN's role
    (CHILD) picks it; the siblings are still told apart by parent."""
    child = config(peer_role=Role.CHILD, peer_domain=DomainId(65009))
    candidates = [*_sessions(), child]
    opening = peer_open(child)
    assert select_session(opening, body(opening), candidates) == 2
    for index, cfg in enumerate(_sessions()):
        opening = peer_open(cfg)
        assert select_session(opening, body(opening), candidates) == index
