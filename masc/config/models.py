"""The configuration of one MASC node, as frozen pydantic models.

What the file may say is shaped by RFC 2909:

* §4: a domain's peers are its parent(s), children, siblings and internal peers; a domain
  with no parent is a Top-Level Domain (TLD), and only TLDs share the global pool.
* §4.4: siblings exchange claims per common parent, so one address may carry one sibling
  session per parent; the identity of a session is (address, parent) — see ``peer_key``.
* §6: defaults of PORT_NUMBER, WAITING_PERIOD, INITIATE_CLAIM_DELAY, HOLDTIME; TLD_ID = 0.
* §7.2: the Hold Time MUST be zero or at least three seconds and fits in two octets; Domain
  and Node Identifiers are 4 octets for IPv4 and 16 for IPv6.
* §10: automatic restart back-off bounds; §12.3: tolerated clock skew.

Every model is frozen (the daemon shares one config object between tasks and must not see it
change under it) and forbids unknown keys (operators want typos caught, not ignored).

Cross-field rules are checked in ``model_validator(mode="after")`` hooks that collect all
problems with their key paths into one ``KeyedProblems``; the loader expands it into
``ConfigError``s that name e.g. ``peers[1].relation``. Pydantic only reports a model's own
location for such errors, hence the extra path carried in the exception.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_address,
    ip_network,
)
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Self, TypeAlias

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PlainValidator,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from masc.config.durations import parse_duration
from masc.protocol.constants import (
    HOLDTIME,
    INITIATE_CLAIM_DELAY,
    MIN_NONZERO_HOLD_TIME,
    PORT_NUMBER,
    RESTART_BACKOFF_INITIAL,
    RESTART_BACKOFF_MAX,
    TLD_ID,
    WAITING_PERIOD,
    AddressFamily,
    Role,
)

__all__ = [
    "Address",
    "AllocationConfig",
    "ControlConfig",
    "KeyPath",
    "KeyedProblems",
    "LocalConfig",
    "MaasConfig",
    "MascConfig",
    "Network",
    "PeerConfig",
    "Relation",
    "StorageConfig",
    "TimersConfig",
    "format_key_path",
]

Address: TypeAlias = IPv4Address | IPv6Address
Network: TypeAlias = IPv4Network | IPv6Network
KeyPath: TypeAlias = tuple[str | int, ...]

# §7.2: Hold Time is a 2-octet field of the OPEN message.
MAX_HOLD_TIME: Final = 0xFFFF
# §12.3: how far a peer's clock may be off before its claims' timestamps are distrusted.
DEFAULT_CLOCK_SKEW_GRACE: Final = 86_400.0
# Local policy: the §10 FSM retries connections on a ConnectRetry timer whose value the RFC
# leaves open; 30 s (shorter than BGP's suggested 120 s, RFC 4271 §10) re-forms sessions
# quickly in labs and costs one TCP SYN per peer per half-minute in production.
DEFAULT_CONNECT_RETRY: Final = 30.0
DEFAULT_INITIAL_SIZE: Final = 256
DEFAULT_CLAIM_LIFETIME: Final = 30 * 86_400.0

_FAMILY_NAMES: Final = {AddressFamily.IPV4: "ipv4", AddressFamily.IPV6: "ipv6"}
_MULTICAST_SPACE: Final = {
    AddressFamily.IPV4: ip_network("224.0.0.0/4"),
    AddressFamily.IPV6: ip_network("ff00::/8"),
}


def format_key_path(loc: Iterable[str | int]) -> str:
    """``("peers", 1, "relation")`` -> ``"peers[1].relation"``: how operators name a key."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


class KeyedProblems(ValueError):
    """Validation problems found by a model-level check, each with a key path.

    The paths are relative to the model that raised it; the loader prefixes pydantic's
    location of that model. ``str()`` stays readable for code that builds models directly.
    """

    def __init__(self, problems: Sequence[tuple[KeyPath, str]]) -> None:
        self.problems: tuple[tuple[KeyPath, str], ...] = tuple(problems)
        super().__init__("; ".join(f"{format_key_path(k)}: {p}" for k, p in self.problems))


