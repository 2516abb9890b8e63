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
* §4 / §4.5 with RFC 5771, RFC 3180, RFC 4607: which multicast space a global pool may hold
  (``masc.config.space``); §4.5: the admin-scope zones a session crosses.
* §8.3, §12.4, §14, Appendix B: the ``[policy]`` a node applies to the claims it hears.

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
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from masc.config.durations import parse_duration
from masc.config.space import pool_refusal
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
    "GribConfig",
    "GribFrrConfig",
    "GribKernelConfig",
    "KeyPath",
    "KeyedProblems",
    "LocalConfig",
    "MaasConfig",
    "MascConfig",
    "MetricsConfig",
    "Network",
    "PeerConfig",
    "PolicyConfig",
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
DEFAULT_RENEW_INTERVAL: Final = 48 * 3600.0
# §8.3's examples: "more than 15,768,000, i.e. half year" is a Claim Lifetime (and a Claim
# Holdtime) too long; "smaller than 16 addresses" a Claim Prefix Size Too Small.
HALF_YEAR: Final = 15_768_000.0
DEFAULT_MIN_CHILD_PREFIX_SIZE: Final = 16
# §8.3 Claim Timestamp Too New/Old: how far a claim's timestamp may be off; one day, like the
# §12.3 example of the skew to compensate for.
DEFAULT_TIMESTAMP_TOLERANCE: Final = 86_400.0
# §7.3: Claim Lifetime and Claim Holdtime are 4-octet counts of seconds.
MAX_CLAIM_SECONDS: Final = 0xFFFF_FFFF

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


def _secs(seconds: float) -> str:
    """``15768000 s`` rather than ``1.5768e+07 s``: durations as an operator would write them."""
    return f"{int(seconds)} s" if seconds.is_integer() else f"{seconds:g} s"


def _wire_seconds(seconds: float) -> float:
    # §7.3: a value this node puts in a Claim Lifetime field must be a 4-octet whole number.
    if not seconds.is_integer():
        raise ValueError(f"must be a whole number of seconds, got {seconds:g}")
    if seconds > MAX_CLAIM_SECONDS:
        raise ValueError(
            f"must be at most {MAX_CLAIM_SECONDS} seconds (a 4-octet field, RFC 2909 §7.3), "
            f"got {_secs(seconds)}"
        )
    return seconds


def _power_of_two_problem(value: int, what: str) -> str | None:
    if value & (value - 1):
        return (
            f"must be a power of two ({what}), got {value}; "
            f"nearest: {1 << (value.bit_length() - 1)} or {1 << value.bit_length()}"
        )
    return None


def _parse_mode(value: object) -> int:
    """A file mode written as an octal string (``"0660"``) or an integer (``0o660``)."""
    if isinstance(value, str):
        try:
            value = int(value, 8)
        except ValueError:
            raise ValueError(f'must be an octal file mode such as "0660", got {value!r}') from None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0o777:
        raise ValueError(f"must be a file mode between 0000 and 0777, got {value!r}")
    return value


