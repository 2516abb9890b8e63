"""``mascctl``: talk to a running masc daemon over its control socket.

    mascctl [--socket PATH] [--json] show summary
    mascctl [--socket PATH] [--json] show peers
    mascctl [--socket PATH] [--json] show prefixes
    mascctl [--socket PATH] [--json] show claims

Exit status: 0 success; 1 the daemon answered with an error; 2 usage; 3 the daemon could
not be reached.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from collections.abc import Sequence
from typing import Any

from masc.api.control import (
    FORMAT_VERSION,
    ClaimsResult,
    PeersResult,
    PrefixesResult,
    Response,
    SummaryResult,
)

DEFAULT_SOCKET = "/run/masc/control.sock"
EXIT_ERROR, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 3


def request(
    path: str, verb: str, args: dict[str, Any] | None = None, timeout: float = 10.0
) -> Response:
    """Send one request and read one response line."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(json.dumps({"verb": verb, "args": args or {}}).encode() + b"\n")
        buffer = b""
        while b"\n" not in buffer:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("daemon closed the connection without answering")
            buffer += chunk
    return Response.model_validate_json(buffer.split(b"\n", 1)[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mascctl", description="Control a running masc daemon.")
    parser.add_argument("--socket", "-s", default=DEFAULT_SOCKET, help="control socket path")
    parser.add_argument("--json", action="store_true", help="print the daemon's JSON result")
    sub = parser.add_subparsers(dest="command", required=True)
    show = sub.add_parser("show", help="read the daemon's state")
    show.add_argument("what", choices=("summary", "peers", "prefixes", "claims"))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return EXIT_USAGE if exit_.code else 0
    verb = f"{args.command} {args.what}"
    try:
        response = request(args.socket, verb)
    except (OSError, ConnectionError) as error:
        print(f"mascctl: cannot reach the daemon at {args.socket}: {error}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if response.format_version != FORMAT_VERSION:
        print(
            f"mascctl: daemon speaks format {response.format_version}, "
            f"this mascctl {FORMAT_VERSION}",
            file=sys.stderr,
        )
    if not response.ok or response.result is None:
        problem = response.error
        code = problem.code if problem else "error"
        print(f"mascctl: {code}: {problem.message if problem else ''}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(json.dumps(response.result, indent=2))
    elif args.what == "summary":
        _print_summary(SummaryResult.model_validate(response.result))
    elif args.what == "prefixes":
        _print_prefixes(PrefixesResult.model_validate(response.result))
    elif args.what == "claims":
        _print_claims(ClaimsResult.model_validate(response.result))
    else:
        _print_peers(PeersResult.model_validate(response.result))
    return 0


def _print_summary(s: SummaryResult) -> None:
    role = "top-level domain" if s.top_level_domain else f"parents {s.parent_domain_ids}"
    print(f"masc {s.version}  domain {s.domain_id}  node {s.node_id}  ({s.address_family}, {role})")
    print(
        f"peers: {s.peers_established}/{s.peers_configured} Established",
        f"  uptime {_duration(s.uptime)}",
    )


def _print_peers(result: PeersResult) -> None:
    rows = [("ADDRESS", "RELATION", "DOMAIN", "STATE", "HOLD", "UP", "FLAPS", "LAST ERROR")]
    for p in result.peers:
        relation = p.relation + (f"/{p.parent_domain_id}" if p.parent_domain_id is not None else "")
        rows.append(
            (
                f"{p.address}:{p.port}",
                relation,
                str(p.domain_id),
                p.state,
                "-" if p.hold_time is None else str(p.hold_time),
                "-" if p.established_for is None else _duration(p.established_for),
                str(p.flaps),
                p.last_error or "-",
            )
        )
    _table(rows)


def _print_prefixes(result: PrefixesResult) -> None:
    print(f"domain is {'non-leaf' if result.non_leaf else 'leaf'} (RFC 2909 §12.2)")
    rows = [("PREFIX", "KIND", "DOMAIN", "FROM", "EXPIRES", "G-RIB", "USABLE")]
    for p in result.prefixes:
        rows.append(
            (
                p.prefix,
                p.kind,
                str(p.domain_id),
                "-" if p.parent_domain_id is None else str(p.parent_domain_id),
                time.strftime("%Y-%m-%d %H:%M", time.gmtime(p.expires)),
                "yes" if p.in_grib else "no",
                ",".join(p.usable) or "-",
            )
        )
    _table(rows)


def _print_claims(result: ClaimsResult) -> None:
    rows = [("PREFIX", "TYPE", "KIND", "PURPOSE", "STATE", "TIME LEFT")]
    for c in result.claims:
        rows.append((c.prefix or "-", c.type, c.kind, c.purpose, c.state, _duration(c.time_left)))
    _table(rows)
    print(f"{result.cached} attribute(s) in the claim cache")
    for clash in result.clashes:
        print(
            f"clash {clash.clash_id}: {clash.local} lost to {clash.winner} of domain "
            f"{clash.winner_domain_id} ({clash.state})"
        )


def _table(rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1])


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


if __name__ == "__main__":
    raise SystemExit(main())
