"""The wire codec and framer against RFC 2909 §7 (formats) and §8.1-§8.3 (errors).

Frames for error cases are assembled here with ``struct`` straight from the §7 diagrams, not
with the encoder under test, so a wrong layout in the encoder cannot hide a wrong layout in
the decoder.  Every §8.1-§8.3 error case has exactly one test named after its section that
pins the full NOTIFICATION: (code, subcode, data, must_close).  Where §8 is loose the
expected values follow the decisions listed in docs/conformance.md.
"""

from __future__ import annotations

import json
import struct
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from pathlib import Path
from typing import Any

import pytest

from masc.protocol.constants import (
    LEGAL_ORIGIN_ROLES,
    AddressFamily,
    ClaimType,
    Role,
)
from masc.protocol.errors import (
    CoreMisuse,
    ErrorCode,
    HeaderSubcode,
    MessageHeaderError,
    OpenSubcode,
    ProtocolError,
    UpdateMessageError,
    UpdateSubcode,
)
from masc.protocol.wire import (
    Claim,
    DomainId,
    Framer,
    Keepalive,
    Message,
    NodeId,
    Notification,
    Open,
    OptionalParameter,
    Update,
    decode,
    encode,
)
from masc.protocol.wire.codec import encode_claim

VECTORS = Path(__file__).parent.parent / "vectors" / "masc_messages.json"

IPV4, IPV6 = AddressFamily.IPV4, AddressFamily.IPV6
HEADER_ERROR, OPEN_ERROR, UPDATE_ERROR = (
    ErrorCode.MESSAGE_HEADER,
    ErrorCode.OPEN_MESSAGE,
    ErrorCode.UPDATE_MESSAGE,
)
MC, CC = True, False  # the §7.5 marks, as ProtocolError.must_close

TIMESTAMP = 946_684_800  # 2000-01-01T00:00:00Z
LIFETIME = 2_592_000
HOLDTIME = 172_800
NODE4 = int(IPv4Address("192.0.2.1"))
NODE6 = int(IPv6Address("2001:db8::1"))
# Address and mask words of a valid claim in each family.
GROUP4 = (int(IPv4Address("239.192.0.0")), 0xFFFF0000)  # 239.192.0.0/16
GROUP6 = (int(IPv6Address("ff3e:40::")), ((1 << 32) - 1) << 96)  # ff3e:40::/32
ALL_ONES = {IPV4: (1 << 32) - 1, IPV6: (1 << 128) - 1}


# --- frames assembled from the §7 diagrams ---------------------------------------------------


def message(type_code: int, body: bytes) -> bytes:
    """§7.1: | Length (2) | Type (1) | Reserved (1) | body."""
    return struct.pack("!HBB", 4 + len(body), type_code, 0) + body


def open_body(
    *,
    version: int = 1,
    family: int = 1,
    role: int = Role.CHILD,
    hold_time: int = 90,
    ids: tuple[int, int, int] = (65001, NODE4, 65000),
    id_length: int = 4,
    tail: bytes = b"",
) -> bytes:
    """§7.2: | Version | R AddrFam Rol | Hold Time | three ids | optional parameters."""
    octet = (family << 2) | role
    return (
        struct.pack("!BBH", version, octet, hold_time)
        + b"".join(i.to_bytes(id_length, "big") for i in ids)
        + tail
    )


def open_frame(**fields: Any) -> bytes:
    return message(1, open_body(**fields))


def mask_of(family: AddressFamily, prefixlen: int) -> int:
    return ALL_ONES[family] ^ (ALL_ONES[family] >> prefixlen)


def attribute(
    *,
    type_code: int = ClaimType.NEW_CLAIM,
    family: int = 1,
    role: int = Role.INTERNAL,
    deprecated: bool = False,
    address: int | None = None,
    mask: int | None = None,
    id_length: int | None = None,
    tail: bytes = b"",
    length: int | None = None,
    truncate: int | None = None,
) -> bytes:
    """§7.3 claim attribute.  ``truncate`` cuts the attribute (Length follows the cut unless
    ``length`` is given); ``tail`` is raw optional parameters and padding."""
    if id_length is None:
        id_length = 16 if family == 2 else 4
    default_address, default_mask = GROUP6 if id_length == 16 else GROUP4
    ids = (65001, NODE6 if id_length == 16 else NODE4)
    octet = (int(deprecated) << 7) | (family << 2) | role
    body = (
        struct.pack("!BBHIII", 0, octet, 0, TIMESTAMP, LIFETIME, HOLDTIME)
        + b"".join(i.to_bytes(id_length, "big") for i in ids)
        + (default_address if address is None else address).to_bytes(id_length, "big")
        + (default_mask if mask is None else mask).to_bytes(id_length, "big")
        + tail
    )
    whole = struct.pack("!HBB", 0, type_code, 0) + body
    if truncate is not None:
        whole = whole[:truncate]
    return struct.pack("!HBB", len(whole) if length is None else length, type_code, 0) + whole[4:]


def raw_attribute(type_code: int, length: int, body: bytes) -> bytes:
    return struct.pack("!HBB", length, type_code, 0) + body


