"""raymesh's wire: typed messages, the envelope and its msgpack codec (no Ray here)."""

from typing import Any

from protocols import messenger as _messenger
from protocols._senders import PerSender
from protocols.codec import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_FRAME_BYTES,
    DEFAULT_MAX_OBJECTS,
    DEFAULT_MAX_PAYLOAD_BYTES,
    Codec,
    decode,
    decode_message,
    encode,
    encode_message,
)
from protocols.envelope import DRIVER, Envelope, Kind, new_message_id, new_span_id, new_trace_id
from protocols.errors import (
    DeadlineExceededError,
    DecodeError,
    DecodeLimitError,
    DeliveryError,
    EncodeError,
    MeshError,
    MisdirectedError,
    ProtocolError,
    ReplayError,
    SignatureError,
    UnknownMessageTypeError,
)
from protocols.message import Message, message_class, message_types
from protocols.messenger import (
    Delivery,
    Handler,
    InMemoryMessenger,
    Messenger,
    Peer,
    PeerInfo,
    UnknownPeerError,
)
from protocols.patterns.errors import PatternError
from protocols.signing import ReplayGuard, Signer
from protocols.stream import Chunk, Stream, StreamEnd
from protocols.wire import ErrorReply, Result, Task, Usage, UsageQuery, UsageSummary

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_FRAME_BYTES",
    "DEFAULT_MAX_OBJECTS",
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "DRIVER",
    "Chunk",
    "Codec",
    "DeadlineExceededError",
    "DecodeError",
    "DecodeLimitError",
    "Delivery",
    "DeliveryError",
    "EncodeError",
    "Envelope",
    "ErrorReply",
    "Handler",
    "InMemoryMessenger",
    "Kind",
    "MeshError",
    "Message",
    "Messenger",
    "MisdirectedError",
    "PatternError",
    "Peer",
    "PeerInfo",
    "PerSender",
    "ProtocolError",
    "ReplayError",
    "ReplayGuard",
    "Result",
    "SignatureError",
    "Signer",
    "Stream",
    "StreamEnd",
    "Task",
    "UnknownMessageTypeError",
    "UnknownPeerError",
    "Usage",
    "UsageQuery",
    "UsageSummary",
    "decode",
    "decode_message",
    "encode",
    "encode_message",
    "message_class",
    "message_types",
    "new_message_id",
    "new_span_id",
    "new_trace_id",
]


def __getattr__(name: str) -> Any:
    # Deprecated names (``AskTimeoutError``) and their warning live where they were defined.
    try:
        return _messenger.deprecated(name, stacklevel=3)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
