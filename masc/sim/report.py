"""A simulation report as files and text: JSON, a PNG plot, and the CLI's summary.

The plot has two panels over virtual time: the global pool's utilization (in use / held by
the top-level domains) with the leaf utilization (in use / local space), and the G-RIB
size before and after aggregation (:mod:`masc.sim.metrics` defines each).  matplotlib is
an optional dependency (``pip install 'masc[sim]'``), imported only when a plot is drawn,
through its object-oriented API on the Agg canvas (no pyplot: no global state, no display).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Final

from masc.sim.metrics import Report

INSTALL_HINT: Final = "pip install 'masc[sim]'"


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed."""


def write_json(report: Report, path: str | os.PathLike[str]) -> None:
    """Write ``report`` as JSON (indented, keys in order) to ``path``."""
    with Path(path).open("w", encoding="utf-8") as out:
        json.dump(report.to_dict(), out, indent=1, allow_nan=False)
        out.write("\n")


def read_json(path: str | os.PathLike[str]) -> Report:
    """The report :func:`write_json` wrote."""
    with Path(path).open(encoding="utf-8") as source:
        data: dict[str, Any] = json.load(source)
    return Report.from_dict(data)


def plot(report: Report, path: str | os.PathLike[str]) -> None:
    """Draw the two panels of the module docstring into a PNG at ``path``."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise PlotUnavailable(f"plotting needs matplotlib: {INSTALL_HINT}") from error
    series = report.series
    hours = series.get("time_hours", [])
    days = [h / 24 for h in hours]
    figure = Figure(figsize=(9, 7), layout="constrained")
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True)
    top.plot(days, [100 * u for u in series.get("utilization", [])], label="global pool")
    top.plot(days, [100 * u for u in series.get("leaf_utilization", [])], label="leaf (local)")
    top.set_ylabel("utilization (%)")
    top.set_ylim(bottom=0)
    top.grid(alpha=0.3)
    top.legend(loc="best")
    bottom.plot(days, series.get("grib_before", []), label="before aggregation")
    bottom.plot(days, series.get("grib_after", []), label="after aggregation")
    bottom.set_ylabel("G-RIB prefixes")
    bottom.set_xlabel("virtual time (days)")
    bottom.set_ylim(bottom=0)
    bottom.grid(alpha=0.3)
    bottom.legend(loc="best")
    name = report.scenario.get("name", "")
    figure.suptitle(f"masc sim {name}".strip())
    figure.savefig(os.fspath(path), format="png", dpi=100)


def summary(report: Report) -> str:
    """A short text table of the totals, for the terminal."""
    t = report.totals
    name = report.scenario.get("name", "")
    rows = [
        ("scenario", f"{name} (seed {report.scenario.get('seed', '?')})"),
        ("domains / nodes", f"{t.get('domains', 0)} / {t.get('nodes', 0)}"),
        ("virtual time", f"{t.get('virtual_hours', 0.0) / 24:.1f} days"),
        ("wall time", f"{report.wall_seconds:.1f} s"),
        ("peak RSS", f"{report.peak_rss_bytes / 2**20:.0f} MiB"),
        ("held by TLDs", f"{t.get('held', 0):,} addresses"),
        ("in use", f"{t.get('in_use', 0):,} addresses"),
        (
            "utilization",
            f"{_pct(t.get('utilization'))} global pool, {_pct(t.get('leaf_utilization'))} "
            f"leaf (mean {_pct(t.get('mean_utilization'))})",
        ),
        (
            "prefixes",
            f"{t.get('prefixes', 0):,} ({t.get('prefixes_per_domain', 0.0):.2f}/domain, "
            f"max {t.get('max_prefixes', 0)})",
        ),
        (
            "G-RIB",
            f"{t.get('grib_before', 0):,} before, {t.get('grib_after', 0):,} after aggregation",
        ),
        (
            "demand",
            f"{t.get('arrivals', 0):,} sessions, {_pct(t.get('fraction_served_at_once'))} "
            f"served at once, {t.get('waiting', 0):,} waiting",
        ),
        (
            "claim latency",
            f"mean {_dur(t.get('latency_mean'))}, p95 {_dur(t.get('latency_p95'))}, "
            f"max {_dur(t.get('latency_max'))}",
        ),
        (
            "collisions",
            f"{t.get('collisions', 0)} (denials {t.get('denials', 0)}, clashes "
            f"{t.get('clashes', 0)}, withdraws {t.get('withdraws', 0)})",
        ),
        ("messages", f"{t.get('messages', 0):,} ({t.get('octets', 0):,} octets)"),
        ("safety", "ok" if not report.safety else f"{len(report.safety)} violation(s)"),
    ]
    width = max(len(label) for label, _ in rows)
    lines = [f"{label:<{width}}  {value}" for label, value in rows]
    lines += [f"  {v}" for v in report.safety[:10]]
    if len(report.safety) > 10:
        lines.append(f"  ... and {len(report.safety) - 10} more")
    lines.append(f"{'result':<{width}}  {'OK' if report.ok else 'FAILED'}")
    return "\n".join(lines)


def _pct(value: object) -> str:
    return f"{100 * value:.1f} %" if isinstance(value, int | float) else "-"


def _dur(value: object) -> str:
    """Seconds as the largest fitting unit."""
    if not isinstance(value, int | float):
        return "-"
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.0f} s"
