"""The MADCAP server shell (masc/daemon/madcap.py) over real UDP on loopback (RFC 2730).

The service runs in this process on 127.0.11.50-.99 with a free port; a hand-built client
sends codec-encoded messages from a socket of its own, so every byte on the wire is the
test's choice (a retransmission is the same bytes, §2.1.4).  The MASC daemon's side is a
real MAAS socket (masc.daemon.maas.MaasServer) over a fake backend that hands out grants,
records usage and requests, and pushes events.  Nothing here sleeps to wait: tests wait for
replies, log records and events, each under a guard timeout.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from ipaddress import IPv4Address, ip_address, ip_network
from pathlib import Path
from typing import Any

import pytest
import trio

from masc.api.maas import GrantInfo, MaasEvent, RequestResult, UsageReport
from masc.daemon.maas import MaasConnection, MaasServer
from masc.daemon.madcap import MadcapService
from masc.madcap import codec
from masc.madcap.config import MadcapConfig, parse_madcap_config
from masc.madcap.constants import (
    AddressFamily,
    ErrorCode,
    Feature,
    MessageType,
    OptionCode,
)
from masc.madcap.messages import AddressCount, FeatureList, Message, Options
from masc.madcap.server import Grant, Lease
from masc.madcap.store import LeaseStore

WAIT = 10.0  # a guard against hangs, never a pause
HOST = "127.0.11.50"  # the server
CLIENT = "127.0.11.51"
GLOP = "233.252.0.0"  # a static scope of 4 addresses outside 239/8 (no relative block)
ORG = "239.192.0.0"
GLOBAL = "224.0.1.0"


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def config(
    tmp_path: Path, port: int, *, masc: str = "", scopes: str = "", server: str = ""
) -> MadcapConfig:
    text = f"""
[server]
listen = ["{HOST}"]
port = {port}
database = "{tmp_path}/madcap.db"
{server}
{masc}
[[scope]]
name = "Tiny"
first = "{GLOP}"
last = "233.252.0.3"
max_lease = "1d"

[[scope]]
name = "Organization Local"
first = "{ORG}"
last = "239.195.255.255"
range = ["239.192.1.0/24"]
{scopes}
"""
    return parse_madcap_config(text, source="test.toml")


MASC_SCOPE = """
[[scope]]
name = "Global"
source = "masc"
"""


def masc_section(path: Path) -> str:
    return f"""
[masc]
maas_socket = "{path}"
name = "madcap-test"
usage_interval = "1h"
reconnect_initial = "50ms"
reconnect_max = "100ms"
"""


@asynccontextmanager
async def running(cfg: MadcapConfig) -> AsyncIterator[MadcapService]:
    async with trio.open_nursery() as nursery:
        service: MadcapService = await nursery.start(MadcapService(cfg).run)
        yield service
        nursery.cancel_scope.cancel()


class Client:
    """A MADCAP client made of the codec and one UDP socket."""

    def __init__(self, sock: trio.socket.SocketType, server: tuple[str, int]) -> None:
        self.sock = sock
        self.server = server
        self.xid = secrets.randbelow(1 << 31)

    def next_xid(self) -> int:
        self.xid += 1
        return self.xid

    async def send(self, data: bytes) -> None:
        await self.sock.sendto(data, self.server)

    async def receive(self) -> tuple[bytes, Message]:
        with trio.fail_after(WAIT):
            data, source = await self.sock.recvfrom(65535)
        assert source == self.server  # §2.1: the reply comes by unicast from the server
        return data, codec.decode(data)

    async def exchange(self, message: Message) -> Message:
        await self.send(codec.encode(message))
        _, reply = await self.receive()
        assert reply.xid == message.xid  # §2.1.4
        return reply

    def message(self, kind: MessageType, **options: Any) -> Message:
        return Message(kind, AddressFamily.IPV4, self.next_xid(), Options(**options))

    async def request(self, scope: str, lid: bytes | None = None, **options: Any) -> Message:
        lid = lid or new_lid()
        return await self.exchange(
            self.message(MessageType.REQUEST, lease_id=lid, scope=ip_address(scope), **options)
        )

    async def renew(self, lid: bytes, **options: Any) -> Message:
        return await self.exchange(self.message(MessageType.RENEW, lease_id=lid, **options))

    async def release(self, lid: bytes) -> Message:
        return await self.exchange(self.message(MessageType.RELEASE, lease_id=lid))


@asynccontextmanager
async def client(port: int, bind: str = CLIENT) -> AsyncIterator[Client]:
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        await sock.bind((bind, 0))
        yield Client(sock, (HOST, port))


def leases(service: MadcapService) -> list[Lease]:
    assert service.server is not None
    return service.server.leases()


def new_lid() -> bytes:
    return b"\x00" + secrets.token_bytes(16)  # §2.4.1


def addresses(reply: Message) -> list[IPv4Address]:
    ranges = reply.options.ranges or ()
    return [r.start + i for r in ranges for i in range(r.count)]  # type: ignore[misc]


def error_code(reply: Message) -> int:
    assert reply.msg_type == MessageType.NAK, reply
    assert reply.options.error is not None
    return reply.options.error.code


class LogWatch(logging.Handler):
    """Collects the service's log records; tests wait for an event name."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._changed = trio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self._changed.set()
        self._changed = trio.Event()

    def events(self, name: str) -> list[logging.LogRecord]:
        return [r for r in self.records if getattr(r, "event", None) == name]

    async def wait_for(self, name: str, count: int = 1) -> logging.LogRecord:
        with trio.fail_after(WAIT):
            while len(self.events(name)) < count:
                await self._changed.wait()
        return self.events(name)[count - 1]


