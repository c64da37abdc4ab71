"""The error tree: every error keeps its class and context across pickle and the wire."""

from __future__ import annotations

import pickle

import pytest

import mesh
import protocols
from mesh import (
    ConfigError,
    DeadlineExceededError,
    DecodeError,
    DeliveryError,
    DiedBeforeRunError,
    HandlerError,
    HopLimitError,
    MailboxFullError,
    MeshError,
    NameTakenError,
    NoHandlerError,
    OutcomeUnknownError,
    PeerDeadError,
    PeerNotFoundError,
    RegistryUnavailableError,
)
from protocols import Envelope, Kind, decode, decode_message, encode, encode_message
from protocols.wire import ErrorReply

EXPORTED: list[type[MeshError]] = [
    obj
    for name in mesh.__all__
    if isinstance(obj := getattr(mesh, name), type) and issubclass(obj, MeshError)
]
TRACE = "0123456789abcdef" * 2
TRACEBACK = "Traceback (most recent call last):\n  File \"h.py\", line 1\nKeyError: 'x'\n"


# Sample values for the extra keywords (`details`) an error class carries.
DETAILS: dict[str, object] = {
    "remote_type": "KeyError",
    "remote_traceback": TRACEBACK,
    "cycle": ["critic", "writer", "critic"],
}


def make(cls: type[MeshError]) -> MeshError:
    """Return an instance of `cls` with every attribute and detail set to a non-default."""
    details = {name: DETAILS.get(name, f"sample {name}") for name in cls.details}
    return cls("the handler failed", agent="critic", trace_id=TRACE, hint="retry", **details)


def assert_same(got: MeshError, want: MeshError) -> None:
    assert type(got) is type(want)
    assert got.message == want.message
    assert got.agent == want.agent
    assert got.trace_id == want.trace_id
    assert got.hint == want.hint
    assert str(got) == str(want)
    for name in want.details:
        assert getattr(got, name) == getattr(want, name), name


def test_handler_errors_carry_the_remote_type_and_traceback() -> None:
    error = make(HandlerError)
    assert isinstance(error, HandlerError)
    assert (error.remote_type, error.remote_traceback) == ("KeyError", TRACEBACK)
    assert HandlerError.details == ("remote_type", "remote_traceback")


def _subclasses(cls: type[MeshError]) -> set[type[MeshError]]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found


# Every error class the runtime and the wire define, exported or not.
DEFINED: set[type[MeshError]] = {
    cls
    for cls in _subclasses(MeshError) | {MeshError}
    if cls.__module__ in {"mesh.errors", "protocols.errors"}
}
ALL_ERRORS = sorted(DEFINED | set(EXPORTED), key=lambda cls: cls.__name__)


def test_mesh_exports_every_error_the_runtime_and_wire_define() -> None:
    assert {cls.__name__ for cls in DEFINED - set(EXPORTED)} == set()


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=lambda cls: cls.__name__)
def test_every_error_survives_pickling(cls: type[MeshError]) -> None:
    error = make(cls)
    for protocol in (0, pickle.HIGHEST_PROTOCOL):
        assert_same(pickle.loads(pickle.dumps(error, protocol=protocol)), error)


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=lambda cls: cls.__name__)
def test_every_error_survives_to_wire_and_from_wire(cls: type[MeshError]) -> None:
    error = make(cls)
    data = error.to_wire()
    assert data["code"] == cls.__name__
    assert_same(MeshError.from_wire(data), error)


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=lambda cls: cls.__name__)
def test_every_error_survives_an_error_reply_through_a_frame(cls: type[MeshError]) -> None:
    error = make(cls)
    assert_same(ErrorReply.of(error).to_error(), error)
    envelope = Envelope(
        kind=Kind.ERROR,
        type="raymesh.error/1",
        sender="critic",
        recipient="asker",
        payload=encode_message(ErrorReply.of(error)),
        trace_id=TRACE,
    )
    reply = decode_message(decode(encode(envelope)), ErrorReply)
    assert reply == ErrorReply.of(error)
    assert_same(reply.to_error(), error)


def test_an_unknown_error_code_becomes_a_plain_mesh_error() -> None:
    data = {
        "code": "NoSuchError",
        "message": "from a newer peer",
        "agent": "critic",
        "trace_id": TRACE,
        "hint": "upgrade",
        "remote_type": "dropped: MeshError has no such detail",
        "something_new": 1,
    }
    error = MeshError.from_wire(data)
    assert type(error) is MeshError
    assert (error.message, error.agent, error.trace_id, error.hint) == (
        "from a newer peer",
        "critic",
        TRACE,
        "upgrade",
    )
    assert not hasattr(error, "remote_type")
    assert type(MeshError.from_wire({"message": "no code"})) is MeshError


def test_from_wire_ignores_details_another_class_would_take() -> None:
    error = MeshError.from_wire({"code": "PeerDeadError", "message": "gone", "remote_type": "X"})
    assert type(error) is PeerDeadError
    assert not hasattr(error, "remote_type")


def test_str_shows_message_agent_trace_and_hint() -> None:
    text = str(PeerDeadError("the peer died", agent="critic", trace_id=TRACE, hint="retry"))
    for part in ("the peer died", "agent=critic", f"trace={TRACE}", "hint: retry"):
        assert part in text
    assert str(PeerDeadError("the peer died")) == "the peer died"


def test_with_context_fills_only_what_is_missing() -> None:
    error = PeerDeadError("gone", agent="known").with_context(agent="other", trace_id=TRACE)
    assert (error.agent, error.trace_id) == ("known", TRACE)


@pytest.mark.parametrize(
    ("cls", "base"),
    [
        (PeerNotFoundError, LookupError),
        (DeadlineExceededError, TimeoutError),
        (DecodeError, ValueError),
        (NameTakenError, ConfigError),
        (PeerNotFoundError, DeliveryError),
        (PeerDeadError, DeliveryError),
        (DiedBeforeRunError, PeerDeadError),
        (OutcomeUnknownError, PeerDeadError),
        (MailboxFullError, DeliveryError),
        (DeadlineExceededError, DeliveryError),
        (NoHandlerError, DeliveryError),
        (RegistryUnavailableError, DeliveryError),
        (HopLimitError, DeliveryError),
        (DecodeError, protocols.ProtocolError),
    ],
)
def test_the_error_tree(cls: type[MeshError], base: type[Exception]) -> None:
    assert issubclass(cls, base)
    assert isinstance(make(cls), base)
    assert isinstance(make(cls), MeshError)


@pytest.mark.parametrize("cls", [HandlerError, ConfigError], ids=lambda cls: cls.__name__)
def test_handler_and_config_errors_are_not_delivery_errors(cls: type[MeshError]) -> None:
    assert not issubclass(cls, DeliveryError)
