"""The MADCAP server core (masc.madcap.server): message validation, the response cache,
allocation by REQUEST and its options, errors.  RFC 2730 §2.1-§2.6, §2.12, §2.13, §3.

Every test feeds encoded bytes and reads the decoded reply, at explicit times.  Lifecycle
(renew/release/expiry/restart), MASC grants, discovery and Appendix A are in the sibling
test_server_*.py files.
"""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from masc.madcap import codec
from masc.madcap.constants import (
    NO_OPTION,
    AddressFamily,
    ErrorCode,
    Feature,
    MessageType,
    OptionCode,
)
from masc.madcap.messages import (
    AddressCount,
    AddressRange,
    ErrorOption,
    FeatureList,
    Message,
    Options,
)
from masc.madcap.server import ServerSettings

from .server_kit import (
    HOUR,
    NOW,
    ORG,
    SERVER_ID,
    A,
    lid,
    make_server,
    message,
    release,
    renew,
    request,
    send,
)

ORG_FREE = [A("239.192.1.16") + i for i in range(240)]  # ranges minus the exclusion


# --- §2.2.4 REQUEST -> ACK ------------------------------------------------------------------


def test_s2_2_4_request_gets_ack_with_lease_time_scope_ranges_server_id_lid_and_xid() -> None:
    server = make_server()
    got = send(server, request(7, lid(1), lease_time=7200))
    assert got.kind == MessageType.ACK
    assert got.reply is not None and got.reply.xid == 7
    o = got.options
    assert (o.lease_time, o.scope, o.server_id, o.lease_id) == (
        7200,
        ORG.scope_id,
        SERVER_ID,
        lid(1),
    )
    assert len(got.addresses) == 1
    # §2.2.5: "If no Start Time option is included, the lease is assumed to start
    # immediately"; no Feature List since the request had none (§3.13).
    assert o.start_time is None and o.features is None
    assert got.outcome.event == "granted"
    (lease,) = got.outcome.saved
    assert (lease.lease_id, lease.scope, lease.start, lease.end) == (lid(1), "org", NOW, NOW + 7200)
    assert lease.client == "127.0.11.200:40000"


def test_s2_2_4_addresses_come_from_the_ranges_minus_exclusions() -> None:
    server = make_server()
    got = send(server, request(1, lid(1), addresses=AddressCount(240, 240)))
    assert got.addresses == ORG_FREE
    assert send(server, request(2, lid(2))).nak(ErrorCode.VALID_REQUEST_NOT_COMPLETED)


def test_s2_2_4_lease_is_saved_before_the_ack_is_sent() -> None:
    # The Outcome carries the lease to store together with the reply: the shell writes it
    # first.  Two different leases never share an address.
    server = make_server()
    first = send(server, request(1, lid(1)))
    second = send(server, request(2, lid(2)))
    assert first.outcome.saved[0].ranges != second.outcome.saved[0].ranges
    assert set(first.addresses).isdisjoint(second.addresses)


def test_s2_2_4_unicast_request_for_a_scope_not_served_is_error_0_naming_the_scope() -> None:
    got = send(make_server(), request(1, lid(1), scope=A("239.1.0.0")))
    assert got.nak(ErrorCode.VALID_REQUEST_NOT_COMPLETED, OptionCode.MULTICAST_SCOPE)


def test_s2_2_4_request_for_a_lease_id_already_leased_acks_that_lease_again() -> None:
    # Local policy: after the cache forgot it (here: a new xid), never a second allocation.
    server = make_server()
    first = send(server, request(1, lid(1)))
    again = send(server, request(2, lid(1)), now=NOW + 600)
    assert again.kind == MessageType.ACK
    assert again.addresses == first.addresses
    assert again.options.lease_time == HOUR - 600
    assert again.outcome.saved == ()
    assert len(server.leases()) == 1


# --- §2.1.4 the response cache ---------------------------------------------------------------


