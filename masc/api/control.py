"""Schemas of the control socket (newline-delimited JSON), shared by the daemon and mascctl.

``FORMAT_VERSION`` changes only on a breaking change; fields may be added within a version.
A request is one JSON object on one line, a response likewise:

    {"verb": "show peers"}
    {"format_version": 1, "ok": true, "result": {"peers": [...]}}
    {"format_version": 1, "ok": false, "error": {"code": "unknown_verb", "message": "..."}}
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

FORMAT_VERSION: Final = 1
MAX_REQUEST_BYTES: Final = 65536


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verb: str = Field(min_length=1, max_length=100)
    args: dict[str, Any] = Field(default_factory=dict)


class ErrorInfo(BaseModel):
    """``code`` is stable and machine-readable; ``message`` is for people."""

    code: Literal[
        "bad_json", "bad_request", "unknown_verb", "too_large", "not_found", "busy", "internal"
    ]
    message: str


class Response(BaseModel):
    format_version: int = FORMAT_VERSION
    ok: bool
    result: dict[str, Any] | None = None
    error: ErrorInfo | None = None


class PeerInfo(BaseModel):
    address: str
    port: int
    relation: Literal["parent", "child", "sibling", "internal"]
    domain_id: int
    parent_domain_id: int | None = Field(
        None, description="for sibling sessions: the common parent the session belongs to"
    )
    state: Literal["Idle", "Connect", "Active", "OpenSent", "OpenConfirm", "Established"]
    passive: bool
    hold_time: int | None = Field(None, description="negotiated; None unless Established")
    configured_hold_time: int
    remote_node_id: str | None = None
    internal: bool | None = None
    established_for: float | None = Field(None, description="seconds, if Established")
    flaps: int
    last_error: str
    messages_in: dict[str, int]
    messages_out: dict[str, int]


class PeersResult(BaseModel):
    peers: list[PeerInfo]


class SummaryResult(BaseModel):
    version: str
    domain_id: int
    node_id: str
    address_family: Literal["ipv4", "ipv6"]
    top_level_domain: bool
    parent_domain_ids: list[int]
    peers_configured: int
    peers_established: int
    uptime: float


class PrefixInfo(BaseModel):
    """A prefix this domain owns or manages (RFC 2909 §4.1), or one its children hold."""

    prefix: str = Field(description="CIDR")
    kind: Literal["managed", "local", "child"] = Field(
        description="managed: claimed by the domain (§4.1); local: claimed by a non-leaf "
        "domain for its own MAASs (§12.2); child: a child domain's PREFIX_IN_USE"
    )
    expires: int = Field(description="end of lifetime, Unix seconds (§4.2)")
    claimed_at: int = Field(description="the claim's timestamp, Unix seconds")
    origin_node: str
    domain_id: int = Field(description="the domain holding it")
    parent_domain_id: int | None = Field(None, description="where it was claimed from (0: pool)")
    usable: list[str] = Field(description="the prefix minus ranges withdrawn after a clash")
    in_grib: bool


class PrefixesResult(BaseModel):
    non_leaf: bool
    prefixes: list[PrefixInfo]


class ClaimInfo(BaseModel):
    prefix: str | None
    type: str
    kind: Literal["managed", "local"]
    purpose: str
    state: Literal["scheduled", "pending"]
    timestamp: int | None = None
    lifetime: int
    time_left: float = Field(description="seconds until it is sent or its Claim-Timer expires")


class ClashInfo(BaseModel):
    clash_id: int
    local: str
    winner: str
    winner_domain_id: int
    detected_at: float
    state: Literal["pending", "withdrawn", "accepted"]


class ClaimsResult(BaseModel):
    claims: list[ClaimInfo]
    cached: int = Field(description="attributes in the claim cache (§11.1)")
    clashes: list[ClashInfo]
