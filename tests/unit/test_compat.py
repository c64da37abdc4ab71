"""The private touches in `mesh._compat`: the settling of Ray's calls, its self-check and
the chaining of a task factory already set (no Ray: Ray's call coroutine is imitated)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest

from mesh import _compat
from mesh.datapath import _selfcheck
from mesh.observability import AgentStats


async def _ray_call_like(result: object = None) -> object:
    return result


async def _settling_problem_inside() -> str | None:
    return _compat.settling_problem()


def _as_ray_call(coro: Coroutine[Any, Any, Any]) -> Coroutine[Any, Any, Any]:
    """Give `coro` the qualified name of Ray's call coroutine (as Ray 2.60 names it)."""
    coro.__qualname__ = _compat._RAY_CALL  # type: ignore[attr-defined]
    return coro


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """A loop of its own: the session's loop keeps no task factory from these tests."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def test_the_check_passes_inside_a_ray_call(loop: asyncio.AbstractEventLoop) -> None:
    assert loop.run_until_complete(_as_ray_call(_settling_problem_inside())) is None


def test_the_check_fails_when_ray_renamed_its_call(loop: asyncio.AbstractEventLoop) -> None:
    problem = loop.run_until_complete(_settling_problem_inside())
    assert problem is not None
    assert "_settling_problem_inside" in problem
    assert _compat._RAY_CALL in problem


def test_the_check_fails_outside_any_task() -> None:
    assert _compat.settling_problem() is not None


def test_the_check_fails_when_cpython_drops_the_hook(
    loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_compat, "_SCHEDULE_HOOK", "_Future__renamed")
    problem = loop.run_until_complete(_as_ray_call(_settling_problem_inside()))
    assert problem is not None
    assert "CPython" in problem


def test_a_ray_call_runs_its_done_callbacks_in_the_step_that_ends_it(
    loop: asyncio.AbstractEventLoop,
) -> None:
    _compat.settle_ray_calls_at_once(loop)

    async def main() -> tuple[bool, bool]:
        ran: dict[str, bool] = {}
        ray_call = asyncio.create_task(_as_ray_call(_ray_call_like()))
        ray_call.add_done_callback(lambda _: ran.setdefault("ray", True))
        other = asyncio.create_task(_ray_call_like())
        other.add_done_callback(lambda _: ran.setdefault("other", True))
        await asyncio.sleep(0)  # both tasks take their one step in this turn
        return "ray" in ran, "other" in ran

    assert loop.run_until_complete(main()) == (True, False)


def test_a_task_factory_already_set_is_chained_not_replaced(
    loop: asyncio.AbstractEventLoop,
) -> None:
    made: list[str] = []

    def previous(
        loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **kwargs: Any
    ) -> asyncio.Task[Any]:
        made.append(coro.__qualname__)
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(previous)
    _compat.settle_ray_calls_at_once(loop)
    _compat.settle_ray_calls_at_once(loop)  # a second install changes nothing
    factory = loop.get_task_factory()
    assert isinstance(factory, _compat._SettlingFactory)
    assert factory.previous is previous

    async def main() -> tuple[object, object, bool]:
        plain = asyncio.create_task(_ray_call_like("plain"), name="plain-task")
        ray_call = asyncio.create_task(_as_ray_call(_ray_call_like("ray")))
        settles = isinstance(ray_call, _compat._SettlingTask)
        assert plain.get_name() == "plain-task"
        return await plain, await ray_call, settles

    assert loop.run_until_complete(main()) == ("plain", "ray", True)
    # The previous factory made the plain tasks (the main coroutine's, and `plain`), and
    # never a Ray call's.
    assert made == ["test_a_task_factory_already_set_is_chained_not_replaced.<locals>.main",
                    "_ray_call_like"]  # fmt: skip


def test_without_a_previous_factory_plain_tasks_are_asyncio_tasks(
    loop: asyncio.AbstractEventLoop,
) -> None:
    _compat.settle_ray_calls_at_once(loop)

    async def main() -> bool:
        task = asyncio.create_task(_ray_call_like())
        await task
        return type(task) is asyncio.Task

    assert loop.run_until_complete(main())


class _Log:
    def __init__(self) -> None:
        self.warnings: list[tuple[str, dict[str, Any]]] = []

    def warning(self, event: str, **fields: Any) -> None:
        self.warnings.append((event, fields))


def test_the_host_check_passes_quietly_inside_a_ray_call(
    loop: asyncio.AbstractEventLoop,
) -> None:
    stats, log = AgentStats(name="a"), _Log()

    async def start() -> bool:
        return _selfcheck.settle_ray_calls(stats, log, metrics=True)

    assert loop.run_until_complete(_as_ray_call(start()))
    assert stats.ray_calls_settle is True
    assert log.warnings == []


def test_the_host_check_warns_and_counts_when_ray_renamed_its_call(
    loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    counted: list[tuple[str, str, str]] = []
    monkeypatch.setattr(_selfcheck, "count_compat_failure", lambda *args: counted.append(args))
    stats, log = AgentStats(name="a"), _Log()

    async def start() -> bool:
        return _selfcheck.settle_ray_calls(stats, log, metrics=True)

    assert not loop.run_until_complete(start())
    assert stats.ray_calls_settle is False
    [(event, fields)] = log.warnings
    assert "control lane" in event
    assert fields["ray_version"] == _selfcheck.ray.__version__
    assert "mesh/_compat.py" in fields["fix"]
    assert counted == [("a", "ray_call_settling", _selfcheck.ray.__version__)]


def test_the_host_check_counts_nothing_with_metrics_off(
    loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    counted: list[object] = []
    monkeypatch.setattr(_selfcheck, "count_compat_failure", lambda *args: counted.append(args))

    async def start() -> bool:
        return _selfcheck.settle_ray_calls(AgentStats(name="a"), _Log(), metrics=False)

    assert not loop.run_until_complete(start())
    assert counted == []


def test_inside_a_ray_job_is_told_by_rays_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_JOB_CONFIG_JSON_ENV_VAR", raising=False)
    assert not _compat.inside_ray_job()
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", "{}")
    assert _compat.inside_ray_job()


def test_job_client_versions_reads_rays_private_attributes() -> None:
    class Client:
        _client_ray_version = "2.60.0"
        _server_ray_version = "2.61.0"

    assert _compat.job_client_versions(Client()) == ("2.60.0", "2.61.0")
    assert _compat.job_client_versions(object()) == (None, None)


def test_the_installed_ray_is_one_the_touches_were_verified_on() -> None:
    major, minor = _selfcheck.ray.__version__.split(".")[:2]
    assert f"{major}.{minor}" in _compat.VERIFIED_RAY


def test_a_factory_set_after_the_install_is_chained_by_installing_again(
    loop: asyncio.AbstractEventLoop,
) -> None:
    # The host installs before the agent's on_start and again after it.
    _compat.settle_ray_calls_at_once(loop)

    def agents(
        loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **kwargs: Any
    ) -> asyncio.Task[Any]:
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(agents)  # replaces the settling factory
    _compat.settle_ray_calls_at_once(loop)
    factory = loop.get_task_factory()
    assert isinstance(factory, _compat._SettlingFactory)
    assert factory.previous is agents


def test_the_mcp_check_passes_on_the_pinned_sdk_and_finds_its_low_level_server() -> None:
    from mcp.server.fastmcp import FastMCP
    from mcp.server.lowlevel import Server

    assert _compat.mcp_problem() is None
    assert isinstance(_compat.mcp_lowlevel_server(FastMCP("t")), Server)


def test_the_mcp_check_names_the_sdk_when_fastmcp_moved_its_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mcp.server.fastmcp import FastMCP

    original = FastMCP.__init__

    def without_inner(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        del self._mcp_server

    monkeypatch.setattr(FastMCP, "__init__", without_inner)
    problem = _compat.mcp_problem()
    assert problem is not None
    assert "_mcp_server" in problem
    assert "1.30" in problem
