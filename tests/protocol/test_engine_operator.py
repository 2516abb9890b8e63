"""Operator inputs to the claim engine: a manual claim (§5.1) and a reload's new settings.

``x`` is a leaf domain under parent ``p`` (space 239.192.0.0/16), as in test_engine.py.
"""

from __future__ import annotations

import dataclasses

import pytest

from masc.protocol.constants import ClaimType
from masc.protocol.engine import ClashResolution
from masc.protocol.errors import CoreMisuse
from masc.protocol.events import ClaimSent, PrefixAllocated
from masc.protocol.wire.messages import DomainId, NodeId
from tests.protocol.engine_helpers import WAIT
from tests.protocol.test_engine import allocated, world


def test_s5_1_an_operator_claim_is_sent_even_when_the_domain_already_has_space() -> None:
    net = world()
    first = allocated(net)
    net.call("x", "claim", 1024)
    net.run_for(WAIT + 700)
    new = [c for c in net.events("x", ClaimSent) if c.purpose == "new"]  # since allocated()
    assert len(new) == 1 and new[-1].claim.type is ClaimType.NEW_CLAIM
    assert new[-1].claim.prefix.num_addresses == 1024
    assert not new[-1].claim.prefix.overlaps(first)
    got = [e.prefix for e in net.events("x", PrefixAllocated)]
    assert new[-1].claim.prefix in got


def test_reconfigure_applies_new_timers_to_claims_decided_afterwards() -> None:
    net = world()
    allocated(net)
    engine = net["x"]
    shorter = dataclasses.replace(engine.config, waiting_period=600.0, initiate_claim_delay=1.0)
    net.call("x", "reconfigure", shorter)
    assert engine.config.waiting_period == 600.0
    net.call("x", "claim", 256)
    net.run_for(2.0)
    (sent,) = [c for c in net.events("x", ClaimSent) if c.purpose == "new"]
    assert sent.claim.holdtime == 600  # §7.3: a claim's holdtime is the waiting period
    net.run_for(601.0)
    assert sent.claim.prefix in [e.prefix for e in net.events("x", PrefixAllocated)]


def test_reconfigure_applies_a_new_clash_policy_and_cache_grace() -> None:
    net = world()
    engine = net["x"]
    policy = dataclasses.replace(engine.config.policy, clash_resolution=ClashResolution.MANUAL)
    net.call("x", "reconfigure", dataclasses.replace(engine.config, policy=policy,
                                                     clock_skew_grace=5.0))  # fmt: skip
    assert engine.config.policy.clash_resolution is ClashResolution.MANUAL
    assert engine.cache.grace == 5.0


@pytest.mark.parametrize(
    "change",
    [
        {"local_domain": DomainId(99)},
        {"local_node": NodeId(99)},
        {"parent_domain_ids": (DomainId(7),)},
    ],
)
def test_reconfigure_refuses_identity_changes(change: dict[str, object]) -> None:
    net = world()
    engine = net["x"]
    before = engine.config
    with pytest.raises(CoreMisuse):
        engine.reconfigure(dataclasses.replace(before, **change), now=net.now)  # type: ignore[arg-type]
    assert engine.config is before


def test_usable_all_agrees_with_usable_for_every_allocation() -> None:
    net = world()
    allocated(net)
    net.call("x", "claim", 1024)
    net.run_for(WAIT + 700)
    engine = net["x"]
    assert len(engine.allocations) == 2
    assert engine.usable_all() == {k: engine.usable(a) for k, a in engine.allocations.items()}
