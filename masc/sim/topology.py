"""MASC topologies for the simulator: RFC 2909 Figure 1 and seeded random hierarchies (§4).

A :class:`Topology` is plain data: domains with their parent domains, nodes in domains, and
the peering sessions (links) between nodes, each with the role the second node plays to the
first (§4: INTERNAL_PEER, CHILD, PARENT, SIBLING).  A sibling link belongs to one common
parent (§4.4); between top-level domains that parent is [TLD_ID] (§6), written ``None``
here.  :meth:`Topology.validate` rejects what a daemon's configuration check would reject,
so a topology the simulator runs is one real daemons could be configured with.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Final

from masc.protocol.constants import TLD_ID, Role
from masc.protocol.wire.messages import DomainId, NodeId, Prefix

# The global multicast pool the top-level domains share in the examples (239.192.0.0/14 is
# the IPv4 Organization-Local Scope of RFC 2365, what `masc demo` uses too).
DEFAULT_POOL: Final[tuple[Prefix, ...]] = (IPv4Network("239.192.0.0/14"),)


class TopologyError(ValueError):
    """A topology no set of daemon configurations could express."""


@dataclass(frozen=True, slots=True)
class DomainSpec:
    """A MASC domain.  ``parents`` are the names of its parent domains, empty for a
    top-level domain.  ``demand`` is how many addresses it wants (the engine's
    ``initial_size``: what it claims first, and for local use once it is non-leaf, §12.2)."""

    name: str
    domain_id: DomainId
    parents: tuple[str, ...] = ()
    demand: int = 256

    @property
    def is_tld(self) -> bool:
        return not self.parents


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """A MASC node (speaker) of ``domain``; ``node_id`` is its MASC Identifier (§7.2)."""

    name: str
    domain: str
    node_id: NodeId


@dataclass(frozen=True, slots=True)
class LinkSpec:
    """A peering session between nodes ``a`` and ``b``.  ``role`` is what ``b`` is to ``a``
    (Role.CHILD: ``b`` is in a child domain of ``a``'s).  ``parent`` is, for a sibling link,
    the name of the common parent domain it belongs to (§4.4), None between top-level
    domains."""

    a: str
    b: str
    role: Role
    parent: str | None = None

    def ends(self) -> tuple[tuple[str, str, Role], tuple[str, str, Role]]:
        """(node, peer, what the peer is to the node) for both ends."""
        return (self.a, self.b, self.role), (self.b, self.a, self.role.counterpart)

    def joins(self, x: str, y: str) -> bool:
        return {self.a, self.b} == {x, y}


@dataclass(frozen=True)
class Topology:
    """Domains, nodes and links of one MASC hierarchy, plus the global pool its top-level
    domains claim from (§4, §12.4)."""

    domains: Mapping[str, DomainSpec]
    nodes: Mapping[str, NodeSpec]
    links: tuple[LinkSpec, ...]
    global_pool: tuple[Prefix, ...] = DEFAULT_POOL
    _ancestors: dict[str, frozenset[str]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    # Indexes built on first use: with thousands of nodes (Appendix B's 8,320 domains) a
    # scan of every link per node would make building a network quadratic.
    _links_by_node: dict[str, list[int]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _members: dict[str, list[str]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        self.validate()

    # --- structure -----------------------------------------------------------------------

    def domain_of(self, node: str) -> DomainSpec:
        return self.domains[self.nodes[node].domain]

    def nodes_of(self, domain: str) -> list[str]:
        """The nodes of ``domain``, in the order of :attr:`nodes`."""
        if not self._members:
            for node in self.nodes.values():
                self._members.setdefault(node.domain, []).append(node.name)
        return list(self._members.get(domain, ()))

    def links_of(self, node: str) -> Iterator[tuple[int, LinkSpec]]:
        """The links ``node`` is an end of, with their index in :attr:`links` (in order)."""
        if not self._links_by_node and self.links:
            for index, link in enumerate(self.links):
                self._links_by_node.setdefault(link.a, []).append(index)
                self._links_by_node.setdefault(link.b, []).append(index)
        for index in self._links_by_node.get(node, ()):
            yield index, self.links[index]

    def parent_ids(self, domain: str) -> tuple[DomainId, ...]:
        """The domain's parents as an engine or session sees them: (TLD_ID,) for a TLD."""
        spec = self.domains[domain]
        if spec.is_tld:
            return (DomainId(TLD_ID),)
        return tuple(self.domains[p].domain_id for p in spec.parents)

    def session_parent_id(self, link: LinkSpec) -> DomainId | None:
        """§4.4: the common parent a sibling session belongs to (TLD_ID between TLDs)."""
        if link.role is not Role.SIBLING:
            return None
        if link.parent is None:
            return DomainId(TLD_ID)
        return self.domains[link.parent].domain_id

    def ancestors(self, domain: str) -> frozenset[str]:
        """Every domain above ``domain`` in the hierarchy (parents, their parents, ...)."""
        cached = self._ancestors.get(domain)
        if cached is not None:
            return cached
        found: set[str] = set()
        todo = list(self.domains[domain].parents)
        while todo:
            parent = todo.pop()
            if parent not in found:
                found.add(parent)
                todo.extend(self.domains[parent].parents)
        result = frozenset(found)
        self._ancestors[domain] = result
        return result

    def related(self, x: str, y: str) -> bool:
        """§12.4: an ancestor-descendant relation (or the same domain), under which two
        domains may manage overlapping ranges."""
        return x == y or x in self.ancestors(y) or y in self.ancestors(x)

    def levels(self) -> dict[str, int]:
        """Depth of each domain: 0 for a TLD, else one more than its deepest parent."""
        depth: dict[str, int] = {}

        def level(name: str) -> int:
            if name not in depth:
                parents = self.domains[name].parents
                depth[name] = 1 + max(level(p) for p in parents) if parents else 0
            return depth[name]

        for name in self.domains:
            level(name)
        return depth

    # --- consistency ---------------------------------------------------------------------

    def validate(self) -> None:
        """Raise :class:`TopologyError` for what a daemon's configuration would refuse."""
        ids = [d.domain_id for d in self.domains.values()]
        if len(set(ids)) != len(ids) or DomainId(TLD_ID) in ids:
            raise TopologyError("domain ids must be distinct and non-zero (§6 TLD_ID is 0)")
        node_ids = [n.node_id for n in self.nodes.values()]
        if len(set(node_ids)) != len(node_ids) or 0 in node_ids:
            raise TopologyError("node ids must be distinct and non-zero")
        for name, spec in self.domains.items():
            if name != spec.name:
                raise TopologyError(f"domain {spec.name} filed under {name}")
            for parent in spec.parents:
                if parent not in self.domains:
                    raise TopologyError(f"{name}: unknown parent domain {parent}")
            if name in self.ancestors(name):
                raise TopologyError(f"{name} is its own ancestor")
        for name, node in self.nodes.items():
            if name != node.name or node.domain not in self.domains:
                raise TopologyError(f"node {name}: bad name or unknown domain {node.domain}")
        if any(d.is_tld for d in self.domains.values()) and not self.global_pool:
            raise TopologyError("top-level domains need a global pool")
        seen: set[tuple[frozenset[str], str | None]] = set()
        for link in self.links:
            self._validate_link(link)
            key = (frozenset((link.a, link.b)), link.parent)
            if key in seen:
                raise TopologyError(f"two sessions {link.a}-{link.b} for the same parent")
            seen.add(key)

    def _validate_link(self, link: LinkSpec) -> None:
        if link.a not in self.nodes or link.b not in self.nodes or link.a == link.b:
            raise TopologyError(f"link {link.a}-{link.b}: unknown or identical nodes")
        da, db = self.domain_of(link.a), self.domain_of(link.b)
        what = f"link {link.a}-{link.b} ({link.role.name})"
        if link.role is Role.INTERNAL:
            ok = da.name == db.name
        elif link.role is Role.CHILD:
            ok = da.name in db.parents
        elif link.role is Role.PARENT:
            ok = db.name in da.parents
        elif link.parent is None:  # §4: top-level domains peer as siblings
            ok = da.is_tld and db.is_tld and da.name != db.name
        else:  # §4.4: siblings with regard to a common parent
            ok = link.parent in da.parents and link.parent in db.parents and da.name != db.name
        if not ok:
            raise TopologyError(f"{what} does not match the domains' parents")
        if link.role is not Role.SIBLING and link.parent is not None:
            raise TopologyError(f"{what}: only sibling links name a common parent")


def _node_id(text: str) -> NodeId:
    return NodeId(int(IPv4Address(text)))


# Generated topologies number their domains from 1 and the nodes of a domain from 1; node
# ``j`` of domain ``i`` is 10.(i // 256).(i % 256).j, which is 10.0.i.j below 256 domains (the
# numbering random hierarchies always had) and stays distinct up to 65,535 domains.
MAX_NUMBERED_DOMAINS: Final = 0xFFFF
MAX_NUMBERED_NODES: Final = 0xFF


def _numbered_node_id(domain: int, node: int) -> NodeId:
    if not 1 <= domain <= MAX_NUMBERED_DOMAINS or not 1 <= node <= MAX_NUMBERED_NODES:
        raise TopologyError(
            f"cannot number node {node} of domain {domain}: at most "
            f"{MAX_NUMBERED_DOMAINS} domains of {MAX_NUMBERED_NODES} nodes"
        )
    return NodeId((10 << 24) | (domain << 8) | node)


# --- RFC 2909 Figure 1 ----------------------------------------------------------------------

# Node ids follow `masc demo` (127.0.0.x, x = domain number then node letter), so the
# smaller node id of T1a (.11) over T2a (.12) is the same tie-break in both.
FIGURE1_NODES: Final = {
    "T1a": "127.0.0.11", "T2a": "127.0.0.12", "P3a": "127.0.0.31", "P3b": "127.0.0.32",
    "P4a": "127.0.0.41", "P4b": "127.0.0.42", "C5a": "127.0.0.51", "C5b": "127.0.0.52",
    "C5c": "127.0.0.53", "C6a": "127.0.0.61", "C6b": "127.0.0.62", "C7a": "127.0.0.71",
}  # fmt: skip
FIGURE1_DOMAINS: Final = {
    "T1": (65001, ()), "T2": (65002, ()), "P3": (65003, ("T1",)), "P4": (65004, ("T2",)),
    "C5": (65005, ("P3", "P4")), "C6": (65006, ("P4",)), "C7": (65007, ("P4",)),
}  # fmt: skip
# Exactly the sessions Figure 1 draws: (node, node, what the second is to the first,
# common parent of a sibling session).  P4b's three lines go to C6a, C6b and C7a; P4a's two
# to C5b and C6a.  C6b-C7a are siblings with regard to P4 (§4).
FIGURE1_LINKS: Final[tuple[tuple[str, str, Role, str | None], ...]] = (
    ("T1a", "T2a", Role.SIBLING, None),
    ("T1a", "P3b", Role.CHILD, None),
    ("T2a", "P4a", Role.CHILD, None),
    ("P3a", "P3b", Role.INTERNAL, None),
    ("P4a", "P4b", Role.INTERNAL, None),
    ("P3a", "C5a", Role.CHILD, None),
    ("P3b", "C5b", Role.CHILD, None),
    ("P4a", "C5b", Role.CHILD, None),
    ("P4a", "C6a", Role.CHILD, None),
    ("P4b", "C6a", Role.CHILD, None),
    ("P4b", "C6b", Role.CHILD, None),
    ("P4b", "C7a", Role.CHILD, None),
    ("C5a", "C5b", Role.INTERNAL, None),
    ("C5a", "C5c", Role.INTERNAL, None),
    ("C5b", "C5c", Role.INTERNAL, None),
    ("C6a", "C6b", Role.INTERNAL, None),
    ("C6b", "C7a", Role.SIBLING, "P4"),
)


def figure1(
    *,
    pool: tuple[Prefix, ...] = DEFAULT_POOL,
    demand: tuple[int, int, int] = (4096, 1024, 256),
) -> Topology:
    """RFC 2909 §4 Figure 1: top-level domains T1, T2; regionals P3 (under T1) and P4
    (under T2); customers C5 (under P3 and P4), C6 and C7 (under P4).

    ``demand`` is what a top-level, regional and customer domain wants: each level wants
    less than its parent, so that a parent's space has room for its children.
    """
    domains = {}
    for name, (domain_id, parents) in FIGURE1_DOMAINS.items():
        level = 0 if not parents else 1 if name.startswith("P") else 2
        domains[name] = DomainSpec(name, DomainId(domain_id), parents, demand[level])
    nodes = {
        name: NodeSpec(name, name[:2], _node_id(address)) for name, address in FIGURE1_NODES.items()
    }
    links = tuple(LinkSpec(a, b, role, parent) for a, b, role, parent in FIGURE1_LINKS)
    return Topology(domains, nodes, links, pool)


# --- seeded random hierarchies ----------------------------------------------------------------


def random_topology(
    seed: int,
    *,
    domains: int = 6,
    levels: int = 3,
    tlds: int | None = None,
    max_nodes: int = 3,
    multi_parent: float = 0.2,
    sibling_links: float = 0.3,
    sibling_degree: float | None = None,
    extra_links: float = 0.3,
    pool: tuple[Prefix, ...] = (IPv4Network("239.192.0.0/16"),),
    leaf_demand: int = 256,
    demand_factor: int = 4,
) -> Topology:
    """A random MASC hierarchy, the same for the same arguments.

    ``domains`` domains on up to ``levels`` levels (level 0 holds the top-level domains,
    ``tlds`` of them, 1-3 when None).  A domain below level 0 has a parent on the level
    above, and with probability ``multi_parent`` a second one.  Each domain has 1 to
    ``max_nodes`` nodes joined by internal sessions (a random spanning tree, plus each other
    pair with probability ``extra_links``).  Every parent-child pair gets one or two
    sessions; the top-level domains form a connected sparse mesh.  Two children of one
    parent get a sibling session for it (§4.4) with probability ``sibling_links``; or, when
    ``sibling_degree`` is given, the children of each parent get about that many sibling
    sessions each, between random pairs (a per-pair probability would make thousands of
    children of one parent a dense mesh).  Demand grows ``demand_factor``-fold per level
    up from ``leaf_demand`` so parents have room for their children.  With many children
    per parent, 1 (every domain wants ``leaf_demand``, as in Appendix B) works better: a
    parent's own local space (§12.2, its demand) then stays small, so its children's
    claims fill its space and make it grow (Appendix A), where a large idle local block
    would keep its utilization under the band while children find no room.

    Builds in time linear in ``domains`` (plus the sibling sessions), so hierarchies of
    10,000 domains are quick; node ids stay distinct up to 65,535 domains of up to 255
    nodes (``10.(i // 256).(i % 256).j``).  Existing seeds give the topologies they always
    gave (below 256 domains, where the old ``10.0.i.j`` numbering worked).
    """
    rng = random.Random(seed)
    if domains < 1 or levels < 1 or max_nodes < 1:
        raise TopologyError("need at least one domain, level and node")
    if domains > MAX_NUMBERED_DOMAINS or max_nodes > MAX_NUMBERED_NODES:
        raise TopologyError(
            f"at most {MAX_NUMBERED_DOMAINS} domains of at most {MAX_NUMBERED_NODES} nodes"
        )
    levels = min(levels, domains)
    n_tlds = tlds if tlds is not None else rng.randint(1, min(3, domains - levels + 1))
    n_tlds = max(1, min(n_tlds, domains - levels + 1))
    # Level of each domain: every level gets at least one, the rest at random.
    per_level = [n_tlds] + [1] * (levels - 1)
    for _ in range(domains - sum(per_level)):
        per_level[rng.randrange(1, levels) if levels > 1 else 0] += 1
    names: list[list[str]] = []
    specs: dict[str, DomainSpec] = {}
    count = 0
    for level, how_many in enumerate(per_level):
        row: list[str] = []
        above = names[level - 1] if level else []
        position = {name: i for i, name in enumerate(above)}
        for _ in range(how_many):
            count += 1
            name = f"D{count}"
            parents: tuple[str, ...] = ()
            if level:
                parents = (rng.choice(above),)
                if len(above) > 1 and rng.random() < multi_parent:
                    # A random parent other than the first: the draw of
                    # rng.choice([p for p in above if p != first]) without building the list.
                    first = position[parents[0]]
                    j = rng.choice(range(len(above) - 1))
                    parents += (above[j if j < first else j + 1],)
            demand = leaf_demand * demand_factor ** (levels - 1 - level)
            specs[name] = DomainSpec(name, DomainId(65000 + count), parents, demand)
            row.append(name)
        names.append(row)
    nodes: dict[str, NodeSpec] = {}
    members: dict[str, list[str]] = {}
    for index, name in enumerate(specs, start=1):
        members[name] = []
        for j in range(rng.randint(1, max_nodes)):
            node = f"{name}{_letters(j)}"
            nodes[node] = NodeSpec(node, name, _numbered_node_id(index, j + 1))
            members[name].append(node)
    links: list[LinkSpec] = []
    for name, spec in specs.items():
        group = members[name]
        links += _mesh(rng, group, Role.INTERNAL, None, extra_links)
        for parent in spec.parents:
            pairs = {(p, c) for p in members[parent] for c in group}
            for p, c in rng.sample(sorted(pairs), min(len(pairs), rng.randint(1, 2))):
                links.append(LinkSpec(p, c, Role.CHILD))
    tld_nodes = [rng.choice(members[t]) for t in names[0]]
    links += _mesh(rng, tld_nodes, Role.SIBLING, None, extra_links)
    children: dict[str, list[str]] = {name: [] for name in specs}
    for name, spec in specs.items():
        for parent in spec.parents:
            children[parent].append(name)
    for parent, group in children.items():
        drawn: Iterator[tuple[str, str]]
        if sibling_degree is None:
            drawn = _each_pair(rng, group, sibling_links)
        else:
            drawn = iter(_random_pairs(rng, group, round(len(group) * sibling_degree / 2)))
        for x, y in drawn:
            a, b = rng.choice(members[x]), rng.choice(members[y])
            links.append(LinkSpec(a, b, Role.SIBLING, parent))
    return Topology(specs, nodes, tuple(links), pool)


def _letters(j: int) -> str:
    """Node suffixes a, b, ..., z, then aa, ab, ...: distinct for any number of nodes."""
    out = ""
    j += 1
    while j:
        j, rest = divmod(j - 1, 26)
        out = chr(ord("a") + rest) + out
    return out


def _each_pair(
    rng: random.Random, group: list[str], probability: float
) -> Iterator[tuple[str, str]]:
    """Each pair of ``group`` with ``probability``, drawn lazily: the caller's draws for a
    pair come before the next pair's (the order seeded topologies were always built in)."""
    for i, x in enumerate(group):
        for y in group[i + 1 :]:
            if rng.random() < probability:
                yield x, y


def _random_pairs(rng: random.Random, group: list[str], count: int) -> list[tuple[str, str]]:
    """``count`` distinct unordered pairs of ``group`` (all of them if fewer exist), in a
    seeded random order."""
    n = len(group)
    total = n * (n - 1) // 2
    if count >= total:
        return [(x, y) for i, x in enumerate(group) for y in group[i + 1 :]]
    chosen: set[tuple[int, int]] = set()
    out: list[tuple[str, str]] = []
    while len(out) < count:
        i, j = rng.randrange(n), rng.randrange(n)
        key = (min(i, j), max(i, j))
        if i != j and key not in chosen:
            chosen.add(key)
            out.append((group[key[0]], group[key[1]]))
    return out


def _mesh(
    rng: random.Random, group: list[str], role: Role, parent: str | None, extra: float
) -> list[LinkSpec]:
    """A random spanning tree over ``group`` plus each other pair with probability
    ``extra``: connected, and sparse when ``extra`` is small."""
    links = []
    joined: set[frozenset[str]] = set()
    for i in range(1, len(group)):
        other = group[rng.randrange(0, i)]
        links.append(LinkSpec(other, group[i], role, parent))
        joined.add(frozenset((other, group[i])))
    for i, x in enumerate(group):
        for y in group[i + 1 :]:
            if frozenset((x, y)) not in joined and rng.random() < extra:
                links.append(LinkSpec(x, y, role, parent))
    return links


# --- RFC 2909 Appendix B (§18): the strawman deployment -------------------------------------

# §18: "Initially, the range 228.0.0.0 - 231.255.255.255 (4*2^24 = 2^26 = 64M) could be used
# by MASC as the global addresses pool."
STRAWMAN_POOL: Final[tuple[Prefix, ...]] = (IPv4Network("228.0.0.0/6"),)


def strawman(
    seed: int,
    *,
    tlds: int = 128,
    children: int = 64,
    level3: float = 0.0,
    mesh_degree: float = 3.0,
    pool: tuple[Prefix, ...] = STRAWMAN_POOL,
    initial: int = 256,
) -> Topology:
    """RFC 2909 Appendix B (§18), the strawman deployment, one node per domain.

    * "approximately 128 Top-Level Domains" (``tlds``), peering as siblings under TLD_ID in
      a sparse connected mesh: a random ring (every TLD has two sibling sessions, so no one
      lost session cuts the mesh) plus random chords up to an average of ``mesh_degree``
      sibling sessions per TLD (a ring alone, or a random spanning tree below 2);
    * "approximately 8192 level-2 MASC domains; on average, a TLD will have approximately
      64 children": every TLD gets exactly ``children`` level-2 domains (the even
      distribution §18 assumes), each with one CHILD session to its TLD;
    * "A level-2 MASC domain could have children (i.e. level-3) MASC domains":
      ``level3`` is the mean number of level-3 domains per level-2 domain, so
      round(``level3`` x level-2 count) level-3 domains (e.g. 0.25 -> 2048 of them), each
      under a level-2 domain picked at random, with one CHILD session to it;
    * the global pool 228.0.0.0/6 and an "initial claim size: 256 addresses/MASC domain"
      (``initial``, every domain's demand, i.e. the engine's initial size).

    Domains are named ``T<i>`` (TLDs), ``T<i>-<j>`` (level 2) and ``T<i>-<j>-<k>``
    (level 3); each domain's node is its name plus ``a`` (``T1a``, ``T1-5a``).  ``seed``
    fixes the mesh and where the level-3 domains go.
    """
    if tlds < 1 or children < 0 or level3 < 0 or mesh_degree < 0:
        raise TopologyError("need at least one TLD, and non-negative counts")
    rng = random.Random(seed)
    specs: dict[str, DomainSpec] = {}
    nodes: dict[str, NodeSpec] = {}
    links: list[LinkSpec] = []

    def add(name: str, parent: str | None) -> str:
        index = len(specs) + 1
        parents = (parent,) if parent is not None else ()
        specs[name] = DomainSpec(name, DomainId(65000 + index), parents, initial)
        node = f"{name}a"
        nodes[node] = NodeSpec(node, name, _numbered_node_id(index, 1))
        if parent is not None:
            links.append(LinkSpec(f"{parent}a", node, Role.CHILD))
        return name

    top = [add(f"T{i}", None) for i in range(1, tlds + 1)]
    second = [add(f"{t}-{j}", t) for t in top for j in range(1, children + 1)]
    if second:
        under: dict[str, int] = {}
        for _ in range(round(level3 * len(second))):
            parent = second[rng.randrange(len(second))]
            under[parent] = under.get(parent, 0) + 1
        for parent in second:
            for k in range(1, under.get(parent, 0) + 1):
                add(f"{parent}-{k}", parent)
    links += _sparse_mesh(rng, [f"{t}a" for t in top], mesh_degree)
    return Topology(specs, nodes, tuple(links), pool)


def _sparse_mesh(rng: random.Random, group: list[str], degree: float) -> list[LinkSpec]:
    """Sibling sessions between top-level nodes: connected, about ``degree`` per node."""
    n = len(group)
    order = list(group)
    rng.shuffle(order)
    if n <= 2 or degree < 2:
        pairs = [(order[rng.randrange(i)], order[i]) for i in range(1, n)]  # spanning tree
    else:
        pairs = [(order[i], order[(i + 1) % n]) for i in range(n)]  # ring
    joined = {frozenset(p) for p in pairs}
    wanted = min(max(len(pairs), round(n * degree / 2)), n * (n - 1) // 2)
    while len(pairs) < wanted:
        x, y = order[rng.randrange(n)], order[rng.randrange(n)]
        if x != y and frozenset((x, y)) not in joined:
            joined.add(frozenset((x, y)))
            pairs.append((x, y))
    return [LinkSpec(x, y, Role.SIBLING) for x, y in pairs]
