"""Table 5 of RFC 2730 §3 (plus RFC 2907 §3.3) and the conditional option rules.

The expected table is parsed from the RFC's own text, pasted below verbatim, so the literal
table in ``masc.madcap.rules`` is checked against a second, independent transcription.  Then
every cell is exercised through the public check of the side that receives that message:
``server_check`` for requests, ``client_check`` for answers.
"""

from __future__ import annotations

import re
from dataclasses import replace
from ipaddress import IPv4Address
from typing import Any

import pytest

from masc.madcap.constants import NO_OPTION, AddressFamily, Feature, MessageType, OptionCode
from masc.madcap.messages import (
    AddressCount,
    AddressRange,
    ErrorOption,
    FeatureList,
    Message,
    NestingState,
    Options,
    ScopeEntry,
    UnknownOption,
)
from masc.madcap.rules import (
    TABLE_5,
    Column,
    Presence,
    client_check,
    present,
    reply_column,
    request_column,
    server_check,
    table_check,
)

# RFC 2730 pp. 29-31, verbatim (page breaks removed).
RFC_TABLE_5 = """
   Option                  GETINFO        ACK (in response to GETINFO)
   ------                  ------         ---------------------------
   Lease Time              MUST NOT       MUST NOT
   Server Identifier       MUST NOT       MUST
   Lease Identifier        MUST           MUST
   Multicast Scope         MUST NOT       MUST NOT
   Option Request List     MUST           MUST NOT
   Start Time              MUST NOT       MUST NOT
   Number of Addresses
     Requested             MUST NOT       MUST NOT
   Requested Language      MAY            MUST NOT
   Multicast Scope List    MUST NOT       MAY
   List of Address Ranges  MUST NOT       MUST NOT
   Current Time            MUST NOT       MAY
   Feature List            MAY            MAY
   Retry Time              MUST NOT       MUST NOT
   Minimum Lease Time      MUST NOT       MUST NOT
   Maximum Start Time      MUST NOT       MUST NOT
   Error                   MUST NOT       MUST NOT

   Option                  DISCOVER       OFFER
   ------                  --------       -----
   Lease Time              MAY            MUST
   Server Identifier       MUST NOT       MUST
   Lease Identifier        MUST           MUST
   Multicast Scope         MUST           MUST
   Option Request List     MUST NOT       MUST NOT
   Start Time              MAY            MAY
   Number of Addresses
     Requested             MAY            MUST NOT
   Requested Language      MUST NOT       MUST NOT
   Multicast Scope List    MUST NOT       MUST NOT
   List of Address Ranges  MAY            MAY
   Current Time            MAY            MAY
   Feature List            MAY            MAY
   Retry Time              MUST NOT       MUST NOT
   Minimum Lease Time      MAY            MUST NOT
   Maximum Start Time      MAY            MUST NOT
   Error                   MUST NOT       MUST NOT

   Option                  REQUEST        ACK (in response to REQUEST)
   ------                  -------        ----------------------------
   Lease Time              MAY            MUST
   Server Identifier       MUST (if       MUST
                             multicast)
   Lease Identifier        MUST           MUST
   Multicast Scope         MUST           MUST
   Option Request List     MUST NOT       MUST NOT
   Start Time              MAY            MAY
   Number of Addresses
     Requested             MAY            MUST NOT
   Requested Language      MUST NOT       MUST NOT
   Multicast Scope List    MUST NOT       MUST NOT
   List of Address Ranges  MAY            MUST
   Current Time            MAY            MAY
   Feature List            MAY            MAY
   Retry Time              MUST NOT       MAY
   Minimum Lease Time      MAY            MUST NOT
   Maximum Start Time      MAY            MUST NOT
   Error                   MUST NOT       MUST NOT

   Option                  RENEW          ACK (in response to RENEW)
   ------                  -----          --------------------------
   Lease Time              MAY            MUST
   Server Identifier       MUST NOT       MUST
   Lease Identifier        MUST           MUST
   Multicast Scope         MUST NOT       MUST
   Option Request List     MUST NOT       MUST NOT
   Start Time              MAY            MAY
   Number of Addresses
     Requested             MUST NOT       MUST NOT
   Requested Language      MUST NOT       MUST NOT
   Multicast Scope List    MUST NOT       MUST NOT
   List of Address Ranges  MUST NOT       MUST
   Current Time            MAY            MAY
   Feature List            MAY            MAY
   Retry Time              MUST NOT       MAY
   Minimum Lease Time      MAY            MUST NOT
   Maximum Start Time      MAY            MUST NOT
   Error                   MUST NOT       MUST NOT

   Option                  RELEASE        ACK (in response to RELEASE)
   ------                  -------        ----------------------------
   Lease Time              MUST NOT       MUST NOT
   Server Identifier       MUST NOT       MUST
   Lease Identifier        MUST           MUST
   Multicast Scope         MUST NOT       MUST NOT
   Option Request List     MUST NOT       MUST NOT
   Start Time              MUST NOT       MUST NOT
   Number of Addresses
     Requested             MUST NOT       MUST NOT
   Requested Language      MUST NOT       MUST NOT
   Multicast Scope List    MUST NOT       MUST NOT
   List of Address Ranges  MUST NOT       MUST NOT
   Current Time            MUST NOT       MUST NOT
   Feature List            MAY            MAY
   Retry Time              MUST NOT       MUST NOT
   Minimum Lease Time      MUST NOT       MUST NOT
   Maximum Start Time      MUST NOT       MUST NOT
   Error                   MUST NOT       MUST NOT

   Option                  NAK
   ------                  ---
   Lease Time              MUST NOT
   Server Identifier       MUST
   Lease Identifier        MUST
   Multicast Scope         MUST NOT
   Option Request List     MUST NOT
   Start Time              MUST NOT
   Number of Addresses
     Requested             MUST NOT
   Requested Language      MUST NOT
   Multicast Scope List    MUST NOT
   List of Address Ranges  MUST NOT
   Current Time            MUST NOT
   Feature List            MAY
   Retry Time              MUST NOT
   Minimum Lease Time      MUST NOT
   Maximum Start Time      MUST NOT
   Error                   MUST
"""