def _family_of(addr: Address | Network) -> AddressFamily:
    return AddressFamily.IPV4 if addr.version == 4 else AddressFamily.IPV6


def _family_mismatch(value: object, family: AddressFamily, noun: str = "address") -> str:
    other = "IPv4" if family is AddressFamily.IPV6 else "IPv6"
    return f"{value} is an {other} {noun} but local.address_family is {_FAMILY_NAMES[family]!r}"


# --- field parsers -----------------------------------------------------------------------
# Each raises ValueError with operator-facing text; pydantic turns it into a located error.


def _parse_address(value: object) -> Address:
    if isinstance(value, IPv4Address | IPv6Address):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected an address string, got {type(value).__name__} {value!r}")
    try:
        return ip_address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 or IPv6 address") from None


def _parse_network(value: object) -> Network:
    if isinstance(value, IPv4Network | IPv6Network):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a prefix string such as '239.192.0.0/14', got {value!r}")
    try:
        # strict: "239.192.1.0/14" is almost certainly a typo, not a request to round down.
        return ip_network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a network prefix: {exc}") from None


def _parse_identifier(value: object) -> int:
    """A Domain Identifier (§7.2): an integer, or an address whose value is used as one."""
    if isinstance(value, bool):
        raise ValueError(f"expected an integer or an address string, got {str(value).lower()}")
    if not isinstance(value, int | str):
        raise ValueError(f"expected an integer or an address string, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"must not be negative, got {value}")
        return value
    try:
        return int(ip_address(value))
    except ValueError:
        raise ValueError(f"{value!r} is neither an integer nor an IPv4/IPv6 address") from None


def _written_family(value: object) -> AddressFamily | None:
    """The family of an identifier written as an address string, else None."""
    if isinstance(value, str):
        try:
            return _family_of(ip_address(value))
        except ValueError:
            return None
    return None


def _parse_hold_time(value: object) -> int:
    seconds = parse_duration(value)
    if not seconds.is_integer():
        raise ValueError(f"must be a whole number of seconds, got {seconds:g}")
    whole = int(seconds)
    # §7.2: "The Hold Time MUST be either zero or at least three seconds."
    if whole != 0 and not MIN_NONZERO_HOLD_TIME <= whole <= MAX_HOLD_TIME:
        raise ValueError(
            f"must be 0 or {MIN_NONZERO_HOLD_TIME}..{MAX_HOLD_TIME} seconds "
            f"(RFC 2909 §7.2), got {whole}"
        )
    return whole


def _positive(seconds: float) -> float:
    if seconds <= 0:
        raise ValueError(f"must be greater than 0 seconds, got {seconds:g}")
    return seconds


def _non_empty_path(value: object) -> object:
    # Path("") is ".", which would silently put a socket or database in the working directory.
    if isinstance(value, str) and not value.strip():
        raise ValueError("must not be empty")
    return value


AddressField = Annotated[IPv4Address | IPv6Address, PlainValidator(_parse_address)]
NetworkField = Annotated[IPv4Network | IPv6Network, PlainValidator(_parse_network)]
Port = Annotated[int, Field(strict=True, ge=1, le=65535)]
Duration = Annotated[float, BeforeValidator(parse_duration)]
PositiveDuration = Annotated[float, BeforeValidator(parse_duration), AfterValidator(_positive)]
HoldTime = Annotated[int, BeforeValidator(_parse_hold_time)]
FilePath = Annotated[Path, BeforeValidator(_non_empty_path)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- sections ----------------------------------------------------------------------------


class LocalConfig(_Model):
    """``[local]``: who this router is and where it listens."""

    # Declared first so that the validators of the fields below can see it in info.data.
    address_family: Literal["ipv4", "ipv6"] = "ipv4"
    domain_id: int
    node_id: AddressField
    listen: tuple[AddressField, ...] = ()
    port: Port = PORT_NUMBER
    global_pool: tuple[NetworkField, ...] = ()
    # The domain's parents, for a router of a non-top-level domain that has no session to
    # a parent itself (P3a, P4b and C5c of RFC 2909 Figure 1).  Parent peers add theirs.
    parent_domain_ids: tuple[int, ...] = ()

    @property
    def family(self) -> AddressFamily:
        """The §7.2 AddrFam this node speaks."""
        return AddressFamily.IPV4 if self.address_family == "ipv4" else AddressFamily.IPV6

    @model_validator(mode="before")
    @classmethod
    def _listen_defaults_to_node_id(cls, data: Any) -> Any:
        # Omitted means "the node id"; an explicit empty array is an error, checked below.
        if isinstance(data, dict) and "listen" not in data and "node_id" in data:
            return {**data, "listen": [data["node_id"]]}
        return data

    @field_validator("domain_id", mode="before")
    @classmethod
    def _domain_id(cls, value: Any, info: ValidationInfo) -> int:
        parsed = _parse_identifier(value)
        family_name = info.data.get("address_family")
        written = _written_family(value)
        if (
            written is not None
            and family_name is not None
            and family_name != _FAMILY_NAMES[written]
        ):
            configured = AddressFamily.IPV4 if family_name == "ipv4" else AddressFamily.IPV6
            raise ValueError(_family_mismatch(value, configured))
        return parsed

    @field_validator("parent_domain_ids", mode="before")
    @classmethod
    def _parent_ids(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return tuple(_parse_identifier(v) for v in value)
        return value

    @model_validator(mode="after")
    def _check(self) -> Self:
        family = self.family
        problems: list[tuple[KeyPath, str]] = []
        id_problem = _identifier_problem(self.domain_id, family)
        if id_problem is None and self.domain_id == TLD_ID:
            id_problem = (
                f"must not be {TLD_ID}: {TLD_ID} is TLD_ID, the parent identifier a top-level "
                "domain sends (RFC 2909 §6)"
            )
        if id_problem is not None:
            problems.append((("domain_id",), id_problem))

        node_problem = _unicast_problem(self.node_id, family)
        if node_problem is not None:
            problems.append((("node_id",), node_problem))

        if not self.listen:
            problems.append((("listen",), "must not be empty (omit it to listen on node_id)"))
        first_seen: dict[Address, int] = {}
        for i, addr in enumerate(self.listen):
            if _family_of(addr) is not family:
                problems.append((("listen", i), _family_mismatch(addr, family)))
            elif addr.is_multicast:
                problems.append((("listen", i), f"{addr} is a multicast address"))
            elif addr in first_seen:
                problems.append((("listen", i), f"{addr} duplicates listen[{first_seen[addr]}]"))
            first_seen.setdefault(addr, i)

        for i, parent in enumerate(self.parent_domain_ids):
            if parent == TLD_ID:
                problems.append(
                    (
                        ("parent_domain_ids", i),
                        f"must not be {TLD_ID}: a top-level domain simply lists no parents",
                    )
                )
            elif parent == self.domain_id:
                problems.append((("parent_domain_ids", i), "is this domain's own domain_id"))
            elif (problem := _identifier_problem(parent, family)) is not None:
                problems.append((("parent_domain_ids", i), problem))

        space = _MULTICAST_SPACE[family]
        for i, net in enumerate(self.global_pool):
            if _family_of(net) is not family:
                problems.append((("global_pool", i), _family_mismatch(net, family, "prefix")))
            elif not net.subnet_of(space):  # type: ignore[arg-type]  # same family, checked above
                problems.append(
                    (("global_pool", i), f"{net} is not multicast space (inside {space})")
                )
        if problems:
            raise KeyedProblems(problems)
        return self


def _identifier_problem(value: int, family: AddressFamily) -> str | None:
    """§7.2: identifiers are as long as an address of the family."""
    octets = family.id_length
    if value >= 1 << (8 * octets):
        return (
            f"{value} does not fit in {octets} octets, the size of an "
            f"{_FAMILY_NAMES[family]} domain identifier (RFC 2909 §7.2)"
        )
    return None


def _unicast_problem(addr: Address, family: AddressFamily) -> str | None:
    if _family_of(addr) is not family:
        return _family_mismatch(addr, family)
    if addr.is_unspecified:
        return f"{addr} is the unspecified address; use an address of this router"
    if addr.is_multicast:
        return f"{addr} is a multicast address; use a unicast address of this router"
    return None


class TimersConfig(_Model):
    """``[timers]``: protocol timers, in seconds or duration strings."""

    # §6 WAITING_PERIOD: how long a claim waits for collisions before it is used.
    waiting_period: Duration = float(WAITING_PERIOD)
    # §6 INITIATE_CLAIM_DELAY: upper bound of the random delay before claiming.
    initiate_claim_delay: Duration = float(INITIATE_CLAIM_DELAY)
    # §6 HOLDTIME, §7.2: the Hold Time this node proposes in its OPEN messages.
    hold_time: HoldTime = HOLDTIME
    connect_retry: PositiveDuration = DEFAULT_CONNECT_RETRY
    # §10: automatic restart back-off, doubling from initial up to max.
    restart_backoff_initial: PositiveDuration = RESTART_BACKOFF_INITIAL
    restart_backoff_max: PositiveDuration = RESTART_BACKOFF_MAX
    # §12.3: tolerated clock skew when judging claim timestamps.
    clock_skew_grace: Duration = DEFAULT_CLOCK_SKEW_GRACE

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.restart_backoff_max < self.restart_backoff_initial:
            raise KeyedProblems(
                [
                    (
                        ("restart_backoff_max",),
                        f"must be >= restart_backoff_initial "
                        f"({self.restart_backoff_initial:g} s), got {self.restart_backoff_max:g} s",
                    )
                ]
            )
        return self


class AllocationConfig(_Model):
    """``[allocation]``: how much address space this domain asks for."""

    initial_size: Annotated[int, Field(strict=True, ge=0)] = DEFAULT_INITIAL_SIZE
    claim_lifetime: PositiveDuration = DEFAULT_CLAIM_LIFETIME

    @field_validator("initial_size")
    @classmethod
    def _power_of_two(cls, value: int) -> int:
        # A claim is a prefix (§5), so it always covers a power of two addresses.
        if value != 0 and value & (value - 1):
            raise ValueError(
                f"must be 0 or a power of two (a claim is a prefix), got {value}; "
                f"nearest: {1 << (value.bit_length() - 1)} or {1 << value.bit_length()}"
            )
        return value


class ControlConfig(_Model):
    """``[control]``: the mascctl control socket."""

    socket: FilePath = Path("/run/masc/control.sock")


class MaasConfig(_Model):
    """``[maas]``: the socket MAASs (address allocation servers) use to ask for space."""

    socket: FilePath = Path("/run/masc/maas.sock")


class StorageConfig(_Model):
    """``[storage]``: where claims survive a restart."""

    path: FilePath = Path("/var/lib/masc/state.db")


# (str, Enum) rather than StrEnum because other modules were written against this spelling;
# messages always use .value, so the str() difference does not show.
class Relation(str, enum.Enum):  # noqa: UP042
    """What the *peer* is to this domain (§4), as written in ``peers[i].relation``."""

    PARENT = "parent"
    CHILD = "child"
    SIBLING = "sibling"
    INTERNAL = "internal"

    @property
    def role(self) -> Role:
        """The §7.2 Role the peer has relative to us (and announces in its OPEN)."""
        return _RELATION_ROLE[self]


_RELATION_ROLE: Final = {
    Relation.PARENT: Role.PARENT,
    Relation.CHILD: Role.CHILD,
    Relation.SIBLING: Role.SIBLING,
    Relation.INTERNAL: Role.INTERNAL,
}


class PeerConfig(_Model):
    """One ``[[peers]]`` entry: a MASC session this node keeps."""

    address: AddressField
    port: Port = PORT_NUMBER
    relation: Relation
    domain_id: Annotated[int, BeforeValidator(_parse_identifier)]
    # §4.4: siblings exchange claims per common parent; TLD_ID (0) for sibling TLDs.
    parent_domain_id: Annotated[int | None, BeforeValidator(_parse_identifier)] = None
    passive: Annotated[bool, Field(strict=True)] = False
    hold_time: Annotated[int | None, BeforeValidator(_parse_hold_time)] = None

    # Identifier keys that were written as address strings, as written: a peer does not know
    # the local address family, so MascConfig checks the family of these against it.
    _written_as_address: dict[str, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _remember_address_spellings(
        cls, data: Any, handler: ModelWrapValidatorHandler[Self]
    ) -> Self:
        peer = handler(data)
        if isinstance(data, dict):
            peer._written_as_address = {
                key: value
                for key in ("domain_id", "parent_domain_id")
                if isinstance(value := data.get(key), str) and _written_family(value) is not None
            }
        return peer

    @model_validator(mode="after")
    def _check(self) -> Self:
        problems: list[tuple[KeyPath, str]] = []
        if self.address.is_unspecified or self.address.is_multicast:
            problems.append((("address",), f"{self.address} is not a unicast address"))
        if self.domain_id == TLD_ID:
            problems.append(
                (
                    ("domain_id",),
                    f"must not be {TLD_ID}: {TLD_ID} is TLD_ID, not a domain (RFC 2909 §6)",
                )
            )
        if problems:
            raise KeyedProblems(problems)
        return self


# --- the whole file ----------------------------------------------------------------------


class MascConfig(_Model):
    """A validated configuration file. Only ``[local]`` is required."""

    local: LocalConfig
    timers: TimersConfig = Field(default_factory=TimersConfig)
    allocation: AllocationConfig = Field(default_factory=AllocationConfig)
    control: ControlConfig = Field(default_factory=ControlConfig)
    maas: MaasConfig = Field(default_factory=MaasConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    peers: tuple[PeerConfig, ...] = ()

    @property
    def is_tld(self) -> bool:
        """§4: a domain with no parent is a Top-Level Domain."""
        return self.parent_domain_ids == (TLD_ID,)

    @property
    def parent_domain_ids(self) -> tuple[int, ...]:
        """The parents this domain claims from, sorted; ``(TLD_ID,)`` for a TLD (§6).

        The union of ``local.parent_domain_ids`` and the domains of the parent peers.
        """
        ids = {p.domain_id for p in self.peers if p.relation is Relation.PARENT}
        ids.update(self.local.parent_domain_ids)
        return tuple(sorted(ids)) if ids else (TLD_ID,)

    def hold_time_for(self, peer: PeerConfig) -> int:
        """The Hold Time to propose in the OPEN to ``peer`` (§7.2)."""
        return peer.hold_time if peer.hold_time is not None else self.timers.hold_time

    def sibling_parent(self, peer: PeerConfig) -> int:
        """The common parent a sibling session belongs to (§4.4).

        Raises ``ValueError`` for a non-sibling, or when the parent is ambiguous (several
        parents and no ``parent_domain_id``), which validation already rejects.
        """
        if peer.relation is not Relation.SIBLING:
            raise ValueError(f"peer {peer.address} is a {peer.relation.value}, not a sibling")
        if peer.parent_domain_id is not None:
            return peer.parent_domain_id
        parents = self.parent_domain_ids
        if len(parents) != 1:
            raise ValueError(f"sibling {peer.address}: parent domain is ambiguous {parents}")
        return parents[0]

    def peer_key(self, peer: PeerConfig) -> tuple[str, int | None]:
        """The identity of a session: its address, and for siblings the common parent."""
        parent = self.sibling_parent(peer) if peer.relation is Relation.SIBLING else None
        return (str(peer.address), parent)

    @model_validator(mode="after")
    def _check(self) -> Self:
        problems: list[tuple[KeyPath, str]] = []
        for i, peer in enumerate(self.peers):
            problems.extend((("peers", i, *key), text) for key, text in self._peer_problems(peer))
        problems.extend(self._duplicate_peer_problems())
        if self.local.global_pool and not self.is_tld:
            where = next(
                (f"peers[{i}]" for i, p in enumerate(self.peers) if p.relation is Relation.PARENT),
                "local.parent_domain_ids",
            )
            problems.append(
                (
                    ("local", "global_pool"),
                    "only a top-level domain may configure a global_pool, and this domain has a "
                    f"parent ({where}); it claims from its parents' space instead (RFC 2909 §4)",
                )
            )
        if problems:
            raise KeyedProblems(problems)
        return self

    def _peer_problems(self, peer: PeerConfig) -> Iterable[tuple[KeyPath, str]]:
        local = self.local
        family = local.family

        if _family_of(peer.address) is not family:
            yield ("address",), _family_mismatch(peer.address, family)
        elif peer.address == local.node_id or peer.address in local.listen:
            yield (
                ("address",),
                f"{peer.address} is this router's own address (local.node_id or local.listen)",
            )

        for key in ("domain_id", "parent_domain_id"):
            value: int | None = getattr(peer, key)
            spelling = peer._written_as_address.get(key)
            if spelling is not None and _written_family(spelling) is not family:
                yield (key,), _family_mismatch(spelling, family)
            elif value is not None and (problem := _identifier_problem(value, family)):
                yield (key,), problem

        # §4: an internal peer is a router of our own domain; any other relation is a
        # different domain.
        if peer.relation is Relation.INTERNAL and peer.domain_id != local.domain_id:
            yield (
                ("relation",),
                f"is 'internal' but domain_id {peer.domain_id} differs from local.domain_id "
                f"{local.domain_id}; internal peers are routers of this domain",
            )
        elif peer.relation is not Relation.INTERNAL and peer.domain_id == local.domain_id:
            yield (
                ("relation",),
                f"is {peer.relation.value!r} but domain_id {peer.domain_id} is this domain's own "
                "(local.domain_id); a router of this domain is 'internal'",
            )

        yield from self._parent_domain_id_problems(peer)

    def _parent_domain_id_problems(self, peer: PeerConfig) -> Iterable[tuple[KeyPath, str]]:
        parents = self.parent_domain_ids
        key: KeyPath = ("parent_domain_id",)
        if peer.relation is not Relation.SIBLING:
            if peer.parent_domain_id is not None:
                yield (
                    key,
                    (
                        "is only allowed on siblings (RFC 2909 §4.4), and this peer's relation is "
                        f"{peer.relation.value!r}"
                    ),
                )
            return
        if peer.parent_domain_id is None:
            if len(parents) > 1:
                yield (
                    key,
                    (
                        f"is required: this domain has {len(parents)} parents "
                        f"({', '.join(map(str, parents))}), and a sibling session belongs to one "
                        "common parent (RFC 2909 §4.4)"
                    ),
                )
            return
        if peer.parent_domain_id not in parents:
            if self.is_tld:
                yield (
                    key,
                    (
                        f"must be {TLD_ID}: this domain has no parent peers, so it is a top-level "
                        f"domain and its siblings are other TLDs (RFC 2909 §4.4), got "
                        f"{peer.parent_domain_id}"
                    ),
                )
            else:
                yield (
                    key,
                    (
                        f"{peer.parent_domain_id} is not a parent of this domain; must be one of "
                        f"{', '.join(map(str, parents))} (the domain_ids of the parent peers)"
                    ),
                )

    def _duplicate_peer_problems(self) -> Iterable[tuple[KeyPath, str]]:
        seen: dict[tuple[str, int | None], int] = {}
        for i, peer in enumerate(self.peers):
            try:
                key = self.peer_key(peer)
            except ValueError:
                continue  # ambiguous sibling parent: reported on parent_domain_id already
            if key in seen:
                same_parent = "" if key[1] is None else f" and common parent {key[1]}"
                yield (
                    ("peers", i, "address"),
                    f"duplicates peers[{seen[key]}]: same address {key[0]}{same_parent}; there is "
                    "one session per peer (per common parent for siblings, RFC 2909 §4.4)",
                )
            else:
                seen[key] = i
