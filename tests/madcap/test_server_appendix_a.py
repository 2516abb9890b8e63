"""RFC 2730 Appendix A, replayed against the server core: A.1 scope list discovery by two
servers, A.2 multicast discovery and allocation (one server selected), A.3 lease extension
halfway through, A.4 release, A.5 unicast allocation.  Bytes in, bytes out, explicit times;
each step checks exactly the options the appendix lists."""

from __future__ import annotations

from ipaddress import IPv4Network

from masc.madcap.constants import MessageType
from masc.madcap.messages import Message, Options, ScopeName
from masc.madcap.server import Grant, MadcapServer, ServerSettings

from .server_kit import (
    GLOBAL,
    HOUR,
    LOCAL_GROUP,
    NOW,
    OTHER_SERVER,
    SCOPES,
    SERVER_ID,
    Exchange,
    discover,
    getinfo,
    lid,
    make_server,
    release,
    renew,
    request,
    send,
)

LEASE = lid(0xA2)
DAY = 24 * HOUR


def two_servers() -> tuple[MadcapServer, MadcapServer]:
    """Two servers of one domain, each with its own part of the global space (RFC 2908 §3:
    no two MAASs allocate the same address)."""
    selected = make_server()
    selected.set_grants(
        "global", [Grant(IPv4Network("233.252.0.0/25"), NOW + 30 * DAY, True)], now=NOW
    )
    other = MadcapServer(ServerSettings(server_id=OTHER_SERVER), SCOPES, now=NOW)
    other.set_grants(
        "global", [Grant(IPv4Network("233.252.0.128/25"), NOW + 30 * DAY, True)], now=NOW
    )
    return selected, other


def test_appendix_a_1_scope_list_discovery() -> None:
    # Multicast GETINFO to the Local Scope server address, with the Lease Identifier, an
    # Option Request List naming the Multicast Scope List and Requested Language "en".
    ask = getinfo(0x1111, lid(0xA1), orl=(9,), language="en")
    selected, other = two_servers()
    answers: list[Exchange] = [
        send(selected, ask, group=LOCAL_GROUP),
        send_other(other, ask),
    ]
    for got in answers:
        assert got.kind == MessageType.ACK
        assert got.reply is not None and got.reply.xid == 0x1111
        o = got.options
        assert o.lease_id == lid(0xA1)
        assert o.scope_list is not None
        # "with one name per scope (the one that most closely matches the language tag)"
        assert all(len(entry.names) == 1 for entry in o.scope_list)
        assert o.scope_list[1].names == (ScopeName("en", "Organization Local", True),)
    assert {a.options.server_id for a in answers} == {SERVER_ID, OTHER_SERVER}


def send_other(server: MadcapServer, msg: Message, *, now: float = NOW) -> Exchange:
    """The second server, reached on the Local Scope server address too."""
    return send(server, msg, group=LOCAL_GROUP, now=now, server_id=OTHER_SERVER)


def test_appendix_a_2_to_a_5_allocation_extension_release_and_unicast_allocation() -> None:
    selected, other = two_servers()

    # A.2: DISCOVER with Lease Time, Lease Identifier and Multicast Scope (global), for the
    # next two hours, multicast to the Local Scope server address.
    ask = discover(0x2001, LEASE, scope=GLOBAL.scope_id, lease_time=7200)
    offers = [send(selected, ask, group=LOCAL_GROUP), send_other(other, ask)]
    for offer in offers:
        assert offer.kind == MessageType.OFFER
        o = offer.options
        # "These packets contain the Lease Time, Server Identifier, Lease Identifier, and
        # Multicast Scope options" (plus, from us, the addresses held).
        assert (o.lease_time, o.lease_id, o.scope) == (7200, LEASE, GLOBAL.scope_id)
    offered = offers[0]

    # The REQUEST carries the DISCOVER's options plus the selected Server Identifier.
    choose = request(0x2002, LEASE, scope=GLOBAL.scope_id, lease_time=7200, server_id=SERVER_ID)
    now = NOW + 2
    ack = send(selected, choose, group=LOCAL_GROUP, now=now)
    dropped = send_other(other, choose, now=now)
    assert dropped.reply is None  # the other server "forget[s] about the whole exchange"
    assert other.next_deadline() is None
    assert other.reservations() == []
    assert ack.kind == MessageType.ACK
    # "an ACK packet containing the options included in the OFFER packet, as well as a List
    # of Address Ranges option listing the address allocated"
    assert ack.options == Options(
        lease_time=7200,
        server_id=SERVER_ID,
        lease_id=LEASE,
        scope=GLOBAL.scope_id,
        ranges=offered.options.ranges,
    )
    (lease,) = ack.outcome.saved
    assert (lease.start, lease.end) == (now, now + 7200)

    # A.3: halfway through, a unicast RENEW with Lease Time two hours and the same Lease
    # Identifier: the lease now ends two hours from the current time.
    halfway = now + HOUR
    extended = send(selected, renew(0x3001, LEASE, lease_time=7200), now=halfway)
    assert extended.options == Options(
        lease_time=7200,
        server_id=SERVER_ID,
        lease_id=LEASE,
        scope=GLOBAL.scope_id,
        ranges=offered.options.ranges,
    )
    assert extended.outcome.saved[0].end == halfway + 7200 == now + 3 * HOUR

    # A.4: half an hour later, RELEASE with the Lease Identifier: ACK with Server Identifier
    # and Lease Identifier.
    later = halfway + HOUR / 2
    released = send(selected, release(0x4001, LEASE), now=later)
    assert released.options == Options(server_id=SERVER_ID, lease_id=LEASE)
    assert released.outcome.deleted == (LEASE,)
    assert selected.leases() == []

    # A.5: later still, a unicast REQUEST with Lease Time, a new Lease Identifier and the
    # Multicast Scope to the server that worked before.
    again = request(0x5001, lid(0xA5), scope=GLOBAL.scope_id, lease_time=7200)
    final = send(selected, again, now=later + HOUR)
    assert final.kind == MessageType.ACK
    o = final.options
    assert (o.lease_time, o.lease_id, o.scope, o.server_id) == (
        7200,
        lid(0xA5),
        GLOBAL.scope_id,
        SERVER_ID,
    )
    assert o.ranges is not None and len(final.addresses) == 1
    # The released address was free at once (§2.2.8): the same one comes back.
    assert final.addresses == offered.addresses
