"""``masc demo``: RFC 2909 Figure 1 as real daemons on 127.0.0.x, with short timers.

                         T1a-----------T2a
                          |             |
                  P3a====P3b           P4a====P4b
                   |      |           / |    / | \\
                  C5a====C5b ________/ C6a====C6b----C7a
                    \\\\  //
                     C5c

Twelve ``masc run`` processes, one per MASC node, each on its own loopback address and
control socket, logging JSON that this command turns into one readable line per event.
The top-level domains share the organization-local scope 239.192.0.0/14 (RFC 2365, RFC 2909
§4.5); with a waiting period of 4 s every domain claims, waits, and owns a prefix nested in
its parent's within about 20 s, and the demo ends with a table of who holds what.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty, Queue

# domain name -> (domain id, parent domain names)
DOMAINS: dict[str, tuple[int, tuple[str, ...]]] = {
    "T1": (65001, ()),
    "T2": (65002, ()),
    "P3": (65003, ("T1",)),
    "P4": (65004, ("T2",)),
    "C5": (65005, ("P3", "P4")),
    "C6": (65006, ("P4",)),
    "C7": (65007, ("P4",)),
}
# Addresses each level claims first (§12.2, App. B): a parent needs room for its children.
INITIAL_SIZE: dict[int, int] = {0: 4096, 1: 1024, 2: 256}
# node -> last octet of its 127.0.0.x address
NODES: dict[str, int] = {
    "T1a": 11, "T2a": 12, "P3a": 31, "P3b": 32, "P4a": 41, "P4b": 42,
    "C5a": 51, "C5b": 52, "C5c": 53, "C6a": 61, "C6b": 62, "C7a": 71,
}  # fmt: skip
# The sessions drawn in Figure 1: (node, node, what the second is to the first).
LINKS: tuple[tuple[str, str, str], ...] = (
    ("T1a", "T2a", "sibling"),
    ("T1a", "P3b", "child"),
    ("T2a", "P4a", "child"),
    ("P3a", "P3b", "internal"),
    ("P4a", "P4b", "internal"),
    ("P3a", "C5a", "child"),
    ("P3b", "C5b", "child"),
    ("P4a", "C5b", "child"),
    ("P4a", "C6a", "child"),
    ("P4b", "C6a", "child"),
    ("P4b", "C6b", "child"),
    ("P4b", "C7a", "child"),
    ("C5a", "C5b", "internal"),
    ("C5a", "C5c", "internal"),
    ("C5b", "C5c", "internal"),
    ("C6a", "C6b", "internal"),
    ("C6b", "C7a", "sibling"),
)
_INVERSE = {"child": "parent", "parent": "child", "sibling": "sibling", "internal": "internal"}


def domain_of(node: str) -> str:
    return node[:2]


def level(domain: str) -> int:
    """0 for a top-level domain, 1 for its children, and so on."""
    parents = DOMAINS[domain][1]
    return 0 if not parents else 1 + min(level(p) for p in parents)


def address(node: str, prefix: str = "127.0.0") -> str:
    return f"{prefix}.{NODES[node]}"


def render_config(node: str, workdir: Path, port: int, prefix: str = "127.0.0") -> str:
    """The TOML configuration of one node of Figure 1."""
    domain = domain_of(node)
    domain_id, parents = DOMAINS[domain]
    lines = [
        f"# {node}: domain {domain} of RFC 2909 Figure 1 (masc demo)",
        "[local]",
        f"domain_id = {domain_id}",
        f'node_id = "{address(node, prefix)}"',
        f"port = {port}",
    ]
    if not parents:
        lines.append('global_pool = ["239.192.0.0/14"]')
    else:  # P3a, P4b and C5c have no parent session of their own
        lines.append(f"parent_domain_ids = {[DOMAINS[p][0] for p in parents]}")
    lines += [
        "[timers]",
        "hold_time = 9",
        "connect_retry = 1",
        'restart_backoff_initial = "1s"',
        'restart_backoff_max = "10s"',
        'waiting_period = "4s"',
        'initiate_claim_delay = "1s"',
        'clock_skew_grace = "4s"',
        "[allocation]",
        f"initial_size = {INITIAL_SIZE[level(domain)]}",
        'claim_lifetime = "1h"',
        "[control]",
        f'socket = "{workdir / node}.control.sock"',
        "[maas]",
        f'socket = "{workdir / node}.maas.sock"',
        "[storage]",
        f'path = "{workdir / node}.db"',
    ]
    for a, b, relation in LINKS:
        if node not in (a, b):
            continue
        other, rel = (b, relation) if node == a else (a, _INVERSE[relation])
        lines += [
            "[[peers]]",
            f'address = "{address(other, prefix)}"',
            f"port = {port}",
            f'relation = "{rel}"',
            f"domain_id = {DOMAINS[domain_of(other)][0]}",
        ]
        if rel == "sibling":
            common = set(parents) & set(DOMAINS[domain_of(other)][1])
            parent_id = DOMAINS[sorted(common)[0]][0] if common else 0
            lines.append(f"parent_domain_id = {parent_id}")
    return "\n".join(lines) + "\n"


@dataclass
class Process:
    node: str
    popen: subprocess.Popen[str]
    lines: Queue[tuple[str, dict[str, object]]] = field(default_factory=Queue)


def start_node(node: str, config: Path, events: Queue[tuple[str, dict[str, object]]]) -> Process:
    popen = subprocess.Popen(
        [sys.executable, "-m", "masc", "run", "--config", str(config), "--log-format", "json"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc = Process(node, popen)

    def pump() -> None:
        assert popen.stderr is not None
        for raw in popen.stderr:
            try:
                record = json.loads(raw)
            except ValueError:
                record = {"event": "stderr", "message": raw.rstrip()}
            events.put((node, record))

    threading.Thread(target=pump, daemon=True).start()
    return proc


def describe(node: str, record: dict[str, object]) -> str | None:
    """One human line for the events a newcomer wants to see, None for the rest."""
    event = record.get("event")
    peer = str(record.get("peer", ""))
    names = {address(n): n for n in NODES}
    who = names.get(peer, peer)
    if event == "session_up":
        kind = "internal" if record.get("internal") else "external"
        return f"{node:>4} <-> {who:<4} Established ({kind}, hold {record.get('hold_time')}s)"
    if event == "session_down":
        return f"{node:>4} <-> {who:<4} down: {record.get('message')}"
    if event in ("fatal", "stderr") or record.get("level") in ("error", "critical"):
        return f"{node:>4} !! {record.get('message')}"
    if event in ("claim_sent", "prefix_allocated", "clash", "range_withdrawn", "claim_cancelled"):
        return f"{node:>4} {record.get('message')}"
    return None


def _holders(record: dict[str, object]) -> bool:
    return record.get("event") == "prefix_allocated"


def print_prefixes(base: Path) -> bool:
    """Ask every node what its domain holds; print one line per domain.  True when every
    domain holds space nested in its parents' (RFC 2909 §4)."""
    from ipaddress import ip_network

    from masc.cli.mascctl import request

    held: dict[str, set[str]] = {}
    for node in NODES:
        try:
            response = request(str(base / f"{node}.control.sock"), "show prefixes")
        except OSError:
            continue
        rows = (response.result or {}).get("prefixes", [])
        held.setdefault(domain_of(node), set()).update(
            str(r["prefix"]) for r in rows if r.get("kind") == "managed"
        )
    ok = True
    print("who holds what (RFC 2909 §4.1 managed space, as each domain's nodes report it):")
    for domain, (domain_id, parents) in DOMAINS.items():
        mine = sorted(held.get(domain, set()))
        nested = all(
            any(
                ip_network(p).subnet_of(ip_network(q))  # type: ignore[arg-type]
                for parent in parents
                for q in held.get(parent, set())
            )
            for p in mine
        )
        ok = ok and bool(mine) and (not parents or nested)
        where = "global pool 239.192.0.0/14" if not parents else f"inside {'/'.join(parents)}"
        status = "ok" if mine and (not parents or nested) else "MISSING"
        print(f"  {domain} ({domain_id}): {', '.join(mine) or '-':<36} {where:<28} {status}")
    return ok


