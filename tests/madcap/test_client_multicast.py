"""Server location by multicast (RFC 2730 §2.2.1-§2.2.4, §2.9-§2.11), end to end.

The test makes a network namespace of its own (``masc-mc-<pid>-<n>``, tests/netns_kit.py) whose
loopback carries multicast (``ip link set lo multicast on``, ``ip route add 224.0.0.0/4 dev
lo src 127.0.0.1``), so nothing leaves the machine.  Inside it run two small MADCAP servers
(the MadcapServer core behind plain sockets, joined to their scopes' MADCAP Server Multicast
Addresses and to 239.255.255.254) and the ``madcap`` CLI *without* ``--server``:

* ``madcap scopes``: a multicast GETINFO to 239.255.255.254 reaches both servers; the
  client merges their scope lists;
* ``madcap request``: DISCOVER to the scope's last address minus one, an OFFER from each
  server, a multicast REQUEST naming the better one (the other drops its offer, §2.2.3),
  an ACK; then RENEW and RELEASE unicast to the granting server from the saved lease file.

The suite runs as root.  Without a working ``ip netns`` the test fails (it does not skip):
whether to run it elsewhere is the lead's decision.
"""

from __future__ import annotations

import json
import selectors
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.netns_kit import ip, namespace

READY_WITHIN = 20.0  # seconds for a server process to bind and join its groups
CLI_WITHIN = 60.0

SERVER_SCRIPT = textwrap.dedent(
    """
    import json, select, socket, sys, time
    from ipaddress import IPv4Address, ip_address
    from masc.madcap.messages import ScopeName
    from masc.madcap.scopes import Scope
    from masc.madcap.server import Arrival, MadcapServer, ServerSettings

    config = json.loads(sys.argv[1])
    port = config["port"]
    scopes = [
        Scope(
            name=s["name"], first=ip_address(s["first"]), last=ip_address(s["last"]),
            names=(ScopeName("en", s["name"], True),),
            ranges=tuple((ip_address(a), ip_address(b)) for a, b in s["ranges"]),
        )
        for s in config["scopes"]
    ]
    core = MadcapServer(
        ServerSettings(server_id=ip_address(config["server_id"])), scopes, now=time.time()
    )
    unicast = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    unicast.bind((config["server_id"], port))
    groups = {}
    for group in sorted({str(s.server_address) for s in scopes} | {"239.255.255.254"}):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((group, port))
        sock.setsockopt(
            socket.IPPROTO_IP,
            socket.IP_ADD_MEMBERSHIP,
            socket.inet_aton(group) + socket.inet_aton("127.0.0.1"),
        )
        groups[sock] = IPv4Address(group)
    print(json.dumps({"event": "ready", "groups": [str(g) for g in groups.values()]}), flush=True)
    while True:
        deadline = core.next_deadline()
        wait = None if deadline is None else max(0.0, deadline - time.time())
        readable, _, _ = select.select([unicast, *groups], [], [], wait)
        if not readable:
            core.handle_timer(now=time.time())
        for sock in readable:
            data, source = sock.recvfrom(65535)
            group = groups.get(sock)
            outcome = core.handle_datagram(
                data, arrival=Arrival(source=source, group=group), now=time.time()
            )
            print(json.dumps({
                "event": outcome.event, "detail": outcome.detail, "type": data[1],
                "group": None if group is None else str(group), "source": list(source),
            }), flush=True)
            if outcome.reply is not None:
                unicast.sendto(outcome.reply, source)
    """
)

ORG_LOCAL = {"name": "Organization Local", "first": "239.192.0.0", "last": "239.195.255.255"}
# Server A can give two addresses, server B one; B alone also serves a scope of its own.
SERVER_A = {
    "server_id": "127.0.0.1",
    "scopes": [{**ORG_LOCAL, "ranges": [["239.192.1.0", "239.192.1.1"]]}],
}
SERVER_B = {
    "server_id": "127.0.0.2",
    "scopes": [
        {**ORG_LOCAL, "ranges": [["239.192.2.0", "239.192.2.0"]]},
        {"name": "Site B", "first": "239.254.0.0", "last": "239.254.255.255", "ranges": []},
    ],
}


@pytest.fixture(scope="module")
def netns() -> Iterator[str]:
    with namespace("mc") as name:
        ip("-n", name, "link", "set", "lo", "multicast", "on")
        # src: multicast leaves with 127.0.0.1 as its source, an address servers can answer.
        ip("-n", name, "route", "add", "224.0.0.0/4", "dev", "lo", "src", "127.0.0.1")
        yield name


