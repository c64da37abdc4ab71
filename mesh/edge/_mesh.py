"""`Mesh`: the entry point a driver program holds.

It starts or joins Ray, makes sure the namespace's registry exists, spawns agents in
host actors, and acts as the edge: the place where conversations begin and where trace
ids are minted. It talks to agents the same way they talk to each other.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar, overload

import ray

from mesh.config import MeshConfig
from mesh.control import (
    TeamHandle,
    TeamSpec,
)
from mesh.datapath import Endpoint, TypeShare
from mesh.edge._approvals import Approvals
from mesh.edge._connect import join_cluster, use_local_tls
from mesh.edge._lifecycle import Lifecycle
from mesh.edge._local import start_private_ray
from mesh.edge._run import RunOutcome, run_team
from mesh.edge._services import Services
from mesh.edge._stream import open_stream
from mesh.errors import ConfigError, MeshNotRunningError
from mesh.observability import configure_logging, get_logger
from protocols import Message, Stream

__all__ = ["Mesh"]

M = TypeVar("M", bound=Message)


class Mesh(Lifecycle, Approvals):
    """A handle on a mesh of agents in one Ray namespace.

    Use `Mesh.local()` or `Mesh.connect()` rather than the constructor, and one event
    loop per `Mesh`::

        async with Mesh.local() as mesh:
            await mesh.spawn(Echo, name="echo")
            reply = await mesh.ask("echo", Question(text="hi"))
    """

    def __init__(self, *, config: MeshConfig, owns_ray: bool, read_only: bool = False) -> None:
        configure_logging(fmt=config.log_format, level=config.log_level)
        self.config = config
        self._owns_ray = owns_ray
        self._read_only = read_only
        try:
            services = Services.find(config) if read_only else Services.start(config)
        except MeshNotRunningError:
            if owns_ray and ray.is_initialized():
                ray.shutdown()
            raise
        self._registry = services.registry
        self._spans = services.spans
        self._edge = Endpoint(
            name=f"edge-{uuid.uuid4().hex[:8]}",
            incarnation=uuid.uuid4().hex[:16],
            config=config,
            registry=self._registry,
            types=TypeShare.of_catalog(services.catalog),
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
        read_only: bool = False,
        **ray_init_kwargs: Any,
    ) -> Mesh:
        """Join the Ray cluster at `address` (``auto``, ``ray://host:10001``, ``host:6379``).

        Args:
            address: Where the cluster's GCS (or Ray Client server) listens.
            config: Limits and timings; read from ``RAYMESH_*`` variables when omitted.
            read_only: Find the namespace's service actors instead of starting them, and
                refuse to spawn: a look at a mesh (``raymesh status``) leaves the cluster
                as it found it.
            tls: None: speak TLS if the cluster does, with the certificates in
                ``$RAYMESH_TLS_DIR``, else ``$RAYMESH_HOME/tls``. True: require it. A
                path: the directory of ``ca.crt``, ``node.crt`` and ``node.key``.
                False: never.
            ray_init_kwargs: Passed to ``ray.init``.

        Raises:
            ClusterUnreachableError: Nothing answers at the address.
            TlsError: The cluster and this client disagree on TLS or on its CA.
            ConfigError: The cluster refused the connection.
            MeshNotRunningError: `read_only`, and no mesh started in the namespace.
        """
        config = config or MeshConfig()
        owns = not ray.is_initialized()
        if owns:
            join_cluster(address, namespace=config.namespace, tls=tls, **ray_init_kwargs)
        return cls(config=config, owns_ray=owns, read_only=read_only)

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
