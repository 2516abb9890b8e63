"""The weak reference :func:`masc.protocol.claims.shared` keeps to the process's one copy
of each claim, with that claim's keys.

A module of its own so that it stays interpreted in the compiled build (setup.py leaves it
out): a compiled class cannot subclass ``weakref.ref``."""

from __future__ import annotations

import weakref

from masc.protocol.wire.messages import Claim


class SharedClaim(weakref.ref[Claim]):
    """The process's copy of one claim, weakly held, with its identity tuple
    (``claims.Identity``) and the key it is found by."""

    __slots__ = ("claim_id", "identity", "value_key")
    identity: tuple[object, ...]
    value_key: tuple[object, ...]
    claim_id: int
