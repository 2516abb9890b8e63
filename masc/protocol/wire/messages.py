"""MASC messages as frozen values (RFC 2909 §7).

These are what the codec produces from bytes and turns back into bytes.  They hold domain
types (``IPv4Network``, :data:`DomainId`), never raw wire words, and carry no behaviour: the
rules about who may send what live in the session and the claim engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import NewType

from masc.protocol.constants import VERSION, AddressFamily, ClaimType, Role

# §7.2: Domain and Node Identifiers are unsigned integers as long as an address of the
# family (4 octets for IPv4, 16 for IPv6).  Node ids are usually an address of the router.
DomainId = NewType("DomainId", int)
NodeId = NewType("NodeId", int)

Prefix = IPv4Network | IPv6Network


def format_id(value: int, family: AddressFamily) -> str:
    """Show an identifier as an operator reads it: an address for node ids and prefix-style
    domain ids, a plain number for AS numbers (which fit well below 2**24)."""
    if value < 1 << 24:
        return str(value)
    return str(IPv4Address(value) if family is AddressFamily.IPV4 else IPv6Address(value))


@dataclass(frozen=True, slots=True)
class OptionalParameter:
    """§7.2 <Parameter Length, Parameter Type, Parameter Value>; none are defined by the RFC.

    Unrecognized parameters MUST be silently ignored: they are kept only so ``masc decode``
    can show them and round trips are exact.  Type 0 with an empty value is the padding
    marker (docs/conformance.md) and cannot be expressed.
    """

    type: int
    value: bytes


@dataclass(frozen=True, slots=True)
class Open:
    """§7.2 OPEN: the first message on a connection, proposing the session's parameters."""

    family: AddressFamily
    role: Role  # what the sender is to the receiver
    hold_time: int
    domain_id: DomainId
    node_id: NodeId
    parent_domain_id: DomainId  # [TLD_ID] = 0 for a top-level domain
    parameters: tuple[OptionalParameter, ...] = ()
    version: int = VERSION


@dataclass(frozen=True, slots=True, weakref_slot=True)
class Claim:
    """§7.3 one attribute of an UPDATE: a CLAIM (types 0-3), PREFIX_MANAGED or WITHDRAW.

    ``origin_role`` is what the origin is to the node that sent this UPDATE (§7.3 Rol).
    ``prefix`` carries both the Address and the (contiguous) Mask fields; its version is the
    attribute's AddrFam.
    """

    type: ClaimType
    origin_role: Role
    timestamp: int
    lifetime: int
    holdtime: int
    origin_domain: DomainId
    origin_node: NodeId
    prefix: Prefix
    deprecated: bool = False
    parameters: tuple[OptionalParameter, ...] = ()

    @property
    def family(self) -> AddressFamily:
        return AddressFamily.IPV4 if self.prefix.version == 4 else AddressFamily.IPV6


@dataclass(frozen=True, slots=True)
class Update:
    """§7.3 UPDATE: one or more attributes.  Unknown optional attributes are not kept."""

    attributes: tuple[Claim, ...]


@dataclass(frozen=True, slots=True)
class Keepalive:
    """§7.4 KEEPALIVE: the header alone."""


@dataclass(frozen=True, slots=True)
class Notification:
    """§7.5 NOTIFICATION.  ``open_bit`` False means the sender closes the connection.

    Code and subcode are plain ints, not enums, because a peer may send values we do not
    know; §8.6 says what to do about those.
    """

    open_bit: bool
    code: int
    subcode: int
    data: bytes = b""


Message = Open | Update | Keepalive | Notification
