"""`LLMClient`: one model made dependable. Deadline, retries, breaker, usage, budget,
structured output and the tool loop, the same for every provider.

Every request a `complete` makes (tool rounds and repairs included) shares one deadline,
and the whole call ends by it with an answer or a typed error::

    client = LLMClient("openai:gpt-4o-mini", agent="reasoner")
    result = await client.complete("Why is the sky blue?", timeout=20)
    print(result.text, result.usage.cost_usd)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, Self, runtime_checkable

import ray
from pydantic import BaseModel, ValidationError

from actors._caller import ModelCaller
from actors.breaker import CircuitBreaker, breaker_for
from actors.budget import Budget
from actors.cache import CacheConfig, ResponseCache, cache_config
from actors.errors import StructuredOutputError, ToolError
from actors.providers import (
    API_KEY_ENV,
    ChatMessage,
    ModelRequest,
    ModelResponse,
    ModelSpec,
    Provider,
    TokenUsage,
    make_provider,
    parse_model,
)
from actors.ratelimit import RateLimiter, RateLimits, fingerprint, rate_limits
from actors.retry import RetryPolicy
from actors.structured import describe, parse_reply, repair_prompt, structured_spec
from actors.tools import Tool, Toolbox
from actors.usage import Price, PriceTable, UsageLedger, UsageTotals
from mesh import DeadlineExceededError, get_logger
from mesh.extension import get_secret, redact

__all__ = [
    "CompletionResult",
    "LLMClient",
    "ModelClient",
    "ToolRun",
]

_log = get_logger()

#: Seconds a call may take when its caller gives neither a deadline nor a timeout.
DEFAULT_TIMEOUT_S = 120.0


@dataclass
class ToolRun:
    """One tool call made during a completion."""

    name: str
    arguments: str
    result: str
    ok: bool


@dataclass
class CompletionResult:
    """The outcome of `LLMClient.complete`."""

    text: str
    #: The validated reply when a `response_model` was given.
    parsed: Any
    #: ``provider:MODEL`` that produced the answer.
    model: str
    #: Usage of every request the completion made.
    usage: UsageTotals
    tool_runs: list[ToolRun] = field(default_factory=list)
    #: The conversation as it ended (system prompt, turns, tool results).
    messages: list[ChatMessage] = field(default_factory=list)


class LLMClient:
    """One model, called with a deadline, retries, a circuit breaker and accounting, and
    optionally a rate limit shared by every client of its key and a response cache."""

    def __init__(
        self,
        model: str,
        *,
        agent: str | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        prices: PriceTable | Mapping[str, Price | Mapping[str, float]] | None = None,
        ledger: UsageLedger | None = None,
        budget: Budget | None = None,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        provider: Provider | None = None,
        default_timeout_s: float = DEFAULT_TIMEOUT_S,
        limits: RateLimits | Mapping[str, Any] | None = None,
        cache: CacheConfig | Mapping[str, Any] | bool | None = None,
        **options: Any,
    ) -> None:
        """Build the provider for `model` and check its configuration; no request is made.

        Args:
            model: ``provider:MODEL``, e.g. ``openai:gpt-4o-mini`` or ``offline:default``.
            agent: The agent it serves, named in errors, logs and usage.
            api_key: The key; by default from ``OPENAI_API_KEY`` / ``ANTHROPIC_API_KEY``.
            base_url: Another endpoint (an OpenAI-compatible server, a proxy).
            prices: A price table, or overrides of the default one.
            ledger: Where usage is recorded (shared by an agent's clients).
            budget: A hard limit, checked before and charged after each request.
            retry: Attempts and backoff for failed requests.
            breaker: The circuit breaker; by default this process's breaker for
                the model and endpoint.
            provider: A ready provider (instead of building one from `model`).
            default_timeout_s: The deadline of a call given neither deadline nor timeout.
            limits: The API key's rate limits (``{requests: N, tokens: N, window_s: 60}``),
                shared by every client of the key in the cluster; None: no limiter.
            cache: Cache responses (True, or a `CacheConfig` or its mapping); None: off.
            options: Offline model options (``latency_s``, ``fail_first_n``, ...).

        Raises:
            ConfigError: The model string is bad, an option is unknown, or the API key
                is missing.
        """
        spec = parse_model(model, agent=agent)
        self.model_id = f"{spec.provider}:{spec.model}"
        self.agent = agent
        self.provider: Provider = provider or make_provider(
            spec, api_key=api_key, base_url=base_url, agent=agent, **options
        )
        self.prices = prices if isinstance(prices, PriceTable) else PriceTable(prices)
        self.ledger = ledger if ledger is not None else UsageLedger()
        self.budget = budget
        self.retry = retry or RetryPolicy()
        self.breaker = breaker or breaker_for(self.model_id, endpoint=base_url or "")
        self.default_timeout_s = default_timeout_s
        self.limiter = (
            None if limits is None else _limiter(spec, rate_limits(limits, agent=agent),
                                                 api_key=api_key, base_url=base_url)
        )  # fmt: skip
        self.cache = (
            None if cache is None or cache is False
            else ResponseCache(cache_config(cache, agent=agent), namespace=_namespace())
        )  # fmt: skip
        self.caller = ModelCaller(
            self.model_id, agent, self.provider, self.prices, self.ledger, self.budget,
            self.retry, self.breaker, self.limiter, self.cache,
        )  # fmt: skip

    async def aclose(self) -> None:
        """Release the provider's connections, the lease and the cache file."""
        if self.limiter is not None:
            self.limiter.close()
        if self.cache is not None:
            self.cache.close()
        await self.provider.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def estimate(self, request: ModelRequest) -> tuple[int, float]:
        """Return the estimated (tokens, US dollars) of a request, for budget checks."""
        return self.caller.estimate(request)

    async def complete(
        self,
        prompt: str | Sequence[ChatMessage],
        *,
        system: str | None = None,
        response_model: type[BaseModel] | None = None,
        tools: Sequence[Tool] = (),
        max_rounds: int = 4,
        max_tokens: int = 1024,
        temperature: float | None = None,
        deadline: float | None = None,
        timeout: float | None = None,
        trace_id: str | None = None,
    ) -> CompletionResult:
        """Run a prompt to a final answer: text, or a validated `response_model`.

        Args:
            prompt: The user's request, or a whole conversation.
            system: A system prompt, placed first.
            response_model: A pydantic model (a `Message` works) the answer must fit.
            tools: Tools the model may call; each call is validated, then run, and its
                result goes back to the model.
            max_rounds: Rounds of tool calls allowed before the model must answer.
            max_tokens: The cap on each reply's length.
            temperature: Sampling temperature (provider default when None).
            deadline: Absolute epoch seconds by which the call must end.
            timeout: Seconds from now (the earlier of the two wins).
            trace_id: The trace the call belongs to, for usage and logs.

        Raises:
            DeadlineExceededError: The deadline passed.
            ModelUnavailableError: The breaker is open or the retries ran out.
            ProviderError: The provider refused the request (not retryable).
            BudgetExceededError: A request would exceed the budget.
            StructuredOutputError: The answer did not fit `response_model`, even repaired.
            ToolError: The model kept calling tools past `max_rounds`.
        """
        end = self._deadline(deadline, timeout)
        messages = _conversation(prompt, system)
        toolbox = Toolbox(tools)
        totals = UsageTotals()
        runs: list[ToolRun] = []
        text = ""
        if toolbox or response_model is None:
            text = await self._tool_loop(
                messages, toolbox, runs, totals,
                max_rounds=max_rounds, max_tokens=max_tokens, temperature=temperature,
                deadline=end, trace_id=trace_id,
            )  # fmt: skip
        parsed: Any = None
        if response_model is not None:
            if toolbox:  # the tool loop ended on the model's text answer, already recorded
                messages.append(ChatMessage.user("Now give the final answer in the schema."))
            parsed, text = await self._structured(
                messages, response_model, totals,
                max_tokens=max_tokens, temperature=temperature, deadline=end, trace_id=trace_id,
            )  # fmt: skip
        return CompletionResult(
            text=text,
            parsed=parsed,
            model=self.model_id,
            usage=totals,
            tool_runs=runs,
            messages=messages,
        )

    def _deadline(self, deadline: float | None, timeout: float | None) -> float:
        candidates = [d for d in (deadline,) if d is not None]
        if timeout is not None:
            candidates.append(time.time() + timeout)
        return min(candidates) if candidates else time.time() + self.default_timeout_s

    async def _tool_loop(
        self,
        messages: list[ChatMessage],
        toolbox: Toolbox,
        runs: list[ToolRun],
        totals: UsageTotals,
        *,
        max_rounds: int,
        max_tokens: int,
        temperature: float | None,
        deadline: float,
        trace_id: str | None,
    ) -> str:
        specs = toolbox.specs()
        for _round in range(max_rounds + 1):
            request = ModelRequest(
                messages=list(messages), tools=specs, max_tokens=max_tokens,
                temperature=temperature,
            )  # fmt: skip
            response = await self.request(request, deadline=deadline, trace_id=trace_id)
            _add(totals, response, self)
            if not response.tool_calls or not toolbox:
                messages.append(ChatMessage.assistant(response.text))
                return response.text
            if _round == max_rounds:
                break
            messages.append(ChatMessage.assistant(response.text, response.tool_calls))
            for call in response.tool_calls:
                started = time.monotonic()
                try:
                    result, ok = await self._run_tool(toolbox, call, deadline), True
                except ToolError as exc:
                    result, ok = f"error: {exc.message}", False
                _log.info(
                    "tool call",
                    tool=call.name,
                    # Redacted before cut: half a key would no longer look like one.
                    arguments=redact(call.arguments)[:500],
                    ok=ok,
                    result=redact(result)[:200],
                    duration_s=round(time.monotonic() - started, 4),
                    model=self.model_id,
                    agent=self.agent,
                    trace_id=trace_id,
                )
                runs.append(ToolRun(call.name, call.arguments, result, ok))
                messages.append(
                    ChatMessage(
                        role="tool", content=result, tool_call_id=call.call_id,
                        name=call.name, is_error=not ok,
                    )
                )  # fmt: skip
        raise ToolError(
            f"{self.model_id} still called tools after {max_rounds} rounds",
            model=self.model_id,
            agent=self.agent,
            trace_id=trace_id,
            hint="raise max_rounds, or make the prompt say when to stop calling tools",
        )

    async def _run_tool(self, toolbox: Toolbox, call: Any, deadline: float) -> str:
        remaining = deadline - time.time()
        try:
            async with asyncio.timeout(max(0.0, remaining)):
                return await toolbox.run(call)
        except TimeoutError:
            raise DeadlineExceededError(
                f"tool {call.name!r} was still running at the deadline",
                agent=self.agent,
                hint="make the tool faster or give the call a longer deadline",
            ) from None

    async def _structured(
        self,
        messages: list[ChatMessage],
        response_model: type[BaseModel],
        totals: UsageTotals,
        *,
        max_tokens: int,
        temperature: float | None,
        deadline: float,
        trace_id: str | None,
    ) -> tuple[BaseModel, str]:
        spec = structured_spec(response_model)
        error: ValidationError | None = None
        raw = ""
        for attempt in range(2):
            request = ModelRequest(
                messages=list(messages), structured=spec, max_tokens=max_tokens,
                temperature=temperature,
            )  # fmt: skip
            response = await self.request(request, deadline=deadline, trace_id=trace_id)
            _add(totals, response, self)
            raw = response.structured if response.structured is not None else response.text
            try:
                parsed = parse_reply(raw, response_model)
            except ValidationError as exc:
                error = exc
                _log.warning(
                    "structured output did not validate",
                    model=self.model_id, agent=self.agent, trace_id=trace_id,
                    attempt=attempt + 1, errors=describe(exc)[:500],
                )  # fmt: skip
                messages.append(ChatMessage.assistant(raw))
                messages.append(ChatMessage.user(repair_prompt(exc)))
                continue
            if attempt:  # drop the failed reply and the repair request from the record
                del messages[-2:]
            messages.append(ChatMessage.assistant(raw))
            return parsed, raw
        assert error is not None
        raise StructuredOutputError(
            f"{self.model_id}'s reply did not fit {response_model.__name__}, even after "
            f"a repair: {describe(error)[:300]}",
            model=self.model_id,
            raw=raw[:2000],
            errors=describe(error),
            agent=self.agent,
            trace_id=trace_id,
            hint="simplify the schema or use a model that follows JSON schemas",
        )

    async def request(
        self, request: ModelRequest, *, deadline: float, trace_id: str | None = None
    ) -> ModelResponse:
        """Make one request (with retries) and account for it; the layer below `complete`.

        Raises:
            DeadlineExceededError: The deadline passed.
            ModelUnavailableError: The breaker is open or the retries ran out.
            ProviderError: The provider refused the request (not retryable).
            BudgetExceededError: The request would exceed the budget.
            RateLimitedError: The key's rate limit has no capacity before the deadline.
        """
        return await self.caller.request(request, deadline=deadline, trace_id=trace_id)


def _limiter(
    spec: ModelSpec, limits: RateLimits, *, api_key: str | None, base_url: str | None
) -> RateLimiter:
    """Return the limiter of the model's key: named by a fingerprint, never the key."""
    env = API_KEY_ENV.get(spec.provider)
    key = api_key if api_key is not None else (get_secret(env) if env else None)
    digest = fingerprint(spec.provider, spec.model, api_key=key or "", base_url=base_url or "")
    return RateLimiter(digest, limits, model=f"{spec.provider}:{spec.model}")


def _namespace() -> str:
    """The mesh's namespace (one shared cache file each), or ``default`` without Ray."""
    return ray.get_runtime_context().namespace if ray.is_initialized() else "default"


def _conversation(prompt: str | Sequence[ChatMessage], system: str | None) -> list[ChatMessage]:
    messages = [ChatMessage.user(prompt)] if isinstance(prompt, str) else list(prompt)
    if system is not None and not any(m.role == "system" for m in messages):
        messages.insert(0, ChatMessage.system(system))
    return messages


def _add(totals: UsageTotals, response: ModelResponse, client: LLMClient) -> None:
    usage = response.usage or TokenUsage()
    totals.calls += 1
    totals.input_tokens += usage.input_tokens
    totals.output_tokens += usage.output_tokens
    totals.estimated_calls += int(usage.estimated)
    totals.latency_s += response.latency_s
    cost = client.prices.cost(client.model_id, usage.input_tokens, usage.output_tokens)
    if response.cached:
        totals.cached_calls += 1
        totals.saved_usd += cost
    else:
        totals.cost_usd += cost


@runtime_checkable
class ModelClient(Protocol):
    """The one interface agents call models through, whatever the provider.

    See `actors.client.LLMClient` for the implementation and the meaning of each option.
    """

    #: ``provider:MODEL``.
    model_id: str
    ledger: UsageLedger

    async def complete(
        self,
        prompt: str | Sequence[ChatMessage],
        *,
        system: str | None = None,
        response_model: type[BaseModel] | None = None,
        tools: Sequence[Tool] = (),
        max_rounds: int = 4,
        max_tokens: int = 1024,
        temperature: float | None = None,
        deadline: float | None = None,
        timeout: float | None = None,
        trace_id: str | None = None,
    ) -> Any:
        """Run the prompt to a final answer; see `LLMClient.complete`."""
        ...

    async def aclose(self) -> None:
        """Release the provider's connections."""
        ...
