"""mascctl against a fake daemon: a real Unix socket served by a thread with canned answers.

The canned results are built from the models of masc.api.control, so they are what a daemon
of this version may say.  Each test checks the exact request line mascctl sent, its exit
status and what it printed; none waits for anything but the fake's answer.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest
from pydantic import BaseModel

from masc.api.control import (
    ActionResult,
    CachedClaim,
    ClaimInfo,
    ClaimsResult,
    ClashesResult,
    ClashInfo,
    GrantHolding,
    GribExporterInfo,
    HistoryItem,
    MaasInfo,
    MaasResult,
    PeerDetail,
    PeerDetailResult,
    PeerInfo,
    PeerPlan,
    PeersResult,
    PrefixesResult,
    PrefixInfo,
    ReloadResult,
    Response,
    SettingChange,
    SummaryResult,
)
from masc.cli import mascctl

T0 = 1_700_000_000  # 2023-11-14 22:13:20 UTC
HANG = b"hang"  # the fake reads the request, then says nothing until the client goes


class FakeDaemon:
    """Answers every connection's request line with ``reply`` (None: close without answer)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.requests: list[dict[str, Any]] = []
        self.reply: bytes | None = b""
        self._stopping = False
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(path)
        self._listener.listen(8)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def answer(self, result: BaseModel | dict[str, Any], **response: Any) -> dict[str, Any]:
        """Reply with ``result``; returns it as the JSON object the client will see."""
        raw = result.model_dump(mode="json") if isinstance(result, BaseModel) else result
        body = {**Response(ok=True, result=raw).model_dump(mode="json"), **response}
        self.reply = json.dumps(body).encode() + b"\n"
        return raw

    def fail(self, code: str, message: str) -> dict[str, str]:
        error = {"code": code, "message": message}
        self.reply = json.dumps({"format_version": 1, "ok": False, "error": error}).encode()
        self.reply += b"\n"
        return error

    def _serve(self) -> None:
        while True:
            conn, _ = self._listener.accept()
            with conn:
                if self._stopping:
                    return
                data = b""
                while b"\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                if b"\n" not in data:
                    continue
                self.requests.append(json.loads(data.split(b"\n", 1)[0]))
                if self.reply is HANG:
                    while conn.recv(65536):
                        pass
                elif self.reply is not None:
                    conn.sendall(self.reply)

    def stop(self) -> None:
        self._stopping = True
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as wake:
            wake.connect(self.path)  # accept() returns and sees _stopping
        self._thread.join(timeout=5)
        self._listener.close()


@pytest.fixture
def short_dir() -> Iterator[str]:
    # AF_UNIX paths must stay under 108 bytes; pytest's tmp_path can be longer.
    directory = tempfile.mkdtemp(prefix="mascctl-", dir="/tmp")
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def daemon(short_dir: str) -> Iterator[FakeDaemon]:
    fake = FakeDaemon(os.path.join(short_dir, "ctl.sock"))
    yield fake
    fake.stop()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = mascctl.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- canned results, valid per the models ------------------------------------------------------