def _parse_listen(value: object) -> object:
    """``"127.0.0.1:9587"`` or ``"[::1]:9587"`` -> (address, port)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f'must be "ADDRESS:PORT" such as "127.0.0.1:9587", got {value!r}')
    host, sep, port_text = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f'an IPv6 address is written in brackets: "[::1]:9587", got {value!r}')
    try:
        address = ip_address(host)
        port = int(port_text)
    except ValueError:
        raise ValueError(
            f'must be "ADDRESS:PORT" with a numeric address, such as "127.0.0.1:9587", '
            f"got {value!r}"
        ) from None
    if not sep or not 1 <= port <= 65535:
        raise ValueError(f"port must be 1..65535, got {value!r}")
    return (address, port)


def _pair(value: object) -> object:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError(f"must be [low, high], two fractions such as [0.7, 0.9], got {value!r}")
    return value


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
WireDuration = Annotated[
    float, BeforeValidator(parse_duration), AfterValidator(_positive), AfterValidator(_wire_seconds)
]
AddressCount = Annotated[int, Field(strict=True, ge=1)]
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

        problems.extend(_pool_problems(self.global_pool, family))
        if problems:
            raise KeyedProblems(problems)
        return self


def _pool_problems(pool: Sequence[Network], family: AddressFamily) -> Iterable[tuple[KeyPath, str]]:
    """§4: the global pool is multicast space the TLDs may claim; one problem per prefix."""
    space = _MULTICAST_SPACE[family]
    accepted: dict[int, Network] = {}
    for i, net in enumerate(pool):
        key: KeyPath = ("global_pool", i)
        if _family_of(net) is not family:
            yield key, _family_mismatch(net, family, "prefix")
        elif not net.subnet_of(space):  # type: ignore[arg-type]  # same family, checked above
            yield key, f"{net} is not multicast space (inside {space})"
        elif (refusal := pool_refusal(net)) is not None:
            yield key, refusal
        elif (j := next((j for j, o in accepted.items() if net.overlaps(o)), None)) is not None:
            # Two TLDs' claims are compared per prefix (§5.1.1); a pool listed twice would
            # only make the same space look twice as large.
            yield key, f"{net} overlaps global_pool[{j}] ({accepted[j]}); prefixes must be disjoint"
        else:
            accepted[i] = net


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
    """``[allocation]``: how much address space this domain asks for, and how the RFC 2909
    Appendix A allocator keeps it matched to the MAASs' demand."""

    initial_size: Annotated[int, Field(strict=True, ge=0)] = DEFAULT_INITIAL_SIZE
    claim_lifetime: PositiveDuration = DEFAULT_CLAIM_LIFETIME
    # §17.1.3: keep addresses in use / addresses held inside this band.
    target_utilization: Annotated[
        tuple[
            Annotated[float, Field(strict=False, gt=0, le=1)],
            Annotated[float, Field(strict=False, gt=0, le=1)],
        ],
        BeforeValidator(_pair),
    ] = (0.7, 0.9)
    # §17.1.4: "up to three prefixes per MASC domain is a reasonable threshold".
    max_prefixes: Annotated[int, Field(strict=True, ge=1)] = 3
    # §17.1.6: "Each prefix ... should be re-claimed every 48 hours."
    renew_interval: PositiveDuration = DEFAULT_RENEW_INTERVAL
    # Which free prefix to claim: the Appendix A reverse bit ordering, or a simpler strategy
    # kept for comparison in the benchmarks.
    strategy: Literal["rbo", "first-fit", "best-fit"] = "rbo"

    @field_validator("target_utilization")
    @classmethod
    def _band(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if low >= high:
            raise ValueError(f"must be [low, high] with low < high, got [{low:g}, {high:g}]")
        return value

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

    # claim_lifetime against the timers is checked in MascConfig: it spans two sections.


class ControlConfig(_Model):
    """``[control]``: the mascctl control sockets.

    Who may steer the daemon is decided by file permissions, never by a TCP listener: the
    full socket (show, actions, reload) is owner-only by default; the optional read-only
    socket answers only ``show`` verbs, for monitoring agents that must not change state.
    """

    socket: FilePath = Path("/run/masc/control.sock")
    mode: Annotated[int, BeforeValidator(_parse_mode)] = 0o600
    # The socket's group (a name or a gid); omitted = the daemon's own group.
    group: str | Annotated[int, Field(strict=True, ge=0)] | None = None
    readonly_socket: FilePath | None = None
    readonly_mode: Annotated[int, BeforeValidator(_parse_mode)] = 0o660
    readonly_group: str | Annotated[int, Field(strict=True, ge=0)] | None = None

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        if self.readonly_socket is not None and self.readonly_socket == self.socket:
            raise KeyedProblems(
                [(("readonly_socket",), f"must differ from socket ({self.socket})")]
            )
        return self


class MetricsConfig(_Model):
    """``[metrics]``: an optional Prometheus text endpoint (``GET /metrics``).

    Off unless ``listen`` is given.  Meant for loopback (a local Prometheus or node agent);
    any other address is allowed but warned about (``config_warnings``).
    """

    listen: Annotated[tuple[Address, int] | None, BeforeValidator(_parse_listen)] = None


class MaasConfig(_Model):
    """``[maas]``: the socket MAASs (address allocation servers, RFC 2908) use to receive the
    domain's space, and how the space is split between them (docs/maas-api.md)."""

    socket: FilePath = Path("/run/masc/maas.sock")
    # Who may connect is decided by file permissions: owner and group read/write.
    mode: Annotated[int, BeforeValidator(_parse_mode)] = 0o660
    # The socket's group (a name or a gid); omitted = the daemon's own group.
    group: str | Annotated[int, Field(strict=True, ge=0)] | None = None
    # A MAAS's reported usage is predicted this far ahead when deciding to grant it more.
    grant_horizon: PositiveDuration = 3600.0
    # "expiring" is pushed this long before a grant that will not be renewed ends.
    expiry_warning: Duration = 86_400.0
    # The smallest block handed to a MAAS: a power of two.
    min_grant: AddressCount = 16

    @field_validator("min_grant")
    @classmethod
    def _grant_power_of_two(cls, value: int) -> int:
        problem = _power_of_two_problem(value, "a grant is a prefix")
        if problem:
            raise ValueError(problem)
        return value


class StorageConfig(_Model):
    """``[storage]``: where allocated prefixes, pending claims and MAAS grants survive a
    restart (RFC 2909 §13)."""

    path: FilePath = Path("/var/lib/masc/state.db")
    # Claim history, clash and withdraw records kept for `mascctl show prefixes`.
    history_limit: Annotated[int, Field(strict=True, ge=0)] = 10_000


# Linux reserves routing tables 0 (unspec) and 253-255 (default, main, local), and route
# protocol numbers 0-4 (unspec, redirect, kernel, boot, static); rtnetlink's field is 8 bits.
_RESERVED_TABLES: Final = frozenset({0, 253, 254, 255})
# A FRR route-map name: what `route-map WORD` accepts without quoting.
_ROUTE_MAP_NAME: Final = r"^[A-Za-z0-9_.:-]{1,64}$"


class GribKernelConfig(_Model):
    """``[grib.kernel]``: the domain's G-RIB prefixes as routes in a routing table of its own
    (docs/grib.md).  Only routes with ``protocol`` in ``table`` are masc's: nothing else in
    the table, and nothing in any other table, is ever touched."""

    enabled: Annotated[bool, Field(strict=True)] = False
    table: Annotated[int, Field(strict=True, ge=1, le=0xFFFF_FFFF)] = 2587
    protocol: Annotated[int, Field(strict=True, ge=5, le=255)] = 245

    @field_validator("table")
    @classmethod
    def _not_a_kernel_table(cls, value: int) -> int:
        if value in _RESERVED_TABLES:
            raise ValueError(
                f"table {value} is one of the kernel's own (253 default, 254 main, 255 local):"
                " masc needs a table of its own"
            )
        return value


class GribFrrConfig(_Model):
    """``[grib.frr]``: the prefixes as ``network`` statements under ``address-family ipv4
    multicast`` / ``ipv6 multicast`` of the local FRR bgpd, via vtysh (docs/grib.md).  The
    statements masc owns carry ``route-map <route_map>``; others are never touched."""

    enabled: Annotated[bool, Field(strict=True)] = False
    vtysh: FilePath = Path("/usr/bin/vtysh")
    # vtysh --vty_socket (the directory holding bgpd.vty); omitted = FRR's default.
    vty_socket: FilePath | None = None
    # vtysh -N (FRR's pathspace, one per bgpd instance); omitted = none.
    pathspace: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] | None = None
    # The bgpd's AS number; omitted = the one `router bgp` in its running configuration.
    asn: Annotated[int, Field(strict=True, ge=1, le=0xFFFF_FFFF)] | None = None
    route_map: Annotated[str, Field(pattern=_ROUTE_MAP_NAME)] = "MASC-GRIB"
    # After every change, read masc's statements back (exactly the wanted ones) and check
    # in `show bgp ipv4|ipv6 multicast json` that each is a valid, locally sourced route.
    verify: Annotated[bool, Field(strict=True)] = True
    timeout: PositiveDuration = 10.0


