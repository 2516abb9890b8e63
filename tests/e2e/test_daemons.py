"""Real daemons over real loopback TCP (RFC 2909 §10, §8, §8.7; issue: speaker foundation).

Every daemon is a separate ``masc run`` process with its own 127.0.9.x address; outgoing
connections are bound to it, so the peer sees the address it configured.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from masc.protocol.constants import AddressFamily, ClaimType, Role
from masc.protocol.errors import ErrorCode
from masc.protocol.wire import (
    Claim,
    DomainId,
    Framer,
    Keepalive,
    NodeId,
    Notification,
    Open,
    decode,
    encode,
)
from masc.protocol.wire.codec import encode_claim
from tests.e2e.daemons import PORT, Daemon, Peer, addr, render

pytestmark = pytest.mark.processes

TLD1, TLD2, CHILD = 65001, 65002, 65003


def start(
    cluster: dict[int, Daemon],
    tmp_path: Path,
    node: int,
    domain: int,
    peers: list[Peer],
    **kw: object,
) -> Daemon:
    d = Daemon(node, render(node, domain, peers, tmp_path, **kw), tmp_path)  # type: ignore[arg-type]
    cluster[node] = d
    return d


def test_two_daemons_reach_established_and_mascctl_shows_it(
    cluster: dict[int, Daemon], tmp_path: Path
) -> None:
    parent = start(cluster, tmp_path, 1, TLD1, [Peer(2, "child", CHILD)])
    child = start(cluster, tmp_path, 2, CHILD, [Peer(1, "parent", TLD1)])
    up = parent.wait_established(2)
    child.wait_established(1)
    assert up["hold_time"] == 3 and up["internal"] is False

    result = parent.mascctl("--json", "show", "peers")
    assert result.returncode == 0, result.stderr
    (peer,) = json.loads(result.stdout)["peers"]
    assert peer["address"] == addr(2)
    assert peer["relation"] == "child"
    assert peer["domain_id"] == CHILD
    assert peer["state"] == "Established"
    assert peer["remote_node_id"] == addr(2)

    human = child.mascctl("show", "peers")
    assert human.returncode == 0 and "Established" in human.stdout and addr(1) in human.stdout
    summary = json.loads(child.mascctl("--json", "show", "summary").stdout)
    assert summary["top_level_domain"] is False and summary["parent_domain_ids"] == [TLD1]
    assert summary["peers_established"] == 1


def test_three_daemons_two_tlds_and_a_child(cluster: dict[int, Daemon], tmp_path: Path) -> None:
    t1 = start(cluster, tmp_path, 11, TLD1, [Peer(12, "sibling", TLD2), Peer(13, "child", CHILD)])
    t2 = start(cluster, tmp_path, 12, TLD2, [Peer(11, "sibling", TLD1)])
    c = start(cluster, tmp_path, 13, CHILD, [Peer(11, "parent", TLD1)])
    t1.wait_established(12)
    t1.wait_established(13)
    t2.wait_established(11)
    c.wait_established(11)
    states = {
        p["address"]: p["state"]
        for p in json.loads(t1.mascctl("--json", "show", "peers").stdout)["peers"]
    }
    assert states == {addr(12): "Established", addr(13): "Established"}


def test_s8_4_hung_peer_is_detected_by_hold_timer_and_reconnects_after_restart(
    cluster: dict[int, Daemon], tmp_path: Path
) -> None:
    parent = start(cluster, tmp_path, 21, TLD1, [Peer(22, "child", CHILD)])
    child = start(cluster, tmp_path, 22, CHILD, [Peer(21, "parent", TLD1)])
    parent.wait_established(22)
    mark = parent.mark()
    # SIGSTOP: the child's TCP connection stays open but it sends nothing any more, so only
    # the parent's hold timer (3 s) can notice.
    stopped_at = time.monotonic()
    child.signal(signal.SIGSTOP)
    expired = parent.wait_for(
        lambda r: (
            r.get("event") == "notification_sent" and r.get("code") == ErrorCode.HOLD_TIMER_EXPIRED
        ),
        since=mark,
    )
    assert expired["open_bit"] is False and expired["peer"] == addr(22)
    assert 2.5 <= time.monotonic() - stopped_at <= 8
    down = parent.wait_for(lambda r: r.get("event") == "session_down", since=mark)
    assert "hold" in down["reason"].lower(), down

    child.signal(signal.SIGKILL)
    child.wait_exit()
    mark = parent.mark()
    child.start()  # back: the parent's back-off restart and the child's dial meet again
    parent.wait_established(22, since=mark)
    child.wait_established(21, since=0)


def test_s8_4_silent_peer_gets_hold_timer_expired(
    cluster: dict[int, Daemon], tmp_path: Path
) -> None:
    """A peer that stays connected but says nothing after the OPEN exchange: only the hold
    timer can notice.  A raw socket plays that peer."""
    daemon = start(cluster, tmp_path, 31, TLD1, [Peer(32, "child", CHILD, passive=True)])
    daemon.wait_for(lambda r: r.get("event") == "listening")
    sock, framer = raw_peer_established(daemon_node=31, node=32, domain=CHILD, role=Role.CHILD)
    try:
        started = time.monotonic()
        note = read_message(sock, framer, timeout=10, skip_keepalives=True)
        assert isinstance(note, Notification)
        assert (note.code, note.subcode, note.open_bit) == (ErrorCode.HOLD_TIMER_EXPIRED, 0, False)
        assert 2.5 <= time.monotonic() - started <= 6
    finally:
        sock.close()


def test_connection_from_unknown_address_is_refused(
    cluster: dict[int, Daemon], tmp_path: Path
) -> None:
    daemon = start(cluster, tmp_path, 41, TLD1, [Peer(42, "child", CHILD)])
    daemon.wait_for(lambda r: r.get("event") == "listening")
    sock = socket.socket()
    sock.bind((addr(99), 0))
    sock.settimeout(5)
    sock.connect((addr(41), PORT))
    try:
        data = sock.recv(100)
    except ConnectionResetError:
        data = b""
    finally:
        sock.close()
    assert data == b""  # no OPEN: reset at once
    refused = daemon.wait_for(lambda r: r.get("event") == "connection_refused")
    assert refused["remote"] == addr(99)


def test_s8_7_sigterm_sends_cease_and_exits_zero(
    cluster: dict[int, Daemon], tmp_path: Path
) -> None:
    parent = start(cluster, tmp_path, 51, TLD1, [Peer(52, "child", CHILD)])
    child = start(cluster, tmp_path, 52, CHILD, [Peer(51, "parent", TLD1)])
    child.wait_established(51)
    mark = child.mark()
    parent.signal(signal.SIGTERM)
    assert parent.wait_exit() == 0
    cease = child.wait_for(
        lambda r: r.get("event") == "notification_received" and r.get("code") == ErrorCode.CEASE,
        since=mark,
    )
    assert cease["open_bit"] is False and cease["peer"] == addr(51)


def test_malformed_messages_get_the_exact_notification_and_the_daemon_survives(
    cluster: dict[int, Daemon], tmp_path: Path
) -> None:
    daemon = start(
        cluster, tmp_path, 61, TLD1, [Peer(62, "child", CHILD, passive=True)], hold_time=30
    )
    daemon.wait_for(lambda r: r.get("event") == "listening")
    sock, framer = raw_peer_established(daemon_node=61, node=62, domain=CHILD, role=Role.CHILD)
    try:
        # §8.3 Non-Contiguous Mask is CC: NOTIFICATION with O-bit 1, the session stays.
        claim = Claim(
            ClaimType.NEW_CLAIM,
            Role.INTERNAL,
            int(time.time()),
            86400,
            172800,
            DomainId(CHILD),
            NodeId(int.from_bytes(socket.inet_aton(addr(62)), "big")),
            IPv4Network("239.192.1.0/24"),
        )
        attribute = bytearray(encode_claim(claim))
        attribute[32:36] = bytes([255, 255, 0, 255])  # the Mask field
        sock.sendall((4 + len(attribute)).to_bytes(2, "big") + b"\x02\x00" + attribute)
        note = read_message(sock, framer, skip_keepalives=True)
        assert note == Notification(True, ErrorCode.UPDATE_MESSAGE, 12, bytes(attribute))
        # §8.1 Bad Message Type is CC as well.
        sock.sendall(bytes([0, 4, 9, 0]))
        note = read_message(sock, framer, skip_keepalives=True)
        assert note == Notification(True, ErrorCode.MESSAGE_HEADER, 2, bytes([0, 4, 9, 0]))
        sock.sendall(encode(Keepalive()))  # still Established
        # §8.1 Bad Message Length is MC: O-bit 0, Data the header, connection closed.
        sock.sendall(bytes([0x10, 0x01, 2, 0]))
        note = read_message(sock, framer, skip_keepalives=True)
        assert note == Notification(False, ErrorCode.MESSAGE_HEADER, 1, bytes([0x10, 0x01, 2, 0]))
        assert read_eof(sock)
    finally:
        sock.close()
    assert cluster[61].proc is not None and cluster[61].proc.poll() is None  # alive
    # And it accepts the peer again after its back-off.
    sock, _ = raw_peer_established(daemon_node=61, node=62, domain=CHILD, role=Role.CHILD, retry=10)
    sock.close()


def test_s8_2_wrong_peer_domain_gets_bad_peer_domain_id(
    cluster: dict[int, Daemon], tmp_path: Path
) -> None:
    start(cluster, tmp_path, 71, TLD1, [Peer(72, "child", CHILD, passive=True)])
    cluster[71].wait_for(lambda r: r.get("event") == "listening")
    sock = connect_from(72, 71)
    framer = Framer()
    try:
        wrong = Open(
            AddressFamily.IPV4, Role.CHILD, 30, DomainId(4242), NodeId(0x7F00094B), DomainId(TLD1)
        )
        sock.sendall(encode(wrong))
        assert isinstance(read_message(sock, framer), Open)  # the daemon's, then the answer
        note = read_message(sock, framer)
        assert isinstance(note, Notification)
        assert (note.code, note.subcode, note.open_bit) == (ErrorCode.OPEN_MESSAGE, 2, False)
        assert note.data == encode(wrong)[4:]  # §8.2: the OPEN without its header
    finally:
        sock.close()


def test_check_config_exit_codes(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(render(1, TLD1, [Peer(2, "child", CHILD)], tmp_path))
    ok = subprocess.run(
        [sys.executable, "-m", "masc", "check-config", str(good)], capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text(render(1, TLD1, [Peer(2, "chlid", CHILD)], tmp_path))
    for command in (["check-config", str(bad)], ["run", "--config", str(bad)]):
        result = subprocess.run(
            [sys.executable, "-m", "masc", *command], capture_output=True, text=True
        )
        assert result.returncode == 2
        assert str(bad) in result.stderr and "peers[0].relation" in result.stderr


def test_address_already_in_use_exits_1_with_a_message(
    cluster: dict[int, Daemon], tmp_path: Path
) -> None:
    first = start(cluster, tmp_path, 81, TLD1, [])
    first.wait_for(lambda r: r.get("event") == "listening")
    other = tmp_path / "other"
    other.mkdir()
    second = Daemon(81, render(81, TLD1, [], other), other)
    try:
        assert second.wait_exit() == 1
        fatal = second.wait_for(lambda r: r.get("event") == "fatal")
        assert "in use" in fatal["message"].lower()
    finally:
        second.stop()


def test_mascctl_without_daemon_exits_3(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "masc.cli.mascctl",
            "--socket",
            str(tmp_path / "none.sock"),
            "show",
            "peers",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 3 and "cannot reach" in result.stderr


# --- a peer played by a raw socket -------------------------------------------------------------


def connect_from(node: int, daemon_node: int, retry: float = 0) -> socket.socket:
    deadline = time.monotonic() + retry
    while True:
        sock = socket.socket()
        sock.bind((addr(node), 0))
        sock.settimeout(10)
        try:
            sock.connect((addr(daemon_node), PORT))
            return sock
        except OSError:
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def read_message(
    sock: socket.socket, framer: Framer, *, timeout: float = 10, skip_keepalives: bool = False
) -> object:
    sock.settimeout(timeout)
    while True:
        frame = framer.next_frame()
        if frame is not None:
            message = decode(frame)
            if skip_keepalives and isinstance(message, Keepalive):
                continue
            return message
        data = sock.recv(65536)
        if not data:
            raise AssertionError("connection closed while waiting for a message")
        framer.feed(data)


def read_eof(sock: socket.socket) -> bool:
    """After a closing NOTIFICATION nothing more arrives: the next read sees EOF (or RST)."""
    sock.settimeout(5)
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True


def raw_peer_established(
    *,
    daemon_node: int,
    node: int,
    domain: int,
    role: Role,
    retry: float = 0,
    parent: int | None = None,
) -> tuple[socket.socket, Framer]:
    """Open a session to the daemon as peer ``node`` and bring it to Established.

    ``parent`` is the OPEN's Parent's Domain ID; by default the daemon's domain TLD1 (we
    are its child), TLD_ID (0) for a sibling TLD.  We speak first: the daemon takes an
    accepted connection only with the peer's OPEN (docs/conformance.md choice 17)."""
    node_id = NodeId(int.from_bytes(socket.inet_aton(addr(node)), "big"))
    ours = Open(
        AddressFamily.IPV4,
        role,
        30,
        DomainId(domain),
        node_id,
        DomainId(TLD1 if parent is None else parent),
    )
    deadline = time.monotonic() + retry
    while True:
        sock = connect_from(node, daemon_node, retry=retry)
        framer = Framer()
        try:
            sock.sendall(encode(ours))
            theirs = read_message(sock, framer)
            break
        except (AssertionError, OSError):
            # Refused while the daemon's back-off runs (§10 Idle refuses connections).
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
    assert isinstance(theirs, Open)
    assert isinstance(read_message(sock, framer), Keepalive)
    sock.sendall(encode(Keepalive()))
    return sock, framer


