"""``masc sim FILE``: runs a scenario, prints a summary or JSON, writes report.json and
report.png; exit 0 ok, 1 unsafe or demand left waiting, 2 bad scenario or usage."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from masc.cli.masc import main

SHORT = """
seed = 1
duration = "1d"
[demand]
arrivals_per_hour = 2.0
lifetime_median = "6h"
[timers]
waiting_period = "2h"
initiate_claim_delay = "5m"
hold_time = 0
"""


def scenario(tmp_path: Path, text: str = SHORT, name: str = "short") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def test_a_run_prints_a_summary_and_writes_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["sim", str(scenario(tmp_path)), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "wrote" in printed and str(out / "report.json") in printed
    data = json.loads((out / "report.json").read_text())
    assert data["ok"] is True and data["safety"] == []
    assert data["scenario"]["name"] == "short"
    assert (out / "report.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_json_output_and_overrides(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    argv = ["sim", str(scenario(tmp_path)), "--json", "--no-plot", "--duration", "12h"]
    assert main([*argv, "--seed", "5"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["scenario"]["duration"] == 43_200.0
    assert data["scenario"]["seed"] == 5
    assert data["totals"]["virtual_hours"] == pytest.approx(12.0)
    default = tmp_path / "sim-out" / "short"  # the default output directory
    assert (default / "report.json").exists()
    assert not (default / "report.png").exists()


def test_demand_left_waiting_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The RFC's 48-hour waiting period: after 6 hours nobody holds any space yet.
    path = scenario(tmp_path, 'duration = "6h"\n[timers]\nhold_time = 0\n')
    assert main(["sim", str(path), "--out", str(tmp_path / "o"), "--no-plot"]) == 1
    data = json.loads((tmp_path / "o" / "report.json").read_text())
    assert data["ok"] is False and data["totals"]["waiting"] > 0


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[topology]\nkind = 'ring'\n", "topology.kind"),
        ("[[faults.event]]\nat = '1h'\nkind = 'crash'\na = 'Q1a'\n", "faults.event[0].a"),
        ("dureation = '1d'\n", "dureation"),
    ],
)
def test_a_bad_scenario_exits_2_naming_file_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, key: str
) -> None:
    path = scenario(tmp_path, text, name="bad")
    assert main(["sim", str(path), "--out", str(tmp_path / "o")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"{path}: {key}: ")
    assert not (tmp_path / "o").exists()


def test_a_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", str(tmp_path / "absent.toml")]) == 2
    assert "cannot read file" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "text"),
    [
        (["--duration", "soon"], "--duration"),
        (["--duration", "0"], "--duration"),
        (["--processes", "0"], "--processes"),
        (["--processes", "65"], "--processes"),
    ],
)
def test_bad_overrides_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], text: str
) -> None:
    assert main(["sim", str(scenario(tmp_path)), *flags]) == 2
    assert text in capsys.readouterr().err


def test_processes_splits_the_run_and_its_report_is_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = SHORT + '[topology]\nkind = "strawman"\ntlds = 4\nchildren = 3\n'
    argv = ["sim", str(scenario(tmp_path, text)), "--json", "--no-plot"]
    assert main([*argv, "--out", str(tmp_path / "o2"), "--processes", "2"]) == 0
    split = json.loads(capsys.readouterr().out)
    assert main([*argv, "--out", str(tmp_path / "o1")]) == 0
    whole = json.loads(capsys.readouterr().out)
    assert (split["scenario"]["processes"], whole["scenario"]["processes"]) == (2, 1)
    assert (split["totals"]["processes"], whole["totals"]["processes"]) == (2, 1)
    assert split["domains"].keys() == whole["domains"].keys() and len(split["domains"]) == 16
    assert split["ok"] is True and split["safety"] == []


def test_processes_with_faults_exits_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    faults = '[faults]\nrandom = 1\nbetween = ["1h", "2h"]\nheal_after = ["10m", "20m"]\n'
    path = scenario(tmp_path, SHORT + faults)
    assert main(["sim", str(path), "--no-plot", "--processes", "2"]) == 2
    assert f"{path}: processes: " in capsys.readouterr().err


def test_a_failing_simulation_process_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import masc.sim.run

    def broken(scenario: object) -> object:
        raise masc.sim.run.SimError("simulation process 1 ended without a word")

    monkeypatch.setattr(masc.sim.run, "run_split", broken)
    text = SHORT + '[topology]\nkind = "strawman"\ntlds = 4\nchildren = 3\n'
    argv = ["sim", str(scenario(tmp_path, text)), "--no-plot", "--processes", "2"]
    assert main([*argv, "--out", str(tmp_path / "o")]) == 3
    assert capsys.readouterr().err == "masc sim: simulation process 1 ended without a word\n"


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["sim"])
    assert caught.value.code == 2
    with pytest.raises(SystemExit) as caught:
        main(["sim", "x.toml", "--seed", "one"])
    assert caught.value.code == 2


def test_missing_matplotlib_exits_2_before_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec

    def without_matplotlib(name: str, *args: object) -> object:
        return None if name == "matplotlib" else real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", without_matplotlib)
    out = tmp_path / "o"
    assert main(["sim", str(scenario(tmp_path)), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "pip install 'masc[sim]'" in err and "--no-plot" in err
    assert not out.exists()


def test_the_entry_point_runs_as_a_process(tmp_path: Path) -> None:
    path = scenario(tmp_path, SHORT.replace('duration = "1d"', 'duration = "6h"\n'
                                            '[topology]\nkind = "figure1"'))  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "masc.cli.masc", "sim", str(path), "--no-plot", "--json",
         "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    assert json.loads(done.stdout)["scenario"]["name"] == "short"
