"""NOTIFICATION error codes and the exception tree of the MASC core (RFC 2909 §7.5, §8).

Two kinds of failure live here and never mix:

* :class:`ProtocolError` and its subclasses describe something a *peer* did wrong.  Each
  carries the exact wire triple (code, subcode, data) and whether the connection must close.
  They are raised where the fault is found and turned into a NOTIFICATION in exactly one
  place, the session's input boundary (``masc.protocol.session``).
* :class:`CoreMisuse` is raised when *our own* code drives the core wrongly (an event for an
  unknown connection, an impossible state).  It is never sent to a peer: it is a bug.

Whether the connection closes is decided by one table, ``_CAN_CLOSE`` (read through
:func:`requires_close`), transcribed from the MC/CC marks of §7.5.  For CC ("Can Close")
errors this implementation's policy is to keep the connection open (O-bit 1) when the
session is Established; see docs/conformance.md.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, ClassVar, Final

from masc.protocol.constants import MAX_NOTIFICATION_DATA

if TYPE_CHECKING:
    from masc.protocol.wire.messages import Update


class ErrorCode(enum.IntEnum):
    """§7.5 Error Code (7 bits)."""

    MESSAGE_HEADER = 1
    OPEN_MESSAGE = 2
    UPDATE_MESSAGE = 3
    HOLD_TIMER_EXPIRED = 4
    FSM = 5
    NOTIFICATION = 6
    CEASE = 7


class HeaderSubcode(enum.IntEnum):
    """§7.5 Message Header Error subcodes."""

    UNSPECIFIC = 0
    BAD_MESSAGE_LENGTH = 1
    BAD_MESSAGE_TYPE = 2


class OpenSubcode(enum.IntEnum):
    """§7.5 OPEN Message Error subcodes."""

    UNSPECIFIC = 0
    UNSUPPORTED_VERSION = 1
    BAD_PEER_DOMAIN_ID = 2
    BAD_PEER_NODE_ID = 3
    UNACCEPTABLE_HOLD_TIME = 6
    INVALID_PARENT_CONFIGURATION = 7
    INCONSISTENT_ROLE = 8
    BAD_PARENT_DOMAIN_ID = 9
    NO_COMMON_PARENT = 10
    UNRECOGNIZED_ADDRESS_FAMILY = 13


class UpdateSubcode(enum.IntEnum):
    """§7.5 UPDATE Message Error subcodes."""

    UNSPECIFIC = 0
    MALFORMED_ATTRIBUTE_LIST = 1
    UNRECOGNIZED_REQUIRED_ATTRIBUTE = 2
    ATTRIBUTE_LENGTH_ERROR = 5
    INVALID_ADDRESS = 10
    INVALID_MASK = 11
    NON_CONTIGUOUS_MASK = 12
    UNRECOGNIZED_ADDRESS_FAMILY = 13
    CLAIM_TYPE_ERROR = 14
    ORIGIN_DOMAIN_ID_ERROR = 15
    ORIGIN_NODE_ID_ERROR = 16
    CLAIM_LIFETIME_TOO_SHORT = 17
    CLAIM_LIFETIME_TOO_LONG = 18
    CLAIM_TIMESTAMP_TOO_OLD = 19
    CLAIM_TIMESTAMP_TOO_NEW = 20
    CLAIM_PREFIX_SIZE_TOO_SMALL = 21
    CLAIM_PREFIX_SIZE_TOO_LARGE = 22
    ILLEGAL_ORIGIN_ROLE = 23
    NO_APPROPRIATE_PARENT_PREFIX = 24
    NO_APPROPRIATE_CHILD_PREFIX = 25
    NO_APPROPRIATE_INTERNAL_PREFIX = 26
    NO_APPROPRIATE_SIBLING_PREFIX = 27
    CLAIM_HOLDTIME_TOO_SHORT = 28
    CLAIM_HOLDTIME_TOO_LONG = 29


class HoldTimerSubcode(enum.IntEnum):
    """§7.5 Hold Timer Expired subcodes (the O-bit is always zero)."""

    UNSPECIFIC = 0


class FsmSubcode(enum.IntEnum):
    """§7.5 Finite State Machine Error subcodes."""

    UNSPECIFIC = 0
    OPEN_CLOSE_FSM_ERROR = 1
    UNEXPECTED_MESSAGE_TYPE = 2


class NotificationSubcode(enum.IntEnum):
    """§7.5 NOTIFICATION Message Error subcodes (the O-bit is always zero)."""

    UNSPECIFIC = 0


class CeaseSubcode(enum.IntEnum):
    """§7.5 Cease subcodes (the O-bit is always zero)."""

    UNSPECIFIC = 0


SUBCODES: Final[dict[ErrorCode, type[enum.IntEnum]]] = {
    ErrorCode.MESSAGE_HEADER: HeaderSubcode,
    ErrorCode.OPEN_MESSAGE: OpenSubcode,
    ErrorCode.UPDATE_MESSAGE: UpdateSubcode,
    ErrorCode.HOLD_TIMER_EXPIRED: HoldTimerSubcode,
    ErrorCode.FSM: FsmSubcode,
    ErrorCode.NOTIFICATION: NotificationSubcode,
    ErrorCode.CEASE: CeaseSubcode,
}

# §7.5, the "(CC)" marks: the only (code, subcode) pairs after which the connection may stay
# open.  Every other defined pair is "(MC)", Must Close; so is every undefined one ("If no
# appropriate Error Subcode is defined ... the O-bit must be zero").
_CAN_CLOSE: Final = frozenset(
    {(ErrorCode.MESSAGE_HEADER, HeaderSubcode.BAD_MESSAGE_TYPE)}
    | {
        (ErrorCode.UPDATE_MESSAGE, sub)
        for sub in UpdateSubcode
        if sub
        not in (
            UpdateSubcode.UNSPECIFIC,
            UpdateSubcode.MALFORMED_ATTRIBUTE_LIST,
            UpdateSubcode.ATTRIBUTE_LENGTH_ERROR,
            UpdateSubcode.UNRECOGNIZED_ADDRESS_FAMILY,
        )
    }
)


def requires_close(code: int, subcode: int) -> bool:
    """Whether §7.5 marks this (code, subcode) MC: the NOTIFICATION's O-bit must be zero."""
    return (code, subcode) not in _CAN_CLOSE


