"""`LLMAgent`: an agent backed by one or more models, answering `Prompt` with `Completion`.

The agent builds its model clients in `on_start`, so a bad model string or a missing API
key fails the spawn with a `ConfigError` naming the agent and the variable to set,
instead of a stack trace at the first message. Every model call it makes is bounded by
the deadline of the message it is handling and recorded under that message's trace.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel

from actors.budget import Budget, ChargedBudget, StreamMeter, current_budget, current_charge
from actors.client import CompletionResult
from actors.delegation import peer_tool
from actors.memory import ConversationWindow
from actors.messages import CallUsage, Completion, Prompt
from actors.providers import ChatMessage, TextSink, text_sink
from actors.retry import RetryPolicy
from actors.router import RoutedClient, Router
from actors.tools import Approver, Tool, Toolbox
from actors.tools_mcp import McpToolset
from actors.usage import Price, PriceTable, UsageLedger, UsageTotals
from mesh import Agent, ConfigError, Context, handler
from mesh.control import McpServerSpec
from protocols import Result, Task, Usage, UsageQuery, UsageSummary

__all__ = ["DEFAULT_MODEL", "LLMAgent"]

#: The model of every agent not told otherwise: offline, so everything runs without keys.
DEFAULT_MODEL = "offline:default"


class LLMAgent(Agent):
    """A general LLM agent; role agents subclass it with their own prompt and tools.

    Class attributes (the role's defaults, each overridable per agent):
        default_system_prompt: The system prompt.
        default_model: The model string.
        default_tools: Tools offered on every prompt.
    """

    default_system_prompt: ClassVar[str] = (
        "You are a helpful, precise assistant. Answer the request directly."
    )
    default_model: ClassVar[str] = DEFAULT_MODEL
    default_tools: ClassVar[tuple[Callable[..., Any], ...]] = ()

    def __init__(
        self,
        model: str | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        system_prompt: str | None = None,
        tools: Sequence[Tool | Callable[..., Any]] | None = None,
        budget: Budget | Mapping[str, Any] | None = None,
        fallback: Sequence[str] = (),
        router: Router | None = None,
        base_urls: Mapping[str, str] | None = None,
        api_keys: Mapping[str, str] | None = None,
        prices: Mapping[str, Price | Mapping[str, float]] | str | Path | None = None,
        retry: RetryPolicy | None = None,
        max_tokens: int = 1024,
        max_rounds: int = 4,
        history_tokens: int = 0,
        model_options: Mapping[str, Any] | None = None,
        approver: Approver | None = None,
        peers: Sequence[str] = (),
        mcp: Sequence[McpServerSpec | Mapping[str, Any]] = (),
        limits: Mapping[str, Any] | None = None,
        cache: Mapping[str, Any] | bool | None = None,
    ) -> None:
        """Record the configuration; the clients are built in `on_start`.

        Args:
            model: The primary model, ``provider:MODEL`` (the role's default when None).
            base_url: Endpoint of the primary model (an OpenAI-compatible server...).
            api_key: Key of the primary model; by default from the provider's variable.
            system_prompt: Replaces the role's system prompt.
            tools: Replace the role's tools (callables with type hints, or `Tool`s).
            budget: A hard limit (a `Budget`, or ``{"max_tokens": ..., "max_usd": ...}``).
            fallback: Models to try, in order, when the primary one is unavailable.
            router: A full routing policy (replaces `model` and `fallback`).
            base_urls: Model string -> endpoint, for fallback models.
            api_keys: Model string -> key, for fallback models.
            prices: Price overrides, or the path of a YAML file of them.
            retry: Attempts and backoff of failed requests.
            max_tokens: Default cap on each reply.
            max_rounds: Rounds of tool calls per prompt.
            history_tokens: Keep a conversation across prompts, trimmed to this many
                tokens (0: each prompt stands alone).
            model_options: Offline options of the primary model (``latency_s``, ...).
            approver: Decides on calls of tools marked ``requires_approval``; without
                one, the model's calls of those tools are refused.
            peers: Agents the model may delegate to through the ``ask_peer`` tool (an
                allow-list: no other name the model writes is ever used as an address).
            mcp: MCP servers whose (allowed) tools join `tools`, opened at the start and
                closed at the stop (a team file's ``mcp`` block; see actors.tools_mcp).
            limits: Model string or provider name -> the rate limits of its API key
                (``{requests: N, tokens: N, window_s: 60, priority: 0}``), shared by every
                agent using the key in the cluster.
            cache: Cache model responses (True, or ``{ttl_s, max_entries, shared}``).
        """
        # `model` given to spawn or in a team file reaches the agent as self.model.
        model = model or getattr(self, "model", None)
        self.router = router or Router(default=model or self.default_model, fallback=list(fallback))
        self.model_id = self.router.default
        self.base_urls = dict(base_urls or {})
        self.api_keys = dict(api_keys or {})
        if base_url is not None:
            self.base_urls[self.router.default] = base_url
        if api_key is not None:
            self.api_keys[self.router.default] = api_key
        self.system_prompt = system_prompt or self.default_system_prompt
        self.tool_list: list[Tool | Callable[..., Any]] = list(
            self.default_tools if tools is None else tools
        )
        self.budget = (
            budget if isinstance(budget, Budget) or budget is None else Budget(**dict(budget))
        )
        self._prices = prices
        self.retry = retry
        self.max_tokens = max_tokens
        self.max_rounds = max_rounds
        self.model_options = {self.router.default: dict(model_options or {})}
        self.window = (
            ConversationWindow(max_tokens=history_tokens, system=self.system_prompt)
            if history_tokens > 0
            else None
        )
        self.ledger = UsageLedger()
        self._client: RoutedClient | None = None
        self.tools: list[Tool] = []
        self.approver = approver
        self.peers = tuple(peers)
        self.mcp = McpToolset(mcp)
        self.limits = dict(limits or {})
        self.cache = cache

    async def on_start(self) -> None:
        """Build the model clients and check the tools.

        Raises:
            ConfigError: A model string, key, price table or tool is not usable.
        """
        name = getattr(self, "name", None)
        try:
            prices = (
                PriceTable.from_yaml(self._prices)
                if isinstance(self._prices, str | Path)
                else PriceTable(self._prices)
            )
            self.tools = list(Toolbox(self.tool_list, approver=self.approver).tools.values())
        except ConfigError as exc:
            raise exc.with_context(agent=name) from None
        self._client = RoutedClient(
            self.router,
            agent=name,
            role=getattr(self, "role", None),
            base_urls=self.base_urls,
            api_keys=self.api_keys,
            prices=prices,
            ledger=self.ledger,
            budget=self.budget,
            retry=self.retry,
            options=self.model_options,
            limits=self.limits,
            cache=self.cache,
        )
        # Last: only the name check below can fail after a server has started.
        served = [t.approved_by(self.approver) for t in await self.mcp.open(agent=name)]
        try:
            Toolbox([*self.tools, *served])  # a name two tools share fails the start
        except ConfigError as exc:
            await self.mcp.aclose()
            raise exc.with_context(agent=name) from None
        self.tools += served

    async def on_stop(self) -> None:
        """Close the MCP sessions (stopping their servers) and the model clients' connections."""
        await self.mcp.aclose()
        if self._client is not None:
            await self._client.aclose()

    @property
    def client(self) -> RoutedClient:
        """The routed model client (built by `on_start`).

        Raises:
            ConfigError: `on_start` has not run.
        """
        if self._client is None:
            raise ConfigError(
                "the agent's model client is not built yet",
                agent=getattr(self, "name", None),
                hint="await agent.on_start() first (the runtime does it when spawning)",
            )
        return self._client

    async def complete(
        self,
        prompt: str | Sequence[ChatMessage],
        ctx: Context | None = None,
        *,
        system: str | None = None,
        response_model: type[BaseModel] | None = None,
        tools: Sequence[Tool] | None = None,
        max_tokens: int | None = None,
        timeout: float | None = None,
    ) -> CompletionResult:
        """Call the model within the deadline and trace of the message being handled.

        Args:
            prompt: The request, or a whole conversation.
            ctx: The handler's context: its deadline bounds the call, its trace is
                recorded with the usage.
            system: The system prompt (the agent's by default).
            response_model: A pydantic model the answer must fit.
            tools: Tools for this call (the agent's by default).
            max_tokens: Cap on each reply (the agent's default when None).
            timeout: Seconds, when there is no context deadline.

        Raises:
            ModelError: The call failed (see `LLMClient.complete` for the subclasses).
            DeadlineExceededError: The deadline passed.
        """
        if tools is None:
            tools = self.tools
            if ctx is not None and self.peers:
                tools = [*tools, peer_tool(ctx, self.peers)]
        allowance = None if ctx is None else ctx.allowance()
        scoped = None if allowance is None else _budget_of(allowance)
        charged = None if scoped is None or ctx is None else ChargedBudget(scoped, ctx)
        token, charging = current_budget.set(scoped), current_charge.set(charged)
        meter: StreamMeter | None = None
        sink: TextSink | None = None
        if ctx is not None and ctx.streaming:
            budgets = [b for b in (self.budget, scoped) if b is not None]
            used = _input_tokens(prompt, system or self.system_prompt)
            meter = StreamMeter(budgets, input_tokens=used, model=self.model_id, agent=ctx.agent,
                                trace_id=ctx.trace_id)  # fmt: skip
            sink = _emitter(ctx, meter)
        streaming = text_sink.set(sink)
        try:
            result = await self.client.complete(
                prompt,
                system=system or self.system_prompt,
                response_model=response_model,
                tools=tools,
                max_rounds=self.max_rounds,
                max_tokens=max_tokens or self.max_tokens,
                deadline=None if ctx is None else ctx.deadline,
                timeout=timeout,
                trace_id=None if ctx is None else ctx.trace_id,
            )
        finally:
            text_sink.reset(streaming)
            current_budget.reset(token)
            current_charge.reset(charging)
            if charged is not None:
                # What this call spent now counts against the message's allowance,
                # and travels back to whoever asked.
                charged.charge()
        if meter is not None and ctx is not None and not meter.pieces and response_model is None:
            await ctx.emit(text=result.text)  # not streamed by the model (it had tools): whole
        return result

    @handler
    async def on_prompt(self, msg: Prompt, ctx: Context) -> Completion:
        """Answer a prompt, with its context, in the agent's role."""
        return await self.answer(msg, ctx)

    @handler
    async def on_task(self, msg: Task, ctx: Context) -> Result:
        """Take a team's task (from ``raymesh run``) as a prompt."""
        done = await self.answer(Prompt(text=msg.text), ctx)
        data: dict[str, Any] = {"model": done.model, "usage": done.usage.model_dump()}
        if done.planning_failed is not None:
            data["planning_failed"] = done.planning_failed
        return Result(text=done.text, data=data)

    @handler
    async def on_usage_query(self, msg: UsageQuery, ctx: Context) -> UsageSummary:
        """Report usage and what is left of the budget (`Mesh.usage`, ``raymesh run``)."""
        ledger = self.ledger
        return UsageSummary(
            agent=getattr(self, "name", ""),
            total=_usage(ledger.total),
            by_model={model: _usage(t) for model, t in ledger.by_model.items()},
            by_trace={trace: _usage(t) for trace, t in ledger.by_trace.items()},
            budget_remaining={} if self.budget is None else self.budget.remaining(),
        )

    async def answer(self, msg: Prompt, ctx: Context | None) -> Completion:
        """Answer `msg` with the model; role agents override this to add their steps."""
        text = _with_context(msg.text, msg.context)
        if self.window is not None:
            self.window.add(ChatMessage.user(text))
            result = await self.complete(self.window.messages(), ctx, max_tokens=msg.max_tokens)
            self.window.add(ChatMessage.assistant(result.text))
        else:
            result = await self.complete(text, ctx, max_tokens=msg.max_tokens)
        return completion(result)


def _emitter(ctx: Context, meter: StreamMeter) -> TextSink:
    async def emit(piece: str) -> None:
        meter.draw(piece)  # a spent budget stops the stream here
        await ctx.emit(text=piece)

    return emit


def _input_tokens(prompt: str | Sequence[ChatMessage], system: str) -> int:
    turns = [ChatMessage.user(prompt)] if isinstance(prompt, str) else list(prompt)
    return sum(turn.size_hint() for turn in (ChatMessage.system(system), *turns))


def _budget_of(allowance: dict[str, float]) -> Budget:
    tokens = allowance.get("tokens")
    return Budget.from_remaining(
        tokens=None if tokens is None else int(tokens), usd=allowance.get("usd")
    )


def _usage(totals: UsageTotals) -> Usage:
    return Usage(calls=totals.calls, input_tokens=totals.input_tokens,
                 output_tokens=totals.output_tokens, cost_usd=totals.cost_usd,
                 estimated_calls=totals.estimated_calls, cached_calls=totals.cached_calls,
                 saved_usd=totals.saved_usd)  # fmt: skip


def completion(result: CompletionResult) -> Completion:
    """Return the `Completion` message for a client result."""
    usage = result.usage
    return Completion(
        text=result.text,
        model=result.model,
        usage=CallUsage(
            calls=usage.calls,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost_usd=usage.cost_usd,
            latency_s=usage.latency_s,
            estimated=usage.estimated_calls > 0,
        ),
        tools_called=[run.name for run in result.tool_runs],
    )


def _with_context(text: str, context: Sequence[str]) -> str:
    if not context:
        return text
    material = "\n\n".join(f"[{i + 1}] {c}" for i, c in enumerate(context))
    return f"Context:\n{material}\n\nRequest: {text}"