def test_s2_1_4_retransmitted_request_gets_cached_answer_and_no_second_allocation() -> None:
    server = make_server()
    msg = request(42, lid(1))
    first = send(server, msg)
    for offset in (4.0, 12.0, 28.0):  # §2.3's retransmissions
        again = send(server, msg, now=NOW + offset)
        assert again.outcome.reply == first.outcome.reply
        assert again.outcome.event == "cached"
        assert again.outcome.saved == ()
    assert len(server.leases()) == 1


def test_s2_1_4_cache_key_is_xid_msgtype_and_lease_id() -> None:
    server = make_server()
    first = send(server, request(42, lid(1)))
    other_lid = send(server, request(42, lid(2)))
    assert other_lid.outcome.event == "granted"
    assert other_lid.addresses != first.addresses
    # Same xid and LID, another msgtype: executed (a RELEASE of that lease).
    released = send(server, release(42, lid(1)))
    assert released.outcome.event == "released"


def test_s2_1_4_after_the_interval_a_retransmission_is_a_new_message() -> None:
    server = make_server(response_cache_interval=60.0)
    msg = renew(5, lid(1), lease_time=100)
    send(server, request(1, lid(1)))
    first = send(server, msg)
    assert send(server, msg, now=NOW + 59).outcome.event == "cached"
    later = send(server, msg, now=NOW + 60)
    assert later.outcome.event == "renewed"
    assert later.outcome.reply != first.outcome.reply or later.options.lease_time == 100


def test_s2_1_4_a_nak_is_cached_too() -> None:
    server = make_server()
    msg = renew(5, lid(9))
    first = send(server, msg)
    assert first.nak(ErrorCode.LEASE_ID_NOT_RECOGNIZED)
    assert send(server, msg, now=NOW + 1).outcome.event == "cached"


def test_s2_1_4_zero_interval_caches_nothing() -> None:
    server = make_server(response_cache_interval=0.0)
    msg = request(1, lid(1))
    send(server, msg)
    assert send(server, msg, now=NOW + 1).outcome.event == "granted"  # idempotent policy
    assert len(server.leases()) == 1


def test_s2_1_4_interval_may_be_0_to_300_seconds() -> None:
    for bad in (-1.0, 301.0):
        with pytest.raises(ValueError):
            ServerSettings(server_id=SERVER_ID, response_cache_interval=bad)


# --- §3.8 Number of Addresses Requested ------------------------------------------------------


def test_s3_8_server_gives_between_minimum_and_desired() -> None:
    server = make_server()
    got = send(server, request(1, lid(1), addresses=AddressCount(2, 5)))
    assert len(got.addresses) == 5
    # 235 left: asking 200..300 gets all 235.
    got = send(server, request(2, lid(2), addresses=AddressCount(200, 300)))
    assert len(got.addresses) == 235


def test_s3_8_addresses_come_as_one_contiguous_block_when_possible() -> None:
    got = send(make_server(), request(1, lid(1), addresses=AddressCount(16, 16)))
    assert got.options.ranges == (AddressRange(A("239.192.1.16"), 16),)


def test_s3_8_minimum_above_what_is_free_is_error_0_naming_option_7() -> None:
    server = make_server()
    send(server, request(1, lid(1), addresses=AddressCount(230, 230)))
    got = send(server, request(2, lid(2), addresses=AddressCount(11, 20)))
    assert got.nak(ErrorCode.VALID_REQUEST_NOT_COMPLETED, OptionCode.NUMBER_OF_ADDRESSES)


def test_s3_8_minimum_greater_than_desired_is_invalid_request() -> None:
    got = send(make_server(), request(1, lid(1), addresses=AddressCount(3, 2)))
    assert got.nak(ErrorCode.INVALID_REQUEST, OptionCode.NUMBER_OF_ADDRESSES)


def test_s3_8_desired_zero_is_invalid_request() -> None:
    # Local policy: a request for no address at all.
    got = send(make_server(), request(1, lid(1), addresses=AddressCount(0, 0)))
    assert got.nak(ErrorCode.INVALID_REQUEST, OptionCode.NUMBER_OF_ADDRESSES)


