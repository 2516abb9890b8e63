"""The configuration models: values, defaults, and every validation rule with its key path.

Configs are given as TOML text through ``parse_config_text``, the way an operator writes
them, so each test also pins the key path the operator will read in the error.
"""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path

import pytest
from pydantic import ValidationError

from masc.config import (
    AllocationConfig,
    ConfigError,
    ControlConfig,
    LocalConfig,
    MaasConfig,
    MascConfig,
    PeerConfig,
    Relation,
    StorageConfig,
    TimersConfig,
    parse_config_text,
)
from masc.protocol.constants import (
    HOLDTIME,
    INITIATE_CLAIM_DELAY,
    PORT_NUMBER,
    RESTART_BACKOFF_INITIAL,
    RESTART_BACKOFF_MAX,
    TLD_ID,
    WAITING_PERIOD,
    AddressFamily,
    Role,
)

CONTRACT_EXAMPLE = """
[local]
domain_id = 65001            # int (AS number) or address string; 4 octets for ipv4
node_id = "192.0.2.1"        # MASC node id: an address of this router
address_family = "ipv4"      # "ipv4" | "ipv6"
listen = ["192.0.2.1"]
port = 2587
global_pool = ["239.192.0.0/14"]  # top-level domains only: the space TLDs share
[timers]
waiting_period = "48h"
initiate_claim_delay = "10m"
hold_time = 240
connect_retry = 30
[allocation]
initial_size = 256           # addresses to claim at start when holding none; 0 = on demand
claim_lifetime = "30d"
[control]
socket = "/run/masc/control.sock"
[maas]
socket = "/run/masc/maas.sock"
[storage]
path = "/var/lib/masc/state.db"
[[peers]]
address = "192.0.2.2"
port = 2587
relation = "child"          # what the PEER is to us: parent | child | sibling | internal
domain_id = 65000
"""

LOCAL = """
[local]
domain_id = 65001
node_id = "192.0.2.1"
"""

LOCAL_V6 = """
[local]
address_family = "ipv6"
domain_id = "2001:db8::1"
node_id = "2001:db8::1"
"""


def parse(text: str) -> MascConfig:
    return parse_config_text(text, source="test.toml")


def rejects(text: str) -> ConfigError:
    """Parse ``text``, expecting a ConfigError, and return it."""
    with pytest.raises(ConfigError) as info:
        parse(text)
    assert info.value.file == "test.toml"
    return info.value


