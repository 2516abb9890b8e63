"""The ``frr`` exporter: the G-RIB as ``network`` statements of the local FRR bgpd.

FRR originates multicast-SAFI routes only from ``network`` statements under ``address-family
ipv4 multicast`` (``ipv6 multicast``); there is no redistribution into that family.  masc
marks the statements it owns with ``route-map <route_map>`` (a permit-all route-map it
creates), so an operator's own statements are never changed, and reads them back from the
running configuration.  ``verify`` reads ``show bgp ipv4|ipv6 multicast json``: each prefix
must be there as a valid, locally sourced route, or the sync is reported as failed (bgpd's
``bgp network import-check`` hides a network with no matching IGP route, and a route-map
of the same name that denies hides it too: docs/grib.md).
The running configuration is not written to disk; masc re-adds its statements after a
bgpd restart at the next resync.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from ipaddress import ip_network

import trio

from masc.config import GribFrrConfig
from masc.daemon.grib.table import GribError
from masc.protocol.wire.messages import Prefix

_AFI = {4: "ipv4", 6: "ipv6"}
_ROUTER = re.compile(r"^router bgp (\d+)\s*$")  # the default VRF's instance only
_FAMILY = re.compile(r"^ address-family (ipv4|ipv6) multicast\s*$")
_NETWORK = re.compile(r"^  network (\S+)(.*)$")
# A local route in `show bgp ... json` has no peer.
_LOCAL_PEER = "(unspec)"


class FrrTarget:
    name = "frr"

    def __init__(self, config: GribFrrConfig) -> None:
        self.config = config
        # The operator's own statements (anything but exactly `route-map <tag>` after the
        # prefix: none, another route-map, backdoor, label-index...): never changed.
        self.foreign: set[Prefix] = set()
        # The instance the last read found (the configured one, or the default VRF's):
        # masc writes only into an instance that exists, never creates one.
        self.asn: int | None = None

    async def installed(self) -> set[Prefix]:
        statements = await self._statements()
        ours = {
            prefix for prefix, rest in statements if rest == f"route-map {self.config.route_map}"
        }
        self.foreign = {prefix for prefix, _ in statements} - ours
        return ours

    async def apply(self, add: Sequence[Prefix], delete: Sequence[Prefix]) -> None:
        if self.asn is None:  # the read before (installed) found no instance to write to
            raise GribError(self._no_instance())
        tag = self.config.route_map
        commands = ["configure terminal", f"route-map {tag} permit 10", "exit"]
        commands.append(f"router bgp {self.asn}")
        for version, afi in _AFI.items():
            lines = [f"network {p} route-map {tag}" for p in add if p.version == version]
            lines += [f"no network {p} route-map {tag}" for p in delete if p.version == version]
            if lines:
                commands += [f"address-family {afi} multicast", *lines, "exit-address-family"]
        commands.append("end")
        await self._vtysh(*commands)

    async def verify(self, desired: frozenset[Prefix]) -> list[str]:
        if not self.config.verify:
            return []
        ours = await self.installed()
        problems = [
            f"no `network {p}` statement of masc's"
            for p in sorted(desired - ours - self.foreign, key=str)
        ]
        problems += [
            f"`network {p}` of masc's still there" for p in sorted(ours - desired, key=str)
        ]
        for version, afi in _AFI.items():
            # The operator's statements are the operator's to check.
            wanted = {p for p in desired - self.foreign if p.version == version}
            if not wanted:
                continue
            routes = await self._routes(afi)
            for prefix in sorted(wanted, key=str):
                paths = routes.get(str(prefix), [])
                if not any(_is_local(path) for path in paths):
                    problems.append(
                        f"{prefix} is not a valid local route in `show bgp {afi} multicast`"
                        f" (bgp network import-check on? route-map {self.config.route_map}"
                        " denying it?)"
                    )
        return problems

    async def _routes(self, afi: str) -> dict[str, list[object]]:
        text = await self._vtysh(f"show bgp {afi} multicast json")
        try:
            table = json.loads(text or "{}")
        except ValueError as error:
            raise GribError(f"`show bgp {afi} multicast json` is not JSON: {error}") from error
        if not isinstance(table, dict):
            raise GribError(f"`show bgp {afi} multicast json` is not a JSON object")
        if "warning" in table and "routes" not in table:
            raise GribError(f"`show bgp {afi} multicast json`: {table['warning']}")
        routes = table.get("routes", {})
        if not isinstance(routes, dict):
            raise GribError(f"`show bgp {afi} multicast json`: routes is not an object")
        return routes

    async def _statements(self) -> list[tuple[Prefix, str]]:
        """The ``network`` statements under the multicast families of ``router bgp``, each
        with what follows its prefix; sets :attr:`asn` to the instance found, or None."""
        config = await self._vtysh("show running-config")
        wanted = self.config.asn
        self.asn = None
        found: list[tuple[Prefix, str]] = []
        in_router = in_family = False
        for line in config.splitlines():
            router = _ROUTER.match(line)
            if router:
                asn = int(router.group(1))
                in_router = wanted is None or asn == wanted
                if in_router:
                    self.asn = asn
                continue
            if not line.startswith(" "):
                in_router = in_family = False
                continue
            if in_router and _FAMILY.match(line):
                in_family = True
            elif line.startswith(" exit-address-family"):
                in_family = False
            elif in_router and in_family:
                network = _NETWORK.match(line)
                if network:
                    try:
                        prefix = ip_network(network.group(1))
                    except ValueError as error:
                        raise GribError(f"running-config: {line.strip()!r}: {error}") from error
                    found.append((prefix, network.group(2).strip()))
        return found

    def _no_instance(self) -> str:
        wanted = self.config.asn
        if wanted is None:
            return "bgpd has no `router bgp` instance in its default VRF (masc never creates one)"
        return f"bgpd has no `router bgp {wanted}` ([grib.frr] asn; masc never creates one)"

    async def _vtysh(self, *commands: str) -> str:
        c = self.config
        argv = [str(c.vtysh)]
        if c.vty_socket is not None:
            argv += ["--vty_socket", str(c.vty_socket)]
        if c.pathspace is not None:
            argv += ["-N", c.pathspace]
        argv += ["-d", "bgpd"]
        for command in commands:
            argv += ["-c", command]
        try:
            with trio.fail_after(c.timeout):
                done = await trio.run_process(
                    argv, capture_stdout=True, capture_stderr=True, check=False
                )
        except trio.TooSlowError:
            raise GribError(f"vtysh did not answer within {c.timeout:g}s") from None
        except OSError as error:
            raise GribError(f"cannot run {c.vtysh}: {error}") from error
        out = done.stdout.decode(errors="replace")
        err = done.stderr.decode(errors="replace").strip()
        # vtysh reports a refused command with a "%" line, not always with its exit status.
        refused = [line for line in out.splitlines() if line.startswith("%")]
        if done.returncode != 0 or refused:
            why = "; ".join([*refused, err]) or f"exit status {done.returncode}"
            raise GribError(f"vtysh {commands[0]!r}...: {why}")
        return out


def _is_local(path: object) -> bool:
    return isinstance(path, dict) and bool(path.get("valid")) and path.get("peerId") == _LOCAL_PEER
