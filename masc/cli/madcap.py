"""``madcap``: list multicast scopes and lease, renew and release multicast addresses from
MADCAP servers (RFC 2730), with the client library masc.madcap.client (RFC 2771).

    madcap [OPTIONS] scopes [--language TAG] [--nesting]
    madcap [OPTIONS] request --scope ADDR [--count N] [--min-count N] [--lease DUR]
                     [--min-lease DUR] [--start TIME] [--max-start TIME]
                     [--retry-after] [--wait] [--lease-id HEX] [--save FILE]
    madcap [OPTIONS] renew (--lease-file FILE | --lease-id HEX) [--lease DUR]
                     [--min-lease DUR] [--start TIME] [--max-start TIME] [--save FILE]
    madcap [OPTIONS] release (--lease-file FILE | --lease-id HEX)

    OPTIONS: [--server HOST[:PORT]] [--bind ADDR] [--interface ADDR] [--ttl N]
             [--port N] [--timeout S] [--discover-delay S] [--family ipv4|ipv6] [--json]

Without ``--server`` the client finds servers by multicast (RFC 2730 §2.9-§2.10): GETINFO
to the Local Scope's server address 239.255.255.254, and for ``request`` a DISCOVER to the
scope's MADCAP Server Multicast Address (its last address minus one; the Local Scope's for
the global scope, §2.11), then a multicast REQUEST naming the chosen server.  ``renew`` and
``release`` are unicast to the server that granted the lease: the one in the lease file, or
``--server`` with ``--lease-id``.

DUR is seconds or a duration such as 90s, 30m, 2h, 7d.  TIME is ``now``, ``+DUR`` (from
now), Unix seconds, or an ISO 8601 time with a zone (2030-01-01T12:00:00Z).

``--save FILE`` writes the lease (or the pending Retry After allocation) as the JSON that
``--json`` prints; ``renew`` rewrites its ``--lease-file`` with the renewed lease unless
``--save`` names another file.  The file must be writable before anything is sent.

The header's address family (RFC 2730 §2.1.3) is that of ``--scope`` for ``request`` and of
the lease for ``--lease-file``; ``--family ipv6`` asks for IPv6 scopes (``scopes``) and
names the family of a ``--lease-id``.

Exit status: 0 success; 1 the server refused (NAK: the message names the RFC 2730 error),
asked to try later (Retry After, without ``--wait``), nothing answered in time, or a lease
was granted but could not be saved (it is printed); 2 usage (bad arguments, an unreadable
lease file or unwritable ``--save`` file, an address that cannot be bound).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from ipaddress import ip_address
from pathlib import Path
from typing import Any, Final, TypedDict

import trio

from masc.config.durations import parse_duration
from masc.madcap.client import (
    Lease,
    MadcapClient,
    MadcapError,
    TryLater,
    open_madcap_client,
)
from masc.madcap.constants import DEFAULT_MULTICAST_TTL, NO_RESPONSE_DELAY, PORT, AddressFamily

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_SHOWN_ADDRESSES: Final = 16  # text output lists at most this many addresses

EXIT_STATUS_HELP: Final = """\
exit status:
  0  success
  1  NAK (the RFC 2730 error is named), Retry After without --wait, no answer, or
     a lease granted but not saved (it is printed)
  2  usage error (bad arguments, unreadable lease file, unwritable --save file,
     address that cannot be bound)

