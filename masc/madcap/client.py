"""A trio MADCAP client (RFC 2730) shaped like the abstract API of RFC 2771.

    async with open_madcap_client(server=("192.0.2.1", 2535)) as madcap:
        scopes = await madcap.get_scopes("en")
        lease = await madcap.alloc(scopes[0], max_addresses=2, max_lifetime=7200)
        lease = await madcap.change_lifetime(lease, 3600, 7200)
        await madcap.release(lease)

RFC 2771 operation                   here                          (Windows MCAST API)
  alloc_multicast_addr               :meth:`MadcapClient.alloc`    McastRequestAddress
  change_multicast_addr_lifetime     :meth:`~MadcapClient.change_lifetime`   McastRenewAddress
  change_multicast_addr_start_time   :meth:`~MadcapClient.change_start_time`
  deallocate_multicast_addr          :meth:`~MadcapClient.release` McastReleaseAddress
  get_multicast_addr_scopes          :meth:`~MadcapClient.get_scopes`  McastEnumerateScopes
  get_scope_name                     :meth:`Scope.name`
  get_scope_nesting_state            :meth:`~MadcapClient.nesting`
  get_larger_scopes / smaller        :meth:`~MadcapClient.larger` / :meth:`~MadcapClient.smaller`
  (a concrete Lease Identifier)      :func:`generate_client_id`   McastGenUID

RFC 2771 §2 lets a concrete API use relative times: lifetimes here are seconds (a duration
counted from the lease's start), start times are absolute Unix seconds on this client's
clock.  Status codes are exceptions: :class:`MadcapError` (a NAK, with the RFC 2730 error),
:class:`TryLater` (RFC 2771's TRY_LATER, the Retry After feature of §2.13.2) and
:class:`NoResponse`; arguments RFC 2771 calls "bad" (max < min, ...) raise ``ValueError``
before anything is sent.

The wire behaviour is RFC 2730's:

* §2.3 retransmission: byte-identical copies at t, t+4, t+12, t+28, give up at t+60
  (masc.madcap.retransmit); never a copy after a NAK; each new message gets a new xid
  (§2.1.4: a random first xid, then +1).
* §2.5: a reply counts only if its xid *and* Lease Identifier match the outstanding
  transaction; §2.1.5/§2.2/§2.6: anything else, anything that breaks Table 5
  (``rules.client_check``) or this transaction's own constraints, is ignored.
* Server location (§2.9-§2.11): with a configured server every request is unicast to it.
  Without one, GETINFO is multicast to the Local Scope's server address 239.255.255.254
  and an allocation DISCOVERs on the scope's MADCAP Server Multicast Address (its last
  address minus one, §2.10), collects OFFERs for at most [DISCOVER-DELAY] (§2.2.2), and
  multicasts the REQUEST naming the chosen Server Identifier to the same group (§2.2.4).
  RENEW and RELEASE always go unicast to the server that granted the lease (§2.2.7, §2.2.8).
* §2.12/§3.12: Current Time is sent whenever Start Time or Maximum Start Time is; absolute
  times in replies (Start Time, Retry Time) are moved onto this client's clock through the
  reply's Current Time, so a skewed server clock does not shift the lease.

One reader task serves every transaction: it decodes each datagram and hands it to the
transaction waiting on its xid, so several tasks may use one client at once.
"""

from __future__ import annotations

import logging
import math
import random
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Network, IPv6Address, ip_address
from typing import Any, Final

import trio

from masc.madcap import codec, nesting, rules
from masc.madcap.constants import (
    DEFAULT_MULTICAST_TTL,
    LOCAL_SCOPE_SERVER_ADDRESS,
    NO_RESPONSE_DELAY,
    PORT,
    RANDOM_LEASE_ID_BYTES,
    AddressFamily,
    ErrorCode,
    Feature,
    LeaseIdType,
    MessageType,
    OptionCode,
)
from masc.madcap.messages import (
    Address,
    AddressCount,
    AddressRange,
    FeatureList,
    Message,
    NestingState,
    Options,
    ScopeEntry,
    ScopeName,
)
from masc.madcap.retransmit import current_delay, schedule

__all__ = [
    "Lease",
    "MadcapClient",
    "MadcapError",
    "NoResponse",
    "Scope",
    "TryLater",
    "discovery_address",
    "error_name",
    "generate_client_id",
    "open_madcap_client",
]

log = logging.getLogger("masc.madcap.client")

_RECEIVE_BYTES: Final = 65535
_QUEUE: Final = 64  # replies waiting for one transaction; more are dropped like lost datagrams
_U16_MAX: Final = 0xFFFF
_U32_MAX: Final = 0xFFFF_FFFF
# RFC 2365 §6: the administratively scoped IPv4 block.  A scope outside it (the global scope)
# has no server address a client may use (§2.11), so discovery goes to the Local Scope's.
_ADMIN_SCOPED: Final = IPv4Network("239.0.0.0/8")
_IPV6_GLOBAL_SCOPE: Final = 0xE  # RFC 4291 scop of a global IPv6 multicast address

_ERROR_NAMES: Final[dict[int, tuple[str, str]]] = {
    ErrorCode.VALID_REQUEST_NOT_COMPLETED: ("Valid Request Could Not Be Completed", "§3.17.1"),
    ErrorCode.INVALID_REQUEST: ("Invalid Request", "§3.17.2"),
    ErrorCode.EXCESSIVE_CLOCK_SKEW: ("Excessive Clock Skew", "§3.17.3"),
    ErrorCode.LEASE_ID_NOT_RECOGNIZED: ("Lease Identifier Not Recognized", "§3.17.4"),
    ErrorCode.REQUIRED_FEATURE_NOT_SUPPORTED: ("Required Feature Not Supported", "§3.17.5"),
}
_OPTION_NAMES: Final = {
    int(code): code.name.replace("_", " ").title().replace("Of", "of") for code in OptionCode
}
_FEATURE_NAMES: Final = {int(f): f.name.replace("_", " ").title() for f in Feature}


def error_name(code: int) -> str:
    """The RFC 2730 §3.17 name of an error code, e.g. "Lease Identifier Not Recognized"."""
    if code in _ERROR_NAMES:
        return _ERROR_NAMES[code][0]
    if 1024 <= code <= 2047:
        return f"Experimental error {code}"  # §3.17.6
    return f"unknown error {code}"


