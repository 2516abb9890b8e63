"""MADCAP messages as frozen values (RFC 2730 §2.1, §3; RFC 2907 §3).

The codec turns bytes into these and back.  They hold domain types (addresses, enums, tuples),
never raw option words, and carry no behaviour: which options a message type must or must not
carry (Table 5) is checked by ``rules``, not here, so that a server can answer a message that
breaks those rules with the right NAK instead of failing to decode it.

Absolute times (Start Time, Current Time, Retry Time, Maximum Start Time) are the wire's
u32 seconds since 1970-01-01 UTC (§3.7); durations (Lease Time, Minimum Lease Time) are u32
seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address

from masc.madcap.constants import AddressFamily, ErrorCode, Feature, MessageType

Address = IPv4Address | IPv6Address


@dataclass(frozen=True, slots=True)
class AddressCount:
    """§3.8 Number of Addresses Requested: at least ``minimum``, ideally ``desired``."""

    minimum: int
    desired: int


@dataclass(frozen=True, slots=True)
class ScopeName:
    """§3.10 one encoded name of a zone: RFC 1766 language tag and UTF-8 name.  ``default``
    is the 0x80 flag: use this name when none matches the desired language."""

    language: str
    name: str
    default: bool = False


@dataclass(frozen=True, slots=True)
class ScopeEntry:
    """§3.10 one tuple of the Multicast Scope List.  ``scope_id`` is the scope's first
    address (§3.5); both addresses are in the header's family."""

    scope_id: Address
    last_address: Address
    ttl: int
    names: tuple[ScopeName, ...] = ()


@dataclass(frozen=True, slots=True)
class AddressRange:
    """§3.11 one entry of the List of Address Ranges: ``count`` consecutive addresses from
    ``start`` (the block size is two octets, per the figure of §3.11)."""

    start: Address
    count: int


@dataclass(frozen=True, slots=True)
class FeatureList:
    """§3.13 the three lists, in wire order: supported, requested, required.  Codes are
    kept as ints because a peer may name features this implementation does not know."""

    supported: tuple[int, ...] = ()
    requested: tuple[int, ...] = ()
    required: tuple[int, ...] = ()

    def mentions(self, feature: Feature) -> bool:
        return feature in self.supported or feature in self.requested or feature in self.required


@dataclass(frozen=True, slots=True)
class ErrorOption:
    """§3.17 Error: a code and its extra data, kept raw because its shape depends on the
    code (see ``offending_option``, ``server_time`` and ``unsupported_features`` in the
    codec)."""

    code: int
    extra: bytes = b""


@dataclass(frozen=True, slots=True)
class NestingState:
    """RFC 2907 §3 Multicast Scope Nesting State: ``rows[x][y]`` is the relation "scope x
    nests inside scope y", over the order of the Multicast Scope List in the same message.
    The diagonal is not on the wire; here it is always False."""

    rows: tuple[tuple[bool, ...], ...]

    @property
    def count(self) -> int:
        return len(self.rows)


@dataclass(frozen=True, slots=True)
class UnknownOption:
    """§2.1.5: an unrecognized option is ignored.  Kept so decoding shows it and round
    trips are exact; encoded after the known options, before End."""

    code: int
    value: bytes


@dataclass(frozen=True, slots=True)
class Options:
    """The options of one message (§3), at most one of each code (§2.1.5); ``None`` is
    absent.  End (code 0) is implied: the codec adds it and requires it."""

    lease_time: int | None = None  # 1: seconds
    server_id: Address | None = None  # 2: carries its own address family
    lease_id: bytes | None = None  # 3: opaque, at least one octet (its type)
    scope: Address | None = None  # 4: the Scope ID, the scope's first address
    option_request_list: tuple[int, ...] | None = None  # 5: option codes
    start_time: int | None = None  # 6: absolute
    addresses: AddressCount | None = None  # 7
    language: str | None = None  # 8: RFC 1766 tag, ASCII
    scope_list: tuple[ScopeEntry, ...] | None = None  # 9
    ranges: tuple[AddressRange, ...] | None = None  # 10: () is the Retry-After answer
    current_time: int | None = None  # 11: absolute, the sender's clock
    features: FeatureList | None = None  # 12
    retry_time: int | None = None  # 13: absolute
    minimum_lease_time: int | None = None  # 14: seconds
    maximum_start_time: int | None = None  # 15: absolute
    error: ErrorOption | None = None  # 16
    nesting: NestingState | None = None  # 17 (RFC 2907)
    unknown: tuple[UnknownOption, ...] = ()


@dataclass(frozen=True, slots=True)
class Message:
    """§2.1 one MADCAP message.  ``msg_type`` is an int, not only a MessageType, because a
    server must answer an unknown type with Invalid Request (§2.2) and so has to read it."""

    msg_type: MessageType | int
    family: AddressFamily | int  # an int only when unknown: echoed in the NAK it earns
    xid: int
    options: Options = field(default_factory=Options)
    version: int = 0


def error_extra(code: ErrorCode, option: int) -> ErrorOption:
    """§3.17.1/§3.17.2: the Error option naming the offending option code (or 0xFFFF)."""
    return ErrorOption(int(code), option.to_bytes(2, "big"))
