"""The MADCAP codec against the RFC text (RFC 2730 §2.1, §2.2, §3; RFC 2907 §3, §5).

Frames are assembled here from the diagrams by hand (``frame``/``option`` below, plain
concatenation, no codec), so a test fails if the codec and the RFC disagree, not merely if
encode and decode disagree with each other.  Known-answer vectors with their sources are in
tests/vectors/madcap_messages.json.
"""

from __future__ import annotations

import json
import struct
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path
from typing import Any

import pytest

from masc.madcap.codec import (
    EncodeError,
    Ignored,
    InvalidRequest,
    MadcapDecodeError,
    decode,
    encode,
    excessive_clock_skew,
    offending_option,
    required_feature_not_supported,
    server_time,
    unsupported_features,
)
from masc.madcap.constants import (
    NO_OPTION,
    AddressFamily,
    ErrorCode,
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
    UnknownOption,
    error_extra,
)
from masc.madcap.rules import present

VECTORS = Path(__file__).parent.parent / "vectors" / "madcap_messages.json"

IPV4, IPV6 = AddressFamily.IPV4, AddressFamily.IPV6
LID = bytes([0]) + bytes(range(1, 17))  # §2.4.1: type 0 and 16 random octets
XID = 0x0102_0304
NOW = 946_684_800  # 2000-01-01T00:00:00Z
END = b"\x00\x00\x00\x00"
GROUP = IPv4Address("239.192.0.0")
SERVER = IPv4Address("192.0.2.10")


# --- frames assembled from the diagrams ------------------------------------------------------


def option(code: int, value: bytes = b"", *, length: int | None = None) -> bytes:
    """§2.1.5: | code (2) | len (2) | value |."""
    return struct.pack("!HH", code, len(value) if length is None else length) + value


def frame(
    *options: bytes,
    msg_type: int = MessageType.REQUEST,
    family: int = 1,
    xid: int = XID,
    version: int = 0,
    end: bytes = END,
) -> bytes:
    """§2.1 Figure 1: | version | msgtype | addrfamily (2) | xid (4) | options | End."""
    return struct.pack("!BBHI", version, msg_type, family, xid) + b"".join(options) + end


LID_OPTION = option(3, LID)


def decoded_options(*options: bytes, family: int = 1) -> Options:
    return decode(frame(LID_OPTION, *options, family=family)).options


def invalid(data: bytes) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        decode(data)
    return caught.value


def u32(n: int) -> bytes:
    return n.to_bytes(4, "big")


# --- §2.1 header and framing -------------------------------------------------------------------


@pytest.mark.parametrize("length", range(12))
def test_s2_1_message_shorter_than_12_octets_is_ignored(length: int) -> None:
    with pytest.raises(Ignored):
        decode(frame()[:length] + bytes(max(0, length - 12)))


def test_s2_1_twelve_octets_header_and_end_is_a_message() -> None:
    data = bytes.fromhex("00 03 0001 01020304 0000 0000")
    assert decode(data) == Message(MessageType.REQUEST, IPV4, XID)


def test_s2_1_header_fields_are_network_byte_order() -> None:
    message = decode(frame(msg_type=8, family=2, xid=0xDEADBEEF))
    assert (message.msg_type, message.family, message.xid) == (8, IPV6, 0xDEADBEEF)
    assert encode(message)[:8] == bytes.fromhex("00 08 0002 deadbeef")


@pytest.mark.parametrize("version", [1, 2, 0x80, 0xFF])
def test_s2_1_1_version_not_zero_is_ignored(version: int) -> None:
    with pytest.raises(Ignored):
        decode(frame(LID_OPTION, version=version))


def test_s2_1_1_version_check_comes_before_the_options() -> None:
    # Even a message whose options are broken is only Ignored: nothing in it is trusted.
    with pytest.raises(Ignored, match="version"):
        decode(frame(option(1, b"\x00"), version=1))


@pytest.mark.parametrize("msg_type", list(MessageType))
def test_s2_2_every_message_type_round_trips(msg_type: MessageType) -> None:
    data = frame(LID_OPTION, msg_type=msg_type)
    message = decode(data)
    assert message.msg_type is msg_type
    assert encode(message) == data


