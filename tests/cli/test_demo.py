"""`masc demo` is the README's first command: its configs must be valid and it must bring
every session of RFC 2909 Figure 1 up with real daemons."""

from __future__ import annotations

import subprocess
import sys
from ipaddress import IPv4Network, ip_network
from pathlib import Path

import pytest

from masc.cli.demo import DOMAINS, LINKS, NODES, render_config
from masc.config import Relation, parse_config_text

SCOPE = IPv4Network("239.192.0.0/14")


@pytest.mark.parametrize("node", list(NODES))
def test_every_figure_1_config_is_valid(node: str, tmp_path: Path) -> None:
    cfg = parse_config_text(render_config(node, tmp_path, 2587), source=f"{node}.toml")
    domain_id, parents = DOMAINS[node[:2]]
    assert cfg.local.domain_id == domain_id
    # Routers without a parent session of their own (P3a, P4b, C5c) still know they are not
    # top-level: their internal peers would refuse them otherwise (§8.2).
    assert cfg.is_tld == (not parents)
    links = sum(node in (a, b) for a, b, _ in LINKS)
    assert len(cfg.peers) == links
    for peer in cfg.peers:
        if peer.relation is Relation.SIBLING:
            assert peer.parent_domain_id is not None


@pytest.mark.processes
def test_demo_brings_up_all_17_sessions_and_shuts_down_cleanly() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "masc", "demo", "--duration", "60", "--until-up", "--port", "12587"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"all {len(LINKS)} sessions of Figure 1 are Established" in result.stdout
    assert "exited with status [0]" in result.stdout


@pytest.mark.processes
def test_demo_every_domain_of_figure_1_claims_space_nested_in_its_parents() -> None:
    """README command 1 shows claim-collide at work: every domain ends up holding a prefix,
    each inside one of its parents' (RFC 2909 §4, §5.1)."""
    result = subprocess.run(
        [
            sys.executable, "-m", "masc", "demo", "--duration", "90", "--until-claimed",
            "--port", "12589",
        ],
        capture_output=True,
        text=True,
        timeout=150,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "NEW_CLAIM" in out and "allocated" in out
    assert "MISSING" not in out
    for domain, (domain_id, _parents) in DOMAINS.items():
        line = next(x for x in out.splitlines() if x.strip().startswith(f"{domain} ({domain_id})"))
        # Every prefix lies in the organization-local scope the TLDs share (RFC 2365).
        # A parent may hold several prefixes, comma-separated (it claims for its children).
        words = line.replace(",", " ").split()
        prefixes = [ip_network(w) for w in words if "/" in w and w[0].isdigit()]
        assert prefixes and all(p.subnet_of(SCOPE) for p in prefixes), line
        assert line.rstrip().endswith("ok"), line
