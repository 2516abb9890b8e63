"""``mascctl``: talk to a running masc daemon over its control socket.

    mascctl [--socket PATH] [--json] show summary
    mascctl [--socket PATH] [--json] show peers

Exit status: 0 success; 1 the daemon answered with an error; 2 usage; 3 the daemon could
not be reached.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from typing import Any

from masc.api.control import FORMAT_VERSION, PeersResult, Response, SummaryResult

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
    show.add_argument("what", choices=("summary", "peers"))
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
