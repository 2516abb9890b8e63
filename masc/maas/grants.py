"""The domain's locally-allocated space split between its MAASs (RFC 2908 §3, §5; RFC 2909 §17).

RFC 2908 §3 puts a Layer 2 between the Prefix Coordinator (MASC, Layer 3) and the MAASs: it
hands the domain's ranges to the MAASs and makes sure that no two MAASs allocate the same
address.  The protocol meant for it (AAP) was withdrawn; here the daemon does that job
itself, centrally: it splits the space the engine won for the domain's own MAASs into
*grants*, each one contiguous prefix held by one MAAS.

Theory of operation.  ``GrantTable`` is sans-IO: the shell feeds it the engine's usable
local space (``sync``), the MAASs' registrations, usage reports and explicit requests, and
the clock (``now``, ``handle_timer``); it answers with events to push to the MAASs, a
deadline, and a ``Demand`` for the engine's planner.  The rules:

* Grants come only from the space last given to ``sync``: every grant lies wholly inside a
  usable ``Space`` piece (an aligned block drawn from pieces at least as large as the block
  cannot straddle two of them), and two grants never overlap (RFC 2908 §3 Layer 2, §5).
* A grant's lifetime and state follow the pieces covering it: its ``expires`` is the latest
  expiry among them and it is active when one of them is (RFC 2908 §5: a range "is not
  revoked before the lifetime has expired").  An expiry change is pushed as ``Extended``, the
  end of renewal as ``Deprecated``; when the engine resumes renewing a deprecated piece the
  grant turns active again, also pushed as ``Extended`` (the event carries the whole grant).
* A grant no longer wholly inside the space (a clash withdraw, RFC 2909 §11.7 / §12.4) is
  ``Revoked("withdrawn")`` at the next ``sync``; one whose expiry passed is
  ``Revoked("expired")``; ``forget`` revokes a MAAS's grants with ``"released"``.
* New grants are carved only from *active* pieces, so deprecated space drains (§17.1.4-5).
* Demand: a MAAS's need is ``predicted(in_use, rate)`` over ``horizon`` (§17.1.2), at least
  one address (see below).  When need > high * (its active granted addresses) it gets one
  block sized as ``allocation.plan_growth`` sizes a new prefix (§17.1.3: largest power of two
  keeping it above the low mark, else the smallest one bringing it under the high mark),
  never below ``min_grant``, placed by ``allocation.choose_prefix`` next to the MAAS's own
  grants when possible so they aggregate (§17.1.4).  If that block does not fit, halves of
  it are tried down to ``min_grant`` (several smaller grants now rather than a wait for the
  domain's next claim).  Grants only grow here: space is given back when the engine stops
  renewing a piece (§17.1.5) and its grants deprecate and expire.
* Explicit requests are rounded up to a power of two >= ``min_grant`` and served as one block
  each, in arrival order, before usage-driven needs; one that does not fit stays outstanding
  and is served by the first ``sync`` (or expiry) that frees or brings enough space.

Local policies (where the RFCs are silent):

* Every known MAAS keeps at least a small active pool (need >= 1 gives one ``min_grant``
  block): RFC 2908 §5 lets a MAAS "pre-reserve a small pool of addresses" so its first
  client need not wait; this also gives a MAAS whose grants were all deprecated a new home.
* A MAAS that disconnects (``unregister``) keeps its grants and pool: a restarting MAAS must
  not lose the space its clients hold leases in (RFC 2908 §3: uniqueness across MAAS
  reboots).  Only ``forget`` (an operator's decision) removes a name.
* ``demand().requested`` is the outstanding explicit requests *plus* the usage-driven blocks
  that could not be placed.  Without the latter, MAASs that report no usage would never make
  the domain claim their pool, and one MAAS could starve while the domain's aggregate usage
  looks inside the band because another MAAS holds slack.

Cost: ``sync`` with an unchanged space only checks the cached deadline; a changed space costs
O(grants x distinct piece lengths) dictionary look-ups; each placement one ``choose_prefix``.
"""

from __future__ import annotations

import math
import sys
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Final

from masc.protocol.allocation import (
    AllocatorConfig,
    Demand,
    Held,
    Strategy,
    choose_prefix,
    plan_growth,
    predicted,
    usage_within,
)
from masc.protocol.space import FreeRun, Randomness, covers, free_runs, overlaps
from masc.protocol.wire.messages import Prefix

