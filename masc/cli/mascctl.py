"""``mascctl``: steer a running masc daemon over its control socket (masc.api.control).

    mascctl [--socket PATH] [--json] [--timeout S] show summary
    mascctl ... show peers
    mascctl ... show peer ADDR [--parent N] [--detail]
    mascctl ... show prefixes [--history N]
    mascctl ... show claims [--type T] [--domain N] [--prefix CIDR] [--limit N]
    mascctl ... show clashes
    mascctl ... show maas
    mascctl ... claim --size N [--lifetime T] [--local]     (RFC 2909 §5, §12.2)
    mascctl ... renew PREFIX                                (§5.2)
    mascctl ... release PREFIX
    mascctl ... clash accept|withdraw ID                    (§12.4, manual clash resolution)
    mascctl ... peer ADDR up|down|reset [--reason TEXT] [--parent N]   (down/reset: Cease, §8.7)
    mascctl ... maas forget NAME
    mascctl ... reload [--dry-run]

Each command is one request line ``{"verb": ..., "args": {...}}`` and one response line.
Optional arguments are sent only when given, so the daemon's defaults apply.  ``--json``,
``--socket`` and ``--timeout`` may come before the command (the documented form) or after
it.  ``--json`` prints the daemon's ``result`` object as it came; otherwise the result is
checked against the models of masc.api.control (which ignore fields they do not know, so a
newer daemon that added fields still prints) and shown as tables.

Exit status:
  0  success
  1  the daemon answered with an error: "mascctl: CODE: MESSAGE" on stderr and, with
     --json, the error object on stdout so that scripts can read it
  2  usage error
  3  the daemon could not be reached (socket missing, connection refused, permission
     denied), gave no answer or a garbled one, or did not answer within --timeout

A response whose ``format_version`` differs from this mascctl's gets a warning on stderr and
is still used: fields are only added within a version, and an old answer may still print.
"""

from __future__ import annotations

import argparse
import errno
import grp
import json
import os
import pwd
import socket
import stat
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from ipaddress import ip_address, ip_network
from typing import Any, Final, get_args

from pydantic import BaseModel, ValidationError

from masc.api.control import (
    FORMAT_VERSION,
    ClaimArgs,
    ClaimsArgs,
    ClaimTypeName,
    ClashArgs,
    MaasForgetArgs,
    PeerActionArgs,
    PeerArgs,
    PrefixArgs,
    PrefixesArgs,
    ReloadArgs,
    Response,
)
from masc.cli import ctlview
from masc.config.durations import parse_duration

DEFAULT_SOCKET: Final = "/run/masc/control.sock"
DEFAULT_TIMEOUT: Final = 10.0
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
# No control answer comes near this; a peer that streams without a newline is not a daemon.
MAX_RESPONSE_BYTES: Final = 64 * 1024 * 1024

EXIT_STATUS_HELP: Final = """\
exit status:
  0  success
  1  the daemon answered with an error (stderr: "mascctl: CODE: MESSAGE";
     with --json the error object is printed on stdout as well)
  2  usage error
  3  the daemon could not be reached (socket missing, connection refused,
     permission denied), gave no or a garbled answer, or timed out

--json, --socket and --timeout may also follow the command."""


# --- the exchange ------------------------------------------------------------------------------


class Unreachable(OSError):
    """The control socket could not be connected to; the text says why, for an operator."""


class NoAnswer(OSError):
    """Connected, but the daemon did not answer (closed, reset or timed out)."""


class Garbled(ValueError):
    """The daemon's answer is not a control response."""


