"""GTSM (RFC 5082, ``ttl_security``) across a real router: two ``masc run`` in namespaces A
and B, joined through a third namespace R that forwards (one hop, TTL 255 -> 254).

``ttl_security = 1`` (directly connected only) keeps the session down: the kernel drops the
peer's segments, which arrive with TTL 254.  ``ttl_security = 2`` lets it up.  Both ends
send with TTL 255, which is what makes the check unforgeable from farther away.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.daemons import Daemon
from tests.netns_kit import ip, namespace, veth

pytestmark = pytest.mark.processes

A, B = "10.97.1.1", "10.97.2.2"


def _config(me: str, domain: int, peer: str, peer_domain: int, hops: int, workdir: Path) -> str:
    return f"""
[local]
domain_id = {domain}
node_id = "{me}"
listen = ["{me}"]
global_pool = ["239.192.0.0/24"]
[timers]
hold_time = 3
connect_retry = 1
restart_backoff_initial = "1s"
restart_backoff_max = "2s"
[allocation]
initial_size = 0
[control]
socket = "{workdir}/{domain}.control.sock"
[maas]
socket = "{workdir}/{domain}.maas.sock"
[storage]
path = "{workdir}/{domain}.db"
[[peers]]
address = "{peer}"
relation = "sibling"
domain_id = {peer_domain}
parent_domain_id = 0
ttl_security = {hops}
"""


@pytest.fixture
def routed() -> Iterator[tuple[str, str]]:
    """A and B, one router apart."""
    with namespace("ga") as a, namespace("gr") as r, namespace("gb") as b:
        veth(a, f"{A}/24", r, "10.97.1.254/24")
        veth(r, "10.97.2.254/24", b, f"{B}/24")
        subprocess.run(["ip", "netns", "exec", r, "sysctl", "-qw", "net.ipv4.ip_forward=1"],
                       check=True)  # fmt: skip
        ip("-n", a, "route", "add", "default", "via", "10.97.1.254")
        ip("-n", b, "route", "add", "default", "via", "10.97.2.254")
        yield a, b


def _states(d: Daemon) -> list[str]:
    out = d.mascctl("--json", "show", "peers")
    assert out.returncode == 0, out.stderr
    return [row["state"] for row in json.loads(out.stdout)["peers"]]


@pytest.mark.parametrize(("hops", "comes_up"), [(1, False), (2, True)])
def test_rfc5082_ttl_security_admits_only_peers_within_the_configured_hops(
    routed: tuple[str, str], tmp_path: Path, hops: int, comes_up: bool
) -> None:
    ns_a, ns_b = routed
    # The hops=2 case is the control: same routing, the session comes up.
    a = Daemon(1, _config(A, 65301, B, 65302, hops, tmp_path), tmp_path, netns=ns_a)
    b = Daemon(2, _config(B, 65302, A, 65301, hops, tmp_path), tmp_path, netns=ns_b)
    a.control, b.control = (
        str(tmp_path / "65301.control.sock"),
        str(tmp_path / "65302.control.sock"),
    )
    try:
        for d in (a, b):
            d.wait_for(lambda r: r.get("event") == "started", timeout=15)
        if comes_up:
            a.wait_for(lambda r: r.get("event") == "session_up", timeout=20)
            assert _states(a) == ["Established"]
            return
        time.sleep(6)  # several ConnectRetry periods and hold times
        for d in (a, b):
            assert not [r for r in d.records if r.get("event") == "session_up"]
            assert _states(d) != ["Established"]
    finally:
        a.stop()
        b.stop()
