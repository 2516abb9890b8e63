"""Encoding and decoding of whole MASC messages (RFC 2909 §7, §8.1-§8.3).

The decoder is total: given the bytes of one message (as cut by
:mod:`masc.protocol.wire.framing`) it returns a :data:`Message` or raises a
:class:`~masc.protocol.errors.ProtocolError` whose (code, subcode, data) is the exact
NOTIFICATION §8 prescribes.  Nothing else escapes; the fuzz tests hold it to that.

Checks here are the ones that need no configuration.  Checks that depend on who the peer is
supposed to be (§8.2 domain, role, parents) live in :mod:`masc.protocol.open_checks`;
claim policy limits (§8.3 lifetime, timestamp, holdtime, size) in
:mod:`masc.protocol.claim_checks`.  Choices where §8 is loose are listed in
docs/conformance.md.
"""

from __future__ import annotations

import struct
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network
from typing import Final, TypeVar

from masc.protocol.constants import (
    ATTRIBUTE_HEADER_LENGTH,
    FIRST_OPTIONAL_ATTRIBUTE,
    HEADER_LENGTH,
    KEEPALIVE_LENGTH,
    LEGAL_ORIGIN_ROLES,
    MAX_MESSAGE_LENGTH,
    MIN_NOTIFICATION_LENGTH,
    MIN_OPEN_LENGTH,
    MIN_UPDATE_LENGTH,
    SUPPORTED_VERSIONS,
    AddressFamily,
    ClaimType,
    MessageType,
    Role,
)
from masc.protocol.errors import (
    CoreMisuse,
    HeaderSubcode,
    MessageHeaderError,
    OpenMessageError,
    OpenSubcode,
    UpdateMessageError,
    UpdateSubcode,
)
from masc.protocol.wire.framing import check_length_field
from masc.protocol.wire.messages import (
    Claim,
    DomainId,
    Keepalive,
    Message,
    NodeId,
    Notification,
    Open,
    OptionalParameter,
    Prefix,
    Update,
)

# §7.1 Message Header
#  0                   1                   2                   3
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# |          Length               |      Type     |   Reserved    |
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
HEADER: Final = struct.Struct("!HBB")

# §7.2 OPEN, fixed part after the header (ids follow, 3 x id_length octets)
# |    Version    |R| AddrFam |Rol|           Hold Time           |
OPEN_FIXED: Final = struct.Struct("!BBH")

# §7.3 attribute header, same shape as the message header
# |              Length           |     Type      |   Reserved    |
ATTRIBUTE_HEADER: Final = struct.Struct("!HBB")

# §7.3 claim body, fixed part (ids, address and mask follow, 4 x id_length octets)
# |   Reserved1   |D| AddrFam |Rol|           Reserved2           |
# |                    Claim Timestamp                            |
# |                    Claim Lifetime                             |
# |                    Claim Holdtime                             |
CLAIM_FIXED: Final = struct.Struct("!xBxxIII")
CLAIM_FIXED_LENGTH: Final = ATTRIBUTE_HEADER_LENGTH + CLAIM_FIXED.size  # 20

# §7.5 NOTIFICATION, after the header
# |O| Error code  | Error subcode |           Data ...
NOTIFICATION_FIXED: Final = struct.Struct("!BB")

# §7.2 optional parameter: | Parm. Length |  Parm. Type  | Value ...
PARAMETER_HEADER: Final = struct.Struct("!BB")

_FAMILIES: Final = {int(f): f for f in AddressFamily}
_ROLES: Final = tuple(Role)
_CLAIM_TYPES: Final = {int(t): t for t in ClaimType}
_HEADER_MIN_LENGTH: Final = {
    MessageType.OPEN: MIN_OPEN_LENGTH,
    MessageType.UPDATE: MIN_UPDATE_LENGTH,
    MessageType.NOTIFICATION: MIN_NOTIFICATION_LENGTH,
}
# A multicast prefix must lie inside the family's multicast block (RFC 5771, RFC 4291).
_MULTICAST_BLOCK: Final[dict[AddressFamily, Prefix]] = {
    AddressFamily.IPV4: IPv4Network("224.0.0.0/4"),
    AddressFamily.IPV6: IPv6Network("ff00::/8"),
}


