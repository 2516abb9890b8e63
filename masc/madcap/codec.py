"""Encoding and decoding of MADCAP messages (RFC 2730 §2.1, §2.2, §3; RFC 2907 §3, §5).

``decode`` is total: given the UDP payload of one datagram it returns a :class:`Message` or
raises one of exactly two errors, never anything else (the property tests hold it to that):

* :class:`Ignored`: the datagram must be dropped without an answer: shorter than 12 octets
  (§2.1), a version other than 0 (§2.1.1), or an options field that is not a sequence of
  code/length/value options ending with End (§2.1.5 "MUST be ignored": an option running
  past the datagram, no End, octets after End).
* :class:`InvalidRequest`: the framing is sound but the content is not: an option given
  twice (§2.1.5), an option value of the wrong length or shape (§3), an address-bearing
  option under a header address family we do not know.  It carries the offending option
  code and the header fields (and the Lease Identifier when that option itself was sound),
  so a server can answer with NAK Invalid Request (§2.6, §3.17.2) and a client can drop it.

Which options a message type must or must not carry (Table 5) is *not* checked here; see
:mod:`masc.madcap.rules`.  An unknown message type decodes (``msg_type`` stays an int) so
that a server can answer it with Invalid Request (§2.2).  Unknown options are kept as
:class:`UnknownOption` so that round trips are exact; they are otherwise ignored (§2.1.5).

``encode`` is canonical: the header, the known options in code order, the unknown options
in their given order, End.  It refuses (:class:`EncodeError`, our own misuse, never sent
to a peer) any value ``decode`` would not give back, so ``decode(encode(m)) == m`` for
every message it accepts.  Choices where the RFC is loose are in docs/conformance.md.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from ipaddress import IPv4Address, IPv6Address
from typing import Final

from masc.madcap.constants import (
    MIN_MESSAGE_LENGTH,
    OPTION_HEADER_LENGTH,
    VERSION,
    AddressFamily,
    ErrorCode,
    MessageType,
    OptionCode,
)
from masc.madcap.messages import (
    Address,
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
)

__all__ = [
    "EncodeError",
    "Ignored",
    "InvalidRequest",
    "MadcapDecodeError",
    "decode",
    "encode",
    "excessive_clock_skew",
    "offending_option",
    "required_feature_not_supported",
    "server_time",
    "unsupported_features",
]

# §2.1 Figure 1, the fixed header (8 octets), then the options:
# +---------------+---------------+-------------------------------+
# |  version (1)  |  msgtype (1)  |        addrfamily (2)         |
# +---------------+---------------+-------------------------------+
# |                           xid (4)                             |
# +---------------------------------------------------------------+
HEADER: Final = struct.Struct("!BBHI")

# §2.1.5 / §3: every option, End included
# +-----+-----+-----+-----+-----+-...
# |   code    |    len    | value (len octets)
# +-----+-----+-----+-----+-----+-...
OPTION_HEADER: Final = struct.Struct("!HH")

# §3.2 Lease Time, §3.7 Start Time, §3.12 Current Time, §3.14 Retry Time,
# §3.15 Minimum Lease Time, §3.16 Maximum Start Time: len 4
# +-----+-----+-----+-----+
# | t1  | t2  | t3  | t4  |   u32 seconds (durations) or seconds since 1970 UTC (times)
# +-----+-----+-----+-----+
U32: Final = struct.Struct("!I")

# §3.3 Server Identifier: | family (2) | address ... |; §3.6 Option Request List entries,
# §3.13 feature counts and codes, §3.17 ecode, §3.17.1/.2 extra data: two octets each
U16: Final = struct.Struct("!H")

# §3.8 Number of Addresses Requested: len 4
# +-----+-----+-----+-----+
# |    min    |  desired  |
# +-----+-----+-----+-----+
ADDRESS_COUNT: Final = struct.Struct("!HH")

# §3.10 one scope tuple, after Scope ID and Last Address (header family):
# +-----+-----+-----+-...-+-----+
# | TTL |  n  | EN1 |     | ENn |
# +-----+-----+-----+-...-+-----+
SCOPE_TTL_NAME_COUNT: Final = struct.Struct("!BB")

# §3.10 one encoded name:
# +-----+-----+-----+-...-+-----+-----+-----+-...-+-----+
# |  F  |  q  | L1  |     | Lq  |  r  | N1  |     | Nr  |
# +-----+-----+-----+-...-+-----+-----+-----+-...-+-----+
NAME_FLAGS_LANGUAGE_LENGTH: Final = struct.Struct("!BB")
DEFAULT_NAME_FLAG: Final = 0x80  # §3.10: the high bit; other bits "MUST be ignored"

# §3.9 count (m) before the scope tuples; RFC 2907 §5 count before the matrix rows:
# +-----+-----+-...
# |  m  | ...
# +-----+-----+-...
COUNT: Final = struct.Struct("!B")

# §3.11 one entry of the Address Range List (start address in the header family):
# +---+---+---+---+---+---+
# |  ... S1 ...   |B11|B12|   block size: two octets, as the figure draws it
# +---+---+---+---+---+---+
BLOCK_SIZE: Final = struct.Struct("!H")

# §3.17 Error: | ecode (2) | extra data ... |; §3.17.3 extra is a u32 time
ERROR_CODE: Final = struct.Struct("!H")

ADDRESS_LENGTH: Final[dict[int, int]] = {AddressFamily.IPV4: 4, AddressFamily.IPV6: 16}
_ADDRESS_TYPE: Final[dict[int, type[IPv4Address] | type[IPv6Address]]] = {
    AddressFamily.IPV4: IPv4Address,
    AddressFamily.IPV6: IPv6Address,
}
_KNOWN_CODES: Final = frozenset(int(code) for code in OptionCode)
_MESSAGE_TYPES: Final = {int(t): t for t in MessageType}
_FAMILIES: Final = {int(f): f for f in AddressFamily}
U16_MAX: Final = 0xFFFF
U32_MAX: Final = 0xFFFF_FFFF


# --- errors --------------------------------------------------------------------------------


class MadcapDecodeError(Exception):
    """A datagram that is not a usable MADCAP message.  ``reason`` is for logs only."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Ignored(MadcapDecodeError):
    """§2.1 (< 12 octets), §2.1.1 (version != 0), §2.1.5 (options syntax): drop silently.
    Nothing in the datagram can be trusted, not even whether it is a NAK (§2.6)."""