@pytest.mark.parametrize("msg_type", [0, 9, 42, 255])
def test_s2_2_unknown_message_type_decodes_so_the_server_can_nak_it(msg_type: int) -> None:
    message = decode(frame(LID_OPTION, msg_type=msg_type))
    assert message.msg_type == msg_type and not isinstance(message.msg_type, MessageType)
    assert message.options.lease_id == LID


def test_s2_1_3_unknown_family_decodes_when_no_option_uses_it() -> None:
    message = decode(frame(LID_OPTION, option(2, b"\x00\x01" + SERVER.packed), family=99))
    assert message.family == 99 and message.options.server_id == SERVER


@pytest.mark.parametrize("code", [4, 9, 10])
def test_s2_1_3_unknown_family_with_an_address_option_is_invalid_request(code: int) -> None:
    values = {4: GROUP.packed, 9: b"\x00", 10: b""}
    error = invalid(frame(LID_OPTION, option(code, values[code]), family=3))
    assert (error.option, error.family, error.lease_id) == (code, 3, LID)


def test_s2_1_5_options_must_end_with_the_end_option() -> None:
    with pytest.raises(Ignored):
        decode(frame(LID_OPTION, end=b""))


def test_s2_1_5_a_partial_option_header_is_ignored() -> None:
    with pytest.raises(Ignored):
        decode(frame(LID_OPTION, end=b"\x00\x00\x00"))


def test_s2_1_5_option_running_past_the_datagram_is_ignored() -> None:
    with pytest.raises(Ignored):
        decode(frame(option(3, LID, length=len(LID) + 5)))


def test_s2_1_5_octets_after_end_are_ignored() -> None:
    with pytest.raises(Ignored):
        decode(frame(LID_OPTION) + b"\x00")
    with pytest.raises(Ignored):
        decode(frame(LID_OPTION) + END)  # End must occur once, as the last option


def test_s3_1_end_with_nonzero_length_is_invalid_request() -> None:
    # Framed correctly (the message still ends with it), but §3.1 "its length is 0".
    error = invalid(frame(LID_OPTION, end=option(0, b"\x00")))
    assert error.option == OptionCode.END and error.lease_id == LID


# A valid value for each known option (IPv4 header family).
VALID_VALUES: dict[int, bytes] = {
    1: u32(3600),
    2: b"\x00\x01" + SERVER.packed,
    3: LID,
    4: GROUP.packed,
    5: b"\x00\x09",
    6: u32(NOW),
    7: b"\x00\x01\x00\x02",
    8: b"en",
    9: b"\x00",
    10: GROUP.packed + b"\x00\x01",
    11: u32(NOW),
    12: bytes(6),
    13: u32(NOW),
    14: u32(60),
    15: u32(NOW),
    16: b"\x00\x01\xff\xff",
    17: b"\x00",
}


@pytest.mark.parametrize("code", sorted(VALID_VALUES))
def test_s2_1_5_an_option_given_twice_is_invalid_request(code: int) -> None:
    twice = option(code, VALID_VALUES[code]) * 2
    extra = b"" if code == 3 else LID_OPTION
    error = invalid(frame(extra, twice))
    assert error.option == code
    assert error.lease_id == (None if code == 3 else LID)
    assert (error.msg_type, error.family, error.xid) == (MessageType.REQUEST, 1, XID)


@pytest.mark.parametrize("code", sorted(VALID_VALUES))
def test_s3_every_option_round_trips_alone(code: int) -> None:
    data = frame(option(code, VALID_VALUES[code]))
    assert encode(decode(data)) == data


def test_s2_1_5_unknown_option_is_skipped_and_kept_for_the_round_trip() -> None:
    data = frame(LID_OPTION, option(18, b"x"), option(0xFFFF, b""))
    message = decode(data)
    assert message.options.lease_id == LID
    assert message.options.unknown == (UnknownOption(18, b"x"), UnknownOption(0xFFFF, b""))
    assert encode(message) == data


