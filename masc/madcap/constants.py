"""Code points and timers of RFC 2730 (§2.1, §2.2, §3, §5, Appendix B) and RFC 2907 (§3).

Every number a peer can see on the wire is defined here once, next to the section that
defines it, so that the codec, the server, the client and the tests speak the same names.
"""

from __future__ import annotations

import enum
from typing import Final

# §1.5: "MADCAP servers listen on UDP port 2535"; replies go to the client's source port.
PORT: Final = 2535
# §2.1.1: the version field "must always be zero"; anything else MUST be ignored.
VERSION: Final = 0
# §2.1: "at least 12 bytes" (8-octet header and the 4-octet End option), else ignored.
HEADER_LENGTH: Final = 8
MIN_MESSAGE_LENGTH: Final = 12
# §2.1.5: each option is a 2-octet code and a 2-octet length before its value.
OPTION_HEADER_LENGTH: Final = 4
# §3.17.1/§3.17.2: the extra data of an error that names no single option.
NO_OPTION: Final = 0xFFFF


class MessageType(enum.IntEnum):
    """§2.2 msgtype."""

    DISCOVER = 1
    OFFER = 2
    REQUEST = 3
    RENEW = 4
    ACK = 5
    NAK = 6
    RELEASE = 7
    GETINFO = 8


class AddressFamily(enum.IntEnum):
    """§2.1.3: IANA address family numbers."""

    IPV4 = 1
    IPV6 = 2


class OptionCode(enum.IntEnum):
    """§3 option codes, and 17 from RFC 2907 §3."""

    END = 0
    LEASE_TIME = 1
    SERVER_IDENTIFIER = 2
    LEASE_IDENTIFIER = 3
    MULTICAST_SCOPE = 4
    OPTION_REQUEST_LIST = 5
    START_TIME = 6
    NUMBER_OF_ADDRESSES = 7
    REQUESTED_LANGUAGE = 8
    MULTICAST_SCOPE_LIST = 9
    LIST_OF_ADDRESS_RANGES = 10
    CURRENT_TIME = 11
    FEATURE_LIST = 12
    RETRY_TIME = 13
    MINIMUM_LEASE_TIME = 14
    MAXIMUM_START_TIME = 15
    ERROR = 16
    MULTICAST_SCOPE_NESTING_STATE = 17


class ErrorCode(enum.IntEnum):
    """§3.17 Error option codes."""

    VALID_REQUEST_NOT_COMPLETED = 0  # extra: u16 offending option code or 0xFFFF
    INVALID_REQUEST = 1  # extra: u16 offending option code or 0xFFFF
    EXCESSIVE_CLOCK_SKEW = 2  # extra: u32 server's current time
    LEASE_ID_NOT_RECOGNIZED = 3  # no extra data
    REQUIRED_FEATURE_NOT_SUPPORTED = 4  # extra: the unsupported u16 feature codes


class Feature(enum.IntEnum):
    """§3.13 feature codes (§2.13)."""

    SERVER_MOBILITY = 0
    RETRY_AFTER = 1
    SHARED_LEASE_IDENTIFIER = 2


class LeaseIdType(enum.IntEnum):
    """§2.4 Lease Identifier types: the first octet of the opaque identifier."""

    RANDOM = 0  # §2.4.1: followed by at least 16 random octets
    ADDRESS_SPECIFIC = 1  # §2.4.2: u16 family, address, client-specific data


# §2.4.1: "at least 16 bytes" of random data after the type octet.
RANDOM_LEASE_ID_BYTES: Final = 16

# Appendix B, recommended values (seconds).
CLOCK_SKEW_ALLOWANCE: Final = 1800.0  # 30 minutes
EXTRA_ALLOCATION_TIME: Final = 3600.0  # 1 hour
NO_RESPONSE_DELAY: Final = 60.0
OFFER_HOLD: Final = 60.0  # "at least 60 seconds"
RESPONSE_CACHE_INTERVAL: Final = 60.0  # 0-300 s allowed, < 60 NOT RECOMMENDED (§2.1.4)
MAX_RESPONSE_CACHE_INTERVAL: Final = 300.0
XID_REUSE_INTERVAL: Final = 600.0  # 10 minutes

# §2.3: first retransmission after 4 s, doubling, at most 16 s, at most 3 retransmissions:
# copies at t, t+4, t+12, t+28; the client gives up at t+60 ([NO-RESPONSE-DELAY]).
RETRANSMIT_INITIAL: Final = 4.0
RETRANSMIT_MAX: Final = 16.0
RETRANSMIT_COUNT: Final = 3

# §2.9/§2.10: a client that knows nothing else sends to the Local Scope's server address
# with TTL 16.
LOCAL_SCOPE_SERVER_ADDRESS: Final = "239.255.255.254"
DEFAULT_MULTICAST_TTL: Final = 16
# RFC 2365 §6.1 / RFC 2730 §2.7: the IPv4 global scope.
GLOBAL_SCOPE_FIRST: Final = "224.0.1.0"
GLOBAL_SCOPE_LAST: Final = "238.255.255.255"