def send(
    path: str,
    verb: str,
    args: Mapping[str, Any] | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> dict[str, Any]:
    """Send one request and return the response object as parsed JSON, unvalidated.

    Raises :class:`Unreachable` or :class:`NoAnswer` (both ``OSError``) or :class:`Garbled`.
    ``timeout`` bounds the whole exchange, not each read, so a daemon that trickles bytes
    cannot hold mascctl forever.
    """
    line = json.dumps({"verb": verb, "args": dict(args or {})}).encode() + b"\n"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except OSError as error:
            raise Unreachable(_why_unreachable(path, error, timeout)) from error
        deadline = time.monotonic() + timeout
        buffer = bytearray()
        try:
            sock.sendall(line)
            while b"\n" not in buffer:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                sock.settimeout(left)
                chunk = sock.recv(65536)
                if not chunk:
                    raise NoAnswer("the daemon closed the connection without answering")
                buffer += chunk
                if len(buffer) > MAX_RESPONSE_BYTES:
                    raise Garbled(f"answer longer than {MAX_RESPONSE_BYTES} bytes")
        except TimeoutError:
            raise NoAnswer(f"no answer within {timeout:g}s") from None
        except NoAnswer:
            raise
        except OSError as error:
            raise NoAnswer(f"connection lost: {error.strerror or error}") from error
    first = bytes(buffer.split(b"\n", 1)[0])
    try:
        answer = json.loads(first)
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError
        raise Garbled(f"not JSON: {error}; got {first[:80]!r}") from None
    if not isinstance(answer, dict):
        raise Garbled(f"expected a JSON object, got {type(answer).__name__}")
    return answer


def request(
    path: str, verb: str, args: dict[str, Any] | None = None, timeout: float = DEFAULT_TIMEOUT
) -> Response:
    """Send one request; the response as the model (for callers such as the demo)."""
    return Response.model_validate(send(path, verb, args, timeout=timeout))


def _why_unreachable(path: str, error: OSError, timeout: float) -> str:
    """Name the cause an operator can act on: missing, refused or not allowed."""
    if isinstance(error, FileNotFoundError):
        return "socket missing: no such file (is masc running? is --socket right?)"
    if isinstance(error, PermissionError):
        return "permission denied: " + _describe_access(path)
    if isinstance(error, ConnectionRefusedError):
        try:
            is_socket = stat.S_ISSOCK(os.stat(path).st_mode)
        except OSError:
            is_socket = True
        if not is_socket:
            return "connection refused: not a socket (is --socket right?)"
        return "connection refused: nothing listens there (a stale socket of a stopped daemon?)"
    if isinstance(error, TimeoutError):
        return f"connect timed out after {timeout:g}s (the daemon is too busy to accept)"
    reason = error.strerror or str(error) or errno.errorcode.get(error.errno or 0, "error")
    return reason[0].lower() + reason[1:] if reason else "error"


def _describe_access(path: str) -> str:
    try:
        info = os.stat(path)
    except OSError:
        return (
            f"a directory above {path} is not searchable by this user; run as the daemon's "
            "user or a member of its group"
        )
    return (
        f"{path} is mode {stat.S_IMODE(info.st_mode):04o}, owner {_user(info.st_uid)}, "
        f"group {_group(info.st_gid)}; run as the daemon's user or use the read-only socket"
    )


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


@dataclass(frozen=True)
class Answer:
    """A response read leniently: an error code this mascctl does not know yet is still an
    error to report, not a garbled answer (masc.api.control.ErrorInfo lists today's codes)."""

    format_version: int
    result: dict[str, Any] | None
    error: dict[str, Any] | None


def interpret(response: Mapping[str, Any]) -> Answer:
    """Check the shape of a response (masc.api.control.Response); raise Garbled if wrong."""
    version = response.get("format_version", FORMAT_VERSION)
    if isinstance(version, bool) or not isinstance(version, int):
        raise Garbled(f"format_version is not an integer: {version!r}")
    ok, result, error = response.get("ok"), response.get("result"), response.get("error")
    if ok is True and isinstance(result, dict):
        return Answer(version, result, None)
    if (
        ok is False
        and isinstance(error, dict)
        and isinstance(error.get("code"), str)
        and isinstance(error.get("message"), str)
    ):
        return Answer(version, None, error)
    raise Garbled("neither a result (ok: true) nor an error with code and message (ok: false)")


# --- commands ----------------------------------------------------------------------------------

Render = Callable[[dict[str, Any], argparse.Namespace], None]


@dataclass(frozen=True)
class Command:
    """What a parsed command line sends and how its result is shown."""

    verb: str
    args: Callable[[argparse.Namespace], dict[str, Any]]
    render: Render
    # The daemon's model of the arguments: checked here too, so a bad value is a usage
    # error with the same rule the daemon applies (the models live in masc.api.control).
    model: type[BaseModel] | None = None


def _given(ns: argparse.Namespace, **names: str) -> dict[str, Any]:
    """Request arguments from the options that were given (None means not given)."""
    return {key: getattr(ns, attr) for key, attr in names.items() if getattr(ns, attr) is not None}


def _no_args(ns: argparse.Namespace) -> dict[str, Any]:
    return {}


def _show_peer_args(ns: argparse.Namespace) -> dict[str, Any]:
    return {"address": ns.address, **_given(ns, parent_domain_id="parent")}


def _prefixes_args(ns: argparse.Namespace) -> dict[str, Any]:
    return _given(ns, history="history")


def _claims_args(ns: argparse.Namespace) -> dict[str, Any]:
    return _given(ns, type="type", domain_id="domain", prefix="prefix", limit="limit")


def _claim_args(ns: argparse.Namespace) -> dict[str, Any]:
    return {
        "size": ns.size,
        **_given(ns, lifetime="lifetime"),
        "kind": "local" if ns.local else "managed",
    }


def _prefix_args(ns: argparse.Namespace) -> dict[str, Any]:
    return {"prefix": ns.prefix}


def _clash_args(ns: argparse.Namespace) -> dict[str, Any]:
    return {"id": ns.id, "action": ns.action}


def _peer_action_args(ns: argparse.Namespace) -> dict[str, Any]:
    return {
        "address": ns.address,
        "action": ns.action,
        **_given(ns, reason="reason", parent_domain_id="parent"),
    }


def _maas_forget_args(ns: argparse.Namespace) -> dict[str, Any]:
    return {"name": ns.name}


def _reload_args(ns: argparse.Namespace) -> dict[str, Any]:
    return {"dry_run": ns.dry_run}


# --- argument types ------------------------------------------------------------------------


def _count(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    parse.__name__ = "count"
    return parse


def _seconds(text: str) -> float:
    """A positive duration: seconds, or a duration string such as 30d, 12h or 1h30m."""
    try:
        try:
            seconds = parse_duration(float(text))
        except ValueError:
            seconds = parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text!r}")
    return seconds


def _domain_id(text: str) -> int:
    """A Domain Identifier (§7.2) as the configuration accepts it: an integer or an address."""
    try:
        value = int(text)
    except ValueError:
        try:
            return int(ip_address(text))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a domain id (an integer or an address), got {text!r}"
            ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"a domain id is not negative, got {value}")
    return value