def test_s2_1_5_two_unknown_options_of_one_code_are_both_ignored() -> None:
    # Choice: "processed as if the unknown options were not present" wins over the
    # one-per-type rule, which a receiver cannot judge for options it does not know.
    message = decode(frame(LID_OPTION, option(300, b"a"), option(300, b"b")))
    assert [u.value for u in message.options.unknown] == [b"a", b"b"]


def test_s2_1_5_option_order_has_no_significance_and_encoding_is_canonical() -> None:
    parts = [option(99, b"?"), option(11, u32(NOW)), LID_OPTION, option(1, u32(60))]
    shuffled = decode(frame(*parts))
    assert shuffled == decode(frame(*reversed(parts)))
    assert encode(shuffled) == frame(option(1, u32(60)), LID_OPTION, option(11, u32(NOW)), parts[0])


def test_s2_6_invalid_request_carries_what_a_nak_needs() -> None:
    error = invalid(frame(LID_OPTION, option(1, b"\x00"), msg_type=4, xid=77))
    assert (error.option, error.msg_type, error.family, error.xid) == (1, 4, 1, 77)
    assert error.lease_id == LID
    assert isinstance(error, MadcapDecodeError) and "option 1" in error.reason


def test_s2_6_invalid_request_reports_the_first_bad_option_in_wire_order() -> None:
    assert invalid(frame(option(6, b""), option(1, b""), LID_OPTION)).option == 6


# --- §3 each option ----------------------------------------------------------------------------

U32_OPTIONS = {
    1: "lease_time",
    6: "start_time",
    11: "current_time",
    13: "retry_time",
    14: "minimum_lease_time",
    15: "maximum_start_time",
}


@pytest.mark.parametrize("code", sorted(U32_OPTIONS))
def test_s3_2_s3_7_s3_12_s3_14_s3_15_s3_16_times_are_u32_of_length_4(code: int) -> None:
    parts = [LID_OPTION, option(code, bytes.fromhex("fedcba98"))]
    data = frame(*(reversed(parts) if code < 3 else parts))  # canonical: code order
    assert getattr(decode(data).options, U32_OPTIONS[code]) == 0xFEDCBA98
    assert encode(decode(data)) == data


@pytest.mark.parametrize("code", [*sorted(U32_OPTIONS), 7])
@pytest.mark.parametrize("length", [0, 3, 5, 8])
def test_s3_fixed_length_options_of_another_length_are_invalid_request(
    code: int, length: int
) -> None:
    assert invalid(frame(LID_OPTION, option(code, bytes(length)))).option == code


def test_s3_3_server_identifier_carries_its_own_family() -> None:
    v6 = IPv6Address("2001:db8::10")
    in_v4 = decoded_options(option(2, b"\x00\x02" + v6.packed))
    assert in_v4.server_id == v6
    in_v6 = decoded_options(option(2, b"\x00\x01" + SERVER.packed), family=2)
    assert in_v6.server_id == SERVER


@pytest.mark.parametrize(
    "value",
    [b"", b"\x00", b"\x00\x01", b"\x00\x01\xc0\x00\x02", b"\x00\x01" + bytes(5),
     b"\x00\x02" + bytes(4), b"\x00\x03" + bytes(4), b"\x00\x02" + bytes(17)],
)  # fmt: skip
def test_s3_3_server_identifier_of_the_wrong_shape_is_invalid_request(value: bytes) -> None:
    assert invalid(frame(LID_OPTION, option(2, value))).option == 2


def test_s3_4_lease_identifier_is_opaque_with_minimum_length_1() -> None:
    assert decode(frame(option(3, b"\x01"))).options.lease_id == b"\x01"
    error = invalid(frame(option(3, b"")))
    assert error.option == 3 and error.lease_id is None


def test_s3_5_multicast_scope_is_one_address_of_the_header_family() -> None:
    assert decoded_options(option(4, GROUP.packed)).scope == GROUP
    v6 = IPv6Address("ff15::")
    assert decoded_options(option(4, v6.packed), family=2).scope == v6
    assert invalid(frame(LID_OPTION, option(4, v6.packed))).option == 4
    assert invalid(frame(LID_OPTION, option(4, GROUP.packed), family=2)).option == 4
    assert invalid(frame(LID_OPTION, option(4, b"\xef"))).option == 4


