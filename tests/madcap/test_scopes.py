"""Server-side scope definitions (masc.madcap.scopes): RFC 2730 §2.8, §2.10, §3.5, §3.10;
RFC 2907 §2, §3.2 (Figure 4)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest

from masc.madcap.constants import AddressFamily
from masc.madcap.messages import ScopeEntry, ScopeName
from masc.madcap.scopes import (
    Scope,
    check_scopes,
    choose_names,
    nesting_matrix,
    scope_entry,
    scope_order,
)

A = IPv4Address
EN = ScopeName("en", "Organization Local", default=False)
DE = ScopeName("de", "Organisation", default=True)
FR = ScopeName("fr", "Organisation locale", default=False)


def org(**changes: object) -> Scope:
    fields: dict[str, object] = {
        "name": "org",
        "first": A("239.192.0.0"),
        "last": A("239.195.255.255"),
        "names": (EN, DE, FR),
    }
    fields.update(changes)
    return Scope(**fields)  # type: ignore[arg-type]


def test_s3_5_scope_id_is_the_first_address() -> None:
    assert org().scope_id == A("239.192.0.0")


def test_s2_10_server_address_is_last_minus_one() -> None:
    assert org().server_address == A("239.195.255.254")
    local = org(name="local", first=A("239.255.0.0"), last=A("239.255.255.255"))
    assert local.server_address == A("239.255.255.254")


def test_s2_8_ttl_defaults_to_255_under_admin_scoping() -> None:
    assert org().ttl == 255


def test_family_follows_the_addresses() -> None:
    assert org().family == AddressFamily.IPV4
    six = org(first=IPv6Address("ff15::"), last=IPv6Address("ff15::ffff"))
    assert six.family == AddressFamily.IPV6


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"first": A("239.195.255.255"), "last": A("239.192.0.0")}, "first"),
        ({"first": A("239.1.1.1"), "last": A("239.1.1.1")}, "two addresses"),
        ({"last": IPv6Address("ff15::1")}, "first"),
        ({"ttl": 0}, "ttl"),
        ({"ttl": 256}, "ttl"),
        ({"names": ()}, "names"),
        ({"names": (ScopeName("", "x"),)}, "empty"),
        ({"names": (ScopeName("en", ""),)}, "empty"),
        ({"ranges": ((A("239.191.0.0"), A("239.192.0.10")),)}, "not inside"),
        ({"ranges": ((A("239.192.0.10"), A("239.192.0.1")),)}, "not inside"),
        ({"exclusions": ((A("239.196.0.0"), A("239.196.0.1")),)}, "not inside"),
        ({"source": "masc", "ranges": ((A("239.192.0.0"), A("239.192.0.1")),)}, "grants"),
        ({"source": "other"}, "source"),
        ({"default_lease": 0.0}, "default_lease"),
        ({"default_lease": 100.0, "max_lease": 50.0}, "default_lease"),
        ({"inside": ("org",)}, "itself"),
        ({"name": ""}, "name"),
    ],
)
def test_scope_rejects_what_it_cannot_serve(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        org(**changes)


def test_s3_10_no_requested_language_returns_all_names() -> None:
    assert choose_names(org(), None) == (EN, DE, FR)


def test_s3_10_matching_language_is_case_insensitive_and_returns_one_name() -> None:
    assert choose_names(org(), "FR") == (FR,)
    assert choose_names(org(), "en") == (EN,)


def test_s3_10_no_match_prefers_the_default_flagged_name() -> None:
    assert choose_names(org(), "ja") == (DE,)


def test_s3_10_no_match_and_no_default_returns_some_name() -> None:
    assert choose_names(org(names=(EN, FR)), "ja") == (EN,)


def test_s3_10_language_match_is_exact_not_a_prefix() -> None:
    # Local policy (conformance): "en" does not match "en-GB"; the default name wins.
    assert choose_names(org(), "en-GB") == (DE,)


def test_s3_10_scope_entry_carries_zone_ttl_and_chosen_names() -> None:
    assert scope_entry(org(ttl=16), "de") == ScopeEntry(
        A("239.192.0.0"), A("239.195.255.255"), 16, (DE,)
    )


def test_s3_10_scope_ids_must_be_unique() -> None:
    with pytest.raises(ValueError, match="Scope IDs"):
        check_scopes([org(), org(name="other")])


def test_scope_names_must_be_unique() -> None:
    with pytest.raises(ValueError, match="names must be unique"):
        check_scopes([org(), org(first=A("239.192.0.1"))])


def test_rfc2907_inside_must_name_a_known_scope() -> None:
    with pytest.raises(ValueError, match="unknown"):
        check_scopes([org(inside=("global",))])


def _chain() -> list[Scope]:
    # RFC 2907 Figure 4: S1/S2, S2/S3, S2/S4, S3/S5, S4/S5, S5/S6, S6/S7.
    inside = {1: (2,), 2: (3, 4), 3: (5,), 4: (5,), 5: (6,), 6: (7,), 7: ()}
    return [
        Scope(
            name=f"S{i}",
            first=A(f"239.{i}.0.0"),
            last=A(f"239.{i}.255.255"),
            names=(ScopeName("en", f"S{i}"),),
            inside=tuple(f"S{j}" for j in inside[i]),
        )
        for i in range(1, 8)
    ]


def test_rfc2907_s3_2_figure_4_matrix_is_the_transitive_closure() -> None:
    state = nesting_matrix(_chain())
    packed = []
    for x, row in enumerate(state.rows):
        bits = [bit for y, bit in enumerate(row) if y != x]
        packed.append(int("".join("1" if b else "0" for b in bits) + "00", 2))
    assert packed == [0xFC, 0x7C, 0x1C, 0x1C, 0x0C, 0x04, 0x00]


def test_s3_10_scope_list_is_ordered_smallest_to_largest() -> None:
    shuffled = list(reversed(_chain()))
    assert [s.name for s in scope_order(shuffled)][:2] == ["S1", "S2"]
    order = [s.name for s in scope_order(shuffled)]
    # S3 and S4 do not nest in each other: any order between them, the rest is fixed.
    assert order[2:4] in (["S3", "S4"], ["S4", "S3"])
    assert order[4:] == ["S5", "S6", "S7"]


def test_s3_10_unrelated_scopes_keep_the_configured_order() -> None:
    a = org()
    b = org(name="b", first=A("239.196.0.0"), last=A("239.196.255.255"))
    assert scope_order([b, a]) == (b, a)