def expected_sessions() -> int:
    return 2 * len(LINKS)


def run_demo(
    *,
    duration: float,
    port: int,
    workdir: str | None,
    until_up: bool = False,
    until_claimed: bool = False,
) -> int:
    base = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="masc-demo-"))
    base.mkdir(parents=True, exist_ok=True)
    events: Queue[tuple[str, dict[str, object]]] = Queue()
    print(f"masc demo: RFC 2909 Figure 1, {len(NODES)} MASC nodes in {len(DOMAINS)} domains")
    print(
        f"configs and sockets in {base}; try: mascctl --socket {base}/P4a.control.sock show peers"
    )
    procs = []
    for node in NODES:
        path = base / f"{node}.toml"
        path.write_text(render_config(node, base, port))
        procs.append(start_node(node, path, events))
    started = time.monotonic()
    up: set[tuple[str, str]] = set()
    claimed: set[str] = set()
    announced = False
    try:
        for node, record in _events_until(events, started, duration):
            if _holders(record):
                claimed.add(domain_of(node))
                if until_claimed and claimed == set(DOMAINS):
                    time.sleep(0.5)  # let the other nodes of each domain hear of it
                    break
            if record.get("event") == "session_up":
                up.add((node, str(record.get("peer"))))
            elif record.get("event") == "session_down":
                up.discard((node, str(record.get("peer"))))
            line = describe(node, record)
            if line:
                print(f"[{time.monotonic() - started:6.2f}s] {line}", flush=True)
            if not announced and len(up) == expected_sessions():
                announced = True
                print(
                    f"all {len(LINKS)} sessions of Figure 1 are Established "
                    f"after {time.monotonic() - started:.1f}s",
                    flush=True,
                )
                if until_up:
                    break
            if any(p.popen.poll() is not None for p in procs) and not announced:
                dead = [p.node for p in procs if p.popen.poll() is not None]
                print(f"daemon(s) exited early: {', '.join(dead)}", file=sys.stderr)
                _drain(events)
                return 1
    except KeyboardInterrupt:
        pass
    all_hold = print_prefixes(base)
    print("stopping: every daemon sends Cease to its peers (SIGTERM)", flush=True)
    for p in procs:
        if p.popen.poll() is None:
            p.popen.send_signal(signal.SIGTERM)
    ceases = 0
    deadline = time.monotonic() + 10
    while any(p.popen.poll() is None for p in procs) and time.monotonic() < deadline:
        try:
            _node, record = events.get(timeout=0.1)
        except Empty:
            continue
        ceases += record.get("event") == "notification_received" and record.get("code") == 7
    for p in procs:
        if p.popen.poll() is None:
            p.popen.kill()
        p.popen.wait()
    statuses = sorted({p.popen.returncode for p in procs})
    print(f"{ceases} Cease NOTIFICATIONs seen; daemons exited with status {statuses}")
    if not workdir:
        shutil.rmtree(base, ignore_errors=True)
    if until_claimed and not all_hold:
        return 1
    return 0 if announced and statuses == [0] else 1


def _events_until(
    events: Queue[tuple[str, dict[str, object]]], started: float, duration: float
) -> Iterator[tuple[str, dict[str, object]]]:
    while duration <= 0 or time.monotonic() - started < duration:
        try:
            yield events.get(timeout=0.2)
        except Empty:
            continue


def _drain(events: Queue[tuple[str, dict[str, object]]]) -> None:
    while True:
        try:
            node, record = events.get_nowait()
        except Empty:
            return
        print(f"{node}: {record.get('message')}", file=sys.stderr)
