"""The FRR exporter against a real bgpd (FRR, no zebra) in a namespace of the test's own:
``network`` statements under the multicast address families, tagged with masc's route-map,
read back from the running configuration and from ``show bgp ... multicast json``; a second
bgpd peering over the ipv4/ipv6 multicast families receives what the first originates."""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import ip_network
from pathlib import Path

import pytest
import trio

from masc.config import GribFrrConfig
from masc.daemon.grib import GribError, GribTable
from masc.daemon.grib.frr import FrrTarget
from tests.netns_kit import Bgpd, ip, namespace, veth

V4, V6 = ip_network("239.192.4.0/22"), ip_network("ff3e:40::/32")
OPERATORS = ip_network("233.252.0.0/24")  # the operator's own statements
BACKDOOR = ip_network("233.252.1.0/24")

ROUTER = """\
router bgp {asn}
 bgp router-id {rid}
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor {peer} remote-as {peer_asn}
 neighbor fd00::{peer_n} remote-as {peer_asn}
 address-family ipv4 multicast
  {operator}
  neighbor {peer} activate
 exit-address-family
 address-family ipv6 multicast
  neighbor fd00::{peer_n} activate
 exit-address-family
"""


def _config(n: int, *, operator: bool = False, deny: bool = False) -> str:
    peer_n = 2 if n == 1 else 1
    # An operator's route-map of masc's name that denies: bgpd then originates nothing.
    extra = "route-map MASC-GRIB deny 5\n" if deny else ""
    return extra + ROUTER.format(
        asn=65000 + n,
        rid=f"10.99.0.{n}",
        peer=f"10.99.0.{peer_n}",
        peer_n=peer_n,
        peer_asn=65000 + peer_n,
        operator=f"network {OPERATORS}\n  network {BACKDOOR} backdoor" if operator else "",
    )


@pytest.fixture
def pair(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Bgpd, Bgpd]]:
    options = getattr(request, "param", {})
    with namespace("frr1") as one, namespace("frr2") as two:
        a, b = veth(one, "10.99.0.1/24", two, "10.99.0.2/24")
        ip("-n", one, "addr", "add", "fd00::1/64", "dev", a, "nodad")
        ip("-n", two, "addr", "add", "fd00::2/64", "dev", b, "nodad")
        first = Bgpd(one, tmp_path / "one", _config(1, **options))
        second = Bgpd(two, tmp_path / "two", _config(2))
        try:
            yield first, second
        finally:
            first.stop()
            second.stop()


def _target(bgpd: Bgpd, **overrides: object) -> FrrTarget:
    return FrrTarget(GribFrrConfig(enabled=True, vty_socket=bgpd.workdir, **overrides))


async def test_prefixes_become_tagged_network_statements_and_reach_the_peer(
    pair: tuple[Bgpd, Bgpd],
) -> None:
    first, second = pair
    target = _target(first)
    assert await target.installed() == set()  # a sync reads before it writes
    await target.apply([V4, V6], [])
    assert await target.installed() == {V4, V6}
    config = first.vtysh("show running-config")
    assert f"  network {V4} route-map MASC-GRIB" in config
    assert f"  network {V6} route-map MASC-GRIB" in config
    assert await target.verify(frozenset({V4, V6})) == []
    # RFC 2909 §3: the second domain's BGP speaker learns the group prefix (SAFI 2).
    second.wait_routes({str(V4)})
    second.wait_routes({str(V6)}, afi="ipv6")
    await target.apply([], [V4, V6])
    assert await target.installed() == set()
    second.wait_routes(set())
    second.wait_routes(set(), afi="ipv6")


