"""``[grib]``: exporters off by default; a table and protocol of masc's own; errors name the
key (docs/grib.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from masc.config import ConfigError, parse_config_text
from masc.daemon.main import grib_targets

LOCAL = '[local]\ndomain_id = 65001\nnode_id = "127.0.9.1"\n'


def test_defaults_enable_no_exporter() -> None:
    cfg = parse_config_text(LOCAL, source="t.toml")
    assert not cfg.grib.kernel.enabled and not cfg.grib.frr.enabled
    assert (cfg.grib.kernel.table, cfg.grib.kernel.protocol) == (2587, 245)
    assert cfg.grib.frr.route_map == "MASC-GRIB" and cfg.grib.frr.verify
    assert cfg.grib.resync_interval == 60
    assert grib_targets(cfg) == []


def test_both_exporters_with_their_settings() -> None:
    cfg = parse_config_text(
        LOCAL + '[grib]\nresync_interval = "30s"\n'
        "[grib.kernel]\nenabled = true\ntable = 100\nprotocol = 99\n"
        '[grib.frr]\nenabled = true\nvty_socket = "/run/frr"\npathspace = "blue"\nasn = 65001\n'
        'route_map = "MASC"\nverify = false\ntimeout = "3s"\n',
        source="t.toml",
    )
    g = cfg.grib
    assert (g.resync_interval, g.kernel.table, g.kernel.protocol) == (30, 100, 99)
    assert g.frr.vty_socket == Path("/run/frr") and g.frr.pathspace == "blue"
    assert (g.frr.asn, g.frr.route_map, g.frr.verify, g.frr.timeout) == (65001, "MASC", False, 3)
    assert [t.name for t in grib_targets(cfg)] == ["kernel", "frr"]


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("[grib.kernel]\ntable = 254\n", "grib.kernel.table", "the kernel's own"),
        ("[grib.kernel]\ntable = 0\n", "grib.kernel.table", "greater than or equal to 1"),
        ("[grib.kernel]\nprotocol = 4\n", "grib.kernel.protocol", "greater than or equal to 5"),
        ("[grib.kernel]\nprotocol = 256\n", "grib.kernel.protocol", "less than or equal to 255"),
        ('[grib.kernel]\nenabled = "yes"\n', "grib.kernel.enabled", "expected true or false"),
        ('[grib.frr]\nroute_map = "a b"\n', "grib.frr.route_map", "pattern"),
        ('[grib.frr]\npathspace = "../x"\n', "grib.frr.pathspace", "pattern"),
        ("[grib.frr]\nasn = 0\n", "grib.frr.asn", "greater than or equal to 1"),
        ("[grib]\nresync_interval = 0\n", "grib.resync_interval", ""),
        ('[grib.frr]\nvtysh = ""\n', "grib.frr.vtysh", ""),
        ("[grib.bird]\nenabled = true\n", "grib.bird", ""),
    ],
)
def test_bad_values_name_the_key(text: str, key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config_text(LOCAL + text, source="t.toml")
    message = str(raised.value)
    assert f"t.toml: {key}" in message and problem in message
