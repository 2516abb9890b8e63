"""The MAAS socket: where the domain's MAASs (MADCAP servers) get their address space.

RFC 2908 (§3, the three-layer architecture) has MASC (RFC 2909) win address space for a
domain and the domain's MAASs lease addresses from it to hosts (RFC 2730).  The layer between
them, an intra-domain protocol that splits the domain's space among its MAASs, was
withdrawn; this Unix socket does that job for MAASs running on the daemon's host.  The
protocol is in masc/api/maas.py and docs/maas-api.md; what it does with requests (the grant
table, the claim engine) is behind :class:`MaasBackend`.

Theory of operation.  Each client is a :class:`MaasConnection` with two tasks:

* the reader takes one line at a time, answers it (awaiting the backend when it must: the
  real backend waits for the task that owns the claim engine) and queues the answer, so the
  answers on one connection come in the order of the requests while other connections go on;
* the writer sends what is queued.  The backend pushes events through
  :meth:`MaasConnection.push`, which queues them on the same bounded queue and never blocks.

Back-pressure: the reader does not read the next request while the queue is half full, so a
client that sends many requests and reads slowly is slowed down, not dropped, and the other
half stays free for events.  A client that lets the queue fill anyway does not read at all;
it is disconnected with a warning rather than allowed to hold memory or stall the backend.

Policy (the RFCs leave local access to the implementation): permissions on the socket file
decide who may connect (default mode 0660, group configurable); every verb but ``register``
needs a registered name; one live connection per name; a registered MAAS may stay connected
and silent for as long as it likes (it is waiting for events), an unregistered one is let go
after IDLE_TIMEOUT.  When a connection closes, the backend is told (``unregister``); the
grants stay with the name, so a MAAS that restarts finds its space again.
"""

from __future__ import annotations

import logging
import math
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final, Protocol

import trio
from pydantic import BaseModel, ValidationError

from masc.api.maas import (
    MAX_LINE_BYTES,
    ErrorInfo,
    GrantInfo,
    MaasError,
    MaasEvent,
    NoArgs,
    RegisterArgs,
    RegisterResult,
    Request,
    RequestArgs,
    RequestResult,
    Response,
    SpaceResult,
    SubscribeResult,
    UsageReport,
    UsageResult,
)
from masc.daemon.ndjson import (
    TOO_LARGE,
    LineReader,
    Oversized,
    RequestError,
    load_json,
    serve_unix,
    validate,
)

log = logging.getLogger("masc.maas")

SOCKET_MODE: Final = 0o660
MAX_CLIENTS: Final = 64
IDLE_TIMEOUT: Final = 300.0  # seconds an unregistered client may stay without a request
QUEUE_LINES: Final = 1024  # answers and events waiting to be sent, per connection
DRAIN_TIMEOUT: Final = 5.0  # seconds to flush answers to a client that has stopped sending
_WRITE_BATCH: Final = 64  # queued lines sent with one send_all


class MaasBackend(Protocol):
    """What the MAAS server needs from the daemon.

    The async methods may wait (for the claim engine's task) and may be cancelled at any
    await, when their client disconnects.  A method that cannot do what was asked raises
    :class:`~masc.api.maas.MaasError` with a code of ``ERROR_CODES`` (``no_space`` ...);
    any other exception is a bug, logged and answered with ``internal``.
    """

    def identity(self) -> dict[str, Any]:
        """``domain_id`` (int), ``node_id`` (str) and ``address_family`` ("ipv4"/"ipv6")."""
        ...

    async def register(
        self, name: str, scopes: list[str], connection: MaasConnection
    ) -> list[GrantInfo]:
        """``name`` is now served on ``connection`` (push its events there); its grants."""
        ...

    def unregister(self, name: str, connection: MaasConnection) -> None:
        """``connection`` closed.  Called once after a successful ``register`` (or one the
        closing interrupted), never after one that raised."""
        ...

    def grants(self, name: str) -> list[GrantInfo]: ...

    async def report_usage(self, name: str, usage: UsageReport) -> None: ...

    async def request(self, name: str, size: int) -> RequestResult: ...