class GribConfig(_Model):
    """``[grib]``: where the domain's allocated prefixes are injected (RFC 2909 §3, §5.1).
    Several exporters may be enabled; with none, the G-RIB is only logged and shown."""

    kernel: GribKernelConfig = Field(default_factory=GribKernelConfig)
    frr: GribFrrConfig = Field(default_factory=GribFrrConfig)
    # Besides every change, each exporter re-reads and repairs its target this often.
    resync_interval: PositiveDuration = 60.0


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


class PolicyConfig(_Model):
    """``[policy]``: what this node accepts from the claims it hears, chiefly its children's.

    RFC 2909 leaves these to "local policy"; each default is the RFC's own example:

    * §12.4: a node "must be configured to operate using either manual or automatic clash
      resolution" — ``clash_resolution``.
    * §8.3: a parent answers a child's claim whose lifetime is too long first with a
      CLAIM_DENIED carrying the longest acceptable lifetime (``max_child_lifetime``, example
      half a year), then with Claim Lifetime Too Long; too short a lifetime gets Claim
      Lifetime Too Short (``min_child_lifetime``). Too small a prefix gets Claim Prefix Size
      Too Small (``min_child_prefix_size``, example 16 addresses); too large a prefix
      CLAIM_DENIED, then Claim Prefix Size Too Large (``max_child_prefix_size``). Claim
      timestamps too far off get Claim Timestamp Too New/Old (``timestamp_tolerance``);
      holdtimes out of bounds Claim Holdtime Too Long (SHOULD, ``max_claim_holdtime``) or
      Too Short (MAY, ``min_claim_holdtime``).
    * Appendix B: soft (warning) and hard (CLAIM_DENIED) thresholds on the addresses a child
      domain has claimed and allocated.
    * §14: after a restart, a node takes back its own domain's UPDATEs only from the
      relations it trusts (``restore_from``); "typically" parents and internal peers.

    Sizes are counts of addresses, as in §8.3 and Appendix B; durations are seconds or
    duration strings. 0 for a minimum means "no minimum", an omitted maximum "no limit".
    """

    clash_resolution: Literal["automatic", "manual"] = "automatic"
    # Sent in CLAIM_DENIED's Claim Lifetime field (§8.3), hence whole seconds in 4 octets.
    max_child_lifetime: WireDuration = HALF_YEAR
    min_child_lifetime: Duration = 0.0
    min_child_prefix_size: AddressCount = DEFAULT_MIN_CHILD_PREFIX_SIZE
    max_child_prefix_size: AddressCount | None = None
    child_soft_threshold: AddressCount | None = None
    child_hard_threshold: AddressCount | None = None
    timestamp_tolerance: Duration = DEFAULT_TIMESTAMP_TOLERANCE
    max_claim_holdtime: PositiveDuration = HALF_YEAR
    min_claim_holdtime: Duration = 0.0
    restore_from: tuple[Relation, ...] = (Relation.PARENT, Relation.INTERNAL)
    # §14: relayed UPDATEs of siblings and children (masc.protocol.engine.ThirdParty).
    third_party: Literal["accept", "via-parent", "strict"] = "via-parent"

    @model_validator(mode="after")
    def _check(self) -> Self:
        problems: list[tuple[KeyPath, str]] = []
        # A claim is a prefix (§5), so it covers a power of two addresses: any other bound
        # would be the next power of two in disguise.
        sizes = ("min_child_prefix_size", "max_child_prefix_size")
        for key in sizes:
            value: int | None = getattr(self, key)
            if value is not None and (problem := _power_of_two_problem(value, "a prefix")):
                problems.append(((key,), problem))
        if (
            self.max_child_prefix_size is not None
            and self.max_child_prefix_size < self.min_child_prefix_size
        ):
            problems.append(
                (
                    ("max_child_prefix_size",),
                    f"must be >= min_child_prefix_size ({self.min_child_prefix_size}), "
                    f"got {self.max_child_prefix_size}",
                )
            )
        soft, hard = self.child_soft_threshold, self.child_hard_threshold
        if hard is not None and soft is not None and hard < soft:
            problems.append(
                (
                    ("child_hard_threshold",),
                    f"must be >= child_soft_threshold ({soft}): the warning comes before the "
                    f"denial (RFC 2909 App. B), got {hard}",
                )
            )
        elif hard is not None and hard < self.min_child_prefix_size:
            problems.append(
                (
                    ("child_hard_threshold",),
                    f"must be >= min_child_prefix_size ({self.min_child_prefix_size}), or every "
                    f"child claim is denied, got {hard}",
                )
            )
        if self.min_child_lifetime > self.max_child_lifetime:
            problems.append(
                (
                    ("min_child_lifetime",),
                    f"must be <= max_child_lifetime ({_secs(self.max_child_lifetime)}), "
                    f"got {_secs(self.min_child_lifetime)}",
                )
            )
        if self.min_claim_holdtime > self.max_claim_holdtime:
            problems.append(
                (
                    ("min_claim_holdtime",),
                    f"must be <= max_claim_holdtime ({_secs(self.max_claim_holdtime)}), "
                    f"got {_secs(self.min_claim_holdtime)}",
                )
            )
        if self.max_claim_holdtime < self.max_child_lifetime:
            # §7.3: a PREFIX_IN_USE's Claim Holdtime equals its Claim Lifetime, so a lifetime
            # granted to a child would come back refused as a holdtime too long.
            problems.append(
                (
                    ("max_claim_holdtime",),
                    f"must be >= max_child_lifetime ({_secs(self.max_child_lifetime)}): a "
                    "PREFIX_IN_USE's holdtime equals its lifetime (RFC 2909 §7.3), "
                    f"got {_secs(self.max_claim_holdtime)}",
                )
            )
        first_seen: dict[Relation, int] = {}
        for i, relation in enumerate(self.restore_from):
            if relation in first_seen:
                problems.append(
                    (
                        ("restore_from", i),
                        f"{relation.value!r} duplicates restore_from[{first_seen[relation]}]",
                    )
                )
            first_seen.setdefault(relation, i)
        if problems:
            raise KeyedProblems(problems)
        return self


