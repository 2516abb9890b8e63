"""TCP MD5 and GTSM on real loopback sockets (masc.daemon.transport, RFC 2385, RFC 5082):
the kernel must actually refuse a handshake with a missing or wrong key."""

from __future__ import annotations

import socket
import struct
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
import trio

from masc.daemon.transport import (
    IP_MINTTL,
    TCP_MD5SIG_MAXKEYLEN,
    dial,
    listen,
    md5sig_option,
    set_gtsm,
    set_md5_key,
)

SERVER, CLIENT = ip_address("127.0.8.1"), ip_address("127.0.8.2")


async def _connects(listener_key: bytes | None, dial_key: bytes | None) -> bool:
    def prepare(sock: trio.socket.SocketType, family: int) -> None:
        set_md5_key(sock, CLIENT, listener_key)

    listener = await listen(SERVER, 0, prepare=prepare)
    port = listener.socket.getsockname()[1]
    async with listener:
        with trio.move_on_after(1.5):
            stream = await dial(SERVER, port, local_address=CLIENT, md5_key=dial_key)
            accepted = await listener.accept()
            await stream.send_all(b"OPEN")
            assert await accepted.receive_some(10) == b"OPEN"
            await stream.aclose()
            await accepted.aclose()
            return True
    return False


@pytest.mark.parametrize(
    ("listener_key", "dial_key", "connects"),
    [
        (b"k3y", b"k3y", True),
        (b"k3y", b"wrong", False),
        (b"k3y", None, False),
        (None, b"k3y", False),
        (None, None, True),
    ],
)
async def test_rfc2385_only_the_same_key_on_both_ends_connects(
    listener_key: bytes | None, dial_key: bytes | None, connects: bool
) -> None:
    assert await _connects(listener_key, dial_key) is connects


async def test_a_removed_key_stops_signing() -> None:
    def prepare(sock: trio.socket.SocketType, family: int) -> None:
        set_md5_key(sock, CLIENT, b"old")
        set_md5_key(sock, CLIENT, None)  # what a reload that drops the password does
        set_md5_key(sock, IPv4Address("127.0.8.9"), None)  # never keyed: no error

    listener = await listen(SERVER, 0, prepare=prepare)
    async with listener:
        with trio.fail_after(2):
            stream = await dial(SERVER, listener.socket.getsockname()[1], local_address=CLIENT)
            await (await listener.accept()).aclose()
            await stream.aclose()


async def test_rfc5082_gtsm_sends_ttl_255_and_sets_the_minimum() -> None:
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with sock:
        set_gtsm(sock, socket.AF_INET, 1)
        assert sock.getsockopt(socket.IPPROTO_IP, socket.IP_TTL) == 255
        assert sock.getsockopt(socket.IPPROTO_IP, IP_MINTTL) == 255
        set_gtsm(sock, socket.AF_INET, 3)
        assert sock.getsockopt(socket.IPPROTO_IP, IP_MINTTL) == 253


async def test_gtsm_on_loopback_connects_a_peer_one_hop_away() -> None:
    listener = await listen(SERVER, 0, prepare=lambda s, f: set_gtsm(s, f, 1))
    async with listener:
        with trio.fail_after(2):
            stream = await dial(
                SERVER, listener.socket.getsockname()[1], local_address=CLIENT, ttl_hops=1
            )
            await (await listener.accept()).aclose()
            await stream.aclose()


def test_md5sig_layout() -> None:
    """``struct tcp_md5sig``: sockaddr_storage (128), flags, prefixlen, keylen, ifindex, key."""
    raw = md5sig_option(IPv4Address("10.1.2.3"), b"abc")
    assert len(raw) == 128 + 1 + 1 + 2 + 4 + TCP_MD5SIG_MAXKEYLEN
    assert struct.unpack_from("=H", raw)[0] == socket.AF_INET
    assert raw[4:8] == bytes([10, 1, 2, 3])
    assert struct.unpack_from("=H", raw, 130)[0] == 3 and raw[136:139] == b"abc"
    six = md5sig_option(IPv6Address("2001:db8::1"), b"")
    assert struct.unpack_from("=H", six)[0] == socket.AF_INET6
    assert six[8:24] == IPv6Address("2001:db8::1").packed
    with pytest.raises(ValueError):
        md5sig_option(IPv4Address("10.1.2.3"), b"k" * 81)
