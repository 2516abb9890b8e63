"""The claim cache and the claim comparison function (RFC 2909 §5.1.1, §11.1, §12.3).

Every UPDATE attribute a node accepts, and every one it originates, is kept in one
:class:`ClaimCache`, stored with its *Updated* Origin Role (what the origin is to this
node, Table 1 of §11.1).  Storing the updated role makes the §11.1 duplicate test also
stop loops: the same claim reaching a node over two paths has the same updated role, so the
second copy is dropped.  The cache is also the node's memory of who holds what, which is
how a free prefix is found and how the full state is replayed to a peer (§11.8).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from operator import attrgetter
from typing import Final

from masc.protocol.constants import ClaimType, Role
from masc.protocol.sharing import SharedClaim
from masc.protocol.space import same, scope_of
from masc.protocol.wire.messages import Claim, DomainId

# §5.1.1: PREFIX_IN_USE > CLAIM_DENIED > CLAIM_TO_EXPAND > NEW_CLAIM.  The type codes are
# already in that order (0 beats 3); PREFIX_MANAGED and WITHDRAW are never compared.
COMPARABLE = frozenset(
    {
        ClaimType.PREFIX_IN_USE,
        ClaimType.CLAIM_DENIED,
        ClaimType.CLAIM_TO_EXPAND,
        ClaimType.NEW_CLAIM,
    }
)
CLAIMS = frozenset({ClaimType.PREFIX_IN_USE, ClaimType.CLAIM_TO_EXPAND, ClaimType.NEW_CLAIM})


def precedence(claim: Claim) -> tuple[int, int, int]:
    """§5.1.1 as a sort key: the smallest key wins."""
    return (int(claim.type), claim.timestamp, int(claim.origin_node))


def wins(a: Claim, b: Claim) -> bool:
    """Whether claim ``a`` beats claim ``b`` by §5.1.1: type precedence, then the earliest
    timestamp, then the smallest Origin Node Identifier."""
    return precedence(a) < precedence(b)


def is_hint(claim: Claim) -> bool:
    """§11.5: a NEW_CLAIM with Address 0 is a child's hint that it wants more space."""
    return claim.type is ClaimType.NEW_CLAIM and int(claim.prefix.network_address) == 0


# (Role, D-bit, Type, AddrFam, Timestamp, Lifetime, Holdtime, Origin Domain, Origin Node,
# first address, prefix length, scope), see _identity; and (Type, Origin Domain).  Typed
# as tuples of any length so that the compiled build (setup.py) keeps them the Python
# objects that are shared: it holds a fixed-length tuple unboxed, and every dict it went
# into would get a copy of its own (half again the claim caches' memory at 16 x 64).
Identity = tuple[object, ...]
OriginKey = tuple[object, ...]


def same_subject(a: Claim, b: Claim) -> bool:
    """Whether ``b`` announces what ``a`` does (ClaimCache.add): the same updated Origin
    Role, Type, Origin Domain and Node and prefix (the prefix fixes the family); the
    timestamp, the lifetimes and the Deprecated bit may differ."""
    return (
        a.origin_node == b.origin_node
        and a.origin_role is b.origin_role
        and a.type is b.type
        and a.origin_domain == b.origin_domain
        and same(a.prefix, b.prefix)
    )


def identity(claim: Claim) -> Identity:
    """§11.1: the fields whose equality makes a new UPDATE a duplicate of a cached one.

    ``claim.origin_role`` is the *updated* role here (module docstring).  A claim
    :func:`shared` has made the process's copy answers with the one tuple computed then."""
    known = _KNOWN.get(id(claim))
    if known is not None:
        return known.identity
    return _identity(claim)


def _identity(claim: Claim) -> Identity:
    # The prefix as (first address, length, IPv6 scope): with the family beside them that
    # is the same equality (space.same), and ints hash in C.  The caches' dicts hash this
    # tuple on every lookup (tuples do not keep their hash), and ipaddress hashes a prefix
    # in Python.
    prefix = claim.prefix
    return (
        claim.origin_role,
        claim.deprecated,
        claim.type,
        claim.family,
        claim.timestamp,
        claim.lifetime,
        claim.holdtime,
        claim.origin_domain,
        claim.origin_node,
        int(prefix.network_address),
        prefix.prefixlen,
        scope_of(prefix),
    )


