"""Lease lifecycle in the MADCAP server core: RENEW (RFC 2730 §2.2.7), RELEASE (§2.2.8),
Lease Identifier matching (§2.4), expiry through handle_timer/next_deadline, the
EXTRA-ALLOCATION-TIME quarantine (§2.12) and restarts from stored leases."""

from __future__ import annotations

from dataclasses import replace

from masc.madcap.constants import NO_OPTION, ErrorCode, MessageType, OptionCode
from masc.madcap.messages import AddressCount, AddressRange, FeatureList, Options

from .server_kit import (
    HOUR,
    NOW,
    ORG,
    SERVER_ID,
    TINY,
    A,
    lid,
    make_server,
    release,
    renew,
    request,
    send,
)

EXTRA = HOUR  # the default EXTRA-ALLOCATION-TIME


# --- §2.2.7 RENEW ----------------------------------------------------------------------------


def test_s2_2_7_renew_sets_the_end_to_now_plus_lease_time() -> None:
    server = make_server()
    first = send(server, request(1, lid(1), lease_time=7200))
    got = send(server, renew(2, lid(1), lease_time=7200), now=NOW + HOUR)
    assert got.kind == MessageType.ACK
    o = got.options
    # §2.2.5: ACK to RENEW "MUST include Lease Time, Multicast Scope, and List of Address
    # Ranges"; the same addresses.
    assert (o.lease_time, o.scope, o.server_id, o.lease_id) == (
        7200,
        ORG.scope_id,
        SERVER_ID,
        lid(1),
    )
    assert got.addresses == first.addresses
    (lease,) = got.outcome.saved
    assert (lease.start, lease.end) == (NOW, NOW + 3 * HOUR)  # the start stays where it was
    assert got.outcome.event == "renewed"


def test_s2_2_7_renew_without_lease_time_gives_the_scope_default() -> None:
    server = make_server()
    send(server, request(1, lid(1), lease_time=60))
    assert send(server, renew(2, lid(1))).options.lease_time == ORG.default_lease


def test_s2_2_7_renew_never_exceeds_the_scope_maximum() -> None:
    server = make_server()
    send(server, request(1, lid(1)))
    assert send(server, renew(2, lid(1), lease_time=10**8)).options.lease_time == 24 * HOUR


def test_s2_2_7_renew_may_shorten_the_lease() -> None:
    server = make_server()
    send(server, request(1, lid(1), lease_time=7200))
    got = send(server, renew(2, lid(1), lease_time=60))
    assert got.outcome.saved[0].end == NOW + 60


def test_s2_2_7_renew_with_a_start_time_moves_the_lease() -> None:
    server = make_server()
    send(server, request(1, lid(1), lease_time=600))
    now = int(NOW)
    got = send(server, renew(2, lid(1), start_time=now + 600, current_time=now, lease_time=600))
    assert (got.options.start_time, got.options.current_time) == (now + 600, now)
    (lease,) = got.outcome.saved
    assert (lease.start, lease.end) == (NOW + 600, NOW + 1200)


def test_s2_2_7_renew_without_start_time_keeps_a_future_start() -> None:
    # Local policy: only the lease time changes.
    server = make_server()
    now = int(NOW)
    send(server, request(1, lid(1), start_time=now + 600, current_time=now, lease_time=600))
    got = send(server, renew(2, lid(1), lease_time=1200))
    assert got.options.start_time == now + 600
    assert got.outcome.saved[0].end == NOW + 1800


def test_s3_15_renew_minimum_lease_time_unmet_is_error_0_and_lease_unchanged() -> None:
    server = make_server()
    before = send(server, request(1, lid(1))).outcome.saved[0]
    got = send(server, renew(2, lid(1), lease_time=10**6, minimum_lease_time=25 * 3600))
    assert got.nak(ErrorCode.VALID_REQUEST_NOT_COMPLETED, OptionCode.MINIMUM_LEASE_TIME)
    assert server.leases() == [before]


def test_s3_16_renew_maximum_start_time_unmet_is_error_0() -> None:
    server = make_server()
    send(server, request(1, lid(1)))
    now = int(NOW)
    got = send(
        server,
        renew(2, lid(1), start_time=now + 600, maximum_start_time=now + 60, current_time=now),
    )
    assert got.nak(ErrorCode.VALID_REQUEST_NOT_COMPLETED, OptionCode.MAXIMUM_START_TIME)