def generate_client_id(rng: random.Random | None = None) -> bytes:
    """A §2.4.1 Random Lease Identifier: type 0 and 16 random octets (17 octets, the
    length of the Windows API's client UID).  Without ``rng`` the octets come from the
    operating system's generator ("a decent random number generator", §2.4.1)."""
    if rng is None:
        body = secrets.token_bytes(RANDOM_LEASE_ID_BYTES)
    else:
        body = rng.randbytes(RANDOM_LEASE_ID_BYTES)
    return bytes([LeaseIdType.RANDOM]) + body


# --- what the API hands out -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scope:
    """RFC 2771's Scope: a zone from a Multicast Scope List (§3.10), with its names."""

    scope_id: Address  # the first address (§3.5)
    last_address: Address
    ttl: int = 255
    names: tuple[ScopeName, ...] = ()

    @classmethod
    def from_entry(cls, entry: ScopeEntry) -> Scope:
        return cls(entry.scope_id, entry.last_address, entry.ttl, entry.names)

    @property
    def family(self) -> AddressFamily:
        return AddressFamily.IPV4 if self.scope_id.version == 4 else AddressFamily.IPV6

    @property
    def server_address(self) -> Address:
        """§2.10: the MADCAP Server Multicast Address, "a relative offset of -1 from the last
        address of a multicast scope"."""
        return self.last_address - 1

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, IPv4Address | IPv6Address):
            return False
        if address.version != self.scope_id.version:
            return False
        return int(self.scope_id) <= int(address) <= int(self.last_address)

    def name(self, language: str | None = None) -> tuple[str, str] | None:
        """RFC 2771 §3.5 get_scope_name: ``(name, language)`` in ``language`` if the scope has
        one (tags compared case-insensitively, as §3.10 does), else its default name (the
        0x80 flag), else its first name; None for a scope without names."""
        if language is not None:
            for entry in self.names:
                if entry.language.lower() == language.lower():
                    return entry.name, entry.language
        for entry in self.names:
            if entry.default:
                return entry.name, entry.language
        if self.names:
            return self.names[0].name, self.names[0].language
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "scope_id": str(self.scope_id),
            "last_address": str(self.last_address),
            "server_address": str(self.server_address),
            "ttl": self.ttl,
            "names": [
                {"language": n.language, "name": n.name, "default": n.default} for n in self.names
            ],
        }


@dataclass(frozen=True, slots=True)
class Lease:
    """RFC 2771's Lease, with the Lease Identifier and the server RENEW/RELEASE must go to."""

    lease_id: bytes
    server_id: Address  # the server's Server Identifier option (§3.3)
    server: tuple[str, int]  # where its ACK came from: RENEW/RELEASE are unicast there
    scope_id: Address
    ranges: tuple[AddressRange, ...]
    start: float  # Unix seconds, this client's clock
    lifetime: float  # seconds from start

    @property
    def end(self) -> float:
        return self.start + self.lifetime

    @property
    def family(self) -> AddressFamily:
        return AddressFamily.IPV4 if self.scope_id.version == 4 else AddressFamily.IPV6

    @property
    def addresses(self) -> tuple[Address, ...]:
        """The allocated addresses, every range expanded (§3.11)."""
        return tuple(r.start + i for r in self.ranges for i in range(r.count))

    def to_json(self) -> dict[str, Any]:
        """The lease as the ``madcap`` CLI prints and saves it (:meth:`from_json` reads it)."""
        return {
            "status": "granted",
            "lease_id": self.lease_id.hex(),
            "server_id": str(self.server_id),
            "server": {"address": self.server[0], "port": self.server[1]},
            "scope_id": str(self.scope_id),
            "ranges": [{"start": str(r.start), "count": r.count} for r in self.ranges],
            "addresses": [str(a) for a in self.addresses],
            "start": self.start,
            "end": self.end,
            "lifetime": self.lifetime,
        }

    @classmethod
    def from_json(cls, data: Any) -> Lease:
        """Read :meth:`to_json`'s form back; ``ValueError`` naming the field if it is wrong."""
        try:
            ranges = tuple(
                AddressRange(ip_address(r["start"]), _count(r["count"])) for r in data["ranges"]
            )
            return cls(
                lease_id=_lease_id_from(data["lease_id"]),
                server_id=ip_address(data["server_id"]),
                server=_server_from(data["server"]),
                scope_id=ip_address(data["scope_id"]),
                ranges=ranges,
                start=_number(data["start"]),
                lifetime=_number(data["lifetime"]),
            )
        except KeyError as error:
            raise ValueError(f"missing field {error.args[0]!r}") from None
        except (TypeError, AttributeError) as error:
            raise ValueError(f"not a lease: {error}") from None


def _lease_id_from(text: Any) -> bytes:
    if not isinstance(text, str):
        raise ValueError("lease_id: expected a hex string")
    try:
        lease_id = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"lease_id: not hex: {text!r}") from None
    if not lease_id:
        raise ValueError("lease_id: empty (§3.4: at least one octet)")
    return lease_id


def _server_from(data: Any) -> tuple[str, int]:
    address, port = data["address"], data["port"]
    if not isinstance(address, str):
        raise ValueError(f"server.address: not an address: {address!r}")
    ip_address(address)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port <= _U16_MAX:
        raise ValueError(f"server.port: not a port: {port!r}")
    return str(address), port


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _U16_MAX:
        raise ValueError(f"expected a block size 0..65535, got {value!r}")
    return value


class MadcapError(Exception):
    """A request that did not succeed.  For a NAK (§2.2.6) ``code`` is the §3.17 error code
    and the message names it; ``option`` is the offending option of errors 0 and 1
    (0xFFFF: none), ``server_time`` the server's clock of error 2, ``features`` the
    unsupported features of error 4.  ``status`` is what the CLI reports: "nak", or
    "bad_scope" / "undetermined" for RFC 2771's errors of the same names."""

    status: str = "nak"

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        option: int | None = None,
        server_time: int | None = None,
        features: tuple[int, ...] = (),
        server: tuple[str, int] | None = None,
        status: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.option = option
        self.server_time = server_time
        self.features = features
        self.server = server
        if status is not None:
            self.status = status

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "message": self.message}
        if self.code is not None:
            out["error"] = {"code": self.code, "name": error_name(self.code)}
        if self.option is not None:
            out["option"] = self.option
        if self.server_time is not None:
            out["server_time"] = self.server_time
        if self.features:
            out["features"] = list(self.features)
        if self.server is not None:
            out["server"] = {"address": self.server[0], "port": self.server[1]}
        return out


