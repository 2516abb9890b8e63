"""TCP for MASC sessions with the protections BGP routers use (RFC 2909 §14).

§14: "each MASC node should allow peering only with trustworthy nodes."  Two kernel
mechanisms make that hold on the wire, not just in the configuration:

* TCP MD5 signatures (RFC 2385, Linux ``TCP_MD5SIG``): every segment of the session
  carries a keyed digest; the kernel drops segments (the SYN included) from the peer's
  address whose digest is missing or wrong, so a node without the key never gets as far
  as an OPEN.  A key is set per peer address on the dialling socket and on each listener.
* GTSM (RFC 5082, ``IP_MINTTL`` / ``IPV6_MINHOPCOUNT``): we send with TTL 255 and accept
  only segments that arrive with at least 256 - hops, so only a node at most ``hops``
  routers away can talk to us at all — a remote attacker cannot forge that TTL.

Both must be set before the handshake, which is why sessions dial from a socket of our own
instead of ``trio.open_tcp_stream``.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address

import trio

# <linux/tcp.h>, <linux/in.h>, <linux/in6.h>: not all of them are in Python's socket module.
TCP_MD5SIG = 14
TCP_MD5SIG_MAXKEYLEN = 80
IP_MINTTL = 21
IPV6_MINHOPCOUNT = 73
MAX_TTL = 255

Address = IPv4Address | IPv6Address


def md5sig_option(peer: Address, key: bytes) -> bytes:
    """``struct tcp_md5sig`` for ``peer``: an empty ``key`` deletes the peer's key.

    Layout: a ``sockaddr_storage`` (128 octets), flags and prefix length (one octet each,
    zero: the key is for this one address), key length (u16), ifindex (u32), the key (80).
    """
    if len(key) > TCP_MD5SIG_MAXKEYLEN:
        raise ValueError(f"a TCP MD5 key is at most {TCP_MD5SIG_MAXKEYLEN} octets")
    if isinstance(peer, IPv4Address):
        sockaddr = struct.pack("=H", socket.AF_INET) + struct.pack("!H", 0) + peer.packed
    else:
        sockaddr = (
            struct.pack("=H", socket.AF_INET6)
            + struct.pack("!HI", 0, 0)
            + peer.packed
            + struct.pack("=I", 0)
        )
    sockaddr = sockaddr.ljust(128, b"\0")
    return sockaddr + struct.pack("=BBHI", 0, 0, len(key), 0) + key.ljust(80, b"\0")


def set_md5_key(sock: trio.socket.SocketType, peer: Address, key: bytes | None) -> None:
    """Sign the connection(s) with ``peer`` (``None`` or empty: stop signing).

    Deleting a key the socket never had fails with ENOENT, which is what we wanted."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, TCP_MD5SIG, md5sig_option(peer, key or b""))
    except FileNotFoundError:
        if key:
            raise


def set_gtsm(sock: trio.socket.SocketType, family: int, hops: int | None) -> None:
    """Send with TTL 255 and, when ``hops`` is set, accept only segments from at most
    ``hops`` routers away (RFC 5082 §3)."""
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, MAX_TTL)
        if hops is not None:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MINHOPCOUNT, MAX_TTL + 1 - hops)
    else:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, MAX_TTL)
        if hops is not None:
            sock.setsockopt(socket.IPPROTO_IP, IP_MINTTL, MAX_TTL + 1 - hops)


def clear_min_ttl(sock: trio.socket.SocketType, family: int) -> None:
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MINHOPCOUNT, 0)
    else:
        sock.setsockopt(socket.IPPROTO_IP, IP_MINTTL, 0)


async def dial(
    address: Address,
    port: int,
    *,
    local_address: Address | None,
    md5_key: bytes | None = None,
    ttl_hops: int | None = None,
) -> trio.SocketStream:
    """Connect to a peer from ``local_address``, signed and TTL-protected as configured."""
    family = socket.AF_INET6 if isinstance(address, IPv6Address) else socket.AF_INET
    sock = trio.socket.socket(family, socket.SOCK_STREAM)
    try:
        if md5_key:
            set_md5_key(sock, address, md5_key)
        if ttl_hops is not None:
            set_gtsm(sock, family, ttl_hops)
        if local_address is not None:
            await sock.bind((str(local_address), 0))
        await sock.connect((str(address), port))
    except BaseException:
        sock.close()
        raise
    return trio.SocketStream(sock)


async def listen(
    address: Address,
    port: int,
    *,
    prepare: Callable[[trio.socket.SocketType, int], None],
    backlog: int = 128,
) -> trio.SocketListener:
    """A listening socket on ``address``.  ``prepare(sock, family)`` sets the peers' keys
    and TTL options before ``listen()``: a SYN that arrived before them would be answered
    unsigned."""
    family = socket.AF_INET6 if isinstance(address, IPv6Address) else socket.AF_INET
    sock = trio.socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        await sock.bind((str(address), port))
        prepare(sock, family)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return trio.SocketListener(sock)
