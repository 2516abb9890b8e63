"""The MAAS API against real ``masc run`` processes, and durability under kill -9
(RFC 2909 §13, §17.1; RFC 2908; docs/maas-api.md).

A top-level domain on 127.0.9.x with a sub-second waiting period claims from the pool on
its own; MAAS clients talk to its Unix socket with ``masc.maas.client``.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from ipaddress import IPv4Network, ip_network
from pathlib import Path
from typing import Any

import pytest
import trio

from masc.api.maas import GrantInfo, MaasError
from masc.maas.client import open_maas_client
from masc.protocol.space import covers, overlaps
from tests.e2e.daemons import Daemon, render

pytestmark = pytest.mark.processes

POOL = "239.192.0.0/14"
TIMERS = 'waiting_period = "500ms"\ninitiate_claim_delay = "100ms"\nclock_skew_grace = "2s"'


def tld_config(node: int, workdir: Path) -> str:
    return render(
        node,
        65201,
        [],
        workdir,
        extra_local=f'global_pool = ["{POOL}"]',
        extra_timers=TIMERS,
        extra_sections='[allocation]\ninitial_size = 256\nclaim_lifetime = "1h"',
    )


@pytest.fixture
def workdir() -> Iterator[Path]:
    # Not tmp_path: its 0700 parents would refuse the unprivileged client below before the
    # socket's own mode could.
    path = Path(tempfile.mkdtemp(prefix="masc-maas-"))
    path.chmod(0o755)
    yield path
    subprocess.run(["rm", "-rf", str(path)], check=False)


@pytest.fixture
def daemon(workdir: Path) -> Iterator[Daemon]:
    d = Daemon(51, tld_config(51, workdir), workdir)
    d.wait_for(lambda r: r.get("event") == "maas_listening", timeout=15)
    yield d
    d.stop()


def maas_socket(workdir: Path, node: int = 51) -> str:
    return str(workdir / f"{node}.maas.sock")


def managed(d: Daemon) -> list[IPv4Network]:
    out = json.loads(d.mascctl("--json", "show", "prefixes").stdout)
    return [IPv4Network(p["prefix"]) for p in out["prefixes"] if p["kind"] == "managed"]


def raw_exchange(path: str, lines: list[bytes]) -> list[dict[str, Any]]:
    """Send raw lines on one connection; one JSON answer per line."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(path)
        answers = []
        reader = s.makefile("rb")
        for line in lines:
            s.sendall(line)
            answers.append(json.loads(reader.readline()))
        return answers


async def test_rfc2908_a_maas_receives_the_domains_space_over_the_socket(
    daemon: Daemon, workdir: Path
) -> None:
    path = maas_socket(workdir)
    async with open_maas_client(path) as client:
        reg = await client.register("madcap-a", ["global"])
        assert reg.domain_id == 65201 and reg.address_family == "ipv4"
        await client.subscribe()
        # Grants come out of the domain's allocated space, once it has some.
        with trio.fail_after(15):
            while not await client.space():
                await trio.sleep(0.05)
        result = await client.request(64)
        assert result.outstanding == 0 or result.granted == []
        await client.report_usage(in_use=30, rate=0.0)
        grants = await client.space()
    space = managed(daemon)
    assert space
    for grant in grants:
        assert any(covers(p, grant.prefix) for p in space), (grant, space)
        assert grant.start == grant.prefix.network_address
        assert grant.state == "active" and grant.expires > time.time()
    assert sum(g.prefix.num_addresses for g in grants) >= 64
    # Another MAAS of the domain never gets an overlapping range.
    async with open_maas_client(path) as other:
        await other.register("madcap-b")
        await other.request(32)
        theirs = await other.space()
    assert theirs
    assert not any(overlaps(a.prefix, b.prefix) for a in grants for b in theirs)


def test_bad_requests_get_structured_errors_and_the_connection_stays_usable(
    daemon: Daemon, workdir: Path
) -> None:
    path = maas_socket(workdir)
    answers = raw_exchange(
        path,
        [
            b"{not json\n",
            b'{"id": 1, "verb": "dance"}\n',
            b'{"id": 2, "verb": "space"}\n',  # before register
            b'{"id": 3, "verb": "request", "args": {"size": "many"}}\n',
            b'{"id": 4, "verb": "x", "pad": "' + b"a" * 70_000 + b'"}\n',
            b'{"id": 5, "verb": "register", "args": {"name": "madcap-z"}}\n',
            b'{"id": 6, "verb": "request", "args": {"size": -1}}\n',
            b'{"id": 7, "verb": "space"}\n',
        ],
    )
    codes = [a.get("error", {}).get("code") for a in answers]
    assert codes == [
        "bad_json",
        "unknown_verb",
        "not_registered",
        "not_registered",  # an unregistered connection may only register
        "too_large",
        None,
        "bad_request",
        None,
    ]
    assert all(a["format_version"] == 1 for a in answers)
    assert answers[5]["ok"] and answers[7]["ok"]
    assert all(a["error"]["message"] for a in answers if not a["ok"])


