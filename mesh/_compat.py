"""Every touch of Ray's, CPython's or an SDK's private internals, in one place.

Each one names the versions it was verified against (`VERIFIED_RAY`, `VERIFIED_PYTHON`).
`pyproject.toml` pins Ray to the tested minor version; to move the pin, check each touch
below against the new Ray, run the tests the architecture page names, and update
`VERIFIED_RAY` and the pin together.

**Ray calls settle in the step that ends them**, so a blocked loop cannot freeze the
whole actor. Ray runs each call to an async actor as a coroutine on the concurrency
group's event loop, driven from a fiber thread. The coroutine wakes that thread as it
ends, and the thread then waits, *blocking*, for the call's future, which the loop sets a
turn later. If a handler blocks the loop in between, the fiber thread stays blocked with
it; the next call to that group then blocks the actor's dispatch thread (its channel to
the fibers is unbuffered), and no call reaches any group, the control lane included.
Found with py-spy on a hung agent whose control lane fell silent (Ray 2.60). Tasks for
Ray's calls therefore run their done callbacks (which set that future) at once, in the
step that ends them, instead of on the next turn of the loop. If Ray renames its call
coroutine, the fix silently stops applying: `settling_problem` says so, and the host
checks it at start (it runs inside a Ray call then).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Callable, Coroutine, Generator, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "LOOPBACK_ENV",
    "RAY_SYSTEM_CONFIG",
    "RAY_UPLOAD_LOGGER",
    "VERIFIED_MCP",
    "VERIFIED_PYTHON",
    "VERIFIED_RAY",
    "current_cluster_file",
    "gcs_cluster_id",
    "inside_ray_job",
    "is_ray_call",
    "job_client_versions",
    "loopback_problem",
    "mcp_lowlevel_server",
    "mcp_problem",
    "on_head_node",
    "ray_on_loopback",
    "reload_ray_config",
    "settle_ray_calls_at_once",
    "settling_problem",
    "system_config_problem",
]

#: Ray minor versions every touch below was verified against (the pin in pyproject.toml).
VERIFIED_RAY = ("2.60",)
#: CPython minor versions the settling task was verified against.
VERIFIED_PYTHON = ("3.11",)
#: `mcp` (the MCP SDK) versions the FastMCP touch was verified against (pinned <2).
VERIFIED_MCP = ("1.30",)

# -- settling Ray's calls (Ray 2.60.0, CPython 3.11.7) ---------------------------------

# The coroutine Ray wraps every async actor call in (ray/_raylet.pyx, Ray 2.60.0).
_RAY_CALL = "run_async_func_or_coro_in_event_loop.<locals>.async_func"
# The pure-Python Future's private hook that schedules done callbacks a turn later
# (asyncio/futures.py, `Future.__schedule_callbacks`, name-mangled; CPython 3.11.7).
_SCHEDULE_HOOK = "_Future__schedule_callbacks"

TaskFactory = Callable[..., "asyncio.Future[Any]"]


class _SettlingTask(asyncio.tasks._PyTask):  # type: ignore[name-defined,misc]
    """A task whose done callbacks run as it finishes, not a loop turn later.

    Subclasses asyncio's private pure-Python task (the C task's hook cannot be
    overridden) and overrides Future's name-mangled hook (CPython 3.11.7).
    """

    def _Future__schedule_callbacks(self) -> None:  # noqa: N802 -- overrides Future's private hook
        callbacks = self._callbacks[:]
        self._callbacks[:] = []
        for callback, context in callbacks:
            try:
                context.run(callback, self)
            except Exception as exc:  # as the loop would report a failing callback
                self._loop.call_exception_handler(
                    {"message": "done callback of a Ray call failed", "exception": exc}
                )


def is_ray_call(coro: object) -> bool:
    """Return True if `coro` is the coroutine Ray runs an async actor call in."""
    return getattr(coro, "__qualname__", "").endswith(_RAY_CALL)


class _SettlingFactory:
    """Makes settling tasks for Ray's calls; hands every other coroutine to `previous`."""

    def __init__(self, previous: TaskFactory | None) -> None:
        self.previous = previous

    def __call__(
        self,
        loop: asyncio.AbstractEventLoop,
        coro: Coroutine[Any, Any, Any] | Generator[Any, None, Any],
        **kwargs: Any,
    ) -> asyncio.Future[Any]:
        if is_ray_call(coro):
            task: asyncio.Task[Any] = _SettlingTask(coro, loop=loop, **kwargs)
            return task
        if self.previous is not None:
            # The loop passes a factory only the keywords it was given (`context` on
            # 3.11, `name` too from 3.13): the previous factory gets the same.
            return self.previous(loop, coro, **kwargs)
        return asyncio.Task(coro, loop=loop, **kwargs)