class InvalidRequest(MadcapDecodeError):
    """A well-framed message whose content is malformed (§2.1.5, §3).  A server answers it
    with NAK Invalid Request naming ``option`` (§3.17.2); a client ignores it (§2.6).

    ``msg_type``, ``family`` and ``xid`` are the header's; ``lease_id`` is the Lease
    Identifier when that option was present once and well formed, else None.
    """

    def __init__(
        self,
        reason: str,
        *,
        option: int,
        msg_type: int,
        family: int,
        xid: int,
        lease_id: bytes | None,
    ) -> None:
        super().__init__(reason)
        self.option = option
        self.msg_type = msg_type
        self.family = family
        self.xid = xid
        self.lease_id = lease_id

    def __repr__(self) -> str:
        return (
            f"InvalidRequest({self.reason!r}, option={self.option}, msg_type={self.msg_type}, "
            f"family={self.family}, xid={self.xid:#010x}, lease_id={self.lease_id!r})"
        )


class EncodeError(ValueError):
    """Our own code asked for a message the wire cannot carry (a count over its field, an
    address of the wrong family, ...).  A bug, never sent to a peer."""


class _BadValue(Exception):
    """Internal: an option value of the wrong shape.  Never leaves :func:`decode`, which
    turns it into :class:`InvalidRequest` with the option code."""


# --- decoding ------------------------------------------------------------------------------


class _Reader:
    """Bounds-checked reads over one option value; running short is a :class:`_BadValue`."""

    __slots__ = ("data", "offset")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def take(self, n: int) -> bytes:
        end = self.offset + n
        if end > len(self.data):
            raise _BadValue(f"needs {end} octets, has {len(self.data)}")
        chunk = self.data[self.offset : end]
        self.offset = end
        return chunk

    def unpack(self, layout: struct.Struct) -> tuple[int, ...]:
        values: tuple[int, ...] = layout.unpack(self.take(layout.size))
        return values

    def u8(self) -> int:
        return self.unpack(COUNT)[0]

    def u16(self) -> int:
        return self.unpack(U16)[0]

    def address(self, family: int) -> Address:
        return _ADDRESS_TYPE[family](self.take(ADDRESS_LENGTH[family]))

    def remaining(self) -> int:
        return len(self.data) - self.offset

    def finish(self) -> None:
        if self.offset != len(self.data):
            raise _BadValue(f"{len(self.data) - self.offset} octets left over")


