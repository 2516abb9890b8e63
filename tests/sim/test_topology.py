"""Figure 1 of RFC 2909 as drawn, and the seeded random hierarchies (§4)."""

from __future__ import annotations

import time
from collections import defaultdict
from ipaddress import IPv4Address, IPv4Network

import pytest

from masc.cli import demo
from masc.protocol.constants import TLD_ID, Role
from masc.protocol.wire.messages import DomainId, NodeId
from masc.sim.topology import (
    DomainSpec,
    LinkSpec,
    NodeSpec,
    Topology,
    TopologyError,
    figure1,
    random_topology,
    strawman,
)


def sessions(topo: Topology) -> set[tuple[str, str, Role]]:
    """Each link in a canonical direction: the first node's name sorts first."""
    out = set()
    for link in topo.links:
        a, b, role = (link.a, link.b, link.role)
        if a > b:
            a, b, role = b, a, role.counterpart
        out.add((a, b, role))
    return out


def test_s4_figure1_has_the_drawn_domains_nodes_and_sessions() -> None:
    topo = figure1()
    assert sorted(topo.domains) == ["C5", "C6", "C7", "P3", "P4", "T1", "T2"]
    assert {d: topo.nodes_of(d) for d in ("P3", "P4", "C5", "C6", "C7")} == {
        "P3": ["P3a", "P3b"],
        "P4": ["P4a", "P4b"],
        "C5": ["C5a", "C5b", "C5c"],
        "C6": ["C6a", "C6b"],
        "C7": ["C7a"],
    }
    assert topo.domains["C5"].parents == ("P3", "P4")  # C5 has two parents
    assert len(topo.links) == 17
    p, s, i = Role.PARENT, Role.SIBLING, Role.INTERNAL
    assert sessions(topo) == {
        ("T1a", "T2a", s), ("P3b", "T1a", p), ("P4a", "T2a", p),
        ("P3a", "P3b", i), ("P4a", "P4b", i),
        ("C5a", "P3a", p), ("C5b", "P3b", p), ("C5b", "P4a", p),
        ("C6a", "P4a", p), ("C6a", "P4b", p), ("C6b", "P4b", p), ("C7a", "P4b", p),
        ("C5a", "C5b", i), ("C5a", "C5c", i), ("C5b", "C5c", i), ("C6a", "C6b", i),
        ("C6b", "C7a", s),
    }  # fmt: skip


def test_s4_figure1_roles_of_the_rfc_examples() -> None:
    """§4: P4b is an INTERNAL_PEER of P4a; C6a is a CHILD in its session with P4a; T2a is a
    PARENT in its session with P4a; T2a is a SIBLING of T1a (TLD sibling peering); C6b is
    a SIBLING of C7a with regard to their common parent P4."""
    topo = figure1()
    role = {(a, b): r for link in topo.links for a, b, r in link.ends()}
    assert role[("P4a", "P4b")] is Role.INTERNAL
    assert role[("P4a", "C6a")] is Role.CHILD
    assert role[("P4a", "T2a")] is Role.PARENT
    assert role[("T1a", "T2a")] is Role.SIBLING
    sibling = next(link for link in topo.links if link.joins("C6b", "C7a"))
    assert topo.session_parent_id(sibling) == topo.domains["P4"].domain_id
    tlds = next(link for link in topo.links if link.joins("T1a", "T2a"))
    assert topo.session_parent_id(tlds) == TLD_ID


def test_figure1_is_the_topology_masc_demo_runs() -> None:
    topo = figure1()
    inverse = {"child": Role.CHILD, "sibling": Role.SIBLING, "internal": Role.INTERNAL}
    drawn = set()
    for a, b, relation in demo.LINKS:
        role = inverse[relation]
        drawn.add((a, b, role) if a < b else (b, a, role.counterpart))
    assert sessions(topo) == drawn
    for name, (domain_id, parents) in demo.DOMAINS.items():
        assert topo.domains[name].domain_id == domain_id
        assert topo.domains[name].parents == parents
    for node, octet in demo.NODES.items():
        assert topo.nodes[node].node_id == 0x7F000000 + octet


def test_ancestry_follows_every_parent() -> None:
    topo = figure1()
    assert topo.ancestors("C5") == {"P3", "P4", "T1", "T2"}
    assert topo.ancestors("C6") == {"P4", "T2"}
    assert topo.related("C6", "T2") and topo.related("T2", "C6")
    assert not topo.related("C6", "T1")
    assert not topo.related("P3", "P4")
    assert topo.levels() == {"T1": 0, "T2": 0, "P3": 1, "P4": 1, "C5": 2, "C6": 2, "C7": 2}