def test_s2_2_7_renew_is_shortened_before_another_lease_of_its_addresses() -> None:
    server = make_server()
    now = int(NOW)
    address = (AddressRange(A("239.192.1.50"), 1),)
    send(server, request(1, lid(1), ranges=address, lease_time=3600))
    # Another lease of the same address from +10 h (room: 1 h + 2 x 1 h < 10 h).
    later = request(2, lid(2), ranges=address, start_time=now + 10 * 3600, current_time=now)
    assert send(server, later).kind == MessageType.ACK
    got = send(server, renew(3, lid(1), lease_time=24 * 3600))
    # It must end 2 x EXTRA before the other starts: at +8 h.
    assert got.options.lease_time == 8 * 3600
    # Asking for at least 9 h is refused.
    refused = send(server, renew(4, lid(1), lease_time=24 * 3600, minimum_lease_time=9 * 3600))
    assert refused.nak(ErrorCode.VALID_REQUEST_NOT_COMPLETED, OptionCode.MINIMUM_LEASE_TIME)


def test_s2_4_renew_of_an_unknown_lease_id_is_error_3() -> None:
    got = send(make_server(), renew(1, lid(1)))
    assert got.nak(ErrorCode.LEASE_ID_NOT_RECOGNIZED)
    assert got.options.error is not None and got.options.error.extra == b""  # §3.17.4


def test_s2_2_7_renew_of_a_lease_whose_scope_was_removed_is_error_0() -> None:
    server = make_server()
    lease = send(server, request(1, lid(1))).outcome.saved[0]
    restarted = make_server((replace(TINY, inside=()),), leases=(lease,))
    got = send(restarted, renew(2, lid(1)))
    assert got.nak(ErrorCode.VALID_REQUEST_NOT_COMPLETED, NO_OPTION)


def test_s2_2_7_renew_of_addresses_now_excluded_is_error_0() -> None:
    server = make_server()
    lease = send(server, request(1, lid(1))).outcome.saved[0]
    first = lease.ranges[0].start
    narrowed = replace(ORG, exclusions=((first, first),), inside=())
    restarted = make_server((narrowed,), leases=(lease,))
    assert send(restarted, renew(2, lid(1))).nak(ErrorCode.VALID_REQUEST_NOT_COMPLETED, NO_OPTION)


# --- §2.2.8 RELEASE --------------------------------------------------------------------------


def test_s2_2_8_release_acks_with_only_server_id_and_lease_id() -> None:
    server = make_server()
    send(server, request(1, lid(1)))
    got = send(server, release(2, lid(1)))
    assert got.kind == MessageType.ACK
    assert got.options == Options(server_id=SERVER_ID, lease_id=lid(1))
    assert got.outcome.deleted == (lid(1),)
    assert server.leases() == []


def test_s2_2_8_release_ack_carries_a_feature_list_iff_the_release_did() -> None:
    server = make_server()
    send(server, request(1, lid(1)))
    got = send(server, release(2, lid(1), features=FeatureList()))
    assert got.options == Options(
        server_id=SERVER_ID, lease_id=lid(1), features=FeatureList(supported=(1,))
    )


def test_s2_2_8_released_addresses_are_free_at_once() -> None:
    server = make_server()
    everything = AddressCount(4, 4)
    first = send(server, request(1, lid(1), scope=TINY.scope_id, addresses=everything))
    assert send(server, request(2, lid(2), scope=TINY.scope_id)).nak(
        ErrorCode.VALID_REQUEST_NOT_COMPLETED
    )
    send(server, release(3, lid(1)))
    again = send(server, request(4, lid(3), scope=TINY.scope_id, addresses=everything))
    assert again.addresses == first.addresses


def test_s2_4_release_of_an_unknown_lease_id_is_error_3() -> None:
    assert send(make_server(), release(1, lid(1))).nak(ErrorCode.LEASE_ID_NOT_RECOGNIZED)


def test_s2_4_release_twice_is_error_3_the_second_time() -> None:
    server = make_server()
    send(server, request(1, lid(1)))
    send(server, release(2, lid(1)))
    assert send(server, release(3, lid(1))).nak(ErrorCode.LEASE_ID_NOT_RECOGNIZED)


# --- expiry ----------------------------------------------------------------------------------


def test_expiry_is_reported_at_the_end_and_deleted_after_the_quarantine() -> None:
    server = make_server()
    assert server.next_deadline() is None
    send(server, request(1, lid(1), lease_time=600))
    end = NOW + 600
    assert server.next_deadline() == end
    assert server.handle_timer(now=end - 1).event == "timer"
    ended = server.handle_timer(now=end)
    assert ended.event == "expired" and ended.deleted == ()
    # §2.12: the addresses stay reserved until a new lease's padding cannot reach them.
    assert server.next_deadline() == end + 2 * EXTRA
    gone = server.handle_timer(now=end + 2 * EXTRA)
    assert gone.deleted == (lid(1),)
    assert server.leases() == []
    assert server.next_deadline() is None