# --- §3.17.1 exhaustion ----------------------------------------------------------------------


def test_s3_17_1_exhausted_static_scope_is_error_0_with_no_option() -> None:
    server = make_server()
    send(server, request(1, lid(1), addresses=AddressCount(240, 240)))
    got = send(server, request(2, lid(2)))
    assert got.nak(ErrorCode.VALID_REQUEST_NOT_COMPLETED, NO_OPTION)
    assert got.outcome.demand == 0  # a static scope gets nothing from MASC


def test_s3_17_1_static_scope_never_answers_retry_after() -> None:
    server = make_server()
    send(server, request(1, lid(1), addresses=AddressCount(240, 240)))
    got = send(server, request(2, lid(2), features=FeatureList(supported=(Feature.RETRY_AFTER,))))
    assert got.nak(ErrorCode.VALID_REQUEST_NOT_COMPLETED)
    assert got.options.features == FeatureList(supported=(1,))


# --- §3.2, §3.15 lease time ------------------------------------------------------------------


def test_s3_2_no_lease_time_gives_the_scope_default() -> None:
    got = send(make_server(), request(1, lid(1)))
    assert got.options.lease_time == HOUR


def test_s3_2_lease_time_never_exceeds_the_scope_maximum() -> None:
    got = send(make_server(), request(1, lid(1), lease_time=100 * 24 * 3600))
    assert got.options.lease_time == 24 * HOUR


def test_s3_15_minimum_lease_time_unmet_is_error_0() -> None:
    got = send(
        make_server(),
        request(1, lid(1), lease_time=48 * 3600, minimum_lease_time=30 * 3600),
    )
    assert got.nak(ErrorCode.VALID_REQUEST_NOT_COMPLETED, OptionCode.MINIMUM_LEASE_TIME)


def test_s3_15_minimum_lease_time_met_by_a_shorter_lease() -> None:
    # §2.2.4: "a shorter lease time ... it MUST NOT offer a lease time shorter than the
    # minimum lease time".
    got = send(make_server(), request(1, lid(1), lease_time=48 * 3600, minimum_lease_time=3600))
    assert got.options.lease_time == 24 * HOUR


def test_s3_2_zero_lease_time_is_error_0_naming_lease_time() -> None:
    # Local policy: no lease shorter than a second.
    got = send(make_server(), request(1, lid(1), lease_time=0))
    assert got.nak(ErrorCode.VALID_REQUEST_NOT_COMPLETED, OptionCode.LEASE_TIME)


# --- §3.7, §3.16 start times, §2.12 clock skew -----------------------------------------------


def test_s3_7_future_start_time_ack_carries_start_time_and_current_time() -> None:
    now = int(NOW)
    got = send(
        make_server(),
        request(1, lid(1), start_time=now + 3600, current_time=now, lease_time=600),
    )
    o = got.options
    assert (o.start_time, o.current_time, o.lease_time) == (now + 3600, now, 600)
    (lease,) = got.outcome.saved
    assert (lease.start, lease.end) == (NOW + 3600, NOW + 4200)


def test_s3_7_start_time_in_the_past_starts_now() -> None:
    now = int(NOW)
    got = send(make_server(), request(1, lid(1), start_time=now - 50, current_time=now))
    assert got.options.start_time is None
    assert got.outcome.saved[0].start == NOW


def test_s3_16_maximum_start_time_unmet_is_error_0() -> None:
    now = int(NOW)
    got = send(
        make_server(),
        request(1, lid(1), start_time=now + 600, maximum_start_time=now + 60, current_time=now),
    )
    assert got.nak(ErrorCode.VALID_REQUEST_NOT_COMPLETED, OptionCode.MAXIMUM_START_TIME)


def test_s3_16_maximum_start_time_now_means_immediately_and_is_met() -> None:
    now = NOW + 0.75  # a fractional server clock: the wire compares whole seconds
    got = send(
        make_server(),
        request(1, lid(1), maximum_start_time=int(now), current_time=int(now)),
        now=now,
    )
    assert got.kind == MessageType.ACK


