"""Protocol constants and code points of RFC 2909 (§6, §7).

Every number a peer can see on the wire is defined here once, next to the section that
defines it, so that the codec, the FSM and the tests all speak the same names.
"""

from __future__ import annotations

import enum
from typing import Final

# §6 [PORT_NUMBER]: the IANA-assigned TCP port.
PORT_NUMBER: Final = 2587
# §6 [WAITING_PERIOD]: NEW_CLAIM/CLAIM_TO_EXPAND to PREFIX_IN_USE, default 48 hours.
WAITING_PERIOD: Final = 172_800
# §6 [INITIATE_CLAIM_DELAY]: upper bound of the random delay before a claim, default 10 min.
INITIATE_CLAIM_DELAY: Final = 600
# §6 [TLD_ID]: the Parent Domain Identifier a Top-Level Domain sends. Must be 0.
TLD_ID: Final = 0
# §6 [HOLDTIME]: default and RECOMMENDED hold time (§7.2), seconds.
HOLDTIME: Final = 240

# §7: "The current MASC version number is 1."
VERSION: Final = 1
SUPPORTED_VERSIONS: Final = frozenset({1})

# §7: "The maximum message size is 4096 octets."
MAX_MESSAGE_LENGTH: Final = 4096
# §7.1: fixed 4-octet header.
HEADER_LENGTH: Final = 4
# §7.2: "The minimum length of the OPEN message is 20 octets."
MIN_OPEN_LENGTH: Final = 20
# §7.3: "The minimum length of the UPDATE message is 40 octets."
MIN_UPDATE_LENGTH: Final = 40
# §7.4: "A KEEPALIVE message ... has a length of 4 octets."
KEEPALIVE_LENGTH: Final = 4
# §7.5: "The minimum length of the NOTIFICATION message is 6 octets."
MIN_NOTIFICATION_LENGTH: Final = 6
# Data that fits a NOTIFICATION within the 4096-octet limit: "Message Length = 6 + Data
# Length" (§7.5).  §8 puts whole messages in Data, which can be longer; they are cut here.
MAX_NOTIFICATION_DATA: Final = MAX_MESSAGE_LENGTH - MIN_NOTIFICATION_LENGTH

# §7.3 attribute header: Length (2), Type (1), Reserved (1).
ATTRIBUTE_HEADER_LENGTH: Final = 4
# §7.3: "Types 128-255 are reserved for 'optional' attributes."
FIRST_OPTIONAL_ATTRIBUTE: Final = 128

# §7.2: "The Hold Time MUST be either zero or at least three seconds."
MIN_NONZERO_HOLD_TIME: Final = 3
# §7.4: "KEEPALIVE messages MUST NOT be sent more frequently than one per second."
MIN_KEEPALIVE_INTERVAL: Final = 1.0

# §10 Idle state: automatic restart after an error backs off from 60 s, doubling, to 24 h.
RESTART_BACKOFF_INITIAL: Final = 60.0
RESTART_BACKOFF_MAX: Final = 86_400.0


class MessageType(enum.IntEnum):
    """§7.1 message type codes."""

    OPEN = 1
    UPDATE = 2
    NOTIFICATION = 3
    KEEPALIVE = 4


class AddressFamily(enum.IntEnum):
    """§7.2 AddrFam: IANA address family numbers this implementation recognises."""

    IPV4 = 1
    IPV6 = 2

    @property
    def id_length(self) -> int:
        """Octets of a Domain/Node Identifier, Address and Mask field (§7.2, §7.3)."""
        return 4 if self is AddressFamily.IPV4 else 16


class Role(enum.IntEnum):
    """§7.2 "My Role" and §7.3 Origin Role (Rol, 2 bits).

    In an OPEN it is what the *sender* is to the receiver; in a claim it is what the
    origin is to the node sending that claim.
    """

    INTERNAL = 0
    CHILD = 1
    SIBLING = 2
    PARENT = 3

    @property
    def counterpart(self) -> Role:
        """The role the other end of a session has: a child's peer is its parent."""
        return _COUNTERPART[self]


_COUNTERPART: Final = {
    Role.INTERNAL: Role.INTERNAL,
    Role.CHILD: Role.PARENT,
    Role.PARENT: Role.CHILD,
    Role.SIBLING: Role.SIBLING,
}


class ClaimType(enum.IntEnum):
    """§7.3 attribute type codes. Types 0-3 are collectively "CLAIMs"."""

    PREFIX_IN_USE = 0
    CLAIM_DENIED = 1
    CLAIM_TO_EXPAND = 2
    NEW_CLAIM = 3
    PREFIX_MANAGED = 4
    WITHDRAW = 5


# §8.3: the legal Origin Role / Claim Type combinations; anything else is Claim Type Error.
#      ICS     PREFIX_IN_USE   (0)
#      I  P    CLAIM_DENIED    (1)
#      ICS     CLAIM_TO_EXPAND (2)
#      ICS     NEW_CLAIM       (3)
#      I  P    PREFIX_MANAGED  (4)
#      ICSP    WITHDRAW        (5)
_ICS: Final = frozenset({Role.INTERNAL, Role.CHILD, Role.SIBLING})
_IP: Final = frozenset({Role.INTERNAL, Role.PARENT})
LEGAL_ORIGIN_ROLES: Final[dict[ClaimType, frozenset[Role]]] = {
    ClaimType.PREFIX_IN_USE: _ICS,
    ClaimType.CLAIM_DENIED: _IP,
    ClaimType.CLAIM_TO_EXPAND: _ICS,
    ClaimType.NEW_CLAIM: _ICS,
    ClaimType.PREFIX_MANAGED: _IP,
    ClaimType.WITHDRAW: frozenset(Role),
}
