"""The server core under hostile or unusual traffic: replies that must fit one datagram
(RFC 2730 §2.1, §3.11), requests of the other address family for a held lease, bounded
memory under floods of fresh Lease Identifiers (§2.1.4 response cache, §2.2.3 offers,
§2.13.2 Retry-After transactions), and demand reported to the daemon once per need."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv6Address

from masc.madcap.constants import ErrorCode, Feature, MessageType, OptionCode
from masc.madcap.messages import AddressCount, FeatureList, ScopeName
from masc.madcap.pool import choose
from masc.madcap.scopes import Scope
from masc.madcap.server import MAX_DATAGRAM

from .server_kit import (
    GLOBAL,
    NOW,
    ORG,
    TINY,
    A,
    discover,
    getinfo,
    granted,
    lid,
    make_server,
    renew,
    request,
    send,
)

RETRY = FeatureList(supported=(int(Feature.RETRY_AFTER),))

# 32768 addresses of which every other one is excluded: 16384 one-address free blocks.
FRAGMENTED = Scope(
    name="fragmented",
    first=A("239.192.0.0"),
    last=A("239.195.255.255"),
    names=(ScopeName("en", "fragmented"),),
    ranges=((A("239.192.0.0"), A("239.192.127.255")),),
    exclusions=tuple((A("239.192.0.1") + 2 * i,) * 2 for i in range(16384)),
)
V6 = Scope(
    name="v6",
    first=IPv6Address("ff15::"),
    last=IPv6Address("ff15::ffff"),
    names=(ScopeName("en", "v6"),),
    ranges=((IPv6Address("ff15::10"), IPv6Address("ff15::30")),),
)


# --- replies fit one datagram -----------------------------------------------------------------


def test_s3_11_choose_bounds_the_number_of_blocks() -> None:
    free = tuple((i * 10, i * 10) for i in range(20))
    assert choose(free, 1, 15, max_pieces=5) == tuple((i * 10, i * 10) for i in range(5))
    assert choose(free, 6, 15, max_pieces=5) is None
    assert choose(((0, 99),), 50, 50, max_pieces=1) == ((0, 49),)


def test_s3_11_a_fragmented_pool_gives_what_one_ack_can_carry() -> None:
    """Asking for 20000 addresses where only single addresses are free: the ACK carries as
    many ranges as fit one UDP datagram (it used to raise EncodeError out of
    handle_datagram, with the lease held in memory but never saved)."""
    server = make_server((FRAGMENTED,))
    ask = request(1, lid(1), scope=FRAGMENTED.scope_id, addresses=AddressCount(1, 20000))
    got = send(server, ask)
    assert got.kind == MessageType.ACK
    assert got.outcome.reply is not None and len(got.outcome.reply) <= MAX_DATAGRAM
    assert 10_000 < len(got.addresses) < 16_384
    assert [lease.lease_id for lease in got.outcome.saved] == [lid(1)]
    # A minimum that no datagram-sized answer reaches is error 0 naming option 7; nothing
    # is held for it.
    ask = request(2, lid(2), scope=FRAGMENTED.scope_id, addresses=AddressCount(15000, 15000))
    got = send(server, ask)
    assert got.nak(ErrorCode.VALID_REQUEST_NOT_COMPLETED, OptionCode.NUMBER_OF_ADDRESSES)
    assert lid(2) not in {lease.lease_id for lease in server.leases()}


def test_s3_11_an_offer_from_a_fragmented_pool_fits_one_datagram() -> None:
    server = make_server((FRAGMENTED,))
    ask = discover(1, lid(1), scope=FRAGMENTED.scope_id, addresses=AddressCount(1, 20000))
    got = send(server, ask)
    assert got.kind == MessageType.OFFER
    assert got.outcome.reply is not None and len(got.outcome.reply) <= MAX_DATAGRAM


# --- the other address family -----------------------------------------------------------------


def test_s2_2_4_request_of_the_other_family_for_a_held_lease_is_invalid_request() -> None:
    """A REQUEST in the IPv6 family with the Lease Identifier of an IPv4 lease: NAK 1 (it
    used to raise EncodeError out of handle_datagram: the IPv4 scope in an IPv6 ACK)."""
    server = make_server((ORG, GLOBAL, V6))
    assert send(server, request(1, lid(1))).kind == MessageType.ACK
    again = request(2, lid(1), scope=V6.scope_id, family=2)
    got = send(server, again)
    assert got.nak(ErrorCode.INVALID_REQUEST)
    # The lease is untouched and still answered in its own family.
    assert send(server, request(3, lid(1))).kind == MessageType.ACK


# --- bounded memory under floods --------------------------------------------------------------


def test_s2_1_4_the_response_cache_is_bounded_oldest_first() -> None:
    server = make_server(max_cached_replies=3)
    asks = [getinfo(i, lid(i)) for i in range(4)]
    for ask in asks:
        assert send(server, ask).outcome.event == "info"
    # The newest three are retransmissions; the oldest was evicted and runs again.
    assert send(server, asks[3]).outcome.event == "cached"
    assert send(server, asks[1]).outcome.event == "cached"
    assert send(server, asks[0]).outcome.event == "info"


def test_s2_2_3_offers_are_bounded_the_oldest_lets_its_addresses_go() -> None:
    server = make_server(max_offers=2)
    for i in range(3):
        assert send(server, discover(i, lid(i), scope=TINY.scope_id)).kind == MessageType.OFFER
    owners = {r.owner for r in server.reservations()}
    assert owners == {("offer", lid(1)), ("offer", lid(2))}
    # The first client's REQUEST still gets a lease (its hold was only a preference).
    assert send(server, request(9, lid(0), scope=TINY.scope_id)).kind == MessageType.ACK


def test_s2_13_2_retry_after_transactions_are_bounded_oldest_first() -> None:
    server = make_server(max_pending=2)
    for i in range(3):
        got = send(server, request(i, lid(i), scope=GLOBAL.scope_id, features=RETRY))
        assert got.outcome.event == "retry_after"
    # The oldest transaction is forgotten: its RENEW is an unknown lease, the others' are
    # still refused as RENEWs during a Retry-After REQUEST.
    assert send(server, renew(10, lid(0))).nak(ErrorCode.LEASE_ID_NOT_RECOGNIZED)
    assert send(server, renew(11, lid(2))).nak(
        ErrorCode.INVALID_REQUEST, OptionCode.LEASE_IDENTIFIER
    )


def test_s2_13_2_a_retried_transaction_lives_from_its_latest_retry() -> None:
    """Expiry stops at the first live entry: a retry must move its transaction to the back,
    or a later one behind it would outlive its time."""
    server = make_server(retry_interval=100.0)
    first = request(1, lid(1), scope=GLOBAL.scope_id, features=RETRY)
    assert send(server, first).outcome.event == "retry_after"
    second = request(2, lid(2), scope=GLOBAL.scope_id, features=RETRY)
    assert send(server, second, now=NOW + 10).outcome.event == "retry_after"
    retried = request(3, lid(1), scope=GLOBAL.scope_id, features=RETRY)
    assert send(server, retried, now=NOW + 50).outcome.event == "retry_after"
    later = NOW + 10 + 200 + 1  # lid(2)'s transaction is over, lid(1)'s is not
    assert send(server, renew(4, lid(2)), now=later).nak(ErrorCode.LEASE_ID_NOT_RECOGNIZED)
    assert send(server, renew(5, lid(1)), now=later).nak(ErrorCode.INVALID_REQUEST)


# --- demand ------------------------------------------------------------------------------------


def test_rfc2908_one_clients_shortfall_is_demanded_once() -> None:
    """The client's DISCOVER retransmissions (§2.3: t, t+4, t+12, t+28), its REQUEST and
    its retries after a Retry-After ACK are one need of 8 addresses: the daemon is asked
    for 8, not 8 per message (each `request` adds to what the daemon claims)."""
    server = make_server()
    wanted = AddressCount(1, 8)
    probe = discover(1, lid(1), scope=GLOBAL.scope_id, addresses=wanted)
    total = sum(send(server, probe, now=NOW + t).outcome.demand for t in (0, 4, 12, 28))
    for xid, t in ((2, 30), (3, 630)):
        ask = request(xid, lid(1), scope=GLOBAL.scope_id, addresses=wanted, features=RETRY)
        got = send(server, ask, now=NOW + t)
        assert got.outcome.event == "retry_after"
        total += got.outcome.demand
    assert total == 8
    # A bigger need for the same lease adds only the difference; another client's counts.
    bigger = request(4, lid(1), scope=GLOBAL.scope_id, addresses=AddressCount(1, 12))
    assert send(server, bigger, now=NOW + 640).outcome.demand == 4
    other = request(5, lid(2), scope=GLOBAL.scope_id, addresses=wanted)
    assert send(server, other, now=NOW + 640).outcome.demand == 8


def test_rfc2908_a_client_still_short_is_demanded_again_after_the_window() -> None:
    server = make_server(retry_interval=100.0)  # window: 2 x max(60, 100) s
    ask = request(1, lid(1), scope=GLOBAL.scope_id)
    assert send(server, ask).outcome.demand == 1
    again = request(2, lid(1), scope=GLOBAL.scope_id)
    assert send(server, again, now=NOW + 199).outcome.demand == 0
    third = request(3, lid(1), scope=GLOBAL.scope_id)
    assert send(server, third, now=NOW + 200).outcome.demand == 1


def test_demand_needs_a_masc_scope_and_a_real_shortfall() -> None:
    server = granted(make_server())
    assert send(server, request(1, lid(1), scope=GLOBAL.scope_id)).outcome.demand == 0
    full = make_server()
    for i in range(4):
        assert send(full, request(i, lid(i), scope=TINY.scope_id)).kind == MessageType.ACK
    assert send(full, request(9, lid(9), scope=TINY.scope_id)).outcome.demand == 0


# --- timers ------------------------------------------------------------------------------------


def test_next_deadline_follows_lease_changes() -> None:
    """next_deadline keeps the earliest lease timer without rescanning every lease: it
    must still move when that lease is renewed, released or ends."""
    server = make_server(extra_allocation_time=10.0)
    short = request(1, lid(1), lease_time=100)
    long = request(2, lid(2), lease_time=1000)
    assert send(server, short).kind == MessageType.ACK
    assert send(server, long).kind == MessageType.ACK
    assert server.next_deadline() == NOW + 100
    assert send(server, renew(3, lid(1), lease_time=500)).kind == MessageType.ACK
    assert server.next_deadline() == NOW + 500
    assert send(server, renew(4, lid(1), lease_time=2000)).kind == MessageType.ACK
    assert server.next_deadline() == NOW + 1000
    assert server.handle_timer(now=NOW + 1000).event == "expired"
    assert server.next_deadline() == NOW + 1000 + 20  # lid(2)'s quarantine


# --- restart with a changed configuration -----------------------------------------------------


def test_restart_a_renamed_scope_keeps_its_leases_renewable() -> None:
    """The operator renames "org" (its name is also the zone name clients see): the stored
    leases name the old scope.  They used to be NAK 0 on every RENEW (and their REQUEST
    retransmission too) until they ran out; they belong to the zone holding them."""
    server = make_server()
    first = send(server, request(1, lid(1), lease_time=600))
    assert first.kind == MessageType.ACK
    renamed = replace(ORG, name="Organisation", names=(ScopeName("en", "Organisation"),))
    tiny = replace(TINY, inside=("Organisation",))
    restarted = make_server((renamed, GLOBAL, tiny), leases=tuple(server.leases()))
    again = send(restarted, renew(2, lid(1), lease_time=1200))
    assert again.kind == MessageType.ACK
    assert again.addresses == first.addresses
    assert [lease.scope for lease in again.outcome.saved] == ["Organisation"]
    # A lease in no configured zone keeps its addresses but cannot be renewed.
    orphan = make_server((GLOBAL,), leases=tuple(server.leases()))
    assert send(orphan, renew(3, lid(1))).nak(ErrorCode.VALID_REQUEST_NOT_COMPLETED)
