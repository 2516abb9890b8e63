"""The MADCAP server core, sans-IO (RFC 2730 §2.1.4, §2.2, §2.4-§2.6, §2.10-§2.13, §3;
RFC 2907 §3).

Theory of operation.  The shell hands :meth:`MadcapServer.handle_datagram` the bytes of one
UDP datagram, where it came from (:class:`Arrival`) and the time; it gets back an
:class:`Outcome`: the reply to send to the source (servers always unicast, §2.1), the leases
to write to the store *before* sending it, the lease ids to delete, and how many addresses a
MASC-fed scope lacked.  Time passes through :meth:`handle_timer` at :meth:`next_deadline`.
The masc daemon's grants arrive through :meth:`set_grants`.  Nothing here reads a clock, a
socket or a random source.

One datagram goes through, in this order (the first step that decides ends it):

1. decode (§2.1, §2.1.1, §2.1.5): :class:`~masc.madcap.codec.Ignored` -> drop;
   :class:`~masc.madcap.codec.InvalidRequest` -> NAK 1 naming the option (no Feature List:
   the message could not be read);
2. OFFER, ACK or NAK arriving at a server -> drop (§2.6: never NAK what may be a NAK);
3. the response cache (§2.1.4): the same (xid, msgtype, Lease Identifier) within
   [RESPONSE-CACHE-INTERVAL] gets the same reply bytes again and is not executed again;
4. multicast filters (§2.2.4, §2.10, §2.11): a GETINFO not on the Local Scope server
   address, a DISCOVER/REQUEST for a scope we do not serve from that group, a REQUEST naming
   another server (our offer is dropped), a RENEW/RELEASE for a lease we do not hold ->
   drop, without an answer;
5. unknown msgtype (§2.2) and Table 5 + conditional rules (:func:`rules.server_check`) ->
   NAK 1 naming the option;
6. a required feature we do not support (§3.13) -> NAK 4 listing them;
7. Current Time further than [CLOCK-SKEW-ALLOWANCE] from ours (§2.12) -> NAK 2 with our time;
8. the message itself (per-Lease-Identifier state below) -> reply, or NAK 0/1/3.

Per Lease Identifier (§2.2, digest §2.11)::

    FREE --DISCOVER we can satisfy--> OFFERED (addresses held [OFFER-HOLD])
    OFFERED --multicast REQUEST naming another server, or OFFER-HOLD--> FREE
    FREE/OFFERED --REQUEST--> LEASED (ACK) | PENDING (Retry-After ACK) | NAK 0
    PENDING --REQUEST--> LEASED | PENDING | NAK 0;  --RENEW--> NAK 1;  --RELEASE--> FREE (ACK)
    LEASED --REQUEST--> the same ACK again;  --RENEW--> LEASED (ACK) | NAK (lease unchanged)
    LEASED --RELEASE--> FREE (ACK; the addresses are free at once)
    LEASED --end--> ENDED (renew/release: NAK 3; a REQUEST allocates anew, preferring the
                           same addresses) --end + 2 x EXTRA-ALLOCATION-TIME--> FREE (deleted)

Addresses are reserved in a :class:`~masc.madcap.pool.Pool` from ``start - extra`` to
``end + extra`` (§2.12); see that module.  A ``static`` scope allocates from its ranges minus
exclusions; a ``masc`` scope only from its *active* grants (clipped to the zone, minus
exclusions), and its leases never outlive the grant they lie in.  Deprecated grants serve
renewals up to their expiry; revoked ones (absent from the last :meth:`set_grants`) nothing.

Costs: an allocation walks the pool's address index over the space it draws from (see
pool): linear in the leases of that space (about 1.5 ms per REQUEST with 10,000 leases in
one static scope), logarithmic in the others; a renewal touches only the reservations of
its own addresses.  Lease timers sit in a heap: ``next_deadline`` (asked after every
datagram) is O(1) amortised and ``handle_timer`` O(log L) per lease timer due.  The
transient state (response cache, offers, Retry-After transactions, reported shortfalls)
expires in insertion order and is bounded (``ServerSettings.max_*``).

Local policies where the RFC leaves a choice are named where they are implemented and
collected in docs/conformance.md.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Network, IPv6Network
from typing import Final

from masc.madcap import codec, nesting, rules
from masc.madcap.constants import (
    CLOCK_SKEW_ALLOWANCE,
    EXTRA_ALLOCATION_TIME,
    LOCAL_SCOPE_SERVER_ADDRESS,
    MAX_RESPONSE_CACHE_INTERVAL,
    NO_OPTION,
    OFFER_HOLD,
    RESPONSE_CACHE_INTERVAL,
    AddressFamily,
    ErrorCode,
    Feature,
    MessageType,
    OptionCode,
)
from masc.madcap.messages import (
    Address,
    AddressRange,
    ErrorOption,
    FeatureList,
    Message,
    NestingState,
    Options,
    ScopeEntry,
    error_extra,
)
from masc.madcap.pool import (
    Block,
    Pool,
    Reservation,
    blocks_of,
    choose,
    intersect,
    normalise,
    ranges_of,
    size,
    subtract,
)
from masc.madcap.scopes import Scope, check_scopes, nesting_matrix, scope_entry, scope_order

__all__ = [
    "SUPPORTED_FEATURES",
    "Arrival",
    "Grant",
    "Lease",
    "MadcapServer",
    "Outcome",
    "Prefix",
    "ServerSettings",
    "Usage",
]

Prefix = IPv4Network | IPv6Network

# §2.13: the optional features this server implements.  Server Mobility needs coordination
# between servers and Shared Lease Identifier an authentication to disable; neither exists
# here.
SUPPORTED_FEATURES: Final = (int(Feature.RETRY_AFTER),)
U32_MAX: Final = 0xFFFF_FFFF
# Local policy: no lease shorter than a second is granted (a zero Lease Time is refused
# with error 0 rather than answered with a lease that has already ended).
MIN_LEASE: Final = 1.0
_LOCAL_SCOPE_SERVER: Final = IPv4Address(LOCAL_SCOPE_SERVER_ADDRESS)
_SERVER_TYPES: Final = frozenset({MessageType.OFFER, MessageType.ACK, MessageType.NAK})
_INFINITY: Final = float("inf")
# A reply travels in one UDP datagram: at most 65507 octets of payload over IPv4 (65535
# minus the IP and UDP headers), and an option value holds at most 65535 octets (§2.1.5).
# Local policy: a lease has no more address ranges (§3.11) than its ACK can carry next to
# the other options of a lease reply (_REPLY_ROOM, generously) and the echoed Lease
# Identifier; a fragmented pool yields fewer addresses (at least the minimum) or none.
MAX_DATAGRAM: Final = 65_507
_REPLY_ROOM: Final = 256


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """The server's identity and the Appendix B timers (seconds)."""

    server_id: Address
    response_cache_interval: float = RESPONSE_CACHE_INTERVAL  # §2.1.4: 0..300
    offer_hold: float = OFFER_HOLD  # §2.2.3, Appendix B: "at least 60 seconds" recommended
    clock_skew_allowance: float = CLOCK_SKEW_ALLOWANCE  # §2.12: "MUST be configurable"
    extra_allocation_time: float = EXTRA_ALLOCATION_TIME  # §2.12: "MUST be configurable"
    retry_interval: float = 600.0  # Retry Time = now + this, when waiting for MASC (§2.13.2)
    # Local policy: bounds on what a stream of requests with fresh xids and Lease Identifiers
    # can make the server remember.  At a bound the oldest entry goes first: a response
    # cache miss re-executes a retransmission (harmless: a REQUEST whose lease exists gets
    # the same ACK again); a dropped offer frees its addresses early (its REQUEST allocates
    # afresh); a forgotten Retry-After transaction or shortfall is at worst reported again.
    max_cached_replies: int = 65_536
    max_offers: int = 4_096
    max_pending: int = 4_096

    def __post_init__(self) -> None:
        if not 0 <= self.response_cache_interval <= MAX_RESPONSE_CACHE_INTERVAL:
            # §2.1.4: "it may have any value from zero seconds to 300 seconds".
            raise ValueError("response_cache_interval must be within 0..300 s")
        if self.offer_hold <= 0:
            raise ValueError("offer_hold must be > 0")
        if self.clock_skew_allowance < 0 or self.extra_allocation_time < 0:
            raise ValueError("clock_skew_allowance and extra_allocation_time must be >= 0")
        if self.retry_interval <= 0:
            raise ValueError("retry_interval must be > 0")
        if min(self.max_cached_replies, self.max_offers, self.max_pending) < 1:
            raise ValueError("max_cached_replies, max_offers and max_pending must be >= 1")


