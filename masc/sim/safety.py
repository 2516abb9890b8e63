"""What must hold between MASC domains once the protocol has converged (RFC 2909 §4.1, §12.4).

:func:`check_safety` reads the engines of the running nodes and returns every violation it
finds (an empty list means safe):

``overlap``
    §12.4: "Two MASC domains should not manage overlapping address ranges, unless the
    domains have an ancestor-descendant (e.g. parent-child) relationship."  Managed space
    is each node's :meth:`~masc.protocol.engine.ClaimEngine.managed_space` (what it holds as
    PREFIX_IN_USE / PREFIX_MANAGED, minus withdrawn ranges).
``nesting``
    §4, §11.4.3: a child domain claims from a parent's PREFIX_MANAGED, so each prefix a
    non-TLD domain manages lies inside some prefix one of its parents manages.  The parent's
    space is what the parent's own running nodes manage; only when no node of any parent
    domain is running is the child's record of its parents' PREFIX_MANAGED used instead.
``internal``
    §11.6.3: the nodes of one domain (internal peers) agree on the domain's managed space.
``local``
    §12.4: "two MASC domains should not have locally-allocated overlapping address ranges"
    (each node's :meth:`~masc.protocol.engine.ClaimEngine.local_space`, what its MAASs
    may use).

These are statements about a converged network: during a partition, or before a clash has
been resolved, violations are expected.  Domain ancestry comes from the topology.

:func:`check_space_safety` applies the same rules to plain prefix sets, per node, for nodes
that are not engines in this process: real daemons, whose managed and locally-allocated
space a test reads over their control sockets (tests/netns).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from masc.protocol.engine import ClaimEngine
from masc.protocol.space import collapse, covers
from masc.protocol.wire.messages import Prefix
from masc.sim.topology import Topology

Rule = Literal["overlap", "nesting", "internal", "local"]


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule, with the domains (and nodes) involved in ``message``."""

    rule: Rule
    message: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.message}"


def check_safety(
    topology: Topology, engines: Mapping[str, ClaimEngine], *, now: float
) -> list[Violation]:
    """Every violation of the rules of the module docstring among the running nodes
    ``engines`` (node name -> engine) at Unix time ``now``."""
    space = space_of(topology, engines, now=now)
    return _check(topology, space.managed, space.local, lambda node: space.parents[node])


@dataclass(frozen=True, slots=True)
class Space:
    """What :func:`check_safety` reads of each running node: its managed space, its
    locally-allocated space and what it knows of its parents' managed space."""

    managed: dict[str, list[Prefix]]
    local: dict[str, list[Prefix]]
    parents: dict[str, list[Prefix]]


def space_of(topology: Topology, engines: Mapping[str, ClaimEngine], *, now: float) -> Space:
    """The :class:`Space` of the nodes ``engines`` at Unix time ``now``: what a process of a
    split run (masc.sim.split) hands over for :func:`check_space_safety`."""
    managed = {n: e.managed_space(now=now) for n, e in engines.items()}
    local = {n: e.local_space(now=now) for n, e in engines.items()}
    parents = {
        n: [
            s
            for p in topology.domain_of(n).parents
            for s in e.parent_space(topology.domains[p].domain_id, now=now)
        ]
        for n, e in engines.items()
    }
    return Space(managed, local, parents)


def check_space_safety(
    topology: Topology,
    managed: Mapping[str, Iterable[Prefix]],
    local: Mapping[str, Iterable[Prefix]],
    *,
    parent_space: Mapping[str, Iterable[Prefix]] | None = None,
) -> list[Violation]:
    """:func:`check_safety` on prefix sets: ``managed`` and ``local`` map each running node
    (its name in ``topology``) to its managed and locally-allocated space (§4.1: for a leaf
    domain the same set), as its engine's ``managed_space`` and ``local_space`` would.

    ``parent_space`` is, per node, what it knows of its parents' managed space: the nesting
    rule uses it only for a domain none of whose parents has a node in ``managed``; a node
    missing from it knows no parent space, so any prefix it manages then breaks the rule.
    """
    unknown = sorted(set(local) - set(managed))
    if unknown:
        raise ValueError(f"local space given for nodes with no managed space: {unknown}")
    known = {} if parent_space is None else parent_space
    return _check(
        topology,
        {n: list(space) for n, space in managed.items()},
        {n: list(local.get(n, ())) for n in managed},
        lambda node: list(known.get(node, ())),
    )