def test_s2_4_renew_or_release_after_the_end_is_error_3() -> None:
    server = make_server()
    send(server, request(1, lid(1), lease_time=600))
    server.handle_timer(now=NOW + 600)
    assert send(server, renew(2, lid(1)), now=NOW + 601).nak(ErrorCode.LEASE_ID_NOT_RECOGNIZED)
    assert send(server, release(3, lid(1)), now=NOW + 601).nak(ErrorCode.LEASE_ID_NOT_RECOGNIZED)


def test_s2_12_ended_lease_blocks_its_addresses_for_two_extra_allocation_times() -> None:
    server = make_server()
    everything = AddressCount(4, 4)
    send(server, request(1, lid(1), scope=TINY.scope_id, addresses=everything, lease_time=600))
    end = NOW + 600
    server.handle_timer(now=end)
    blocked = send(server, request(2, lid(2), scope=TINY.scope_id), now=end + 2 * EXTRA - 1)
    assert blocked.nak(ErrorCode.VALID_REQUEST_NOT_COMPLETED)
    free = send(server, request(3, lid(3), scope=TINY.scope_id), now=end + 2 * EXTRA)
    assert free.kind == MessageType.ACK


def test_s3_11_ended_lease_can_be_requested_again_with_its_lease_id() -> None:
    # "when a lease is accidentally allowed to expire and it needs to be reallocated": the
    # same Lease Identifier gets its own addresses back despite the quarantine.
    server = make_server()
    everything = AddressCount(4, 4)
    first = send(server, request(1, lid(1), scope=TINY.scope_id, addresses=everything))
    later = NOW + HOUR + 10
    again = send(server, request(2, lid(1), scope=TINY.scope_id, addresses=everything), now=later)
    assert again.kind == MessageType.ACK
    assert again.addresses == first.addresses
    assert again.outcome.saved[0].start == later


def test_handle_timer_is_idempotent() -> None:
    server = make_server()
    send(server, request(1, lid(1), lease_time=600))
    assert server.handle_timer(now=NOW + 600).event == "expired"
    assert server.handle_timer(now=NOW + 601).event == "timer"


# --- restart ---------------------------------------------------------------------------------


def test_restart_keeps_leases_and_their_addresses_taken() -> None:
    server = make_server()
    everything = AddressCount(4, 4)
    got = send(server, request(1, lid(1), scope=TINY.scope_id, addresses=everything))
    stored = tuple(server.leases())
    restarted = make_server(leases=stored, now=NOW + 10)
    assert restarted.leases() == list(stored)
    full = send(restarted, request(2, lid(2), scope=TINY.scope_id), now=NOW + 10)
    assert full.nak(ErrorCode.VALID_REQUEST_NOT_COMPLETED)
    # The restarted server renews and releases the stored lease.
    renewed = send(restarted, renew(3, lid(1)), now=NOW + 20)
    assert renewed.addresses == got.addresses
    assert send(restarted, release(4, lid(1)), now=NOW + 30).outcome.deleted == (lid(1),)


def test_restart_answers_a_retransmitted_request_with_the_same_lease() -> None:
    server = make_server()
    msg = request(1, lid(1))
    first = send(server, msg)
    restarted = make_server(leases=tuple(server.leases()), now=NOW + 4)
    again = send(restarted, msg, now=NOW + 4)
    assert again.addresses == first.addresses
    assert again.outcome.saved == ()


def test_restart_keeps_the_quarantine_of_ended_leases() -> None:
    server = make_server()
    everything = AddressCount(4, 4)
    send(server, request(1, lid(1), scope=TINY.scope_id, addresses=everything, lease_time=600))
    restarted = make_server(leases=tuple(server.leases()), now=NOW + 700)
    blocked = send(restarted, request(2, lid(2), scope=TINY.scope_id), now=NOW + 700)
    assert blocked.nak(ErrorCode.VALID_REQUEST_NOT_COMPLETED)
    assert restarted.next_deadline() == NOW + 600 + 2 * EXTRA
    assert restarted.handle_timer(now=NOW + 600 + 2 * EXTRA).deleted == (lid(1),)


def test_restart_keeps_addresses_of_a_scope_no_longer_configured() -> None:
    server = make_server()
    lease = send(server, request(1, lid(1), scope=TINY.scope_id)).outcome.saved[0]
    other = replace(TINY, name="renamed", inside=())
    restarted = make_server((other,), leases=(lease,))
    got = send(restarted, request(2, lid(2), scope=other.scope_id, addresses=AddressCount(4, 4)))
    assert got.nak(ErrorCode.VALID_REQUEST_NOT_COMPLETED)
