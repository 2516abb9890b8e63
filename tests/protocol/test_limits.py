"""Per-peer limits (RFC 2909 §14, masc.protocol.limits): the limiter alone, then inside the
session FSM, where ``reset`` closes with Cease and the automatic-restart back-off."""

from __future__ import annotations

from dataclasses import replace

import pytest

from masc.protocol.constants import ClaimType, Role
from masc.protocol.errors import CoreMisuse, ErrorCode
from masc.protocol.limits import LimitAction, UpdateLimiter, UpdateLimits
from masc.protocol.session import (
    LimitExceeded,
    PeerSession,
    SessionDown,
    State,
    UpdateReceived,
)
from masc.protocol.wire import Update, encode
from masc.protocol.wire.messages import Claim
from tests.protocol.engine_helpers import T0, claim
from tests.protocol.fsm_helpers import bring_to, closed, config, notifications

NEW, PIU, WD = ClaimType.NEW_CLAIM, ClaimType.PREFIX_IN_USE, ClaimType.WITHDRAW
CD = ClaimType.CLAIM_DENIED


def flood(n: int, *, domain: int = 66, ts: float = T0, first: int = 0) -> list[Claim]:
    """``n`` distinct NEW_CLAIMs of /28s, as a flooding sibling sends them."""
    return [
        claim(NEW, Role.INTERNAL, f"239.192.{(first + i) // 16}.{(first + i) % 16 * 16}/28",
              domain=domain, node=0x42000001, ts=ts)
        for i in range(n)
    ]  # fmt: skip


def one(c: Claim) -> Update:
    return Update((c,))


# --- max_claims --------------------------------------------------------------------------------


def test_s14_max_claims_drop_keeps_the_first_claims_and_drops_the_rest() -> None:
    limiter = UpdateLimiter(UpdateLimits(max_claims=3), now=T0)
    admission = limiter.admit(Update(tuple(flood(5))), now=T0)
    assert admission.update is not None and len(admission.update.attributes) == 3
    assert admission.dropped == 2 and not admission.reset
    assert [e.limit for e in admission.exceeded] == ["max_claims"]
    # Reported once per crossing, not per UPDATE.
    again = limiter.admit(Update(tuple(flood(2, first=10))), now=T0 + 1)
    assert again.update is None and again.dropped == 2 and not again.exceeded


def test_s14_a_renewal_replaces_its_predecessor_instead_of_counting_again() -> None:
    limiter = UpdateLimiter(UpdateLimits(max_claims=2), now=T0)
    piu = claim(PIU, Role.INTERNAL, "239.192.1.0/24", domain=66, node=1, ts=T0)
    for renewal in range(10):
        renewed = replace(piu, timestamp=int(T0 + renewal * 3600))
        assert limiter.admit(one(renewed), now=T0 + renewal * 3600).dropped == 0
    assert limiter.claims_held == 1


def test_s14_a_withdraw_frees_its_prefix() -> None:
    limiter = UpdateLimiter(UpdateLimits(max_claims=1), now=0.0)
    (first,) = flood(1)
    (second,) = flood(1, first=1)
    assert limiter.admit(one(first), now=0.0).dropped == 0
    assert limiter.admit(one(second), now=0.0).dropped == 1
    withdraw = replace(first, type=WD)
    assert limiter.admit(one(withdraw), now=0.0).dropped == 0
    assert limiter.admit(one(second), now=0.0).dropped == 0


@pytest.mark.parametrize(
    "withdraw",
    [
        dict(holdtime=1),  # lapses long before the claim: the engine counts the claim again
        dict(timestamp=int(T0) - 10),  # older than the claim it would withdraw
    ],
)
def test_s14_a_withdraw_that_does_not_outlive_the_claim_frees_nothing(
    withdraw: dict[str, int],
) -> None:
    """Review finding: alternating claims and short WITHDRAWs got past any limit."""
    limiter = UpdateLimiter(UpdateLimits(max_claims=1), now=0.0)
    (first,) = flood(1)
    (second,) = flood(1, first=1)
    assert limiter.admit(one(first), now=0.0).dropped == 0
    assert limiter.admit(one(replace(first, type=WD, **withdraw)), now=0.0).dropped == 0
    assert limiter.admit(one(second), now=0.0).dropped == 1


def test_s14_a_claim_counts_for_its_holdtime_on_the_session_s_clock() -> None:
    """The session's clock is not Unix time (trio's clock in the daemon, virtual time in
    the simulation): the count must not depend on the claim's Unix timestamp.  Review
    finding: compared with the timestamp, nothing ever expired."""
    limiter = UpdateLimiter(UpdateLimits(max_claims=1), now=50.0)
    (first,) = flood(1)
    (second,) = flood(1, first=1)
    assert limiter.admit(one(first), now=100.0).dropped == 0
    assert limiter.admit(one(second), now=100.0 + first.holdtime - 1).dropped == 1
    assert limiter.admit(one(second), now=100.0 + first.holdtime).dropped == 0


