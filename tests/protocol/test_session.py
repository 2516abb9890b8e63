"""Behaviour of the session FSM over time (RFC 2909 §10, §7.2, §7.4, §8.4-§8.8).

Time is a plain number passed in: the tests step a virtual clock by calling handle_timer at
next_deadline(), exactly what the trio shell does with a real or mock clock.
"""

from __future__ import annotations

import random
from dataclasses import replace
from ipaddress import IPv4Network

import pytest

from masc.protocol.constants import ClaimType, Role
from masc.protocol.errors import CoreMisuse, ErrorCode
from masc.protocol.session import (
    Close,
    Dial,
    Effect,
    NotificationReceived,
    PeerSession,
    Send,
    SessionDown,
    SessionUp,
    State,
    StateChanged,
    UpdateReceived,
)
from masc.protocol.wire import (
    Claim,
    DomainId,
    Keepalive,
    NodeId,
    Notification,
    Open,
    Update,
    encode,
)
from masc.protocol.wire.codec import encode_claim
from tests.protocol.fsm_helpers import (
    HOLD,
    LOCAL_NODE,
    PEER_NODE,
    bring_to,
    closed,
    config,
    notifications,
    peer_open,
    sent,
)

CLAIM = Claim(
    ClaimType.PREFIX_MANAGED,
    Role.INTERNAL,
    1000,
    2000,
    2000,
    DomainId(65000),
    NodeId(1),
    IPv4Network("239.192.0.0/16"),
)


def update_frame(*attributes: bytes) -> bytes:
    body = b"".join(attributes)
    return (4 + len(body)).to_bytes(2, "big") + bytes([2, 0]) + body


def run_until(s: PeerSession, end: float) -> list[tuple[float, Effect]]:
    """Fire timers up to ``end``; returns (time, effect) pairs."""
    out: list[tuple[float, Effect]] = []
    while (deadline := s.next_deadline()) is not None and deadline <= end:
        out += [(deadline, e) for e in s.handle_timer(now=deadline)]
    return out


# --- §7.2 hold time negotiation, §7.4 keepalive cadence -----------------------------------


def test_s7_2_hold_time_is_min_of_ours_and_theirs() -> None:
    s = bring_to(State.OPEN_SENT, config(hold_time=90))
    s.data_received(1, encode(peer_open(s.config, hold_time=30)), now=0)
    s.data_received(1, encode(Keepalive()), now=0)
    assert s.negotiated_hold_time == 30
    s2 = bring_to(State.OPEN_SENT, config(hold_time=20))
    s2.data_received(1, encode(peer_open(s2.config, hold_time=300)), now=0)
    s2.data_received(1, encode(Keepalive()), now=0)
    assert s2.negotiated_hold_time == 20


@pytest.mark.parametrize(("ours", "theirs"), [(0, 90), (90, 0), (0, 0)])
def test_s7_4_zero_hold_time_disables_hold_and_keepalive_timers(ours: int, theirs: int) -> None:
    s = bring_to(State.OPEN_SENT, config(hold_time=ours))
    s.data_received(1, encode(peer_open(s.config, hold_time=theirs)), now=0)
    s.data_received(1, encode(Keepalive()), now=0)
    assert s.state is State.ESTABLISHED
    assert s.negotiated_hold_time == 0
    assert s.next_deadline() is None  # "periodic KEEPALIVE messages MUST NOT be sent"
    assert run_until(s, 10**9) == []


def test_s7_4_keepalive_every_third_of_hold_time() -> None:
    s = bring_to(State.ESTABLISHED)  # negotiated 90, established at t=0
    keepalives = [t for t, e in run_until(s, 89) if isinstance(e, Send) and len(e.data) == 4]
    assert keepalives == [30, 60]


def test_s7_4_keepalive_cadence_with_a_chatty_peer_and_update_restart() -> None:
    s = bring_to(State.ESTABLISHED)
    sends: list[float] = []
    for t in range(1, 200):
        s.data_received(1, encode(Keepalive()), now=t - 0.5)  # peer keeps us alive
        if t == 45:
            s.send_update(Update((CLAIM,)), now=t)  # §10: sending an UPDATE restarts it
        for e in s.handle_timer(now=t):
            if isinstance(e, Send):
                sends.append(t)
    assert sends == [30, 75, 105, 135, 165, 195]


