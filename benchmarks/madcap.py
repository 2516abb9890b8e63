"""MADCAP (RFC 2730) speed and memory: the codec, the sans-IO server core, and a real
``masc madcap`` process over UDP with its SQLite lease store.

Run as ``.venv/bin/python benchmarks/madcap.py [--seconds S] [--leases N,N,...]``.

* codec: REQUEST decode and ACK encode per second (one core, ``time.perf_counter``);
* server core: REQUEST -> ACK per second when the scope already holds N leases (each ACK
  allocates one new address; the reservation scan is what grows with N), and the Python
  heap (``tracemalloc``) the core holds per lease;
* process: sequential leases per second from a real ``masc madcap`` on 127.0.11.98, each
  committed to SQLite (WAL, synchronous=FULL) before its ACK, asked for by the library
  client ``masc.madcap.client`` over loopback UDP.  Disk fsync dominates this figure.

Nothing is asserted: compare the figures before and after a change to a hot path.
"""

from __future__ import annotations

import argparse
import platform
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path

import trio

from masc.madcap import codec
from masc.madcap.client import open_madcap_client
from masc.madcap.constants import AddressFamily, MessageType
from masc.madcap.messages import AddressRange, Message, Options, ScopeName
from masc.madcap.scopes import Scope
from masc.madcap.server import Arrival, MadcapServer, ServerSettings

NOW = 1_700_000_000.0
SERVER = IPv4Address("127.0.0.1")
CLIENT = Arrival(source=("127.0.0.2", 40000))
PROCESS_ADDRESS = "127.0.11.98"


def scope() -> Scope:
    """An organization-local zone with 65,280 allocatable addresses (239.192.0.0/16)."""
    return Scope(
        name="org",
        first=IPv4Address("239.192.0.0"),
        last=IPv4Address("239.195.255.255"),
        names=(ScopeName("en", "Organization Local", default=True),),
        ranges=((IPv4Address("239.192.0.0"), IPv4Address("239.192.255.255")),),
        default_lease=3600.0,
        max_lease=86400.0,
    )


def lease_id(n: int) -> bytes:
    return b"\x00" + n.to_bytes(16, "big")


def request(n: int) -> bytes:
    return codec.encode(
        Message(
            MessageType.REQUEST,
            AddressFamily.IPV4,
            n & 0xFFFFFFFF,
            Options(lease_id=lease_id(n), scope=IPv4Address("239.192.0.0"), lease_time=3600),
        )
    )


def rate(seconds: float, step: Callable[[int], object], warm_up: int = 200) -> float:
    """Calls per second of ``step(i)``; ``i`` never repeats, warm-up included."""
    for i in range(warm_up):
        step(i)
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(100):
            step(warm_up + count)
            count += 1
    return count / elapsed


def bench_codec(seconds: float) -> None:
    data = request(7)
    ack = codec.encode(
        Message(
            MessageType.ACK,
            AddressFamily.IPV4,
            7,
            Options(
                lease_id=lease_id(7),
                server_id=SERVER,
                scope=IPv4Address("239.192.0.0"),
                lease_time=3600,
                ranges=(AddressRange(IPv4Address("239.192.0.9"), 1),),
            ),
        )
    )
    message = codec.decode(ack)
    decoding = rate(seconds, lambda _: codec.decode(data))
    encoding = rate(seconds, lambda _: codec.encode(message))
    print(f"codec  REQUEST decode            {decoding:>10,.0f} /s")
    print(f"codec  ACK encode                {encoding:>10,.0f} /s")


def filled_server(leases: int) -> MadcapServer:
    server = MadcapServer(ServerSettings(server_id=SERVER), (scope(),), now=NOW)
    for n in range(leases):
        outcome = server.handle_datagram(request(n), arrival=CLIENT, now=NOW)
        assert outcome.event == "granted", outcome
    return server


def granting(server: MadcapServer, first: int) -> Callable[[int], None]:
    """A step that asks ``server`` for one more new lease (ids from ``first`` on)."""

    def one(i: int) -> None:
        n = first + i
        outcome = server.handle_datagram(request(n), arrival=CLIENT, now=NOW)
        if outcome.event != "granted" or not outcome.saved:
            raise SystemExit(f"scope full at {n} leases: lower --leases")

    return one


def bench_server(seconds: float, sizes: list[int]) -> None:
    for size in sizes:
        server = filled_server(size)
        # Fewer iterations than the codec: each one takes an address for good.
        per_second = rate(min(seconds, 0.5), granting(server, size))
        print(f"server REQUEST->ACK at {size:>6,} leases {per_second:>10,.0f} /s")
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    count = max(sizes)
    kept = filled_server(count)
    held = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    print(f"server heap per lease ({count:,} leases)   {held / count:>10,.0f} bytes")
    del kept


def free_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((address, 0))
        port: int = s.getsockname()[1]
        return port


async def sequential_leases(port: int, count: int) -> float:
    async with open_madcap_client(server=(PROCESS_ADDRESS, port), bind=PROCESS_ADDRESS) as client:
        await client.alloc(IPv4Address("239.192.0.0"), max_lifetime=600)  # warm-up
        start = time.perf_counter()
        for _ in range(count):
            await client.alloc(IPv4Address("239.192.0.0"), max_lifetime=600)
        return count / (time.perf_counter() - start)


def bench_process(count: int) -> None:
    port = free_port(PROCESS_ADDRESS)
    with tempfile.TemporaryDirectory(prefix="masc-madcap-bench-") as tmp:
        config = Path(tmp) / "madcap.toml"
        config.write_text(
            f'[server]\nlisten = ["{PROCESS_ADDRESS}"]\nport = {port}\n'
            f'database = "{tmp}/leases.db"\n'
            '[[scope]]\nname = "org"\nfirst = "239.192.0.0"\nlast = "239.195.255.255"\n'
            'range = ["239.192.0.0-239.192.255.255"]\n'
        )
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "masc",
                "madcap",
                "--config",
                str(config),
                "--log-level",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            time.sleep(1.0)  # a benchmark, not a test: the server binds in well under a second
            if process.poll() is not None:
                raise SystemExit(f"masc madcap did not start: {process.stderr.read().decode()}")
            per_second = trio.run(sequential_leases, port, count)
        finally:
            process.terminate()
            process.wait(timeout=10)
    print(f"process leases over UDP, committed   {per_second:>10,.0f} /s  ({count} sequential)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--leases", default="100,1000,10000")
    parser.add_argument("--process-leases", type=int, default=300)
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}")
    bench_codec(args.seconds)
    bench_server(args.seconds, [int(n) for n in args.leases.split(",")])
    bench_process(args.process_leases)


if __name__ == "__main__":
    main()
