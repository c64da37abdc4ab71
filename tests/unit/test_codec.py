"""The codec: every envelope round-trips, and every bad frame fails as a ProtocolError.

Property tests run on hypothesis (its example database replays past failures). No Ray.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field

import mesh
import protocols
from protocols import (
    Codec,
    DecodeError,
    EncodeError,
    Envelope,
    Kind,
    MeshError,
    Message,
    ProtocolError,
    SignatureError,
    UnknownMessageTypeError,
    decode,
    decode_message,
    encode,
    encode_message,
)

# --- test messages -------------------------------------------------------------------


class Point(BaseModel):
    x: int
    y: int
    label: str = ""


class Note(Message, type="test.unit.note/1"):
    text: str
    count: int
    ratio: float
    urgent: bool
    blob: bytes
    nothing: None = None


class Batch(Message, type="test.unit.batch/1"):
    ids: list[int]
    labels: dict[str, str]
    origin: Point
    points: list[Point] = Field(default_factory=list)


class Stamp(Message, type="test.unit.stamp/1"):
    at: dt.datetime
    comment: str | None = None
    priority: int = 0


class Blob(Message, type="test.unit.blob/1"):
    """Carries any plain data; used to probe nesting limits."""

    data: Any = None


TEST_MESSAGES: tuple[type[Message], ...] = (Note, Batch, Stamp, Blob)
FIELD_NAMES = sorted({name for cls in TEST_MESSAGES for name in cls.model_fields})

# --- strategies ----------------------------------------------------------------------

HEX = "0123456789abcdef"
# msgpack carries int64 and uint64; a wider int is an EncodeError, not a round trip.
ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)
# NaN is carried faithfully, but NaN != NaN would make the equality check meaningless.
floats = st.floats(allow_nan=False)
names = st.text(min_size=1, max_size=256)
# Datetimes travel as ISO strings, which only hold whole-minute UTC offsets: others are
# sent in UTC (same instant, see below); naive and whole-minute ones round-trip exactly.
offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda minutes: dt.timezone(timedelta(minutes=minutes))
)
datetimes = st.datetimes(timezones=st.none() | st.just(dt.UTC) | offsets)
points = st.builds(Point, x=ints, y=ints, label=st.text(max_size=20))

plain_values = st.recursive(
    st.none() | st.booleans() | ints | floats | st.text(max_size=20) | st.binary(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)

messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(
        Note,
        text=st.text(),
        count=ints,
        ratio=floats,
        urgent=st.booleans(),
        blob=st.binary(max_size=64),
        nothing=st.none(),
    ),
    st.builds(
        Batch,
        ids=st.lists(ints, max_size=8),
        labels=st.dictionaries(st.text(max_size=16), st.text(max_size=16), max_size=5),
        origin=points,
        points=st.lists(points, max_size=3),
    ),
    st.builds(
        Stamp,
        at=datetimes,
        comment=st.none() | st.text(max_size=40),
        priority=ints,
    ),
    st.builds(Stamp, at=datetimes),  # the optional fields left at their defaults
    st.builds(Blob, data=plain_values),
)


@st.composite
def envelopes_with_messages(draw: st.DrawFn) -> tuple[Envelope, Message]:
    message = draw(messages)
    assert message.type_tag is not None
    envelope = Envelope(
        kind=draw(st.sampled_from(Kind)),
        type=message.type_tag,
        sender=draw(names),
        recipient=draw(names),
        payload=encode_message(message),
        trace_id=draw(st.text(HEX, min_size=32, max_size=32)),
        span_id=draw(st.text(HEX, min_size=16, max_size=16)),
        parent_span_id=draw(st.none() | st.text(HEX, min_size=16, max_size=16)),
        correlation_id=draw(st.none() | names),
        deadline=draw(st.none() | st.floats(allow_nan=False, allow_infinity=False)),
        hops=draw(st.integers(min_value=0, max_value=2**31 - 1)),
        chain=tuple(draw(st.lists(names, max_size=5))),
        id=draw(names),
        budget=draw(
            st.none()
            | st.dictionaries(
                names, st.floats(min_value=0, allow_nan=False, allow_infinity=False), max_size=3
            )
        ),
    )
    return envelope, message


envelopes = envelopes_with_messages().map(lambda pair: pair[0])


def mutate(draw: Callable[[st.SearchStrategy[Any]], Any], data: bytes) -> bytes:
    """Apply 1-4 hypothesis-chosen truncations, bit flips, insertions and replacements."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        op = draw(st.sampled_from(["truncate", "flip", "insert", "replace"]))
        pos = draw(st.integers(min_value=0, max_value=len(buf)))
        if op == "truncate":
            del buf[pos:]
        elif op == "flip" and buf:
            buf[min(pos, len(buf) - 1)] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif op == "insert":
            buf[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "replace":
            end = draw(st.integers(min_value=pos, max_value=len(buf)))
            buf[pos:end] = draw(st.binary(max_size=16))
    return bytes(buf)


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    return mutate(draw, encode(draw(envelopes)))


@st.composite
def near_valid_frames(draw: st.DrawFn) -> bytes:
    """A valid frame with 1-3 of its 15 fields replaced by arbitrary msgpack values."""
    fields = msgpack.unpackb(encode(draw(envelopes)))
    for index in draw(st.lists(st.integers(min_value=0, max_value=13), min_size=1, max_size=3)):
        fields[index] = draw(plain_values)
    frame: bytes = msgpack.packb(fields, use_bin_type=True)
    return frame


# --- helpers -------------------------------------------------------------------------

FUZZ = settings(
    max_examples=300,
    deadline=timedelta(milliseconds=750),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def expect_error(
    exc: BaseException, allowed: type[ProtocolError] | tuple[type[ProtocolError], ...]
) -> ProtocolError:
    """Return `exc` if it is an `allowed` error with a message; fail the test otherwise."""
    if not isinstance(exc, allowed):
        pytest.fail(f"{type(exc).__name__} escaped where only {allowed!r} may: {exc!r}")
    assert str(exc), "a ProtocolError must say what went wrong"
    return exc


def decode_fully(frame: object) -> Message | ProtocolError:
    """Decode a frame and then its payload; return the message or the ProtocolError raised.

    Fails the test if anything other than a DecodeError or a SignatureError (from
    `decode`: a mutated frame may end like a signed one, which an unsigned codec refuses as
    such) or a ProtocolError (from `decode_message`) escapes.
    """
    try:
        envelope = decode(frame)  # type: ignore[arg-type]
    except Exception as exc:
        return expect_error(exc, (DecodeError, SignatureError))
    assert isinstance(envelope, Envelope)
    try:
        message = decode_message(envelope)
    except Exception as exc:
        return expect_error(exc, ProtocolError)
    assert isinstance(message, Message)
    assert message.type_tag == envelope.type
    return message


def frame_for(payload: bytes, tag: str = "test.unit.note/1") -> Envelope:
    return Envelope(kind=Kind.ASK, type=tag, sender="asker", recipient="worker", payload=payload)


def nested_lists(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


# --- round trips ---------------------------------------------------------------------


@FUZZ
@given(envelopes_with_messages())
def test_every_envelope_and_its_message_round_trip_through_a_frame(
    pair: tuple[Envelope, Message],
) -> None:
    envelope, message = pair
    decoded = decode(encode(envelope))
    assert decoded == envelope
    assert type(decoded.kind) is Kind
    assert type(decoded.chain) is tuple
    again = decode_message(decoded)
    assert type(again) is type(message)
    assert again == message


@FUZZ
@given(envelopes_with_messages())
def test_decode_message_with_the_expected_class_returns_that_class(
    pair: tuple[Envelope, Message],
) -> None:
    envelope, message = pair
    assert decode_message(envelope, type(message)) == message
    assert decode_message(envelope, Message) == message  # an abstract base matches all


def test_tuples_in_untyped_fields_come_back_as_lists() -> None:
    # msgpack has one array type; only a field typed as a tuple gets a tuple back.
    envelope = frame_for(encode_message(Blob(data=(1, (2, 3)))), Blob.type_tag or "")
    assert decode_message(decode(encode(envelope))) == Blob(data=[1, [2, 3]])


def test_datetimes_with_sub_minute_utc_offsets_keep_their_instant() -> None:
    # Real zones had such offsets: Europe/Amsterdam was +00:19:32 until 1937.
    when = dt.datetime(1900, 1, 1, tzinfo=dt.timezone(timedelta(minutes=19, seconds=32)))
    again = decode_message(frame_for(encode_message(Stamp(at=when)), "test.unit.stamp/1"))
    assert again == Stamp(at=when)


def test_an_int_msgpack_cannot_carry_is_an_encode_error() -> None:
    with pytest.raises(EncodeError, match=re.escape("test.unit.note/1")):
        encode_message(Note(text="", count=2**64, ratio=0.0, urgent=False, blob=b""))


# --- hostile input -------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes_raise_only_protocol_errors(frame: bytes) -> None:
    decode_fully(frame)


@FUZZ
@given(near_valid_frames())
def test_frames_with_wrongly_typed_header_fields_raise_only_protocol_errors(frame: bytes) -> None:
    decode_fully(frame)


@FUZZ
@given(mutated_frames())
def test_mutated_frames_raise_only_protocol_errors(frame: bytes) -> None:
    decode_fully(frame)


@FUZZ
@given(st.data())
def test_mutated_payloads_raise_only_protocol_errors(data: st.DataObject) -> None:
    envelope = data.draw(envelopes)
    broken = dataclasses.replace(envelope, payload=mutate(data.draw, envelope.payload))
    decode_fully(encode(broken))  # the header is intact, so encoding must succeed


@FUZZ
@given(
    tag=st.sampled_from([cls.type_tag for cls in TEST_MESSAGES]),
    body=st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=8), plain_values)
    | plain_values,
)
def test_payloads_of_the_wrong_shape_raise_only_protocol_errors(tag: str, body: Any) -> None:
    decode_fully(encode(frame_for(msgpack.packb(body, use_bin_type=True), tag)))


# --- specific failures ---------------------------------------------------------------


def test_a_broken_frame_ending_like_a_signed_one_is_refused_as_signed() -> None:
    # What a fuzzed frame once hit: an unsigned codec names the missing secret.
    with pytest.raises(SignatureError, match="no secret"):
        decode(b"\xc1" * 64 + b"RMS1")


def test_a_frame_over_the_size_limit_is_refused_with_size_and_limit() -> None:
    envelope = frame_for(b"\x00" * 2000)
    frame = encode(envelope)
    with pytest.raises(DecodeError) as info:
        Codec(max_frame_bytes=1024, max_payload_bytes=512).decode(frame)
    assert f"frame of {len(frame)} bytes" in str(info.value)
    assert "limit of 1024 bytes" in str(info.value)


def test_encoding_an_envelope_over_the_size_limit_is_an_encode_error() -> None:
    envelope = frame_for(b"\x00" * 1000)  # a payload within its cap, in a frame over its
    with pytest.raises(
        EncodeError, match=r"frame of \d+ bytes .* exceeds the limit of 1024 bytes"
    ) as info:
        Codec(max_frame_bytes=1024, max_payload_bytes=1000).encode(envelope)
    assert info.value.agent == "worker"
    assert info.value.trace_id == envelope.trace_id
    assert info.value.hint


def test_a_payload_deeper_than_max_depth_is_refused() -> None:
    envelope = frame_for(msgpack.packb(nested_lists(100)))
    with pytest.raises(DecodeError, match="deeper than 32 levels"):
        Codec(max_depth=32).decode_message(envelope)


@pytest.mark.parametrize(("depth", "allowed"), [(32, True), (33, False)])
def test_max_depth_counts_the_payload_map_as_the_first_level(depth: int, allowed: bool) -> None:
    payload = msgpack.packb({"data": nested_lists(depth - 1)})
    envelope = frame_for(payload, "test.unit.blob/1")
    if allowed:
        assert Codec(max_depth=32).decode_message(envelope) == Blob(data=nested_lists(depth - 1))
    else:
        with pytest.raises(DecodeError, match="deeper"):
            Codec(max_depth=32).decode_message(envelope)


def test_a_deep_payload_within_msgpacks_own_stack_is_checked_without_recursion() -> None:
    envelope = frame_for(msgpack.packb({"data": nested_lists(1000)}), "test.unit.blob/1")
    with pytest.raises(DecodeError, match="deeper"):
        decode_message(envelope)


@pytest.mark.parametrize("where", ["frame", "payload"])
def test_a_nesting_bomb_is_a_decode_error_not_a_recursion_error(where: str) -> None:
    bomb = b"\x91" * 2000 + b"\xc0"  # [[[[...nil...]]]] 2000 deep
    if where == "frame":
        assert isinstance(decode_fully(bomb), DecodeError)
    else:
        assert isinstance(decode_fully(encode(frame_for(bomb))), DecodeError)


def test_invalid_utf8_in_a_str_field_is_a_decode_error() -> None:
    payload = b"\x81" + msgpack.packb("text") + b"\xa2\xff\xfe"  # {"text": <bad utf-8>}
    with pytest.raises(DecodeError, match="not valid msgpack"):
        decode_message(frame_for(payload))


def test_invalid_utf8_in_a_header_name_is_a_decode_error() -> None:
    good = encode(frame_for(b"\xc0"))
    bad = good.replace(msgpack.packb("asker"), b"\xa5\xff\xfe\xfd\xfc\xfb", 1)
    assert bad != good
    with pytest.raises(DecodeError, match="not valid msgpack"):
        decode(bad)


def test_a_payload_missing_a_required_field_names_the_field() -> None:
    payload = msgpack.packb({"text": "hi", "ratio": 1.0, "urgent": True, "blob": b""})
    with pytest.raises(DecodeError) as info:
        decode_message(frame_for(payload))
    assert "count" in str(info.value)
    assert "Note" in str(info.value)
    assert info.value.agent == "worker"


def test_an_unknown_tag_is_an_unknown_message_type_error() -> None:
    envelope = frame_for(msgpack.packb({}), "test.unit.nobody/1")
    with pytest.raises(UnknownMessageTypeError, match=re.escape("test.unit.nobody/1")) as info:
        decode_message(decode(encode(envelope)))
    assert isinstance(info.value, DecodeError)
    assert isinstance(info.value, ValueError)
    assert info.value.agent == "worker"
    assert info.value.trace_id == envelope.trace_id
    assert info.value.hint


def _fields() -> list[Any]:
    fields: list[Any] = msgpack.unpackb(encode(frame_for(b"\xc0")))
    return fields


@pytest.mark.parametrize(
    ("frame", "text"),
    [
        pytest.param(msgpack.packb({"version": 1}), "array of 18 fields", id="map"),
        pytest.param(msgpack.packb(_fields()[:17]), "array of 18 fields", id="17-fields"),
        pytest.param(msgpack.packb([*_fields(), 0]), "array of 18 fields", id="19-fields"),
        pytest.param(msgpack.packb([1, *_fields()[1:]]), "frame version 1", id="version-1"),
        pytest.param(msgpack.packb([True, *_fields()[1:]]), "frame version True", id="bool"),
        pytest.param(msgpack.packb(["1", *_fields()[1:]]), "frame version '1'", id="str"),
        pytest.param(encode(frame_for(b"\xc0")) + b"\xc0", "not valid msgpack", id="trailing"),
        pytest.param(b"", "not valid msgpack", id="empty"),
    ],
)
def test_a_frame_of_the_wrong_shape_says_what_is_wrong(frame: bytes, text: str) -> None:
    with pytest.raises(DecodeError, match=text):
        decode(frame)


@pytest.mark.parametrize(
    ("index", "value", "text"),
    [
        (1, "shout", "^unknown envelope kind 'shout'"),
        (2, "", "^type must be a non-empty string"),
        (3, "x" * 257, "^sender must be .* at most 256 characters"),
        (4, None, "^recipient must be"),
        (5, "A" * 32, "^trace_id 'A+' is not 32 lowercase hex"),
        (6, "0" * 15, "^span_id '0+' is not 16 lowercase hex"),
        (7, "g" * 16, "^parent_span_id 'g+' is not 16"),
        (8, "", "^correlation_id must be"),
        (9, float("inf"), "^deadline inf is not a finite number"),
        (9, True, "^deadline True is not"),
        (10, -1, "^hops -1 is not"),
        (10, 2**31, "^hops 2147483648 is not"),
        (11, ["a"] * 257, "^chain must be a list of at most 256"),
        (11, [""], "^chain entry must be"),
        (11, "a", "^chain must be a list"),
        (12, 7, "^id must be"),
        (13, "text", "^payload must be msgpack bin, not str"),
    ],
)
def test_each_malformed_header_field_is_named(index: int, value: Any, text: str) -> None:
    fields = _fields()
    fields[index] = value
    with pytest.raises(DecodeError, match=text):
        decode(msgpack.packb(fields, use_bin_type=True))


@pytest.mark.parametrize("frame", ["a string", None, 42, [1, 2], {"a": 1}])
def test_a_frame_that_is_not_bytes_is_a_decode_error(frame: object) -> None:
    with pytest.raises(DecodeError, match=f"must be bytes, not {type(frame).__name__}"):
        decode(frame)  # type: ignore[arg-type]


def test_bytearray_and_memoryview_frames_decode() -> None:
    envelope = frame_for(b"\xc0")
    frame = encode(envelope)
    assert decode(bytearray(frame)) == envelope  # type: ignore[arg-type]
    assert decode(memoryview(frame)) == envelope  # type: ignore[arg-type]


def test_decode_message_expecting_another_class_names_both_tags() -> None:
    note = Note(text="hi", count=1, ratio=0.5, urgent=False, blob=b"")
    envelope = frame_for(encode_message(note))
    with pytest.raises(DecodeError) as info:
        decode_message(envelope, Batch)
    assert "test.unit.batch/1" in str(info.value)
    assert "test.unit.note/1" in str(info.value)
    assert info.value.agent == "asker"


def malformed(**changes: Any) -> Envelope:
    """A valid envelope with some fields set to values their types do not allow."""
    return dataclasses.replace(frame_for(b"\xc0"), **changes)


@pytest.mark.parametrize(
    "envelope",
    [
        pytest.param(malformed(sender="\ud800"), id="surrogate-name"),
        pytest.param(malformed(chain=None), id="chain-none"),
        pytest.param(malformed(kind="shout"), id="bad-kind"),
        pytest.param(malformed(hops=-1), id="negative-hops"),
        pytest.param(malformed(budget={"usd": -1.0}), id="negative-budget"),
        pytest.param(malformed(budget={"": 1.0}), id="unnamed-budget-unit"),
        pytest.param(malformed(budget=[1.0]), id="budget-not-a-map"),
        pytest.param(malformed(trace_id="x"), id="bad-trace-id"),
        pytest.param(malformed(payload="text"), id="str-payload"),
    ],
)
def test_encoding_a_malformed_envelope_is_an_encode_error(envelope: Envelope) -> None:
    try:
        encode(envelope)
    except Exception as exc:
        expect_error(exc, EncodeError)
    else:
        pytest.fail("a malformed envelope was encoded")


# --- the error tree ------------------------------------------------------------------


def test_decode_errors_are_value_errors_and_mesh_errors() -> None:
    assert mesh.MeshError is protocols.MeshError is MeshError
    assert issubclass(DecodeError, ValueError)
    assert issubclass(UnknownMessageTypeError, DecodeError)
    for cls in (ProtocolError, EncodeError, DecodeError, UnknownMessageTypeError):
        assert issubclass(cls, MeshError)
        assert issubclass(cls, ProtocolError)
