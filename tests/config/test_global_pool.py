"""Where a global pool may lie (RFC 2909 §4, §4.5; RFC 5771, RFC 3180, RFC 4607, RFC 2365),
the warnings a valid but unwise file gets, ``peers[i].scope_boundary`` (§4.5), and how
``masc check-config`` and ``masc run`` show the warnings."""

from __future__ import annotations

import logging
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path

import pytest

from masc.cli.masc import main
from masc.config import (
    ConfigError,
    ConfigWarning,
    MascConfig,
    config_warnings,
    load_config,
    parse_config_text,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "peers.example.toml"
LOCAL = '[local]\ndomain_id = 65001\nnode_id = "192.0.2.1"\n'
LOCAL_V6 = '[local]\naddress_family = "ipv6"\ndomain_id = 65001\nnode_id = "2001:db8::1"\n'


def with_pool(*pool: str, local: str = LOCAL) -> str:
    return local + "global_pool = [" + ", ".join(f'"{p}"' for p in pool) + "]\n"


def parse(text: str) -> MascConfig:
    return parse_config_text(text, source="test.toml")


def rejects(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(text)
    return info.value


def warnings_for(text: str) -> list[ConfigWarning]:
    return config_warnings(parse(text))


# --- refused blocks ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pool", "fragment"),
    [
        ("232.0.0.0/8", "232.0.0.0/8 is the Source-Specific Multicast block"),
        ("232.1.0.0/16", "lies in the Source-Specific Multicast block 232.0.0.0/8"),
        ("232.0.0.0/7", "contains the Source-Specific Multicast block 232.0.0.0/8"),
        ("224.0.0.0/4", "contains the Local Network Control Block 224.0.0.0/24"),
    ],
)
def test_rfc4607_ssm_block_refused(pool: str, fragment: str) -> None:
    err = rejects(with_pool(pool))
    assert err.key == "local.global_pool[0]"
    assert fragment in err.problem
    assert err.problem.endswith("; it cannot be part of a MASC pool")


def test_rfc4607_ssm_refusal_cites_the_rfcs() -> None:
    err = rejects(with_pool("232.0.0.0/8"))
    assert err.problem == (
        "232.0.0.0/8 is the Source-Specific Multicast block: it is for SSM (RFC 4607) and "
        "MUST NOT be used for other purposes (RFC 5771 §8.1); it cannot be part of a MASC pool"
    )


@pytest.mark.parametrize(
    "pool", ["233.0.0.0/8", "233.22.30.0/24", "233.252.0.0/14", "233.252.0.0/24", "233.128.0.0/9"]
)
def test_rfc3180_glop_block_refused(pool: str) -> None:
    err = rejects(with_pool(pool))
    assert err.key == "local.global_pool[0]"
    assert "the GLOP block" in err.problem
    assert "RFC 3180" in err.problem
    assert "cannot be part of a MASC pool" in err.problem


def test_rfc3180_glop_refusal_names_ad_hoc_block_iii() -> None:
    err = rejects(with_pool("233.252.0.0/24"))
    assert err.problem.startswith("233.252.0.0/24 lies in the GLOP block 233.0.0.0/8: ")
    assert "RFC 3180" in err.problem
    assert "233.252.0.0/14 is AD-HOC Block III (RFC 5771 §9.2)" in err.problem


@pytest.mark.parametrize("pool", ["224.0.0.0/24", "224.0.0.0/28", "224.0.0.0/16", "224.0.0.0/8"])
def test_rfc5771_s4_local_network_control_block_refused(pool: str) -> None:
    err = rejects(with_pool(pool))
    assert err.key == "local.global_pool[0]"
    assert "Local Network Control Block" in err.problem
    assert "never forwarded off the link (RFC 5771 §4)" in err.problem


@pytest.mark.parametrize(
    "pool",
    [
        "ff3e::/32",  # RFC 4607 §1: FF3x::/32, global scope
        "ff35::/32",
        "ff3e::8000:0/97",  # FF3x::8000:0-FF3x::FFFF:FFFF, the part IANA allocates today
        "ff30::/12",
        "ff3e::/16",
        "ff3e:40:2001:db8::/64",  # RFC 3306 unicast-prefix-based, also derived space
    ],
)
def test_rfc4607_ipv6_ssm_range_refused(pool: str) -> None:
    err = rejects(with_pool(pool, local=LOCAL_V6))
    assert err.key == "local.global_pool[0]"
    assert "the unicast-prefix-based range" in err.problem
    assert "Source-Specific Multicast ranges ff3x::/32 (RFC 4607 §1)" in err.problem


@pytest.mark.parametrize(
    ("pool", "scope"),
    [
        ("ff02::/16", "link-local"),
        ("ff02::1:0/112", "link-local"),
        ("ff12::/16", "link-local"),
        ("ff01::/16", "interface-local"),
    ],
)
def test_ipv6_link_local_and_interface_local_scopes_refused(pool: str, scope: str) -> None:
    err = rejects(with_pool(pool, local=LOCAL_V6))
    assert err.key == "local.global_pool[0]"
    assert f"the {scope} scope" in err.problem
    assert "(RFC 4291 §2.7)" in err.problem


def test_refusal_names_the_index_of_the_bad_pool() -> None:
    err = rejects(with_pool("239.192.0.0/14", "232.0.0.0/8"))
    assert err.key == "local.global_pool[1]"


# --- pools must be disjoint ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("pool", "message"),
    [
        (
            ["239.192.0.0/14", "239.193.0.0/16"],
            "239.193.0.0/16 overlaps global_pool[0] (239.192.0.0/14); prefixes must be disjoint",
        ),
        (
            ["239.193.0.0/16", "239.192.0.0/14"],
            "239.192.0.0/14 overlaps global_pool[0] (239.193.0.0/16); prefixes must be disjoint",
        ),
        (
            ["239.192.0.0/14", "239.192.0.0/14"],
            "239.192.0.0/14 overlaps global_pool[0] (239.192.0.0/14); prefixes must be disjoint",
        ),
    ],
)
def test_s4_pools_must_not_overlap(pool: list[str], message: str) -> None:
    err = rejects(with_pool(*pool))
    assert (err.key, err.problem) == ("local.global_pool[1]", message)


