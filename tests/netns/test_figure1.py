"""RFC 2909 Figure 1 across network namespaces, with real link faults (issue 8, part 2).

Twelve ``masc run`` processes, one per MASC node of Figure 1 (§4: top-level domains T1, T2;
regionals P3, P4; customers C5, C6, C7; internal peers P3a/P3b, P4a/P4b, C5a/C5b/C5c,
C6a/C6b), each in a network namespace of its own with its own address, every session of
the figure over a veth link of its own (tests/netns_kit.fabric).  The configurations come
from :func:`masc.sim.topology.figure1`, and the simulator's safety rules judge what the
daemons hold, read over their control sockets (the JSON ``mascctl --json`` prints).

* the two TLDs are partitioned (link down) and both claim the whole pool, each waiting
  out its waiting period alone; healed, the §12.4 clash leaves the range to exactly one;
* a child is cut from its parent (every packet dropped, the link left up): both hold
  timers expire, the child's claims stop, the automatic restart backs off (§10), and the
  child's claims reach the parent again once the link is back;
* a regional node is killed (-9) and started again: its prefixes come back from its store
  (§13), its sessions come back, and nobody's space moved.

Timers are tiny (hold time 3 s, waiting period 2 s); every wait is bounded.  The daemons
are stopped and the namespaces deleted whatever happens.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Network
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from masc.protocol.constants import Role
from masc.protocol.errors import ErrorCode
from masc.protocol.wire.messages import Prefix
from masc.sim.safety import Violation, check_space_safety
from masc.sim.topology import FIGURE1_NODES, figure1
from tests.e2e.daemons import Daemon, Peer, Record, render, until
from tests.netns_kit import Fabric, fabric

pytestmark = pytest.mark.processes

TOPOLOGY = figure1()
# Node n of Figure 1 (T1a = 11, ..., C7a = 71, as in `masc demo`) is 10.98.0.n in its
# namespace; the numbers name the daemons' files too.
NUMBER = {name: int(a.rsplit(".", 1)[1]) for name, a in FIGURE1_NODES.items()}
TIMERS = 'waiting_period = "2s"\ninitiate_claim_delay = "0.5s"\nclock_skew_grace = "2s"'
RELATION = {
    Role.PARENT: "parent",
    Role.CHILD: "child",
    Role.SIBLING: "sibling",
    Role.INTERNAL: "internal",
}
POOL = ("239.192.0.0/21", "239.192.8.0/22")
# What a top-level, regional and customer domain claims first.
SIZES = (1024, 256, 64)
# SessionConfig.connect_retry_jitter: ConnectRetry and restart delays are drawn from
# [1 - JITTER, 1] times their configured value.
JITTER = 0.25
_RESTART = re.compile(r"automatic restart in ([0-9.]+)s")


def address(node: int) -> str:
    return f"10.98.0.{node}"


@dataclass
class World:
    fabric: Fabric
    daemons: dict[str, Daemon]

    def __getitem__(self, node: str) -> Daemon:
        return self.daemons[node]


def _config(
    node: str,
    workdir: Path,
    *,
    pool: tuple[str, ...],
    sizes: tuple[int, int, int],
    backoff: tuple[str, str],
) -> str:
    topo = TOPOLOGY
    domain = topo.domain_of(node)
    peers = [
        Peer(
            NUMBER[other],
            RELATION[role],
            topo.domain_of(other).domain_id,
            parent_domain_id=topo.session_parent_id(link),
        )
        for _, link in topo.links_of(node)
        for me, other, role in link.ends()
        if me == node
    ]
    if domain.is_tld:
        local = "global_pool = [" + ", ".join(f'"{p}"' for p in pool) + "]"
    else:  # P3a, P4b and C5c have no session to a parent of their own
        local = f"parent_domain_ids = {[topo.domains[p].domain_id for p in domain.parents]}"
    size = sizes[min(topo.levels()[domain.name], 2)]
    return render(
        NUMBER[node],
        domain.domain_id,
        peers,
        workdir,
        extra_local=local,
        extra_timers=TIMERS,
        extra_sections=f'[allocation]\ninitial_size = {size}\nclaim_lifetime = "10m"',
        address=address,
        restart_backoff=backoff,
    )


@contextmanager
def _figure1(
    workdir: Path,
    *,
    pool: tuple[str, ...] = POOL,
    sizes: tuple[int, int, int] = SIZES,
    backoff: tuple[str, str] = ("1s", "2s"),
) -> Iterator[World]:
    daemons: dict[str, Daemon] = {}
    with fabric("f1") as net:
        try:
            for node in TOPOLOGY.nodes:
                net.add_node(node, address(NUMBER[node]))
            for link in TOPOLOGY.links:
                net.connect(link.a, link.b)
            for node in TOPOLOGY.nodes:
                text = _config(node, workdir, pool=pool, sizes=sizes, backoff=backoff)
                daemons[node] = Daemon(
                    NUMBER[node], text, workdir, netns=net.namespaces[node], address=address
                )
            for d in daemons.values():
                d.wait_for(is_event("started"), timeout=30)
            yield World(net, daemons)
        finally:
            # The daemons first, all at once; the namespaces go with the fabric.
            for d in daemons.values():
                if _running(d):
                    d.signal(signal.SIGTERM)
            for d in daemons.values():
                d.stop()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Callable[..., World]]:
    """Builds the Figure 1 world a test asks for (keywords of ``_figure1``)."""
    with ExitStack() as stack:

        def make(**kw: Any) -> World:
            return stack.enter_context(_figure1(tmp_path, **kw))

        yield make


# --- what the daemons say ------------------------------------------------------------------


def _running(d: Daemon) -> bool:
    return d.proc is not None and d.proc.poll() is None


def space(d: Daemon) -> tuple[list[Prefix], list[Prefix]]:
    """The node's managed and locally-allocated space (§4.1) as its engine's
    ``managed_space`` / ``local_space`` give them: the usable part of what it holds."""
    view = d.ask("show prefixes")

    def usable(kind: str) -> list[Prefix]:
        rows = [r for r in view["prefixes"] if r["kind"] == kind]
        return [IPv4Network(u) for r in rows for u in r["usable"]]

    managed = usable("managed")
    return managed, (usable("local") if view["non_leaf"] else managed)


def managed(d: Daemon) -> set[str]:
    return {str(p) for p in space(d)[0]}


def prefix_rows(d: Daemon) -> set[tuple[str, str]]:
    """(kind, prefix) of every row of ``show prefixes``: its own and its children's."""
    return {(r["kind"], r["prefix"]) for r in d.ask("show prefixes")["prefixes"]}