class TryLater(MadcapError):
    """RFC 2771's TRY_LATER: the server took up the Retry After feature (§2.13.2) and asks
    for the same request again, with a new xid, at or after ``retry_at`` (Unix seconds on
    this client's clock, converted from the server's Retry Time through its Current Time).
    :meth:`MadcapClient.retry` sends it; :meth:`MadcapClient.release` of this object
    cancels the pending allocation."""

    status = "try_later"

    def __init__(
        self,
        message: str,
        *,
        retry_at: float,
        lease_id: bytes,
        server: tuple[str, int],
        server_id: Address | None,
        request: Message,
        scope: Scope | None,
    ) -> None:
        super().__init__(message, server=server)
        self.retry_at = retry_at
        self.lease_id = lease_id
        self.server_id = server_id
        self._request = request
        self._scope = scope

    @property
    def family(self) -> AddressFamily:
        """The address family of the addresses asked for (§2.1.3)."""
        return AddressFamily(self._request.family)

    def to_json(self) -> dict[str, Any]:
        return {
            **super().to_json(),
            "retry_at": self.retry_at,
            "lease_id": self.lease_id.hex(),
            "server_id": None if self.server_id is None else str(self.server_id),
        }

    @staticmethod
    def pending_from_json(data: Any) -> tuple[bytes, tuple[str, int]]:
        """The Lease Identifier and server of :meth:`to_json`'s form: what a RELEASE that
        cancels the pending allocation needs (§2.13.2).  ``ValueError`` naming the field."""
        try:
            return _lease_id_from(data["lease_id"]), _server_from(data["server"])
        except KeyError as error:
            raise ValueError(f"missing field {error.args[0]!r}") from None
        except (TypeError, AttributeError) as error:
            raise ValueError(f"not a pending allocation: {error}") from None


class NoResponse(MadcapError):
    """No acceptable answer before giving up (§2.3: t+60 s; [NO-RESPONSE-DELAY])."""

    status = "no_response"


# --- discovery --------------------------------------------------------------------------------


def discovery_address(scope: Scope) -> Address:
    """Where a DISCOVER (and the REQUEST completing it) for ``scope`` is multicast.

    §2.10: each scope's MADCAP Server Multicast Address is its last address minus one.
    §2.11: a client "MUST NOT send a MADCAP message to the MADCAP Server Multicast Address
    associated with the global scope", so an IPv4 scope outside the administratively scoped
    239/8 (the global scope) is asked for on the Local Scope's address, as in Appendix A.2.
    """
    if isinstance(scope.scope_id, IPv4Address):
        if scope.scope_id in _ADMIN_SCOPED and scope.last_address in _ADMIN_SCOPED:
            return scope.server_address
        return IPv4Address(LOCAL_SCOPE_SERVER_ADDRESS)
    if (int(scope.scope_id) >> 112) & 0xF == _IPV6_GLOBAL_SCOPE:
        raise ValueError(
            "RFC 2730 §2.11 forbids the global scope's server address and gives no IPv6 "
            "Local Scope address: configure a server"
        )
    return scope.server_address


# --- the client -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Reply:
    message: Message
    source: tuple[str, int]
    received: float  # this client's clock (Unix seconds)


@dataclass(frozen=True, slots=True)
class _Want:
    """What an allocation asked for, to judge OFFERs and ACKs (§2.2.3, §2.2.5, §3.8)."""

    scope: Scope | None
    scope_id: Address | None
    min_addresses: int = 1
    max_addresses: int = 1
    lease_time: int | None = None
    min_lease_time: int | None = None
    try_later: bool = False


@asynccontextmanager
async def open_madcap_client(
    *,
    server: tuple[str, int] | None = None,
    bind: str = "0.0.0.0",
    multicast_interface: str | None = None,
    ttl: int = DEFAULT_MULTICAST_TTL,
    family: AddressFamily = AddressFamily.IPV4,
    port: int = PORT,
    clock: Callable[[], float] = time.time,
    rng: random.Random | None = None,
    give_up: float = NO_RESPONSE_DELAY,
    discover_delay: float | None = None,
) -> AsyncIterator[MadcapClient]:
    """A client with one UDP socket bound to ``(bind, 0)``; closed when the block ends.

    ``server`` (host, port): send every request there (unicast).  Without it the client
    multicasts (§2.9-§2.10) to groups at ``port`` (2535), with ``ttl`` (§2.10: 16) capped
    by the scope's TTL (§2.8), out of ``multicast_interface`` (an address of it for IPv4,
    a name for IPv6; default: the routing table's choice).  ``family`` is the header's
    address family: the family of the addresses asked for (§2.1.3).  ``clock`` is the wall
    clock in Unix seconds (the wire's absolute times, §3.7); retransmission runs on trio's
    clock.  ``rng`` draws xids and, when given, Lease Identifiers (default: the OS).
    ``give_up`` shortens the 60 s of §2.3; ``discover_delay`` fixes [DISCOVER-DELAY]
    (default: the current retransmit timer, §2.2.2).
    """
    if not 0 < ttl <= 255:
        raise ValueError(f"ttl must be 1..255, got {ttl}")
    bind_address = ip_address(bind)
    inet = socket.AF_INET if bind_address.version == 4 else socket.AF_INET6
    target: tuple[str, int] | None = None
    if server is not None:
        target = await _resolve(server, inet)
        if ip_address(target[0]).is_multicast:
            raise ValueError(f"server {target[0]} is a multicast address; omit it to discover")
    sock = trio.socket.socket(inet, socket.SOCK_DGRAM)
    with sock:
        await sock.bind((bind, 0))
        if multicast_interface is not None:
            if inet == socket.AF_INET:
                sock.setsockopt(
                    socket.IPPROTO_IP,
                    socket.IP_MULTICAST_IF,
                    socket.inet_aton(str(IPv4Address(multicast_interface))),
                )
            else:
                index = socket.if_nametoindex(multicast_interface)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
        client = MadcapClient(
            sock,
            server=target,
            family=family,
            port=port,
            ttl=ttl,
            clock=clock,
            rng=rng,
            give_up=give_up,
            discover_delay=discover_delay,
        )
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(client._read)
                try:
                    yield client
                finally:
                    nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # The reader never raises, so the group holds what the caller's block raised.
            if len(group.exceptions) != 1:
                raise
            raise group.exceptions[0] from None


