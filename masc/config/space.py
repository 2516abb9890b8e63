"""Where in the multicast space a MASC global pool may lie (RFC 2909 §4, §4.5).

RFC 2909 §4 lets the top-level domains "share the global multicast address space" without
saying which addresses that is; Appendix B (2000) proposed 228.0.0.0/6. Since then IANA's
registry has carved the space up (RFC 5771 §3 for IPv4), and a pool that ignores it hands
applications addresses that other mechanisms own. Two verdicts come out of this module:

* **refused** (a configuration error): blocks whose addresses are never MASC's to hand out —
  Source-Specific Multicast (232/8, RFC 4607; RFC 5771 §8.1: "MUST NOT be used for other
  purposes"), GLOP (233/8, RFC 3180: each /24 belongs to the AS its middle octets spell;
  it includes AD-HOC Block III 233.252/14 and MCAST-TEST-NET), the Local Network Control
  Block 224.0.0/24 (RFC 5771 §4: never forwarded off the link); for IPv6 the
  unicast-prefix-based range ff30::/12 (RFC 3306) that holds the SSM ranges ff3x::/32
  (RFC 4607 §1), and the interface-local and link-local scopes (RFC 4291 §2.7).
* **warned** (the file is valid, ``masc check-config`` says why it is unwise): space IANA
  reserves or assigns to others (RFC 5771 §3, §5-§7), and for IPv6 the permanently-assigned
  (T=0) addresses. Such a pool works in an isolated lab, and RFC 2909 Appendix B's own
  228.0.0.0/6 is one of them, so refusing it would break the RFC's example.

The administratively scoped block 239/8 (RFC 2365, RFC 5771 §10) gets no comment: it is
where a lab or an organisation should run MASC, in 239.192.0.0/14 (organization-local).

Standard library only; the tables are data, read top to bottom.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from typing import Final

__all__ = [
    "ADMIN_SCOPED_V4",
    "ORGANIZATION_LOCAL_V4",
    "REFUSED",
    "WARNED",
    "Block",
    "pool_refusal",
    "pool_warnings",
]

Network = IPv4Network | IPv6Network

# RFC 2365 §6.2 / RFC 5771 §10: the suggestion every warning ends with.
ORGANIZATION_LOCAL_V4: Final = ip_network("239.192.0.0/14")
ADMIN_SCOPED_V4: Final = ip_network("239.0.0.0/8")
_SUGGEST_V4: Final = (
    "in a lab or an organisation use 239.192.0.0/14 (organization-local scope, RFC 2365)"
)
_SUGGEST_V6: Final = (
    "use transient addresses (flag T=1), e.g. ff18::/16 in an organisation (RFC 4291 §2.7)"
)


@dataclass(frozen=True, slots=True)
class Block:
    """A range of the multicast registry: first and last address inclusive, and why it matters.

    Ranges rather than prefixes because RFC 5771 §3 draws some blocks (AD-HOC Block I,
    224.0.2.0-224.0.255.255) on no prefix boundary.
    """

    first: int
    last: int
    version: int
    name: str
    why: str

    @classmethod
    def of(cls, first: str, last: str, name: str, why: str) -> Block:
        lo, hi = ip_address(first), ip_address(last)
        return cls(int(lo), int(hi), lo.version, name, why)

    @classmethod
    def prefix(cls, prefix: str, name: str, why: str) -> Block:
        net = ip_network(prefix)
        return cls(int(net.network_address), int(net.broadcast_address), net.version, name, why)

    @property
    def text(self) -> str:
        """``224.0.2.0-224.0.255.255`` or, when it is one, the prefix ``232.0.0.0/8``."""
        lo = ip_address(self.first)
        hi = ip_address(self.last)
        size = self.last - self.first + 1
        if size & (size - 1) == 0 and self.first % size == 0:
            return str(ip_network(f"{lo}/{lo.max_prefixlen - size.bit_length() + 1}"))
        return f"{lo}-{hi}"

    def overlaps(self, net: Network) -> bool:
        return (
            net.version == self.version
            and int(net.network_address) <= self.last
            and self.first <= int(net.broadcast_address)
        )

    def relation(self, net: Network) -> str:
        """How ``net`` (which overlaps this block) sits in it, naming the block."""
        lo, hi = int(net.network_address), int(net.broadcast_address)
        if (lo, hi) == (self.first, self.last):
            return f"is {self.name}"
        if self.first <= lo and hi <= self.last:
            return f"lies in {self.name} {self.text}"
        if lo <= self.first and self.last <= hi:
            return f"contains {self.name} {self.text}"
        return f"lies partly in {self.name} {self.text}"


_RESERVED_WHY: Final = (
    "RESERVED by IANA (RFC 5771 §3), and applications MUST NOT use reserved addresses "
    "(RFC 5771 §13)"
)
_APPENDIX_B: Final = (
    "; RFC 2909 Appendix B proposed 228.0.0.0/6 from this space as the global pool, but IANA "
    "never assigned it to MASC, so it is fit for an isolated lab only"
)

# Refused: a pool that overlaps one of these is a configuration error.
REFUSED: Final[tuple[Block, ...]] = (
    Block.prefix(
        "224.0.0.0/24",
        "the Local Network Control Block",
        "its packets are never forwarded off the link (RFC 5771 §4)",
    ),
    Block.prefix(
        "232.0.0.0/8",
        "the Source-Specific Multicast block",
        "it is for SSM (RFC 4607) and MUST NOT be used for other purposes (RFC 5771 §8.1)",
    ),
    Block.prefix(
        "233.0.0.0/8",
        "the GLOP block",
        "its /24s are statically assigned to AS numbers (RFC 3180, RFC 5771 §9), and "
        "233.252.0.0/14 is AD-HOC Block III (RFC 5771 §9.2)",
    ),
    Block.prefix(
        "ff30::/12",
        "the unicast-prefix-based range",
        "its addresses derive from unicast prefixes (RFC 3306) and it holds the "
        "Source-Specific Multicast ranges ff3x::/32 (RFC 4607 §1)",
    ),
    # RFC 4291 §2.7: scop 1 (interface-local) and 2 (link-local) never leave the node or
    # the link, whatever the flags; a domain-wide pool there is meaningless.
    *(
        Block.prefix(
            f"ff{flags:x}{scope}::/16",
            f"the {'interface' if scope == 1 else 'link'}-local scope",
            f"packets to it never leave the {'node' if scope == 1 else 'link'} (RFC 4291 §2.7)",
        )
        for flags in range(16)
        if flags != 3  # inside ff30::/12 above
        for scope in (1, 2)
    ),
)

# Warned: a pool that overlaps one of these is valid but unwise. RFC 5771 §3, in its order.
WARNED: Final[tuple[Block, ...]] = (
    Block.prefix(
        "224.0.1.0/24",
        "the Internetwork Control Block",
        "IANA assigns its addresses to protocols such as NTP (RFC 5771 §5)",
    ),
    Block.of(
        "224.0.2.0",
        "224.0.255.255",
        "AD-HOC Block I",
        "IANA assigns its addresses to applications (RFC 5771 §6)",
    ),
    Block.prefix("224.1.0.0/16", "a reserved range", _RESERVED_WHY),
    Block.prefix(
        "224.2.0.0/16",
        "the SDP/SAP Block",
        "its addresses are for SDP/SAP sessions and MUST NOT be used for other purposes "
        "(RFC 5771 §7.1)",
    ),
    Block.of(
        "224.3.0.0",
        "224.4.255.255",
        "AD-HOC Block II",
        "IANA assigns its addresses to applications (RFC 5771 §6)",
    ),
    Block.of("224.5.0.0", "224.255.255.255", "a reserved range", _RESERVED_WHY),
    Block.of("225.0.0.0", "231.255.255.255", "a reserved range", _RESERVED_WHY + _APPENDIX_B),
    Block.of("234.0.0.0", "238.255.255.255", "a reserved range", _RESERVED_WHY),
    Block.prefix(
        "ff00::/12",
        "the permanently-assigned (flag T=0) space",
        "IANA assigns these well-known addresses one by one (RFC 4291 §2.7)",
    ),
)


def pool_refusal(net: Network) -> str | None:
    """Why ``net`` may not be (part of) a global pool, or None if it may."""
    for block in REFUSED:
        if block.overlaps(net):
            return f"{net} {block.relation(net)}: {block.why}; it cannot be part of a MASC pool"
    return None


def pool_warnings(net: Network) -> list[str]:
    """What is unwise about ``net`` as a global pool: one sentence per block it touches."""
    suggest = _SUGGEST_V4 if net.version == 4 else _SUGGEST_V6
    found = []
    for block in WARNED:
        if block.overlaps(net):
            found.append(f"{net} {block.relation(net)}: {block.why}; {suggest}")
    return found