_MD5_KEY_MAX: Final = 80  # octets (Linux TCP_MD5SIG_MAXKEYLEN)


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
    # §4.5: the admin-scope zones (RFC 2365) whose boundary this session crosses. Messages
    # about prefixes inside them "are not sent across such sessions".
    scope_boundary: tuple[NetworkField, ...] = ()
    # §14 "allow peering only with trustworthy nodes": TCP MD5 signatures (RFC 2385), the
    # key given here or read from a file (the first line, without its newline), and GTSM
    # (RFC 5082): accept segments only from at most this many routers away.
    password: Annotated[SecretStr, Field(min_length=1)] | None = None
    password_file: FilePath | None = None
    ttl_security: Annotated[int, Field(strict=True, ge=1, le=254)] | None = None
    # §14 flood limits (masc.protocol.limits): claims held from this session at once,
    # UPDATEs per second (token bucket of update_burst), and what to do past them.
    max_claims: Annotated[int, Field(strict=True, ge=1)] | None = None
    max_update_rate: Annotated[float, Field(gt=0)] | None = None
    update_burst: Annotated[int, Field(strict=True, ge=1)] | None = None
    limit_action: Literal["warn", "drop", "reset"] = "drop"

    # The TCP MD5 key, read once at validation (so a reload notices a new key in the file).
    _md5_key: bytes | None = PrivateAttr(default=None)

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
        problems.extend(self._read_md5_key())
        if self.update_burst is not None and self.max_update_rate is None:
            problems.append((("update_burst",), "needs max_update_rate (the bucket's refill)"))
        first_seen: dict[Network, int] = {}
        for i, zone in enumerate(self.scope_boundary):
            if not zone.is_multicast:
                problems.append((("scope_boundary", i), f"{zone} is not multicast space"))
            elif zone in first_seen:
                problems.append(
                    (("scope_boundary", i), f"{zone} duplicates scope_boundary[{first_seen[zone]}]")
                )
            first_seen.setdefault(zone, i)
        if problems:
            raise KeyedProblems(problems)
        return self

    def _read_md5_key(self) -> Iterable[tuple[KeyPath, str]]:
        if self.password is not None and self.password_file is not None:
            yield ("password_file",), "set either password or password_file, not both"
            return
        if self.password is not None:
            key, where, what = self.password.get_secret_value().encode(), "password", ""
        elif self.password_file is not None:
            try:
                text = self.password_file.read_bytes()
            except OSError as error:
                yield ("password_file",), f"cannot read {self.password_file}: {error.strerror}"
                return
            key = text.split(b"\n", 1)[0].rstrip(b"\r")
            where, what = "password_file", f"the key in {self.password_file} "
            if not key:
                yield (where,), f"{self.password_file} holds no key on its first line"
                return
        else:
            return
        if len(key) > _MD5_KEY_MAX:
            yield (
                (where,),
                f"{what}is {len(key)} octets; TCP MD5 keys are at most {_MD5_KEY_MAX} "
                "(RFC 2385, Linux TCP_MD5SIG_MAXKEYLEN)",
            )
        else:
            self._md5_key = key

    @property
    def md5_key(self) -> bytes | None:
        """The TCP MD5 key of this peer's sessions (RFC 2385), None when unsigned."""
        return self._md5_key