CHILD = PeerInfo(
    address="192.0.2.2",
    port=2909,
    relation="child",
    domain_id=65003,
    state="Established",
    passive=False,
    hold_time=30,
    configured_hold_time=30,
    remote_node_id="192.0.2.2",
    internal=False,
    established_for=125.0,
    flaps=1,
    last_error="",
    messages_in={"OPEN": 1, "UPDATE": 3, "KEEPALIVE": 7},
    messages_out={"OPEN": 1, "UPDATE": 2, "KEEPALIVE": 7, "NOTIFICATION": 1},
)
SIBLING = PeerInfo(
    address="192.0.2.3",
    port=2909,
    relation="sibling",
    domain_id=65002,
    parent_domain_id=65000,
    state="Idle",
    passive=True,
    configured_hold_time=90,
    flaps=0,
    last_error="Cease: maintenance",
    messages_in={},
    messages_out={},
    admin_down=True,
)
DETAIL = PeerDetail(
    **CHILD.model_dump(),
    session_key="192.0.2.2",
    local_address="192.0.2.1",
    connect_retry=30.0,
    scope_boundary=["239.255.0.0/16"],
    restart_at=None,
    remote_hold_time=90,
)
SUMMARY = SummaryResult(
    version="0.1.0",
    domain_id=65001,
    node_id="192.0.2.1",
    address_family="ipv4",
    top_level_domain=True,
    parent_domain_ids=[],
    peers_configured=2,
    peers_established=1,
    uptime=3723.0,
    non_leaf=True,
    clash_resolution="manual",
    prefixes_managed=1,
    prefixes_local=1,
    addresses_managed=65536,
    addresses_local=256,
    addresses_granted=4096,
    addresses_in_use=120,
    claims_pending=1,
    claims_cached=12,
    clashes_pending=1,
    maas_registered=1,
    config_path="/etc/masc/masc.toml",
    reloads=2,
    last_reload=T0,
    grib_prefixes=1,
    grib_exporters=[
        GribExporterInfo(name="kernel", in_sync=True, installed=1, syncs=3, failures=0,
                         last_sync=T0),
        GribExporterInfo(name="frr", in_sync=False, installed=0, syncs=1, failures=2,
                         last_error="cannot run /usr/bin/vtysh: not found"),
    ],
)  # fmt: skip
GRANT = GrantHolding(maas="alpha", prefix="239.192.0.0/20", expires=T0 + 86400, active=True)
PREFIXES = PrefixesResult(
    non_leaf=True,
    prefixes=[
        PrefixInfo(
            prefix="239.192.0.0/16",
            kind="managed",
            expires=T0 + 30 * 86400,
            claimed_at=T0 - 86400,
            origin_node="192.0.2.1",
            domain_id=65001,
            parent_domain_id=0,
            usable=["239.192.0.0/16"],
            in_grib=True,
            renewed_at=T0,
            maas=[GRANT],
            history=[
                HistoryItem(at=T0, event="allocated", prefix="239.192.0.0/16", detail="renewed"),
                HistoryItem(at=T0 - 86400, event="claim_sent", prefix="239.192.0.0/16", detail=""),
            ],
        ),
        PrefixInfo(
            prefix="239.193.0.0/24",
            kind="local",
            expires=T0 + 3600,
            claimed_at=T0 - 7200,
            origin_node="192.0.2.1",
            domain_id=65001,
            usable=["239.193.0.0/24"],
            in_grib=False,
            state="deprecated",
        ),
    ],
)
CLAIM = ClaimInfo(
    prefix="239.194.0.0/16",
    type="NEW_CLAIM",
    kind="managed",
    purpose="demand",
    state="pending",
    timestamp=T0,
    lifetime=30 * 86400,
    time_left=172_000.0,
)
CLASH = ClashInfo(
    clash_id=7,
    local="239.194.0.0/24",
    winner="239.194.0.0/23",
    winner_domain_id=65002,
    detected_at=T0,
    state="pending",
)
CLAIMS = ClaimsResult(
    claims=[CLAIM],
    cached=12,
    foreign=[
        CachedClaim(
            type="PREFIX_IN_USE",
            prefix="239.200.0.0/16",
            origin_domain=65002,
            origin_node="192.0.2.9",
            origin_role="SIBLING",
            timestamp=T0,
            lifetime=86400,
            holdtime=90,
            expires=T0 + 86400,
        )
    ],
    foreign_total=5,
    clashes=[CLASH],
)
CLASHES = ClashesResult(clash_resolution="manual", clashes=[CLASH])
MAAS = MaasResult(
    maas=[
        MaasInfo(
            name="alpha",
            scopes=["239.192.0.0/14"],
            connected=True,
            registered_at=T0,
            in_use=120,
            grants=[GRANT],
        )
    ]
)
CLAIMING = ActionResult(message="claiming 256 addresses", claim=CLAIM)
RENEWED = ActionResult(message="renewal of 239.192.0.0/16 sent", prefix="239.192.0.0/16")
RELEASED = ActionResult(message="239.192.0.0/16 released", prefix="239.192.0.0/16")
ACCEPTED = ActionResult(message="clash 7 accepted: 239.194.0.0/24 given up")
WITHDRAWN = ActionResult(message="clash 7: 239.194.0.0/24 withdrawn")
DOWN = ActionResult(message="192.0.2.2 stopped (Cease)", sessions=["192.0.2.2"])
RESET = ActionResult(message="192.0.2.3 reset", sessions=["192.0.2.3@65000"])
UP = ActionResult(message="192.0.2.2 started", sessions=["192.0.2.2"])
FORGOTTEN = ActionResult(message="MAAS alpha forgotten; 1 grant returned")
PLAN = [
    PeerPlan(
        address="192.0.2.2",
        port=2909,
        parent_domain_id=None,
        action="reset",
        changed=["hold_time"],
        reason="hold time changed (negotiated in OPEN, §6.2)",
    ),
    PeerPlan(
        address="192.0.2.3",
        port=2909,
        parent_domain_id=65000,
        action="no-op",
        changed=[],
        reason="",
    ),
    PeerPlan(
        address="192.0.2.4",
        port=2909,
        parent_domain_id=None,
        action="start",
        changed=[],
        reason="new peer",
    ),
]
WAITING = SettingChange(key="timers.waiting_period", old="172800.0", new="86400.0", effect="live")
RELOADED = ReloadResult(
    applied=True,
    config_path="/etc/masc/masc.toml",
    peers=PLAN,
    settings=[WAITING],
    restart_required=[],
    warnings=[],
)
RELOAD_PLAN = ReloadResult(
    applied=False,
    config_path="/etc/masc/masc.toml",
    peers=PLAN,
    settings=[
        WAITING,
        SettingChange(key="local.domain_id", old="65001", new="65009", effect="restart"),
    ],
    restart_required=["local.domain_id"],
    warnings=["metrics.listen 0.0.0.0:9587 is not a loopback address"],
)


