"""Message classes: tags are checked and registered when a class is defined."""

from __future__ import annotations

import re
import textwrap
from typing import Any

import msgpack
import pytest
from pydantic import BaseModel

from protocols import (
    EncodeError,
    Envelope,
    Kind,
    Message,
    UnknownMessageTypeError,
    decode_message,
    encode_message,
    message_class,
    message_types,
)


class Claimed(Message, type="test.unit.claimed/1"):
    text: str


class Greeting(Message, type="test.unit.greeting/2"):
    text: str
    loud: bool = False  # added in a later revision, so it has a default


class Abstract(Message):
    """No tag: a base for other messages, not sendable itself."""

    topic: str = ""


def _envelope(tag: str, body: dict[str, Any]) -> Envelope:
    return Envelope(
        kind=Kind.TELL, type=tag, sender="a", recipient="b", payload=msgpack.packb(body)
    )


def test_a_second_class_claiming_a_tag_fails_at_definition_naming_both() -> None:
    with pytest.raises(TypeError) as info:

        class Impostor(Message, type="test.unit.claimed/1"):
            text: str

    text = str(info.value)
    assert "'test.unit.claimed/1'" in text
    assert f"{Claimed.__module__}.Claimed" in text
    assert "Impostor" in text
    assert message_class("test.unit.claimed/1") is Claimed


def test_redefining_the_same_class_replaces_it_without_error() -> None:
    # A module re-import defines the class again under the same module and qualname.
    source = textwrap.dedent(
        """
        class Again(Message, type="test.unit.again/1"):
            n: int
        """
    )
    first: dict[str, Any] = {"__name__": "test_unit_reimported", "Message": Message}
    second: dict[str, Any] = {"__name__": "test_unit_reimported", "Message": Message}
    exec(source, first)
    exec(source, second)  # must not raise
    old, new = first["Again"], second["Again"]
    assert old is not new
    assert (old.__module__, old.__qualname__) == (new.__module__, new.__qualname__)
    assert message_class("test.unit.again/1") is new
    # An instance of the old class is still sendable (it re-registers itself).
    assert decode_message(_envelope("test.unit.again/1", {"n": 3})) == new(n=3)
    assert encode_message(old(n=1)) == msgpack.packb({"n": 1})


@pytest.mark.parametrize(
    "tag",
    ["nope", "a b/1", "x/", "/1", "x/v1", "x/1234567", "x/1/2", "", "a" * 121 + "/1"],
)
def test_a_malformed_tag_fails_at_definition(tag: str) -> None:
    with pytest.raises(TypeError, match=re.escape(repr(tag))):

        class Bad(Message, type=tag):
            pass

    assert tag not in message_types()


def test_a_tag_that_is_not_a_string_fails_at_definition() -> None:
    with pytest.raises(TypeError, match="must look like 'name/version'"):

        class Bad(Message, type=1):
            pass


def test_a_class_without_a_tag_cannot_be_sent() -> None:
    assert Abstract.type_tag is None
    with pytest.raises(EncodeError, match="Abstract is not a sendable Message") as info:
        encode_message(Abstract(topic="x"))
    assert info.value.hint


def test_a_subclass_does_not_inherit_its_parents_tag() -> None:
    class Louder(Greeting):
        volume: int = 11

    assert Louder.type_tag is None
    assert message_class("test.unit.greeting/2") is Greeting
    with pytest.raises(EncodeError):
        encode_message(Louder(text="hi"))


def test_a_plain_pydantic_model_cannot_be_sent() -> None:
    class Plain(BaseModel):
        text: str

    with pytest.raises(EncodeError, match="Plain is not a sendable Message"):
        encode_message(Plain(text="x"))  # type: ignore[arg-type]


def test_message_class_returns_the_class_for_its_tag() -> None:
    assert message_class("test.unit.claimed/1") is Claimed
    assert message_class("test.unit.greeting/2") is Greeting
    assert message_types()["test.unit.greeting/2"] is Greeting


def test_message_types_is_a_copy() -> None:
    message_types().pop("test.unit.claimed/1")
    assert message_class("test.unit.claimed/1") is Claimed


def test_an_unknown_tag_raises_with_a_hint() -> None:
    with pytest.raises(UnknownMessageTypeError, match=re.escape("'test.unit.ghost/1'")) as info:
        message_class("test.unit.ghost/1")
    assert info.value.hint
    assert "import" in info.value.hint


def test_receivers_ignore_fields_they_do_not_know() -> None:
    body = {"text": "hi", "loud": True, "added_in_v3": [1, 2]}
    assert decode_message(_envelope("test.unit.greeting/2", body)) == Greeting(text="hi", loud=True)


def test_a_field_missing_from_an_older_sender_takes_its_default() -> None:
    message = decode_message(_envelope("test.unit.greeting/2", {"text": "hi"}))
    assert message == Greeting(text="hi", loud=False)