@pytest.fixture
def logs() -> Iterator[LogWatch]:
    logger = logging.getLogger("masc.madcap")
    watch = LogWatch()
    level = logger.level
    logger.addHandler(watch)
    logger.setLevel(logging.DEBUG)
    yield watch
    logger.removeHandler(watch)
    logger.setLevel(level)


# --- leases over real UDP -------------------------------------------------------------------


async def test_s2_2_4_request_gets_an_ack_with_an_address_inside_the_scope(tmp_path: Path) -> None:
    port = free_port(HOST)
    cfg = config(tmp_path, port)
    async with running(cfg) as service, client(port) as c:
        lid = new_lid()
        reply = await c.request(ORG, lid, lease_time=600)
        assert reply.msg_type == MessageType.ACK
        assert reply.options.lease_id == lid
        assert reply.options.server_id == ip_address(HOST)  # §3.3
        assert reply.options.scope == ip_address(ORG)  # §2.7: MUST in the ACK
        assert reply.options.lease_time == 600
        (address,) = addresses(reply)
        assert address in ip_network("239.192.1.0/24")
        # Written before the ACK was sent: the store already holds it.
        assert service.store is not None
        assert [lease.lease_id for lease in service.store.leases()] == [lid]


async def test_s2_2_7_renew_extends_the_lease(tmp_path: Path) -> None:
    port = free_port(HOST)
    async with running(config(tmp_path, port)), client(port) as c:
        lid = new_lid()
        first = await c.request(GLOP, lid, lease_time=600)
        assert first.msg_type == MessageType.ACK
        renewed = await c.renew(lid, lease_time=7200)
        assert renewed.msg_type == MessageType.ACK
        assert renewed.options.lease_time == 7200
        assert addresses(renewed) == addresses(first)  # §2.2.7: the same addresses
        # A lease id the server never granted: §3.17.4 Lease Identifier Not Recognized.
        assert error_code(await c.renew(new_lid())) == ErrorCode.LEASE_ID_NOT_RECOGNIZED


async def test_s2_2_8_release_frees_the_addresses_at_once(tmp_path: Path) -> None:
    port = free_port(HOST)
    async with running(config(tmp_path, port)) as service, client(port) as c:
        lids = [new_lid() for _ in range(4)]
        taken = set()
        for lid in lids:
            reply = await c.request(GLOP, lid)
            taken.update(addresses(reply))
        assert len(taken) == 4
        released = await c.release(lids[0])
        assert released.msg_type == MessageType.ACK
        assert released.options.lease_id == lids[0]
        assert error_code(await c.release(lids[0])) == ErrorCode.LEASE_ID_NOT_RECOGNIZED
        again = await c.request(GLOP)
        assert again.msg_type == MessageType.ACK and len(addresses(again)) == 1
        assert service.store is not None
        assert lids[0] not in {lease.lease_id for lease in service.store.leases()}


