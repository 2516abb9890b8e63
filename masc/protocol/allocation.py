"""Which prefix to claim, and how much: RFC 2909 Appendix A (§17.1), pure.

Appendix A is a set of suggestions ("preliminary", says its disclaimer), so every rule here
is local policy; this docstring names the choices, and the code cites the paragraph each
one comes from.  Nothing here does I/O: the caller passes the space, what is occupied in
it, the demand, time spans and the random source, and gets a prefix or a plan back.  The
same functions serve a domain choosing from its parent's space and a parent (or the MAAS
grant table) splitting its own space among children.

Prefix choice (:func:`choose_prefix`):

* §17.1.1 contiguous masks only: every result is a prefix, aligned, of a power-of-two size.
* §17.1.4 neighbour first (``Strategy.RBO``): given the domain's own prefixes (``near``,
  larger first, then lower address), the new block starts at the *buddy* of one of them
  (224.0/16 and 256 addresses -> 224.1.0/24), so that it can grow into the buddy by doubling
  and the two then aggregate.  A prefix whose whole buddy is free is preferred; then any
  whose neighbouring block is free.  Only when none is free is another prefix chosen.
* §17.1.1 otherwise, the most expandable candidates: a free aligned block can double in place
  until it fills the maximal free prefix it lies in, so the candidates are the first blocks
  of the largest free prefixes that can hold it.  They are put in Reverse Bit Order of the
  space prefix holding them (space prefixes in the order given) and one is drawn at random
  ("random among all candidates with the same potential for expandability").  An rng whose
  ``randrange`` returns its start therefore reproduces the RFC's strict order 0000, 1000,
  0100, 1100, ...
* Two alternatives for comparison (config ``[allocation] strategy``, ``benchmarks/``):
  ``FIRST_FIT`` takes the lowest-address free block; ``BEST_FIT`` carves the block from the
  smallest free prefix that fits, random among equals (:func:`masc.protocol.space.choose_free`).
  Neither uses ``near``: they are the baselines the neighbour rule is measured against.

Demand planning (:func:`plan_growth`, :func:`plan_renewal`):

* §17.1.2 the demand one horizon ahead (a waiting period for a domain's claims) is the
  addresses in use plus the growth rate over the horizon (a falling rate predicts no fall:
  space is returned by the renewal rule, not by forecasting), plus what was asked for and
  not yet granted.  Only when that would not fit under the band's high mark is more claimed.
* §17.1.3 the band ``target_utilization = (low, high)``: a claim is sized so that predicted
  demand over held space lands inside the band, i.e. ``need/high <= total <= need/low``; the
  largest power of two that keeps utilization at or above ``low``, or, when no power of two
  fits in the band, the smallest that brings it under ``high``.  A grow never leaves the
  predicted demand above the high mark.
* §17.1.4 doubling in place (§5.3) is preferred to a new prefix whenever a held prefix whose
  buddy is free has a size in the band's range (the smallest such, fewest addresses added).
  When a new prefix would exceed ``max_prefixes`` and nothing can be expanded, one prefix
  large enough for all predicted demand is claimed instead, and the held prefixes that
  cannot double are no longer renewed (``Grow.replaces``; more are added, smallest first, if
  that is needed to respect the cap).  While the domain renews fewer than twice the cap,
  the new prefix the cap replaced is the fallback (``Grow.fallback``) for when no free block
  of the larger size exists (docs/conformance.md choice 105).
* §17.1.5 at each renewal (§17.1.6, every ``renew_interval``) of an under-used domain
  (predicted demand below ``low`` of what it holds): a prefix with nothing in use is not
  renewed if the rest still holds the demand under the high mark; otherwise the better-used
  half is renewed if the rest plus that half still does; otherwise the prefix is renewed
  whole.  A shrink never makes :func:`plan_growth` fire straight away.  When usage per
  block is unknown (``by_prefix`` empty while addresses are in use) nothing is dropped
  whole, since it might be the prefix in use.
"""

from __future__ import annotations

import enum
import math
from bisect import bisect_right
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache

from masc.protocol.space import (
    FreeRun,
    Randomness,
    aligned_blocks,
    choose_free,
    covers,
    free_runs,
    host_bits_for,
    overlaps,
    prefix_at,
)
from masc.protocol.wire.messages import Prefix


