"""A trio client of the daemon's MAAS socket, for MAAS implementations, tools and tests.

    async with open_maas_client("/run/masc/maas.sock") as maas:
        hello = await maas.register("madcap-a", ["global"])
        grants = await maas.subscribe()          # the current grants; changes arrive as events
        await maas.report_usage(in_use=40, rate=0.001)
        async for event in maas.events():
            ...

The protocol is in masc/api/maas.py and docs/maas-api.md.  One connection carries
requests from any number of tasks: a reader task matches responses to requests by ``id`` and
puts pushed events on a channel that :meth:`MaasClient.events` reads, a writer task sends
requests whole, so a caller that is cancelled mid-request never leaves half a line behind.

Every failure is a :class:`MaasError` with a stable ``code``: the server's error codes, and
``permission_denied`` / ``unavailable`` (the socket cannot be opened), ``disconnected`` (the
daemon went away), ``bad_response`` (it spoke something else, e.g. another format version).
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final, TypeVar

import trio
from pydantic import BaseModel, ValidationError

from masc.api.maas import (
    FORMAT_VERSION,
    MAX_LINE_BYTES,
    GrantInfo,
    MaasError,
    MaasEvent,
    RegisterResult,
    RequestResult,
    Response,
    SpaceResult,
    SubscribeResult,
)
from masc.protocol.wire.messages import Prefix

__all__ = ["MaasClient", "MaasError", "open_maas_client"]

log = logging.getLogger("masc.maas.client")
M = TypeVar("M", bound=BaseModel)

_MAX_RESPONSE_BYTES: Final = 16 * 1024 * 1024  # a line the daemon would never send
_RECEIVE_BYTES: Final = 65536


@asynccontextmanager
async def open_maas_client(path: str | os.PathLike[str]) -> AsyncIterator[MaasClient]:
    """Connect to the MAAS socket at ``path``; closed when the block ends.

    Raises ``MaasError("permission_denied")`` when this user may not open the socket and
    ``MaasError("unavailable")`` when no daemon listens there.
    """
    where = os.fspath(path)
    try:
        stream = await trio.open_unix_socket(where)
    except PermissionError as error:
        raise MaasError(
            "permission_denied",
            f"cannot connect to the MAAS socket {where}: {error.strerror}; the user running "
            "this MAAS must be in the socket's group (the daemon's [maas] group; "
            f"`ls -l {where}` shows it) or the socket's mode must let it in",
        ) from error
    except OSError as error:  # FileNotFoundError, ConnectionRefusedError (a stale file), ...
        raise MaasError(
            "unavailable",
            f"no masc daemon is listening on the MAAS socket {where} "
            f"({error.strerror or error}); start it with `masc run` and check that "
            "`[maas] socket` in its configuration names this path",
        ) from error
    client = MaasClient(stream, where)
    try:
        async with stream, trio.open_nursery() as nursery:
            nursery.start_soon(client._read)
            nursery.start_soon(client._write)
            try:
                yield client
            finally:
                client._close()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # The reader and writer never raise, so the group holds what the caller's block
        # raised: give it back unwrapped, as a context manager without tasks would.
        if len(group.exceptions) != 1:
            raise
        raise group.exceptions[0] from None


class _Pending:
    __slots__ = ("done", "failure", "response")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.response: Response | None = None
        self.failure: MaasError | None = None


class MaasClient:
    """One connection to the MAAS socket.  Use :func:`open_maas_client` to get one."""

    def __init__(self, stream: trio.SocketStream, path: str) -> None:
        self._stream = stream
        self.path = path
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._failure: MaasError | None = None
        self._outgoing_send, self._outgoing = trio.open_memory_channel[bytes](64)
        # Unbounded: events are few (grant changes), and a full channel would stop the
        # reader and with it every response.
        self._events_send, self._events = trio.open_memory_channel[MaasEvent](math.inf)

    # --- the verbs -------------------------------------------------------------------------

    async def register(self, name: str, scopes: Sequence[str] = ()) -> RegisterResult:
        """Serve as ``name`` on this connection; the domain's identity and this name's grants.
        Grants belong to the name, so use the same name after a restart."""
        result = await self.call("register", {"name": name, "scopes": list(scopes)})
        return self._parse(RegisterResult, result)

    async def space(self) -> list[GrantInfo]:
        """The address sets this MAAS may use now."""
        return self._parse(SpaceResult, await self.call("space")).grants

    async def subscribe(self) -> list[GrantInfo]:
        """Start events on this connection; the grants at that moment (later changes arrive
        as events, see :meth:`events`)."""
        return self._parse(SubscribeResult, await self.call("subscribe")).grants

    async def report_usage(
        self,
        in_use: int,
        rate: float = 0.0,
        by_prefix: Mapping[Prefix | str, int] | None = None,
    ) -> None:
        """Addresses leased now, their growth per second, and the split per granted prefix:
        the daemon claims ahead of this demand."""
        args = {
            "in_use": in_use,
            "rate": rate,
            "by_prefix": {str(prefix): count for prefix, count in (by_prefix or {}).items()},
        }
        await self.call("usage", args)

    async def request(self, size: int) -> RequestResult:
        """Ask for ``size`` more addresses now.  What cannot be granted at once is
        ``outstanding`` and arrives later as a ``granted`` event."""
        return self._parse(RequestResult, await self.call("request", {"size": size}))

    def events(self) -> AsyncIterator[MaasEvent]:
        """Events pushed after :meth:`subscribe`, in order.  Ends when the client closes;
        raises ``MaasError("disconnected")`` if the daemon goes away."""
        return _Events(self)

    async def call(self, verb: str, args: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Send one request and return its ``result``; MaasError for an error response."""
        self._raise_if_failed()
        request_id = next(self._ids)
        line = json.dumps({"id": request_id, "verb": verb, "args": dict(args or {})}).encode()
        if len(line) > MAX_LINE_BYTES:
            raise MaasError(
                "too_large", f"request of {len(line)} bytes; the limit is {MAX_LINE_BYTES}"
            )
        pending = self._pending[request_id] = _Pending()
        try:
            await self._outgoing_send.send(line + b"\n")
            await pending.done.wait()
        finally:
            self._pending.pop(request_id, None)
        if pending.failure is not None:
            raise MaasError(pending.failure.code, pending.failure.message)
        response = pending.response
        assert response is not None
        if not response.ok:
            error = response.error
            if error is None:
                raise MaasError("bad_response", f"error response to {verb!r} without an error")
            raise MaasError(error.code, error.message)
        return response.result or {}

    # --- the connection --------------------------------------------------------------------

    async def _read(self) -> None:
        buffer = bytearray()
        try:
            while True:
                try:
                    data = await self._stream.receive_some(_RECEIVE_BYTES)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as error:
                    raise self._disconnected(str(error)) from None
                if not data:
                    raise self._disconnected("the daemon closed the connection")
                buffer += data
                while (end := buffer.find(b"\n")) >= 0:
                    line = bytes(buffer[:end])
                    del buffer[: end + 1]
                    self._dispatch(line)
                if len(buffer) > _MAX_RESPONSE_BYTES:
                    raise MaasError("bad_response", "the daemon sent an endless line")
        except MaasError as error:
            self._fail(error)

    async def _write(self) -> None:
        async for line in self._outgoing:
            try:
                await self._stream.send_all(line)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as error:
                self._fail(self._disconnected(str(error)))
                return

    def _dispatch(self, line: bytes) -> None:
        """One line from the daemon: a response to a pending request, or an event."""
        try:
            raw = json.loads(line)
        except (ValueError, RecursionError) as error:
            raise MaasError(
                "bad_response", f"the daemon sent a line that is not JSON: {error}"
            ) from None
        if not isinstance(raw, dict):
            raise MaasError("bad_response", "the daemon sent JSON that is not an object")
        version = raw.get("format_version")
        if version != FORMAT_VERSION:
            raise MaasError(
                "bad_response",
                f"the daemon speaks MAAS API format {version}, this client {FORMAT_VERSION}",
            )
        if "event" in raw:
            try:
                event = MaasEvent.model_validate(raw)
            except ValidationError:
                # Events may be added within a format version: skip one we do not know.
                log.debug("skipping unknown MAAS event %r", raw.get("event"))
                return
            self._events_send.send_nowait(event)
            return
        response = self._parse(Response, raw)
        pending = None if response.id is None else self._pending.get(response.id)
        if pending is not None:
            pending.response = response
            pending.done.set()
        elif not response.ok and response.error is not None:
            # An error tied to no request (busy): the daemon closes the connection next.
            raise MaasError(response.error.code, response.error.message)
        # else: the answer to a request whose caller was cancelled

    def _parse(self, model: type[M], raw: Any) -> M:
        try:
            return model.model_validate(raw)
        except ValidationError as error:
            raise MaasError("bad_response", f"unexpected answer from the daemon: {error}") from None

    def _disconnected(self, why: str) -> MaasError:
        return MaasError("disconnected", f"lost the MAAS socket {self.path}: {why}")

    def _fail(self, error: MaasError) -> None:
        """The connection is unusable: fail what waits, end the events."""
        if self._failure is None:
            self._failure = error
        for pending in self._pending.values():
            pending.failure = self._failure
            pending.done.set()
        self._events_send.close()

    def _close(self) -> None:
        self._fail(MaasError("closed", "the client was closed"))

    def _raise_if_failed(self) -> None:
        if self._failure is not None:
            raise MaasError(self._failure.code, self._failure.message)


class _Events:
    """:meth:`MaasClient.events`: a plain async iterator over the events channel (not an
    async generator, whose cleanup trio cannot guarantee)."""

    def __init__(self, client: MaasClient) -> None:
        self._client = client

    def __aiter__(self) -> _Events:
        return self

    async def __anext__(self) -> MaasEvent:
        try:
            return await self._client._events.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            failure = self._client._failure
            if failure is not None and failure.code != "closed":
                raise MaasError(failure.code, failure.message) from None
            raise StopAsyncIteration from None