def update_frame(*attributes: bytes) -> bytes:
    return message(2, b"".join(attributes))


VALID = attribute()  # a 36-octet IPv4 NEW_CLAIM for 239.192.0.0/16


# --- values ----------------------------------------------------------------------------------


def claim(
    family: AddressFamily = IPV4,
    *,
    type: ClaimType = ClaimType.NEW_CLAIM,
    role: Role = Role.INTERNAL,
    deprecated: bool = False,
    prefix: str | None = None,
    parameters: tuple[OptionalParameter, ...] = (),
) -> Claim:
    if prefix is None:
        prefix = "239.192.0.0/16" if family is IPV4 else "ff3e:40::/32"
    return Claim(
        type=type,
        origin_role=role,
        timestamp=TIMESTAMP,
        lifetime=LIFETIME,
        holdtime=HOLDTIME,
        origin_domain=DomainId(65001),
        origin_node=NodeId(NODE4 if family is IPV4 else NODE6),
        prefix=ip_network(prefix),
        deprecated=deprecated,
        parameters=parameters,
    )


VALID_CLAIM = claim()


def an_open(family: AddressFamily = IPV4, **overrides: Any) -> Open:
    fields: dict[str, Any] = dict(
        family=family,
        role=Role.CHILD,
        hold_time=90,
        domain_id=DomainId(65001),
        node_id=NodeId(NODE4 if family is IPV4 else NODE6),
        parent_domain_id=DomainId(65000),
    )
    fields.update(overrides)
    return Open(**fields)


def error_of(frame: bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        decode(frame)
    return info.value


def wire(error: ProtocolError) -> tuple[int, int, bytes, bool]:
    return (error.code, error.subcode, error.data, error.must_close)


def framer_error(stream: bytes) -> MessageHeaderError:
    framer = Framer()
    framer.feed(stream)
    with pytest.raises(MessageHeaderError) as info:
        framer.next_frame()
    return info.value


def legal_pairs() -> list[tuple[ClaimType, Role]]:
    return [(t, r) for t in ClaimType for r in Role if r in LEGAL_ORIGIN_ROLES[t]]


# --- §7 round trips --------------------------------------------------------------------------


@pytest.mark.parametrize("family", list(AddressFamily), ids=lambda f: f.name)
@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.name)
@pytest.mark.parametrize("hold_time", [0, 3, 240, 0xFFFF])
def test_s7_2_open_round_trip(family: AddressFamily, role: Role, hold_time: int) -> None:
    top = ALL_ONES[family]
    message = an_open(
        family,
        role=role,
        hold_time=hold_time,
        domain_id=DomainId(top),
        node_id=NodeId(top - 1),
        parent_domain_id=DomainId(0),
        parameters=(OptionalParameter(1, b"\x01\x02"), OptionalParameter(255, b"")),
    )
    frame = encode(message)
    assert len(frame) == 4 + 4 + 3 * family.id_length + 4 + 2
    assert decode(frame) == message


@pytest.mark.parametrize(
    "parameters",
    [
        (),
        (OptionalParameter(7, b"\xbe\xef"),),
        (OptionalParameter(0, b"\x00"),),  # type 0 with a value is not the padding marker
        (OptionalParameter(5, b""), OptionalParameter(6, bytes(255))),
    ],
    ids=["none", "one", "type-0-with-value", "empty-and-longest"],
)
def test_s7_2_open_optional_parameters_round_trip(
    parameters: tuple[OptionalParameter, ...],
) -> None:
    message = an_open(parameters=parameters)
    assert decode(encode(message)) == message


@pytest.mark.parametrize("family", list(AddressFamily), ids=lambda f: f.name)
@pytest.mark.parametrize(
    ("type", "role"), legal_pairs(), ids=[f"{t.name}-{r.name}" for t, r in legal_pairs()]
)
@pytest.mark.parametrize("deprecated", [False, True], ids=["active", "D-bit"])
def test_s7_3_claim_round_trip(
    family: AddressFamily, type: ClaimType, role: Role, deprecated: bool
) -> None:
    update = Update((claim(family, type=type, role=role, deprecated=deprecated),))
    frame = encode(update)
    assert len(frame) == 4 + 20 + 4 * family.id_length
    assert decode(frame) == update


@pytest.mark.parametrize("value_length", [0, 1, 2, 3])
@pytest.mark.parametrize("family", list(AddressFamily), ids=lambda f: f.name)
def test_s7_3_claim_optional_parameters_round_trip_with_padding(
    family: AddressFamily, value_length: int
) -> None:
    # One parameter of 2 + n octets needs 2, 1, 0 or 3 padding octets: all four alignments.
    parameters = (OptionalParameter(9, bytes(range(1, value_length + 1))),)
    update = Update((claim(family, parameters=parameters),))
    frame = encode(update)
    assert (len(frame) - 4) % 4 == 0
    assert decode(frame) == update