def parse_rfc_table(text: str) -> dict[Column, dict[OptionCode, Presence]]:
    """The RFC's layout -> {column: {option: presence}}; option 17 added from RFC 2907 §3.3."""
    names = {
        "Lease Time": OptionCode.LEASE_TIME,
        "Server Identifier": OptionCode.SERVER_IDENTIFIER,
        "Lease Identifier": OptionCode.LEASE_IDENTIFIER,
        "Multicast Scope": OptionCode.MULTICAST_SCOPE,
        "Option Request List": OptionCode.OPTION_REQUEST_LIST,
        "Start Time": OptionCode.START_TIME,
        "Number of Addresses Requested": OptionCode.NUMBER_OF_ADDRESSES,
        "Requested Language": OptionCode.REQUESTED_LANGUAGE,
        "Multicast Scope List": OptionCode.MULTICAST_SCOPE_LIST,
        "List of Address Ranges": OptionCode.LIST_OF_ADDRESS_RANGES,
        "Current Time": OptionCode.CURRENT_TIME,
        "Feature List": OptionCode.FEATURE_LIST,
        "Retry Time": OptionCode.RETRY_TIME,
        "Minimum Lease Time": OptionCode.MINIMUM_LEASE_TIME,
        "Maximum Start Time": OptionCode.MAXIMUM_START_TIME,
        "Error": OptionCode.ERROR,
    }
    words = {
        "MUST": Presence.MUST,
        "MAY": Presence.MAY,
        "MUST NOT": Presence.MUST_NOT,
        "MUST (if multicast)": Presence.MUST_IF_MULTICAST,
    }
    columns = {c.value: c for c in Column}
    table: dict[Column, dict[OptionCode, Presence]] = {}
    for block in text.strip().split("\n\n"):
        lines = block.splitlines()
        heads = [columns[h] for h in re.split(r"\s{2,}", lines[0].strip())[1:]]
        for head in heads:
            table[head] = {}
        rows: list[tuple[str, list[str]]] = []
        for line in lines[2:]:
            cells = re.split(r"\s{2,}", line.strip())
            if line.startswith("     "):  # continuation of the line above
                name, previous = rows[-1]
                if cells[0] == "multicast)":
                    previous[0] += " multicast)"
                else:
                    rows[-1] = (f"{name} {cells[0]}", cells[1:])
                continue
            rows.append((cells[0], cells[1:]))
        for name, cells in rows:
            for head, cell in zip(heads, cells, strict=True):
                table[head][names[name]] = words[cell]
    for column in Column:  # RFC 2907 §3.3
        table[column][OptionCode.MULTICAST_SCOPE_NESTING_STATE] = (
            Presence.MAY if column is Column.ACK_GETINFO else Presence.MUST_NOT
        )
    return table


