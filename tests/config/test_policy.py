"""``[policy]`` (RFC 2909 §8.3, §12.4, §14, Appendix B) and the [allocation]/[timers] rules.

Each default is the RFC's own example; each rejection pins the key path the operator reads.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from masc.config import (
    ConfigError,
    MascConfig,
    PolicyConfig,
    Relation,
    load_config,
    parse_config_text,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "peers.example.toml"
LOCAL = '[local]\ndomain_id = 65001\nnode_id = "192.0.2.1"\n'


def parse(text: str) -> MascConfig:
    return parse_config_text(text, source="test.toml")


def policy(body: str) -> MascConfig:
    return parse(LOCAL + "[policy]\n" + body)


def rejects(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(text)
    assert info.value.file == "test.toml"
    return info.value


def problem_at(err: ConfigError, key: str) -> str:
    """The problem reported for ``key``, failing if that key is not among the errors."""
    found = {e.key: e.problem for e in (err, *err.others)}
    assert key in found, f"{key} not in {list(found)}"
    return found[key]


# --- defaults ----------------------------------------------------------------------------


def test_policy_section_is_optional() -> None:
    assert parse(LOCAL).policy == PolicyConfig()


def test_s12_4_clash_resolution_defaults_to_automatic() -> None:
    assert parse(LOCAL).policy.clash_resolution == "automatic"


def test_s12_4_clash_resolution_manual() -> None:
    assert policy('clash_resolution = "manual"\n').policy.clash_resolution == "manual"


def test_s12_4_clash_resolution_must_be_automatic_or_manual() -> None:
    err = rejects(LOCAL + '[policy]\nclash_resolution = "Automatic"\n')
    assert err.key == "policy.clash_resolution"
    assert err.problem == "must be 'automatic' or 'manual', got \"Automatic\""


def test_s8_3_max_child_lifetime_defaults_to_half_a_year() -> None:
    assert parse(LOCAL).policy.max_child_lifetime == 15_768_000.0


def test_s8_3_min_child_lifetime_defaults_to_no_minimum() -> None:
    assert parse(LOCAL).policy.min_child_lifetime == 0.0


def test_s8_3_min_child_prefix_size_defaults_to_16_addresses() -> None:
    assert parse(LOCAL).policy.min_child_prefix_size == 16


def test_s8_3_max_child_prefix_size_defaults_to_no_limit() -> None:
    assert parse(LOCAL).policy.max_child_prefix_size is None


def test_appendix_b_child_thresholds_default_to_none() -> None:
    cfg = parse(LOCAL)
    assert cfg.policy.child_soft_threshold is None
    assert cfg.policy.child_hard_threshold is None


def test_s8_3_timestamp_tolerance_defaults_to_one_day() -> None:
    assert parse(LOCAL).policy.timestamp_tolerance == 86_400.0


def test_s8_3_max_claim_holdtime_defaults_to_half_a_year() -> None:
    assert parse(LOCAL).policy.max_claim_holdtime == 15_768_000.0


def test_s8_3_min_claim_holdtime_defaults_to_off() -> None:
    assert parse(LOCAL).policy.min_claim_holdtime == 0.0


def test_s14_restore_from_defaults_to_parent_and_internal() -> None:
    assert parse(LOCAL).policy.restore_from == (Relation.PARENT, Relation.INTERNAL)


def test_every_key_set() -> None:
    cfg = policy(
        'clash_resolution = "manual"\n'
        'max_child_lifetime = "90d"\n'
        'min_child_lifetime = "48h"\n'
        "min_child_prefix_size = 64\n"
        "max_child_prefix_size = 65536\n"
        "child_soft_threshold = 8192\n"
        "child_hard_threshold = 16384\n"
        'timestamp_tolerance = "1h"\n'
        'max_claim_holdtime = "180d"\n'
        'min_claim_holdtime = "10s"\n'
        'restore_from = ["internal", "parent", "sibling", "child"]\n'
    )
    assert cfg.policy == PolicyConfig(
        clash_resolution="manual",
        max_child_lifetime=90 * 86_400.0,
        min_child_lifetime=172_800.0,
        min_child_prefix_size=64,
        max_child_prefix_size=65_536,
        child_soft_threshold=8192,
        child_hard_threshold=16_384,
        timestamp_tolerance=3600.0,
        max_claim_holdtime=180 * 86_400.0,
        min_claim_holdtime=10.0,
        restore_from=(Relation.INTERNAL, Relation.PARENT, Relation.SIBLING, Relation.CHILD),
    )


def test_policy_is_frozen() -> None:
    with pytest.raises(ValidationError):
        PolicyConfig().min_child_prefix_size = 32  # type: ignore[misc]


def test_peers_example_policy_is_the_default() -> None:
    assert load_config(EXAMPLE).policy == PolicyConfig()


# --- single keys -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "key", "message"),
    [
        ("max_child_lifetime = 0\n", "policy.max_child_lifetime", "must be greater than 0"),
        ('max_child_lifetime = "1.5s"\n', "policy.max_child_lifetime", "whole number of seconds"),
        (
            "max_child_lifetime = 4294967296\n",
            "policy.max_child_lifetime",
            "must be at most 4294967295 seconds (a 4-octet field, RFC 2909 §7.3)",
        ),
        ('min_child_lifetime = "-1s"\n', "policy.min_child_lifetime", "is negative"),
        ("timestamp_tolerance = -1\n", "policy.timestamp_tolerance", "is negative"),
        ('max_claim_holdtime = "0s"\n', "policy.max_claim_holdtime", "must be greater than 0"),
        ('min_claim_holdtime = "soon"\n', "policy.min_claim_holdtime", "invalid duration"),
        (
            "min_child_prefix_size = 0\n",
            "policy.min_child_prefix_size",
            "greater than or equal to 1",
        ),
        ("min_child_prefix_size = 16.0\n", "policy.min_child_prefix_size", "expected an integer"),
        ("max_child_prefix_size = true\n", "policy.max_child_prefix_size", "expected an integer"),
        ("child_soft_threshold = 0\n", "policy.child_soft_threshold", "greater than or equal to 1"),
        (
            "child_hard_threshold = -5\n",
            "policy.child_hard_threshold",
            "greater than or equal to 1",
        ),
        ("bogus = 1\n", "policy.bogus", "unknown key"),
    ],
)
def test_policy_key_rejections(body: str, key: str, message: str) -> None:
    err = rejects(LOCAL + "[policy]\n" + body)
    assert message in problem_at(err, key)


@pytest.mark.parametrize("size", [1, 2, 16, 256, 1 << 20])
def test_s8_3_min_child_prefix_size_power_of_two_accepted(size: int) -> None:
    assert policy(f"min_child_prefix_size = {size}\n").policy.min_child_prefix_size == size


@pytest.mark.parametrize(
    ("key", "size", "nearest"),
    [
        ("min_child_prefix_size", 12, "nearest: 8 or 16"),
        ("min_child_prefix_size", 3, "nearest: 2 or 4"),
        ("max_child_prefix_size", 100, "nearest: 64 or 128"),
    ],
)
def test_s8_3_prefix_sizes_must_be_powers_of_two(key: str, size: int, nearest: str) -> None:
    err = rejects(LOCAL + f"[policy]\n{key} = {size}\n")
    assert err.key == f"policy.{key}"
    assert err.problem == f"must be a power of two (a prefix), got {size}; {nearest}"


def test_s8_3_max_child_prefix_size_must_not_be_below_the_minimum() -> None:
    err = rejects(LOCAL + "[policy]\nmax_child_prefix_size = 8\n")
    assert err.key == "policy.max_child_prefix_size"
    assert err.problem == "must be >= min_child_prefix_size (16), got 8"


def test_s8_3_max_child_prefix_size_equal_to_the_minimum_is_fine() -> None:
    cfg = policy("min_child_prefix_size = 256\nmax_child_prefix_size = 256\n")
    assert cfg.policy.max_child_prefix_size == 256


def test_s8_3_min_child_prefix_size_must_fit_the_family() -> None:
    err = rejects(LOCAL + f"[policy]\nmin_child_prefix_size = {1 << 29}\n")
    assert err.key == "policy.min_child_prefix_size"
    assert err.problem == f"must be at most {1 << 28} (all of 224.0.0.0/4), got {1 << 29}"
    ipv6 = '[local]\naddress_family = "ipv6"\ndomain_id = 65001\nnode_id = "2001:db8::1"\n'
    assert parse(ipv6 + f"[policy]\nmin_child_prefix_size = {1 << 29}\n")


def test_s8_3_min_child_lifetime_must_not_exceed_the_maximum() -> None:
    err = rejects(LOCAL + '[policy]\nmax_child_lifetime = "30d"\nmin_child_lifetime = "31d"\n')
    assert err.key == "policy.min_child_lifetime"
    assert err.problem == "must be <= max_child_lifetime (2592000 s), got 2678400 s"


def test_s8_3_min_claim_holdtime_must_not_exceed_the_maximum() -> None:
    err = rejects(LOCAL + '[policy]\nmin_claim_holdtime = "200d"\n')
    assert "policy.min_claim_holdtime" in [err.key, *(o.key for o in err.others)]
    assert problem_at(err, "policy.min_claim_holdtime") == (
        "must be <= max_claim_holdtime (15768000 s), got 17280000 s"
    )


def test_s7_3_max_claim_holdtime_must_cover_the_longest_child_lifetime() -> None:
    # A PREFIX_IN_USE's holdtime is its lifetime: a lifetime we grant must not come back
    # refused as a holdtime too long.
    err = rejects(LOCAL + '[policy]\nmax_claim_holdtime = "30d"\n')
    assert err.key == "policy.max_claim_holdtime"
    assert err.problem == (
        "must be >= max_child_lifetime (15768000 s): a PREFIX_IN_USE's holdtime equals its "
        "lifetime (RFC 2909 §7.3), got 2592000 s"
    )
    cfg = policy('max_claim_holdtime = "30d"\nmax_child_lifetime = "30d"\n')
    assert cfg.policy.max_claim_holdtime == 2_592_000.0


def test_s7_3_max_claim_holdtime_must_admit_a_new_claims_holdtime() -> None:
    text = (
        LOCAL
        + '[timers]\nwaiting_period = "48h"\n'
        + '[policy]\nmax_claim_holdtime = "1d"\nmax_child_lifetime = "1d"\n'
    )
    err = rejects(text)
    assert err.key == "policy.max_claim_holdtime"
    assert err.problem == (
        "must be >= timers.waiting_period (172800 s), the holdtime of every new claim "
        "(RFC 2909 §7.3), got 86400 s"
    )


def test_s7_3_min_claim_holdtime_must_admit_a_new_claims_holdtime() -> None:
    err = rejects(LOCAL + '[timers]\nwaiting_period = "1h"\n[policy]\nmin_claim_holdtime = "2h"\n')
    assert err.key == "policy.min_claim_holdtime"
    assert err.problem == (
        "must be <= timers.waiting_period (3600 s), the holdtime of every new claim "
        "(RFC 2909 §7.3), got 7200 s"
    )


# --- Appendix B thresholds -----------------------------------------------------------------


def test_appendix_b_hard_threshold_must_not_be_below_soft() -> None:
    err = rejects(LOCAL + "[policy]\nchild_soft_threshold = 8192\nchild_hard_threshold = 4096\n")
    assert err.key == "policy.child_hard_threshold"
    assert err.problem == (
        "must be >= child_soft_threshold (8192): the warning comes before the denial "
        "(RFC 2909 App. B), got 4096"
    )


@pytest.mark.parametrize(
    ("soft", "hard"), [(8192, 8192), (8192, 16384), (8192, None), (None, 16384), (1, None)]
)
def test_appendix_b_thresholds_accepted(soft: int | None, hard: int | None) -> None:
    body = "".join(
        f"{key} = {value}\n"
        for key, value in (("child_soft_threshold", soft), ("child_hard_threshold", hard))
        if value is not None
    )
    cfg = policy(body)
    assert (cfg.policy.child_soft_threshold, cfg.policy.child_hard_threshold) == (soft, hard)


def test_appendix_b_hard_threshold_below_the_smallest_claim_denies_everything() -> None:
    err = rejects(LOCAL + "[policy]\nchild_hard_threshold = 8\n")
    assert err.key == "policy.child_hard_threshold"
    assert err.problem == (
        "must be >= min_child_prefix_size (16), or every child claim is denied, got 8"
    )


# --- §14 restore_from ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "names",
    [[], ["parent"], ["internal"], ["parent", "internal", "sibling", "child"], ["child"]],
)
def test_s14_restore_from_accepts_any_set_of_relations(names: list[str]) -> None:
    listed = ", ".join(f'"{n}"' for n in names)
    cfg = policy(f"restore_from = [{listed}]\n")
    assert cfg.policy.restore_from == tuple(Relation(n) for n in names)


def test_s14_restore_from_rejects_unknown_relations() -> None:
    err = rejects(LOCAL + '[policy]\nrestore_from = ["parent", "peer"]\n')
    assert err.key == "policy.restore_from[1]"
    assert err.problem == "must be 'parent', 'child', 'sibling' or 'internal', got \"peer\""


def test_s14_restore_from_rejects_duplicates() -> None:
    err = rejects(LOCAL + '[policy]\nrestore_from = ["parent", "internal", "parent"]\n')
    assert err.key == "policy.restore_from[2]"
    assert err.problem == "'parent' duplicates restore_from[0]"


def test_s14_restore_from_must_be_an_array() -> None:
    err = rejects(LOCAL + '[policy]\nrestore_from = "parent"\n')
    assert err.key == "policy.restore_from"
    assert err.problem.startswith("expected an array")


# --- [allocation].claim_lifetime against [timers] ---------------------------------------------


def test_s5_2_claim_lifetime_must_outlast_a_renewal() -> None:
    err = rejects(LOCAL + '[allocation]\nclaim_lifetime = "1d"\n')
    assert err.key == "allocation.claim_lifetime"
    assert err.problem == (
        "must be longer than timers.waiting_period + timers.initiate_claim_delay "
        "(172800 s + 600 s = 173400 s), or a claim expires before its renewal can finish "
        "(RFC 2909 §5.2), got 86400 s"
    )


def test_s5_2_claim_lifetime_equal_to_a_renewal_is_too_short() -> None:
    text = LOCAL + '[timers]\nwaiting_period = "1h"\ninitiate_claim_delay = "10m"\n'
    err = rejects(text + '[allocation]\nclaim_lifetime = "70m"\n')
    assert err.key == "allocation.claim_lifetime"
    assert "(3600 s + 600 s = 4200 s)" in err.problem
    assert parse(text + '[allocation]\nclaim_lifetime = "4201s"\n')


def test_s5_2_short_timers_allow_short_lifetimes() -> None:
    text = LOCAL + '[timers]\nwaiting_period = "10s"\ninitiate_claim_delay = "2s"\n'
    cfg = parse(text + '[allocation]\nclaim_lifetime = "1m"\n[policy]\nmin_claim_holdtime = 0\n')
    assert cfg.allocation.claim_lifetime == 60.0


def test_cross_section_problems_are_reported_together() -> None:
    text = (
        LOCAL
        + '[allocation]\nclaim_lifetime = "1h"\n'
        + '[policy]\nmin_claim_holdtime = "3d"\n'
        + '[[peers]]\naddress = "192.0.2.2"\nrelation = "internal"\ndomain_id = 7\n'
    )
    err = rejects(text)
    keys = [err.key, *(o.key for o in err.others)]
    assert keys == ["peers[0].relation", "allocation.claim_lifetime", "policy.min_claim_holdtime"]


def test_policy_config_built_directly() -> None:
    built = PolicyConfig(restore_from=(Relation.PARENT,), max_child_prefix_size=1024)
    assert built.restore_from == (Relation.PARENT,)
    with pytest.raises(ValidationError) as info:
        PolicyConfig(child_soft_threshold=10, child_hard_threshold=5)
    assert "child_hard_threshold: must be >= child_soft_threshold (10)" in str(info.value)


@pytest.mark.parametrize("key", list(PolicyConfig.model_fields))
def test_every_policy_key_is_documented_and_in_the_example(key: str) -> None:
    docs = (EXAMPLE.parent / "docs" / "configuration.md").read_text(encoding="utf-8")
    example = EXAMPLE.read_text(encoding="utf-8")
    assert f"| `{key}` |" in docs
    assert f"{key} = " in example
