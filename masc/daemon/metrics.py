"""Prometheus exposition of the daemon's state: the MASC MIB's information, scraped over HTTP.

What is exposed follows the MALLOC working group's MASC MIB draft (draft-ietf-malloc-masc-mib):
the peer table (each session's §10 state and its message counters), our claims and the
claims cached from others (§5, §11.1), collisions (§5.1 c) and clashes (§12.4), the prefixes
the domain holds (§4.1) and the addresses in them, with RFC 2909 Appendix A's utilization of
the locally-allocated set.

Two rules shape the module:

* State is read at scrape time by a custom collector (``MascCollector``), never mirrored
  into metric objects as things happen: the engine and the runners stay free of metrics
  code, and a scrape shows exactly what ``mascctl show`` would.  The collector lives in its
  own ``CollectorRegistry`` (not prometheus_client's global one), so several daemons (and
  tests) in one process do not clash.
* The endpoint is served by trio, not by prometheus_client's threaded servers: the collector
  reads the claim engine's state, which only the trio thread may touch.  A scrape runs
  synchronously between two checkpoints, so it sees one consistent state.

The HTTP side is deliberately minimal (GET, one request per connection, ``Connection:
close``): a scraper needs no more, and less parsing is less to go wrong.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Final

import trio
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)

import masc
from masc.protocol.constants import ClaimType
from masc.protocol.events import SpaceKind
from masc.protocol.session import State
from masc.protocol.wire.messages import Prefix

if TYPE_CHECKING:
    from masc.daemon.main import Daemon

log = logging.getLogger("masc.metrics")

# Kind labels of the prefixes the domain holds (§4.1, §12.2).
_KIND: Final = {SpaceKind.DOMAIN: "managed", SpaceKind.LOCAL: "local"}
_OWN_CLAIM_TYPES: Final = (ClaimType.NEW_CLAIM, ClaimType.CLAIM_TO_EXPAND)

# HTTP limits: a scraper sends a few hundred bytes and reads the answer at once.
MAX_HEADER_BYTES: Final = 8192
CONNECTION_TIMEOUT: Final = 10.0
_MAX_CONNECTIONS: Final = 32  # served at once; more are closed unanswered
_DRAIN_GRACE: Final = 1.0  # after answering, read what the client still sends, then close
_READ_SIZE: Final = 4096

Family = GaugeMetricFamily | CounterMetricFamily | InfoMetricFamily


class MascCollector:
    """Builds every ``masc_*`` family from ``daemon``'s state at scrape time.

    ``collect`` is O(state): one pass over peers, claims, the claim cache, allocations and
    grants.  Each family is built whole by its own method; one that raises is logged with
    its traceback and left out, and the others still render (a scrape must not fail, nor
    take the daemon down, because of one bug).
    """

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def collect(self) -> Iterable[Metric]:
        now = self.daemon.domain.clock()
        builders: tuple[Callable[[float], list[Family]], ...] = (
            self._identity,
            self._peers,
            self._claims,
            self._counts,
            self._prefixes,
            self._addresses,
            self._reloads,
            self._grib,
        )
        for build in builders:
            try:
                families = build(now)
            except Exception:
                # Not a catch-all that hides a bug: it is logged with its traceback.  It
                # keeps the rest of the scrape (and the serving task) alive.
                log.exception(
                    "metrics: %s failed", build.__name__, extra={"event": "metrics_failed"}
                )
                continue
            yield from families

    # --- families ------------------------------------------------------------------------

    def _identity(self, now: float) -> list[Family]:
        daemon = self.daemon
        local = daemon.config.local
        info = InfoMetricFamily(
            "masc",
            "This masc node: software version, domain and node identifiers (§7.2 OPEN).",
            value={
                "version": masc.__version__,
                "domain_id": str(local.domain_id),
                "node_id": str(local.node_id),
            },
        )
        start = GaugeMetricFamily(
            "masc_start_time_seconds",
            "When the daemon started, Unix time.",
            value=daemon.started_at,
        )
        non_leaf = GaugeMetricFamily(
            "masc_non_leaf",
            "1 when the domain has children and claims its own space as a child (§12.2).",
            value=1.0 if daemon.engine.non_leaf else 0.0,
        )
        return [info, start, non_leaf]

    def _peers(self, now: float) -> list[Family]:
        by_state = GaugeMetricFamily(
            "masc_peers", "Peering sessions per §10 state.", labels=["state"]
        )
        up = GaugeMetricFamily(
            "masc_peer_up",
            "1 when the session is Established (§10).",
            labels=["peer", "relation", "domain_id"],
        )
        messages = CounterMetricFamily(
            "masc_peer_messages",
            "MASC messages per session, direction and type (§7).",
            labels=["peer", "direction", "type"],
        )
        flaps = CounterMetricFamily(
            "masc_peer_flaps",
            "Times the session left Established.",
            labels=["peer"],
        )
        limited = CounterMetricFamily(
            "masc_peer_limit_drops",
            "Claims and UPDATEs not believed because the peer exceeded its limits (§14).",
            labels=["peer"],
        )
        resets = CounterMetricFamily(
            "masc_peer_limit_resets",
            "Sessions closed because the peer exceeded a limit (§14).",
            labels=["peer"],
        )
        states: Counter[State] = Counter()
        for peer, runner in self.daemon.peer_rows():
            session = runner.session
            state = session.state
            states[state] += 1
            up.add_metric(
                [runner.key, peer.relation.value, str(peer.domain_id)],
                1.0 if state is State.ESTABLISHED else 0.0,
            )
            stats = session.stats
            for direction, counts in (("in", stats.messages_in), ("out", stats.messages_out)):
                for name, count in counts.items():
                    messages.add_metric([runner.key, direction, name], count)
            flaps.add_metric([runner.key], stats.flaps)
            limited.add_metric([runner.key], stats.limit_drops)
            resets.add_metric([runner.key], stats.limit_resets)
        for state in State:  # every state, zeros included: a series must not vanish
            by_state.add_metric([state.value], states[state])
        return [by_state, up, messages, flaps, limited, resets]

    def _claims(self, now: float) -> list[Family]:
        engine = self.daemon.engine
        claims: Counter[tuple[str, str]] = Counter()
        for own in _OWN_CLAIM_TYPES:
            claims[own.name, "scheduled"] += 0
            claims[own.name, "pending"] += 0
        for claim_type in ClaimType:
            claims[claim_type.name, "cached"] += 0
        for scheduled in engine.scheduled:
            claims[scheduled.claim_type.name, "scheduled"] += 1
        for pending in engine.pending:
            claims[pending.claim.type.name, "pending"] += 1
        for entry in engine.cache.live(now):
            claims[entry.claim.type.name, "cached"] += 1
        family = GaugeMetricFamily(
            "masc_claims",
            "Our claims scheduled (§5.1 a) or pending (Claim-Timer running, §5.1 b), and "
            "live claim-cache entries per type (§11.1).",
            labels=["type", "state"],
        )
        for (type_name, state), count in sorted(claims.items()):
            family.add_metric([type_name, state], count)
        pending_clashes = sum(c.state == "pending" for c in engine.clashes.values())
        clashes = GaugeMetricFamily(
            "masc_clashes_pending",
            "Clashes (§12.4) waiting for the operator (clash_resolution = manual).",
            value=pending_clashes,
        )
        child_prefixes = GaugeMetricFamily(
            "masc_child_prefixes",
            "Distinct (child domain, prefix) pairs in use by child domains (§11.1 cache).",
            value=len(engine.child_prefixes(now=now)),
        )
        return [family, clashes, child_prefixes]

    def _grib(self, now: float) -> list[Family]:
        grib = self.daemon.grib
        size = GaugeMetricFamily(
            "masc_grib_prefixes",
            "Prefixes in the domain's G-RIB set (RFC 2909 §3, §5.1 d); docs/grib.md).",
            value=len(grib.prefixes),
        )
        in_sync = GaugeMetricFamily(
            "masc_grib_exporter_in_sync",
            "1 when the exporter's last sync left its target equal to the G-RIB set.",
            labels=["exporter"],
        )
        failures = CounterMetricFamily(
            "masc_grib_exporter_failures",
            "Syncs of the exporter that failed (read, change or verification).",
            labels=["exporter"],
        )
        for status in grib.statuses:
            in_sync.add_metric([status.name], float(status.in_sync))
            failures.add_metric([status.name], status.failures)
        return [size, in_sync, failures]

    def _counts(self, now: float) -> list[Family]:
        counts = self.daemon.domain.counts  # engine events since start, by kind
        sent = CounterMetricFamily(
            "masc_claims_sent", "Claims this node originated (§5.1).", labels=["type"]
        )
        sent_by_type: Counter[str] = Counter({t.name: 0 for t in _OWN_CLAIM_TYPES})
        gone = CounterMetricFamily(
            "masc_prefixes_gone",
            "Prefixes the domain stopped holding, per reason.",
            labels=["reason"],
        )
        gone_by_reason: Counter[str] = Counter()
        for key, value in counts.items():
            if key.startswith("claims_sent:"):
                sent_by_type[key.removeprefix("claims_sent:")] += value
            elif key.startswith("gone:"):
                gone_by_reason[key.removeprefix("gone:")] += value
        for type_name, value in sorted(sent_by_type.items()):
            sent.add_metric([type_name], value)
        for reason, value in sorted(gone_by_reason.items()):
            gone.add_metric([reason], value)
        return [
            sent,
            CounterMetricFamily(
                "masc_collisions",
                "Claims of ours cancelled because another domain's claim won (§5.1 c).",
                value=counts["collisions"],
            ),
            CounterMetricFamily(
                "masc_claim_denials",
                "Claims of ours cancelled by a parent's CLAIM_DENIED (§8.3).",
                value=counts["denials"],
            ),
            CounterMetricFamily(
                "masc_clashes",
                "Clashes detected: a sibling's PREFIX_IN_USE beat one of our prefixes (§12.4).",
                value=counts["clashes"],
            ),
            CounterMetricFamily(
                "masc_prefixes_allocated",
                "Prefixes allocated to the domain (§5.1 d), renewals and restores included.",
                value=counts["allocated"],
            ),
            CounterMetricFamily(
                "masc_prefixes_deprecated",
                "Prefixes no longer renewed, left to expire (§17.1.4, §17.1.5).",
                value=counts["deprecated"],
            ),
            gone,
        ]

    def _prefixes(self, now: float) -> list[Family]:
        held: Counter[tuple[str, str]] = Counter(
            {(kind, state): 0 for kind in _KIND.values() for state in ("active", "deprecated")}
        )
        for alloc in self.daemon.engine.allocations.values():
            if alloc.expires > now:
                held[_KIND[alloc.kind], "active" if alloc.renewing else "deprecated"] += 1
        family = GaugeMetricFamily(
            "masc_prefixes",
            "Prefixes the domain holds (§4.1): managed (claimed from a parent or the global "
            "pool) or local (a non-leaf domain's own, §12.2); deprecated = not renewed.",
            labels=["kind", "state"],
        )
        for (kind, state), count in sorted(held.items()):
            family.add_metric([kind, state], count)
        return [family]

    def _addresses(self, now: float) -> list[Family]:
        daemon = self.daemon
        engine = daemon.engine
        managed = _size(engine.managed_space(now=now))
        local = _size(engine.local_space(now=now))
        granted = _size(g.prefix for g in daemon.grants.grants())
        # What the MAASs last reported in use (not stored: 0 after a restart until they
        # report), the figure `show summary` gives too.
        in_use = daemon.grants.demand().in_use
        addresses = GaugeMetricFamily(
            "masc_addresses",
            "Addresses: managed set and locally-allocated set (§4.1, withdrawn ranges "
            "excluded), granted to MAASs, and in use as the MAASs report.",
            labels=["kind"],
        )
        for kind, value in (
            ("managed", managed),
            ("local", local),
            ("granted", granted),
            ("in_use", in_use),
        ):
            addresses.add_metric([kind], value)
        utilization = GaugeMetricFamily(
            "masc_utilization",
            "Addresses in use / the locally-allocated set (RFC 2909 Appendix A); 0 when empty.",
            value=in_use / local if local else 0.0,
        )
        return [addresses, utilization]

    def _reloads(self, now: float) -> list[Family]:
        family = CounterMetricFamily(
            "masc_reloads", "Configuration reloads, per result.", labels=["result"]
        )
        family.add_metric(["ok"], self.daemon.reloads)
        family.add_metric(["failed"], self.daemon.reload_failures)
        return [family]


def _size(prefixes: Iterable[Prefix]) -> int:
    return sum(p.num_addresses for p in prefixes)


def metrics_registry(daemon: Daemon) -> CollectorRegistry:
    """A registry of its own holding ``daemon``'s collector (never the global REGISTRY)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MascCollector(daemon))
    return registry