@pytest.mark.parametrize(("hold", "interval"), [(3, 1.0), (4, 4 / 3), (240, 80.0)])
def test_s7_4_keepalive_never_more_than_once_a_second(hold: int, interval: float) -> None:
    s = bring_to(State.OPEN_SENT, config(hold_time=hold))
    s.data_received(1, encode(peer_open(s.config)), now=0)
    s.data_received(1, encode(Keepalive()), now=0)
    assert s._connections[1].keepalive_at == pytest.approx(interval)
    assert interval >= 1.0


# --- §8.4 hold timer expiry, §10 automatic restart back-off ---------------------------------


def test_s8_4_hold_timer_expiry_sends_notification_and_goes_idle() -> None:
    s = bring_to(State.ESTABLISHED)
    effects = s.handle_timer(now=HOLD)
    # First the keepalive due at 30 and 60 would have gone; jump straight to 90.
    notes = notifications(effects)
    assert [(n.code, n.subcode, n.open_bit, n.data) for n in notes] == [
        (ErrorCode.HOLD_TIMER_EXPIRED, 0, False, b"")
    ]
    assert any(isinstance(e, SessionDown) for e in effects)
    assert s.state is State.IDLE
    assert s.restart_at == pytest.approx(HOLD + 60)


def test_s10_restart_backoff_doubles_from_60s_and_caps_at_24h() -> None:
    s = bring_to(State.ESTABLISHED)
    now = float(HOLD)
    s.handle_timer(now=now)  # hold expiry: first error
    delays = []
    for _ in range(14):
        assert s.state is State.IDLE
        restart = s.restart_at
        assert restart is not None
        delays.append(restart - now)
        now = restart
        effects = s.handle_timer(now=now)  # automatic Start
        assert any(isinstance(e, Dial) for e in effects) and s.state is State.CONNECT
        s.connection_made(100 + len(delays), outbound=True, now=now)
        # The peer answers with garbage: an error each time, without ever reaching Established.
        s.data_received(100 + len(delays), encode(Keepalive()), now=now)
    assert delays[:5] == [60, 120, 240, 480, 960]
    assert max(delays) == 86_400 and delays[-1] == 86_400


def test_s10_restart_backoff_is_configurable_and_resets_after_a_stable_session() -> None:
    s = bring_to(State.ESTABLISHED, config(restart_backoff_initial=0.5, restart_backoff_max=4))
    s.handle_timer(now=HOLD)
    assert s.restart_at == pytest.approx(HOLD + 0.5)
    # Up again and stable for longer than the initial back-off: the next error starts over.
    now = HOLD + 0.5
    s.handle_timer(now=now)
    s.connection_made(2, outbound=True, now=now)
    s.data_received(2, encode(peer_open(s.config)), now=now)
    s.data_received(2, encode(Keepalive()), now=now)
    assert s.state is State.ESTABLISHED
    s.data_received(2, encode(Notification(False, ErrorCode.UPDATE_MESSAGE, 1)), now=now + 5)
    assert s.restart_at == pytest.approx(now + 5 + 0.5)


def test_s10_cease_received_goes_idle_then_active_at_once() -> None:
    s = bring_to(State.ESTABLISHED)
    effects = s.data_received(1, encode(Notification(False, ErrorCode.CEASE, 0)), now=5)
    changes = [(e.old, e.new) for e in effects if isinstance(e, StateChanged)]
    assert changes == [(State.ESTABLISHED, State.IDLE), (State.IDLE, State.ACTIVE)]
    assert notifications(effects) == []  # never answer a NOTIFICATION that closes
    assert s.restart_at is None
    assert s.next_deadline() == pytest.approx(5 + 30)  # dial again after ConnectRetry
    assert [type(e) for t, e in run_until(s, 35)] == [Dial, StateChanged]


def test_s10_stop_sends_cease_and_never_restarts() -> None:
    s = bring_to(State.ESTABLISHED)
    effects = s.stop(now=3)
    assert [(n.code, n.open_bit) for n in notifications(effects)] == [(ErrorCode.CEASE, False)]
    assert s.state is State.IDLE
    assert s.next_deadline() is None


