"""Durable store figures (RFC 2909 §13): restore time for 100,000 stored claims, save costs.

    .venv/bin/python benchmarks/store.py [--claims N] [--runs R]

Writes N stored claims (half allocations, half pending claims) plus 1,000 MAAS grants,
20 MAASs and 10,000 history lines into a fresh SQLite file in a temporary directory, then
measures (median of R runs, ``time.perf_counter``):

1. restore: ``Store.open`` + ``load()`` of the whole file, what a restarting daemon does
   before it rejoins its peers (target <= 2 s for 100,000 claims);
2. a save with one changed allocation among the N claims, given as full sets (the store
   diffs them against its memory: O(N) in Python, one small transaction);
3. a no-op save of the same full sets as equal, freshly built records (no write at all);
   and, for scale, the first save of everything.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from masc.store import (
    HistoryRecord,
    Store,
    StoredAllocation,
    StoredGrant,
    StoredMaas,
    StoredPending,
)

NOW = 1_700_000_000


def _prefix(n: int) -> str:
    # /28s of 224.0.0.0/4 (2^24 of them): canonical CIDR strings, as the daemon writes them.
    return f"{224 + (n >> 20 & 15)}.{n >> 12 & 255}.{n >> 4 & 255}.{(n & 15) << 4}/28"


def allocations(count: int, *, changed: int | None = None) -> list[StoredAllocation]:
    return [
        StoredAllocation(
            kind="domain" if n % 4 else "child",
            prefix=_prefix(n),
            parent=None if n % 3 else 64512 + n % 7,
            timestamp=NOW + n,
            lifetime=30 * 86_400 + (n == changed),
            origin_node=0xC0000201,
            allocated_at=NOW + 172_800.0 + n,
            renewing=n % 5 != 0,
        )
        for n in range(count)
    ]


def pending(count: int, offset: int) -> list[StoredPending]:
    return [
        StoredPending(
            kind="domain",
            prefix=_prefix(offset + n),
            claim_type=1,
            timestamp=NOW + n,
            lifetime=30 * 86_400,
            holdtime=30 * 86_400,
            parent=None if n % 2 else 64512,
            purpose="grow" if n % 3 else "renew",
            deadline=NOW + 172_800.0 + n,
            extends=None if n % 10 else _prefix(n),
        )
        for n in range(count)
    ]


def grants(count: int) -> list[StoredGrant]:
    return [
        StoredGrant(f"madcap-{n % 20}", f"239.{n >> 8 & 255}.{n & 255}.0/26", NOW + 1e6, True, NOW)
        for n in range(count)
    ]


def maas() -> list[StoredMaas]:
    return [StoredMaas(f"madcap-{n}", ("global", "site-local"), NOW) for n in range(20)]


def median_time(action: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    half = args.claims // 2
    own = allocations(half)
    claims = pending(args.claims - half, offset=half)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "state.db"
        started = time.perf_counter()
        with Store.open(path) as store:
            store.save(allocations=own, pending=claims, grants=grants(1_000), maas=maas())
            store.record(
                HistoryRecord(NOW + n, "claim", _prefix(n), "waiting") for n in range(10_000)
            )
        first = time.perf_counter() - started
        size = sum(p.stat().st_size for p in Path(directory).iterdir())

        def restore() -> None:
            with Store.open(path) as store:
                snapshot = store.load()
            assert len(snapshot.allocations) + len(snapshot.pending) == args.claims

        restored = median_time(restore, args.runs)
        with Store.open(path) as store:
            store.load()
            versions = [allocations(half, changed=7), allocations(half)]
            flip = iter(range(2 * args.runs))
            one_change = median_time(
                lambda: store.save(allocations=versions[next(flip) % 2], pending=claims),
                args.runs,
            )
            rebuilt = (allocations(half), pending(args.claims - half, offset=half))
            no_op = median_time(
                lambda: store.save(allocations=rebuilt[0], pending=rebuilt[1]), args.runs
            )
    print(f"store: {half:,} allocations + {args.claims - half:,} pending claims + 1,000 grants")
    print(f"  first save of everything + 10,000 history lines: {first:8.3f} s ({size:,} bytes)")
    print(f"  restore (open + load), median of {args.runs}:        {restored:8.3f} s")
    print(f"  save with one change among {args.claims:,} claims:    {one_change * 1e3:8.1f} ms")
    print(f"  no-op save of {args.claims:,} equal claims:           {no_op * 1e3:8.1f} ms")
    print(f"restore target <= 2 s: {'met' if restored <= 2.0 else 'MISSED'}")


if __name__ == "__main__":
    main()
