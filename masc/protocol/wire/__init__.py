"""The MASC wire format (RFC 2909 §7): messages, codec and stream framing."""

from masc.protocol.wire.codec import decode, encode
from masc.protocol.wire.framing import Framer
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

__all__ = [
    "Claim",
    "DomainId",
    "Framer",
    "Keepalive",
    "Message",
    "NodeId",
    "Notification",
    "Open",
    "OptionalParameter",
    "Prefix",
    "Update",
    "decode",
    "encode",
]
