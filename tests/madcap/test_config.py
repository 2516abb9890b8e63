"""``masc madcap`` configuration (masc/madcap/config.py): defaults from RFC 2730 Appendix B,
the scope rules of RFC 2365 §9 and RFC 2730 §2.1.4, §3.5, §3.10, and the key path named in
every rejection."""

from __future__ import annotations

from ipaddress import ip_address
from pathlib import Path

import pytest

from masc.config import ConfigError
from masc.madcap.config import (
    MadcapConfig,
    load_madcap_config,
    madcap_warnings,
    parse_madcap_config,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "madcap.example.toml"

ORG = '[[scope]]\nname = "Org"\nfirst = "239.192.0.0"\nlast = "239.195.255.255"\n'


def parse(text: str) -> MadcapConfig:
    return parse_madcap_config(text, source="m.toml")


def problems(text: str) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        parse(text)
    assert str(info.value).startswith("m.toml: ")
    return {e.key: e.problem for e in (info.value, *info.value.others)}


def problem(text: str, key: str) -> str:
    found = problems(text)
    assert key in found, f"{key} not in {found}"
    return found[key]


def a(text: str) -> object:
    return ip_address(text)


# --- defaults and the example ------------------------------------------------------------


def test_appendix_b_defaults() -> None:
    cfg = parse(ORG)
    server = cfg.server
    assert server.port == 2535  # §1.5
    assert server.identifier == a("127.0.0.1")
    assert server.response_cache == 60  # §2.1.4
    assert server.offer_hold == 60  # App. B
    assert server.clock_skew_allowance == 1800  # §2.12
    assert server.extra_allocation_time == 3600  # §2.12
    assert server.retry_interval == 600
    assert server.multicast_interface is None
    assert cfg.masc is None
    scope = cfg.scope[0]
    assert scope.ttl == 255  # §2.8
    assert scope.language == "en" and scope.names == {}
    assert scope.default_lease == 3600 and scope.max_lease == 30 * 86400
    assert scope.source == "static"


def test_the_shipped_example_is_valid_and_clean() -> None:
    cfg = load_madcap_config(EXAMPLE)
    assert [s.name for s in cfg.scope] == ["Local Scope", "Organization Local", "Global"]
    assert madcap_warnings(cfg) == []
    assert cfg.masc is not None and cfg.masc.name == "madcap-a"


def test_durations_are_parsed_and_bad_ones_named() -> None:
    cfg = parse('[server]\noffer_hold = "2m"\nextra_allocation_time = "0s"\n' + ORG)
    assert cfg.server.offer_hold == 120 and cfg.server.extra_allocation_time == 0
    assert "invalid duration" in problem(
        '[server]\nretry_interval = "soon"\n' + ORG, "server.retry_interval"
    )


def test_unknown_keys_are_rejected_by_name() -> None:
    assert problem("[server]\nlisten_on = []\n" + ORG, "server.listen_on").startswith("unknown key")
    assert problem(ORG + "colour = 1\n", "scope[0].colour").startswith("unknown key")
    assert problem('[masc]\nsocket = "/x"\n' + ORG, "masc.socket").startswith("unknown key")
    assert problem("[other]\n" + ORG, "other").startswith("unknown key")


def test_at_least_one_scope() -> None:
    assert problems("[server]\n") == {"scope": "configure at least one [[scope]]"}


def test_load_reports_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[server]\nport = 0\n" + ORG)
    with pytest.raises(ConfigError) as info:
        load_madcap_config(path)
    assert info.value.key == "server.port"
    assert str(info.value).startswith(f"{path}: server.port: ")


# --- [server] ------------------------------------------------------------------------------


def test_server_id_defaults_to_listen0_and_must_be_listened_on() -> None:
    cfg = parse('[server]\nlisten = ["127.0.11.50", "127.0.11.51"]\n' + ORG)
    assert cfg.server.identifier == a("127.0.11.50")
    text = '[server]\nlisten = ["127.0.11.50"]\nserver_id = "127.0.11.52"\n' + ORG
    assert "is not one of listen" in problem(text, "server.server_id")


def test_listen_addresses_are_unicast_and_distinct() -> None:
    found = problems(
        '[server]\nlisten = ["239.1.1.1", "0.0.0.0", "127.0.0.1", "127.0.0.1"]\n' + ORG
    )
    assert "not a unicast address" in found["server.listen[0]"]
    assert "not a unicast address" in found["server.listen[1]"]
    assert "duplicates listen[2]" in found["server.listen[3]"]
    assert "at least one" in problem("[server]\nlisten = []\n" + ORG, "server.listen")


def test_multicast_interface_is_an_ipv4_unicast_address() -> None:
    assert parse('[server]\nmulticast_interface = "127.0.0.1"\n' + ORG).server.multicast_interface
    assert "IPv4" in problem(
        '[server]\nmulticast_interface = "::1"\n' + ORG, "server.multicast_interface"
    )


@pytest.mark.parametrize("value", ["0s", "59s", "300s"])
def test_s2_1_4_response_cache_may_be_0_to_300_seconds(value: str) -> None:
    cfg = parse(f'[server]\nresponse_cache = "{value}"\n' + ORG)
    warned = [w.key for w in madcap_warnings(cfg)]
    # Below 60 s is NOT RECOMMENDED: allowed, with a warning.
    assert ("server.response_cache" in warned) == (value != "300s")


def test_s2_1_4_response_cache_above_300_seconds_is_refused() -> None:
    assert "0..300 s" in problem(
        '[server]\nresponse_cache = "301s"\n' + ORG, "server.response_cache"
    )


def test_appendix_b_offer_hold_below_60_seconds_is_refused() -> None:
    text = problem('[server]\noffer_hold = "59s"\n' + ORG, "server.offer_hold")
    assert "at least 60 s" in text and "Appendix B" in text


# --- [masc] ---------------------------------------------------------------------------------

GLOBAL = '[[scope]]\nname = "Global"\nsource = "masc"\n'


def test_a_masc_scope_needs_the_masc_section() -> None:
    assert "no [masc] section" in problem(GLOBAL, "scope[0].source")
    cfg = parse('[masc]\nmaas_socket = "/tmp/m.sock"\n' + GLOBAL)
    assert cfg.masc is not None and cfg.masc.name == "madcap" and cfg.masc.usage_interval == 30


def test_s2_7_masc_scope_zone_defaults_to_the_global_scope() -> None:
    scope = parse("[masc]\n" + GLOBAL).scope[0]
    assert scope.zone == (a("224.0.1.0"), a("238.255.255.255"))
    assert scope.ranges == () and scope.exclusions == ()


def test_a_masc_scope_takes_no_range() -> None:
    text = "[masc]\n" + GLOBAL + 'range = ["224.2.0.0-224.2.0.255"]\n'
    assert "grants of the MASC daemon" in problem(text, "scope[0].range")


def test_rfc2365_s9_masc_scope_in_239_excludes_the_relative_block() -> None:
    text = "[masc]\n" + GLOBAL + 'first = "239.192.0.0"\nlast = "239.195.255.255"\n'
    scope = parse(text).scope[0]
    assert scope.exclusions == ((a("239.195.255.0"), a("239.195.255.255")),)


def test_masc_name_and_backoff_are_checked() -> None:
    assert "MAAS name" in problem('[masc]\nname = "-x"\n' + ORG, "masc.name")
    text = '[masc]\nreconnect_initial = "10s"\nreconnect_max = "1s"\n' + ORG
    assert ">= reconnect_initial" in problem(text, "masc.reconnect_max")


def test_masc_zones_are_disjoint() -> None:
    text = (
        "[masc]\n"
        + GLOBAL
        + '[[scope]]\nname = "G2"\nsource = "masc"\nfirst = "233.0.0.0"\nlast = "233.0.0.255"\n'
    )
    assert "masc zones must be disjoint" in problem(text, "scope[1].first")


def test_masc_section_without_masc_scope_is_a_warning() -> None:
    cfg = parse("[masc]\n" + ORG)
    assert [w.key for w in madcap_warnings(cfg)] == ["masc"]


def test_static_range_in_a_masc_zone_is_a_warning() -> None:
    text = (
        "[masc]\n"
        + GLOBAL
        + '[[scope]]\nname = "GLOP"\nfirst = "233.252.0.0"\nlast = "233.252.0.255"\n'
    )
    cfg = parse(text)
    assert [w.key for w in madcap_warnings(cfg)] == ["scope[1].range"]


# --- [[scope]] -------------------------------------------------------------------------------


def test_rfc2365_s9_default_range_leaves_out_the_top_24() -> None:
    scope = parse(ORG).scope[0]
    assert scope.ranges == ((a("239.192.0.0"), a("239.195.254.255")),)
    assert scope.allocatable == [(a("239.192.0.0"), a("239.195.254.255"))]


def test_rfc2365_s9_a_range_into_the_relative_block_is_refused() -> None:
    text = problem(ORG + 'range = ["239.195.255.0/25"]\n', "scope[0].range[0]")
    assert "reserved for relative assignments" in text and "239.195.255.0-239.195.255.255" in text
    # The MADCAP server address (last - 1, RFC 2730 §2.10) lies in it.
    assert "scope[0].range[0]" in problems(ORG + 'range = ["239.195.255.254"]\n')


def test_rfc2365_s9_a_zone_of_only_relative_assignments_is_refused() -> None:
    text = '[[scope]]\nname = "Tiny"\nfirst = "239.1.2.0"\nlast = "239.1.2.255"\n'
    assert "nothing is left to allocate" in problem(text, "scope[0].last")


def test_scopes_outside_239_keep_their_whole_zone() -> None:
    text = '[[scope]]\nname = "GLOP"\nfirst = "233.252.0.0"\nlast = "233.252.0.255"\n'
    assert parse(text).scope[0].ranges == ((a("233.252.0.0"), a("233.252.0.255")),)


def test_s2_10_a_zone_holds_its_server_address() -> None:
    text = '[[scope]]\nname = "One"\nfirst = "233.252.0.1"\nlast = "233.252.0.1"\n'
    assert "at least two addresses" in problem(text, "scope[0].last")


def test_every_valid_scope_is_a_valid_core_scope() -> None:
    cfg = load_madcap_config(EXAMPLE)
    scopes = [s.to_scope() for s in cfg.scope]
    org = scopes[1]
    assert org.scope_id == ip_address("239.192.0.0")
    assert [(n.language, n.default) for n in org.names] == [("en", True), ("de", False)]
    assert org.exclusions == ((ip_address("239.192.1.0"), ip_address("239.192.1.15")),)


def test_range_spellings() -> None:
    text = ORG + 'range = ["239.192.1.0/24", "239.192.2.0 - 239.192.2.9", "239.192.3.7"]\n'
    assert parse(text).scope[0].ranges == (
        (a("239.192.1.0"), a("239.192.1.255")),
        (a("239.192.2.0"), a("239.192.2.9")),
        (a("239.192.3.7"), a("239.192.3.7")),
    )
    assert "ends before it starts" in problem(
        ORG + 'range = ["239.192.2.9-239.192.2.0"]\n', "scope[0].range[0]"
    )
    assert "not a range" in problem(ORG + 'range = ["nowhere"]\n', "scope[0].range[0]")
    assert "not a range" in problem(ORG + 'range = ["239.192.1.1/24"]\n', "scope[0].range[0]")


def test_ranges_and_exclusions_lie_inside_the_zone() -> None:
    found = problems(
        ORG + 'range = ["239.191.0.0/24", "239.192.0.0/24"]\nexclude = ["239.196.0.0"]\n'
    )
    assert "not inside the zone 239.192.0.0-239.195.255.255" in found["scope[0].range[0]"]
    assert "not inside" in found["scope[0].exclude[0]"]


def test_ranges_of_a_scope_do_not_overlap() -> None:
    text = ORG + 'range = ["239.192.0.0/24", "239.192.0.128/25"]\n'
    assert "overlaps range[0]" in problem(text, "scope[0].range[1]")


def test_one_family_per_scope() -> None:
    text = '[[scope]]\nname = "X"\nfirst = "239.192.0.0"\nlast = "ff15::ffff"\n'
    assert "one family per scope" in problem(text, "scope[0].last")
    v6 = '[[scope]]\nname = "V6"\nfirst = "ff15::"\nlast = "ff15::ffff"\n'
    assert parse(v6).scope[0].ranges == ((a("ff15::"), a("ff15::ffff")),)
    assert "family" in problem(v6 + 'range = ["239.192.0.0/24"]\n', "scope[0].range[0]")


def test_zone_addresses_are_multicast_and_ordered() -> None:
    found = problems('[[scope]]\nname = "X"\nfirst = "10.0.0.0"\nlast = "10.0.0.255"\n')
    assert "not a multicast address" in found["scope[0].first"]
    text = '[[scope]]\nname = "X"\nfirst = "239.192.0.255"\nlast = "239.192.0.0"\n'
    assert "below first" in problem(text, "scope[0].last")
    text = '[[scope]]\nname = "X"\nfirst = "238.0.0.0"\nlast = "239.0.255.255"\n'
    assert "straddles" in problem(text, "scope[0].last")


def test_first_field_is_required_for_a_static_scope() -> None:
    assert problem('[[scope]]\nname = "X"\nlast = "239.1.255.255"\n', "scope[0].first") == (
        "required key is missing"
    )


def test_exclusions_that_leave_nothing_are_refused() -> None:
    text = ORG + 'range = ["239.192.1.0/24"]\nexclude = ["239.192.1.0/24"]\n'
    assert "no address" in problem(text, "scope[0].exclude")


def test_exclusions_cut_the_allocatable_ranges() -> None:
    text = (
        ORG
        + 'range = ["239.192.1.0/24"]\nexclude = ["239.192.1.0-239.192.1.15", "239.192.1.255"]\n'
    )
    assert parse(text).scope[0].allocatable == [(a("239.192.1.16"), a("239.192.1.254"))]


def test_s3_5_scope_id_must_equal_first() -> None:
    assert parse(ORG + 'scope_id = "239.192.0.0"\n').scope[0].scope_id == a("239.192.0.0")
    text = problem(ORG + 'scope_id = "239.192.0.1"\n', "scope[0].scope_id")
    assert "first address" in text and "§3.5" in text


def test_s3_10_scope_ids_and_names_are_unique() -> None:
    twin = ORG.replace('"Org"', '"Org2"')
    found = problems(ORG + 'range = ["239.192.0.0/24"]\n' + twin + 'range = ["239.192.1.0/24"]\n')
    assert "MUST be unique" in found["scope[1].first"]
    other = '[[scope]]\nname = "Org"\nfirst = "239.255.0.0"\nlast = "239.255.255.255"\n'
    assert "duplicates scope[0]" in problem(ORG + other, "scope[1].name")


def test_allocatable_ranges_of_two_scopes_never_overlap() -> None:
    inner = '[[scope]]\nname = "Inner"\nfirst = "239.193.0.0"\nlast = "239.193.255.255"\n'
    assert "leased twice" in problem(ORG + inner, "scope[1].range")
    # Excluding the overlap from the outer scope settles it.
    assert parse(ORG + 'exclude = ["239.193.0.0/16"]\n' + inner)


def test_s3_10_names_and_language_tags() -> None:
    cfg = parse(ORG + 'language = "en-GB"\nnames = { de = "Organisation", fr-CA = "Org" }\n')
    assert cfg.scope[0].names == {"de": "Organisation", "fr-CA": "Org"}
    assert "language tag" in problem(ORG + 'language = "english please"\n', "scope[0].language")
    assert "language tag" in problem(ORG + 'names = { "e n" = "x" }\n', "scope[0].names.e n")
    assert "must not be empty" in problem(ORG.replace('"Org"', '""'), "scope[0].name")
    assert "at most 255" in problem(ORG.replace('"Org"', '"' + "é" * 128 + '"'), "scope[0].name")
    assert "one name" in problem(ORG + 'names = { EN = "Org again" }\n', "scope[0].names.EN")


def test_s2_8_ttl_bounds_and_the_admin_scope_warning() -> None:
    assert "scope[0].ttl" in problems(ORG + "ttl = 0\n")
    assert "scope[0].ttl" in problems(ORG + "ttl = 256\n")
    warned = [w.key for w in madcap_warnings(parse(ORG + "ttl = 16\n"))]
    assert warned == ["scope[0].ttl"]


def test_s3_2_lease_times_are_whole_seconds_in_four_octets() -> None:
    assert "whole number" in problem(ORG + 'default_lease = "1.5s"\n', "scope[0].default_lease")
    assert "4-octet" in problem(ORG + 'max_lease = "60000d"\n', "scope[0].max_lease")
    assert "greater than 0" in problem(ORG + "default_lease = 0\n", "scope[0].default_lease")
    assert "<= max_lease" in problem(
        ORG + 'default_lease = "2d"\nmax_lease = "1d"\n', "scope[0].default_lease"
    )


def test_rfc2907_inside_names_existing_scopes_without_cycles() -> None:
    local = '[[scope]]\nname = "Local"\nfirst = "239.255.0.0"\nlast = "239.255.255.255"\n'
    cfg = parse(local + 'inside = ["Org"]\n' + ORG)
    assert cfg.scope[0].inside == ("Org",)
    assert "no scope is named 'Nowhere'" in problem(
        local + 'inside = ["Nowhere"]\n', "scope[0].inside[0]"
    )
    assert "itself" in problem(local + 'inside = ["Local"]\n', "scope[0].inside[0]")
    assert "twice" in problem(local + 'inside = ["Org", "Org"]\n' + ORG, "scope[0].inside[1]")
    text = problem(local + 'inside = ["Org"]\n' + ORG + 'inside = ["Local"]\n', "scope[0].inside")
    assert "cycle Local -> Org -> Local" in text