def holdings(w: World) -> dict[str, tuple[set[str], set[str]]]:
    """Every node's managed and local space, as sets of text."""
    return {
        n: ({str(p) for p in m}, {str(p) for p in loc})
        for n, (m, loc) in ((n, space(d)) for n, d in w.daemons.items())
    }


def safety(w: World) -> list[Violation]:
    """The simulator's safety rules (masc.sim.safety) over what every daemon holds now."""
    spaces = {node: space(d) for node, d in w.daemons.items() if _running(d)}
    return check_space_safety(
        TOPOLOGY, {n: s[0] for n, s in spaces.items()}, {n: s[1] for n, s in spaces.items()}
    )


def peers(d: Daemon) -> dict[str, dict[str, Any]]:
    return {p["address"]: p for p in d.ask("show peers")["peers"]}


def peer_row(d: Daemon, peer: str) -> dict[str, Any]:
    return peers(d)[address(NUMBER[peer])]


def all_established(w: World) -> bool:
    return all(
        {p["state"] for p in peers(d).values()} == {"Established"} for d in w.daemons.values()
    )


def converged(w: World) -> bool:
    """Every session Established, every domain holding space, no safety violation."""
    return all_established(w) and all(managed(d) for d in w.daemons.values()) and not safety(w)


def quiet(w: World, seconds: float) -> bool:
    """No daemon has claimed, allocated or lost anything for ``seconds``."""
    changes = {"claim_sent", "prefix_allocated", "prefix_gone", "range_withdrawn"}
    since = time.time() - seconds
    return not any(
        r.get("event") in changes and r.get("ts", 0) > since
        for d in w.daemons.values()
        for r in d.records_since(0)
    )


def is_event(event: str, peer: str | None = None, **fields: object) -> Callable[[Record], bool]:
    def match(r: Record) -> bool:
        if r.get("event") != event:
            return False
        if peer is not None and r.get("peer") != address(NUMBER[peer]):
            return False
        return all(r.get(k) == v for k, v in fields.items())

    return match


def matching(
    d: Daemon, predicate: Callable[[Record], bool], count: int, since: int, timeout: float = 15
) -> list[Record]:
    """The first ``count`` records from ``since`` on that match, once there are as many."""
    deadline = time.monotonic() + timeout
    while True:
        found = [r for r in d.records_since(since) if predicate(r)]
        if len(found) >= count:
            return found[:count]
        if time.monotonic() > deadline:
            raise AssertionError(f"daemon {d.node}: {len(found)} of {count} records: {found}")
        time.sleep(0.1)


