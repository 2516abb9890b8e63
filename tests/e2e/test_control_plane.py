"""The operator control plane against real ``masc run`` processes (issue 5; RFC 2909 §5,
§8.7, §10, §12.4; docs/operations.md).

Every verb goes through the ``mascctl`` CLI with ``--json`` over the daemon's real Unix
socket, and every answer is checked against its model in :mod:`masc.api.control` (the JSON
must be exactly the model's serialisation: no unknown fields, no coercions).  Daemons live on
127.0.9.x with tiny timers (hold time 3 s, waiting period 3 s); every wait polls mascctl
or the JSON log with a deadline.

Three groups of daemons (127.0.9.60 and .63-.70: numbers no other e2e module uses):

* ``site``: a top-level domain T (pool, manual clash resolution, a read-only socket, a
  metrics endpoint) and its child C.  Shared by the verb, permission and metrics tests;
  a test that disturbs it (peer down) puts it back.
* ``ring``: A with siblings B and C, child D, and a daemon E that A does not know yet.
  The reload tests rewrite A's file.
* two TLDs that claim the same /24 while apart, then meet by a reload: a real §12.4 clash.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from ipaddress import IPv4Network, ip_network
from pathlib import Path
from typing import TypeVar

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel

from masc.api.control import (
    ActionResult,
    ClaimsResult,
    ClashesResult,
    ErrorInfo,
    MaasResult,
    PeerDetailResult,
    PeerInfo,
    PeersResult,
    PrefixesResult,
    PrefixInfo,
    ReloadResult,
    SummaryResult,
)
from masc.maas.client import open_maas_client
from masc.protocol.errors import ErrorCode
from tests.e2e.daemons import PORT, Daemon, Peer, Record, addr, render, until

pytestmark = pytest.mark.processes

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

TIMERS = 'waiting_period = "3s"\ninitiate_claim_delay = "500ms"\nclock_skew_grace = "2s"'
NOBODY = 65534

# site
N_T, N_C = 60, 68
D_T, D_C = 65660, 65661
# ring
N_A, N_B, N_RC, N_D, N_E = 63, 64, 65, 66, 67
D_A, D_B, D_RC, D_D, D_E = 65663, 65664, 65665, 65666, 65667
RING_HOLD = 9  # keepalives every 3 s; the changed peer gets 5, below its partner's 9
# clash
N_P, N_Q = 69, 70
D_P, D_Q = 65670, 65671
CLASH_POOL = "239.192.0.0/24"


# --- helpers -----------------------------------------------------------------------------


def workdir_for(prefix: str) -> Path:
    """Short (Unix socket paths < 108 bytes) and world-searchable (the uid 65534 client
    must reach the read-only socket; tmp_path's 0700 parents would refuse it first)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


def ctl(d: Daemon, model: type[M], *args: str) -> M:
    """``mascctl --json ARGS``: exit 0 and a result that is exactly ``model``'s JSON."""
    out = d.mascctl("--json", *args)
    assert out.returncode == 0, f"mascctl {' '.join(args)}: exit {out.returncode}: {out.stderr}"
    data = json.loads(out.stdout)
    parsed = model.model_validate(data)
    assert parsed.model_dump(mode="json") == data, f"{model.__name__} does not round-trip"
    return parsed


def ctl_error(d: Daemon, *args: str, socket_path: str | None = None) -> ErrorInfo:
    """``mascctl --json ARGS`` that the daemon refuses: exit 1, the error object on stdout,
    ``mascctl: CODE: MESSAGE`` on stderr."""
    # A second --socket overrides the one Daemon.mascctl puts first.
    extra = () if socket_path is None else ("--socket", socket_path)
    out = d.mascctl("--json", *extra, *args)
    assert out.returncode == 1, f"mascctl {' '.join(args)}: exit {out.returncode}: {out.stderr}"
    error = ErrorInfo.model_validate_json(out.stdout)
    assert f"mascctl: {error.code}: " in out.stderr
    return error


def peers_of(d: Daemon) -> dict[str, PeerInfo]:
    return {p.address: p for p in ctl(d, PeersResult, "show", "peers").peers}


def prefixes_of(d: Daemon, kind: str = "managed") -> list[PrefixInfo]:
    return [p for p in ctl(d, PrefixesResult, "show", "prefixes").prefixes if p.kind == kind]


def all_established(d: Daemon) -> dict[str, PeerInfo] | None:
    rows = peers_of(d)
    return rows if rows and all(p.state == "Established" for p in rows.values()) else None


def established(d: Daemon, node: int) -> PeerInfo | None:
    row = peers_of(d).get(addr(node))
    return row if row is not None and row.state == "Established" else None


def session_events(d: Daemon, since: int, peer: int) -> list[Record]:
    """What ``d`` logged since ``since`` that a disturbed session to ``peer`` would log."""
    kinds = {"notification_received", "notification_sent", "session_down", "session_up"}
    return [r for r in d.records[since:] if r.get("event") in kinds and r.get("peer") == addr(peer)]


def cease_from(peer: int) -> Callable[[Record], bool]:
    return lambda r: (
        r.get("event") == "notification_received"
        and r.get("code") == ErrorCode.CEASE
        and r.get("peer") == addr(peer)
    )


def up_with(peer: int) -> Callable[[Record], bool]:
    return lambda r: r.get("event") == "session_up" and r.get("peer") == addr(peer)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=10) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/plain")
        text = answer.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