@pytest.mark.parametrize("seed", range(50))
def test_random_topologies_are_valid_and_connected(seed: int) -> None:
    topo = random_topology(seed, domains=2 + seed % 7, levels=1 + seed % 3, max_nodes=3)
    links_by_pair: dict[frozenset[str], list[LinkSpec]] = defaultdict(list)
    for link in topo.links:
        da, db = topo.nodes[link.a].domain, topo.nodes[link.b].domain
        links_by_pair[frozenset((da, db))].append(link)
    for name, spec in topo.domains.items():
        # Every parent-child pair has a session, and each domain's nodes are connected.
        for parent in spec.parents:
            assert links_by_pair[frozenset((name, parent))], (seed, name, parent)
        assert _connected(topo.nodes_of(name), links_by_pair[frozenset((name,))])
        assert 1 <= len(topo.nodes_of(name)) <= 3
    tld_nodes = [n for n in topo.nodes if topo.domain_of(n).is_tld]
    tld_links = [link for link in topo.links if link.role is Role.SIBLING and link.parent is None]
    tld_domains = {topo.nodes[n].domain for n in tld_nodes}
    reached = _connected_domains(topo, tld_links)
    assert len(tld_domains) == 1 or reached == tld_domains


def test_random_topology_is_a_function_of_its_seed() -> None:
    assert random_topology(7) == random_topology(7)
    assert any(random_topology(7) != random_topology(s) for s in range(8, 12))


def _connected(nodes: list[str], links: list[LinkSpec]) -> bool:
    seen = {nodes[0]}
    todo = [nodes[0]]
    while todo:
        node = todo.pop()
        for link in links:
            for near, far, _ in link.ends():
                if near == node and far not in seen:
                    seen.add(far)
                    todo.append(far)
    return seen == set(nodes)


def _connected_domains(topo: Topology, links: list[LinkSpec]) -> set[str]:
    if not links:
        return set()
    adjacent: dict[str, set[str]] = defaultdict(set)
    for link in links:
        da, db = topo.nodes[link.a].domain, topo.nodes[link.b].domain
        adjacent[da].add(db)
        adjacent[db].add(da)
    start = next(iter(adjacent))
    seen, todo = {start}, [start]
    while todo:
        for other in adjacent[todo.pop()] - seen:
            seen.add(other)
            todo.append(other)
    return seen


def _two_domains(*links: LinkSpec, parents: tuple[str, ...] = ("A",)) -> Topology:
    return Topology(
        {
            "A": DomainSpec("A", DomainId(1)),
            "B": DomainSpec("B", DomainId(2), parents),
        },
        {"a": NodeSpec("a", "A", NodeId(1)), "b": NodeSpec("b", "B", NodeId(2))},
        links,
    )


def test_validate_accepts_a_parent_and_its_child() -> None:
    _two_domains(LinkSpec("a", "b", Role.CHILD))


@pytest.mark.parametrize(
    "link",
    [
        LinkSpec("a", "b", Role.PARENT),  # b is not a's parent
        LinkSpec("a", "b", Role.INTERNAL),  # different domains
        LinkSpec("a", "b", Role.SIBLING),  # not both top-level
        LinkSpec("a", "b", Role.SIBLING, parent="A"),  # A is not a's parent
        LinkSpec("a", "b", Role.CHILD, parent="A"),  # only siblings name a parent
        LinkSpec("a", "x", Role.CHILD),  # unknown node
    ],
)
def test_validate_rejects_what_a_daemon_config_would(link: LinkSpec) -> None:
    with pytest.raises(TopologyError):
        _two_domains(link)


def test_validate_rejects_a_cycle_of_parents() -> None:
    with pytest.raises(TopologyError):
        _two_domains(parents=("B",))


# --- RFC 2909 Appendix B (§18) strawman and large random hierarchies --------------------------


def _tld_mesh(topo: Topology) -> dict[str, set[str]]:
    adjacent: dict[str, set[str]] = defaultdict(set)
    for link in topo.links:
        if link.role is Role.SIBLING and link.parent is None:
            adjacent[link.a].add(link.b)
            adjacent[link.b].add(link.a)
    return adjacent


