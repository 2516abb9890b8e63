"""The trio MAAS client (masc/maas/client.py) against a real MaasServer on a Unix socket,
with the fake backend of tests/daemon/test_maas_server.py."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from ipaddress import ip_network
from pathlib import Path

import pytest
import trio

from masc.api.maas import UsageReport
from masc.daemon.maas import MaasServer
from masc.maas.client import MaasError, open_maas_client
from tests.daemon.test_maas_server import GRANT_A, GRANT_B, WAIT, FakeBackend, serve


async def test_a_maas_registers_reads_its_space_and_follows_events(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    path = tmp_path / "maas.sock"
    _, backend = await serve(nursery, path)
    async with open_maas_client(path) as maas:
        hello = await maas.register("madcap-a", ["global", "admin"])
        assert (hello.name, hello.domain_id, hello.node_id, hello.address_family) == (
            "madcap-a",
            64600,
            "192.0.2.1",
            "ipv4",
        )
        assert hello.grants == [GRANT_A]
        assert backend.registered == [("madcap-a", ["global", "admin"])]
        assert await maas.space() == [GRANT_A]
        assert await maas.subscribe() == [GRANT_A]
        await maas.report_usage(40, 0.5, {ip_network("239.192.4.0/26"): 40})
        assert backend.usage == [
            (
                "madcap-a",
                UsageReport(in_use=40, rate=0.5, by_prefix={ip_network("239.192.4.0/26"): 40}),
            )
        ]
        result = await maas.request(128)
        assert result.granted == [GRANT_B] and result.outstanding == 64
        backend.push("madcap-a", "deprecated", reason="not renewed")
        with trio.fail_after(WAIT):
            event = await anext(maas.events())
        assert (event.event, event.maas, event.grant, event.reason) == (
            "deprecated",
            "madcap-a",
            GRANT_B,
            "not renewed",
        )
    with trio.fail_after(WAIT):
        await backend.gone["madcap-a"].wait()  # closing the client unregisters


async def test_an_error_response_raises_maas_error_with_its_code(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    path = tmp_path / "maas.sock"
    await serve(nursery, path)
    async with open_maas_client(path) as maas:
        with pytest.raises(MaasError) as caught:
            await maas.space()
        assert caught.value.code == "not_registered"
        await maas.register("madcap-a")
        with pytest.raises(MaasError) as caught:
            await maas.request(1 << 20)
        assert caught.value.code == "no_space" and "more than" in caught.value.message
        with pytest.raises(MaasError) as caught:
            await maas.call("launch")
        assert caught.value.code == "unknown_verb"
        assert await maas.space() == [GRANT_A]  # still usable


async def test_an_oversized_request_is_refused_before_it_is_sent(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    path = tmp_path / "maas.sock"
    await serve(nursery, path)
    async with open_maas_client(path) as maas:
        await maas.register("madcap-a")
        huge = {f"239.{i >> 8 & 255}.{i & 255}.0/24": 1 for i in range(5000)}
        with pytest.raises(MaasError) as caught:
            await maas.report_usage(5000, 0.0, huge)
        assert caught.value.code == "too_large"
        assert await maas.space() == [GRANT_A]


async def test_concurrent_requests_from_many_tasks_get_their_own_answers(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    path = tmp_path / "maas.sock"
    _, backend = await serve(nursery, path)
    async with open_maas_client(path) as maas:
        await maas.register("slow-a")  # its requests wait for backend.release
        answers: dict[int, int] = {}

        async def ask(size: int) -> None:
            answers[size] = (await maas.request(size)).outstanding

        async with trio.open_nursery() as tasks:
            for size in (300, 100, 200):
                tasks.start_soon(ask, size)
            with trio.fail_after(WAIT):
                await backend.waiting.wait()
            assert answers == {}
            backend.release.set()
        assert answers == {100: 36, 200: 136, 300: 236}
        assert sorted(size for _, size in backend.requests) == [100, 200, 300]


async def test_a_cancelled_request_leaves_the_connection_usable(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    path = tmp_path / "maas.sock"
    _, backend = await serve(nursery, path)
    async with open_maas_client(path) as maas:
        await maas.register("slow-a")
        async with trio.open_nursery() as tasks:
            tasks.start_soon(maas.request, 64)
            with trio.fail_after(WAIT):
                await backend.waiting.wait()
            tasks.cancel_scope.cancel()  # the caller gives up; the daemon still answers
        backend.release.set()
        # The late answer to the cancelled request is skipped, not taken for this one.
        assert await maas.space() == [GRANT_A, GRANT_B]


async def test_the_daemon_going_away_ends_events_with_disconnected(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    path = tmp_path / "maas.sock"
    server_scope = trio.CancelScope()

    async def run_server(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with server_scope:
            await MaasServer(FakeBackend(), path).serve(task_status=task_status)

    await nursery.start(run_server)
    async with open_maas_client(path) as maas:
        await maas.register("madcap-a")
        await maas.subscribe()
        server_scope.cancel()
        with trio.fail_after(WAIT), pytest.raises(MaasError) as caught:
            async for _ in maas.events():
                pass
        assert caught.value.code == "disconnected"
        assert str(path) in caught.value.message
        with pytest.raises(MaasError) as caught:
            await maas.space()
        assert caught.value.code == "disconnected"


async def test_an_exception_in_the_block_comes_out_unwrapped(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    path = tmp_path / "maas.sock"
    await serve(nursery, path)
    with pytest.raises(KeyError):
        async with open_maas_client(path):
            raise KeyError("mine")
    with pytest.raises(MaasError) as caught:
        async with open_maas_client(path) as maas:
            await maas.space()
    assert caught.value.code == "not_registered"


async def test_a_busy_daemon_is_reported_as_busy(nursery: trio.Nursery, tmp_path: Path) -> None:
    path = tmp_path / "maas.sock"
    await serve(nursery, path, max_clients=1)
    async with open_maas_client(path) as first:
        await first.register("madcap-a")
        async with open_maas_client(path) as second:
            with pytest.raises(MaasError) as caught:
                await second.register("madcap-b")
            assert caught.value.code == "busy"


# --- the socket cannot be opened ---------------------------------------------------------------


async def test_no_socket_file_is_unavailable_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "maas.sock"
    with pytest.raises(MaasError) as caught:
        async with open_maas_client(path):
            pass
    assert caught.value.code == "unavailable"
    assert str(path) in caught.value.message
    assert "masc run" in caught.value.message and "[maas] socket" in caught.value.message


async def test_a_socket_nobody_listens_on_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "maas.sock"
    with socket.socket(socket.AF_UNIX) as left_over:
        left_over.bind(str(path))  # what a crashed daemon leaves: connect is refused
        with pytest.raises(MaasError) as caught:
            async with open_maas_client(path):
                pass
    assert caught.value.code == "unavailable" and str(path) in caught.value.message


CHILD = """
import os, sys
import trio
from masc.maas.client import MaasError, open_maas_client

os.setgroups([])
os.setgid(65534)
os.setuid(65534)

async def main():
    try:
        async with open_maas_client(sys.argv[1]) as maas:
            await maas.register("nobody")
        print("registered")
    except MaasError as error:
        print(error.code)
        print(error.message)

trio.run(main)
"""


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory every user may enter: under tmp_path (mode 0700 parents), another user
    would be refused by the directory, not by the socket this test is about."""
    path = Path(tempfile.mkdtemp(prefix="masc-maas-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a child as another user")
async def test_a_user_outside_the_group_gets_permission_denied(
    nursery: trio.Nursery, public_dir: Path
) -> None:
    path = public_dir / "maas.sock"
    await serve(nursery, path)  # 0660 root:root; the child runs as 65534:65534, no groups

    async def child() -> list[str]:
        done = await trio.run_process(
            [sys.executable, "-c", CHILD, str(path)],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode()
        return done.stdout.decode().splitlines()

    with trio.fail_after(60):
        code, message = await child()
    assert code == "permission_denied"
    assert str(path) in message and "group" in message
    # The same user once the socket lets others in: it was the socket's mode that refused.
    path.chmod(0o666)
    with trio.fail_after(60):
        assert await child() == ["registered"]