def test_s7_3_update_with_several_attributes_round_trip() -> None:
    update = Update(
        (
            claim(IPV4, type=ClaimType.NEW_CLAIM, role=Role.CHILD),
            claim(IPV4, type=ClaimType.CLAIM_DENIED, role=Role.PARENT, prefix="239.192.0.0/24"),
            claim(IPV6, type=ClaimType.PREFIX_MANAGED, role=Role.INTERNAL, deprecated=True),
            claim(IPV4, type=ClaimType.WITHDRAW, role=Role.SIBLING, prefix="0.0.0.0/8"),
            claim(IPV6, parameters=(OptionalParameter(200, b"xyz"),)),
        )
    )
    assert decode(encode(update)) == update


def test_a_relayed_frame_decoded_again_gives_the_same_value_and_errors_every_time() -> None:
    # A parent relays one frame to all its children: in one process it is decoded once
    # and the frozen value shared; a faulty frame is refused each time it arrives, each
    # time with its own (mutable) error.
    frame = encode(Update((claim(IPV4, type=ClaimType.NEW_CLAIM, role=Role.CHILD),)))
    first = decode(frame)
    assert decode(bytes(frame)) is first
    assert decode(bytearray(frame)) == first  # copied to bytes, then found as any copy is
    bad = update_frame(VALID, attribute(mask=0xFF00FF00, address=0))
    errors = [error_of(bad), error_of(bad)]
    assert errors[0] is not errors[1]
    for error in errors:
        assert isinstance(error, UpdateMessageError)
        assert error.salvaged == Update((VALID_CLAIM,))


def test_a_relayed_update_is_encoded_once_and_an_equal_one_gives_the_same_octets() -> None:
    # A parent sends one Update value to each of its other children: the octets are
    # made once.  An equal value built afresh encodes to the same octets, not the memo's.
    update = Update((claim(IPV4, type=ClaimType.NEW_CLAIM, role=Role.CHILD),))
    first = encode(update)
    assert encode(update) is first
    again = Update((claim(IPV4, type=ClaimType.NEW_CLAIM, role=Role.CHILD),))
    assert encode(again) == first and encode(again) is not first
    other = Update((claim(IPV4, type=ClaimType.CLAIM_TO_EXPAND, role=Role.CHILD),))
    assert encode(other) != first
    assert decode(encode(other)) == other


def test_s7_3_padding_after_parameters_is_not_read() -> None:
    # A (length 0, type 0) parameter header starts padding; what follows it is not read.
    after_zero_header = attribute(tail=bytes.fromhex("0209abcd 0000ffff"))
    # A single octet left after the last parameter is padding too.
    single_trailing = attribute(tail=bytes.fromhex("0109aa 00"))
    expected = claim(parameters=(OptionalParameter(9, b"\xab\xcd"),))
    assert decode(update_frame(after_zero_header)) == Update((expected,))
    expected = claim(parameters=(OptionalParameter(9, b"\xaa"),))
    assert decode(update_frame(single_trailing)) == Update((expected,))


def test_s7_reserved_fields_are_ignored_by_the_receiver() -> None:
    # §7.1 header Reserved, §7.2 R bit, §7.3 attribute Reserved, Reserved1 and Reserved2:
    # "MUST be ignored by the receiver".
    opened = bytearray(open_frame())
    opened[3] = 0xFF
    opened[5] |= 0x80
    assert decode(bytes(opened)) == an_open()
    update = bytearray(update_frame(VALID))
    update[3] = 0xFF  # message header Reserved
    update[7] = 0xFF  # attribute Reserved
    update[8] = 0xFF  # Reserved1
    update[10:12] = b"\xff\xff"  # Reserved2
    assert decode(bytes(update)) == Update((VALID_CLAIM,))


def test_s7_4_keepalive_round_trip() -> None:
    assert encode(Keepalive()) == b"\x00\x04\x04\x00"
    assert decode(encode(Keepalive())) == Keepalive()


@pytest.mark.parametrize(
    "notification",
    [
        Notification(False, 1, 0),
        Notification(True, 3, 14, b"\x00" * 36),
        Notification(False, 0x7F, 0xFF, bytes(range(256))),
        Notification(True, 2, 1, b"\x01"),
    ],
    ids=["empty-data", "cc-kept-open", "largest-codes", "one-octet"],
)
def test_s7_5_notification_round_trip(notification: Notification) -> None:
    assert decode(encode(notification)) == notification


def test_s7_update_of_exactly_4096_octets_round_trips_and_4097_cannot_be_encoded() -> None:
    # §7: "The maximum message size is 4096 octets."  113 x 36 + 4 = 4072; a claim with a
    # 22-octet parameter value is 60 octets: 112 x 36 + 60 + 4 = 4096.
    big = claim(parameters=(OptionalParameter(1, bytes(22)),))
    update = Update((VALID_CLAIM,) * 112 + (big,))
    frame = encode(update)
    assert len(frame) == 4096
    assert decode(frame) == update
    with pytest.raises(CoreMisuse):
        encode(Update((VALID_CLAIM,) * 113 + (big,)))


