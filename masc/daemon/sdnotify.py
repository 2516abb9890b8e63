"""systemd's service notification protocol (sd_notify(3)) and watchdog, in-house.

Under ``Type=notify`` systemd puts the path of a datagram socket in ``NOTIFY_SOCKET`` and
waits for the service to say ``READY=1`` before it counts the start as done, so units
ordered after masc start only once the daemon's sockets exist and its sessions are being
opened. ``RELOADING=1`` / ``READY=1`` bracket a configuration reload and ``STOPPING=1`` marks
the Cease-to-every-peer shutdown, so ``systemctl status`` shows what the daemon is doing;
``STATUS=`` is the one-line text it prints. With ``WatchdogSec=`` systemd also sets
``WATCHDOG_USEC`` and restarts the service if ``WATCHDOG=1`` does not arrive in time:
:func:`run_watchdog` pings only while the daemon proves it still works (a health check), so
a wedged claim engine is restarted rather than left holding sessions open on keepalives
alone.

Why not a library: the protocol is one datagram of ``KEY=VALUE`` lines to a Unix socket.
``python-systemd`` needs libsystemd and a C build, and the small pure-Python packages add a
dependency for forty lines that are easier to audit here.

Two rules shape the code. Notification is advisory: the daemon must run the same with no
systemd at all (``NOTIFY_SOCKET`` unset: every method is a silent no-op), and a send that
fails must never raise into the daemon -- it is logged at warning once (later failures at
debug, so a missing socket does not flood the journal). And it must never block the trio
loop: the socket is non-blocking, so a full receive queue in PID 1 is a failed send, not a
stalled daemon.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

import trio

log = logging.getLogger(__name__)

# The kernel's sun_path is 108 bytes, the terminating NUL included for filesystem paths.
_MAX_PATH: Final = 107


class Notifier:
    """Sends sd_notify(3) messages to the socket systemd named, or does nothing.

    Build it with :meth:`from_environ`; construct it directly only in tests.
    """

    def __init__(self, address: str | bytes | None, *, watchdog_usec: int | None = None) -> None:
        """``address``: the socket (a path, or bytes starting with NUL for Linux's abstract
        namespace), None to disable; ``watchdog_usec``: the watchdog interval systemd asked
        for, already checked to be meant for this process."""
        self._address = address
        self._watchdog_usec = watchdog_usec if address is not None else None
        self._socket: socket.socket | None = None
        self._warned = False

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str] = os.environ, *, pid: int | None = None
    ) -> Notifier:
        """The notifier systemd's environment describes.

        ``NOTIFY_SOCKET`` is an absolute path, or ``@name`` for an abstract socket (sd_notify(3):
        the ``@`` stands for the leading NUL). Anything else (unset, empty, a relative path,
        ``vsock:`` addresses of systemd >= 253 for VMs) disables notification; an unusable
        value is logged at warning, since the unit then cannot work as ``Type=notify``.

        ``WATCHDOG_USEC`` counts only if ``WATCHDOG_PID`` is unset or is ``pid`` (default:
        ours): systemd sets it for the main process, and a child that inherited the
        environment must not take over the pings (sd_watchdog_enabled(3)).
        """
        raw = environ.get("NOTIFY_SOCKET", "")
        address: str | bytes | None = None
        if raw.startswith("@") and len(raw) > 1:
            address = b"\0" + raw[1:].encode()
        elif raw.startswith("/") and len(raw.encode()) <= _MAX_PATH:
            address = raw
        elif raw:
            log.warning(
                "NOTIFY_SOCKET=%r is not a Unix socket path masc can use: not notifying systemd",
                raw,
                extra={"event": "sd_notify_unsupported"},
            )
        return cls(
            address, watchdog_usec=_watchdog_usec(environ, os.getpid() if pid is None else pid)
        )

    @property
    def enabled(self) -> bool:
        """Whether systemd asked for notifications (``NOTIFY_SOCKET`` was usable)."""
        return self._address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds within which systemd expects ``WATCHDOG=1``, or None if it expects none
        (no ``WatchdogSec=``, meant for another process, or notification disabled)."""
        return None if self._watchdog_usec is None else self._watchdog_usec / 1_000_000

    # --- the messages ----------------------------------------------------------------------

    def ready(self) -> bool:
        """Start-up (or a reload) is complete: ``READY=1``."""
        return self.send("READY=1")

    def reloading(self, monotonic_usec: int | None = None) -> bool:
        """A reload has begun; ``READY=1`` ends it.

        ``MONOTONIC_USEC`` (CLOCK_MONOTONIC, which is what ``time.monotonic_ns`` reads on
        Linux) lets systemd >= 253 tell this reload from an earlier one; it requires the field
        with ``Type=notify-reload`` and older versions ignore it.
        """
        usec = time.monotonic_ns() // 1000 if monotonic_usec is None else monotonic_usec
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self) -> bool:
        """Shutdown has begun (the Cease to every peer): ``STOPPING=1``."""
        return self.send("STOPPING=1")

    def status(self, text: str) -> bool:
        """The one-line status ``systemctl status`` shows: ``STATUS=text``.

        A newline would end the assignment and start a bogus one, so line breaks become
        spaces.
        """
        return self.send("STATUS=" + " ".join(text.splitlines()))

    def watchdog_ping(self) -> bool:
        """The daemon is alive and well: ``WATCHDOG=1``."""
        return self.send("WATCHDOG=1")

    def send(self, *assignments: str) -> bool:
        """Send ``assignments`` as one datagram; True if it went out.

        Never raises: a failure is logged (warning the first time, debug after) and the
        daemon carries on, as it would without systemd.
        """
        if self._address is None:
            return False
        payload = "\n".join(assignments).encode()
        try:
            if self._socket is None:
                self._socket = socket.socket(
                    socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
                )
            self._socket.sendto(payload, self._address)
        except OSError as error:
            level = logging.DEBUG if self._warned else logging.WARNING
            self._warned = True
            log.log(
                level,
                "cannot notify systemd at %s: %s",
                _printable(self._address),
                error,
                extra={"event": "sd_notify_failed", "error": str(error)},
            )
            return False
        return True

    def close(self) -> None:
        """Release the socket (a later send opens a new one)."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None


async def run_watchdog(
    notifier: Notifier,
    healthy: Callable[[], Awaitable[bool]],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Ping systemd's watchdog while ``healthy()`` says the daemon works; return at once if
    systemd set no watchdog.

    Every half interval (sd_watchdog_enabled(3) recommends pinging at half the timeout) the
    check runs, bounded by that same half interval, and a ping follows only if it answered
    True in time. A check that hangs or says False means no ping, and systemd restarts the
    daemon once a whole interval passes without one -- the point of a watchdog: keepalives
    from a live event loop alone would hide a claim engine that no longer answers. The
    cadence is fixed, so a check that answers just inside its bound still leaves less than
    one interval between two pings.

    ``healthy`` must be cancel-safe (it is cancelled when it overruns). An exception from it
    is a bug and propagates.
    """
    interval = notifier.watchdog_interval
    task_status.started()
    if interval is None:
        return
    period = interval / 2
    failing = False
    deadline = trio.current_time()
    while True:
        ok = False
        with trio.move_on_after(period):
            ok = await healthy()
        if ok:
            notifier.watchdog_ping()
            if failing:
                log.info("health check passes again", extra={"event": "watchdog_healthy"})
        elif not failing:
            log.warning(
                "health check failed or took longer than %gs: not pinging systemd's watchdog",
                period,
                extra={"event": "watchdog_unhealthy"},
            )
        failing = not ok
        deadline += period
        await trio.sleep_until(deadline)


def _watchdog_usec(environ: Mapping[str, str], pid: int) -> int | None:
    """``WATCHDOG_USEC`` if it is a positive integer meant for ``pid``, else None."""
    owner = environ.get("WATCHDOG_PID")
    if owner is not None and owner.strip() != str(pid):
        return None
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec if usec > 0 else None


def _printable(address: str | bytes) -> str:
    if isinstance(address, bytes):  # abstract: shown the way NOTIFY_SOCKET writes it
        return "@" + address[1:].decode(errors="replace")
    return address
