"""Drive a PeerSession to each §10 state with a scripted peer, and read its effects."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from masc.protocol.constants import AddressFamily, Role
from masc.protocol.open_checks import SessionConfig
from masc.protocol.session import (
    Close,
    Dial,
    Effect,
    NotificationSent,
    PeerSession,
    Send,
    State,
)
from masc.protocol.wire import DomainId, Keepalive, NodeId, Notification, Open, decode, encode

LOCAL_NODE = NodeId(0x7F000002)  # 127.0.0.2
PEER_NODE = NodeId(0x7F000003)  # 127.0.0.3
HOLD = 90


def config(**overrides: Any) -> SessionConfig:
    """A child domain 65001 talking to its parent 65000."""
    base = SessionConfig(
        local_domain=DomainId(65001),
        local_node=LOCAL_NODE,
        family=AddressFamily.IPV4,
        peer_role=Role.PARENT,
        peer_domain=DomainId(65000),
        parent_domain_ids=(DomainId(65000),),
        hold_time=HOLD,
        connect_retry=30.0,
    )
    return replace(base, **overrides)


def peer_open(cfg: SessionConfig, **overrides: Any) -> Open:
    """The OPEN a correctly configured peer of ``cfg`` sends."""
    fields: dict[str, Any] = dict(
        family=cfg.family,
        role=cfg.peer_role,
        hold_time=cfg.hold_time,
        domain_id=cfg.peer_domain,
        node_id=PEER_NODE,
        parent_domain_id=cfg.session_parent
        if cfg.session_parent is not None
        else cfg.parent_domain_ids[0],
    )
    fields.update(overrides)
    return Open(**fields)


def sent(effects: list[Effect], connection: int | None = None) -> list[Any]:
    """Messages the effects send (decoded), optionally on one connection."""
    return [
        decode(e.data)
        for e in effects
        if isinstance(e, Send) and (connection is None or e.connection == connection)
    ]


def notifications(effects: list[Effect]) -> list[Notification]:
    return [e.notification for e in effects if isinstance(e, NotificationSent)]


def closed(effects: list[Effect]) -> list[int]:
    return [e.connection for e in effects if isinstance(e, Close)]


def dials(effects: list[Effect]) -> int:
    return sum(isinstance(e, Dial) for e in effects)


def bring_to(state: State, cfg: SessionConfig | None = None) -> PeerSession:
    """A session in ``state`` at time 0, its connection (if any) numbered 1, outbound."""
    cfg = cfg or config()
    s = PeerSession(cfg)
    if state is State.IDLE:
        return s
    if state is State.ACTIVE:
        s.start(now=0)
        s.connect_failed(now=0)
        assert s.state is State.ACTIVE
        return s
    s.start(now=0)
    if state is State.CONNECT:
        return s
    s.connection_made(1, outbound=True, now=0)
    if state is State.OPEN_SENT:
        return s
    s.data_received(1, encode(peer_open(cfg)), now=0)
    if state is State.OPEN_CONFIRM:
        return s
    s.data_received(1, encode(Keepalive()), now=0)
    assert s.state is State.ESTABLISHED
    return s