# Every claim cached in this process, by value (every field): one parent's relay reaches
# all its children, and engines in one process (the simulator's thousands) then share one
# Claim, one prefix object and one identity tuple per claim instead of holding a copy
# each (the tuple is what the caches' indexes are keyed by).  Weak: a claim leaves when
# no cache holds it.  _KNOWN finds the entry from the shared object itself.
_BY_VALUE: dict[tuple[object, ...], SharedClaim] = {}
_KNOWN: dict[int, SharedClaim] = {}


# The (Type, Origin Domain) keys of every cache's index, one tuple per pair: a few types
# times the domains heard of, where each cache holding its own was millions at the
# strawman's scale.
_ORIGIN_KEYS: dict[OriginKey, OriginKey] = {}


def _forget(ref: SharedClaim) -> None:
    if _BY_VALUE.get(ref.value_key) is ref:
        del _BY_VALUE[ref.value_key]
    if _KNOWN.get(ref.claim_id) is ref:
        del _KNOWN[ref.claim_id]


def shared(claim: Claim) -> Claim:
    """The process's one Claim object equal to ``claim`` (``claim`` itself if it is the
    first), so that :func:`identity` of it is the same tuple wherever it is cached."""
    if id(claim) in _KNOWN:
        return claim
    key = _identity(claim)
    value_key: tuple[object, ...] = (key, claim.parameters)
    found = _BY_VALUE.get(value_key)
    if found is not None:
        existing = found()
        if existing is not None:
            return existing
    ref = SharedClaim(claim, _forget)
    ref.identity, ref.value_key, ref.claim_id = key, value_key, id(claim)
    _BY_VALUE[value_key] = _KNOWN[id(claim)] = ref
    return claim


# The last claims given an updated Origin Role (§11.1), by the id of the received claim
# (kept in the value, so the id cannot be reused meanwhile): a parent's relay reaches all
# its children with the same claims (one decoded value, see codec.decode_update), and each
# child relabels them the same way.
_RELABELLED: dict[int, tuple[Claim, Role, Claim]] = {}
_RELABELLED_KEPT: Final = 16


def relabelled(claim: Claim, role: Role) -> Claim:
    """``shared(replace(claim, origin_role=role))``, remembered for the last few claims."""
    hit = _RELABELLED.get(id(claim))
    if hit is not None and hit[0] is claim and hit[1] is role:
        return hit[2]
    stored = shared(replace(claim, origin_role=role))
    if len(_RELABELLED) >= _RELABELLED_KEPT:
        del _RELABELLED[next(iter(_RELABELLED))]
    _RELABELLED[id(claim)] = (claim, role, stored)
    return stored


@dataclass(slots=True)
class CacheEntry:
    """One cached attribute.

    ``claim.origin_role`` is the updated role, which is also the Rol this node writes when
    it passes the attribute on.  ``via`` is the session it came from (None: originated
    here).  ``parent`` is the parent domain whose space the prefix was associated with
    (§11), when that is known.  ``denied`` marks a child claim this node answered with
    CLAIM_DENIED (it is then passed to internal peers only, §11.4.3) or a claim that some
    parent denied; ``clash`` marks a WITHDRAW this domain originated because of a clash
    (§11.7.3).
    """

    claim: Claim
    via: str | None
    parent: DomainId | None
    denied: bool = False
    clash: bool = False
    # §11.1: the claim is expired once Timestamp + Holdtime <= now.  Stored, not computed:
    # the engine and the cache's expiry order ask for it many times per input.
    expires: int = field(init=False)

    def __post_init__(self) -> None:
        self.expires = self.claim.timestamp + self.claim.holdtime

    def live(self, now: float) -> bool:
        return self.expires > now


def _stale(claim: Claim, newest: CacheEntry | None) -> bool:
    return (
        newest is not None
        and claim.timestamp < newest.claim.timestamp
        and claim.timestamp + claim.holdtime <= newest.expires
    )


