"""Schemas of the control socket (newline-delimited JSON), shared by the daemon and mascctl.

``FORMAT_VERSION`` changes only on a breaking change; fields may be added within a version.
A request is one JSON object on one line, a response likewise:

    {"verb": "show peers"}
    {"verb": "claim", "args": {"size": 256}}
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
        "bad_json",
        "bad_request",
        "unknown_verb",
        "too_large",
        "not_found",
        "busy",
        "internal",
        "refused",  # the engine or the grant table refused the action (message says why)
        "bad_config",  # reload: the file does not load; nothing changed
        "restart_required",  # reload: keys that only a restart applies changed; nothing changed
        "read_only",  # an action on the read-only socket
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
        default=None, description="for sibling sessions: the common parent the session belongs to"
    )
    state: Literal["Idle", "Connect", "Active", "OpenSent", "OpenConfirm", "Established"]
    passive: bool
    hold_time: int | None = Field(default=None, description="negotiated; None unless Established")
    configured_hold_time: int
    remote_node_id: str | None = None
    internal: bool | None = None
    established_for: float | None = Field(default=None, description="seconds, if Established")
    flaps: int
    last_error: str
    messages_in: dict[str, int]
    messages_out: dict[str, int]
    limit_drops: int = Field(
        default=0, description="claims and UPDATEs not believed: past this peer's limits (§14)"
    )
    limit_resets: int = Field(default=0, description="sessions closed for exceeding a limit")
    security: list[str] = Field(
        default_factory=list, description="transport protections on: md5, ttl-security"
    )
    admin_down: bool = Field(
        default=False, description="stopped by the operator (mascctl peer down)"
    )


class PeersResult(BaseModel):
    peers: list[PeerInfo]


class PeerDetail(PeerInfo):
    """``show peer``: a session's configuration and timers as well as its state."""

    session_key: str
    local_address: str | None
    connect_retry: float
    scope_boundary: list[str]
    restart_at: float | None = Field(
        default=None, description="seconds until the automatic restart"
    )
    remote_hold_time: int | None = Field(
        default=None, description="the peer's proposal in its OPEN"
    )


class PeerDetailResult(BaseModel):
    peers: list[PeerDetail]


class GribExporterInfo(BaseModel):
    """One ``[grib]`` exporter (docs/grib.md)."""

    name: str
    in_sync: bool
    installed: int
    syncs: int
    failures: int
    last_sync: float | None = Field(default=None, description="Unix seconds")
    last_error: str = ""


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
    non_leaf: bool = False
    clash_resolution: Literal["automatic", "manual"] = "automatic"
    prefixes_managed: int = 0
    prefixes_local: int = 0
    addresses_managed: int = 0
    addresses_local: int = 0
    addresses_granted: int = 0
    addresses_in_use: int = 0
    claims_pending: int = 0
    claims_scheduled: int = 0
    claims_cached: int = 0
    clashes_pending: int = 0
    maas_registered: int = 0
    config_path: str | None = None
    reloads: int = 0
    last_reload: float | None = Field(default=None, description="Unix seconds of the last reload")
    grib_prefixes: int = 0
    grib_exporters: list[GribExporterInfo] = []


class GrantHolding(BaseModel):
    """A part of a prefix granted to one MAAS (RFC 2908 §3 Layer 2)."""

    maas: str
    prefix: str
    expires: int
    active: bool


class HistoryItem(BaseModel):
    """One entry of a prefix's claim history: claim_sent, claim_cancelled (detail names the
    contesting domain), allocated (renewals too), deprecated, gone, clash, withdrawn,
    restored."""

    at: float
    event: str
    prefix: str
    detail: str


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
    parent_domain_id: int | None = Field(
        default=None, description="where it was claimed from (0: pool)"
    )
    usable: list[str] = Field(description="the prefix minus ranges withdrawn after a clash")
    in_grib: bool
    state: Literal["active", "deprecated"] = Field(
        default="active",
        description="deprecated: no longer renewed, no new addresses from it (RFC 2909 §17.1.5)",
    )
    renewed_at: float | None = Field(default=None, description="last renewal, Unix seconds")
    maas: list[GrantHolding] = Field(default_factory=list, description="MAAS grants inside it")
    history: list[HistoryItem] = Field(default_factory=list, description="newest first")