def settle_ray_calls_at_once(loop: asyncio.AbstractEventLoop) -> None:
    """Make Ray's calls on `loop` settle as they end (see the module's docstring).

    A task factory already set on `loop` (by Ray, or an agent's ``on_start``) is chained,
    not replaced: it still makes every task that is not a Ray call. Installing twice on
    one loop is a no-op.
    """
    previous = loop.get_task_factory()
    if isinstance(previous, _SettlingFactory):
        return
    loop.set_task_factory(_SettlingFactory(previous))


def settling_problem(task: asyncio.Task[Any] | None = None) -> str | None:
    """Return why Ray's calls cannot settle at once here, or None if they do.

    `task` (the current task by default) must be running inside a Ray call to an async
    actor, as a host's ``start`` does: if its coroutine is not the one `is_ray_call`
    knows, Ray has renamed it and the task factory never applies.
    """
    # The override takes effect only if a base of the task still defines the hook.
    if not any(_SCHEDULE_HOOK in vars(base) for base in _SettlingTask.__mro__[1:]):
        return (
            f"CPython {sys.version.split()[0]} has no Future.{_SCHEDULE_HOOK} "
            f"(verified on CPython {', '.join(VERIFIED_PYTHON)})"
        )
    if task is None:
        try:
            task = asyncio.current_task()
        except RuntimeError:  # no running loop: not inside any call
            task = None
    coro = task.get_coro() if task is not None else None
    if not is_ray_call(coro):
        found = getattr(coro, "__qualname__", None)
        return f"Ray's call coroutine is {found!r}, not the known {_RAY_CALL!r}"
    return None


# -- joining a cluster (Ray 2.60.0) ---------------------------------------------------


def gcs_cluster_id(address: str) -> Any:
    """Ask the GCS at `address` for its cluster id; blocks, raises what Ray raises.

    Uses ``ray._raylet.GcsClient`` (no public client answers without joining first).
    """
    from ray._raylet import GcsClient  # type: ignore[attr-defined]  # not in its stub

    return GcsClient(address=address).cluster_id


def reload_ray_config() -> None:
    """Make Ray read its config (``RAY_*`` environment variables) again.

    Ray reads it once, when imported; ``ray._raylet.Config.initialize`` re-reads it, so
    that a ``RAY_AUTH_MODE`` set afterwards takes effect.
    """
    from ray._raylet import Config  # type: ignore[attr-defined]  # not in its stub

    Config.initialize("")


def inside_ray_job() -> bool:
    """Return True if this process is the driver of a job submitted to Ray's Jobs API.

    Ray's job supervisor sets this variable (``ray._private.runtime_env.constants``) for
    the job's entrypoint; there is no public way to ask.
    """
    return "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ


#: The logger of Ray's private runtime_env packaging (logs each upload at INFO).
RAY_UPLOAD_LOGGER = "ray._private.runtime_env.packaging"


def job_client_versions(client: Any) -> tuple[str | None, str | None]:
    """Return (this client's, the cluster's) Ray versions a ``JobSubmissionClient`` saw.

    Ray keeps them in private attributes (``_client_ray_version``, ``_server_ray_version``).
    """
    return (
        getattr(client, "_client_ray_version", None),
        getattr(client, "_server_ray_version", None),
    )


def current_cluster_file(temp_dir: Path) -> Path:
    """Return the file in which ``ray start --head`` writes the GCS address it serves.

    Ray's undocumented ``ray_current_cluster`` file in its temp dir (what ``address="auto"``
    reads).
    """
    return temp_dir / "ray_current_cluster"


# -- placement (Ray 2.60.0) ------------------------------------------------------------

# Ray's internal resource on the head node (ray._common.constants.HEAD_NODE_RESOURCE_NAME).
_HEAD_NODE_RESOURCE = "node:__internal_head__"