def is_defined(code: int, subcode: int) -> bool:
    """Whether (code, subcode) is a pair §7.5 defines."""
    try:
        table = SUBCODES[ErrorCode(code)]
    except ValueError:
        return False
    return subcode in table._value2member_map_


def describe(code: int, subcode: int) -> str:
    """A human name for logs, e.g. "UPDATE Message Error / Invalid Mask"."""
    try:
        code_enum = ErrorCode(code)
    except ValueError:
        return f"unknown error {code}/{subcode}"
    table = SUBCODES[code_enum]
    sub_name = table(subcode).name if subcode in table._value2member_map_ else f"subcode {subcode}"
    return f"{code_enum.name} / {sub_name}"


class ProtocolError(Exception):
    """A fault of the peer's, carrying the NOTIFICATION that reports it (§8).

    ``must_close`` defaults to the §7.5 MC/CC table; the session may still close on a CC
    error when the state requires it (for instance before the session is Established).
    """

    code: ClassVar[ErrorCode]  # each subclass's own (a class attribute, also when compiled)

    def __init__(
        self,
        subcode: int,
        data: bytes = b"",
        *,
        reason: str = "",
        must_close: bool | None = None,
    ) -> None:
        self.subcode = subcode
        # §8 asks for whole messages as Data, but a NOTIFICATION is itself at most 4096
        # octets: keep the first MAX_NOTIFICATION_DATA (docs/conformance.md).
        self.data = bytes(data[:MAX_NOTIFICATION_DATA])
        self.reason = reason
        self.must_close = requires_close(self.code, subcode) if must_close is None else must_close
        label = describe(self.code, subcode)
        super().__init__(f"{label}: {reason}" if reason else label)


class MessageHeaderError(ProtocolError):
    """§8.1: errors found in the 4-octet message header."""

    code = ErrorCode.MESSAGE_HEADER


class OpenMessageError(ProtocolError):
    """§8.2: errors found in an OPEN message."""

    code = ErrorCode.OPEN_MESSAGE


class UpdateMessageError(ProtocolError):
    """§8.3: errors found in an UPDATE message.

    An UPDATE may carry several attributes and a CC error rejects only the claim it is in.
    When the decoder finds CC errors it raises the first, with ``further`` holding the
    others and ``salvaged`` an UPDATE of the attributes that were valid (or None), so the
    session can report every bad claim and still process the good ones.
    """

    code = ErrorCode.UPDATE_MESSAGE

    def __init__(
        self,
        subcode: int,
        data: bytes = b"",
        *,
        reason: str = "",
        must_close: bool | None = None,
    ) -> None:
        super().__init__(subcode, data, reason=reason, must_close=must_close)
        self.salvaged: Update | None = None
        self.further: tuple[UpdateMessageError, ...] = ()


class HoldTimerExpired(ProtocolError):
    """§8.4."""

    code = ErrorCode.HOLD_TIMER_EXPIRED


class FsmError(ProtocolError):
    """§8.5: an event the FSM does not expect in its current state."""

    code = ErrorCode.FSM


class NotificationMessageError(ProtocolError):
    """§8.6: the peer sent a NOTIFICATION with an error in it and kept the connection open."""

    code = ErrorCode.NOTIFICATION


class CoreMisuse(Exception):
    """Our own code drove the sans-IO core wrongly.  A bug, never sent to a peer."""