def test_a_user_outside_the_sockets_group_is_denied_clearly(daemon: Daemon, workdir: Path) -> None:
    """The socket is 0660 root:root; an unprivileged process gets a clear error."""
    path = maas_socket(workdir)
    assert os.stat(path).st_mode & 0o777 == 0o660
    script = (
        "import os, trio\n"
        "from masc.maas.client import open_maas_client\n"
        "from masc.api.maas import MaasError\n"
        "os.setgroups([]); os.setgid(65534); os.setuid(65534)\n"
        "async def main():\n"
        "    try:\n"
        f"        async with open_maas_client({path!r}) as c:\n"
        "            await c.register('intruder')\n"
        "    except MaasError as e:\n"
        "        print(e.code); print(e.message)\n"
        "trio.run(main)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True
    )
    code, message = out.stdout.splitlines()[:2]
    assert code == "permission_denied"
    assert path in message and "group" in message


# --- §13: kill -9 at random moments ---------------------------------------------------------


KILLS = 50


async def _maas_session(
    path: str, name: str, usage: int, received: dict[str, dict[str, GrantInfo]]
) -> None:
    """Register, note every grant and revocation, grow usage and ask for space until the
    process is killed under us."""
    mine = received.setdefault(name, {})
    try:
        async with open_maas_client(path) as client:
            reg = await client.register(name)
            for g in reg.grants:
                mine[str(g.prefix)] = g
            for g in await client.subscribe():
                mine[str(g.prefix)] = g

            async def follow() -> None:
                async for event in client.events():
                    if event.event == "revoked":
                        mine.pop(str(event.grant.prefix), None)
                    else:
                        mine[str(event.grant.prefix)] = event.grant

            async with trio.open_nursery() as nursery:
                nursery.start_soon(follow)
                while True:
                    usage += 16
                    await client.report_usage(in_use=usage, rate=5.0)
                    result = await client.request(16)
                    for g in result.granted:
                        mine[str(g.prefix)] = g
                    await trio.sleep(0.02)
    except MaasError as error:
        if error.code not in ("disconnected", "unavailable"):
            raise


async def _ready(path: str) -> None:
    with trio.fail_after(20):
        while True:
            try:
                stream = await trio.open_unix_socket(path)
            except OSError:
                await trio.sleep(0.02)
                continue
            await stream.aclose()
            return


async def test_s13_kill_9_at_random_moments_loses_and_duplicates_nothing(workdir: Path) -> None:
    """50 times: start the daemon on the same store, let two MAASs take grants while the
    domain claims more space, SIGKILL it at a random moment.  After every restart each
    grant a MAAS was told of (and not revoked) is still its own, no two grants overlap,
    and every prefix the daemon logged as allocated is still held (it was on disk before
    it was announced)."""
    rng = random.Random(20261121)
    print("seed 20261121")
    d = Daemon(52, tld_config(52, workdir), workdir)
    path = maas_socket(workdir, 52)
    received: dict[str, dict[str, GrantInfo]] = {}
    try:
        for cycle in range(KILLS + 1):
            if cycle:
                d.start()
            await _ready(path)
            # After a restart: everything told before is still there, nothing twice.
            for name, told in received.items():
                async with open_maas_client(path) as check:
                    now_held = {str(g.prefix) for g in (await check.register(name)).grants}
                kept = {p for p, g in told.items() if g.expires > time.time() + 5}
                assert kept <= now_held, f"cycle {cycle}: {name} lost {kept - now_held}"
            if cycle == KILLS:
                break
            alive = 0.05 + rng.random() * 0.6
            async with trio.open_nursery() as nursery:
                for i, name in enumerate(("madcap-a", "madcap-b")):
                    nursery.start_soon(_maas_session, path, name, 16 * i, received)
                await trio.sleep(alive)
                assert d.proc is not None
                d.proc.kill()
                d.proc.wait()
                nursery.cancel_scope.cancel()
        # The final picture: grants disjoint, inside the held space; logged allocations held.
        space = managed(d)
        async with open_maas_client(path) as check:
            a = (await check.register("madcap-a")).grants
        async with open_maas_client(path) as check:
            b = (await check.register("madcap-b")).grants
        everything = [g.prefix for g in a + b]
        for i, x in enumerate(everything):
            assert not any(overlaps(x, y) for y in everything[i + 1 :]), x
            assert any(covers(p, x) for p in space), (x, space)
        allocated = {
            ip_network(r["prefix"])
            for r in d.records
            if r.get("event") == "prefix_allocated" and r.get("expires", 0) > time.time() + 5
        }
        restarts = [r for r in d.records if r.get("event") == "restored"]
        assert len(restarts) == KILLS + 1
        for prefix in allocated:
            assert any(covers(p, prefix) for p in space), (prefix, space)  # type: ignore[arg-type]
        assert len(space) == len(set(space))
        granted = sum(len(told) for told in received.values())
        print(f"{granted} grants held, {len(allocated)} prefixes allocated over {KILLS} kills")
        # The loop did real work: the domain grew and the MAASs took many grants.
        assert granted >= 20 and len(allocated) >= 2
    finally:
        d.stop()