def test_s3_6_option_request_list_is_a_list_of_two_octet_codes() -> None:
    data = frame(LID_OPTION, option(5, bytes.fromhex("0009 0011 000b")), msg_type=8)
    assert decode(data).options.option_request_list == (9, 17, 11)
    assert encode(decode(data)) == data


@pytest.mark.parametrize("value", [b"", b"\x00", b"\x00\x09\x00"])
def test_s3_6_option_request_list_minimum_length_2_and_even(value: bytes) -> None:
    assert invalid(frame(LID_OPTION, option(5, value))).option == 5


def test_s3_8_number_of_addresses_is_minimum_then_desired() -> None:
    assert decoded_options(option(7, bytes.fromhex("0002 0008"))).addresses == AddressCount(2, 8)


def test_s3_8_minimum_above_desired_decodes_for_the_rules_to_reject() -> None:
    # The Invalid Request of §3.8 is rules.server_check's (it names option 7 there).
    assert decoded_options(option(7, bytes.fromhex("0009 0001"))).addresses == AddressCount(9, 1)


def test_s3_9_requested_language_is_a_tag_of_minimum_length_0() -> None:
    assert decoded_options(option(8, b"en-GB")).language == "en-GB"
    assert decoded_options(option(8, b"")).language == ""
    assert invalid(frame(LID_OPTION, option(8, "fr-é".encode()))).option == 8


RFC_SCOPE_LIST_VALUE = bytes.fromhex(
    "02"
    "efc00000 efc3ffff 0a 01 80 02 656e 0f" + b"Inside abcd.com".hex()
    + "e0000100 eeffffff 10 01 80 02 656e 05" + b"world".hex()
)  # fmt: skip


def test_s3_10_multicast_scope_list_matches_the_example_of_the_rfc() -> None:
    # §3.10 Example: "Code 9, Len 51, Count 2" then the two tuples octet for octet.
    assert len(RFC_SCOPE_LIST_VALUE) == 51
    data = frame(
        option(2, VALID_VALUES[2]), LID_OPTION, option(9, RFC_SCOPE_LIST_VALUE), msg_type=5
    )
    scopes = decode(data).options.scope_list
    assert scopes == (
        ScopeEntry(
            GROUP, IPv4Address("239.195.255.255"), 10, (ScopeName("en", "Inside abcd.com", True),)
        ),
        ScopeEntry(
            IPv4Address("224.0.1.0"), IPv4Address("238.255.255.255"), 16,
            (ScopeName("en", "world", True),),
        ),
    )  # fmt: skip
    assert encode(decode(data)) == data


def test_s3_10_name_count_may_be_zero_and_names_are_utf8() -> None:
    name = "Zone « été »"
    entry = GROUP.packed + GROUP.packed + b"\x05\x02" + b"\x00\x02fr" + bytes([len(name.encode())])
    entry += name.encode() + b"\x80\x05de-CH\x01Z"
    bare = GROUP.packed[:3] + b"\x01" + GROUP.packed + b"\x01\x00"
    scopes = decoded_options(option(9, b"\x02" + entry + bare)).scope_list
    assert scopes is not None
    assert scopes[0].names == (ScopeName("fr", name), ScopeName("de-CH", "Z", default=True))
    assert scopes[1].names == () and scopes[1].ttl == 1


def test_s3_10_name_flags_other_than_the_high_bit_are_ignored() -> None:
    entry = GROUP.packed * 2 + b"\x0a\x01" + b"\x7f\x02en\x01x"
    scopes = decoded_options(option(9, b"\x01" + entry)).scope_list
    assert scopes is not None and scopes[0].names == (ScopeName("en", "x", default=False),)


def test_s3_10_minimum_length_0_is_an_empty_scope_list() -> None:
    assert decoded_options(option(9, b"")).scope_list == ()


def test_s3_10_ipv6_scope_list() -> None:
    first, last = IPv6Address("ff15::"), IPv6Address("ff15::ffff")
    value = b"\x01" + first.packed + last.packed + b"\x10\x00"
    assert decoded_options(option(9, value), family=2).scope_list == (ScopeEntry(first, last, 16),)


