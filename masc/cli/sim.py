"""``masc sim FILE``: run a scenario file in the virtual-time simulator and report.

Prints a summary (or, with ``--json``, the whole report) and writes ``DIR/report.json`` and
``DIR/report.png`` (DIR: ``--out``, default ``./sim-out/<name>``).

Exit status: 0 the run was safe and every demand was served; 1 the safety checker found a
violation or demand was left waiting at the end; 2 a bad scenario file or usage
(``file: key: problem`` on stderr), or a plot asked for without matplotlib installed
(checked before the run: ``pip install 'masc[sim]'`` or ``--no-plot``); 3 the simulation
itself failed (a process of a split run: its traceback on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from masc.config import ConfigError
from masc.config.durations import parse_duration


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``sim`` subcommand of ``masc``."""
    sim = sub.add_parser(
        "sim",
        help="run a scenario file in the virtual-time simulator (docs/simulation.md)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sim.add_argument("file", help="scenario TOML file (see scenarios/)")
    sim.add_argument("--out", help="where report.json and report.png go (./sim-out/<name>)")
    sim.add_argument("--no-plot", action="store_true", help="do not draw report.png")
    sim.add_argument("--json", action="store_true", help="print the report as JSON")
    sim.add_argument("--duration", help="override the file's duration (e.g. 2d, 36h)")
    sim.add_argument("--seed", type=int, help="override the file's seed")
    sim.add_argument(
        "--processes",
        type=int,
        help="override the file's processes: how many processes share the nodes (1: all here)",
    )
    sim.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="error",
        help="the simulated nodes' logs on stderr (default: errors only)",
    )
    sim.add_argument("--log-format", choices=("text", "json"), default="text")


def run(args: argparse.Namespace) -> int:
    """Carry out ``masc sim`` (see the module docstring for the exit status)."""
    from masc.daemon.logs import configure
    from masc.sim.network import SimError
    from masc.sim.report import PlotUnavailable, summary
    from masc.sim.run import check_plotting, default_out_dir, run_simulation
    from masc.sim.scenario_file import load_and_resolve
    from masc.sim.split import MAX_PROCESSES

    duration = None
    if args.duration is not None:
        try:
            duration = parse_duration(args.duration)
        except ValueError as error:
            print(f"masc sim: --duration: {error}", file=sys.stderr)
            return 2
        if duration <= 0:
            print("masc sim: --duration: must be greater than 0", file=sys.stderr)
            return 2
    if args.seed is not None and args.seed < 0:
        print("masc sim: --seed: must be >= 0", file=sys.stderr)
        return 2
    if args.processes is not None and not 1 <= args.processes <= MAX_PROCESSES:
        print(f"masc sim: --processes: must be 1 to {MAX_PROCESSES}", file=sys.stderr)
        return 2
    try:
        scenario = load_and_resolve(
            args.file, duration=duration, seed=args.seed, processes=args.processes
        )
        if not args.no_plot:
            check_plotting()
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    except PlotUnavailable as error:
        print(f"masc sim: {error}", file=sys.stderr)
        return 2
    # The nodes log what a daemon would (a claim that must wait, a session that dropped);
    # in a simulation of thousands of nodes that is noise unless asked for.
    configure(args.log_level, args.log_format)
    out = Path(args.out) if args.out is not None else default_out_dir(scenario)
    try:
        report = run_simulation(scenario, out, plot_png=not args.no_plot)
    except SimError as error:
        print(f"masc sim: {error}", file=sys.stderr)
        return 3
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(summary(report))
        written = [out / "report.json"] + ([] if args.no_plot else [out / "report.png"])
        print("wrote " + ", ".join(map(str, written)))
    return 0 if report.ok else 1