def test_s10_idle_refuses_incoming_connections() -> None:
    s = bring_to(State.ESTABLISHED)
    s.handle_timer(now=HOLD)  # error: Idle with a pending restart
    effects = s.connection_made(7, outbound=False, now=HOLD + 1)
    assert closed(effects) == [7] and sent(effects) == []


def test_s10_passive_peer_is_never_dialled() -> None:
    s = PeerSession(config(passive=True))
    effects = s.start(now=0)
    assert s.state is State.ACTIVE and not any(isinstance(e, Dial) for e in effects)
    effects = s.connection_made(1, outbound=False, now=1)
    assert s.state is State.OPEN_SENT and [type(m) for m in sent(effects)] == [Open]


def test_s10_connect_retry_redials_while_connect_fails() -> None:
    s = bring_to(State.CONNECT)
    s.connect_failed(now=1)
    assert s.state is State.ACTIVE
    effects = s.handle_timer(now=31)
    assert s.state is State.CONNECT and sum(isinstance(e, Dial) for e in effects) == 1


def test_s10_connect_retry_is_jittered_up_to_a_quarter_below_its_value() -> None:
    """Two ends that lose a session together must not keep dialling in lock step: each
    period is drawn from [0.75, 1] x ConnectRetry (docs/conformance.md)."""
    periods = []
    s = PeerSession(config(), rng=random.Random(7))
    s.start(now=0)
    now = 0.0
    for _ in range(50):
        deadline = s.next_deadline()
        assert deadline is not None
        periods.append(deadline - now)
        now = deadline
        s.handle_timer(now=now)  # ConnectRetry expired: dial again, restart it
        s.connect_failed(now=now)  # and that dial fails at once: restart it again
        assert s.state is State.ACTIVE
        now_deadline = s.next_deadline()
        assert now_deadline is not None
        periods.append(now_deadline - now)
    assert all(22.5 <= p <= 30 for p in periods)
    assert max(periods) - min(periods) > 5  # drawn, not one fixed shortened value
    other = PeerSession(config(), rng=random.Random(8))
    other.start(now=0)
    s = PeerSession(config(), rng=random.Random(7))
    s.start(now=0)
    assert other.next_deadline() != s.next_deadline()


def test_s10_connect_retry_is_exact_without_an_rng_or_with_jitter_zero() -> None:
    s = PeerSession(config())
    s.start(now=0)
    assert s.next_deadline() == 30
    s = PeerSession(config(connect_retry_jitter=0.0), rng=random.Random(7))
    s.start(now=0)
    assert s.next_deadline() == 30


@pytest.mark.parametrize("jitter", [-0.1, 1.0, 1.5])
def test_connect_retry_jitter_outside_0_1_is_refused(jitter: float) -> None:
    with pytest.raises(CoreMisuse, match="connect_retry_jitter"):
        config(connect_retry_jitter=jitter)


def test_s10_internal_vs_external_detection() -> None:
    internal = config(peer_role=Role.INTERNAL, peer_domain=DomainId(65001))
    s = bring_to(State.OPEN_SENT, internal)
    s.data_received(1, encode(peer_open(internal)), now=0)
    up = [e for e in s.data_received(1, encode(Keepalive()), now=0) if isinstance(e, SessionUp)]
    assert up[0].internal is True
    s2 = bring_to(State.OPEN_SENT)
    s2.data_received(1, encode(peer_open(s2.config)), now=0)
    up = [e for e in s2.data_received(1, encode(Keepalive()), now=0) if isinstance(e, SessionUp)]
    assert up[0].internal is False


# --- §8.8 connection collision --------------------------------------------------------------


def _two_connections_in_open_sent(local_node: int) -> PeerSession:
    s = bring_to(State.OPEN_SENT, config(local_node=NodeId(local_node)))  # 1: outbound
    s.connection_made(2, outbound=False, now=0)  # 2: inbound
    return s