def test_s2_12_client_times_are_read_on_the_server_clock() -> None:
    # The client's clock is 100 s behind: its "start in an hour" is our NOW + 3600.
    client_now = int(NOW) - 100
    got = send(
        make_server(),
        request(1, lid(1), start_time=client_now + 3600, current_time=client_now),
    )
    assert got.outcome.saved[0].start == NOW + 3600
    assert got.options.start_time == int(NOW) + 3600  # our clock, with our Current Time
    assert got.options.current_time == int(NOW)


def test_s2_12_excessive_clock_skew_nak_carries_server_time() -> None:
    got = send(make_server(), request(1, lid(1), current_time=int(NOW) - 1801))
    assert got.nak(ErrorCode.EXCESSIVE_CLOCK_SKEW)
    assert codec.server_time(got.options.error) == int(NOW)  # type: ignore[arg-type]
    assert got.outcome.saved == ()


def test_s2_12_skew_within_the_allowance_is_tolerated() -> None:
    got = send(make_server(), request(1, lid(1), current_time=int(NOW) + 1800))
    assert got.kind == MessageType.ACK


def test_s2_12_clock_skew_allowance_is_configurable() -> None:
    server = make_server(clock_skew_allowance=60.0)
    got = send(server, request(1, lid(1), current_time=int(NOW) + 61))
    assert got.nak(ErrorCode.EXCESSIVE_CLOCK_SKEW)


def test_s2_12_extra_allocation_time_pads_both_sides_of_a_lease() -> None:
    # TINY has 4 addresses; ask for all of them, for an hour starting in 3 hours.
    from .server_kit import TINY

    server = make_server()
    now = int(NOW)
    send(
        server,
        request(
            1,
            lid(1),
            scope=TINY.scope_id,
            addresses=AddressCount(4, 4),
            start_time=now + 3 * 3600,
            current_time=now,
            lease_time=3600,
        ),
    )
    # A lease now must end by start - 2 x EXTRA (1 h each): one ending at +1 h fits ...
    fits = send(server, request(2, lid(2), scope=TINY.scope_id, lease_time=3600))
    assert fits.kind == MessageType.ACK
    send(server, release(3, lid(2)))
    # ... one ending a second later does not.
    late = send(server, request(4, lid(3), scope=TINY.scope_id, lease_time=3601))
    assert late.nak(ErrorCode.VALID_REQUEST_NOT_COMPLETED)


# --- §3.11 client-chosen addresses -----------------------------------------------------------


def test_s3_11_client_may_ask_for_specific_addresses() -> None:
    wanted = (AddressRange(A("239.192.1.100"), 3),)
    got = send(make_server(), request(1, lid(1), ranges=wanted))
    assert got.options.ranges == wanted


def test_s3_11_specific_addresses_taken_is_error_0() -> None:
    server = make_server()
    wanted = (AddressRange(A("239.192.1.100"), 3),)
    send(server, request(1, lid(1), ranges=(AddressRange(A("239.192.1.101"), 1),)))
    got = send(server, request(2, lid(2), ranges=wanted))
    assert got.nak(ErrorCode.VALID_REQUEST_NOT_COMPLETED, OptionCode.LIST_OF_ADDRESS_RANGES)
    # With a Number of Addresses the client accepts part of its list.
    got = send(server, request(3, lid(3), ranges=wanted, addresses=AddressCount(1, 3)))
    assert got.addresses == [A("239.192.1.100"), A("239.192.1.102")]


def test_s3_11_excluded_addresses_are_never_given_even_when_asked() -> None:
    wanted = (AddressRange(A("239.192.1.0"), 1),)
    assert send(make_server(), request(1, lid(1), ranges=wanted)).nak(
        ErrorCode.VALID_REQUEST_NOT_COMPLETED
    )


# --- §3.13 Feature List ----------------------------------------------------------------------


