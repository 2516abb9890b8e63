"""How ``mascctl`` shows the daemon's answers to people: aligned tables and key: value lines.

Every renderer takes the ``result`` object of one verb (masc.api.control), checks it against
its model first (a ValidationError means the daemon and this mascctl disagree: mascctl
suggests ``--json``), and prints.  ``--json`` bypasses this module entirely.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable, Sequence
from typing import Any, Final

from masc.api.control import (
    ActionResult,
    ClaimInfo,
    ClaimsResult,
    ClashesResult,
    ClashInfo,
    MaasResult,
    PeerDetail,
    PeerDetailResult,
    PeerInfo,
    PeersResult,
    PrefixesResult,
    ReloadResult,
    SummaryResult,
)

Row = tuple[str, ...]


def render_summary(result: dict[str, Any], ns: argparse.Namespace) -> None:
    s = SummaryResult.model_validate(result)
    role = (
        "top-level domain"
        if s.top_level_domain
        else f"parents {', '.join(map(str, s.parent_domain_ids))}"
    )
    leafness = "non-leaf" if s.non_leaf else "leaf"
    print(
        f"masc {s.version}  domain {s.domain_id}  node {s.node_id}  "
        f"({s.address_family}, {role}, {leafness})"
    )
    last = "never" if s.last_reload is None else _when(s.last_reload) + " UTC"
    _pairs(
        [
            ("peers", f"{s.peers_established}/{s.peers_configured} Established"),
            ("uptime", _duration(s.uptime)),
            ("managed", f"{s.prefixes_managed} prefix(es), {s.addresses_managed} addresses"),
            ("local", f"{s.prefixes_local} prefix(es), {s.addresses_local} addresses"),
            (
                "MAASs",
                f"{s.maas_registered} registered, {s.addresses_granted} addresses granted, "
                f"{s.addresses_in_use} in use",
            ),
            (
                "claims",
                f"{s.claims_pending} pending, {s.claims_scheduled} scheduled, "
                f"{s.claims_cached} in the claim cache",
            ),
            ("clashes", f"{s.clashes_pending} pending (resolution {s.clash_resolution})"),
            ("config", f"{s.config_path or '-'}  ({s.reloads} reload(s), last {last})"),
            ("G-RIB", f"{s.grib_prefixes} prefix(es)"),
        ]
    )
    for e in s.grib_exporters:
        synced = "never" if e.last_sync is None else _when(e.last_sync) + " UTC"
        state = "in sync" if e.in_sync else f"NOT in sync: {e.last_error or 'not yet synced'}"
        print(f"  exporter {e.name}: {state}; {e.installed} installed, last sync {synced}")


_PEER_HEADER: Final = (
    "ADDRESS",
    "RELATION",
    "DOMAIN",
    "STATE",
    "HOLD",
    "UP",
    "FLAPS",
    "LAST ERROR",
)


def _peer_row(p: PeerInfo) -> Row:
    relation = p.relation + (f"/{p.parent_domain_id}" if p.parent_domain_id is not None else "")
    return (
        f"{p.address}:{p.port}",
        relation,
        str(p.domain_id),
        p.state + (" (admin down)" if p.admin_down else ""),
        "-" if p.hold_time is None else str(p.hold_time),
        "-" if p.established_for is None else _duration(p.established_for),
        str(p.flaps),
        p.last_error or "-",
    )


def render_peers(result: dict[str, Any], ns: argparse.Namespace) -> None:
    peers = PeersResult.model_validate(result).peers
    _table([_PEER_HEADER, *map(_peer_row, peers)], empty="no peers configured")


def render_peer(result: dict[str, Any], ns: argparse.Namespace) -> None:
    peers = PeerDetailResult.model_validate(result).peers
    if not ns.detail:
        _table([_PEER_HEADER, *map(_peer_row, peers)], empty="no such session")
        return
    for i, p in enumerate(peers):
        if i:
            print()
        _print_peer_detail(p)


def _print_peer_detail(p: PeerDetail) -> None:
    under = f" under parent {p.parent_domain_id}" if p.parent_domain_id is not None else ""
    print(f"peer {p.address}:{p.port} ({p.relation}{under})")
    hold = "-" if p.hold_time is None else f"{p.hold_time}s"
    remote_hold = "-" if p.remote_hold_time is None else f"{p.remote_hold_time}s"
    _pairs(
        [
            ("session key", p.session_key),
            ("state", p.state + (" (admin down)" if p.admin_down else "")),
            ("domain", str(p.domain_id)),
            ("remote node", p.remote_node_id or "-"),
            ("internal", _yes_no(p.internal)),
            ("local address", p.local_address or "-"),
            ("passive", _yes_no(p.passive)),
            (
                "hold time",
                f"{hold} negotiated, {p.configured_hold_time}s configured, "
                f"{remote_hold} proposed by the peer",
            ),
            ("connect retry", _duration(p.connect_retry)),
            ("up for", "-" if p.established_for is None else _duration(p.established_for)),
            ("restart in", "-" if p.restart_at is None else _duration(p.restart_at)),
            ("flaps", str(p.flaps)),
            ("security", ", ".join(p.security) or "-"),
            ("limited", f"{p.limit_drops} dropped, {p.limit_resets} resets"),
            ("last error", p.last_error or "-"),
            ("scope boundary", ", ".join(p.scope_boundary) or "-"),
        ],
        indent=2,
    )
    names = list(dict.fromkeys([*p.messages_in, *p.messages_out]))
    rows: list[Row] = [("MESSAGE", "IN", "OUT")]
    rows += [(n, str(p.messages_in.get(n, 0)), str(p.messages_out.get(n, 0))) for n in names]
    _table(rows, indent=2, empty="no messages yet")


def render_prefixes(result: dict[str, Any], ns: argparse.Namespace) -> None:
    r = PrefixesResult.model_validate(result)
    print(f"domain is {'non-leaf' if r.non_leaf else 'leaf'} (RFC 2909 §12.2)")
    rows: list[Row] = [
        ("PREFIX", "KIND", "STATE", "DOMAIN", "FROM", "EXPIRES (UTC)", "G-RIB", "USABLE")
    ]
    for p in r.prefixes:
        rows.append(
            (
                p.prefix,
                p.kind,
                p.state,
                str(p.domain_id),
                "-" if p.parent_domain_id is None else str(p.parent_domain_id),
                _when(p.expires, seconds=False),
                "yes" if p.in_grib else "no",
                ",".join(p.usable) or "-",
            )
        )
    _table(rows, empty="no prefixes held")
    for p in r.prefixes:
        if not p.maas and not p.history:
            continue
        renewed = "" if p.renewed_at is None else f", renewed {_when(p.renewed_at)}"
        print(f"\n{p.prefix} ({p.kind}, claimed {_when(p.claimed_at)}{renewed})")
        if p.maas:
            print("  granted to MAASs:")
            grants: list[Row] = [("MAAS", "PREFIX", "EXPIRES (UTC)", "ACTIVE")]
            grants += [
                (g.maas, g.prefix, _when(g.expires, seconds=False), _yes_no(g.active))
                for g in p.maas
            ]
            _table(grants, indent=4)
        if p.history:
            print("  history (newest first):")
            events: list[Row] = [("AT (UTC)", "EVENT", "PREFIX", "DETAIL")]
            events += [(_when(h.at), h.event, h.prefix, h.detail or "-") for h in p.history]
            _table(events, indent=4)


def _claim_rows(claims: Iterable[ClaimInfo]) -> list[Row]:
    rows: list[Row] = [("PREFIX", "TYPE", "KIND", "PURPOSE", "STATE", "LIFETIME", "TIME LEFT")]
    for c in claims:
        rows.append(
            (
                c.prefix or "-",
                c.type,
                c.kind,
                c.purpose,
                c.state,
                _duration(c.lifetime),
                _duration(c.time_left),
            )
        )
    return rows


def _clash_rows(clashes: Iterable[ClashInfo]) -> list[Row]:
    rows: list[Row] = [("ID", "OURS", "WINNER", "WINNER DOMAIN", "DETECTED (UTC)", "STATE")]
    for c in clashes:
        rows.append(
            (
                str(c.clash_id),
                c.local,
                c.winner,
                str(c.winner_domain_id),
                _when(c.detected_at),
                c.state,
            )
        )
    return rows


def render_claims(result: dict[str, Any], ns: argparse.Namespace) -> None:
    r = ClaimsResult.model_validate(result)
    print("our claims:")
    _table(_claim_rows(r.claims), indent=2, empty="none in flight")
    print(f"other domains' claims ({len(r.foreign)} of {r.foreign_total} shown):")
    rows: list[Row] = [
        ("TYPE", "PREFIX", "DOMAIN", "NODE", "ROLE", "LIFETIME", "CACHED UNTIL (UTC)")
    ]
    for f in r.foreign:
        rows.append(
            (
                f.type,
                f.prefix,
                str(f.origin_domain),
                f.origin_node,
                f.origin_role,
                _duration(f.lifetime),
                _when(f.expires, seconds=False),
            )
        )
    _table(rows, indent=2, empty="none")
    print(f"{r.cached} attribute(s) in the claim cache")
    print("clashes (§12.4):")
    _table(_clash_rows(r.clashes), indent=2, empty="none")


def render_clashes(result: dict[str, Any], ns: argparse.Namespace) -> None:
    r = ClashesResult.model_validate(result)
    print(f"clash resolution: {r.clash_resolution} (RFC 2909 §12.4)")
    _table(_clash_rows(r.clashes), empty="no clashes")


def render_maas(result: dict[str, Any], ns: argparse.Namespace) -> None:
    r = MaasResult.model_validate(result)
    rows: list[Row] = [("NAME", "CONNECTED", "REGISTERED (UTC)", "IN USE", "GRANTS", "SCOPES")]
    for m in r.maas:
        rows.append(
            (
                m.name,
                _yes_no(m.connected),
                "-" if m.registered_at is None else _when(m.registered_at),
                str(m.in_use),
                str(len(m.grants)),
                ",".join(m.scopes) or "-",
            )
        )
    _table(rows, empty="no MAAS registered")
    for m in r.maas:
        if not m.grants:
            continue
        print(f"\n{m.name}:")
        grants: list[Row] = [("PREFIX", "EXPIRES (UTC)", "ACTIVE")]
        grants += [(g.prefix, _when(g.expires, seconds=False), _yes_no(g.active)) for g in m.grants]
        _table(grants, indent=2)


def render_action(result: dict[str, Any], ns: argparse.Namespace) -> None:
    r = ActionResult.model_validate(result)
    print(r.message)
    if r.prefix is not None and r.prefix not in r.message:
        print(f"prefix: {r.prefix}")
    if r.sessions:
        print(f"sessions: {', '.join(r.sessions)}")
    if r.claim is not None:
        _table(_claim_rows([r.claim]), indent=2)


def render_reload(result: dict[str, Any], ns: argparse.Namespace) -> None:
    r = ReloadResult.model_validate(result)
    print(f"config: {r.config_path}")
    rows: list[Row] = [("ADDRESS", "ACTION", "CHANGED", "REASON")]
    for p in r.peers:
        under = f" (parent {p.parent_domain_id})" if p.parent_domain_id is not None else ""
        rows.append(
            (f"{p.address}:{p.port}{under}", p.action, ",".join(p.changed) or "-", p.reason or "-")
        )
    _table(rows, empty="no peers configured")
    settings: list[Row] = [("SETTING", "OLD", "NEW", "EFFECT")]
    settings += [(s.key, s.old, s.new, s.effect) for s in r.settings]
    _table(settings, empty="no setting changes")
    if r.restart_required:
        print(f"restart required for: {', '.join(r.restart_required)}")
    for warning in r.warnings:
        print(f"warning: {warning}")
    if r.applied:
        print("applied")
    elif ns.dry_run:
        print("dry run: nothing changed")
    else:
        print("not applied: nothing changed")


# --- formatting --------------------------------------------------------------------------------


def _table(rows: Sequence[Row], *, indent: int = 0, empty: str = "") -> None:
    """Left-aligned columns; the last one is not padded.  Only a header and ``empty`` set:
    print ``empty`` instead of a lone header."""
    pad = " " * indent
    if len(rows) == 1 and empty:
        print(f"{pad}({empty})")
        return
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=False)]
        print(pad + "  ".join([*cells, row[-1]]))


def _pairs(pairs: Sequence[tuple[str, str]], *, indent: int = 0) -> None:
    width = max(len(k) for k, _ in pairs) + 1
    for key, value in pairs:
        print(f"{' ' * indent}{(key + ':').ljust(width)} {value}")


def _yes_no(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "no")


def _when(unix: float, *, seconds: bool = True) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M", time.gmtime(unix))


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
