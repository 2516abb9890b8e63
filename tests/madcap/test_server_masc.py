"""A scope fed by the MASC daemon: grants (active, deprecated, revoked), Retry After
(RFC 2730 §2.13.2, §3.14), demand and usage (RFC 2908 §5, RFC 2909 §17.1.2)."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network
from typing import Any

import pytest

from masc.madcap.constants import NO_OPTION, ErrorCode, Feature, MessageType, OptionCode
from masc.madcap.messages import AddressCount, FeatureList, Message
from masc.madcap.server import Grant

from .server_kit import (
    GLOBAL,
    GRANT,
    HOUR,
    NOW,
    ORG,
    A,
    granted,
    lid,
    make_server,
    release,
    renew,
    request,
    send,
)

RETRY = FeatureList(supported=(Feature.RETRY_AFTER,))
DAY = 24 * HOUR


def ask(xid: int, n: int, **options: Any) -> Message:
    return request(xid, lid(n), scope=GLOBAL.scope_id, **options)


def test_masc_scope_allocates_inside_its_active_grant() -> None:
    server = granted(make_server())
    got = send(server, ask(1, 1, addresses=AddressCount(3, 3)))
    assert got.kind == MessageType.ACK
    assert all(a in GRANT.prefix for a in got.addresses)
    assert len(got.addresses) == 3


def test_masc_scope_without_grants_is_error_0_with_demand() -> None:
    got = send(make_server(), ask(1, 1, addresses=AddressCount(2, 5)))
    assert got.nak(ErrorCode.VALID_REQUEST_NOT_COMPLETED, OptionCode.NUMBER_OF_ADDRESSES)
    assert got.outcome.demand == 5


def test_s2_13_2_retry_after_ack_has_empty_ranges_and_retry_time() -> None:
    got = send(make_server(), ask(1, 1, features=RETRY, lease_time=7200))
    assert got.kind == MessageType.ACK
    o = got.options
    assert o.ranges == ()
    # "a Feature List option that includes the Retry After feature in the required list,
    # and a Retry Time option"; §3.14: with Current Time.
    assert o.features == FeatureList(supported=(1,), required=(1,))
    assert (o.current_time, o.retry_time) == (int(NOW), int(NOW) + 600)
    assert (o.lease_time, o.scope) == (7200, GLOBAL.scope_id)
    assert got.outcome.event == "retry_after"
    assert got.outcome.demand == 1
    assert got.outcome.saved == ()


def test_s2_13_2_retry_time_follows_the_configured_interval() -> None:
    got = send(make_server(retry_interval=60.0), ask(1, 1, features=RETRY))
    assert got.options.retry_time == int(NOW) + 60


def test_s2_13_2_retry_with_a_new_xid_after_the_grant_gets_addresses() -> None:
    server = make_server()
    send(server, ask(1, 1, features=RETRY))
    server.set_grants("global", [GRANT], now=NOW + 300)
    got = send(server, ask(2, 1, features=RETRY), now=NOW + 600)
    assert got.kind == MessageType.ACK and len(got.addresses) == 1
    # The server implemented nothing optional this time: required is empty.
    assert got.options.features == FeatureList(supported=(1,))


def test_s2_13_2_retry_again_while_still_short() -> None:
    server = make_server()
    send(server, ask(1, 1, features=RETRY))
    again = send(server, ask(2, 1, features=RETRY), now=NOW + 600)
    assert again.options.ranges == ()
    assert again.options.retry_time == int(NOW) + 1200


def test_s2_13_2_renew_during_retry_after_is_invalid_request() -> None:
    server = make_server()
    send(server, ask(1, 1, features=RETRY))
    got = send(server, renew(2, lid(1)))
    assert got.nak(ErrorCode.INVALID_REQUEST, OptionCode.LEASE_IDENTIFIER)


def test_s2_13_2_release_ends_a_retry_after_transaction() -> None:
    server = make_server()
    send(server, ask(1, 1, features=RETRY))
    got = send(server, release(2, lid(1)))
    assert got.kind == MessageType.ACK and got.outcome.deleted == ()
    assert send(server, renew(3, lid(1))).nak(ErrorCode.LEASE_ID_NOT_RECOGNIZED)


def test_s2_13_2_pending_transaction_is_forgotten_eventually() -> None:
    server = make_server()
    send(server, ask(1, 1, features=RETRY))
    assert server.next_deadline() == NOW + 1200
    server.handle_timer(now=NOW + 1200)
    assert send(server, renew(2, lid(1)), now=NOW + 1200).nak(ErrorCode.LEASE_ID_NOT_RECOGNIZED)


def test_s3_13_no_retry_after_unless_the_client_lists_it() -> None:
    # "the server MUST NOT use that feature in its response"
    got = send(make_server(), ask(1, 1, features=FeatureList()))
    assert got.nak(ErrorCode.VALID_REQUEST_NOT_COMPLETED, NO_OPTION)
    assert got.options.features == FeatureList(supported=(1,))
    assert got.outcome.demand == 1


def test_masc_lease_never_outlives_its_grant() -> None:
    short = Grant(IPv4Network("233.252.0.0/24"), expires=NOW + 2 * HOUR, active=True)
    server = granted(make_server(), "global", short)
    got = send(server, ask(1, 1, lease_time=6 * 3600))
    assert got.options.lease_time == 2 * 3600
    assert got.outcome.saved[0].end == short.expires


def test_masc_lease_from_the_longest_lived_grant_first() -> None:
    short = Grant(IPv4Network("233.252.0.0/24"), expires=NOW + 2 * HOUR, active=True)
    long = Grant(IPv4Network("233.252.1.0/24"), expires=NOW + 10 * HOUR, active=True)
    server = granted(make_server(), "global", short, long)
    got = send(server, ask(1, 1, lease_time=6 * 3600))
    assert got.options.lease_time == 6 * 3600
    assert got.addresses[0] in long.prefix


def test_s3_15_grant_ending_before_the_minimum_lease_time_is_error_0() -> None:
    short = Grant(IPv4Network("233.252.0.0/24"), expires=NOW + 2 * HOUR, active=True)
    server = granted(make_server(), "global", short)
    got = send(server, ask(1, 1, minimum_lease_time=3 * 3600))
    assert got.nak(ErrorCode.VALID_REQUEST_NOT_COMPLETED, OptionCode.MINIMUM_LEASE_TIME)


def test_deprecated_grant_gives_no_new_lease() -> None:
    deprecated = Grant(GRANT.prefix, expires=NOW + DAY, active=False)
    server = granted(make_server(), "global", deprecated)
    got = send(server, ask(1, 1))
    assert got.nak(ErrorCode.VALID_REQUEST_NOT_COMPLETED)
    assert got.outcome.demand == 1


def test_deprecated_grant_renewal_is_capped_at_its_expiry() -> None:
    server = granted(make_server())
    send(server, ask(1, 1, lease_time=3600))
    server.set_grants("global", [Grant(GRANT.prefix, NOW + 2 * HOUR, active=False)], now=NOW)
    got = send(server, renew(2, lid(1), lease_time=6 * 3600), now=NOW + 1800)
    assert got.kind == MessageType.ACK
    assert got.outcome.saved[0].end == NOW + 2 * HOUR


def test_revoked_grant_renewal_is_error_0_and_no_new_lease_from_it() -> None:
    server = granted(make_server())
    first = send(server, ask(1, 1))
    server.set_grants("global", [], now=NOW + 60)
    refused = send(server, renew(2, lid(1)), now=NOW + 60)
    assert refused.nak(ErrorCode.VALID_REQUEST_NOT_COMPLETED, NO_OPTION)
    # The lease itself runs to its end unchanged; nothing new comes from the prefix.
    assert server.leases()[0] == first.outcome.saved[0]
    assert send(server, ask(3, 2), now=NOW + 60).nak(ErrorCode.VALID_REQUEST_NOT_COMPLETED)


def test_expired_grant_is_treated_as_revoked() -> None:
    server = granted(make_server(), "global", Grant(GRANT.prefix, NOW + HOUR, active=True))
    send(server, ask(1, 1, lease_time=600))
    assert send(server, ask(2, 2), now=NOW + HOUR).nak(ErrorCode.VALID_REQUEST_NOT_COMPLETED)


def test_grant_is_clipped_to_the_zone_and_minus_exclusions() -> None:
    # A grant reaching outside the zone gives only its part inside; exclusions apply too.
    from dataclasses import replace

    scope = replace(
        GLOBAL,
        first=A("233.252.0.0"),
        last=A("233.252.0.255"),
        exclusions=((A("233.252.0.0"), A("233.252.0.253")),),
    )
    server = make_server((scope,))
    server.set_grants("global", [Grant(IPv4Network("233.252.0.0/23"), NOW + DAY, True)], now=NOW)
    got = send(server, request(1, lid(1), scope=scope.scope_id, addresses=AddressCount(1, 10)))
    assert got.addresses == [A("233.252.0.254"), A("233.252.0.255")]


def test_set_grants_only_for_masc_scopes_of_their_family() -> None:
    server = make_server()
    with pytest.raises(ValueError):
        server.set_grants("org", [GRANT], now=NOW)
    with pytest.raises(ValueError):
        server.set_grants("nowhere", [GRANT], now=NOW)
    with pytest.raises(ValueError):
        server.set_grants("global", [Grant(IPv6Network("ff0e::/64"), NOW + 1, True)], now=NOW)


def test_usage_counts_addresses_leased_now_per_grant() -> None:
    other = Grant(IPv4Network("233.252.1.0/24"), expires=NOW + DAY, active=True)
    server = granted(make_server(), "global", GRANT, other)
    send(server, ask(1, 1, addresses=AddressCount(300, 300), lease_time=7200))
    now = int(NOW)
    # A future lease and a static-scope lease do not count.
    send(server, ask(2, 2, start_time=now + 3600, current_time=now))
    send(server, request(3, lid(3), scope=ORG.scope_id))
    usage = server.usage(now=NOW)
    assert usage.in_use == 300
    assert sum(usage.by_prefix.values()) == 300
    assert set(usage.by_prefix) <= {GRANT.prefix, other.prefix}
    assert server.usage(now=NOW + 3600).in_use == 301
    send(server, release(4, lid(1)), now=NOW + 3600)
    assert server.usage(now=NOW + 3600).in_use == 1


def test_usage_ends_with_the_lease() -> None:
    server = granted(make_server())
    send(server, ask(1, 1, lease_time=600))
    assert server.usage(now=NOW + 599).in_use == 1
    assert server.usage(now=NOW + 600).in_use == 0