DUR: seconds or e.g. 90s, 30m, 2h, 7d.  TIME: now, +DUR, Unix seconds, or ISO 8601
with a zone.  The global options may also follow the command."""


class Usage(Exception):
    """A problem with what the user asked for: exit 2."""


class NotSaved(Exception):
    """The server granted or renewed a lease but ``--save`` could not write it: the lease
    is still printed (the user must not lose its Lease Identifier), then exit 1."""

    def __init__(self, message: str, result: dict[str, Any]) -> None:
        super().__init__(message)
        self.result = result


# --- argument types ---------------------------------------------------------------------------


def _server(text: str) -> tuple[str, int]:
    """HOST, HOST:PORT, [V6]:PORT or a bare IPv6 address."""
    host, port = text, PORT
    if text.startswith("["):
        close = text.find("]")
        if close < 0 or (text[close + 1 :] and not text[close + 1 :].startswith(":")):
            raise argparse.ArgumentTypeError(f"expected [ADDRESS]:PORT, got {text!r}")
        host, rest = text[1:close], text[close + 2 :]
        port = _port(rest) if rest else PORT
    elif text.count(":") == 1:
        host, rest = text.split(":")
        port = _port(rest)
    if not host:
        raise argparse.ArgumentTypeError(f"expected HOST[:PORT], got {text!r}")
    return host, port


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 < value <= 0xFFFF:
        raise argparse.ArgumentTypeError(f"a port is 1..65535, got {value}")
    return value


def _address(text: str) -> str:
    try:
        return str(ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an IPv4 or IPv6 address, got {text!r}"
        ) from None


def _integer(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {low}..{high}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def _duration(text: str) -> float:
    try:
        try:
            return parse_duration(float(text))
        except ValueError:
            return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _positive_duration(text: str) -> float:
    seconds = _duration(text)
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text!r}")
    return seconds


def _time(text: str) -> str:
    """Checked here, turned into Unix seconds when the command runs (``now`` is then)."""
    _unix_time(text, 0.0)
    return text


def _unix_time(text: str, now: float) -> float:
    if text == "now":
        return now
    if text.startswith("+"):
        try:
            return now + parse_duration(text[1:])
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    try:
        return float(int(text))
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected now, +DUR, Unix seconds or an ISO 8601 time, got {text!r}"
        ) from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give the time zone (e.g. a trailing Z): {text!r}")
    return moment.timestamp()


def _lease_id(text: str) -> bytes:
    try:
        value = bytes.fromhex(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected hex octets, got {text!r}") from None
    if not value:
        raise argparse.ArgumentTypeError("a Lease Identifier has at least one octet")
    return value


# --- the parser --------------------------------------------------------------------------------


def _common(suppress: bool) -> argparse.ArgumentParser:
    """Options every command accepts, before or after it (mascctl's convention): the
    subcommands' copies default to SUPPRESS so they do not overwrite a value given first."""

    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--server",
        type=_server,
        default=default(None),
        metavar="HOST[:PORT]",
        help=f"a MADCAP server to ask by unicast (port {PORT} by default); "
        "without it, servers are found by multicast",
    )
    common.add_argument(
        "--bind", type=_address, default=default(None), metavar="ADDR", help="source address"
    )
    common.add_argument(
        "--interface",
        type=_address,
        default=default(None),
        metavar="ADDR",
        help="send multicast out of the interface with this IPv4 address",
    )
    common.add_argument(
        "--ttl",
        type=_integer(1, 255),
        default=default(DEFAULT_MULTICAST_TTL),
        metavar="N",
        help="multicast TTL (RFC 2730 §2.10: 16; never above the scope's)",
    )
    common.add_argument(
        "--port",
        type=_port,
        default=default(PORT),
        metavar="N",
        help=f"the servers' port for multicast (default {PORT})",
    )
    common.add_argument(
        "--timeout",
        type=_positive_duration,
        default=default(NO_RESPONSE_DELAY),
        metavar="S",
        help="give up after S without an answer (default 60 s, RFC 2730 §2.3)",
    )
    common.add_argument(
        "--discover-delay",
        type=_positive_duration,
        default=default(None),
        metavar="S",
        help="wait this long after the first multicast answer for more "
        "(default: the current retransmission delay, RFC 2730 §2.2.2)",
    )
    common.add_argument(
        "--family",
        choices=("ipv4", "ipv6"),
        default=default(None),
        help="the address family of the scopes and addresses (RFC 2730 §2.1.3); default: "
        "that of --scope or of the lease file, else ipv4",
    )
    common.add_argument("--json", action="store_true", default=default(False), help="print JSON")
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common(suppress=True)
    parser = argparse.ArgumentParser(
        prog="madcap",
        description="Ask MADCAP servers (RFC 2730) for multicast addresses.",
        epilog=EXIT_STATUS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_common(suppress=False)],
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    scopes = sub.add_parser(
        "scopes", parents=[common], help="list the multicast scopes (GETINFO, RFC 2730 §2.2.1)"
    )
    scopes.add_argument(
        "--language", metavar="TAG", help="ask for names in this language (RFC 1766 tag)"
    )
    scopes.add_argument(
        "--nesting", action="store_true", help="also ask which scopes nest inside which (RFC 2907)"
    )

    request = sub.add_parser(
        "request", parents=[common], help="lease addresses (REQUEST, RFC 2730 §2.2.4)"
    )
    request.add_argument(
        "--scope", type=_address, required=True, metavar="ADDR", help="the Scope ID (first address)"
    )
    request.add_argument(
        "--count", type=_integer(1, 0xFFFF), default=1, metavar="N", help="addresses wanted"
    )
    request.add_argument(
        "--min-count",
        type=_integer(1, 0xFFFF),
        metavar="N",
        help="accept as few as N (default: --count)",
    )
    _times(request)
    request.add_argument(
        "--retry-after",
        action="store_true",
        help="let the server answer 'try later' (Retry After, RFC 2730 §2.13.2)",
    )
    request.add_argument(
        "--wait",
        action="store_true",
        help="with Retry After, wait for the retry time and ask again until answered",
    )
    request.add_argument(
        "--lease-id", type=_lease_id, metavar="HEX", help="use this Lease Identifier"
    )
    request.add_argument("--save", metavar="FILE", help="write the lease to FILE (JSON)")

    renew = sub.add_parser(
        "renew", parents=[common], help="change a lease's times (RENEW, RFC 2730 §2.2.7)"
    )
    _lease_source(renew)
    _times(renew)
    renew.add_argument("--save", metavar="FILE", help="write the renewed lease here")

    release = sub.add_parser(
        "release", parents=[common], help="give a lease back (RELEASE, RFC 2730 §2.2.8)"
    )
    _lease_source(release)
    return parser


