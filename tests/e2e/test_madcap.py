"""The whole chain with real processes: host -> MADCAP -> MAAS -> MASC daemon -> parent domain
(RFC 2730, RFC 2908 §3, RFC 2909 §17; docs/madcap.md).

A top-level domain and its child run as ``masc run`` on 127.0.9.80/.81 with sub-second
waiting periods; ``masc madcap`` on 127.0.9.82 attaches to the child's MAAS socket; a client
(masc.madcap.client) on 127.0.9.83 leases addresses.  The addresses lie inside the child's
MASC-won prefixes, and the server's growing usage makes the child claim more space.  The
MADCAP process also survives ``kill -9`` right after its ACKs without losing a lease, and
answers multicast discovery inside a network namespace of its own.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network, ip_address
from pathlib import Path

import pytest
import trio

from masc.madcap.client import Lease, MadcapError, TryLater, open_madcap_client
from masc.madcap.constants import ErrorCode
from tests.e2e.daemons import Daemon, Peer, addr, render
from tests.netns_kit import ip, namespace

pytestmark = pytest.mark.processes

TLD, CHILD = 65280, 65281
N_TLD, N_CHILD, N_MADCAP, N_CLIENT = 80, 81, 82, 83
POOL = "239.192.0.0/14"
TIMERS = 'waiting_period = "500ms"\ninitiate_claim_delay = "100ms"\nclock_skew_grace = "2s"'
ROOT = Path(__file__).resolve().parents[2]


class Madcap(Daemon):
    """One ``masc madcap`` process and its JSON log records (Daemon's plumbing)."""

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "masc", "madcap", "--config", str(self.config),
             "--log-format", "json", "--log-level", "debug"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        threading.Thread(target=self._pump, args=(self.proc,), daemon=True).start()

    def wait_event(self, name: str, *, since: int = 0, timeout: float = 20.0) -> dict[str, object]:
        return self.wait_for(lambda r: r.get("event") == name, since=since, timeout=timeout)


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="masc-madcap-"))
    path.chmod(0o755)
    yield path
    subprocess.run(["rm", "-rf", str(path)], check=False)


@pytest.fixture
def processes() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for process in reversed(started):
        process.stop()


def managed(d: Daemon) -> list[IPv4Network]:
    out = d.mascctl("--json", "show", "prefixes")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)["prefixes"]
    return [IPv4Network(r["prefix"]) for r in rows if r["kind"] == "managed"]


def madcap_config(
    workdir: Path, port: int, scopes: str, *, masc: str = "", server: str = ""
) -> str:
    return f"""
[server]
listen = ["{addr(N_MADCAP)}"]
port = {port}
database = "{workdir}/madcap.db"
retry_interval = "1s"
{server}
{masc}
{scopes}
"""


GLOBAL_SCOPE = """
[[scope]]
name = "MASC space"
source = "masc"
first = "239.192.0.0"
last = "239.195.255.255"
default_lease = "10m"
"""


def start_domains(workdir: Path, processes: list[Daemon]) -> tuple[Daemon, Daemon]:
    tld = Daemon(
        N_TLD,
        render(
            N_TLD,
            TLD,
            [Peer(N_CHILD, "child", CHILD)],
            workdir,
            extra_local=f'global_pool = ["{POOL}"]',
            extra_timers=TIMERS,
            extra_sections='[allocation]\ninitial_size = 1024\nclaim_lifetime = "1h"',
        ),
        workdir,
    )
    processes.append(tld)
    child_text = render(
        N_CHILD,
        CHILD,
        [Peer(N_TLD, "parent", TLD)],
        workdir,
        extra_timers=TIMERS,
        extra_sections='[allocation]\ninitial_size = 64\nclaim_lifetime = "1h"',
    )
    # The MAAS's growth is predicted 10 s ahead (not an hour): the test's bursts of leases
    # should make the domain claim more, not the whole pool.
    child_text = child_text.replace("[maas]\n", '[maas]\ngrant_horizon = "10s"\n', 1)
    child = Daemon(N_CHILD, child_text, workdir)
    processes.append(child)
    child.wait_for(lambda r: r.get("event") == "maas_listening", timeout=15)
    return tld, child


def wait_managed(d: Daemon, timeout: float = 30.0) -> list[IPv4Network]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        held = managed(d)
        if held:
            return held
        time.sleep(0.2)
    raise AssertionError(f"daemon {d.node} holds no prefix after {timeout} s")


