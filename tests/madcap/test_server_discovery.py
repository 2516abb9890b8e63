"""GETINFO (RFC 2730 §2.2.1, §3.10; RFC 2907 §3), DISCOVER/OFFER (§2.2.2, §2.2.3), the
multicast REQUEST that completes them (§2.2.4) and which multicast messages a server answers
(§2.10, §2.11)."""

from __future__ import annotations

from masc.madcap.constants import ErrorCode, MessageType, OptionCode
from masc.madcap.messages import (
    AddressCount,
    FeatureList,
    ScopeEntry,
    ScopeName,
)

from .server_kit import (
    GLOBAL,
    HOUR,
    LOCAL_GROUP,
    NOW,
    ORG,
    OTHER_SERVER,
    SERVER_ID,
    TINY,
    A,
    discover,
    getinfo,
    granted,
    lid,
    make_server,
    release,
    renew,
    request,
    send,
)

ALL = AddressCount(4, 4)


# --- §2.2.1 GETINFO --------------------------------------------------------------------------


def test_s2_2_1_getinfo_ack_carries_server_id_lease_id_and_the_scope_list() -> None:
    got = send(make_server(), getinfo(9, lid(1)))
    assert got.kind == MessageType.ACK
    o = got.options
    assert (o.server_id, o.lease_id) == (SERVER_ID, lid(1))
    assert o.scope_list is not None
    # §3.10: smallest first: local inside org inside global.
    assert [e.scope_id for e in o.scope_list] == [TINY.first, ORG.first, GLOBAL.first]
    assert o.scope_list[0] == ScopeEntry(TINY.first, TINY.last, 16, (ScopeName("en", "Local"),))
    assert o.nesting is None  # not asked for
    assert got.outcome.event == "info"


def test_s3_10_without_requested_language_all_names_are_returned() -> None:
    got = send(make_server(), getinfo(1, lid(1)))
    assert got.options.scope_list is not None
    assert got.options.scope_list[1].names == ORG.names


def test_s3_10_requested_language_returns_at_most_one_name_per_zone() -> None:
    got = send(make_server(), getinfo(1, lid(1), language="DE"))
    assert got.options.scope_list is not None
    org = got.options.scope_list[1]
    assert org.names == (ScopeName("de", "Organisation"),)
    assert all(len(entry.names) <= 1 for entry in got.options.scope_list)


def test_rfc2907_s3_3_nesting_state_comes_with_the_scope_list_when_asked() -> None:
    got = send(make_server(), getinfo(1, lid(1), orl=(9, 17)))
    nesting = got.options.nesting
    assert nesting is not None
    # Rows/columns in the scope list's order: local, org, global.
    assert nesting.rows == (
        (False, True, True),
        (False, False, True),
        (False, False, False),
    )


def test_rfc2907_s3_3_nesting_state_never_without_the_scope_list() -> None:
    got = send(make_server(), getinfo(1, lid(1), orl=(17,)))
    assert got.kind == MessageType.ACK
    assert got.options.nesting is None and got.options.scope_list is None


def test_s2_2_1_getinfo_current_time_and_feature_list_when_asked() -> None:
    got = send(make_server(), getinfo(1, lid(1), orl=(11, 12)))
    assert got.options.current_time == int(NOW)
    assert got.options.features == FeatureList(supported=(1,))
    assert got.options.scope_list is None


def test_s2_2_1_getinfo_options_not_recognized_are_just_left_out() -> None:
    got = send(make_server(), getinfo(1, lid(1), orl=(1, 2000)))
    assert got.kind == MessageType.ACK and got.options.lease_time is None


def test_s2_2_1_getinfo_without_option_request_list_is_invalid_request() -> None:
    got = send(make_server(), getinfo(1, lid(1), orl=None))  # type: ignore[arg-type]
    assert got.nak(ErrorCode.INVALID_REQUEST, OptionCode.OPTION_REQUEST_LIST)


def test_s2_11_multicast_getinfo_is_answered_on_the_local_scope_address() -> None:
    assert send(make_server(), getinfo(1, lid(1)), group=LOCAL_GROUP).kind == MessageType.ACK


def test_s2_11_multicast_getinfo_on_another_group_is_ignored() -> None:
    got = send(make_server(), getinfo(1, lid(1)), group=ORG.server_address)
    assert got.reply is None and got.outcome.event == "ignored"


