"""Nothing a peer sends can make the claim engine raise (RFC 2909 §11; STYLE.md 3, 4).

Random, well-typed attributes (any type, Rol, D-bit, timestamps, lifetimes, holdtimes,
origin ids and prefixes, biased toward the space the engine actually holds) arrive from
random neighbours of every relation, interleaved with the clock running and sessions
bouncing.  Every input must return a list of events; a bad attribute is a RejectClaim, not
an exception.  Runs are derandomized so CI is reproducible.
"""

from __future__ import annotations

import contextlib
from ipaddress import IPv4Network, IPv6Network
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from masc.protocol.constants import ClaimType, Role
from masc.protocol.engine import ClashResolution, Policy, RequestRefused
from masc.protocol.events import EngineEvent, RejectClaim
from masc.protocol.wire.messages import Claim, DomainId, NodeId, Prefix
from tests.protocol.engine_helpers import DAY, T0, WAIT, Net, claim

ENGINE = settings(
    max_examples=120,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

X_DOM, P_DOM = 20, 10
PEERS = {  # name: (relation to x, domain, node)
    "p": (Role.PARENT, P_DOM, 0x0A000001),
    "s": (Role.SIBLING, 21, 0x15000001),
    "i": (Role.INTERNAL, X_DOM, 0x14000002),
    "c": (Role.CHILD, 30, 0x1E000001),
}
U32 = 2**32 - 1

v4 = st.builds(
    lambda base, length, bits: IPv4Network(((base + bits) & U32, length), strict=False),
    st.sampled_from([0xEFC00000, 0xEFC00000, 0xE0000000, 0]),  # 239.192/16, 224/4, 0 (hint)
    st.integers(0, 32),
    st.integers(0, 0xFFFF),
)
v6 = st.builds(
    lambda bits, length: IPv6Network(((0xFF3E << 112) | bits, length), strict=False),
    st.integers(0, 2**32),
    st.integers(8, 128),
)
prefixes: st.SearchStrategy[Prefix] = st.one_of(v4, v4, v4, v6)
times = st.one_of(
    st.integers(int(T0) - 400 * int(DAY), int(T0) + 30 * int(DAY)),
    st.integers(0, U32),
)
durations = st.one_of(
    st.sampled_from([0, 1, int(WAIT), 30 * int(DAY), 15_768_000, U32]),
    st.integers(0, U32),
)
domains = st.one_of(st.sampled_from([X_DOM, P_DOM, 21, 30, 31, 0]), st.integers(0, U32))
nodes = st.one_of(st.sampled_from([0x14000001, 0x14000002, 0x0A000001]), st.integers(0, U32))

claims = st.builds(
    Claim,
    type=st.sampled_from(list(ClaimType)),
    origin_role=st.sampled_from(list(Role)),
    timestamp=times,
    lifetime=durations,
    holdtime=durations,
    origin_domain=domains.map(DomainId),
    origin_node=nodes.map(NodeId),
    prefix=prefixes,
    deprecated=st.booleans(),
)

steps = st.lists(
    st.one_of(
        st.tuples(st.just("update"), st.sampled_from(sorted(PEERS)), st.lists(claims, max_size=4)),
        st.tuples(st.just("tick"), st.floats(0, 40 * DAY)),
        st.tuples(st.just("bounce"), st.sampled_from(sorted(PEERS))),
        st.tuples(st.just("operator"), st.sampled_from(["renew", "expand", "release"])),
    ),
    max_size=25,
)


def _world(manual: bool) -> Net:
    net = Net()
    policy = Policy(
        clash_resolution=ClashResolution.MANUAL if manual else ClashResolution.AUTOMATIC,
        max_child_prefix_size=1024,
        child_soft_threshold=64,
        child_hard_threshold=4096,
    )
    net.engine("x", X_DOM, 0x14000001, parent_domain_ids=(DomainId(P_DOM),), policy=policy)
    for name, (role, domain, node) in PEERS.items():
        net.stub(name, domain, node)
        net.link("x", name, role, parent=P_DOM)
    pm = claim(
        ClaimType.PREFIX_MANAGED, Role.INTERNAL, "239.192.0.0/16", domain=P_DOM, node=0x0A000001,
        lifetime=100 * DAY,
    )  # fmt: skip
    net.inject("p", "x", pm)
    net.start("x")
    net.run_for(WAIT + 700)  # x holds a prefix
    return net


def _all_events(events: Any) -> list[EngineEvent]:
    assert isinstance(events, list)
    return events


@ENGINE
@given(steps=steps, manual=st.booleans())
def test_nothing_a_peer_sends_makes_the_engine_raise(steps: list[Any], manual: bool) -> None:
    net = _world(manual)
    x = net["x"]
    for step in steps:
        kind = step[0]
        if kind == "update":
            _, peer, attributes = step
            events = _all_events(net.inject(peer, "x", *attributes))
            for reject in (e for e in events if isinstance(e, RejectClaim)):
                assert reject.peer == peer
                assert reject.error.data  # the attribute itself (§8.3)
        elif kind == "tick":
            net.run_for(step[1])
        elif kind == "bounce":
            net.down("x", step[1])
            net.up("x", step[1])
        else:
            for prefix in list(x.managed_space()):
                with contextlib.suppress(RequestRefused):  # the documented refusal only
                    _all_events(net.call("x", step[1], prefix))
        deadline = x.next_deadline()
        assert deadline is None or deadline == deadline  # never NaN
    net.run_for(10 * DAY)


# --- engines that follow the protocol agree with each other --------------------------------

operations = st.lists(
    st.tuples(
        st.floats(0, 10 * DAY),
        st.sampled_from(["x", "x2", "y"]),
        st.sampled_from(["renew", "expand", "release", "bounce", "none"]),
        st.sampled_from(["top", "x2", "y"]),
    ),
    max_size=40,
)


def _hierarchy() -> Net:
    """A top-level domain 10 over domains 20 (nodes x, x2) and 21 (node y)."""
    net = Net()
    pool = (IPv4Network("239.192.0.0/20"),)
    net.engine("top", P_DOM, 0x0A000001, global_pool=pool, initial_size=0)
    for name, domain, node in (("x", X_DOM, 0x14000001), ("x2", X_DOM, 0x14000002)):
        net.engine(name, domain, node, parent_domain_ids=(DomainId(P_DOM),))
    net.engine("y", 21, 0x15000001, parent_domain_ids=(DomainId(P_DOM),))
    net.call("top", "claim", 0, prefix=pool[0], lifetime=100 * DAY, at=T0 + 1)
    net.start("top")
    net.run_for(WAIT + 10)
    for child in ("x", "x2", "y"):
        net.link(child, "top", Role.PARENT)
    net.link("x", "x2", Role.INTERNAL)
    net.link("x", "y", Role.SIBLING, parent=P_DOM)
    net.start("x", "x2", "y")
    return net


@settings(max_examples=25, derandomize=True, deadline=None)
@given(ops=operations)
# x cut off from its parent and its internal peer hears of its domain's renewal through a
# sibling only (it used to answer with No Appropriate Internal Prefix).
@example(
    ops=[(0.0, "x", "bounce", "top"), (0.0, "x", "bounce", "x2"), (702884.0, "x2", "renew", "")]
)
def test_engines_following_the_protocol_never_reject_each_other(ops: list[Any]) -> None:
    """Operator requests and session bounces at random: no engine sends another a
    NOTIFICATION, and the two domains never end up holding overlapping space."""
    net = _hierarchy()
    for delay, name, op, peer in ops:
        net.run_for(delay)
        if op == "bounce" and name == "x" and peer != "x":
            if ("x", peer) in net.live:
                net.down("x", peer)
            else:
                net.up("x", peer)
        elif op in ("renew", "expand", "release"):
            for prefix in list(net[name].managed_space()):
                with contextlib.suppress(RequestRefused):
                    net.call(name, op, prefix)
        ours = net["x"].managed_space() + net["x2"].managed_space()
        theirs = net["y"].managed_space()
        assert not any(a.overlaps(b) for a in ours for b in theirs), (ours, theirs)
    assert [r for r in net.log if isinstance(r.event, RejectClaim)] == []
