"""The trio MADCAP client (masc/madcap/client.py) over real UDP on 127.0.11.x.

The server side is a scripted responder built with the codec: a UDP socket that records
what arrives (trio time, bytes, decoded message) and answers with what the test's handler
returns.  Every datagram the client sends is also held to Table 5 with
``rules.server_check``, so each test checks the client's requests too.

Waiting runs on ``MockClock(autojump_threshold=0)`` (the ``autojump_clock`` fixture): a
60-second give-up takes no real time, and loopback UDP is delivered before the sender's
``sendto`` returns, so the clock never jumps past a datagram in flight.  The wall clock
handed to the client is ``T0 + trio.current_time()``.
"""

from __future__ import annotations

import random
import socket
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, ip_address, ip_network
from typing import Any

import pytest
import trio
import trio.testing

from masc.madcap import client as client_module
from masc.madcap import codec, rules
from masc.madcap.client import (
    Lease,
    MadcapClient,
    MadcapError,
    NoResponse,
    Scope,
    TryLater,
    discovery_address,
    error_name,
    generate_client_id,
    open_madcap_client,
)
from masc.madcap.constants import (
    NO_OPTION,
    AddressFamily,
    ErrorCode,
    Feature,
    LeaseIdType,
    MessageType,
    OptionCode,
)
from masc.madcap.messages import (
    AddressCount,
    AddressRange,
    ErrorOption,
    FeatureList,
    Message,
    NestingState,
    Options,
    ScopeEntry,
    ScopeName,
    error_extra,
)
from masc.madcap.scopes import Scope as ServerScope
from masc.madcap.server import Arrival as ServerArrival
from masc.madcap.server import Grant, MadcapServer, ServerSettings

T0 = 1_700_000_000  # 2023-11-14 22:13:20 UTC
SEED = 2730  # every client here draws its xids and Lease Identifiers from Random(SEED)
CLIENT = "127.0.11.1"
SERVER = "127.0.11.2"
SERVER_ID = IPv4Address(SERVER)
ORG_LOCAL = Scope(
    IPv4Address("239.192.0.0"),
    IPv4Address("239.195.255.255"),
    255,
    (ScopeName("en", "Organization Local", default=True), ScopeName("de", "Organisation")),
)
LOCAL = Scope(IPv4Address("239.255.0.0"), IPv4Address("239.255.255.255"), 16)
GLOBAL = Scope(IPv4Address("224.0.1.0"), IPv4Address("238.255.255.255"), 255)
FIRST = IPv4Address("239.192.1.0")


def wall() -> float:
    return T0 + trio.current_time()


@dataclass(frozen=True)
class Arrival:
    at: float  # trio time
    data: bytes
    message: Message
    source: tuple[str, int]


Handler = Callable[[Message], Iterable[Message | bytes]]


class Responder:
    """A scripted MADCAP server: records every datagram and sends what ``handler`` returns
    for it back to its source (§2: servers answer to the client's port)."""

    def __init__(self, handler: Handler, address: str = SERVER, multicast: bool = False) -> None:
        self.handler = handler
        self.address = address
        self.multicast = multicast  # stands in for a group: Table 5's multicast column
        self.arrivals: list[Arrival] = []
        self.where: tuple[str, int] = (address, 0)

    async def run(self, *, task_status: trio.TaskStatus[tuple[str, int]]) -> None:
        sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with sock:
            await sock.bind((self.address, 0))
            self.where = sock.getsockname()
            task_status.started(self.where)
            while True:
                data, source = await sock.recvfrom(65535)
                message = codec.decode(data)
                # The client's own requests conform to Table 5 and §3's conditional rules.
                check = rules.server_check(message, multicast=self.multicast)
                assert check is None, (check, message)
                self.arrivals.append(Arrival(trio.current_time(), data, message, source))
                for reply in self.handler(message):
                    out = reply if isinstance(reply, bytes) else codec.encode(reply)
                    await sock.sendto(out, source)

    @property
    def times(self) -> list[float]:
        return [a.at for a in self.arrivals]

    @property
    def messages(self) -> list[Message]:
        return [a.message for a in self.arrivals]


@asynccontextmanager
async def serving(
    handler: Handler, *, multicast: bool = False, **client_options: Any
) -> AsyncIterator[tuple[Responder, MadcapClient]]:
    """A responder and a client configured with it as the server; ``multicast``: a client
    without a server whose "groups" are the responder (see ``as_groups``)."""
    responder = Responder(handler, multicast=multicast)
    async with trio.open_nursery() as nursery:
        where = await nursery.start(responder.run)
        target = {"port": where[1]} if multicast else {"server": where}
        options: dict[str, Any] = {
            **target,
            "bind": CLIENT,
            "clock": wall,
            "rng": random.Random(SEED),
            **client_options,
        }
        async with open_madcap_client(**options) as client:
            yield responder, client
        nursery.cancel_scope.cancel()


def reply(request: Message, msg_type: MessageType, **options: Any) -> Message:
    """An answer to ``request`` with its xid and Lease Identifier (§2.5)."""
    fields: dict[str, Any] = {"server_id": SERVER_ID, "lease_id": request.options.lease_id}
    fields.update(options)
    return Message(msg_type, request.family, request.xid, Options(**fields))


