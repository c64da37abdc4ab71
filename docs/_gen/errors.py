"""The error tree: every `MeshError` subclass of `protocols`, `mesh` and `actors`."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator

#: raymesh's packages: importing them defines every error class.
PACKAGES = ("protocols", "mesh", "actors")
#: Packages that importing `PACKAGES` does not import (kept out of the runtime's imports).
EXTRA = ("mesh.gateway",)
#: The public modules, in the order an error's home (where to import it from) is looked for.
HOMES = ("protocols", "mesh", "actors", "protocols.patterns", "mesh.gateway")


def _root() -> type[BaseException]:
    for name in (*PACKAGES, *EXTRA):
        importlib.import_module(name)
    root: type[BaseException] = importlib.import_module("protocols").MeshError
    return root


def _ours(cls: type) -> bool:
    """A class of raymesh's own packages, not one a test or a user defined."""
    return cls.__module__.split(".")[0] in PACKAGES and not cls.__name__.startswith("_")


def error_classes() -> list[type[BaseException]]:
    """Return `MeshError` and all its subclasses in raymesh's packages, in tree order."""
    return [cls for cls, _ in _walk(_root(), 0, set())]


def _children(cls: type) -> list[type]:
    subclasses: list[type] = type.__subclasses__(cls)
    return sorted((c for c in subclasses if _ours(c)), key=lambda c: c.__name__)


def _walk(cls: type, depth: int, seen: set[type]) -> Iterator[tuple[type, int]]:
    """Depth first; a class with two raymesh parents appears once, under the first seen."""
    seen.add(cls)
    yield cls, depth
    for child in _children(cls):
        if child not in seen:
            yield from _walk(child, depth + 1, seen)


def home(cls: type) -> str:
    """Where to import `cls` from: the first public package whose `__all__` names it."""
    for name in HOMES:
        package = importlib.import_module(name)
        if (
            cls.__name__ in getattr(package, "__all__", ())
            and getattr(package, cls.__name__) is cls
        ):
            return name
    return cls.__module__


def first_line(cls: type) -> str:
    """The first line of the class's own docstring, as one line ('' when it has none).

    A summary that wraps onto the next lines (up to the first blank line) is joined.
    """
    doc = inspect.cleandoc(cls.__dict__.get("__doc__") or "")
    return " ".join(doc.split("\n\n", 1)[0].split())


def extra_bases(cls: type, parent: type | None) -> list[str]:
    """The bases other than the parent it is listed under (`ValueError`, `TimeoutError`...)."""
    return [base.__name__ for base in cls.__bases__ if base is not parent]


def render_error_tree() -> str:
    """Return the tree as nested Markdown list items, one class per line."""
    lines: list[str] = []
    parents: list[type] = []
    for cls, depth in _walk(_root(), 0, set()):
        del parents[depth:]
        parent = parents[-1] if parents else None
        parents.append(cls)
        also = extra_bases(cls, parent) if parent is not None else []
        entry = f"`{cls.__name__}`"
        if also:
            entry += " (also " + ", ".join(f"`{b}`" for b in also) + ")"
        entry += f" · `{home(cls)}`"
        if doc := first_line(cls):
            entry += f": {doc}"
        lines.append("    " * depth + "- " + entry)
    return "\n".join(lines) + "\n"