async def lease_until(
    server: tuple[str, int], total: int, *, deadline: float, batch: int = 8
) -> list[Lease]:
    """Lease batches of up to ``batch`` addresses until ``total`` are held, retrying while the
    domain claims (TryLater / NAK 0)."""
    leases: list[Lease] = []
    async with open_madcap_client(server=server, bind=addr(N_CLIENT)) as client:
        while sum(len(lease.addresses) for lease in leases) < total:
            assert time.monotonic() < deadline, f"only {len(leases)} leases by the deadline"
            try:
                leases.append(
                    await client.alloc(
                        ip_address("239.192.0.0"),
                        min_addresses=1,
                        max_addresses=batch,
                        max_lifetime=600,
                        try_later=True,
                    )
                )
            except TryLater:
                await trio.sleep(0.2)
            except MadcapError as error:
                assert error.code == ErrorCode.VALID_REQUEST_NOT_COMPLETED, error
                await trio.sleep(0.2)
    return leases


async def test_rfc2908_leases_lie_in_the_childs_prefix_and_usage_grows_its_space(
    workdir: Path, processes: list[Daemon]
) -> None:
    tld, child = start_domains(workdir, processes)
    before = wait_managed(child)
    port = free_port(addr(N_MADCAP))
    masc = f"""
[masc]
maas_socket = "{workdir}/{N_CHILD}.maas.sock"
name = "madcap-e2e"
usage_interval = "1s"
reconnect_initial = "100ms"
reconnect_max = "500ms"
"""
    server = Madcap(N_MADCAP, madcap_config(workdir, port, GLOBAL_SCOPE, masc=masc), workdir)
    processes.append(server)
    server.wait_event("maas_attached")
    server.wait_for(
        lambda r: (
            (r.get("event") == "maas_attached" and bool(r.get("grants")))
            or r.get("event") == "grant_granted"
        )
    )

    # One address: inside the child domain's MASC-won space.
    (first,) = await lease_until((addr(N_MADCAP), port), 1, deadline=time.monotonic() + 30, batch=1)
    (address,) = first.addresses
    held = managed(child)
    assert any(address in net for net in held), (address, held)
    assert any(address in net for net in managed(tld))  # carved from the parent's space

    # Growth: lease far more than the child held at first; it claims more from its parent.
    initial = sum(net.num_addresses for net in before)
    leases = await lease_until((addr(N_MADCAP), port), 3 * initial, deadline=time.monotonic() + 90)
    after = managed(child)
    print(f"child space {[str(n) for n in before]} -> {[str(n) for n in after]}")
    assert sum(net.num_addresses for net in after) > initial, (before, after)
    everything = [a for lease in [first, *leases] for a in lease.addresses]
    assert len(everything) == len(set(everything)), "an address leased twice"
    for a in everything:
        assert any(a in net for net in after), (a, after)
    leased = len(everything)
    server.wait_for(lambda r: r.get("event") == "usage_reported" and r.get("in_use") == leased)
    events = {str(r.get("event")) for r in server.records}
    assert {"maas_attached", "lease_granted", "usage_reported"} <= events
    assert "bug" not in events and "fatal" not in events


TINY = """
[[scope]]
name = "Tiny"
first = "233.252.0.0"
last = "233.252.0.3"
default_lease = "1h"
"""


async def test_kill_9_right_after_an_ack_loses_no_lease(
    workdir: Path, processes: list[Daemon]
) -> None:
    """Four times: lease one address of a four-address scope, SIGKILL the server the moment
    the ACK arrives, restart it on the same database.  Every lease is still there
    (renewable, same address) and no address was handed out twice: the fifth request
    finds the scope full.  Then SIGTERM stops it cleanly."""
    port = free_port(addr(N_MADCAP))
    server = Madcap(N_MADCAP, madcap_config(workdir, port, TINY), workdir)
    processes.append(server)
    target = (addr(N_MADCAP), port)
    leases: list[Lease] = []
    mark = 0
    for _ in range(4):
        server.wait_event("madcap_listening", since=mark)
        async with open_madcap_client(server=target, bind=addr(N_CLIENT)) as client:
            leases.append(await client.alloc(ip_address("233.252.0.0"), max_lifetime=3600))
        assert server.proc is not None
        server.proc.kill()  # the ACK is in: the lease must be on disk
        server.proc.wait()
        mark = server.mark()
        server.start()
    server.wait_for(
        lambda r: r.get("event") == "madcap_restored" and r.get("leases") == 4, since=mark
    )
    server.wait_event("madcap_listening", since=mark)
    addresses = [lease.addresses[0] for lease in leases]
    assert sorted(addresses) == [IPv4Address("233.252.0.0") + i for i in range(4)]
    async with open_madcap_client(server=target, bind=addr(N_CLIENT)) as client:
        for lease in leases:
            renewed = await client.change_lifetime(lease, 60, 7200)
            assert renewed.addresses == lease.addresses
        with pytest.raises(MadcapError) as refused:
            await client.alloc(ip_address("233.252.0.0"))
        assert refused.value.code == ErrorCode.VALID_REQUEST_NOT_COMPLETED
    mark = server.mark()
    server.signal(signal.SIGTERM)
    assert server.wait_exit() == 0
    server.wait_event("madcap_stopped", since=mark)