@pytest.mark.parametrize(
    "value",
    [
        b"\x01",  # count 1, no tuple
        b"\x01" + GROUP.packed * 2 + b"\x0a",  # no name count
        b"\x01" + GROUP.packed * 2 + b"\x0a\x01\x80\x00\x01x",  # Lang Length zero
        b"\x01" + GROUP.packed * 2 + b"\x0a\x01\x80\x02en\x00",  # Name Length zero
        b"\x01" + GROUP.packed * 2 + b"\x0a\x01\x80\x02en\x02\xff\xfe",  # not UTF-8
        b"\x01" + GROUP.packed * 2 + b"\x0a\x01\x80\x02\xe9n\x01x",  # tag not ASCII
        b"\x01" + GROUP.packed * 2 + b"\x0a\x01\x80\x02en\x05xy",  # name runs short
        b"\x01" + GROUP.packed * 2 + b"\x0a\x00\x00",  # an octet left over
        b"\x02" + (GROUP.packed * 2 + b"\x0a\x00") * 2,  # §3.10 Scope IDs MUST be unique
    ],
)
def test_s3_10_malformed_multicast_scope_list_is_invalid_request(value: bytes) -> None:
    assert invalid(frame(LID_OPTION, option(9, value))).option == 9


def test_s3_11_list_of_address_ranges_block_size_is_two_octets() -> None:
    # §3.11 figure: | ... S1 ... |B11|B12| ... S2 ... |B21|B22|
    value = bytes.fromhex("e0000111 0001  e0000200 0100")
    ranges = decoded_options(option(10, value)).ranges
    assert ranges == (
        AddressRange(IPv4Address("224.0.1.17"), 1),
        AddressRange(IPv4Address("224.0.2.0"), 256),
    )


def test_s3_11_minimum_length_0_is_the_empty_list_of_a_retry_after_ack() -> None:
    assert decoded_options(option(10, b"")).ranges == ()


def test_s3_11_ipv6_ranges_use_the_header_family() -> None:
    start = IPv6Address("ff15::100")
    value = start.packed + b"\xff\xff"
    assert decoded_options(option(10, value), family=2).ranges == (AddressRange(start, 65535),)


@pytest.mark.parametrize(
    "value",
    [
        GROUP.packed,  # no block size
        GROUP.packed + b"\x00",  # one octet of block size
        GROUP.packed + b"\x00\x01" + GROUP.packed,  # second entry cut short
        GROUP.packed + b"\x00\x00",  # block size 0 (choice: at least one address)
        b"\xff\xff\xff\xff\x00\x02",  # runs past 255.255.255.255
    ],
)
def test_s3_11_malformed_list_of_address_ranges_is_invalid_request(value: bytes) -> None:
    assert invalid(frame(LID_OPTION, option(10, value))).option == 10


def test_s3_13_feature_list_is_three_counted_lists() -> None:
    value = bytes.fromhex("0002 0000 0001  0001 0002  0000")
    features = decoded_options(option(12, value)).features
    assert features == FeatureList(supported=(0, 1), requested=(2,), required=())
    assert features.mentions(1) and not features.mentions(5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value",
    [b"", bytes(4), bytes(5), bytes(7), bytes.fromhex("0001 0000 0000"),
     bytes.fromhex("0000 0000 0000 0001")],
)  # fmt: skip
def test_s3_13_feature_list_minimum_length_6_and_counts_must_fit(value: bytes) -> None:
    assert invalid(frame(LID_OPTION, option(12, value))).option == 12


def test_s3_17_error_is_a_code_and_raw_extra_data() -> None:
    error = decoded_options(option(16, bytes.fromhex("0400 abcdef"))).error
    assert error == ErrorOption(0x400, bytes.fromhex("abcdef"))  # §3.17.6 experimental
    assert decoded_options(option(16, b"\x00\x03")).error == ErrorOption(3)


@pytest.mark.parametrize("value", [b"", b"\x00"])
def test_s3_17_error_minimum_length_is_2(value: bytes) -> None:
    assert invalid(frame(LID_OPTION, option(16, value))).option == 16


