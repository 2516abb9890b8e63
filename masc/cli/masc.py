"""``masc``: run the daemon, check a configuration, decode a message, run the MADCAP server,
run the local demo, run a simulation scenario.

Exit status: 0 success; 1 runtime failure (e.g. an address that cannot be bound; for
``sim``, a safety violation or unserved demand); 2 bad configuration, scenario or usage.
Warnings about a valid configuration (``config_warnings``) are printed by check-config and
logged by run, and change neither exit status.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, is_dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from masc.cli import sim as sim_command
from masc.config import ConfigError, config_warnings, load_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="masc", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the MASC daemon in the foreground")
    run.add_argument("--config", "-c", required=True, help="TOML configuration file")
    run.add_argument("--log-format", choices=("text", "json"), default="text")
    run.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")

    check = sub.add_parser("check-config", help="validate a configuration file (exit 0 or 2)")
    check.add_argument("file")

    dec = sub.add_parser("decode", help="decode a MASC message given in hex ('-': stdin)")
    dec.add_argument("hex")

    madcap = sub.add_parser("madcap", help="run the MADCAP server (RFC 2730) in the foreground")
    madcap.add_argument("--config", "-c", required=True, help="TOML file (docs/madcap.md)")
    madcap.add_argument("--log-format", choices=("text", "json"), default="text")
    madcap.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), default="info"
    )
    madcap.add_argument(
        "--check", action="store_true", help="only validate the configuration (exit 0 or 2)"
    )

    demo = sub.add_parser("demo", help="run RFC 2909 Figure 1 as real daemons on 127.0.0.x")
    demo.add_argument("--duration", type=float, default=30.0, help="seconds; 0 = until Ctrl-C")
    demo.add_argument("--port", type=int, default=2587)
    demo.add_argument("--workdir", help="where configs and sockets go (default: a temp dir)")
    demo.add_argument(
        "--until-up", action="store_true", help="stop as soon as every session is Established"
    )
    demo.add_argument(
        "--until-claimed",
        action="store_true",
        help="stop as soon as every domain holds address space (exit 1 if not nested)",
    )

    sim_command.add_parser(sub)

    args = parser.parse_args(argv)
    if args.command == "check-config":
        return _check_config(args.file)
    if args.command == "run":
        return _run(args.config, args.log_format, args.log_level)
    if args.command == "decode":
        return _decode(args.hex)
    if args.command == "madcap":
        return _madcap(args.config, args.log_format, args.log_level, check=args.check)
    if args.command == "sim":
        return sim_command.run(args)
    from masc.cli.demo import run_demo

    return run_demo(
        duration=args.duration,
        port=args.port,
        workdir=args.workdir,
        until_up=args.until_up,
        until_claimed=args.until_claimed,
    )


def _check_config(path: str) -> int:
    try:
        cfg = load_config(path)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    # Warnings do not change the exit status: the file is valid, merely unwise.
    for warning in config_warnings(cfg):
        print(f"{path}: {warning}", file=sys.stderr)
    kind = "top-level domain" if cfg.is_tld else f"parents {list(cfg.parent_domain_ids)}"
    print(f"{path}: ok (domain {cfg.local.domain_id}, {kind}, {len(cfg.peers)} peer(s))")
    return 0


def _run(path: str, log_format: str, log_level: str) -> int:
    import trio

    from masc.daemon.logs import configure
    from masc.daemon.main import run_daemon

    try:
        cfg = load_config(path)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    log = configure(
        log_level,
        log_format,
        context={"local_domain": cfg.local.domain_id, "node": str(cfg.local.node_id)},
    )
    for warning in config_warnings(cfg):
        log.warning(
            "%s: %s",
            path,
            warning,
            extra={"event": "config_warning", "key": warning.key, "warning": warning.message},
        )
    try:
        trio.run(run_daemon, cfg, Path(path))
    except (OSError, ExceptionGroup) as error:
        # Start-up failures (an address that cannot be bound, a control socket in use)
        # reach us wrapped in trio's exception groups; anything else is a bug: re-raise.
        leaves = _leaves(error)
        if not all(isinstance(e, OSError) for e in leaves):
            raise
        for leaf in leaves:
            log.error("cannot run: %s", leaf, extra={"event": "fatal", "error": str(leaf)})
        return 1
    return 0


def _madcap(path: str, log_format: str, log_level: str, *, check: bool) -> int:
    from masc.madcap.config import load_madcap_config, madcap_warnings

    try:
        cfg = load_madcap_config(path)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    if check:
        for warning in madcap_warnings(cfg):
            print(f"{path}: {warning}", file=sys.stderr)
        print(f"{path}: ok ({len(cfg.scope)} scope(s), {len(cfg.masc_scopes)} from MASC)")
        return 0

    import trio

    from masc.daemon.logs import configure
    from masc.daemon.madcap import run_madcap
    from masc.madcap.store import LeaseStoreError

    log = configure(log_level, log_format, context={"server_id": str(cfg.server.identifier)})
    for warning in madcap_warnings(cfg):
        log.warning(
            "%s: %s",
            path,
            warning,
            extra={"event": "config_warning", "key": warning.key, "warning": warning.message},
        )
    try:
        trio.run(run_madcap, cfg)
    except (OSError, LeaseStoreError, ExceptionGroup) as error:
        # Binding a socket, opening or writing the lease store: reported, exit 1.  Anything
        # else is a bug: re-raise.
        leaves = _leaves(error)
        if not all(isinstance(e, OSError | LeaseStoreError) for e in leaves):
            raise
        for leaf in leaves:
            log.error("cannot run: %s", leaf, extra={"event": "fatal", "error": str(leaf)})
        return 1
    return 0


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for sub in error.exceptions for leaf in _leaves(sub)]
    return [error]


def _decode(text: str) -> int:
    from masc.protocol.errors import ProtocolError
    from masc.protocol.wire import Framer, decode

    raw = sys.stdin.read() if text == "-" else text
    try:
        data = bytes.fromhex("".join(raw.split()))
    except ValueError as error:
        print(f"not hex: {error}", file=sys.stderr)
        return 2
    framer = Framer()
    framer.feed(data)
    try:
        while (frame := framer.next_frame()) is not None:
            print(json.dumps(_plain(decode(frame)), indent=2))
    except ProtocolError as error:
        print(
            json.dumps(
                {
                    "error": str(error),
                    "code": error.code,
                    "subcode": error.subcode,
                    "data": error.data.hex(),
                    "must_close": error.must_close,
                }
            )
        )
        return 1
    if framer.buffered:
        print(f"{framer.buffered} trailing octet(s) do not make a whole message", file=sys.stderr)
        return 1
    return 0


def _plain(value: Any) -> Any:
    """A decoded message as JSON-friendly data, with the message type named."""
    if is_dataclass(value) and not isinstance(value, type):
        return {"message": type(value).__name__, **{k: _plain(v) for k, v in asdict(value).items()}}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return str(value)


if __name__ == "__main__":
    raise SystemExit(main())