async def test_s3_17_1_exhaustion_is_answered_with_nak_error_0(tmp_path: Path) -> None:
    port = free_port(HOST)
    async with running(config(tmp_path, port)), client(port) as c:
        for _ in range(4):
            assert (await c.request(GLOP)).msg_type == MessageType.ACK
        nak = await c.request(GLOP)
        assert error_code(nak) == ErrorCode.VALID_REQUEST_NOT_COMPLETED
        assert nak.options.server_id == ip_address(HOST)
        # Asking for a number of addresses names option 7 (§3.17.1).
        nak = await c.exchange(
            c.message(
                MessageType.REQUEST,
                lease_id=new_lid(),
                scope=ip_address(GLOP),
                addresses=AddressCount(2, 2),
            )
        )
        assert error_code(nak) == ErrorCode.VALID_REQUEST_NOT_COMPLETED
        assert nak.options.error is not None
        assert codec.offending_option(nak.options.error) == OptionCode.NUMBER_OF_ADDRESSES


async def test_s2_1_4_a_retransmitted_request_gets_the_same_bytes_and_no_second_lease(
    tmp_path: Path,
) -> None:
    port = free_port(HOST)
    async with running(config(tmp_path, port)) as service, client(port) as c:
        request = codec.encode(
            c.message(MessageType.REQUEST, lease_id=new_lid(), scope=ip_address(GLOP))
        )
        await c.send(request)
        first, _ = await c.receive()
        for _ in range(3):  # §2.3: the client's identical copies
            await c.send(request)
            again, _ = await c.receive()
            assert again == first
        assert len(leases(service)) == 1
        assert service.store is not None and len(service.store.leases()) == 1


async def test_restart_keeps_leases(tmp_path: Path) -> None:
    port = free_port(HOST)
    cfg = config(tmp_path, port)
    lids = [new_lid() for _ in range(4)]
    async with running(cfg), client(port) as c:
        held = [addresses(await c.request(GLOP, lid, lease_time=3600)) for lid in lids]
    with LeaseStore.open(cfg.server.database) as store:
        assert {lease.lease_id for lease in store.leases()} == set(lids)
    async with running(cfg) as service, client(port) as c:
        assert len(leases(service)) == 4
        # The leases are known (renewable) and their addresses are not handed out again.
        renewed = await c.renew(lids[0], lease_time=7200)
        assert renewed.msg_type == MessageType.ACK and addresses(renewed) == held[0]
        assert error_code(await c.request(GLOP)) == ErrorCode.VALID_REQUEST_NOT_COMPLETED
        # A REQUEST retransmitted across the restart (the cache is gone) gets its own lease.
        same = await c.request(GLOP, lids[1])
        assert same.msg_type == MessageType.ACK and addresses(same) == held[1]


async def test_bad_datagrams_never_stop_the_server(tmp_path: Path, logs: LogWatch) -> None:
    port = free_port(HOST)
    async with running(config(tmp_path, port)), client(port) as c:
        for junk in (b"", b"\x00", b"hello, world!", b"\x01" + bytes(20), os.urandom(1400)):
            await c.send(junk)  # §2.1, §2.1.1: ignored
        # §2.1.5: a duplicated option is an Invalid Request, answered with NAK 1.
        good = codec.encode(c.message(MessageType.RENEW, lease_id=new_lid()))
        body = good[8:-4]
        await c.send(good[:8] + body + body + good[-4:])
        _, nak = await c.receive()
        assert error_code(nak) == ErrorCode.INVALID_REQUEST
        # An OFFER, ACK or NAK arriving at a server is ignored (§2.6); then a GETINFO works.
        await c.send(codec.encode(c.message(MessageType.NAK, lease_id=new_lid())))
        info = await c.exchange(
            c.message(
                MessageType.GETINFO,
                lease_id=new_lid(),
                option_request_list=(int(OptionCode.MULTICAST_SCOPE_LIST),),
            )
        )
        assert info.msg_type == MessageType.ACK
        assert {e.scope_id for e in info.options.scope_list or ()} == {
            ip_address(GLOP),
            ip_address(ORG),
        }
    assert len(logs.events("ignored")) >= 5
    assert not logs.events("bug")