def toml_value(value: object) -> str:
    """``value`` spelled as TOML (enough for these tests: scalars and flat arrays)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return repr(value)


def table(header: str, fields: dict[str, object]) -> str:
    body = "".join(f"{key} = {toml_value(value)}\n" for key, value in fields.items())
    return f"\n{header}\n{body}"


def peer(address: str, relation: str, domain_id: int | str, **extra: object) -> str:
    """One [[peers]] table as TOML."""
    fields = {"address": address, "relation": relation, "domain_id": domain_id, **extra}
    return table("[[peers]]", fields)


def local_with(**keys: object) -> str:
    """A [local] table with domain_id 65001 / node_id 192.0.2.1, overridden by ``keys``."""
    return table("[local]", {"domain_id": 65001, "node_id": "192.0.2.1", **keys})


PARENT = peer("198.51.100.1", "parent", 65000)


# --- the contract example and defaults ---------------------------------------------------


def test_contract_example_parses_with_its_values() -> None:
    cfg = parse(CONTRACT_EXAMPLE)
    assert cfg.local.domain_id == 65001
    assert cfg.local.node_id == IPv4Address("192.0.2.1")
    assert cfg.local.address_family == "ipv4"
    assert cfg.local.family is AddressFamily.IPV4
    assert cfg.local.listen == (IPv4Address("192.0.2.1"),)
    assert cfg.local.port == 2587
    assert cfg.local.global_pool == (IPv4Network("239.192.0.0/14"),)
    assert cfg.timers.waiting_period == 172_800.0
    assert cfg.timers.initiate_claim_delay == 600.0
    assert cfg.timers.hold_time == 240
    assert cfg.timers.connect_retry == 30.0
    assert cfg.allocation.initial_size == 256
    assert cfg.allocation.claim_lifetime == 30 * 86_400.0
    assert cfg.control.socket == Path("/run/masc/control.sock")
    assert cfg.maas.socket == Path("/run/masc/maas.sock")
    assert cfg.storage.path == Path("/var/lib/masc/state.db")
    (only,) = cfg.peers
    assert only.address == IPv4Address("192.0.2.2")
    assert only.port == 2587
    assert only.relation is Relation.CHILD
    assert only.domain_id == 65000
    assert cfg.is_tld


def test_contract_example_with_a_parent_must_drop_global_pool() -> None:
    # The layout in the contract shows both keys; together they are an error (TLDs only).
    text = CONTRACT_EXAMPLE.replace('relation = "child"', 'relation = "parent"')
    err = rejects(text)
    assert err.key == "local.global_pool"
    cfg = parse(text.replace('global_pool = ["239.192.0.0/14"]', ""))
    assert not cfg.is_tld
    assert cfg.parent_domain_ids == (65000,)


def test_defaults_with_only_local() -> None:
    cfg = parse(LOCAL)
    assert cfg.local.address_family == "ipv4"
    assert cfg.local.listen == (IPv4Address("192.0.2.1"),)  # defaults to node_id
    assert cfg.local.port == PORT_NUMBER == 2587
    assert cfg.local.global_pool == ()
    assert cfg.timers == TimersConfig()
    assert cfg.timers.waiting_period == float(WAITING_PERIOD) == 172_800.0
    assert cfg.timers.initiate_claim_delay == float(INITIATE_CLAIM_DELAY) == 600.0
    assert cfg.timers.hold_time == HOLDTIME == 240
    assert cfg.timers.connect_retry == 30.0
    assert cfg.timers.restart_backoff_initial == RESTART_BACKOFF_INITIAL == 60.0
    assert cfg.timers.restart_backoff_max == RESTART_BACKOFF_MAX == 86_400.0
    assert cfg.timers.clock_skew_grace == 86_400.0
    assert cfg.allocation == AllocationConfig()
    assert cfg.allocation.initial_size == 256
    assert cfg.allocation.claim_lifetime == 2_592_000.0
    assert cfg.control == ControlConfig(socket=Path("/run/masc/control.sock"))
    assert cfg.maas == MaasConfig(socket=Path("/run/masc/maas.sock"))
    assert cfg.storage == StorageConfig(path=Path("/var/lib/masc/state.db"))
    assert cfg.peers == ()
    assert cfg.is_tld
    assert cfg.parent_domain_ids == (TLD_ID,)


def test_section_types() -> None:
    cfg = parse(LOCAL)
    assert isinstance(cfg.local, LocalConfig)
    assert isinstance(cfg.timers, TimersConfig)
    assert isinstance(cfg.control.socket, Path)


def test_peer_defaults() -> None:
    cfg = parse(LOCAL + peer("192.0.2.2", "child", 65000))
    p = cfg.peers[0]
    assert isinstance(p, PeerConfig)
    assert p.port == 2587
    assert p.parent_domain_id is None
    assert p.passive is False
    assert p.hold_time is None
    assert cfg.hold_time_for(p) == 240


def test_models_are_frozen() -> None:
    cfg = parse(LOCAL)
    with pytest.raises(ValidationError):
        cfg.local.port = 1  # type: ignore[misc, unused-ignore]
    with pytest.raises(ValidationError):
        cfg.timers = TimersConfig()  # type: ignore[misc, unused-ignore]
    assert hash(cfg) == hash(parse(LOCAL))


# --- [local] -----------------------------------------------------------------------------


def test_domain_id_as_ipv4_address_string() -> None:
    cfg = parse(local_with(domain_id="192.0.2.1"))
    assert cfg.local.domain_id == 0xC0000201


@pytest.mark.parametrize("value", [1, 65001, 2**32 - 1])
def test_domain_id_fits_in_four_octets(value: int) -> None:
    assert parse(local_with(domain_id=value)).local.domain_id == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "must not be 0: 0 is TLD_ID"),
        ("0.0.0.0", "must not be 0: 0 is TLD_ID"),
        (2**32, "does not fit in 4 octets"),
        (-1, "must not be negative"),
        ("AS65001", "neither an integer nor an IPv4/IPv6 address"),
        ("65001", "neither an integer nor an IPv4/IPv6 address"),
        ("2001:db8::1", "2001:db8::1 is an IPv6 address but local.address_family is 'ipv4'"),
        (True, "expected an integer or an address string, got true"),
        (1.5, "expected an integer or an address string"),
    ],
)
def test_s6_domain_id_rejections(value: object, message: str) -> None:
    err = rejects(local_with(domain_id=value))
    assert err.key == "local.domain_id"
    assert message in err.problem


def test_domain_id_missing() -> None:
    err = rejects('[local]\nnode_id = "192.0.2.1"\n')
    assert err.key == "local.domain_id"
    assert err.problem == "required key is missing"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0.0.0.0", "unspecified address"),
        ("224.0.0.5", "multicast address"),
        ("2001:db8::1", "is an IPv6 address but local.address_family is 'ipv4'"),
        ("router1", "'router1' is not an IPv4 or IPv6 address"),
        ("192.0.2.1/32", "is not an IPv4 or IPv6 address"),
        (3221225985, "expected an address string"),
    ],
)
def test_node_id_rejections(value: object, message: str) -> None:
    err = rejects(local_with(node_id=value, listen=["192.0.2.1"]))
    assert err.key == "local.node_id"
    assert message in err.problem


def test_address_family_must_be_lowercase_literal() -> None:
    err = rejects(local_with(address_family="IPv4"))
    assert err.key == "local.address_family"
    assert "'ipv4' or 'ipv6'" in err.problem


def test_listen_explicit() -> None:
    cfg = parse(local_with(listen=["192.0.2.1", "192.0.2.100", "0.0.0.0"]))
    assert cfg.local.listen == (
        IPv4Address("192.0.2.1"),
        IPv4Address("192.0.2.100"),
        IPv4Address("0.0.0.0"),
    )


@pytest.mark.parametrize(
    ("listen", "key", "message"),
    [
        ([], "local.listen", "must not be empty"),
        (["192.0.2.1", "2001:db8::2"], "local.listen[1]", "is an IPv6 address"),
        (["224.0.0.1"], "local.listen[0]", "multicast"),
        (["192.0.2.1", "192.0.2.7", "192.0.2.7"], "local.listen[2]", "duplicates listen[1]"),
        (["nope"], "local.listen[0]", "not an IPv4 or IPv6 address"),
    ],
)
def test_listen_rejections(listen: list[str], key: str, message: str) -> None:
    err = rejects(local_with(listen=listen))
    assert err.key == key
    assert message in err.problem


def test_listen_must_be_an_array() -> None:
    err = rejects(local_with(listen="192.0.2.1"))
    assert err.key == "local.listen"
    assert err.problem == 'expected an array, got "192.0.2.1"'


@pytest.mark.parametrize("port", [1, 2587, 65535])
def test_port_range_accepted(port: int) -> None:
    assert parse(local_with(port=port)).local.port == port


@pytest.mark.parametrize(
    ("port", "message"),
    [
        (0, "must be greater than or equal to 1, got 0"),
        (65536, "must be less than or equal to 65535, got 65536"),
        ("2587", 'expected an integer, got "2587"'),
        (True, "expected an integer, got true"),
    ],
)
def test_port_rejections(port: object, message: str) -> None:
    err = rejects(local_with(port=port))
    assert err.key == "local.port"
    assert err.problem == message


def test_global_pool_prefixes() -> None:
    # 233.252.0.0/24 (MCAST-TEST-NET) used to be the second pool here; it lies in GLOP
    # (233/8), which a pool may no longer touch (tests/config/test_global_pool.py).
    cfg = parse(local_with(global_pool=["239.192.0.0/14", "239.255.0.0/16"]))
    assert cfg.local.global_pool == (
        IPv4Network("239.192.0.0/14"),
        IPv4Network("239.255.0.0/16"),
    )


@pytest.mark.parametrize(
    ("pool", "key", "message"),
    [
        (["10.0.0.0/8"], "local.global_pool[0]", "not multicast space (inside 224.0.0.0/4)"),
        (["239.192.0.0/14", "192.0.0.0/2"], "local.global_pool[1]", "not multicast space"),
        (["ff05::/16"], "local.global_pool[0]", "IPv6 prefix but local.address_family"),
        (["239.192.1.0/14"], "local.global_pool[0]", "has host bits set"),
        (["239.192.0.0/33"], "local.global_pool[0]", "is not a network prefix"),
    ],
)
def test_global_pool_rejections(pool: list[str], key: str, message: str) -> None:
    err = rejects(local_with(global_pool=pool))
    assert err.key == key
    assert message in err.problem


# --- [timers] ----------------------------------------------------------------------------


def test_timer_duration_strings() -> None:
    cfg = parse(
        LOCAL
        + """
