"""contrib/masc.service: the systemd unit runs the daemon it claims to, as an unprivileged,
sandboxed user, and systemd itself accepts every line of it.

The unit is read with a small parser that follows systemd.syntax(7) rather than configparser:
systemd allows a key to repeat (list settings accumulate, and an empty assignment resets the
list), which configparser rejects or flattens.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from masc.config import MascConfig, parse_config_text

CONTRIB = Path(__file__).resolve().parents[2] / "contrib"
UNIT = CONTRIB / "masc.service"
SYSUSERS = CONTRIB / "masc.sysusers.conf"

Unit = dict[str, list[tuple[str, str]]]


def parse_unit(text: str) -> Unit:
    """Sections -> (key, value) assignments in file order (systemd.syntax(7))."""
    unit: Unit = {}
    section: list[tuple[str, str]] | None = None
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line[0] in "#;"):
            continue
        if line.endswith("\\"):  # continuation: the backslash becomes a space
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], [])
            continue
        assert section is not None, f"assignment outside a section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not an assignment: {line!r}"
        section.append((key.strip(), value.strip()))
    return unit


def assignments(unit: Unit, section: str, key: str) -> list[str]:
    return [v for k, v in unit.get(section, []) if k == key]


def last(unit: Unit, section: str, key: str) -> str:
    """A single-valued setting: the last assignment wins."""
    values = assignments(unit, section, key)
    assert values, f"[{section}] {key}= is missing"
    return values[-1]


def effective_list(unit: Unit, section: str, key: str) -> list[str]:
    """A list setting: the items assigned after the last empty assignment."""
    values = assignments(unit, section, key)
    assert values, f"[{section}] {key}= is missing"
    tail: list[str] = []
    for value in values:
        tail = [] if value == "" else [*tail, *value.split()]
    return tail


@pytest.fixture(scope="module")
def unit() -> Unit:
    return parse_unit(UNIT.read_text())


def command(unit: Unit, key: str) -> list[str]:
    [line] = assignments(unit, "Service", key)  # one command each: no accidental duplicates
    return shlex.split(line)


def defaults() -> MascConfig:
    """The daemon's own defaults, from a minimal configuration."""
    return parse_config_text(
        '[local]\ndomain_id = 65001\nnode_id = "192.0.2.1"\n', source="defaults.toml"
    )


def test_parser_follows_systemd_list_semantics() -> None:
    parsed = parse_unit("[Service]\nA=x y\nA=\nA=z \\\n  w\n; c\n# c\nB=1\nB=2\n")
    assert effective_list(parsed, "Service", "A") == ["z", "w"]
    assert effective_list(parsed, "Service", "B") == ["1", "2"]
    assert last(parsed, "Service", "B") == "2"
    assert effective_list(parse_unit("[S]\nA=x\nA=\n"), "S", "A") == []


def test_type_notify_with_a_watchdog(unit: Unit) -> None:
    """READY=1 from the main process (masc/daemon/sdnotify.py) ends the start."""
    assert last(unit, "Service", "Type") == "notify"
    assert last(unit, "Service", "NotifyAccess") == "main"
    watchdog = last(unit, "Service", "WatchdogSec")
    assert re.fullmatch(r"\d+s?", watchdog) and int(watchdog.rstrip("s")) > 0


def test_exec_start_pre_checks_the_file_exec_start_runs(unit: Unit) -> None:
    check = command(unit, "ExecStartPre")
    run = command(unit, "ExecStart")
    assert Path(check[0]).name == Path(run[0]).name == "masc"
    assert check[0] == run[0]
    assert check[1] == "check-config"
    assert run[1] == "run"
    config = run[run.index("--config") + 1]
    assert check[2:] == [config]
    assert run[run.index("--log-format") + 1] == "json"


def test_exec_reload_calls_mascctl_reload_on_the_default_control_socket(unit: Unit) -> None:
    """systemctl reload must reach the socket the daemon opens when [control] is not set."""
    reload_ = command(unit, "ExecReload")
    assert Path(reload_[0]).name == "mascctl"
    assert Path(reload_[0]).parent == Path(command(unit, "ExecStart")[0]).parent
    assert reload_[-1] == "reload"  # a real reload: no --dry-run
    socket = reload_[reload_.index("--socket") + 1]
    assert socket == str(defaults().control.socket)