def test_s3_13_reply_carries_a_feature_list_iff_the_request_did() -> None:
    server = make_server()
    plain = send(server, request(1, lid(1)))
    assert plain.options.features is None
    with_list = send(server, request(2, lid(2), features=FeatureList()))
    # Our supported list, what we implemented as required, an empty requested list.
    assert with_list.options.features == FeatureList(supported=(Feature.RETRY_AFTER,))


def test_s3_13_required_feature_not_supported_is_nak_4_listing_them() -> None:
    got = send(
        make_server(),
        request(1, lid(1), features=FeatureList(required=(Feature.SERVER_MOBILITY, 99))),
    )
    assert got.nak(ErrorCode.REQUIRED_FEATURE_NOT_SUPPORTED)
    assert codec.unsupported_features(got.options.error) == (0, 99)  # type: ignore[arg-type]
    assert got.options.features == FeatureList(supported=(1,))


def test_s3_13_requested_features_we_lack_are_simply_not_used() -> None:
    got = send(make_server(), request(1, lid(1), features=FeatureList(requested=(2,))))
    assert got.kind == MessageType.ACK
    assert got.options.features == FeatureList(supported=(1,))


def test_s2_13_2_retry_after_in_the_required_list_is_invalid_request() -> None:
    # "The client MUST NOT include the Retry After feature in the requested or required list"
    got = send(make_server(), request(1, lid(1), features=FeatureList(required=(1,))))
    assert got.nak(ErrorCode.INVALID_REQUEST, OptionCode.FEATURE_LIST)


# --- §2.1, §2.1.1, §2.1.5, §2.2, §2.6 malformed and unexpected messages ----------------------


def test_s2_1_datagram_shorter_than_12_octets_is_ignored() -> None:
    got = send(make_server(), bytes(11))
    assert got.reply is None and got.outcome.event == "ignored"


def test_s2_1_1_other_version_is_ignored() -> None:
    data = bytearray(codec.encode(request(1, lid(1))))
    data[0] = 1
    assert send(make_server(), bytes(data)).reply is None


def test_s2_1_5_options_without_end_are_ignored() -> None:
    data = codec.encode(request(1, lid(1)))[:-4]
    assert send(make_server(), data).reply is None


def test_s2_1_5_duplicate_option_is_invalid_request_naming_it() -> None:
    data = codec.encode(request(1, lid(1), lease_time=5))
    end = data[-4:]
    duplicate = data[:-4] + bytes.fromhex("00010004 00000006") + end
    got = send(make_server(), duplicate)
    assert got.nak(ErrorCode.INVALID_REQUEST, OptionCode.LEASE_TIME)
    # §2.2.6: the NAK still echoes the xid and the Lease Identifier, with our Server Id.
    assert got.reply is not None and got.reply.xid == 1
    assert (got.options.lease_id, got.options.server_id) == (lid(1), SERVER_ID)


def test_s2_1_5_malformed_lease_identifier_nak_carries_no_lease_identifier() -> None:
    # Local policy: nothing true to echo.
    data = codec.encode(request(1, lid(1)))
    header, end = data[:8], data[-4:]
    broken = header + bytes.fromhex("0003 0000") + end  # LID of length 0
    got = send(make_server(), broken)
    assert got.nak(ErrorCode.INVALID_REQUEST, OptionCode.LEASE_IDENTIFIER)
    assert got.options.lease_id is None


def test_s2_1_5_unknown_options_are_ignored() -> None:
    data = codec.encode(request(1, lid(1)))
    data = data[:-4] + bytes.fromhex("1234 0002 abcd") + data[-4:]
    assert send(make_server(), data).kind == MessageType.ACK


def test_s2_2_unknown_msgtype_is_invalid_request_with_no_option() -> None:
    got = send(make_server(), message(42, 1, lid(1)))
    assert got.nak(ErrorCode.INVALID_REQUEST, NO_OPTION)