@pytest.mark.parametrize("pair", [{"operator": True}], indirect=True)
async def test_the_operators_own_statements_are_never_touched(pair: tuple[Bgpd, Bgpd]) -> None:
    """A plain `network P` and one with other options (backdoor) are the operator's: masc
    neither re-tags them when it wants the prefix nor removes them when it lets it go."""
    first, _ = pair
    target = _target(first)
    table = GribTable([target])
    for prefix in (OPERATORS, BACKDOOR, V4):
        table.inject(prefix)
    async with trio.open_nursery() as nursery:
        await nursery.start(table.run)
        with trio.move_on_after(10):
            await table.syncs[0].synced.wait()
        assert table.statuses[0].in_sync, table.statuses[0].last_error  # not hung on retries
        assert table.statuses[0].installed == 1  # V4; the other two are the operator's
        for prefix in (OPERATORS, BACKDOOR, V4):
            table.remove(prefix)
        with trio.fail_after(10):
            await table.syncs[0].synced.wait()
        nursery.cancel_scope.cancel()
    config = first.vtysh("show running-config")
    assert f"  network {OPERATORS}\n" in config
    assert f"  network {BACKDOOR} backdoor\n" in config
    assert str(V4) not in config


async def test_no_bgp_instance_is_an_error_and_masc_never_creates_one(tmp_path: Path) -> None:
    with namespace("frr0") as ns:
        bare = Bgpd(ns, tmp_path / "bare", "hostname bare\n")
        try:
            for target, asn in ((_target(bare), ""), (_target(bare, asn=65009), " 65009")):
                table = GribTable([target])
                table.inject(V4)
                async with trio.open_nursery() as nursery:
                    await nursery.start(table.run)
                    await trio.sleep(0.5)
                    nursery.cancel_scope.cancel()
                status = table.statuses[0]
                assert not status.in_sync
                assert f"bgpd has no `router bgp{asn}`" in status.last_error
            assert "router bgp" not in bare.vtysh("show running-config")
        finally:
            bare.stop()


@pytest.mark.parametrize("pair", [{"deny": True}], indirect=True)
async def test_verify_reports_a_network_that_bgp_does_not_originate(
    pair: tuple[Bgpd, Bgpd],
) -> None:
    first, _ = pair
    target = _target(first)
    await target.installed()
    await target.apply([V4], [])
    problems = await target.verify(frozenset({V4}))
    assert problems == [
        f"{V4} is not a valid local route in `show bgp ipv4 multicast`"
        " (bgp network import-check on? route-map MASC-GRIB denying it?)"
    ]


async def test_a_wrong_asn_or_a_missing_vtysh_is_a_grib_error(pair: tuple[Bgpd, Bgpd]) -> None:
    first, _ = pair
    wrong = _target(first, asn=64999)
    assert await wrong.installed() == set()
    with pytest.raises(GribError, match="no `router bgp 64999`"):
        await wrong.apply([V4], [])
    assert "router bgp 64999" not in first.vtysh("show running-config")
    with pytest.raises(GribError, match="cannot run"):
        await _target(first, vtysh=Path("/nonexistent/vtysh")).installed()


@pytest.mark.parametrize(
    ("output", "status", "problem"),
    [
        ("% Unknown command: netwrk", 0, "% Unknown command"),  # refused, exit status 0
        ("", 1, "exit status 1"),
        ("router bgp 65001\n address-family ipv4 multicast\n  network 300.1.0.0/16\n", 0,
         "running-config"),
    ],
)  # fmt: skip
async def test_what_vtysh_refuses_or_garbles_is_a_grib_error(
    tmp_path: Path, output: str, status: int, problem: str
) -> None:
    fake = tmp_path / "vtysh"
    fake.write_text(f"#!/bin/sh\nprintf '%s\\n' '{output}'\nexit {status}\n")
    fake.chmod(0o755)
    with pytest.raises(GribError, match=problem):
        await _target_at(fake).installed()


async def test_show_bgp_that_is_not_json_is_a_grib_error(tmp_path: Path) -> None:
    fake = tmp_path / "vtysh"
    fake.write_text("#!/bin/sh\necho 'not json'\n")
    fake.chmod(0o755)
    with pytest.raises(GribError, match="not JSON"):
        await _target_at(fake).verify(frozenset({V4}))


def _target_at(vtysh: Path) -> FrrTarget:
    return FrrTarget(GribFrrConfig(enabled=True, vtysh=vtysh))