def hold_timer_expired(d: Daemon, peer: str, since: int) -> float:
    """Wait for ``d``'s hold timer for ``peer`` to expire (§8.4: the NOTIFICATION, the
    session down for it); the automatic-restart delay it then chose (§10 Idle)."""
    note = d.wait_for(
        is_event("notification_sent", peer, code=ErrorCode.HOLD_TIMER_EXPIRED), since=since
    )
    assert note["open_bit"] is False
    down = d.wait_for(is_event("session_down", peer), since=since)
    assert "HOLD_TIMER_EXPIRED" in down["message"], down
    idle = d.wait_for(
        lambda r: is_event("state", peer, new="Idle")(r) and "HOLD_TIMER" in r["reason"],
        since=since,
    )
    found = _RESTART.search(idle["reason"])
    assert found, idle
    return float(found.group(1))


# --- scenarios ----------------------------------------------------------------------------


def test_s12_4_tlds_partitioned_in_their_waiting_period_clash_on_heal_and_one_yields(
    world: Callable[..., World],
) -> None:
    # One /22 of pool and TLDs that claim only when told to: both will want all of it.
    pool = "239.192.0.0/22"
    w = world(pool=(pool,), sizes=(0, 256, 64))
    t1, t2 = w["T1a"], w["T2a"]
    until(what="all sessions Established", check=lambda: all_established(w), timeout=40)
    assert managed(t1) == managed(t2) == set()

    marks = {d: d.mark() for d in (t1, t2)}
    w.fabric.down("T1a", "T2a")
    hold_timer_expired(t1, "T2a", marks[t1])
    hold_timer_expired(t2, "T1a", marks[t2])
    # Partitioned: each claims the pool, and each claim's waiting period runs out unheard.
    for d in (t1, t2):
        d.ask("claim", size=1024)
    until(
        what="both TLDs allocated", check=lambda: managed(t1) == managed(t2) == {pool}, timeout=15
    )
    # Each side's subtree claims from its TLD meanwhile (C5 has a parent on each side).
    until(
        what="P3 and P4 allocated",
        check=lambda: managed(w["P3a"]) and managed(w["P4a"]),
        timeout=40,
    )
    overlaps = [v for v in safety(w) if v.rule == "overlap"]
    assert any("T1" in v.message and "T2" in v.message for v in overlaps), overlaps

    marks = {d: d.mark() for d in (t1, t2)}
    w.fabric.up("T1a", "T2a")
    t1.wait_established(NUMBER["T2a"], since=marks[t1], timeout=15)
    t2.wait_established(NUMBER["T1a"], since=marks[t2], timeout=15)

    def one_holder() -> tuple[Daemon, Daemon] | None:
        holders = [d for d in (t1, t2) if pool in managed(d)]
        if len(holders) != 1:
            return None
        return holders[0], t2 if holders[0] is t1 else t1

    winner, loser = until(what="exactly one TLD keeps the pool", check=one_holder, timeout=20)
    winner_domain = TOPOLOGY.domain_of("T1a" if winner is t1 else "T2a").domain_id
    loser.wait_for(is_event("clash", prefix=pool), since=marks[loser], timeout=5)
    (clash,) = loser.ask("show clashes")["clashes"]
    assert (clash["local"], clash["winner"], clash["winner_domain_id"], clash["state"]) == (
        pool,
        pool,
        winner_domain,
        "withdrawn",
    )
    assert winner.ask("show clashes")["clashes"] == []
    until(what="safe once healed", check=lambda: safety(w) == [], timeout=30)
    # And it stays so: nothing the loser's side does next takes the range back.
    time.sleep(4)
    assert safety(w) == []
    assert managed(winner) == {pool} and managed(loser) == set()