class Strategy(enum.Enum):
    """How :func:`choose_prefix` picks among free blocks."""

    RBO = "rbo"  # App. A §17.1.1 + §17.1.4 (default)
    FIRST_FIT = "first-fit"  # lowest-address free aligned block; ignores `near`
    BEST_FIT = "best-fit"  # smallest free piece that fits, random among equals; ignores `near`


# --- §17.1.1 Reverse Bit Ordering and buddies --------------------------------------------------


def _reverse(value: int, bits: int) -> int:
    """``value`` read as ``bits`` bits, backwards."""
    return int(format(value, f"0{bits}b")[::-1], 2) if bits else 0


def _host_bits(prefix: Prefix) -> int:
    return prefix.max_prefixlen - prefix.prefixlen


def reverse_bit_order(parent: Prefix, length: int) -> Iterator[Prefix]:
    """The sub-prefixes of ``parent`` of prefix length ``length`` in §17.1.1 order.

    With four bits below the parent: 0000, 1000, 0100, 1100, 0010, ... -- each next child is
    as far as possible from those before it, so each can double the longest.
    """
    bits = length - parent.prefixlen
    if bits < 0 or length > parent.max_prefixlen:
        raise ValueError(f"no /{length} inside {parent}")
    base, shift = int(parent.network_address), parent.max_prefixlen - length
    for i in range(1 << bits):
        yield prefix_at(parent.max_prefixlen, base + (_reverse(i, bits) << shift), length)


def rbo_key(block: Prefix, container: Prefix) -> int:
    """``block``'s offset in ``container`` with its bits reversed: its rank in §17.1.1 order.

    For the blocks of one size this is their index in :func:`reverse_bit_order`.
    """
    if not covers(container, block):
        raise ValueError(f"{block} is not inside {container}")
    offset = int(block.network_address) - int(container.network_address)
    return _reverse(offset, _host_bits(container))


def buddy(prefix: Prefix) -> Prefix:
    """The other half of ``prefix.supernet()``: the space §5.3 doubling takes."""
    if prefix.prefixlen == 0:
        raise ValueError(f"{prefix} has no buddy")
    start = int(prefix.network_address) ^ (1 << _host_bits(prefix))
    return prefix_at(prefix.max_prefixlen, start, prefix.prefixlen)


def _free_run_of(runs: Sequence[FreeRun], width: int, start: int, stop: int) -> FreeRun | None:
    """The free run holding all of ``[start, stop)``, if any (``runs`` sorted, disjoint)."""
    i = bisect_right(runs, (width, start, 1 << 129)) - 1
    if i >= 0:
        run = runs[i]
        if run[0] == width and run[1] <= start and stop <= run[2]:
            return run
    return None


def expandability(block: Prefix, space: Sequence[Prefix], occupied: Iterable[Prefix]) -> int:
    """How many times ``block`` can double in place (§5.3, §17.1.1): each supernet inside
    one prefix of ``space`` and its buddy free.  Whatever ``occupied`` holds inside
    ``block`` is the block's own business and does not count."""
    others = [o for o in occupied if not covers(block, o)]
    width, start = block.max_prefixlen, int(block.network_address)
    k = _host_bits(block)
    run = _free_run_of(free_runs(space, others, join=False), width, start, start + (1 << k))
    if run is None:
        return 0
    doublings = 0
    while k < width:
        k += 1
        first = start >> k << k
        if first < run[1] or first + (1 << k) > run[2]:
            break
        doublings += 1
    return doublings


def can_double(prefix: Prefix, space: Sequence[Prefix], occupied: Iterable[Prefix]) -> bool:
    """§5.3/§17.1.1: ``prefix``'s supernet is inside ``space`` and its buddy is free
    (``occupied`` may list ``prefix`` itself, and what is inside it: both are ignored)."""
    return expandability(prefix, space, occupied) > 0


# --- choose_prefix -----------------------------------------------------------------------------


def choose_prefix(
    space: Sequence[Prefix],
    occupied: Iterable[Prefix],
    size: int,
    rng: Randomness,
    *,
    strategy: Strategy = Strategy.RBO,
    near: Sequence[Prefix] = (),
) -> Prefix | None:
    """A free, aligned block of at least ``size`` addresses inside one prefix of ``space``
    (adjacent ones are not joined: see :func:`free_runs`), or None when there is none;
    ``near`` lists the chooser's own prefixes (used by ``Strategy.RBO``)."""
    if not space:
        return None
    if strategy is Strategy.BEST_FIT:
        return choose_free(space, occupied, size, rng)
    need = host_bits_for(size)
    runs = free_runs(space, occupied, join=False)
    if strategy is Strategy.FIRST_FIT:
        return _first_fit(runs, need)
    if near:
        found = _neighbour(runs, near, need)
        if found is not None:
            return found
    return _most_expandable(runs, space, need, rng)