# mascctl in a child process that drops to another uid once Python and mascctl are loaded
# (the interpreter's own files need not be readable by that uid), as tests/e2e/test_maas.py.
_AS_USER = (
    "import os, sys\n"
    "from masc.cli import mascctl\n"
    "uid = int(sys.argv[1])\n"
    "os.setgroups([]); os.setgid(uid); os.setuid(uid)\n"
    "sys.exit(mascctl.main(sys.argv[2:]))\n"
)


def mascctl_as(uid: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _AS_USER, str(uid), *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def stop_all(daemons: Iterable[Daemon]) -> None:
    for d in daemons:
        d.stop()


# --- the site: a TLD and its child ---------------------------------------------------------


@dataclass
class Site:
    workdir: Path
    tld: Daemon
    child: Daemon
    readonly: str
    metrics_url: str
    first_scrape: Samples  # taken before the TLD could have finished a claim


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    workdir = workdir_for("masc-cp-")
    readonly = str(workdir / f"{N_T}.ro.sock")
    port = free_port()
    daemons: list[Daemon] = []
    try:
        tld = Daemon(
            N_T,
            render(
                N_T,
                D_T,
                [Peer(N_C, "child", D_C)],
                workdir,
                extra_local='global_pool = ["239.192.0.0/16"]',
                extra_timers=TIMERS,
                extra_control=f'readonly_socket = "{readonly}"\nreadonly_mode = "0666"',
                extra_sections=(
                    '[allocation]\ninitial_size = 1024\nclaim_lifetime = "10m"\n'
                    '[policy]\nclash_resolution = "manual"\n'
                    f'[metrics]\nlisten = "127.0.0.1:{port}"'
                ),
            ),
            workdir,
        )
        daemons.append(tld)
        tld.wait_for(lambda r: r.get("event") == "started", timeout=15)
        # The first claim needs the claim delay and then a 3 s waiting period (§5.1): this
        # scrape sees the domain before it holds anything.
        url = f"http://127.0.0.1:{port}/metrics"
        first = scrape(url)
        child = Daemon(
            N_C,
            render(
                N_C,
                D_C,
                [Peer(N_T, "parent", D_T)],
                workdir,
                extra_timers=TIMERS,
                extra_sections='[allocation]\ninitial_size = 256\nclaim_lifetime = "10m"',
            ),
            workdir,
        )
        daemons.append(child)
        tld.wait_established(N_C)
        child.wait_established(N_T)
        yield Site(workdir, tld, child, readonly, url, first)
    finally:
        stop_all(daemons)
        shutil.rmtree(workdir, ignore_errors=True)


def wait_child_space(site: Site) -> tuple[list[PrefixInfo], list[PrefixInfo]]:
    """The TLD's managed space and the child's, once the child holds some."""
    child_rows = until(lambda: prefixes_of(site.child), "the child to hold a prefix", 40)
    tld_rows = prefixes_of(site.tld)
    assert tld_rows
    return tld_rows, child_rows


def test_show_verbs_answer_with_their_models(site: Site) -> None:
    t = site.tld
    _, child_rows = wait_child_space(site)

    summary = ctl(t, SummaryResult, "show", "summary")
    assert (summary.domain_id, summary.node_id) == (D_T, addr(N_T))
    assert summary.top_level_domain and summary.clash_resolution == "manual"
    assert summary.config_path == str(t.config)
    assert summary.peers_configured == 1
    assert summary.prefixes_managed >= 1 and summary.addresses_managed >= 1024

    # The JSON contract of `show peers`.
    until(lambda: established(t, N_C), "the child session", 20)
    raw = json.loads(t.mascctl("--json", "show", "peers").stdout)
    (row,) = raw["peers"]
    assert (row["address"], row["relation"], row["domain_id"]) == (addr(N_C), "child", D_C)
    assert row["state"] == "Established"

    detail = ctl(t, PeerDetailResult, "show", "peer", addr(N_C), "--detail")
    (peer,) = detail.peers
    assert peer.session_key == addr(N_C) and peer.hold_time == 3 and peer.remote_hold_time == 3
    assert peer.connect_retry == 1.0 and peer.remote_node_id == addr(N_C)
    assert ctl(t, PeerDetailResult, "show", "peer", addr(N_C)).peers[0].address == addr(N_C)
    human = t.mascctl("show", "peer", addr(N_C), "--detail")
    assert human.returncode == 0 and "session key" in human.stdout
    assert ctl_error(t, "show", "peer", addr(99)).code == "not_found"

    # The JSON contract of `show prefixes`, and the claim history of a claimed prefix.
    raw = json.loads(t.mascctl("--json", "show", "prefixes").stdout)
    managed = [p for p in raw["prefixes"] if p["kind"] == "managed"]
    assert managed
    for p in managed:
        assert IPv4Network(p["prefix"]).subnet_of(IPv4Network("239.192.0.0/16"))
        assert isinstance(p["expires"], int) and time.time() < p["expires"] <= time.time() + 605
        assert p["state"] == "active"
    # Its initial claim, or the expansion that replaced it (§5.3): sent, then allocated.
    events = [h["event"] for h in managed[0]["history"]]
    assert "claim_sent" in events and "allocated" in events
    assert events.index("allocated") < events.index("claim_sent")  # newest first
    prefixes = ctl(t, PrefixesResult, "show", "prefixes")
    assert prefixes.non_leaf  # its child claims from it (§12.2)
    children = [p for p in prefixes.prefixes if p.kind == "child"]
    assert {p.prefix for p in children} >= {p.prefix for p in child_rows}
    assert all(p.domain_id == D_C for p in children)
    bare = ctl(t, PrefixesResult, "show", "prefixes", "--history", "0")
    assert all(p.history == [] for p in bare.prefixes)

    # `show claims` and its filters, on the child's PREFIX_IN_USE in the TLD's cache.
    theirs = child_rows[0].prefix

    def child_claims() -> ClaimsResult | None:
        r = ctl(t, ClaimsResult, "show", "claims", "--type", "PREFIX_IN_USE", "--domain", str(D_C))
        return r if r.foreign else None

    in_use = until(child_claims, "the child's PREFIX_IN_USE in the TLD's claim cache", 20)
    assert all(c.type == "PREFIX_IN_USE" and c.origin_domain == D_C for c in in_use.foreign)
    assert theirs in {c.prefix for c in in_use.foreign}
    everything = ctl(t, ClaimsResult, "show", "claims")
    assert everything.cached >= everything.foreign_total >= len(in_use.foreign)
    near = ctl(t, ClaimsResult, "show", "claims", "--prefix", theirs)
    assert near.foreign and all(
        ip_network(c.prefix).overlaps(ip_network(theirs)) for c in near.foreign
    )
    far = ctl(t, ClaimsResult, "show", "claims", "--prefix", "239.255.0.0/16")
    assert far.foreign == [] and far.foreign_total == 0
    nobody = ctl(t, ClaimsResult, "show", "claims", "--domain", "12345")
    assert nobody.foreign == [] and nobody.foreign_total == 0
    limited = ctl(t, ClaimsResult, "show", "claims", "--limit", "0")
    assert limited.foreign == [] and limited.foreign_total >= 1

    clashes = ctl(t, ClashesResult, "show", "clashes")
    assert clashes.clash_resolution == "manual" and clashes.clashes == []
    assert ctl(t, MaasResult, "show", "maas").maas == []


def test_s5_claim_renew_and_release_a_prefix(site: Site) -> None:
    """§5.1 claim (rounded up to a power of two), §5.2 renewal, §5.4 release."""
    t = site.tld
    claimed = ctl(t, ActionResult, "claim", "--size", "50", "--lifetime", "10m")
    assert claimed.claim is not None and "64" in claimed.message
    assert (claimed.claim.type, claimed.claim.kind, claimed.claim.state) == (
        "NEW_CLAIM",
        "managed",
        "scheduled",
    )
    assert claimed.claim.lifetime == 600

    def small() -> PrefixInfo | None:
        rows = [p for p in prefixes_of(t) if ip_network(p.prefix).num_addresses == 64]
        return rows[0] if rows else None

    prefix = until(small, "the claimed /26 to be allocated", 30)
    assert [h.event for h in prefix.history][:2] == ["allocated", "claim_sent"]
    assert prefix.renewed_at is None and prefix.state == "active"
    assert time.time() + 500 < prefix.expires <= time.time() + 605

    renewed = ctl(t, ActionResult, "renew", prefix.prefix)
    assert renewed.prefix == prefix.prefix and "CLAIM_TO_EXPAND" in renewed.message

    def renewal() -> PrefixInfo | None:
        row = next((p for p in prefixes_of(t) if p.prefix == prefix.prefix), None)
        return row if row is not None and row.renewed_at is not None else None

    again = until(renewal, "the renewal to finish", 30)
    assert [h.event for h in again.history].count("allocated") == 2
    assert again.expires >= prefix.expires

    released = ctl(t, ActionResult, "release", prefix.prefix)
    assert released.prefix == prefix.prefix and "WITHDRAW" in released.message
    assert prefix.prefix not in {p.prefix for p in prefixes_of(t)}
    assert ctl_error(t, "release", prefix.prefix).code == "refused"
    assert ctl_error(t, "renew", "239.255.0.0/24").code == "refused"
    # §12.2: only a non-leaf domain claims local space; the child is a leaf.
    local = ctl_error(site.child, "claim", "--size", "16", "--local")
    assert local.code == "refused" and "non-leaf" in local.message
    # A claim that could not be placed now is refused at once, with the reason, rather
    # than reported "scheduled" and dropped after the delay: the pool is a /16.
    huge = ctl_error(t, "claim", "--size", "131072")
    assert huge.code == "refused" and "no free block of 131072 addresses" in huge.message


def test_s12_4_clash_verb_refuses_an_unknown_clash(site: Site) -> None:
    for action in ("accept", "withdraw"):
        error = ctl_error(site.tld, "clash", action, "999")
        assert error.code == "refused" and "999" in error.message


def test_s8_7_peer_down_up_and_reset(site: Site) -> None:
    t, c = site.tld, site.child
    before = until(lambda: established(t, N_C), "the child session", 20)

    mark_c = c.mark()
    down = ctl(t, ActionResult, "peer", addr(N_C), "down", "--reason", "maintenance")
    assert down.sessions == [addr(N_C)]
    c.wait_for(cease_from(N_T), since=mark_c)  # §8.7 Cease, received by the peer

    def stopped() -> PeerInfo | None:
        row = peers_of(t)[addr(N_C)]
        return row if row.state != "Established" and row.admin_down else None

    assert until(stopped, "the session to leave Established", 15).established_for is None

    mark_t = t.mark()
    up = ctl(t, ActionResult, "peer", addr(N_C), "up")
    assert up.sessions == [addr(N_C)]
    t.wait_for(up_with(N_C), since=mark_t)
    back = until(lambda: established(t, N_C), "the session to come back", 20)
    assert not back.admin_down and back.flaps > before.flaps

    mark_t, mark_c = t.mark(), c.mark()
    reset = ctl(t, ActionResult, "peer", addr(N_C), "reset", "--reason", "e2e reset")
    assert reset.sessions == [addr(N_C)]
    c.wait_for(cease_from(N_T), since=mark_c)
    t.wait_for(up_with(N_C), since=mark_t)
    after = until(lambda: established(t, N_C), "the new session", 20)
    # A new session: it left Established and a new OPEN came.  (Both may count twice: when
    # both sides redial at once, §8.8 may close a connection one side already saw
    # Established, exactly as in BGP, RFC 4271 §6.8.)
    assert after.flaps > back.flaps
    assert after.messages_in["OPEN"] > back.messages_in["OPEN"]
    assert not after.admin_down

    assert ctl_error(t, "peer", addr(99), "down").code == "not_found"


async def test_maas_forget_revokes_the_grants_of_a_gone_maas(site: Site) -> None:
    c = site.child
    wait_child_space(site)
    path = str(site.workdir / f"{N_C}.maas.sock")
    async with open_maas_client(path) as client:
        await client.register("madcap-cp")
        await client.request(32)
        with trio.fail_after(20):
            while not (grants := await client.space()):
                await trio.sleep(0.1)
        error = ctl_error(c, "maas", "forget", "madcap-cp")
        assert error.code == "refused" and "connected" in error.message
    held = {str(g.prefix) for g in grants}

    def gone() -> MaasResult | None:
        r = ctl(c, MaasResult, "show", "maas")
        (row,) = [m for m in r.maas if m.name == "madcap-cp"]
        return r if not row.connected else None

    listed = until(gone, "the MAAS to be seen disconnected", 15)
    (row,) = listed.maas
    assert {g.prefix for g in row.grants} == held

    forgot = ctl(c, ActionResult, "maas", "forget", "madcap-cp")
    assert f"{len(held)} grant(s) revoked" in forgot.message
    assert ctl(c, MaasResult, "show", "maas").maas == []
    assert ctl(c, SummaryResult, "show", "summary").maas_registered == 0
    assert all(p.maas == [] for p in prefixes_of(c))
    assert ctl_error(c, "maas", "forget", "madcap-cp").code == "not_found"


def test_readonly_socket_shows_but_refuses_actions(site: Site) -> None:
    t = site.tld
    assert os.stat(t.control).st_mode & 0o777 == 0o600
    assert os.stat(site.readonly).st_mode & 0o777 == 0o666
    summary = t.mascctl("--socket", site.readonly, "--json", "show", "summary")
    assert summary.returncode == 0, summary.stderr
    assert SummaryResult.model_validate_json(summary.stdout).domain_id == D_T
    mark_c = site.child.mark()
    for action in (("peer", addr(N_C), "down"), ("reload",), ("claim", "--size", "16")):
        error = ctl_error(t, *action, socket_path=site.readonly)
        assert error.code == "read_only" and str(t.control) in error.message
    assert until(lambda: established(t, N_C), "the session, untouched", 10)
    assert session_events(site.child, mark_c, N_T) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a client as uid 65534")
def test_another_uid_is_denied_the_full_socket_but_may_read_the_readonly_one(
    site: Site,
) -> None:
    denied = mascctl_as(NOBODY, "--socket", site.tld.control, "show", "summary")
    assert denied.returncode == 3, denied.stderr
    assert "permission denied" in denied.stderr and "0600" in denied.stderr
    shown = mascctl_as(NOBODY, "--socket", site.readonly, "--json", "show", "summary")
    assert shown.returncode == 0, shown.stderr
    assert SummaryResult.model_validate_json(shown.stdout).node_id == addr(N_T)
    refused = mascctl_as(NOBODY, "--socket", site.readonly, "--json", "peer", addr(N_C), "down")
    assert refused.returncode == 1, refused.stderr
    assert ErrorInfo.model_validate_json(refused.stdout).code == "read_only"
    assert until(lambda: established(site.tld, N_C), "the session, untouched", 10)


def test_metrics_follow_the_daemons_state(site: Site) -> None:
    t = site.tld
    first = site.first_scrape
    assert sample(first, "masc_prefixes", kind="managed", state="active") == 0
    assert sample(first, "masc_addresses", kind="managed") == 0
    assert sample(first, "masc_peers", state="Established") == 0  # the child was not running
    sent_before = sample(first, "masc_claims_sent_total", type="NEW_CLAIM")
    wait_child_space(site)

    def agreeing() -> tuple[Samples, SummaryResult] | None:
        samples = scrape(site.metrics_url)
        summary = ctl(t, SummaryResult, "show", "summary")
        same = (
            sample(samples, "masc_peers", state="Established") == summary.peers_established
            and sample(samples, "masc_addresses", kind="managed") == summary.addresses_managed
            and sample(samples, "masc_prefixes", kind="managed", state="active")
            == summary.prefixes_managed
        )
        return (samples, summary) if same else None

    samples, summary = until(agreeing, "metrics to agree with show summary", 20)
    assert summary.peers_established == 1
    assert sample(samples, "masc_peers", state="Idle") == 0
    assert sample(samples, "masc_peer_up", peer=addr(N_C), relation="child", domain_id=str(D_C))
    assert sample(samples, "masc_prefixes", kind="managed", state="active") >= 1
    assert sample(samples, "masc_addresses", kind="managed") >= 1024
    assert sample(samples, "masc_claims_sent_total", type="NEW_CLAIM") > sent_before
    assert sample(samples, "masc_prefixes_allocated_total") >= 1
    assert sample(samples, "masc_child_prefixes") >= 1
    assert sample(samples, "masc_non_leaf") == 1
    info = sample(
        samples, "masc_info", version=summary.version, domain_id=str(D_T), node_id=addr(N_T)
    )
    assert info == 1
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(site.metrics_url.replace("/metrics", "/nope"), timeout=10)
    assert missing.value.code == 404


# --- reload: A with siblings B and C, child D; E to be added ------------------------------


@dataclass
class Ring:
    workdir: Path
    daemons: dict[int, Daemon]

    def __getitem__(self, node: int) -> Daemon:
        return self.daemons[node]


def ring_peers(*, d_hold: int | None = None, with_e: bool = False) -> list[Peer]:
    peers = [
        Peer(N_B, "sibling", D_B),
        Peer(N_RC, "sibling", D_RC),
        Peer(N_D, "child", D_D, hold_time=d_hold),
    ]
    return [*peers, Peer(N_E, "child", D_E)] if with_e else peers


def ring_config(ring: Ring | Path, node: int, peers: list[Peer], **kw: str) -> str:
    workdir = ring.workdir if isinstance(ring, Ring) else ring
    domain = {N_A: D_A, N_B: D_B, N_RC: D_RC, N_D: D_D, N_E: D_E}[node]
    return render(
        node,
        domain,
        peers,
        workdir,
        hold_time=RING_HOLD,
        extra_sections="[allocation]\ninitial_size = 0",  # quiet: no claims, only sessions
        **kw,
    )


@pytest.fixture(scope="module")
def ring() -> Iterator[Ring]:
    workdir = workdir_for("masc-rl-")
    configs = {
        N_A: ring_peers(),
        N_B: [Peer(N_A, "sibling", D_A)],
        N_RC: [Peer(N_A, "sibling", D_A)],
        N_D: [Peer(N_A, "parent", D_A)],
        N_E: [Peer(N_A, "parent", D_A)],  # A does not know E yet
    }
    daemons: dict[int, Daemon] = {}
    try:
        for node, peers in configs.items():
            daemons[node] = Daemon(node, ring_config(workdir, node, peers), workdir)
        for node in (N_B, N_RC, N_D):
            daemons[N_A].wait_established(node)
            daemons[node].wait_established(N_A)
        yield Ring(workdir, daemons)
    finally:
        stop_all(list(daemons.values()))
        shutil.rmtree(workdir, ignore_errors=True)


def plan_of(result: ReloadResult) -> dict[str, tuple[str, list[str]]]:
    return {p.address: (p.action, p.changed) for p in result.peers}


def test_reload_resets_only_the_session_whose_open_changed(ring: Ring) -> None:
    a = ring[N_A]
    rows = until(lambda: all_established(a), "A's three sessions", 20)
    assert set(rows) == {addr(N_B), addr(N_RC), addr(N_D)}
    reloads = ctl(a, SummaryResult, "show", "summary").reloads
    marks = {node: ring[node].mark() for node in (N_A, N_B, N_RC, N_D, N_E)}

    # D's hold time changes (it is in the OPEN, §7.2: a reset), E is added.
    a.config.write_text(ring_config(ring, N_A, ring_peers(d_hold=5, with_e=True)))
    dry = ctl(a, ReloadResult, "reload", "--dry-run")
    expected = {
        addr(N_B): ("no-op", []),
        addr(N_RC): ("no-op", []),
        addr(N_D): ("reset", ["hold_time"]),
        addr(N_E): ("start", []),
    }
    assert not dry.applied and plan_of(dry) == expected
    assert dry.config_path == str(a.config) and dry.settings == [] and dry.restart_required == []
    human = a.mascctl("reload", "--dry-run")
    assert human.returncode == 0 and "dry run: nothing changed" in human.stdout
    assert ctl(a, SummaryResult, "show", "summary").reloads == reloads

    applied = ctl(a, ReloadResult, "reload")
    assert applied.applied and plan_of(applied) == expected
    ring[N_D].wait_for(cease_from(N_A), since=marks[N_D])
    up = a.wait_for(up_with(N_D), since=marks[N_A])
    assert up["hold_time"] == 5  # min(5, D's 9), negotiated in the new session
    a.wait_for(up_with(N_E), since=marks[N_A])
    ring[N_E].wait_for(up_with(N_A), since=marks[N_E])

    after = until(lambda: all_established(a), "A's four sessions", 20)
    assert set(after) == {addr(N_B), addr(N_RC), addr(N_D), addr(N_E)}
    for node in (N_B, N_RC):  # the same TCP connection: no Cease, no new OPEN
        assert session_events(ring[node], marks[node], N_A) == [], node
        assert session_events(a, marks[N_A], node) == [], node
        was, now = rows[addr(node)], after[addr(node)]
        assert now.messages_in["OPEN"] == was.messages_in["OPEN"]
        assert now.flaps == was.flaps
        assert was.established_for is not None and now.established_for is not None
        assert now.established_for > was.established_for
    d = after[addr(N_D)]
    assert (d.hold_time, d.configured_hold_time) == (5, 5)
    # A new session (counted twice if a §8.8 collision closed one side's Established one).
    assert d.messages_in["OPEN"] > rows[addr(N_D)].messages_in["OPEN"]
    assert d.flaps > rows[addr(N_D)].flaps
    summary = ctl(a, SummaryResult, "show", "summary")
    assert summary.reloads == reloads + 1 and summary.last_reload is not None

    # SIGHUP: E removed (stop: Cease, §8.7), a live setting changed.
    marks = {node: ring[node].mark() for node in (N_A, N_B, N_RC, N_D, N_E)}
    a.config.write_text(
        ring_config(ring, N_A, ring_peers(d_hold=5), extra_timers='waiting_period = "1h"')
    )
    dry = ctl(a, ReloadResult, "reload", "--dry-run")
    assert plan_of(dry) == {
        addr(N_B): ("no-op", []),
        addr(N_RC): ("no-op", []),
        addr(N_D): ("no-op", []),
        addr(N_E): ("stop", []),
    }
    ((key, effect),) = [(s.key, s.effect) for s in dry.settings]
    assert (key, effect) == ("timers.waiting_period", "live")
    a.signal(signal.SIGHUP)
    a.wait_for(lambda r: r.get("event") == "reloaded", since=marks[N_A])
    ring[N_E].wait_for(cease_from(N_A), since=marks[N_E])
    assert set(peers_of(a)) == {addr(N_B), addr(N_RC), addr(N_D)}
    for node in (N_B, N_RC, N_D):
        assert session_events(ring[node], marks[node], N_A) == [], node
    assert ctl(a, SummaryResult, "show", "summary").reloads == reloads + 2


def test_reload_refuses_a_broken_or_restart_only_file_and_changes_nothing(ring: Ring) -> None:
    a = ring[N_A]
    good = a.config.read_text()
    rows = until(lambda: all_established(a), "A's sessions", 20)
    summary = ctl(a, SummaryResult, "show", "summary")
    marks = {node: ring[node].mark() for node in rows_nodes(rows)} | {N_A: a.mark()}
    timers = f"[timers]\nhold_time = {RING_HOLD}\n"
    assert timers in good
    broken = {
        "timers.hold_time": good.replace(timers, "[timers]\nhold_time = 1\n"),  # §7.2
        "timers.holdtime": good.replace(timers, timers + "holdtime = 5\n"),
    }
    try:
        for key, text in broken.items():
            a.config.write_text(text)
            for flags in ((), ("--dry-run",)):
                error = ctl_error(a, "reload", *flags)
                assert error.code == "bad_config", error
                assert key in error.message and str(a.config) in error.message
        socket_line = f'socket = "{ring.workdir}/{N_A}.control.sock"'
        restart_only = {
            "control.socket": good.replace(socket_line, f'socket = "{ring.workdir}/x.sock"'),
            "local.port": good.replace(f"port = {PORT}\n", f"port = {PORT + 1}\n", 1),
        }
        for key, text in restart_only.items():
            a.config.write_text(text)
            error = ctl_error(a, "reload")
            assert error.code == "restart_required" and key in error.message, error

        # SIGHUP with a broken file: logged, and the daemon carries on.
        a.config.write_text(broken["timers.hold_time"])
        mark = a.mark()
        a.signal(signal.SIGHUP)
        failed = a.wait_for(lambda r: r.get("event") == "reload_failed", since=mark)
        assert "timers.hold_time" in failed["message"]
        assert a.proc is not None and a.proc.poll() is None
    finally:
        a.config.write_text(good)

    after = ctl(a, SummaryResult, "show", "summary")
    assert (after.reloads, after.last_reload) == (summary.reloads, summary.last_reload)
    now = peers_of(a)
    assert set(now) == set(rows)
    for address, was in rows.items():
        assert now[address].state == "Established"
        assert now[address].messages_in["OPEN"] == was.messages_in["OPEN"], address
    for node, mark in marks.items():
        if node != N_A:
            assert session_events(ring[node], mark, N_A) == [], node
    # What runs is still exactly the good file.
    dry = ctl(a, ReloadResult, "reload", "--dry-run")
    assert {p.action for p in dry.peers} == {"no-op"} and dry.settings == []


def test_reload_dry_run_lists_the_keys_that_need_a_restart(ring: Ring) -> None:
    a = ring[N_A]
    good = a.config.read_text()
    socket_line = f'socket = "{ring.workdir}/{N_A}.control.sock"'
    try:
        a.config.write_text(good.replace(socket_line, f'socket = "{ring.workdir}/x.sock"'))
        out = a.mascctl("--json", "reload", "--dry-run")
    finally:
        a.config.write_text(good)
    assert out.returncode == 0, out.stderr
    plan = ReloadResult.model_validate_json(out.stdout)
    assert not plan.applied and plan.restart_required == ["control.socket"]
    assert [(c.key, c.effect) for c in plan.settings] == [("control.socket", "restart")]


def rows_nodes(rows: dict[str, PeerInfo]) -> list[int]:
    return [int(address.rsplit(".", 1)[1]) for address in rows]


# --- §12.4: a real clash, resolved by the operator ------------------------------------------


def test_s12_4_manual_clash_is_withdrawn_by_the_operator() -> None:
    """Two TLDs claim the same /24 while they cannot hear each other; a reload then peers
    them.  The loser (§5.1.1: the later timestamp, or the larger node id) records a
    pending clash, which `mascctl clash withdraw` resolves with a WITHDRAW."""
    workdir = workdir_for("masc-cl-")
    nodes = {N_P: D_P, N_Q: D_Q}
    other = {N_P: N_Q, N_Q: N_P}

    def config(node: int, peers: list[Peer]) -> str:
        return render(
            node,
            nodes[node],
            peers,
            workdir,
            extra_local=f'global_pool = ["{CLASH_POOL}"]',
            extra_timers=TIMERS,
            extra_sections=(
                '[allocation]\ninitial_size = 256\nclaim_lifetime = "10m"\n'
                '[policy]\nclash_resolution = "manual"'
            ),
        )

    daemons = {node: Daemon(node, config(node, []), workdir) for node in nodes}
    try:
        for d in daemons.values():
            d.wait_for(lambda r: r.get("event") == "started", timeout=15)
            held = until(partial(prefixes_of, d), f"daemon {d.node} to hold the pool", 30)
            assert [p.prefix for p in held] == [CLASH_POOL]
        marks = {node: d.mark() for node, d in daemons.items()}
        for node, d in daemons.items():
            d.config.write_text(config(node, [Peer(other[node], "sibling", nodes[other[node]])]))
            result = ctl(d, ReloadResult, "reload")
            assert plan_of(result) == {addr(other[node]): ("start", [])}
        for node, d in daemons.items():
            d.wait_for(up_with(other[node]), since=marks[node])

        def pending() -> tuple[int, ClashesResult] | None:
            for node, d in daemons.items():
                r = ctl(d, ClashesResult, "show", "clashes")
                if any(c.state == "pending" for c in r.clashes):
                    return node, r
            return None

        loser, clashes = until(pending, "a pending clash on one side", 20)
        winner = other[loser]
        (clash,) = clashes.clashes
        assert (clash.local, clash.winner) == (CLASH_POOL, CLASH_POOL)
        assert clash.winner_domain_id == nodes[winner]
        d = daemons[loser]
        assert ctl(d, SummaryResult, "show", "summary").clashes_pending == 1
        assert [c.clash_id for c in ctl(d, ClaimsResult, "show", "claims").clashes] == [
            clash.clash_id
        ]
        assert ctl(daemons[winner], ClashesResult, "show", "clashes").clashes == []

        done = ctl(d, ActionResult, "clash", "withdraw", str(clash.clash_id))
        assert done.prefix == CLASH_POOL and "WITHDRAW" in done.message
        (resolved,) = ctl(d, ClashesResult, "show", "clashes").clashes
        assert resolved.state == "withdrawn"
        assert ctl(d, SummaryResult, "show", "summary").clashes_pending == 0
        # Still held until it lapses, but none of it usable nor injected (§11.7.3).
        (row,) = [p for p in prefixes_of(d) if p.prefix == CLASH_POOL]
        assert row.usable == [] and not row.in_grib
        assert [h.event for h in row.history][:2] == ["withdrawn", "clash"]
        again = ctl_error(d, "clash", "accept", str(clash.clash_id))
        assert again.code == "refused"
        assert [p.prefix for p in prefixes_of(daemons[winner])] == [CLASH_POOL]
    finally:
        stop_all(list(daemons.values()))
        shutil.rmtree(workdir, ignore_errors=True)
