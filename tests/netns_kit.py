"""Network namespaces, veth links and FRR bgpd instances that a test makes for itself.

The suite runs as root (CI included).  Everything is torn down when the test ends, even
when it fails; nothing is ever added to the machine's own namespace.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

BGPD = Path("/usr/lib/frr/bgpd")
VTYSH = shutil.which("vtysh") or "/usr/bin/vtysh"
_names = itertools.count()


def ip(*args: str) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


@contextmanager
def namespace(tag: str) -> Iterator[str]:
    """A fresh namespace with loopback up, deleted on exit."""
    if shutil.which("ip") is None:
        pytest.fail("this test needs iproute2's `ip` to create network namespaces")
    name = f"masc-{tag}-{os.getpid()}-{next(_names)}"
    ip("netns", "add", name)
    try:
        ip("-n", name, "link", "set", "lo", "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def veth(a: str, a_addr: str, b: str, b_addr: str) -> tuple[str, str]:
    """A veth pair between namespaces ``a`` and ``b`` with the given addresses (CIDR)."""
    n = next(_names)
    ends = (f"mv{os.getpid() % 10000}a{n}", f"mv{os.getpid() % 10000}b{n}")
    ip("link", "add", ends[0], "netns", a, "type", "veth", "peer", "name", ends[1], "netns", b)
    for ns, end, addr in ((a, ends[0], a_addr), (b, ends[1], b_addr)):
        ip("-n", ns, "addr", "add", addr, "dev", end)
        ip("-n", ns, "link", "set", end, "up")
    return ends


class Bgpd:
    """One FRR bgpd (no zebra) in a namespace, its vty socket in ``workdir``."""

    def __init__(self, netns: str, workdir: Path, config: str) -> None:
        if not BGPD.exists():
            pytest.fail(f"this test needs FRR's bgpd ({BGPD}): apt-get install frr")
        workdir.mkdir(parents=True, exist_ok=True)
        workdir.chmod(0o777)
        self.workdir = workdir
        conf = workdir / "bgpd.conf"
        conf.write_text(textwrap.dedent(config))
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", netns, str(BGPD), "-Z", "-S", "-u", "root", "-g", "root",
             "-f", str(conf), "-i", str(workdir / "bgpd.pid"), "--vty_socket", str(workdir),
             "-z", str(workdir / "zserv.api"), "--log", f"file:{workdir / 'bgpd.log'}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while not (workdir / "bgpd.vty").exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                self.stop()
                pytest.fail(f"bgpd did not start: {err}")
            time.sleep(0.05)

    def vtysh(self, *commands: str) -> str:
        argv = [VTYSH, "--vty_socket", str(self.workdir), "-d", "bgpd"]
        for command in commands:
            argv += ["-c", command]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def multicast_table(self, afi: str = "ipv4") -> dict[str, Any]:
        table: dict[str, Any] = json.loads(self.vtysh(f"show bgp {afi} multicast json"))
        return table

    def multicast_routes(self, afi: str = "ipv4") -> dict[str, Any]:
        routes: dict[str, Any] = self.multicast_table(afi).get("routes", {})
        return routes

    def wait_routes(self, want: set[str], afi: str = "ipv4", timeout: float = 30) -> None:
        """Until the multicast table holds exactly ``want``."""
        deadline = time.monotonic() + timeout
        while True:
            have = set(self.multicast_routes(afi))
            if have == want:
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"bgp {afi} multicast holds {sorted(have)}, not {sorted(want)}"
                )
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
