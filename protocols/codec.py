"""msgpack framing of envelopes and messages, with limits; every failure is a ProtocolError.

A frame is one msgpack array::

    [1, kind, type, sender, recipient, trace_id, span_id, parent_span_id,
     correlation_id, deadline, hops, chain, id, payload, budget]

The leading 1 is the frame format version. The payload is itself a msgpack ``bin``
holding the message's fields, so the header can be read without touching it. A codec
given a `Signer` appends a signature trailer on encode and refuses, on decode, any
frame whose signature is missing or wrong before unpacking it (see protocols.signing).
Decoding is strict: each header field must have its exact type and shape, so that a
frame from a buggy or hostile peer fails here, named, and never inside a handler.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, overload

import msgpack
from pydantic import ValidationError
from pydantic_core import to_jsonable_python

from protocols.envelope import Envelope, Kind
from protocols.errors import DecodeError, EncodeError, MeshError, SignatureError
from protocols.message import _REGISTRY as _REGISTERED
from protocols.message import Message, message_class, register
from protocols.signing import Signer, is_signed

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_FRAME_BYTES",
    "Codec",
    "decode",
    "decode_message",
    "encode",
    "encode_message",
]

M = TypeVar("M", bound=Message)

DEFAULT_MAX_FRAME_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_DEPTH = 32
FRAME_VERSION = 1
_FIELDS = 15
_MAX_BUDGET_UNITS = 16
_MAX_NAME = 256
_MAX_CHAIN = 256
_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_SPAN_ID = re.compile(r"[0-9a-f]{16}")
_KINDS = {kind.value: kind for kind in Kind}


class Codec:
    """Encodes and decodes frames within fixed limits; reuse one per process.

    Args:
        max_frame_bytes: The largest frame accepted or produced, payload included.
        max_depth: The deepest nesting of lists and maps allowed in a payload.
        signer: Signs every frame encoded and verifies every frame decoded; None for
            an unsigned mesh.
    """

    __slots__ = ("max_depth", "max_frame_bytes", "signer")

    def __init__(
        self,
        *,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        max_depth: int = DEFAULT_MAX_DEPTH,
        signer: Signer | None = None,
    ) -> None:
        if max_frame_bytes < 256 or max_depth < 1:
            raise ValueError("max_frame_bytes must be >= 256 and max_depth >= 1")
        self.max_frame_bytes = max_frame_bytes
        self.max_depth = max_depth
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
        ]
        try:
            _check_header(fields)
        except DecodeError as exc:
            raise EncodeError(f"cannot encode envelope: {exc.message}") from None
        try:
            frame: bytes = msgpack.packb(fields, use_bin_type=True)
        except (ValueError, TypeError) as exc:  # e.g. a lone surrogate in a name
            raise EncodeError(f"cannot encode envelope: {_describe(exc)}") from None
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
            raise DecodeError(
                f"frame of {len(frame)} bytes exceeds the limit of {self.max_frame_bytes} bytes"
            )
        signed_at: float | None = None
        if self.signer is not None:
            frame, signed_at = self.signer.verify(frame)
        try:
            fields = msgpack.unpackb(frame, raw=False, use_list=True, strict_map_key=True)
        except Exception as exc:  # msgpack raises a zoo of types for bad input
            if self.signer is None and is_signed(frame):
                raise SignatureError(
                    "frame is signed but this process has no secret to verify it",
                    hint="give every process of the mesh the same RAYMESH_SECRET",
                ) from None
            raise DecodeError(f"frame is not valid msgpack: {_describe(exc)}") from None
        envelope = _read_header(fields)
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
                f"cannot encode {message.type_tag!r}: {_describe(exc)}",
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
        try:
            data = msgpack.unpackb(envelope.payload, raw=False, use_list=True, strict_map_key=False)
        except Exception as exc:  # msgpack raises a zoo of types for bad input
            raise DecodeError(
                f"payload of {envelope.type!r} is not valid msgpack: {_describe(exc)}",
                agent=envelope.recipient,
                trace_id=envelope.trace_id,
            ) from None
        if not _within_depth(data, self.max_depth):
            raise DecodeError(
                f"payload of {envelope.type!r} nests deeper than {self.max_depth} levels",
                agent=envelope.recipient,
                trace_id=envelope.trace_id,
            )
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


def _plain(value: Any) -> Any:
    # ISO strings carry whole-minute UTC offsets only: keep the instant, in UTC, rather
    # than let a historical offset with seconds shift the time.
    if isinstance(value, datetime):
        offset = value.utcoffset()
        if offset is not None and offset % timedelta(minutes=1):
            value = value.astimezone(UTC)
    return to_jsonable_python(value)


def _describe(exc: BaseException) -> str:
    text = str(exc)[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _within_depth(data: Any, limit: int) -> bool:
    # Iterative, so that a hostile payload cannot exhaust the Python stack.
    stack: list[tuple[Any, int]] = [(data, 1)] if type(data) in (dict, list) else []
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return False
        children = node.values() if type(node) is dict else node
        stack.extend((child, depth + 1) for child in children if type(child) in (dict, list))
    return True


def _read_header(fields: Any) -> Envelope:
    _check_header(fields)
    (_, kind, tag, sender, recipient, trace_id, span_id, parent, corr, deadline, hops,
     chain, msg_id, payload, budget) = fields  # fmt: skip
    return Envelope(
        kind=_KINDS[kind],
        type=tag,
        sender=sender,
        recipient=recipient,
        payload=payload,
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        correlation_id=corr,
        deadline=deadline,
        hops=hops,
        chain=tuple(chain),
        id=msg_id,
        budget=budget,
    )


def _check_header(fields: Any) -> None:
    # Also run on encode, where building the envelope again would be wasted work.
    if type(fields) is not list or len(fields) != _FIELDS:
        raise DecodeError(f"a frame must be a msgpack array of {_FIELDS} fields")
    (version, kind, tag, sender, recipient, trace_id, span_id, parent, corr, deadline, hops,
     chain, msg_id, payload, budget) = fields  # fmt: skip
    if version != FRAME_VERSION or type(version) is not int:
        raise DecodeError(f"unsupported frame version {version!r} (expected {FRAME_VERSION})")
    if type(kind) is not str or kind not in _KINDS:
        raise DecodeError(f"unknown envelope kind {kind!r}")
    _check_name("type", tag)
    _check_name("sender", sender)
    _check_name("recipient", recipient)
    _check_trace(trace_id, span_id, parent)
    if corr is not None:
        _check_name("correlation_id", corr)
    if deadline is not None and (type(deadline) not in (float, int) or not math.isfinite(deadline)):
        raise DecodeError(f"deadline {deadline!r} is not a finite number of epoch seconds")
    if type(hops) is not int or not 0 <= hops < 2**31:
        raise DecodeError(f"hops {hops!r} is not a small non-negative integer")
    if type(chain) is not list or len(chain) > _MAX_CHAIN:
        raise DecodeError(f"chain must be a list of at most {_MAX_CHAIN} agent names")
    for name in chain:
        _check_name("chain entry", name)
    _check_name("id", msg_id)
    if type(payload) is not bytes:
        raise DecodeError(f"payload must be msgpack bin, not {type(payload).__name__}")
    if budget is not None:
        _check_budget(budget)


def _check_trace(trace_id: Any, span_id: Any, parent: Any) -> None:
    if type(trace_id) is not str or not _TRACE_ID.fullmatch(trace_id):
        raise DecodeError(f"trace_id {trace_id!r} is not 32 lowercase hex digits")
    if type(span_id) is not str or not _SPAN_ID.fullmatch(span_id):
        raise DecodeError(f"span_id {span_id!r} is not 16 lowercase hex digits")
    if parent is not None and (type(parent) is not str or not _SPAN_ID.fullmatch(parent)):
        raise DecodeError(f"parent_span_id {parent!r} is not 16 lowercase hex digits")


def _check_budget(budget: Any) -> None:
    if type(budget) is not dict or len(budget) > _MAX_BUDGET_UNITS:
        raise DecodeError(f"budget must be a map of at most {_MAX_BUDGET_UNITS} units")
    for unit, amount in budget.items():
        _check_name("budget unit", unit)
        if type(amount) not in (int, float) or not math.isfinite(amount) or amount < 0:
            raise DecodeError(f"budget of {unit!r} must be a finite number >= 0, not {amount!r}")


def _check_name(what: str, value: Any) -> None:
    if type(value) is not str or not 0 < len(value) <= _MAX_NAME:
        raise DecodeError(f"{what} must be a non-empty string of at most {_MAX_NAME} characters")


_DEFAULT = Codec()

encode = _DEFAULT.encode
decode = _DEFAULT.decode
encode_message = _DEFAULT.encode_message
decode_message = _DEFAULT.decode_message
