"""sd_notify(3) over real AF_UNIX datagram sockets, and the watchdog task under virtual time.

The receiving socket stands in for systemd (PID 1): a datagram sent to a bound Unix socket is
in its queue when ``sendto`` returns, so the tests read it without waiting. Socket paths live
in a short directory under /tmp because sun_path holds only 108 bytes and pytest's tmp_path
can be longer than that.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import pytest
import trio
import trio.testing

from masc.daemon.sdnotify import Notifier, run_watchdog

LOGGER = "masc.daemon.sdnotify"


@pytest.fixture
def short_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="sdnotify-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def systemd(short_dir: Path) -> Iterator[tuple[socket.socket, str]]:
    """A bound datagram socket playing PID 1, and the NOTIFY_SOCKET value naming it."""
    path = short_dir / "notify.sock"
    assert len(str(path).encode()) < 108
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.setblocking(False)
        yield sock, str(path)


def received(sock: socket.socket) -> list[bytes]:
    """Every datagram queued on ``sock``."""
    out = []
    while True:
        try:
            out.append(sock.recv(4096))
        except BlockingIOError:
            return out


# --- the messages --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "datagram"),
    [
        (lambda n: n.ready(), b"READY=1"),
        (lambda n: n.reloading(1_234_567), b"RELOADING=1\nMONOTONIC_USEC=1234567"),
        (lambda n: n.stopping(), b"STOPPING=1"),
        (
            lambda n: n.status("3/3 peers Established, 2 prefixes"),
            b"STATUS=3/3 peers Established, 2 prefixes",
        ),
        (lambda n: n.watchdog_ping(), b"WATCHDOG=1"),
    ],
    ids=["ready", "reloading", "stopping", "status", "watchdog"],
)
def test_each_message_arrives_as_one_exact_datagram(
    systemd: tuple[socket.socket, str], call: Callable[[Notifier], bool], datagram: bytes
) -> None:
    sock, path = systemd
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    assert call(notifier) is True
    assert received(sock) == [datagram]
    notifier.close()


def test_reloading_stamps_clock_monotonic_by_default(systemd: tuple[socket.socket, str]) -> None:
    """systemd >= 253 reads MONOTONIC_USEC as CLOCK_MONOTONIC microseconds."""
    sock, path = systemd
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": path})
    before = time.monotonic_ns() // 1000
    notifier.reloading()
    after = time.monotonic_ns() // 1000
    [datagram] = received(sock)
    first, second = datagram.split(b"\n")
    assert first == b"RELOADING=1"
    key, value = second.split(b"=")
    assert key == b"MONOTONIC_USEC"
    assert before <= int(value) <= after


def test_a_reload_is_reloading_then_ready(systemd: tuple[socket.socket, str]) -> None:
    sock, path = systemd
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": path})
    notifier.ready()
    notifier.reloading(42)
    notifier.ready()
    notifier.stopping()
    assert received(sock) == [
        b"READY=1",
        b"RELOADING=1\nMONOTONIC_USEC=42",
        b"READY=1",
        b"STOPPING=1",
    ]


def test_status_is_kept_on_one_line(systemd: tuple[socket.socket, str]) -> None:
    """A newline would start a new assignment: 'STATUS=a\\nREADY=1' must not say ready."""
    sock, path = systemd
    Notifier.from_environ({"NOTIFY_SOCKET": path}).status("a\nREADY=1\r\nb")
    assert received(sock) == [b"STATUS=a READY=1 b"]


def test_abstract_socket_at_sign_is_a_leading_nul() -> None:
    name = f"masc-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.setblocking(False)
        notifier = Notifier.from_environ({"NOTIFY_SOCKET": "@" + name})
        assert notifier.ready() is True
        assert notifier.status("up") is True
        assert received(sock) == [b"READY=1", b"STATUS=up"]
        notifier.close()


# --- without systemd, or with a broken one -------------------------------------------------


def test_no_notify_socket_is_a_silent_no_op(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    notifier = Notifier.from_environ({"WATCHDOG_USEC": "30000000"})
    assert not notifier.enabled
    assert notifier.watchdog_interval is None  # nobody to ping
    for result in (
        notifier.ready(),
        notifier.reloading(),
        notifier.stopping(),
        notifier.status("x"),
        notifier.watchdog_ping(),
    ):
        assert result is False
    notifier.close()
    assert caplog.records == []


def test_from_environ_reads_os_environ_by_default(
    monkeypatch: pytest.MonkeyPatch, systemd: tuple[socket.socket, str]
) -> None:
    sock, path = systemd
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    notifier = Notifier.from_environ()
    assert notifier.watchdog_interval == 4.0
    notifier.ready()
    assert received(sock) == [b"READY=1"]


@pytest.mark.parametrize("value", ["relative/notify.sock", "vsock:2:1234", "@", "/" + "x" * 200])
def test_an_unusable_notify_socket_disables_notification_with_a_warning(
    value: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": value})
    assert not notifier.enabled
    assert notifier.ready() is False
    [record] = caplog.records
    assert record.levelno == logging.WARNING


def test_unreachable_socket_never_raises_and_warns_once(
    short_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": str(short_dir / "gone.sock")})
    assert notifier.ready() is False
    assert notifier.watchdog_ping() is False
    assert notifier.stopping() is False
    levels = [r.levelno for r in caplog.records]
    assert levels == [logging.WARNING, logging.DEBUG, logging.DEBUG]
    assert getattr(caplog.records[0], "event", None) == "sd_notify_failed"
    assert "gone.sock" in caplog.records[0].getMessage()


def test_unreachable_abstract_socket_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": f"@masc-nobody-{uuid.uuid4().hex}"})
    assert notifier.ready() is False
    assert "@masc-nobody-" in caplog.records[0].getMessage()


def test_a_full_queue_fails_the_send_instead_of_blocking_the_daemon(
    systemd: tuple[socket.socket, str],
) -> None:
    """PID 1 not reading must not stall the trio loop: the socket is non-blocking."""
    _sock, path = systemd
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": path})

    def hung(signum: int, frame: FrameType | None) -> None:
        raise AssertionError("sendto blocked on a full receive queue")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(10)  # a safety net only: a correct notifier fills the queue in microseconds
    try:
        results = [notifier.ready() for _ in range(10_000)]
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert results[0] is True
    assert False in results


# --- WATCHDOG_USEC / WATCHDOG_PID ----------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "interval"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 30.0),
        ({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": "4242"}, 0.5),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4243"}, None),  # another process's
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "not-a-pid"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "30s"}, None),
        ({"WATCHDOG_PID": "4242"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_from_watchdog_usec_for_our_pid_only(
    short_dir: Path, environ: dict[str, str], interval: float | None
) -> None:
    notifier = Notifier.from_environ(
        {"NOTIFY_SOCKET": str(short_dir / "notify.sock"), **environ}, pid=4242
    )
    assert notifier.watchdog_interval == interval


# --- run_watchdog ----------------------------------------------------------------------------


class RecordingNotifier(Notifier):
    """A real notifier that also notes the virtual time of each ping."""

    def __init__(self, address: str, watchdog_usec: int | None) -> None:
        super().__init__(address, watchdog_usec=watchdog_usec)
        self.pings: list[float] = []

    def watchdog_ping(self) -> bool:
        self.pings.append(trio.current_time())
        return super().watchdog_ping()


async def healthy_always() -> bool:
    return True


async def test_no_watchdog_returns_at_once(autojump_clock: trio.testing.MockClock) -> None:
    calls = 0

    async def healthy() -> bool:
        nonlocal calls
        calls += 1
        return True

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        await nursery.start(run_watchdog, Notifier(None), healthy)
    assert trio.current_time() == start
    assert calls == 0


async def test_watchdog_pings_every_half_interval_while_healthy(
    autojump_clock: trio.testing.MockClock, systemd: tuple[socket.socket, str]
) -> None:
    sock, path = systemd
    notifier = RecordingNotifier(path, watchdog_usec=10_000_000)  # WatchdogSec=10s
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        await nursery.start(run_watchdog, notifier, healthy_always)
        await trio.sleep(22)
        nursery.cancel_scope.cancel()
    assert [t - start for t in notifier.pings] == [0, 5, 10, 15, 20]
    assert received(sock) == [b"WATCHDOG=1"] * 5


async def test_watchdog_keeps_its_cadence_when_the_check_is_slow(
    autojump_clock: trio.testing.MockClock, systemd: tuple[socket.socket, str]
) -> None:
    """A check answering just inside its bound still leaves < one interval between pings."""
    _sock, path = systemd
    notifier = RecordingNotifier(path, watchdog_usec=10_000_000)

    async def slow() -> bool:
        await trio.sleep(4.5)
        return True

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        await nursery.start(run_watchdog, notifier, slow)
        await trio.sleep(21)
        nursery.cancel_scope.cancel()
    assert [t - start for t in notifier.pings] == [4.5, 9.5, 14.5, 19.5]
    gaps = [b - a for a, b in zip(notifier.pings, notifier.pings[1:], strict=False)]
    assert max(gaps) < 10


async def test_watchdog_stops_pinging_while_unhealthy(
    autojump_clock: trio.testing.MockClock,
    systemd: tuple[socket.socket, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    _sock, path = systemd
    notifier = RecordingNotifier(path, watchdog_usec=10_000_000)
    start = trio.current_time()

    async def healthy() -> bool:
        # Unhealthy from t=7 until t=23: the checks at 10, 15 and 20 say False.
        return not 7 <= trio.current_time() - start < 23

    async with trio.open_nursery() as nursery:
        await nursery.start(run_watchdog, notifier, healthy)
        await trio.sleep(32)
        nursery.cancel_scope.cancel()
    assert [t - start for t in notifier.pings] == [0, 5, 25, 30]
    events = [getattr(r, "event", None) for r in caplog.records]
    assert events == ["watchdog_unhealthy", "watchdog_healthy"]  # once per transition


async def test_watchdog_does_not_ping_when_the_check_hangs(
    autojump_clock: trio.testing.MockClock, systemd: tuple[socket.socket, str]
) -> None:
    """A wedged domain runner never answers: the check is cancelled at half the interval and
    systemd, hearing nothing, restarts the daemon."""
    sock, path = systemd
    notifier = RecordingNotifier(path, watchdog_usec=10_000_000)
    started: list[float] = []
    cancelled: list[float] = []
    start = trio.current_time()

    async def hangs() -> bool:
        started.append(trio.current_time() - start)
        try:
            await trio.sleep_forever()
        finally:
            cancelled.append(trio.current_time() - start)

    async with trio.open_nursery() as nursery:
        await nursery.start(run_watchdog, notifier, hangs)
        await trio.sleep(21)
        nursery.cancel_scope.cancel()
    assert notifier.pings == []
    assert received(sock) == []
    assert started == [0, 5, 10, 15, 20]
    assert cancelled == [5, 10, 15, 20, 21]  # the last by the test's own cancel
