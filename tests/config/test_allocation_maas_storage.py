"""``[allocation]`` (RFC 2909 Appendix A), ``[maas]`` (docs/maas-api.md) and ``[storage]``
(§13): defaults, accepted spellings, and the key path named in every rejection."""

from __future__ import annotations

import pytest

from masc.config import ConfigError, MascConfig, parse_config_text
from masc.daemon.main import engine_config, grant_config
from masc.protocol.allocation import Strategy

LOCAL = '[local]\ndomain_id = 65001\nnode_id = "192.0.2.1"\n'


def parse(text: str) -> MascConfig:
    return parse_config_text(LOCAL + text, source="test.toml")


def problem(text: str, key: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse(text)
    found = {e.key: e.problem for e in (info.value, *info.value.others)}
    assert key in found, f"{key} not in {list(found)}"
    return found[key]


def test_s17_1_defaults_are_the_rfcs() -> None:
    cfg = parse("")
    a = cfg.allocation
    assert a.target_utilization == (0.7, 0.9)  # §17.1.3
    assert a.max_prefixes == 3  # §17.1.4
    assert a.renew_interval == 48 * 3600  # §17.1.6
    assert a.strategy == "rbo"
    allocator = engine_config(cfg).allocator
    assert allocator.strategy is Strategy.RBO and allocator.max_prefixes == 3
    assert cfg.maas.mode == 0o660 and cfg.maas.group is None
    assert cfg.storage.history_limit == 10_000
    grants = grant_config(cfg)
    assert grants.min_grant == 16 and grants.target_utilization == (0.7, 0.9)


def test_allocation_keys_reach_the_engine() -> None:
    cfg = parse(
        "[allocation]\ntarget_utilization = [0.6, 0.8]\nmax_prefixes = 2\n"
        'renew_interval = "24h"\nstrategy = "first-fit"\n'
    )
    allocator = engine_config(cfg).allocator
    assert allocator.target_utilization == (0.6, 0.8)
    assert allocator.max_prefixes == 2
    assert allocator.renew_interval == 86_400
    assert allocator.strategy is Strategy.FIRST_FIT


@pytest.mark.parametrize(
    ("body", "key", "words"),
    [
        ("target_utilization = [0.9, 0.7]", "allocation.target_utilization", "low < high"),
        ("target_utilization = [0.7, 1.5]", "allocation.target_utilization[1]", "1"),
        ("target_utilization = [0.7]", "allocation.target_utilization", "[low, high]"),
        ("max_prefixes = 0", "allocation.max_prefixes", "1"),
        ('renew_interval = "0s"', "allocation.renew_interval", "greater than 0"),
        ('strategy = "worst"', "allocation.strategy", "rbo"),
    ],
)
def test_bad_allocation_keys_are_named(body: str, key: str, words: str) -> None:
    assert words in problem("[allocation]\n" + body, key)


@pytest.mark.parametrize(
    ("written", "mode"), [('"0660"', 0o660), ("0o640", 0o640), ('"600"', 0o600), ("432", 0o660)]
)
def test_maas_mode_is_octal_string_or_integer(written: str, mode: int) -> None:
    assert parse(f"[maas]\nmode = {written}\n").maas.mode == mode


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ('mode = "rw-rw----"', "maas.mode"),
        ("mode = 0o1777", "maas.mode"),
        ("min_grant = 24", "maas.min_grant"),
        ('grant_horizon = "0s"', "maas.grant_horizon"),
    ],
)
def test_bad_maas_keys_are_named(body: str, key: str) -> None:
    assert problem("[maas]\n" + body, key)


def test_maas_group_by_name_or_gid() -> None:
    assert parse('[maas]\ngroup = "masc"\n').maas.group == "masc"
    assert parse("[maas]\ngroup = 997\n").maas.group == 997


def test_storage_history_limit() -> None:
    assert parse("[storage]\nhistory_limit = 0\n").storage.history_limit == 0
    assert problem("[storage]\nhistory_limit = -1\n", "storage.history_limit")
