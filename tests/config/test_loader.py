"""load_config / parse_config_text: file handling, error text, and the shipped example."""

from __future__ import annotations

import pickle
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from masc.config import ConfigError, MascConfig, Relation, load_config, parse_config_text

EXAMPLE = Path(__file__).resolve().parents[2] / "peers.example.toml"

MINIMAL = '[local]\ndomain_id = 65001\nnode_id = "192.0.2.1"\n'


def write(tmp_path: Path, text: str | bytes, name: str = "masc.toml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def load_error(path: Path | str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value


# --- reading files -----------------------------------------------------------------------


def test_load_config_accepts_path_and_str(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    assert load_config(path) == load_config(str(path)) == parse_config_text(MINIMAL)
    assert isinstance(load_config(path), MascConfig)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    err = load_error(path)
    assert err.file == str(path)
    assert err.key == ""
    assert err.problem == "cannot read file: No such file or directory"
    assert str(err) == f"{path}: cannot read file: No such file or directory"


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    err = load_error(tmp_path)
    assert err.key == ""
    assert err.problem.startswith("cannot read file: ")


def test_not_utf8(tmp_path: Path) -> None:
    err = load_error(write(tmp_path, b"[local]\ndomain_id = 1 # \xff\n"))
    assert err.key == ""
    assert err.problem.startswith("invalid TOML: not UTF-8 text")


def test_byte_order_mark_is_tolerated(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, b"\xef\xbb\xbf" + MINIMAL.encode()))
    assert cfg.local.domain_id == 65001


def test_toml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, '[local]\ndomain_id = 65001\nnode_id = "192.0.2.1\n')
    err = load_error(path)
    assert err.file == str(path)
    assert err.key == ""
    assert err.problem.startswith("invalid TOML: ")
    assert "line 3" in err.problem
    assert str(err) == f"{path}: {err.problem}"


def test_toml_duplicate_key_is_a_syntax_error() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config_text(MINIMAL + "port = 1\nport = 2\n", source="dup.toml")
    assert info.value.key == ""
    assert info.value.problem.startswith("invalid TOML: ")


def test_validation_errors_name_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "port = 0\n")
    err = load_error(path)
    assert err.file == str(path)
    assert err.key == "local.port"
    assert str(err) == f"{path}: local.port: must be greater than or equal to 1, got 0"


def test_parse_config_text_default_source() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config_text("")
    assert info.value.file == "<string>"


# --- error text --------------------------------------------------------------------------