def _first_fit(runs: Sequence[FreeRun], need: int) -> Prefix | None:
    for width, start, stop in runs:
        if need > width or stop - start < 1 << need:
            continue
        for block, k in aligned_blocks(start, stop, width):
            if k >= need:
                return prefix_at(width, block, width - need)
    return None


def _neighbour(runs: Sequence[FreeRun], near: Sequence[Prefix], need: int) -> Prefix | None:
    """§17.1.4: "if prefix 224.0/16 was already allocated, and the MASC domain needs 256 more
    addresses, the second prefix to claim will be 224.1.0/24"."""
    own = sorted(
        (p for p in near if p.prefixlen > 0 and need <= _host_bits(p)),
        key=lambda p: (p.prefixlen, p.version, int(p.network_address)),
    )
    # First pass: a neighbour that can later double all the way to its buddy's size.
    for whole in (True, False):
        for prefix in own:
            width, start = prefix.max_prefixlen, int(buddy(prefix).network_address)
            span = 1 << (_host_bits(prefix) if whole else need)
            if _free_run_of(runs, width, start, start + span) is not None:
                return prefix_at(width, start, width - need)
    return None


def _most_expandable(
    runs: Sequence[FreeRun], space: Sequence[Prefix], need: int, rng: Randomness
) -> Prefix | None:
    """§17.1.1: the first block of each largest fitting free prefix, in Reverse Bit Order of
    its space prefix, one drawn at random."""
    best = -1
    candidates: list[tuple[int, int]] = []  # (width, start)
    for width, start, stop in runs:
        if need > width or stop - start < 1 << need:
            continue
        for block, k in aligned_blocks(start, stop, width):
            if k < best or k < need:
                continue
            if k > best:
                best, candidates = k, []
            candidates.append((width, block))
    if not candidates:
        return None
    # The containers are the maximal prefixes of the space (the given prefixes, unless some
    # merge); each ranks by the first given space prefix it overlaps.
    containers = sorted(
        (width, block, k)
        for width, start, stop in free_runs(space, (), join=False)
        for block, k in aligned_blocks(start, stop, width)
    )
    rank: dict[tuple[int, int, int], int] = {}

    def key(candidate: tuple[int, int]) -> tuple[int, int]:
        width, start = candidate
        container = containers[bisect_right(containers, (width, start, 1 << 129)) - 1]
        if container not in rank:
            as_prefix = prefix_at(width, container[1], width - container[2])
            rank[container] = next(i for i, p in enumerate(space) if overlaps(p, as_prefix))
        return rank[container], _reverse(start - container[1], container[2])

    candidates.sort(key=key)
    width, start = candidates[rng.randrange(0, len(candidates))]
    return prefix_at(width, start, width - need)


# --- demand planner: §17.1.2 - §17.1.6 ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AllocatorConfig:
    """Appendix A knobs (config ``[allocation]``)."""

    target_utilization: tuple[float, float] = (0.7, 0.9)  # §17.1.3
    max_prefixes: int = 3  # §17.1.4
    renew_interval: float = 48 * 3600.0  # §17.1.6
    strategy: Strategy = Strategy.RBO

    def __post_init__(self) -> None:
        low, high = self.target_utilization
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(f"target_utilization needs 0 < low <= high <= 1, not {low}, {high}")
        if self.max_prefixes < 1:
            raise ValueError(f"max_prefixes must be at least 1, not {self.max_prefixes}")
        if not self.renew_interval > 0:
            raise ValueError(f"renew_interval must be positive, not {self.renew_interval}")


@dataclass(frozen=True, slots=True)
class Demand:
    """What the MAASs (or children) use and want: the planner's input (§17.1.2)."""

    in_use: int = 0  # addresses in use now (sum over MAASs / children)
    rate: float = 0.0  # growth in addresses per second (may be negative)
    requested: int = 0  # explicitly asked for, not yet granted
    by_prefix: Mapping[Prefix, int] = field(default_factory=dict)  # in use per block, if known