def _times(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lease", type=_duration, metavar="DUR", help="lease time wanted")
    parser.add_argument("--min-lease", type=_duration, metavar="DUR", help="refuse a shorter lease")
    parser.add_argument("--start", type=_time, metavar="TIME", help="earliest start")
    parser.add_argument("--max-start", type=_time, metavar="TIME", help="latest start")


def _lease_source(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--lease-file", metavar="FILE", help="a lease saved by --save")
    source.add_argument(
        "--lease-id", type=_lease_id, metavar="HEX", help="the Lease Identifier (needs --server)"
    )


# --- commands ----------------------------------------------------------------------------------


class _Times(TypedDict):
    min_lifetime: float | None
    max_lifetime: float | None
    min_start: float | None
    max_start: float | None


def _times_of(ns: argparse.Namespace, now: float) -> _Times:
    return {
        "min_lifetime": ns.min_lease,
        "max_lifetime": ns.lease,
        "min_start": None if ns.start is None else _unix_time(ns.start, now),
        "max_start": None if ns.max_start is None else _unix_time(ns.max_start, now),
    }


async def _scopes(client: MadcapClient, ns: argparse.Namespace) -> dict[str, Any]:
    scopes = await client.get_scopes(ns.language)
    out: dict[str, Any] = {"scopes": [s.to_json() for s in scopes]}
    if ns.nesting:
        # RFC 2907 over the scopes just listed; "undetermined" when the servers send none.
        try:
            state = await client.nesting(scopes)
        except MadcapError as error:
            if error.status not in ("undetermined", "bad_scope"):
                raise
            out["nesting"] = None
        else:
            out["nesting"] = {
                str(inner.scope_id): [
                    str(outer.scope_id) for y, outer in enumerate(scopes) if state.rows[x][y]
                ]
                for x, inner in enumerate(scopes)
            }
    return out


async def _request(client: MadcapClient, ns: argparse.Namespace) -> dict[str, Any]:
    min_count = ns.count if ns.min_count is None else ns.min_count
    if min_count > ns.count:
        raise Usage(f"--min-count {min_count} is above --count {ns.count}")
    if ns.save:
        _check_writable(ns.save)  # before the server leases anything
    try:
        lease = await client.alloc(
            ns.scope,
            min_addresses=min_count,
            max_addresses=ns.count,
            try_later=ns.retry_after or ns.wait,
            lease_id=ns.lease_id,
            **_times_of(ns, time.time()),
        )
    except TryLater as pending:
        if not ns.wait:
            if ns.save:
                _save(ns.save, pending.to_json())
            raise
        lease = await _wait(client, pending, ns)
    return _saved(ns.save, lease)


async def _wait(client: MadcapClient, pending: TryLater, ns: argparse.Namespace) -> Lease:
    """§2.13.2: retry at or after each Retry Time until the server answers for good."""
    while True:
        print(f"madcap: {pending.message}; waiting", file=sys.stderr)
        await trio.sleep(max(0.0, pending.retry_at - time.time()))
        try:
            return await client.retry(pending)
        except TryLater as later:
            pending = later


def _read_lease(path: str) -> tuple[Lease | None, bytes, tuple[str, int]]:
    """A lease file: the Lease, or for a pending allocation (status try_later) just its
    Lease Identifier and server."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as error:
        raise Usage(f"{path}: {error.strerror or error}") from None
    except ValueError as error:
        raise Usage(f"{path}: not JSON: {error}") from None
    if not isinstance(data, dict):
        raise Usage(f"{path}: not a lease file")
    try:
        if data.get("status") == "try_later":
            lease_id, server = TryLater.pending_from_json(data)
            return None, lease_id, server
        lease = Lease.from_json(data)
    except (KeyError, TypeError, ValueError) as error:
        raise Usage(f"{path}: not a lease file: {error}") from None
    return lease, lease.lease_id, lease.server


def _target(ns: argparse.Namespace) -> tuple[Lease | None, bytes, tuple[str, int] | None]:
    if ns.lease_file is not None:
        return _read_lease(ns.lease_file)
    if ns.server is None:
        raise Usage("--lease-id needs --server: RENEW and RELEASE are unicast (RFC 2730 §2.2.7)")
    return None, ns.lease_id, None


async def _renew(client: MadcapClient, ns: argparse.Namespace) -> dict[str, Any]:
    lease, lease_id, server = _target(ns)
    save = ns.save or ns.lease_file
    if save:
        _check_writable(save)
    lease = await client.renew(lease or lease_id, server=server, **_times_of(ns, time.time()))
    return _saved(save, lease)


async def _release(client: MadcapClient, ns: argparse.Namespace) -> dict[str, Any]:
    lease, lease_id, server = _target(ns)
    await client.release(lease or lease_id, server=server)
    return {"status": "released", "lease_id": lease_id.hex()}


def _check_writable(path: str) -> None:
    """Usage unless ``path`` can be written the way :func:`_save` will write it."""
    if Path(path).is_dir():
        raise Usage(f"cannot write {path}: Is a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{Path(path).name}.", dir=Path(path).parent)
    except OSError as error:
        raise Usage(f"cannot write {path}: {error.strerror or error}") from None
    os.close(fd)
    Path(probe).unlink(missing_ok=True)


def _saved(path: str | None, lease: Lease) -> dict[str, Any]:
    """``lease`` as JSON, written to ``path`` first if given (NotSaved if that fails)."""
    result = lease.to_json()
    if path:
        try:
            _save(path, result)
        except Usage as error:
            raise NotSaved(f"lease {lease.lease_id.hex()} held, but {error}", result) from None
    return result


def _save(path: str, data: dict[str, Any]) -> None:
    """Write atomically: a crash never leaves half a lease file."""
    target = Path(path)
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    except OSError as error:
        raise Usage(f"cannot write {path}: {error.strerror or error}") from None
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, indent=2)
            out.write("\n")
        os.replace(temporary, target)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise Usage(f"cannot write {path}: {error.strerror or error}") from None


COMMANDS: Final = {"scopes": _scopes, "request": _request, "renew": _renew, "release": _release}


# --- output ------------------------------------------------------------------------------------


def _utc(unix: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix))


def _render(command: str, result: dict[str, Any]) -> None:
    if command == "scopes":
        _render_scopes(result)
    elif command == "release":
        print(f"released lease {result['lease_id']}")
    else:
        _render_lease(result)


def _render_scopes(result: dict[str, Any]) -> None:
    rows = [("SCOPE ID", "LAST ADDRESS", "TTL", "SERVER ADDRESS", "NAMES")]
    for scope in result["scopes"]:
        names = "; ".join(
            f"{n['name']} ({n['language']}{', default' if n['default'] else ''})"
            for n in scope["names"]
        )
        rows.append(
            (
                scope["scope_id"],
                scope["last_address"],
                str(scope["ttl"]),
                scope["server_address"],
                names or "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[4]]))
    if "nesting" in result:
        nesting = result["nesting"]
        if nesting is None:
            print("nesting: undetermined (no server sent RFC 2907 nesting state)")
        else:
            for inner, outers in nesting.items():
                inside = ", ".join(outers) if outers else "no other listed scope"
                print(f"{inner} nests inside {inside}")


def _render_lease(lease: dict[str, Any]) -> None:
    addresses = lease["addresses"]
    shown = ", ".join(addresses[:_SHOWN_ADDRESSES])
    if len(addresses) > _SHOWN_ADDRESSES:
        shown += f", ... ({len(addresses)} in all)"
    server = lease["server"]
    print(f"lease     {lease['lease_id']}")
    print(f"addresses {shown}")
    print(f"scope     {lease['scope_id']}")
    print(f"server    {lease['server_id']} ({server['address']} port {server['port']})")
    print(f"start     {_utc(lease['start'])}")
    print(f"end       {_utc(lease['end'])} ({lease['lifetime']:g} s)")


# --- main --------------------------------------------------------------------------------------


def _family(ns: argparse.Namespace) -> AddressFamily:
    """§2.1.3: the header's family is that of the addresses.  A lease file needs nothing:
    the client renews and releases a Lease in its own family."""
    if ns.family is not None:
        return AddressFamily.IPV6 if ns.family == "ipv6" else AddressFamily.IPV4
    if ns.command == "request" and ip_address(ns.scope).version == 6:
        return AddressFamily.IPV6
    return AddressFamily.IPV4


async def _run(ns: argparse.Namespace) -> dict[str, Any]:
    bind = ns.bind or ("::" if ns.server and ":" in ns.server[0] else "0.0.0.0")
    try:
        opened = open_madcap_client(
            server=ns.server,
            bind=bind,
            multicast_interface=ns.interface,
            ttl=ns.ttl,
            family=_family(ns),
            port=ns.port,
            give_up=ns.timeout,
            discover_delay=ns.discover_delay,
        )
        async with opened as client:
            result: dict[str, Any] = await COMMANDS[ns.command](client, ns)
            return result
    except socket.gaierror as error:  # only --server is looked up
        raise Usage(f"cannot resolve --server {ns.server[0]}: {error.strerror}") from None
    except OSError as error:
        # Opening the client's socket: binding --bind, or choosing the --interface.
        where = f"--bind {bind}" + ("" if ns.interface is None else f" --interface {ns.interface}")
        raise Usage(f"cannot use {where}: {error.strerror or error}") from None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        ns = parser.parse_args(argv)
    except SystemExit as exit_:
        return EXIT_USAGE if exit_.code else EXIT_OK
    try:
        result = trio.run(_run, ns)
    except Usage as error:
        print(f"madcap: {error}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as error:  # RFC 2771's bad arguments, caught before sending
        print(f"madcap: {error}", file=sys.stderr)
        return EXIT_USAGE
    except NotSaved as error:
        _output(ns, error.result)
        print(f"madcap: {error}", file=sys.stderr)
        return EXIT_FAILED
    except MadcapError as error:
        if ns.json:
            print(json.dumps(error.to_json(), indent=2))
        # A NAK's message names its RFC 2730 error; the others get RFC 2771's status.
        label = "" if error.status == "nak" else f"{error.status.upper()}: "
        print(f"madcap: {label}{error.message}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    _output(ns, result)
    return EXIT_OK


def _output(ns: argparse.Namespace, result: dict[str, Any]) -> None:
    if ns.json:
        print(json.dumps(result, indent=2))
    else:
        _render(ns.command, result)


if __name__ == "__main__":
    raise SystemExit(main())