def _reached(adjacent: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for other in adjacent[todo.pop()] - seen:
            seen.add(other)
            todo.append(other)
    return seen


def test_s18_strawman_has_128_tlds_and_8192_level2_domains() -> None:
    """Appendix B: "approximately 128 Top-Level Domains", "approximately 8192 level-2 MASC
    domains; on average, a TLD will have approximately 64 children", pool 228.0.0.0/6,
    "Initial claim size: 256 addresses/MASC domain"; one node per domain."""
    topo = strawman(1)
    levels = topo.levels()
    assert sum(1 for v in levels.values() if v == 0) == 128
    assert sum(1 for v in levels.values() if v == 1) == 8192
    assert len(topo.domains) == len(topo.nodes) == 128 + 8192
    assert topo.global_pool == (IPv4Network("228.0.0.0/6"),)
    assert {d.demand for d in topo.domains.values()} == {256}
    children: dict[str, int] = defaultdict(int)
    for spec in topo.domains.values():
        for parent in spec.parents:
            children[parent] += 1
    assert set(children.values()) == {64}
    assert len({n.node_id for n in topo.nodes.values()}) == len(topo.nodes)


def test_s18_every_level2_domain_has_one_child_session_to_its_tld() -> None:
    topo = strawman(2, tlds=16, children=8)
    up = defaultdict(list)
    for link in topo.links:
        if link.role is Role.CHILD:
            up[topo.nodes[link.b].domain].append(topo.nodes[link.a].domain)
    for name, spec in topo.domains.items():
        assert up.get(name, []) == list(spec.parents), name
    assert all(link.role in (Role.CHILD, Role.SIBLING) for link in topo.links)


@pytest.mark.parametrize("seed", range(5))
def test_s18_tld_mesh_is_connected_and_sparse(seed: int) -> None:
    topo = strawman(seed)
    mesh = _tld_mesh(topo)
    tld_nodes = {n for n in topo.nodes if topo.domain_of(n).is_tld}
    assert _reached(mesh, next(iter(tld_nodes))) == tld_nodes
    degrees = [len(mesh[n]) for n in tld_nodes]
    assert min(degrees) >= 2  # a ring: no single lost session splits the mesh
    assert sum(degrees) / len(degrees) == pytest.approx(3.0, abs=0.05)
    assert max(degrees) <= 8


@pytest.mark.parametrize(("tlds", "degree"), [(1, 3.0), (2, 3.0), (3, 3.0), (10, 1.0), (10, 9.0)])
def test_strawman_mesh_small_and_extreme_degrees(tlds: int, degree: float) -> None:
    topo = strawman(0, tlds=tlds, children=2, mesh_degree=degree)
    mesh = _tld_mesh(topo)
    tld_nodes = {n for n in topo.nodes if topo.domain_of(n).is_tld}
    assert tlds == 1 or _reached(mesh, next(iter(tld_nodes))) == tld_nodes
    if tlds == 10 and degree == 9.0:
        assert all(len(mesh[n]) == 9 for n in tld_nodes)  # complete


def test_s18_level3_option_adds_children_of_level2_domains() -> None:
    """Appendix B: "A level-2 MASC domain could have children (i.e. level-3) MASC domains";
    ``level3`` is their mean number per level-2 domain."""
    topo = strawman(3, tlds=8, children=16, level3=0.5)
    levels = topo.levels()
    third = [name for name, level in levels.items() if level == 2]
    assert len(third) == 64  # 0.5 x 128 level-2 domains
    for name in third:
        (parent,) = topo.domains[name].parents
        assert levels[parent] == 1
        assert name.startswith(parent + "-")
    assert strawman(3, tlds=8, children=16, level3=0.5) == topo
    assert strawman(4, tlds=8, children=16, level3=0.5) != topo


def test_strawman_names_and_node_ids() -> None:
    topo = strawman(0, tlds=3, children=2, level3=1.0)
    assert topo.nodes["T1a"].domain == "T1"
    assert topo.nodes["T2-1a"].domain == "T2-1"
    assert topo.domains["T2-1"].parents == ("T2",)
    assert topo.nodes["T1a"].node_id == int(IPv4Address("10.0.1.1"))


def test_random_topology_scales_to_thousands_of_domains() -> None:
    started = time.perf_counter()
    topo = random_topology(5, domains=2000, levels=3, tlds=8, max_nodes=2, sibling_degree=2.0)
    assert len(topo.domains) == 2000
    assert len({n.node_id for n in topo.nodes.values()}) == len(topo.nodes)
    assert max(topo.levels().values()) == 2
    ids = sorted(topo.nodes[n].node_id for n in topo.nodes)
    assert IPv4Address(ids[-1]) >= IPv4Address("10.7.0.1")  # past the old 10.0.255.x
    # Sibling sessions per parent about sibling_degree per child, not a dense mesh.
    siblings = [link for link in topo.links if link.role is Role.SIBLING and link.parent]
    assert len(siblings) <= 2000
    assert time.perf_counter() - started < 5.0


def test_random_topology_node_ids_below_256_domains_are_10_0_i_j() -> None:
    topo = random_topology(3, domains=200, levels=2, max_nodes=2)
    assert topo.nodes["D200a"].node_id == int(IPv4Address("10.0.200.1"))
