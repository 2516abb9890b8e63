"""Reloads and operator actions against an in-process Daemon on loopback, at the awkward
moments a review found: during the §12.1 start-up wait, during shutdown, and with a change
only a restart can apply.  Real sockets on 127.0.9.9x, tiny timers."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trio

from masc.config import load_config
from masc.daemon.errors import ReloadRefused
from masc.daemon.main import Daemon
from masc.protocol.session import State

ME, INTERNAL, CHILD, OTHER_CHILD = "127.0.9.90", "127.0.9.91", "127.0.9.92", "127.0.9.93"


def config_text(workdir: Path, peers: list[tuple[str, str, int]]) -> str:
    lines = [
        "[local]",
        "domain_id = 65090",
        f'node_id = "{ME}"',
        f'listen = ["{ME}"]',
        "port = 3590",
        "[timers]",
        "hold_time = 3",
        "connect_retry = 2",
        "[control]",
        f'socket = "{workdir}/c.sock"',
        "[maas]",
        f'socket = "{workdir}/m.sock"',
    ]
    for address, relation, domain in peers:
        lines += [
            "[[peers]]",
            f'address = "{address}"',
            f'relation = "{relation}"',
            f"domain_id = {domain}",
            "port = 3590",
        ]
    return "\n".join(lines) + "\n"


BOTH = [(INTERNAL, "internal", 65090), (CHILD, "child", 65091)]


@pytest.fixture
def workdir() -> Iterator[Path]:
    """Short, under /tmp: the control socket's path must fit AF_UNIX's 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="masc-dr-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def daemon(workdir: Path) -> AsyncIterator[Daemon]:
    path = workdir / "masc.toml"
    path.write_text(config_text(workdir, BOTH))
    d = Daemon(load_config(path), config_path=path)
    async with trio.open_nursery() as nursery:
        await nursery.start(d.serve)
        yield d
        nursery.cancel_scope.cancel()


async def test_s12_1_a_reload_during_the_start_up_wait_removes_a_late_peer_cleanly(
    daemon: Daemon, workdir: Path
) -> None:
    """The internal peer never answers, so children wait one ConnectRetry (§12.1); the
    child removed meanwhile must not be started, nor the daemon end with a KeyError."""
    child = daemon.runners[(CHILD, None)]
    assert daemon.config_path is not None
    daemon.config_path.write_text(config_text(workdir, BOTH[:1]))
    result = await daemon.reload()
    assert [(p.address, p.action) for p in result.peers] == [
        (INTERNAL, "no-op"),
        (CHILD, "stop"),
    ]
    await trio.sleep(2.5)  # past the start-up wait
    assert child.session.admin_down and (CHILD, None) not in daemon.runners
    assert daemon.runners[(INTERNAL, None)].state is not State.IDLE


async def test_a_peer_stopped_during_the_start_up_wait_stays_stopped(daemon: Daemon) -> None:
    daemon.peer_action(CHILD, "down", reason="maintenance")
    await trio.sleep(2.5)
    assert daemon.runners[(CHILD, None)].session.admin_down
    daemon.peer_action(CHILD, "up")
    await trio.sleep(0.1)
    assert not daemon.runners[(CHILD, None)].session.admin_down


async def test_a_reload_after_shutdown_was_requested_is_refused(daemon: Daemon) -> None:
    daemon.request_shutdown()
    with pytest.raises(ReloadRefused) as refused:
        await daemon.reload()
    assert refused.value.code == "busy"


async def test_s4_a_reload_that_adds_a_parent_is_refused_and_changes_nothing(
    daemon: Daemon, workdir: Path
) -> None:
    assert daemon.config_path is not None
    before = daemon.config
    daemon.config_path.write_text(config_text(workdir, [*BOTH, (OTHER_CHILD, "parent", 65000)]))
    with pytest.raises(ReloadRefused) as refused:
        await daemon.reload()
    assert refused.value.code == "restart_required"
    assert "parent_domain_ids" in str(refused.value)
    dry = await daemon.reload(dry_run=True)
    assert dry.restart_required == ["parent_domain_ids"] and not dry.applied
    assert daemon.config is before and daemon.reload_failures == 1
    assert set(daemon.runners) == {(INTERNAL, None), (CHILD, None)}
    assert daemon.engine.config.parent_domain_ids == (0,)