def _split_options(data: bytes) -> list[tuple[int, bytes]]:
    """§2.1.5: the options field as (code, value) pairs, End last, or :class:`Ignored`.

    End must be present, be the last option, and nothing may follow it.  An End whose length
    is not 0 (§3.1) is framed correctly, so it is reported as an invalid End option instead.
    """
    options: list[tuple[int, bytes]] = []
    offset = HEADER.size
    while True:
        if len(data) - offset < OPTION_HEADER_LENGTH:
            raise Ignored("§2.1.5: options field does not end with the End option")
        code, length = OPTION_HEADER.unpack_from(data, offset)
        offset += OPTION_HEADER_LENGTH
        if offset + length > len(data):
            raise Ignored(f"§2.1.5: option {code} length {length} runs past the datagram")
        value = data[offset : offset + length]
        offset += length
        if code == OptionCode.END:
            if offset != len(data):
                raise Ignored(f"§2.1.5: {len(data) - offset} octets after the End option")
            options.append((code, value))  # its length is checked with the other values
            return options
        options.append((code, value))


def _address_family(family: int) -> int:
    if family not in ADDRESS_LENGTH:
        raise _BadValue(f"address in unknown header address family {family}")
    return family


def _u32(value: bytes, family: int) -> int:
    if len(value) != U32.size:
        raise _BadValue(f"length {len(value)}, must be 4")
    number: int = U32.unpack(value)[0]
    return number


def _end(value: bytes, family: int) -> None:
    if value:
        raise _BadValue(f"§3.1: End has length {len(value)}, must be 0")


def _server_id(value: bytes, family: int) -> Address:
    # §3.3: its own family, "so that addresses from one family may be allocated while
    # communicating with a server via addresses of another family".
    reader = _Reader(value)
    own = reader.u16()
    if own not in ADDRESS_LENGTH:
        raise _BadValue(f"§3.3: unknown address family {own}")
    address = reader.address(own)
    reader.finish()
    return address


def _lease_id(value: bytes, family: int) -> bytes:
    if not value:
        raise _BadValue("§3.4: minimum length is 1")
    return value


def _scope(value: bytes, family: int) -> Address:
    reader = _Reader(value)
    address = reader.address(_address_family(family))
    reader.finish()
    return address


def _option_request_list(value: bytes, family: int) -> tuple[int, ...]:
    # §3.6: a list of two-octet option codes, minimum length 2.
    if not value or len(value) % U16.size:
        raise _BadValue(f"§3.6: length {len(value)}, must be a positive multiple of 2")
    return tuple(code for (code,) in U16.iter_unpack(value))


def _address_count(value: bytes, family: int) -> AddressCount:
    if len(value) != ADDRESS_COUNT.size:
        raise _BadValue(f"§3.8: length {len(value)}, must be 4")
    minimum, desired = ADDRESS_COUNT.unpack(value)
    # minimum <= desired is a rule of §3.8 checked by rules.server_check, not a shape.
    return AddressCount(minimum, desired)


def _ascii(raw: bytes, what: str) -> str:
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        raise _BadValue(f"{what} is not ASCII") from None


def _language(value: bytes, family: int) -> str:
    # §3.9: an RFC 1766 tag, minimum length 0.  Only ASCII is required here (choice).
    return _ascii(value, "§3.9: language tag")


def _scope_list(value: bytes, family: int) -> tuple[ScopeEntry, ...]:
    family = _address_family(family)
    if not value:
        return ()  # §3.10 "minimum length is 0": no count octet, no scopes (choice)
    reader = _Reader(value)
    entries = tuple(_scope_entry(reader, family) for _ in range(reader.u8()))
    reader.finish()
    if len({entry.scope_id for entry in entries}) != len(entries):
        raise _BadValue("§3.10: Scope IDs MUST be unique")
    return entries


def _scope_entry(reader: _Reader, family: int) -> ScopeEntry:
    scope_id = reader.address(family)
    last = reader.address(family)
    ttl, count = reader.unpack(SCOPE_TTL_NAME_COUNT)
    names = tuple(_scope_name(reader) for _ in range(count))
    return ScopeEntry(scope_id, last, ttl, names)


