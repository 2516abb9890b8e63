"""G-RIB export end to end (RFC 2909 §3, §5.1 d), §5.4): a real ``masc run`` in a network
namespace of the test's own, exporting to the kernel and to a local FRR bgpd that peers over
a veth link with a second domain's bgpd in another namespace (ipv4 multicast, SAFI 2).

* what masc allocates shows up as routes in its table and, through BGP, in the *second*
  domain's ``show bgp ipv4 multicast``;
* a release (§5.4) removes it from both;
* kill -9 and restart: the restored prefixes' routes are never deleted (no flap, in the
  kernel nor in bgpd), a stale route of masc's is removed, and a route masc did not create
  is left alone.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.daemons import Daemon, render
from tests.netns_kit import Bgpd, ip, namespace, veth

pytestmark = pytest.mark.processes

NODE, DOMAIN, TABLE, PROTO = 41, 65201, 2587, 245
POOL = "239.192.0.0/14"
STALE, FOREIGN = "239.195.0.0/16", "239.196.0.0/16"
TIMERS = 'waiting_period = "3s"\ninitiate_claim_delay = "1s"\nclock_skew_grace = "2s"'

BGP = """\
router bgp {asn}
 bgp router-id 10.98.0.{n}
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor 10.98.0.{peer} remote-as {peer_asn}
 address-family ipv4 multicast
  neighbor 10.98.0.{peer} activate
 exit-address-family
"""


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    with namespace("gx1") as one, namespace("gx2") as two:
        veth(one, "10.98.0.1/24", two, "10.98.0.2/24")
        first = Bgpd(one, tmp_path / "bgp1", BGP.format(asn=65001, n=1, peer=2, peer_asn=65002))
        second = Bgpd(two, tmp_path / "bgp2", BGP.format(asn=65002, n=2, peer=1, peer_asn=65001))
        grib = (
            f'[grib]\nresync_interval = "2s"\n'
            f"[grib.kernel]\nenabled = true\ntable = {TABLE}\nprotocol = {PROTO}\n"
            f'[grib.frr]\nenabled = true\nvty_socket = "{first.workdir}"\n'
        )
        text = render(
            NODE,
            DOMAIN,
            [],
            tmp_path,
            extra_local=f'global_pool = ["{POOL}"]',
            extra_timers=TIMERS,
            extra_sections=f'[allocation]\nclaim_lifetime = "10m"\n{grib}',
        )
        daemon = Daemon(NODE, text, tmp_path, netns=one)
        try:
            daemon.wait_for(lambda r: r.get("event") == "started", timeout=15)
            yield {"ns": one, "daemon": daemon, "first": first, "second": second}
        finally:
            daemon.stop()
            first.stop()
            second.stop()


def _kernel(ns: str) -> set[str]:
    out = ip("-n", ns, "-j", "route", "show", "table", str(TABLE), "proto", str(PROTO))
    return {r["dst"] for r in json.loads(out or "[]")}


def _summary(d: Daemon) -> dict[str, Any]:
    out = d.mascctl("--json", "show", "summary")
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def _settled(d: Daemon, timeout: float = 60) -> set[str]:
    """The G-RIB once both exporters agree with the daemon and the set is not empty."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = _summary(d)
        exporters = s["grib_exporters"]
        if s["grib_prefixes"] and all(e["in_sync"] for e in exporters) and len(exporters) == 2:
            kernel = _kernel(d.netns or "")
            if len(kernel) == s["grib_prefixes"]:
                return kernel
        time.sleep(0.3)
    raise AssertionError(f"G-RIB not in sync after {timeout}s: {_summary(d)}")


def test_s3_allocated_prefixes_reach_the_kernel_and_the_other_domain_s_bgp(
    world: dict[str, Any],
) -> None:
    daemon, second, ns = world["daemon"], world["second"], world["ns"]
    grib = _settled(daemon)
    assert all(p.startswith("239.19") for p in grib)
    second.wait_routes(grib)  # learned over eBGP, SAFI 2
    # §5.4: a released prefix leaves the G-RIB (the domain may claim another one).
    released = sorted(grib)[0]
    out = daemon.mascctl("release", released)
    assert out.returncode == 0, out.stderr
    deadline = time.monotonic() + 30
    while released in _kernel(ns) or released in second.multicast_routes():
        assert time.monotonic() < deadline, f"{released} still exported"
        time.sleep(0.2)


def test_kill_9_and_restart_reconciles_without_a_flap(world: dict[str, Any]) -> None:
    daemon, first, second, ns = world["daemon"], world["first"], world["second"], world["ns"]
    grib = _settled(daemon)
    second.wait_routes(grib)
    # Any withdraw or re-announcement in the local bgpd moves its table version.
    version = first.multicast_table()["tableVersion"]
    daemon.signal(signal.SIGKILL)
    assert daemon.wait_exit() == -signal.SIGKILL
    # While it is down: a stale route of masc's, and one of someone else in its table.
    ip("-n", ns, "route", "add", "blackhole", STALE, "table", str(TABLE), "proto", str(PROTO))
    ip("-n", ns, "route", "add", "blackhole", FOREIGN, "table", str(TABLE))
    monitor = subprocess.Popen(
        ["ip", "-n", ns, "monitor", "route"], stdout=subprocess.PIPE, text=True
    )
    try:
        time.sleep(0.3)  # the monitor is subscribed
        since = daemon.mark()
        daemon.start()
        daemon.wait_for(
            lambda r: r.get("event") == "grib_synced" and r.get("exporter") == "kernel",
            since=since,
            timeout=30,
        )
        assert _settled(daemon) == grib
        time.sleep(0.5)
    finally:
        monitor.terminate()
        events, _ = monitor.communicate(timeout=10)
    deleted = [line for line in events.splitlines() if line.startswith("Deleted")]
    assert [line.split()[2] for line in deleted] == [STALE], events
    assert FOREIGN in {r["dst"] for r in json.loads(ip("-n", ns, "-j", "route", "show",
                                                        "table", str(TABLE)))}  # fmt: skip
    second.wait_routes(grib)
    assert first.multicast_table()["tableVersion"] == version  # FRR saw no flap either