@dataclass(frozen=True, slots=True)
class Grant:
    """Space the MASC daemon lets this server use for a ``masc`` scope (RFC 2908 §5): new
    leases only while ``active``; existing ones up to ``expires`` (Unix seconds)."""

    prefix: Prefix
    expires: float
    active: bool


@dataclass(frozen=True, slots=True)
class Lease:
    """One lease (§2.4: keyed by its Lease Identifier).  ``scope`` is the scope's name;
    ``start``/``end`` are server clock seconds; ``client`` ("addr:port") is for logs."""

    lease_id: bytes
    scope: str
    ranges: tuple[AddressRange, ...]
    start: float
    end: float
    granted_at: float
    client: str

    @property
    def count(self) -> int:
        return sum(r.count for r in self.ranges)


@dataclass(frozen=True, slots=True)
class Arrival:
    """Where a datagram came from, and the multicast group it was sent to (None: unicast)."""

    source: tuple[str, int]
    group: Address | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the shell does with one input.  ``saved`` goes to the store *before* ``reply`` is
    sent to the source; ``deleted`` are lease ids to delete; ``demand`` is the number of
    addresses a ``masc`` scope lacked (ask the MASC daemon for them).  ``event`` is one of
    "info", "offer", "granted", "renewed", "released", "retry_after", "nak", "ignored",
    "cached" (datagrams; an offer dropped for another server's REQUEST is "ignored" with
    "dropped" in ``detail``), "expired", "timer" (:meth:`handle_timer`); ``detail`` a human
    reason."""

    reply: bytes | None
    saved: tuple[Lease, ...] = ()
    deleted: tuple[bytes, ...] = ()
    demand: int = 0
    event: str = ""
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Usage:
    """Addresses leased now (start <= now < end) in ``masc`` scopes, in total and per
    granted prefix (RFC 2909 §17.1.2 input for the daemon)."""

    in_use: int
    by_prefix: dict[Prefix, int] = field(default_factory=dict)


# --- internal ------------------------------------------------------------------------------


class _Nak(Exception):
    """Raised where a request is found wanting; turned into a NAK in one place
    (:meth:`MadcapServer._execute`)."""

    def __init__(self, error: ErrorOption, detail: str, *, demand: int = 0) -> None:
        super().__init__(detail)
        self.error = error
        self.detail = detail
        self.demand = demand


class _Ignore(Exception):
    """Raised where a request is to be dropped without an answer."""

    def __init__(self, detail: str, *, demand: int = 0) -> None:
        super().__init__(detail)
        self.detail = detail
        self.demand = demand


class _Shortfall(Exception):
    """Not enough free addresses: ``missing`` more were wanted."""

    def __init__(self, missing: int) -> None:
        super().__init__(missing)
        self.missing = missing


def _not_completed(option: int, detail: str, *, demand: int = 0) -> _Nak:
    # §3.17.1 Valid Request Could Not Be Completed, naming the option (or 0xFFFF).
    return _Nak(error_extra(ErrorCode.VALID_REQUEST_NOT_COMPLETED, option), detail, demand=demand)


def _invalid(option: int, detail: str) -> _Nak:
    # §3.17.2 Invalid Request, naming the option (or 0xFFFF).
    return _Nak(error_extra(ErrorCode.INVALID_REQUEST, option), detail)


@dataclass(frozen=True, slots=True)
class _Offer:
    scope: str
    blocks: tuple[Block, ...]
    hold_until: float
    ipv6: bool


@dataclass(frozen=True, slots=True)
class _Pending:
    """A REQUEST answered with Retry After (§2.13.2), remembered until ``until``."""

    scope: str
    until: float


@dataclass(frozen=True, slots=True)
class _Plan:
    blocks: tuple[Block, ...]
    start: float
    end: float
    ipv6: bool


def _client(source: tuple[str, int]) -> str:
    host, port = source
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _lease_owner(lease_id: bytes) -> tuple[str, bytes]:
    return ("lease", lease_id)


def _offer_owner(lease_id: bytes) -> tuple[str, bytes]:
    return ("offer", lease_id)


def _prefix_block(prefix: Prefix) -> Block:
    return (int(prefix.network_address), int(prefix.broadcast_address))


def _lease_ipv6(lease: Lease) -> bool:
    return bool(lease.ranges) and lease.ranges[0].start.version == 6


def _max_ranges(lease_id: bytes, *, ipv6: bool) -> int:
    """How many §3.11 entries (address + two-octet block size) a lease reply can carry."""
    entry = (16 if ipv6 else 4) + 2
    room = min(MAX_DATAGRAM - _REPLY_ROOM - 4 - len(lease_id), 0xFFFF)
    return max(room // entry, 1)


class MadcapServer:
    """The MADCAP server core (see the module docstring)."""

    def __init__(
        self,
        settings: ServerSettings,
        scopes: Sequence[Scope],
        *,
        leases: Iterable[Lease] = (),
        now: float,
    ) -> None:
        check_scopes(scopes)
        self.settings = settings
        self.scopes: tuple[Scope, ...] = tuple(scopes)
        self._by_name = {scope.name: scope for scope in self.scopes}
        self._by_id: dict[Address, Scope] = {scope.scope_id: scope for scope in self.scopes}
        self._by_server_address: dict[Address, Scope] = {
            scope.server_address: scope for scope in self.scopes
        }
        # §3.10 list order (smallest first) and the RFC 2907 matrix over it.
        self._ordered = scope_order(self.scopes)
        self._matrix = nesting_matrix(self._ordered)
        self._index = {scope.name: i for i, scope in enumerate(self._ordered)}
        self._static: dict[str, tuple[Block, ...]] = {
            scope.name: subtract(
                normalise((int(low), int(high)) for low, high in scope.ranges),
                self._exclusions(scope),
            )
            for scope in self.scopes
        }
        self._grants: dict[str, tuple[Grant, ...]] = {
            scope.name: () for scope in self.scopes if scope.source == "masc"
        }
        self._check_scope_list_fits()
        padding = settings.extra_allocation_time
        self._pools = {False: Pool(padding=padding), True: Pool(padding=padding)}
        self._leases: dict[bytes, Lease] = {}
        self._ended: set[bytes] = set()  # leases whose end handle_timer has reported
        # The transient maps below expire after a fixed interval, so their insertion order
        # is their expiry order (an entry whose expiry moves is re-inserted): expiry
        # stops at the first live entry and the next deadline is the first entry's.  A
        # clock stepping back only makes an entry live a little longer.  Each is bounded
        # (ServerSettings.max_*): a flood of fresh Lease Identifiers costs no more.
        self._offers: dict[bytes, _Offer] = {}
        self._pending: dict[bytes, _Pending] = {}
        # Shortfalls already reported in Outcome.demand, per Lease Identifier: (addresses,
        # until).  Local policy: a client's retransmitted DISCOVERs, its REQUEST after them
        # and its retries after a Retry-After ACK are one need, reported once (the daemon
        # adds up every request it gets).
        self._demanded: dict[bytes, tuple[int, float]] = {}
        self._cache: dict[tuple[int, int, bytes | None], tuple[bytes, float]] = {}
        # Each lease's next timer (its end, or once that is reported the end of its
        # quarantine) as a heap of (time, lease id); an entry whose time is no longer its
        # lease's timer is stale and skipped.  next_deadline (asked after every datagram)
        # and handle_timer then cost O(log L) per lease timer, not a scan of every lease.
        self._timers: list[tuple[float, bytes]] = []
        for lease in leases:
            # A restart keeps every stored lease's addresses taken, even one whose scope is
            # gone from the configuration (it can no longer be renewed, see _renew).
            if not lease.ranges:
                continue
            if lease.scope not in self._by_name:
                # Local policy: a scope renamed in the configuration (its name is also its
                # default-language zone name, §3.10) keeps its leases: a lease whose scope
                # name is unknown belongs to the smallest configured zone holding all its
                # addresses.  The new name is saved with the lease's next change.
                home = self._zone_of(lease)
                if home is not None:
                    lease = replace(lease, scope=home.name)
            self._leases[lease.lease_id] = lease
            self._reserve_lease(lease)
            if lease.end <= now:
                self._ended.add(lease.lease_id)
        self._rebuild_timers()

    def _zone_of(self, lease: Lease) -> Scope | None:
        blocks = blocks_of(lease.ranges)
        for scope in self._ordered:  # smallest first (§3.10)
            zone = ((int(scope.first), int(scope.last)),)
            family = AddressFamily.IPV6 if _lease_ipv6(lease) else AddressFamily.IPV4
            if scope.family == family and not subtract(blocks, zone):
                return scope
        return None

    def _check_scope_list_fits(self) -> None:
        """The whole scope list, every name, and the nesting state must fit one GETINFO ACK
        (§3.10: one-octet counts and lengths; §2.1.5: two-octet option lengths)."""
        for family in {scope.family for scope in self._ordered}:
            entries, nest = self._scope_list(family, None)
            options = Options(lease_id=b"\x00", scope_list=entries, nesting=nest)
            try:
                codec.encode(Message(MessageType.ACK, family, 0, options))
            except codec.EncodeError as error:
                raise ValueError(f"the scope list does not fit a GETINFO ACK: {error}") from None

    # --- public API --------------------------------------------------------------------------

    def handle_datagram(self, data: bytes, *, arrival: Arrival, now: float) -> Outcome:
        """One datagram in, what to do about it out (never raises on peer bytes)."""
        self._expire_transient(now)
        try:
            message = codec.decode(data)
        except codec.Ignored as error:
            return Outcome(None, event="ignored", detail=error.reason)
        except codec.InvalidRequest as error:
            return self._invalid_message(error, now)
        if message.msg_type in _SERVER_TYPES:
            # §2.6: "If the message is a NAK or it is not clear whether the message is a NAK
            # ... the server SHOULD ignore the message"; OFFER and ACK are no request either.
            return Outcome(None, event="ignored", detail=f"msgtype {message.msg_type} at a server")
        key = (message.xid, int(message.msg_type), message.options.lease_id)
        cached = self._cached(key, now)
        if cached is not None:
            return cached
        outcome = self._execute(message, arrival, now)
        self._remember(key, outcome, now)
        return outcome

    def set_grants(self, scope: str, grants: Sequence[Grant], *, now: float) -> None:
        """Replace all grants of the ``masc`` scope ``scope``.  A grant absent from the list
        is revoked: no new lease from it, and renewals of its addresses are refused."""
        target = self._by_name.get(scope)
        if target is None or target.source != "masc":
            raise ValueError(f"{scope!r} is not a masc-sourced scope")
        for grant in grants:
            if grant.prefix.version != target.first.version:
                raise ValueError(f"grant {grant.prefix} is not in the family of {scope!r}")
        self._grants[scope] = tuple(grants)

    def handle_timer(self, *, now: float) -> Outcome:
        """Offers past [OFFER-HOLD], forgotten Retry-After transactions, leases that ended
        (reported once) and leases whose quarantine is over (deleted)."""
        self._expire_transient(now)
        ended: list[bytes] = []
        deleted: list[bytes] = []
        while self._timers and self._timers[0][0] <= now:
            when, lid = heapq.heappop(self._timers)
            lease = self._leases.get(lid)
            if lease is None or self._lease_timer(lid, lease) != when:
                continue  # stale: renewed, released or already handled
            if lid not in self._ended:
                self._ended.add(lid)
                ended.append(lid)
                self._push_timer(lid, lease)  # its quarantine (may be due already)
            else:
                self._forget_lease(lid)
                deleted.append(lid)
        if not ended and not deleted:
            return Outcome(None, event="timer")
        detail = "; ".join(
            part
            for part in (
                "ended " + ", ".join(lid.hex() for lid in ended) if ended else "",
                "deleted " + ", ".join(lid.hex() for lid in deleted) if deleted else "",
            )
            if part
        )
        return Outcome(None, deleted=tuple(deleted), event="expired", detail=detail)

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` next has work, or None."""
        while self._timers and not self._live_timer(*self._timers[0]):
            heapq.heappop(self._timers)
        times = [self._timers[0][0] if self._timers else _INFINITY]
        offer = next(iter(self._offers.values()), None)
        if offer is not None:
            times.append(offer.hold_until)
        pending = next(iter(self._pending.values()), None)
        if pending is not None:
            times.append(pending.until)
        deadline = min(times)
        return None if deadline == _INFINITY else deadline

    def _lease_timer(self, lid: bytes, lease: Lease) -> float:
        """When :meth:`handle_timer` next has to look at ``lease``: its end, or once that
        is reported the end of its quarantine."""
        if lid in self._ended:
            return lease.end + 2 * self.settings.extra_allocation_time
        return lease.end

    def _live_timer(self, when: float, lid: bytes) -> bool:
        lease = self._leases.get(lid)
        return lease is not None and self._lease_timer(lid, lease) == when

    def _push_timer(self, lid: bytes, lease: Lease) -> None:
        heapq.heappush(self._timers, (self._lease_timer(lid, lease), lid))
        if len(self._timers) > 2 * len(self._leases) + 1024:
            self._rebuild_timers()  # mostly stale entries of renewed or released leases

    def _rebuild_timers(self) -> None:
        self._timers = [(self._lease_timer(lid, lease), lid) for lid, lease in self._leases.items()]
        heapq.heapify(self._timers)

    def usage(self, *, now: float) -> Usage:
        """Addresses leased now in ``masc`` scopes, in total and per current grant."""

        def leased_now(lease: Lease | None, scope: str) -> bool:
            return lease is not None and lease.scope == scope and lease.start <= now < lease.end

        in_use = sum(
            lease.count
            for lease in self._leases.values()
            if lease.scope in self._grants and leased_now(lease, lease.scope)
        )
        by_prefix: dict[Prefix, int] = {}
        # Per grant, only the leased blocks inside it (the pool's address index): O(G log R
        # + R), not every lease against every grant.
        for name, grants in self._grants.items():
            pool = self._pools[self._by_name[name].family == AddressFamily.IPV6]
            for grant in grants:
                low, high = _prefix_block(grant.prefix)
                count = 0
                for reservation, (block_low, block_high) in pool.blocks_within(low, high):
                    owner = reservation.owner
                    if not (isinstance(owner, tuple) and owner[0] == "lease"):
                        continue
                    if leased_now(self._leases.get(owner[1]), name):
                        count += min(block_high, high) - max(block_low, low) + 1
                if count:
                    by_prefix[grant.prefix] = by_prefix.get(grant.prefix, 0) + count
        return Usage(in_use, by_prefix)

    def leases(self) -> list[Lease]:
        """Every lease held, ended ones still in quarantine included (the store's mirror)."""
        return list(self._leases.values())

    def reservations(self) -> list[Reservation]:
        """Every address x time reservation, padded by EXTRA-ALLOCATION-TIME (§2.12): leases
        (owner ``("lease", id)``) and held offers (``("offer", id)``).  Read-only view for
        status displays and tests."""
        return [r for pool in self._pools.values() for r in pool.reservations()]

    # --- the pipeline ------------------------------------------------------------------------

    def _invalid_message(self, error: codec.InvalidRequest, now: float) -> Outcome:
        if error.msg_type in _SERVER_TYPES:
            return Outcome(None, event="ignored", detail=f"malformed msgtype {error.msg_type}")
        key = (error.xid, error.msg_type, error.lease_id)
        cached = self._cached(key, now)
        if cached is not None:
            return cached
        # §2.1.5/§2.6: NAK Invalid Request.  Local policy: when the Lease Identifier itself
        # could not be read, the NAK carries none (there is nothing true to echo).
        reply = codec.encode(
            Message(
                MessageType.NAK,
                error.family,
                error.xid,
                Options(
                    server_id=self.settings.server_id,
                    lease_id=error.lease_id,
                    error=error_extra(ErrorCode.INVALID_REQUEST, error.option),
                ),
            )
        )
        outcome = Outcome(reply, event="nak", detail=f"invalid request: {error.reason}")
        self._remember(key, outcome, now)
        return outcome

    def _cached(self, key: tuple[int, int, bytes | None], now: float) -> Outcome | None:
        hit = self._cache.get(key)
        if hit is None or hit[1] <= now:
            return None
        # §2.1.4: "treat this message as a retransmission of the previously received one
        # and retransmit the response".
        return Outcome(hit[0], event="cached", detail="retransmission: the same reply again")

    def _remember(self, key: tuple[int, int, bytes | None], outcome: Outcome, now: float) -> None:
        interval = self.settings.response_cache_interval
        if outcome.reply is not None and interval > 0:
            self._cache.pop(key, None)  # to the back: insertion order is expiry order
            while len(self._cache) >= self.settings.max_cached_replies:
                del self._cache[next(iter(self._cache))]
            self._cache[key] = (outcome.reply, now + interval)

    def _execute(self, message: Message, arrival: Arrival, now: float) -> Outcome:
        try:
            self._filter_multicast(message, arrival)
            self._check(message, arrival, now)
            return self._dispatch(message, arrival, now)
        except _Ignore as ignore:
            return Outcome(None, demand=ignore.demand, event="ignored", detail=ignore.detail)
        except _Nak as nak:
            reply = self._encode(
                message,
                MessageType.NAK,
                Options(error=nak.error),
            )
            return Outcome(reply, demand=nak.demand, event="nak", detail=nak.detail)

    def _filter_multicast(self, message: Message, arrival: Arrival) -> None:
        """Step 4: multicast messages that are not for this server are dropped silently."""
        group = arrival.group
        if group is None:
            return
        options = message.options
        kind = message.msg_type
        if kind == MessageType.GETINFO and group != _LOCAL_SCOPE_SERVER:
            # §2.11: "SHOULD also ignore GETINFO messages that are not received on the MADCAP
            # Server Multicast Address for IPv4 Local Scope" (read as: multicast ones).
            raise _Ignore(f"multicast GETINFO on {group}, not the Local Scope address")
        if kind in (MessageType.DISCOVER, MessageType.REQUEST) and options.scope is not None:
            scope = self._by_id.get(options.scope)
            if scope is None or not self._serves_from(scope, group):
                # §2.11: ignore DISCOVER/REQUEST "whose scope does not match or enclose the
                # scope of the MADCAP Server Multicast Address on which [it] was received".
                raise _Ignore(f"scope {options.scope} is not served from group {group}")
        if (
            kind == MessageType.REQUEST
            and options.server_id is not None
            and options.server_id != self.settings.server_id
        ):
            # §2.2.3: a multicast REQUEST with the same Lease Identifier "and a Server
            # Identifier option that does not match its own ... SHOULD stop holding the
            # addresses"; no answer either way.
            lid = options.lease_id
            if lid is not None and self._drop_offer_silently(lid):
                raise _Ignore(
                    f"REQUEST names server {options.server_id}: offer {lid.hex()} dropped"
                )
            raise _Ignore(f"REQUEST names server {options.server_id}")
        if (
            kind in (MessageType.RENEW, MessageType.RELEASE)
            and options.lease_id is not None
            and options.lease_id not in self._leases
            and options.lease_id not in self._pending
        ):
            # Local policy: RENEW/RELEASE are unicast (§2.2.7, §2.2.8); a multicast one for a
            # lease another server holds is not ours to NAK.
            raise _Ignore("multicast RENEW/RELEASE for a lease we do not hold")

    def _serves_from(self, scope: Scope, group: Address) -> bool:
        if group == _LOCAL_SCOPE_SERVER:
            # RFC 2365 §6.1: the Local Scope nests inside every other admin scope and the
            # global scope, so every scope we serve "encloses" it (Appendix A.2 asks for a
            # global address there).
            return True
        arrived = self._by_server_address.get(group)
        if arrived is None:
            return False
        if arrived is scope:
            return True
        return self._index[scope.name] in nesting.larger(self._matrix, self._index[arrived.name])

    def _check(self, message: Message, arrival: Arrival, now: float) -> None:
        """Steps 5-7, in the order of the digest's §2.11."""
        if not isinstance(message.msg_type, MessageType):
            # §2.2: "an Invalid Request error MUST be generated" for an unknown type.
            raise _invalid(NO_OPTION, f"unknown msgtype {message.msg_type}")
        option = rules.server_check(message, multicast=arrival.group is not None)
        if option is not None:
            raise _invalid(option, f"option {option} breaks Table 5 / §3 rules")
        features = message.options.features
        if features is not None:
            missing = [code for code in features.required if code not in SUPPORTED_FEATURES]
            if missing:
                # §3.13: "it MUST generate and process a Required Feature Not Supported error".
                raise _Nak(
                    codec.required_feature_not_supported(missing),
                    f"required features not supported: {missing}",
                )
        client_time = message.options.current_time
        if client_time is not None and abs(client_time - now) > self.settings.clock_skew_allowance:
            # §2.12: "it MUST generate and process an Excessive Clock Skew error".
            raise _Nak(
                codec.excessive_clock_skew(int(now)),
                f"clock skew {client_time - now:+.0f} s",
            )

    def _dispatch(self, message: Message, arrival: Arrival, now: float) -> Outcome:
        kind = message.msg_type
        if kind == MessageType.GETINFO:
            return self._getinfo(message, now)
        if kind == MessageType.DISCOVER:
            return self._discover(message, now)
        if kind == MessageType.REQUEST:
            return self._request(message, arrival, now)
        if kind == MessageType.RENEW:
            return self._renew(message, now)
        return self._release(message, now)  # RELEASE: the only request type left (rules checked)

    # --- replies -----------------------------------------------------------------------------

    def _encode(
        self,
        request: Message,
        kind: MessageType,
        options: Options,
        *,
        implemented: tuple[int, ...] = (),
    ) -> bytes:
        """A reply to ``request``: its xid (§2.1.4), its Lease Identifier and our Server
        Identifier (§2.2.3, §2.2.5, §2.2.6), and a Feature List iff the request had one
        (§3.13: our supported list, what we implemented as required, requested empty)."""
        features = None
        if request.options.features is not None:
            features = FeatureList(supported=SUPPORTED_FEATURES, required=implemented)
        return codec.encode(
            Message(
                kind,
                request.family,
                request.xid,
                replace(
                    options,
                    server_id=self.settings.server_id,
                    lease_id=request.options.lease_id,
                    features=features if features is not None else options.features,
                ),
            )
        )

    def _lease_reply(self, request: Message, lease: Lease, scope: Scope, now: float) -> bytes:
        """§2.2.5: an ACK to REQUEST or RENEW "MUST include Lease Time, Multicast Scope, and
        List of Address Ranges"; Start Time (with Current Time) only for a future start."""
        return self._encode(request, MessageType.ACK, self._lease_options(lease, scope, now))

    def _lease_options(self, lease: Lease, scope: Scope, now: float) -> Options:
        begins = max(lease.start, now)
        future = lease.start > now
        return Options(
            lease_time=min(int(lease.end - begins), U32_MAX),
            scope=scope.scope_id,
            ranges=lease.ranges,
            start_time=int(lease.start) if future else None,
            current_time=int(now) if future else None,
        )

    # --- GETINFO -----------------------------------------------------------------------------

    def _getinfo(self, message: Message, now: float) -> Outcome:
        """§2.2.1: ACK with what the Option Request List asks for (SHOULD) that we have."""
        wanted = set(message.options.option_request_list or ())
        options = Options()
        entries, nest = self._scope_list(message.family, message.options.language)
        if OptionCode.MULTICAST_SCOPE_LIST in wanted and entries:
            # RFC 2907 §3.3: the nesting state only with the scope list.
            asked = OptionCode.MULTICAST_SCOPE_NESTING_STATE in wanted
            options = replace(options, scope_list=entries, nesting=nest if asked else None)
        if OptionCode.CURRENT_TIME in wanted:
            options = replace(options, current_time=int(now))
        if OptionCode.FEATURE_LIST in wanted:
            # §2.13.1: a client learns a server's features with 12 in the ORL.
            options = replace(options, features=FeatureList(supported=SUPPORTED_FEATURES))
        reply = self._encode(message, MessageType.ACK, options)
        return Outcome(reply, event="info", detail=f"scope list of {len(entries)} scopes")

    def _scope_list(
        self, family: int, language: str | None
    ) -> tuple[tuple[ScopeEntry, ...], NestingState]:
        """§3.10: our scopes in the header's family, smallest first, with the names for
        ``language``; and the RFC 2907 matrix over that same list (§3.3)."""
        listed = [i for i, scope in enumerate(self._ordered) if int(scope.family) == int(family)]
        entries = tuple(scope_entry(self._ordered[i], language) for i in listed)
        rows = self._matrix.rows
        return entries, NestingState(tuple(tuple(rows[x][y] for y in listed) for x in listed))

    # --- DISCOVER and REQUEST ----------------------------------------------------------------

    def _scope_of(self, message: Message) -> Scope | None:
        scope_id = message.options.scope
        return None if scope_id is None else self._by_id.get(scope_id)

    def _discover(self, message: Message, now: float) -> Outcome:
        """§2.2.2/§2.2.3: OFFER what we can probably give, holding it [OFFER-HOLD]; a
        DISCOVER we cannot satisfy is ignored ("all servers SHOULD ignore DISCOVER messages
        that they cannot satisfy", §2.2)."""
        lid = message.options.lease_id
        assert lid is not None  # rules.server_check: Lease Identifier is a MUST
        scope = self._scope_of(message)
        if scope is None:
            raise _Ignore(f"DISCOVER for scope {message.options.scope} we do not serve")
        lease = self._leases.get(lid)
        if lease is not None and lease.end > now:
            raise _Ignore(f"DISCOVER for lease {lid.hex()} that already holds addresses")
        previous = self._offers.get(lid)
        prefer = previous.blocks if previous is not None else ()
        self._drop_offer_silently(lid)
        try:
            plan = self._plan(message, scope, now, prefer=prefer)
        except _Nak as nak:
            raise _Ignore(f"cannot satisfy: {nak.detail}") from None
        except _Shortfall as short:
            demand = self._new_demand(lid, short.missing, now) if scope.source == "masc" else 0
            raise _Ignore(
                f"cannot satisfy: {short.missing} addresses short", demand=demand
            ) from None
        held = Lease(
            lid, scope.name, ranges_of(plan.blocks, ipv6=plan.ipv6), plan.start, plan.end, now, ""
        )
        # The reply first: nothing is held for an answer that could not be made.
        reply = self._encode(message, MessageType.OFFER, self._lease_options(held, scope, now))
        self._pools[plan.ipv6].reserve(
            _offer_owner(lid), plan.blocks, start=plan.start, end=plan.end
        )
        self._hold_offer(
            lid, _Offer(scope.name, plan.blocks, now + self.settings.offer_hold, plan.ipv6)
        )
        return Outcome(
            reply, event="offer", detail=f"offer {lid.hex()}: {held.count} addresses held"
        )

    def _request(self, message: Message, arrival: Arrival, now: float) -> Outcome:
        """§2.2.4: allocate, answer ACK, Retry-After ACK (§2.13.2) or NAK 0."""
        lid = message.options.lease_id
        assert lid is not None  # rules.server_check: Lease Identifier is a MUST
        existing = self._leases.get(lid)
        if existing is not None and existing.end > now:
            # Local policy: a REQUEST for a Lease Identifier that already holds a lease is a
            # retransmission the cache forgot (or a restart wiped): the same ACK again,
            # never a second allocation (§2.1.4, §2.4 "unique for each lease").
            self._pending.pop(lid, None)
            self._drop_offer_silently(lid)
            scope = self._by_name.get(existing.scope)
            if scope is None:
                raise _not_completed(NO_OPTION, "the lease's scope is no longer configured")
            if int(message.family) != int(scope.family):
                # As for RENEW: the ACK must carry the lease's addresses in the header's
                # family, which a REQUEST of the other family cannot have.
                raise _invalid(NO_OPTION, "REQUEST in another address family than its lease")
            reply = self._lease_reply(message, existing, scope, now)
            return Outcome(reply, event="granted", detail=f"lease {lid.hex()} already held")
        scope = self._scope_of(message)
        if scope is None:
            raise _not_completed(
                OptionCode.MULTICAST_SCOPE, f"scope {message.options.scope} is not served here"
            )
        prefer: tuple[Block, ...] = ()
        offer = self._offers.get(lid)
        if offer is not None:
            # §2.2.4: completing our OFFER: the held addresses are preferred.
            self._drop_offer_silently(lid)
            prefer = offer.blocks
        elif existing is not None:
            # The RFC's case for a client-chosen address list (§3.11): "a lease is
            # accidentally allowed to expire and it needs to be reallocated"; same idea
            # without the list: the ended lease's addresses come first.
            prefer = blocks_of(existing.ranges)
        try:
            plan = self._plan(message, scope, now, prefer=prefer)
        except _Shortfall as short:
            return self._short(message, scope, short.missing, now)
        lease = Lease(
            lid,
            scope.name,
            ranges_of(plan.blocks, ipv6=plan.ipv6),
            plan.start,
            plan.end,
            now,
            _client(arrival.source),
        )
        # The reply first: the lease exists only once its ACK could be made.
        reply = self._lease_reply(message, lease, scope, now)
        self._pending.pop(lid, None)
        self._store_lease(lease)
        return Outcome(
            reply,
            saved=(lease,),
            event="granted",
            detail=f"lease {lid.hex()}: {lease.count} addresses in {scope.name!r}",
        )

    def _short(self, message: Message, scope: Scope, missing: int, now: float) -> Outcome:
        """No room.  A ``masc`` scope may get more space from the daemon: a client that
        supports Retry After gets a Retry-After ACK (§2.13.2: "empty List of Address Ranges
        ... a Feature List option that includes the Retry After feature in the required
        list, and a Retry Time option"); others a NAK 0.  Either way ``demand`` tells the
        shell to ask the daemon."""
        lid = message.options.lease_id
        assert lid is not None
        features = message.options.features
        demand = self._new_demand(lid, missing, now) if scope.source == "masc" else 0
        if (
            scope.source == "masc"
            and features is not None
            and Feature.RETRY_AFTER in (features.supported)
        ):
            retry = now + self.settings.retry_interval
            # Local policy: the transaction is remembered until one more retry interval
            # after the Retry Time (so a RENEW meanwhile is told off, §2.13.2).
            self._add_pending(lid, _Pending(scope.name, retry + self.settings.retry_interval))
            wanted = message.options.lease_time
            lease_time = min(
                scope.max_lease, scope.default_lease if wanted is None else float(wanted)
            )
            reply = self._encode(
                message,
                MessageType.ACK,
                Options(
                    lease_time=min(int(lease_time), U32_MAX),
                    scope=scope.scope_id,
                    ranges=(),
                    current_time=int(now),
                    retry_time=int(retry),
                ),
                implemented=(int(Feature.RETRY_AFTER),),
            )
            return Outcome(
                reply,
                demand=demand,
                event="retry_after",
                detail=f"{missing} addresses short in {scope.name!r}: retry at {int(retry)}",
            )
        # §3.17.1 names "which option caused the problem": the count asked for, else the
        # addresses asked for, else none.
        option: int = NO_OPTION
        if message.options.addresses is not None:
            option = OptionCode.NUMBER_OF_ADDRESSES
        elif message.options.ranges is not None:
            option = OptionCode.LIST_OF_ADDRESS_RANGES
        raise _not_completed(option, f"{missing} addresses short in {scope.name!r}", demand=demand)

    def _plan(
        self, message: Message, scope: Scope, now: float, *, prefer: tuple[Block, ...]
    ) -> _Plan:
        """The lease a DISCOVER or REQUEST gets: addresses, start and end; or _Nak (a
        condition the client set cannot be met) or _Shortfall (too few free addresses)."""
        options = message.options
        offset = self._offset(message, now)
        lid = options.lease_id
        assert lid is not None
        # §2.2.4 defaults: "as soon as possible for Start Time".
        start = self._start(options, offset, now, default=now)
        self._check_maximum_start(options, start, offset)
        lease_time = self._lease_time(options.lease_time, scope)
        floor = self._floor(options)
        if lease_time < floor:
            raise self._too_short(options, f"lease of {lease_time:.0f} s is too short")
        # §3.8: "between the minimum and desired number"; default one.
        minimum, desired = 1, 1
        if options.addresses is not None:
            if options.addresses.desired < 1:
                # Local policy: asking for no address at all is an Invalid Request.
                raise _invalid(OptionCode.NUMBER_OF_ADDRESSES, "desired count is 0")
            minimum = max(1, options.addresses.minimum)
            desired = options.addresses.desired
        wished: tuple[Block, ...] | None = None
        if options.ranges is not None:
            # §3.11: the client asks for these addresses; only they are candidates.  Local
            # policy: without Number of Addresses it wants all of them (at most 65535).
            wished = blocks_of(options.ranges)
            if options.addresses is None:
                minimum = desired = max(1, min(size(wished), 0xFFFF))
        ipv6 = scope.family == AddressFamily.IPV6
        pool = self._pools[ipv6]
        ignore = (_lease_owner(lid),)
        wanted_end = start + lease_time
        collected: tuple[Block, ...] = ()
        end = wanted_end
        cut_short = False
        for space, cap in self._tiers(scope, start):
            tier_end = min(wanted_end, cap)
            if tier_end - start < floor:
                cut_short = True
                break  # tiers come longest-lived first
            if wished is not None:
                space = intersect(space, wished)
            free = pool.free(space, start=start, end=tier_end, ignore=ignore)
            if not free:
                continue
            collected = normalise(collected + free)
            end = tier_end
            if size(collected) >= desired:
                break
        chosen = self._choose(
            collected, minimum, desired, prefer, max_pieces=_max_ranges(lid, ipv6=ipv6)
        )
        if chosen is None:
            if cut_short and not collected and options.minimum_lease_time is not None:
                # §3.15: the space there is ends before the Minimum Lease Time.
                raise _not_completed(OptionCode.MINIMUM_LEASE_TIME, "grants end too soon")
            raise _Shortfall(max(desired - size(collected), 1))
        # Lease Time travels in whole seconds: end on one.
        end = start + min(math.floor(end - start), U32_MAX)
        return _Plan(chosen, start, end, ipv6)

    @staticmethod
    def _choose(
        free: tuple[Block, ...],
        minimum: int,
        desired: int,
        prefer: tuple[Block, ...],
        *,
        max_pieces: int,
    ) -> tuple[Block, ...] | None:
        """:func:`pool.choose`, but addresses of ``prefer`` (a held offer, an ended lease)
        first; in at most ``max_pieces`` blocks."""
        preferred = intersect(free, prefer)
        plain = choose(free, minimum, desired, max_pieces=max_pieces)
        if not preferred or plain is None:
            return plain  # (if even the best pick fails, so does one leaning on `prefer`)
        first = choose(preferred, 1, desired, max_pieces=max_pieces) or ()
        got = size(first)
        if got >= desired:
            return first
        rest = None
        if len(first) < max_pieces:
            rest = choose(
                subtract(free, first),
                max(minimum - got, 1),
                desired - got,
                max_pieces=max_pieces - len(first),
            )
        if rest is None:
            return first if got >= minimum else plain
        return normalise(first + rest)

    def _tiers(self, scope: Scope, start: float) -> list[tuple[tuple[Block, ...], float]]:
        """Where new leases of ``scope`` may come from, each with the latest end a lease
        there may have; longest-lived first.  ``masc``: the active grants not yet expired
        at ``start`` (RFC 2908 §5: deprecated space gets no new leases), clipped to the zone,
        minus exclusions."""
        if scope.source == "static":
            return [(self._static[scope.name], _INFINITY)]
        tiers = []
        for grant in self._grants[scope.name]:
            if grant.active and grant.expires > start:
                tiers.append((self._grant_space(scope, grant), grant.expires))
        tiers.sort(key=lambda tier: -tier[1])
        return tiers

    def _grant_space(self, scope: Scope, grant: Grant) -> tuple[Block, ...]:
        zone = ((int(scope.first), int(scope.last)),)
        return subtract(intersect((_prefix_block(grant.prefix),), zone), self._exclusions(scope))

    @staticmethod
    def _exclusions(scope: Scope) -> tuple[Block, ...]:
        return normalise((int(low), int(high)) for low, high in scope.exclusions)

    def _offset(self, message: Message, now: float) -> float:
        """§2.12: the client's absolute times are read on our clock by adding how far ours
        is ahead of the client's Current Time (whole seconds: the wire's resolution).
        Local policy; the skew is within [CLOCK-SKEW-ALLOWANCE] by now."""
        client_time = message.options.current_time
        return 0.0 if client_time is None else float(math.floor(now) - client_time)

    @staticmethod
    def _start(options: Options, offset: float, now: float, *, default: float) -> float:
        if options.start_time is None:
            return default
        start = max(now, options.start_time + offset)
        if start > U32_MAX:
            # Read on our clock the time no longer fits the wire's Start Time (2106).
            raise _not_completed(OptionCode.START_TIME, "start time beyond the wire's range")
        return start

    @staticmethod
    def _check_maximum_start(options: Options, start: float, offset: float) -> None:
        # §3.16: "If a server cannot meet this maximum start time, it MUST generate ...
        # Valid Request Could Not Be Completed" (compared at the wire's 1 s resolution).
        latest = options.maximum_start_time
        if latest is not None and math.floor(start) > latest + offset:
            raise _not_completed(OptionCode.MAXIMUM_START_TIME, "start after Maximum Start")

    @staticmethod
    def _lease_time(requested: int | None, scope: Scope) -> float:
        # Local policy: no Lease Time -> the scope's default lease (§2.2.4 says "maximum
        # available"); never more than the scope's maximum.
        wanted = scope.default_lease if requested is None else float(requested)
        return min(wanted, scope.max_lease)

    @staticmethod
    def _floor(options: Options) -> float:
        minimum = options.minimum_lease_time
        return MIN_LEASE if minimum is None else max(float(minimum), MIN_LEASE)

    @staticmethod
    def _too_short(options: Options, detail: str) -> _Nak:
        # §3.15: an unmet Minimum Lease Time is error 0 naming it; a zero Lease Time names
        # Lease Time.
        if options.minimum_lease_time is not None:
            return _not_completed(OptionCode.MINIMUM_LEASE_TIME, detail)
        if options.lease_time is not None:
            return _not_completed(OptionCode.LEASE_TIME, detail)
        return _not_completed(NO_OPTION, detail)

    # --- RENEW and RELEASE -------------------------------------------------------------------

    def _renew(self, message: Message, now: float) -> Outcome:
        """§2.2.7: a new start and/or lease time for the same addresses, or a NAK that
        leaves the lease as it was."""
        options = message.options
        lid = options.lease_id
        assert lid is not None
        if lid in self._pending:
            # §2.13.2: a RENEW for a lease "currently undergoing allocation with the Retry
            # After feature in response to a REQUEST ... MUST generate ... Invalid Request".
            raise _invalid(OptionCode.LEASE_IDENTIFIER, "RENEW during a Retry-After REQUEST")
        lease = self._leases.get(lid)
        if lease is None or lease.end <= now:
            # §2.4: "If the Lease Identifier does not match, a MADCAP server MUST generate
            # ... Lease Identifier Not Recognized".  An ended lease is gone for the client.
            raise _Nak(ErrorOption(int(ErrorCode.LEASE_ID_NOT_RECOGNIZED)), "unknown lease")
        scope = self._by_name.get(lease.scope)
        if scope is None:
            raise _not_completed(NO_OPTION, f"scope {lease.scope!r} is no longer configured")
        if int(message.family) != int(scope.family):
            # Local policy: the ACK must carry the lease's addresses in the header's family.
            raise _invalid(NO_OPTION, "RENEW in another address family than the lease")
        blocks = blocks_of(lease.ranges)
        cap = self._renewal_cap(scope, blocks, now)
        if cap is None:
            # The daemon revoked the space (or the configuration dropped it): no renewal.
            raise _not_completed(NO_OPTION, "the lease's addresses are no longer ours to lease")
        offset = self._offset(message, now)
        # Local policy: a RENEW without Start Time keeps a future start where it is and
        # changes only the lease time; a started lease runs on from now.
        start = self._start(options, offset, now, default=max(now, lease.start))
        self._check_maximum_start(options, start, offset)
        end = min(start + self._lease_time(options.lease_time, scope), cap)
        ipv6 = _lease_ipv6(lease)
        latest = self._pools[ipv6].latest_end(blocks, start=start, ignore=(_lease_owner(lid),))
        if latest is None:
            raise _not_completed(NO_OPTION, "the addresses are reserved by others then")
        # §2.2.7 via §2.2.4: a shorter lease than asked rather than a collision.
        end = min(end, latest)
        if end - start < self._floor(options):
            raise self._too_short(options, f"renewal to {end - start:.0f} s is too short")
        end = start + min(math.floor(end - start), U32_MAX)
        # The record keeps the original start of a lease that has begun and runs on.
        record_start = lease.start if lease.start <= now and start <= now else start
        renewed = replace(lease, start=record_start, end=end)
        reply = self._lease_reply(message, renewed, scope, now)
        self._store_lease(renewed)
        return Outcome(
            reply,
            saved=(renewed,),
            event="renewed",
            detail=f"lease {lid.hex()} until {end:.0f}",
        )

    def _renewal_cap(self, scope: Scope, blocks: tuple[Block, ...], now: float) -> float | None:
        """The latest end a renewal of ``blocks`` may have, or None if they are not all in
        usable space.  Static: the scope's ranges minus exclusions.  ``masc``: active or
        deprecated grants not yet expired; the end is capped at the earliest expiry among
        the grants holding the lease's addresses (a lease never outlives its grant)."""
        if scope.source == "static":
            return _INFINITY if not subtract(blocks, self._static[scope.name]) else None
        holding: list[Grant] = []
        covered: tuple[Block, ...] = ()
        for grant in self._grants[scope.name]:
            if grant.expires <= now:
                continue
            space = intersect(self._grant_space(scope, grant), blocks)
            if space:
                holding.append(grant)
                covered = normalise(covered + space)
        if subtract(blocks, covered):
            return None
        return min(grant.expires for grant in holding)

    def _release(self, message: Message, now: float) -> Outcome:
        """§2.2.8: free the whole lease at once; ACK with Server and Lease Identifier only
        (§2.2.5; plus the Feature List §3.13 asks for)."""
        lid = message.options.lease_id
        assert lid is not None
        if self._pending.pop(lid, None) is not None:
            # §2.13.2: RELEASE "terminate[s] the allocation process".
            detail = f"Retry-After transaction {lid.hex()} cancelled"
            return Outcome(
                self._encode(message, MessageType.ACK, Options()), event="released", detail=detail
            )
        if lid in self._offers:
            # Local policy: a RELEASE after an OFFER ends the hold (nothing was leased).
            self._drop_offer_silently(lid)
            return Outcome(
                self._encode(message, MessageType.ACK, Options()),
                event="released",
                detail=f"offer {lid.hex()} released",
            )
        lease = self._leases.get(lid)
        if lease is None or lease.end <= now:
            raise _Nak(ErrorOption(int(ErrorCode.LEASE_ID_NOT_RECOGNIZED)), "unknown lease")
        self._forget_lease(lid)
        reply = self._encode(message, MessageType.ACK, Options())
        return Outcome(reply, deleted=(lid,), event="released", detail=f"lease {lid.hex()}")

    # --- state helpers -----------------------------------------------------------------------

    def _drop_offer_silently(self, lid: bytes) -> bool:
        offer = self._offers.pop(lid, None)
        if offer is None:
            return False
        self._pools[offer.ipv6].drop(_offer_owner(lid))
        return True

    def _reserve_lease(self, lease: Lease) -> None:
        self._pools[_lease_ipv6(lease)].reserve(
            _lease_owner(lease.lease_id),
            blocks_of(lease.ranges),
            start=lease.start,
            end=lease.end,
        )

    def _store_lease(self, lease: Lease) -> None:
        lid = lease.lease_id
        self._leases[lid] = lease
        self._ended.discard(lid)
        self._pools[not _lease_ipv6(lease)].drop(_lease_owner(lid))
        self._reserve_lease(lease)
        self._push_timer(lid, lease)  # the old entry, if any, is now stale

    def _forget_lease(self, lid: bytes) -> None:
        lease = self._leases.pop(lid)
        self._ended.discard(lid)
        self._pools[_lease_ipv6(lease)].drop(_lease_owner(lid))

    def _expire_transient(self, now: float) -> None:
        """Offers past their hold (§2.2.3 [OFFER-HOLD]), forgotten Retry-After transactions,
        and cache entries past [RESPONSE-CACHE-INTERVAL] (§2.1.4)."""
        # Insertion order is expiry order (see __init__): each loop stops at the first live
        # entry, so the cost is what expires, not what is held.
        while self._offers:
            lid, offer = next(iter(self._offers.items()))
            if offer.hold_until > now:
                break
            self._drop_offer_silently(lid)
        while self._pending:
            lid, pending = next(iter(self._pending.items()))
            if pending.until > now:
                break
            del self._pending[lid]
        while self._demanded:
            lid, (_, until) = next(iter(self._demanded.items()))
            if until > now:
                break
            del self._demanded[lid]
        while self._cache:
            key, (_, until) = next(iter(self._cache.items()))
            if until > now:
                break
            del self._cache[key]

    def _hold_offer(self, lid: bytes, offer: _Offer) -> None:
        """Record ``offer`` (its addresses already reserved), at the back of the expiry
        order; at the bound the oldest offer lets its addresses go."""
        self._drop_offer_silently(lid)
        while len(self._offers) >= self.settings.max_offers:
            self._drop_offer_silently(next(iter(self._offers)))
        self._offers[lid] = offer

    def _add_pending(self, lid: bytes, pending: _Pending) -> None:
        self._pending.pop(lid, None)
        while len(self._pending) >= self.settings.max_pending:
            del self._pending[next(iter(self._pending))]
        self._pending[lid] = pending

    def _new_demand(self, lid: bytes, missing: int, now: float) -> int:
        """How much of ``missing`` (addresses short for ``lid``) is news to the daemon: all
        of it, unless this Lease Identifier's shortfall was first reported less than
        2 x max(OFFER-HOLD, retry interval) ago -- then only what it lacks beyond that."""
        known = self._demanded.get(lid)
        if known is not None and known[1] > now:
            # Updated in place: the window runs from the first report (insertion order
            # stays expiry order), so a client still waiting is reported again once per
            # window, in case the daemon lost the request (a restart, a reconnection).
            reported, until = known
            self._demanded[lid] = (max(reported, missing), until)
            return max(missing - reported, 0)
        self._demanded.pop(lid, None)
        while len(self._demanded) >= self.settings.max_pending:
            del self._demanded[next(iter(self._demanded))]
        window = 2 * max(self.settings.offer_hold, self.settings.retry_interval)
        self._demanded[lid] = (missing, now + window)
        return missing