@pytest.mark.parametrize(
    ("local_node", "survivor"),
    [(PEER_NODE + 1, 1), (PEER_NODE - 1, 2)],
    ids=["local-higher-keeps-outbound", "local-lower-keeps-inbound"],
)
@pytest.mark.parametrize("first", [1, 2])
def test_s8_8_collision_keeps_connection_initiated_by_higher_node_id(
    local_node: int, survivor: int, first: int
) -> None:
    """The first OPEN already settles it: the other connection, still in OpenSent, is known
    to run to the same peer (§8.8 MAY, docs/conformance.md choice 17)."""
    s = _two_connections_in_open_sent(local_node)
    effects = s.data_received(first, encode(peer_open(s.config)), now=1)
    loser = 3 - survivor
    assert closed(effects) == [loser]
    assert [(n.code, n.open_bit) for n in notifications(effects)] == [(ErrorCode.CEASE, False)]
    assert set(s._connections) == {survivor}
    if first == loser:
        assert s.state is State.OPEN_SENT
        s.data_received(survivor, encode(peer_open(s.config)), now=2)
    assert s.state is State.OPEN_CONFIRM
    assert set(s._connections) == {survivor}


@pytest.mark.parametrize(
    ("local_node", "survivor"),
    [(PEER_NODE + 1, 1), (PEER_NODE - 1, 2)],
    ids=["local-higher-keeps-outbound", "local-lower-keeps-inbound"],
)
def test_s8_8_an_inbound_open_against_open_confirm_is_resolved_by_node_id(
    local_node: int, survivor: int
) -> None:
    """§8.8 steps 2-3 as written: the existing connection is in OpenConfirm."""
    s = bring_to(State.OPEN_SENT, config(local_node=NodeId(local_node)))  # 1: outbound
    s.data_received(1, encode(peer_open(s.config)), now=1)
    assert s.state is State.OPEN_CONFIRM
    s.connection_made(2, outbound=False, now=2)
    effects = s.data_received(2, encode(peer_open(s.config)), now=2)
    assert closed(effects) == [3 - survivor]
    assert set(s._connections) == {survivor}


@pytest.mark.parametrize("state", [State.OPEN_CONFIRM, State.ESTABLISHED])
def test_s8_8_a_dial_that_completes_after_open_confirm_is_closed_before_its_open(
    state: State,
) -> None:
    s = bring_to(State.OPEN_SENT, config(local_node=NodeId(PEER_NODE - 1)))
    s.connection_made(2, outbound=False, now=0)  # inbound 2
    s.data_received(2, encode(peer_open(s.config)), now=1)
    if state is State.ESTABLISHED:
        s.data_received(2, encode(Keepalive()), now=1)
    assert s.state is state
    effects = s.connection_made(3, outbound=True, now=2)
    assert closed(effects) == [3]
    assert not any(isinstance(e, Send) for e in effects)  # not even an OPEN
    assert set(s._connections) == {2} and s.state is state


def test_s8_8_established_connection_always_wins() -> None:
    s = bring_to(State.ESTABLISHED, config(local_node=NodeId(PEER_NODE - 1)))  # outbound 1
    s.connection_made(2, outbound=False, now=1)  # would win by node id, but 1 is Established
    effects = s.data_received(2, encode(peer_open(s.config)), now=2)
    assert closed(effects) == [2]
    assert [(n.code, n.open_bit) for n in notifications(effects)] == [(ErrorCode.CEASE, False)]
    assert s.state is State.ESTABLISHED and set(s._connections) == {1}