EXPECTED = parse_rfc_table(RFC_TABLE_5)


def test_s3_table_5_is_transcribed_cell_for_cell() -> None:
    assert set(EXPECTED) == set(Column)
    for column in Column:
        assert dict(TABLE_5[column]) == EXPECTED[column], column
        assert list(TABLE_5[column]) == sorted(TABLE_5[column])  # code order


# --- every cell, through the side that receives it --------------------------------------------

LID = b"\x00" + bytes(range(16))
GROUP = IPv4Address("239.192.0.0")
SERVER = IPv4Address("192.0.2.10")
NOW = 946_684_800

# A sample value for each option; absolute times come with Current Time (added below).
SAMPLES: dict[OptionCode, Any] = {
    OptionCode.LEASE_TIME: 3600,
    OptionCode.SERVER_IDENTIFIER: SERVER,
    OptionCode.LEASE_IDENTIFIER: LID,
    OptionCode.MULTICAST_SCOPE: GROUP,
    OptionCode.OPTION_REQUEST_LIST: (9,),
    OptionCode.START_TIME: NOW + 60,
    OptionCode.NUMBER_OF_ADDRESSES: AddressCount(1, 2),
    OptionCode.REQUESTED_LANGUAGE: "en",
    OptionCode.MULTICAST_SCOPE_LIST: (ScopeEntry(GROUP, IPv4Address("239.195.255.255"), 10),),
    OptionCode.LIST_OF_ADDRESS_RANGES: (AddressRange(GROUP, 1),),
    OptionCode.CURRENT_TIME: NOW,
    OptionCode.FEATURE_LIST: FeatureList(supported=(Feature.RETRY_AFTER,)),
    OptionCode.RETRY_TIME: NOW + 600,
    OptionCode.MINIMUM_LEASE_TIME: 60,
    OptionCode.MAXIMUM_START_TIME: NOW + 120,
    OptionCode.ERROR: ErrorOption(0, b"\xff\xff"),
    OptionCode.MULTICAST_SCOPE_NESTING_STATE: NestingState(((False,),)),
}
FIELDS = {
    OptionCode.LEASE_TIME: "lease_time",
    OptionCode.SERVER_IDENTIFIER: "server_id",
    OptionCode.LEASE_IDENTIFIER: "lease_id",
    OptionCode.MULTICAST_SCOPE: "scope",
    OptionCode.OPTION_REQUEST_LIST: "option_request_list",
    OptionCode.START_TIME: "start_time",
    OptionCode.NUMBER_OF_ADDRESSES: "addresses",
    OptionCode.REQUESTED_LANGUAGE: "language",
    OptionCode.MULTICAST_SCOPE_LIST: "scope_list",
    OptionCode.LIST_OF_ADDRESS_RANGES: "ranges",
    OptionCode.CURRENT_TIME: "current_time",
    OptionCode.FEATURE_LIST: "features",
    OptionCode.RETRY_TIME: "retry_time",
    OptionCode.MINIMUM_LEASE_TIME: "minimum_lease_time",
    OptionCode.MAXIMUM_START_TIME: "maximum_start_time",
    OptionCode.ERROR: "error",
    OptionCode.MULTICAST_SCOPE_NESTING_STATE: "nesting",
}
ABSOLUTE = {OptionCode.START_TIME, OptionCode.RETRY_TIME, OptionCode.MAXIMUM_START_TIME}

