"""Real ``masc run`` processes on loopback for end-to-end tests.

Each daemon gets its own 127.0.9.x address, control socket and JSON log, read by a thread
into a list the test can wait on.  Waits are bounded; timers are tiny (hold time 3 s).
Tests that run daemons in network namespaces of their own (tests/netns) give ``render`` and
``Daemon`` an ``address`` function instead, so that node ``n`` has that namespace's address.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from masc.cli import mascctl

T = TypeVar("T")

PREFIX = "127.0.9"
PORT = 2587
Record = dict[str, Any]


@dataclass(frozen=True)
class Peer:
    node: int  # last octet of the peer's address
    relation: str
    domain_id: int
    parent_domain_id: int | None = None
    passive: bool = False
    hold_time: int | None = None  # the peer's own hold_time key; None: timers.hold_time


def addr(node: int) -> str:
    return f"{PREFIX}.{node}"


def render(
    node: int,
    domain_id: int,
    peers: list[Peer],
    workdir: Path,
    *,
    hold_time: int = 3,
    extra_local: str = "",
    extra_timers: str = "",
    extra_sections: str = "",
    extra_control: str = "",
    address: Callable[[int], str] = addr,
    restart_backoff: tuple[str, str] = ("1s", "2s"),
) -> str:
    """``address``: node number -> its address (this node's and its peers'), 127.0.9.x
    unless given.  ``restart_backoff``: the automatic-restart back-off, initial and max."""
    lines = [
        "[local]",
        f"domain_id = {domain_id}",
        f'node_id = "{address(node)}"',
        f"port = {PORT}",
        extra_local,
        "[timers]",
        f"hold_time = {hold_time}",
        "connect_retry = 1",
        f'restart_backoff_initial = "{restart_backoff[0]}"',
        f'restart_backoff_max = "{restart_backoff[1]}"',
        extra_timers,
        "[control]",
        f'socket = "{workdir}/{node}.control.sock"',
        extra_control,
        "[maas]",
        f'socket = "{workdir}/{node}.maas.sock"',
        "[storage]",
        f'path = "{workdir}/{node}.db"',
        extra_sections,
    ]
    for p in peers:
        lines += [
            "[[peers]]",
            f'address = "{address(p.node)}"',
            f"port = {PORT}",
            f'relation = "{p.relation}"',
            f"domain_id = {p.domain_id}",
        ]
        if p.parent_domain_id is not None:
            lines.append(f"parent_domain_id = {p.parent_domain_id}")
        if p.passive:
            lines.append("passive = true")
        if p.hold_time is not None:
            lines.append(f"hold_time = {p.hold_time}")
    return "\n".join(lines) + "\n"


class Daemon:
    """One ``masc run`` process and the JSON records it has logged."""

    def __init__(
        self,
        node: int,
        config_text: str,
        workdir: Path,
        *,
        max_files: int | None = None,
        netns: str | None = None,
        address: Callable[[int], str] = addr,
    ) -> None:
        """``netns``: run inside that network namespace (``ip netns exec``); ``address``:
        how peers' node numbers map to addresses, as given to ``render``."""
        self.node = node
        self.address = address
        self.max_files = max_files
        self.netns = netns
        self.config = workdir / f"{node}.toml"
        self.config.write_text(config_text)
        self.control = str(workdir / f"{node}.control.sock")
        self.records: list[Record] = []
        self._cond = threading.Condition()
        self.proc: subprocess.Popen[str] | None = None
        self.start()

    def start(self) -> None:
        inside = [] if self.netns is None else ["ip", "netns", "exec", self.netns]
        self.proc = subprocess.Popen(
            [*inside, sys.executable, "-m", "masc", "run", "--config", str(self.config),
             "--log-format", "json", "--log-level", "debug"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=self._limit_files if self.max_files else None,
        )  # fmt: skip
        threading.Thread(target=self._pump, args=(self.proc,), daemon=True).start()

    def _limit_files(self) -> None:
        import resource

        assert self.max_files is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.max_files, self.max_files))

    def _pump(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            try:
                record = json.loads(line)
            except ValueError:
                record = {"event": "raw", "message": line.rstrip()}
            with self._cond:
                self.records.append(record)
                self._cond.notify_all()

    def mark(self) -> int:
        with self._cond:
            return len(self.records)

    def wait_for(
        self, predicate: Callable[[Record], bool], *, since: int = 0, timeout: float = 20.0
    ) -> Record:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for record in self.records[since:]:
                    if predicate(record):
                        return record
                left = deadline - time.monotonic()
                if left <= 0:
                    tail = "\n".join(json.dumps(r) for r in self.records[-30:])
                    raise AssertionError(
                        f"daemon {self.node}: condition not met; log tail:\n{tail}"
                    )
                self._cond.wait(left)

    def wait_established(self, peer: int, *, since: int = 0, timeout: float = 20.0) -> Record:
        return self.wait_for(
            lambda r: r.get("event") == "session_up" and r.get("peer") == self.address(peer),
            since=since,
            timeout=timeout,
        )

    def signal(self, signum: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait_exit(self, timeout: float = 15.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def records_since(self, since: int = 0) -> list[Record]:
        """A copy of what was logged from record ``since`` on."""
        with self._cond:
            return list(self.records[since:])

    def ask(self, verb: str, **args: Any) -> dict[str, Any]:
        """One control request, answered as ``mascctl --json`` prints it (mascctl's own
        client, in-process: a test polling a dozen daemons need not start a Python per
        look)."""
        answer = mascctl.interpret(mascctl.send(self.control, verb, args))
        assert answer.result is not None, f"daemon {self.node}: {verb}: {answer.error}"
        return answer.result

    def ask_error(self, verb: str, **args: Any) -> dict[str, Any]:
        """One control request that must be refused: its structured error."""
        answer = mascctl.interpret(mascctl.send(self.control, verb, args))
        assert answer.error is not None, f"daemon {self.node}: {verb}: {answer.result}"
        return answer.error

    def mascctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "masc.cli.mascctl", "--socket", self.control, *args],
            capture_output=True,
            text=True,
            timeout=20,
        )


def until(check: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
    """Poll ``check`` until it returns something truthy (bounded; not a sleep for
    correctness: the condition is observed, never assumed)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:g}s waiting for {what}; last: {value!r}"
            )
        time.sleep(0.2)