# --- §2.2.2 / §2.2.3 DISCOVER -> OFFER -------------------------------------------------------


def test_s2_2_3_offer_carries_lease_time_scope_server_id_lease_id_and_ranges() -> None:
    got = send(make_server(), discover(3, lid(1), lease_time=7200), group=LOCAL_GROUP)
    assert got.kind == MessageType.OFFER
    o = got.options
    assert (o.lease_time, o.scope, o.server_id, o.lease_id) == (
        7200,
        ORG.scope_id,
        SERVER_ID,
        lid(1),
    )
    assert len(got.addresses) == 1
    assert got.outcome.saved == ()  # an offer is not a lease
    assert got.outcome.event == "offer"


def test_s2_2_3_offered_addresses_are_held_from_other_clients() -> None:
    server = make_server()
    send(server, discover(1, lid(1), scope=TINY.scope_id, addresses=ALL), group=LOCAL_GROUP)
    other = send(server, request(2, lid(2), scope=TINY.scope_id))
    assert other.nak(ErrorCode.VALID_REQUEST_NOT_COMPLETED)


def test_s2_2_3_the_hold_ends_after_offer_hold() -> None:
    server = make_server(offer_hold=60.0)
    send(server, discover(1, lid(1), scope=TINY.scope_id, addresses=ALL), group=LOCAL_GROUP)
    assert server.next_deadline() == NOW + 60
    server.handle_timer(now=NOW + 60)
    assert server.next_deadline() is None
    other = send(server, request(2, lid(2), scope=TINY.scope_id), now=NOW + 60)
    assert other.kind == MessageType.ACK


def test_s2_2_3_multicast_request_naming_another_server_drops_the_offer_silently() -> None:
    server = make_server()
    send(server, discover(1, lid(1), scope=TINY.scope_id, addresses=ALL), group=LOCAL_GROUP)
    chosen_elsewhere = request(2, lid(1), scope=TINY.scope_id, server_id=OTHER_SERVER)
    got = send(server, chosen_elsewhere, group=LOCAL_GROUP)
    assert got.reply is None and got.outcome.event == "ignored"
    assert "dropped" in got.outcome.detail
    assert server.next_deadline() is None
    assert send(server, request(3, lid(2), scope=TINY.scope_id)).kind == MessageType.ACK


def test_s2_2_4_multicast_request_naming_us_commits_the_offered_addresses() -> None:
    server = make_server()
    offer = send(server, discover(1, lid(1), addresses=AddressCount(2, 2)), group=LOCAL_GROUP)
    chosen = request(2, lid(1), addresses=AddressCount(2, 2), server_id=SERVER_ID)
    ack = send(server, chosen, group=LOCAL_GROUP)
    assert ack.kind == MessageType.ACK
    assert ack.addresses == offer.addresses
    assert ack.outcome.saved[0].end == NOW + HOUR


def test_s2_2_4_request_after_the_hold_still_allocates() -> None:
    server = make_server()
    send(server, discover(1, lid(1)), group=LOCAL_GROUP)
    ack = send(server, request(2, lid(1), server_id=SERVER_ID), group=LOCAL_GROUP, now=NOW + 61)
    assert ack.kind == MessageType.ACK


def test_table_5_multicast_request_without_server_id_is_invalid_request() -> None:
    got = send(make_server(), request(1, lid(1)), group=LOCAL_GROUP)
    assert got.nak(ErrorCode.INVALID_REQUEST, OptionCode.SERVER_IDENTIFIER)


def test_s2_2_2_offer_never_shorter_than_the_minimum_lease_time() -> None:
    # A DISCOVER we cannot satisfy is ignored ("all servers SHOULD ignore DISCOVER
    # messages that they cannot satisfy"), never answered with a shorter lease.
    server = make_server()
    ok = send(server, discover(1, lid(1), lease_time=10**6, minimum_lease_time=3600))
    assert ok.options.lease_time == 24 * HOUR
    refused = send(server, discover(2, lid(2), lease_time=10**6, minimum_lease_time=10**6))
    assert refused.reply is None and refused.outcome.event == "ignored"


