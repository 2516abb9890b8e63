"""Cutting a TCP byte stream into whole MASC messages (RFC 2909 §7, §7.1, §8.1).

"A message is processed only after it is entirely received" (§7): the framer buffers bytes
fed in arbitrary chunks and hands out one complete message at a time.  It checks only what
it needs to find message boundaries, the Length field; everything else is the codec's job.
"""

from __future__ import annotations

from masc.protocol.constants import HEADER_LENGTH, MAX_MESSAGE_LENGTH
from masc.protocol.errors import CoreMisuse, HeaderSubcode, MessageHeaderError

# Compact the buffer once this much consumed data sits at its front: cheap amortised
# appends without copying the tail on every message.
_COMPACT_AFTER = 64 * 1024


def check_length_field(length: int, header: bytes | bytearray) -> None:
    """§7.1: "The value of the Length field must always be at least 4 and no greater than
    4096."  Outside that the message has no boundary, so its Data is the header (§8.1)."""
    if length < HEADER_LENGTH or length > MAX_MESSAGE_LENGTH:
        raise MessageHeaderError(
            HeaderSubcode.BAD_MESSAGE_LENGTH, bytes(header), reason=f"length field {length}"
        )


class Framer:
    """Accumulates stream bytes; :meth:`next_frame` returns one whole message or None.

    A Length outside 4..4096 leaves no way to find the next message, so after raising that
    error the framer refuses further use: the connection must close (§7.5: MC).
    """

    __slots__ = ("_broken", "_buffer", "_start")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._start = 0
        self._broken = False

    def feed(self, data: bytes | bytearray) -> None:
        if self._broken:
            raise CoreMisuse("framer used after a Bad Message Length")
        self._buffer += data

    @property
    def buffered(self) -> int:
        """Octets received but not yet returned as a message."""
        return len(self._buffer) - self._start

    def next_frame(self) -> bytes | None:
        """The next complete message (header included), or None if more bytes are needed.

        Raises MessageHeaderError(Bad Message Length) for a Length outside 4..4096 (§8.1);
        its data is the header, all that can be known of a message with no boundary.
        """
        if self._broken:
            raise CoreMisuse("framer used after a Bad Message Length")
        buffer, start = self._buffer, self._start
        if len(buffer) - start < HEADER_LENGTH:
            return None
        length = (buffer[start] << 8) | buffer[start + 1]
        try:
            check_length_field(length, buffer[start : start + HEADER_LENGTH])
        except MessageHeaderError:
            self._broken = True
            raise
        end = start + length
        if len(buffer) < end:
            return None
        frame = bytes(buffer[start:end])
        if end == len(buffer):
            buffer.clear()
            self._start = 0
        elif end >= _COMPACT_AFTER:
            del buffer[:end]
            self._start = 0
        else:
            self._start = end
        return frame
