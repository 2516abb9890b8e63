"""Properties of the MADCAP server core under random traffic (hypothesis, derandomized):

* no two reservations of different Lease Identifiers ever overlap in address and padded time
  (RFC 2730 §2.12 EXTRA-ALLOCATION-TIME on both sides), across random REQUEST / DISCOVER /
  RENEW / RELEASE / retransmissions / grant changes / timer runs;
* every lease granted or renewed lasts at most the scope's maximum from the moment of the
  ACK, lies in the scope's allocatable space, and (masc scopes) ends by the expiry of the
  grants holding it;
* every reply conforms to Table 5 as a client checks it (rules.client_check);
* ``handle_datagram`` never raises on arbitrary or mutated bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from masc.madcap import codec, rules
from masc.madcap.constants import AddressFamily, Feature, MessageType
from masc.madcap.messages import AddressCount, FeatureList, Message, Options, ScopeName
from masc.madcap.pool import blocks_of, intersect, normalise, subtract
from masc.madcap.scopes import Scope
from masc.madcap.server import Arrival, Grant, MadcapServer, ServerSettings

from .server_kit import CLIENT, LOCAL_GROUP, NOW, OTHER_SERVER, SERVER_ID, A, lid

SETTINGS = ServerSettings(
    server_id=SERVER_ID,
    response_cache_interval=60.0,
    offer_hold=60.0,
    extra_allocation_time=100.0,
    retry_interval=50.0,
)
STATIC = Scope(
    name="static",
    first=A("239.192.0.0"),
    last=A("239.192.0.255"),
    names=(ScopeName("en", "static"),),
    ranges=((A("239.192.0.1"), A("239.192.0.10")),),
    exclusions=((A("239.192.0.4"), A("239.192.0.5")),),
    default_lease=300.0,
    max_lease=1000.0,
)
MASC = Scope(
    name="masc",
    first=A("233.252.0.0"),
    last=A("233.252.0.255"),
    names=(ScopeName("en", "masc"),),
    source="masc",
    exclusions=((A("233.252.0.9"), A("233.252.0.9")),),
    default_lease=300.0,
    max_lease=2000.0,
)
PREFIXES = [IPv4Network(f"233.252.0.{8 * i}/29") for i in range(3)]
SCOPES = {"static": STATIC, "masc": MASC}
LIDS = 3

FAST = settings(
    max_examples=200,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

ops = st.one_of(
    st.tuples(st.just("advance"), st.sampled_from([0.0, 1.0, 30.0, 61.0, 150.0, 400.0])),
    st.tuples(
        st.just("request"),
        st.integers(0, LIDS - 1),
        st.sampled_from(["static", "masc"]),
        st.fixed_dictionaries(
            {},
            optional={
                "count": st.tuples(st.integers(1, 4), st.integers(0, 3)),
                "lease_time": st.integers(0, 3000),
                "start": st.integers(-50, 600),
                "max_start": st.integers(-10, 300),
                "min_lease": st.integers(0, 1500),
                "retry": st.booleans(),
                "multicast": st.sampled_from([SERVER_ID, OTHER_SERVER]),
            },
        ),
    ),
    st.tuples(
        st.just("discover"),
        st.integers(0, LIDS - 1),
        st.sampled_from(["static", "masc"]),
        st.fixed_dictionaries(
            {},
            optional={
                "count": st.tuples(st.integers(1, 4), st.integers(0, 3)),
                "lease_time": st.integers(0, 3000),
                "start": st.integers(-50, 600),
            },
        ),
    ),
    st.tuples(
        st.just("renew"),
        st.integers(0, LIDS - 1),
        st.fixed_dictionaries(
            {},
            optional={
                "lease_time": st.integers(0, 3000),
                "start": st.integers(-50, 600),
                "min_lease": st.integers(0, 1500),
            },
        ),
    ),
    st.tuples(st.just("release"), st.integers(0, LIDS - 1)),
    st.tuples(st.just("retransmit")),
    st.tuples(st.just("timer")),
    st.tuples(
        st.just("grants"),
        st.lists(
            st.tuples(st.integers(0, 2), st.booleans(), st.integers(-100, 3000)),
            max_size=3,
            unique_by=lambda g: g[0],
        ),
    ),
)


@dataclass
class World:
    server: MadcapServer
    now: float
    xid: int = 1
    last: tuple[bytes, Arrival] | None = None
    grants: tuple[Grant, ...] = ()


def build(world: World, op: tuple[Any, ...]) -> tuple[Message, Arrival] | None:
    kind = op[0]
    now = int(world.now)
    world.xid += 1
    arrival = Arrival(CLIENT)
    if kind in ("request", "discover"):
        _, n, scope_name, extra = op
        options: dict[str, Any] = {"lease_id": lid(n), "scope": SCOPES[scope_name].scope_id}
        if "count" in extra:
            low, more = extra["count"]
            options["addresses"] = AddressCount(low, low + more)
        if "lease_time" in extra:
            options["lease_time"] = extra["lease_time"]
        if "start" in extra:
            options["start_time"] = now + extra["start"]
            options["current_time"] = now
        if extra.get("max_start") is not None:
            options["maximum_start_time"] = now + extra["max_start"]
            options["current_time"] = now
        if "min_lease" in extra:
            options["minimum_lease_time"] = extra["min_lease"]
        if extra.get("retry"):
            options["features"] = FeatureList(supported=(Feature.RETRY_AFTER,))
        msg_type = MessageType.REQUEST
        if kind == "discover":
            msg_type = MessageType.DISCOVER
            arrival = Arrival(CLIENT, LOCAL_GROUP)
        elif "multicast" in extra:
            options["server_id"] = extra["multicast"]
            arrival = Arrival(CLIENT, LOCAL_GROUP)
        return Message(msg_type, AddressFamily.IPV4, world.xid, Options(**options)), arrival
    if kind == "renew":
        _, n, extra = op
        options = {"lease_id": lid(n)}
        if "lease_time" in extra:
            options["lease_time"] = extra["lease_time"]
        if "start" in extra:
            options["start_time"] = now + extra["start"]
            options["current_time"] = now
        if "min_lease" in extra:
            options["minimum_lease_time"] = extra["min_lease"]
        return Message(
            MessageType.RENEW, AddressFamily.IPV4, world.xid, Options(**options)
        ), arrival
    if kind == "release":
        msg = Message(
            MessageType.RELEASE, AddressFamily.IPV4, world.xid, Options(lease_id=lid(op[1]))
        )
        return msg, arrival
    return None


def allowed_space(world: World, scope: Scope, *, renewing: bool) -> tuple[tuple[int, int], ...]:
    if scope.source == "static":
        ranges = normalise((int(a), int(b)) for a, b in scope.ranges)
    else:
        ranges = normalise(
            (int(g.prefix.network_address), int(g.prefix.broadcast_address))
            for g in world.grants
            if g.expires > world.now and (g.active or renewing)
        )
        ranges = intersect(ranges, ((int(scope.first), int(scope.last)),))
    excluded = normalise((int(a), int(b)) for a, b in scope.exclusions)
    return subtract(ranges, excluded)


def check_invariants(world: World, op: tuple[Any, ...], outcome: Any) -> None:
    held = world.server.reservations()
    for i, a in enumerate(held):
        for b in held[i + 1 :]:
            if a.owner[1] == b.owner[1]:  # type: ignore[index]
                continue  # one Lease Identifier's offer may overlap its own ended lease
            overlap = a.start < b.end and b.start < a.end and intersect(a.blocks, b.blocks)
            assert not overlap, (op, a, b)
    for lease in outcome.saved:
        scope = SCOPES[lease.scope]
        assert lease.end - max(lease.start, world.now) <= scope.max_lease
        assert lease.end > world.now
        blocks = blocks_of(lease.ranges)
        space = allowed_space(world, scope, renewing=op[0] == "renew")
        assert not subtract(blocks, space), (op, lease)
        if scope.source == "masc":
            for grant in world.grants:
                prefix = ((int(grant.prefix.network_address), int(grant.prefix.broadcast_address)),)
                if intersect(prefix, blocks):
                    assert lease.end <= grant.expires, (op, lease, grant)


@FAST
@given(st.data())
def test_s2_12_no_two_reservations_overlap_and_leases_stay_within_limits(
    data: st.DataObject,
) -> None:
    world = World(MadcapServer(SETTINGS, list(SCOPES.values()), now=NOW), NOW)
    for _ in range(data.draw(st.integers(5, 60), label="steps")):
        op = data.draw(ops)
        held = sorted({lease.lease_id for lease in world.server.leases()})
        if op[0] in ("renew", "release") and held and data.draw(st.booleans()):
            # Mostly aim at a Lease Identifier that holds a lease.
            n = int.from_bytes(data.draw(st.sampled_from(held))[1:], "big")
            op = (op[0], n, *op[2:])
        step(world, op)
    deadline = world.server.next_deadline()
    assert deadline is None or deadline >= NOW


def step(world: World, op: tuple[Any, ...]) -> None:
    kind = op[0]
    if kind == "advance":
        world.now += op[1]
        return
    if kind == "timer":
        outcome = world.server.handle_timer(now=world.now)
        check_invariants(world, op, outcome)
        return
    if kind == "grants":
        world.grants = tuple(
            Grant(PREFIXES[i], world.now + expires, active) for i, active, expires in op[1]
        )
        world.server.set_grants("masc", world.grants, now=world.now)
        return
    if kind == "retransmit":
        if world.last is None:
            return
        data, arrival = world.last
    else:
        built = build(world, op)
        assert built is not None
        msg, arrival = built
        data = codec.encode(msg)
        world.last = (data, arrival)
    outcome = world.server.handle_datagram(data, arrival=arrival, now=world.now)
    event(f"{kind}: {outcome.event}")
    if outcome.reply is not None:
        reply = codec.decode(outcome.reply)
        request = codec.decode(data)
        assert reply.xid == request.xid
        assert rules.client_check(reply, answering=MessageType(request.msg_type)), reply
    check_invariants(world, op, outcome)


# --- totality -------------------------------------------------------------------------------------


def _server() -> MadcapServer:
    server = MadcapServer(SETTINGS, list(SCOPES.values()), now=NOW)
    server.set_grants("masc", [Grant(PREFIXES[0], NOW + 1000, True)], now=NOW)
    return server


@settings(max_examples=500, derandomize=True, deadline=None)
@given(st.binary(max_size=200), st.booleans())
def test_handle_datagram_never_raises_on_arbitrary_bytes(data: bytes, multicast: bool) -> None:
    group = LOCAL_GROUP if multicast else None
    outcome = _server().handle_datagram(data, arrival=Arrival(CLIENT, group), now=NOW)
    if outcome.reply is not None:
        assert codec.decode(outcome.reply).msg_type == MessageType.NAK


SEEDS = [
    Message(
        MessageType.REQUEST,
        AddressFamily.IPV4,
        1,
        Options(
            lease_id=lid(1),
            scope=MASC.scope_id,
            lease_time=100,
            addresses=AddressCount(1, 3),
            start_time=int(NOW) + 10,
            current_time=int(NOW),
            features=FeatureList(supported=(1,)),
        ),
    ),
    Message(
        MessageType.GETINFO,
        AddressFamily.IPV4,
        2,
        Options(lease_id=lid(2), option_request_list=(9, 17, 11, 12), language="en"),
    ),
    Message(
        MessageType.DISCOVER, AddressFamily.IPV4, 3, Options(lease_id=lid(3), scope=STATIC.scope_id)
    ),
    Message(MessageType.RENEW, AddressFamily.IPV4, 4, Options(lease_id=lid(1), lease_time=5)),
    Message(MessageType.RELEASE, AddressFamily.IPV4, 5, Options(lease_id=lid(1))),
]


@settings(max_examples=500, derandomize=True, deadline=None)
@given(
    st.sampled_from(SEEDS),
    st.lists(st.tuples(st.integers(0, 300), st.integers(0, 255)), min_size=1, max_size=4),
    st.booleans(),
)
def test_handle_datagram_never_raises_on_mutated_requests(
    seed: Message, flips: list[tuple[int, int]], multicast: bool
) -> None:
    data = bytearray(codec.encode(seed))
    for position, value in flips:
        data[position % len(data)] = value
    server = _server()
    group = LOCAL_GROUP if multicast else None
    server.handle_datagram(codec.encode(SEEDS[0]), arrival=Arrival(CLIENT), now=NOW)
    outcome = server.handle_datagram(bytes(data), arrival=Arrival(CLIENT, group), now=NOW + 1)
    if outcome.reply is not None:
        codec.decode(outcome.reply)  # whatever we send decodes