WITHDRAWN: Final = "withdrawn"  # no longer inside the domain's usable space (clash, withdraw)
EXPIRED: Final = "expired"  # its lifetime ran out without renewal
RELEASED: Final = "released"  # the MAAS name was forgotten by the operator

# Usage-driven blocks one MAAS gets in one pass at most; the rest waits for the next pass.
_MAX_BLOCKS_PER_PASS: Final = 16


@dataclass(frozen=True, slots=True)
class Space:
    """One usable piece of the domain's local space, as the engine holds it."""

    prefix: Prefix
    expires: float
    active: bool  # False: deprecated, the engine no longer renews it (§17.1.4, §17.1.5)


@dataclass(frozen=True, slots=True)
class Grant:
    maas: str
    prefix: Prefix
    expires: float
    active: bool
    granted_at: float


@dataclass(frozen=True, slots=True)
class Granted:
    grant: Grant


@dataclass(frozen=True, slots=True)
class Extended:
    """The grant's lifetime changed (normally grew), or it became active again."""

    grant: Grant


@dataclass(frozen=True, slots=True)
class Deprecated:
    """Still the MAAS's until ``grant.expires``, but not renewed: allocate elsewhere."""

    grant: Grant


@dataclass(frozen=True, slots=True)
class Revoked:
    """Stop using the grant now; ``reason`` is WITHDRAWN, EXPIRED or RELEASED."""

    grant: Grant
    reason: str


@dataclass(frozen=True, slots=True)
class ExpiringSoon:
    """A deprecated grant ends within ``GrantConfig.expiry_warning``."""

    grant: Grant


GrantEvent = Granted | Extended | Deprecated | Revoked | ExpiringSoon


@dataclass(frozen=True, slots=True)
class GrantConfig:
    target_utilization: tuple[float, float] = (0.7, 0.9)  # §17.1.3, per MAAS
    horizon: float = 3600.0  # a MAAS's usage is predicted this far ahead (§17.1.2)
    expiry_warning: float = 86400.0  # ExpiringSoon this long before a non-renewed grant ends
    min_grant: int = 16  # smallest block handed out (power of two)

    def __post_init__(self) -> None:
        low, high = self.target_utilization
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(f"target_utilization needs 0 < low <= high <= 1, not {low}, {high}")
        if self.min_grant < 1 or self.min_grant & (self.min_grant - 1):
            raise ValueError(f"min_grant must be a power of two, got {self.min_grant}")
        if not (self.horizon >= 0.0 and self.expiry_warning >= 0.0):
            raise ValueError("horizon and expiry_warning must be >= 0")


class UnknownMaas(LookupError):
    """Our own code asked about a MAAS name that never registered (a shell bug, not a peer's)."""


@dataclass(slots=True)
class _Maas:
    scopes: tuple[str, ...]
    grants: dict[Prefix, Grant] = field(default_factory=dict)
    in_use: int = 0
    rate: float = 0.0
    by_prefix: dict[Prefix, int] = field(default_factory=dict)
    outstanding: int = 0  # explicit requests not yet granted (addresses, rounded)
    unmet: int = 0  # the usage-driven block that could not be placed at the last attempt
    usage: dict[Prefix, int] | None = None  # in use per grant, cached for demand()
    # _growth's answer and what it depends on (in use, rate, active grants): a MAAS with
    # many grants is asked on every serve pass, mostly with nothing changed.
    growth: tuple[tuple[int, float, int], int] | None = None
    version: int = 0  # bumped whenever a grant is added, changed or removed

    def active_total(self) -> int:
        return sum(g.prefix.num_addresses for g in self.grants.values() if g.active)


def _order(prefix: Prefix) -> tuple[int, int, int]:
    return (prefix.version, int(prefix.network_address), prefix.prefixlen)


def _index_key(prefix: Prefix, length: int) -> tuple[int, int, int]:
    """The key of ``prefix``'s supernet of ``length`` bits, in plain integers."""
    return (prefix.version, length, int(prefix.network_address) >> (prefix.max_prefixlen - length))


def _pow2_ceil(n: int) -> int:
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