def test_s4_overlap_names_the_first_pool_it_overlaps() -> None:
    err = rejects(with_pool("239.192.0.0/16", "239.193.0.0/16", "239.192.0.0/14"))
    assert err.key == "local.global_pool[2]"
    assert "overlaps global_pool[0] (239.192.0.0/16)" in err.problem


def test_s4_adjacent_pools_are_fine() -> None:
    cfg = parse(with_pool("239.192.0.0/15", "239.194.0.0/15", "239.255.0.0/16"))
    assert len(cfg.local.global_pool) == 3


def test_s4_disjoint_ipv6_pools() -> None:
    cfg = parse(with_pool("ff15::/16", "ff18::/16", local=LOCAL_V6))
    assert cfg.local.global_pool == (IPv6Network("ff15::/16"), IPv6Network("ff18::/16"))
    err = rejects(with_pool("ff15::/16", "ff15:1::/32", local=LOCAL_V6))
    assert err.key == "local.global_pool[1]"


# --- warnings --------------------------------------------------------------------------


def test_appendix_b_228_0_0_0_6_accepted_with_a_warning_naming_rfc_5771() -> None:
    text = with_pool("228.0.0.0/6")
    cfg = parse(text)
    assert cfg.local.global_pool == (IPv4Network("228.0.0.0/6"),)
    (warning,) = config_warnings(cfg)
    assert warning.key == "local.global_pool[0]"
    assert warning.message.startswith(
        "228.0.0.0/6 lies in a reserved range 225.0.0.0-231.255.255.255: RESERVED by IANA "
        "(RFC 5771 §3)"
    )
    assert "RFC 2909 Appendix B proposed 228.0.0.0/6" in warning.message
    assert "isolated lab only" in warning.message
    assert warning.message.endswith(
        "in a lab or an organisation use 239.192.0.0/14 (organization-local scope, RFC 2365)"
    )
    assert str(warning) == f"local.global_pool[0]: warning: {warning.message}"