class MaasConnection:
    """One client of the MAAS socket, as the backend sees it: push events here."""

    def __init__(self, server: MaasServer, stream: trio.SocketStream, number: int) -> None:
        self._server = server
        self._stream = stream
        self.label = f"#{number} ({_peer_credentials(stream)})"
        self._name: str | None = None  # set while registering, kept once registered
        self._registered = False
        self.subscribed = False
        self._send, self._receive = trio.open_memory_channel[bytes](server.queue_lines)
        self._sent = trio.Event()  # set by the writer after each send: room may have freed
        self._scope = trio.CancelScope()
        self._dropped = False
        self._verbs: dict[str, tuple[type[BaseModel], Callable[[Any], Awaitable[BaseModel]]]] = {
            "register": (RegisterArgs, self._register),
            "space": (NoArgs, self._space),
            "subscribe": (NoArgs, self._subscribe),
            "usage": (UsageReport, self._usage),
            "request": (RequestArgs, self._request),
        }

    @property
    def name(self) -> str | None:
        """The registered name, or None."""
        return self._name if self._registered else None

    def push(self, event: MaasEvent) -> None:
        """Queue ``event`` for this client if it subscribed and the event is for its name.

        Never blocks: a client whose queue is full does not read, and is disconnected.
        """
        if not self.subscribed or self._dropped or event.maas != self.name:
            return
        self._enqueue(event.model_dump_json().encode() + b"\n")

    # --- the connection's life ----------------------------------------------------------------

    async def run(self) -> None:
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._write)
                    await self._read()
                    # The client stopped sending: free its name now, flush what it is owed.
                    self._release()
                    self._send.close()
                    # The writer ends when the queue is empty.  A client that half-closed and
                    # never reads would keep it waiting, so it gets DRAIN_TIMEOUT; cutting a
                    # send_all short is harmless here because the stream is closed next.
                    nursery.cancel_scope.deadline = trio.current_time() + DRAIN_TIMEOUT
        finally:
            self._dropped = True
            self._release()

    async def _read(self) -> None:
        reader = LineReader(self._stream, MAX_LINE_BYTES)
        idle_timeout = self._server.idle_timeout
        idle_deadline = trio.current_time() + idle_timeout
        while True:
            line: bytes | Oversized | None = None
            with trio.move_on_at(math.inf if self._registered else idle_deadline) as idle:
                # Both cancel-safe; an unregistered client that neither reads nor sends a
                # good request is let go too.
                await self._wait_for_room()
                line = await reader.receive_line()
            if idle.cancelled_caught:
                log.info(
                    "maas client %s unregistered and idle for %.0fs; closing",
                    self.label,
                    idle_timeout,
                    extra={"event": "maas_idle", "client": self.label},
                )
                return
            if line is None:
                return  # end of stream
            self._enqueue(await self._respond(line))
            idle_deadline = trio.current_time() + idle_timeout
            # A client pipelining many requests must not keep other connections waiting.
            await trio.lowlevel.checkpoint()

    async def _wait_for_room(self) -> None:
        """Wait until at most half the queue is used (back-pressure on requests)."""
        while self._send.statistics().current_buffer_used > self._server.queue_lines // 2:
            self._sent = trio.Event()
            await self._sent.wait()

    async def _write(self) -> None:
        while True:
            try:
                batch = [await self._receive.receive()]
            except trio.EndOfChannel:
                return
            while len(batch) < _WRITE_BATCH:
                try:
                    batch.append(self._receive.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            try:
                await self._stream.send_all(b"".join(batch))
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                self._scope.cancel()  # the client is gone
                return
            self._sent.set()

    def _enqueue(self, line: bytes) -> None:
        try:
            self._send.send_nowait(line)
        except trio.WouldBlock:
            self._dropped = True
            log.warning(
                "maas client %s%s does not read: %d messages unsent; disconnecting it",
                self.label,
                f" ({self._name})" if self._name else "",
                self._server.queue_lines,
                extra={"event": "maas_slow_client", "client": self.label, "maas": self._name},
            )
            self._scope.cancel()
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass  # closing: nobody to tell

    def _release(self) -> None:
        """Forget the name (and tell the backend if it had it); safe to call twice."""
        name = self._name
        if name is None:
            return
        self._name, self._registered, self.subscribed = None, False, False
        if self._server.names.get(name) is self:
            del self._server.names[name]
        try:
            self._server.backend.unregister(name, self)
        except Exception:
            log.exception("maas backend unregister(%r) failed", name, extra={"event": "bug"})
        log.info(
            "maas %s unregistered (client %s)",
            name,
            self.label,
            extra={"event": "maas_unregistered", "maas": name, "client": self.label},
        )

    # --- requests ------------------------------------------------------------------------------

    async def _respond(self, line: bytes | Oversized) -> bytes:
        """One request line in, one response line out (with its newline)."""
        request_id: int | None = None
        try:
            if line is TOO_LARGE:
                raise RequestError(
                    "too_large", f"request line longer than {MAX_LINE_BYTES} bytes; discarded"
                )
            raw = load_json(line)
            if not isinstance(raw, dict):
                raise RequestError("bad_request", 'a request is a JSON object: {"id": ...}')
            if type(raw.get("id")) is int:
                request_id = raw["id"]  # echo it even when the rest is wrong
            request = validate(Request, raw)
            entry = self._verbs.get(request.verb)
            if entry is None:
                raise RequestError(
                    "unknown_verb",
                    f"unknown verb {request.verb!r}; known: {', '.join(self._verbs)}",
                )
            model, handler = entry
            if request.verb != "register" and not self._registered:
                raise RequestError("not_registered", f"{request.verb!r} needs `register` first")
            args = validate(model, request.args, where="args")
            try:
                result = await handler(args)
            except MaasError as error:
                raise RequestError(error.code, error.message) from None
            except Exception:
                # A bug behind one request must not take the daemon down: log it loudly,
                # answer the client, carry on.
                log.exception(
                    "maas verb %r failed",
                    request.verb,
                    extra={"event": "bug", "client": self.label, "maas": self._name},
                )
                raise RequestError("internal", f"internal error in {request.verb!r}") from None
            response = Response(id=request_id, ok=True, result=result.model_dump(mode="json"))
        except RequestError as error:
            log.debug(
                "maas client %s: %s: %s",
                self.label,
                error.code,
                error,
                extra={"event": "maas_request_error", "client": self.label, "code": error.code},
            )
            response = Response(id=request_id, ok=False, error=_error_info(error))
        return response.model_dump_json().encode() + b"\n"

    async def _register(self, args: RegisterArgs) -> RegisterResult:
        names = self._server.names
        if self._name is not None and self._name != args.name:
            raise MaasError(
                "bad_request",
                f"this connection is registered as {self._name!r}; "
                f"use another connection for {args.name!r}",
            )
        holder = names.get(args.name)
        if holder is not None and holder is not self:
            raise MaasError(
                "name_in_use",
                f"{args.name!r} is registered by another connection, client {holder.label}; "
                "one connection per MAAS name",
            )
        first = self._name is None
        names[args.name] = self  # reserved while the backend registers it
        self._name = args.name
        try:
            grants = await self._server.backend.register(args.name, list(args.scopes), self)
        except Exception:
            if first:  # the backend refused: nothing to unregister
                del names[args.name]
                self._name = None
            raise
        self._registered = True
        if first:
            log.info(
                "maas %s registered (client %s, scopes %s)",
                args.name,
                self.label,
                ",".join(args.scopes) or "-",
                extra={"event": "maas_registered", "maas": args.name, "client": self.label},
            )
        identity = self._server.backend.identity()
        return RegisterResult.model_validate({**identity, "name": args.name, "grants": grants})

    def _registered_name(self) -> str:
        assert self._registered and self._name is not None  # checked in _respond
        return self._name

    async def _space(self, args: NoArgs) -> SpaceResult:
        return SpaceResult(grants=self._server.backend.grants(self._registered_name()))

    async def _subscribe(self, args: NoArgs) -> SubscribeResult:
        # No await between the snapshot and queuing the answer: every change after the
        # snapshot arrives as an event after the answer.
        grants = self._server.backend.grants(self._registered_name())
        self.subscribed = True
        return SubscribeResult(grants=grants)

    async def _usage(self, args: UsageReport) -> UsageResult:
        await self._server.backend.report_usage(self._registered_name(), args)
        return UsageResult()

    async def _request(self, args: RequestArgs) -> RequestResult:
        return await self._server.backend.request(self._registered_name(), args.size)


class MaasServer:
    """The MAAS socket at ``path``: ``mode`` (default 0660) and ``group`` (name or gid)
    decide which local users may act as MAASs."""

    def __init__(
        self,
        backend: MaasBackend,
        path: Path,
        mode: int = SOCKET_MODE,
        group: str | int | None = None,
        *,
        max_clients: int = MAX_CLIENTS,
        idle_timeout: float = IDLE_TIMEOUT,
        queue_lines: int = QUEUE_LINES,
    ) -> None:
        self.backend = backend
        self.path = Path(path)
        self.mode = mode
        self.group = group
        self.max_clients = max_clients
        self.idle_timeout = idle_timeout
        self.queue_lines = queue_lines
        self.names: dict[str, MaasConnection] = {}  # registered (or registering) names
        self._accepted = 0

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; ready (socket bound, mode and group set) at ``started``."""
        busy = Response(
            id=None,
            ok=False,
            error=ErrorInfo(code="busy", message="too many MAAS clients; try again later"),
        )
        await serve_unix(
            self.path,
            self._client,
            mode=self.mode,
            group=self.group,
            max_clients=self.max_clients,
            busy_line=busy.model_dump_json().encode() + b"\n",
            logger=log,
            name="maas",
            task_status=task_status,
        )

    async def _client(self, stream: trio.SocketStream) -> None:
        self._accepted += 1
        await MaasConnection(self, stream, self._accepted).run()


def _error_info(error: RequestError) -> ErrorInfo:
    try:
        return ErrorInfo.model_validate({"code": error.code, "message": str(error)})
    except ValidationError:
        log.error("maas backend raised unknown error code %r", error.code, extra={"event": "bug"})
        return ErrorInfo(code="internal", message=f"{error.code}: {error}")


def _peer_credentials(stream: trio.SocketStream) -> str:
    """``pid 123 uid 1000`` of the client process (Linux SO_PEERCRED), for the logs."""
    try:
        raw = stream.socket.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
    except (OSError, AttributeError):
        return "peer unknown"
    pid, uid, _gid = struct.unpack("3i", raw)
    return f"pid {pid} uid {uid}"