def test_missing_local_section() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config_text("[timers]\nhold_time = 90\n", source="x.toml")
    err = info.value
    assert (err.file, err.key, err.problem) == ("x.toml", "local", "required key is missing")
    assert str(err) == "x.toml: local: required key is missing"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (MINIMAL + "porrt = 2587\n", "local.porrt"),
        (MINIMAL + "[locale]\nport = 1\n", "locale"),
        (MINIMAL + "[timers]\nholdtime = 90\n", "timers.holdtime"),
        (MINIMAL + "[storage]\ndatabase = 'x'\n", "storage.database"),
        (
            MINIMAL + "[[peers]]\naddress = '192.0.2.2'\nrelation = 'child'\ndomain_id = 7\n"
            "[[peers]]\naddress = '192.0.2.3'\nrelatoin = 'child'\ndomain_id = 8\n",
            "peers[1].relatoin",
        ),
    ],
)
def test_unknown_key_is_rejected_by_name(text: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config_text(text, source="x.toml")
    assert key in [info.value.key, *(o.key for o in info.value.others)]
    unknown = (
        info.value if info.value.key == key else next(o for o in info.value.others if o.key == key)
    )
    assert unknown.problem == "unknown key (not a MASC setting: check the spelling)"


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("local = 5\n", "local", "expected a table, got 5"),
        ("[[local]]\ndomain_id = 1\n", "local", "expected a table, got an array"),
        (MINIMAL + "[peers]\naddress = '192.0.2.2'\n", "peers", "expected an array, got a table"),
        (
            MINIMAL + "peers = 1\n",
            "local.peers",
            "unknown key (not a MASC setting: check the spelling)",
        ),
        (MINIMAL + "[timers]\nhold_time = 00:04:00\n", "timers.hold_time", "00:04:00"),
        (MINIMAL + "[storage]\npath = 1\n", "storage.path", "expected a path string, got 1"),
    ],
)
def test_type_errors_speak_toml(text: str, key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config_text(text, source="x.toml")
    assert info.value.key == key
    assert problem in info.value.problem


def test_pydantic_noise_is_removed() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config_text(
            MINIMAL + "port = 'x'\n[timers]\nhold_time = 2\n[[peers]]\nrelation = 1\n",
            source="x.toml",
        )
    text = str(info.value)
    assert "errors.pydantic.dev" not in text
    assert "Value error" not in text
    assert "Input should be" not in text
    assert "For further information" not in text


def test_several_errors_first_carried_rest_listed() -> None:
    text = (
        '[local]\ndomain_id = "x"\nnode_id = "192.0.2.1"\nport = 70000\n'
        "[timers]\nhold_time = 1\n"
        "[[peers]]\naddress = '192.0.2.2'\nrelation = 'cousin'\ndomain_id = 7\n"
    )
    with pytest.raises(ConfigError) as info:
        parse_config_text(text, source="x.toml")
    err = info.value
    assert err.key == "local.domain_id"
    assert [o.key for o in err.others] == ["local.port", "timers.hold_time", "peers[0].relation"]
    lines = str(err).splitlines()
    assert len(lines) == 4
    assert lines[0] == f"x.toml: local.domain_id: {err.problem}"
    for line, other in zip(lines[1:], err.others, strict=True):
        assert line == f"x.toml: {other.key}: {other.problem}"
    assert lines[2] == (
        "x.toml: timers.hold_time: must be 0 or 3..65535 seconds (RFC 2909 §7.2), got 1"
    )


def test_config_error_attributes_and_str() -> None:
    err = ConfigError("a.toml", "peers[1].relation", "bad")
    assert (err.file, err.key, err.problem, err.others) == (
        "a.toml",
        "peers[1].relation",
        "bad",
        (),
    )
    assert str(err) == "a.toml: peers[1].relation: bad"
    assert str(ConfigError("a.toml", "", "cannot read file: x")) == "a.toml: cannot read file: x"
    assert isinstance(err, Exception)


def test_config_error_pickles() -> None:
    err = ConfigError("a.toml", "k", "p", [ConfigError("a.toml", "k2", "p2")])
    copy = pickle.loads(pickle.dumps(err))
    assert str(copy) == str(err) == "a.toml: k: p\na.toml: k2: p2"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[local]\n",
        "local = []\n",
        "local = 'x'\n",
        "[local]\ndomain_id = 1979-05-27T07:32:00Z\nnode_id = 1\n",
        "[local]\ndomain_id = [[1]]\nnode_id = {a = 1}\nlisten = [[1], {b = 2}]\n",
        "[local]\ndomain_id = 99999999999999999999999999999999999999999999999\nnode_id = '::'\n",
        "[local]\ndomain_id = 1\nnode_id = '192.0.2.1'\nglobal_pool = [1, true, 1.5, '']\n",
        MINIMAL + "[timers]\nwaiting_period = inf\nconnect_retry = nan\nhold_time = 1e400\n",
        MINIMAL + "[allocation]\ninitial_size = 1e3\nclaim_lifetime = [1]\n",
        MINIMAL + "[[peers]]\n[[peers]]\naddress = []\nparent_domain_id = 'x'\nhold_time = {}\n",
        MINIMAL + "[control]\nsocket = []\n[maas]\nsocket = {}\n[storage]\npath = true\n",
        MINIMAL + "[[peers]]\naddress = '192.0.2.2'\nrelation = 'sibling'\ndomain_id = 7\n"
        "parent_domain_id = 1979-05-27\n",
        MINIMAL + "[policy]\nrestore_from = [1, {}]\nclash_resolution = []\n"
        "max_child_lifetime = 1979-05-27\nmax_child_prefix_size = 1e400\n"
        "min_claim_holdtime = nan\n",
        MINIMAL + "[[peers]]\naddress = '192.0.2.2'\nrelation = 'child'\ndomain_id = 7\n"
        "scope_boundary = [1, true, '', '::/0']\n",
        MINIMAL + "policy = 5\n",
    ],
)
def test_only_config_error_ever_escapes(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config_text(text, source="fuzz.toml")
    assert str(info.value).startswith("fuzz.toml: ")


# --- the shipped example -----------------------------------------------------------------


def test_peers_example_loads_as_a_regional_domain() -> None:
    cfg = load_config(EXAMPLE)
    assert not cfg.is_tld
    assert cfg.local.global_pool == ()
    assert cfg.local.address_family == "ipv4"
    relations = [p.relation for p in cfg.peers]
    assert relations.count(Relation.PARENT) == 1
    assert relations.count(Relation.CHILD) == 2
    assert relations.count(Relation.SIBLING) == 1
    assert relations.count(Relation.INTERNAL) == 1
    (parent,) = (p for p in cfg.peers if p.relation is Relation.PARENT)
    (sibling,) = (p for p in cfg.peers if p.relation is Relation.SIBLING)
    (internal,) = (p for p in cfg.peers if p.relation is Relation.INTERNAL)
    assert cfg.parent_domain_ids == (parent.domain_id,)
    assert sibling.parent_domain_id == parent.domain_id
    assert cfg.sibling_parent(sibling) == parent.domain_id
    assert internal.domain_id == cfg.local.domain_id


def test_peers_example_uses_documentation_addresses_and_private_as_numbers() -> None:
    cfg = load_config(EXAMPLE)
    documentation = [IPv4Address(n) for n in ("192.0.2.0", "198.51.100.0", "203.0.113.0")]
    addresses = [cfg.local.node_id, *cfg.local.listen, *(p.address for p in cfg.peers)]
    for addr in addresses:
        assert isinstance(addr, IPv4Address)
        assert IPv4Address(int(addr) & 0xFFFFFF00) in documentation, addr
    for domain_id in [cfg.local.domain_id, *(p.domain_id for p in cfg.peers)]:
        assert 64512 <= domain_id <= 65534


def test_peers_example_keeps_default_paths_and_timers() -> None:
    cfg = load_config(EXAMPLE)
    assert cfg.control.socket == Path("/run/masc/control.sock")
    assert cfg.maas.socket == Path("/run/masc/maas.sock")
    assert cfg.storage.path == Path("/var/lib/masc/state.db")
    assert cfg.timers.waiting_period == 172_800.0
    assert cfg.timers.hold_time == 240


def test_peers_example_mentions_the_organization_local_scope() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert "239.192.0.0/14" in text
    assert "RFC 2365" in text
