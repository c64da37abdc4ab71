"""`ModelCaller`: one request to a model, made dependable and accounted for.

The layer below `LLMClient.complete` and its collaborators, in the order a request meets
them: the response cache (a hit ends here), the budget (reserved), the key's rate limit
(capacity waited for, within the deadline), retries and the circuit breaker around the
provider, and then the usage ledger, the span and the host's counters. The provider's
rate-limit headers and 429s go back to the limiter, which shares them with the cluster.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from actors.breaker import CircuitBreaker
from actors.budget import Budget, Reservation, current_budget
from actors.cache import ResponseCache
from actors.errors import BudgetExceededError, ModelError, ProviderError
from actors.providers import ModelRequest, ModelResponse, Provider, TokenUsage, estimate_tokens
from actors.ratelimit import RateLimiter
from actors.retry import RetryPolicy, call_with_retries
from actors.usage import PriceTable, UsageLedger, UsageRecord
from mesh import DeadlineExceededError, get_logger
from mesh.extension import add_event, add_to, count_model_call

__all__ = ["ModelCaller"]

_log = get_logger()

#: The pause after a 429 that named no ``retry-after``.
DEFAULT_429_PAUSE_S = 1.0


@dataclass
class ModelCaller:
    """Everything one request goes through; built and held by an `LLMClient`."""

    model_id: str
    agent: str | None
    provider: Provider
    prices: PriceTable
    ledger: UsageLedger
    budget: Budget | None
    retry: RetryPolicy
    breaker: CircuitBreaker
    limiter: RateLimiter | None = None
    cache: ResponseCache | None = None

    def estimate(self, request: ModelRequest) -> tuple[int, float]:
        """Return the estimated (tokens, US dollars) of a request, for budget and limit checks.

        The output is assumed to be half the input, at least 64 tokens and at most
        `max_tokens`: a guess, since the real length is known only afterwards.
        """
        input_tokens = request.size_hint()
        output_tokens = min(request.max_tokens, max(64, input_tokens // 2))
        return input_tokens + output_tokens, self.prices.cost(
            self.model_id, input_tokens, output_tokens
        )

    async def request(
        self, request: ModelRequest, *, deadline: float, trace_id: str | None = None
    ) -> ModelResponse:
        """Make one request (with retries) and account for it; see `LLMClient.request`."""
        key = self.cache.key(self.model_id, request) if self.cache is not None else None
        if key is not None and self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                return self._cached(hit, trace_id)
        tokens, usd = self.estimate(request)
        reservations = self._reserve(tokens, usd, trace_id)
        started = time.monotonic()
        try:
            response = await call_with_retries(
                lambda timeout: self._send(request, tokens, timeout, deadline, trace_id),
                model=self.model_id,
                deadline=deadline,
                policy=self.retry,
                breaker=self.breaker,
                on_retry=lambda n, exc, wait: self._log_retry(n, exc, wait, trace_id),
            )
        except BaseException as exc:
            for budget, reservation in reservations:
                budget.release(reservation)
            if isinstance(exc, ModelError | DeadlineExceededError):
                exc.with_context(agent=self.agent, trace_id=trace_id)
            raise
        latency = time.monotonic() - started
        usage = response.usage or _estimated_usage(request, response)
        cost = self.prices.cost(self.model_id, usage.input_tokens, usage.output_tokens)
        for budget, reservation in reservations:
            budget.settle(reservation, tokens=usage.total, usd=cost)
        response.usage = usage
        response.latency_s = latency
        if key is not None and self.cache is not None:
            self.cache.put(key, response)
        self._account(usage, cost, latency, trace_id)
        return response

    async def _send(
        self, request: ModelRequest, tokens: int, timeout: float, deadline: float,
        trace_id: str | None,
    ) -> ModelResponse:  # fmt: skip
        """One attempt: capacity from the key's limit first, then the provider."""
        if self.limiter is None:
            return await self.provider.send(request, timeout=timeout)
        await self.limiter.acquire(tokens, deadline=deadline, trace_id=trace_id, agent=self.agent)
        response: ModelResponse | None = None
        try:
            response = await self.provider.send(request, timeout=timeout)
        except ProviderError as exc:
            if exc.status == 429:
                self.limiter.pause(exc.retry_after or DEFAULT_429_PAUSE_S)
            raise
        finally:
            # Failed or not, the request may have reached the provider and counted there.
            usage = response.usage if response is not None else None
            self.limiter.finish(tokens, usage.total if usage is not None else tokens)
        self.limiter.observe(response.headers)
        return response

    def _reserve(
        self, tokens: int, usd: float, trace_id: str | None
    ) -> list[tuple[Budget, Reservation]]:
        """Reserve the estimate on the agent's budget and the conversation's, or neither."""
        budgets = [b for b in (self.budget, current_budget.get()) if b is not None]
        reservations: list[tuple[Budget, Reservation]] = []
        try:
            for budget in budgets:
                reservations.append((budget, budget.reserve(
                    tokens=tokens, usd=usd, model=self.model_id, agent=self.agent,
                    trace_id=trace_id)))  # fmt: skip
        except BudgetExceededError:
            for budget, reservation in reservations:
                budget.release(reservation)
            raise
        return reservations

    def _cached(self, hit: ModelResponse, trace_id: str | None) -> ModelResponse:
        """Account for an answer from the cache: a call of zero cost, saving the original's."""
        usage = hit.usage or TokenUsage()
        saved = self.prices.cost(self.model_id, usage.input_tokens, usage.output_tokens)
        hit.latency_s = 0.0
        hit.cached = True
        self.ledger.record(
            UsageRecord(
                agent=self.agent, model=self.model_id, trace_id=trace_id,
                input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                estimated=usage.estimated, latency_s=0.0, cost_usd=0.0, cached=True,
                saved_usd=saved, priced=self.prices.price(self.model_id) is not None,
            )
        )  # fmt: skip
        add_to(**{"llm.cache_hits": 1, "llm.saved_usd": saved})
        add_event("llm.cache_hit", model=self.model_id, saved_usd=saved)
        count_model_call(self.model_id, tokens_in=usage.input_tokens,
                         tokens_out=usage.output_tokens, cost_usd=0.0,
                         estimated=usage.estimated, saved_usd=saved)  # fmt: skip
        return hit

    def _account(self, usage: TokenUsage, cost: float, latency: float, trace: str | None) -> None:
        self.ledger.record(
            UsageRecord(
                agent=self.agent, model=self.model_id, trace_id=trace,
                input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                estimated=usage.estimated, latency_s=latency, cost_usd=cost,
                priced=self.prices.price(self.model_id) is not None,
            )
        )  # fmt: skip
        # The span of the message being handled totals what its model calls used, so a
        # trace shows tokens and cost per message; each call is also an event on it.
        add_to(**{"llm.calls": 1, "llm.tokens_in": usage.input_tokens,
                  "llm.tokens_out": usage.output_tokens, "llm.cost_usd": cost})  # fmt: skip
        add_event("llm.call", model=self.model_id, tokens_in=usage.input_tokens,
                  tokens_out=usage.output_tokens, cost_usd=cost, latency_s=latency)  # fmt: skip
        count_model_call(self.model_id, tokens_in=usage.input_tokens,
                         tokens_out=usage.output_tokens, cost_usd=cost,
                         estimated=usage.estimated)  # fmt: skip

    def _log_retry(self, attempt: int, exc: ModelError, wait: float, trace_id: str | None) -> None:
        _log.warning(
            "model call failed, retrying",
            model=self.model_id,
            attempt=attempt,
            error=exc.message,
            wait_s=round(wait, 3),
            agent=self.agent,
            trace_id=trace_id,
        )


def _estimated_usage(request: ModelRequest, response: ModelResponse) -> TokenUsage:
    output = response.text + (response.structured or "")
    output += "".join(c.arguments for c in response.tool_calls)
    return TokenUsage(
        input_tokens=request.size_hint(), output_tokens=estimate_tokens(output), estimated=True
    )