@pytest.mark.parametrize("code", [ErrorCode.VALID_REQUEST_NOT_COMPLETED, ErrorCode.INVALID_REQUEST])
def test_s3_17_1_s3_17_2_extra_data_is_the_offending_option(code: ErrorCode) -> None:
    assert offending_option(error_extra(code, 7)) == 7
    assert offending_option(error_extra(code, NO_OPTION)) == 0xFFFF
    assert error_extra(code, 7) == ErrorOption(code, b"\x00\x07")
    assert offending_option(ErrorOption(code, b"\x00")) is None
    assert offending_option(ErrorOption(ErrorCode.EXCESSIVE_CLOCK_SKEW, b"\x00\x07")) is None


def test_s3_17_3_excessive_clock_skew_carries_the_server_time() -> None:
    error = excessive_clock_skew(NOW)
    assert error == ErrorOption(2, u32(NOW))
    assert server_time(error) == NOW
    assert server_time(ErrorOption(2, b"\x00")) is None
    assert server_time(ErrorOption(1, u32(NOW))) is None


def test_s3_17_4_lease_identifier_not_recognized_has_no_extra_data() -> None:
    error = decoded_options(option(16, b"\x00\x03")).error
    assert error is not None and error.code == ErrorCode.LEASE_ID_NOT_RECOGNIZED
    assert (offending_option(error), server_time(error), unsupported_features(error)) == (
        None,
        None,
        (),
    )


def test_s3_17_5_required_feature_not_supported_lists_the_features() -> None:
    error = required_feature_not_supported([0, 2])
    assert error == ErrorOption(4, bytes.fromhex("0000 0002"))
    assert unsupported_features(error) == (0, 2)
    assert unsupported_features(ErrorOption(4, b"\x00")) == ()
    assert unsupported_features(ErrorOption(0, b"\x00\x02")) == ()


# --- RFC 2907 option 17 ------------------------------------------------------------------------

FIGURE_4 = bytes.fromhex("00 11 00 08 07 fc 7c 1c 1c 0c 04 00")
FIGURE_4_MATRIX = [  # the matrix of Figure 4, diagonal drawn as in the figure
    "1111111",
    "0111111",
    "0010111",
    "0001111",
    "0000111",
    "0000011",
    "0000001",
]


def state_of(matrix: list[str]) -> NestingState:
    return NestingState(
        tuple(tuple(c == "1" and i != j for j, c in enumerate(row)) for i, row in enumerate(matrix))
    )


def test_rfc2907_s5_figure_4_vector_decodes_and_encodes() -> None:
    data = frame(option(2, VALID_VALUES[2]), LID_OPTION, msg_type=5, end=FIGURE_4 + END)
    nesting = decode(data).options.nesting
    assert nesting == state_of(FIGURE_4_MATRIX)
    assert nesting.count == 7 and not any(nesting.rows[i][i] for i in range(7))
    assert encode(decode(data)) == data


@pytest.mark.parametrize(
    ("count", "width"), [(0, 0), (1, 0), (2, 1), (8, 1), (9, 1), (10, 2), (17, 2), (18, 3)]
)
def test_rfc2907_s5_rows_are_ceil_n_minus_1_over_8_octets(count: int, width: int) -> None:
    full = NestingState(tuple(tuple(i != j for j in range(count)) for i in range(count)))
    data = encode(Message(5, IPV4, 1, Options(lease_id=LID, nesting=full)))
    value = data[8 + 4 + len(LID) + 4 : -4]  # header, Lease Identifier, option 17 header
    assert len(value) == 1 + count * width and value[0] == count
    assert decode(data).options.nesting == full


def test_rfc2907_s3_2_rows_are_msb_first_with_the_diagonal_removed() -> None:
    # 10 scopes: row 0 says 0/9 only: after removing the diagonal that is bit 8, the first
    # bit of the second octet; row 9 says 9/0: bit 0, the MSB of the first octet.
    value = b"\x0a" + b"\x00\x80" + bytes(16) + b"\x80\x00"
    nesting = decoded_options(option(17, value)).nesting
    assert nesting is not None
    assert [(i, j) for i in range(10) for j in range(10) if nesting.rows[i][j]] == [(0, 9), (9, 0)]