# --- the one place each bit-packed octet is packed and unpacked ----------------------------


def pack_flag_family_role(flag: bool, family: int, role: int) -> int:
    """The |X| AddrFam |Rol| octet shared by OPEN (X = R) and claims (X = D), §7.2/§7.3."""
    return (int(flag) << 7) | ((family & 0x1F) << 2) | (role & 0x03)


def unpack_flag_family_role(octet: int) -> tuple[bool, int, int]:
    return bool(octet & 0x80), (octet >> 2) & 0x1F, octet & 0x03


def pack_open_bit_code(open_bit: bool, code: int) -> int:
    """The |O| Error code | octet of a NOTIFICATION, §7.5."""
    return (int(open_bit) << 7) | (code & 0x7F)


def unpack_open_bit_code(octet: int) -> tuple[bool, int]:
    return bool(octet & 0x80), octet & 0x7F


# --- encoding ------------------------------------------------------------------------------


# The last UPDATEs encoded, by identity (the value is kept, so its id is not reused
# meanwhile): a parent relays one Update value to each of its other children (§11.2.3,
# §11.4.3), the same octets each time.
_ENCODED: dict[int, tuple[Update, bytes]] = {}
_ENCODED_KEPT: Final = 8


K = TypeVar("K")
V = TypeVar("V")


def _keep(memo: dict[K, V], key: K, value: V, kept: int) -> None:
    """Remember ``value`` in a memo of the last ``kept`` entries (the oldest leaves)."""
    if len(memo) >= kept:
        del memo[next(iter(memo))]
    memo[key] = value


def encode(message: Message) -> bytes:
    """Serialise one message.  Raises CoreMisuse for values that cannot be on the wire."""
    if isinstance(message, Update):
        known = _ENCODED.get(id(message))
        if known is not None and known[0] is message:
            return known[1]
        data = _frame(MessageType.UPDATE, b"".join(encode_claim(a) for a in message.attributes))
        _keep(_ENCODED, id(message), (message, data), _ENCODED_KEPT)
        return data
    if isinstance(message, Keepalive):
        return _frame(MessageType.KEEPALIVE, b"")
    if isinstance(message, Notification):
        if not 0 <= message.code <= 0x7F or not 0 <= message.subcode <= 0xFF:
            raise CoreMisuse(f"NOTIFICATION code/subcode out of range: {message}")
        fixed = NOTIFICATION_FIXED.pack(
            pack_open_bit_code(message.open_bit, message.code), message.subcode
        )
        return _frame(MessageType.NOTIFICATION, fixed + message.data)
    if isinstance(message, Open):
        length = message.family.id_length
        fixed = OPEN_FIXED.pack(
            message.version,
            pack_flag_family_role(False, message.family, message.role),
            message.hold_time,
        )
        ids = b"".join(
            _id_bytes(v, length)
            for v in (message.domain_id, message.node_id, message.parent_domain_id)
        )
        return _frame(MessageType.OPEN, fixed + ids + _encode_parameters(message.parameters))
    raise CoreMisuse(f"not a MASC message: {message!r}")