def test_s2_2_2_discover_that_cannot_be_satisfied_is_ignored() -> None:
    server = make_server()
    send(server, request(1, lid(1), scope=TINY.scope_id, addresses=ALL))
    got = send(server, discover(2, lid(2), scope=TINY.scope_id), group=LOCAL_GROUP)
    assert got.reply is None


def test_s2_2_2_discover_for_a_masc_scope_without_space_reports_demand() -> None:
    got = send(make_server(), discover(1, lid(1), scope=GLOBAL.scope_id), group=LOCAL_GROUP)
    assert got.reply is None and got.outcome.demand == 1


def test_s2_2_2_discover_for_a_scope_not_served_is_ignored() -> None:
    got = send(make_server(), discover(1, lid(1), scope=A("239.1.0.0")))
    assert got.reply is None


def test_s2_2_2_repeated_discover_keeps_offering_the_same_addresses() -> None:
    server = make_server()
    first = send(server, discover(1, lid(1), addresses=AddressCount(3, 3)), group=LOCAL_GROUP)
    again = send(server, discover(2, lid(1), addresses=AddressCount(3, 3)), group=LOCAL_GROUP)
    assert again.addresses == first.addresses


def test_s2_2_8_release_after_an_offer_ends_the_hold() -> None:
    server = make_server()
    send(server, discover(1, lid(1), scope=TINY.scope_id, addresses=ALL), group=LOCAL_GROUP)
    assert send(server, release(2, lid(1))).kind == MessageType.ACK
    assert send(server, request(3, lid(2), scope=TINY.scope_id)).kind == MessageType.ACK


def test_s2_2_3_discover_with_a_future_start_offers_start_and_current_time() -> None:
    now = int(NOW)
    got = send(make_server(), discover(1, lid(1), start_time=now + 600, current_time=now))
    assert (got.options.start_time, got.options.current_time) == (now + 600, now)


# --- §2.11 which multicast DISCOVER/REQUEST a server answers ---------------------------------


def test_s2_11_any_served_scope_may_be_asked_for_on_the_local_scope_address() -> None:
    # Appendix A.2 asks for a global address on the Local Scope server address.
    server = granted(make_server())
    got = send(server, discover(1, lid(1), scope=GLOBAL.scope_id), group=LOCAL_GROUP)
    assert got.kind == MessageType.OFFER


def test_s2_11_a_scope_is_served_on_its_own_server_address() -> None:
    got = send(make_server(), discover(1, lid(1)), group=ORG.server_address)
    assert got.kind == MessageType.OFFER


def test_s2_11_an_enclosing_scope_is_served_on_a_smaller_scopes_address() -> None:
    server = granted(make_server())
    got = send(server, discover(1, lid(1), scope=GLOBAL.scope_id), group=ORG.server_address)
    assert got.kind == MessageType.OFFER


def test_s2_11_a_smaller_scope_is_not_served_on_a_larger_scopes_address() -> None:
    got = send(make_server(), discover(1, lid(1), scope=TINY.scope_id), group=ORG.server_address)
    assert got.reply is None
    req = request(2, lid(2), scope=TINY.scope_id, server_id=SERVER_ID)
    assert send(make_server(), req, group=ORG.server_address).reply is None


def test_s2_11_unknown_group_is_ignored() -> None:
    got = send(make_server(), discover(1, lid(1)), group=A("239.77.77.77"))
    assert got.reply is None


def test_s2_2_7_multicast_renew_for_a_lease_not_ours_is_ignored() -> None:
    # Local policy: RENEW and RELEASE are unicast; a multicast one for another server's
    # lease is not ours to NAK.  One for our lease is served.
    server = make_server()
    assert send(server, renew(1, lid(1)), group=LOCAL_GROUP).reply is None
    assert send(server, release(2, lid(1)), group=LOCAL_GROUP).reply is None
    send(server, request(3, lid(2)))
    assert send(server, renew(4, lid(2)), group=LOCAL_GROUP).kind == MessageType.ACK


def test_s2_2_4_unicast_request_naming_another_server_is_still_served() -> None:
    # Local policy: a unicast REQUEST was sent to us ("the Server Identifier option MAY be
    # included"); the identifier may be another of our addresses.
    got = send(make_server(), request(1, lid(1), server_id=OTHER_SERVER))
    assert got.kind == MessageType.ACK
