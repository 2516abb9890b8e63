"""The ``kernel`` exporter: the G-RIB as routes in a routing table of masc's own.

Each allocated prefix becomes a ``blackhole`` route (the discard route a BGP speaker keeps
for a prefix it originates) in ``[grib.kernel] table`` with ``protocol``; the pair is how
masc knows its routes, and it never reads or changes any other.  A local BGP speaker or a
script can take the prefixes from there; nothing routes by that table unless a rule says so.
Netlink calls are quick but blocking, so they run in a worker thread.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Sequence
from ipaddress import ip_network

import trio
from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from masc.config import GribKernelConfig
from masc.daemon.grib.table import GribError
from masc.protocol.wire.messages import Prefix

_FAMILIES = (socket.AF_INET, socket.AF_INET6)


class KernelTarget:
    name = "kernel"

    def __init__(self, config: GribKernelConfig, *, netns: str | None = None) -> None:
        """``netns``: a named network namespace to write to instead of the daemon's own
        (the tests use one of their own)."""
        self.netns = netns
        self.table = config.table
        self.protocol = config.protocol
        # Routes are told apart by table and protocol: the table's routes of any other
        # protocol are someone else's (as the last read found them).
        self.foreign: set[Prefix] = set()

    async def installed(self) -> set[Prefix]:
        return await trio.to_thread.run_sync(self._dump)

    async def apply(self, add: Sequence[Prefix], delete: Sequence[Prefix]) -> None:
        await trio.to_thread.run_sync(self._apply, list(add), list(delete))

    async def verify(self, desired: frozenset[Prefix]) -> list[str]:
        have = await self.installed()
        missing = desired - have - self.foreign
        problems = [f"{p} missing from table {self.table}" for p in sorted(missing, key=str)]
        problems += [f"{p} still in table {self.table}" for p in sorted(have - desired, key=str)]
        return problems

    def _dump(self) -> set[Prefix]:
        """masc's routes in the table; the table's other routes go to ``foreign``."""
        ours: set[Prefix] = set()
        others: set[Prefix] = set()
        try:
            with self._ipr() as ipr:
                for family in _FAMILIES:
                    for route in ipr.route("dump", family=family, table=self.table):
                        zero = "0.0.0.0" if family == socket.AF_INET else "::"
                        dst = route.get("RTA_DST") or zero
                        prefix = ip_network(f"{dst}/{route['dst_len']}")
                        (ours if route["proto"] == self.protocol else others).add(prefix)
        except Exception as error:  # pyroute2's errors are not all NetlinkError
            raise GribError(f"cannot read routing table {self.table}: {error}") from error
        self.foreign = others - ours
        return ours

    def _apply(self, add: list[Prefix], delete: list[Prefix]) -> None:
        try:
            with self._ipr() as ipr:
                for prefix in add:
                    # add, not replace: replace would take over a route of another
                    # protocol for the same destination (RTM_NEWROUTE matches no protocol).
                    try:
                        ipr.route("add", **self._route(prefix))
                    except NetlinkError as error:
                        if error.code == errno.EEXIST:
                            raise GribError(
                                f"{prefix} is already in table {self.table}, not as masc's"
                            ) from error
                        raise
                for prefix in delete:
                    try:
                        # The protocol is part of the match: only masc's route goes.
                        ipr.route("del", **self._route(prefix))
                    except NetlinkError as error:
                        if error.code != errno.ESRCH:  # already gone: what we wanted
                            raise
        except GribError:
            raise
        except Exception as error:
            raise GribError(f"cannot change routing table {self.table}: {error}") from error

    def _ipr(self) -> IPRoute:
        return IPRoute() if self.netns is None else IPRoute(netns=self.netns)

    def _route(self, prefix: Prefix) -> dict[str, object]:
        return {
            "dst": str(prefix),
            "family": socket.AF_INET if prefix.version == 4 else socket.AF_INET6,
            "table": self.table,
            "proto": self.protocol,
            "type": "blackhole",
        }
