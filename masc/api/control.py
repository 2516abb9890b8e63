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