class Pair:
    """Two sessions wired back to back in memory, both dialling: a collision every time.

    As in the daemon and the simulator (``PeerRunner.incoming``), the accepting end takes
    an inbound connection only with its first message, the dialler's OPEN: a dial closed
    before it sent anything is never seen there."""

    def __init__(self, a_node: int, b_node: int) -> None:
        a_cfg = config(local_node=NodeId(a_node))
        b_cfg = replace(
            a_cfg,
            local_domain=a_cfg.peer_domain,
            peer_domain=a_cfg.local_domain,
            local_node=NodeId(b_node),
            peer_role=Role.CHILD,
            parent_domain_ids=(DomainId(0),),
        )
        self.a, self.b = PeerSession(a_cfg), PeerSession(b_cfg)
        self.links: dict[tuple[str, int], tuple[str, int]] = {}
        self.unadopted: set[tuple[str, int]] = set()
        self.queue: list[tuple[str, Effect]] = []
        self.downs: list[str] = []
        self.next_id = 1

    def side(self, name: str) -> PeerSession:
        return self.a if name == "a" else self.b

    def run(self, now: float, rng: random.Random | None = None) -> None:
        """Deliver every effect; with ``rng``, the next one is the head of a random channel
        (one per connection and direction, in order on each, as TCP keeps it)."""
        while self.queue:
            name, effect = self.queue.pop(self._pick(rng))
            if isinstance(effect, SessionDown):
                self.downs.append(name)
            other = "b" if name == "a" else "a"
            if isinstance(effect, Dial):
                mine, theirs = self.next_id, self.next_id + 1
                self.next_id += 2
                self.links[(name, mine)] = (other, theirs)
                self.links[(other, theirs)] = (name, mine)
                self.unadopted.add((other, theirs))
                self.push(name, self.side(name).connection_made(mine, outbound=True, now=now))
            elif isinstance(effect, Send) and (name, effect.connection) in self.links:
                peer, conn = self.links[(name, effect.connection)]
                if (peer, conn) in self.unadopted:
                    self.unadopted.discard((peer, conn))
                    self.push(peer, self.side(peer).connection_made(conn, outbound=False, now=now))
                if conn in self.side(peer)._connections:
                    self.push(peer, self.side(peer).data_received(conn, effect.data, now=now))
            elif isinstance(effect, Close) and (name, effect.connection) in self.links:
                peer, conn = self.links.pop((name, effect.connection))
                self.links.pop((peer, conn), None)
                if (peer, conn) in self.unadopted:
                    self.unadopted.discard((peer, conn))
                else:
                    self.push(peer, self.side(peer).connection_lost(conn, now=now))

    def push(self, name: str, effects: list[Effect]) -> None:
        self.queue += [(name, e) for e in effects]

    def _pick(self, rng: random.Random | None) -> int:
        if rng is None:
            return 0
        heads: dict[object, int] = {}
        for index, (name, effect) in enumerate(self.queue):
            channel = getattr(effect, "connection", None)
            key = (name, channel) if channel is not None else index
            heads.setdefault(key, index)
        return rng.choice(list(heads.values()))


@pytest.mark.parametrize(("a_node", "b_node"), [(10, 20), (20, 10)])
def test_s8_8_simultaneous_open_converges_on_one_connection(a_node: int, b_node: int) -> None:
    pair = Pair(a_node, b_node)
    pair.push("a", pair.a.start(now=0))
    pair.push("b", pair.b.start(now=0))
    pair.run(now=0)
    assert pair.a.state is State.ESTABLISHED and pair.b.state is State.ESTABLISHED
    assert len(pair.a._connections) == 1 and len(pair.b._connections) == 1
    (a_conn,) = pair.a._connections.values()
    # The surviving connection was initiated by the higher node id.
    assert a_conn.outbound == (a_node > b_node)


@pytest.mark.parametrize("seed", range(200))
def test_s8_8_no_interleaving_of_a_simultaneous_open_loses_both_connections(seed: int) -> None:
    """Both ends dial; the messages on the two connections arrive in any order.  Examining
    connections in OpenSent (docs/conformance.md choice 17) means no end ever sends a
    KEEPALIVE on the connection the other end is about to close, so "Established wins" at
    one end and "higher node id wins" at the other can never close one connection each."""
    rng = random.Random(seed)
    a_node, b_node = (10, 20) if seed % 2 else (20, 10)
    pair = Pair(a_node, b_node)
    pair.push("a", pair.a.start(now=0))
    pair.push("b", pair.b.start(now=0))
    pair.run(now=0, rng=rng)
    assert pair.downs == []
    assert pair.a.state is State.ESTABLISHED and pair.b.state is State.ESTABLISHED
    (a_conn,) = pair.a._connections  # one connection each, and the same one
    assert pair.links[("a", a_conn)] == ("b", *pair.b._connections)


@pytest.mark.parametrize("age", [1.0, 200.0])
def test_s8_8_our_dial_awaiting_its_answer_counts_however_long_it_waits(age: float) -> None:
    """We are the higher node, so our dial (1) wins, even while the peer's OPEN on it is
    late: an answer held up in the network must not make the two ends choose differently
    (a time limit did, found by review; docs/conformance.md choice 17)."""
    s = bring_to(State.OPEN_SENT, config(local_node=NodeId(PEER_NODE + 1)))  # 1 at t=0
    s.connection_made(2, outbound=False, now=age)
    effects = s.data_received(2, encode(peer_open(s.config)), now=age)
    assert closed(effects) == [2] and set(s._connections) == {1}


