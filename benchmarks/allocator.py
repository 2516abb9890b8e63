"""Allocator figures: one prefix decision among 10,000 existing sub-allocations.

    .venv/bin/python benchmarks/allocator.py [--allocations N] [--decisions D] [--seed S]

A parent 224.0.0.0/8 (and, for IPv6, ff3e::/32) holds N children's sub-allocations of
random sizes (16 to 4,096 addresses, seeded) at random aligned places, which fragments the
free space far more than the allocator itself would: the worst case for a decision.  For
each strategy the median wall time of D ``choose_prefix`` decisions (random sizes, the
same for every strategy) is printed, then ``can_double``/``expandability`` of a held prefix
against the same N, and ``plan_growth``/``plan_renewal`` with usage reported for N blocks.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable, Sequence
from functools import partial
from ipaddress import IPv4Network, IPv6Network

from masc.protocol.allocation import (
    AllocatorConfig,
    Demand,
    Held,
    Strategy,
    can_double,
    choose_prefix,
    expandability,
    plan_growth,
    plan_renewal,
)
from masc.protocol.space import prefix_at, subtract
from masc.protocol.wire.messages import Prefix

PARENTS: dict[str, Prefix] = {
    "IPv4": IPv4Network("224.0.0.0/8"),
    "IPv6": IPv6Network("ff3e::/32"),
}


def scatter(parent: Prefix, count: int, rng: random.Random) -> list[Prefix]:
    """``count`` disjoint blocks of 2**4..2**12 addresses at random aligned places in the
    last 24 bits of ``parent`` (so both families see the same layout)."""
    width, base = parent.max_prefixlen, int(parent.network_address)
    taken: set[tuple[int, int]] = set()  # (k, index) of every block placed
    inside: set[tuple[int, int]] = set()  # (k, index) of every block holding a placed one
    out: list[Prefix] = []
    while len(out) < count:
        k = rng.randint(4, 12)
        index = rng.randrange(1 << (24 - k))
        if (k, index) in inside or any(
            (j, index >> (j - k)) in taken for j in range(k, 25)
        ):  # fmt: skip
            continue
        taken.add((k, index))
        inside.update((j, index >> (j - k)) for j in range(k + 1, 25))
        out.append(prefix_at(width, base + (index << k), width - k))
    return out


def median_ms(calls: Sequence[Callable[[], object]]) -> float:
    times = []
    for call in calls:
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def measure(family: str, parent: Prefix, allocations: int, decisions: int, seed: int) -> None:
    rng = random.Random(seed)
    space = [parent]
    occupied = scatter(parent, allocations, rng)
    sizes = [1 << rng.randint(4, 12) for _ in range(decisions)]
    near = occupied[:3]  # as if the chooser held three of them

    def row(operation: str, ms: float, digits: int = 2) -> None:
        print(f"{family:<6} {operation:<34} {ms:>9.{digits}f}")

    print(f"{family:<6} {'(free prefixes left)':<34} {len(subtract(space, occupied)):>9,}")
    for strategy in Strategy:
        pick = random.Random(seed)
        calls = [
            partial(choose_prefix, space, occupied, size, pick, strategy=strategy, near=near)
            for size in sizes
        ]
        row(f"choose_prefix {strategy.value}", median_ms(calls))
    row("subtract", median_ms([partial(subtract, space, occupied)] * 5))
    own = occupied[:5]
    row("can_double", median_ms([partial(can_double, p, space, occupied) for p in own]))
    row("expandability", median_ms([partial(expandability, p, space, occupied) for p in own]))
    # The parent's own view: it holds the whole parent prefix plus two more; its children
    # use one address in each block, so a renewal halves (§17.1.5) after weighing both
    # halves' use over all N reported blocks.
    demand = Demand(in_use=len(occupied), rate=0.001, by_prefix=dict.fromkeys(occupied, 1))
    held = [Held(parent), *(Held(p, can_double=True) for p in near[:2])]
    config = AllocatorConfig()
    horizon = 48 * 3600.0
    renewal = partial(plan_renewal, parent, held, demand, horizon, config)
    row("plan_renewal (usage of N blocks)", median_ms([renewal] * 5))
    growing = Demand(in_use=parent.num_addresses, rate=1.0)
    row("plan_growth", median_ms([partial(plan_growth, held, 0, growing, horizon, config)] * 5), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--allocations", type=int, default=10_000)
    parser.add_argument("--decisions", type=int, default=50)
    parser.add_argument("--seed", type=int, default=4)
    args = parser.parse_args()
    print(f"seed {args.seed}; {args.allocations:,} sub-allocations; medians of {args.decisions}")
    print(f"{'family':<6} {'operation':<34} {'ms':>9}")
    for family, parent in PARENTS.items():
        measure(family, parent, args.allocations, args.decisions, args.seed)


if __name__ == "__main__":
    main()
