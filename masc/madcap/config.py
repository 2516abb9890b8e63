"""The configuration of ``masc madcap``: a TOML file read into frozen pydantic models.

A MADCAP server (RFC 2730) is configured the way the Windows DHCP console configures its
multicast scopes: per scope a name in a language, the zone (first and last address; the
Scope ID is the first address, RFC 2730 §3.5), the allocatable ranges, exclusion ranges, the
TTL, and the default and maximum lease times.  Two kinds of scope:

* ``source = "static"``: administratively scoped space (RFC 2365) this server hands out on
  its own; the ranges come from the file.
* ``source = "masc"``: space the MASC daemon wins for the domain (RFC 2909) and grants to this
  server over the MAAS socket (docs/maas-api.md); the ranges come live from the daemon.  Its
  zone defaults to the IPv4 global scope 224.0.1.0-238.255.255.255 (RFC 2365 §6.1).

Rules checked here (each problem names its key, ``file: scope[0].range[1]: problem``):

* one address family per scope; every range and exclusion inside the zone;
* RFC 2365 §9: "The high order /24 in every scoped region is reserved for relative
  assignments" -- the highest 256 addresses of a zone in 239/8, which hold e.g. the MADCAP
  Server Multicast Address (RFC 2730 §2.10, last - 1).  The default range leaves them out,
  a configured range that reaches into them is refused, and for a ``masc`` scope in 239/8
  the server adds them to the exclusions (its space comes from the daemon, not the file);
* unique names and Scope IDs (RFC 2730 §3.10: "The Scope IDs ... MUST be unique"); an
  optional ``scope_id`` key must equal ``first``;
* ``inside`` (RFC 2907 nesting) names existing scopes, not itself, without a cycle;
* the allocatable ranges of two scopes never overlap (the same address leased twice), nor
  do the zones of two ``masc`` scopes (a grant belongs to the scope whose zone holds it);
* RFC 2730 §2.1.4: ``response_cache`` is 0..300 s; below 60 s is NOT RECOMMENDED (a warning);
* Appendix B: [OFFER-HOLD] is "at least 60 seconds".  Local policy: a shorter hold is an
  error, not a warning -- a client retransmits its REQUEST for up to 60 s (§2.3), and an
  offer that lapses before then can be made to another client and then requested by both;
* lease times are whole seconds that fit the 4-octet Lease Time option (§3.2).

Advice about a valid file (``madcap_warnings``) is logged at start-up and never stops it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Self, TypeAlias

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    field_validator,
    model_validator,
)

from masc.config.durations import parse_duration
from masc.config.lint import ConfigWarning
from masc.config.loader import load_model, parse_model
from masc.config.models import (
    AddressField,
    Duration,
    FilePath,
    KeyedProblems,
    KeyPath,
    Port,
    PositiveDuration,
    format_key_path,
)
from masc.madcap.constants import (
    CLOCK_SKEW_ALLOWANCE,
    EXTRA_ALLOCATION_TIME,
    GLOBAL_SCOPE_FIRST,
    GLOBAL_SCOPE_LAST,
    MAX_RESPONSE_CACHE_INTERVAL,
    OFFER_HOLD,
    PORT,
    RESPONSE_CACHE_INTERVAL,
)
from masc.madcap.messages import ScopeName
from masc.madcap.scopes import Scope

__all__ = [
    "MadcapConfig",
    "MascSection",
    "ScopeSection",
    "ServerSection",
    "Span",
    "load_madcap_config",
    "madcap_warnings",
    "parse_madcap_config",
    "relative_block",
]

Address: TypeAlias = IPv4Address | IPv6Address
Span: TypeAlias = tuple[Address, Address]  # inclusive, first <= last, one family

ADMIN_SCOPED_V4: Final = ip_network("239.0.0.0/8")
# RFC 2365 §9: the high-order /24 (256 addresses) of every scoped region.
RELATIVE_ASSIGNMENTS: Final = 256
# §3.2: Lease Time is a 4-octet count of seconds.
MAX_LEASE_SECONDS: Final = 0xFFFF_FFFF
# §3.10: the language tag and the name are each preceded by a one-octet length.
MAX_NAME_OCTETS: Final = 255
# The MAAS API's limits on the scope names a MAAS registers (masc/api/maas.py RegisterArgs).
MAX_MAAS_SCOPE_NAME: Final = 100
MAX_MAAS_SCOPES: Final = 32
DEFAULT_LEASE: Final = 3600.0
DEFAULT_MAX_LEASE: Final = 30 * 86_400.0
DEFAULT_RETRY_INTERVAL: Final = 600.0
DEFAULT_USAGE_INTERVAL: Final = 30.0
# RFC 1766 §2: Primary-tag 1*8ALPHA, Subtags 1*8ALPHA; digits allowed in subtags as RFC 5646
# (its successor) does.
_LANGUAGE_TAG: Final = re.compile(r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*")
_MAAS_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]*")


# --- field parsers -----------------------------------------------------------------------


def _parse_span(value: object) -> Span:
    """``"239.192.1.0-239.192.1.255"``, ``"239.192.1.0/24"`` or one address."""
    if not isinstance(value, str):
        raise ValueError(
            'expected a range string such as "239.192.1.0-239.192.1.255" or "239.192.1.0/24", '
            f"got {value!r}"
        )
    text = value.strip()
    try:
        if "/" in text:
            net = ip_network(text, strict=True)
            return net.network_address, net.broadcast_address
        first_text, dash, last_text = text.partition("-")
        first = ip_address(first_text.strip())
        last = ip_address(last_text.strip()) if dash else first
    except ValueError as exc:
        raise ValueError(
            f'{value!r} is not a range: write "FIRST-LAST", "PREFIX/LEN" or one address ({exc})'
        ) from None
    if first.version != last.version:
        raise ValueError(f"{value!r} mixes IPv4 and IPv6")
    if last < first:  # type: ignore[operator]  # same family, checked above
        raise ValueError(f"{value!r} ends before it starts")
    return first, last


def _parse_language(value: object) -> str:
    if not isinstance(value, str) or not _LANGUAGE_TAG.fullmatch(value):
        raise ValueError(
            f"must be a language tag such as 'en' or 'en-US' (RFC 1766), got {value!r}"
        )
    return value


def _parse_zone_name(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    if not value.strip():
        raise ValueError("must not be empty (RFC 2730 §3.10: Name Length MUST NOT be zero)")
    octets = len(value.encode("utf-8"))
    if octets > MAX_NAME_OCTETS:
        raise ValueError(
            f"is {octets} octets of UTF-8; a zone name has at most {MAX_NAME_OCTETS} "
            "(RFC 2730 §3.10)"
        )
    return value


def _lease_seconds(seconds: float) -> float:
    if seconds <= 0:
        raise ValueError(f"must be greater than 0 seconds, got {seconds:g}")
    if not seconds.is_integer():
        raise ValueError(f"must be a whole number of seconds (RFC 2730 §3.2), got {seconds:g}")
    if seconds > MAX_LEASE_SECONDS:
        raise ValueError(
            f"must fit the 4-octet Lease Time option (at most {MAX_LEASE_SECONDS} s), "
            f"got {seconds:g}"
        )
    return seconds


SpanField = Annotated[Span, PlainValidator(_parse_span)]
LanguageTag = Annotated[str, PlainValidator(_parse_language)]
ZoneName = Annotated[str, PlainValidator(_parse_zone_name)]
LeaseDuration = Annotated[float, BeforeValidator(parse_duration), AfterValidator(_lease_seconds)]


def _secs(seconds: float) -> str:
    return f"{int(seconds)} s" if seconds.is_integer() else f"{seconds:g} s"


def _show(span: Span) -> str:
    first, last = span
    return str(first) if first == last else f"{first}-{last}"


def _overlap(a: Span, b: Span) -> bool:
    return a[0].version == b[0].version and a[0] <= b[1] and b[0] <= a[1]  # type: ignore[operator]


def _inside(inner: Span, outer: Span) -> bool:
    return (
        inner[0].version == outer[0].version
        and outer[0] <= inner[0]  # type: ignore[operator]
        and inner[1] <= outer[1]  # type: ignore[operator]
    )


def _size(span: Span) -> int:
    return int(span[1]) - int(span[0]) + 1


def _is_admin_scoped(address: Address) -> bool:
    return isinstance(address, IPv4Address) and address in ADMIN_SCOPED_V4


def relative_block(first: Address, last: Address) -> Span | None:
    """RFC 2365 §9: the highest 256 addresses of an IPv4 admin-scope zone (in 239/8), reserved
    for relative assignments; None for a zone elsewhere or too small to have one."""
    if not (_is_admin_scoped(first) and _is_admin_scoped(last)):
        return None
    if int(last) - int(first) + 1 < RELATIVE_ASSIGNMENTS:
        return None
    return ip_address(int(last) - (RELATIVE_ASSIGNMENTS - 1)), last


def _subtract(spans: Sequence[Span], holes: Sequence[Span]) -> list[Span]:
    """``spans`` minus ``holes`` (all one family), as sorted disjoint spans."""
    pieces = sorted((int(a), int(b)) for a, b in spans)
    for hole_a, hole_b in sorted((int(a), int(b)) for a, b in holes):
        cut: list[tuple[int, int]] = []
        for a, b in pieces:
            if hole_b < a or b < hole_a:
                cut.append((a, b))
                continue
            if a < hole_a:
                cut.append((a, hole_a - 1))
            if hole_b < b:
                cut.append((hole_b + 1, b))
        pieces = cut
    return [(ip_address(a), ip_address(b)) for a, b in pieces]


# --- sections ----------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServerSection(_Model):
    """``[server]``: where the server listens and its RFC 2730 timers."""

    # Unicast addresses; one UDP socket each, bound to (address, port).  Replies always
    # leave from the socket of server_id (a client sends its unicast REQUEST there).
    listen: tuple[AddressField, ...] = (IPv4Address("127.0.0.1"),)
    port: Port = PORT  # §1.5
    server_id: AddressField | None = None  # §3.3; default listen[0]
    database: FilePath = Path("/var/lib/masc/madcap.db")
    # Join each scope's MADCAP Server Multicast Address (last - 1, §2.10) and the Local
    # Scope's 239.255.255.254 on the interface with this IPv4 address; omitted: unicast only.
    multicast_interface: AddressField | None = None
    response_cache: Duration = RESPONSE_CACHE_INTERVAL  # §2.1.4
    offer_hold: Duration = OFFER_HOLD  # Appendix B
    clock_skew_allowance: PositiveDuration = CLOCK_SKEW_ALLOWANCE  # §2.12
    extra_allocation_time: Duration = EXTRA_ALLOCATION_TIME  # §2.12
    retry_interval: PositiveDuration = DEFAULT_RETRY_INTERVAL  # §2.13.2: Retry Time = now + this

    @property
    def identifier(self) -> Address:
        """The Server Identifier (§3.3): ``server_id``, else the first listen address."""
        return self.server_id if self.server_id is not None else self.listen[0]

    @model_validator(mode="after")
    def _check(self) -> Self:
        problems: list[tuple[KeyPath, str]] = []
        if not self.listen:
            problems.append((("listen",), "must list at least one address"))
        seen: dict[Address, int] = {}
        for i, addr in enumerate(self.listen):
            if addr.is_multicast or addr.is_unspecified:
                problems.append(
                    (
                        ("listen", i),
                        f"{addr} is not a unicast address of this host; list each address to "
                        "serve on (replies leave from the socket of server_id)",
                    )
                )
            elif addr in seen:
                problems.append((("listen", i), f"{addr} duplicates listen[{seen[addr]}]"))
            seen.setdefault(addr, i)
        if self.server_id is not None and self.listen and self.server_id not in self.listen:
            problems.append(
                (
                    ("server_id",),
                    f"{self.server_id} is not one of listen ({', '.join(map(str, self.listen))}):"
                    " clients send their unicast REQUESTs to the Server Identifier (RFC 2730 "
                    "§2.2.4), so the server must listen on it",
                )
            )
        interface = self.multicast_interface
        if interface is not None and (
            not isinstance(interface, IPv4Address) or interface.is_multicast
        ):
            problems.append(
                (
                    ("multicast_interface",),
                    f"{interface} is not a unicast IPv4 address; name the interface by its "
                    "IPv4 address (multicast discovery is IPv4 only)",
                )
            )
        if self.response_cache > MAX_RESPONSE_CACHE_INTERVAL:
            problems.append(
                (
                    ("response_cache",),
                    f"must be 0..{_secs(MAX_RESPONSE_CACHE_INTERVAL)} (RFC 2730 §2.1.4), "
                    f"got {_secs(self.response_cache)}",
                )
            )
        if self.offer_hold < OFFER_HOLD:
            problems.append(
                (
                    ("offer_hold",),
                    f"must be at least {_secs(OFFER_HOLD)} (RFC 2730 Appendix B [OFFER-HOLD]): "
                    "a client retransmits its REQUEST for up to 60 s, and a shorter hold could "
                    f"give the same addresses to another client; got {_secs(self.offer_hold)}",
                )
            )
        if problems:
            raise KeyedProblems(problems)
        return self


class MascSection(_Model):
    """``[masc]``: attach to the MASC daemon's MAAS socket (docs/maas-api.md)."""

    maas_socket: FilePath = Path("/run/masc/maas.sock")
    # Grants belong to the name: keep it stable across restarts.
    name: Annotated[str, Field(min_length=1, max_length=64)] = "madcap"
    usage_interval: PositiveDuration = DEFAULT_USAGE_INTERVAL
    # Reconnection back-off when the daemon is not there or goes away: doubling.
    reconnect_initial: PositiveDuration = 1.0
    reconnect_max: PositiveDuration = 60.0

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _MAAS_NAME.fullmatch(value):
            raise ValueError(
                "must be letters, digits and . _ : @ - starting with a letter or digit "
                f"(a MAAS name, docs/maas-api.md), got {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.reconnect_max < self.reconnect_initial:
            raise KeyedProblems(
                [
                    (
                        ("reconnect_max",),
                        f"must be >= reconnect_initial ({_secs(self.reconnect_initial)}), "
                        f"got {_secs(self.reconnect_max)}",
                    )
                ]
            )
        return self


class ScopeSection(_Model):
    """``[[scope]]``: one multicast scope, as the Windows console describes it."""

    name: ZoneName
    language: LanguageTag = "en"
    # Further names of the zone, by language: { de = "Organisation" }.
    names: dict[str, ZoneName] = Field(default_factory=dict)
    source: Literal["static", "masc"] = "static"
    first: AddressField
    last: AddressField
    scope_id: AddressField | None = None  # §3.5: the Scope ID is the first address
    range: tuple[SpanField, ...] | None = None  # None: the zone minus its relative block
    exclude: tuple[SpanField, ...] = ()
    ttl: Annotated[int, Field(strict=True, ge=1, le=255)] = 255  # §2.8
    default_lease: LeaseDuration = DEFAULT_LEASE
    max_lease: LeaseDuration = DEFAULT_MAX_LEASE
    inside: tuple[str, ...] = ()  # RFC 2907: names of scopes this one nests in

    @model_validator(mode="before")
    @classmethod
    def _global_zone(cls, data: Any) -> Any:
        # A masc scope without a zone serves the IPv4 global scope (RFC 2365 §6.1).
        if (
            isinstance(data, dict)
            and data.get("source") == "masc"
            and "first" not in data
            and "last" not in data
        ):
            return {**data, "first": GLOBAL_SCOPE_FIRST, "last": GLOBAL_SCOPE_LAST}
        return data

    @property
    def zone(self) -> Span:
        return self.first, self.last

    @property
    def relative(self) -> Span | None:
        """The zone's block of RFC 2365 §9 relative assignments, never allocated."""
        return relative_block(self.first, self.last)

    @property
    def ranges(self) -> tuple[Span, ...]:
        """The static allocatable ranges: as configured, else the zone minus its relative
        block.  Empty for a ``masc`` scope, whose ranges are the daemon's grants."""
        if self.source == "masc":
            return ()
        if self.range is not None:
            return self.range
        relative = self.relative
        return tuple(_subtract([self.zone], [relative] if relative else []))

    @property
    def exclusions(self) -> tuple[Span, ...]:
        """What the server must never allocate: ``exclude``, and for a ``masc`` scope in 239/8
        the relative block (its grants could otherwise reach into it)."""
        relative = self.relative
        if self.source == "masc" and relative is not None:
            return (*self.exclude, relative)
        return self.exclude

    @property
    def allocatable(self) -> list[Span]:
        """The static ranges minus the exclusions."""
        return _subtract(self.ranges, self.exclusions)

    def to_scope(self) -> Scope:
        """The server core's view of this scope; ``name`` in ``language`` is the default
        name (the 0x80 flag of §3.10), ``names`` add the others."""
        names = (
            ScopeName(self.language, self.name, default=True),
            *(ScopeName(lang, text) for lang, text in self.names.items()),
        )
        return Scope(
            name=self.name,
            first=self.first,
            last=self.last,
            names=names,
            ttl=self.ttl,
            ranges=self.ranges,
            exclusions=self.exclusions,
            default_lease=self.default_lease,
            max_lease=self.max_lease,
            source=self.source,
            inside=self.inside,
        )

    @model_validator(mode="after")
    def _check(self) -> Self:
        problems = list(self._problems())
        if problems:
            raise KeyedProblems(problems)
        return self

    def _problems(self) -> Iterable[tuple[KeyPath, str]]:
        first, last = self.first, self.last
        if not first.is_multicast:
            yield ("first",), f"{first} is not a multicast address"
        if not last.is_multicast:
            yield ("last",), f"{last} is not a multicast address"
        if first.version != last.version:
            yield ("last",), f"{last} is not of the family of first ({first}): one family per scope"
            return
        if last < first:  # type: ignore[operator]
            yield ("last",), f"{last} is below first ({first})"
            return
        if self.scope_id is not None and self.scope_id != first:
            yield (
                ("scope_id",),
                f"{self.scope_id} is not the zone's first address {first}: the Scope ID is the "
                "first address of the scope (RFC 2730 §3.5); drop scope_id or make it equal first",
            )
        if _is_admin_scoped(first) != _is_admin_scoped(last):
            yield (
                ("last",),
                f"the zone {first}-{last} straddles the edge of {ADMIN_SCOPED_V4}, the "
                "administratively scoped block (RFC 2365 §6)",
            )
            return
        yield from self._range_problems()
        if self.default_lease > self.max_lease:
            yield (
                ("default_lease",),
                f"must be <= max_lease ({_secs(self.max_lease)}), got {_secs(self.default_lease)}",
            )
        for lang in self.names:
            if not _LANGUAGE_TAG.fullmatch(lang):
                yield ("names", lang), f"{lang!r} is not a language tag such as 'en' or 'en-US'"
            elif lang.lower() == self.language.lower():
                yield (
                    ("names", lang),
                    f"is in the scope's own language ({self.language!r}, the key `language`); "
                    "give each language one name",
                )
        if self.source == "masc" and len(self.name) > MAX_MAAS_SCOPE_NAME:
            yield (
                ("name",),
                f"a masc scope's name is sent to the MASC daemon, which takes at most "
                f"{MAX_MAAS_SCOPE_NAME} characters; got {len(self.name)}",
            )
        for i, other in enumerate(self.inside):
            if other == self.name:
                yield ("inside", i), "a scope cannot nest inside itself"
            elif other in self.inside[:i]:
                yield ("inside", i), f"{other!r} is listed twice"

    def _range_problems(self) -> Iterable[tuple[KeyPath, str]]:
        zone, relative = self.zone, self.relative
        zone_text = f"the zone {_show(zone)}"
        if _size(zone) < 2:
            yield (
                ("last",),
                f"{zone_text} must hold at least two addresses: its MADCAP server address is "
                "the last address minus one (RFC 2730 §2.10)",
            )
            return
        if _is_admin_scoped(self.first) and _size(zone) <= RELATIVE_ASSIGNMENTS:
            yield (
                ("last",),
                f"{zone_text} has {_size(zone)} addresses, all of them reserved for relative "
                f"assignments (RFC 2365 §9: the highest {RELATIVE_ASSIGNMENTS} of every "
                "admin-scope zone); nothing is left to allocate",
            )
            return
        if self.source == "masc" and self.range is not None:
            yield (
                ("range",),
                "a masc scope's ranges are the grants of the MASC daemon; remove `range` "
                "(use `exclude` to keep addresses out of them)",
            )
        for key, spans in (("range", self.range or ()), ("exclude", self.exclude)):
            for i, span in enumerate(spans):
                if span[0].version != self.first.version:
                    yield (
                        (key, i),
                        f"{_show(span)} is not of the zone's family: one family per scope",
                    )
                elif not _inside(span, zone):
                    yield (key, i), f"{_show(span)} is not inside {zone_text}"
                elif key == "range" and relative is not None and _overlap(span, relative):
                    yield (
                        (key, i),
                        f"{_show(span)} reaches into {_show(relative)}, the highest "
                        f"{RELATIVE_ASSIGNMENTS} addresses of {zone_text}, reserved for relative "
                        "assignments such as the MADCAP server address (RFC 2365 §9, RFC 2730 "
                        "§2.10); end the range below it",
                    )
                elif (
                    key == "range"
                    and (j := next((j for j in range(i) if _overlap(span, spans[j])), None))
                    is not None
                ):
                    yield (key, i), f"{_show(span)} overlaps range[{j}] ({_show(spans[j])})"
        if self.source == "static" and not self.allocatable:
            yield (
                ("exclude",) if self.exclude else ("range",),
                "leaves no address to allocate in this scope",
            )


class MadcapConfig(_Model):
    """A validated ``masc madcap`` file: ``[server]``, optional ``[masc]``, ``[[scope]]``."""

    server: ServerSection = Field(default_factory=ServerSection)
    masc: MascSection | None = None
    scope: tuple[ScopeSection, ...] = ()

    @property
    def masc_scopes(self) -> tuple[ScopeSection, ...]:
        return tuple(s for s in self.scope if s.source == "masc")

    @model_validator(mode="after")
    def _check(self) -> Self:
        problems: list[tuple[KeyPath, str]] = []
        if not self.scope:
            problems.append((("scope",), "configure at least one [[scope]]"))
        names: dict[str, int] = {}
        ids: dict[Address, int] = {}
        for i, scope in enumerate(self.scope):
            if scope.name in names:
                problems.append(
                    (("scope", i, "name"), f"{scope.name!r} duplicates scope[{names[scope.name]}]")
                )
            names.setdefault(scope.name, i)
            if scope.first in ids:
                problems.append(
                    (
                        ("scope", i, "first"),
                        f"Scope ID {scope.first} duplicates scope[{ids[scope.first]}]'s: Scope "
                        "IDs MUST be unique (RFC 2730 §3.10)",
                    )
                )
            ids.setdefault(scope.first, i)
        for i, scope in enumerate(self.scope):
            for j, other in enumerate(scope.inside):
                if other != scope.name and other not in names:
                    problems.append(
                        (
                            ("scope", i, "inside", j),
                            f"no scope is named {other!r}; known: "
                            + ", ".join(repr(n) for n in names),
                        )
                    )
        problems.extend(self._cycle_problems(names))
        problems.extend(self._overlap_problems())
        masc_scopes = [i for i, s in enumerate(self.scope) if s.source == "masc"]
        if masc_scopes and self.masc is None:
            problems.append(
                (
                    ("scope", masc_scopes[0], "source"),
                    'is "masc" but the file has no [masc] section naming the MAAS socket of '
                    "the MASC daemon",
                )
            )
        if len(masc_scopes) > MAX_MAAS_SCOPES:
            problems.append(
                (
                    ("scope", masc_scopes[MAX_MAAS_SCOPES], "source"),
                    f"at most {MAX_MAAS_SCOPES} masc scopes (the MAAS API's limit)",
                )
            )
        if problems:
            raise KeyedProblems(problems)
        return self

    def _cycle_problems(self, names: dict[str, int]) -> Iterable[tuple[KeyPath, str]]:
        """RFC 2907: nesting is a partial order; a cycle says two zones contain each other."""
        edges = {s.name: [o for o in s.inside if o in names and o != s.name] for s in self.scope}
        reported: set[str] = set()
        for scope in self.scope:
            if scope.name in reported:
                continue
            cycle = _cycle_through(scope.name, edges)
            if cycle:
                reported.update(cycle)
                yield (
                    ("scope", names[scope.name], "inside"),
                    f"nesting cycle {' -> '.join([*cycle, scope.name])}: two scopes cannot each "
                    "lie inside the other (RFC 2907)",
                )

    def _overlap_problems(self) -> Iterable[tuple[KeyPath, str]]:
        statics = [(i, s) for i, s in enumerate(self.scope) if s.source == "static"]
        for n, (i, scope) in enumerate(statics):
            for j, other in statics[:n]:
                for span in scope.allocatable:
                    clash = next((o for o in other.allocatable if _overlap(span, o)), None)
                    if clash is not None:
                        yield (
                            ("scope", i, "range"),
                            f"allocatable addresses {_show(span)} overlap scope[{j}] "
                            f"({other.name!r}: {_show(clash)}); the same address would be "
                            "leased twice",
                        )
                        break
        masc = [(i, s) for i, s in enumerate(self.scope) if s.source == "masc"]
        for n, (i, scope) in enumerate(masc):
            for j, other in masc[:n]:
                if _overlap(scope.zone, other.zone):
                    yield (
                        ("scope", i, "first"),
                        f"the zone {_show(scope.zone)} overlaps masc scope[{j}] ({other.name!r}, "
                        f"{_show(other.zone)}); a grant belongs to the masc scope whose zone "
                        "holds it, so masc zones must be disjoint",
                    )


def _cycle_through(start: str, edges: dict[str, list[str]]) -> list[str]:
    """The shortest nesting path from ``start`` back to itself (without the final repeat),
    or an empty list when there is none (breadth first)."""
    parent: dict[str, str] = {}
    queue = [start]
    for node in queue:
        for nxt in edges.get(node, ()):
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return path[::-1]
            if nxt not in parent:
                parent[nxt] = node
                queue.append(nxt)
    return []


def load_madcap_config(path: str | os.PathLike[str]) -> MadcapConfig:
    """Read and validate a ``masc madcap`` file.  Raises ``masc.config.ConfigError``."""
    return load_model(path, MadcapConfig)


def parse_madcap_config(text: str, source: str = "<string>") -> MadcapConfig:
    """Validate ``masc madcap`` configuration given as TOML text."""
    return parse_model(text, MadcapConfig, source)


def madcap_warnings(config: MadcapConfig) -> list[ConfigWarning]:
    """What is valid but unwise in ``config``, in file order."""
    found: list[ConfigWarning] = []
    server = config.server
    if server.response_cache < RESPONSE_CACHE_INTERVAL:
        found.append(
            ConfigWarning(
                "server.response_cache",
                f"{_secs(server.response_cache)} is below 60 s, which RFC 2730 §2.1.4 does not "
                "recommend: a client retransmits for up to 60 s, and a retransmission that "
                "misses the cache is executed again",
            )
        )
    if config.masc is not None and not config.masc_scopes:
        found.append(
            ConfigWarning(
                "masc",
                'no scope has source = "masc": the server registers with the daemon but '
                "leases nothing from its space",
            )
        )
    masc_zones = [(s.name, s.zone) for s in config.masc_scopes]
    for i, scope in enumerate(config.scope):
        key = format_key_path(("scope", i))
        if scope.ttl != 255 and _is_admin_scoped(scope.first):
            found.append(
                ConfigWarning(
                    f"{key}.ttl",
                    f"is {scope.ttl}; under administrative scoping the TTL SHOULD be 255 "
                    "(RFC 2730 §2.8): the zone boundary, not the TTL, limits the traffic",
                )
            )
        if scope.source != "static":
            continue
        for name, zone in masc_zones:
            clash = next((s for s in scope.allocatable if _overlap(s, zone)), None)
            if clash is not None:
                found.append(
                    ConfigWarning(
                        f"{key}.range",
                        f"{_show(clash)} lies in the zone of masc scope {name!r}: if the MASC "
                        "daemon grants that space too, an address may be leased twice",
                    )
                )
    return found