# Column -> (message type, request answered or None for a request).
SIDES: dict[Column, tuple[MessageType, MessageType | None]] = {
    Column.GETINFO: (MessageType.GETINFO, None),
    Column.DISCOVER: (MessageType.DISCOVER, None),
    Column.REQUEST: (MessageType.REQUEST, None),
    Column.RENEW: (MessageType.RENEW, None),
    Column.RELEASE: (MessageType.RELEASE, None),
    Column.ACK_GETINFO: (MessageType.ACK, MessageType.GETINFO),
    Column.OFFER: (MessageType.OFFER, MessageType.DISCOVER),
    Column.ACK_REQUEST: (MessageType.ACK, MessageType.REQUEST),
    Column.ACK_RENEW: (MessageType.ACK, MessageType.RENEW),
    Column.ACK_RELEASE: (MessageType.ACK, MessageType.RELEASE),
    Column.NAK: (MessageType.NAK, MessageType.REQUEST),
}


def with_option(options: Options, code: OptionCode, *, companions: bool = True) -> Options:
    """``options`` plus ``code``; with ``companions``, plus what the conditional rules make
    it need (so that a MAY stays acceptable)."""
    changes: dict[str, Any] = {FIELDS[code]: SAMPLES[code]}
    if companions and code in ABSOLUTE:
        changes["current_time"] = NOW  # §2.12
    if companions and code is OptionCode.MULTICAST_SCOPE_NESTING_STATE:
        changes["scope_list"] = SAMPLES[OptionCode.MULTICAST_SCOPE_LIST]  # RFC 2907 §3.3
    return replace(options, **changes)


def without_option(options: Options, code: OptionCode) -> Options:
    changes: dict[str, Any] = {FIELDS[code]: None}
    return replace(options, **changes)


def minimal(column: Column, *, multicast: bool = False) -> Options:
    """Exactly the MUST options of ``column``."""
    options = Options()
    for code, presence in EXPECTED[column].items():
        if presence is Presence.MUST or (presence is Presence.MUST_IF_MULTICAST and multicast):
            options = replace(options, **{FIELDS[code]: SAMPLES[code]})
    return options


def verdict(column: Column, options: Options, *, multicast: bool = False) -> int | None:
    """The receiving side's verdict as server_check's shape: None = conforms."""
    msg_type, answering = SIDES[column]
    message = Message(msg_type, AddressFamily.IPV4, 1, options)
    if answering is None:
        return server_check(message, multicast=multicast)
    return None if client_check(message, answering=answering) else -1


CELLS = [(column, code) for column in Column for code in EXPECTED[column]]


@pytest.mark.parametrize("column", list(Column), ids=[c.name for c in Column])
def test_s3_table_5_message_with_exactly_its_must_options_conforms(column: Column) -> None:
    assert verdict(column, minimal(column)) is None
    assert verdict(column, minimal(column, multicast=True), multicast=True) is None


@pytest.mark.parametrize(("column", "code"), CELLS, ids=[f"{c.name}-{o.name}" for c, o in CELLS])
def test_s3_table_5_cell(column: Column, code: OptionCode) -> None:
    presence = EXPECTED[column][code]
    base = minimal(column, multicast=True)
    server_side = SIDES[column][1] is None
    expected_failure = int(code) if server_side else -1
    if presence is Presence.MUST:
        assert verdict(column, without_option(base, code), multicast=True) == expected_failure
    elif presence is Presence.MUST_NOT:
        added = with_option(base, code, companions=False)
        assert verdict(column, added, multicast=True) == expected_failure
    elif presence is Presence.MAY:
        assert verdict(column, with_option(base, code), multicast=True) is None
        assert verdict(column, without_option(with_option(base, code), code)) is None
    else:  # MUST (if multicast): Server Identifier in REQUEST, §2.2.4
        assert verdict(column, without_option(base, code), multicast=True) == expected_failure
        assert verdict(column, without_option(base, code), multicast=False) is None
        assert verdict(column, base, multicast=False) is None