@pytest.mark.parametrize("kind", [MessageType.OFFER, MessageType.ACK, MessageType.NAK])
def test_s2_6_server_message_types_arriving_at_a_server_are_ignored(kind: MessageType) -> None:
    msg = message(kind, 1, lid(1), server_id=SERVER_ID, error=ErrorOption(0, b"\xff\xff"))
    assert send(make_server(), msg).reply is None


def test_s2_6_a_malformed_nak_is_never_answered() -> None:
    data = codec.encode(message(MessageType.NAK, 1, lid(1), lease_time=1))
    data = data[:-4] + bytes.fromhex("00010004 00000006") + data[-4:]  # duplicate option
    assert send(make_server(), data).reply is None


def test_s3_table_5_request_without_scope_is_invalid_request_naming_option_4() -> None:
    got = send(make_server(), message(MessageType.REQUEST, 1, lid(1)))
    assert got.nak(ErrorCode.INVALID_REQUEST, OptionCode.MULTICAST_SCOPE)


def test_s3_table_5_renew_with_a_scope_is_invalid_request_naming_option_4() -> None:
    got = send(make_server(), renew(1, lid(1), scope=ORG.scope_id))
    assert got.nak(ErrorCode.INVALID_REQUEST, OptionCode.MULTICAST_SCOPE)


def test_s2_12_start_time_without_current_time_is_invalid_request_naming_option_11() -> None:
    got = send(make_server(), request(1, lid(1), start_time=int(NOW) + 10))
    assert got.nak(ErrorCode.INVALID_REQUEST, OptionCode.CURRENT_TIME)


def test_s2_2_6_nak_carries_xid_lease_id_server_id_and_an_error_only() -> None:
    got = send(make_server(), renew(77, lid(5)))
    assert got.reply is not None and got.reply.xid == 77
    assert got.options == Options(
        server_id=SERVER_ID,
        lease_id=lid(5),
        error=ErrorOption(ErrorCode.LEASE_ID_NOT_RECOGNIZED),
    )


def test_s2_1_3_nak_echoes_an_unknown_header_family() -> None:
    msg = Message(MessageType.RENEW, 7, 1, Options(lease_id=lid(1)))
    got = send(make_server(), msg)
    assert got.reply is not None and got.reply.family == 7


def test_s2_2_7_renew_in_another_family_than_the_lease_is_invalid_request() -> None:
    server = make_server()
    send(server, request(1, lid(1)))
    got = send(server, renew(2, lid(1), family=AddressFamily.IPV6))
    assert got.nak(ErrorCode.INVALID_REQUEST, NO_OPTION)


def test_s3_3_server_id_carries_its_own_family_in_an_ipv6_exchange() -> None:
    # §3.3: the Server Identifier carries its own family.
    got = send(
        make_server(),
        message(
            MessageType.GETINFO, 1, lid(1), option_request_list=(9,), family=AddressFamily.IPV6
        ),
    )
    assert got.kind == MessageType.ACK
    assert isinstance(got.options.server_id, IPv4Address)
    assert got.options.scope_list is None  # no IPv6 scope configured


def test_s3_7_start_time_past_the_wire_range_on_our_clock_is_error_0() -> None:
    # The client's clock is 1000 s behind ours: its last representable second is past 2106
    # on ours, so no Start Time could be sent back (§3.7 "will not wrap until 2106").
    client_now = int(NOW) - 1000
    msg = request(1, lid(1), start_time=0xFFFF_FFFF, current_time=client_now)
    assert send(make_server(), msg).nak(
        ErrorCode.VALID_REQUEST_NOT_COMPLETED, OptionCode.START_TIME
    )


def test_s3_10_a_scope_list_too_large_for_one_ack_is_refused_at_start() -> None:
    from dataclasses import replace

    from masc.madcap.messages import ScopeName
    from masc.madcap.server import MadcapServer

    names = tuple(ScopeName(f"x-{i}", "n" * 255) for i in range(255))
    with pytest.raises(ValueError, match="does not fit"):
        MadcapServer(
            ServerSettings(server_id=SERVER_ID), [replace(ORG, names=names, inside=())], now=NOW
        )