def test_directories_systemd_creates_are_the_daemons_default_paths(unit: Unit) -> None:
    """ProtectSystem=strict leaves only these writable: the sockets and the store must lie
    in them."""
    cfg = defaults()
    runtime = Path("/run") / last(unit, "Service", "RuntimeDirectory")
    state = Path("/var/lib") / last(unit, "Service", "StateDirectory")
    assert cfg.control.socket.parent == runtime
    assert cfg.maas.socket.parent == runtime
    assert cfg.storage.path.parent == state
    assert last(unit, "Service", "StateDirectoryMode") == "0700"  # as the store creates it


def test_runs_as_a_dedicated_unprivileged_user(unit: Unit) -> None:
    user = last(unit, "Service", "User")
    assert user not in ("", "root", "0")
    assert last(unit, "Service", "Group") not in ("", "root", "0")
    declared = [
        line.split()
        for line in SYSUSERS.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert [fields[:2] for fields in declared] == [["u", user]]


def test_least_privilege(unit: Unit) -> None:
    """Port 2587 is above 1024: the daemon needs no capability at all."""
    assert last(unit, "Service", "NoNewPrivileges") == "yes"
    assert effective_list(unit, "Service", "CapabilityBoundingSet") == []
    assert effective_list(unit, "Service", "AmbientCapabilities") == []
    assert last(unit, "Service", "ProtectSystem") == "strict"
    assert last(unit, "Service", "ProtectHome") == "yes"
    assert last(unit, "Service", "UMask") == "0077"
    families = set(effective_list(unit, "Service", "RestrictAddressFamilies"))
    assert families == {"AF_UNIX", "AF_INET", "AF_INET6"}


# --- systemd's own opinion ------------------------------------------------------------------


def _runnable_copy(tmp_path: Path) -> Path:
    """The unit with its programs pointed at ones that exist here (verify checks they are
    executable); everything else verbatim."""
    bindir = Path(sys.executable).parent
    text = UNIT.read_text()
    for name in ("mascctl", "masc"):
        found = bindir / name
        text = text.replace(
            f"/usr/local/bin/{name} ", f"{found if found.exists() else sys.executable} "
        )
    assert "/usr/local/bin/" not in text
    copy = tmp_path / "masc.service"
    copy.write_text(text)
    return copy


def _analyze(*args: str) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("systemd-analyze")
    if executable is None:
        pytest.skip("systemd-analyze is not installed")
    return subprocess.run(
        [executable, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"SYSTEMD_LOG_COLOR": "0", "SYSTEMD_PAGER": "", "PATH": "/usr/bin:/bin"},
    )


def test_systemd_analyze_verify_accepts_every_line(tmp_path: Path) -> None:
    """verify exits 0 even for unknown keys and unparsable values ("Unknown key ...,
    ignoring"), so any line it prints about the unit is a failure."""
    copy = _runnable_copy(tmp_path)
    result = _analyze("verify", "--man=no", str(copy))
    output = result.stdout + result.stderr
    about_unit = [line for line in output.splitlines() if "masc.service" in line]
    if result.returncode != 0 and not about_unit:
        # Nothing said about the unit: systemd-analyze could not run here (e.g. a container
        # without the runtime it needs), which says nothing about the file.
        pytest.skip(f"systemd-analyze verify cannot run here: {output.strip()}")
    assert about_unit == [], output
    assert result.returncode == 0, output


def test_systemd_analyze_security_exposure_is_low(tmp_path: Path) -> None:
    """A guard against a sandboxing line being dropped by accident (offline: needs no bus)."""
    copy = _runnable_copy(tmp_path)
    result = _analyze("security", "--offline=yes", "--no-pager", str(copy))
    output = result.stdout + result.stderr
    match = re.search(r"Overall exposure level for masc\.service: ([0-9.]+)", output)
    if match is None:
        pytest.skip(f"systemd-analyze security --offline is unavailable here: {output.strip()}")
    assert float(match.group(1)) <= 2.5, output
