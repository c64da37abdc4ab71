"""Supervisors: Ray actors that own a team's children and restart them by OTP rules.

A supervisor starts its children (agents, or sub-teams run by supervisors of their
own) in order, watches each with one long Ray call that returns when the child ends
and fails the moment its actor dies, and polls each agent's control lane to catch an
event loop that a handler has blocked, or a process that stopped answering at all
(SIGSTOP, a hung native call): such a child is killed and replaced. On a node starved
of CPU the limits that prove a child hung are stretched by how starved it is (`Starvation`:
the run queue per CPU, the supervisor's own late ticks), so that a slow healthy agent is
not replaced while a blocked loop, whose lag keeps growing, still is. What to
do about an exit is decided by the pure `Policy` (strategy, restart type, intensity).
Past its intensity a supervisor stops its children in reverse order and fails, and
its parent, which watches it like any child, decides in turn. Children are owned by
their supervisor's actor, so when a supervisor dies its whole subtree goes with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import RayError

from mesh.config import MeshConfig
from mesh.control._policy import Plan, Policy, Starvation
from mesh.control._spawn import create_host, start_host
from mesh.control._team import AgentSpec, TeamSpec
from mesh.datapath import RegistryClient
from mesh.errors import MeshError, RestartIntensityError
from mesh.observability import configure_logging, count_restart, get_logger

__all__ = ["SUPERVISOR", "Supervisor", "TeamHandle"]

_HEALTH_PERIOD_S = 0.25
_REAP_AFTER_S = 1.0


@dataclass
class _Child:
    spec: AgentSpec | TeamSpec
    handle: Any
    incarnation: str
    watcher: asyncio.Task[None] | None = None
    # The control-lane call in flight, if any, and when it was sent.
    health: asyncio.Task[dict[str, Any]] | None = None
    health_sent: float = 0.0
    stuck: bool = False

    @property
    def kind(self) -> str:
        return "agent" if isinstance(self.spec, AgentSpec) else "team"


class Supervisor:
    """The supervisor actor of one team (run with `SUPERVISOR`)."""

    def __init__(self) -> None:
        self._spec: TeamSpec | None = None
        self._config = MeshConfig()
        self._path = ""
        self._policy: Policy | None = None
        self._children: dict[str, _Child] = {}
        self._restarts: dict[str, int] = {}
        # The last exit of each child: when (epoch seconds) and why.
        self._exits: dict[str, dict[str, Any]] = {}
        self._lock = asyncio.Lock()
        self._stopping = False
        self._stopped = asyncio.Event()
        self._exit: dict[str, Any] = {"normal": True, "reason": "stopped"}
        self._monitor: asyncio.Task[None] | None = None
        self._log: Any = get_logger()
        self._registry: RegistryClient | None = None
        self._incarnation = uuid.uuid4().hex[:16]

    async def start(self, spec: TeamSpec, config: MeshConfig, path: str) -> dict[str, Any]:
        """Start the children in order; on a failure stop those started and report it."""
        configure_logging(fmt=config.log_format, level=config.log_level)
        self._spec, self._config, self._path = spec, config, path
        self._log = get_logger(team=path)
        self._registry = RegistryClient.existing(namespace=config.namespace)
        self._policy = Policy(spec.strategy, spec.max_restarts, spec.within_s, spec.children())
        # The agents' processes start at once (most of an agent's start, and mostly
        # waiting); the agents themselves are built and started one by one, in order.
        hosts: dict[str, Any] = {}
        try:
            for name, child in self._specs().items():
                if isinstance(child, AgentSpec):
                    hosts[name] = create_host(child, config)
            for name in self._policy.order():
                await self._start_child(name, hosts.pop(name, None))
        except MeshError as exc:
            await self._stop_all()
            return {"error": exc.to_wire()}
        finally:
            for host in hosts.values():  # created, never started: a child before failed
                ray.kill(host)
        self._monitor = asyncio.create_task(self._watch_health())
        return {"incarnation": self._incarnation}

    async def watch(self) -> dict[str, Any]:
        """Return how this team ended (normally, or failed past its intensity)."""
        await self._stopped.wait()
        return self._exit

    async def stop(self) -> None:
        """Stop the children in reverse start order, each gracefully, then forcibly."""
        async with self._lock:
            self._stopping = True
            await self._stop_all()
        self._stopped.set()

    async def members(self) -> list[dict[str, Any]]:
        """Return a row per child, sub-teams' children included, in start order.

        ``last_exit`` is ``{"at": epoch seconds, "reason": ..., "stretch": ...}`` of its
        latest exit, or None; ``stretch`` is how far a starved node had stretched the hang
        limits when the supervisor killed a stuck child (1.0 for any other exit).
        """
        assert self._policy is not None
        rows: list[dict[str, Any]] = []
        for name in self._policy.order():
            child = self._children.get(name)
            rows.append({"team": self._path, "name": name,
                         "kind": "agent" if isinstance(self._specs()[name], AgentSpec) else "team",
                         "incarnation": child.incarnation if child else None,
                         "restarts": self._restarts.get(name, 0),
                         "running": child is not None,
                         "last_exit": self._exits.get(name)})  # fmt: skip
            if child is not None and child.kind == "team":
                with contextlib.suppress(RayError):  # it just died; its restart is under way
                    rows.extend(await child.handle.members.remote())
        return rows

    # -- children ------------------------------------------------------------------

    def _specs(self) -> dict[str, AgentSpec | TeamSpec]:
        assert self._spec is not None
        return {**{a.name: a for a in self._spec.agents}, **{t.name: t for t in self._spec.teams}}

    async def _start_child(self, name: str, host: Any = None) -> None:
        # `host`: the agent's host actor if created already, as `start` does.
        spec = self._specs()[name]
        if isinstance(spec, AgentSpec):
            if self._registry is not None:
                await self._registry.evict_if_dead(spec.name)  # e.g. its killed predecessor
            handle, info = await start_host(spec, self._config, host)
            incarnation = info.incarnation
        else:
            handle = SUPERVISOR.options(**supervisor_options(spec)).remote()
            try:
                started = await handle.start.remote(spec, self._config, f"{self._path}/{name}")
            except RayError as exc:
                ray.kill(handle)
                raise MeshError(f"team {name!r} could not start: {exc}", agent=name) from exc
            if "error" in started:
                ray.kill(handle)
                raise MeshError.from_wire(started["error"])
            incarnation = started["incarnation"]
        child = _Child(spec, handle, incarnation)
        child.watcher = asyncio.create_task(self._watch_child(name, child))
        self._children[name] = child

    async def _watch_child(self, name: str, child: _Child) -> None:
        try:
            ended = await child.handle.watch.remote()
            abnormal, reason = not ended["normal"], str(ended["reason"])
        except RayError as exc:
            abnormal, reason = True, f"its actor died ({type(exc).__name__})"
        await self._exited(name, child, abnormal=abnormal, reason=reason)

    async def _exited(
        self, name: str, child: _Child, *, abnormal: bool, reason: str, stretch: float = 1.0
    ) -> None:
        async with self._lock:
            if self._stopping or self._children.get(name) is not child:
                return  # stopped on purpose, or already replaced
            del self._children[name]
            if child.health is not None:
                child.health.cancel()
            self._exits[name] = {"at": time.time(), "reason": reason, "stretch": stretch}
            self._reap(child.handle)
            self._log.warning("child exited", child=name, abnormal=abnormal, reason=reason)
            assert self._policy is not None
            await self._carry_out(
                self._policy.exited(name, abnormal=abnormal, now=time.monotonic())
            )

    def _reap(self, handle: Any) -> None:
        # A child that ended by itself may still be sending its last replies: end its
        # process a moment later. It is unregistered and refuses new messages already.
        asyncio.get_running_loop().call_later(_REAP_AFTER_S, ray.kill, handle)

    async def _carry_out(self, plan: Plan) -> None:
        assert self._policy is not None
        plans = deque([plan])
        while plans:
            step = plans.popleft()
            for name in step.stop:
                await self._stop_child(name)
            if step.give_up:
                await self._give_up()
                return
            for name in step.start:
                try:
                    await self._start_child(name)
                except MeshError as exc:
                    self._log.error("restart failed", child=name, error=str(exc))
                    plans.append(self._policy.exited(name, abnormal=True, now=time.monotonic()))
                    break
                self._restarts[name] = self._restarts.get(name, 0) + 1
                if self._config.metrics and self._children[name].kind == "agent":
                    count_restart(name, self._path)
                self._log.info("child restarted", child=name, restarts=self._restarts[name])

    async def _stop_child(self, name: str) -> None:
        child = self._children.pop(name, None)
        if child is None:
            return
        for task in (child.watcher, child.health):
            if task is not None:
                task.cancel()
        grace = self._config.stop_grace_s
        try:
            await asyncio.wait_for(child.handle.stop.remote(), grace * 2 + 1)
        except (TimeoutError, RayError) as exc:
            self._log.warning("child did not stop gracefully; killing it", child=name,
                              error=type(exc).__name__)  # fmt: skip
        ray.kill(child.handle)

    async def _stop_all(self) -> None:
        order = self._policy.order() if self._policy else list(self._children)
        for name in reversed(order):
            await self._stop_child(name)

    async def _give_up(self) -> None:
        assert self._spec is not None
        error = RestartIntensityError(
            f"team {self._path!r} restarted its children more than {self._spec.max_restarts} "
            f"times within {self._spec.within_s:g}s and gave up",
            agent=self._path,
            hint="see the agents' logs for why they keep failing, or raise max_restarts",
        )
        self._log.error("restart intensity exceeded", team=self._path)
        self._stopping = True
        await self._stop_all()
        self._exit = {"normal": False, "reason": error.message, "error": error.to_wire()}
        self._stopped.set()

    async def _watch_health(self) -> None:
        # A handler that blocks the event loop cannot be cancelled; its host says so
        # from its control lane. A process that does not answer even there (stopped,
        # or stuck in native code) is as stuck. Either is killed and replaced.
        # Longer than a blocked loop takes to report itself: a busy machine's slow
        # answer is not taken for a stopped process.
        # Both limits are stretched on a starved node (`Starvation`).
        silent_after = self._config.stuck_after_s * 1.5
        starvation = Starvation(period_s=_HEALTH_PERIOD_S)
        ticked = time.monotonic()
        while not self._stopping:
            await asyncio.sleep(_HEALTH_PERIOD_S)
            now = time.monotonic()
            # Time this supervisor itself did not run (a starved process: a tick late by
            # more than its period, not mere jitter) is not a child's silence: the
            # child's answer may be waiting in this loop.
            own_lag = now - ticked - _HEALTH_PERIOD_S
            starvation.tick(late_s=own_lag, now=now, load_per_cpu=_load_per_cpu())
            own_lag = own_lag if own_lag > _HEALTH_PERIOD_S else 0.0
            ticked = now
            stretch = starvation.factor
            for name, child in list(self._children.items()):
                if child.kind != "agent" or child.stuck:
                    continue
                child.health_sent += own_lag
                stuck = self._check_health(child, now, silent_after * stretch, stretch)
                if stuck is not None:
                    child.stuck = True
                    self._log.warning("child is stuck; killing it", child=name, reason=stuck)
                    ray.kill(child.handle)
                    self._replace_soon(name, child, f"stuck: {stuck}", stretch)

    def _check_health(
        self, child: _Child, now: float, silent_after: float, stretch: float
    ) -> str | None:
        # One control call in flight per child: calls to a silent one do not pile up.
        call = child.health
        if call is not None and call.done():
            child.health = None
            if not call.cancelled() and call.exception() is None:
                health = call.result()
                # Starved, a healthy loop lags as long as the node makes it wait; a
                # blocked one lags more every second, past any stretched limit.
                lag = health["loop_lag_s"]
                if not health["healthy"] and lag >= self._config.stuck_after_s * stretch:
                    return f"its event loop is blocked ({lag:.1f}s behind)"
        if child.health is None:
            child.health = asyncio.create_task(_health(child.handle))
            child.health_sent = now
        silent = now - child.health_sent
        if silent > silent_after:
            return f"its control lane has not answered for {silent:.1f}s"
        return None

    def _replace_soon(self, name: str, child: _Child, reason: str, stretch: float) -> None:
        # Not awaited: the other children's health is watched while this one restarts.
        if child.watcher is not None:
            child.watcher.cancel()  # a stopped process may not die for a long while
        child.watcher = asyncio.create_task(
            self._exited(name, child, abnormal=True, reason=reason, stretch=stretch)
        )


def _load_per_cpu() -> float:
    """Return the node's runnable tasks per CPU now (Linux), else its 1-minute load per CPU.

    The run queue answers at once; the load average takes a minute to follow a storm.
    """
    cpus = os.cpu_count() or 1
    with contextlib.suppress(OSError, IndexError, ValueError):
        with open("/proc/loadavg", encoding="ascii") as loadavg:
            runnable = int(loadavg.read().split()[3].split("/")[0]) - 1  # not this reader
        return max(runnable / cpus, os.getloadavg()[0] / cpus)
    return os.getloadavg()[0] / cpus


async def _health(handle: Any) -> dict[str, Any]:
    health: dict[str, Any] = await handle.health.remote()
    return health


SUPERVISOR: Any = ray.remote(Supervisor)


def supervisor_options(spec: TeamSpec, **extra: Any) -> dict[str, Any]:
    """Return the Ray actor options for the supervisor of `spec`."""
    return {"num_cpus": 0, "max_restarts": 0, "max_concurrency": 1000,
            **spec.actor_options, **extra}  # fmt: skip


class TeamHandle:
    """The driver's handle on a running team."""

    def __init__(self, spec: TeamSpec, handle: Any) -> None:
        self.spec = spec
        self.name = spec.name
        self.entry = spec.entry_agent()
        self.stopped = False
        self._handle = handle

    @property
    def actor(self) -> Any:
        """The root supervisor's Ray actor handle."""
        return self._handle

    async def members(self) -> list[dict[str, Any]]:
        """Return a row per member (team path, name, kind, incarnation, restarts, running)."""
        rows: list[dict[str, Any]] = await self._handle.members.remote()
        return rows

    async def wait(self) -> None:
        """Wait until the team ends.

        Raises:
            RestartIntensityError: The team failed past its restart intensity.
        """
        ended = await self._handle.watch.remote()
        if not ended["normal"]:
            raise MeshError.from_wire(ended["error"])

    async def stop(self) -> None:
        """Stop the team: children in reverse start order, sub-teams likewise.

        A team that already failed or was stopped is left as it is.
        """
        if self.stopped:
            return
        self.stopped = True
        try:
            await self._handle.stop.remote()
        except RayError as exc:
            self._log_gone(exc)
        finally:
            ray.kill(self._handle)

    def _log_gone(self, exc: RayError) -> None:
        get_logger(team=self.name).info("team supervisor already gone", error=type(exc).__name__)