def _address(text: str) -> str:
    try:
        return str(ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an IPv4 or IPv6 address, got {text!r}"
        ) from None


def _cidr(strict: bool) -> Callable[[str], str]:
    def parse(text: str) -> str:
        try:
            return str(ip_network(text, strict=strict))
        except ValueError as error:
            raise argparse.ArgumentTypeError(
                f"expected a prefix such as 239.1.0.0/16: {error}"
            ) from None

    parse.__name__ = "prefix"
    return parse


def _claim_type(text: str) -> str:
    name = text.upper().replace("-", "_")
    if name not in get_args(ClaimTypeName):
        known = ", ".join(get_args(ClaimTypeName))
        raise argparse.ArgumentTypeError(f"unknown claim type {text!r}; one of {known}")
    return name


# --- the parser --------------------------------------------------------------------------------


def _common(suppress: bool) -> argparse.ArgumentParser:
    """The options every (sub)command accepts.  Subcommands default to SUPPRESS so that an
    option given before the command is not overwritten by the subcommand's default."""

    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--socket", "-s", default=default(DEFAULT_SOCKET), help="control socket path"
    )
    common.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="print the daemon's JSON result (or error object) as it came",
    )
    common.add_argument(
        "--timeout",
        type=_seconds,
        default=default(DEFAULT_TIMEOUT),
        metavar="S",
        help="give up after S (seconds, or e.g. 500ms, 1m)",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common(suppress=True)
    parser = argparse.ArgumentParser(
        prog="mascctl",
        description="Control a running masc daemon (RFC 2909 MASC) over its control socket.",
        epilog=EXIT_STATUS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_common(suppress=False)],
    )
    sub = parser.add_subparsers(dest="command_name", required=True, metavar="COMMAND")

    def leaf(
        group: argparse._SubParsersAction[argparse.ArgumentParser],
        name: str,
        command: Command,
        help: str,
    ) -> argparse.ArgumentParser:
        p = group.add_parser(name, help=help, description=help, parents=[common])
        p.set_defaults(command=command)
        return p

    show = sub.add_parser("show", help="read the daemon's state", parents=[common])
    what = show.add_subparsers(dest="what", required=True, metavar="WHAT")
    leaf(what, "summary", Command("show summary", _no_args, ctlview.render_summary), "the daemon")
    leaf(what, "peers", Command("show peers", _no_args, ctlview.render_peers), "all sessions")
    p = leaf(
        what,
        "peer",
        Command("show peer", _show_peer_args, ctlview.render_peer, PeerArgs),
        "one peer's sessions: configuration, timers and message counts",
    )
    p.add_argument("address", type=_address, metavar="ADDR")
    p.add_argument(
        "--parent", type=_domain_id, metavar="N", help="only the sibling session under parent N"
    )
    p.add_argument("--detail", action="store_true", help="every field, one per line")
    p = leaf(
        what,
        "prefixes",
        Command("show prefixes", _prefixes_args, ctlview.render_prefixes, PrefixesArgs),
        "the space the domain holds, its MAAS grants and claim history",
    )
    p.add_argument(
        "--history", type=_count(0), metavar="N", help="history entries per prefix (0: none)"
    )
    p = leaf(
        what,
        "claims",
        Command("show claims", _claims_args, ctlview.render_claims, ClaimsArgs),
        "our claims in flight, other domains' cached claims, clashes",
    )
    p.add_argument("--type", type=_claim_type, metavar="T", help="only this claim type")
    p.add_argument("--domain", type=_domain_id, metavar="N", help="only claims of domain N")
    p.add_argument(
        "--prefix", type=_cidr(strict=False), metavar="CIDR", help="only claims overlapping CIDR"
    )
    p.add_argument("--limit", type=_count(0), metavar="N", help="at most N foreign claims")
    leaf(
        what, "clashes", Command("show clashes", _no_args, ctlview.render_clashes), "§12.4 clashes"
    )
    leaf(what, "maas", Command("show maas", _no_args, ctlview.render_maas), "registered MAASs")

    p = leaf(
        sub,
        "claim",
        Command("claim", _claim_args, ctlview.render_action, ClaimArgs),
        "claim more space now (RFC 2909 §5)",
    )
    p.add_argument("--size", type=_count(1), required=True, metavar="N", help="addresses")
    p.add_argument("--lifetime", type=_seconds, metavar="T", help="e.g. 30d, 12h or seconds")
    p.add_argument(
        "--local", action="store_true", help="for this domain's own MAASs (§12.2), not managed"
    )
    for name, help in (("renew", "renew a prefix now"), ("release", "give a prefix back")):
        p = leaf(sub, name, Command(name, _prefix_args, ctlview.render_action, PrefixArgs), help)
        p.add_argument("prefix", type=_cidr(strict=True), metavar="PREFIX")
    p = leaf(
        sub,
        "clash",
        Command("clash", _clash_args, ctlview.render_action, ClashArgs),
        "resolve a pending clash (§12.4): accept the loss or withdraw the range",
    )
    p.add_argument("action", choices=("accept", "withdraw"))
    p.add_argument("id", type=_count(1), metavar="ID")
    p = leaf(
        sub,
        "peer",
        Command("peer", _peer_action_args, ctlview.render_action, PeerActionArgs),
        "start, stop (Cease, §8.7) or reset a peer's sessions",
    )
    p.add_argument("address", type=_address, metavar="ADDR")
    p.add_argument("action", choices=("up", "down", "reset"))
    p.add_argument("--reason", metavar="TEXT", help="logged, and sent in the Cease")
    p.add_argument("--parent", type=_domain_id, metavar="N", help="only the session under N")
    maas = sub.add_parser("maas", help="manage MAAS registrations", parents=[common])
    maas_sub = maas.add_subparsers(dest="maas_action", required=True, metavar="ACTION")
    p = leaf(
        maas_sub,
        "forget",
        Command("maas forget", _maas_forget_args, ctlview.render_action, MaasForgetArgs),
        "drop a MAAS's registration and grants",
    )
    p.add_argument("name", metavar="NAME")
    p = leaf(
        sub,
        "reload",
        Command("reload", _reload_args, ctlview.render_reload, ReloadArgs),
        "re-read the configuration file and apply what can change live",
    )
    p.add_argument("--dry-run", action="store_true", help="show the plan, change nothing")
    return parser