@pytest.mark.parametrize("column", list(Column), ids=[c.name for c in Column])
def test_s2_1_5_unknown_options_are_not_checked(column: Column) -> None:
    options = replace(minimal(column, multicast=True), unknown=(UnknownOption(99, b"x"),))
    assert verdict(column, options, multicast=True) is None


def test_table_check_reports_the_first_offending_option_in_code_order() -> None:
    options = Options(error=ErrorOption(1), lease_time=5)  # GETINFO: LID missing too
    assert table_check(Column.GETINFO, options) == OptionCode.LEASE_TIME
    assert table_check(Column.NAK, Options()) == OptionCode.SERVER_IDENTIFIER


# --- conditional rules -------------------------------------------------------------------------


def request(msg_type: MessageType = MessageType.REQUEST, **options: Any) -> Message:
    base = {"lease_id": LID, "scope": GROUP} if msg_type != MessageType.RENEW else {"lease_id": LID}
    return Message(msg_type, AddressFamily.IPV4, 1, Options(**{**base, **options}))


@pytest.mark.parametrize("msg_type", [MessageType.DISCOVER, MessageType.REQUEST, MessageType.RENEW])
@pytest.mark.parametrize("field", ["start_time", "maximum_start_time"])
def test_s2_12_current_time_must_come_with_an_absolute_time(
    msg_type: MessageType, field: str
) -> None:
    assert server_check(request(msg_type, **{field: NOW}), multicast=False) == 11
    with_now = request(msg_type, **{field: NOW, "current_time": NOW})
    assert server_check(with_now, multicast=False) is None


def test_s3_8_minimum_above_desired_is_invalid_request_naming_option_7() -> None:
    assert server_check(request(addresses=AddressCount(3, 2)), multicast=False) == 7
    assert server_check(request(addresses=AddressCount(2, 2)), multicast=False) is None
    discover = request(MessageType.DISCOVER, addresses=AddressCount(5, 1))
    assert server_check(discover, multicast=True) == 7


def test_s2_2_4_multicast_request_must_name_the_selected_server() -> None:
    assert server_check(request(), multicast=True) == OptionCode.SERVER_IDENTIFIER
    assert server_check(request(), multicast=False) is None
    assert server_check(request(server_id=SERVER), multicast=True) is None


def test_s2_2_1_getinfo_must_include_an_option_request_list() -> None:
    getinfo = Message(MessageType.GETINFO, AddressFamily.IPV4, 1, Options(lease_id=LID))
    assert server_check(getinfo, multicast=True) == OptionCode.OPTION_REQUEST_LIST
    ok = replace(getinfo, options=replace(getinfo.options, option_request_list=(9, 17)))
    assert server_check(ok, multicast=True) is None


@pytest.mark.parametrize("where", ["requested", "required"])
def test_s2_13_2_client_must_not_request_or_require_retry_after(where: str) -> None:
    features = FeatureList(**{where: (Feature.RETRY_AFTER,)})
    assert server_check(request(features=features), multicast=False) == 12
    supported = FeatureList(supported=(Feature.RETRY_AFTER,), required=(Feature.SERVER_MOBILITY,))
    assert server_check(request(features=supported), multicast=False) is None


@pytest.mark.parametrize(
    "msg_type", [0, 9, 255, MessageType.OFFER, MessageType.ACK, MessageType.NAK]
)
def test_s2_2_a_message_that_is_not_a_request_has_no_offending_option(msg_type: int) -> None:
    message = Message(msg_type, AddressFamily.IPV4, 1, Options(lease_id=LID))
    assert server_check(message, multicast=False) == NO_OPTION


def ack(**options: Any) -> Message:
    base = {"server_id": SERVER, "lease_id": LID, "lease_time": 60, "scope": GROUP, "ranges": ()}
    return Message(MessageType.ACK, AddressFamily.IPV4, 1, Options(**{**base, **options}))