def _insort(order: list[CacheEntry], entry: CacheEntry) -> None:
    """Put ``entry`` in an expiry order after those expiring no later (as ``insort``):
    most arrivals are the newest claims and expire last, so they go at the end without a
    search."""
    if not order or order[-1].expires <= entry.expires:
        order.append(entry)
    else:
        insort(order, entry, key=_EXPIRES)


class ClaimCache:
    """Cached attributes by §11.1 identity, kept until expiry plus the §12.3 grace.

    Indexed, because a parent or a top-level domain caches thousands of attributes and the
    engine asks about a few of them on every input: by (Type, Origin Domain), the
    CHILD-role ones, and in order of expiry.  Not by Type alone: the claim types are most
    of a cache, the questions asked by Type alone are few (and memoized by the engine), and
    the index cost a twentieth of a large simulation's memory.  ``local`` (the node's own
    domain) picks the entries whose expiry changes something the engine reports (see
    :meth:`next_watched`); without it every entry is watched.
    """

    def __init__(self, grace: float, *, local: DomainId | None = None) -> None:
        self.grace = grace
        self.local = local
        self._entries: dict[Identity, CacheEntry] = {}
        # Short lists, not dicts: a node caches a few entries per origin and type, for
        # thousands of origins, and a dict per pair cost more than the entries.
        self._by_origin: dict[OriginKey, list[CacheEntry]] = {}
        # Only the CHILD role is asked for often (a parent's children's claims); a leaf
        # caches mostly its siblings', and an index of those cost more than it saved.
        self._children: dict[Identity, CacheEntry] = {}
        # All entries, and the watched ones, sorted by expiry, those expiring together in
        # the order they were cached (insort keeps equal keys in insertion order): the
        # entries themselves, not a (expires, seq, key) tuple each, which cost a tenth of
        # a large simulation's memory.
        self._expiry: list[CacheEntry] = []
        self._watched: list[CacheEntry] = []
        self._watched_version = 0  # bumped whenever _watched changes
        # (version, grace, valid from, valid until, answer) of the last next_watched.
        self._next_watched_memo: tuple[int, float, float, float, float | None] = (
            -1,
            0.0,
            0.0,
            0.0,
            None,
        )
        # Latest expiry among CHILD-role entries of other domains (never lowered: an entry
        # leaves the cache only once expired, so "some such entry is live" is exactly
        # "child_expiry > now").
        self.child_expiry = 0
        # Bumped whenever an entry that may free space arrives or an entry is dropped
        # before its time: anything but NEW_CLAIM / CLAIM_TO_EXPAND / PREFIX_IN_USE.
        self.room_version = 0
        self.version = 0  # bumped on every change
        # (claim, version, answer) of the last _newest_of_subject.
        self._newest_memo: tuple[Claim | None, int, CacheEntry | None] = (None, -1, None)
        # Bumped on every change that can change which cached claims hold room but a
        # claim's arrival (NEW_CLAIM, CLAIM_TO_EXPAND or PREFIX_IN_USE, superseding an
        # older entry or not) and purge's removals: a WITHDRAW's arrival (it releases the
        # claims it withdraws, §11.7) and an entry dropped before its time; not a
        # PREFIX_MANAGED's or CLAIM_DENIED's (neither holds room, and the engine marks
        # denied claims itself).  A view of the claims that ``on_claim`` keeps up to date,
        # and that ends where time would change it, stays exact until this moves
        # (engine._cache_taken).  Rebuilding such a view on every arrival was a third of
        # a 8,320-domain simulation, and on every parent's PREFIX_MANAGED a tenth.
        self.reshaped = 0
        self.on_claim: Callable[[CacheEntry, CacheEntry | None], None] | None = None
        self.role_versions: dict[Role, int] = {}  # bumped on every change of that role
        self.origin_versions: dict[DomainId, int] = {}  # ... of that origin domain
        # How many CHILD-role entries each origin domain has: a parent's children.
        self.child_domains: dict[DomainId, int] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[CacheEntry]:
        return iter(list(self._entries.values()))

    def __contains__(self, claim: Claim) -> bool:
        return identity(claim) in self._entries

    def _newest_of_subject(self, claim: Claim) -> CacheEntry | None:
        """The cached entry of ``claim``'s subject with the latest timestamp, if any.  The
        last answer is kept while the cache is unchanged: the engine asks :meth:`stale` and
        then :meth:`add` about each claim it receives, and each look scans the cached
        claims of the claim's origin."""
        known, version, answer = self._newest_memo
        if known is claim and version == self.version:
            return answer
        found = [
            e
            for e in self.of_origin(claim.type, claim.origin_domain)
            if same_subject(claim, e.claim)
        ]
        answer = max(found, key=lambda e: e.claim.timestamp) if found else None
        self._newest_memo = (claim, self.version, answer)
        return answer

    def stale(self, claim: Claim) -> bool:
        """Whether :meth:`add` would refuse ``claim`` as an older copy arriving late: the
        newest cached entry of its subject is newer and holds at least as long (choice
        103)."""
        return _stale(claim, self._newest_of_subject(claim))

    def _is_watched(self, claim: Claim) -> bool:
        return (
            self.local is None
            or claim.origin_domain == self.local
            or claim.origin_role is Role.PARENT
            or claim.type is ClaimType.WITHDRAW
        )

    def add(self, entry: CacheEntry) -> bool:
        """Store ``entry``; False (and nothing stored) if it is a duplicate or stale.

        A renewal announces the same prefix again with a new timestamp, which makes a new
        §11.1 identity: kept side by side, a 30-day claim renewed every 48 hours would be
        cached 15 times over by every node that hears it (Appendix B), all saying the same
        thing.  So a newer entry of the same subject (:func:`same_subject`) that holds at
        least as long replaces the older one, and an older one arriving late (over a
        slower path) is stale: not stored, and so not passed on (docs/conformance.md
        choice 103)."""
        c = entry.claim
        key = identity(c)
        if key in self._entries:
            return False
        latest = self._newest_of_subject(c)
        if _stale(c, latest):
            return False  # the newer entry says all this one does
        superseded = None
        if (
            latest is not None
            and c.timestamp > latest.claim.timestamp
            and entry.expires >= latest.expires
        ):
            superseded = self._remove(identity(latest.claim))  # held no less long
        self._entries[key] = entry
        pair: OriginKey = (c.type, c.origin_domain)
        bucket = self._by_origin.get(pair)
        if bucket is None:
            # One key tuple per pair for the whole process, not one per cache holding it.
            self._by_origin[_ORIGIN_KEYS.setdefault(pair, pair)] = [entry]
        else:
            bucket.append(entry)
        if c.origin_role is Role.CHILD:
            self._children[key] = entry
        _insort(self._expiry, entry)
        if self._is_watched(c):
            _insort(self._watched, entry)
            self._watched_version += 1
        if c.origin_role is Role.CHILD and c.origin_domain != self.local:
            self.child_expiry = max(self.child_expiry, entry.expires)
        self._changed(c, +1)
        if c.type not in CLAIMS:
            self.room_version += 1
            if c.type is ClaimType.WITHDRAW:
                self.reshaped += 1
        elif self.on_claim is not None:
            self.on_claim(entry, superseded)
        return True

    def _changed(self, c: Claim, added: int) -> None:
        """Bump the versions an entry of ``c`` being added (+1) or removed (-1) changes."""
        self.version += 1
        self.role_versions[c.origin_role] = self.role_versions.get(c.origin_role, 0) + 1
        domain = c.origin_domain
        self.origin_versions[domain] = self.origin_versions.get(domain, 0) + 1
        if c.origin_role is Role.CHILD:
            left = self.child_domains.get(domain, 0) + added
            if left:
                self.child_domains[domain] = left
            else:
                del self.child_domains[domain]

    def get(self, claim: Claim) -> CacheEntry | None:
        return self._entries.get(identity(claim))

    def discard(self, claim: Claim) -> None:
        key = identity(claim)
        if key in self._entries:
            self._remove(key)
            self.room_version += 1
            self.reshaped += 1

    def _remove(self, key: Identity) -> CacheEntry:
        entry = self._entries[key]
        self._unindex(key, entry)
        watched = self._is_watched(entry.claim)
        if watched:
            self._watched_version += 1
        for order in (self._expiry, self._watched) if watched else (self._expiry,):
            # Look through the entries expiring together for this one: a few at most,
            # unless many claims carry the same timestamp and holdtime.
            i = bisect_left(order, entry.expires, key=_EXPIRES)
            while order[i] is not entry:
                i += 1
            del order[i]
        return entry

    def _unindex(self, key: Identity, entry: CacheEntry) -> None:
        """Take ``entry`` out of everything but the expiry orders (purge cuts those)."""
        c = entry.claim
        del self._entries[key]
        self._changed(c, -1)
        bucket = self._by_origin[(c.type, c.origin_domain)]
        del bucket[next(i for i, e in enumerate(bucket) if e is entry)]
        if not bucket:
            del self._by_origin[(c.type, c.origin_domain)]
        if c.origin_role is Role.CHILD:
            del self._children[key]

    def purge(self, now: float) -> list[CacheEntry]:
        """Forget entries past expiry plus grace (§12.3): only then is their space free.
        Returns them in expiry order (those expiring together in the order cached)."""
        gone = 0
        for entry in self._expiry:
            if entry.expires + self.grace > now:
                break
            gone += 1
        if not gone:
            return []
        # What is gone is where both orders begin: cut it off in one go each.
        removed = self._expiry[:gone]
        del self._expiry[:gone]
        watched = sum(1 for e in removed if self._is_watched(e.claim))
        if watched:
            del self._watched[:watched]
            self._watched_version += 1
        for entry in removed:
            self._unindex(identity(entry.claim), entry)
        return removed

    def next_purge(self) -> float | None:
        if not self._expiry:
            return None
        return self._expiry[0].expires + self.grace

    def next_watched(self, now: float) -> float | None:
        """The next moment a watched entry expires (Timestamp + Holdtime > now), or is due
        to be purged: each entry's ``expires`` if still live, else ``expires + grace``.
        The answer stays the same until the watched entries change or time reaches the
        first live one's expiry, and the engine asks after every input (its next
        deadline): it is kept until then."""
        version, grace, since, until, answer = self._next_watched_memo
        if version == self._watched_version and grace == self.grace and since <= now < until:
            return answer
        times: list[float] = []
        order = self._watched
        live_from = math.inf
        if order:
            if order[0].expires <= now:
                times.append(order[0].expires + self.grace)
            i = bisect_right(order, int(now), key=_EXPIRES)
            while i < len(order) and order[i].expires <= now:
                i += 1
            if i < len(order):
                live_from = float(order[i].expires)  # a float variable (compiled build)
                times.append(live_from)
        answer = min(times) if times else None
        self._next_watched_memo = (self._watched_version, self.grace, now, live_from, answer)
        return answer

    def held(self, now: float) -> Iterator[CacheEntry]:
        """Entries that still hold their space: not past expiry plus grace (§12.3)."""
        for entry in self._entries.values():
            if entry.expires + self.grace > now:
                yield entry

    def live(self, now: float) -> Iterator[CacheEntry]:
        """Entries that have not expired (Timestamp + Holdtime > now)."""
        for entry in self._entries.values():
            if entry.expires > now:
                yield entry

    def of_type(self, claim_type: ClaimType) -> Iterator[CacheEntry]:
        """Entries of one Type, in the order they were cached (live or not)."""
        for entry in self._entries.values():
            if entry.claim.type is claim_type:
                yield entry

    def of_origin(self, claim_type: ClaimType, domain: DomainId) -> Iterable[CacheEntry]:
        """Entries of one Type from one Origin Domain, in the order they were cached."""
        return self._by_origin.get((claim_type, domain), ())

    def of_role(self, role: Role) -> Iterable[CacheEntry]:
        """Entries of one (updated) Origin Role, in the order they were cached."""
        if role is Role.CHILD:
            return self._children.values()
        return [e for e in self._entries.values() if e.claim.origin_role is role]


# The key of a cache's expiry orders.
_EXPIRES: Final = attrgetter("expires")