# --- §8.6 NOTIFICATION errors, §8.3 CC errors in Established --------------------------------


@pytest.mark.parametrize(
    ("code", "subcode"),
    [(99, 0), (ErrorCode.UPDATE_MESSAGE, 3), (ErrorCode.CEASE, 0), (ErrorCode.OPEN_MESSAGE, 1)],
    ids=["unknown-code", "unknown-subcode", "cease-with-o-bit", "mc-error-with-o-bit"],
)
def test_s8_6_erratic_notification_with_o_bit_set_is_answered_and_closed(
    code: int, subcode: int
) -> None:
    s = bring_to(State.ESTABLISHED)
    frame = encode(Notification(True, code, subcode, b"zz"))
    effects = s.data_received(1, frame, now=1)
    assert [(n.code, n.subcode, n.open_bit, n.data) for n in notifications(effects)] == [
        (ErrorCode.NOTIFICATION, 0, False, frame)
    ]
    assert closed(effects) == [1] and s.state is State.IDLE


def test_s8_6_erratic_notification_with_o_bit_zero_is_only_logged() -> None:
    s = bring_to(State.ESTABLISHED)
    effects = s.data_received(1, encode(Notification(False, 99, 42)), now=1)
    received = [e for e in effects if isinstance(e, NotificationReceived)]
    assert received[0].erratic is True
    assert notifications(effects) == []  # nothing sent back
    assert s.state is State.IDLE


def test_s8_3_cc_error_keeps_established_session_and_delivers_the_valid_claims() -> None:
    s = bring_to(State.ESTABLISHED)
    bad_role = replace(CLAIM, type=ClaimType.PREFIX_IN_USE, origin_role=Role.PARENT)
    bad = encode_claim(bad_role)
    frame = update_frame(encode_claim(CLAIM), bad, bad)
    effects = s.data_received(1, frame, now=1)
    notes = notifications(effects)
    # Two bad claims, two NOTIFICATIONs (Claim Type Error, CC: O-bit 1, data = the attribute).
    assert [(n.code, n.subcode, n.open_bit, n.data) for n in notes] == [
        (ErrorCode.UPDATE_MESSAGE, 14, True, bad),
        (ErrorCode.UPDATE_MESSAGE, 14, True, bad),
    ]
    assert [e.update for e in effects if isinstance(e, UpdateReceived)] == [Update((CLAIM,))]
    assert s.state is State.ESTABLISHED


def test_s8_3_mc_error_closes_established_session() -> None:
    s = bring_to(State.ESTABLISHED)
    frame = bytearray(encode(Update((CLAIM,))))
    frame[4:6] = (3).to_bytes(2, "big")  # attribute length 3: Malformed Attribute List (MC)
    effects = s.data_received(1, bytes(frame), now=1)
    assert [(n.code, n.subcode, n.open_bit) for n in notifications(effects)] == [
        (ErrorCode.UPDATE_MESSAGE, 1, False)
    ]
    assert s.state is State.IDLE


def test_s8_1_bad_length_closes_with_the_header_as_data() -> None:
    s = bring_to(State.ESTABLISHED)
    effects = s.data_received(1, bytes([0x10, 0x01, 4, 0]), now=1)  # length 4097
    assert [(n.code, n.subcode, n.open_bit, n.data) for n in notifications(effects)] == [
        (ErrorCode.MESSAGE_HEADER, 1, False, bytes([0x10, 0x01, 4, 0]))
    ]
    assert s.state is State.IDLE


def test_messages_split_across_reads_are_processed_whole() -> None:
    s = bring_to(State.OPEN_SENT)
    data = encode(peer_open(s.config)) + encode(Keepalive()) + encode(Update((CLAIM,)))
    received = []
    for i in range(len(data)):
        received += s.data_received(1, data[i : i + 1], now=0)
    assert s.state is State.ESTABLISHED
    assert [e.update for e in received if isinstance(e, UpdateReceived)] == [Update((CLAIM,))]
    assert s.stats.messages_in["UPDATE"] == 1 and s.stats.messages_in["OPEN"] == 1


def test_local_node_constant_is_what_we_send() -> None:
    s = PeerSession(config())
    s.start(now=0)
    (open_msg,) = sent(s.connection_made(1, outbound=True, now=0))
    assert open_msg.node_id == LOCAL_NODE and open_msg.role is Role.CHILD
    assert open_msg.parent_domain_id == 65000


