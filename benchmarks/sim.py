"""Simulation figures: a scenario run end to end, and the allocator strategies compared.

    .venv/bin/python benchmarks/sim.py [SCENARIO] [--duration D] [--tlds N] [--children N]
                                       [--processes N] [--strategies] [--out DIR]
                                       [--compiled]

SCENARIO defaults to scenarios/strawman.toml (RFC 2909 Appendix B: 128 top-level domains,
8,192 level-2 domains, 30 virtual days): the issue's performance goal is that it finishes in
at most 10 minutes wall and 4 GiB peak RSS on the 2-core CI machine.  ``--tlds`` and
``--children`` shrink the strawman (e.g. 16 x 64) for a quicker look.  ``--strategies``
runs the scenario once per Appendix A strategy (rbo, first-fit, best-fit) in separate
processes, so that each peak RSS is its own, and prints them side by side
(docs/evaluation.md).  Each run's report.json goes to DIR/<strategy>/ when ``--out`` is given.
``--compiled`` runs the same against the compiled build of this checkout (setup.py, mypyc;
built and cached by benchmarks/compiled.py on first use, a few minutes).

Printed per run: wall time, peak RSS, virtual days, domains, sessions, messages and octets,
the global pool's and the leaves' utilization (addresses in use by MAASs / held), prefixes
per domain, G-RIB size before and after aggregation, collisions, clashes, withdraws,
sessions served at once, claim latency, the safety checker's verdict and the build (pure
Python, or how many modules ran compiled).
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

from masc.config.durations import parse_duration
from masc.sim.run import run_simulation
from masc.sim.scenario_file import load_scenario, resolve
from masc.sim.split import MAX_PROCESSES

STRATEGIES = ("rbo", "first-fit", "best-fit")
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def one_run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the scenario once in this process and return the report's totals (plus the
    figures the table prints)."""
    scenario = load_scenario(args.scenario)
    update: dict[str, Any] = {}
    if args.strategy:
        update["allocator"] = scenario.allocator.model_copy(update={"strategy": args.strategy})
    if args.tlds or args.children:
        topo = scenario.topology
        update["topology"] = topo.model_copy(
            update={k: v for k, v in (("tlds", args.tlds), ("children", args.children)) if v}
        )
    if args.processes:
        update["processes"] = args.processes
    scenario = scenario.model_copy(update=update)
    duration = parse_duration(args.duration) if args.duration else None
    resolved = resolve(
        scenario, source=args.scenario, name=Path(args.scenario).stem, duration=duration
    )
    out = Path(args.out) / (args.strategy or "run") if args.out else None
    report = run_simulation(resolved, out, plot_png=False)
    data = report.to_dict()
    totals = dict(data["totals"], wall_seconds=data["wall_seconds"])
    totals["peak_rss_bytes"] = data["peak_rss_bytes"]
    return {"scenario": data["scenario"], "totals": totals, "ok": data["ok"]}


def _row(label: str, result: dict[str, Any]) -> list[str]:
    t, s = result["totals"], result["scenario"]
    rss = t.get("peak_rss_bytes", 0) / 2**20
    return [
        label,
        f"{t.get('wall_seconds', 0):.0f} s",
        f"{rss:,.0f} MiB",
        f"{s.get('domains', 0):,}",
        f"{t.get('messages', 0):,}",
        f"{100 * t.get('utilization', 0):.1f} %",
        f"{100 * t.get('leaf_utilization', 0):.1f} %",
        f"{t.get('prefixes_per_domain', 0):.2f}",
        f"{t.get('grib_before', 0):,} / {t.get('grib_after', 0):,}",
        f"{t.get('collisions', 0):,} / {t.get('clashes', 0):,} / {t.get('withdraws', 0):,}",
        f"{100 * t.get('fraction_served_at_once', 0):.1f} %",
        f"{t.get('latency_mean', 0) / 3600:.1f} h",
        "ok" if result["ok"] else "NOT OK",
        f"compiled ({t['compiled_modules']})" if t.get("compiled_modules") else "pure",
    ]


HEADER = [
    "run",
    "wall",
    "peak RSS",
    "domains",
    "messages",
    "util (pool)",
    "util (leaves)",
    "prefixes/dom",
    "G-RIB before/after",
    "coll/clash/wdr",
    "served at once",
    "latency",
    "result",
    "build",
]


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [HEADER, *rows]) for i in range(len(HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [HEADER, *rows]]
    return "\n".join(lines)


def main() -> int:
    # No abbreviations: --compiled re-runs this script without it, and "--comp" would
    # re-run it forever.
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("scenario", nargs="?", default=str(ROOT / "scenarios" / "strawman.toml"))
    parser.add_argument("--duration", help="override the scenario's (e.g. 2d)")
    parser.add_argument("--tlds", type=int, help="strawman: top-level domains")
    parser.add_argument("--children", type=int, help="strawman: level-2 domains per TLD")
    parser.add_argument(
        "--processes", type=int, help="override the scenario's (1: everything in this process)"
    )
    parser.add_argument("--strategies", action="store_true", help="compare the strategies")
    parser.add_argument("--strategy", choices=STRATEGIES, help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help="write each run's report.json under this directory")
    parser.add_argument(
        "--compiled",
        action="store_true",
        help="run against the compiled build of this checkout (benchmarks/compiled.py)",
    )
    args = parser.parse_args()
    if args.compiled:
        rest = [a for a in sys.argv[1:] if a != "--compiled"]
        return subprocess.call([sys.executable, str(HERE / "compiled.py"), __file__, *rest])
    if args.processes is not None and not 1 <= args.processes <= MAX_PROCESSES:
        parser.error(f"--processes must be 1 to {MAX_PROCESSES}")
    # The nodes' own warnings ("cannot claim ... now") would bury the table.
    logging.basicConfig(level=logging.ERROR)
    if args.child:  # one run for --strategies: print the result as JSON
        print(json.dumps(one_run(args)))
        return 0
    if not args.strategies:
        result = one_run(args)
        print(table([_row(args.strategy or result["scenario"].get("name", "run"), result)]))
        return 0
    rows = []
    for strategy in STRATEGIES:
        cmd = [sys.executable, __file__, args.scenario, "--child", "--strategy", strategy]
        for flag in ("duration", "tlds", "children", "processes", "out"):
            value = getattr(args, flag)
            if value:
                cmd += [f"--{flag}", str(value)]
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        rows.append(_row(strategy, json.loads(done.stdout.strip().splitlines()[-1])))
        print(f"{strategy}: done in {rows[-1][1]}", file=sys.stderr, flush=True)
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
