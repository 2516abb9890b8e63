"""Advice about a valid configuration: what is allowed but probably not meant.

A configuration error stops the daemon; a warning does not. ``masc check-config`` prints
each as ``FILE: KEY.PATH: warning: MESSAGE`` and still exits 0, and ``masc run`` logs them at
start-up. Today they are about where multicast space lies (``masc.config.space``):

* ``local.global_pool[i]``: a pool in space IANA reserves or assigns to others (RFC 5771 §3;
  RFC 4291 §2.7 for IPv6), such as RFC 2909 Appendix B's 228.0.0.0/6.
* ``peers[i].scope_boundary[j]``: an IPv4 admin-scope zone outside 239.0.0.0/8, where RFC
  2365 §6 puts every administratively scoped zone (RFC 2909 §4.5 [SCOPE]).
"""

from __future__ import annotations

from dataclasses import dataclass

from masc.config.models import MascConfig, format_key_path
from masc.config.space import ADMIN_SCOPED_V4, pool_warnings

__all__ = ["ConfigWarning", "config_warnings"]


@dataclass(frozen=True, slots=True)
class ConfigWarning:
    """One piece of advice, located by its dotted key path like a ``ConfigError``."""

    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: warning: {self.message}"


def config_warnings(config: MascConfig) -> list[ConfigWarning]:
    """Everything unwise about ``config``, in file order; empty for a clean file."""
    found: list[ConfigWarning] = []
    for i, net in enumerate(config.local.global_pool):
        key = format_key_path(("local", "global_pool", i))
        found.extend(ConfigWarning(key, text) for text in pool_warnings(net))
    for i, peer in enumerate(config.peers):
        for j, zone in enumerate(peer.scope_boundary):
            if zone.version == 4 and not zone.subnet_of(ADMIN_SCOPED_V4):  # type: ignore[arg-type]
                found.append(
                    ConfigWarning(
                        format_key_path(("peers", i, "scope_boundary", j)),
                        f"{zone} is not inside {ADMIN_SCOPED_V4}, the administratively scoped "
                        "block where every IPv4 scope zone lies (RFC 2365 §6, RFC 5771 §10)",
                    )
                )
    listen = config.metrics.listen
    if listen is not None and not listen[0].is_loopback:
        found.append(
            ConfigWarning(
                "metrics.listen",
                f"{listen[0]} is not a loopback address: the metrics endpoint has no "
                "authentication, so anyone who can reach it reads the daemon's state",
            )
        )
    return found
