"""Schemas of the MAAS socket (newline-delimited JSON), shared by the daemon and its client.

RFC 2908 splits multicast address allocation into layers: MASC (RFC 2909) wins address space
for a domain, and the domain's MAASs (MADCAP servers, RFC 2730) hand addresses to hosts.  The
piece between them, an intra-domain protocol (AAP) that shares the domain's space among its
MAASs, was withdrawn; this local socket does that job.  A MAAS registers, learns the address
sets it may use, subscribes to changes, reports its usage (which drives the claims of RFC 2909
Appendix A) and may ask for more.  docs/maas-api.md is the operator's description.

``FORMAT_VERSION`` changes only on a breaking change; within a version verbs, events and
fields may be added, so readers ignore what they do not know.  Every server message carries
it.  A request is one JSON object on one line, a response or event likewise:

    {"id": 1, "verb": "space"}
    {"format_version": 1, "id": 1, "ok": true, "result": {"grants": [...]}}
    {"format_version": 1, "id": 2, "ok": false, "error": {"code": "not_registered", ...}}
    {"format_version": 1, "event": "revoked", "maas": "madcap-a", "grant": {...}, ...}
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_network
from typing import Annotated, Any, Final, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from masc.protocol.wire.messages import Prefix

FORMAT_VERSION: Final = 1
MAX_LINE_BYTES: Final = 65536  # per line, without its newline

ErrorCode = Literal[
    "bad_json",  # the line is not JSON
    "bad_request",  # JSON, but not a request of this format (the message names the field)
    "unknown_verb",
    "too_large",  # the line exceeded MAX_LINE_BYTES; it was discarded up to its newline
    "not_registered",  # the verb needs `register` first on this connection
    "name_in_use",  # another live connection registered that name
    "no_space",  # the request can never be met (e.g. larger than the domain's space)
    "busy",  # too many clients; the connection is closed after this error
    "internal",  # a bug in the daemon; it is logged there
]
ERROR_CODES: Final[tuple[str, ...]] = get_args(ErrorCode)

Verb = Literal["register", "space", "subscribe", "usage", "request"]
EventKind = Literal["granted", "extended", "deprecated", "revoked", "expiring"]


def _prefix(value: object) -> Prefix:
    """A CIDR string (host bits clear) or an ``ipaddress`` network, with a readable error
    instead of pydantic's per-member union report."""
    if isinstance(value, Prefix):
        return value
    if not isinstance(value, str):
        raise ValueError("a prefix is a string such as '239.192.4.0/26'")
    try:
        return ip_network(value, strict=True)
    except ValueError as error:
        raise ValueError(f"not a prefix: {error}") from None


PrefixField = Annotated[
    Prefix,
    PlainValidator(_prefix, json_schema_input_type=str),
    PlainSerializer(str, return_type=str),
]
Count = Annotated[int, Field(ge=0, strict=True)]


class MaasError(Exception):
    """A structured error: raised by a backend to answer one request (``no_space`` ...), and
    by the client for an error response or a socket it cannot use.  ``code`` is stable and
    machine-readable (ERROR_CODES, plus the client's own ``permission_denied``,
    ``unavailable``, ``disconnected`` and ``bad_response``); ``message`` is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


# --- requests --------------------------------------------------------------------------------


class Request(BaseModel):
    """The envelope; ``args`` is checked against the verb's model once the verb is known."""

    model_config = ConfigDict(extra="forbid")

    id: int = Field(strict=True, description="chosen by the client, echoed in the response")
    verb: str = Field(min_length=1, max_length=100)
    args: dict[str, Any] = Field(default_factory=dict)


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoArgs(_Args):
    """``space`` and ``subscribe`` take none."""


class RegisterArgs(_Args):
    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$",
        min_length=1,
        max_length=64,
        description="stable across restarts: the grants belong to the name",
    )
    scopes: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=32, description="the scopes this MAAS serves"
    )


class UsageReport(_Args):
    """What a MAAS uses (the input of RFC 2909 §17.1.2's demand prediction)."""

    in_use: Count = Field(description="addresses leased now")
    rate: float = Field(
        default=0.0,
        strict=True,
        allow_inf_nan=False,
        description="growth of in_use, addresses per second (negative when falling)",
    )
    by_prefix: dict[PrefixField, Count] = Field(
        default_factory=dict, description="addresses leased in each granted prefix"
    )


class RequestArgs(_Args):
    size: int = Field(
        strict=True, gt=0, le=1 << 128, description="addresses wanted beyond those granted"
    )


# --- results -----------------------------------------------------------------------------------


class GrantInfo(BaseModel):
    """An address set a MAAS may use: a prefix, its range and the end of its lifetime."""

    prefix: PrefixField
    start: IPv4Address | IPv6Address
    end: IPv4Address | IPv6Address
    expires: float = Field(description="end of lifetime, Unix seconds (RFC 2909 §4.2)")
    state: Literal["active", "deprecated"] = Field(
        description="deprecated: usable until it expires but not renewed; move clients off it"
    )

    @classmethod
    def build(cls, prefix: Prefix, *, expires: float, active: bool) -> GrantInfo:
        return cls(
            prefix=prefix,
            start=prefix.network_address,
            end=prefix.broadcast_address,
            expires=expires,
            state="active" if active else "deprecated",
        )


class RegisterResult(BaseModel):
    name: str
    domain_id: int
    node_id: str
    address_family: Literal["ipv4", "ipv6"]
    grants: list[GrantInfo]


class SpaceResult(BaseModel):
    grants: list[GrantInfo]


class SubscribeResult(BaseModel):
    """The grants at the moment events start: every change after it arrives as an event."""

    grants: list[GrantInfo]


class UsageResult(BaseModel):
    pass


class RequestResult(BaseModel):
    granted: list[GrantInfo] = Field(description="grants made for this request right away")
    outstanding: int = Field(
        ge=0, description="addresses still to come; a `granted` event follows once claimed"
    )


class ErrorInfo(BaseModel):
    code: ErrorCode
    message: str


class Response(BaseModel):
    """``result`` on success, ``error`` on failure; the other one is left out of the line.
    ``id`` is null only when the line was too broken to carry one."""

    format_version: int = FORMAT_VERSION
    id: int | None
    ok: bool
    result: dict[str, Any] | None = None
    error: ErrorInfo | None = None

    @model_serializer(mode="wrap")
    def _leave_out_the_unused_half(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            data.pop("error" if self.ok else "result", None)
        return data


class MaasEvent(BaseModel):
    """Pushed to a subscribed connection, never in answer to a request (no ``id``).

    granted: new space; extended: its lifetime grew; deprecated: not renewed, usable until
    it expires; revoked: stop using it now (withdrawn after a clash, expired or released);
    expiring: a deprecated grant ends soon.
    """

    format_version: int = FORMAT_VERSION
    event: EventKind
    maas: str = Field(description="the registered name the event is for")
    grant: GrantInfo
    reason: str = ""