class GrantTable:
    """Grants of the domain's local space to its MAASs; see the module docstring."""

    def __init__(
        self, config: GrantConfig, *, rng: Randomness, strategy: Strategy = Strategy.RBO
    ) -> None:
        self._rng = rng
        self._set_config(config, strategy)
        self._reset()

    def _set_config(self, config: GrantConfig, strategy: Strategy) -> None:
        self._config = config
        self._strategy = strategy
        # Only plan_growth's sizing is wanted: no prefix cap (see _growth).
        self._planner = AllocatorConfig(config.target_utilization, max_prefixes=sys.maxsize)

    def _reset(self) -> None:
        self._maas: dict[str, _Maas] = {}
        self._grants: dict[Prefix, Grant] = {}
        self._requests: list[tuple[str, int]] = []  # (name, rounded size), arrival order
        # The space of the last sync, deduplicated and sorted; None before the first sync
        # (and after restore), so that the next sync reconciles every grant.
        self._space: tuple[Space, ...] | None = None
        self._index: dict[tuple[int, int, int], Space] = {}
        self._lengths: list[int] = []  # prefix lengths present in the space, longest first
        self._warned: dict[Prefix, float] = {}  # ExpiringSoon sent for this expiry value
        self._free_changed = False  # grants were removed or space changed since last serve
        self._deadline: float | None = None
        self._deadline_stale = True
        self._demand: Demand | None = None

    def reconfigure(self, config: GrantConfig, *, strategy: Strategy) -> None:
        """A reload's new settings: grants already made stay as they are; the next
        placement, sizing and expiry warning use the new values."""
        self._set_config(config, strategy)
        for entry in self._maas.values():
            entry.growth = None  # sized with the old horizon, band and minimum
        self._free_changed = True  # serve again at the next sync: sizes may differ now
        self._deadline_stale = True
        self._warned.clear()

    # -- inputs ---------------------------------------------------------------------------

    def restore(self, grants: Iterable[Grant], maas: Iterable[tuple[str, tuple[str, ...]]]) -> None:
        """Bring back the grants and MAAS names a previous run stored, without events.

        Replaces the table's state.  The space is unknown until the next ``sync``, which
        reconciles every restored grant against it (revoking what is gone, extending what
        was renewed meanwhile).  Usage is not stored: MAASs report it again.
        """
        self._reset()
        for name, scopes in maas:
            self._maas[name] = _Maas(tuple(scopes))
        previous: Grant | None = None
        for grant in sorted(grants, key=lambda g: _order(g.prefix)):
            if previous is not None and overlaps(previous.prefix, grant.prefix):
                raise ValueError(f"restored grants overlap: {previous} and {grant}")
            previous = grant
            self._maas.setdefault(grant.maas, _Maas(()))
            self._put(grant)

    def register(self, name: str, scopes: Sequence[str], *, now: float) -> list[GrantEvent]:
        """A MAAS (re)connects.  It keeps its grants; one holding no active grant gets its
        pool (RFC 2908 §5 pre-reservation) if the space allows."""
        if not name:
            raise ValueError("a MAAS name must not be empty")
        entry = self._maas.get(name)
        if entry is None:
            self._maas[name] = _Maas(tuple(scopes))
        else:
            entry.scopes = tuple(scopes)
        self._demand = None
        return self._serve([name], now)

    def unregister(self, name: str) -> None:
        """A MAAS disconnected.  Nothing changes: its grants stay its own (a restarting MAAS
        must not lose the space its clients hold leases in, RFC 2908 §3)."""

    def forget(self, name: str) -> list[GrantEvent]:
        """Operator's decision: drop a MAAS name, revoking its grants ("released") and its
        outstanding requests.  The freed space is handed out at the next ``sync``."""
        entry = self._maas.get(name)
        if entry is None:
            return []
        events: list[GrantEvent] = [
            self._remove(g, RELEASED) for g in sorted(entry.grants.values(), key=_grant_order)
        ]
        self._requests = [r for r in self._requests if r[0] != name]
        del self._maas[name]
        self._demand = None
        return events

    def report_usage(
        self,
        name: str,
        *,
        in_use: int,
        rate: float,
        by_prefix: Mapping[Prefix, int],
        now: float,
    ) -> list[GrantEvent]:
        """A MAAS's usage report (§17.1.2 input); grants a block at once if it needs one."""
        entry = self._known(name)
        if in_use < 0 or any(v < 0 for v in by_prefix.values()):
            raise ValueError(f"usage must be >= 0, got in_use={in_use}")
        if not math.isfinite(rate):
            raise ValueError(f"rate must be finite, got {rate}")
        entry.in_use, entry.rate, entry.by_prefix = in_use, rate, dict(by_prefix)
        entry.usage = None
        self._demand = None
        return self._serve([name], now)

    def request(self, name: str, size: int, *, now: float) -> list[GrantEvent]:
        """An explicit request for ``size`` more addresses, as one block of the next power of
        two (>= min_grant).  If no such block is free it stays outstanding (counted in
        ``demand().requested`` so the domain claims for it) and a later ``sync`` grants it."""
        entry = self._known(name)
        if size < 1:
            raise ValueError(f"request size must be >= 1, got {size}")
        block = max(self._config.min_grant, _pow2_ceil(size))
        self._requests.append((name, block))
        entry.outstanding += block
        self._demand = None
        return self._serve([name], now)

    def sync(self, space: Sequence[Space], *, now: float) -> list[GrantEvent]:
        """The engine's usable local space now.  Reconciles the grants with it, expires what
        ran out, then serves outstanding requests and usage-driven needs from it."""
        pieces = _normalise(space)
        events: list[GrantEvent] = []
        if pieces != self._space:
            self._set_space(pieces)
            events += self._reconcile()
            self._free_changed = True
        events += self._tick(now)
        return events

    def handle_timer(self, *, now: float) -> list[GrantEvent]:
        """Expire grants whose lifetime ended, warn about deprecated ones ending soon."""
        return self._tick(now)

    # -- outputs --------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When ``handle_timer`` has something to do: the earliest grant expiry, or the
        ExpiringSoon moment of a deprecated grant not yet warned about."""
        if self._deadline_stale:
            warning = self._config.expiry_warning
            times = [g.expires for g in self._grants.values()]
            times += [
                g.expires - warning
                for g in self._grants.values()
                if not g.active and self._warned.get(g.prefix) != g.expires
            ]
            self._deadline = min(times, default=None)
            self._deadline_stale = False
        return self._deadline

    def outstanding(self, name: str) -> int:
        """Addresses explicitly requested by ``name`` and not granted yet (0 if unknown)."""
        entry = self._maas.get(name)
        return 0 if entry is None else entry.outstanding

    def demand(self) -> Demand:
        """What the MAASs need from the domain, for the engine's planner (§17.1.2).

        in_use and rate are summed over the MAASs; requested is the outstanding explicit
        requests plus the usage-driven blocks that could not be placed; by_prefix has every
        grant's usage: as reported (``allocation.usage_within`` of the MAAS's by_prefix), or,
        for a MAAS that reports none, its in_use spread over its active grants by size.
        """
        if self._demand is None:
            entries = self._maas.values()
            by_prefix: dict[Prefix, int] = {}
            for entry in entries:
                if entry.usage is None:
                    entry.usage = _usage_by_grant(entry)
                by_prefix.update(entry.usage)
            self._demand = Demand(
                in_use=sum(e.in_use for e in entries),
                rate=sum(e.rate for e in entries),
                requested=sum(e.outstanding + e.unmet for e in entries),
                by_prefix=MappingProxyType(by_prefix),
            )
        return self._demand

    def grants(self, name: str | None = None) -> list[Grant]:
        """All grants, or those of ``name`` (empty if unknown), in address order."""
        if name is None:
            chosen: Iterable[Grant] = self._grants.values()
        else:
            entry = self._maas.get(name)
            chosen = () if entry is None else entry.grants.values()
        return sorted(chosen, key=_grant_order)

    def in_use(self, name: str) -> int:
        """Addresses ``name`` last reported in use (0 if unknown or not reported since the
        start: usage is not stored)."""
        entry = self._maas.get(name)
        return 0 if entry is None else entry.in_use

    def maas(self) -> dict[str, tuple[str, ...]]:
        """Known MAAS names (registered now or before, or restored) -> scopes they serve."""
        return {name: entry.scopes for name, entry in self._maas.items()}

    # -- internals ------------------------------------------------------------------------

    def _known(self, name: str) -> _Maas:
        entry = self._maas.get(name)
        if entry is None:
            raise UnknownMaas(f"MAAS {name!r} is not registered")
        return entry

    def _set_space(self, pieces: tuple[Space, ...]) -> None:
        self._space = pieces
        self._index = {_index_key(s.prefix, s.prefix.prefixlen): s for s in pieces}
        self._lengths = sorted({s.prefix.prefixlen for s in pieces}, reverse=True)

    def _cover(self, prefix: Prefix) -> tuple[float, bool] | None:
        """(latest expiry, any active) over the pieces wholly containing ``prefix``, or None
        when no piece does.  One dictionary look-up per prefix length present in the space."""
        expires: float | None = None
        active = False
        for length in self._lengths:
            if length > prefix.prefixlen:
                continue
            piece = self._index.get(_index_key(prefix, length))
            if piece is not None:
                expires = piece.expires if expires is None else max(expires, piece.expires)
                active = active or piece.active
        return None if expires is None else (expires, active)

    def _reconcile(self) -> list[GrantEvent]:
        events: list[GrantEvent] = []
        for grant in sorted(self._grants.values(), key=_grant_order):
            cover = self._cover(grant.prefix)
            if cover is None:
                # RFC 2908 §3: the MAAS must stop allocating from space the domain lost.
                events.append(self._remove(grant, WITHDRAWN))
                continue
            updated = replace(grant, expires=cover[0], active=cover[1])
            if updated == grant:
                continue
            self._put(updated)
            if updated.expires != grant.expires or (updated.active and not grant.active):
                events.append(Extended(updated))
            if grant.active and not updated.active:
                events.append(Deprecated(updated))
        return events

    def _tick(self, now: float) -> list[GrantEvent]:
        events: list[GrantEvent] = []
        deadline = self.next_deadline()
        if deadline is not None and deadline <= now:
            warning = self._config.expiry_warning
            for grant in sorted(self._grants.values(), key=_grant_order):
                if grant.expires <= now:
                    events.append(self._remove(grant, EXPIRED))
                elif (
                    not grant.active
                    and grant.expires - warning <= now
                    and self._warned.get(grant.prefix) != grant.expires
                ):
                    self._warned[grant.prefix] = grant.expires
                    self._deadline_stale = True
                    events.append(ExpiringSoon(grant))
        if self._free_changed:
            events += self._serve(None, now)
        return events

    def _usable(self, now: float) -> list[Prefix]:
        """Active, unexpired pieces, without those nested in another such piece."""
        out: list[Prefix] = []
        for piece in self._space or ():
            if piece.active and piece.expires > now:
                if out and covers(out[-1], piece.prefix):
                    continue
                out.append(piece.prefix)
        return out

    def _serve(self, names: Sequence[str] | None, now: float) -> list[GrantEvent]:
        """Serve explicit requests (arrival order), then usage-driven needs, of ``names``
        (all MAASs if None) from free active space."""
        if names is None:
            self._free_changed = False
        wanted = None if names is None else set(names)
        place = self._placer(now)
        events: list[GrantEvent] = []
        remaining: list[tuple[str, int]] = []
        for name, size in self._requests:
            grant = place(name, size) if wanted is None or name in wanted else None
            if grant is None:
                remaining.append((name, size))
            else:
                self._maas[name].outstanding -= size
                events.append(Granted(grant))
        self._requests = remaining
        for name in self._maas if names is None else names:
            entry = self._maas[name]
            entry.unmet = 0
            for _ in range(_MAX_BLOCKS_PER_PASS):
                size = self._growth(entry)
                if not size:
                    break
                # Local policy: when the planned block does not fit, smaller ones (each
                # placed next to the MAAS's grants where possible) serve the need now from
                # what the domain holds, instead of after the domain's next claim (§17.1.2).
                grant, block = None, size
                while grant is None and block >= self._config.min_grant:
                    grant, block = place(name, block), block // 2
                if grant is None:
                    entry.unmet = size
                    break
                events.append(Granted(grant))
        self._demand = None
        return events

    def _placer(self, now: float) -> Callable[[str, int], Grant | None]:
        """A function placing blocks for one serve pass.  It keeps the free runs between
        placements: a block longer than every run is refused at once, so a pass in a full
        domain costs one sweep, not one ``choose_prefix`` per MAAS."""
        usable = self._usable(now)
        runs: list[FreeRun] | None = None
        largest = 0

        def place(name: str, size: int) -> Grant | None:
            nonlocal runs, largest
            if runs is None:
                runs = free_runs(usable, self._grants)
                largest = max((stop - start for _, start, stop in runs), default=0)
            if size > largest:
                return None
            # Only pieces at least as large as the block: an aligned block inside their
            # union is then inside one of them, never straddling two adjacent pieces.
            space = [p for p in usable if p.num_addresses >= size]
            near = [g.prefix for g in self._maas[name].grants.values() if g.active]
            block = choose_prefix(
                space, self._grants, size, self._rng, strategy=self._strategy, near=near
            )
            if block is None:
                return None
            cover = self._cover(block)
            if cover is None or not cover[1] or not _inside_a_run(block, runs):
                # Two MAASs must never share an address (RFC 2908 §3): a wrong answer from
                # the allocator is a bug to surface, not to paper over.
                raise RuntimeError(f"choose_prefix returned {block}, not free active space")
            grant = Grant(name, block, cover[0], True, now)
            self._put(grant)
            runs = None
            return grant

        return place

    def _growth(self, entry: _Maas) -> int:
        """The block a MAAS should get now, or 0: ``plan_growth``'s size for a new prefix
        (§17.1.2-§17.1.3), over the MAAS's active grants, never below ``min_grant``.  Its
        §17.1.4 doubling and prefix cap do not apply: a grant grows by a neighbour block."""
        key = (entry.in_use, entry.rate, entry.version)
        if entry.growth is not None and entry.growth[0] == key:
            return entry.growth[1]
        usage = Demand(in_use=entry.in_use, rate=entry.rate)
        if predicted(usage, self._config.horizon) == 0:
            usage = Demand(requested=1)  # the pool every MAAS keeps (module docstring)
        held = [Held(g.prefix, renewing=g.active) for g in entry.grants.values()]
        grow = plan_growth(held, 0, usage, self._config.horizon, self._planner)
        size = 0 if grow is None else max(grow.size, self._config.min_grant)
        entry.growth = (key, size)
        return size

    def _put(self, grant: Grant) -> None:
        entry = self._maas[grant.maas]
        old = entry.grants.get(grant.prefix)
        if old is None or old.active != grant.active:
            entry.usage = None
        self._grants[grant.prefix] = grant
        entry.grants[grant.prefix] = grant
        entry.version += 1
        self._deadline_stale = True
        self._demand = None

    def _remove(self, grant: Grant, reason: str) -> Revoked:
        entry = self._maas[grant.maas]
        del self._grants[grant.prefix]
        del entry.grants[grant.prefix]
        entry.version += 1
        entry.usage = None
        self._warned.pop(grant.prefix, None)
        self._free_changed = True
        self._deadline_stale = True
        self._demand = None
        return Revoked(grant, reason)


def _normalise(space: Sequence[Space]) -> tuple[Space, ...]:
    """Sorted, one entry per prefix (duplicates merged: latest expiry, active if any is)."""
    merged: dict[Prefix, Space] = {}
    for piece in space:
        seen = merged.get(piece.prefix)
        merged[piece.prefix] = (
            piece
            if seen is None
            else Space(piece.prefix, max(seen.expires, piece.expires), seen.active or piece.active)
        )
    return tuple(sorted(merged.values(), key=lambda s: _order(s.prefix)))


def _grant_order(grant: Grant) -> tuple[int, int, int]:
    return _order(grant.prefix)


def _inside_a_run(block: Prefix, runs: Sequence[FreeRun]) -> bool:
    width, start = block.max_prefixlen, int(block.network_address)
    i = bisect_right(runs, (width, start, 1 << 129)) - 1
    return i >= 0 and runs[i][0] == width and start + block.num_addresses <= runs[i][2]


def _usage_by_grant(entry: _Maas) -> dict[Prefix, int]:
    """In-use addresses per grant of one MAAS."""
    if not entry.grants:
        return {}
    if entry.by_prefix:
        return {p: usage_within(p, entry.by_prefix) for p in entry.grants}
    out = dict.fromkeys(entry.grants, 0)
    base = [g.prefix for g in entry.grants.values() if g.active] or list(entry.grants)
    base.sort(key=_order)
    # Proportional to size, largest remainder: the shares add up to in_use exactly.
    total = sum(p.num_addresses for p in base)
    shares = [divmod(entry.in_use * p.num_addresses, total) for p in base]
    short = entry.in_use - sum(q for q, _ in shares)
    by_remainder = sorted(range(len(base)), key=lambda i: (-shares[i][1], i))
    for i, (quotient, _) in enumerate(shares):
        out[base[i]] = quotient
    for i in by_remainder[:short]:
        out[base[i]] += 1
    return out
