"""Properties of the wire codec and framer (RFC 2909 §7, §8.1-§8.3; STYLE.md 3, "decoders
are total").

* every legal message survives ``decode(encode(x)) == x``;
* the framer cuts any chunking of a stream into the same frames;
* ``decode`` of random or mutated bytes returns a message or raises a ``ProtocolError``
  carrying a defined (code, subcode), Data taken from the input, and the §7.5 close mark;
  never anything else;
* the framer fed random bytes raises nothing but Bad Message Length.

Runs are derandomized (a fixed seed derived from each test) so CI is reproducible; the
example counts keep the whole file to a few seconds.
"""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from masc.protocol.constants import (
    LEGAL_ORIGIN_ROLES,
    MAX_MESSAGE_LENGTH,
    AddressFamily,
    ClaimType,
    Role,
)
from masc.protocol.errors import (
    ErrorCode,
    HeaderSubcode,
    MessageHeaderError,
    OpenSubcode,
    ProtocolError,
    UpdateMessageError,
    is_defined,
    requires_close,
)
from masc.protocol.wire import (
    Claim,
    DomainId,
    Framer,
    Keepalive,
    Message,
    NodeId,
    Notification,
    Open,
    OptionalParameter,
    Prefix,
    Update,
    decode,
    encode,
)
from masc.protocol.wire.codec import encode_claim

FAST = settings(max_examples=300, derandomize=True, deadline=None)
SLOW = settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

U16 = st.integers(0, 0xFFFF)
U32 = st.integers(0, 0xFFFF_FFFF)
# §7.2: "The Hold Time MUST be either zero or at least three seconds."
HOLD_TIMES = U16.filter(lambda h: h not in (1, 2))
# The multicast block of each family: (first bits, prefix length).
_BLOCK = {AddressFamily.IPV4: (0xE, 4), AddressFamily.IPV6: (0xFF, 8)}


def identifiers(family: AddressFamily) -> st.SearchStrategy[int]:
    return st.integers(0, (1 << (8 * family.id_length)) - 1)


def parameters(max_size: int = 3, max_value: int = 255) -> st.SearchStrategy[tuple[Any, ...]]:
    """§7.2 optional parameters of type 1..255 (type 0 with no value is padding)."""
    one = st.builds(
        OptionalParameter, type=st.integers(1, 255), value=st.binary(max_size=max_value)
    )
    return st.lists(one, max_size=max_size).map(tuple)


@st.composite
def prefixes(draw: st.DrawFn, family: AddressFamily) -> Prefix:
    """A prefix inside the family's multicast block, or address 0 with any valid mask."""
    bits = 8 * family.id_length
    network = IPv4Network if family is AddressFamily.IPV4 else IPv6Network
    if draw(st.integers(0, 9)) == 0:
        return network((0, draw(st.integers(1, bits))))
    first, block_length = _BLOCK[family]
    prefixlen = draw(st.integers(block_length, bits))
    free = prefixlen - block_length
    inner = draw(st.integers(0, (1 << free) - 1))
    address = (first << (bits - block_length)) | (inner << (bits - prefixlen))
    return network((address, prefixlen))


@st.composite
def claims(
    draw: st.DrawFn,
    family: AddressFamily | None = None,
    params: st.SearchStrategy[tuple[Any, ...]] | None = None,
) -> Claim:
    family = family if family is not None else draw(st.sampled_from(AddressFamily))
    claim_type = draw(st.sampled_from(ClaimType))
    role = draw(st.sampled_from(sorted(LEGAL_ORIGIN_ROLES[claim_type])))
    return Claim(
        type=claim_type,
        origin_role=role,
        timestamp=draw(U32),
        lifetime=draw(U32),
        holdtime=draw(U32),
        origin_domain=DomainId(draw(identifiers(family))),
        origin_node=NodeId(draw(identifiers(family))),
        prefix=draw(prefixes(family)),
        deprecated=draw(st.booleans()),
        parameters=draw(params if params is not None else parameters(max_size=2, max_value=16)),
    )


def _fit(attributes: list[Claim]) -> Update:
    """Keep the leading claims that fit one UPDATE of at most 4096 octets."""
    kept: list[Claim] = []
    room = MAX_MESSAGE_LENGTH - 4
    for claim in attributes:
        size = len(encode_claim(claim))
        if size > room:
            break
        kept.append(claim)
        room -= size
    return Update(tuple(kept))


def updates(
    min_claims: int = 1, max_claims: int = 6, **claim_args: Any
) -> st.SearchStrategy[Update]:
    """UPDATEs of 1..max_claims claims, cut to the 4096-octet limit.  A large ``min_claims``
    makes most examples reach the limit (113 IPv4 claims fill 4068 octets)."""
    count = st.integers(min_claims, max_claims)
    return count.flatmap(lambda n: st.lists(claims(**claim_args), min_size=n, max_size=n).map(_fit))


@st.composite
def opens(draw: st.DrawFn) -> Open:
    family = draw(st.sampled_from(AddressFamily))
    return Open(
        family=family,
        role=draw(st.sampled_from(Role)),
        hold_time=draw(HOLD_TIMES),
        domain_id=DomainId(draw(identifiers(family))),
        node_id=NodeId(draw(identifiers(family))),
        parent_domain_id=DomainId(draw(identifiers(family))),
        parameters=draw(parameters()),
    )


notifications = st.builds(
    Notification,
    open_bit=st.booleans(),
    code=st.integers(0, 0x7F),
    subcode=st.integers(0, 0xFF),
    data=st.binary(max_size=MAX_MESSAGE_LENGTH - 6),
)