@lru_cache(maxsize=1 << 14)
def encode_claim(claim: Claim) -> bytes:
    """One §7.3 attribute, padded with zero octets to a multiple of four.  Cached: a parent
    relays each claim to every other child (§5.1 b), the same octets each time."""
    family = claim.family
    length = family.id_length
    bits = length * 8
    mask = ((1 << bits) - 1) ^ ((1 << (bits - claim.prefix.prefixlen)) - 1)
    body = (
        CLAIM_FIXED.pack(
            pack_flag_family_role(claim.deprecated, family, claim.origin_role),
            claim.timestamp,
            claim.lifetime,
            claim.holdtime,
        )
        + _id_bytes(claim.origin_domain, length)
        + _id_bytes(claim.origin_node, length)
        + int(claim.prefix.network_address).to_bytes(length, "big")
        + mask.to_bytes(length, "big")
        + _encode_parameters(claim.parameters)
    )
    padded = -(len(body) + ATTRIBUTE_HEADER_LENGTH) % 4
    total = ATTRIBUTE_HEADER_LENGTH + len(body) + padded
    return ATTRIBUTE_HEADER.pack(total, claim.type, 0) + body + bytes(padded)


def _frame(message_type: MessageType, body: bytes) -> bytes:
    length = HEADER_LENGTH + len(body)
    if length > MAX_MESSAGE_LENGTH:
        raise CoreMisuse(f"{message_type.name} of {length} octets exceeds {MAX_MESSAGE_LENGTH}")
    return HEADER.pack(length, message_type, 0) + body


def _id_bytes(value: int, length: int) -> bytes:
    try:
        return value.to_bytes(length, "big")
    except OverflowError:
        raise CoreMisuse(f"identifier {value} does not fit {length} octets") from None


def _encode_parameters(parameters: tuple[OptionalParameter, ...]) -> bytes:
    out = bytearray()
    for p in parameters:
        if not 0 <= p.type <= 0xFF or len(p.value) > 0xFF or (p.type == 0 and not p.value):
            raise CoreMisuse(f"optional parameter cannot be encoded: {p!r}")
        out += PARAMETER_HEADER.pack(len(p.value), p.type) + p.value
    return bytes(out)


# --- decoding ------------------------------------------------------------------------------


def check_header(frame: bytes) -> MessageType:
    """§8.1 checks on a complete message; returns its type.

    The framer ensures ``len(frame)`` equals the Length field and lies in 4..4096, but
    ``decode`` is also fed bytes that did not come through it (``masc decode``, fuzzing), and
    a decoder must be total, so that is checked again here: a Length outside 4..4096 gets
    the framer's Data (the 4 header octets); fewer than 4 octets, or a Length that disagrees
    with the octets given, the whole input.  Data of every other Message Header Error is the
    whole erroneous message.
    """
    if len(frame) < HEADER_LENGTH:
        raise MessageHeaderError(
            HeaderSubcode.BAD_MESSAGE_LENGTH,
            frame,
            reason=f"{len(frame)} octets, shorter than a message header",
        )
    length, type_code, _reserved = HEADER.unpack_from(frame)
    check_length_field(length, frame[:HEADER_LENGTH])
    if length != len(frame):
        raise MessageHeaderError(
            HeaderSubcode.BAD_MESSAGE_LENGTH,
            frame,
            reason=f"length field {length} but {len(frame)} octets",
        )
    try:
        message_type = MessageType(type_code)
    except ValueError:
        raise MessageHeaderError(
            HeaderSubcode.BAD_MESSAGE_TYPE, frame, reason=f"message type {type_code}"
        ) from None
    if message_type is MessageType.KEEPALIVE:
        bad = length != KEEPALIVE_LENGTH
    else:
        bad = length < _HEADER_MIN_LENGTH[message_type]
    if bad:
        raise MessageHeaderError(
            HeaderSubcode.BAD_MESSAGE_LENGTH,
            frame,
            reason=f"{message_type.name} of length {length}",
        )
    return message_type