def test_control_socket_survives_hostile_clients(
    cluster: dict[int, Daemon], tmp_path: Path
) -> None:
    daemon = start(cluster, tmp_path, 91, TLD1, [])
    daemon.wait_for(lambda r: r.get("event") == "control_listening")
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(10)
        client.connect(daemon.control)
        client.sendall(b"[" * 100_000 + b"\n")  # deep nesting: once a crash (review C3)
        reply = json.loads(client.makefile().readline())
        assert reply["ok"] is False and reply["error"]["code"] == "bad_json"
        client.sendall(b'{"verb": "show summary"}\n')  # the connection is still usable
        assert json.loads(client.makefile().readline())["ok"] is True
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(10)
        client.connect(daemon.control)
        client.sendall(b"x" * 70_000)  # no newline, over the limit
        reply = json.loads(client.makefile().readline())
        assert reply["error"]["code"] == "too_large"
    assert daemon.proc is not None and daemon.proc.poll() is None
    assert daemon.mascctl("show", "summary").returncode == 0


def test_s4_4_siblings_with_two_common_parents_keep_one_session_per_parent(
    cluster: dict[int, Daemon], tmp_path: Path
) -> None:
    """Two domains that are both children of 65001 and 65002 peer twice, once per common
    parent; each incoming connection is matched to its session by the OPEN's Parent's
    Domain ID, and the two are not a §8.8 collision."""
    parents = "parent_domain_ids = [65001, 65002]"
    a = start(cluster, tmp_path, 101, 65010,
              [Peer(102, "sibling", 65011, parent_domain_id=p) for p in (65001, 65002)],
              extra_local=parents)  # fmt: skip
    b = start(cluster, tmp_path, 102, 65011,
              [Peer(101, "sibling", 65010, parent_domain_id=p) for p in (65001, 65002)],
              extra_local=parents)  # fmt: skip
    for daemon, other in ((a, 102), (b, 101)):
        daemon.wait_for(
            lambda r, other=other: r.get("event") == "session_up" and r.get("peer") == addr(other)
        )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        rows = json.loads(a.mascctl("--json", "show", "peers").stdout)["peers"]
        if all(r["state"] == "Established" for r in rows):
            break
        time.sleep(0.2)
    assert sorted((r["parent_domain_id"], r["state"]) for r in rows) == [
        (65001, "Established"),
        (65002, "Established"),
    ]


def test_control_socket_survives_running_out_of_descriptors(tmp_path: Path) -> None:
    """Review finding C4: accept() failing with EMFILE once killed the daemon.  The limit is
    below what the 32-client cap would let in, so accept itself runs out of descriptors."""
    daemon = Daemon(111, render(111, TLD1, [], tmp_path), tmp_path, max_files=24)
    try:
        daemon.wait_for(lambda r: r.get("event") == "control_listening")
        clients = []
        for _ in range(40):  # more than the daemon has descriptors left
            client = socket.socket(socket.AF_UNIX)
            client.connect(daemon.control)  # the kernel queues them even when accept fails
            clients.append(client)
        daemon.wait_for(lambda r: r.get("event") == "accept_failed")
        assert daemon.proc is not None and daemon.proc.poll() is None
        for client in clients:
            client.close()
        deadline = time.monotonic() + 15
        while (result := daemon.mascctl("show", "summary")).returncode != 0:
            assert time.monotonic() < deadline, result.stderr
            time.sleep(0.2)
        assert daemon.proc.poll() is None
    finally:
        daemon.stop()