@pytest.mark.parametrize("answering", [MessageType.REQUEST, MessageType.RENEW])
@pytest.mark.parametrize("field", ["start_time", "retry_time"])
def test_s2_2_5_s3_14_ack_with_an_absolute_time_must_carry_current_time(
    answering: MessageType, field: str
) -> None:
    assert client_check(ack(), answering=answering)
    assert not client_check(ack(**{field: NOW}), answering=answering)
    assert client_check(ack(**{field: NOW, "current_time": NOW}), answering=answering)


def test_s2_2_3_offer_with_start_time_must_carry_current_time() -> None:
    offer = replace(ack(), msg_type=MessageType.OFFER)
    offer = replace(offer, options=replace(offer.options, ranges=None))
    assert client_check(offer, answering=MessageType.DISCOVER)
    late = replace(offer, options=replace(offer.options, start_time=NOW))
    assert not client_check(late, answering=MessageType.DISCOVER)


def test_s3_13_server_must_not_put_features_in_the_requested_list() -> None:
    features = FeatureList(supported=(1,), required=(1,))
    assert client_check(ack(features=features), answering=MessageType.REQUEST)
    features = FeatureList(supported=(1,), requested=(1,))
    assert not client_check(ack(features=features), answering=MessageType.REQUEST)


def test_rfc2907_s3_3_nesting_state_only_with_the_scope_list() -> None:
    base = Options(server_id=SERVER, lease_id=LID)
    nesting = NestingState(((False,),))
    alone = Message(MessageType.ACK, 1, 1, replace(base, nesting=nesting))
    assert not client_check(alone, answering=MessageType.GETINFO)
    scopes = SAMPLES[OptionCode.MULTICAST_SCOPE_LIST]
    both = Message(MessageType.ACK, 1, 1, replace(base, nesting=nesting, scope_list=scopes))
    assert client_check(both, answering=MessageType.GETINFO)
    # A count that differs from the scope list's makes only the nesting information
    # ignorable (RFC 2907 §5), not the message: see nesting.nesting_for.
    other = NestingState(((False, True), (False, False)))
    mismatch = Message(MessageType.ACK, 1, 1, replace(base, nesting=other, scope_list=scopes))
    assert client_check(mismatch, answering=MessageType.GETINFO)


@pytest.mark.parametrize(
    ("answering", "msg_type"),
    [
        (MessageType.REQUEST, MessageType.OFFER),
        (MessageType.DISCOVER, MessageType.ACK),
        (MessageType.GETINFO, MessageType.OFFER),
        (MessageType.REQUEST, 99),
        (MessageType.OFFER, MessageType.ACK),
        (MessageType.ACK, MessageType.NAK),
    ],
)
def test_s2_2_a_reply_of_a_type_that_does_not_answer_the_request_is_ignored(
    answering: MessageType, msg_type: int
) -> None:
    assert reply_column(answering, msg_type) is None
    message = Message(msg_type, AddressFamily.IPV4, 1, ack().options)
    assert not client_check(message, answering=answering)


@pytest.mark.parametrize(
    "answering",
    [MessageType.GETINFO, MessageType.DISCOVER, MessageType.REQUEST, MessageType.RENEW,
     MessageType.RELEASE],
)  # fmt: skip
def test_s2_6_a_nak_may_answer_any_request(answering: MessageType) -> None:
    nak = Message(
        MessageType.NAK, 1, 1, Options(server_id=SERVER, lease_id=LID, error=ErrorOption(3))
    )
    assert reply_column(answering, MessageType.NAK) is Column.NAK
    assert client_check(nak, answering=answering)


def test_columns_of_requests() -> None:
    assert request_column(MessageType.RENEW) is Column.RENEW
    assert request_column(MessageType.ACK) is None
    assert request_column(42) is None


def test_present_treats_end_as_always_present() -> None:
    assert present(Options(), OptionCode.END)
    assert not present(Options(), OptionCode.LEASE_TIME)
    assert present(Options(ranges=()), OptionCode.LIST_OF_ADDRESS_RANGES)
