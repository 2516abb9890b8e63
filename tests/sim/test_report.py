"""A simulation report as files and text (masc.sim.report): JSON, PNG and the summary."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from masc.sim.metrics import SERIES, Report
from masc.sim.report import INSTALL_HINT, PlotUnavailable, plot, read_json, summary, write_json

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def a_report(*, safety: list[str] | None = None, waiting: int = 0) -> Report:
    hours = [float(h) for h in range(49)]
    series: dict[str, list[float]] = {name: [0.0] * len(hours) for name in SERIES}
    series["time_hours"] = hours
    series["utilization"] = [min(0.8, h / 40) for h in hours]
    series["leaf_utilization"] = [min(0.85, h / 30) for h in hours]
    series["grib_before"] = [float(min(1040, 20 * h)) for h in hours]
    series["grib_after"] = [float(min(16, h)) for h in hours]
    totals = {
        "domains": 7,
        "nodes": 12,
        "virtual_hours": 48.0,
        "held": 16384,
        "in_use": 192,
        "utilization": 0.0117,
        "leaf_utilization": 0.25,
        "mean_utilization": 0.009,
        "prefixes": 8,
        "prefixes_per_domain": 8 / 7,
        "max_prefixes": 2,
        "grib_before": 8,
        "grib_after": 2,
        "arrivals": 575,
        "fraction_served_at_once": 0.802,
        "waiting": waiting,
        "latency_mean": 6480.0,
        "latency_p95": 51120.0,
        "latency_max": 64800.0,
        "collisions": 1,
        "denials": 0,
        "clashes": 2,
        "withdraws": 6,
        "messages": 463,
        "octets": 17044,
    }
    violations = safety or []
    return Report(
        scenario={"name": "figure1", "seed": 1, "topology": {"kind": "figure1"}},
        series=series,
        domains={"C5": {"level": 2, "held": 256, "in_use": 64, "utilization": 0.25}},
        totals=totals,
        safety=violations,
        wall_seconds=1.25,
        peak_rss_bytes=53 * 2**20,
        ok=not violations and waiting == 0,
    )


def test_json_round_trip(tmp_path: Path) -> None:
    report = a_report()
    path = tmp_path / "report.json"
    write_json(report, path)
    assert read_json(path) == report
    data = json.loads(path.read_text())
    assert data["ok"] is True and data["totals"]["grib_after"] == 2
    assert set(data) == {
        "scenario",
        "series",
        "domains",
        "totals",
        "safety",
        "wall_seconds",
        "peak_rss_bytes",
        "ok",
    }


def test_plot_writes_a_png(tmp_path: Path) -> None:
    path = tmp_path / "report.png"
    plot(a_report(), path)
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000


def test_plot_without_matplotlib_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A None entry in sys.modules makes the import fail, as if it were not installed.
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(PlotUnavailable, match=r"pip install 'masc\[sim\]'"):
        plot(a_report(), tmp_path / "report.png")
    assert INSTALL_HINT == "pip install 'masc[sim]'"
    assert not (tmp_path / "report.png").exists()


def test_summary_is_a_short_table() -> None:
    text = summary(a_report())
    print(text)
    lines = text.splitlines()
    assert len(lines) <= 20
    assert lines[0].split() == ["scenario", "figure1", "(seed", "1)"]
    assert "1.2 % global pool, 25.0 % leaf" in text
    assert "8 before, 2 after aggregation" in text
    assert "575 sessions, 80.2 % served at once, 0 waiting" in text
    assert "mean 1.8 h, p95 14.2 h, max 18.0 h" in text
    assert "1 (denials 0, clashes 2, withdraws 6)" in text
    assert "53 MiB" in text
    assert lines[-1].split() == ["result", "OK"]


def test_summary_lists_violations_and_fails() -> None:
    text = summary(a_report(safety=[f"overlap: T{i} and T{i + 1}" for i in range(12)]))
    assert "12 violation(s)" in text
    assert "  overlap: T0 and T1" in text and "... and 2 more" in text
    assert text.splitlines()[-1].split() == ["result", "FAILED"]
    assert summary(a_report(waiting=3)).splitlines()[-1].endswith("FAILED")
