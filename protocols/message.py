"""Typed messages: pydantic models with a stable type tag.

A tag names a message on the wire, independently of the Python class that carries it,
so that a class can move between modules without breaking peers. Tags are written
``name/version`` (``qa.question/1``): a published tag never changes meaning; a new shape
gets a new version. Schema evolution follows the usual rules: new fields need defaults,
and receivers ignore fields they do not know.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from protocols.errors import UnknownMessageTypeError

__all__ = ["Message", "is_known", "message_class", "message_types", "register"]

_TAG = re.compile(r"^[A-Za-z0-9_.:-]{1,120}/[0-9]{1,6}$")
_REGISTRY: dict[str, type[Message]] = {}


class Message(BaseModel):
    """Base class of every message; subclasses give their tag as a class keyword.

    Example::

        class Question(Message, type="qa.question/1"):
            text: str

    A subclass without a tag is an abstract base for other messages and cannot be sent.
    """

    model_config = ConfigDict(extra="ignore")

    #: The wire tag, or None for an abstract base.
    type_tag: ClassVar[str | None] = None

    # `type` is the keyword the public API promises (``class Q(Message, type=...)``).
    def __init_subclass__(cls, *, type: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if type is None:
            cls.type_tag = None
            return
        if not isinstance(type, str) or not _TAG.match(type):
            raise TypeError(
                f"{cls.__qualname__}: type tag {type!r} must look like 'name/version', "
                "e.g. 'qa.question/1'"
            )
        cls.type_tag = type
        register(cls)


def register(cls: type[Message]) -> None:
    """Make `cls` the class for its tag in this process.

    Classes register themselves when defined. A class rebuilt by value by Ray's
    pickling (one defined in a script's ``__main__``) is not defined again, so the
    runtime registers it when it first meets it.

    Raises:
        TypeError: Another class (by module and name) already has the tag.
    """
    tag = cls.type_tag
    if tag is None:
        raise TypeError(f"{cls.__qualname__} has no type tag")
    previous = _REGISTRY.get(tag)
    # The same class defined again (a module re-import, a class rebuilt by Ray's
    # pickling) replaces itself; a different class claiming the tag is a bug.
    if previous is not None and _qualified(previous) != _qualified(cls):
        raise TypeError(
            f"message type tag {tag!r} is already used by {_qualified(previous)}; "
            f"{_qualified(cls)} needs a tag of its own"
        )
    _REGISTRY[tag] = cls


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def message_class(tag: str) -> type[Message]:
    """Return the class registered for `tag`.

    Raises:
        UnknownMessageTypeError: No class in this process has that tag.
    """
    try:
        return _REGISTRY[tag]
    except KeyError:
        raise UnknownMessageTypeError(
            f"unknown message type {tag!r}",
            hint="import the module that defines it in every process that receives it",
        ) from None


def is_known(tag: str) -> bool:
    """Return True if a class in this process has `tag` (a dict lookup: the hot path)."""
    return tag in _REGISTRY


def message_types() -> dict[str, type[Message]]:
    """Return a copy of the tag registry."""
    return dict(_REGISTRY)