messages: st.SearchStrategy[Message] = st.one_of(
    opens(), updates(), notifications, st.just(Keepalive())
)


# --- round trips -----------------------------------------------------------------------------


@FAST
@given(messages)
def test_decode_inverts_encode(message: Message) -> None:
    assert decode(encode(message)) == message


@SLOW
@given(updates(min_claims=40, max_claims=130, params=parameters(max_size=1, max_value=8)))
def test_decode_inverts_encode_for_updates_up_to_4096_octets(update: Update) -> None:
    frame = encode(update)
    assert len(frame) <= MAX_MESSAGE_LENGTH
    assert decode(frame) == update


# --- framing ---------------------------------------------------------------------------------


@FAST
@given(st.lists(messages, min_size=1, max_size=6), st.data())
def test_framer_yields_the_same_frames_for_any_chunking(
    batch: list[Message], data: st.DataObject
) -> None:
    frames = [encode(m) for m in batch]
    stream = b"".join(frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    framer = Framer()
    out: list[bytes] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        framer.feed(stream[start:end])
        while (frame := framer.next_frame()) is not None:
            out.append(frame)
    assert out == frames
    assert framer.buffered == 0


@FAST
@given(st.lists(st.binary(max_size=80), max_size=12))
def test_framer_fed_random_bytes_raises_only_bad_message_length(chunks: list[bytes]) -> None:
    framer = Framer()
    try:
        for chunk in chunks:
            framer.feed(chunk)
            while (frame := framer.next_frame()) is not None:
                assert 4 <= len(frame) <= MAX_MESSAGE_LENGTH
                assert int.from_bytes(frame[:2], "big") == len(frame)
    except MessageHeaderError as error:
        assert error.subcode == HeaderSubcode.BAD_MESSAGE_LENGTH
        assert len(error.data) == 4
        assert error.must_close


# --- totality of decode ----------------------------------------------------------------------


def _check_error(error: ProtocolError, frame: bytes) -> None:
    assert is_defined(error.code, error.subcode), error
    assert isinstance(error.data, bytes)
    if (error.code, error.subcode) != (ErrorCode.OPEN_MESSAGE, OpenSubcode.UNSUPPORTED_VERSION):
        # Every other Data is a piece of what the peer sent (§8).
        assert error.data in frame, error
    if isinstance(error, UpdateMessageError) and (error.salvaged is not None or error.further):
        # Salvage happens only around CC errors: each rejected attribute is reported and
        # the connection may stay open.
        for each in (error, *error.further):
            assert not each.must_close, each
            assert not requires_close(each.code, each.subcode)
            assert each.data in frame
    else:
        assert error.must_close == requires_close(error.code, error.subcode), error


def _decode_is_total(frame: bytes) -> None:
    """decode returns a message or raises ProtocolError; anything else fails the test."""
    try:
        message = decode(frame)
    except ProtocolError as error:
        _check_error(error, frame)
        return
    if message != Update(()):  # only optional attributes: nothing to re-encode
        assert decode(encode(message)) == message


@FAST
@given(st.binary(max_size=200))
def test_decode_of_random_bytes_is_total(frame: bytes) -> None:
    _decode_is_total(frame)


@st.composite
def framed_noise(draw: st.DrawFn) -> bytes:
    """Random bodies behind a header whose Length is right, to get past §8.1."""
    type_code = draw(st.one_of(st.integers(1, 4), st.integers(0, 255)))
    body = draw(st.binary(max_size=300))
    return (4 + len(body)).to_bytes(2, "big") + bytes([type_code, 0]) + body


@FAST
@given(framed_noise())
def test_decode_of_random_framed_bytes_is_total(frame: bytes) -> None:
    _decode_is_total(frame)


# Flips are listed twice: most interesting faults are a wrong field, not a wrong size.
_MUTATIONS = ["flip-byte", "flip-bit", "flip-byte", "flip-bit", "trim", "truncate", "extend"]


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[Message]) -> bytes:
    """A valid message with bytes or bits flipped, cut short or extended; mostly with the
    Length field then set to the buffer length, so the mutation gets past §8.1 and reaches
    the body checks."""
    frame = bytearray(encode(draw(base)))
    for operation in draw(st.lists(st.sampled_from(_MUTATIONS), min_size=1, max_size=4)):
        if operation.startswith("flip") and frame:
            # Counted from the end: Hypothesis favours small draws, and the header is
            # better exercised by the tests of random bytes.
            index = len(frame) - 1 - draw(st.integers(0, len(frame) - 1))
            if operation == "flip-bit":
                frame[index] ^= 1 << draw(st.integers(0, 7))
            else:
                frame[index] ^= draw(st.integers(1, 0xFF))
        elif operation == "trim" and frame:
            del frame[-draw(st.integers(1, min(8, len(frame)))) :]
        elif operation == "truncate":
            del frame[draw(st.integers(0, len(frame))) :]
        elif operation == "extend":
            frame += draw(st.binary(min_size=1, max_size=40))
    if len(frame) >= 2 and draw(st.integers(0, 4)) < 4:
        frame[0:2] = min(len(frame), 0xFFFF).to_bytes(2, "big")
    return bytes(frame)


@settings(max_examples=1000, derandomize=True, deadline=None)
@given(mutated(messages))
def test_decode_of_mutated_messages_is_total(frame: bytes) -> None:
    _decode_is_total(frame)


@settings(max_examples=1000, derandomize=True, deadline=None)
@given(mutated(updates(max_claims=4)))
def test_decode_of_mutated_updates_is_total(frame: bytes) -> None:
    _decode_is_total(frame)