def _scope_name(reader: _Reader) -> ScopeName:
    flags, language_length = reader.unpack(NAME_FLAGS_LANGUAGE_LENGTH)
    if language_length == 0:
        raise _BadValue("§3.10: Lang Length MUST NOT be zero")
    language = _ascii(reader.take(language_length), "§3.10: language tag")
    name_length = reader.u8()
    if name_length == 0:
        raise _BadValue("§3.10: Name Length MUST NOT be zero")
    try:
        name = reader.take(name_length).decode("utf-8")
    except UnicodeDecodeError:
        raise _BadValue("§3.10: Name is not UTF-8") from None
    # §3.10: "All remaining bits ... MUST be ignored".
    return ScopeName(language, name, default=bool(flags & DEFAULT_NAME_FLAG))


def _ranges(value: bytes, family: int) -> tuple[AddressRange, ...]:
    family = _address_family(family)
    reader = _Reader(value)
    ranges: list[AddressRange] = []
    while reader.remaining():
        start = reader.address(family)
        count = reader.u16()
        if count == 0:
            raise _BadValue("§3.11: block size 0 (choice: a range holds at least one address)")
        if int(start) + count - 1 > (1 << (8 * ADDRESS_LENGTH[family])) - 1:
            raise _BadValue("§3.11: range runs past the end of the address space")
        ranges.append(AddressRange(start, count))
    return tuple(ranges)


def _features(value: bytes, family: int) -> FeatureList:
    # §3.13: three lists, each a two-octet count and that many two-octet codes.
    reader = _Reader(value)
    lists = tuple(tuple(reader.u16() for _ in range(reader.u16())) for _ in range(3))
    reader.finish()
    return FeatureList(*lists)


def _error(value: bytes, family: int) -> ErrorOption:
    # §3.17: minimum length 2; the extra data's shape depends on the code and is read by
    # offending_option / server_time / unsupported_features, not enforced here (choice).
    reader = _Reader(value)
    code = reader.u16()
    return ErrorOption(code, value[ERROR_CODE.size :])


def _nesting(value: bytes, family: int) -> NestingState:
    # RFC 2907 §5: count m, then m rows of ceil((m-1)/8) octets, diagonal removed, MSB
    # first, each row zero-padded (padding bits are ignored: choice).
    reader = _Reader(value)
    count = reader.u8()
    width = row_octets(count)
    rows = tuple(_unpack_row(reader.take(width), row, count) for row in range(count))
    reader.finish()
    return NestingState(rows)


def row_octets(count: int) -> int:
    """RFC 2907 §5: octets per row of the matrix of ``count`` scopes, ceil((N-1)/8)."""
    return (max(count - 1, 0) + 7) // 8


def _unpack_row(octets: bytes, row: int, count: int) -> tuple[bool, ...]:
    bits = int.from_bytes(octets, "big")
    total = 8 * len(octets)
    off_diagonal = [bool(bits >> (total - 1 - i) & 1) for i in range(count - 1)]
    off_diagonal.insert(row, False)  # the diagonal, removed on the wire
    return tuple(off_diagonal)


def _pack_row(row: tuple[bool, ...], index: int) -> bytes:
    off_diagonal = [bit for column, bit in enumerate(row) if column != index]
    width = row_octets(len(row))
    bits = 0
    for bit in off_diagonal:
        bits = bits << 1 | int(bit)
    bits <<= 8 * width - len(off_diagonal)
    return bits.to_bytes(width, "big")


_Decoder = Callable[[bytes, int], object]
# Option code -> (Options field, value decoder).  A literal table: one row per §3 option.
_DECODERS: Final[dict[int, tuple[str, _Decoder]]] = {
    OptionCode.LEASE_TIME: ("lease_time", _u32),
    OptionCode.SERVER_IDENTIFIER: ("server_id", _server_id),
    OptionCode.LEASE_IDENTIFIER: ("lease_id", _lease_id),
    OptionCode.MULTICAST_SCOPE: ("scope", _scope),
    OptionCode.OPTION_REQUEST_LIST: ("option_request_list", _option_request_list),
    OptionCode.START_TIME: ("start_time", _u32),
    OptionCode.NUMBER_OF_ADDRESSES: ("addresses", _address_count),
    OptionCode.REQUESTED_LANGUAGE: ("language", _language),
    OptionCode.MULTICAST_SCOPE_LIST: ("scope_list", _scope_list),
    OptionCode.LIST_OF_ADDRESS_RANGES: ("ranges", _ranges),
    OptionCode.CURRENT_TIME: ("current_time", _u32),
    OptionCode.FEATURE_LIST: ("features", _features),
    OptionCode.RETRY_TIME: ("retry_time", _u32),
    OptionCode.MINIMUM_LEASE_TIME: ("minimum_lease_time", _u32),
    OptionCode.MAXIMUM_START_TIME: ("maximum_start_time", _u32),
    OptionCode.ERROR: ("error", _error),
    OptionCode.MULTICAST_SCOPE_NESTING_STATE: ("nesting", _nesting),
}
# Options field name per code, for rules and tests.
OPTION_FIELDS: Final[dict[OptionCode, str]] = {
    OptionCode(code): name for code, (name, _) in _DECODERS.items()
}