@dataclass(frozen=True, slots=True)
class Held:
    """One prefix the domain holds, as the planner needs to see it."""

    prefix: Prefix
    renewing: bool = True  # False: deprecated, left to expire (§17.1.4/§17.1.5)
    can_double: bool = False  # buddy free in the space it came from (caller computes)


@dataclass(frozen=True, slots=True)
class Grow:
    """The planner's answer when more space is needed."""

    size: int  # addresses to add (power of two)
    expand: Prefix | None = None  # §5.3 double this prefix in place; else claim `size` anew
    replaces: tuple[Prefix, ...] = ()  # §17.1.4: stop renewing these once the new one is held
    # The claim the prefix cap replaced (§17.1.4), for when no block of ``size`` is free:
    # ``fallback`` addresses anew, keeping the older prefixes (0: none; choice 105).
    fallback: int = 0


class Trend:
    """§17.1.2 "predicts what would be the address usage after [WAITING_PERIOD]" for space
    nobody reports a rate for: a parent's children, seen only through their claims.  The
    rate is the growth over the last ``window`` seconds (never negative: shrinking demand
    is §17.1.5's business, at renewal)."""

    __slots__ = ("_samples", "window")

    def __init__(self, window: float) -> None:
        self.window = window
        # (time, total) at each change; the first one at or before now - window is the
        # baseline the growth is measured from.
        self._samples: deque[tuple[float, int]] = deque()

    def note(self, now: float, total: int) -> None:
        """Record ``total`` as the amount at ``now`` (a no-op when it has not changed)."""
        samples = self._samples
        if not samples or samples[-1][1] != total:
            samples.append((now, total))
        while len(samples) >= 2 and samples[1][0] <= now - self.window:
            samples.popleft()

    def rate(self, now: float) -> float:
        """Addresses per second: the growth since the baseline, spread over at least one
        window (a burst is not extrapolated faster than it happened)."""
        if len(self._samples) < 2 or self.window <= 0:
            return 0.0
        (since, base), (_, latest) = self._samples[0], self._samples[-1]
        return max(0, latest - base) / max(self.window, now - since)


def predicted(demand: Demand, horizon: float) -> int:
    """§17.1.2: the addresses needed ``horizon`` seconds from now."""
    # ceil(in_use + growth) with in_use an integer, exact even for IPv6-sized counts.
    ahead = demand.in_use + math.ceil(max(demand.rate, 0.0) * max(horizon, 0.0))
    return max(0, ahead) + max(demand.requested, 0)