@pytest.mark.parametrize(
    "message",
    [
        an_open(parameters=(OptionalParameter(0, b""),)),
        Update((claim(parameters=(OptionalParameter(0, b""),)),)),
    ],
    ids=["open", "claim"],
)
def test_padding_marker_cannot_be_encoded_as_a_parameter(message: Message) -> None:
    with pytest.raises(CoreMisuse):
        encode(message)


# --- known-answer vectors --------------------------------------------------------------------


def _load_vectors() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(VECTORS.read_text(encoding="utf-8"))
    return data


def _message_from_json(spec: dict[str, Any]) -> Message:
    kind = spec["kind"]
    if kind == "keepalive":
        return Keepalive()
    if kind == "notification":
        return Notification(
            spec["open_bit"], spec["code"], spec["subcode"], bytes.fromhex(spec["data"])
        )
    if kind == "open":
        return Open(
            family=AddressFamily[spec["family"]],
            role=Role[spec["role"]],
            hold_time=spec["hold_time"],
            domain_id=DomainId(spec["domain_id"]),
            node_id=NodeId(int(ip_address(spec["node_id"]))),
            parent_domain_id=DomainId(spec["parent_domain_id"]),
            parameters=tuple(OptionalParameter(t, bytes.fromhex(v)) for t, v in spec["parameters"]),
        )
    assert kind == "update"
    return Update(
        tuple(
            Claim(
                type=ClaimType[a["type"]],
                origin_role=Role[a["origin_role"]],
                timestamp=a["timestamp"],
                lifetime=a["lifetime"],
                holdtime=a["holdtime"],
                origin_domain=DomainId(a["origin_domain"]),
                origin_node=NodeId(int(ip_address(a["origin_node"]))),
                prefix=ip_network(a["prefix"]),
                deprecated=a["deprecated"],
            )
            for a in spec["attributes"]
        )
    )


_VECTORS = _load_vectors()
_MESSAGE_VECTORS = {v["name"]: v for v in _VECTORS["messages"]}
_ERROR_VECTORS = {v["name"]: v for v in _VECTORS["errors"]}


def test_vectors_file_covers_the_required_messages_and_cites_sources() -> None:
    kinds = {v["message"]["kind"] for v in _VECTORS["messages"]}
    assert kinds == {"open", "update", "keepalive", "notification"}
    assert "update_ipv4_new_claim" in _MESSAGE_VECTORS
    assert "open_ipv4_child" in _MESSAGE_VECTORS
    for vector in [*_VECTORS["messages"], *_VECTORS["errors"]]:
        assert vector["source"].startswith("RFC 2909 §"), vector["name"]
        bytes.fromhex(vector["hex"])  # well-formed hex


@pytest.mark.parametrize("name", sorted(_MESSAGE_VECTORS))
def test_vector_encodes_and_decodes_byte_for_byte(name: str) -> None:
    vector = _MESSAGE_VECTORS[name]
    frame = bytes.fromhex(vector["hex"])
    expected = _message_from_json(vector["message"])
    assert decode(frame) == expected
    assert encode(expected) == frame


@pytest.mark.parametrize("name", sorted(_ERROR_VECTORS))
def test_error_vector(name: str) -> None:
    vector = _ERROR_VECTORS[name]
    error = error_of(bytes.fromhex(vector["hex"]))
    assert wire(error) == (
        vector["code"],
        vector["subcode"],
        bytes.fromhex(vector["data"]),
        vector["must_close"],
    )


# --- framer ----------------------------------------------------------------------------------


def test_s7_framer_cuts_a_stream_fed_one_octet_at_a_time() -> None:
    frames = [encode(an_open()), encode(Keepalive()), update_frame(VALID), message(4, b"")]
    framer = Framer()
    out: list[bytes] = []
    for octet in b"".join(frames):
        framer.feed(bytes([octet]))
        while (frame := framer.next_frame()) is not None:
            out.append(frame)
    assert out == frames
    assert framer.buffered == 0


@pytest.mark.parametrize("length", [4, 4096])
def test_s7_1_framer_accepts_the_length_bounds(length: int) -> None:
    frame = struct.pack("!HBB", length, 9, 0) + bytes(length - 4)
    framer = Framer()
    framer.feed(frame + b"\x00")
    assert framer.next_frame() == frame
    assert framer.next_frame() is None
    assert framer.buffered == 1


def test_framer_refuses_use_after_bad_message_length() -> None:
    framer = Framer()
    framer.feed(b"\x00\x02\x04\x00")
    with pytest.raises(MessageHeaderError):
        framer.next_frame()
    with pytest.raises(CoreMisuse):
        framer.next_frame()
    with pytest.raises(CoreMisuse):
        framer.feed(b"\x00")


# --- §8.1 Message Header errors --------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 2, 3])
def test_s8_1_length_field_below_4_is_bad_message_length(length: int) -> None:
    header = struct.pack("!HBB", length, 4, 0)
    error = framer_error(header + b"\x00\x04\x04\x00")
    assert wire(error) == (HEADER_ERROR, HeaderSubcode.BAD_MESSAGE_LENGTH, header, MC)