# --- main --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        ns = parser.parse_args(argv)
    except SystemExit as exit_:
        return EXIT_USAGE if exit_.code else EXIT_OK
    command: Command = ns.command
    args = command.args(ns)
    if command.model is not None:
        try:
            command.model.model_validate(args)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(x) for x in e['loc']) or 'arguments'}: {e['msg']}"
                for e in error.errors()
            )
            print(f"mascctl: {command.verb}: {problems}", file=sys.stderr)
            return EXIT_USAGE
    try:
        answer = interpret(send(ns.socket, command.verb, args, timeout=ns.timeout))
    except Unreachable as error:
        print(f"mascctl: cannot reach the daemon at {ns.socket}: {error}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except NoAnswer as error:
        print(f"mascctl: no answer from the daemon at {ns.socket}: {error}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except Garbled as error:
        print(f"mascctl: garbled answer from the daemon at {ns.socket}: {error}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if answer.format_version != FORMAT_VERSION:
        print(
            f"mascctl: warning: the daemon speaks control format {answer.format_version}, "
            f"this mascctl {FORMAT_VERSION}",
            file=sys.stderr,
        )
    if answer.error is not None:
        if ns.json:
            print(json.dumps(answer.error, indent=2))
        print(f"mascctl: {answer.error['code']}: {answer.error['message']}", file=sys.stderr)
        return EXIT_ERROR
    assert answer.result is not None  # interpret() returns one or the other
    if ns.json:
        print(json.dumps(answer.result, indent=2))
        return EXIT_OK
    try:
        command.render(answer.result, ns)
    except ValidationError as error:
        print(
            f"mascctl: the daemon's {command.verb!r} result does not match this mascctl "
            f"(try --json): {error}",
            file=sys.stderr,
        )
        return EXIT_UNREACHABLE
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