[timers]
waiting_period = "1h30m"
initiate_claim_delay = "0.5s"
hold_time = "4m"
connect_retry = "250ms"
restart_backoff_initial = "2m"
restart_backoff_max = "1w"
clock_skew_grace = 0
"""
    )
    t = cfg.timers
    assert t.waiting_period == 5400.0
    assert t.initiate_claim_delay == 0.5
    assert t.hold_time == 240
    assert isinstance(t.hold_time, int)
    assert t.connect_retry == 0.25
    assert t.restart_backoff_initial == 120.0
    assert t.restart_backoff_max == 604_800.0
    assert t.clock_skew_grace == 0.0


def test_zero_waiting_period_and_delay_are_allowed() -> None:
    cfg = parse(LOCAL + '[timers]\nwaiting_period = 0\ninitiate_claim_delay = "0s"\n')
    assert cfg.timers.waiting_period == 0.0
    assert cfg.timers.initiate_claim_delay == 0.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0),
        (3, 3),
        (240, 240),
        (65535, 65535),
        ('"3s"', 3),
        ("240.0", 240),
        ('"18h12m15s"', 65535),
    ],
)
def test_s7_2_hold_time_zero_or_at_least_three_seconds_accepted(
    value: object, expected: int
) -> None:
    assert parse(LOCAL + f"[timers]\nhold_time = {value}\n").timers.hold_time == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (1, "must be 0 or 3..65535 seconds (RFC 2909 §7.2), got 1"),
        (2, "must be 0 or 3..65535 seconds (RFC 2909 §7.2), got 2"),
        ('"2s"', "got 2"),
        (65536, "got 65536"),
        ('"1d"', "got 86400"),
        (2.5, "must be a whole number of seconds, got 2.5"),
        ('"3.5s"', "must be a whole number of seconds, got 3.5"),
        ('"500ms"', "must be a whole number of seconds, got 0.5"),
        (-240, "is negative"),
        ("true", "got true"),
        ('"240"', "has no unit"),
    ],
)
def test_s7_2_hold_time_rejections(value: object, message: str) -> None:
    err = rejects(LOCAL + f"[timers]\nhold_time = {value}\n")
    assert err.key == "timers.hold_time"
    assert message in err.problem


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("connect_retry", "0", "must be greater than 0 seconds, got 0"),
        ("connect_retry", '"0s"', "must be greater than 0 seconds"),
        ("restart_backoff_initial", "0", "must be greater than 0 seconds"),
        ("restart_backoff_max", "0", "must be greater than 0 seconds"),
        ("waiting_period", '"-1h"', "is negative"),
        ("initiate_claim_delay", "-1", "is negative"),
        ("clock_skew_grace", '"-1s"', "is negative"),
        ("waiting_period", '""', "empty duration"),
        ("waiting_period", '"48 hours"', "invalid duration '48 hours'"),
        ("initiate_claim_delay", "true", "expected seconds or a duration string, got true"),
    ],
)
def test_timer_rejections(key: str, value: str, message: str) -> None:
    err = rejects(LOCAL + f"[timers]\n{key} = {value}\n")
    assert err.key == f"timers.{key}"
    assert message in err.problem


def test_s10_restart_backoff_max_must_not_be_below_initial() -> None:
    err = rejects(LOCAL + '[timers]\nrestart_backoff_initial = "2m"\nrestart_backoff_max = 60\n')
    assert err.key == "timers.restart_backoff_max"
    assert err.problem == "must be >= restart_backoff_initial (120 s), got 60 s"


def test_s10_restart_backoff_max_equal_to_initial_is_fine() -> None:
    cfg = parse(LOCAL + '[timers]\nrestart_backoff_initial = 60\nrestart_backoff_max = "1m"\n')
    assert cfg.timers.restart_backoff_max == cfg.timers.restart_backoff_initial == 60.0


def test_s10_restart_backoff_initial_above_default_max_is_rejected() -> None:
    err = rejects(LOCAL + '[timers]\nrestart_backoff_initial = "2d"\n')
    assert err.key == "timers.restart_backoff_max"


# --- [allocation] ------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 2, 256, 65536, 2**28])
def test_initial_size_power_of_two_or_zero(size: int) -> None:
    assert parse(LOCAL + f"[allocation]\ninitial_size = {size}\n").allocation.initial_size == size


@pytest.mark.parametrize(
    ("size", "message"),
    [
        ("100", "must be 0 or a power of two (a claim is a prefix), got 100; nearest: 64 or 128"),
        ("3", "must be 0 or a power of two (a claim is a prefix), got 3; nearest: 2 or 4"),
        ("-256", "must be greater than or equal to 0, got -256"),
        ('"256"', 'expected an integer, got "256"'),
        ("256.0", "expected an integer, got 256.0"),
    ],
)
def test_initial_size_rejections(size: str, message: str) -> None:
    err = rejects(LOCAL + f"[allocation]\ninitial_size = {size}\n")
    assert err.key == "allocation.initial_size"
    assert err.problem == message


def test_claim_lifetime() -> None:
    cfg = parse(LOCAL + '[allocation]\nclaim_lifetime = "1w"\n')
    assert cfg.allocation.claim_lifetime == 604_800.0
    err = rejects(LOCAL + "[allocation]\nclaim_lifetime = 0\n")
    assert err.key == "allocation.claim_lifetime"
    assert "greater than 0" in err.problem


# --- paths -------------------------------------------------------------------------------


def test_paths_are_paths() -> None:
    cfg = parse(
        LOCAL
        + '[control]\nsocket = "ctl.sock"\n[maas]\nsocket = "/tmp/m.sock"\n'
        + '[storage]\npath = "state.db"\n'
    )
    assert cfg.control.socket == Path("ctl.sock")
    assert cfg.maas.socket == Path("/tmp/m.sock")
    assert cfg.storage.path == Path("state.db")


@pytest.mark.parametrize(
    ("section", "key"), [("control", "socket"), ("maas", "socket"), ("storage", "path")]
)
def test_empty_paths_rejected(section: str, key: str) -> None:
    err = rejects(LOCAL + f'[{section}]\n{key} = ""\n')
    assert err.key == f"{section}.{key}"
    assert err.problem == "must not be empty"


# --- peers: fields -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("relation", "role"),
    [
        (Relation.PARENT, Role.PARENT),
        (Relation.CHILD, Role.CHILD),
        (Relation.SIBLING, Role.SIBLING),
        (Relation.INTERNAL, Role.INTERNAL),
    ],
)
def test_s4_relation_role_is_what_the_peer_is_to_us(relation: Relation, role: Role) -> None:
    assert relation.role is role


def test_relation_values() -> None:
    assert [r.value for r in Relation] == ["parent", "child", "sibling", "internal"]
    assert Relation("sibling") is Relation.SIBLING
    assert isinstance(Relation.PARENT, str)


def test_peer_fields() -> None:
    cfg = parse(
        LOCAL
        + PARENT
        + peer(
            "198.51.100.9",
            "sibling",
            "198.51.100.9",
            port=2600,
            parent_domain_id=65000,
            passive=True,
            hold_time="90s",
        )
    )
    sib = cfg.peers[1]
    assert sib.address == IPv4Address("198.51.100.9")
    assert sib.port == 2600
    assert sib.relation is Relation.SIBLING
    assert sib.domain_id == int(IPv4Address("198.51.100.9"))
    assert sib.parent_domain_id == 65000
    assert sib.passive is True
    assert sib.hold_time == 90
    assert cfg.hold_time_for(sib) == 90
    assert cfg.hold_time_for(cfg.peers[0]) == 240


@pytest.mark.parametrize(
    ("extra", "key", "message"),
    [
        ({"relation": "parnet"}, "peers[0].relation", "'parent', 'child', 'sibling' or"),
        ({"relation": "Parent"}, "peers[0].relation", 'got "Parent"'),
        ({"port": 0}, "peers[0].port", "greater than or equal to 1"),
        ({"passive": "yes"}, "peers[0].passive", 'expected true or false, got "yes"'),
        ({"passive": 1}, "peers[0].passive", "expected true or false, got 1"),
        ({"hold_time": 2}, "peers[0].hold_time", "must be 0 or 3..65535"),
        ({"hold_time": 1.5}, "peers[0].hold_time", "whole number of seconds"),
        ({"domain_id": 0}, "peers[0].domain_id", "must not be 0: 0 is TLD_ID"),
        ({"domain_id": -5}, "peers[0].domain_id", "must not be negative"),
        ({"domain_id": 2**32}, "peers[0].domain_id", "does not fit in 4 octets"),
        ({"parent_domain_id": -1}, "peers[0].parent_domain_id", "must not be negative"),
        ({"address": "224.0.0.1"}, "peers[0].address", "not a unicast address"),
        ({"address": "0.0.0.0"}, "peers[0].address", "not a unicast address"),
        ({"address": "peer.example"}, "peers[0].address", "not an IPv4 or IPv6 address"),
    ],
)
def test_peer_field_rejections(extra: dict[str, object], key: str, message: str) -> None:
    fields: dict[str, object] = {
        "address": "192.0.2.2",
        "relation": "child",
        "domain_id": 65000,
        **extra,
    }
    err = rejects(LOCAL + table("[[peers]]", fields))
    assert err.key == key
    assert message in err.problem


def test_peer_missing_relation() -> None:
    err = rejects(LOCAL + '[[peers]]\naddress = "192.0.2.2"\ndomain_id = 65000\n')
    assert err.key == "peers[0].relation"
    assert err.problem == "required key is missing"


# --- peers: cross-field rules ------------------------------------------------------------


def test_peer_address_of_the_other_family() -> None:
    err = rejects(LOCAL + peer("192.0.2.2", "child", 65000) + peer("2001:db8::2", "child", 65002))
    assert err.key == "peers[1].address"
    assert err.problem == "2001:db8::2 is an IPv6 address but local.address_family is 'ipv4'"


def test_peer_domain_id_written_as_address_of_the_other_family() -> None:
    err = rejects(LOCAL + peer("192.0.2.2", "child", "2001:db8::2"))
    assert err.key == "peers[0].domain_id"
    assert err.problem == "2001:db8::2 is an IPv6 address but local.address_family is 'ipv4'"


def test_s4_internal_peer_must_share_our_domain_id() -> None:
    err = rejects(LOCAL + peer("192.0.2.2", "child", 65002) + peer("192.0.2.3", "internal", 65002))
    assert err.key == "peers[1].relation"
    assert "is 'internal' but domain_id 65002 differs from local.domain_id 65001" in err.problem


@pytest.mark.parametrize("relation", ["parent", "child", "sibling"])
def test_s4_non_internal_peer_must_be_another_domain(relation: str) -> None:
    err = rejects(LOCAL + peer("192.0.2.2", relation, 65001))
    assert err.key == "peers[0].relation"
    assert f"is '{relation}' but domain_id 65001 is this domain's own" in err.problem


def test_s4_internal_peer_with_domain_id_as_address() -> None:
    text = local_with(domain_id="192.0.2.1") + peer("192.0.2.2", "internal", "192.0.2.1")
    cfg = parse(text)
    assert cfg.peers[0].domain_id == cfg.local.domain_id


@pytest.mark.parametrize("relation", ["parent", "child", "internal"])
def test_s4_4_parent_domain_id_only_on_siblings(relation: str) -> None:
    domain = 65001 if relation == "internal" else 65000
    err = rejects(LOCAL + peer("192.0.2.2", relation, domain, parent_domain_id=0))
    assert err.key == "peers[0].parent_domain_id"
    assert (
        f"only allowed on siblings (RFC 2909 §4.4), and this peer's relation is '{relation}'"
        in (err.problem)
    )


def test_s4_4_sibling_parent_domain_id_must_be_one_of_our_parents() -> None:
    err = rejects(LOCAL + PARENT + peer("198.51.100.9", "sibling", 65002, parent_domain_id=64999))
    assert err.key == "peers[1].parent_domain_id"
    assert err.problem.startswith("64999 is not a parent of this domain; must be one of 65000")


def test_s4_4_tld_sibling_parent_domain_id_must_be_zero() -> None:
    err = rejects(LOCAL + peer("198.51.100.9", "sibling", 65002, parent_domain_id=65000))
    assert err.key == "peers[0].parent_domain_id"
    assert err.problem.startswith("must be 0: this domain has no parent peers")


def test_s4_4_tld_siblings() -> None:
    cfg = parse(
        local_with(global_pool=["239.192.0.0/14"])
        + peer("198.51.100.9", "sibling", 65002, parent_domain_id=0)
        + peer("198.51.100.10", "sibling", 65003)
    )
    assert cfg.is_tld
    assert cfg.parent_domain_ids == (0,)
    assert [cfg.sibling_parent(p) for p in cfg.peers] == [0, 0]
    assert cfg.peer_key(cfg.peers[1]) == ("198.51.100.10", 0)


def test_s4_4_parent_domain_id_required_with_several_parents() -> None:
    err = rejects(
        LOCAL
        + PARENT
        + peer("198.51.100.2", "parent", 64999)
        + peer("198.51.100.9", "sibling", 65002)
    )
    assert err.key == "peers[2].parent_domain_id"
    assert err.problem.startswith("is required: this domain has 2 parents (64999, 65000)")


def test_s4_4_one_sibling_session_per_common_parent() -> None:
    cfg = parse(
        LOCAL
        + PARENT
        + peer("198.51.100.2", "parent", 64999)
        + peer("198.51.100.9", "sibling", 65002, parent_domain_id=65000)
        + peer("198.51.100.9", "sibling", 65002, parent_domain_id=64999)
    )
    assert cfg.parent_domain_ids == (64999, 65000)
    assert cfg.peer_key(cfg.peers[2]) == ("198.51.100.9", 65000)
    assert cfg.peer_key(cfg.peers[3]) == ("198.51.100.9", 64999)
    assert cfg.sibling_parent(cfg.peers[3]) == 64999


def test_s4_4_duplicate_sibling_session_for_one_parent() -> None:
    err = rejects(
        LOCAL
        + PARENT
        + peer("198.51.100.9", "sibling", 65002)
        + peer("198.51.100.9", "sibling", 65002, parent_domain_id=65000)
    )
    assert err.key == "peers[2].address"
    assert err.problem.startswith(
        "duplicates peers[1]: same address 198.51.100.9 and common parent 65000"
    )


def test_duplicate_peer_address() -> None:
    err = rejects(
        LOCAL
        + peer("192.0.2.2", "child", 65000)
        + peer("192.0.2.3", "child", 65003)
        + peer("192.0.2.2", "child", 65002)
    )
    assert err.key == "peers[2].address"
    assert err.problem.startswith("duplicates peers[0]: same address 192.0.2.2;")


def test_duplicate_peer_address_compares_addresses_not_spellings() -> None:
    v6 = LOCAL_V6 + peer("2001:db8::2", "child", 7) + peer("2001:DB8:0::2", "child", 8)
    err = rejects(v6)
    assert err.key == "peers[1].address"
    assert "duplicates peers[0]" in err.problem


def test_sibling_and_parent_at_one_address_are_distinct_sessions() -> None:
    cfg = parse(LOCAL + PARENT + peer("198.51.100.1", "sibling", 65002))
    assert cfg.peer_key(cfg.peers[0]) == ("198.51.100.1", None)
    assert cfg.peer_key(cfg.peers[1]) == ("198.51.100.1", 65000)


@pytest.mark.parametrize("address", ["192.0.2.1", "192.0.2.50"])
def test_peer_address_must_not_be_our_own(address: str) -> None:
    err = rejects(
        local_with(listen=["192.0.2.1", "192.0.2.50"])
        + peer("192.0.2.9", "child", 65000)
        + peer(address, "child", 65002)
    )
    assert err.key == "peers[1].address"
    assert err.problem == f"{address} is this router's own address (local.node_id or local.listen)"


def test_peer_address_must_not_be_node_id_even_if_not_listening_on_it() -> None:
    err = rejects(local_with(listen=["0.0.0.0"]) + peer("192.0.2.1", "child", 65000))
    assert err.key == "peers[0].address"


def test_s4_global_pool_only_on_top_level_domains() -> None:
    err = rejects(
        local_with(global_pool=["239.192.0.0/14"]) + peer("192.0.2.9", "child", 65002) + PARENT
    )
    assert err.key == "local.global_pool"
    assert "only a top-level domain may configure a global_pool" in err.problem
    assert "(peers[1])" in err.problem


def test_several_cross_field_problems_are_all_reported() -> None:
    err = rejects(
        LOCAL
        + peer("192.0.2.1", "child", 65000)
        + peer("192.0.2.3", "internal", 65005, parent_domain_id=0)
    )
    keys = [err.key, *(other.key for other in err.others)]
    assert keys == ["peers[0].address", "peers[1].relation", "peers[1].parent_domain_id"]


# --- MascConfig helpers ------------------------------------------------------------------


def test_is_tld_and_parent_domain_ids() -> None:
    tld = parse(LOCAL + peer("192.0.2.9", "child", 65002))
    assert tld.is_tld
    assert tld.parent_domain_ids == (0,)
    regional = parse(
        LOCAL
        + peer("198.51.100.3", "parent", 65000)
        + peer("198.51.100.2", "parent", 64999)
        + peer("198.51.100.1", "parent", 65000)
    )
    assert not regional.is_tld
    assert regional.parent_domain_ids == (64999, 65000)


def test_sibling_parent_defaults_to_the_only_parent() -> None:
    cfg = parse(LOCAL + PARENT + peer("198.51.100.9", "sibling", 65002))
    assert cfg.sibling_parent(cfg.peers[1]) == 65000
    assert cfg.peer_key(cfg.peers[1]) == ("198.51.100.9", 65000)


def test_sibling_parent_of_a_non_sibling_is_misuse() -> None:
    cfg = parse(LOCAL + PARENT)
    with pytest.raises(ValueError, match="not a sibling"):
        cfg.sibling_parent(cfg.peers[0])
    assert cfg.peer_key(cfg.peers[0]) == ("198.51.100.1", None)


# --- IPv6 --------------------------------------------------------------------------------


def test_ipv6_config() -> None:
    cfg = parse(
        LOCAL_V6
        + 'listen = ["2001:db8::1", "::"]\n'
        + 'global_pool = ["ff15::/16"]\n'
        + peer("2001:db8::2", "sibling", "2001:db8:1::1")
        + peer("2001:db8::3", "internal", "2001:db8::1")
        + peer("2001:db8::4", "child", 2**100)
    )
    assert cfg.local.family is AddressFamily.IPV6
    assert cfg.local.domain_id == int(IPv6Address("2001:db8::1"))
    assert cfg.local.node_id == IPv6Address("2001:db8::1")
    assert cfg.local.listen == (IPv6Address("2001:db8::1"), IPv6Address("::"))
    assert cfg.local.global_pool == (IPv6Network("ff15::/16"),)
    assert cfg.peers[0].domain_id == int(IPv6Address("2001:db8:1::1"))
    assert cfg.peers[1].domain_id == cfg.local.domain_id
    assert cfg.peers[2].domain_id == 2**100
    assert cfg.is_tld


def test_ipv6_listen_defaults_to_node_id() -> None:
    assert parse(LOCAL_V6).local.listen == (IPv6Address("2001:db8::1"),)


@pytest.mark.parametrize(
    ("extra", "key", "message"),
    [
        ('listen = ["192.0.2.1"]\n', "local.listen[0]", "is an IPv4 address"),
        ('global_pool = ["239.192.0.0/14"]\n', "local.global_pool[0]", "is an IPv4 prefix"),
        ('global_pool = ["2001:db8::/32"]\n', "local.global_pool[0]", "inside ff00::/8"),
    ],
)
def test_ipv6_local_rejections(extra: str, key: str, message: str) -> None:
    err = rejects(LOCAL_V6 + extra)
    assert err.key == key
    assert message in err.problem


def test_ipv6_domain_id_as_ipv4_string_rejected() -> None:
    err = rejects(LOCAL_V6.replace('domain_id = "2001:db8::1"', 'domain_id = "192.0.2.1"'))
    assert err.key == "local.domain_id"
    assert err.problem == "192.0.2.1 is an IPv4 address but local.address_family is 'ipv6'"


def test_ipv6_node_id_in_ipv4_config_rejected_and_vice_versa() -> None:
    err = rejects(LOCAL_V6.replace('node_id = "2001:db8::1"', 'node_id = "192.0.2.1"'))
    assert err.key == "local.node_id"
    assert "is an IPv4 address but local.address_family is 'ipv6'" in err.problem


def test_ipv6_peer_rejections() -> None:
    err = rejects(
        LOCAL_V6 + peer("192.0.2.2", "child", 7) + peer("2001:db8::3", "child", "10.0.0.1")
    )
    assert err.key == "peers[0].address"
    assert [o.key for o in err.others] == ["peers[1].domain_id"]
    assert err.others[0].problem == "10.0.0.1 is an IPv4 address but local.address_family is 'ipv6'"


def test_ipv6_domain_id_must_fit_in_sixteen_octets() -> None:
    err = rejects(LOCAL_V6 + peer("2001:db8::2", "child", 2**128))
    assert err.key == "peers[0].domain_id"
    assert "does not fit in 16 octets" in err.problem


# --- building models directly -----------------------------------------------------------


def test_model_validate_directly_reports_key_paths_in_its_text() -> None:
    with pytest.raises(ValidationError) as info:
        MascConfig.model_validate(
            {
                "local": {"domain_id": 1, "node_id": "192.0.2.1"},
                "peers": [{"address": "192.0.2.2", "relation": "internal", "domain_id": 2}],
            }
        )
    assert "peers[0].relation: is 'internal'" in str(info.value)


def test_models_accept_their_own_instances() -> None:
    local = LocalConfig(domain_id=7, node_id=IPv4Address("192.0.2.1"))
    p = PeerConfig(
        address=IPv4Address("192.0.2.2"),
        relation=Relation.SIBLING,
        domain_id=8,
    )
    cfg = MascConfig(local=local, peers=(p,))
    assert cfg.local.listen == (IPv4Address("192.0.2.1"),)
    assert cfg.sibling_parent(p) == 0


# --- local.parent_domain_ids: a non-TLD router with no parent session (RFC 2909 Figure 1) ---


def _local_only(extra: str) -> str:
    return f"""