@pytest.mark.parametrize("length", [4097, 0xFFFF])
def test_s8_1_length_field_above_4096_is_bad_message_length(length: int) -> None:
    header = struct.pack("!HBB", length, 2, 0)
    error = framer_error(header + bytes(40))
    assert wire(error) == (HEADER_ERROR, HeaderSubcode.BAD_MESSAGE_LENGTH, header, MC)


@pytest.mark.parametrize("length", [4, 8, 19])
def test_s8_1_open_shorter_than_20_is_bad_message_length(length: int) -> None:
    frame = open_frame()[:length]
    frame = struct.pack("!H", length) + frame[2:]
    assert wire(error_of(frame)) == (HEADER_ERROR, HeaderSubcode.BAD_MESSAGE_LENGTH, frame, MC)


@pytest.mark.parametrize("length", [20, 55])
def test_s8_1_ipv6_open_shorter_than_its_identifiers_is_bad_message_length(length: int) -> None:
    full = open_frame(family=2, ids=(65001, NODE6, 65000), id_length=16)
    assert len(full) == 56
    frame = struct.pack("!H", length) + full[2:length]
    assert wire(error_of(frame)) == (HEADER_ERROR, HeaderSubcode.BAD_MESSAGE_LENGTH, frame, MC)


@pytest.mark.parametrize("length", [4, 20, 39])
def test_s8_1_update_shorter_than_40_is_bad_message_length(length: int) -> None:
    frame = struct.pack("!H", length) + update_frame(VALID)[2:length]
    assert wire(error_of(frame)) == (HEADER_ERROR, HeaderSubcode.BAD_MESSAGE_LENGTH, frame, MC)


@pytest.mark.parametrize("length", [4, 5])
def test_s8_1_notification_shorter_than_6_is_bad_message_length(length: int) -> None:
    frame = struct.pack("!HBB", length, 3, 0) + b"\x83"[: length - 4]
    assert wire(error_of(frame)) == (HEADER_ERROR, HeaderSubcode.BAD_MESSAGE_LENGTH, frame, MC)


@pytest.mark.parametrize("length", [5, 8, 4096])
def test_s8_1_keepalive_length_not_4_is_bad_message_length(length: int) -> None:
    frame = struct.pack("!HBB", length, 4, 0) + bytes(length - 4)
    # Data is the whole message, cut to the 4090 octets a NOTIFICATION can carry (§7.5).
    expected = (HEADER_ERROR, HeaderSubcode.BAD_MESSAGE_LENGTH, frame[:4090], MC)
    assert wire(error_of(frame)) == expected


@pytest.mark.parametrize("type_code", [0, 5, 127, 255])
def test_s8_1_unrecognized_type_is_bad_message_type(type_code: int) -> None:
    frame = struct.pack("!HBB", 8, type_code, 0) + b"\x01\x02\x03\x04"
    assert wire(error_of(frame)) == (HEADER_ERROR, HeaderSubcode.BAD_MESSAGE_TYPE, frame, CC)


# --- §8.2 OPEN errors found by the codec -----------------------------------------------------


@pytest.mark.parametrize(("bid", "data"), [(0, b"\x00"), (2, b"\x01"), (255, b"\x01")])
def test_s8_2_unsupported_version_data_is_highest_supported_below_bid(
    bid: int, data: bytes
) -> None:
    frame = open_frame(version=bid)
    assert wire(error_of(frame)) == (OPEN_ERROR, OpenSubcode.UNSUPPORTED_VERSION, data, MC)


def test_s8_2_version_is_checked_before_every_other_field() -> None:
    frame = open_frame(version=2, family=7, hold_time=1)
    assert error_of(frame).subcode == OpenSubcode.UNSUPPORTED_VERSION


@pytest.mark.parametrize("family", [0, 3, 31])
def test_s8_2_open_unrecognized_address_family(family: int) -> None:
    frame = open_frame(family=family)
    assert wire(error_of(frame)) == (
        OPEN_ERROR,
        OpenSubcode.UNRECOGNIZED_ADDRESS_FAMILY,
        frame[4:],
        MC,
    )


@pytest.mark.parametrize("hold_time", [1, 2])
def test_s8_2_hold_time_1_or_2_is_unacceptable(hold_time: int) -> None:
    frame = open_frame(hold_time=hold_time)
    assert wire(error_of(frame)) == (
        OPEN_ERROR,
        OpenSubcode.UNACCEPTABLE_HOLD_TIME,
        frame[4:],
        MC,
    )


@pytest.mark.parametrize("hold_time", [0, 3])
def test_s8_2_hold_time_0_or_3_is_accepted(hold_time: int) -> None:
    assert decode(open_frame(hold_time=hold_time)) == an_open(hold_time=hold_time)


def test_s8_2_optional_parameters_overrunning_open_is_unspecific() -> None:
    frame = open_frame(tail=bytes.fromhex("0207 beef 0507 aa"))
    assert wire(error_of(frame)) == (OPEN_ERROR, OpenSubcode.UNSPECIFIC, frame[4:], MC)