@pytest.mark.parametrize(
    "pool", ["239.192.0.0/14", "239.255.0.0/16", "239.0.0.0/8", "239.192.4.0/24"]
)
def test_rfc2365_admin_scoped_pools_give_no_warning(pool: str) -> None:
    assert warnings_for(with_pool(pool)) == []


@pytest.mark.parametrize(
    ("pool", "fragment"),
    [
        ("224.0.1.0/24", "is the Internetwork Control Block: IANA assigns"),
        ("224.0.2.0/24", "lies in AD-HOC Block I 224.0.2.0-224.0.255.255"),
        ("224.1.0.0/16", "is a reserved range"),
        ("224.2.0.0/16", "SDP/SAP Block: its addresses are for SDP/SAP sessions and MUST NOT"),
        ("224.3.0.0/16", "lies in AD-HOC Block II 224.3.0.0-224.4.255.255"),
        ("224.128.0.0/9", "lies in a reserved range 224.5.0.0-224.255.255.255"),
        ("225.0.0.0/8", "lies in a reserved range 225.0.0.0-231.255.255.255"),
        ("234.0.0.0/8", "lies in a reserved range 234.0.0.0-238.255.255.255"),
        ("236.0.0.0/6", "lies partly in a reserved range 234.0.0.0-238.255.255.255"),
    ],
)
def test_rfc5771_s3_assigned_or_reserved_space_warns(pool: str, fragment: str) -> None:
    (warning,) = warnings_for(with_pool(pool))
    assert warning.key == "local.global_pool[0]"
    assert warning.message.startswith(f"{pool} ")
    assert fragment in warning.message
    assert "RFC 5771 §" in warning.message
    assert "239.192.0.0/14" in warning.message


def test_rfc5771_pool_across_two_blocks_gets_one_warning_per_block() -> None:
    found = warnings_for(with_pool("224.4.0.0/14"))
    assert [w.key for w in found] == ["local.global_pool[0]"] * 2
    assert "lies partly in AD-HOC Block II" in found[0].message
    assert "lies partly in a reserved range 224.5.0.0-224.255.255.255" in found[1].message


def test_warnings_name_each_pool_by_index() -> None:
    found = warnings_for(with_pool("239.192.0.0/14", "228.0.0.0/8", "234.0.0.0/8"))
    assert [w.key for w in found] == ["local.global_pool[1]", "local.global_pool[2]"]


def test_rfc4291_ipv6_permanent_space_warns_and_transient_does_not() -> None:
    (warning,) = warnings_for(with_pool("ff05::/16", local=LOCAL_V6))
    assert warning.key == "local.global_pool[0]"
    assert "ff00::/12, the permanently-assigned (flag T=0) space" not in warning.message
    assert "lies in the permanently-assigned (flag T=0) space ff00::/12" in warning.message
    assert "ff18::/16" in warning.message
    assert warnings_for(with_pool("ff15::/16", "ff18::/16", local=LOCAL_V6)) == []


def test_clean_configs_have_no_warnings() -> None:
    assert warnings_for(LOCAL) == []
    assert config_warnings(load_config(EXAMPLE)) == []


# --- §4.5 scope_boundary -----------------------------------------------------------------

PEER = '[[peers]]\naddress = "192.0.2.2"\nrelation = "child"\ndomain_id = 65002\n'


def test_s4_5_scope_boundary_defaults_to_none() -> None:
    assert parse(LOCAL + PEER).peers[0].scope_boundary == ()