# --- HTTP ----------------------------------------------------------------------------------


async def serve_metrics(
    registry: CollectorRegistry,
    host: str,
    port: int,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``GET /metrics`` on ``host`` (only) and ``port`` until cancelled.

    ``task_status.started`` gets the bound port (the one chosen when ``port`` is 0)."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = int(listeners[0].socket.getsockname()[1])
    log.info(
        "metrics on http://%s/metrics",
        _authority(host, bound),
        extra={"event": "metrics_listening", "address": host, "port": bound},
    )
    limiter = _Slots(_MAX_CONNECTIONS)
    task_status.started(bound)
    await trio.serve_listeners(partial(_connection, registry, limiter), listeners)


class _Slots:
    """Connections served at once (a plain counter: a refused one is simply closed)."""

    def __init__(self, size: int) -> None:
        self.free = size


async def _connection(
    registry: CollectorRegistry, slots: _Slots, stream: trio.SocketStream
) -> None:
    if slots.free <= 0:
        log.debug("metrics: too many connections; closing one", extra={"event": "metrics_busy"})
        await trio.aclose_forcefully(stream)
        return
    slots.free -= 1
    try:
        # The whole exchange has one deadline, send_all included: cancelling a send is
        # harmless here because nothing follows it but closing the connection.
        with trio.move_on_after(CONNECTION_TIMEOUT) as timed_out:
            await _exchange(registry, stream)
        if timed_out.cancelled_caught:
            log.debug("metrics: connection timed out", extra={"event": "metrics_timeout"})
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as error:
        log.debug("metrics: connection failed: %s", error, extra={"event": "metrics_io"})
    finally:
        slots.free += 1
        await trio.aclose_forcefully(stream)


async def _exchange(registry: CollectorRegistry, stream: trio.SocketStream) -> None:
    try:
        head = await _read_head(stream)
    except _TooLarge:
        log.debug("metrics: request head over %d bytes", MAX_HEADER_BYTES)
        answer = _plain("431 Request Header Fields Too Large", "request too large")
    else:
        if head is None:  # EOF before any request: nothing to answer
            return
        answer = _respond(registry, head)
    status, content_type, body, extra = answer
    lines = [
        f"HTTP/1.1 {status}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *extra,
    ]
    await stream.send_all(("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body)
    await stream.send_eof()
    # Read what the client still sends before closing, so that unread bytes do not turn
    # the close into a reset that could destroy the answer in flight.
    with trio.move_on_after(_DRAIN_GRACE):
        while await stream.receive_some(_READ_SIZE):
            pass


class _TooLarge(Exception):
    pass


async def _read_head(stream: trio.SocketStream) -> bytes | None:
    """The request line and headers; None at EOF before any byte.  A head cut short by EOF
    is returned as it is (and answered 400 if it does not parse)."""
    buffer = bytearray()
    while True:
        # Bare-LF line ends are accepted too (RFC 9112 §2.2 allows it).
        ends = [i for i in (buffer.find(b"\r\n\r\n"), buffer.find(b"\n\n")) if i >= 0]
        if ends:
            return bytes(buffer[: min(ends)])
        if len(buffer) > MAX_HEADER_BYTES:
            raise _TooLarge
        data = await stream.receive_some(_READ_SIZE)
        if not data:
            return bytes(buffer) if buffer else None
        buffer += data


_Answer = tuple[str, str, bytes, list[str]]  # status, content type, body, extra headers


def _plain(status: str, text: str, *extra: str) -> _Answer:
    return status, "text/plain; charset=utf-8", text.encode("ascii") + b"\n", list(extra)


def _respond(registry: CollectorRegistry, head: bytes) -> _Answer:
    """The answer to one request head."""
    line = head.split(b"\n", 1)[0].rstrip(b"\r")
    parts = line.split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1.") or not parts[1]:
        log.debug("metrics: bad request line %r", line[:80], extra={"event": "metrics_bad"})
        return _plain("400 Bad Request", "bad request")
    method, target = parts[0], parts[1].split(b"?", 1)[0]
    if method != b"GET":
        return _plain("405 Method Not Allowed", "method not allowed", "Allow: GET")
    if target == b"/metrics":
        try:
            body = generate_latest(registry)
        except Exception:
            # The collector already isolates each family; this is a bug in the rest of the
            # scrape, logged with its traceback and answered as a server error.
            log.exception("metrics: scrape failed", extra={"event": "metrics_failed"})
            return _plain("500 Internal Server Error", "scrape failed")
        return "200 OK", CONTENT_TYPE_LATEST, body, []
    if target == b"/":
        page = b'<html><body><a href="/metrics">masc metrics</a></body></html>\n'
        return "200 OK", "text/html; charset=utf-8", page, []
    return _plain("404 Not Found", "not found; try /metrics")


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