def decode(frame: bytes | bytearray) -> Message:
    """Decode one complete message; raises only ProtocolError subclasses.  A bytearray is
    copied to bytes first: the decoders below take bytes (the compiled build, setup.py,
    enforces their annotations)."""
    if not isinstance(frame, bytes):
        frame = bytes(frame)
    message_type = check_header(frame)
    if message_type is MessageType.UPDATE:
        return decode_update(frame)
    if message_type is MessageType.KEEPALIVE:
        return Keepalive()
    if message_type is MessageType.NOTIFICATION:
        octet, subcode = NOTIFICATION_FIXED.unpack_from(frame, HEADER_LENGTH)
        open_bit, code = unpack_open_bit_code(octet)
        return Notification(open_bit, code, subcode, bytes(frame[HEADER_LENGTH + 2 :]))
    return decode_open(frame)


def decode_open(frame: bytes) -> Open:
    """§7.2 / §8.2 checks that need no configuration.  Data is the OPEN without header."""
    body = bytes(frame[HEADER_LENGTH:])
    version, octet, hold_time = OPEN_FIXED.unpack_from(frame, HEADER_LENGTH)
    if version not in SUPPORTED_VERSIONS:
        # §8.2: Data is 1 octet, the largest locally supported version below the bid;
        # 0 when we support none below it (docs/conformance.md).
        below = [v for v in SUPPORTED_VERSIONS if v < version]
        raise OpenMessageError(
            OpenSubcode.UNSUPPORTED_VERSION,
            bytes([max(below, default=0)]),
            reason=f"version {version}",
        )
    _reserved, family_code, role_code = unpack_flag_family_role(octet)
    family = _FAMILIES.get(family_code)
    if family is None:
        raise OpenMessageError(
            OpenSubcode.UNRECOGNIZED_ADDRESS_FAMILY, body, reason=f"address family {family_code}"
        )
    length = family.id_length
    ids_end = HEADER_LENGTH + OPEN_FIXED.size + 3 * length
    if len(frame) < ids_end:
        # The 20-octet minimum of §7.2 is for IPv4; an IPv6 OPEN too short for its three
        # 16-octet identifiers is the same fault: the message is too short for its type.
        raise MessageHeaderError(
            HeaderSubcode.BAD_MESSAGE_LENGTH,
            frame,
            reason=f"OPEN of length {len(frame)} too short for {family.name} identifiers",
        )
    # §7.2: "An implementation MUST reject Hold Time values of one or two seconds."
    if hold_time in (1, 2):
        raise OpenMessageError(
            OpenSubcode.UNACCEPTABLE_HOLD_TIME, body, reason=f"hold time {hold_time}"
        )
    offset = HEADER_LENGTH + OPEN_FIXED.size
    domain_id = int.from_bytes(frame[offset : offset + length], "big")
    node_id = int.from_bytes(frame[offset + length : offset + 2 * length], "big")
    parent_id = int.from_bytes(frame[offset + 2 * length : ids_end], "big")
    parameters = _decode_parameters(frame, ids_end, len(frame))
    if parameters is None:
        raise OpenMessageError(
            OpenSubcode.UNSPECIFIC, body, reason="optional parameters overrun the message"
        )
    return Open(
        family=family,
        role=_ROLES[role_code],
        hold_time=hold_time,
        domain_id=DomainId(domain_id),
        node_id=NodeId(node_id),
        parent_domain_id=DomainId(parent_id),
        parameters=parameters,
        version=version,
    )


# The last UPDATEs decoded without error, by frame.  A parent relays each of its children's
# UPDATEs to all the others (§11.2.3, §11.4.3) as one frame, so in one process (the
# simulator's thousands of nodes) the same frame is decoded dozens of times in a row; the
# values are frozen, so one decoding serves them all.
_DECODED: dict[bytes, Update] = {}
_DECODED_KEPT: Final = 8


def decode_update(frame: bytes) -> Update:
    """§7.3 / §8.3.  MC errors raise at once; CC errors reject only their attribute.

    When CC errors were found the first is raised with ``further`` (the rest) and
    ``salvaged`` (the valid attributes, if any) so that each bad claim is reported and the
    good ones are still processed.
    """
    hashable = type(frame) is bytes
    if hashable:
        known = _DECODED.get(frame)
        if known is not None:
            return known
    update = _decode_update(frame)
    if hashable:
        _keep(_DECODED, frame, update, _DECODED_KEPT)
    return update


