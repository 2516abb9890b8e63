"""RFC 2730 §2.3 retransmission schedule and §2.2.2 [DISCOVER-DELAY] (masc.madcap.retransmit).

The client's use of the schedule over real UDP, under a virtual clock, is in test_client.py.
"""

from __future__ import annotations

import itertools

import pytest

from masc.madcap import constants
from masc.madcap.retransmit import GIVE_UP, TRANSMIT_OFFSETS, current_delay, schedule


def test_s2_3_recommended_copies_at_t_t4_t12_t28_give_up_at_t60() -> None:
    assert schedule() == ((0.0, 4.0, 12.0, 28.0), 60.0)
    assert schedule() == (TRANSMIT_OFFSETS, GIVE_UP)


def test_s2_3_defaults_are_the_appendix_b_constants() -> None:
    assert (
        schedule(
            constants.RETRANSMIT_INITIAL,
            constants.RETRANSMIT_MAX,
            constants.RETRANSMIT_COUNT,
            constants.NO_RESPONSE_DELAY,
        )
        == schedule()
    )


def test_s2_3_backoff_doubles_and_is_capped_at_the_maximum() -> None:
    offsets, _ = schedule(initial=1.0, maximum=4.0, retries=5, give_up=100.0)
    delays = [b - a for a, b in itertools.pairwise(offsets)]
    assert delays == [1.0, 2.0, 4.0, 4.0, 4.0]


def test_s2_3_at_most_retries_retransmissions() -> None:
    assert schedule(retries=0) == ((0.0,), 60.0)
    assert len(schedule(retries=1)[0]) == 2


def test_s2_3_client_may_halt_retransmission_early() -> None:
    # Copies due at or after the give-up time are not sent.
    assert schedule(give_up=12.0) == ((0.0, 4.0), 12.0)
    assert schedule(give_up=0.5) == ((0.0,), 0.5)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial": 0.0},
        {"initial": 8.0, "maximum": 4.0},
        {"retries": -1},
        {"give_up": 0.0},
    ],
)
def test_schedule_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        schedule(**kwargs)  # type: ignore[arg-type]


def test_s2_2_2_discover_delay_is_the_current_retransmit_timer() -> None:
    offsets, give_up = schedule()
    assert [current_delay(offsets, give_up, n) for n in (1, 2, 3, 4)] == [4.0, 8.0, 16.0, 32.0]
    with pytest.raises(ValueError):
        current_delay(offsets, give_up, 0)
    with pytest.raises(ValueError):
        current_delay(offsets, give_up, 5)