[local]
domain_id = 65003
node_id = "192.0.2.31"
{extra}
[[peers]]
address = "192.0.2.32"
relation = "internal"
domain_id = 65003
"""


def test_local_parent_domain_ids_make_a_router_without_parent_peers_non_tld() -> None:
    cfg = parse_config_text(_local_only("parent_domain_ids = [65001]"), source="p3a.toml")
    assert cfg.is_tld is False
    assert cfg.parent_domain_ids == (65001,)


def test_without_parent_peers_or_parent_domain_ids_the_domain_is_a_tld() -> None:
    cfg = parse_config_text(_local_only(""), source="t.toml")
    assert cfg.is_tld is True
    assert cfg.parent_domain_ids == (0,)


def test_local_parent_domain_ids_are_merged_with_parent_peers() -> None:
    text = (
        _local_only('parent_domain_ids = ["0.0.255.252"]')
        + """
[[peers]]
address = "192.0.2.1"
relation = "parent"
domain_id = 65001
"""
    )
    cfg = parse_config_text(text, source="x.toml")
    assert cfg.parent_domain_ids == (65001, 65532)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [("[0]", "must not be 0"), ("[65003]", "own domain_id"), ("[4294967296]", "4 octets")],
)
def test_local_parent_domain_ids_rejects_bad_values(value: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config_text(_local_only(f"parent_domain_ids = {value}"), source="bad.toml")
    assert info.value.key == "local.parent_domain_ids[0]"
    assert fragment in info.value.problem


def test_global_pool_with_declared_parents_names_parent_domain_ids() -> None:
    text = _local_only('parent_domain_ids = [65001]\nglobal_pool = ["239.192.0.0/14"]')
    with pytest.raises(ConfigError) as info:
        parse_config_text(text, source="bad.toml")
    assert info.value.key == "local.global_pool"
    assert "local.parent_domain_ids" in info.value.problem