def _decode_update(frame: bytes) -> Update:
    end = len(frame)
    offset = HEADER_LENGTH
    claims: list[Claim] = []
    rejected: list[UpdateMessageError] = []
    while offset < end:
        if end - offset < ATTRIBUTE_HEADER_LENGTH:
            raise UpdateMessageError(
                UpdateSubcode.MALFORMED_ATTRIBUTE_LIST,
                frame[offset:],
                reason="trailing octets shorter than an attribute header",
            )
        attr_length, attr_type, _reserved = ATTRIBUTE_HEADER.unpack_from(frame, offset)
        if attr_length < ATTRIBUTE_HEADER_LENGTH or offset + attr_length > end:
            raise UpdateMessageError(
                UpdateSubcode.MALFORMED_ATTRIBUTE_LIST,
                frame[offset:],
                reason=f"attribute length {attr_length} does not fit the message",
            )
        attr_end = offset + attr_length
        claim_type = _CLAIM_TYPES.get(attr_type)
        if claim_type is not None:
            try:
                claims.append(_decode_claim(frame, offset, attr_end, claim_type))
            except UpdateMessageError as error:
                if error.must_close:
                    raise
                rejected.append(error)
        elif attr_type < FIRST_OPTIONAL_ATTRIBUTE:
            # §7.3: an unrecognized required attribute is reported; optional ones ignored.
            rejected.append(
                UpdateMessageError(
                    UpdateSubcode.UNRECOGNIZED_REQUIRED_ATTRIBUTE,
                    frame[offset:attr_end],
                    reason=f"attribute type {attr_type}",
                )
            )
        offset = attr_end
    if rejected:
        first = rejected[0]
        first.further = tuple(rejected[1:])
        first.salvaged = Update(tuple(claims)) if claims else None
        raise first
    return Update(tuple(claims))


def _decode_claim(frame: bytes, start: int, end: int, claim_type: ClaimType) -> Claim:
    """One §7.3 claim attribute spanning frame[start:end] (header included)."""
    length = end - start
    if length < CLAIM_FIXED_LENGTH:
        raise UpdateMessageError(
            UpdateSubcode.ATTRIBUTE_LENGTH_ERROR,
            frame[start:end],
            reason=f"{claim_type.name} attribute of {length} octets",
        )
    octet, timestamp, lifetime, holdtime = CLAIM_FIXED.unpack_from(
        frame, start + ATTRIBUTE_HEADER_LENGTH
    )
    deprecated, family_code, role_code = unpack_flag_family_role(octet)
    family = _FAMILIES.get(family_code)
    if family is None:
        raise UpdateMessageError(
            UpdateSubcode.UNRECOGNIZED_ADDRESS_FAMILY,
            frame[start:end],
            reason=f"address family {family_code}",
        )
    id_length = family.id_length
    fixed_end = start + CLAIM_FIXED_LENGTH + 4 * id_length
    # §7.3: "All attributes are 4-octets aligned."
    if fixed_end > end or length % 4:
        raise UpdateMessageError(
            UpdateSubcode.ATTRIBUTE_LENGTH_ERROR,
            frame[start:end],
            reason=f"{family.name} {claim_type.name} attribute of {length} octets",
        )
    parameters = _decode_parameters(frame, fixed_end, end)
    if parameters is None:
        raise UpdateMessageError(
            UpdateSubcode.MALFORMED_ATTRIBUTE_LIST,
            frame[start:end],
            reason="optional parameters overrun the attribute",
        )
    role = _ROLES[role_code]
    # §8.3: the Origin Role / Claim Type table.
    if role not in LEGAL_ORIGIN_ROLES[claim_type]:
        raise UpdateMessageError(
            UpdateSubcode.CLAIM_TYPE_ERROR,
            frame[start:end],
            reason=f"{claim_type.name} with origin role {role.name}",
        )
    offset = start + CLAIM_FIXED_LENGTH
    origin_domain = int.from_bytes(frame[offset : offset + id_length], "big")
    offset += id_length
    origin_node = int.from_bytes(frame[offset : offset + id_length], "big")
    offset += id_length
    address = int.from_bytes(frame[offset : offset + id_length], "big")
    offset += id_length
    mask = int.from_bytes(frame[offset : offset + id_length], "big")
    prefix = _prefix(family, address, mask, frame[start:end])
    return Claim(
        type=claim_type,
        origin_role=role,
        timestamp=timestamp,
        lifetime=lifetime,
        holdtime=holdtime,
        origin_domain=DomainId(origin_domain),
        origin_node=NodeId(origin_node),
        prefix=prefix,
        deprecated=deprecated,
        parameters=parameters,
    )