# --- §8.3 UPDATE errors ----------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 2, 3])
def test_s8_3_attribute_length_below_4_is_malformed_attribute_list(length: int) -> None:
    bad = raw_attribute(ClaimType.NEW_CLAIM, length, bytes(4))
    frame = update_frame(VALID, bad)
    assert wire(error_of(frame)) == (
        UPDATE_ERROR,
        UpdateSubcode.MALFORMED_ATTRIBUTE_LIST,
        bad,
        MC,
    )


@pytest.mark.parametrize("overrun", [4, 1000])
def test_s8_3_attribute_past_end_of_message_is_malformed_attribute_list(overrun: int) -> None:
    bad = attribute(length=36 + overrun)
    frame = update_frame(VALID, bad)
    assert wire(error_of(frame)) == (
        UPDATE_ERROR,
        UpdateSubcode.MALFORMED_ATTRIBUTE_LIST,
        bad,
        MC,
    )


@pytest.mark.parametrize("trailing", [1, 2, 3])
def test_s8_3_trailing_octets_shorter_than_attribute_header_is_malformed_attribute_list(
    trailing: int,
) -> None:
    rest = b"\x00\x04\x80"[:trailing]
    frame = update_frame(VALID, rest)
    assert wire(error_of(frame)) == (
        UPDATE_ERROR,
        UpdateSubcode.MALFORMED_ATTRIBUTE_LIST,
        rest,
        MC,
    )


def test_s8_3_optional_parameters_overrunning_attribute_is_malformed_attribute_list() -> None:
    # A parameter of length 5 starting 4 octets before the end of the attribute.
    bad = attribute(tail=bytes.fromhex("0507aa00"))
    frame = update_frame(bad, VALID)
    assert wire(error_of(frame)) == (
        UPDATE_ERROR,
        UpdateSubcode.MALFORMED_ATTRIBUTE_LIST,
        bad,
        MC,
    )


@pytest.mark.parametrize("type_code", [6, 42, 127])
def test_s8_3_unrecognized_required_attribute(type_code: int) -> None:
    unknown = raw_attribute(type_code, 36, bytes(range(32)))
    error = error_of(update_frame(unknown))
    assert wire(error) == (
        UPDATE_ERROR,
        UpdateSubcode.UNRECOGNIZED_REQUIRED_ATTRIBUTE,
        unknown,
        CC,
    )
    assert isinstance(error, UpdateMessageError)
    assert error.salvaged is None
    assert error.further == ()


@pytest.mark.parametrize("type_code", [128, 200, 255])
def test_s8_3_unrecognized_optional_attribute_is_ignored(type_code: int) -> None:
    optional = raw_attribute(type_code, 12, b"anything")
    frame = update_frame(VALID, optional, VALID)
    assert decode(frame) == Update((VALID_CLAIM, VALID_CLAIM))


@pytest.mark.parametrize("length", [4, 8, 16, 19])
def test_s8_3_attribute_shorter_than_20_is_attribute_length_error(length: int) -> None:
    short = attribute(truncate=length)
    frame = update_frame(short, VALID)
    assert wire(error_of(frame)) == (
        UPDATE_ERROR,
        UpdateSubcode.ATTRIBUTE_LENGTH_ERROR,
        short,
        MC,
    )


@pytest.mark.parametrize(
    ("family", "length"),
    [(1, 20), (1, 32), (2, 36), (2, 80)],
    ids=["ipv4-20", "ipv4-32", "ipv6-36", "ipv6-80"],
)
def test_s8_3_attribute_shorter_than_its_family_size_is_attribute_length_error(
    family: int, length: int
) -> None:
    short = attribute(family=family, truncate=length)
    frame = update_frame(short, VALID)
    assert wire(error_of(frame)) == (
        UPDATE_ERROR,
        UpdateSubcode.ATTRIBUTE_LENGTH_ERROR,
        short,
        MC,
    )


@pytest.mark.parametrize(
    ("family", "tail"),
    [(1, "0005"), (1, "010501"), (2, "0105aa"), (2, "02")],
    ids=["ipv4-38", "ipv4-39", "ipv6-87", "ipv6-85"],
)
def test_s8_3_attribute_length_not_multiple_of_4_is_attribute_length_error(
    family: int, tail: str
) -> None:
    odd = attribute(family=family, tail=bytes.fromhex(tail))
    assert len(odd) % 4
    frame = update_frame(odd, VALID)
    assert wire(error_of(frame)) == (
        UPDATE_ERROR,
        UpdateSubcode.ATTRIBUTE_LENGTH_ERROR,
        odd,
        MC,
    )


@pytest.mark.parametrize("family", [0, 3, 31])
def test_s8_3_update_unrecognized_address_family(family: int) -> None:
    bad = attribute(family=family, id_length=4)
    frame = update_frame(VALID, bad)
    assert wire(error_of(frame)) == (
        UPDATE_ERROR,
        UpdateSubcode.UNRECOGNIZED_ADDRESS_FAMILY,
        bad,
        MC,
    )