def test_s7_5_notification_for_a_4096_octet_message_is_cut_to_fit() -> None:
    """A 4096-octet message of an unknown type: its NOTIFICATION carries the first 4090
    octets, so it is exactly 4096 octets long and the session stays up (CC)."""
    s = bring_to(State.ESTABLISHED)
    frame = (4096).to_bytes(2, "big") + bytes([9, 0]) + bytes(4092)
    effects = s.data_received(1, frame, now=1)
    (note,) = notifications(effects)
    assert (note.code, note.subcode, note.open_bit) == (ErrorCode.MESSAGE_HEADER, 2, True)
    assert note.data == frame[:4090]
    assert [len(e.data) for e in effects if isinstance(e, Send)] == [4096]
    assert s.state is State.ESTABLISHED


# --- robustness (review findings) ------------------------------------------------------------


def test_s10_passive_session_never_dials_however_long_it_waits() -> None:
    s = PeerSession(config(passive=True))
    s.start(now=0)
    assert s.next_deadline() is None
    s.connection_made(1, outbound=False, now=1)
    s.connection_lost(1, now=2)  # OpenSent closed -> Active, still no ConnectRetry
    assert s.state is State.ACTIVE and s.next_deadline() is None
    assert run_until(s, 10**6) == []


def test_s10_zero_hold_time_still_bounds_open_confirm() -> None:
    """Hold time 0 starts no timer (§10), but a peer that never confirms must not pin the
    connection in OpenConfirm for ever: the large OpenSent value stays until Established."""
    s = bring_to(State.OPEN_SENT, config(hold_time=0))
    s.data_received(1, encode(peer_open(s.config, hold_time=0)), now=10)
    assert s.state is State.OPEN_CONFIRM
    assert s.next_deadline() == pytest.approx(10 + 240)
    effects = s.handle_timer(now=250)
    assert [(n.code, n.open_bit) for n in notifications(effects)] == [
        (ErrorCode.HOLD_TIMER_EXPIRED, False)
    ]


def test_s8_3_notifications_per_update_are_capped() -> None:
    s = bring_to(State.ESTABLISHED)
    junk = bytes([0, 4, 7, 0])  # a 4-octet attribute of unrecognized required type 7
    frame = update_frame(*([junk] * 1000))
    effects = s.data_received(1, frame, now=1)
    notes = notifications(effects)
    assert len(notes) == 8
    assert {(n.code, n.subcode, n.open_bit) for n in notes} == {(ErrorCode.UPDATE_MESSAGE, 2, True)}
    assert s.state is State.ESTABLISHED


def test_s10_an_update_whose_claims_are_all_rejected_still_restarts_hold() -> None:
    s = bring_to(State.ESTABLISHED)
    junk = bytes([0, 4, 7, 0])
    s.data_received(1, update_frame(*([junk] * 10)), now=80)
    assert s._connections[1].hold_at == pytest.approx(80 + HOLD)


@pytest.mark.parametrize(
    "overrides",
    [
        {"hold_time": 2},
        {"hold_time": 70000},
        {"connect_retry": 0},
        {"restart_backoff_initial": 0},
        {"restart_backoff_initial": 10, "restart_backoff_max": 5},
    ],
)
def test_session_config_rejects_values_that_would_spin_or_break_the_wire(
    overrides: dict[str, float],
) -> None:
    with pytest.raises(CoreMisuse):
        config(**overrides)


def test_s10_the_restart_delay_after_an_error_is_jittered_too() -> None:
    """Two ends whose Hold Timers expired together do not restart at the same instant."""
    delays = []
    for seed in range(20):
        s = PeerSession(config(), rng=random.Random(seed))
        s.start(now=0)
        s.connection_made(1, outbound=True, now=0)
        s.data_received(1, encode(peer_open(s.config)), now=0)
        s.data_received(1, encode(Keepalive()), now=0)
        s.handle_timer(now=HOLD)  # Hold Timer expired: an error, Idle, automatic restart
        assert s.restart_at is not None
        delays.append(s.restart_at - HOLD)
    assert all(45 <= d <= 60 for d in delays)  # 60 s initial back-off, up to 25 % shorter
    assert len(set(delays)) == len(delays)
