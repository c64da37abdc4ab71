"""Every error's text names its agent, trace and hint once, however the runtime wraps it.

An error that embeds a cause's text would repeat the cause's ``[agent=…, trace=…]`` and
hint before adding its own: the asker reads the same context twice.
"""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Callable, Iterator

import pytest

import actors  # noqa: F401 -- defines the LLM branch of the tree
import mesh
import mesh.gateway  # noqa: F401 -- defines the gateway's HTTP errors
import protocols.patterns  # noqa: F401 -- defines the patterns' branch
from actors.providers._base import ToolCall
from actors.tools import Toolbox
from mesh.datapath._failures import handler_failed, start_failed
from protocols.errors import _ERROR_CLASSES, MeshError

TRACE = "0123456789abcdef" * 2

#: Sample values for the `details` keywords whose type a constructor relies on.
DETAILS: dict[str, object] = {
    "cycle": ["critic", "writer", "critic"],
    "failures": {"critic": "timed out"},
    "attempts": [{"number": 1, "answer": "x", "passed": False, "feedback": "no"}],
    "needed": {"tokens": 10.0},
    "remaining": {"tokens": 1.0},
    "index": 2,
    "status": 503,
    "retryable": True,
    "retry_after": 1.5,
    "retry_in": 2.0,
}


def _subclasses(cls: type[MeshError]) -> Iterator[type[MeshError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


#: Every error class raymesh defines, whether or not a package exports it.
TREE = sorted(
    {
        cls
        for cls in [MeshError, *_subclasses(MeshError)]
        if cls.__module__.split(".")[0] in {"protocols", "mesh", "actors"}
    },
    key=lambda cls: cls.__name__,
)


def test_every_error_class_has_a_name_of_its_own() -> None:
    # The wire names an error by its class name: two classes of one name would rebuild as
    # whichever registered first (the gateway's 429 once shadowed actors.RateLimitedError).
    names = [cls.__name__ for cls in TREE]
    assert sorted({n for n in names if names.count(n) > 1}) == []
    assert all(_ERROR_CLASSES[cls.__name__] is cls for cls in TREE if cls is not MeshError)


def make(cls: type[MeshError], agent: str = "writer") -> MeshError:
    details = {name: DETAILS.get(name, f"sample {name}") for name in cls.details}
    return cls("it failed", agent=agent, trace_id=TRACE, hint="try again", **details)


def across_the_wire(error: MeshError) -> MeshError:
    return MeshError.from_wire(error.to_wire())


def raised_in_a_handler(error: MeshError, agent: str = "writer") -> MeshError:
    return handler_failed(error, handler="on_task", agent=agent, trace_id=TRACE)


def raised_by_a_tool(error: MeshError) -> MeshError:
    def lookup(query: str) -> str:
        raise error

    try:
        asyncio.run(
            Toolbox([lookup]).run(ToolCall(call_id="1", name="lookup", arguments='{"query": "x"}'))
        )
    except MeshError as exc:
        return exc.with_context(agent="writer", trace_id=TRACE)
    raise AssertionError("the tool's error was swallowed")


#: The ways an error reaches the one who reads it, each as the runtime does it.
WRAPPINGS: dict[str, Callable[[MeshError], MeshError]] = {
    "as raised": lambda e: e,
    "pickled": lambda e: pickle.loads(pickle.dumps(e)),
    "across the wire": across_the_wire,
    "raised in its own agent's handler": raised_in_a_handler,
    "raised in another agent's handler": lambda e: raised_in_a_handler(e, agent="editor"),
    "raised in a handler, then across the wire": lambda e: across_the_wire(raised_in_a_handler(e)),
    "passed up a chain of handlers": lambda e: across_the_wire(
        raised_in_a_handler(across_the_wire(raised_in_a_handler(e)), agent="editor")
    ),
    "raised by a tool": raised_by_a_tool,
    "raised by a tool in a handler": lambda e: raised_in_a_handler(raised_by_a_tool(e)),
    "raised while an agent started": lambda e: across_the_wire(
        start_failed(e, agent="writer", cls=MeshError)
    ),
}


def test_the_tree_covers_every_registered_error() -> None:
    ours = {
        cls
        for cls in _ERROR_CLASSES.values()
        if cls.__module__.split(".")[0] in {"protocols", "mesh", "actors"}
    }
    assert ours <= set(TREE)
    branches = {
        "ReplayError",
        "DeadlineExceededError",
        "StageFailedError",
        "HandlerError",
        "ClusterUnreachableError",
        "CheckpointNotFoundError",
        "StructuredOutputError",
    }
    assert branches <= {cls.__name__ for cls in TREE}


@pytest.mark.parametrize("wrapping", WRAPPINGS, ids=str)
@pytest.mark.parametrize("cls", TREE, ids=lambda cls: cls.__name__)
def test_context_and_hint_appear_at_most_once(cls: type[MeshError], wrapping: str) -> None:
    text = str(WRAPPINGS[wrapping](make(cls)))
    assert "it failed" in text
    assert text.count("[agent=") <= 1, text
    assert text.count(f"trace={TRACE}") <= 1, text
    assert text.count("(hint:") <= 1, text
    assert text.count("try again") <= 1, text
