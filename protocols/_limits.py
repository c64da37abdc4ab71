"""The decode limits a frame meets while msgpack unpacks it, and the errors that name them.

A budget counts objects and nesting as each array and map is built; a header's shape is
bounded apart; msgpack's own length limits are translated into `DecodeLimitError`s that
name the setting that raises them.
"""

from __future__ import annotations

from typing import Any

import msgpack

from protocols.errors import DecodeLimitError

__all__ = ["HEADER_HINT", "DecodeBudget", "HeaderShape", "describe", "over_limit", "raise_hint"]

#: The msgpack limits and the setting that raises each, as its error names them.
_SETTINGS = {
    "max_array_len": "max_array_len",
    "max_map_len": "max_map_len",
    "max_str_len": "max_str_len",
    "max_bin_len": "max_payload_bytes",
    "max_ext_len": "max_payload_bytes",
}


class DecodeBudget:
    """Counts a decode's objects and nesting as msgpack builds each array and map.

    The hooks run bottom-up, each as its container is complete, so a container's depth
    is one more than its deepest child's; only containers holding containers are
    remembered (by id: they live on inside their parent until the end). Raising here
    stops msgpack at once, so a bomb never gets past the budget.
    """

    __slots__ = ("_deep", "_depth", "_left", "_tag")

    def __init__(self, objects: int, depth: int, tag: str) -> None:
        self._left = objects
        self._depth = depth
        self._tag = tag  # named in the errors, which are made only when raised
        self._deep: dict[int, int] | None = None  # made for the first nested container

    def on_list(self, items: list[Any]) -> list[Any]:
        self._left -= len(items) + 1
        if self._left < 0:
            raise self._over_objects()
        if _holds_containers(items):
            self._nest(items, items)
        return items

    def on_map(self, entries: dict[Any, Any]) -> dict[Any, Any]:
        self._left -= 2 * len(entries) + 1
        if self._left < 0:
            raise self._over_objects()
        if _holds_containers(entries.values()):
            self._nest(entries, entries.values())
        return entries

    def _nest(self, container: Any, children: Any) -> None:
        deep = self._deep
        if deep is None:
            deep = self._deep = {}
        depth = 1 + max(deep.pop(id(child), 1) for child in children
                        if type(child) is list or type(child) is dict)  # fmt: skip
        if depth > self._depth:
            raise DecodeLimitError(
                f"payload of {self._tag!r} nests deeper than {self._depth} levels",
                limit="max_depth",
                hint=raise_hint("max_depth"),
            )
        deep[id(container)] = depth

    def _over_objects(self) -> DecodeLimitError:
        return DecodeLimitError(
            f"payload of {self._tag!r} holds more objects (arrays, maps and their elements) "
            "than allowed",
            limit="max_objects",
            hint=raise_hint("max_objects"),
        )


def _holds_containers(items: Any) -> bool:
    # A few items (a message's fields) are looked at one by one; many, at C speed.
    if len(items) < 16:
        for item in items:  # noqa: SIM110 - a loop, not any(): no generator per call
            if type(item) is list or type(item) is dict:
                return True
        return False
    kinds = set(map(type, items))
    return list in kinds or dict in kinds


class HeaderShape:
    """Refuses a header with more arrays and maps than a frame has: its own, the chain
    and the budget. So however its bytes nest, a header costs a few small objects."""

    __slots__ = ("_left",)

    def __init__(self) -> None:
        self._left = 3

    def take(self, container: Any) -> Any:
        self._left -= 1
        if self._left < 0:
            raise DecodeLimitError(
                "frame header holds more arrays and maps than a frame has",
                limit="frame header",
                hint=HEADER_HINT,
            )
        return container


def over_limit(exc: BaseException, what: str, *, header: bool) -> DecodeLimitError | None:
    # msgpack names the limit a length passed in its ValueError's text, and nesting past
    # its own stack (1024 levels, so past any max_depth) is a StackError.
    text = str(exc)
    if isinstance(exc, msgpack.StackError):
        if header:
            return DecodeLimitError(f"{what} header nests too deep", limit="frame header",
                                    hint=HEADER_HINT)  # fmt: skip
        return DecodeLimitError(f"{what} nests deeper than msgpack's stack", limit="max_depth",
                                hint=raise_hint("max_depth"))  # fmt: skip
    for limit, setting in _SETTINGS.items():
        if limit in text:
            if header and setting != "max_payload_bytes":
                return DecodeLimitError(f"{what} header has a field longer than a header allows: "
                                        f"{text[:120]}", limit="frame header",
                                        hint=HEADER_HINT)  # fmt: skip
            return DecodeLimitError(f"{what} has a value longer than {setting} allows: "
                                    f"{text[:120]}", limit=setting,
                                    hint=raise_hint(setting))  # fmt: skip
    return None


HEADER_HINT = "a header holds names and numbers of fixed shapes: the sender is buggy or hostile"


def raise_hint(setting: str) -> str:
    return (
        f"a peer sent more than this mesh allows; if such messages are expected, raise "
        f"{setting} (RAYMESH_{setting.upper()}) on every process of the mesh"
    )


def describe(exc: BaseException) -> str:
    text = str(exc)[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