def test_s10_child_cut_from_its_parent_hold_timers_back_off_and_claims_resume(
    world: Callable[..., World],
) -> None:
    # A restart back-off longer than the hold time: a session that fails within it after
    # coming up counts as a consecutive failure and doubles the delay (§10 Idle).
    w = world(backoff=("4s", "16s"))
    until(what="converged", check=lambda: converged(w), timeout=60)
    child, parent = w["C7a"], w["P4b"]  # C7's only session to a parent
    child_prefixes = managed(child)

    marks = {child: child.mark(), parent: parent.mark()}
    w.fabric.drop("C7a", "P4b")
    first = {
        child: hold_timer_expired(child, "P4b", marks[child]),
        parent: hold_timer_expired(parent, "C7a", marks[parent]),
    }
    for delay in first.values():
        assert 4 * (1 - JITTER) - 0.01 <= delay <= 4
    # Cut: the child may not claim (§5.1: only from a parent it has a session with).
    sent = peer_row(child, "P4b")["messages_out"]["UPDATE"]
    cut = {child: child.mark(), parent: parent.mark()}
    refused = child.ask_error("claim", size=64)  # at once, with the reason
    assert refused["code"] == "refused" and "no parent session" in refused["message"], refused
    # Reconnection attempts go on while cut, one per ConnectRetry, not in a tight loop.
    dials = [r["ts"] for r in matching(child, is_event("connect_failed", "P4b"), 3, cut[child])]
    assert all(b - a >= 1 - JITTER - 0.05 for a, b in pairwise(dials)), dials
    assert peer_row(child, "P4b")["state"] != "Established"
    assert peer_row(child, "P4b")["messages_out"]["UPDATE"] == sent
    assert not any(is_event("claim_sent")(r) for r in child.records_since(cut[child]))
    assert not any(is_event("update_received", "C7a")(r) for r in parent.records_since(cut[parent]))
    assert managed(child) == child_prefixes

    # Healed, the session comes back; cut again at once, it fails within the back-off's
    # initial delay of coming up, and the next restart waits twice as long.
    healed = {child: child.mark(), parent: parent.mark()}
    w.fabric.undrop("C7a", "P4b")
    child.wait_established(NUMBER["P4b"], since=healed[child], timeout=15)
    parent.wait_established(NUMBER["C7a"], since=healed[parent], timeout=5)
    w.fabric.drop("C7a", "P4b")
    for d, other in ((child, "P4b"), (parent, "C7a")):
        again = hold_timer_expired(d, other, healed[d])
        assert again > first[d], (first[d], again)
        assert 8 * (1 - JITTER) - 0.01 <= again <= 8

    healed = {child: child.mark(), parent: parent.mark()}
    w.fabric.undrop("C7a", "P4b")
    child.wait_established(NUMBER["P4b"], since=healed[child], timeout=15)
    parent.wait_established(NUMBER["C7a"], since=healed[parent], timeout=5)
    # The child's claims flow to the parent again: the state it resends on the new session
    # (§11.8) and a new claim, which the parent then lists as its child's.
    parent.wait_for(is_event("update_received", "C7a"), since=healed[parent], timeout=5)
    mark = child.mark()
    child.ask("claim", size=64)
    new = child.wait_for(is_event("prefix_allocated"), since=mark, timeout=15)["prefix"]
    assert new not in child_prefixes

    def parent_lists_it() -> bool:
        rows = parent.ask("show prefixes")["prefixes"]
        return any(
            r["kind"] == "child"
            and r["prefix"] == new
            and r["domain_id"] == TOPOLOGY.domains["C7"].domain_id
            for r in rows
        )

    until(what="the parent lists the child's new prefix", check=parent_lists_it, timeout=10)
    until(what="safe", check=lambda: safety(w) == [], timeout=10)


def test_s13_kill_9_and_restart_restores_the_node_and_its_neighbours_agree(
    world: Callable[..., World],
) -> None:
    w = world()
    until(what="converged", check=lambda: converged(w), timeout=60)
    until(what="no claims for a waiting period", check=lambda: quiet(w, 3), timeout=40)
    before = holdings(w)
    victim = w["P4a"]  # a regional node: child of T2a, parent of C5b and C6a, P4b's peer
    prefixes_before = prefix_rows(victim)
    sessions = [n for n in TOPOLOGY.nodes if address(NUMBER[n]) in peers(victim)]
    assert len(sessions) == 4

    victim.signal(signal.SIGKILL)
    assert victim.wait_exit() == -signal.SIGKILL
    mark = victim.mark()
    victim.start()
    restored = victim.wait_for(is_event("restored"), since=mark, timeout=30)
    owned = {p for p in prefixes_before if p[0] != "child"}
    assert restored["prefixes"] == len(owned) > 0
    victim.wait_for(is_event("started"), since=mark, timeout=30)
    assert {p for p in prefix_rows(victim) if p[0] != "child"} == owned
    for peer in sessions:
        victim.wait_for(is_event("session_up", peer), since=mark, timeout=20)
    until(what="all sessions Established", check=lambda: all_established(w), timeout=20)
    # Its neighbours re-learnt the same state: nobody's space moved, and all is safe; and
    # it learnt its children's prefixes again from them.
    until(what="same holdings everywhere", check=lambda: holdings(w) == before, timeout=15)
    assert safety(w) == []
    until(
        what="the children's prefixes known again",
        check=lambda: prefix_rows(victim) == prefixes_before,
        timeout=10,
    )
