"""Shared fixtures of the MADCAP server tests: scopes, a server, and messages built and read
through the real codec (bytes in, bytes out), at explicit times."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from masc.madcap import codec
from masc.madcap.constants import AddressFamily, ErrorCode, MessageType
from masc.madcap.messages import Address, Message, Options, ScopeName
from masc.madcap.scopes import Scope
from masc.madcap.server import Arrival, Grant, Lease, MadcapServer, Outcome, ServerSettings

A = IPv4Address
NOW = 1_700_000_000.0
HOUR = 3600.0
SERVER_ID = A("127.0.0.1")
OTHER_SERVER = A("127.0.0.2")
CLIENT = ("127.0.11.200", 40000)
LOCAL_GROUP = A("239.255.255.254")

ORG = Scope(
    name="org",
    first=A("239.192.0.0"),
    last=A("239.195.255.255"),
    names=(
        ScopeName("en", "Organization Local", default=True),
        ScopeName("de", "Organisation"),
    ),
    ranges=((A("239.192.1.0"), A("239.192.1.255")),),
    exclusions=((A("239.192.1.0"), A("239.192.1.15")),),
    default_lease=HOUR,
    max_lease=24 * HOUR,
    inside=("global",),
)
GLOBAL = Scope(
    name="global",
    first=A("224.0.1.0"),
    last=A("238.255.255.255"),
    names=(ScopeName("en", "world"),),
    source="masc",
    default_lease=HOUR,
    max_lease=7 * 24 * HOUR,
)
# Four addresses only: 239.255.0.1-239.255.0.4.
TINY = Scope(
    name="local",
    first=A("239.255.0.0"),
    last=A("239.255.255.255"),
    names=(ScopeName("en", "Local"),),
    ttl=16,
    ranges=((A("239.255.0.1"), A("239.255.0.4")),),
    inside=("org",),
)
SCOPES = (ORG, GLOBAL, TINY)
GRANT = Grant(IPv4Network("233.252.0.0/24"), expires=NOW + 30 * 24 * HOUR, active=True)


def lid(n: int) -> bytes:
    """§2.4.1 Random Lease Identifier: type 0 then 16 octets."""
    return b"\x00" + n.to_bytes(16, "big")


def settings(**changes: Any) -> ServerSettings:
    return ServerSettings(server_id=SERVER_ID, **changes)


def make_server(
    scopes: tuple[Scope, ...] = SCOPES,
    *,
    leases: tuple[Lease, ...] = (),
    now: float = NOW,
    **changes: Any,
) -> MadcapServer:
    return MadcapServer(settings(**changes), scopes, leases=leases, now=now)


def message(kind: int, xid: int, lease_id: bytes | None, **options: Any) -> Message:
    family = options.pop("family", AddressFamily.IPV4)
    return Message(kind, family, xid, Options(lease_id=lease_id, **options))


def request(xid: int, lease_id: bytes, scope: Address = ORG.scope_id, **options: Any) -> Message:
    return message(MessageType.REQUEST, xid, lease_id, scope=scope, **options)


def discover(xid: int, lease_id: bytes, scope: Address = ORG.scope_id, **options: Any) -> Message:
    return message(MessageType.DISCOVER, xid, lease_id, scope=scope, **options)


def renew(xid: int, lease_id: bytes, **options: Any) -> Message:
    return message(MessageType.RENEW, xid, lease_id, **options)


def release(xid: int, lease_id: bytes, **options: Any) -> Message:
    return message(MessageType.RELEASE, xid, lease_id, **options)


def getinfo(xid: int, lease_id: bytes, orl: tuple[int, ...] = (9,), **options: Any) -> Message:
    return message(MessageType.GETINFO, xid, lease_id, option_request_list=orl, **options)


@dataclass
class Exchange:
    """One datagram through the server: its Outcome and the decoded reply (if any)."""

    outcome: Outcome
    reply: Message | None

    @property
    def options(self) -> Options:
        assert self.reply is not None, self.outcome
        return self.reply.options

    @property
    def kind(self) -> int | None:
        return None if self.reply is None else self.reply.msg_type

    @property
    def addresses(self) -> list[Address]:
        ranges = self.options.ranges or ()
        return [r.start + i for r in ranges for i in range(r.count)]

    @property
    def error(self) -> tuple[int, bytes]:
        assert self.kind == MessageType.NAK, self.outcome
        error = self.options.error
        assert error is not None
        return error.code, error.extra

    def nak(self, code: ErrorCode, option: int | None = None) -> bool:
        got, _ = self.error
        if got != code:
            return False
        return option is None or codec.offending_option(self.options.error) == option  # type: ignore[arg-type]


def send(
    server: MadcapServer,
    msg: Message | bytes,
    *,
    now: float = NOW,
    group: Address | None = None,
    source: tuple[str, int] = CLIENT,
    server_id: Address = SERVER_ID,
) -> Exchange:
    data = msg if isinstance(msg, bytes) else codec.encode(msg)
    outcome = server.handle_datagram(data, arrival=Arrival(source, group), now=now)
    reply = None if outcome.reply is None else codec.decode(outcome.reply)
    if reply is not None and not isinstance(msg, bytes):
        assert reply.xid == msg.xid  # §2.1.4: "MUST use the same xid value"
        assert reply.options.server_id == server_id  # §3.3: every server message
    return Exchange(outcome, reply)


def granted(server: MadcapServer, scope: str = "global", *grants: Grant) -> MadcapServer:
    server.set_grants(scope, grants or (GRANT,), now=NOW)
    return server
