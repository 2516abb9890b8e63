"""``madcap`` (masc/cli/madcap.py) against the MADCAP server core over real UDP on 127.0.11.x.

The server is masc.madcap.server.MadcapServer behind a plain socket served by a thread, on
the wall clock; the CLI runs in-process through ``main(argv)`` with ``--server``.  Multicast
discovery without ``--server`` is tested in tests/madcap/test_client_multicast.py.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from ipaddress import IPv4Address, ip_address, ip_network
from pathlib import Path
from typing import Any

import pytest

from masc.cli import madcap
from masc.madcap.messages import ScopeName
from masc.madcap.scopes import Scope
from masc.madcap.server import Arrival, Grant, MadcapServer, ServerSettings

CLIENT = "127.0.11.10"
SERVER = "127.0.11.11"
SILENT = "127.0.11.12"
SCOPES = (
    Scope(
        name="Organization Local",
        first=IPv4Address("239.192.0.0"),
        last=IPv4Address("239.195.255.255"),
        names=(ScopeName("en", "Organization Local", True), ScopeName("de", "Organisation")),
        ranges=((IPv4Address("239.192.1.0"), IPv4Address("239.192.1.3")),),
        inside=("Global",),
    ),
    Scope(
        name="Global",
        first=IPv4Address("224.0.1.0"),
        last=IPv4Address("238.255.255.255"),
        names=(ScopeName("en", "Global", True),),
        source="masc",
    ),
    Scope(
        name="Site v6",
        first=ip_address("ff15::1:0"),
        last=ip_address("ff15::1:ffff"),
        names=(ScopeName("en", "Site v6", True),),
        ranges=((ip_address("ff15::1:10"), ip_address("ff15::1:13")),),
    ),
)
GRANT = Grant(ip_network("233.252.0.0/30"), expires=time.time() + 86400, active=True)


class ThreadedServer:
    """MadcapServer on ``SERVER``:<free port>, answering from a thread.  When a ``masc``
    scope answers Retry After, the grant arrives (as the MASC daemon would send it)."""

    def __init__(self) -> None:
        self.core = MadcapServer(
            ServerSettings(server_id=IPv4Address(SERVER), retry_interval=1.0),
            SCOPES,
            now=time.time(),
        )
        self.lock = threading.Lock()
        self.events: list[str] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((SERVER, 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self._stopping = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stopping:
            try:
                data, source = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            with self.lock:
                outcome = self.core.handle_datagram(
                    data, arrival=Arrival(source=source), now=time.time()
                )
                self.events.append(outcome.event)
                if outcome.event == "retry_after":
                    self.core.set_grants("Global", [GRANT], now=time.time())
            if outcome.reply is not None:
                self.sock.sendto(outcome.reply, source)

    def leases(self) -> list[Any]:
        with self.lock:
            return self.core.leases()

    def stop(self) -> None:
        self._stopping = True
        self._thread.join()
        self.sock.close()


@pytest.fixture
def server() -> Iterator[ThreadedServer]:
    running = ThreadedServer()
    try:
        yield running
    finally:
        running.stop()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = madcap.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def at(server: ThreadedServer) -> list[str]:
    return ["--server", f"{SERVER}:{server.port}", "--bind", CLIENT]


# --- usage errors: exit 2 -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["launch"],
        ["request"],  # --scope is required
        ["request", "--scope", "not-an-address"],
        ["request", "--scope", "239.192.0.0", "--count", "0"],
        ["request", "--scope", "239.192.0.0", "--count", "70000"],
        ["request", "--scope", "239.192.0.0", "--lease", "forever"],
        ["request", "--scope", "239.192.0.0", "--start", "tomorrow"],
        ["request", "--scope", "239.192.0.0", "--start", "2030-01-01T00:00:00"],  # no zone
        ["request", "--scope", "239.192.0.0", "--lease-id", "xyz"],
        ["--server", "host:port", "scopes"],
        ["--server", "[::1", "scopes"],
        ["--ttl", "0", "scopes"],
        ["renew"],  # --lease-file or --lease-id
        ["release", "--lease-file", "a", "--lease-id", "00ab"],
    ],
)
def test_argument_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, out, err = run(capsys, *argv)
    assert code == madcap.EXIT_USAGE and out == ""
    assert "usage: madcap" in err


def test_semantic_usage_errors_exit_2_before_sending(
    capsys: pytest.CaptureFixture[str], server: ThreadedServer, tmp_path: Path
) -> None:
    code, _, err = run(capsys, *at(server), "request", "--scope", "239.192.0.0",
                       "--count", "2", "--min-count", "3")  # fmt: skip
    assert code == 2 and "--min-count 3 is above --count 2" in err
    code, _, err = run(capsys, *at(server), "request", "--scope", "239.192.0.0",
                       "--lease", "10", "--min-lease", "20")  # fmt: skip
    assert code == 2 and "minimum lifetime" in err
    code, _, err = run(capsys, "--bind", CLIENT, "release", "--lease-id", "00ab")
    assert code == 2 and "--lease-id needs --server" in err
    missing = tmp_path / "missing.json"
    code, _, err = run(capsys, "--bind", CLIENT, "release", "--lease-file", str(missing))
    assert code == 2 and str(missing) in err
    broken = tmp_path / "broken.json"
    broken.write_text('{"lease_id": "00"}')
    code, _, err = run(capsys, "--bind", CLIENT, "renew", "--lease-file", str(broken))
    assert code == 2 and "not a lease file" in err
    code, _, err = run(capsys, "--bind", "192.0.2.1", "--server", SERVER, "scopes")
    assert code == 2 and "cannot use" in err  # not an address of this host
    assert server.events == []  # nothing reached the server


# --- scopes -------------------------------------------------------------------------------------


def test_scopes_json_and_text(capsys: pytest.CaptureFixture[str], server: ThreadedServer) -> None:
    code, out, _ = run(capsys, *at(server), "--json", "scopes", "--nesting")
    assert code == 0
    result = json.loads(out)
    assert result == {
        "scopes": [
            {
                "scope_id": "239.192.0.0",
                "last_address": "239.195.255.255",
                "server_address": "239.195.255.254",
                "ttl": 255,
                "names": [
                    {"language": "en", "name": "Organization Local", "default": True},
                    {"language": "de", "name": "Organisation", "default": False},
                ],
            },
            {
                "scope_id": "224.0.1.0",
                "last_address": "238.255.255.255",
                "server_address": "238.255.255.254",
                "ttl": 255,
                "names": [{"language": "en", "name": "Global", "default": True}],
            },
        ],
        "nesting": {"239.192.0.0": ["224.0.1.0"], "224.0.1.0": []},
    }
    # The global options may follow the command too; --language picks one name (§3.10).
    code, out, _ = run(capsys, "scopes", "--language", "de", *at(server))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["SCOPE", "ID", "LAST", "ADDRESS", "TTL", "SERVER", "ADDRESS",
                                "NAMES"]  # fmt: skip
    assert "239.192.0.0" in lines[1] and "Organisation (de)" in lines[1]
    assert "Organization Local" not in out
    # Every column stands apart, the names too.
    assert lines[1].endswith("239.195.255.254  Organisation (de)")


# --- request, renew, release --------------------------------------------------------------------


def check_lease(lease: dict[str, Any], server: ThreadedServer) -> None:
    """The --json lease: every field there, with the right types."""
    assert set(lease) == {
        "status", "lease_id", "server_id", "server", "scope_id", "ranges", "addresses",
        "start", "end", "lifetime",
    }  # fmt: skip
    assert lease["status"] == "granted"
    assert len(bytes.fromhex(lease["lease_id"])) == 17 and lease["lease_id"][:2] == "00"
    assert lease["server_id"] == SERVER
    assert lease["server"] == {"address": SERVER, "port": server.port}
    assert sum(r["count"] for r in lease["ranges"]) == len(lease["addresses"])
    for address in lease["addresses"]:
        assert IPv4Address("239.192.1.0") <= ip_address(address) <= IPv4Address("239.192.1.3")
    assert lease["end"] == pytest.approx(lease["start"] + lease["lifetime"])
    assert abs(lease["start"] - time.time()) < 60


def test_request_save_renew_release(
    capsys: pytest.CaptureFixture[str], server: ThreadedServer, tmp_path: Path
) -> None:
    saved = tmp_path / "lease.json"
    code, out, err = run(capsys, *at(server), "--json", "request", "--scope", "239.192.0.0",
                         "--count", "2", "--lease", "1h", "--save", str(saved))  # fmt: skip
    assert code == 0, err
    lease = json.loads(out)
    check_lease(lease, server)
    assert len(lease["addresses"]) == 2 and lease["lifetime"] == 3600
    assert json.loads(saved.read_text()) == lease
    (held,) = server.leases()
    assert held.lease_id.hex() == lease["lease_id"]

    # renew reads the lease file (server and Lease Identifier) and rewrites it.
    code, out, err = run(capsys, "--bind", CLIENT, "--json", "renew", "--lease-file",
                         str(saved), "--lease", "2h")  # fmt: skip
    assert code == 0, err
    renewed = json.loads(out)
    check_lease(renewed, server)
    assert renewed["lifetime"] == 7200 and renewed["addresses"] == lease["addresses"]
    assert json.loads(saved.read_text()) == renewed
    assert server.leases()[0].end == pytest.approx(renewed["end"], abs=2)

    code, out, err = run(capsys, "--bind", CLIENT, "release", "--lease-file", str(saved))
    assert (code, out) == (0, f"released lease {lease['lease_id']}\n"), err
    assert server.leases() == []

    # A second release: NAK Lease Identifier Not Recognized, exit 1, the RFC error named.
    code, out, err = run(capsys, *at(server), "--json", "release", "--lease-id",
                         lease["lease_id"])  # fmt: skip
    assert code == madcap.EXIT_FAILED
    assert "Lease Identifier Not Recognized (RFC 2730 §3.17.4, error 3)" in err
    assert json.loads(out) == {
        "status": "nak",
        "message": err.removeprefix("madcap: ").strip(),
        "error": {"code": 3, "name": "Lease Identifier Not Recognized"},
        "server": {"address": SERVER, "port": server.port},
    }


def test_request_text_output(capsys: pytest.CaptureFixture[str], server: ThreadedServer) -> None:
    code, out, err = run(capsys, *at(server), "request", "--scope", "239.192.0.0",
                         "--start", "+1h", "--max-start", "+2h", "--lease", "30m")  # fmt: skip
    assert code == 0, err
    fields = dict(line.split(maxsplit=1) for line in out.splitlines())
    assert set(fields) == {"lease", "addresses", "scope", "server", "start", "end"}
    assert fields["scope"] == "239.192.0.0"
    assert fields["server"] == f"{SERVER} ({SERVER} port {server.port})"
    assert fields["end"].endswith("(1800 s)")
    (held,) = server.leases()
    assert held.start == pytest.approx(time.time() + 3600, abs=60)  # an advance allocation


def test_nak_exits_1_naming_the_rfc_error(
    capsys: pytest.CaptureFixture[str], server: ThreadedServer
) -> None:
    code, out, err = run(capsys, *at(server), "request", "--scope", "239.192.0.0",
                         "--count", "10", "--min-count", "8")  # fmt: skip
    assert code == 1 and out == ""
    assert "Valid Request Could Not Be Completed (RFC 2730 §3.17.1, error 0)" in err
    assert "option 7 (Number of Addresses)" in err
    code, out, err = run(capsys, *at(server), "--json", "request", "--scope", "239.1.0.0")
    assert code == 1
    assert json.loads(out)["error"]["name"] == "Valid Request Could Not Be Completed"
    assert json.loads(out)["option"] == 4  # the scope is not served here


def test_retry_after_exits_1_and_wait_retries_until_granted(
    capsys: pytest.CaptureFixture[str], server: ThreadedServer, tmp_path: Path
) -> None:
    pending = tmp_path / "pending.json"
    code, out, err = run(capsys, *at(server), "--json", "request", "--scope", "224.0.1.0",
                         "--retry-after", "--save", str(pending))  # fmt: skip
    assert code == 1 and "TRY_LATER:" in err and "§2.13.2" in err
    answer = json.loads(out)
    assert answer["status"] == "try_later" and answer["retry_at"] > time.time() - 5
    assert json.loads(pending.read_text()) == answer
    # The pending allocation can be cancelled from the saved file (§2.13.2).
    code, _, err = run(capsys, "--bind", CLIENT, "release", "--lease-file", str(pending))
    assert code == 0, err

    # The grant arrived when the server said "retry after"; --wait asks again after 1 s.
    server.core.set_grants("Global", [], now=time.time())
    code, out, err = run(capsys, *at(server), "--json", "request", "--scope", "224.0.1.0",
                         "--wait")  # fmt: skip
    assert code == 0, err
    assert "waiting" in err
    lease = json.loads(out)
    assert all(ip_address(a) in GRANT.prefix for a in lease["addresses"])


def test_s2_1_3_ipv6_scopes_and_leases_use_the_ipv6_family(
    capsys: pytest.CaptureFixture[str], server: ThreadedServer, tmp_path: Path
) -> None:
    # `scopes` lists the IPv4 scopes unless asked for IPv6 (the GETINFO header's family).
    code, out, err = run(capsys, *at(server), "--json", "scopes", "--family", "ipv6")
    assert code == 0, err
    assert [s["scope_id"] for s in json.loads(out)["scopes"]] == ["ff15::1:0"]
    # request takes the family of --scope; renew and release that of the lease file.
    saved = tmp_path / "lease.json"
    code, out, err = run(capsys, *at(server), "--json", "request", "--scope", "ff15::1:0",
                         "--count", "2", "--save", str(saved))  # fmt: skip
    assert code == 0, err
    lease = json.loads(out)
    assert lease["addresses"] == ["ff15::1:10", "ff15::1:11"]
    code, out, err = run(capsys, "--bind", CLIENT, "--json", "renew", "--lease-file", str(saved),
                         "--lease", "2h")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["lifetime"] == 7200
    # A bare --lease-id names its family with --family.
    code, out, err = run(capsys, *at(server), "renew", "--lease-id", lease["lease_id"],
                         "--family", "ipv6", "--lease", "3h")  # fmt: skip
    assert code == 0, err
    code, _, err = run(capsys, "--bind", CLIENT, "release", "--lease-file", str(saved))
    assert code == 0, err
    assert server.leases() == []


def test_pending_file_with_a_bad_server_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pending = tmp_path / "pending.json"
    for server in ({"address": SERVER, "port": 70000}, {"address": SERVER, "port": True},
                   {"address": 5, "port": 2535}, ["x"]):  # fmt: skip
        pending.write_text(
            json.dumps({"status": "try_later", "lease_id": "00ab", "server": server})
        )
        code, _, err = run(capsys, "--bind", CLIENT, "release", "--lease-file", str(pending))
        assert code == madcap.EXIT_USAGE and "not a lease file" in err, server


def test_an_unwritable_save_file_is_refused_before_anything_is_leased(
    capsys: pytest.CaptureFixture[str], server: ThreadedServer, tmp_path: Path
) -> None:
    for target in (tmp_path / "missing" / "lease.json", tmp_path):
        code, out, err = run(capsys, *at(server), "request", "--scope", "239.192.0.0",
                             "--save", str(target))  # fmt: skip
        assert (code, out) == (madcap.EXIT_USAGE, ""), err
        assert f"cannot write {target}" in err
    assert server.leases() == [] and server.events == []


def test_a_lease_granted_but_not_saved_is_still_printed(
    capsys: pytest.CaptureFixture[str],
    server: ThreadedServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The file became unwritable between the check and the grant (disk full, say).
    def full(path: str, data: dict[str, Any]) -> None:
        raise madcap.Usage(f"cannot write {path}: No space left on device")

    monkeypatch.setattr(madcap, "_save", full)
    saved = tmp_path / "lease.json"
    code, out, err = run(capsys, *at(server), "--json", "request", "--scope", "239.192.0.0",
                         "--save", str(saved))  # fmt: skip
    assert code == madcap.EXIT_FAILED
    (held,) = server.leases()
    assert json.loads(out)["lease_id"] == held.lease_id.hex()
    assert f"lease {held.lease_id.hex()} held, but cannot write {saved}" in err


def test_socket_problems_name_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--bind", "192.0.2.1", "--server", f"{SERVER}:2535", "scopes")
    assert code == 2 and "cannot use --bind 192.0.2.1: " in err
    code, _, err = run(capsys, "--server", "no-such-host.invalid", "scopes")
    assert code == 2 and "cannot resolve --server no-such-host.invalid: " in err


def test_no_response_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind((SILENT, 0))
        port = silent.getsockname()[1]
        code, out, err = run(capsys, "--server", f"{SILENT}:{port}", "--bind", CLIENT,
                             "--timeout", "0.3", "--json", "scopes")  # fmt: skip
    assert code == 1
    assert "NO_RESPONSE: no answer from" in err and "GETINFO" in err
    assert json.loads(out)["status"] == "no_response"