async def _resolve(server: tuple[str, int], inet: int) -> tuple[str, int]:
    host, port = server
    try:
        return str(ip_address(host)), port
    except ValueError:
        pass
    infos = await trio.socket.getaddrinfo(host, port, inet, socket.SOCK_DGRAM)
    if not infos:
        raise OSError(f"cannot resolve {host}")
    address = infos[0][4]
    return str(address[0]), int(address[1])


class MadcapClient:
    """The RFC 2771 operations over MADCAP.  Use :func:`open_madcap_client` to get one."""

    def __init__(
        self,
        sock: trio.socket.SocketType,
        *,
        server: tuple[str, int] | None,
        family: AddressFamily,
        port: int,
        ttl: int,
        clock: Callable[[], float],
        rng: random.Random | None,
        give_up: float,
        discover_delay: float | None,
    ) -> None:
        self._sock = sock
        self.server = server
        self.family = family
        self.port = port
        self.ttl = ttl
        self._clock = clock
        self._id_rng = rng  # None: Lease Identifiers from the OS generator
        self._rng = rng if rng is not None else random.Random()
        self._offsets, self._give_up = schedule(give_up=give_up)
        self._discover_delay = discover_delay
        # §2.1.4: "choose a random four octet number as the first xid ... and increment".
        self._xid = self._rng.getrandbits(32)
        self._pending: dict[int, trio.MemorySendChannel[_Reply]] = {}
        self._send_lock = trio.Lock()

    # --- RFC 2771 §3.4-§3.8: scopes ------------------------------------------------------------

    async def get_scopes(self, language: str | None = None) -> list[Scope]:
        """§3.4 get_multicast_addr_scopes: the scopes servers list (§2.2.1 GETINFO with the
        Multicast Scope List in its Option Request List).  ``language``: one name per scope,
        the one closest to it (§3.10); without it servers return every name.  Multicast
        GETINFO collects ACKs for [DISCOVER-DELAY] after the first and merges their lists."""
        acks = await self._get_info((OptionCode.MULTICAST_SCOPE_LIST,), language)
        scopes: dict[Address, Scope] = {}
        for ack in acks:
            for entry in ack.message.options.scope_list or ():
                scopes.setdefault(entry.scope_id, Scope.from_entry(entry))
        return list(scopes.values())

    async def nesting(self, scopes: Sequence[Scope] | None = None) -> NestingState:
        """§3.6 get_scope_nesting_state: ``rows[x][y]`` is "scope x nests inside scope y"
        (RFC 2907) over ``scopes`` (default: the server's list, in its order).  MadcapError
        "bad_scope" for a scope the server does not list, "undetermined" when it sent no
        nesting state (or one whose count does not match its scope list: RFC 2907 §5)."""
        listed, state = await self._nesting_state()
        if scopes is None:
            return state
        picked = [self._index(listed, scope) for scope in scopes]
        return NestingState(tuple(tuple(state.rows[x][y] for y in picked) for x in picked))

    async def larger(self, scope: Scope | Address | str) -> list[Scope]:
        """§3.7 get_larger_scopes: the scopes ``scope`` is known to nest inside."""
        listed, state = await self._nesting_state()
        return [listed[y] for y in nesting.larger(state, self._index(listed, scope))]

    async def smaller(self, scope: Scope | Address | str) -> list[Scope]:
        """§3.8 get_smaller_scopes: the scopes known to nest inside ``scope``, including
        topologically identical ones."""
        listed, state = await self._nesting_state()
        return [listed[x] for x in nesting.smaller(state, self._index(listed, scope))]

    @staticmethod
    def _index(listed: Sequence[Scope], scope: Scope | Address | str) -> int:
        scope_id = _scope_id(scope)
        for index, known in enumerate(listed):
            if known.scope_id == scope_id:
                return index
        raise MadcapError(f"no server lists scope {scope_id}", status="bad_scope")

    async def _nesting_state(self) -> tuple[list[Scope], NestingState]:
        """The scope list and nesting state of the first server that sent a usable pair
        (GETINFO asking for options 9 and 17, RFC 2907 §3.3)."""
        wanted = (OptionCode.MULTICAST_SCOPE_LIST, OptionCode.MULTICAST_SCOPE_NESTING_STATE)
        for ack in await self._get_info(wanted, None):
            state = nesting.nesting_for(ack.message.options)
            if state is not None:
                listed = ack.message.options.scope_list or ()
                return [Scope.from_entry(entry) for entry in listed], state
        raise MadcapError("nesting state undetermined at this time", status="undetermined")

    async def _get_info(self, wanted: tuple[int, ...], language: str | None) -> list[_Reply]:
        """§2.2.1 GETINFO: the ACKs (MadcapError if only NAKs came)."""
        options = Options(
            lease_id=generate_client_id(self._id_rng),
            option_request_list=wanted,
            language=language,
        )
        request = Message(MessageType.GETINFO, self.family, self._next_xid(), options)
        if self.server is not None:
            replies, _ = await self._exchange(request, self.server)
        else:
            if self.family != AddressFamily.IPV4:
                raise ValueError("RFC 2730 gives no IPv6 server address: configure a server")
            # §2.9, §2.10: "it SHOULD use the MADCAP Server Multicast Address associated
            # with IPv4 Local Scope ... with maximum TTL of 16".
            group = (LOCAL_SCOPE_SERVER_ADDRESS, self.port)
            replies, _ = await self._exchange(request, group, ttl=self.ttl, collect=True)
        acks = [r for r in replies if r.message.msg_type == MessageType.ACK]
        if not acks:
            raise self._refused(replies[0])
        return acks

    # --- RFC 2771 §3.1: allocation ------------------------------------------------------------

    async def alloc(
        self,
        scope: Scope | Address | str,
        *,
        min_addresses: int = 1,
        max_addresses: int = 1,
        min_start: float | None = None,
        max_start: float | None = None,
        min_lifetime: float | None = None,
        max_lifetime: float | None = None,
        ranges: Sequence[AddressRange] = (),
        try_later: bool = False,
        lease_id: bytes | None = None,
    ) -> Lease:
        """§3.1 alloc_multicast_addr: between ``min_addresses`` and ``max_addresses``
        addresses (§3.8) in ``scope`` (a Scope, or its Scope ID), starting no earlier than
        ``min_start`` and no later than ``max_start`` (Unix seconds; omitted: as soon as
        possible, no limit), for ``max_lifetime`` seconds but no less than ``min_lifetime``
        (omitted: the server's default, no minimum).  ``ranges`` asks for particular
        addresses (§3.11).  ``try_later``: accept the Retry After feature (§2.13.2), which
        turns a slow allocation into :class:`TryLater`.  ``lease_id``: reuse an identifier
        (default: a new random one, §2.4.1).

        Raises MadcapError for a NAK, NoResponse, or ValueError for bad arguments.
        """
        _check_range("addresses", min_addresses, max_addresses, low=1, high=_U16_MAX)
        _check_range("lifetime", min_lifetime, max_lifetime, low=0, high=_U32_MAX)
        _check_range("start", min_start, max_start, low=0, high=_U32_MAX)
        known = scope if isinstance(scope, Scope) else None
        scope_id = _scope_id(scope)
        if scope_id.version != (4 if self.family == AddressFamily.IPV4 else 6):
            raise ValueError(f"scope {scope_id} is not of the client's family {self.family.name}")
        if lease_id is not None and not lease_id:
            raise ValueError("a Lease Identifier has at least one octet (§3.4)")
        want = _Want(
            scope=known,
            scope_id=scope_id,
            min_addresses=min_addresses,
            max_addresses=max_addresses,
            lease_time=_seconds(max_lifetime),
            min_lease_time=_seconds(min_lifetime),
            try_later=try_later,
        )
        options = Options(
            lease_time=want.lease_time,
            lease_id=lease_id if lease_id is not None else generate_client_id(self._id_rng),
            scope=scope_id,
            # §3.8: "When the client is requesting only one address, this option SHOULD NOT
            # be included."
            addresses=(None if max_addresses == 1 else AddressCount(min_addresses, max_addresses)),
            ranges=tuple(ranges) or None,
            features=FeatureList(supported=(Feature.RETRY_AFTER,)) if try_later else None,
            minimum_lease_time=want.min_lease_time,
            **self._start_options(min_start, max_start),
        )
        if self.server is not None:
            # §2.2.4: a REQUEST not completing a DISCOVER is unicast; Server Identifier MAY.
            request = Message(MessageType.REQUEST, self.family, self._next_xid(), options)
            return await self._request(request, self.server, want)
        return await self._discover_and_request(options, want)

    async def retry(self, pending: TryLater) -> Lease:
        """§2.13.2: send the request that earned ``pending`` again — "all the same options
        ... (especially the Lease Identifier option), but with a new xid value" — to the
        server that asked for it.  Call it at or after ``pending.retry_at``."""
        original = pending._request
        options = original.options
        if options.current_time is not None:
            options = replace(options, current_time=self._now())
        request = Message(original.msg_type, original.family, self._next_xid(), options)
        want = _Want(
            scope=pending._scope,
            scope_id=options.scope,
            min_addresses=options.addresses.minimum if options.addresses else 1,
            max_addresses=options.addresses.desired if options.addresses else 1,
            lease_time=options.lease_time,
            min_lease_time=options.minimum_lease_time,
            try_later=True,
        )
        assert pending.server is not None
        return await self._request(request, pending.server, want)

    async def _discover_and_request(self, options: Options, want: _Want) -> Lease:
        scope = want.scope
        assert want.scope_id is not None
        if scope is None:
            scope = await self._find_scope(want.scope_id)
            want = replace(want, scope=scope)
        group = (str(discovery_address(scope)), self.port)
        ttl = min(self.ttl, scope.ttl)  # §2.8: never above the scope's TTL
        # §2.2.2: a multicast DISCOVER with the same options a REQUEST would carry.
        discover = Message(MessageType.DISCOVER, self.family, self._next_xid(), options)
        replies, _ = await self._exchange(
            discover,
            group,
            ttl=ttl,
            collect=True,
            check=lambda m: _check_offer(m, want),
            enough=lambda m: _satisfies(m, discover, want),
        )
        offers = [r for r in replies if r.message.msg_type == MessageType.OFFER]
        if not offers:
            raise self._refused(replies[0])
        # §2.2.2: "the best response received in that period": most addresses, longest
        # lease, earliest start; the first of equals.
        chosen = max(offers, key=lambda r: _offer_rank(r.message, discover, want))
        server_id = chosen.message.options.server_id
        assert server_id is not None  # Table 5: OFFER MUST carry it (rules.client_check)
        # §2.2.4: multicast to the same group, the same Lease Identifier, and the Server
        # Identifier of the server selected; Appendix A.2: the DISCOVER's options.
        options = replace(options, server_id=server_id)
        if options.current_time is not None:
            options = replace(options, current_time=self._now())
        request = Message(MessageType.REQUEST, self.family, self._next_xid(), options)
        return await self._request(request, group, want, ttl=ttl, server_id=server_id)

    async def _find_scope(self, scope_id: Address) -> Scope:
        for scope in await self.get_scopes():
            if scope.scope_id == scope_id:
                return scope
        raise MadcapError(
            f"no server lists scope {scope_id}: cannot find its server address (§2.10)",
            status="bad_scope",
        )

    async def _request(
        self,
        request: Message,
        destination: tuple[str, int],
        want: _Want,
        *,
        ttl: int | None = None,
        server_id: Address | None = None,
    ) -> Lease:
        """Send a REQUEST or RENEW, return the lease its ACK grants."""
        replies, sent_at = await self._exchange(
            request,
            destination,
            ttl=ttl,
            check=lambda m: _check_ack(m, want, request),
            server_id=server_id,
        )
        reply = replies[0]
        if reply.message.msg_type == MessageType.NAK:
            raise self._refused(reply)
        options = reply.message.options
        if options.ranges == ():
            # §2.13.2: the Retry After answer (_check_ack made sure it is well formed).
            assert options.retry_time is not None and options.current_time is not None
            retry_at = options.retry_time + (reply.received - options.current_time)
            raise TryLater(
                f"{_who(reply)} asks to retry at {_when(retry_at)} (RFC 2730 §2.13.2 Retry After)",
                retry_at=retry_at,
                lease_id=_lid(request),
                server=reply.source,
                server_id=options.server_id,
                request=request,
                scope=want.scope,
            )
        return self._lease(reply, sent_at)

    def _lease(self, reply: _Reply, sent_at: float) -> Lease:
        options = reply.message.options
        assert options.server_id is not None and options.lease_id is not None
        assert options.scope is not None and options.lease_time is not None
        if options.start_time is not None and options.current_time is not None:
            # §2.12: the server's clock may differ from ours; its Current Time says by how much.
            start = options.start_time + (reply.received - options.current_time)
        else:
            # §2.2.5: "If no Start Time option is included, the lease is assumed to start
            # immediately"; the request's first send time is the conservative reading.
            start = sent_at
        return Lease(
            lease_id=options.lease_id,
            server_id=options.server_id,
            server=reply.source,
            scope_id=options.scope,
            ranges=options.ranges or (),
            start=start,
            lifetime=float(options.lease_time),
        )

    # --- RFC 2771 §3.2, §3.10: renewal --------------------------------------------------------

    async def renew(
        self,
        lease: Lease | bytes,
        *,
        min_lifetime: float | None = None,
        max_lifetime: float | None = None,
        min_start: float | None = None,
        max_start: float | None = None,
        try_later: bool = False,
        server: tuple[str, int] | None = None,
    ) -> Lease:
        """§2.2.7 RENEW: ask for a new start or lease time for the lease with this Lease
        Identifier; unicast to ``server``, else the lease's server, else the configured one.
        Without ``min_start`` the new lease time counts from now (Appendix A.3)."""
        _check_range("lifetime", min_lifetime, max_lifetime, low=0, high=_U32_MAX)
        _check_range("start", min_start, max_start, low=0, high=_U32_MAX)
        known = lease if isinstance(lease, Lease) else None
        lease_id = lease.lease_id if isinstance(lease, Lease) else lease
        destination = server or (known.server if known else None) or self.server
        if destination is None:
            raise ValueError("RENEW is unicast to the lease's server (§2.2.7): name a server")
        want = _Want(
            scope=None,
            scope_id=known.scope_id if known else None,
            lease_time=_seconds(max_lifetime),
            min_lease_time=_seconds(min_lifetime),
            try_later=try_later,
        )
        options = Options(
            lease_time=want.lease_time,
            lease_id=lease_id,
            features=FeatureList(supported=(Feature.RETRY_AFTER,)) if try_later else None,
            minimum_lease_time=want.min_lease_time,
            **self._start_options(min_start, max_start),
        )
        # §2.1.3: the header names the family of the lease's addresses, whatever the
        # client's default (the server answers a RENEW in another family with a NAK).
        family = known.family if known else self.family
        request = Message(MessageType.RENEW, family, self._next_xid(), options)
        return await self._request(request, destination, want)

    async def change_lifetime(
        self, lease: Lease, min_lifetime: float, max_lifetime: float
    ) -> Lease:
        """§3.2 change_multicast_addr_lifetime: a lease of ``max_lifetime`` seconds but no
        less than ``min_lifetime``, counted from now, or from the start of a lease that has
        not started yet (whose Start Time is sent again so that it stays).  The lease comes
        back unchanged when the server refuses but the time it has left is already in
        [min_lifetime, max_lifetime], as RFC 2771 §3.2 describes."""
        _check_range("lifetime", min_lifetime, max_lifetime, low=0, high=_U32_MAX)
        now = self._clock()
        start = lease.start if lease.start > now else None
        try:
            return await self.renew(
                lease, min_lifetime=min_lifetime, max_lifetime=max_lifetime, min_start=start
            )
        except MadcapError as error:
            remaining = lease.end - max(now, lease.start)
            if _could_not_complete(error) and min_lifetime <= remaining <= max_lifetime:
                return lease
            raise

    async def change_start_time(self, lease: Lease, min_start: float, max_start: float) -> Lease:
        """§3.10 change_multicast_addr_start_time: move the start into [min_start, max_start]
        keeping the lifetime (sent as Lease Time).  Unchanged if the server refuses but the
        start already lies in the window (RFC 2771: errors as for the lifetime)."""
        _check_range("start", min_start, max_start, low=0, high=_U32_MAX)
        try:
            return await self.renew(
                lease, max_lifetime=lease.lifetime, min_start=min_start, max_start=max_start
            )
        except MadcapError as error:
            if _could_not_complete(error) and min_start <= lease.start <= max_start:
                return lease
            raise

    # --- RFC 2771 §3.3: release ---------------------------------------------------------------

    async def release(
        self, lease: Lease | TryLater | bytes, *, server: tuple[str, int] | None = None
    ) -> None:
        """§3.3 deallocate_multicast_addr / §2.2.8 RELEASE: give the whole lease back (or
        cancel a pending Retry After allocation, §2.13.2); unicast to ``server``, else the
        lease's server, else the configured one."""
        family = self.family
        if isinstance(lease, bytes):
            lease_id, own = lease, None
        else:
            lease_id, own = lease.lease_id, lease.server
            # §2.1.3, as for RENEW: the family of the addresses leased or asked for.
            family = lease.family
        destination = server or own or self.server
        if destination is None:
            raise ValueError("RELEASE is unicast to the lease's server (§2.2.8): name a server")
        request = Message(MessageType.RELEASE, family, self._next_xid(), Options(lease_id=lease_id))
        replies, _ = await self._exchange(request, destination)
        if replies[0].message.msg_type == MessageType.NAK:
            raise self._refused(replies[0])

    # --- the exchange ---------------------------------------------------------------------------

    def _next_xid(self) -> int:
        xid = self._xid
        self._xid = (self._xid + 1) & _U32_MAX
        return xid

    def _now(self) -> int:
        return _wire_time(self._clock(), "current time")

    def _start_options(self, min_start: float | None, max_start: float | None) -> dict[str, Any]:
        """Start Time / Maximum Start Time, and the Current Time §2.12 and §3.12 require with
        them ("MUST be included if the Start Time or Maximum Start Time options are used")."""
        if min_start is None and max_start is None:
            return {}
        return {
            "start_time": None if min_start is None else _wire_time(min_start, "start"),
            "maximum_start_time": None if max_start is None else _wire_time(max_start, "start"),
            "current_time": self._now(),
        }

    async def _exchange(
        self,
        request: Message,
        destination: tuple[str, int],
        *,
        ttl: int | None = None,
        collect: bool = False,
        check: Callable[[Message], str | None] | None = None,
        enough: Callable[[Message], bool] | None = None,
        server_id: Address | None = None,
    ) -> tuple[list[_Reply], float]:
        """Send ``request`` on the §2.3 schedule until an acceptable answer arrives.

        Returns the accepted replies and the wall-clock time of the first copy.  Unicast
        (``collect`` false): the first acceptable ACK, OFFER or NAK ends the exchange at
        once.  Multicast GETINFO/DISCOVER (``collect``): the first acceptable answer stops
        retransmission and replies are gathered for [DISCOVER-DELAY] more, or until
        ``enough`` says one satisfies the request fully.  Raises NoResponse at give-up.
        """
        data = codec.encode(request)  # once: every copy is byte-identical (§2.1.4, §2.3)
        send_channel, receive_channel = trio.open_memory_channel[_Reply](_QUEUE)
        if request.xid in self._pending:
            raise RuntimeError(f"xid {request.xid:#010x} is already outstanding")
        self._pending[request.xid] = send_channel
        answering = MessageType(request.msg_type)
        try:
            start = trio.current_time()
            sent_at = self._clock()
            replies: list[_Reply] = []
            sent = 0
            stop_at: float | None = None  # set by the first acceptable answer
            while True:
                if stop_at is None:
                    if sent < len(self._offsets) and trio.current_time() >= (
                        start + self._offsets[sent]
                    ):
                        await self._send(data, destination, ttl)
                        sent += 1
                        continue
                    upcoming = self._offsets[sent] if sent < len(self._offsets) else None
                    deadline = start + (self._give_up if upcoming is None else upcoming)
                else:
                    deadline = stop_at
                reply = None
                with trio.move_on_at(deadline):
                    reply = await receive_channel.receive()
                if reply is None:  # the deadline passed
                    if stop_at is not None:
                        return replies, sent_at
                    if sent >= len(self._offsets):
                        raise NoResponse(
                            f"no answer from {_where(destination)} to {answering.name} after "
                            f"{self._give_up:g} s ({sent} copies; RFC 2730 §2.3)",
                            server=destination if not collect else None,
                        )
                    continue
                why = self._ignore_reason(reply, request, answering, check, server_id)
                if why is not None:
                    log.debug("ignoring %s from %s: %s", _type_name(reply), reply.source, why)
                    continue
                replies.append(reply)
                if not collect:
                    return replies, sent_at  # §2.3: no copy after an answer, least of all a NAK
                if enough is not None and enough(reply.message):
                    return replies, sent_at
                if stop_at is None:
                    window = self._discover_delay
                    if window is None:  # §2.2.2: "the current retransmit timer"
                        window = current_delay(self._offsets, self._give_up, sent)
                    stop_at = min(trio.current_time() + window, start + self._give_up)
        finally:
            del self._pending[request.xid]
            send_channel.close()

    def _ignore_reason(
        self,
        reply: _Reply,
        request: Message,
        answering: MessageType,
        check: Callable[[Message], str | None] | None,
        server_id: Address | None,
    ) -> str | None:
        """Why ``reply`` must be ignored, or None to accept it (§2.5, §2.1.5, §2.2, §2.6)."""
        message = reply.message
        expected = (
            {MessageType.OFFER, MessageType.NAK}
            if answering == MessageType.DISCOVER
            else {MessageType.ACK, MessageType.NAK}
        )
        if message.msg_type not in expected:
            return f"not an answer to {answering.name} (§2.2)"
        if message.family != request.family:
            return f"address family {message.family}, ours is {request.family}"
        # §2.5: "The client MUST check the Lease Identifier option and xid field in each
        # incoming message ... If not, the message MUST be ignored."  (The reader matched the
        # xid.)
        if message.options.lease_id != request.options.lease_id:
            return "Lease Identifier does not match (§2.5)"
        if not rules.client_check(message, answering=answering):
            return "breaks Table 5 (§2.1.5: a client MUST ignore it)"
        if server_id is not None and message.options.server_id != server_id:
            # §2.2.4: only the server the multicast REQUEST selected answers it.
            return f"from server {message.options.server_id}, we selected {server_id}"
        if check is not None and message.msg_type != MessageType.NAK:
            return check(message)
        return None

    async def _send(self, data: bytes, destination: tuple[str, int], ttl: int | None) -> None:
        # The lock keeps another transaction from changing the multicast TTL between our
        # setsockopt and sendto.  A UDP send is whole or nothing, so no deadline is around it.
        async with self._send_lock:
            try:
                if ttl is not None:
                    if self._sock.family == socket.AF_INET:
                        self._sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
                    else:
                        self._sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, ttl)
                await self._sock.sendto(data, destination)
            except OSError as error:
                raise NoResponse(
                    f"cannot send to {_where(destination)}: {error.strerror or error}"
                ) from error

    async def _read(self) -> None:
        """The one reader: decode each datagram and hand it to the transaction of its xid."""
        while True:
            try:
                data, source = await self._sock.recvfrom(_RECEIVE_BYTES)
            except OSError as error:  # e.g. an ICMP error reported on the socket
                log.debug("receive failed: %s", error)
                await trio.lowlevel.checkpoint()
                continue
            try:
                message = codec.decode(data)
            except codec.MadcapDecodeError as error:
                # §2.1, §2.1.5, §2.6: a client ignores what it cannot process.
                log.debug("ignoring a datagram from %s: %s", source, error.reason)
                continue
            channel = self._pending.get(message.xid)
            if channel is None:
                log.debug("ignoring a reply from %s: no transaction with its xid", source)
                continue
            # A full queue loses the reply as the network might have; a closed one belongs
            # to a transaction that just ended.
            with suppress(trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
                channel.send_nowait(_Reply(message, (source[0], source[1]), self._clock()))

    def _refused(self, reply: _Reply) -> MadcapError:
        """The MadcapError for a NAK (§2.2.6), naming its §3.17 error."""
        message = reply.message
        error = message.options.error
        assert error is not None  # Table 5: a NAK MUST carry Error (rules.client_check)
        option = codec.offending_option(error)
        clock = codec.server_time(error)
        features = codec.unsupported_features(error)
        name, section = _ERROR_NAMES.get(error.code, (error_name(error.code), "§3.17"))
        text = f"NAK from {_who(reply)}: {name} (RFC 2730 {section}, error {error.code})"
        if option is not None:
            text += "; no particular option" if option == _U16_MAX else f"; {_option(option)}"
        if clock is not None:
            skew = self._clock() - clock
            text += f"; server time {_when(clock)}, {skew:+.0f} s from ours"
        if features:
            text += "; unsupported " + ", ".join(_FEATURE_NAMES.get(f, str(f)) for f in features)
        return MadcapError(
            text,
            code=error.code,
            option=option,
            server_time=clock,
            features=features,
            server=reply.source,
        )


# --- judging replies ----------------------------------------------------------------------------


def _check_offer(message: Message, want: _Want) -> str | None:
    """§2.2.3 constraints on an OFFER beyond Table 5."""
    options = message.options
    if options.scope != want.scope_id:
        return f"scope {options.scope}, we asked for {want.scope_id}"
    if want.min_lease_time is not None and (options.lease_time or 0) < want.min_lease_time:
        return "lease time below our Minimum Lease Time (§2.2.3 MUST NOT)"
    return _check_ranges(options, want)


def _check_ack(message: Message, want: _Want, request: Message) -> str | None:
    """§2.2.5 constraints on an ACK to our REQUEST/RENEW beyond Table 5."""
    options = message.options
    if request.msg_type == MessageType.RELEASE:
        return None
    if want.scope_id is not None and options.scope != want.scope_id:
        return f"scope {options.scope}, we asked for {want.scope_id}"
    if options.ranges == ():
        # §2.13.2: the Retry After answer; §3.13: a server "MUST NOT use" a feature the
        # client did not list, and Retry Time needs Current Time (§3.14).
        if not want.try_later:
            return "Retry After answer to a request that did not offer the feature (§3.13)"
        features = options.features
        if features is None or Feature.RETRY_AFTER not in features.required:
            return "empty List of Address Ranges without Retry After in the required list"
        if options.retry_time is None or options.current_time is None:
            return "Retry After answer without Retry Time and Current Time (§2.13.2, §3.14)"
        return None
    if want.min_lease_time is not None and (options.lease_time or 0) < want.min_lease_time:
        return "lease time below our Minimum Lease Time (§2.2.4 MUST NOT)"
    if request.msg_type == MessageType.RENEW:
        return None
    return _check_ranges(options, want)


def _check_ranges(options: Options, want: _Want) -> str | None:
    ranges = options.ranges
    if ranges is None:
        return None  # an OFFER may omit them: "the number of addresses that the client requested"
    total = sum(r.count for r in ranges)
    # §3.8: "MUST include between the minimum and desired number of addresses".
    if not want.min_addresses <= total <= want.max_addresses:
        return f"{total} addresses, we asked for {want.min_addresses}..{want.max_addresses}"
    scope = want.scope
    if scope is not None:
        for r in ranges:
            if r.count and (r.start not in scope or r.start + (r.count - 1) not in scope):
                return f"range {r.start}+{r.count} lies outside scope {scope.scope_id}"
    return None


def _offered_count(message: Message, want: _Want) -> int:
    ranges = message.options.ranges
    return want.max_addresses if ranges is None else sum(r.count for r in ranges)


def _start_delay(message: Message, default: int = 0) -> int:
    """How long after its own now the sender puts the start; ``default`` without Start Time
    (a request: as soon as possible; an OFFER: "the start time requested by the client",
    §2.2.3)."""
    options = message.options
    if options.start_time is None or options.current_time is None:
        return default
    return options.start_time - options.current_time


def _offer_rank(offer: Message, discover: Message, want: _Want) -> tuple[int, int, int]:
    asked = _start_delay(discover)
    return (_offered_count(offer, want), offer.options.lease_time or 0, -_start_delay(offer, asked))


def _satisfies(offer: Message, discover: Message, want: _Want) -> bool:
    """An OFFER that gives everything the DISCOVER asked for: take it without waiting out
    [DISCOVER-DELAY] (§2.2.2: "MAY choose the first acceptable response")."""
    if offer.msg_type != MessageType.OFFER:
        return False
    if _offered_count(offer, want) < want.max_addresses:
        return False
    if want.lease_time is not None and (offer.options.lease_time or 0) < want.lease_time:
        return False
    asked = _start_delay(discover)
    return _start_delay(offer, asked) <= asked


def _could_not_complete(error: MadcapError) -> bool:
    return type(error) is MadcapError and error.code == ErrorCode.VALID_REQUEST_NOT_COMPLETED


# --- small helpers ------------------------------------------------------------------------------


def _scope_id(scope: Scope | Address | str) -> Address:
    if isinstance(scope, Scope):
        return scope.scope_id
    if isinstance(scope, str):
        return ip_address(scope)
    return scope


def _check_range(
    what: str, minimum: float | None, maximum: float | None, *, low: float, high: float
) -> None:
    """RFC 2771's "bad ..." errors: a minimum above its maximum, values off the wire."""
    for value in (minimum, maximum):
        if value is not None and (not math.isfinite(value) or not low <= value <= high):
            raise ValueError(f"{what} {value} is outside {low:g}..{high:g}")
    if minimum is not None and maximum is not None and minimum > maximum:
        raise ValueError(f"minimum {what} {minimum} is above the maximum {maximum}")


def _seconds(value: float | None) -> int | None:
    return None if value is None else round(value)


def _wire_time(value: float, what: str) -> int:
    """§3.7: u32 seconds since 1970 (wraps in 2106)."""
    seconds = math.floor(value)
    if not 0 <= seconds <= _U32_MAX:
        raise ValueError(f"{what} {value} does not fit the wire's u32 seconds since 1970")
    return seconds


def _lid(message: Message) -> bytes:
    assert message.options.lease_id is not None
    return message.options.lease_id


def _option(code: int) -> str:
    return f"option {code} ({_OPTION_NAMES[code]})" if code in _OPTION_NAMES else f"option {code}"


def _type_name(reply: _Reply) -> str:
    try:
        return MessageType(reply.message.msg_type).name
    except ValueError:
        return f"msgtype {reply.message.msg_type}"


def _where(destination: tuple[str, int]) -> str:
    host, port = destination
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _who(reply: _Reply) -> str:
    server_id = reply.message.options.server_id
    where = _where(reply.source)
    return where if server_id is None else f"server {server_id} ({where})"


def _when(unix: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix))