def test_s4_5_scope_boundary_parses_zones() -> None:
    cfg = parse(LOCAL + PEER + 'scope_boundary = ["239.192.0.0/14", "239.255.0.0/16"]\n')
    assert cfg.peers[0].scope_boundary == (
        IPv4Network("239.192.0.0/14"),
        IPv4Network("239.255.0.0/16"),
    )
    assert config_warnings(cfg) == []


def test_s4_5_scope_boundary_ipv6() -> None:
    peer = PEER.replace("192.0.2.2", "2001:db8::2")
    cfg = parse(LOCAL_V6 + peer + 'scope_boundary = ["ff18::/16"]\n')
    assert cfg.peers[0].scope_boundary == (IPv6Network("ff18::/16"),)


@pytest.mark.parametrize(
    ("zones", "key", "message"),
    [
        (["10.0.0.0/8"], "peers[0].scope_boundary[0]", "10.0.0.0/8 is not multicast space"),
        (
            ["239.192.0.0/14", "239.192.0.0/14"],
            "peers[0].scope_boundary[1]",
            "239.192.0.0/14 duplicates scope_boundary[0]",
        ),
        (
            ["ff18::/16"],
            "peers[0].scope_boundary[0]",
            "ff18::/16 is an IPv6 prefix but local.address_family is 'ipv4'",
        ),
        (["239.192.1.0/14"], "peers[0].scope_boundary[0]", "has host bits set"),
    ],
)
def test_s4_5_scope_boundary_rejections(zones: list[str], key: str, message: str) -> None:
    listed = ", ".join(f'"{z}"' for z in zones)
    err = rejects(LOCAL + PEER + f"scope_boundary = [{listed}]\n")
    assert err.key == key
    assert message in err.problem


def test_rfc2365_scope_boundary_outside_239_warns() -> None:
    (warning,) = warnings_for(LOCAL + PEER + 'scope_boundary = ["239.192.0.0/14", "228.0.0.0/8"]\n')
    assert warning.key == "peers[0].scope_boundary[1]"
    assert warning.message.startswith("228.0.0.0/8 is not inside 239.0.0.0/8")
    assert "RFC 2365" in warning.message


# --- masc check-config / masc run --------------------------------------------------------


def test_check_config_prints_warnings_to_stderr_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "lab.toml"
    path.write_text(with_pool("228.0.0.0/6"), encoding="utf-8")
    assert main(["check-config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"{path}: ok (domain 65001, top-level domain")
    lines = err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"{path}: local.global_pool[0]: warning: 228.0.0.0/6 lies in ")
    assert "RFC 5771" in lines[0]


def test_check_config_clean_file_prints_nothing_to_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "org.toml"
    path.write_text(with_pool("239.192.0.0/14"), encoding="utf-8")
    assert main(["check-config", str(path)]) == 0
    assert capsys.readouterr().err == ""


def test_check_config_refused_pool_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ssm.toml"
    path.write_text(with_pool("232.0.0.0/8"), encoding="utf-8")
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{path}: local.global_pool[0]: 232.0.0.0/8 is the Source-Specific")


def test_check_config_peers_example_is_clean(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(EXAMPLE)]) == 0
    assert capsys.readouterr().err == ""


def test_run_logs_warnings_at_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import masc.daemon.main

    started: list[MascConfig] = []

    async def fake_run_daemon(cfg: MascConfig, path: object = None) -> None:
        started.append(cfg)

    monkeypatch.setattr(masc.daemon.main, "run_daemon", fake_run_daemon)
    path = tmp_path / "lab.toml"
    path.write_text(with_pool("228.0.0.0/6"), encoding="utf-8")
    try:
        assert main(["run", "--config", str(path), "--log-format", "json"]) == 0
    finally:
        logging.getLogger("masc").handlers.clear()
    assert len(started) == 1
    err = capsys.readouterr().err
    assert '"level": "warning"' in err
    assert '"event": "config_warning"' in err
    assert '"key": "local.global_pool[0]"' in err
    assert f"{path}: local.global_pool[0]: warning: 228.0.0.0/6" in err
