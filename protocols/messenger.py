"""The `Messenger` protocol that patterns talk through, and an in-memory one for tests.

Conversation patterns (``protocols.patterns``) are written against this small surface
(ask / tell / publish / peers, plus the trace and the deadline) rather than against the
runtime, so that the same pattern runs on the Ray mesh (where ``mesh.Context`` plays the
messenger) and in a unit test on `InMemoryMessenger`, with no Ray and no network.

`InMemoryMessenger` delivers in-process: an ask awaits the recipient's handler in the
asker's task, so cancelling the ask cancels the handler, as a deadline watchdog would.
Every handler gets a messenger of its own (same network, same trace, the ask's deadline)
so it can call other agents, which is how patterns nest.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, overload, runtime_checkable

from protocols.envelope import Kind, new_trace_id
from protocols.errors import DeadlineExceededError, DecodeError, MeshError
from protocols.message import Message

__all__ = [
    "Delivery",
    "Handler",
    "InMemoryMessenger",
    "Messenger",
    "Peer",
    "PeerInfo",
    "UnknownPeerError",
]

M = TypeVar("M", bound=Message)


@runtime_checkable
class PeerInfo(Protocol):
    """What a pattern needs to know about a peer; ``mesh.AgentInfo`` fits it as is."""

    @property
    def name(self) -> str:
        """The agent's name in the mesh."""
        ...

    @property
    def role(self) -> str | None:
        """Its role, if any."""
        ...

    @property
    def capabilities(self) -> Sequence[str]:
        """What it can do."""
        ...


@dataclass(frozen=True, slots=True)
class Peer:
    """A plain `PeerInfo`, as `InMemoryMessenger.peers` returns."""

    name: str
    role: str | None = None
    capabilities: tuple[str, ...] = ()


class Messenger(Protocol):
    """How a pattern talks to agents: the verbs of ``mesh.Context``.

    A messenger belongs to one conversation (its `trace_id`) and may carry a deadline
    (absolute, epoch seconds, as on the envelope); asks made through it never outlive it.
    """

    @property
    def agent(self) -> str:
        """The name of the agent (or edge client) speaking through this messenger."""
        ...

    @property
    def trace_id(self) -> str:
        """The conversation's trace id (W3C, 32 hex)."""
        ...

    @property
    def deadline(self) -> float | None:
        """The absolute deadline (epoch seconds), or None when there is none."""
        ...

    def remaining(self) -> float | None:
        """Return the seconds left before the deadline, or None when there is none."""
        ...

    @overload
    async def ask(
        self, peer: str, msg: Message, *, timeout: float | None = None
    ) -> Message | None: ...
    @overload
    async def ask(
        self, peer: str, msg: Message, *, timeout: float | None = None, expect: type[M]
    ) -> M: ...
    async def ask(
        self,
        peer: str,
        msg: Message,
        *,
        timeout: float | None = None,
        expect: type[Message] | None = None,
    ) -> Message | None:
        """Send `msg` to `peer` and wait for its reply.

        Raises:
            LookupError: No agent is known as `peer` (a `MeshError` too).
            TimeoutError: No reply within `timeout` or the deadline (a `MeshError` too).
            DecodeError: The reply is not an `expect`.
        """
        ...

    async def tell(self, peer: str, msg: Message) -> None:
        """Send `msg` to `peer` without waiting for it to be handled.

        Raises:
            LookupError: No agent is known as `peer` (a `MeshError` too).
        """
        ...

    async def publish(self, topic: str, msg: Message) -> None:
        """Send `msg` to every subscriber of `topic`, without waiting."""
        ...

    async def peers(
        self, *, role: str | None = None, capability: str | None = None
    ) -> Sequence[PeerInfo]:
        """Return the live agents with this role and/or capability (the speaker excluded)."""
        ...


Handler = Callable[[Message, "InMemoryMessenger"], Coroutine[Any, Any, Message | None]]
"""An in-memory agent: ``async def h(msg, messenger) -> reply or None``."""


class UnknownPeerError(MeshError, LookupError):
    """No in-memory agent is registered under the name asked for."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message as `InMemoryMessenger` delivered it (replies included)."""

    kind: Kind
    sender: str
    recipient: str
    type: str
    trace_id: str
    topic: str | None = None


@dataclass
class _Agent:
    info: Peer
    handler: Handler


@dataclass
class _Network:
    agents: dict[str, _Agent] = field(default_factory=dict)
    topics: dict[str, list[str]] = field(default_factory=dict)
    log: list[Delivery] = field(default_factory=list)
    background: set[asyncio.Task[None]] = field(default_factory=set)
    tell_errors: list[tuple[str, BaseException]] = field(default_factory=list)