def decode(data: bytes) -> Message:
    """One datagram -> :class:`Message`, or :class:`Ignored` / :class:`InvalidRequest`."""
    if len(data) < MIN_MESSAGE_LENGTH:
        raise Ignored(f"§2.1: {len(data)} octets, at least {MIN_MESSAGE_LENGTH} needed")
    version, msg_type, family, xid = HEADER.unpack_from(data)
    if version != VERSION:
        raise Ignored(f"§2.1.1: version {version}, must be 0")
    options = _split_options(data)

    # The Lease Identifier first, so that every later InvalidRequest can carry it.
    lids = [value for code, value in options if code == OptionCode.LEASE_IDENTIFIER]
    lease_id = lids[0] if len(lids) == 1 and lids[0] else None

    def invalid(reason: str, option: int) -> InvalidRequest:
        return InvalidRequest(
            reason, option=option, msg_type=msg_type, family=family, xid=xid, lease_id=lease_id
        )

    seen: set[int] = set()
    for code, _ in options:
        # §2.1.5 "MUST NOT include more than one option with the same option type".  Two
        # unknown options of one code are ignored like any unknown option (choice).
        if code in seen and code in _KNOWN_CODES:
            raise invalid(f"§2.1.5: option {code} appears more than once", code)
        seen.add(code)

    fields: dict[str, object] = {}
    unknown: list[UnknownOption] = []
    for code, value in options:
        if code == OptionCode.END:
            try:
                _end(value, family)
            except _BadValue as error:
                raise invalid(str(error), code) from None
            continue
        row = _DECODERS.get(code)
        if row is None:
            unknown.append(UnknownOption(code, value))  # §2.1.5: ignored, kept for logs
            continue
        name, decoder = row
        try:
            fields[name] = decoder(value, family)
        except _BadValue as error:
            raise invalid(f"option {code}: {error}", code) from None
    return Message(
        msg_type=_MESSAGE_TYPES.get(msg_type, msg_type),
        family=_FAMILIES.get(family, family),
        xid=xid,
        options=Options(**fields, unknown=tuple(unknown)),  # type: ignore[arg-type]
    )


# --- encoding ------------------------------------------------------------------------------


def _check(condition: bool, reason: str) -> None:
    if not condition:
        raise EncodeError(reason)


def _pack_u32(value: int, what: str) -> bytes:
    _check(0 <= value <= U32_MAX, f"{what} {value} does not fit 32 bits")
    return U32.pack(value)


def _pack_u16(value: int, what: str) -> bytes:
    _check(0 <= value <= U16_MAX, f"{what} {value} does not fit 16 bits")
    return U16.pack(value)


def _pack_u8(value: int, what: str) -> bytes:
    _check(0 <= value <= 0xFF, f"{what} {value} does not fit 8 bits")
    return COUNT.pack(value)


def _pack_address(address: Address, family: int, what: str) -> bytes:
    _check(family in ADDRESS_LENGTH, f"{what} needs a known header address family")
    _check(isinstance(address, _ADDRESS_TYPE[family]), f"{what} {address} not in family {family}")
    return address.packed


def _family_of(address: Address) -> AddressFamily:
    return AddressFamily.IPV4 if isinstance(address, IPv4Address) else AddressFamily.IPV6


def _ascii_bytes(text: str, what: str) -> bytes:
    _check(text.isascii(), f"{what} {text!r} is not ASCII")
    return text.encode("ascii")


