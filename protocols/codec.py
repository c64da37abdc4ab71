"""msgpack framing of envelopes and messages, with limits; every failure is a ProtocolError.

A frame is one msgpack array::

    [2, kind, type, sender, recipient, trace_id, span_id, parent_span_id,
     correlation_id, deadline, hops, chain, id, payload, budget,
     to_incarnation, from_incarnation, flags]

The leading 2 is the frame format version. The payload is itself a msgpack ``bin``
holding the message's fields, so the header can be read without touching it. A codec
given a `Signer` appends a signature trailer on encode and refuses, on decode, any
frame whose signature is missing or wrong before unpacking it (see protocols.signing).
Decoding is strict: each header field must have its exact type and shape, so that a
frame from a buggy or hostile peer fails here, named, and never inside a handler.

Decoding is bounded while it unpacks, not after: msgpack refuses a string, bin, array
or map longer than its limit before allocating it, and a budget counted as each array
and map is built refuses a payload with more objects, or nesting deeper, than allowed.
So a hostile payload costs at most about ``max_objects`` small objects of heap and the
time to build them, whatever its bytes say (`DecodeLimitError` names the setting).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, overload

import msgpack
from pydantic import ValidationError
from pydantic_core import to_jsonable_python

from protocols._header import (
    FRAME_VERSION,
    HEADER_STR_BYTES,
    MAX_BUDGET_UNITS,
    MAX_CHAIN,
    check_header,
    read_header,
)
from protocols._limits import DecodeBudget, HeaderShape, describe, over_limit, raise_hint
from protocols.envelope import Envelope, Kind
from protocols.errors import (
    DecodeError,
    DecodeLimitError,
    EncodeError,
    MeshError,
    SignatureError,
)
from protocols.message import _REGISTRY as _REGISTERED
from protocols.message import Message, message_class, register
from protocols.signing import Signer, is_signed

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_FRAME_BYTES",
    "DEFAULT_MAX_OBJECTS",
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "Codec",
    "decode",
    "decode_message",
    "encode",
    "encode_message",
]

M = TypeVar("M", bound=Message)

DEFAULT_MAX_FRAME_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024
DEFAULT_MAX_DEPTH = 32
#: Arrays, maps and their elements per payload (a map entry counts its key and value).
DEFAULT_MAX_OBJECTS = 100_000
#: Frames up to this size hold at most this many objects: their headers are not counted.
_UNCOUNTED_FRAME_BYTES = 16 * 1024


class Codec:
    """Encodes and decodes frames within fixed limits; reuse one per process.

    Args:
        max_frame_bytes: The largest frame accepted or produced, payload included.
        max_payload_bytes: The largest payload accepted or produced.
        max_depth: The deepest nesting of lists and maps allowed in a payload.
        max_objects: Arrays, maps and their elements allowed in one payload.
        max_array_len: The longest array in a payload.
        max_map_len: The most entries of one map in a payload.
        max_str_len: The longest string in a payload, in bytes.
        signer: Signs every frame encoded and verifies every frame decoded; None for
            an unsigned mesh.
    """

    __slots__ = (
        "max_array_len",
        "max_depth",
        "max_frame_bytes",
        "max_map_len",
        "max_objects",
        "max_payload_bytes",
        "max_str_len",
        "signer",
    )

    def __init__(
        self,
        *,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        max_depth: int = DEFAULT_MAX_DEPTH,
        max_objects: int = DEFAULT_MAX_OBJECTS,
        max_array_len: int = DEFAULT_MAX_OBJECTS,
        max_map_len: int = DEFAULT_MAX_OBJECTS,
        max_str_len: int = DEFAULT_MAX_PAYLOAD_BYTES,
        signer: Signer | None = None,
    ) -> None:
        if max_frame_bytes < 256 or max_depth < 1:
            raise ValueError("max_frame_bytes must be >= 256 and max_depth >= 1")
        if not 0 < max_payload_bytes <= max_frame_bytes:
            raise ValueError("max_payload_bytes must be > 0 and at most max_frame_bytes")
        if min(max_objects, max_array_len, max_map_len, max_str_len) < 1:
            raise ValueError("max_objects, max_array_len, max_map_len, max_str_len must be >= 1")
        self.max_frame_bytes = max_frame_bytes
        self.max_payload_bytes = max_payload_bytes
        self.max_depth = max_depth
        self.max_objects = max_objects
        self.max_array_len = max_array_len
        self.max_map_len = max_map_len
        self.max_str_len = max_str_len
        self.signer = signer

    def encode(self, envelope: Envelope) -> bytes:
        """Return `envelope` as one frame.

        Raises:
            EncodeError: A header field is malformed or the frame exceeds the size limit.
        """
        fields = [
            FRAME_VERSION,
            envelope.kind.value if isinstance(envelope.kind, Kind) else envelope.kind,
            envelope.type,
            envelope.sender,
            envelope.recipient,
            envelope.trace_id,
            envelope.span_id,
            envelope.parent_span_id,
            envelope.correlation_id,
            envelope.deadline,
            envelope.hops,
            list(envelope.chain) if isinstance(envelope.chain, tuple | list) else envelope.chain,
            envelope.id,
            envelope.payload,
            envelope.budget,
            envelope.to_incarnation,
            envelope.from_incarnation,
            envelope.flags,
        ]
        try:
            check_header(fields)
        except DecodeError as exc:
            raise EncodeError(f"cannot encode envelope: {exc.message}") from None
        if len(envelope.payload) > self.max_payload_bytes:
            raise EncodeError(
                f"payload of {len(envelope.payload)} bytes for {envelope.type!r} exceeds the "
                f"limit of {self.max_payload_bytes} bytes",
                agent=envelope.recipient,
                trace_id=envelope.trace_id,
                hint="send a reference (a path, a URL, a Ray object id) instead of the data, "
                "or raise max_payload_bytes (RAYMESH_MAX_PAYLOAD_BYTES) on every process",
            )
        try:
            frame: bytes = msgpack.packb(fields, use_bin_type=True)
        except (ValueError, TypeError) as exc:  # e.g. a lone surrogate in a name
            raise EncodeError(f"cannot encode envelope: {describe(exc)}") from None
        if self.signer is not None:
            frame = self.signer.sign(frame)
        if len(frame) > self.max_frame_bytes:
            raise EncodeError(
                f"frame of {len(frame)} bytes for {envelope.type!r} exceeds the limit of "
                f"{self.max_frame_bytes} bytes",
                agent=envelope.recipient,
                trace_id=envelope.trace_id,
                hint="send a reference (a path, a URL, a Ray object id) instead of the data, "
                "or raise max_frame_bytes",
            )
        return frame

    def decode(self, frame: bytes) -> Envelope:
        """Return the envelope in `frame`; the payload stays encoded.

        Raises:
            DecodeError: The frame is too large, not msgpack, or its header is malformed.
            SignatureError: The codec signs and the frame's signature is missing or wrong.
        """
        if not isinstance(frame, bytes | bytearray | memoryview):
            raise DecodeError(f"a frame must be bytes, not {type(frame).__name__}")
        if len(frame) > self.max_frame_bytes:
            raise DecodeLimitError(
                f"frame of {len(frame)} bytes exceeds the limit of {self.max_frame_bytes} bytes",
                limit="max_frame_bytes",
                hint=raise_hint("max_frame_bytes"),
            )
        signed_at: float | None = None
        if self.signer is not None:
            frame, signed_at = self.signer.verify(frame)
        # Each msgpack object takes a byte at least: a small frame cannot hold a header
        # bomb, so only a larger one pays for counting its containers.
        shape = HeaderShape() if len(frame) > _UNCOUNTED_FRAME_BYTES else None
        try:
            fields = msgpack.unpackb(
                frame, raw=False, use_list=True, strict_map_key=True,
                max_array_len=MAX_CHAIN + 1, max_map_len=MAX_BUDGET_UNITS + 1,
                max_str_len=HEADER_STR_BYTES, max_bin_len=self.max_payload_bytes,
                max_ext_len=0, list_hook=shape and shape.take, object_hook=shape and shape.take,
            )  # fmt: skip
        except DecodeLimitError:
            raise
        except Exception as exc:  # msgpack raises a zoo of types for bad input
            limited = over_limit(exc, "frame", header=True)
            if limited is not None:
                raise limited from None
            if self.signer is None and is_signed(frame):
                raise SignatureError(
                    "frame is signed but this process has no secret to verify it",
                    hint="give every process of the mesh the same RAYMESH_SECRET",
                ) from None
            raise DecodeError(f"frame is not valid msgpack: {describe(exc)}") from None
        envelope = read_header(fields)
        envelope.signed_at = signed_at
        return envelope

    def encode_message(self, message: Message) -> bytes:
        """Return the payload bytes for `message`.

        Raises:
            EncodeError: The message has no type tag or a value msgpack cannot carry.
        """
        if not isinstance(message, Message) or message.type_tag is None:
            raise EncodeError(
                f"{type(message).__name__} is not a sendable Message",
                hint="subclass Message with a tag: class Q(Message, type='app.q/1')",
            )
        if _REGISTERED.get(message.type_tag) is not type(message):
            register(type(message))
        try:
            payload: bytes = msgpack.packb(
                message.model_dump(mode="python"),
                use_bin_type=True,
                default=_plain,
            )
        except Exception as exc:  # pydantic or msgpack refusing a value
            raise EncodeError(
                f"cannot encode {message.type_tag!r}: {describe(exc)}",
                hint="message fields must be plain data: str, numbers, bytes, lists, maps, "
                "models, datetimes",
            ) from None
        return payload

    @overload
    def decode_message(self, envelope: Envelope) -> Message: ...
    @overload
    def decode_message(self, envelope: Envelope, expect: type[M]) -> M: ...

    def decode_message(self, envelope: Envelope, expect: type[Message] | None = None) -> Message:
        """Return the envelope's payload validated into its registered class.

        Args:
            envelope: A decoded envelope.
            expect: When given, the payload must be an instance of this class.

        Raises:
            UnknownMessageTypeError: No class in this process has the envelope's tag.
            DecodeError: The payload is malformed, too deep, or fails the class's schema.
        """
        try:
            if expect is not None and expect.type_tag == envelope.type:
                cls = expect
                if envelope.type not in _REGISTERED:
                    # Known from here on, so a later reply of this type decodes
                    # without `expect` too.
                    register(expect)
            else:
                cls = message_class(envelope.type)
        except MeshError as exc:
            raise exc.with_context(agent=envelope.recipient, trace_id=envelope.trace_id) from None
        if expect is not None and not issubclass(cls, expect):
            raise DecodeError(
                f"expected a {expect.type_tag or expect.__name__!r} reply, "
                f"got {envelope.type!r} from {envelope.sender!r}",
                agent=envelope.sender,
                trace_id=envelope.trace_id,
            )
        data = self.unpack_payload(envelope)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
                for err in exc.errors()[:3]
            )
            raise DecodeError(
                f"payload of {envelope.type!r} does not match {cls.__name__}: {problems}",
                agent=envelope.recipient,
                trace_id=envelope.trace_id,
            ) from None

    def unpack_payload(self, envelope: Envelope) -> Any:
        """Return the envelope's payload as plain data, unpacked within the codec's limits.

        Raises:
            DecodeLimitError: The payload passes a limit: its size, a length, its
                objects or its depth; unpacking stopped there.
            DecodeError: The payload is not valid msgpack.
        """
        payload = envelope.payload
        try:
            if len(payload) > self.max_payload_bytes:
                raise DecodeLimitError(
                    f"payload of {envelope.type!r} is {len(payload)} bytes, over the limit of "
                    f"{self.max_payload_bytes} bytes",
                    limit="max_payload_bytes",
                    hint=raise_hint("max_payload_bytes"),
                )
            budget = DecodeBudget(self.max_objects, self.max_depth, envelope.type)
            try:
                return msgpack.unpackb(
                    payload, raw=False, use_list=True, strict_map_key=False,
                    max_array_len=self.max_array_len, max_map_len=self.max_map_len,
                    max_str_len=self.max_str_len, max_bin_len=self.max_payload_bytes,
                    max_ext_len=self.max_payload_bytes,
                    list_hook=budget.on_list, object_hook=budget.on_map,
                )  # fmt: skip
            except DecodeLimitError:
                raise
            except Exception as exc:  # msgpack raises a zoo of types for bad input
                what = f"payload of {envelope.type!r}"
                limited = over_limit(exc, what, header=False)
                if limited is not None:
                    raise limited from None
                raise DecodeError(f"{what} is not valid msgpack: {describe(exc)}") from None
        except DecodeError as exc:
            raise exc.with_context(agent=envelope.recipient, trace_id=envelope.trace_id) from None


def _plain(value: Any) -> Any:
    # ISO strings carry whole-minute UTC offsets only: keep the instant, in UTC, rather
    # than let a historical offset with seconds shift the time.
    if isinstance(value, datetime):
        offset = value.utcoffset()
        if offset is not None and offset % timedelta(minutes=1):
            value = value.astimezone(UTC)
    return to_jsonable_python(value)


_DEFAULT = Codec()

encode = _DEFAULT.encode
decode = _DEFAULT.decode
encode_message = _DEFAULT.encode_message
decode_message = _DEFAULT.decode_message
