"""How the configuration file maps onto the sans-IO cores: one function per core.

The daemon builds its engine, sessions and grant table from these at start-up, and a reload
builds them again from the new file and compares: a changed value is what tells
:mod:`masc.daemon.reload` which session must be reset and which setting applies live.
"""

from __future__ import annotations

from masc.config import MascConfig, PeerConfig, Relation
from masc.config.models import PolicyConfig
from masc.maas.grants import GrantConfig
from masc.protocol.allocation import AllocatorConfig, Strategy
from masc.protocol.constants import HOLDTIME
from masc.protocol.engine import ClashResolution, EngineConfig, Policy, ThirdParty
from masc.protocol.limits import LimitAction, UpdateLimits
from masc.protocol.open_checks import SessionConfig
from masc.protocol.wire import DomainId, NodeId


def session_config(cfg: MascConfig, peer: PeerConfig) -> SessionConfig:
    """The sans-IO session's view of one configured peer."""
    hold = cfg.hold_time_for(peer)
    return SessionConfig(
        local_domain=DomainId(cfg.local.domain_id),
        local_node=NodeId(int(cfg.local.node_id)),
        family=cfg.local.family,
        peer_role=peer.relation.role,
        peer_domain=DomainId(peer.domain_id),
        parent_domain_ids=tuple(DomainId(p) for p in cfg.parent_domain_ids),
        session_parent=(
            DomainId(cfg.sibling_parent(peer)) if peer.relation is Relation.SIBLING else None
        ),
        hold_time=hold,
        connect_retry=cfg.timers.connect_retry,
        passive=peer.passive,
        restart_backoff_initial=cfg.timers.restart_backoff_initial,
        restart_backoff_max=cfg.timers.restart_backoff_max,
        open_hold_time=float(max(hold, HOLDTIME)),
        limits=peer_limits(peer),
    )


def peer_limits(peer: PeerConfig) -> UpdateLimits:
    """§14: what one peer may make us hold and process."""
    return UpdateLimits(
        max_claims=peer.max_claims,
        max_update_rate=peer.max_update_rate,
        update_burst=peer.update_burst,
        action=LimitAction(peer.limit_action),
    )


def engine_config(cfg: MascConfig) -> EngineConfig:
    """The claim engine's view of the configuration."""
    return EngineConfig(
        local_domain=DomainId(cfg.local.domain_id),
        local_node=NodeId(int(cfg.local.node_id)),
        family=cfg.local.family,
        parent_domain_ids=tuple(DomainId(d) for d in cfg.parent_domain_ids),
        global_pool=tuple(cfg.local.global_pool),
        waiting_period=cfg.timers.waiting_period,
        initiate_claim_delay=cfg.timers.initiate_claim_delay,
        clock_skew_grace=cfg.timers.clock_skew_grace,
        claim_lifetime=cfg.allocation.claim_lifetime,
        initial_size=cfg.allocation.initial_size,
        allocator=AllocatorConfig(
            target_utilization=cfg.allocation.target_utilization,
            max_prefixes=cfg.allocation.max_prefixes,
            renew_interval=cfg.allocation.renew_interval,
            strategy=Strategy(cfg.allocation.strategy),
        ),
        policy=engine_policy(cfg.policy),
    )


def engine_policy(p: PolicyConfig) -> Policy:
    """The engine's policy from a ``[policy]`` section (the daemon's, and a ``masc sim``
    scenario's)."""
    return Policy(
        clash_resolution=ClashResolution(p.clash_resolution),
        max_child_lifetime=p.max_child_lifetime,
        min_child_lifetime=p.min_child_lifetime,
        min_child_prefix_size=p.min_child_prefix_size,
        max_child_prefix_size=p.max_child_prefix_size,
        child_soft_threshold=p.child_soft_threshold,
        child_hard_threshold=p.child_hard_threshold,
        timestamp_tolerance=p.timestamp_tolerance,
        max_claim_holdtime=p.max_claim_holdtime,
        min_claim_holdtime=p.min_claim_holdtime,
        restore_from=frozenset(r.role for r in p.restore_from),
        third_party=ThirdParty(p.third_party),
    )


def grant_config(cfg: MascConfig) -> GrantConfig:
    """How the locally-allocated set is split between MAASs."""
    return GrantConfig(
        target_utilization=cfg.allocation.target_utilization,
        horizon=cfg.maas.grant_horizon,
        expiry_warning=cfg.maas.expiry_warning,
        min_grant=cfg.maas.min_grant,
    )
