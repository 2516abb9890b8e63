"""The safety checker on hand-made states: each rule catches its violation and nothing else
(RFC 2909 §4.1, §12.4)."""

from __future__ import annotations

import random
from ipaddress import IPv4Network

import pytest

from masc.protocol.constants import AddressFamily
from masc.protocol.engine import Allocation, ClaimEngine, EngineConfig
from masc.protocol.events import SpaceKind
from masc.protocol.wire.messages import DomainId, Prefix
from masc.sim.network import EPOCH
from masc.sim.safety import check_safety, check_space_safety
from masc.sim.topology import Topology, figure1

NOW = EPOCH + 1_000.0
TOPO = figure1()


def engine(node: str, *held: str, local: tuple[str, ...] = ()) -> ClaimEngine:
    """The engine of ``node`` holding ``held`` (DOMAIN) and ``local`` (LOCAL) prefixes."""
    spec = TOPO.nodes[node]
    domain = TOPO.domains[spec.domain]
    e = ClaimEngine(
        EngineConfig(
            local_domain=domain.domain_id,
            local_node=spec.node_id,
            family=AddressFamily.IPV4,
            parent_domain_ids=TOPO.parent_ids(domain.name),
            global_pool=TOPO.global_pool if domain.is_tld else (),
        ),
        rng=random.Random(0),
    )
    for kind, prefixes in ((SpaceKind.DOMAIN, held), (SpaceKind.LOCAL, local)):
        for text in prefixes:
            prefix = IPv4Network(text)
            e.allocations[(kind, prefix)] = Allocation(
                prefix=prefix,
                kind=kind,
                parent=DomainId(0),
                timestamp=int(NOW) - 100,
                lifetime=3_600,
                origin_node=spec.node_id,
                allocated_at=NOW - 100,
            )
    if local:
        e.non_leaf = True
    return e


def rules(topo: Topology, engines: dict[str, ClaimEngine]) -> list[str]:
    return [v.rule for v in check_safety(topo, engines, now=NOW)]


def converged() -> dict[str, ClaimEngine]:
    """A Figure 1 state that breaks no rule."""
    return {
        "T1a": engine("T1a", "239.192.0.0/20", local=("239.192.8.0/21",)),
        "T2a": engine("T2a", "239.192.16.0/20", local=("239.192.24.0/21",)),
        "P3a": engine("P3a", "239.192.0.0/22", local=("239.192.2.0/23",)),
        "P3b": engine("P3b", "239.192.0.0/22", local=("239.192.2.0/23",)),
        "P4a": engine("P4a", "239.192.16.0/22", local=("239.192.18.0/23",)),
        "P4b": engine("P4b", "239.192.16.0/22", local=("239.192.18.0/23",)),
        "C5a": engine("C5a", "239.192.0.0/24"),
        "C5b": engine("C5b", "239.192.0.0/24"),
        "C5c": engine("C5c", "239.192.0.0/24"),
        "C6a": engine("C6a", "239.192.16.0/24"),
        "C6b": engine("C6b", "239.192.16.0/24"),
        "C7a": engine("C7a", "239.192.17.0/24"),
    }


def test_a_converged_state_is_safe() -> None:
    assert check_safety(TOPO, converged(), now=NOW) == []


def test_s12_4_unrelated_domains_managing_overlapping_space() -> None:
    engines = converged()
    engines["T2a"] = engine("T2a", "239.192.0.0/20", local=("239.192.8.0/21",))
    found = check_safety(TOPO, engines, now=NOW)
    assert {v.rule for v in found} >= {"overlap", "local"}
    assert any("T1" in v.message and "T2" in v.message for v in found if v.rule == "overlap")


def test_s12_4_an_ancestor_and_its_descendant_may_overlap() -> None:
    # C5's prefix lies in P3's, which lies in T1's: nested, not a clash.
    assert "overlap" not in rules(TOPO, converged())


def test_s4_a_child_prefix_outside_every_parent_prefix() -> None:
    engines = converged()
    engines["C7a"] = engine("C7a", "239.193.0.0/24")  # not inside P4's /22
    assert rules(TOPO, engines) == ["nesting"]


def test_s4_a_child_of_two_parents_may_use_either() -> None:
    engines = converged()
    for node in ("C5a", "C5b", "C5c"):
        engines[node] = engine(node, "239.192.17.0/24")  # from P4, C5's second parent
    engines["C7a"] = engine("C7a", "239.192.19.0/24")
    engines["P4a"] = engine("P4a", "239.192.16.0/22", local=("239.192.18.0/24",))
    engines["P4b"] = engine("P4b", "239.192.16.0/22", local=("239.192.18.0/24",))
    engines["C6a"] = engine("C6a", "239.192.16.0/24")
    engines["C6b"] = engine("C6b", "239.192.16.0/24")
    assert rules(TOPO, engines) == []


def test_nesting_falls_back_to_the_childs_record_when_no_parent_node_runs() -> None:
    engines = converged()
    for node in ("P4a", "P4b"):
        del engines[node]
    # C6 and C7 know nothing of P4's space: their prefixes are outside what they know.
    assert rules(TOPO, engines).count("nesting") == 3


def test_s11_6_3_internal_peers_disagreeing() -> None:
    engines = converged()
    engines["C5c"] = engine("C5c", "239.192.1.0/24")
    found = check_safety(TOPO, engines, now=NOW)
    assert "internal" in {v.rule for v in found}
    assert any("C5" in v.message for v in found if v.rule == "internal")