class ServerProcess:
    """One MADCAP server inside the namespace; its stdout is one JSON object per datagram."""

    def __init__(self, netns: str, script: Path, config: dict[str, Any]) -> None:
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", netns, sys.executable, str(script), json.dumps(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.log: list[dict[str, Any]] = []
        self.errors = ""
        ready = self._line(READY_WITHIN)
        if ready is None or ready.get("event") != "ready":
            self.stop()
            pytest.fail(f"server {config['server_id']} did not start: {self.errors}")

    def _line(self, within: float) -> dict[str, Any] | None:
        assert self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(within):
                return None
        line = self.process.stdout.readline()
        return json.loads(line) if line else None

    def stop(self) -> list[dict[str, Any]]:
        self.process.terminate()
        out, self.errors = self.process.communicate(timeout=10)
        self.log += [json.loads(line) for line in out.splitlines() if line.strip()]
        return self.log


@pytest.fixture
def unused_udp_port() -> int:
    """A port for the servers inside the fresh namespace (no other process uses it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def madcap(netns: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI inside the namespace, multicasting from lo (127.0.0.1)."""
    command = [
        "ip", "netns", "exec", netns, sys.executable, "-m", "masc.cli.madcap",
        "--interface", "127.0.0.1", "--discover-delay", "1", "--json", *args,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=CLI_WITHIN, check=False)


def test_s2_10_multicast_getinfo_discover_request_then_unicast_renew_release(
    netns: str, tmp_path: Path, unused_udp_port: int
) -> None:
    script = tmp_path / "server.py"
    script.write_text(SERVER_SCRIPT)
    a = ServerProcess(netns, script, {**SERVER_A, "port": unused_udp_port})
    b = ServerProcess(netns, script, {**SERVER_B, "port": unused_udp_port})
    lease_file = tmp_path / "lease.json"
    try:
        port = ["--port", str(unused_udp_port)]
        scopes = madcap(netns, *port, "scopes")
        assert scopes.returncode == 0, scopes.stderr
        listed = {s["scope_id"]: s for s in json.loads(scopes.stdout)["scopes"]}
        # Both servers answered the multicast GETINFO; the lists are merged.
        assert set(listed) == {"239.192.0.0", "239.254.0.0"}
        assert listed["239.192.0.0"]["server_address"] == "239.195.255.254"

        started = time.monotonic()
        request = madcap(
            netns, *port, "request", "--scope", "239.192.0.0", "--count", "2",
            "--min-count", "1", "--lease", "1h", "--save", str(lease_file),
        )  # fmt: skip
        assert request.returncode == 0, request.stderr
        lease = json.loads(request.stdout)
        # Server A offered everything asked for; B only one address: A is chosen.
        assert lease["server_id"] == "127.0.0.1"
        assert lease["addresses"] == ["239.192.1.0", "239.192.1.1"]
        assert lease["server"] == {"address": "127.0.0.1", "port": unused_udp_port}
        assert json.loads(lease_file.read_text()) == lease
        assert time.monotonic() - started < 30

        renew = madcap(netns, "renew", "--lease-file", str(lease_file), "--lease", "2h")
        assert renew.returncode == 0, renew.stderr
        renewed = json.loads(renew.stdout)
        assert renewed["lifetime"] == 7200 and renewed["addresses"] == lease["addresses"]
        release = madcap(netns, "release", "--lease-file", str(lease_file))
        assert release.returncode == 0, release.stderr
        assert json.loads(release.stdout) == {"status": "released", "lease_id": lease["lease_id"]}
    finally:
        log_a, log_b = a.stop(), b.stop()

    def seen(log: list[dict[str, Any]], msg_type: int) -> list[dict[str, Any]]:
        return [entry for entry in log if entry.get("type") == msg_type]

    # GETINFO (8) arrived on the Local Scope server address at both servers (§2.10): once
    # for `scopes`, once for `request`, which learns the scope's last address that way.
    for log in (log_a, log_b):
        assert [(e["group"], e["event"]) for e in seen(log, 8)] == [
            ("239.255.255.254", "info"),
            ("239.255.255.254", "info"),
        ]
    # DISCOVER (1) went to 239.195.255.254, the scope's last address minus one; both offered.
    for log in (log_a, log_b):
        assert [(e["group"], e["event"]) for e in seen(log, 1)] == [("239.195.255.254", "offer")]
    # The REQUEST (3) was multicast to the same group; A granted, B dropped its offer.
    assert [(e["group"], e["event"]) for e in seen(log_a, 3)] == [("239.195.255.254", "granted")]
    ((group, event, detail),) = [(e["group"], e["event"], e["detail"]) for e in seen(log_b, 3)]
    assert (group, event) == ("239.195.255.254", "ignored") and "dropped" in detail
    # RENEW (4) and RELEASE (7) were unicast to A only.
    assert [(e["group"], e["event"]) for e in seen(log_a, 4) + seen(log_a, 7)] == [
        (None, "renewed"),
        (None, "released"),
    ]
    assert seen(log_b, 4) == seen(log_b, 7) == []