class InMemoryMessenger:
    """A `Messenger` over in-process agents, for tests and examples.

    Example::

        net = InMemoryMessenger()
        net.register("echo", echo_handler, role="echo")
        reply = await net.ask("echo", Request(text="hi"), timeout=1.0)

    Args:
        agent: The name this messenger speaks as (the edge by default).
        trace_id: The conversation's trace id; a new one by default.
        deadline: The absolute deadline (epoch seconds), if any.
    """

    def __init__(
        self,
        *,
        agent: str = "edge",
        trace_id: str | None = None,
        deadline: float | None = None,
        _network: _Network | None = None,
    ) -> None:
        self._agent = agent
        self._trace_id = trace_id or new_trace_id()
        self._deadline = deadline
        self._net = _network if _network is not None else _Network()

    # -- set-up and inspection (not part of Messenger) -------------------------------

    def register(
        self,
        name: str,
        handler: Handler,
        *,
        role: str | None = None,
        capabilities: Iterable[str] = (),
        topics: Iterable[str] = (),
    ) -> None:
        """Add an agent to the network, replacing any agent of that name.

        Args:
            name: The agent's name.
            handler: Called with each message it receives and a messenger of its own.
            role: Its role, for `peers`.
            capabilities: Its capabilities, for `peers`.
            topics: Topics it subscribes to.
        """
        self._net.agents[name] = _Agent(Peer(name, role, tuple(capabilities)), handler)
        for topic in topics:
            self.subscribe(topic, name)

    def subscribe(self, topic: str, name: str) -> None:
        """Deliver messages published on `topic` to the agent `name`."""
        subscribers = self._net.topics.setdefault(topic, [])
        if name not in subscribers:
            subscribers.append(name)

    def with_deadline(self, deadline: float | None) -> InMemoryMessenger:
        """Return a messenger on the same network and trace with another deadline."""
        return InMemoryMessenger(
            agent=self._agent, trace_id=self._trace_id, deadline=deadline, _network=self._net
        )

    @property
    def log(self) -> list[Delivery]:
        """Every message delivered on this network so far, in order (shared by all views)."""
        return self._net.log

    def count(
        self,
        *,
        trace_id: str | None = None,
        kind: Kind | None = None,
        sender: str | None = None,
        recipient: str | None = None,
    ) -> int:
        """Return how many logged deliveries match every filter given."""
        return sum(
            1
            for d in self._net.log
            if (trace_id is None or d.trace_id == trace_id)
            and (kind is None or d.kind == kind)
            and (sender is None or d.sender == sender)
            and (recipient is None or d.recipient == recipient)
        )

    @property
    def tell_errors(self) -> list[tuple[str, BaseException]]:
        """(agent, exception) for each tell or publish whose handler raised."""
        return self._net.tell_errors

    async def drain(self) -> None:
        """Wait until every tell and publish sent so far has been handled."""
        while self._net.background:
            await asyncio.gather(*self._net.background, return_exceptions=True)

    # -- Messenger --------------------------------------------------------------------

    @property
    def agent(self) -> str:
        """The name this messenger speaks as."""
        return self._agent

    @property
    def trace_id(self) -> str:
        """The conversation's trace id."""
        return self._trace_id

    @property
    def deadline(self) -> float | None:
        """The absolute deadline (epoch seconds), or None."""
        return self._deadline

    def remaining(self) -> float | None:
        """Return the seconds left before the deadline, or None when there is none."""
        return None if self._deadline is None else self._deadline - time.time()

    @overload
    async def ask(
        self, peer: str, msg: Message, *, timeout: float | None = None
    ) -> Message | None: ...
    @overload
    async def ask(
        self, peer: str, msg: Message, *, timeout: float | None = None, expect: type[M]
    ) -> M: ...
    async def ask(
        self,
        peer: str,
        msg: Message,
        *,
        timeout: float | None = None,
        expect: type[Message] | None = None,
    ) -> Message | None:
        """Run `peer`'s handler on `msg` and return its reply.

        The handler's own exceptions reach the asker unchanged.

        Raises:
            UnknownPeerError: No agent is registered as `peer`.
            DeadlineExceededError: The handler did not finish within `timeout` or the
                deadline; it was cancelled (the class the mesh raises).
            DecodeError: The reply is not an `expect`.
        """
        target = self._lookup(peer)
        deadline = self._deadline
        if timeout is not None:
            own = time.time() + timeout
            deadline = own if deadline is None else min(deadline, own)
        self._record(Kind.ASK, self._agent, peer, msg)
        inner = InMemoryMessenger(
            agent=peer, trace_id=self._trace_id, deadline=deadline, _network=self._net
        )
        wait = None if deadline is None else max(0.0, deadline - time.time())
        # A task rather than wait_for: a TimeoutError the handler itself raises (its own
        # ask timed out) must reach the asker as it is, not pass for this ask's timeout.
        running: asyncio.Task[Message | None] = asyncio.get_running_loop().create_task(
            target.handler(msg, inner)
        )
        try:
            done, _ = await asyncio.wait({running}, timeout=wait)
        finally:
            # Invariant: the handler never outlives its ask (cancelled or timed out).
            if not running.done():
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)
        if not done:
            raise DeadlineExceededError(
                f"no reply to {msg.type_tag!r} within {wait or 0.0:.3f}s",
                agent=peer,
                trace_id=self._trace_id,
                hint="give the ask a longer timeout, or make the agent faster",
            )
        reply = running.result()
        if reply is not None:
            self._record(Kind.REPLY, peer, self._agent, reply)
        if expect is not None and not isinstance(reply, expect):
            got = "no reply" if reply is None else repr(reply.type_tag)
            raise DecodeError(
                f"expected a {expect.type_tag or expect.__name__!r} reply, got {got} from {peer!r}",
                agent=peer,
                trace_id=self._trace_id,
            )
        return reply

    async def tell(self, peer: str, msg: Message) -> None:
        """Hand `msg` to `peer`'s handler in a background task.

        Raises:
            UnknownPeerError: No agent is registered as `peer`.
        """
        self._spawn(self._lookup(peer), msg, topic=None)

    async def publish(self, topic: str, msg: Message) -> None:
        """Hand `msg` to every subscriber of `topic` (except the publisher)."""
        for name in self._net.topics.get(topic, []):
            if name != self._agent and name in self._net.agents:
                self._spawn(self._net.agents[name], msg, topic=topic)

    async def peers(
        self, *, role: str | None = None, capability: str | None = None
    ) -> list[PeerInfo]:
        """Return the registered agents with this role and/or capability, self excluded."""
        return [
            a.info
            for a in self._net.agents.values()
            if a.info.name != self._agent
            and (role is None or a.info.role == role)
            and (capability is None or capability in a.info.capabilities)
        ]

    # -- internals --------------------------------------------------------------------

    def _lookup(self, peer: str) -> _Agent:
        try:
            return self._net.agents[peer]
        except KeyError:
            raise UnknownPeerError(
                f"no agent named {peer!r}",
                agent=peer,
                trace_id=self._trace_id,
                hint="register it on the InMemoryMessenger first",
            ) from None

    def _record(
        self, kind: Kind, sender: str, recipient: str, msg: Message, topic: str | None = None
    ) -> None:
        tag = msg.type_tag or type(msg).__name__
        self._net.log.append(Delivery(kind, sender, recipient, tag, self._trace_id, topic))

    def _spawn(self, target: _Agent, msg: Message, *, topic: str | None) -> None:
        name = target.info.name
        self._record(Kind.TELL, self._agent, name, msg, topic)
        # Tells carry no deadline of their own, as on the mesh.
        inner = InMemoryMessenger(agent=name, trace_id=self._trace_id, _network=self._net)

        async def run() -> None:
            try:
                await target.handler(msg, inner)
            except Exception as exc:  # a tell's failure has no asker to go to
                self._net.tell_errors.append((name, exc))

        task = asyncio.get_running_loop().create_task(run())
        self._net.background.add(task)
        task.add_done_callback(self._net.background.discard)


def __getattr__(name: str) -> Any:
    return deprecated(name, stacklevel=3)


def deprecated(name: str, *, stacklevel: int) -> Any:
    """Return a deprecated name of this module, with a DeprecationWarning at `stacklevel`.

    Raises:
        AttributeError: `name` is no deprecated name of this module.
    """
    # 0.1's in-memory timeout error; the messenger raises the mesh's class since 0.2.
    if name == "AskTimeoutError":
        warnings.warn(
            "AskTimeoutError is DeadlineExceededError since raymesh 0.2 (one deadline error "
            "in memory and on Ray): catch DeadlineExceededError (from protocols or mesh); "
            "the old name goes in 0.3",
            DeprecationWarning,
            stacklevel=stacklevel,
        )
        return DeadlineExceededError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