def _prefix_attribute(prefix: str, mask: int | None = None) -> bytes:
    """An attribute for ``prefix`` ("address/len"), or for its address with a raw mask."""
    network = ip_network(prefix, strict=False)
    family = IPV4 if network.version == 4 else IPV6
    address = int(ip_address(prefix.split("/")[0]))
    if mask is None:
        mask = mask_of(family, network.prefixlen)
    return attribute(family=int(family), address=address, mask=mask)


@pytest.mark.parametrize(
    "prefix",
    ["239.192.0.1/16", "239.192.0.255/24", "ff3e:40::1/32", "ff00::/7"],
)
def test_s8_3_invalid_address_host_bits_set(prefix: str) -> None:
    # ff00::/7 lands here: an ff00::/8 address always has bit 8 set, a host bit of a /7.
    bad = _prefix_attribute(prefix)
    error = error_of(update_frame(VALID, bad))
    assert wire(error) == (UPDATE_ERROR, UpdateSubcode.INVALID_ADDRESS, bad, CC)


@pytest.mark.parametrize("prefix", ["10.0.0.0/8", "192.0.2.0/24", "240.0.0.0/4", "2001:db8::/32"])
def test_s8_3_invalid_address_not_multicast(prefix: str) -> None:
    bad = _prefix_attribute(prefix)
    error = error_of(update_frame(bad))
    assert wire(error) == (UPDATE_ERROR, UpdateSubcode.INVALID_ADDRESS, bad, CC)


@pytest.mark.parametrize("prefix", ["0.0.0.0/1", "0.0.0.0/8", "0.0.0.0/32", "::/1", "::/128"])
def test_s8_3_address_0_is_accepted_with_any_valid_mask(prefix: str) -> None:
    network = ip_network(prefix)
    family = IPV4 if network.version == 4 else IPV6
    assert decode(update_frame(_prefix_attribute(prefix))) == Update(
        (claim(family, prefix=prefix),)
    )


@pytest.mark.parametrize(
    ("address", "mask"),
    [
        ("0.0.0.0", 0),
        ("239.192.0.0", 0),
        ("239.192.0.0", 0x7FFF0000),
        ("0.0.0.0", 0x0000FFFF),
        ("ff3e::", 0),
        ("ff3e::", ALL_ONES[IPV6] >> 1),
    ],
)
def test_s8_3_invalid_mask_starting_with_0(address: str, mask: int) -> None:
    # "an invalid mask (for example, starting with 0)": mask 0 included.
    bad = _prefix_attribute(address + "/32", mask=mask)
    error = error_of(update_frame(VALID, bad))
    assert wire(error) == (UPDATE_ERROR, UpdateSubcode.INVALID_MASK, bad, CC)


def test_s8_3_invalid_mask_prefix_wider_than_multicast_block() -> None:
    # 224.0.0.0/3 has no host bits set and its address is multicast, but the prefix covers
    # 192.0.0.0-255.255.255.255.  (In IPv6 every such prefix has host bits set: see above.)
    bad = _prefix_attribute("224.0.0.0/3")
    error = error_of(update_frame(bad))
    assert wire(error) == (UPDATE_ERROR, UpdateSubcode.INVALID_MASK, bad, CC)


@pytest.mark.parametrize(
    ("address", "mask"),
    [
        ("239.192.0.0", 0xFF00FF00),
        ("239.192.0.0", 0xFFFF0001),
        ("0.0.0.0", 0x80000001),
        ("ff3e::", (0xFF << 120) | 0xFF),
    ],
)
def test_s8_3_non_contiguous_mask(address: str, mask: int) -> None:
    bad = _prefix_attribute(address + "/32", mask=mask)
    error = error_of(update_frame(VALID, bad))
    assert wire(error) == (UPDATE_ERROR, UpdateSubcode.NON_CONTIGUOUS_MASK, bad, CC)


@pytest.mark.parametrize("family", list(AddressFamily), ids=lambda f: f.name)
@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.name)
@pytest.mark.parametrize("type", list(ClaimType), ids=lambda t: t.name)
def test_s8_3_claim_type_error(family: AddressFamily, role: Role, type: ClaimType) -> None:
    """The §8.3 Origin Role / Claim Type table, all 24 combinations in each family."""
    legal = {
        ClaimType.PREFIX_IN_USE: "ICS",
        ClaimType.CLAIM_DENIED: "IP",
        ClaimType.CLAIM_TO_EXPAND: "ICS",
        ClaimType.NEW_CLAIM: "ICS",
        ClaimType.PREFIX_MANAGED: "IP",
        ClaimType.WITHDRAW: "ICSP",
    }[type]
    attr = attribute(type_code=type, family=int(family), role=role)
    frame = update_frame(attr)
    if role.name[0] in legal:
        assert decode(frame) == Update((claim(family, type=type, role=role),))
        return
    error = error_of(frame)
    assert wire(error) == (UPDATE_ERROR, UpdateSubcode.CLAIM_TYPE_ERROR, attr, CC)
    assert isinstance(error, UpdateMessageError)
    assert error.salvaged is None
    assert error.further == ()


