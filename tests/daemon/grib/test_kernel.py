"""The kernel exporter against a real routing table, in a network namespace of the test's
own: masc's routes are blackholes with its table and protocol, and nothing else is touched."""

from __future__ import annotations

import json
from ipaddress import ip_network

import trio

from masc.config import GribKernelConfig
from masc.daemon.grib import GribTable
from masc.daemon.grib.kernel import KernelTarget
from tests.netns_kit import ip

TABLE, PROTO = 2587, 245
V4, V6 = ip_network("239.192.4.0/22"), ip_network("ff3e:40::/32")


def _routes(netns: str, *family: str) -> list[dict[str, object]]:
    out = ip("-n", netns, "-j", *family, "route", "show", "table", "all")
    return [r for r in json.loads(out or "[]") if r.get("table") not in ("local",)]


def _target(netns: str) -> KernelTarget:
    return KernelTarget(GribKernelConfig(enabled=True, table=TABLE, protocol=PROTO), netns=netns)


async def test_prefixes_become_blackhole_routes_of_masc_s_table_and_protocol(netns: str) -> None:
    target = _target(netns)
    await target.apply([V4, V6], [])
    assert await target.installed() == {V4, V6}
    v4 = [r for r in _routes(netns) if r.get("dst") == str(V4)]
    v6 = [r for r in _routes(netns, "-6") if r.get("dst") == str(V6)]
    assert len(v4) == 1 and len(v6) == 1
    for route in (v4[0], v6[0]):
        assert route["type"] == "blackhole"
        assert route["table"] == str(TABLE)
        assert route["protocol"] == str(PROTO)
    assert await target.verify(frozenset({V4, V6})) == []
    await target.apply([], [V4, V6])
    assert await target.installed() == set()
    assert not [r for r in _routes(netns) if r.get("dst") == str(V4)]


async def test_sync_never_touches_routes_it_did_not_create(netns: str) -> None:
    # Another daemon's route in masc's table, and a route with masc's protocol elsewhere.
    ip("-n", netns, "route", "add", "blackhole", "239.200.0.0/16", "table", str(TABLE))
    ip("-n", netns, "route", "add", "blackhole", "239.201.0.0/16", "table", "100",
       "proto", str(PROTO))  # fmt: skip
    # A stale route of masc's (allocated before a crash, gone since).
    ip("-n", netns, "route", "add", "blackhole", "239.202.0.0/16", "table", str(TABLE),
       "proto", str(PROTO))  # fmt: skip
    target = _target(netns)
    table = GribTable([target])
    table.inject(V4)
    async with trio.open_nursery() as nursery:
        await nursery.start(table.run)
        await table.syncs[0].synced.wait()
        nursery.cancel_scope.cancel()
    dsts = {(r["dst"], r.get("table", "main")) for r in _routes(netns)}
    assert (str(V4), str(TABLE)) in dsts
    assert ("239.200.0.0/16", str(TABLE)) in dsts
    assert ("239.201.0.0/16", "100") in dsts
    assert ("239.202.0.0/16", str(TABLE)) not in dsts


async def test_verify_reports_a_route_deleted_behind_masc_s_back(netns: str) -> None:
    target = _target(netns)
    await target.apply([V4], [])
    ip("-n", netns, "route", "del", str(V4), "table", str(TABLE))
    assert await target.verify(frozenset({V4})) == [f"{V4} missing from table {TABLE}"]


async def test_a_route_of_another_protocol_at_a_wanted_destination_is_left_as_it_is(
    netns: str,
) -> None:
    """Another daemon's route for a prefix masc wants: counted present, never taken over
    (a `replace` would turn it into masc's), never deleted when masc lets the prefix go."""
    for family in ([], ["-6"]):
        dst = str(V4) if not family else str(V6)
        ip("-n", netns, *family, "route", "add", "blackhole", dst, "table", str(TABLE),
           "proto", "static")  # fmt: skip
    target = _target(netns)
    table = GribTable([target])
    table.inject(V4)
    table.inject(V6)
    async with trio.open_nursery() as nursery:
        await nursery.start(table.run)
        await table.syncs[0].synced.wait()
        assert table.statuses[0].in_sync
        table.remove(V4)
        table.remove(V6)
        await table.syncs[0].synced.wait()
        nursery.cancel_scope.cancel()
    for family, dst in (([], str(V4)), (["-6"], str(V6))):
        routes = [r for r in _routes(netns, *family) if r.get("dst") == dst]
        assert [(r["protocol"], r["table"]) for r in routes] == [("static", str(TABLE))]