def _encode_scope_name(name: ScopeName) -> bytes:
    language = _ascii_bytes(name.language, "§3.10 language tag")
    text = name.name.encode("utf-8")
    _check(1 <= len(language) <= 0xFF, "§3.10 language tag must be 1..255 octets")
    _check(1 <= len(text) <= 0xFF, "§3.10 name must be 1..255 octets")
    flags = DEFAULT_NAME_FLAG if name.default else 0
    return (
        NAME_FLAGS_LANGUAGE_LENGTH.pack(flags, len(language))
        + language
        + COUNT.pack(len(text))
        + text
    )


def _encode_scope_list(entries: tuple[ScopeEntry, ...], family: int) -> bytes:
    _check(len({e.scope_id for e in entries}) == len(entries), "§3.10 Scope IDs MUST be unique")
    out = [_pack_u8(len(entries), "§3.10 scope count")]
    for entry in entries:
        out.append(_pack_address(entry.scope_id, family, "§3.10 Scope ID"))
        out.append(_pack_address(entry.last_address, family, "§3.10 Last Address"))
        _check(0 <= entry.ttl <= 0xFF, f"§3.10 TTL {entry.ttl} does not fit 8 bits")
        _check(len(entry.names) <= 0xFF, "§3.10 more than 255 names")
        out.append(SCOPE_TTL_NAME_COUNT.pack(entry.ttl, len(entry.names)))
        out.extend(_encode_scope_name(name) for name in entry.names)
    return b"".join(out)


def _encode_ranges(ranges: tuple[AddressRange, ...], family: int) -> bytes:
    out = []
    for entry in ranges:
        out.append(_pack_address(entry.start, family, "§3.11 start address"))
        _check(1 <= entry.count <= U16_MAX, f"§3.11 block size {entry.count} not in 1..65535")
        top = (1 << (8 * ADDRESS_LENGTH[family])) - 1
        _check(int(entry.start) + entry.count - 1 <= top, "§3.11 range past the address space")
        out.append(BLOCK_SIZE.pack(entry.count))
    return b"".join(out)


def _encode_features(features: FeatureList) -> bytes:
    out = []
    for codes in (features.supported, features.requested, features.required):
        out.append(_pack_u16(len(codes), "§3.13 feature count"))
        out.extend(_pack_u16(code, "§3.13 feature code") for code in codes)
    return b"".join(out)


def _encode_nesting(state: NestingState) -> bytes:
    count = state.count
    _check(count <= 0xFF, f"RFC 2907 §5: {count} scopes do not fit the count octet")
    for index, row in enumerate(state.rows):
        _check(len(row) == count, "RFC 2907: the nesting matrix must be square")
        _check(not row[index], "RFC 2907 §3.2: the diagonal is not on the wire; keep it False")
    return COUNT.pack(count) + b"".join(_pack_row(row, i) for i, row in enumerate(state.rows))


def _encode_values(options: Options, family: int) -> Iterable[tuple[int, bytes]]:
    """(code, value) for each present known option, in code order."""
    o = options
    if o.lease_time is not None:
        yield OptionCode.LEASE_TIME, _pack_u32(o.lease_time, "§3.2 Lease Time")
    if o.server_id is not None:
        own = _family_of(o.server_id)
        yield OptionCode.SERVER_IDENTIFIER, U16.pack(own) + o.server_id.packed
    if o.lease_id is not None:
        _check(len(o.lease_id) >= 1, "§3.4 Lease Identifier: minimum length is 1")
        yield OptionCode.LEASE_IDENTIFIER, o.lease_id
    if o.scope is not None:
        yield OptionCode.MULTICAST_SCOPE, _pack_address(o.scope, family, "§3.5 Scope ID")
    if o.option_request_list is not None:
        _check(len(o.option_request_list) >= 1, "§3.6 Option Request List: minimum length 2")
        codes = o.option_request_list
        yield OptionCode.OPTION_REQUEST_LIST, b"".join(_pack_u16(c, "§3.6 code") for c in codes)
    if o.start_time is not None:
        yield OptionCode.START_TIME, _pack_u32(o.start_time, "§3.7 Start Time")
    if o.addresses is not None:
        minimum = _pack_u16(o.addresses.minimum, "§3.8 minimum")
        yield OptionCode.NUMBER_OF_ADDRESSES, minimum + _pack_u16(o.addresses.desired, "desired")
    if o.language is not None:
        yield OptionCode.REQUESTED_LANGUAGE, _ascii_bytes(o.language, "§3.9 language tag")
    if o.scope_list is not None:
        _check(family in ADDRESS_LENGTH, "§3.10 needs a known header address family")
        yield OptionCode.MULTICAST_SCOPE_LIST, _encode_scope_list(o.scope_list, family)
    if o.ranges is not None:
        _check(family in ADDRESS_LENGTH, "§3.11 needs a known header address family")
        yield OptionCode.LIST_OF_ADDRESS_RANGES, _encode_ranges(o.ranges, family)
    if o.current_time is not None:
        yield OptionCode.CURRENT_TIME, _pack_u32(o.current_time, "§3.12 Current Time")
    if o.features is not None:
        yield OptionCode.FEATURE_LIST, _encode_features(o.features)
    if o.retry_time is not None:
        yield OptionCode.RETRY_TIME, _pack_u32(o.retry_time, "§3.14 Retry Time")
    if o.minimum_lease_time is not None:
        yield OptionCode.MINIMUM_LEASE_TIME, _pack_u32(o.minimum_lease_time, "§3.15")
    if o.maximum_start_time is not None:
        yield OptionCode.MAXIMUM_START_TIME, _pack_u32(o.maximum_start_time, "§3.16")
    if o.error is not None:
        code = _pack_u16(o.error.code, "§3.17 error code")
        yield OptionCode.ERROR, code + o.error.extra
    if o.nesting is not None:
        yield OptionCode.MULTICAST_SCOPE_NESTING_STATE, _encode_nesting(o.nesting)
    for option in o.unknown:
        _check(option.code not in _KNOWN_CODES, f"option {option.code} is known: use its field")
        _check(0 <= option.code <= U16_MAX, f"option code {option.code} does not fit 16 bits")
        yield option.code, option.value