def usage_within(prefix: Prefix, by_prefix: Mapping[Prefix, int]) -> int:
    """Addresses in use inside ``prefix``: a reported block inside it counts whole, a block
    around it pro rata (rounded up, so a prefix holding any use never looks empty)."""
    used = 0
    for block, count in by_prefix.items():
        if covers(prefix, block):
            used += count
        elif covers(block, prefix):
            used += -(-count * prefix.num_addresses // block.num_addresses)
    return used


def _band(config: AllocatorConfig) -> tuple[Fraction, Fraction]:
    """The band as exact fractions (0.9 is 9/10): address counts reach 2**128, where float
    products round by more than the sizes being compared."""
    return _fractions(config.target_utilization)


@lru_cache(maxsize=64)
def _fractions(band: tuple[float, float]) -> tuple[Fraction, Fraction]:
    low, high = band
    return Fraction(str(low)), Fraction(str(high))


def _pow2_at_least(n: int) -> int:
    return 1 << (n - 1).bit_length() if n > 1 else 1


def plan_growth(
    held: Sequence[Held], pending: int, demand: Demand, horizon: float, config: AllocatorConfig
) -> Grow | None:
    """§17.1.2-§17.1.4: what to claim now so that predicted demand fits under the high mark,
    or None when it already does.  ``pending`` counts addresses in claims not yet held."""
    low, high = _band(config)
    active = [h for h in held if h.renewing]
    total = sum(h.prefix.num_addresses for h in active) + pending
    need = predicted(demand, horizon)
    if need <= high * total:
        return None
    lo = max(1, math.ceil(need / high) - total)  # add at least this much ...
    hi = math.floor(need / low) - total  # ... and at most this much to stay in the band
    x = 1 << (hi.bit_length() - 1) if hi >= 1 else 0
    if x < lo:  # no power of two in the band: the smallest that holds the demand
        x = _pow2_at_least(lo)
    # §17.1.4: double in place rather than add a prefix (a doubling adding exactly the
    # fallback size x is as good for utilization and costs no extra prefix).
    doubles = [h.prefix for h in active if h.can_double and lo <= h.prefix.num_addresses]
    fitting = [p for p in doubles if p.num_addresses <= max(hi, x)]
    if fitting:
        smallest = min(fitting, key=lambda p: (p.num_addresses, p.version, int(p.network_address)))
        return Grow(size=smallest.num_addresses, expand=smallest)
    if len(active) + 1 <= config.max_prefixes:
        return Grow(size=x)
    # §17.1.4: "claim a new larger prefix and ... stop re-claiming the older non-expandable
    # prefixes": one prefix that holds all predicted demand on its own.
    keep = sorted(
        (h.prefix for h in active if h.can_double),
        key=lambda p: (p.num_addresses, p.version, int(p.network_address)),
    )
    replaces = [h.prefix for h in active if not h.can_double]
    while keep and len(keep) + 1 > config.max_prefixes:
        replaces.append(keep.pop(0))
    size = _pow2_at_least(math.ceil(need / high))
    # Choice 105: the cap is a SHOULD for less state; demand waiting for a larger block
    # than the parent has free is worse.  Up to twice the cap, the smaller claim it
    # replaced is the fallback.
    fallback = x if x < size and len(active) + 1 <= 2 * config.max_prefixes else 0
    return Grow(size=size, replaces=tuple(replaces), fallback=fallback)


def plan_renewal(
    prefix: Prefix, held: Sequence[Held], demand: Demand, horizon: float, config: AllocatorConfig
) -> Prefix | None:
    """§17.1.5/§17.1.6: what to re-claim when ``prefix`` is due for renewal: ``prefix`` itself,
    one half of it (the better-used), or None (stop renewing; it expires)."""
    low, high = _band(config)
    size = prefix.num_addresses
    active = {h.prefix for h in held if h.renewing} | {prefix}
    total = sum(p.num_addresses for p in active)
    need = predicted(demand, horizon)
    if need >= low * total:
        return prefix
    # §17.1.5 "implicitly returns the unused prefixes after their lifetimes expire".
    known = bool(demand.by_prefix) or demand.in_use == 0
    rest = total - size
    if known and rest > 0 and usage_within(prefix, demand.by_prefix) == 0 and need <= high * rest:
        return None
    # §17.1.5 "... or re-claims some smaller sub-prefixes": the half with the higher use.
    if size >= 2 and need <= high * (total - size // 2):
        lower, upper = prefix.subnets(prefixlen_diff=1)
        by_prefix = demand.by_prefix
        return upper if usage_within(upper, by_prefix) > usage_within(lower, by_prefix) else lower
    return prefix


# --- when a claim for new space can succeed again (ClaimEngine._Stuck) -------------------------


def largest_free(space: Sequence[Prefix], occupied: Iterable[Prefix]) -> int:
    """``k`` of the largest free aligned block of 2**k addresses inside one prefix of
    ``space`` (-1: none).
    :func:`choose_prefix` finds a block of ``size`` addresses, whatever the strategy,
    exactly when ``host_bits_for(size) <= largest_free(space, occupied)``."""
    best = -1
    for width, start, stop in free_runs(space, occupied, join=False):
        for _, k in aligned_blocks(start, stop, width):
            best = max(best, k)
    return best


def first_release(taken: Mapping[Prefix, float], forever: Iterable[Prefix]) -> float:
    """The first moment an address of ``taken`` (prefix -> when it stops being taken) is
    free: a prefix is free only once it and every taken prefix around it have gone;
    ``forever`` prefixes stay taken.  ``math.inf`` if never."""
    index: dict[tuple[int, int, int], float] = {}
    lengths: dict[int, set[int]] = {}

    def put(prefix: Prefix, until: float) -> None:
        width, length = prefix.max_prefixlen, prefix.prefixlen
        key = (width, length, int(prefix.network_address) >> (width - length))
        index[key] = max(index.get(key, until), until)
        lengths.setdefault(width, set()).add(length)

    for prefix, until in taken.items():
        put(prefix, until)
    for prefix in forever:
        put(prefix, math.inf)
    first = math.inf
    for prefix in taken:
        width, start = prefix.max_prefixlen, int(prefix.network_address)
        free_at = 0.0
        for length in lengths[width]:
            if length <= prefix.prefixlen:
                free_at = max(free_at, index.get((width, length, start >> (width - length)), 0.0))
        first = min(first, free_at)
    return first
