"""What users write: `Agent` subclasses with `@handler` methods, and the `Context` they get.

Handlers are found when the class is defined, keyed by the message type annotated on
their first parameter, so a class with an unusable handler fails at import, not at its
first message::

    class Echo(Agent):
        @handler
        async def on_question(self, msg: Question, ctx: Context) -> Answer:
            return Answer(text=msg.text)
"""

from __future__ import annotations

import asyncio
import inspect
import time
import types
import typing
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar, NamedTuple, Protocol, TypeVar, overload

from pydantic import BaseModel, ConfigDict

from mesh.errors import ConfigError
from protocols import Chunk, Envelope, Message, Stream

__all__ = ["Agent", "AgentInfo", "Context", "Endpoint", "handler"]

M = TypeVar("M", bound=Message)
HandlerFn = Callable[[Any, Any, "Context"], Awaitable[Message | None] | AsyncIterator[Any]]
H = TypeVar("H", bound=HandlerFn)
_MARK = "__raymesh_handler__"


def handler(fn: H) -> H:
    """Mark an ``async def h(self, msg: SomeMessage, ctx: Context)`` method as a handler.

    The annotation of ``msg`` picks the messages it receives; a union (``A | B``) takes
    several types. It may return a `Message` (the reply to an ask) or None.

    A handler may also be an async generator, for streamed asks: each str, dict or
    `Chunk` it yields is emitted as a chunk, and the first `Message` it yields is the
    reply (it ends the handler, as a return would; none yielded is a None reply).
    """
    if not (inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)):
        raise ConfigError(f"handler {fn.__qualname__} must be an async def")
    setattr(fn, _MARK, True)
    return fn


class Route(NamedTuple):
    """Where an agent sends messages of one type."""

    method: str
    message: type[Message]
    #: The handler is an async generator: what it yields are chunks, then the reply.
    streams: bool = False


class Agent:
    """Base class of agents. Each instance lives in its own Ray actor (its host).

    Class attributes:
        concurrency: Messages handled at once: 1 (serial, the default) or more.

    Attributes (set before ``__init__`` runs):
        name: This agent's name in the mesh.
        role: Its role, if any.
        capabilities: What it can do, for lookups by capability.
        model: The model behind it, as given to spawn or the team file (or None).
        log: A structlog logger; lines logged in a handler carry its trace and span.
    """

    concurrency: ClassVar[int] = 1
    #: Topics this agent subscribes to: `publish` on one delivers to it as a tell.
    topics: ClassVar[tuple[str, ...]] = ()
    #: Stop abnormally when a handler raises (after the asker gets its HandlerError), so
    #: that a supervisor restarts the agent with fresh state: Erlang's "let it crash".
    crash_on_error: ClassVar[bool] = False
    #: A pydantic model of the state that survives restarts: the host puts an instance
    #: (the last snapshot's, or a fresh one) in ``self.state`` before ``on_start``, and
    #: snapshots it after handled messages to the mesh's ``state_dir``.
    State: ClassVar[type[BaseModel] | None] = None
    #: Handled messages between snapshots (default: the config's ``snapshot_every``).
    #: With 1, a reply leaves only once the state it reflects is on disk.
    snapshot_every: ClassVar[int | None] = None
    #: Message tag -> (handler method name, message class); filled in for each subclass.
    #: Holding the classes themselves means Ray ships them with an agent class defined
    #: in a script, so its host can decode what it handles.
    handlers: ClassVar[dict[str, Route]] = {}
    #: Every tagged message class the handlers name, as parameter or return annotation.
    #: Resolved here, where the script's names are in scope: the host registers them,
    #: and `Mesh.spawn` publishes those a script defines (see `mesh.control._catalog`).
    message_classes: ClassVar[tuple[type[Message], ...]] = ()

    name: str
    role: str | None
    capabilities: tuple[str, ...]
    model: str | None
    log: Any
    state: Any

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        found = dict(cls.handlers)
        named = dict.fromkeys(cls.message_classes)
        for attr, fn in vars(cls).items():
            if getattr(fn, _MARK, False):
                taken, returned = _message_types(cls, fn)
                for message_cls in taken:
                    assert message_cls.type_tag is not None  # checked by _message_types
                    found[message_cls.type_tag] = Route(
                        attr, message_cls, inspect.isasyncgenfunction(fn)
                    )
                named.update(dict.fromkeys((*taken, *returned)))
        cls.handlers = found
        cls.message_classes = tuple(named)
        if not isinstance(cls.concurrency, int) or cls.concurrency < 1:
            raise ConfigError(f"{cls.__qualname__}.concurrency must be an integer >= 1")
        if cls.State is not None and not (
            isinstance(cls.State, type) and issubclass(cls.State, BaseModel)
        ):
            raise ConfigError(f"{cls.__qualname__}.State must be a pydantic model class")
        if cls.snapshot_every is not None and (
            not isinstance(cls.snapshot_every, int) or cls.snapshot_every < 1
        ):
            raise ConfigError(f"{cls.__qualname__}.snapshot_every must be an integer >= 1")

    _stop_soon: Callable[..., None]

    def stop(self, reason: str = "normal") -> None:
        """Stop this agent after the message being handled: a normal exit.

        A supervisor does not restart a transient or temporary agent that stops this way.
        """
        self._stop_soon(normal=True, reason=reason)

    async def on_start(self) -> None:
        """Run once before the first message; raising here fails the spawn."""

    async def on_stop(self) -> None:
        """Run once when the agent is stopped gracefully, after its last handler."""