def test_s14_what_holds_no_space_is_not_counted() -> None:
    limiter = UpdateLimiter(UpdateLimits(max_claims=1), now=T0)
    denial = claim(CD, Role.INTERNAL, "239.192.9.0/24", domain=66, node=1, ts=T0)
    admission = limiter.admit(Update((denial, denial)), now=T0)
    assert admission.dropped == 0 and limiter.claims_held == 0


def test_s14_max_claims_warn_accepts_and_reports() -> None:
    limiter = UpdateLimiter(UpdateLimits(max_claims=2, action=LimitAction.WARN), now=T0)
    admission = limiter.admit(Update(tuple(flood(4))), now=T0)
    assert admission.update is not None and len(admission.update.attributes) == 4
    assert admission.dropped == 0 and [e.action for e in admission.exceeded] == [LimitAction.WARN]


def test_s14_max_claims_reset_drops_the_whole_update_and_asks_for_a_reset() -> None:
    limiter = UpdateLimiter(UpdateLimits(max_claims=2, action=LimitAction.RESET), now=T0)
    admission = limiter.admit(Update(tuple(flood(3))), now=T0)
    assert admission.reset and admission.update is None


# --- max_update_rate --------------------------------------------------------------------------


def test_s14_update_rate_allows_the_burst_then_the_rate() -> None:
    limiter = UpdateLimiter(UpdateLimits(max_update_rate=2.0, update_burst=5), now=T0)
    (c,) = flood(1)
    passed = [limiter.admit(one(c), now=T0).update is not None for _ in range(8)]
    assert passed == [True] * 5 + [False] * 3
    # One second later, two more tokens.
    passed = [limiter.admit(one(c), now=T0 + 1).update is not None for _ in range(3)]
    assert passed == [True, True, False]


def test_s14_update_rate_default_burst_holds_ten_seconds_and_at_least_100() -> None:
    assert UpdateLimits(max_update_rate=50).burst == 500
    assert UpdateLimits(max_update_rate=1).burst == 100


@pytest.mark.parametrize(
    "bad",
    [dict(max_claims=0), dict(max_update_rate=0.0), dict(update_burst=0)],
)
def test_limits_out_of_range_are_core_misuse(bad: dict[str, float]) -> None:
    with pytest.raises(CoreMisuse):
        UpdateLimits(**bad)  # type: ignore[arg-type]


# --- in the session ----------------------------------------------------------------------------


def _established(limits: UpdateLimits) -> PeerSession:
    return bring_to(State.ESTABLISHED, config(limits=limits))


def test_s14_drop_hands_the_engine_only_what_fits() -> None:
    session = _established(UpdateLimits(max_claims=2))
    effects = session.data_received(1, encode(Update(tuple(flood(3)))), now=100.0)
    (received,) = [e for e in effects if isinstance(e, UpdateReceived)]
    assert len(received.update.attributes) == 2
    assert [e.exceeded.limit for e in effects if isinstance(e, LimitExceeded)] == ["max_claims"]
    assert session.state is State.ESTABLISHED and session.stats.limit_drops == 1


def test_s14_reset_closes_with_cease_and_backs_off() -> None:
    session = _established(UpdateLimits(max_claims=2, action=LimitAction.RESET))
    effects = session.data_received(1, encode(Update(tuple(flood(3)))), now=100.0)
    assert not [e for e in effects if isinstance(e, UpdateReceived)]
    (n,) = notifications(effects)
    assert n.code == ErrorCode.CEASE and not n.open_bit
    assert closed(effects) == [1] and any(isinstance(e, SessionDown) for e in effects)
    # §10 Idle after an error: the automatic restart waits for the back-off.
    assert session.state is State.IDLE and session.restart_at is not None
    assert session.restart_at > 100.0 and session.stats.limit_resets == 1


def test_s14_a_new_connection_starts_counting_afresh() -> None:
    """The peer replays its whole state on a new session (§11.8): last session's count
    must not hold it back."""
    session = _established(UpdateLimits(max_claims=2))
    session.data_received(1, encode(Update(tuple(flood(2)))), now=100.0)
    session.connection_lost(1, now=101.0)
    fresh = _established(UpdateLimits(max_claims=2))
    effects = fresh.data_received(1, encode(Update(tuple(flood(2)))), now=102.0)
    assert not [e for e in effects if isinstance(e, LimitExceeded)]


def test_s14_a_reconfigured_limit_applies_to_the_next_update() -> None:
    session = _established(UpdateLimits(max_claims=1))
    session.data_received(1, encode(Update(tuple(flood(1)))), now=100.0)
    session.config = replace(session.config, limits=UpdateLimits(max_claims=3))
    effects = session.data_received(1, encode(Update(tuple(flood(2, first=5)))), now=101.0)
    (received,) = [e for e in effects if isinstance(e, UpdateReceived)]
    assert len(received.update.attributes) == 2


def test_without_limits_every_update_goes_to_the_engine() -> None:
    session = bring_to(State.ESTABLISHED)
    effects = session.data_received(1, encode(Update(tuple(flood(100)))), now=100.0)
    (received,) = [e for e in effects if isinstance(e, UpdateReceived)]
    assert len(received.update.attributes) == 100