def ack(request: Message, **options: Any) -> Message:
    return reply(request, MessageType.ACK, **options)


def nak(request: Message, error: ErrorOption) -> Message:
    return reply(request, MessageType.NAK, error=error)


def granted(
    request: Message, *, ranges: tuple[AddressRange, ...] = (AddressRange(FIRST, 1),), **extra: Any
) -> Message:
    """A §2.2.5 ACK to a REQUEST or RENEW: Lease Time, Scope, ranges."""
    options: dict[str, Any] = {
        "lease_time": request.options.lease_time or 3600,
        "scope": request.options.scope or ORG_LOCAL.scope_id,
        "ranges": ranges,
        **extra,
    }
    return ack(request, **options)


def silent(message: Message) -> list[Message]:
    return []


def always(make: Callable[[Message], Message]) -> Handler:
    return lambda message: [make(message)]


# --- §2.3 retransmission, §2.5 association ---------------------------------------------------


async def test_s2_3_copies_at_t_t4_t12_t28_then_no_response_at_t60(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with serving(silent) as (responder, client):
        start = trio.current_time()
        with pytest.raises(NoResponse) as caught:
            await client.alloc(ORG_LOCAL)
        assert trio.current_time() - start == 60.0
        assert [t - start for t in responder.times] == [0.0, 4.0, 12.0, 28.0]
        # §2.1.4: "the client MUST retransmit them without changing them".
        assert len({a.data for a in responder.arrivals}) == 1
        assert caught.value.status == "no_response"
        assert "REQUEST" in caught.value.message and "60 s" in caught.value.message
        await trio.sleep(100)
        assert len(responder.arrivals) == 4  # nothing after giving up


async def test_s2_3_no_copy_after_a_nak(autojump_clock: trio.testing.MockClock) -> None:
    invalid = error_extra(ErrorCode.INVALID_REQUEST, NO_OPTION)
    async with serving(always(lambda m: nak(m, invalid))) as (responder, client):
        start = trio.current_time()
        with pytest.raises(MadcapError) as caught:
            await client.alloc(ORG_LOCAL)
        assert trio.current_time() == start  # at once
        await trio.sleep(100)
        assert len(responder.arrivals) == 1
    assert caught.value.code == ErrorCode.INVALID_REQUEST and caught.value.status == "nak"


@pytest.mark.parametrize(
    "wrong",
    [
        pytest.param(lambda m: replace(granted(m), xid=(m.xid + 1) & 0xFFFFFFFF), id="xid"),
        pytest.param(
            lambda m: granted(replace(m, options=replace(m.options, lease_id=b"\x00other"))),
            id="lease-id",
        ),
    ],
)
async def test_s2_5_a_reply_whose_xid_or_lease_id_does_not_match_is_ignored(
    autojump_clock: trio.testing.MockClock, wrong: Callable[[Message], Message]
) -> None:
    def handler(message: Message) -> list[Message]:
        # The first copy earns only the wrong answer; the retransmission at t+4 the right one.
        return [wrong(message)] if len(responder.arrivals) == 1 else [granted(message)]

    async with serving(handler) as (responder, client):
        start = trio.current_time()
        lease = await client.alloc(ORG_LOCAL)
        assert trio.current_time() - start == 4.0 and len(responder.arrivals) == 2
        assert lease.addresses == (FIRST,)


def _no_server_id(m: Message) -> Message:
    return replace(granted(m), options=replace(granted(m).options, server_id=None))


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(_no_server_id, id="ack-without-server-id"),
        pytest.param(
            lambda m: replace(granted(m), options=replace(granted(m).options, ranges=None)),
            id="ack-without-ranges",
        ),
        pytest.param(
            lambda m: ack(m, **{**_fields(granted(m)), "start_time": T0 + 99}),
            id="start-time-without-current-time",
        ),
        pytest.param(lambda m: replace(granted(m), msg_type=MessageType.OFFER), id="offer"),
        pytest.param(lambda m: replace(granted(m), msg_type=42), id="unknown-msgtype"),
        pytest.param(lambda m: b"\x00\x05\x00", id="short-datagram"),
        pytest.param(lambda m: b"\x01" + codec.encode(granted(m))[1:], id="version-1"),
        pytest.param(lambda m: granted(m, ranges=(AddressRange(FIRST, 2),)), id="more-than-asked"),
        pytest.param(
            lambda m: granted(m, ranges=(AddressRange(IPv4Address("239.1.0.0"), 1),)),
            id="outside-the-scope",
        ),
        pytest.param(lambda m: granted(m, scope=LOCAL.scope_id), id="other-scope"),
        pytest.param(
            lambda m: granted(m, ranges=(), retry_time=T0 + 600, current_time=T0),
            id="retry-after-not-offered",
        ),
    ],
)
async def test_s2_1_5_a_client_ignores_a_reply_that_does_not_conform(
    autojump_clock: trio.testing.MockClock, bad: Callable[[Message], Message | bytes]
) -> None:
    async with serving(lambda m: [bad(m)]) as (responder, client):
        with pytest.raises(NoResponse):
            await client.alloc(ORG_LOCAL)
        assert len(responder.arrivals) == 4


def _fields(message: Message) -> dict[str, Any]:
    return {
        name: getattr(message.options, name)
        for name in ("lease_time", "scope", "ranges", "server_id", "lease_id")
    }


