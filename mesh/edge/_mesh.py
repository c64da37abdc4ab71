"""`Mesh`: the entry point a driver program holds.

It starts or joins Ray, makes sure the namespace's registry exists, spawns agents in
host actors, and acts as the edge: the place where conversations begin and where trace
ids are minted. It talks to agents the same way they talk to each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar, overload

import ray

from mesh.agent import Agent, AgentInfo
from mesh.config import MeshConfig
from mesh.control import (
    SUPERVISOR,
    AgentSpec,
    RayApprovalGate,
    TeamHandle,
    TeamSpec,
    load_team,
    start_host,
    start_registry,
    supervisor_options,
    type_catalog,
)
from mesh.datapath import Endpoint, TypeShare, translate
from mesh.edge._connect import join_cluster, use_local_tls
from mesh.edge._local import start_private_ray
from mesh.edge._run import RunOutcome, run_team
from mesh.edge._stream import open_stream
from mesh.errors import ConfigError, MeshError, PeerNotFoundError
from mesh.observability import (
    AgentStats,
    DeadLetter,
    UsageReport,
    collect_dead_letters,
    configure_logging,
    get_logger,
    span_store,
)
from protocols import Message, Stream, UsageQuery, UsageSummary
from protocols.patterns import Checkpoint

__all__ = ["Mesh"]

M = TypeVar("M", bound=Message)


class Mesh:
    """A handle on a mesh of agents in one Ray namespace.

    Use `Mesh.local()` or `Mesh.connect()` rather than the constructor, and one event
    loop per `Mesh`::

        async with Mesh.local() as mesh:
            await mesh.spawn(Echo, name="echo")
            reply = await mesh.ask("echo", Question(text="hi"))
    """

    def __init__(self, *, config: MeshConfig, owns_ray: bool) -> None:
        configure_logging(fmt=config.log_format, level=config.log_level)
        self.config = config
        self._owns_ray = owns_ray
        self._registry = start_registry(namespace=config.namespace, lease_s=config.lease_s)
        self._spans = span_store(namespace=config.namespace, capacity=config.max_spans)
        self._edge = Endpoint(
            name=f"edge-{uuid.uuid4().hex[:8]}",
            incarnation=uuid.uuid4().hex[:16],
            config=config,
            registry=self._registry,
            types=TypeShare.of_catalog(type_catalog(namespace=config.namespace)),
        )
        # Agents this mesh spawned, in start order, with their host handles.
        self._spawned: dict[str, Any] = {}
        self._teams: list[TeamHandle] = []
        self._log = get_logger(edge=self._edge.name)

    @classmethod
    def local(
        cls,
        *,
        config: MeshConfig | None = None,
        dev: bool = False,
        tls: bool = False,
        **ray_init_kwargs: Any,
    ) -> Mesh:
        """Start a local Ray (or join the one this process already has) and return a mesh.

        The Ray it starts listens on 127.0.0.1 only, with token authentication on and
        its token file readable by this user only, as ``raymesh up`` does.

        Args:
            config: Limits and timings; read from ``RAYMESH_*`` variables when omitted.
            dev: Allow an inherited ``RAY_AUTH_MODE=disabled`` (a throwaway Ray).
            tls: Run the new Ray's gRPC with mutual TLS, with a CA and node certificate
                made (or reused) in ``$RAYMESH_TLS_DIR``, else ``$RAYMESH_HOME/tls``.
                The variables stay set in this process, for the rest of its life.
            ray_init_kwargs: Passed to ``ray.init``, e.g. ``num_cpus=8``.

        Raises:
            ConfigError: ``RAY_AUTH_MODE=disabled`` without `dev`, or `tls` was asked
                for but this process already runs a Ray.
            ClusterError: The new Ray listens beyond loopback (a Ray that binds
                another way than the one verified); it is stopped.
        """
        config = config or MeshConfig()
        owns = not ray.is_initialized()
        if tls and not owns:
            raise ConfigError(
                "Mesh.local(tls=True): this process already runs a Ray, and TLS is chosen "
                "when Ray starts",
                hint="call Mesh.local(tls=True) before anything starts Ray in this process",
            )
        if tls:
            use_local_tls()
        if owns:
            # A new Ray of this process's own, even if a cluster runs on this machine:
            # joining one is what `Mesh.connect("auto")` is for.
            ray_init_kwargs.setdefault("address", "local")
            ray_init_kwargs.setdefault("include_dashboard", False)
            ray_init_kwargs.setdefault("log_to_driver", True)
            if ray_init_kwargs["address"] == "local":
                start_private_ray(namespace=config.namespace, dev=dev, **ray_init_kwargs)
            else:
                ray.init(namespace=config.namespace, **ray_init_kwargs)
        return cls(config=config, owns_ray=owns)

    @classmethod
    def connect(
        cls,
        address: str,
        *,
        config: MeshConfig | None = None,
        tls: bool | Path | None = None,
        **ray_init_kwargs: Any,
    ) -> Mesh:
        """Join the Ray cluster at `address` (``auto``, ``ray://host:10001``, ``host:6379``).

        Args:
            address: Where the cluster's GCS (or Ray Client server) listens.
            config: Limits and timings; read from ``RAYMESH_*`` variables when omitted.
            tls: None: speak TLS if the cluster does, with the certificates in
                ``$RAYMESH_TLS_DIR``, else ``$RAYMESH_HOME/tls``. True: require it. A
                path: the directory of ``ca.crt``, ``node.crt`` and ``node.key``.
                False: never.
            ray_init_kwargs: Passed to ``ray.init``.

        Raises:
            ClusterUnreachableError: Nothing answers at the address.
            TlsError: The cluster and this client disagree on TLS or on its CA.
            ConfigError: The cluster refused the connection.
        """
        config = config or MeshConfig()
        owns = not ray.is_initialized()
        if owns:
            join_cluster(address, namespace=config.namespace, tls=tls, **ray_init_kwargs)
        return cls(config=config, owns_ray=owns)

    @property
    def name(self) -> str:
        """The edge's name: what agents see as the sender of messages from this driver."""
        return self._edge.name

    @property
    def retries(self) -> int:
        """How often this driver's ``at_least_once`` sends were tried again (same message id).

        Each follows a dead or missing agent, whose successor a supervisor may be starting.
        """
        return self._edge.retries

    @property
    def dead_letter_counts(self) -> dict[str, int]:
        """How many dead letters this driver recorded, by reason, since the mesh started.

        Counts every one, kept or dropped from the bounded buffer, and whether or not it
        was logged (``log_dead_letters``): a run that expects faults reports these.
        """
        return dict(self._edge.dead_letters.by_reason)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.shutdown()

    async def spawn(
        self,
        agent_cls: type[Agent],
        *,
        name: str,
        role: str | None = None,
        capabilities: Sequence[str] = (),
        model: str | None = None,
        topics: Sequence[str] = (),
        concurrency: int | None = None,
        mailbox_size: int | None = None,
        actor_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> AgentInfo:
        """Start `agent_cls` in a new host actor and register it as `name`.

        Args:
            agent_cls: An `Agent` subclass.
            name: Unique among live agents of the namespace.
            role: Its role, for `peers(role=...)` lookups.
            capabilities: What it can do, for `peers(capability=...)` lookups.
            model: The model behind it (LLM agents use it; the registry shows it).
            topics: Topics it subscribes to, besides its class's `topics`.
            concurrency: Messages handled at once (default: the class's `concurrency`).
            mailbox_size: Messages queued before refusal (default: the config's).
            actor_options: Extra Ray actor options (resources, scheduling_strategy, ...).
            kwargs: Passed to the agent class's constructor.

        Raises:
            ConfigError: The class, the name or an option is not usable, or the agent
                failed to start (its constructor or on_start raised).
            NameTakenError: A live agent already has the name.
        """
        spec = AgentSpec.build(
            name=name,
            agent=agent_cls,
            role=role,
            capabilities=tuple(capabilities),
            model=model,
            topics=tuple(topics),
            concurrency=concurrency,
            mailbox_size=mailbox_size,
            options=kwargs,
            actor_options=actor_options or {},
        )
        await self._registry.evict_if_dead(name)
        # Before the agent runs: a peer may meet its replies' types at its first message.
        await self._edge.types.publish(agent_cls.message_classes)
        host, info = await start_host(spec, self.config)
        self._spawned[name] = host
        return info

    async def team(self, source: str | Path | dict[str, Any] | TeamSpec) -> TeamHandle:
        """Start a team tree from a spec, a mapping or a YAML file, under a root supervisor.

        Raises:
            ConfigError: The team file or spec is invalid, or an agent failed to start.
            NameTakenError: A live agent already has one of the team's names.
        """
        spec = load_team(source)
        for agent in spec.walk_agents():
            await self._registry.evict_if_dead(agent.name)
        root = SUPERVISOR.options(
            **supervisor_options(
                spec, name=f"raymesh.team.{spec.name}", namespace=self.config.namespace
            )
        ).remote()
        try:
            started = await root.start.remote(spec, self.config, spec.name)
        except ray.exceptions.RayError as exc:
            ray.kill(root)
            raise ConfigError(f"team {spec.name!r} could not start: {exc}") from exc
        if "error" in started:
            ray.kill(root)
            raise MeshError.from_wire(started["error"])
        team = TeamHandle(spec, root)
        self._teams.append(team)
        return team

    async def run(
        self,
        team: str | Path | dict[str, Any] | TeamSpec,
        task: str,
        *,
        timeout: float = 120.0,
        trace_id: str | None = None,
        on_step: Callable[[str], object] | None = None,
        on_text: Callable[[str], object] | None = None,
    ) -> RunOutcome:
        """Start `team`, give its entry agent `task`, and stop the team: ``raymesh run``.

        The team is stopped in order however the run ends (an error, a cancellation,
        Ctrl-C); the agents' counters, the usage and the spans are read before that.

        Args:
            team: A team file, mapping or spec.
            task: The text of the entry agent's `Task`.
            timeout: Seconds the task may take.
            trace_id: The run's conversation (default: a new one).
            on_step: Called with what the run is doing now, e.g. for a progress line.
            on_text: Stream the answer: called with its text as it forms (redacted).

        Raises:
            ConfigError: The team is invalid, or an agent failed to start.
            NameTakenError: A live agent already has one of the team's names.
            RestartIntensityError: The team failed past its restart intensity.
            DeadlineExceededError: No answer within `timeout`.
            HandlerError: The entry agent's handler raised.
        """
        return await run_team(self, team, task, timeout=timeout, trace_id=trace_id,
                              on_step=on_step, on_text=on_text)  # fmt: skip

    @overload
    async def ask(self, name: str, msg: Message, *, timeout: float | None = ...,
                  trace_id: str | None = ..., expect: None = ...,
                  budget: dict[str, float] | None = ...,
                  at_least_once: bool = ...) -> Message | None: ...  # fmt: skip
    @overload
    async def ask(self, name: str, msg: Message, *, timeout: float | None = ...,
                  trace_id: str | None = ..., expect: type[M],
                  budget: dict[str, float] | None = ...,
                  at_least_once: bool = ...) -> M: ...  # fmt: skip

    async def ask(
        self,
        name: str,
        msg: Message,
        *,
        timeout: float | None = None,
        trace_id: str | None = None,
        expect: type[Message] | None = None,
        budget: dict[str, float] | None = None,
        at_least_once: bool = False,
    ) -> Message | None:
        """Send `msg` to agent `name` and return its reply.

        Args:
            name: The recipient.
            msg: The request.
            timeout: Seconds to wait (default: the config's ``ask_timeout_s``).
            trace_id: Continue this trace instead of starting a new one.
            expect: The reply class; another type raises `DecodeError`.
            budget: What the whole conversation may spend, per unit, e.g.
                ``{"tokens": 5000, "usd": 0.05}``; every agent it reaches draws on it.
            at_least_once: If the agent dies (or is not registered), resend the same
                message to its successor until the deadline; it runs once per id.

        Raises:
            PeerNotFoundError: No live agent is registered as `name`.
            PeerDeadError: The agent died before replying.
            DuplicateMessageError: A resend the agent had already handled (reply lost).
            DeadlineExceededError: No reply before the deadline.
            MailboxFullError: The agent's mailbox was full.
            HandlerError: The agent's handler raised.
        """
        return await self._edge.ask(name, msg, timeout=timeout, trace_id=trace_id, expect=expect,
                                    budget=budget, at_least_once=at_least_once)  # fmt: skip

    def stream(
        self, name: str, msg: Message, *, timeout: float | None = None, trace_id: str | None = None
    ) -> Stream:
        """Ask agent `name` and return the `Stream` of its chunks, then its reply (`reply`).

        Returns at once (not a coroutine); ``async with`` it and iterate; leaving early
        cancels the handler. The errors of `ask` are raised from the iteration.
        """
        return open_stream(self._edge, name, msg, timeout=timeout, trace_id=trace_id)

    async def tell(
        self, name: str, msg: Message, *, trace_id: str | None = None, at_least_once: bool = False
    ) -> None:
        """Send `msg` to agent `name`; return once it is in the agent's mailbox.

        With `at_least_once`, a dead or missing agent is looked up again and the same
        message resent until ``ask_timeout_s``, to be taken once.

        Raises:
            PeerNotFoundError: No live agent is registered as `name`.
            PeerDeadError: The agent died before accepting it.
            MailboxFullError: The agent's mailbox was full; the message was not queued.
        """
        await self._edge.tell(name, msg, trace_id=trace_id, at_least_once=at_least_once)

    async def agents(
        self, *, role: str | None = None, capability: str | None = None
    ) -> list[AgentInfo]:
        """Return the live agents of the namespace, optionally by role and/or capability."""
        return [info for info, _ in await self._registry.find(role=role, capability=capability)]

    async def usage(
        self, *, names: Sequence[str] | None = None, trace_id: str | None = None
    ) -> UsageReport:
        """Return model usage and cost, totalled per agent, team, model and trace.

        Args:
            names: The agents to ask (default: every live agent of the namespace).
            trace_id: Count only this conversation.

        The teams are those this mesh started (`team`).
        """
        if names is None:
            names = [info.name for info in await self.agents()]
        summaries = await asyncio.gather(
            *(self.ask(name, UsageQuery(), timeout=5, expect=UsageSummary) for name in names),
            return_exceptions=True,
        )
        return UsageReport.of(
            [s for s in summaries if isinstance(s, UsageSummary)],
            trace_id=trace_id,
            teams=await self._team_paths(),
        )

    async def _team_paths(self) -> dict[str, str]:
        # Each member agent's team path (``review/writers``), for usage per team.
        paths: dict[str, str] = {}
        for team in self._teams:
            if not team.stopped:
                with contextlib.suppress(ray.exceptions.RayError):  # it failed: none run
                    paths |= {row["name"]: row["team"] for row in await team.members()
                              if row["kind"] == "agent"}  # fmt: skip
        return paths

    async def trace(self, trace_id: str | None = None) -> list[dict[str, Any]]:
        """Return the spans of a conversation kept by the mesh, in start order.

        Args:
            trace_id: The conversation; the most recent one when None.
        """
        if trace_id is None:
            trace_id = await self._spans.last_trace.remote()
            if trace_id is None:
                return []
        spans: list[dict[str, Any]] = await self._spans.trace.remote(trace_id)
        return spans

    async def dead_letters(self, agent: str | None = None, *, limit: int = 100) -> list[DeadLetter]:
        """Return the most recent dead letters of the live agents and this edge, oldest first.

        Args:
            agent: Only those that concern this agent (recorded by, sent by or sent to it).
            limit: At most this many (the most recent).
        """
        hosts = [handle for _, handle in await self._registry.find()]
        return await collect_dead_letters(
            hosts, self._edge.dead_letters.recent(), agent=agent, limit=limit
        )

    async def span_stats(self) -> dict[str, int]:
        """Return how many spans the mesh keeps, its capacity and how many it dropped."""
        stats: dict[str, int] = await self._spans.stats.remote()
        return stats

    async def approvals(self) -> list[Checkpoint]:
        """Return the approval checkpoints waiting for a person, oldest first."""
        return await self._approval_gate().pending()

    async def approve(self, checkpoint_id: str, *, edit: str | None = None) -> None:
        """Approve a waiting checkpoint; `edit` replaces its proposal.

        Raises:
            CheckpointNotFoundError: No such checkpoint is pending (decided or timed out).
        """
        await self._approval_gate().approve(checkpoint_id, edit=edit, by=self.name)

    async def reject(self, checkpoint_id: str, *, reason: str = "") -> None:
        """Reject a waiting checkpoint: its conversation fails with `ApprovalRejectedError`.

        Raises:
            CheckpointNotFoundError: No such checkpoint is pending (decided or timed out).
        """
        await self._approval_gate().reject(checkpoint_id, reason=reason, by=self.name)

    def _approval_gate(self) -> RayApprovalGate:
        return RayApprovalGate.get_or_create(namespace=self.config.namespace)

    async def stats(self, name: str) -> AgentStats:
        """Return agent `name`'s counters.

        Raises:
            PeerNotFoundError: No live agent is registered as `name`.
            PeerDeadError: It died.
        """
        handle = await self.actor(name)
        try:
            return AgentStats(**await handle.stats.remote())
        except ray.exceptions.RayError as exc:
            raise translate(exc, agent=name) from exc

    async def actor(self, name: str) -> Any:
        """Return the Ray actor handle hosting agent `name` (for Ray-level operations).

        Raises:
            PeerNotFoundError: No live agent is registered as `name`.
        """
        found = await self._registry.lookup(name)
        if found is None:
            raise PeerNotFoundError(f"no agent named {name!r}", agent=name)
        return found[1]

    async def stop(self, name: str) -> None:
        """Stop agent `name` gracefully (handlers finish, on_stop runs), then end its actor."""
        host = self._spawned.pop(name, None) or await self.actor(name)
        try:
            await asyncio.wait_for(host.stop.remote(), self.config.stop_grace_s * 2 + 1)
        except (TimeoutError, ray.exceptions.RayError) as exc:
            self._log.warning("agent did not stop gracefully; killing it", agent=name,
                              error=type(exc).__name__)  # fmt: skip
        ray.kill(host)

    async def shutdown(self) -> None:
        """Stop the teams and agents this mesh started, newest first, then Ray if it started it."""
        for team in reversed(self._teams):
            await team.stop()
        self._teams.clear()
        for name in reversed(list(self._spawned)):
            await self.stop(name)
        self._edge.close()
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()
