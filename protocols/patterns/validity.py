"""Validity predicates named in a team file: which answers a race may accept.

A ``pattern:`` block names one as ``valid:``, and it is built (so checked) when the
file loads, like the rest of the block:

- ``non_empty``: the answer has text besides whitespace;
- ``{matches: REGEX}``: the regular expression is found in the answer (anchor it,
  ``^...$``, to match the whole answer);
- ``{parses_as: int | float | bool | json}``: the answer, stripped, parses as that type;
- ``"package.module:function"``: an importable callable, given the `Reply`, whose
  truth decides (it must import wherever the pattern runs, as agents' classes must).
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from protocols.patterns.messages import Reply

__all__ = ["BUILT_IN_PREDICATES", "PARSES_AS", "ValidSpec", "validity_predicate"]

#: A predicate as a team file names it: a built-in's name, an import path, or a mapping.
ValidSpec = str | dict[str, str]

Predicate = Callable[[Reply], bool]


def _non_empty(reply: Reply) -> bool:
    return bool(reply.text.strip())


def _as_bool(text: str) -> bool:
    if text.lower() not in {"true", "false"}:
        raise ValueError(f"not a bool: {text!r}")
    return True


#: The types ``parses_as`` knows, each a parser that raises ValueError on a bad answer.
PARSES_AS: dict[str, Callable[[str], object]] = {
    "int": int,
    "float": float,
    "bool": _as_bool,
    "json": json.loads,
}

#: The predicates named by a bare word.
BUILT_IN_PREDICATES: dict[str, Predicate] = {"non_empty": _non_empty}


def validity_predicate(spec: ValidSpec) -> Predicate:
    """Return the predicate `spec` names, checked now so a bad one fails at load time.

    Raises:
        ValueError: An unknown name or key, a bad regular expression, an unknown type,
            or an import path that does not name a callable; the message says which.
    """
    if isinstance(spec, Mapping):
        return _from_mapping(spec)
    if spec in BUILT_IN_PREDICATES:
        return BUILT_IN_PREDICATES[spec]
    if ":" in spec:
        return _imported(spec)
    raise ValueError(
        f"valid: {spec!r} is no built-in predicate ({', '.join(BUILT_IN_PREDICATES)}), "
        "nor an import path 'package.module:function'; or give {matches: REGEX} or "
        f"{{parses_as: {' | '.join(PARSES_AS)}}}"
    )


def _from_mapping(spec: Mapping[str, str]) -> Predicate:
    if len(spec) != 1:
        raise ValueError(f"valid: give one of matches, parses_as (got {sorted(spec)})")
    ((key, value),) = spec.items()
    if key == "matches":
        try:
            pattern = re.compile(value)
        except re.error as exc:
            raise ValueError(
                f"valid.matches: {value!r} is not a regular expression: {exc}"
            ) from None
        return lambda reply: pattern.search(reply.text) is not None
    if key == "parses_as":
        parse = PARSES_AS.get(value)
        if parse is None:
            raise ValueError(f"valid.parses_as: {value!r} is none of {', '.join(PARSES_AS)}")
        return lambda reply: _parses(parse, reply.text)
    raise ValueError(f"valid: unknown key {key!r}; give matches or parses_as")


def _parses(parse: Callable[[str], object], text: str) -> bool:
    try:
        parse(text.strip())
    except ValueError:  # json.JSONDecodeError is one too
        return False
    return True


def _imported(path: str) -> Predicate:
    module_name, _, attribute = path.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(f"valid: {path!r} cannot be imported: {exc}") from None
    if not callable(found):
        raise ValueError(f"valid: {path!r} is not callable")
    predicate: Predicate = found
    return predicate