def test_rfc2907_s3_2_padding_bits_are_ignored() -> None:
    nesting = decoded_options(option(17, b"\x02\x7f\x3f")).nesting
    assert nesting == NestingState(((False, False), (False, False)))


@pytest.mark.parametrize("value", [b"", b"\x02\x00", b"\x02\x00\x00\x00", b"\x09" + bytes(8)])
def test_rfc2907_s5_matrix_length_must_match_the_count(value: bytes) -> None:
    assert invalid(frame(LID_OPTION, option(17, value))).option == 17


# --- encoding ----------------------------------------------------------------------------------


def message(**options: Any) -> Message:
    return Message(MessageType.ACK, IPV4, XID, Options(**{"lease_id": LID, **options}))


@pytest.mark.parametrize(
    "bad",
    [
        Message(MessageType.ACK, IPV4, 1 << 32),
        Message(256, IPV4, 1),
        Message(MessageType.ACK, 1 << 16, 1),
        Message(MessageType.ACK, IPV4, 1, version=256),
        message(lease_time=-1),
        message(lease_time=1 << 32),
        message(lease_id=b""),
        message(scope=IPv6Address("ff15::")),
        Message(MessageType.ACK, 7, 1, Options(scope=GROUP)),
        Message(MessageType.ACK, 7, 1, Options(ranges=())),
        Message(MessageType.ACK, 7, 1, Options(scope_list=())),
        message(option_request_list=()),
        message(option_request_list=(1 << 16,)),
        message(addresses=AddressCount(1, 1 << 16)),
        message(language="é"),
        message(ranges=(AddressRange(GROUP, 0),)),
        message(ranges=(AddressRange(GROUP, 1 << 16),)),
        message(ranges=(AddressRange(IPv4Address("255.255.255.255"), 2),)),
        message(scope_list=(ScopeEntry(GROUP, GROUP, 256),)),
        message(scope_list=(ScopeEntry(GROUP, GROUP, 1),) * 2),
        message(scope_list=(ScopeEntry(GROUP, GROUP, 1, (ScopeName("", "x"),)),)),
        message(scope_list=(ScopeEntry(GROUP, GROUP, 1, (ScopeName("en", ""),)),)),
        message(scope_list=(ScopeEntry(GROUP, GROUP, 1, (ScopeName("en", "x" * 256),)),)),
        message(scope_list=(ScopeEntry(GROUP, IPv6Address("ff15::"), 1),)),
        message(features=FeatureList(supported=(1 << 16,))),
        message(error=ErrorOption(1 << 16)),
        message(error=ErrorOption(0, bytes(0xFFFE))),
        message(nesting=NestingState(((True,),))),
        message(nesting=NestingState(((False, True),))),
        message(nesting=NestingState(((False,),) * 256)),
        message(unknown=(UnknownOption(4, b""),)),
        message(unknown=(UnknownOption(0, b""),)),
        message(unknown=(UnknownOption(1 << 16, b""),)),
        message(unknown=(UnknownOption(99, bytes(1 << 16)),)),
    ],
)
def test_encode_refuses_what_the_wire_cannot_carry(bad: Message) -> None:
    with pytest.raises(EncodeError):
        encode(bad)


def test_encode_writes_known_options_in_code_order_then_unknown_then_end() -> None:
    data = encode(
        message(
            unknown=(UnknownOption(500, b"u"), UnknownOption(20, b"v")),
            current_time=NOW,
            server_id=SERVER,
            lease_time=60,
        )
    )
    codes = []
    offset = 8
    while offset < len(data):
        code, length = struct.unpack_from("!HH", data, offset)
        codes.append(code)
        offset += 4 + length
    assert codes == [1, 2, 3, 11, 500, 20, 0]


def test_encode_of_a_version_other_than_zero_gives_what_decode_ignores() -> None:
    with pytest.raises(Ignored):
        decode(encode(Message(MessageType.GETINFO, IPV4, 1, version=1)))


# --- known-answer vectors ----------------------------------------------------------------------


def _address(text: str) -> IPv4Address | IPv6Address:
    return ip_address(text)