class Case(NamedTuple):
    argv: list[str]
    verb: str
    args: dict[str, Any]
    result: BaseModel
    facts: list[str]  # what the human output must contain, in this order


CASES = {
    "show summary": Case(
        ["show", "summary"],
        "show summary",
        {},
        SUMMARY,
        ["domain 65001", "non-leaf", "1/2 Established", "1h02m", "65536 addresses",
         "1 pending (resolution manual)", "/etc/masc/masc.toml", "2 reload(s)",
         "G-RIB", "1 prefix(es)", "exporter kernel: in sync; 1 installed",
         "exporter frr: NOT in sync: cannot run /usr/bin/vtysh: not found"],
    ),
    "show peers": Case(
        ["show", "peers"],
        "show peers",
        {},
        PeersResult(peers=[CHILD, SIBLING]),
        ["192.0.2.2:2909", "child", "Established", "2m05s",
         "192.0.2.3:2909", "sibling/65000", "Idle (admin down)", "Cease: maintenance"],
    ),
    "show peer": Case(
        ["show", "peer", "192.0.2.2"],
        "show peer",
        {"address": "192.0.2.2"},
        PeerDetailResult(peers=[DETAIL]),
        ["192.0.2.2:2909", "child", "65003", "Established"],
    ),
    "show peer --parent": Case(
        ["show", "peer", "192.0.2.3", "--parent", "65000"],
        "show peer",
        {"address": "192.0.2.3", "parent_domain_id": 65000},
        PeerDetailResult(
            peers=[PeerDetail(**{**DETAIL.model_dump(), **SIBLING.model_dump()})]
        ),
        ["192.0.2.3:2909", "sibling/65000", "Idle (admin down)"],
    ),
    "show peer --detail": Case(
        ["show", "peer", "192.0.2.2", "--detail"],
        "show peer",
        {"address": "192.0.2.2"},
        PeerDetailResult(peers=[DETAIL]),
        ["peer 192.0.2.2:2909 (child)", "session key:", "state:", "Established",
         "local address:", "192.0.2.1", "30s negotiated, 30s configured, 90s proposed",
         "scope boundary:", "239.255.0.0/16",
         "MESSAGE", "IN", "OUT", "OPEN", "UPDATE", "3", "2", "KEEPALIVE", "NOTIFICATION"],
    ),
    "show prefixes": Case(
        ["show", "prefixes"],
        "show prefixes",
        {},
        PREFIXES,
        ["non-leaf", "239.192.0.0/16", "managed", "active", "yes",
         "239.193.0.0/24", "local", "deprecated",
         "239.192.0.0/16 (managed", "alpha", "239.192.0.0/20",
         "2023-11-14 22:13:20  allocated", "renewed", "claim_sent"],
    ),
    "show prefixes --history": Case(
        ["show", "prefixes", "--history", "0"],
        "show prefixes",
        {"history": 0},
        PrefixesResult(
            non_leaf=False,
            prefixes=[PREFIXES.prefixes[1].model_copy(update={"history": []})],
        ),
        ["leaf", "239.193.0.0/24", "deprecated"],
    ),
    "show claims": Case(
        ["show", "claims"],
        "show claims",
        {},
        CLAIMS,
        ["239.194.0.0/16", "NEW_CLAIM", "pending", "1 of 5 shown",
         "PREFIX_IN_USE", "239.200.0.0/16", "65002", "12 attribute(s)",
         "7", "239.194.0.0/24", "239.194.0.0/23"],
    ),
    "show claims filtered": Case(
        ["show", "claims", "--type", "prefix_in_use", "--domain", "65002",
         "--prefix", "239.200.0.0/16", "--limit", "10"],
        "show claims",
        {"type": "PREFIX_IN_USE", "domain_id": 65002, "prefix": "239.200.0.0/16", "limit": 10},
        ClaimsResult(claims=[], cached=12, foreign=CLAIMS.foreign, foreign_total=1, clashes=[]),
        ["none in flight", "1 of 1 shown", "239.200.0.0/16"],
    ),
    "show clashes": Case(
        ["show", "clashes"],
        "show clashes",
        {},
        CLASHES,
        ["manual", "7", "239.194.0.0/24", "239.194.0.0/23", "65002", "pending"],
    ),
    "show maas": Case(
        ["show", "maas"],
        "show maas",
        {},
        MAAS,
        ["alpha", "yes", "120", "239.192.0.0/14", "alpha:", "239.192.0.0/20"],
    ),
    "claim": Case(
        ["claim", "--size", "256"],
        "claim",
        {"size": 256, "kind": "managed"},
        CLAIMING,
        ["claiming 256 addresses", "239.194.0.0/16", "NEW_CLAIM", "pending"],
    ),
    "claim --lifetime --local": Case(
        ["claim", "--size", "256", "--lifetime", "30d", "--local"],
        "claim",
        {"size": 256, "lifetime": 30 * 86400.0, "kind": "local"},
        CLAIMING,
        ["claiming 256 addresses"],
    ),
    "claim --lifetime seconds": Case(
        ["claim", "--size", "16", "--lifetime", "90"],
        "claim",
        {"size": 16, "lifetime": 90.0, "kind": "managed"},
        CLAIMING,
        ["claiming"],
    ),
    "renew": Case(
        ["renew", "239.192.0.0/16"],
        "renew",
        {"prefix": "239.192.0.0/16"},
        RENEWED,
        ["renewal of 239.192.0.0/16 sent"],
    ),
    "release": Case(
        ["release", "239.192.0.0/16"],
        "release",
        {"prefix": "239.192.0.0/16"},
        RELEASED,
        ["239.192.0.0/16 released"],
    ),
    "clash accept": Case(
        ["clash", "accept", "7"], "clash", {"id": 7, "action": "accept"}, ACCEPTED, ["accepted"]
    ),
    "clash withdraw": Case(
        ["clash", "withdraw", "7"],
        "clash",
        {"id": 7, "action": "withdraw"},
        WITHDRAWN,
        ["withdrawn"],
    ),
    "peer down --reason": Case(
        ["peer", "192.0.2.2", "down", "--reason", "maintenance"],
        "peer",
        {"address": "192.0.2.2", "action": "down", "reason": "maintenance"},
        DOWN,
        ["192.0.2.2 stopped (Cease)", "sessions: 192.0.2.2"],
    ),
    "peer reset --parent": Case(
        ["peer", "192.0.2.3", "reset", "--parent", "65000"],
        "peer",
        {"address": "192.0.2.3", "action": "reset", "parent_domain_id": 65000},
        RESET,
        ["192.0.2.3 reset", "192.0.2.3@65000"],
    ),
    "peer up": Case(
        ["peer", "192.0.2.2", "up"],
        "peer",
        {"address": "192.0.2.2", "action": "up"},
        UP,
        ["192.0.2.2 started"],
    ),
    "maas forget": Case(
        ["maas", "forget", "alpha"], "maas forget", {"name": "alpha"}, FORGOTTEN, ["forgotten"]
    ),
    "reload": Case(
        ["reload"],
        "reload",
        {"dry_run": False},
        RELOADED,
        ["/etc/masc/masc.toml", "ADDRESS", "ACTION", "CHANGED", "REASON",
         "192.0.2.2:2909", "reset", "hold_time", "192.0.2.3:2909 (parent 65000)", "no-op",
         "192.0.2.4:2909", "start", "new peer",
         "timers.waiting_period", "172800.0", "86400.0", "live", "applied"],
    ),
    "reload --dry-run": Case(
        ["reload", "--dry-run"],
        "reload",
        {"dry_run": True},
        RELOAD_PLAN,
        ["192.0.2.2:2909", "reset", "hold_time", "192.0.2.4:2909", "start",
         "timers.waiting_period", "live", "local.domain_id", "restart",
         "restart required for: local.domain_id", "warning: metrics.listen",
         "dry run: nothing changed"],
    ),
}  # fmt: skip