# --- the whole file ----------------------------------------------------------------------


class MascConfig(_Model):
    """A validated configuration file. Only ``[local]`` is required."""

    local: LocalConfig
    timers: TimersConfig = Field(default_factory=TimersConfig)
    allocation: AllocationConfig = Field(default_factory=AllocationConfig)
    control: ControlConfig = Field(default_factory=ControlConfig)
    maas: MaasConfig = Field(default_factory=MaasConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    grib: GribConfig = Field(default_factory=GribConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
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
        problems.extend(self._shared_address_problems())
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
        problems.extend(self._timing_problems())
        if problems:
            raise KeyedProblems(problems)
        return self

    def _timing_problems(self) -> Iterable[tuple[KeyPath, str]]:
        """Rules between [allocation], [timers] and [policy]."""
        timers, policy = self.timers, self.policy
        # §4.2, §5.2: a claim is renewed before it expires, and a renewal waits up to
        # INITIATE_CLAIM_DELAY and then WAITING_PERIOD; a shorter lifetime always lapses.
        renewal = timers.waiting_period + timers.initiate_claim_delay
        if self.allocation.claim_lifetime <= renewal:
            yield (
                ("allocation", "claim_lifetime"),
                f"must be longer than timers.waiting_period + timers.initiate_claim_delay "
                f"({_secs(timers.waiting_period)} + {_secs(timers.initiate_claim_delay)} = "
                f"{_secs(renewal)}), or a claim expires before its renewal can finish "
                f"(RFC 2909 §5.2), got {_secs(self.allocation.claim_lifetime)}",
            )
        # §7.3: a NEW_CLAIM's or CLAIM_TO_EXPAND's Claim Holdtime is WAITING_PERIOD; bounds
        # that exclude it would refuse every claim.
        if policy.max_claim_holdtime < timers.waiting_period:
            yield (
                ("policy", "max_claim_holdtime"),
                f"must be >= timers.waiting_period ({_secs(timers.waiting_period)}), the holdtime "
                f"of every new claim (RFC 2909 §7.3), got {_secs(policy.max_claim_holdtime)}",
            )
        if policy.min_claim_holdtime > timers.waiting_period:
            yield (
                ("policy", "min_claim_holdtime"),
                f"must be <= timers.waiting_period ({_secs(timers.waiting_period)}), the holdtime "
                f"of every new claim (RFC 2909 §7.3), got {_secs(policy.min_claim_holdtime)}",
            )
        space = _MULTICAST_SPACE[self.local.family]
        if policy.min_child_prefix_size > space.num_addresses:
            yield (
                ("policy", "min_child_prefix_size"),
                f"must be at most {space.num_addresses} (all of {space}), "
                f"got {policy.min_child_prefix_size}",
            )

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

        for i, zone in enumerate(peer.scope_boundary):
            if _family_of(zone) is not family:
                yield ("scope_boundary", i), _family_mismatch(zone, family, "prefix")

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

    def _shared_address_problems(self) -> Iterable[tuple[KeyPath, str]]:
        """Sessions to one address (siblings per common parent, §4.4) share the TCP
        protections: the kernel keys MD5 and the listener by address, not by session."""
        first: dict[str, int] = {}
        for i, peer in enumerate(self.peers):
            j = first.setdefault(str(peer.address), i)
            if j == i:
                continue
            other = self.peers[j]
            if peer.md5_key != other.md5_key:
                yield (
                    ("peers", i, "password"),
                    f"differs from peers[{j}], a session to the same address {peer.address}; "
                    "the TCP MD5 key is per address (RFC 2385)",
                )
            if peer.ttl_security != other.ttl_security:
                yield (
                    ("peers", i, "ttl_security"),
                    f"differs from peers[{j}], a session to the same address {peer.address}",
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