def _prefix(family: AddressFamily, address: int, mask: int, attribute: bytes) -> Prefix:
    """§8.3 Address and Mask checks, in the order docs/conformance.md gives."""
    bits = family.id_length * 8
    # "an invalid mask (for example, starting with 0)": the top bit must be set.
    if not mask >> (bits - 1):
        raise UpdateMessageError(
            UpdateSubcode.INVALID_MASK, attribute, reason=f"mask {mask:#x} starts with 0"
        )
    host_bits = ~mask & ((1 << bits) - 1)
    if host_bits & (host_bits + 1):
        raise UpdateMessageError(
            UpdateSubcode.NON_CONTIGUOUS_MASK, attribute, reason=f"mask {mask:#x}"
        )
    prefixlen = bits - host_bits.bit_length()
    network_type = IPv4Network if family is AddressFamily.IPV4 else IPv6Network
    block = _MULTICAST_BLOCK[family]
    # "an invalid address (except 0)": a non-zero address must be a multicast prefix.
    if address:
        if address & host_bits:
            raise UpdateMessageError(
                UpdateSubcode.INVALID_ADDRESS, attribute, reason="address has host bits set"
            )
        if address >> (bits - block.prefixlen) != int(block.network_address) >> (
            bits - block.prefixlen
        ):
            raise UpdateMessageError(
                UpdateSubcode.INVALID_ADDRESS, attribute, reason="address is not multicast"
            )
        if prefixlen < block.prefixlen:
            raise UpdateMessageError(
                UpdateSubcode.INVALID_MASK,
                attribute,
                reason=f"/{prefixlen} reaches outside {block}",
            )
    return _network(network_type, address, prefixlen)


@lru_cache(maxsize=1 << 16)
def _network(network_type: type[Prefix], address: int, prefixlen: int) -> Prefix:
    """One shared object per prefix: a parent relays each claim to every child, and each
    node caches what it hears for a lifetime (a whole strawman network holds millions of
    cached attributes, mostly of the same few thousand prefixes)."""
    return network_type((address, prefixlen))


def _decode_parameters(frame: bytes, start: int, end: int) -> tuple[OptionalParameter, ...] | None:
    """§7.2 optional parameters in frame[start:end]; None when one overruns ``end``.

    A parameter header of two zero octets, or a single trailing octet, starts the padding
    that aligns an attribute to four octets; what follows it is not read.
    """
    parameters: list[OptionalParameter] = []
    offset = start
    while end - offset >= PARAMETER_HEADER.size:
        plen, ptype = PARAMETER_HEADER.unpack_from(frame, offset)
        if plen == 0 and ptype == 0:
            break
        value_start = offset + PARAMETER_HEADER.size
        if value_start + plen > end:
            return None
        parameters.append(OptionalParameter(ptype, bytes(frame[value_start : value_start + plen])))
        offset = value_start + plen
    return tuple(parameters)