def encode(message: Message) -> bytes:
    """:class:`Message` -> datagram, canonical (see the module docstring)."""
    _check(0 <= message.version <= 0xFF, f"version {message.version} does not fit 8 bits")
    _check(0 <= message.msg_type <= 0xFF, f"msgtype {message.msg_type} does not fit 8 bits")
    _check(0 <= message.family <= U16_MAX, f"addrfamily {message.family} does not fit 16 bits")
    _check(0 <= message.xid <= U32_MAX, f"xid {message.xid} does not fit 32 bits")
    out = [HEADER.pack(message.version, message.msg_type, message.family, message.xid)]
    for code, value in _encode_values(message.options, int(message.family)):
        _check(len(value) <= U16_MAX, f"option {code} value of {len(value)} octets is too long")
        out.append(OPTION_HEADER.pack(code, len(value)))
        out.append(value)
    out.append(OPTION_HEADER.pack(OptionCode.END, 0))
    return b"".join(out)


# --- Error option extra data (§3.17.1-§3.17.5) ---------------------------------------------


def offending_option(error: ErrorOption) -> int | None:
    """§3.17.1/§3.17.2: the option code named by error 0 or 1 (0xFFFF: none), else None."""
    if (
        error.code in (ErrorCode.VALID_REQUEST_NOT_COMPLETED, ErrorCode.INVALID_REQUEST)
        and len(error.extra) == U16.size
    ):
        option: int = U16.unpack(error.extra)[0]
        return option
    return None


def server_time(error: ErrorOption) -> int | None:
    """§3.17.3: the server's current time carried by error 2, else None."""
    if error.code == ErrorCode.EXCESSIVE_CLOCK_SKEW and len(error.extra) == U32.size:
        now: int = U32.unpack(error.extra)[0]
        return now
    return None


def unsupported_features(error: ErrorOption) -> tuple[int, ...]:
    """§3.17.5: the required feature codes error 4 says are not supported, else ()."""
    if error.code == ErrorCode.REQUIRED_FEATURE_NOT_SUPPORTED and len(error.extra) % 2 == 0:
        return tuple(code for (code,) in U16.iter_unpack(error.extra))
    return ()


def excessive_clock_skew(now: int) -> ErrorOption:
    """§3.17.3: Error 2 carrying the server's current time (u32 seconds since 1970)."""
    return ErrorOption(int(ErrorCode.EXCESSIVE_CLOCK_SKEW), _pack_u32(now, "§3.17.3 time"))


def required_feature_not_supported(features: Iterable[int]) -> ErrorOption:
    """§3.17.5: Error 4 listing the required features not supported."""
    extra = b"".join(_pack_u16(code, "§3.17.5 feature") for code in features)
    return ErrorOption(int(ErrorCode.REQUIRED_FEATURE_NOT_SUPPORTED), extra)