def _in_order(text: str, facts: list[str]) -> None:
    at = 0
    for fact in facts:
        found = text.find(fact, at)
        assert found >= 0, f"{fact!r} missing (after offset {at}) in:\n{text}"
        at = found + len(fact)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_human_output_states_the_key_facts(
    case: Case, daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon.answer(case.result)
    code, out, err = run(capsys, "--socket", daemon.path, *case.argv)
    assert (code, err) == (0, "")
    assert daemon.requests == [{"verb": case.verb, "args": case.args}]
    _in_order(out, case.facts)


@pytest.mark.parametrize("where", ["before", "after"])
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_json_prints_the_result_exactly_before_or_after_the_verb(
    case: Case, where: str, daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    result = daemon.answer(case.result)
    if where == "before":
        argv = ["--socket", daemon.path, "--json", *case.argv]
    else:
        argv = [*case.argv, "--json", "--socket", daemon.path]
    code, out, err = run(capsys, *argv)
    assert (code, err) == (0, "")
    assert daemon.requests == [{"verb": case.verb, "args": case.args}]
    assert json.loads(out) == result
    assert out == json.dumps(result, indent=2) + "\n"


def test_every_verb_of_the_control_socket_has_a_case() -> None:
    verbs = {case.verb for case in CASES.values()}
    assert verbs == {
        "show summary",
        "show peers",
        "show peer",
        "show prefixes",
        "show claims",
        "show clashes",
        "show maas",
        "claim",
        "renew",
        "release",
        "clash",
        "peer",
        "maas forget",
        "reload",
    }


def test_options_between_group_and_verb_and_short_socket(
    daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    result = daemon.answer(CLASHES)
    code, out, _ = run(capsys, "show", "--json", "clashes", "-s", daemon.path)
    assert code == 0 and json.loads(out) == result


def test_domain_ids_may_be_written_as_addresses(
    daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    """§7.2 / the config's rule: a domain id may be an address whose value is used."""
    daemon.answer(CLAIMS)
    code, _, _ = run(capsys, "-s", daemon.path, "show", "claims", "--domain", "0.0.1.2")
    assert code == 0
    assert daemon.requests[0]["args"] == {"domain_id": 258}


def test_show_peer_lists_every_sibling_session_of_the_address(
    daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    """§4.4: one sibling address may carry one session per common parent."""
    other = DETAIL.model_copy(
        update={"relation": "sibling", "parent_domain_id": 65010, "session_key": "b"}
    )
    first = DETAIL.model_copy(
        update={"relation": "sibling", "parent_domain_id": 65000, "session_key": "a"}
    )
    daemon.answer(PeerDetailResult(peers=[first, other]))
    code, out, _ = run(capsys, "-s", daemon.path, "show", "peer", "192.0.2.2", "--detail")
    assert code == 0
    _in_order(out, ["under parent 65000", "session key:", "a", "under parent 65010", "b"])


# --- errors from the daemon --------------------------------------------------------------------


def test_error_answer_exits_1_with_code_and_message_on_stderr(
    daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon.fail("not_found", "no session with address 192.0.2.9")
    code, out, err = run(capsys, "-s", daemon.path, "show", "peer", "192.0.2.9")
    assert (code, out) == (1, "")
    assert err == "mascctl: not_found: no session with address 192.0.2.9\n"


@pytest.mark.parametrize("where", ["before", "after"])
def test_error_answer_with_json_prints_the_error_object(
    where: str, daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    error = daemon.fail("restart_required", "local.domain_id changed; restart masc")
    argv = ["reload", "--json"] if where == "after" else ["--json", "reload"]
    code, out, err = run(capsys, "-s", daemon.path, *argv)
    assert code == 1
    assert json.loads(out) == error
    assert "mascctl: restart_required: local.domain_id changed" in err


def test_an_error_code_this_mascctl_does_not_know_is_still_an_error(
    daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    """A newer daemon may add error codes; that is an answer, not garbage (exit 1, not 3)."""
    daemon.fail("rate_limited", "slow down")
    code, _, err = run(capsys, "-s", daemon.path, "claim", "--size", "256")
    assert code == 1 and "mascctl: rate_limited: slow down" in err


# --- format versions and newer daemons ---------------------------------------------------------


def test_newer_daemon_with_extra_fields_still_prints(
    daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    peers = PeersResult(peers=[CHILD]).model_dump(mode="json")
    peers["peers"][0]["bfd"] = {"state": "up"}
    peers["generation"] = 4
    result = daemon.answer(peers)
    code, out, _ = run(capsys, "-s", daemon.path, "show", "peers")
    assert code == 0 and "192.0.2.2:2909" in out and "Established" in out
    code, out, _ = run(capsys, "-s", daemon.path, "--json", "show", "peers")
    assert code == 0 and json.loads(out) == result  # passed through, extra fields included


def test_format_version_mismatch_warns_and_proceeds(
    daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon.answer(PeersResult(peers=[CHILD]), format_version=2)
    code, out, err = run(capsys, "-s", daemon.path, "show", "peers")
    assert code == 0 and "192.0.2.2:2909" in out
    assert "warning" in err and "format 2" in err


def test_result_that_does_not_fit_the_model_exits_3_but_json_passes_it(
    daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    result = daemon.answer({"peers": [{"address": "192.0.2.2"}]})
    code, out, err = run(capsys, "-s", daemon.path, "show", "peers")
    assert code == 3 and out == "" and "try --json" in err
    code, out, _ = run(capsys, "-s", daemon.path, "show", "peers", "--json")
    assert code == 0 and json.loads(out) == result


# --- the daemon cannot be reached or does not answer -------------------------------------------


def test_no_socket_exits_3(short_dir: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = os.path.join(short_dir, "none.sock")
    code, out, err = run(capsys, "--socket", path, "show", "peers")
    assert (code, out) == (3, "")
    assert f"cannot reach the daemon at {path}" in err and "socket missing" in err


def test_stale_socket_is_connection_refused(
    short_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = os.path.join(short_dir, "stale.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as bound:
        bound.bind(path)  # bound, never listening: what a killed daemon leaves behind
        code, _, err = run(capsys, "--socket", path, "show", "summary")
    assert code == 3 and "connection refused" in err


def test_a_regular_file_is_not_a_socket(short_dir: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = os.path.join(short_dir, "file")
    with open(path, "w"):
        pass
    code, _, err = run(capsys, "--socket", path, "show", "summary")
    assert code == 3 and "not a socket" in err


def test_permission_denied_names_the_mode_and_the_way_out(
    daemon: FakeDaemon, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The errno mapping, whoever runs the test (root is never refused by the mode)."""

    def refuse(self: socket.socket, address: object) -> None:
        raise PermissionError(13, "Permission denied")

    os.chmod(daemon.path, 0o600)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    code, out, err = run(capsys, "--socket", daemon.path, "show", "summary")
    assert (code, out) == (3, "")
    assert f"permission denied: {daemon.path} is mode 0600" in err
    assert "run as the daemon's user or use the read-only socket" in err


@pytest.mark.parametrize(
    "reply",
    [b"not json\n", b"[1, 2]\n", b'{"ok": true}\n', b'{"ok": false, "error": {}}\n', b"\xff\n"],
    ids=["not-json", "not-an-object", "ok-without-result", "error-without-code", "not-utf8"],
)
def test_garbled_answer_exits_3(
    reply: bytes, daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon.reply = reply
    code, out, err = run(capsys, "-s", daemon.path, "show", "summary")
    assert (code, out) == (3, "") and "garbled answer" in err


def test_closed_without_answer_exits_3(
    daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon.reply = None
    code, _, err = run(capsys, "-s", daemon.path, "show", "summary")
    assert code == 3 and "closed the connection without answering" in err


def test_no_answer_within_the_timeout_exits_3(
    daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon.reply = HANG
    code, _, err = run(capsys, "-s", daemon.path, "--timeout", "50ms", "show", "summary")
    assert code == 3 and "no answer within 0.05s" in err
    assert daemon.requests == [{"verb": "show summary", "args": {}}]


# --- usage -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["clash", "maybe", "1"],
        ["clash", "accept", "0"],
        ["claim"],
        ["claim", "--size", "0"],
        ["claim", "--size", "-4"],
        ["claim", "--size", "256", "--lifetime", "0"],
        ["claim", "--size", "256", "--lifetime", "soon"],
        ["renew", "239.192.0.1/16"],  # host bits set: not a prefix
        ["release", "nowhere"],
        ["show", "peer", "router-1"],
        ["show", "claims", "--type", "HELLO"],
        ["show", "prefixes", "--history", "-1"],
        ["peer", "192.0.2.2", "sideways"],
        ["peer", "192.0.2.2", "down", "--reason", "x" * 201],  # the daemon's model: <= 200
        ["maas"],
        ["show"],
        ["show", "everything"],
        ["--timeout", "0", "show", "peers"],
        [],
    ],
)
def test_bad_usage_exits_2_and_sends_nothing(
    argv: list[str], daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "-s", daemon.path, *argv)
    assert code == 2 and out == "" and err
    assert daemon.requests == []


def test_help_exits_0_and_documents_the_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    assert "exit status" in out and "permission denied" in out


def test_request_returns_the_response_model(daemon: FakeDaemon) -> None:
    """The demo's helper: one request, the Response model back."""
    daemon.answer(SUMMARY)
    response = mascctl.request(daemon.path, "show summary")
    assert response.ok and SummaryResult.model_validate(response.result) == SUMMARY