def _message_types(cls: type, fn: Any) -> tuple[list[type[Message]], list[type[Message]]]:
    """Return the tagged classes handler `fn` takes and those its return annotation names."""
    where = f"{cls.__qualname__}.{fn.__name__}"
    params = list(inspect.signature(fn).parameters.values())
    if len(params) != 3:
        raise ConfigError(f"handler {where} must take (self, msg, ctx)")
    try:
        hints = typing.get_type_hints(fn)
    except Exception as exc:  # NameError and friends from unresolvable annotations
        raise ConfigError(
            f"cannot resolve the annotations of handler {where}: {exc}",
            hint="define message classes at module level, before the agent class",
        ) from None
    annotation = hints.get(params[1].name)
    members = _union_members(annotation)
    if not members or not all(_is_tagged(m) for m in members):
        raise ConfigError(
            f"handler {where}: annotate its message parameter with a tagged Message class, "
            f"not {annotation!r}"
        )
    # A reply annotation is optional and may be loose (None, `Message`, `Answer | None`).
    returned = [m for m in _union_members(hints.get("return")) if _is_tagged(m)]
    return list(members), returned


def _union_members(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def _is_tagged(member: Any) -> bool:
    return isinstance(member, type) and issubclass(member, Message) and bool(member.type_tag)


class AgentInfo(BaseModel):
    """A registry entry: who an agent is and where it runs."""

    model_config = ConfigDict(frozen=True)

    name: str
    role: str | None = None
    capabilities: tuple[str, ...] = ()
    model: str | None = None
    topics: tuple[str, ...] = ()
    node_id: str
    incarnation: str
    pid: int
    started_at: float
    healthy: bool = True
    loop_lag_s: float = 0.0


class _Directory(Protocol):
    async def find(
        self, *, role: str | None = None, capability: str | None = None, topic: str | None = None
    ) -> list[tuple[AgentInfo, Any]]: ...


class Endpoint(Protocol):
    """What a `Context` needs of the endpoint it speaks through; the data path provides it.

    Declared here, so that the agent API does not import the data path that runs it.
    """

    @property
    def name(self) -> str: ...

    @property
    def registry(self) -> _Directory: ...

    @overload
    async def ask(
        self,
        peer: str,
        msg: Message,
        *,
        parent: Envelope | None = ...,
        timeout: float | None = ...,
        expect: None = ...,
        budget: dict[str, float] | None = ...,
        on_spent: Callable[[dict[str, float]], None] | None = ...,
        at_least_once: bool = ...,
    ) -> Message | None: ...
    @overload
    async def ask(
        self, peer: str, msg: Message, *, parent: Envelope | None = ...,
        timeout: float | None = ..., expect: type[M], budget: dict[str, float] | None = ...,
        on_spent: Callable[[dict[str, float]], None] | None = ..., at_least_once: bool = ...,
    ) -> M: ...  # fmt: skip

    async def tell(
        self,
        peer: str,
        msg: Message,
        *,
        parent: Envelope | None,
        budget: dict[str, float] | None,
        at_least_once: bool,
    ) -> None: ...

    def stream(
        self,
        peer: str,
        msg: Message,
        *,
        parent: Envelope | None,
        timeout: float | None,
        expect: type[Message] | None,
        budget: dict[str, float] | None,
        on_spent: Callable[[dict[str, float]], None] | None,
        forward: Callable[[Chunk], Awaitable[None]] | None,
    ) -> Stream: ...


class _Sink(Protocol):
    """Where a streamed ask's chunks go (the data path's `StreamSink`)."""

    def next_seq(self) -> int: ...

    async def put(self, chunk: Chunk) -> None: ...


class Context:
    """What a handler knows about the message it handles, and how it talks to peers.

    Asks made through a context continue its trace, count one more hop, and never
    outlive its deadline.
    """

    __slots__ = ("_endpoint", "_envelope", "_sink", "_spent", "log")

    def __init__(
        self, endpoint: Endpoint, envelope: Envelope, log: Any, *, sink: _Sink | None = None
    ) -> None:
        self._endpoint = endpoint
        self._envelope = envelope
        self._sink = sink
        self._spent: dict[str, float] = {}
        self.log = log

    @property
    def agent(self) -> str:
        """This agent's own name."""
        return self._endpoint.name

    @property
    def sender(self) -> str:
        """The name of the agent (or edge client) that sent the message."""
        return self._envelope.sender

    @property
    def trace_id(self) -> str:
        """The conversation's trace id (W3C, 32 hex)."""
        return self._envelope.trace_id

    @property
    def span_id(self) -> str:
        """This handler's span id (W3C, 16 hex)."""
        return self._envelope.span_id

    @property
    def parent_span_id(self) -> str | None:
        """The span of the handler that sent the message; None when it came from the edge."""
        return self._envelope.parent_span_id

    @property
    def message_id(self) -> str:
        """The id of the message being handled."""
        return self._envelope.id

    @property
    def deadline(self) -> float | None:
        """Absolute deadline (epoch seconds) of the message; None for tells."""
        return self._envelope.deadline

    @property
    def hops(self) -> int:
        """How many handlers this causal chain passed through before this one."""
        return self._envelope.hops

    @property
    def chain(self) -> tuple[str, ...]:
        """The agents waiting upstream in this causal chain, outermost first."""
        return self._envelope.chain

    def remaining(self) -> float | None:
        """Return the seconds left before the deadline, or None when there is none."""
        deadline = self._envelope.deadline
        return None if deadline is None else deadline - time.time()

    def allowance(self) -> dict[str, float] | None:
        """Return what this conversation may still spend, per unit; None when unlimited.

        It is what the message arrived with, less what this handler has spent so far
        (its own `spend` and its asks' replies). Asks and tells made through this
        context carry it on, so no sub-agent can spend more than this handler had.
        """
        budget = self._envelope.budget
        if budget is None:
            return None
        return {unit: max(0.0, left - self._spent.get(unit, 0.0)) for unit, left in budget.items()}

    def spend(self, **units: float) -> None:
        """Record spending (e.g. ``tokens=120, usd=0.0004``) against the allowance."""
        for unit, amount in units.items():
            self._spent[unit] = self._spent.get(unit, 0.0) + amount

    @property
    def spent(self) -> dict[str, float]:
        """What handling this message has spent so far, asks included."""
        return dict(self._spent)

    def _absorb(self, spent: dict[str, float]) -> None:
        self.spend(**spent)

    @overload
    async def ask(
        self, peer: str, msg: Message, *, timeout: float | None = None, at_least_once: bool = False
    ) -> Message | None: ...
    @overload
    async def ask(
        self, peer: str, msg: Message, *, timeout: float | None = None, expect: type[M],
        at_least_once: bool = False,
    ) -> M: ...  # fmt: skip

    async def ask(
        self,
        peer: str,
        msg: Message,
        *,
        timeout: float | None = None,
        expect: type[Message] | None = None,
        at_least_once: bool = False,
    ) -> Message | None:
        """Send `msg` to `peer` and wait for its reply.

        Args:
            peer: The recipient's name.
            msg: The request.
            timeout: Seconds to wait; never past this message's own deadline.
            expect: The reply class; another type raises `DecodeError`.
            at_least_once: If the peer dies (or is not registered), resend the same
                message to its successor until the deadline; the peer drops resends it
                has already handled, so the handler runs once.

        Raises:
            PeerNotFoundError: No live agent is registered as `peer`.
            PeerDeadError: The peer died or stopped before replying.
            DuplicateMessageError: A resend that the peer had already handled (its
                reply was lost with the incarnation that handled it).
            DeadlineExceededError: No reply before the deadline.
            MailboxFullError: The peer's mailbox was full.
            HandlerError: The peer's handler raised.
            HopLimitError: The causal chain is already at its hop limit.
        """
        return await self._endpoint.ask(
            peer, msg, parent=self._envelope, timeout=timeout, expect=expect,
            budget=self.allowance(), on_spent=self._absorb, at_least_once=at_least_once,
        )  # fmt: skip

    @property
    def streaming(self) -> bool:
        """Whether the asker reads this message's answer as a stream (`emit` reaches it)."""
        return self._sink is not None

    async def emit(self, text: str = "", data: dict[str, Any] | None = None) -> None:
        """Send a chunk of the answer to a streamed ask; a no-op when nobody streams.

        Waits while the stream's buffer (``stream_buffer_chunks``) is full: a slow
        reader slows the handler instead of growing memory.

        Raises:
            EncodeError: The chunk is larger than the frame limits allow.
        """
        sink = self._sink
        if sink is None:
            return
        await sink.put(Chunk(text=text, data=data, agent=self._endpoint.name,
                             span_id=self._envelope.span_id, seq=sink.next_seq()))  # fmt: skip

    def stream(
        self,
        peer: str,
        msg: Message,
        *,
        timeout: float | None = None,
        expect: type[Message] | None = None,
        forward: bool = False,
    ) -> Stream:
        """Ask `peer` and read its answer as a `Stream` of chunks, then its reply.

        Returns at once; the ask is sent when the stream is first read. Like `ask`, it
        continues this trace and budget and never outlives this message's deadline.

        Args:
            forward: Also emit each of the peer's chunks, with its own agent and span,
                to whoever streams this handler's answer (`await s.result()` forwards
                all of them and returns the reply).

        Raises (from the iteration): the errors of `ask`.
        """
        return self._endpoint.stream(
            peer, msg, parent=self._envelope, timeout=timeout, expect=expect,
            budget=self.allowance(), on_spent=self._absorb,
            forward=self._forward if forward and self._sink is not None else None,
        )  # fmt: skip

    async def _forward(self, chunk: Chunk) -> None:
        if self._sink is not None:
            await self._sink.put(chunk)

    async def tell(self, peer: str, msg: Message, *, at_least_once: bool = False) -> None:
        """Send `msg` to `peer` without waiting for it to be handled.

        Returns once the peer has accepted the message into its mailbox. With
        `at_least_once`, a dead or missing peer is looked up again and the same message
        resent (to be taken once) until this message's deadline or ``ask_timeout_s``.

        Raises:
            PeerNotFoundError: No live agent is registered as `peer`.
            PeerDeadError: The peer died before accepting the message.
            MailboxFullError: The peer's mailbox was full; the message was not queued.
        """
        await self._endpoint.tell(peer, msg, parent=self._envelope, budget=self.allowance(),
                                  at_least_once=at_least_once)  # fmt: skip

    async def publish(self, topic: str, msg: Message) -> None:
        """Tell `msg` to every agent subscribed to `topic` (this agent excluded).

        Subscribers are looked up in the registry at each call; a subscriber that
        refuses (mailbox full) or has died is logged, not raised: publishing is
        fire-and-forget to many.
        """
        rows = await self._endpoint.registry.find(topic=topic)
        names = [info.name for info, _ in rows if info.name != self.agent]
        outcomes = await asyncio.gather(
            *(self.tell(name, msg) for name in names), return_exceptions=True
        )
        for name, outcome in zip(names, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                self.log.warning("publish not delivered", topic=topic, subscriber=name,
                                 error=str(outcome))  # fmt: skip

    async def peers(
        self, *, role: str | None = None, capability: str | None = None
    ) -> list[AgentInfo]:
        """Return the live agents with this role and/or capability (itself excluded)."""
        rows = await self._endpoint.registry.find(role=role, capability=capability)
        return [info for info, _handle in rows if info.name != self.agent]