def on_head_node() -> Any:
    """Return a scheduling strategy for the head node, which lives as long as the cluster.

    Falls back to ``"DEFAULT"`` when no live node carries Ray's head resource.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    for node in ray.nodes():  # type: ignore[no-untyped-call]
        if node.get("Alive") and _HEAD_NODE_RESOURCE in node.get("Resources", {}):
            return NodeAffinitySchedulingStrategy(node_id=node["NodeID"], soft=False)
    return "DEFAULT"


# -- Ray's system config for the clusters raymesh starts (Ray 2.60.0) --------------------

# A call's argument up to `max_direct_call_object_size` (100 KiB by default) goes inline
# in the call; a larger one is put in the node's object store, through the raylet, and
# fetched from it. A batch call of a busy link carries up to `max_batch` (512) frames:
# at 1 KiB a frame, past 100 KiB from about 90. In a ring of 8 agents sending tells, the
# raylet took about 15% of a core doing that (0.55-0.96 CPU s a run of 80,000 tells,
# `/proc`), the ring's throughput 16,700-18,800 a second; with 1 MiB inline, the raylet
# was idle and the ring did 16,500-25,300 (six runs each, alternating). The setting is a
# cluster's: `ray.init(_system_config=...)` and ``ray start --system-config`` (a flag
# Ray's help does not list) give it to a Ray that raymesh starts; a cluster raymesh joins
# keeps its own (the operations guide says how to set it).

#: Ray's system config for a Ray that raymesh starts (`Mesh.local`, ``raymesh up``).
RAY_SYSTEM_CONFIG: dict[str, Any] = {"max_direct_call_object_size": 1 << 20}


def system_config_problem(expected: dict[str, Any] = RAY_SYSTEM_CONFIG) -> str | None:
    """Return how the running Ray's system config differs from `expected`, or None."""
    from ray._private.state import state

    try:
        running = state.get_system_config()  # type: ignore[no-untyped-call]
    except Exception as exc:  # any failure to read it is the finding
        return f"Ray's system config could not be read ({type(exc).__name__}: {exc})"
    wrong = {key: running.get(key) for key in expected if running.get(key) != expected[key]}
    if not wrong:
        return None
    wanted = {key: expected[key] for key in wrong}
    return f"Ray's system config has {wrong}, not raymesh's {wanted}"


# -- a local Ray on loopback only (Ray 2.60.0) -----------------------------------------

# Ray binds every component to the node's address: GCS, raylet (node manager and object
# manager), core workers, dashboard agent (gRPC, HTTP, metrics export), runtime env agent,
# client server. Each binds loopback only when that address is loopback, and otherwise
# all interfaces. But `ray start --node-ip-address 127.0.0.1` and
# `ray.init(_node_ip_address=...)` both turn a loopback address into the routable one
# (`services.resolve_ip_for_localhost`), unless Ray runs without multi-node clusters:
# its switch for those (`ray_constants.ENABLE_RAY_CLUSTER`, read from this variable when
# Ray is imported, meant for Windows and macOS) then makes 127.0.0.1 the node's address.

#: The environment that makes a Ray started by ``ray start`` take 127.0.0.1 as its address.
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


@contextlib.contextmanager
def ray_on_loopback() -> Iterator[None]:
    """While it is open, a Ray this process starts (``ray.init``) binds 127.0.0.1 only.

    This process read the switch when it imported Ray: it is set on Ray's constants
    module here, and in the environment that the processes Ray starts inherit.
    """
    from ray._private import ray_constants

    saved = ray_constants.ENABLE_RAY_CLUSTER
    saved_env = {name: os.environ.get(name) for name in LOOPBACK_ENV}
    ray_constants.ENABLE_RAY_CLUSTER = False
    os.environ.update(LOOPBACK_ENV)
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def loopback_problem() -> str | None:
    """Return why the Ray this process started is reachable beyond loopback, or None.

    The check after `ray_on_loopback`: if a new Ray resolves its address another way,
    the switch above no longer applies.
    """
    import ray

    address = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
    if address == "127.0.0.1":
        return None
    return (
        f"the local Ray took {address} as its address, so its ports listen beyond "
        f"loopback (verified on Ray {', '.join(VERIFIED_RAY)})"
    )


# -- the MCP SDK's FastMCP (mcp 1.30) ------------------------------------------------


def mcp_lowlevel_server(server: Any) -> Any:
    """Return the low-level MCP server a ``FastMCP`` wraps (its private ``_mcp_server``).

    ``raymesh mcp`` serves stdio on a channel of its own (stdout carries the protocol
    only); FastMCP's public stdio runner writes to ``sys.stdout``, so the low-level server
    is run directly, as that runner does.
    """
    return server._mcp_server


def mcp_problem() -> str | None:
    """Return why `mcp_lowlevel_server` no longer applies to the installed SDK, or None."""
    from mcp.server.fastmcp import FastMCP

    inner = getattr(FastMCP("compat-check"), "_mcp_server", None)
    if inner is not None and callable(getattr(inner, "run", None)):
        return None
    return (
        "FastMCP no longer keeps its low-level server in `_mcp_server` (verified on mcp "
        f"{', '.join(VERIFIED_MCP)}): `raymesh mcp` cannot serve stdio"
    )
