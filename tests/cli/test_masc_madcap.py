"""``masc madcap``: a bad configuration exits 2 with ``file: key: problem``; ``--check``
validates, prints the warnings and exits 0 (docs/madcap.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from masc.cli.masc import main

EXAMPLE = Path(__file__).resolve().parents[2] / "madcap.example.toml"
SCOPE = '[[scope]]\nname = "Org"\nfirst = "239.192.0.0"\nlast = "239.195.255.255"\n'


def test_check_accepts_the_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["madcap", "--config", str(EXAMPLE), "--check"]) == 0
    out = capsys.readouterr()
    assert out.out == f"{EXAMPLE}: ok (3 scope(s), 1 from MASC)\n"
    assert out.err == ""


def test_check_prints_warnings_and_still_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.toml"
    path.write_text('[server]\nresponse_cache = "10s"\n' + SCOPE)
    assert main(["madcap", "--config", str(path), "--check"]) == 0
    assert capsys.readouterr().err.startswith(f"{path}: server.response_cache: warning: ")


@pytest.mark.parametrize("check", [True, False])
def test_a_bad_configuration_exits_2_naming_every_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], check: bool
) -> None:
    path = tmp_path / "m.toml"
    path.write_text('[server]\noffer_hold = "10s"\n' + SCOPE + 'scope_id = "239.192.0.1"\n')
    argv = ["madcap", "--config", str(path)] + (["--check"] if check else [])
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert [line.split(": ")[:2] for line in lines] == [
        [str(path), "server.offer_hold"],
        [str(path), "scope[0].scope_id"],
    ]


def test_a_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["madcap", "--config", str(tmp_path / "absent.toml")]) == 2
    assert "cannot read file" in capsys.readouterr().err
