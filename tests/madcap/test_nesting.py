"""RFC 2907 nesting matrix helpers: closure, larger/smaller, the count rule of §5."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from masc.madcap.codec import decode, encode
from masc.madcap.constants import AddressFamily, MessageType
from masc.madcap.messages import Message, NestingState, Options, ScopeEntry
from masc.madcap.nesting import closure, larger, nesting_for, relations, smaller, usable

# RFC 2907 §3.2: "S1/S2, S2/S3, S2/S4, S3/S5, S4/S5, S5/S6, and S6/S7".
FIGURE_4_GIVEN = [("S1", "S2"), ("S2", "S3"), ("S2", "S4"), ("S3", "S5"), ("S4", "S5"),
                  ("S5", "S6"), ("S6", "S7")]  # fmt: skip
SCOPES = [f"S{i}" for i in range(1, 8)]
# Figure 4's matrix, the diagonal (drawn 1 there) removed.
FIGURE_4_ROWS = ["*111111", "0*11111", "00*0111", "000*111", "0000*11", "00000*1", "000000*"]


def rows_of(state: NestingState) -> list[str]:
    return [
        "".join("*" if i == j else "1" if bit else "0" for j, bit in enumerate(row))
        for i, row in enumerate(state.rows)
    ]


def test_rfc2907_s3_2_closure_of_the_figure_4_relations_is_the_figure_4_matrix() -> None:
    state = closure(SCOPES, FIGURE_4_GIVEN)
    assert rows_of(state) == FIGURE_4_ROWS
    message = Message(
        MessageType.ACK, AddressFamily.IPV4, 1, Options(lease_id=b"\0", nesting=state)
    )
    assert encode(message).endswith(bytes.fromhex("00 11 00 08 07 fc 7c 1c 1c 0c 04 00 0000 0000"))


def test_rfc2907_s3_2_row_is_what_a_scope_nests_inside() -> None:
    state = closure(SCOPES, FIGURE_4_GIVEN)
    assert larger(state, 0) == (1, 2, 3, 4, 5, 6)  # S1 is inside every other scope
    assert larger(state, 2) == (4, 5, 6)  # S3 in S5, S6, S7 (not S4: they overlap)
    assert larger(state, 6) == ()  # S7 is the largest


def test_rfc2907_s3_2_column_is_what_nests_inside_a_scope() -> None:
    state = closure(SCOPES, FIGURE_4_GIVEN)
    assert smaller(state, 4) == (0, 1, 2, 3)  # S1..S4 inside S5
    assert smaller(state, 3) == (0, 1)  # S1, S2 inside S4
    assert smaller(state, 0) == ()


def test_rfc2907_s2_case_4_same_border_keeps_both_relations_and_no_diagonal() -> None:
    state = closure(["X", "Y", "Z"], [("X", "Y"), ("Y", "X"), ("Y", "Z")])
    assert relations(state) == {(0, 1), (1, 0), (0, 2), (1, 2)}
    assert not any(state.rows[i][i] for i in range(3))


def test_closure_ignores_self_relations_and_is_idempotent() -> None:
    state = closure([0, 1, 2], [(0, 0), (0, 1), (1, 2)])
    assert relations(state) == {(0, 1), (0, 2), (1, 2)}
    assert closure([0, 1, 2], relations(state)) == state


def test_closure_of_nothing() -> None:
    assert closure([], []) == NestingState(())
    assert closure(["a"], []) == NestingState(((False,),))


def test_closure_refuses_unknown_or_duplicate_keys() -> None:
    with pytest.raises(ValueError, match="unknown"):
        closure(["a", "b"], [("a", "c")])
    with pytest.raises(ValueError, match="unique"):
        closure(["a", "a"], [])


def scope_list(n: int) -> tuple[ScopeEntry, ...]:
    return tuple(
        ScopeEntry(IPv4Address(f"239.255.{i}.0"), IPv4Address(f"239.255.{i}.255"), 255)
        for i in range(n)
    )


def test_rfc2907_s5_count_must_match_the_scope_list_else_ignored() -> None:
    state = closure(SCOPES, FIGURE_4_GIVEN)
    assert usable(state, 7) and not usable(state, 6)
    assert nesting_for(Options(scope_list=scope_list(7), nesting=state)) == state
    assert nesting_for(Options(scope_list=scope_list(8), nesting=state)) is None


def test_rfc2907_s3_3_nesting_without_a_scope_list_is_not_used() -> None:
    state = closure(SCOPES, FIGURE_4_GIVEN)
    assert nesting_for(Options(nesting=state)) is None
    assert nesting_for(Options(scope_list=scope_list(7))) is None


def test_rfc2907_s5_a_mismatched_count_still_decodes() -> None:
    # The message is not malformed: only its nesting information is to be ignored.
    state = closure(["a", "b"], [("a", "b")])
    message = Message(
        MessageType.ACK,
        AddressFamily.IPV4,
        1,
        Options(lease_id=b"\0", scope_list=scope_list(3), nesting=state),
    )
    decoded = decode(encode(message))
    assert decoded == message and nesting_for(decoded.options) is None