@pytest.mark.parametrize(
    ("attr", "subcode"),
    [
        # AF before the length for the AF: a 24-octet attribute of family 9.
        (
            attribute(family=9, id_length=4, truncate=24),
            UpdateSubcode.UNRECOGNIZED_ADDRESS_FAMILY,
        ),
        # length for the AF before the claim type.
        (
            attribute(type_code=1, role=Role.CHILD, family=2, truncate=36),
            UpdateSubcode.ATTRIBUTE_LENGTH_ERROR,
        ),
        # parameters before the claim type.
        (
            attribute(type_code=1, role=Role.CHILD, tail=bytes.fromhex("0907aa00")),
            UpdateSubcode.MALFORMED_ATTRIBUTE_LIST,
        ),
        # claim type before the mask.
        (attribute(type_code=1, role=Role.CHILD, mask=0), UpdateSubcode.CLAIM_TYPE_ERROR),
        # mask starting with 0 before non-contiguity.
        (attribute(mask=0x7F00FF00), UpdateSubcode.INVALID_MASK),
        # non-contiguity before the address.
        (attribute(address=0x0A000001, mask=0xFF00FF00), UpdateSubcode.NON_CONTIGUOUS_MASK),
        # host bits before the prefix-width check: 224.0.0.1/3.
        (attribute(address=0xE0000001, mask=0xE0000000), UpdateSubcode.INVALID_ADDRESS),
        # "not multicast" before the prefix-width check: 64.0.0.0/2.
        (attribute(address=0x40000000, mask=0xC0000000), UpdateSubcode.INVALID_ADDRESS),
    ],
    ids=[
        "af-before-af-length",
        "af-length-before-claim-type",
        "params-before-claim-type",
        "claim-type-before-mask",
        "mask-top-bit-before-contiguity",
        "contiguity-before-address",
        "host-bits-before-block-width",
        "not-multicast-before-block-width",
    ],
)
def test_s8_3_checks_within_a_claim_run_in_the_documented_order(
    attr: bytes, subcode: UpdateSubcode
) -> None:
    assert error_of(update_frame(attr, VALID)).subcode == subcode


def test_s8_3_cc_errors_do_not_stop_decoding_salvaged_and_further() -> None:
    bad_mask = attribute(mask=0xFF00FF00, address=0)
    unknown = raw_attribute(64, 8, b"\x00\x00\x00\x00")
    wrong_role = attribute(type_code=ClaimType.PREFIX_MANAGED, role=Role.CHILD)
    other = attribute(family=2, type_code=ClaimType.WITHDRAW, role=Role.PARENT)
    optional = raw_attribute(130, 4, b"")
    frame = update_frame(VALID, bad_mask, unknown, other, optional, wrong_role)
    error = error_of(frame)
    assert isinstance(error, UpdateMessageError)
    assert wire(error) == (UPDATE_ERROR, UpdateSubcode.NON_CONTIGUOUS_MASK, bad_mask, CC)
    assert [wire(e) for e in error.further] == [
        (UPDATE_ERROR, UpdateSubcode.UNRECOGNIZED_REQUIRED_ATTRIBUTE, unknown, CC),
        (UPDATE_ERROR, UpdateSubcode.CLAIM_TYPE_ERROR, wrong_role, CC),
    ]
    assert error.salvaged == Update(
        (VALID_CLAIM, claim(IPV6, type=ClaimType.WITHDRAW, role=Role.PARENT))
    )


def test_s8_3_mc_error_after_cc_error_is_raised_at_once() -> None:
    bad_mask = attribute(mask=0)
    short = attribute(truncate=24)
    error = error_of(update_frame(VALID, bad_mask, short, VALID))
    assert isinstance(error, UpdateMessageError)
    assert wire(error) == (UPDATE_ERROR, UpdateSubcode.ATTRIBUTE_LENGTH_ERROR, short, MC)
    assert error.salvaged is None
    assert error.further == ()


# --- cross-cutting ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        struct.pack("!HBB", 4096, 9, 0) + bytes(4092),
        update_frame(raw_attribute(3, 4092, bytes(4088))),
    ],
    ids=["bad-type-4096", "attribute-of-4092-octets"],
)
def test_every_decode_error_fits_in_a_notification(frame: bytes) -> None:
    """§7.5: Message Length = 6 + Data Length <= 4096, so Data is cut to its first 4090."""
    error = error_of(frame)
    assert len(error.data) == 4090 and frame.find(error.data) >= 0
    assert (
        len(encode(Notification(not error.must_close, error.code, error.subcode, error.data)))
        == 4096
    )


def test_claim_encoding_matches_the_hand_assembled_attribute() -> None:
    assert encode_claim(VALID_CLAIM) == VALID
    v6 = claim(IPV6, deprecated=True, role=Role.SIBLING, type=ClaimType.PREFIX_IN_USE)
    assert encode_claim(v6) == attribute(
        family=2, deprecated=True, role=Role.SIBLING, type_code=ClaimType.PREFIX_IN_USE
    )
    assert isinstance(v6.prefix, IPv6Network)
    assert isinstance(VALID_CLAIM.prefix, IPv4Network)