async def test_s2_1_4_each_new_message_takes_the_next_xid_from_a_random_first(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with serving(always(granted)) as (responder, client):
        await client.alloc(ORG_LOCAL)
        await client.alloc(ORG_LOCAL)
        first, second = (m.xid for m in responder.messages)
    assert first == random.Random(SEED).getrandbits(32)
    assert second == (first + 1) & 0xFFFFFFFF


def test_s2_4_1_client_id_is_type_0_and_16_random_octets() -> None:
    one, two = generate_client_id(), generate_client_id()
    assert len(one) == 17 and one[0] == LeaseIdType.RANDOM and one != two
    assert generate_client_id(random.Random(1)) == generate_client_id(random.Random(1))


# --- §2.2.2-§2.2.4 discovery, with the responder standing in for the multicast groups -------


OTHER_ID = IPv4Address("127.0.11.3")  # a second server, answering through the same responder


@pytest.fixture
def as_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    """Send what would be multicast to the responder's address: the client's discovery logic
    runs unchanged (tests/madcap/test_client_multicast.py covers real groups)."""
    monkeypatch.setattr(client_module, "discovery_address", lambda scope: SERVER_ID)
    monkeypatch.setattr(client_module, "LOCAL_SCOPE_SERVER_ADDRESS", SERVER)


def offer(message: Message, server_id: IPv4Address = SERVER_ID, **options: Any) -> Message:
    fields: dict[str, Any] = {
        "lease_time": message.options.lease_time or 3600,
        "scope": message.options.scope,
        "server_id": server_id,
        **options,
    }
    return reply(message, MessageType.OFFER, **fields)


def of_type(responder: Responder, msg_type: MessageType) -> list[Arrival]:
    return [a for a in responder.arrivals if a.message.msg_type == msg_type]


async def test_s2_2_2_discover_collects_offers_for_discover_delay_and_requests_the_best(
    autojump_clock: trio.testing.MockClock, as_groups: None
) -> None:
    def handler(message: Message) -> list[Message]:
        if message.msg_type == MessageType.DISCOVER:
            if len(responder.arrivals) == 1:
                return []  # the first copy is lost: the DISCOVER is retransmitted at t+4
            # Neither offer gives the hour asked for; the other server's is longer.
            return [offer(message, lease_time=600), offer(message, OTHER_ID, lease_time=1800)]
        assert message.msg_type == MessageType.REQUEST
        # Only the selected server answers a multicast REQUEST; an ACK from another is not
        # an answer (§2.2.4) and is ignored.
        return [granted(message), granted(message, server_id=OTHER_ID, lease_time=1800)]

    async with serving(handler, multicast=True) as (responder, client):
        start = trio.current_time()
        lease = await client.alloc(ORG_LOCAL, max_lifetime=3600, min_lifetime=600)
        (first, second) = of_type(responder, MessageType.DISCOVER)
        (request,) = of_type(responder, MessageType.REQUEST)
    assert (first.at - start, second.at - start) == (0.0, 4.0) and first.data == second.data
    # [DISCOVER-DELAY] = the current retransmit timer after two copies: 8 s past the offers.
    assert request.at - start == 12.0
    # §2.2.4: the same Lease Identifier, the chosen Server Identifier, a new xid, and
    # otherwise the DISCOVER's options (Appendix A.2).
    discover = first.message
    assert request.message.xid == discover.xid + 1
    assert request.message.options == replace(discover.options, server_id=OTHER_ID)
    assert lease.server_id == OTHER_ID and lease.lifetime == 1800


async def test_s2_2_2_an_offer_giving_all_that_was_asked_is_taken_at_once(
    autojump_clock: trio.testing.MockClock, as_groups: None
) -> None:
    def handler(message: Message) -> list[Message]:
        if message.msg_type == MessageType.DISCOVER:
            return [offer(message, lease_time=3600)]
        return [granted(message)]

    async with serving(handler, multicast=True) as (responder, client):
        start = trio.current_time()
        lease = await client.alloc(ORG_LOCAL, max_lifetime=3600)
        assert trio.current_time() == start
    assert [a.message.msg_type for a in responder.arrivals] == [
        MessageType.DISCOVER,
        MessageType.REQUEST,
    ]
    assert lease.server_id == SERVER_ID


async def test_s2_2_3_offers_that_break_the_request_are_ignored(
    autojump_clock: trio.testing.MockClock, as_groups: None
) -> None:
    def handler(message: Message) -> list[Message]:
        return [
            offer(message, lease_time=60),  # below Minimum Lease Time (§2.2.3 MUST NOT)
            offer(message, scope=LOCAL.scope_id),  # another scope
            offer(message, ranges=(AddressRange(FIRST, 3),)),  # more than asked (§3.8)
        ]

    async with serving(handler, multicast=True) as (responder, client):
        with pytest.raises(NoResponse):
            await client.alloc(ORG_LOCAL, max_lifetime=3600, min_lifetime=600)
        assert len(of_type(responder, MessageType.DISCOVER)) == 4


async def test_s2_2_2_a_nak_to_discover_stops_it_and_is_the_answer_if_nobody_offers(
    autojump_clock: trio.testing.MockClock, as_groups: None
) -> None:
    invalid = error_extra(ErrorCode.INVALID_REQUEST, OptionCode.MULTICAST_SCOPE)
    async with serving(always(lambda m: nak(m, invalid)), multicast=True) as (responder, client):
        start = trio.current_time()
        with pytest.raises(MadcapError) as caught:
            await client.alloc(ORG_LOCAL)
        assert trio.current_time() - start == 4.0  # waited [DISCOVER-DELAY] for offers
        assert len(responder.arrivals) == 1  # and sent no second copy
    assert caught.value.code == ErrorCode.INVALID_REQUEST


async def test_s2_10_multicast_getinfo_merges_the_lists_of_every_server_that_answers(
    autojump_clock: trio.testing.MockClock, as_groups: None
) -> None:
    def handler(message: Message) -> list[Message]:
        return [
            scope_list_ack(message, ENTRIES[:2]),
            scope_list_ack(message, ENTRIES[1:], server_id=OTHER_ID),
        ]

    async with serving(handler, multicast=True, discover_delay=1.5) as (responder, client):
        start = trio.current_time()
        scopes = await client.get_scopes()
        assert trio.current_time() - start == 1.5  # --discover-delay after the first ACK
        assert len(responder.arrivals) == 1
    assert [s.scope_id for s in scopes] == [e.scope_id for e in ENTRIES]


async def test_s2_2_2_without_a_scope_list_entry_the_scope_is_looked_up_first(
    autojump_clock: trio.testing.MockClock, as_groups: None
) -> None:
    def handler(message: Message) -> list[Message]:
        if message.msg_type == MessageType.GETINFO:
            return [scope_list_ack(message, ENTRIES)]
        if message.msg_type == MessageType.DISCOVER:
            return [offer(message)]
        return [granted(message)]

    async with serving(handler, multicast=True, discover_delay=0.5) as (responder, client):
        await client.alloc("239.192.0.0")
        with pytest.raises(MadcapError) as caught:
            await client.alloc("239.1.0.0")  # nobody lists it: no server address to ask
    assert caught.value.status == "bad_scope"
    assert [a.message.msg_type for a in responder.arrivals] == [
        MessageType.GETINFO,
        MessageType.DISCOVER,
        MessageType.REQUEST,
        MessageType.GETINFO,
    ]


# --- GETINFO: scopes and nesting (RFC 2771 §3.4-§3.8) ------------------------------------------


def scope_list_ack(message: Message, entries: tuple[ScopeEntry, ...], **extra: Any) -> Message:
    return ack(message, scope_list=entries, **extra)


ENTRIES = (
    ScopeEntry(LOCAL.scope_id, LOCAL.last_address, 16, (ScopeName("en", "Local", True),)),
    ScopeEntry(ORG_LOCAL.scope_id, ORG_LOCAL.last_address, 255, ORG_LOCAL.names),
    ScopeEntry(GLOBAL.scope_id, GLOBAL.last_address, 255, ()),
)


async def test_get_scopes_asks_for_the_scope_list_and_returns_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with serving(lambda m: [scope_list_ack(m, ENTRIES)]) as (responder, client):
        scopes = await client.get_scopes("DE")
        (request,) = responder.messages
    assert request.msg_type == MessageType.GETINFO
    assert request.options.option_request_list == (OptionCode.MULTICAST_SCOPE_LIST,)
    assert request.options.language == "DE"
    assert request.options.lease_id is not None
    assert [s.scope_id for s in scopes] == [e.scope_id for e in ENTRIES]
    local, org, world = scopes
    assert org == ORG_LOCAL
    assert org.server_address == IPv4Address("239.195.255.254")  # §2.10: last - 1
    # RFC 2771 §3.5: the name in the language asked for (any case), else the default.
    assert org.name("de") == ("Organisation", "de") and org.name("DE") == ("Organisation", "de")
    assert org.name("fr") == ("Organization Local", "en") and org.name() == org.name("fr")
    assert world.name("en") is None
    assert FIRST in org and FIRST not in local and IPv4Address("224.0.1.0") in world


NESTED = NestingState(
    (
        (False, True, True),  # Local is inside Organization Local and Global
        (False, False, True),  # Organization Local is inside Global
        (False, False, False),
    )
)


async def test_rfc2771_s3_6_to_s3_8_nesting_larger_and_smaller(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with serving(lambda m: [scope_list_ack(m, ENTRIES, nesting=NESTED)]) as (
        responder,
        client,
    ):
        assert await client.nesting() == NESTED
        picked = await client.nesting([GLOBAL, LOCAL])
        assert picked == NestingState(((False, False), (True, False)))
        assert [s.scope_id for s in await client.larger(LOCAL)] == [
            ORG_LOCAL.scope_id,
            GLOBAL.scope_id,
        ]
        assert [s.scope_id for s in await client.smaller("224.0.1.0")] == [
            LOCAL.scope_id,
            ORG_LOCAL.scope_id,
        ]
        assert await client.smaller(LOCAL) == []
        with pytest.raises(MadcapError) as caught:
            await client.larger("239.1.0.0")
        assert caught.value.status == "bad_scope"
        # RFC 2907 §3.3: ask for both the scope list and the nesting state.
        assert responder.messages[0].options.option_request_list == (
            OptionCode.MULTICAST_SCOPE_LIST,
            OptionCode.MULTICAST_SCOPE_NESTING_STATE,
        )


async def test_rfc2907_s5_a_nesting_count_that_differs_is_undetermined(
    autojump_clock: trio.testing.MockClock,
) -> None:
    two = NestingState(((False, True), (False, False)))
    async with serving(lambda m: [scope_list_ack(m, ENTRIES, nesting=two)]) as (_, client):
        with pytest.raises(MadcapError) as caught:
            await client.nesting()
    assert caught.value.status == "undetermined"


# --- REQUEST: allocation (RFC 2771 §3.1) ----------------------------------------------------------


async def test_alloc_sends_the_rfc2771_parameters_and_returns_the_lease(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ranges = (AddressRange(FIRST, 2), AddressRange(IPv4Address("239.192.7.0"), 1))
    async with serving(lambda m: [granted(m, ranges=ranges)]) as (responder, client):
        sent_at = wall()
        lease = await client.alloc(
            ORG_LOCAL, min_addresses=2, max_addresses=3, min_lifetime=600, max_lifetime=7200
        )
        (request,) = responder.messages
    options = request.options
    assert request.msg_type == MessageType.REQUEST and request.family == AddressFamily.IPV4
    assert options.scope == ORG_LOCAL.scope_id  # §2.2.4 MUST
    assert options.addresses == AddressCount(2, 3)
    assert (options.lease_time, options.minimum_lease_time) == (7200, 600)
    assert options.server_id is None  # unicast: MAY; we leave it out
    # No start times asked for: no Start Time, no Current Time, no Feature List.
    assert (options.start_time, options.current_time, options.features) == (None, None, None)
    assert options.lease_id is not None and len(options.lease_id) == 17
    assert lease == Lease(
        lease_id=options.lease_id,
        server_id=SERVER_ID,
        server=responder.where,
        scope_id=ORG_LOCAL.scope_id,
        ranges=ranges,
        start=sent_at,  # §2.2.5: no Start Time, starts immediately
        lifetime=7200.0,
    )
    assert lease.end == sent_at + 7200
    assert lease.addresses == (FIRST, FIRST + 1, IPv4Address("239.192.7.0"))


async def test_s3_8_one_address_sends_no_number_of_addresses(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with serving(always(granted)) as (responder, client):
        await client.alloc("239.192.0.0")
    assert responder.messages[0].options.addresses is None


async def test_s2_12_start_times_go_with_current_time_and_come_back_on_our_clock(
    autojump_clock: trio.testing.MockClock,
) -> None:
    skew = 1000  # the server's clock is 1000 s ahead of ours

    def handler(message: Message) -> list[Message]:
        o = message.options
        assert o.start_time is not None and o.current_time is not None
        server_now = int(wall()) + skew
        start = o.start_time - o.current_time + server_now  # the server's reading
        return [granted(message, start_time=start + 60, current_time=server_now)]

    async with serving(handler) as (responder, client):
        now = wall()
        lease = await client.alloc(ORG_LOCAL, min_start=now + 3600, max_start=now + 7200)
        (request,) = responder.messages
    o = request.options
    assert (o.start_time, o.maximum_start_time, o.current_time) == (
        int(now) + 3600,
        int(now) + 7200,
        int(now),
    )
    # The server granted 60 s after the start asked for, on its clock; ours says the same.
    assert lease.start == int(now) + 3660


async def test_rfc2771_bad_arguments_raise_value_error_and_send_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with serving(always(granted)) as (responder, client):
        for kwargs in (
            {"min_addresses": 3, "max_addresses": 2},
            {"min_addresses": 0},
            {"max_addresses": 70000},
            {"min_lifetime": 20, "max_lifetime": 10},
            {"min_start": T0 + 20, "max_start": T0 + 10},
            {"lease_id": b""},
        ):
            with pytest.raises(ValueError):
                await client.alloc(ORG_LOCAL, **kwargs)
        with pytest.raises(ValueError):
            await client.alloc("ff15::")  # an IPv6 scope from an IPv4 client
        assert responder.arrivals == []


# --- NAK mapping (§2.2.6, §3.17) -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "code", "text", "attributes"),
    [
        (
            error_extra(ErrorCode.VALID_REQUEST_NOT_COMPLETED, OptionCode.MINIMUM_LEASE_TIME),
            0,
            "Valid Request Could Not Be Completed (RFC 2730 §3.17.1, error 0); option 14",
            {"option": 14},
        ),
        (
            error_extra(ErrorCode.INVALID_REQUEST, NO_OPTION),
            1,
            "Invalid Request (RFC 2730 §3.17.2, error 1); no particular option",
            {"option": NO_OPTION},
        ),
        (
            codec.excessive_clock_skew(T0 + 7200),
            2,
            "Excessive Clock Skew (RFC 2730 §3.17.3, error 2); server time",
            {"server_time": T0 + 7200},
        ),
        (
            ErrorOption(int(ErrorCode.LEASE_ID_NOT_RECOGNIZED)),
            3,
            "Lease Identifier Not Recognized (RFC 2730 §3.17.4, error 3)",
            {},
        ),
        (
            codec.required_feature_not_supported([Feature.SERVER_MOBILITY]),
            4,
            "Required Feature Not Supported (RFC 2730 §3.17.5, error 4); unsupported Server",
            {"features": (0,)},
        ),
    ],
)
async def test_s3_17_a_nak_raises_madcap_error_naming_the_rfc_error(
    autojump_clock: trio.testing.MockClock,
    error: ErrorOption,
    code: int,
    text: str,
    attributes: dict[str, Any],
) -> None:
    async with serving(lambda m: [nak(m, error)]) as (_, client):
        with pytest.raises(MadcapError) as caught:
            await client.alloc(ORG_LOCAL)
    assert type(caught.value) is MadcapError
    assert caught.value.code == code and text in caught.value.message
    assert f"NAK from server {SERVER}" in caught.value.message
    for name, value in attributes.items():
        assert getattr(caught.value, name) == value
    assert caught.value.to_json()["error"] == {"code": code, "name": error_name(code)}


# --- Retry After (§2.13.2): RFC 2771 TRY_LATER ----------------------------------------------------


def retry_after(message: Message, *, server_now: int, retry_in: int) -> Message:
    return ack(
        message,
        lease_time=3600,
        scope=message.options.scope,
        ranges=(),
        retry_time=server_now + retry_in,
        current_time=server_now,
        features=FeatureList(supported=(Feature.RETRY_AFTER,), required=(Feature.RETRY_AFTER,)),
    )


async def test_s2_13_2_retry_after_is_try_later_and_the_retry_has_a_new_xid(
    autojump_clock: trio.testing.MockClock,
) -> None:
    skew = -500  # the server's clock is behind ours

    def handler(message: Message) -> list[Message]:
        if len(responder.arrivals) == 1:
            return [retry_after(message, server_now=int(wall()) + skew, retry_in=600)]
        return [granted(message)]

    async with serving(handler) as (responder, client):
        asked_at = wall()
        with pytest.raises(TryLater) as caught:
            await client.alloc(ORG_LOCAL, max_lifetime=3600, try_later=True)
        pending = caught.value
        assert pending.retry_at == int(asked_at) + 600  # on our clock, not the server's
        assert pending.status == "try_later" and "§2.13.2" in pending.message
        await trio.sleep(pending.retry_at - wall())
        lease = await client.retry(pending)
        first, second = responder.messages
    # §2.13.2: the client lists Retry After as supported only, never requested or required.
    assert first.options.features == FeatureList(supported=(Feature.RETRY_AFTER,))
    # "all the same options as the original REQUEST message ... but with a new xid value".
    assert second.msg_type == MessageType.REQUEST and second.xid == first.xid + 1
    assert second.options == first.options
    assert lease.lease_id == first.options.lease_id == pending.lease_id
    assert lease.addresses == (FIRST,)


async def test_s2_13_2_a_pending_allocation_can_be_released(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def handler(message: Message) -> list[Message]:
        if message.msg_type == MessageType.RELEASE:
            return [ack(message)]
        return [retry_after(message, server_now=int(wall()), retry_in=60)]

    async with serving(handler) as (responder, client):
        with pytest.raises(TryLater) as caught:
            await client.alloc(ORG_LOCAL, try_later=True)
        await client.release(caught.value)
        request, release = responder.messages
    assert release.msg_type == MessageType.RELEASE
    assert release.options == Options(lease_id=request.options.lease_id)


# --- RENEW and RELEASE (RFC 2771 §3.2, §3.3, §3.10) ---------------------------------------------


async def lease_from(client: MadcapClient, **kwargs: Any) -> Lease:
    return await client.alloc(ORG_LOCAL, max_lifetime=3600, **kwargs)


async def test_s2_2_7_renew_is_unicast_with_the_lease_id_and_gives_the_new_lease(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with serving(always(granted)) as (responder, client):
        lease = await lease_from(client)
        await trio.sleep(1800)
        renewed_at = wall()
        renewed = await client.change_lifetime(lease, 3600, 7200)
        renew = responder.messages[1]
    assert renew.msg_type == MessageType.RENEW
    # Table 5: RENEW carries no Scope; Appendix A.3: Lease Time, Lease Identifier.
    assert renew.options == Options(
        lease_time=7200, lease_id=lease.lease_id, minimum_lease_time=3600
    )
    assert renewed.lease_id == lease.lease_id and renewed.addresses == lease.addresses
    assert (renewed.start, renewed.lifetime) == (renewed_at, 7200.0)  # counted from now


async def test_rfc2771_s3_2_a_refused_renewal_keeps_a_lease_already_in_range(
    autojump_clock: trio.testing.MockClock,
) -> None:
    refuse = error_extra(ErrorCode.VALID_REQUEST_NOT_COMPLETED, NO_OPTION)

    def handler(message: Message) -> list[Message]:
        if message.msg_type == MessageType.RENEW:
            return [nak(message, refuse)]
        return [granted(message)]

    async with serving(handler) as (responder, client):
        lease = await lease_from(client)
        # 3600 s left: inside [1800, 7200], so the lease stands as it is.
        assert await client.change_lifetime(lease, 1800, 7200) is lease
        # Not inside [5000, 7200]: the NAK is the answer.
        with pytest.raises(MadcapError) as caught:
            await client.change_lifetime(lease, 5000, 7200)
        assert caught.value.code == ErrorCode.VALID_REQUEST_NOT_COMPLETED
        assert len(responder.arrivals) == 3


async def test_rfc2771_s3_10_change_start_time_keeps_the_lifetime(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def handler(message: Message) -> list[Message]:
        o = message.options
        if o.start_time is None:
            return [granted(message)]
        return [granted(message, start_time=o.start_time, current_time=int(wall()))]

    async with serving(handler) as (responder, client):
        now = wall()
        lease = await lease_from(client, min_start=now + 600, max_start=now + 600)
        moved = await client.change_start_time(lease, now + 1200, now + 1800)
        # A lease that has not started keeps its Start Time when only the lifetime changes.
        longer = await client.change_lifetime(moved, 3600, 7200)
        _, change_start, change_life = responder.messages
    assert change_start.options.start_time == int(now) + 1200
    assert change_start.options.maximum_start_time == int(now) + 1800
    assert change_start.options.current_time == int(now)
    assert change_start.options.lease_time == 3600
    assert moved.start == int(now) + 1200 and moved.lifetime == 3600
    assert change_life.options.start_time == int(now) + 1200
    assert longer.start == moved.start and longer.lifetime == 7200


async def test_s2_2_8_release_and_lease_id_not_recognized(
    autojump_clock: trio.testing.MockClock,
) -> None:
    known: set[bytes] = set()

    def handler(message: Message) -> list[Message]:
        lid = message.options.lease_id
        assert lid is not None
        if message.msg_type == MessageType.REQUEST:
            known.add(lid)
            return [granted(message)]
        if lid in known:
            known.discard(lid)
            return [ack(message)]  # §2.2.5: only Server Identifier and Lease Identifier
        return [nak(message, ErrorOption(int(ErrorCode.LEASE_ID_NOT_RECOGNIZED)))]

    async with serving(handler) as (responder, client):
        lease = await lease_from(client)
        await client.release(lease)
        with pytest.raises(MadcapError) as caught:
            await client.release(lease)
        with pytest.raises(MadcapError):
            await client.renew(lease.lease_id, max_lifetime=60, server=lease.server)
    assert responder.messages[1].options == Options(lease_id=lease.lease_id)
    assert caught.value.code == ErrorCode.LEASE_ID_NOT_RECOGNIZED
    assert "Lease Identifier Not Recognized" in caught.value.message


async def test_s2_1_3_renew_and_release_of_a_lease_carry_its_address_family(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A client opened for IPv4 (the default) holding an IPv6 lease: the header family is
    # that of the addresses (§2.1.3), or the server NAKs the RENEW and the ACK is ignored.
    v6_scope = ip_address("ff15::1:0")
    v6_range = AddressRange(ip_address("ff15::1:10"), 2)

    def handler(message: Message) -> list[Message]:
        options: dict[str, Any] = {}
        if message.msg_type == MessageType.RENEW:
            options = {"lease_time": 7200, "scope": v6_scope, "ranges": (v6_range,)}
        answer = ack(message, **options)
        return [replace(answer, family=AddressFamily.IPV6)]

    async with serving(handler) as (responder, client):
        lease = Lease(
            lease_id=generate_client_id(random.Random(SEED)),
            server_id=SERVER_ID,
            server=responder.where,
            scope_id=v6_scope,
            ranges=(v6_range,),
            start=wall(),
            lifetime=3600.0,
        )
        with trio.fail_after(1):  # the answer is taken at once, not given up on at t+60
            renewed = await client.renew(lease, max_lifetime=7200)
            await client.release(renewed)
    assert [m.family for m in responder.messages] == [AddressFamily.IPV6] * 2
    assert renewed.addresses == lease.addresses and renewed.lifetime == 7200


async def test_renew_and_release_need_a_server() -> None:
    async with open_madcap_client(bind=CLIENT) as client:
        with pytest.raises(ValueError, match="unicast"):
            await client.release(b"\x00abc")
        with pytest.raises(ValueError, match="unicast"):
            await client.renew(b"\x00abc")


# --- pure parts ----------------------------------------------------------------------------------


def test_s2_10_discovery_address_is_last_minus_one_never_the_global_scopes() -> None:
    assert discovery_address(ORG_LOCAL) == IPv4Address("239.195.255.254")
    assert discovery_address(LOCAL) == IPv4Address("239.255.255.254")
    # §2.11: "MUST NOT send a MADCAP message to the ... global scope": the Local Scope's.
    assert discovery_address(GLOBAL) == IPv4Address("239.255.255.254")
    site = Scope(ip_address("ff15::"), ip_address("ff15::ffff"), 255)
    assert discovery_address(site) == ip_address("ff15::fffe")
    with pytest.raises(ValueError):
        discovery_address(Scope(ip_address("ff0e::"), ip_address("ff0e::ffff"), 255))


def test_lease_json_round_trips_and_names_bad_fields() -> None:
    lease = Lease(
        lease_id=b"\x00" + bytes(range(16)),
        server_id=SERVER_ID,
        server=(SERVER, 2535),
        scope_id=ORG_LOCAL.scope_id,
        ranges=(AddressRange(FIRST, 2),),
        start=T0,
        lifetime=3600.0,
    )
    data = lease.to_json()
    assert data["addresses"] == ["239.192.1.0", "239.192.1.1"] and data["end"] == T0 + 3600
    assert Lease.from_json(data) == lease
    with pytest.raises(ValueError, match="lease_id"):
        Lease.from_json({**data, "lease_id": "zz"})
    with pytest.raises(ValueError, match="missing field 'server'"):
        Lease.from_json({k: v for k, v in data.items() if k != "server"})
    with pytest.raises(ValueError):
        Lease.from_json({**data, "start": "yesterday"})


# --- against the server core (masc/madcap/server.py) over real UDP -------------------------------

SERVED = (
    ServerScope(
        name="Organization Local",
        first=ORG_LOCAL.scope_id,
        last=ORG_LOCAL.last_address,
        names=(ScopeName("en", "Organization Local", True),),
        ranges=((FIRST, IPv4Address("239.192.1.3")),),
        max_lease=86400.0,
        inside=("Global",),
    ),
    ServerScope(
        name="Global",
        first=GLOBAL.scope_id,
        last=GLOBAL.last_address,
        names=(ScopeName("en", "Global", True),),
        source="masc",
    ),
)
GRANT = Grant(ip_network("233.252.0.0/30"), expires=T0 + 10 * 86400, active=True)


class ServerLoop:
    """A tiny trio shell around MadcapServer: one unicast socket, replies to the source.
    ``drop`` replies are thrown away first (a lossy network)."""

    def __init__(self, core: MadcapServer, drop: int = 0) -> None:
        self.core = core
        self.drop = drop
        self.requests = 0

    async def run(self, *, task_status: trio.TaskStatus[tuple[str, int]]) -> None:
        sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with sock:
            await sock.bind((SERVER, 0))
            task_status.started(sock.getsockname())
            while True:
                data, source = await sock.recvfrom(65535)
                self.requests += 1
                outcome = self.core.handle_datagram(
                    data, arrival=ServerArrival(source=source), now=wall()
                )
                if outcome.reply is None:
                    continue
                if self.drop:
                    self.drop -= 1
                    continue
                await sock.sendto(outcome.reply, source)


@asynccontextmanager
async def real_server(drop: int = 0) -> AsyncIterator[tuple[ServerLoop, MadcapClient]]:
    core = MadcapServer(ServerSettings(server_id=SERVER_ID), SERVED, now=wall())
    loop = ServerLoop(core, drop)
    async with trio.open_nursery() as nursery:
        where = await nursery.start(loop.run)
        async with open_madcap_client(
            server=where, bind=CLIENT, clock=wall, rng=random.Random(SEED)
        ) as client:
            yield loop, client
        nursery.cancel_scope.cancel()


async def test_server_core_allocates_renews_and_releases(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with real_server() as (loop, client):
        scopes = await client.get_scopes("en")
        assert [s.scope_id for s in scopes] == [ORG_LOCAL.scope_id, GLOBAL.scope_id]
        assert [s.scope_id for s in await client.larger(scopes[0])] == [GLOBAL.scope_id]
        lease = await client.alloc(scopes[0], max_addresses=2, max_lifetime=3600)
        assert len(lease.addresses) == 2 and all(a in scopes[0] for a in lease.addresses)
        assert all(FIRST <= a <= IPv4Address("239.192.1.3") for a in lease.addresses)
        assert lease.server_id == SERVER_ID and lease.lifetime == 3600
        (held,) = loop.core.leases()
        assert held.lease_id == lease.lease_id

        await trio.sleep(1800)
        renewed = await client.change_lifetime(lease, 3600, 7200)
        assert renewed.addresses == lease.addresses and renewed.end > lease.end
        assert renewed.end == pytest.approx(loop.core.leases()[0].end, abs=1)

        await client.release(renewed)
        assert loop.core.leases() == []
        with pytest.raises(MadcapError) as caught:
            await client.release(renewed)
        assert caught.value.code == ErrorCode.LEASE_ID_NOT_RECOGNIZED


async def test_server_core_a_lost_ack_is_answered_again_with_the_same_lease(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with real_server(drop=1) as (loop, client):
        start = trio.current_time()
        lease = await client.alloc(ORG_LOCAL)
        assert trio.current_time() - start == 4.0  # the t+4 copy got the cached answer
        assert loop.requests == 2
        (held,) = loop.core.leases()  # §2.1.4: not executed twice
        assert held.ranges == lease.ranges


async def test_server_core_naks_what_it_cannot_do(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with real_server() as (_, client):
        with pytest.raises(MadcapError) as caught:
            await client.alloc(ORG_LOCAL, min_addresses=5, max_addresses=6)
        assert caught.value.code == ErrorCode.VALID_REQUEST_NOT_COMPLETED
        assert caught.value.option == OptionCode.NUMBER_OF_ADDRESSES
        with pytest.raises(MadcapError) as caught:
            await client.alloc(ORG_LOCAL, min_lifetime=2 * 86400, max_lifetime=3 * 86400)
        assert caught.value.option == OptionCode.MINIMUM_LEASE_TIME


async def test_server_core_retry_after_until_masc_grants_space(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with real_server() as (loop, client):
        with pytest.raises(TryLater) as caught:
            await client.alloc(GLOBAL, try_later=True)
        pending = caught.value
        assert pending.retry_at == pytest.approx(wall() + 600, abs=1)
        loop.core.set_grants("Global", [GRANT], now=wall())
        await trio.sleep(pending.retry_at - wall())
        lease = await client.retry(pending)
        assert lease.lease_id == pending.lease_id
        assert all(a in GRANT.prefix for a in lease.addresses)