def message_from_json(spec: dict[str, Any]) -> Message:
    """The vector file's readable message form -> Message."""
    o = spec["options"]
    kw: dict[str, Any] = {}
    for name in ("lease_time", "start_time", "current_time", "retry_time",
                 "minimum_lease_time", "maximum_start_time", "language"):  # fmt: skip
        if name in o:
            kw[name] = o[name]
    for name in ("server_id", "scope"):
        if name in o:
            kw[name] = _address(o[name])
    if "lease_id" in o:
        kw["lease_id"] = bytes.fromhex(o["lease_id"])
    if "option_request_list" in o:
        kw["option_request_list"] = tuple(o["option_request_list"])
    if "addresses" in o:
        kw["addresses"] = AddressCount(*o["addresses"])
    if "scope_list" in o:
        kw["scope_list"] = tuple(
            ScopeEntry(
                _address(e["scope_id"]),
                _address(e["last_address"]),
                e["ttl"],
                tuple(ScopeName(n["language"], n["name"], n["default"]) for n in e["names"]),
            )
            for e in o["scope_list"]
        )
    if "ranges" in o:
        kw["ranges"] = tuple(AddressRange(_address(a), n) for a, n in o["ranges"])
    if "features" in o:
        f = o["features"]
        kw["features"] = FeatureList(
            tuple(f["supported"]), tuple(f["requested"]), tuple(f["required"])
        )
    if "error" in o:
        kw["error"] = ErrorOption(o["error"]["code"], bytes.fromhex(o["error"]["extra"]))
    if "nesting" in o:
        kw["nesting"] = state_of([row.replace("*", "0") for row in o["nesting"]])
    if "unknown" in o:
        kw["unknown"] = tuple(
            UnknownOption(u["code"], bytes.fromhex(u["value"])) for u in o["unknown"]
        )
    return Message(MessageType[spec["msg_type"]], AddressFamily(spec["family"]), spec["xid"],
                   Options(**kw))  # fmt: skip


def _hex(text: str) -> bytes:
    return bytes.fromhex(text.replace("|", " "))


VECTOR_FILE: dict[str, Any] = json.loads(VECTORS.read_text())
MESSAGE_VECTORS = VECTOR_FILE["messages"]
ERROR_VECTORS = VECTOR_FILE["errors"]


@pytest.mark.parametrize("vector", MESSAGE_VECTORS, ids=[v["name"] for v in MESSAGE_VECTORS])
def test_vector_decodes_to_its_message_and_encodes_back(vector: dict[str, Any]) -> None:
    assert vector["source"]
    data = _hex(vector["hex"])
    expected = message_from_json(vector["message"])
    assert decode(data) == expected
    assert encode(expected) == data


@pytest.mark.parametrize("vector", ERROR_VECTORS, ids=[v["name"] for v in ERROR_VECTORS])
def test_vector_is_rejected_as_stated(vector: dict[str, Any]) -> None:
    assert vector["source"]
    data = _hex(vector["hex"])
    if vector["result"] == "ignored":
        with pytest.raises(Ignored):
            decode(data)
    else:
        error = invalid(data)
        assert error.option == vector["option"]
        lease_id = vector["lease_id"]
        assert error.lease_id == (None if lease_id is None else bytes.fromhex(lease_id))


def test_vectors_cover_every_message_type_and_every_option() -> None:
    messages = [decode(_hex(v["hex"])) for v in MESSAGE_VECTORS]
    assert {m.msg_type for m in messages} == set(MessageType)
    seen = set()
    for m in messages:
        seen |= {code for code in range(1, 18) if _has(m.options, code)}
        seen |= {u.code for u in m.options.unknown}
    assert set(range(1, 18)) <= seen and 300 in seen


def test_vectors_hold_the_rfc2907_figure_4_option_and_the_s3_10_example() -> None:
    hexes = [_hex(v["hex"]) for v in MESSAGE_VECTORS]
    assert any(FIGURE_4 in h for h in hexes)
    assert any(b"\x00\x09\x00\x33" + RFC_SCOPE_LIST_VALUE in h for h in hexes)


def _has(options: Options, code: int) -> bool:
    return present(options, OptionCode(code))
