"""``[control]`` and ``[metrics]``: sockets decided by file permissions, metrics off by
default and warned about off loopback."""

from __future__ import annotations

from ipaddress import ip_address
from pathlib import Path

import pytest

from masc.config import ConfigError, config_warnings, parse_config_text

LOCAL = '[local]\ndomain_id = 65001\nnode_id = "127.0.9.1"\n'


def load(extra: str) -> object:
    return parse_config_text(LOCAL + extra, source="t.toml")


def test_defaults_are_an_owner_only_socket_no_read_only_socket_and_no_metrics() -> None:
    cfg = parse_config_text(LOCAL, source="t.toml")
    assert cfg.control.socket == Path("/run/masc/control.sock")
    assert cfg.control.mode == 0o600 and cfg.control.group is None
    assert cfg.control.readonly_socket is None
    assert cfg.metrics.listen is None


def test_read_only_socket_mode_and_group() -> None:
    cfg = parse_config_text(
        LOCAL + '[control]\nmode = "0660"\ngroup = "adm"\nreadonly_socket = "/run/masc/ro.sock"\n'
        'readonly_mode = "0666"\nreadonly_group = 4\n',
        source="t.toml",
    )
    c = cfg.control
    assert (c.mode, c.group, c.readonly_mode, c.readonly_group) == (0o660, "adm", 0o666, 4)
    assert c.readonly_socket == Path("/run/masc/ro.sock")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"127.0.0.1:9587"', (ip_address("127.0.0.1"), 9587)),
        ('"[::1]:9587"', (ip_address("::1"), 9587)),
    ],
)
def test_metrics_listen_is_an_address_and_a_port(text: str, expected: object) -> None:
    cfg = parse_config_text(LOCAL + f"[metrics]\nlisten = {text}\n", source="t.toml")
    assert cfg.metrics.listen == expected
    assert config_warnings(cfg) == []


@pytest.mark.parametrize(
    ("extra", "key", "words"),
    [
        ('[metrics]\nlisten = "localhost:9587"\n', "metrics.listen", "numeric address"),
        ('[metrics]\nlisten = "::1:9587"\n', "metrics.listen", "brackets"),
        ('[metrics]\nlisten = "127.0.0.1:0"\n', "metrics.listen", "1..65535"),
        ("[metrics]\nlisten = 9587\n", "metrics.listen", "ADDRESS:PORT"),
        ('[control]\nmode = "rw"\n', "control.mode", "octal"),
        (
            '[control]\nsocket = "/tmp/a.sock"\nreadonly_socket = "/tmp/a.sock"\n',
            "control.readonly_socket",
            "must differ",
        ),
    ],
)
def test_bad_values_name_the_key(extra: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config_text(LOCAL + extra, source="t.toml")
    assert f"t.toml: {key}: " in str(caught.value) and words in str(caught.value)


def test_metrics_off_loopback_is_a_warning_not_an_error() -> None:
    cfg = parse_config_text(LOCAL + '[metrics]\nlisten = "192.0.2.1:9587"\n', source="t.toml")
    (warning,) = config_warnings(cfg)
    assert warning.key == "metrics.listen" and "not a loopback" in warning.message