def _check(
    topology: Topology,
    managed_space: Mapping[str, list[Prefix]],
    local_space: Mapping[str, list[Prefix]],
    known_parent_space: Callable[[str], list[Prefix]],
) -> list[Violation]:
    """The rules over the nodes of ``managed_space``; ``known_parent_space(node)``: what the
    node knows of its parents' space (asked only when no node of any parent is running)."""
    managed = {n: collapse(space) for n, space in managed_space.items()}
    local = {n: collapse(local_space[n]) for n in managed_space}
    by_domain: dict[str, list[str]] = {}
    for node in sorted(managed_space):
        by_domain.setdefault(topology.nodes[node].domain, []).append(node)
    domain_managed = {d: collapse(p for n in ns for p in managed[n]) for d, ns in by_domain.items()}
    violations: list[Violation] = []
    violations += _overlaps(topology, by_domain, managed, "overlap", related_ok=True)
    violations += _nesting(topology, known_parent_space, by_domain, managed, domain_managed)
    violations += _internal(by_domain, managed)
    violations += _overlaps(topology, by_domain, local, "local", related_ok=False)
    return violations


def _overlaps(
    topology: Topology,
    by_domain: Mapping[str, list[str]],
    space: Mapping[str, list[Prefix]],
    rule: Rule,
    *,
    related_ok: bool,
) -> list[Violation]:
    """Pairs of nodes of different domains whose sets overlap (unless ``related_ok`` and
    one domain is an ancestor of the other).

    Prefixes either nest or are disjoint, so one sweep in address order with a stack of
    the prefixes still open finds every overlapping pair (thousands of domains: not all
    pairs of them); the violations come out in domain, node and prefix order."""
    domains = sorted(by_domain)
    rank = {d: i for i, d in enumerate(domains)}
    items: list[tuple[int, int, int, int, int, int, int]] = []
    for d, nodes in by_domain.items():
        for n_index, node in enumerate(nodes):
            for p_index, p in enumerate(space[node]):
                start = int(p.network_address)
                end = start + p.num_addresses
                items.append((p.version, start, p.prefixlen, end, rank[d], n_index, p_index))
    items.sort()
    found: list[tuple[int, int, int, int, int, int]] = []
    open_: list[tuple[int, int, int, int, int, int, int]] = []
    for item in items:
        version, start = item[0], item[1]
        while open_ and (open_[-1][0] != version or open_[-1][3] <= start):
            open_.pop()
        for other in open_:
            if other[4] == item[4]:
                continue
            a, b = (other, item) if other[4] < item[4] else (item, other)
            found.append((a[4], b[4], a[5], b[5], a[6], b[6]))
        open_.append(item)
    out: list[Violation] = []
    what = "managed" if rule == "overlap" else "locally-allocated"
    related: dict[tuple[int, int], bool] = {}
    for rx, ry, ix, iy, jx, jy in sorted(set(found)):
        x, y = domains[rx], domains[ry]
        if related_ok:
            if (rx, ry) not in related:
                related[(rx, ry)] = topology.related(x, y)
            if related[(rx, ry)]:
                continue
        nx, ny = by_domain[x][ix], by_domain[y][iy]
        px, py = space[nx][jx], space[ny][jy]
        out.append(Violation(rule, f"{what} {px} of {x} ({nx}) overlaps {py} of {y} ({ny})"))
    return out


def _nesting(
    topology: Topology,
    known_parent_space: Callable[[str], list[Prefix]],
    by_domain: Mapping[str, list[str]],
    managed: Mapping[str, list[Prefix]],
    domain_managed: Mapping[str, list[Prefix]],
) -> list[Violation]:
    out: list[Violation] = []
    for domain, nodes in sorted(by_domain.items()):
        spec = topology.domains[domain]
        if spec.is_tld:
            continue
        running_parents = [p for p in spec.parents if p in by_domain]
        for node in nodes:
            if running_parents:
                parent_space = [s for p in running_parents for s in domain_managed[p]]
                source = "managed by " + "/".join(running_parents)
            else:
                # No node of any parent is running: all we have is the child's record.
                parent_space = known_parent_space(node)
                source = f"known to {node} of " + "/".join(spec.parents)
            for prefix in managed[node]:
                if not any(covers(s, prefix) for s in parent_space):
                    out.append(
                        Violation(
                            "nesting",
                            f"{prefix} of {domain} ({node}) is not inside any prefix "
                            f"{source}: {[str(s) for s in collapse(parent_space)]}",
                        )
                    )
    return out


def _internal(
    by_domain: Mapping[str, list[str]], managed: Mapping[str, list[Prefix]]
) -> list[Violation]:
    out: list[Violation] = []
    for domain, nodes in sorted(by_domain.items()):
        first = nodes[0]
        for other in nodes[1:]:
            if managed[other] != managed[first]:
                out.append(
                    Violation(
                        "internal",
                        f"nodes of {domain} disagree: {first} manages "
                        f"{[str(p) for p in managed[first]]}, {other} "
                        f"{[str(p) for p in managed[other]]}",
                    )
                )
    return out
