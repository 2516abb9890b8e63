"""Throughput of the MASC wire codec and framer on one core (RFC 2909 §7, §8.1-§8.3).

Run as ``.venv/bin/python benchmarks/codec.py [--seconds S]``.  Each figure is the rate of
one single-threaded loop, measured with ``time.perf_counter`` for about ``--seconds`` after
a short warm-up:

* UPDATE decode+validate: ``decode(frame)``, i.e. the §8.1 header checks, the §8.3 per-claim
  checks and building the frozen values;
* UPDATE encode: ``encode(update)``;
* framer: a stream of single-attribute IPv4 UPDATEs fed in 4096-octet reads, every frame
  taken out with ``next_frame()``.

The last line compares IPv4 one-attribute decode with the target of 100,000 messages/s.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from ipaddress import IPv4Network, IPv6Network

from masc.protocol.constants import ClaimType, Role
from masc.protocol.wire import Claim, DomainId, Framer, NodeId, Update, decode, encode

TARGET_DECODE_RATE = 100_000  # IPv4 one-attribute UPDATEs decoded per second
STREAM_MESSAGES = 1_000  # UPDATEs in one framer pass
READ_SIZE = 4096  # octets per feed(), a typical socket read


def claims(version: int, count: int) -> tuple[Claim, ...]:
    """``count`` distinct NEW_CLAIMs of one family, all valid on the wire."""
    out = []
    for i in range(count):
        prefix: IPv4Network | IPv6Network
        if version == 4:
            prefix = IPv4Network((0xEFC00000 + (i << 8), 24))  # 239.192.i.0/24
            node = 0xC0000201
        else:
            prefix = IPv6Network(((0xFF3E0040 << 96) + (i << 64), 64))  # ff3e:40:0:i::/64
            node = 0x20010DB8 << 96 | 1
        out.append(
            Claim(
                type=ClaimType.NEW_CLAIM,
                origin_role=Role.CHILD,
                timestamp=946_684_800,
                lifetime=2_592_000,
                holdtime=172_800,
                origin_domain=DomainId(65001),
                origin_node=NodeId(node),
                prefix=prefix,
            )
        )
    return tuple(out)


def measure(run: Callable[[int], int], seconds: float) -> float:
    """Operations per second of ``run(n)``, which performs n operations and returns how many
    messages they amount to.  Batches grow until one takes ~1/20 of the budget."""
    batch = 1
    warm_until = time.perf_counter() + min(0.2, seconds / 5)
    while time.perf_counter() < warm_until:
        start = time.perf_counter()
        run(batch)
        if time.perf_counter() - start < seconds / 20:
            batch *= 2
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        done += run(batch)
        now = time.perf_counter()
        if now >= deadline:
            return done / (now - start)


def decode_runner(frame: bytes) -> Callable[[int], int]:
    def run(n: int) -> int:
        for _ in range(n):
            decode(frame)
        return n

    return run


def encode_runner(update: Update) -> Callable[[int], int]:
    def run(n: int) -> int:
        for _ in range(n):
            encode(update)
        return n

    return run


def framer_runner(stream: bytes, messages: int) -> Callable[[int], int]:
    reads = [stream[i : i + READ_SIZE] for i in range(0, len(stream), READ_SIZE)]

    def run(n: int) -> int:
        for _ in range(n):
            framer = Framer()
            taken = 0
            for chunk in reads:
                framer.feed(chunk)
                while framer.next_frame() is not None:
                    taken += 1
            assert taken == messages
        return n * messages

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=float, default=1.0, help="measuring time per figure (default 1)"
    )
    args = parser.parse_args(argv)

    rows: list[tuple[str, str, int, int, float]] = []  # operation, family, attrs, octets, rate
    for version in (4, 6):
        for count in (1, 10):
            update = Update(claims(version, count))
            frame = encode(update)
            assert decode(frame) == update
            family = f"IPv{version}"
            rows.append(
                (
                    "UPDATE decode+validate",
                    family,
                    count,
                    len(frame),
                    measure(decode_runner(frame), args.seconds),
                )
            )
            rows.append(
                (
                    "UPDATE encode",
                    family,
                    count,
                    len(frame),
                    measure(encode_runner(update), args.seconds),
                )
            )
    single = encode(Update(claims(4, 1)))
    stream = single * STREAM_MESSAGES
    framer_rate = measure(framer_runner(stream, STREAM_MESSAGES), args.seconds)
    rows.append(("framer (4096-octet reads)", "IPv4", 1, len(single), framer_rate))

    print(
        f"MASC codec, one core, {args.seconds:g} s per figure "
        f"(Python {platform.python_version()}, {platform.machine()})"
    )
    header = ("operation", "family", "attrs", "octets", "msgs/s", "attrs/s", "MB/s")
    print(
        f"{header[0]:<26} {header[1]:<6} {header[2]:>5} {header[3]:>6} "
        f"{header[4]:>11} {header[5]:>11} {header[6]:>7}"
    )
    for operation, family, count, octets, rate in rows:
        print(
            f"{operation:<26} {family:<6} {count:>5} {octets:>6} "
            f"{rate:>11,.0f} {rate * count:>11,.0f} {rate * octets / 1e6:>7.1f}"
        )
    ipv4_decode = rows[0][4]
    verdict = "meets" if ipv4_decode >= TARGET_DECODE_RATE else "MISSES"
    print(
        f"IPv4 1-attribute decode: {ipv4_decode:,.0f} msgs/s, {verdict} the target of "
        f"{TARGET_DECODE_RATE:,}/s ({ipv4_decode / TARGET_DECODE_RATE:.2f}x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
