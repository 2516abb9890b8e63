"""Peer security with real ``masc run`` processes on loopback (RFC 2909 §14, docs/security.md).

* TCP MD5 (RFC 2385): two daemons whose keys differ never reach Established — the kernel
  drops the unsigned or wrongly signed SYN — and do once a reload gives them the same key.
* A flood of colliding claims from one sibling (a raw socket) fills the whole global pool.
  With ``max_claims`` the daemon believes only the first few, still hears an honest
  sibling's claim, and still gets space of its own; without the limit it is starved.
"""

from __future__ import annotations

import json
import socket
import time
from ipaddress import ip_network
from pathlib import Path

import pytest

from masc.protocol.constants import ClaimType, Role
from masc.protocol.wire import DomainId, NodeId, Update, encode
from masc.protocol.wire.messages import Claim
from tests.e2e.daemons import Daemon, Peer, addr, render
from tests.e2e.test_daemons import raw_peer_established

pytestmark = pytest.mark.processes

TIMERS = 'waiting_period = "3s"\ninitiate_claim_delay = "1s"\nclock_skew_grace = "2s"'


def _tld(node: int, domain: int, peers: list[Peer], workdir: Path, peer_keys: str) -> str:
    """A TLD's config; ``peer_keys`` is appended to every [[peers]] table."""
    text = render(
        node,
        domain,
        peers,
        workdir,
        extra_local='global_pool = ["239.192.0.0/24"]',
        extra_timers=TIMERS,
        extra_sections='[allocation]\ninitial_size = 0\nclaim_lifetime = "10m"',
    )
    return text.replace("relation = ", f"{peer_keys}relation = ")


def _summary_sessions(d: Daemon) -> list[dict[str, object]]:
    out = d.mascctl("--json", "show", "peers")
    assert out.returncode == 0, out.stderr
    rows: list[dict[str, object]] = json.loads(out.stdout)["peers"]
    return rows


def test_rfc2385_a_peer_with_the_wrong_md5_key_never_reaches_established(
    cluster: dict[int, Daemon], tmp_path: Path
) -> None:
    a_text = _tld(71, 65171, [Peer(72, "sibling", 65172, parent_domain_id=0)], tmp_path,
                  'password = "alpha-key"\n')  # fmt: skip
    b_wrong = _tld(72, 65172, [Peer(71, "sibling", 65171, parent_domain_id=0)], tmp_path,
                   'password = "beta-key"\n')  # fmt: skip
    a = cluster[71] = Daemon(71, a_text, tmp_path)
    b = cluster[72] = Daemon(72, b_wrong, tmp_path)
    for d in (a, b):
        d.wait_for(lambda r: r.get("event") == "started", timeout=15)
    # Many ConnectRetry periods (1 s): both ends dial, the kernel drops every SYN.
    time.sleep(6)
    for d in (a, b):
        assert not [r for r in d.records if r.get("event") in ("session_up", "connection_refused")]
        # Still dialling: no OPEN ever arrived to be refused, the SYNs went unanswered.
        assert [row["state"] for row in _summary_sessions(d)] in (["Connect"], ["Active"])
    # The same key on both ends: the reload resets the session and it comes up.
    assert b.config.read_text() == b_wrong
    b.config.write_text(b_wrong.replace("beta-key", "alpha-key"))
    mark = a.mark()
    out = b.mascctl("reload")
    assert out.returncode == 0, out.stdout + out.stderr
    a.wait_established(72, since=mark, timeout=20)
    (row,) = _summary_sessions(a)
    assert row["security"] == ["md5"]


# --- a flood of colliding claims ---------------------------------------------------------------


def _new_claim(prefix: str, domain: int, node: int) -> Claim:
    return Claim(
        type=ClaimType.NEW_CLAIM,
        origin_role=Role.INTERNAL,
        timestamp=int(time.time()),
        lifetime=3600,
        holdtime=600,
        origin_domain=DomainId(domain),
        origin_node=NodeId(int.from_bytes(socket.inet_aton(addr(node)), "big")),
        prefix=ip_network(prefix),  # type: ignore[arg-type]
    )


POOL_28S = [f"239.192.0.{16 * i}/28" for i in range(16)]  # the whole global pool


@pytest.mark.parametrize("limited", [True, False], ids=["max_claims", "no-limit"])
def test_s14_a_flood_of_colliding_claims_is_limited_and_does_not_starve_the_others(
    cluster: dict[int, Daemon], tmp_path: Path, limited: bool
) -> None:
    d_node, flooder, honest = 74, 75, 76
    peers = [Peer(flooder, "sibling", 65175, parent_domain_id=0, passive=True),
             Peer(honest, "sibling", 65176, parent_domain_id=0, passive=True)]  # fmt: skip
    text = _tld(d_node, 65174, peers, tmp_path, "")
    if limited:
        # Only the flooder's table gets the limit (the first [[peers]]).
        text = text.replace("domain_id = 65175\n", "domain_id = 65175\nmax_claims = 4\n", 1)
    d = cluster[d_node] = Daemon(d_node, text, tmp_path)
    d.wait_for(lambda r: r.get("event") == "started", timeout=15)
    flood_sock, _ = raw_peer_established(
        daemon_node=d_node, node=flooder, domain=65175, role=Role.SIBLING, retry=15, parent=0
    )
    honest_sock, _ = raw_peer_established(
        daemon_node=d_node, node=honest, domain=65176, role=Role.SIBLING, retry=15, parent=0
    )
    try:
        flood = Update(tuple(_new_claim(p, 65175, flooder) for p in POOL_28S))
        flood_sock.sendall(encode(flood))
        honest_claim = _new_claim(POOL_28S[-1], 65176, honest)
        honest_sock.sendall(encode(Update((honest_claim,))))
        # The honest sibling's claim is heard either way.
        deadline = time.monotonic() + 10
        while True:
            out = d.mascctl("--json", "show", "claims", "--domain", "65176")
            foreign = json.loads(out.stdout)["foreign"]
            if any(c["prefix"] == POOL_28S[-1] for c in foreign):
                break
            assert time.monotonic() < deadline, f"honest claim not heard: {out.stdout}"
            time.sleep(0.2)
        believed = json.loads(d.mascctl("--json", "show", "claims", "--domain", "65175").stdout)
        assert believed["foreign_total"] == (4 if limited else 16)
        out = d.mascctl("claim", "--size", "16")
        if not limited:
            # Every /28 of the pool is claimed by someone: nothing left for us (§12.3).
            time.sleep(5)
            prefixes = json.loads(d.mascctl("--json", "show", "prefixes").stdout)["prefixes"]
            assert prefixes == [], "the flood should have starved an unlimited daemon"
            return
        assert out.returncode == 0, out.stdout + out.stderr
        deadline = time.monotonic() + 15
        while True:
            rows = json.loads(d.mascctl("--json", "show", "prefixes").stdout)["prefixes"]
            if rows:
                break
            assert time.monotonic() < deadline, "no space despite the limit"
            time.sleep(0.3)
        (mine,) = [ip_network(r["prefix"]) for r in rows]
        taken = [ip_network(p) for p in (*POOL_28S[:4], POOL_28S[-1])]
        assert not any(mine.overlaps(t) for t in taken)
        (row,) = [p for p in _summary_sessions(d) if p["address"] == addr(flooder)]
        assert row["limit_drops"] == 12
        assert d.wait_for(lambda r: r.get("event") == "limit_exceeded", timeout=1)
    finally:
        flood_sock.close()
        honest_sock.close()
