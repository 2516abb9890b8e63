"""OPEN checks that depend on who the peer is configured to be (RFC 2909 §8.2, §4.4, §10).

The codec has already checked what any OPEN must satisfy (version, address family, hold
time 1 or 2).  What remains compares the OPEN with the local configuration of the session:
the peer's domain and node, its proposed role, and the parent domains that tie internal
peers and siblings together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from masc.protocol.constants import HOLDTIME, MIN_NONZERO_HOLD_TIME, TLD_ID, AddressFamily, Role
from masc.protocol.errors import CoreMisuse, OpenMessageError, OpenSubcode
from masc.protocol.limits import UpdateLimits
from masc.protocol.wire.messages import DomainId, NodeId, Open


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Everything one peering session needs to know about both ends, fixed at start.

    ``peer_role`` is what the peer is to us (the config's ``relation``); our role in the
    session is its counterpart.  ``parent_domain_ids`` are our domain's parents, ``(0,)``
    for a top-level domain.  ``session_parent`` is, for a sibling session, the common parent
    the session belongs to (§4.4); None otherwise.
    """

    local_domain: DomainId
    local_node: NodeId
    family: AddressFamily
    peer_role: Role
    peer_domain: DomainId
    parent_domain_ids: tuple[DomainId, ...]
    session_parent: DomainId | None = None
    hold_time: int = HOLDTIME
    connect_retry: float = 30.0
    # Each ConnectRetry period (and each automatic-restart delay after an error) is drawn
    # from [1 - jitter, 1] times its value, so two ends that lost their connections at the
    # same instant do not keep dialling each other at the same instant (docs/conformance.md;
    # RFC 4271 §10 does the same).
    connect_retry_jitter: float = 0.25
    passive: bool = False
    restart_backoff_initial: float = 60.0
    restart_backoff_max: float = 86_400.0
    # §10 Active: "sets its Hold Timer to a large value ... [HOLDTIME] seconds is suggested."
    open_hold_time: float = float(HOLDTIME)
    # §14: what this peer may make us hold and process (masc.protocol.limits).
    limits: UpdateLimits = field(default_factory=UpdateLimits)

    def __post_init__(self) -> None:
        # Values that would make the runner spin or break the wire; config validation
        # rejects them first, this guards every other caller of the core.
        if not (self.hold_time == 0 or MIN_NONZERO_HOLD_TIME <= self.hold_time <= 0xFFFF):
            raise CoreMisuse(f"hold_time {self.hold_time}: must be 0 or 3..65535 (§7.2)")
        for name in ("connect_retry", "restart_backoff_initial", "open_hold_time"):
            if not getattr(self, name) > 0:
                raise CoreMisuse(f"{name} must be positive")
        if not 0 <= self.connect_retry_jitter < 1:
            raise CoreMisuse("connect_retry_jitter must be in [0, 1)")
        if self.restart_backoff_max < self.restart_backoff_initial:
            raise CoreMisuse("restart_backoff_max is below restart_backoff_initial")

    @property
    def local_role(self) -> Role:
        """Our role in this session: what we send in the OPEN's Rol field (§7.2)."""
        return self.peer_role.counterpart

    @property
    def is_tld(self) -> bool:
        return tuple(self.parent_domain_ids) == (TLD_ID,)

    @property
    def advertised_parent(self) -> DomainId:
        """The Parent's Domain Identifier we put in our OPEN (§7.2).

        A sibling session advertises the parent it belongs to; elsewhere the field is only
        read by internal peers, who compare TLD-ness, so our first parent (0 for a TLD).
        """
        if self.session_parent is not None:
            return self.session_parent
        return self.parent_domain_ids[0]

    def parent_ids_data(self) -> bytes:
        """All our Parent Domain IDs, the Data of Invalid Parent Config / No Common Parent."""
        length = self.family.id_length
        return b"".join(p.to_bytes(length, "big") for p in self.parent_domain_ids)


def check_open(message: Open, body: bytes, config: SessionConfig) -> None:
    """Raise the §8.2 OpenMessageError for the first problem found; ``body`` is the OPEN
    without its header (the default Data)."""
    if message.family is not config.family:
        # We recognise both families on the wire, but a session runs one: an OPEN for the
        # other is "Unrecognized Address Family" to this speaker (docs/conformance.md).
        raise OpenMessageError(
            OpenSubcode.UNRECOGNIZED_ADDRESS_FAMILY,
            body,
            reason=f"{message.family.name} OPEN on a {config.family.name} session",
        )
    if message.domain_id != config.peer_domain:
        raise OpenMessageError(
            OpenSubcode.BAD_PEER_DOMAIN_ID,
            body,
            reason=f"domain {message.domain_id}, configured {config.peer_domain}",
        )
    if message.node_id in (0, config.local_node):
        raise OpenMessageError(
            OpenSubcode.BAD_PEER_NODE_ID, body, reason=f"node id {message.node_id}"
        )
    if message.role is not config.peer_role:
        # §8.2: "The Data field is 1-octet long, and contains the local system's configured
        # Role."
        raise OpenMessageError(
            OpenSubcode.INCONSISTENT_ROLE,
            bytes([config.local_role]),
            reason=f"peer proposes {message.role.name}, configured {config.peer_role.name}",
        )
    if message.role is Role.INTERNAL and config.is_tld != (message.parent_domain_id == TLD_ID):
        # §8.2: one internal peer thinks its domain is a TLD and the other does not.
        raise OpenMessageError(
            OpenSubcode.INVALID_PARENT_CONFIGURATION,
            config.parent_ids_data(),
            reason=f"peer parent {message.parent_domain_id}, ours {config.parent_domain_ids}",
        )
    if message.role is Role.SIBLING:
        _check_sibling_parent(message, config)


def _check_sibling_parent(message: Open, config: SessionConfig) -> None:
    """§8.2 No Common Parent / Bad Parent Domain ID, and §4.4 one session per parent."""
    if message.parent_domain_id not in config.parent_domain_ids:
        raise OpenMessageError(
            OpenSubcode.NO_COMMON_PARENT,
            config.parent_ids_data(),
            reason=f"peer parent {message.parent_domain_id}, ours {config.parent_domain_ids}",
        )
    if config.session_parent is not None and message.parent_domain_id != config.session_parent:
        raise OpenMessageError(
            OpenSubcode.BAD_PARENT_DOMAIN_ID,
            message.parent_domain_id.to_bytes(config.family.id_length, "big"),
            reason=f"session is for parent {config.session_parent}",
        )


def select_session(message: Open, body: bytes, candidates: Sequence[SessionConfig]) -> int:
    """Pick which of several sessions to one address an incoming OPEN belongs to (§4.4).

    Only siblings with several common parents share an address; the OPEN's Parent's Domain
    Identifier says which parent the connection is for.  Raises the NOTIFICATION to send
    when none fits.
    """
    if len(candidates) == 1:
        return 0
    for index, config in enumerate(candidates):
        if config.peer_role is not Role.SIBLING and message.role is config.peer_role:
            return index  # the one non-sibling session at this address
    for index, config in enumerate(candidates):
        if config.session_parent == message.parent_domain_id:
            return index
    config = candidates[0]
    if message.parent_domain_id in config.parent_domain_ids:
        raise OpenMessageError(
            OpenSubcode.BAD_PARENT_DOMAIN_ID,
            message.parent_domain_id.to_bytes(config.family.id_length, "big"),
            reason="no session configured for that parent",
        )
    raise OpenMessageError(
        OpenSubcode.NO_COMMON_PARENT,
        config.parent_ids_data(),
        reason=f"peer parent {message.parent_domain_id}",
    )
