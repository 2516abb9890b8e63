"""Every cell of the two §10 FSM tables, against an independent transcription of RFC 2909 §10.

The expectations below are written from the RFC text, not from the implementation: if a cell
of SESSION_TABLE or CONNECTION_TABLE changes behaviour, its test fails.
"""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Network

import pytest

from masc.protocol.constants import ClaimType, Role
from masc.protocol.errors import CoreMisuse, ErrorCode
from masc.protocol.session import (
    CONNECTION_STATES,
    CONNECTION_TABLE,
    SESSION_TABLE,
    ConnectionEvent,
    PeerSession,
    SessionDown,
    SessionEvent,
    SessionUp,
    State,
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
from tests.protocol.fsm_helpers import (
    HOLD,
    bring_to,
    closed,
    dials,
    notifications,
    peer_open,
    sent,
)

# --- session-level cells ----------------------------------------------------------------------

# (state, event) -> (state after, Dial emitted?, connection 2 refused?)  None: CoreMisuse.
SESSION_EXPECT: dict[tuple[State, SessionEvent], tuple[State, bool, bool] | None] = {
    # §10 Idle: Start -> ConnectRetry, dial, Connect.  "Any other event ... is ignored";
    # "MASC refuses all incoming MASC connections".
    (State.IDLE, SessionEvent.START): (State.CONNECT, True, False),
    (State.IDLE, SessionEvent.STOP): (State.IDLE, False, False),
    (State.IDLE, SessionEvent.CONNECT_RETRY_EXPIRED): None,
    (State.IDLE, SessionEvent.RESTART_TIMER_EXPIRED): (State.CONNECT, True, False),
    (State.IDLE, SessionEvent.TRANSPORT_CONNECTED): (State.IDLE, False, True),
    (State.IDLE, SessionEvent.TRANSPORT_FAILED): (State.IDLE, False, False),
    (State.IDLE, SessionEvent.INCOMING_CONNECTION): (State.IDLE, False, True),
    # §10 Connect.
    (State.CONNECT, SessionEvent.START): (State.CONNECT, False, False),
    (State.CONNECT, SessionEvent.STOP): (State.IDLE, False, False),
    (State.CONNECT, SessionEvent.CONNECT_RETRY_EXPIRED): (State.CONNECT, True, False),
    (State.CONNECT, SessionEvent.RESTART_TIMER_EXPIRED): None,
    (State.CONNECT, SessionEvent.TRANSPORT_CONNECTED): (State.OPEN_SENT, False, False),
    (State.CONNECT, SessionEvent.TRANSPORT_FAILED): (State.ACTIVE, False, False),
    (State.CONNECT, SessionEvent.INCOMING_CONNECTION): (State.OPEN_SENT, False, False),
    # §10 Active.
    (State.ACTIVE, SessionEvent.START): (State.ACTIVE, False, False),
    (State.ACTIVE, SessionEvent.STOP): (State.IDLE, False, False),
    (State.ACTIVE, SessionEvent.CONNECT_RETRY_EXPIRED): (State.CONNECT, True, False),
    (State.ACTIVE, SessionEvent.RESTART_TIMER_EXPIRED): None,
    (State.ACTIVE, SessionEvent.TRANSPORT_CONNECTED): (State.OPEN_SENT, False, False),
    (State.ACTIVE, SessionEvent.TRANSPORT_FAILED): (State.ACTIVE, False, False),
    (State.ACTIVE, SessionEvent.INCOMING_CONNECTION): (State.OPEN_SENT, False, False),
}
for _s in CONNECTION_STATES:
    SESSION_EXPECT |= {
        (_s, SessionEvent.START): (_s, False, False),  # "Start event is ignored"
        (_s, SessionEvent.STOP): (State.IDLE, False, False),  # Cease, Idle
        (_s, SessionEvent.CONNECT_RETRY_EXPIRED): None,  # cleared on connect
        (_s, SessionEvent.RESTART_TIMER_EXPIRED): None,
        # Connection 1 is outbound: a second outbound one has no slot and is refused.
        (_s, SessionEvent.TRANSPORT_CONNECTED): (_s, False, True),
        (_s, SessionEvent.TRANSPORT_FAILED): (_s, False, False),
        # A second, inbound connection is taken; §8.8 judges it when its OPEN arrives.
        (_s, SessionEvent.INCOMING_CONNECTION): (_s, False, False),
    }


def test_session_table_is_complete() -> None:
    assert set(SESSION_TABLE) == set(SESSION_EXPECT)
    assert len(SESSION_TABLE) == len(State) * len(SessionEvent)


def _fire(s: PeerSession, event: SessionEvent) -> list:  # type: ignore[type-arg]
    if event is SessionEvent.START:
        return s.start(now=1)
    if event is SessionEvent.STOP:
        return s.stop(now=1)
    if event is SessionEvent.TRANSPORT_CONNECTED:
        return s.connection_made(2, outbound=True, now=1)
    if event is SessionEvent.INCOMING_CONNECTION:
        return s.connection_made(2, outbound=False, now=1)
    if event is SessionEvent.TRANSPORT_FAILED:
        return s.connect_failed(now=1)
    # Timer events are table cells reached only through handle_timer; call the cell directly
    # so that cells whose timer can never be armed are shown to refuse (CoreMisuse).
    handler = SESSION_TABLE[(s.state, event)]
    s._begin()
    handler(s, 1.0, None)
    return s._finish()


@pytest.mark.parametrize(
    ("state", "event"), sorted(SESSION_EXPECT, key=lambda k: (k[0].value, k[1].value))
)
def test_s10_session_cell(state: State, event: SessionEvent) -> None:
    s = bring_to(state)
    if state is State.IDLE and event is SessionEvent.RESTART_TIMER_EXPIRED:
        s._admin_down = False  # an automatic restart only happens after a Start
    expected = SESSION_EXPECT[(state, event)]
    if expected is None:
        with pytest.raises(CoreMisuse):
            _fire(s, event)
        return
    new_state, dial, refused = expected
    effects = _fire(s, event)
    assert s.state is new_state
    assert dials(effects) == int(dial)
    assert (2 in closed(effects)) == refused
    if event is SessionEvent.STOP and state in CONNECTION_STATES:
        # §10: "sends a NOTIFICATION message with Error Code Cease and changes its state to Idle"
        assert [(n.code, n.open_bit) for n in notifications(effects)] == [(ErrorCode.CEASE, False)]
        assert closed(effects) == [1]
    if new_state is State.OPEN_SENT and state not in CONNECTION_STATES:
        # §10 Connect/Active: connection succeeds -> clear ConnectRetry, send OPEN.
        assert [type(m) for m in sent(effects, 2)] == [Open]
        assert s.next_deadline() == pytest.approx(1 + 240)  # only the large OpenSent hold


# --- connection-level cells -------------------------------------------------------------------

_CLAIM = Claim(
    ClaimType.PREFIX_MANAGED,
    Role.INTERNAL,
    1000,
    2000,
    2000,
    DomainId(65000),
    NodeId(1),
    IPv4Network("239.192.0.0/16"),
)

# (state, event) -> (state after, NOTIFICATION (code, subcode) sent or None)
#                 or None for a cell that can never be reached (CoreMisuse).
CONNECTION_EXPECT: dict[
    tuple[State, ConnectionEvent], tuple[State, tuple[int, int] | None] | None
] = {
    # §10 OpenSent
    (State.OPEN_SENT, ConnectionEvent.OPEN): (State.OPEN_CONFIRM, None),
    (State.OPEN_SENT, ConnectionEvent.KEEPALIVE): (State.IDLE, (5, 1)),
    (State.OPEN_SENT, ConnectionEvent.UPDATE): (State.IDLE, (5, 1)),
    (State.OPEN_SENT, ConnectionEvent.NOTIFICATION): (State.IDLE, None),
    (State.OPEN_SENT, ConnectionEvent.MESSAGE_ERROR): (State.IDLE, (1, 2)),
    (State.OPEN_SENT, ConnectionEvent.HOLD_TIMER_EXPIRED): (State.IDLE, (4, 0)),
    (State.OPEN_SENT, ConnectionEvent.KEEPALIVE_TIMER_EXPIRED): None,
    (State.OPEN_SENT, ConnectionEvent.TRANSPORT_CLOSED): (State.ACTIVE, None),
    (State.OPEN_SENT, ConnectionEvent.STOP): (State.IDLE, (7, 0)),
    # §10 OpenConfirm
    (State.OPEN_CONFIRM, ConnectionEvent.OPEN): (State.IDLE, (5, 0)),
    (State.OPEN_CONFIRM, ConnectionEvent.KEEPALIVE): (State.ESTABLISHED, None),
    (State.OPEN_CONFIRM, ConnectionEvent.UPDATE): (State.IDLE, (5, 0)),
    (State.OPEN_CONFIRM, ConnectionEvent.NOTIFICATION): (State.IDLE, None),
    (State.OPEN_CONFIRM, ConnectionEvent.MESSAGE_ERROR): (State.IDLE, (1, 2)),
    (State.OPEN_CONFIRM, ConnectionEvent.HOLD_TIMER_EXPIRED): (State.IDLE, (4, 0)),
    (State.OPEN_CONFIRM, ConnectionEvent.KEEPALIVE_TIMER_EXPIRED): (State.OPEN_CONFIRM, None),
    (State.OPEN_CONFIRM, ConnectionEvent.TRANSPORT_CLOSED): (State.ACTIVE, None),
    (State.OPEN_CONFIRM, ConnectionEvent.STOP): (State.IDLE, (7, 0)),
    # §10 Established
    (State.ESTABLISHED, ConnectionEvent.OPEN): (State.IDLE, (5, 0)),
    (State.ESTABLISHED, ConnectionEvent.KEEPALIVE): (State.ESTABLISHED, None),
    (State.ESTABLISHED, ConnectionEvent.UPDATE): (State.ESTABLISHED, None),
    (State.ESTABLISHED, ConnectionEvent.NOTIFICATION): (State.IDLE, None),
    # Bad Message Type is CC: Established keeps the connection (O-bit 1).
    (State.ESTABLISHED, ConnectionEvent.MESSAGE_ERROR): (State.ESTABLISHED, (1, 2)),
    (State.ESTABLISHED, ConnectionEvent.HOLD_TIMER_EXPIRED): (State.IDLE, (4, 0)),
    (State.ESTABLISHED, ConnectionEvent.KEEPALIVE_TIMER_EXPIRED): (State.ESTABLISHED, None),
    (State.ESTABLISHED, ConnectionEvent.TRANSPORT_CLOSED): (State.ACTIVE, None),
    (State.ESTABLISHED, ConnectionEvent.STOP): (State.IDLE, (7, 0)),
}


def test_connection_table_is_complete() -> None:
    assert set(CONNECTION_TABLE) == set(CONNECTION_EXPECT)
    assert len(CONNECTION_TABLE) == len(CONNECTION_STATES) * len(ConnectionEvent)


def _bad_type_message() -> bytes:
    return bytes([0, 4, 9, 0])  # a header with type 9


_DRIVERS: dict[ConnectionEvent, Callable[[PeerSession], list]] = {  # type: ignore[type-arg]
    ConnectionEvent.OPEN: lambda s: s.data_received(1, encode(peer_open(s.config)), now=1),
    ConnectionEvent.KEEPALIVE: lambda s: s.data_received(1, encode(Keepalive()), now=1),
    ConnectionEvent.UPDATE: lambda s: s.data_received(1, encode(Update((_CLAIM,))), now=1),
    ConnectionEvent.NOTIFICATION: lambda s: s.data_received(
        1, encode(Notification(False, ErrorCode.UPDATE_MESSAGE, 1, b"x")), now=1
    ),
    ConnectionEvent.MESSAGE_ERROR: lambda s: s.data_received(1, _bad_type_message(), now=1),
    ConnectionEvent.HOLD_TIMER_EXPIRED: lambda s: s.handle_timer(now=s._connections[1].hold_at),
    ConnectionEvent.KEEPALIVE_TIMER_EXPIRED: lambda s: s.handle_timer(
        now=s._connections[1].keepalive_at
    ),
    ConnectionEvent.TRANSPORT_CLOSED: lambda s: s.connection_lost(1, now=1),
    ConnectionEvent.STOP: lambda s: s.stop(now=1),
}


@pytest.mark.parametrize(
    ("state", "event"), sorted(CONNECTION_EXPECT, key=lambda k: (k[0].value, k[1].value))
)
def test_s10_connection_cell(state: State, event: ConnectionEvent) -> None:
    s = bring_to(state)
    expected = CONNECTION_EXPECT[(state, event)]
    if expected is None:
        conn = s._connections[1]
        s._begin()
        with pytest.raises(CoreMisuse):
            CONNECTION_TABLE[(state, event)](s, conn, 1.0, None)
        return
    new_state, notification = expected
    effects = _DRIVERS[event](s)
    assert s.state is new_state
    sent_notes = [(n.code, n.subcode) for n in notifications(effects)]
    assert sent_notes == ([notification] if notification else [])
    if notification and new_state is State.IDLE:
        assert notifications(effects)[0].open_bit is False  # closing: O-bit zero (§7.5)
        assert closed(effects) == [1]
    went_down = any(isinstance(e, SessionDown) for e in effects)
    assert went_down == (state is State.ESTABLISHED and new_state is not State.ESTABLISHED)
    if (state, event) == (State.OPEN_CONFIRM, ConnectionEvent.KEEPALIVE):
        assert any(isinstance(e, SessionUp) for e in effects)
    if (state, event) == (State.ESTABLISHED, ConnectionEvent.UPDATE):
        assert [e.update for e in effects if isinstance(e, UpdateReceived)] == [Update((_CLAIM,))]
    if event is ConnectionEvent.KEEPALIVE_TIMER_EXPIRED:
        assert [type(m) for m in sent(effects)] == [Keepalive]
    if (state, event) == (State.OPEN_SENT, ConnectionEvent.OPEN):
        # §10 OpenSent: no errors -> send KEEPALIVE, negotiated hold time replaces the large one.
        assert [type(m) for m in sent(effects)] == [Keepalive]
        assert s._connections[1].hold_at == pytest.approx(1 + HOLD)


def test_s10_open_sent_receiving_an_open_with_an_error_goes_idle() -> None:
    s = bring_to(State.OPEN_SENT)
    effects = s.data_received(1, encode(peer_open(s.config, domain_id=DomainId(7))), now=1)
    assert [(n.code, n.subcode, n.open_bit) for n in notifications(effects)] == [(2, 2, False)]
    assert s.state is State.IDLE


@pytest.mark.parametrize("state", [State.OPEN_SENT, State.OPEN_CONFIRM])
def test_s10_notification_with_o_bit_set_before_established_is_an_fsm_error(
    state: State,
) -> None:
    """OpenSent/OpenConfirm list only an O-bit-zero NOTIFICATION; anything else is an FSM
    error, with subcode 1 in OpenSent and Unspecific in OpenConfirm."""
    s = bring_to(state)
    effects = s.data_received(
        1, encode(Notification(True, ErrorCode.UPDATE_MESSAGE, 11, b"x")), now=1
    )
    subcode = 1 if state is State.OPEN_SENT else 0
    assert [(n.code, n.subcode, n.open_bit) for n in notifications(effects)] == [
        (ErrorCode.FSM, subcode, False)
    ]
    assert s.state is State.IDLE


def test_s10_established_notification_with_o_bit_set_keeps_session_and_restarts_hold() -> None:
    s = bring_to(State.ESTABLISHED)
    s.data_received(1, encode(Notification(True, ErrorCode.UPDATE_MESSAGE, 11, b"x")), now=50)
    assert s.state is State.ESTABLISHED
    assert s._connections[1].hold_at == pytest.approx(50 + HOLD)