async def test_sighup_is_logged_and_the_server_keeps_serving(
    workdir: Path, processes: list[Daemon]
) -> None:
    """SIGHUP (a terminal hang-up, a `systemctl reload`) neither stops the server nor
    reloads: it says so, and leases go on being handed out."""
    port = free_port(addr(N_MADCAP))
    server = Madcap(N_MADCAP, madcap_config(workdir, port, TINY), workdir)
    processes.append(server)
    server.wait_event("madcap_listening")
    server.signal(signal.SIGHUP)
    server.wait_event("reload_unsupported")
    async with open_madcap_client(server=(addr(N_MADCAP), port), bind=addr(N_CLIENT)) as client:
        lease = await client.alloc(ip_address("233.252.0.0"), max_lifetime=600)
    assert lease.addresses
    assert server.proc is not None and server.proc.poll() is None
    server.signal(signal.SIGTERM)
    assert server.wait_exit() == 0


def test_a_bad_configuration_exits_2_naming_the_key(workdir: Path) -> None:
    path = workdir / "bad.toml"
    path.write_text(TINY + 'range = ["233.252.0.0-233.252.0.9"]\n')
    out = subprocess.run(
        [sys.executable, "-m", "masc", "madcap", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2
    assert out.stderr.startswith(f"{path}: scope[0].range[0]: ")


# --- server discovery by multicast (§2.9-§2.10), in a namespace of the test's own ----------


@pytest.fixture
def netns() -> Iterator[str]:
    with namespace("mc") as name:
        ip("-n", name, "link", "set", "lo", "multicast", "on")
        ip("-n", name, "route", "add", "224.0.0.0/4", "dev", "lo")
        yield name


_DISCOVERING_CLIENT = """
import json, sys, trio
from ipaddress import ip_address
from masc.madcap.client import open_madcap_client

async def main():
    async with open_madcap_client(multicast_interface="127.0.0.1", port=int(sys.argv[1]),
                                  give_up=20, discover_delay=0.5) as client:
        scopes = await client.get_scopes("en")
        lease = await client.alloc(ip_address("239.192.0.0"), max_lifetime=600)
        print(json.dumps({"scopes": [str(s.scope_id) for s in scopes],
                          "server": str(lease.server_id),
                          "addresses": [str(a) for a in lease.addresses]}))

trio.run(main)
"""


def test_s2_10_a_client_finds_the_server_by_multicast(workdir: Path, netns: str) -> None:
    """No server configured: GETINFO goes to 239.255.255.254 (§2.9), the allocation
    DISCOVERs on the scope's server address, last - 1 (§2.10), and the server that joined
    those groups answers by unicast."""
    port = 2535
    config = workdir / "mc.toml"
    config.write_text(
        f"""
[server]
listen = ["127.0.0.1"]
port = {port}
database = "{workdir}/mc.db"
multicast_interface = "127.0.0.1"

[masc]
maas_socket = "{workdir}/no-daemon.sock"

[[scope]]
name = "Global"
source = "masc"

[[scope]]
name = "Organization Local"
first = "239.192.0.0"
last = "239.195.255.255"
inside = ["Global"]
"""
    )
    server = subprocess.Popen(
        ["ip", "netns", "exec", netns, sys.executable, "-m", "masc", "madcap",
         "--config", str(config), "--log-format", "json", "--log-level", "debug"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )  # fmt: skip
    try:
        assert server.stderr is not None
        for line in server.stderr:
            record = json.loads(line)
            if record.get("event") == "madcap_listening":
                # Not 238.255.255.254: no client may send to the global scope's (§2.11).
                assert record["groups"] == ["239.195.255.254", "239.255.255.254"]
                break
        out = subprocess.run(
            ["ip", "netns", "exec", netns, sys.executable, "-c", _DISCOVERING_CLIENT, str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout)
        assert result["scopes"] == ["239.192.0.0", "224.0.1.0"]  # smallest first (§3.10)
        assert result["server"] == "127.0.0.1"
        (leased,) = result["addresses"]
        assert ip_address(leased) in IPv4Network("239.192.0.0/14")
    finally:
        server.send_signal(signal.SIGINT)  # like SIGTERM: a clean stop, exit 0
        try:
            assert server.wait(timeout=15) == 0
        finally:
            if server.poll() is None:
                server.kill()