def test_s12_4_locally_allocated_overlap_between_parent_and_child() -> None:
    engines = converged()
    # P3 keeps the child's /24 for its own MAASs as well.
    for node in ("P3a", "P3b"):
        engines[node] = engine(node, "239.192.0.0/22", local=("239.192.0.0/23",))
    assert rules(TOPO, engines) == ["local", "local", "local", "local", "local", "local"]


def test_expired_allocations_do_not_count() -> None:
    engines = converged()
    engines["T2a"] = engine("T2a", "239.192.0.0/20")
    later = NOW + 3_600
    # Everything expired: nothing overlaps, nothing is outside its parent.
    assert check_safety(TOPO, engines, now=later) == []


class _Related:
    """A topology stand-in: only ``related`` is asked by the overlap rule."""

    def __init__(self, pairs: set[frozenset[str]]) -> None:
        self.pairs = pairs

    def related(self, x: str, y: str) -> bool:
        return frozenset((x, y)) in self.pairs


def test_s12_4_overlap_sweep_finds_every_pair_a_pairwise_scan_finds() -> None:
    """The sweep over sorted prefixes (thousands of domains) reports exactly the pairs,
    in the order, that comparing every two nodes' prefixes does."""
    from masc.protocol.space import overlaps
    from masc.sim.safety import _overlaps

    for seed in range(200):
        rng = random.Random(seed)
        domains = [f"d{i}" for i in range(rng.randrange(1, 7))]
        by_domain = {d: [f"{d}n{k}" for k in range(rng.randrange(1, 3))] for d in domains}
        pairs = {
            frozenset((a, b)) for a in domains for b in domains if a != b and rng.random() < 0.3
        }
        space = {
            n: sorted(
                {
                    IPv4Network(
                        (0xEFC00000 + (rng.randrange(1 << (bits - 24)) << (32 - bits)), bits)
                    )
                    for bits in (rng.randrange(24, 29) for _ in range(rng.randrange(4)))
                }
            )
            for nodes in by_domain.values()
            for n in nodes
        }
        for related_ok in (True, False):
            expected = [
                f"overlap: managed {px} of {x} ({nx}) overlaps {py} of {y} ({ny})"
                for i, x in enumerate(domains)
                for y in domains[i + 1 :]
                if not (related_ok and frozenset((x, y)) in pairs)
                for nx in by_domain[x]
                for ny in by_domain[y]
                for px in space[nx]
                for py in space[ny]
                if overlaps(px, py)
            ]
            found = _overlaps(
                _Related(pairs),  # type: ignore[arg-type]
                by_domain,
                space,
                "overlap",
                related_ok=related_ok,
            )
            assert [str(v) for v in found] == expected, seed


# --- the same rules on plain prefix sets (real daemons, tests/netns) ------------------------


def spaces(engines: dict[str, ClaimEngine]) -> tuple[dict[str, list[Prefix]], ...]:
    """What check_space_safety is given for ``engines``: managed and local space."""
    return (
        {n: e.managed_space(now=NOW) for n, e in engines.items()},
        {n: e.local_space(now=NOW) for n, e in engines.items()},
    )


def test_space_safety_finds_what_the_engine_check_finds() -> None:
    """Every state of the tests above: the same violations, in the same order."""
    states = [converged()]
    broken = converged()
    broken["T2a"] = engine("T2a", "239.192.0.0/20", local=("239.192.8.0/21",))
    states.append(broken)
    outside = converged()
    outside["C7a"] = engine("C7a", "239.193.0.0/24")
    states.append(outside)
    disagree = converged()
    disagree["C5c"] = engine("C5c", "239.192.1.0/24")
    states.append(disagree)
    local = converged()
    for node in ("P3a", "P3b"):
        local[node] = engine(node, "239.192.0.0/22", local=("239.192.0.0/23",))
    states.append(local)
    for engines in states:
        managed, local_space = spaces(engines)
        expected = check_safety(TOPO, engines, now=NOW)
        assert check_space_safety(TOPO, managed, local_space) == expected
    assert [v.rule for v in check_space_safety(TOPO, *spaces(outside))] == ["nesting"]


def test_space_safety_nesting_without_a_running_parent_uses_the_given_parent_space() -> None:
    engines = converged()
    for node in ("P4a", "P4b"):
        del engines[node]
    managed, local = spaces(engines)
    # Nothing known of P4's space: C6a, C6b and C7a manage space outside it.
    assert [v.rule for v in check_space_safety(TOPO, managed, local)] == ["nesting"] * 3
    p4 = [IPv4Network("239.192.16.0/22")]
    known = {"C6a": p4, "C6b": p4, "C7a": p4}
    assert check_space_safety(TOPO, managed, local, parent_space=known) == []
    # What one node knows is its own: C7a knowing nothing breaks the rule for it alone.
    found = check_space_safety(TOPO, managed, local, parent_space={"C6a": p4, "C6b": p4})
    assert [v.rule for v in found] == ["nesting"] and "C7a" in found[0].message


def test_space_safety_takes_any_iterables_and_refuses_local_space_of_unknown_nodes() -> None:
    managed = {"T1a": iter([IPv4Network("239.192.0.0/20")])}
    assert check_space_safety(TOPO, managed, {"T1a": ()}) == []
    with pytest.raises(ValueError, match="T2a"):
        check_space_safety(TOPO, {"T1a": []}, {"T2a": []})
