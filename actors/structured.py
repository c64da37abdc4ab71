"""Structured output: ask for JSON matching a pydantic model, validate it, repair it once.

Providers enforce the schema as well as they can (a JSON-schema ``response_format`` on
OpenAI, forced tool use on Anthropic), but compatible servers and older models do not
always comply, so every reply is validated here. A reply that fails gets one repair
round that shows the model its validation errors; a second failure is a
`StructuredOutputError` carrying the reply and the errors.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from actors.providers import StructuredSpec
from protocols import Message

__all__ = ["parse_reply", "repair_prompt", "structured_spec"]

T = TypeVar("T", bound=BaseModel)
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)
_NAME = re.compile(r"[^A-Za-z0-9_-]")


def structured_spec(model: type[BaseModel]) -> StructuredSpec:
    """Return the request for replies that validate as `model`."""
    schema: dict[str, Any] = model.model_json_schema()
    if issubclass(model, Message):
        schema.get("properties", {}).pop("type_tag", None)
    name = _NAME.sub("_", model.__name__)[:64] or "answer"
    return StructuredSpec(name=name, json_schema=schema)


def parse_reply(text: str, model: type[T]) -> T:
    """Validate the model's reply (JSON text, maybe in a code fence) as `model`.

    Raises:
        pydantic.ValidationError: The reply is not JSON or does not fit the schema.
    """
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    if fenced:
        stripped = fenced.group(1)
    return model.model_validate_json(stripped)


def repair_prompt(error: ValidationError) -> str:
    """Return the message that shows the model why its reply was refused."""
    return (
        "Your previous reply was not valid for the required JSON schema. "
        f"Validation errors: {describe(error)}. "
        "Reply again with only a JSON object that matches the schema."
    )


def describe(error: ValidationError) -> str:
    """Return the validation errors as one line of text."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in error.errors()
    )
