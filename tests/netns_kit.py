"""Network namespaces, veth links and FRR bgpd instances that a test makes for itself.

The suite runs as root (CI included).  Everything is torn down when the test ends, even
when it fails; nothing is ever added to the machine's own namespace.

:func:`fabric` builds a small routed network: one namespace per node, each with its own
address (a /32 on its loopback), and veth links between nodes, each a /30 with a route to
the other end's node address.  A link can fail for real: taken down (``down``/``up``), or
dropping every packet while its carrier stays up (``drop``/``undrop``: ``tc netem loss
100%`` where the kernel has netem, else a blackhole route to the other node on each side).
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
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import cache
from ipaddress import IPv4Address, IPv4Network
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


@cache
def netem_works() -> bool:
    """Whether ``tc qdisc ... netem`` can be used here (a kernel module that is often
    missing), tried on a veth pair in a namespace of its own."""
    if shutil.which("tc") is None:
        return False
    with namespace("probe") as ns:
        ip("-n", ns, "link", "add", "name", "pa", "type", "veth", "peer", "name", "pb")
        done = subprocess.run(
            ["tc", "-n", ns, "qdisc", "add", "dev", "pa", "root", "netem", "loss", "100%"],
            capture_output=True,
            check=False,
        )
        return done.returncode == 0


_LINKS = IPv4Network("10.99.0.0/16")  # carved into one /30 per link


@dataclass
class Link:
    """A veth pair between the namespaces of nodes ``a`` and ``b`` (a /30 of its own)."""

    a: str
    b: str
    ends: dict[str, tuple[str, str, str]]  # node -> (namespace, interface, its /30 address)
    dropping: bool = False

    def other(self, node: str) -> str:
        return self.b if node == self.a else self.a


@dataclass
class Fabric:
    """Nodes in namespaces of their own, with veth links; see the module docstring."""

    tag: str
    stack: ExitStack
    namespaces: dict[str, str] = field(default_factory=dict)
    addresses: dict[str, str] = field(default_factory=dict)
    links: list[Link] = field(default_factory=list)

    def add_node(self, node: str, address: str) -> str:
        """A namespace for ``node`` with ``address`` (a /32 on its loopback)."""
        ns = self.stack.enter_context(namespace(self.tag))
        ip("-n", ns, "addr", "add", f"{address}/32", "dev", "lo")
        self.namespaces[node] = ns
        self.addresses[node] = address
        return ns

    def connect(self, a: str, b: str) -> Link:
        """A veth link between ``a`` and ``b``, each routing the other's address over it."""
        n = len(self.links)
        if n >= _LINKS.num_addresses // 4:
            raise AssertionError(f"more links than /30s in {_LINKS}")
        base = int(_LINKS.network_address) + 4 * n  # the link's /30
        addr_a, addr_b = str(IPv4Address(base + 1)), str(IPv4Address(base + 2))
        end_a, end_b = veth(self.namespaces[a], f"{addr_a}/30", self.namespaces[b], f"{addr_b}/30")
        link = Link(
            a,
            b,
            {
                a: (self.namespaces[a], end_a, addr_a),
                b: (self.namespaces[b], end_b, addr_b),
            },
        )
        self.links.append(link)
        self._route(link)
        return link

    def link(self, a: str, b: str) -> Link:
        for link in self.links:
            if {link.a, link.b} == {a, b}:
                return link
        raise KeyError(f"no link {a}-{b}")

    def _route(self, link: Link) -> None:
        """Each end reaches the other's node address via the other end of the link."""
        for node in (link.a, link.b):
            ns, _, _ = link.ends[node]
            other = link.other(node)
            via = link.ends[other][2]
            ip("-n", ns, "route", "replace", f"{self.addresses[other]}/32", "via", via)

    def down(self, a: str, b: str) -> None:
        """Take the link down at both ends (carrier lost: nothing crosses it)."""
        for ns, end, _ in self.link(a, b).ends.values():
            ip("-n", ns, "link", "set", end, "down")

    def up(self, a: str, b: str) -> None:
        """Bring the link back; the routes the kernel flushed with it are put back."""
        link = self.link(a, b)
        for ns, end, _ in link.ends.values():
            ip("-n", ns, "link", "set", end, "up")
        if not link.dropping:
            self._route(link)

    def drop(self, a: str, b: str) -> str:
        """Drop every packet across the link, both ways, with the link itself left up;
        returns how ("netem" or "blackhole")."""
        link = self.link(a, b)
        link.dropping = True
        for node, (ns, end, _) in link.ends.items():
            if netem_works():
                _tc("-n", ns, "qdisc", "replace", "dev", end, "root", "netem", "loss", "100%")
            else:
                other = self.addresses[link.other(node)]
                ip("-n", ns, "route", "replace", "blackhole", f"{other}/32")
        return "netem" if netem_works() else "blackhole"

    def undrop(self, a: str, b: str) -> None:
        """Let packets across the link again."""
        link = self.link(a, b)
        link.dropping = False
        for ns, end, _ in link.ends.values():
            if netem_works():
                _tc("-n", ns, "qdisc", "del", "dev", end, "root")
        self._route(link)


def _tc(*args: str) -> None:
    done = subprocess.run(["tc", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise AssertionError(f"tc {' '.join(args)}: {done.stderr.strip()}")


@contextmanager
def fabric(tag: str) -> Iterator[Fabric]:
    """A :class:`Fabric` whose namespaces (and so its links) are all deleted on exit, even
    when building it or the test failed.  Stop the processes running in them first."""
    with ExitStack() as stack:
        yield Fabric(tag, stack)


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