class PrefixesResult(BaseModel):
    non_leaf: bool
    prefixes: list[PrefixInfo]


ClaimTypeName = Literal[
    "NEW_CLAIM", "CLAIM_TO_EXPAND", "PREFIX_IN_USE", "PREFIX_MANAGED", "WITHDRAW", "CLAIM_DENIED"
]


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
    """§12.4: a sibling's PREFIX_IN_USE that beat one of ours."""

    clash_id: int
    local: str
    winner: str
    winner_domain_id: int
    detected_at: float
    state: Literal["pending", "withdrawn", "accepted"]


class CachedClaim(BaseModel):
    """An attribute of another domain held in the claim cache (§11.1)."""

    type: str
    prefix: str
    origin_domain: int
    origin_node: str
    origin_role: str
    timestamp: int
    lifetime: int
    holdtime: int
    expires: int = Field(description="when the cache lets it go, Unix seconds")


class ClaimsResult(BaseModel):
    claims: list[ClaimInfo]
    cached: int = Field(description="attributes in the claim cache (§11.1)")
    foreign: list[CachedClaim] = Field(default_factory=list)
    foreign_total: int = Field(default=0, description="foreign claims matching the filters")
    clashes: list[ClashInfo]


class ClaimsArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: ClaimTypeName | None = None
    domain_id: int | None = Field(default=None, ge=0)
    prefix: str | None = None
    limit: int = Field(default=100, ge=0, le=100_000)


class ClashesResult(BaseModel):
    clash_resolution: Literal["automatic", "manual"]
    clashes: list[ClashInfo]


class MaasInfo(BaseModel):
    name: str
    scopes: list[str]
    connected: bool
    registered_at: float | None
    in_use: int = Field(description="addresses the MAAS last reported in use")
    grants: list[GrantHolding]


class MaasResult(BaseModel):
    maas: list[MaasInfo]


# --- actions -----------------------------------------------------------------------------


class NoArgs(BaseModel):
    """Verbs that take no arguments still refuse unknown ones (typos are caught)."""

    model_config = ConfigDict(extra="forbid")


class PrefixesArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    history: int = Field(default=20, ge=0, le=10_000, description="history entries per prefix")


class PeerArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: str
    parent_domain_id: int | None = Field(default=None, ge=0)


class ClaimArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    size: int = Field(ge=1, description="addresses; rounded up to a power of two")
    lifetime: float | None = Field(default=None, ge=1, description="seconds")
    kind: Literal["managed", "local"] = "managed"


class PrefixArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prefix: str


class ClashArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: int = Field(ge=1)
    action: Literal["accept", "withdraw"]


class PeerActionArgs(PeerArgs):
    action: Literal["up", "down", "reset"]
    reason: str = Field(default="", max_length=200)


class MaasForgetArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str


class ReloadArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dry_run: bool = False


class ActionResult(BaseModel):
    message: str
    sessions: list[str] = Field(default_factory=list)
    prefix: str | None = None
    claim: ClaimInfo | None = None


PeerAction = Literal["no-op", "update", "reset", "start", "stop"]


class PeerPlan(BaseModel):
    """What a reload does to one session."""

    address: str
    port: int
    parent_domain_id: int | None
    action: PeerAction
    changed: list[str] = Field(description="the peer's changed keys")
    reason: str


class SettingChange(BaseModel):
    key: str = Field(description="dotted, e.g. timers.waiting_period")
    old: str
    new: str
    effect: Literal["live", "restart"]


class ReloadResult(BaseModel):
    applied: bool
    config_path: str
    peers: list[PeerPlan]
    settings: list[SettingChange]
    restart_required: list[str]
    warnings: list[str]
