"""Which options each MADCAP message carries: Table 5 of RFC 2730 §3, RFC 2907 §3.3, and the
conditional rules spread through §2.2, §2.12, §2.13.2, §3.3, §3.8, §3.13 and §3.14.

The codec decodes any well-formed message whatever options it holds; this module says
whether those options are the ones the message type allows.  The two sides react
differently (§2.1.5):

* a **server** answers a non-conforming request with NAK Invalid Request naming the option
  (§2.6, §3.17.2): :func:`server_check` returns that option code, or ``NO_OPTION`` when no
  single option is to blame (an unknown message type);
* a **client** ignores a non-conforming answer: :func:`client_check` returns a bool.

Table 5 is transcribed below as a literal table, one row per option in code order and one
column per message (ACK has a column per request it answers).  Unknown options are never
checked: they are ignored (§2.1.5).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

from masc.madcap.codec import OPTION_FIELDS
from masc.madcap.constants import NO_OPTION, Feature, MessageType, OptionCode
from masc.madcap.messages import Message, Options

__all__ = [
    "TABLE_5",
    "Column",
    "Presence",
    "client_check",
    "present",
    "reply_column",
    "request_column",
    "server_check",
    "table_check",
]


class Presence(enum.Enum):
    """One cell of Table 5."""

    MUST = "MUST"
    MAY = "MAY"
    MUST_NOT = "MUST NOT"
    MUST_IF_MULTICAST = "MUST (if multicast)"  # Server Identifier in REQUEST only


class Column(enum.Enum):
    """The columns of Table 5: a message type, and for ACK the request it answers."""

    GETINFO = "GETINFO"
    ACK_GETINFO = "ACK (in response to GETINFO)"
    DISCOVER = "DISCOVER"
    OFFER = "OFFER"
    REQUEST = "REQUEST"
    ACK_REQUEST = "ACK (in response to REQUEST)"
    RENEW = "RENEW"
    ACK_RENEW = "ACK (in response to RENEW)"
    RELEASE = "RELEASE"
    ACK_RELEASE = "ACK (in response to RELEASE)"
    NAK = "NAK"


_M: Final = Presence.MUST
_Y: Final = Presence.MAY
_N: Final = Presence.MUST_NOT
_C: Final = Presence.MUST_IF_MULTICAST
_O: Final = OptionCode

_COLUMNS: Final = (
    Column.GETINFO,
    Column.ACK_GETINFO,
    Column.DISCOVER,
    Column.OFFER,
    Column.REQUEST,
    Column.ACK_REQUEST,
    Column.RENEW,
    Column.ACK_RENEW,
    Column.RELEASE,
    Column.ACK_RELEASE,
    Column.NAK,
)
# Table 5 (RFC 2730 pp. 29-31), transposed: M = MUST, Y = MAY, N = MUST NOT,
# C = MUST (if multicast).  The last row is RFC 2907 §3.3: option 17 "MUST only be used in
# ... ACK (in response to GETINFO)".
# GI = GETINFO, DI = DISCOVER, OF = OFFER, RQ = REQUEST, RN = RENEW, RL = RELEASE, and
# A.. = the ACK answering that request.
#                                       GI  AGI DI  OF  RQ  ARQ RN  ARN RL  ARL NAK
_ROWS: Final[dict[OptionCode, tuple[Presence, ...]]] = {
    _O.LEASE_TIME:                     (_N, _N, _Y, _M, _Y, _M, _Y, _M, _N, _N, _N),
    _O.SERVER_IDENTIFIER:              (_N, _M, _N, _M, _C, _M, _N, _M, _N, _M, _M),
    _O.LEASE_IDENTIFIER:               (_M, _M, _M, _M, _M, _M, _M, _M, _M, _M, _M),
    _O.MULTICAST_SCOPE:                (_N, _N, _M, _M, _M, _M, _N, _M, _N, _N, _N),
    _O.OPTION_REQUEST_LIST:            (_M, _N, _N, _N, _N, _N, _N, _N, _N, _N, _N),
    _O.START_TIME:                     (_N, _N, _Y, _Y, _Y, _Y, _Y, _Y, _N, _N, _N),
    _O.NUMBER_OF_ADDRESSES:            (_N, _N, _Y, _N, _Y, _N, _N, _N, _N, _N, _N),
    _O.REQUESTED_LANGUAGE:             (_Y, _N, _N, _N, _N, _N, _N, _N, _N, _N, _N),
    _O.MULTICAST_SCOPE_LIST:           (_N, _Y, _N, _N, _N, _N, _N, _N, _N, _N, _N),
    _O.LIST_OF_ADDRESS_RANGES:         (_N, _N, _Y, _Y, _Y, _M, _N, _M, _N, _N, _N),
    _O.CURRENT_TIME:                   (_N, _Y, _Y, _Y, _Y, _Y, _Y, _Y, _N, _N, _N),
    _O.FEATURE_LIST:                   (_Y, _Y, _Y, _Y, _Y, _Y, _Y, _Y, _Y, _Y, _Y),
    _O.RETRY_TIME:                     (_N, _N, _N, _N, _N, _Y, _N, _Y, _N, _N, _N),
    _O.MINIMUM_LEASE_TIME:             (_N, _N, _Y, _N, _Y, _N, _Y, _N, _N, _N, _N),
    _O.MAXIMUM_START_TIME:             (_N, _N, _Y, _N, _Y, _N, _Y, _N, _N, _N, _N),
    _O.ERROR:                          (_N, _N, _N, _N, _N, _N, _N, _N, _N, _N, _M),
    _O.MULTICAST_SCOPE_NESTING_STATE:  (_N, _Y, _N, _N, _N, _N, _N, _N, _N, _N, _N),
}  # fmt: skip

TABLE_5: Final[Mapping[Column, Mapping[OptionCode, Presence]]] = {
    column: {code: cells[index] for code, cells in _ROWS.items()}
    for index, column in enumerate(_COLUMNS)
}

# The column a request arriving at a server is checked against.
_REQUEST_COLUMNS: Final[dict[int, Column]] = {
    MessageType.GETINFO: Column.GETINFO,
    MessageType.DISCOVER: Column.DISCOVER,
    MessageType.REQUEST: Column.REQUEST,
    MessageType.RENEW: Column.RENEW,
    MessageType.RELEASE: Column.RELEASE,
}
# (request sent, reply type) -> the column the reply is checked against.  §2.2.3/§2.2.5:
# OFFER answers DISCOVER, ACK answers GETINFO/REQUEST/RENEW/RELEASE; a NAK may answer any
# request (§2.6: a server NAKs what it cannot process, DISCOVER included).
_REPLY_COLUMNS: Final[dict[tuple[int, int], Column]] = {
    (MessageType.GETINFO, MessageType.ACK): Column.ACK_GETINFO,
    (MessageType.DISCOVER, MessageType.OFFER): Column.OFFER,
    (MessageType.REQUEST, MessageType.ACK): Column.ACK_REQUEST,
    (MessageType.RENEW, MessageType.ACK): Column.ACK_RENEW,
    (MessageType.RELEASE, MessageType.ACK): Column.ACK_RELEASE,
    **{(request, MessageType.NAK): Column.NAK for request in _REQUEST_COLUMNS},
}

# §2.12, §3.7, §3.14, §3.16: "This option MUST be included in any MADCAP message that
# includes an absolute time": Current Time goes with each of these.
_ABSOLUTE_TIMES: Final = (
    OptionCode.START_TIME,
    OptionCode.RETRY_TIME,
    OptionCode.MAXIMUM_START_TIME,
)


def present(options: Options, code: OptionCode) -> bool:
    """Whether ``options`` carries the known option ``code`` (End is always implied)."""
    if code == OptionCode.END:
        return True
    return getattr(options, OPTION_FIELDS[code]) is not None


def request_column(msg_type: int) -> Column | None:
    """The Table 5 column of a request a server receives, None for other types."""
    return _REQUEST_COLUMNS.get(msg_type)


def reply_column(answering: int, msg_type: int) -> Column | None:
    """The Table 5 column of a reply of ``msg_type`` to ``answering``; None if that type
    never answers that request (a client ignores it)."""
    return _REPLY_COLUMNS.get((answering, msg_type))


def table_check(column: Column, options: Options, *, multicast: bool = False) -> int | None:
    """Table 5 alone: the first option (in code order) that is a missing MUST or a present
    MUST NOT in ``column``, or None.  ``multicast`` decides MUST (if multicast)."""
    for code, presence in TABLE_5[column].items():
        here = present(options, code)
        if presence is Presence.MUST_IF_MULTICAST:
            presence = Presence.MUST if multicast else Presence.MAY
        if (presence is Presence.MUST and not here) or (presence is Presence.MUST_NOT and here):
            return int(code)
    return None


def _current_time_missing(options: Options) -> bool:
    return options.current_time is None and any(present(options, c) for c in _ABSOLUTE_TIMES)


def _nesting_without_scope_list(options: Options) -> bool:
    # RFC 2907 §3.3: option 17 "MUST NOT be included without the Multicast Scope List".
    return options.nesting is not None and options.scope_list is None


def server_check(message: Message, *, multicast: bool) -> int | None:
    """For a message arriving at a server: None if it conforms, else the option code to
    name in NAK Invalid Request (§2.1.5, §3.17.2).

    ``NO_OPTION`` for a message type that is not a request (§2.2: an unknown type earns
    Invalid Request; OFFER, ACK and NAK should have been ignored before asking, §2.6).
    ``multicast`` is whether the datagram arrived on a multicast group (Table 5: Server
    Identifier is a MUST in a multicast REQUEST, §2.2.4, §3.3).
    """
    column = request_column(message.msg_type)
    if column is None:
        return NO_OPTION
    options = message.options
    code = table_check(column, options, multicast=multicast)
    if code is not None:
        return code
    if _current_time_missing(options):  # §2.2.2, §2.2.4, §2.2.7, §2.12
        return int(OptionCode.CURRENT_TIME)
    if options.addresses is not None and options.addresses.minimum > options.addresses.desired:
        return int(OptionCode.NUMBER_OF_ADDRESSES)  # §3.8: MUST generate Invalid Request
    if options.features is not None and (
        Feature.RETRY_AFTER in options.features.requested
        or Feature.RETRY_AFTER in options.features.required
    ):
        # §2.13.2: "The client MUST NOT include the Retry After feature in the requested
        # or required list".
        return int(OptionCode.FEATURE_LIST)
    if _nesting_without_scope_list(options):  # unreachable via Table 5 (17 is MUST NOT)
        return int(OptionCode.MULTICAST_SCOPE_NESTING_STATE)
    return None


def client_check(message: Message, *, answering: MessageType) -> bool:
    """For a message arriving at a client in answer to ``answering``: does it conform?
    A client ignores a message that does not (§2.1.5, §2.2, §2.6)."""
    column = reply_column(answering, message.msg_type)
    if column is None:
        return False
    options = message.options
    if table_check(column, options) is not None:
        return False
    if _current_time_missing(options):  # §2.2.3, §2.2.5, §3.7, §3.14
        return False
    if options.features is not None and options.features.requested:
        return False  # §3.13: "Messages sent by MADCAP servers MUST NOT include any feature
        # codes in the requested list"
    return not _nesting_without_scope_list(options)
