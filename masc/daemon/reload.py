"""What a reload must do: the running configuration against the new one, per session and
per setting, so that a reload disturbs nothing it does not have to.

Operators of BGP daemons complain most about reloads that reset unrelated sessions.  Here a
session is reset only when a value its OPEN carries changed (RFC 2909 §7.2: roles, domains,
the proposed Hold Time, which both sides negotiate once per session), or when what it may
carry changed (``scope_boundary``, §4.5: a new session re-sends the state, §11.8).  Timers the
FSM reads afresh (ConnectRetry, back-off) and ``passive`` apply live ("update").  A session
whose identity (address, and common parent for siblings, §4.4) appears only in the new file
starts; one only in the old file stops with a Cease (§8.7).

Settings: the claim engine's timers, policy and allocator, the pool, the grant split and the
history limit apply live.  The node's identity, listeners, sockets, database and metrics
endpoint only change with a restart: a reload that changes one of them is refused as a whole
(docs/conformance.md), so what runs is always exactly one file's configuration.

Pure functions: :func:`plan_reload` takes two validated configurations and returns the plan;
the daemon applies it (``Daemon.reload``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pydantic import BaseModel

from masc.api.control import PeerAction, PeerPlan, ReloadResult, SettingChange
from masc.config import MascConfig, PeerConfig
from masc.daemon.settings import session_config

PeerKey = tuple[str, int | None]
# The parent set as a whole: local.parent_domain_ids plus the domains of the parent peers.
PARENTS_KEY: Final = "parent_domain_ids"

# Settings a reload cannot apply: dotted key prefixes (a section, or one key).
_RESTART_ONLY: Final = (
    "local.address_family",
    "local.domain_id",
    "local.node_id",
    "local.listen",
    "local.port",
    "control.",
    "maas.socket",
    "maas.mode",
    "maas.group",
    "storage.path",
    "metrics.",
    "grib.",
)
# Session settings the FSM reads afresh at its next timer or dial: no reset needed.
_LIVE_SESSION_FIELDS: Final = frozenset(
    {"connect_retry", "passive", "restart_backoff_initial", "restart_backoff_max", "limits"}
)
# Peer keys outside the SessionConfig that still need a new session.
_RESET_PEER_KEYS: Final = {
    "port": "the peer's port changed: a new connection is needed",
    "scope_boundary": "scope_boundary changes what the session may carry (RFC 2909 §4.5); a "
    "new session re-sends the state in §11.8 order",
    "password": "the TCP MD5 key signs every segment (RFC 2385): a new connection is needed",
    "password_file": "the TCP MD5 key signs every segment (RFC 2385): a new connection is needed",
    "ttl_security": "GTSM is set before the handshake (RFC 5082): a new connection is needed",
}
_SESSION_FIELD_REASONS: Final = {
    "hold_time": "the Hold Time is proposed in the OPEN and negotiated once per session "
    "(RFC 2909 §7.2)",
    "open_hold_time": "the Hold Time is proposed in the OPEN and negotiated once per session "
    "(RFC 2909 §7.2)",
    "peer_role": "the OPEN carries the roles (RFC 2909 §7.2)",
    "peer_domain": "the OPEN carries the peer's domain (RFC 2909 §7.2)",
    "session_parent": "the OPEN carries the common parent of siblings (RFC 2909 §4.4, §7.2)",
}
# Which [timers] key feeds which SessionConfig field (for the "changed" list).
_TIMER_OF_FIELD: Final = {
    "hold_time": "timers.hold_time",
    "open_hold_time": "timers.hold_time",
    "connect_retry": "timers.connect_retry",
    "restart_backoff_initial": "timers.restart_backoff_initial",
    "restart_backoff_max": "timers.restart_backoff_max",
}


@dataclass(frozen=True, slots=True)
class PeerStep:
    """What happens to one session: ``old``/``new`` are its entries in each file."""

    key: PeerKey
    action: PeerAction
    old: PeerConfig | None
    new: PeerConfig | None
    changed: tuple[str, ...]
    reason: str

    def as_plan(self) -> PeerPlan:
        peer = self.new or self.old
        assert peer is not None
        return PeerPlan(
            address=self.key[0],
            port=peer.port,
            parent_domain_id=self.key[1],
            action=self.action,
            changed=list(self.changed),
            reason=self.reason,
        )


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    peers: tuple[PeerStep, ...]
    settings: tuple[SettingChange, ...]
    restart_required: tuple[str, ...]

    def result(self, *, applied: bool, config_path: Path, warnings: Iterable[str]) -> ReloadResult:
        return ReloadResult(
            applied=applied,
            config_path=str(config_path),
            peers=[step.as_plan() for step in self.peers],
            settings=list(self.settings),
            restart_required=list(self.restart_required),
            warnings=list(warnings),
        )


def plan_reload(old: MascConfig, new: MascConfig) -> ReloadPlan:
    """The plan that turns a daemon running ``old`` into one running ``new``."""
    settings = tuple(_setting_changes(old, new))
    restart = tuple(s.key for s in settings if s.effect == "restart")
    if old.parent_domain_ids != new.parent_domain_ids:
        # The parents come from local.parent_domain_ids *and* the parent peers: every OPEN
        # and every claim depends on them (§4, §7.2).
        settings += (
            SettingChange(
                key=PARENTS_KEY,
                old=_show("", old.parent_domain_ids),
                new=_show("", new.parent_domain_ids),
                effect="restart",
            ),
        )
        restart += (PARENTS_KEY,)
    if restart:
        # Sessions are built from the identity that would change: no per-peer plan is
        # meaningful, and none is applied.
        return ReloadPlan((), settings, restart)
    before = {old.peer_key(p): p for p in old.peers}
    after = {new.peer_key(p): p for p in new.peers}
    steps: list[PeerStep] = []
    for key, peer in after.items():
        if key not in before:
            steps.append(PeerStep(key, "start", None, peer, (), "added to the configuration"))
        else:
            steps.append(_peer_step(key, old, before[key], new, peer))
    for key, peer in before.items():
        if key not in after:
            steps.append(
                PeerStep(
                    key, "stop", peer, None, (), "removed from the configuration: Cease (§8.7)"
                )
            )
    return ReloadPlan(tuple(steps), settings, ())


def _peer_step(
    key: PeerKey, old: MascConfig, was: PeerConfig, new: MascConfig, now: PeerConfig
) -> PeerStep:
    changed = {name for name in type(now).model_fields if getattr(was, name) != getattr(now, name)}
    if was.md5_key != now.md5_key and not changed & {"password", "password_file"}:
        changed.add("password_file")  # same file, new key in it
    before, after = session_config(old, was), session_config(new, now)
    session_fields = [
        f.name
        for f in dataclasses.fields(after)
        if getattr(before, f.name) != getattr(after, f.name)
    ]
    for name in session_fields:
        timer = _TIMER_OF_FIELD.get(name)
        own = "hold_time" if name in ("hold_time", "open_hold_time") else name
        if timer is not None and own not in changed:
            changed.add(timer)
    reasons = [_RESET_PEER_KEYS[k] for k in sorted(changed) if k in _RESET_PEER_KEYS]
    reasons += [
        _SESSION_FIELD_REASONS.get(name, f"{name} is part of the session's identity")
        for name in session_fields
        if name not in _LIVE_SESSION_FIELDS
    ]
    names = tuple(sorted(changed))
    if reasons:
        return PeerStep(key, "reset", was, now, names, "; ".join(dict.fromkeys(reasons)))
    if names:
        return PeerStep(
            key, "update", was, now, names, "applied without a reset: read at the next timer"
        )
    return PeerStep(key, "no-op", was, now, (), "unchanged")


def _setting_changes(old: MascConfig, new: MascConfig) -> Iterable[SettingChange]:
    for section in type(old).model_fields:
        if section == "peers":
            continue
        was, now = getattr(old, section), getattr(new, section)
        if not isinstance(was, BaseModel):
            continue
        for name in type(was).model_fields:
            before, after = getattr(was, name), getattr(now, name)
            if before == after:
                continue
            key = f"{section}.{name}"
            restart = any(
                key == rule or (rule.endswith(".") and key.startswith(rule))
                for rule in _RESTART_ONLY
            )
            yield SettingChange(
                key=key,
                old=_show(name, before),
                new=_show(name, after),
                effect="restart" if restart else "live",
            )


def _show(name: str, value: object) -> str:
    if value is None:
        return "(unset)"
    if name.endswith("mode") and isinstance(value, int):
        return f"{value:04o}"
    if isinstance(value, tuple):
        return ", ".join(_show(name, v) for v in value) or "(none)"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "value") and not isinstance(value, int | float | str):
        return str(value.value)
    return str(value)
