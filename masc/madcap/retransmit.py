"""When a MADCAP client sends its copies and when it gives up (RFC 2730 §2.3, §2.2.2, App. B).

§2.3: "MADCAP clients are responsible for all message retransmission.  The client MUST adopt
a retransmission strategy that incorporates an exponential backoff algorithm."  The
RECOMMENDED algorithm waits 4 s before the first retransmission, doubles the delay each
time up to 16 s, and retransmits at most three times: copies at t, t+4, t+12 and t+28; with
no response by t+60 ([NO-RESPONSE-DELAY], Appendix B) the client stops and reports failure.

§2.2.2: the client waits at most [DISCOVER-DELAY] after the first OFFER before it chooses a
server; "the RECOMMENDED value is the current retransmit timer", which :func:`current_delay`
gives for the copy most recently sent.

Pure: offsets are seconds from the first transmission; the trio client adds them to the time
it sent the first copy (masc/madcap/client.py).
"""

from __future__ import annotations

from typing import Final

from masc.madcap.constants import (
    NO_RESPONSE_DELAY,
    RETRANSMIT_COUNT,
    RETRANSMIT_INITIAL,
    RETRANSMIT_MAX,
)

__all__ = ["GIVE_UP", "TRANSMIT_OFFSETS", "current_delay", "schedule"]


def schedule(
    initial: float = RETRANSMIT_INITIAL,
    maximum: float = RETRANSMIT_MAX,
    retries: int = RETRANSMIT_COUNT,
    give_up: float = NO_RESPONSE_DELAY,
) -> tuple[tuple[float, ...], float]:
    """The send offsets of one message and the give-up offset, both from its first copy.

    §2.3: the first retransmission ``initial`` seconds after the original, each later delay
    double the one before, never more than ``maximum``; ``retries`` retransmissions.  Copies
    that would fall at or after ``give_up`` are not sent (§2.3: "The client MAY halt
    retransmission at any point"), which is how a caller shortens the exchange.
    """
    if not initial > 0 or not maximum >= initial:
        raise ValueError(f"need 0 < initial <= maximum, got {initial} and {maximum}")
    if retries < 0:
        raise ValueError(f"retries must not be negative, got {retries}")
    if not give_up > 0:
        raise ValueError(f"give_up must be positive, got {give_up}")
    offsets = [0.0]
    delay = initial
    for _ in range(retries):
        at = offsets[-1] + delay
        if at >= give_up:
            break
        offsets.append(at)
        delay = min(delay * 2, maximum)  # §2.3: exponential backoff, capped
    return tuple(offsets), float(give_up)


def current_delay(offsets: tuple[float, ...], give_up: float, sent: int) -> float:
    """§2.2.2 [DISCOVER-DELAY]: "the current retransmit timer" after ``sent`` copies, i.e. the
    time from the latest copy to the next one (or to giving up after the last copy)."""
    if not 1 <= sent <= len(offsets):
        raise ValueError(f"sent must be 1..{len(offsets)}, got {sent}")
    following = offsets[sent] if sent < len(offsets) else give_up
    return following - offsets[sent - 1]


# §2.3's example: "subsequent transmissions would be at t+4, t+12, and t+28 ... If no
# response has been received by t+60, the client would stop retransmitting".
# The test checks that these are what schedule() computes from the Appendix B constants.
TRANSMIT_OFFSETS: Final = (0.0, 4.0, 12.0, 28.0)
GIVE_UP: Final = NO_RESPONSE_DELAY
