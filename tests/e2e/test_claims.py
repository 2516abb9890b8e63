"""Real daemons claim space by claim-collide (RFC 2909 §5.1, §11, §12.2; issue: claim engine).

Three ``masc run`` processes on 127.0.9.x with a waiting period of a few seconds: two
top-level domains sharing the organization-local pool, and a child of the first.  The child
ends with a prefix inside its parent's, the TLDs' prefixes are disjoint, and mascctl shows
it all with the JSON contract (``prefixes[]`` with ``prefix``, ``kind``, ``expires``).
"""

from __future__ import annotations

import json
import time
from ipaddress import IPv4Network, ip_network
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.daemons import Daemon, Peer, render

pytestmark = pytest.mark.processes

TLD1, TLD2, CHILD = 65101, 65102, 65103
N_T1, N_T2, N_C = 41, 42, 43
POOL = "239.192.0.0/14"
TIMERS = 'waiting_period = "3s"\ninitiate_claim_delay = "1s"\nclock_skew_grace = "2s"'


def _start(
    cluster: dict[int, Daemon],
    tmp_path: Path,
    node: int,
    domain: int,
    peers: list[Peer],
    *,
    tld: bool,
    initial_size: int,
) -> Daemon:
    text = render(
        node,
        domain,
        peers,
        tmp_path,
        extra_local=f'global_pool = ["{POOL}"]' if tld else "",
        extra_timers=TIMERS,
        extra_sections=f'[allocation]\ninitial_size = {initial_size}\nclaim_lifetime = "10m"',
    )
    d = Daemon(node, text, tmp_path)
    cluster[node] = d
    d.wait_for(lambda r: r.get("event") == "started", timeout=15)
    return d


def _managed(d: Daemon) -> list[dict[str, Any]]:
    out = d.mascctl("--json", "show", "prefixes")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    return [p for p in result["prefixes"] if p["kind"] == "managed"]


def _wait_managed(d: Daemon, timeout: float = 40.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = _managed(d)
        if rows:
            return rows
        time.sleep(0.3)
    raise AssertionError(f"daemon {d.node} holds no prefix after {timeout}s")


def test_s5_1_child_ends_with_a_prefix_inside_its_parents(
    cluster: dict[int, Daemon], tmp_path: Path
) -> None:
    t1 = _start(
        cluster,
        tmp_path,
        N_T1,
        TLD1,
        [Peer(N_T2, "sibling", TLD2), Peer(N_C, "child", CHILD)],
        tld=True,
        initial_size=1024,
    )
    t2 = _start(
        cluster, tmp_path, N_T2, TLD2, [Peer(N_T1, "sibling", TLD1)], tld=True, initial_size=1024
    )
    child = _start(
        cluster, tmp_path, N_C, CHILD, [Peer(N_T1, "parent", TLD1)], tld=False, initial_size=256
    )

    child_rows = _wait_managed(child)
    t1_rows, t2_rows = _managed(t1), _wait_managed(t2)
    assert t1_rows, "the parent must hold space before its child can"

    def nets(rows: list[dict[str, Any]]) -> list[IPv4Network]:
        return [IPv4Network(r["prefix"]) for r in rows]

    pool = ip_network(POOL)
    for net in nets(t1_rows) + nets(t2_rows):
        assert net.subnet_of(pool)  # type: ignore[arg-type]
    for a in nets(t1_rows):
        for b in nets(t2_rows):
            assert not a.overlaps(b), f"sibling TLDs overlap: {a} {b}"
    for c in nets(child_rows):
        assert any(c.subnet_of(p) for p in nets(t1_rows)), (child_rows, t1_rows)
        assert c.num_addresses == 256
    # The JSON contract: expires in Unix seconds, in the future, within the lifetime asked.
    now = time.time()
    for row in child_rows:
        assert now < row["expires"] <= now + 600 + 5
        assert row["parent_domain_id"] == TLD1
        assert row["in_grib"] is True

    # The parent sees its child's PREFIX_IN_USE and became non-leaf (§12.2).
    parent_view = json.loads(t1.mascctl("--json", "show", "prefixes").stdout)
    assert parent_view["non_leaf"] is True
    children = [p for p in parent_view["prefixes"] if p["kind"] == "child"]
    assert {p["prefix"] for p in children} >= {r["prefix"] for r in child_rows}
    assert all(p["domain_id"] == CHILD for p in children)

    # The log says it too, with structured fields.
    child.wait_for(lambda r: r.get("event") == "prefix_allocated", timeout=5)
    child.wait_for(lambda r: r.get("event") == "grib_inject", timeout=5)
    text = child.mascctl("show", "prefixes")
    assert text.returncode == 0 and child_rows[0]["prefix"] in text.stdout