async def test_the_lease_store_is_held_while_serving(tmp_path: Path) -> None:
    port = free_port(HOST)
    cfg = config(tmp_path, port)
    async with running(cfg):
        with pytest.raises(Exception, match="in use by another"):
            LeaseStore.open(cfg.server.database)


# --- the MASC daemon's space ------------------------------------------------------------------


class FakeDaemon:
    """The backend behind a real MAAS socket: grants, usage and requests, recorded."""

    def __init__(self, grants: list[GrantInfo]) -> None:
        self.grants_by_name: dict[str, list[GrantInfo]] = {}
        self.initial = grants
        self.registered: list[tuple[str, list[str]]] = []
        self.usage: list[UsageReport] = []
        self.requests: list[int] = []
        self.connection: MaasConnection | None = None
        self.changed = trio.Event()

    def _note(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    async def wait(self, predicate: Callable[[], bool]) -> None:
        with trio.fail_after(WAIT):
            while not predicate():
                await self.changed.wait()

    def identity(self) -> dict[str, Any]:
        return {"domain_id": 64600, "node_id": "127.0.11.99", "address_family": "ipv4"}

    async def register(
        self, name: str, scopes: list[str], connection: MaasConnection
    ) -> list[GrantInfo]:
        self.connection = connection
        self.registered.append((name, scopes))
        self._note()
        return self.grants_by_name.setdefault(name, list(self.initial))

    def unregister(self, name: str, connection: MaasConnection) -> None:
        self.connection = None
        self._note()

    def grants(self, name: str) -> list[GrantInfo]:
        return self.grants_by_name[name]

    async def report_usage(self, name: str, usage: UsageReport) -> None:
        self.usage.append(usage)
        self._note()

    async def request(self, name: str, size: int) -> RequestResult:
        self.requests.append(size)
        self._note()
        return RequestResult(granted=[], outstanding=size)

    def push(self, kind: str, grant: GrantInfo, reason: str = "") -> None:
        grants = self.grants_by_name["madcap-test"]
        grants[:] = [g for g in grants if g.prefix != grant.prefix]
        if kind != "revoked":
            grants.append(grant)
        assert self.connection is not None
        self.connection.push(
            MaasEvent(event=kind, maas="madcap-test", grant=grant, reason=reason)  # type: ignore[arg-type]
        )


def grant(prefix: str, *, active: bool = True, lifetime: float = 86_400.0) -> GrantInfo:
    return GrantInfo.build(ip_network(prefix), expires=time.time() + lifetime, active=active)


@asynccontextmanager
async def maas_socket(path: Path, daemon: FakeDaemon) -> AsyncIterator[None]:
    async with trio.open_nursery() as nursery:
        await nursery.start(MaasServer(daemon, path).serve)
        yield
        nursery.cancel_scope.cancel()


async def attached(service: MadcapService, daemon: FakeDaemon) -> None:
    await daemon.wait(lambda: daemon.connection is not None and bool(daemon.usage))
    with trio.fail_after(WAIT):
        while not service.attached:
            await service.grants_changed()


async def test_rfc2908_a_masc_scope_leases_from_the_daemons_grants_and_reports_usage(
    tmp_path: Path, logs: LogWatch
) -> None:
    port = free_port(HOST)
    sock = tmp_path / "maas.sock"
    daemon = FakeDaemon([grant("224.2.0.0/28")])
    cfg = config(tmp_path, port, masc=masc_section(sock), scopes=MASC_SCOPE)
    async with maas_socket(sock, daemon), running(cfg) as service, client(port) as c:
        await attached(service, daemon)
        assert daemon.registered == [("madcap-test", ["Global"])]
        reply = await c.request(GLOBAL, lease_time=600)
        assert reply.msg_type == MessageType.ACK
        (address,) = addresses(reply)
        assert address in ip_network("224.2.0.0/28")
        # The lease shows in the next usage report (debounced ~1 s after the change).
        await daemon.wait(lambda: daemon.usage[-1].in_use == 1)
        assert daemon.usage[-1].by_prefix == {ip_network("224.2.0.0/28"): 1}
    record = logs.events("lease_granted")[0]
    assert record.scope == "Global" and record.addresses == [str(address)]  # type: ignore[attr-defined]
    assert logs.events("maas_attached")


async def test_s2_13_2_no_space_asks_the_daemon_and_answers_retry_after(tmp_path: Path) -> None:
    port = free_port(HOST)
    sock = tmp_path / "maas.sock"
    daemon = FakeDaemon([])
    cfg = config(tmp_path, port, masc=masc_section(sock), scopes=MASC_SCOPE)
    async with maas_socket(sock, daemon), running(cfg) as service, client(port) as c:
        await attached(service, daemon)
        lid = new_lid()
        reply = await c.request(
            GLOBAL, lid, features=FeatureList(supported=(int(Feature.RETRY_AFTER),))
        )
        assert reply.msg_type == MessageType.ACK and reply.options.ranges == ()
        assert reply.options.retry_time is not None
        await daemon.wait(lambda: daemon.requests == [1])
        # The daemon's grant arrives as an event; the retry (a new xid) gets an address.
        daemon.push("granted", grant("224.3.0.0/28"))
        with trio.fail_after(WAIT):
            await service.grants_changed()
        again = await c.request(GLOBAL, lid)
        assert again.msg_type == MessageType.ACK and again.options.lease_id == lid
        assert addresses(again)[0] in ip_network("224.3.0.0/28")


async def test_revoked_space_is_neither_renewed_nor_leased_deprecated_only_renewed(
    tmp_path: Path,
) -> None:
    port = free_port(HOST)
    sock = tmp_path / "maas.sock"
    a, b = grant("224.2.0.0/30"), grant("224.2.1.0/30")
    daemon = FakeDaemon([a, b])
    cfg = config(tmp_path, port, masc=masc_section(sock), scopes=MASC_SCOPE)
    async with maas_socket(sock, daemon), running(cfg) as service, client(port) as c:
        await attached(service, daemon)
        leases: dict[str, list[bytes]] = {"a": [], "b": []}
        for _ in range(8):
            lid = new_lid()
            (address,) = addresses(await c.request(GLOBAL, lid))
            leases["a" if address in a.prefix else "b"].append(lid)
        assert len(leases["a"]) == len(leases["b"]) == 4
        # Deprecated: the leases in it are renewed, no new lease comes from it.
        daemon.push("deprecated", grant("224.2.0.0/30", active=False))
        await service.grants_changed()
        assert (await c.renew(leases["a"][0], lease_time=60)).msg_type == MessageType.ACK
        await c.release(leases["b"][0])
        fresh = await c.request(GLOBAL)
        assert addresses(fresh)[0] in b.prefix
        # Revoked: renewals of its addresses are refused with error 0 and nothing new.
        daemon.push("revoked", b, reason="withdrawn")
        await service.grants_changed()
        nak = await c.renew(leases["b"][1], lease_time=60)
        assert error_code(nak) == ErrorCode.VALID_REQUEST_NOT_COMPLETED
        assert error_code(await c.request(GLOBAL)) == ErrorCode.VALID_REQUEST_NOT_COMPLETED


async def test_the_daemon_unreachable_at_start_and_lost_later(
    tmp_path: Path, logs: LogWatch
) -> None:
    """Static scopes are served throughout; the link retries with back-off; masc scopes
    serve from the saved grants meanwhile and after a restart without the daemon."""
    port = free_port(HOST)
    sock = tmp_path / "maas.sock"
    daemon = FakeDaemon([grant("224.2.0.0/28")])
    cfg = config(tmp_path, port, masc=masc_section(sock), scopes=MASC_SCOPE)
    async with running(cfg) as service, client(port) as c:
        await logs.wait_for("maas_unavailable")
        assert (await c.request(GLOP)).msg_type == MessageType.ACK
        async with maas_socket(sock, daemon):
            await attached(service, daemon)
            lid = new_lid()
            assert (await c.request(GLOBAL, lid)).msg_type == MessageType.ACK
        await logs.wait_for("maas_lost")
        assert not service.attached
        assert (await c.request(GLOP)).msg_type == MessageType.ACK
        assert (await c.renew(lid, lease_time=120)).msg_type == MessageType.ACK
    # A restart while the daemon is away still knows the grants (saved with the leases).
    async with running(cfg), client(port) as c:
        assert (await c.renew(lid, lease_time=120)).msg_type == MessageType.ACK
        assert (await c.request(GLOBAL)).msg_type == MessageType.ACK
    assert logs.events("maas_unavailable")[0].levelno == logging.WARNING


async def test_a_timer_due_while_a_datagram_is_in_hand_does_not_cancel_the_reply(
    tmp_path: Path,
) -> None:
    """The owner waits for the inbox under the core's next deadline.  It used to handle the
    datagram inside that cancel scope too: when the deadline passed after the datagram was
    handed over but before the owner ran, the scope was cancelled and the reply's sendto
    raised Cancelled -- the lease saved, its ACK never sent.  Here a receiver that is slow
    right after handing a datagram over (as any busy task in the same batch would be) and a
    deadline always 50 ms ahead make that moment certain."""
    port = free_port(HOST)
    async with running(config(tmp_path, port)) as service, client(port) as c:
        core = service.server
        assert core is not None
        core.next_deadline = lambda: time.time() + 0.05  # type: ignore[method-assign]
        inbox = service._inbox_send
        hand_over = inbox.send_nowait

        def slow_hand_over(item: Any) -> None:
            hand_over(item)
            time.sleep(0.2)  # the run loop is busy elsewhere; the deadline passes

        inbox.send_nowait = slow_hand_over  # type: ignore[method-assign]
        # A first exchange makes the owner wait again, now under a near deadline.
        info = c.message(MessageType.GETINFO, lease_id=new_lid(), option_request_list=(9,))
        assert (await c.exchange(info)).msg_type == MessageType.ACK
        reply = await c.request(GLOP, lease_time=600)
        assert reply.msg_type == MessageType.ACK


async def test_a_second_server_on_the_same_address_and_port_is_refused(tmp_path: Path) -> None:
    """Two servers with two lease stores on one unicast address: the second used to bind
    too (SO_REUSEADDR) and silently take the first one's traffic, leasing its addresses
    again from its own store.  Now it fails to start, naming the address."""
    port = free_port(HOST)
    (tmp_path / "b").mkdir()
    async with running(config(tmp_path, port)), client(port) as c:
        with pytest.raises(ExceptionGroup) as refused:
            async with running(config(tmp_path / "b", port)):
                pass  # pragma: no cover
        assert refused.group_contains(OSError, match=f"cannot bind UDP {HOST} port {port}")
        assert (await c.request(GLOP)).msg_type == MessageType.ACK


async def test_s2_10_a_group_that_cannot_be_joined_names_the_group_and_the_key(
    tmp_path: Path,
) -> None:
    port = free_port(HOST)
    cfg = config(tmp_path, port, server='multicast_interface = "192.0.2.1"')  # not ours
    with pytest.raises(ExceptionGroup) as refused:
        async with running(cfg):
            pass  # pragma: no cover
    assert refused.group_contains(
        OSError, match=r"cannot join 233\.252\.0\.2 on the interface of 192\.0\.2\.1 "
    )


async def test_restart_restores_saved_grants_by_zone_not_by_name(tmp_path: Path) -> None:
    """Saved grants go back to the masc scope whose zone holds them: under a renamed scope
    they are still served before the daemon answers, and a grant no configured zone holds
    (here: the scope became IPv6) is dropped -- it used to make set_grants raise, and the
    server failed to start."""
    port = free_port(HOST)
    sock = tmp_path / "maas.sock"  # no daemon there
    with LeaseStore.open(tmp_path / "madcap.db") as store:
        store.save_grants(
            {"Old name": [Grant(ip_network("224.2.0.0/28"), time.time() + 3600, True)]}
        )
    cfg = config(tmp_path, port, masc=masc_section(sock), scopes=MASC_SCOPE)
    async with running(cfg), client(port) as c:
        reply = await c.request(GLOBAL)
        assert reply.msg_type == MessageType.ACK
        assert addresses(reply)[0] in ip_network("224.2.0.0/28")
    with LeaseStore.open(tmp_path / "madcap.db") as store:
        store.save_grants({"Global": [Grant(ip_network("224.2.0.0/28"), time.time() + 3600, True)]})
    v6 = MASC_SCOPE + 'first = "ff1e::"\nlast = "ff1e::ffff"\n'
    cfg = config(tmp_path, port, masc=masc_section(sock), scopes=v6)
    async with running(cfg), client(port) as c:
        assert (await c.request(GLOP)).msg_type == MessageType.ACK
