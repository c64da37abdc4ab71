"""Model routing: pick a model per request, and fall back along a chain when it fails.

`Router` is the policy, plain data that travels to an agent with its spawn arguments:
rules by role and prompt size pick the first model; `fallback` lists the models to try
next. `RoutedClient` applies it: it builds a client for every model of the policy when
the agent starts (so a missing key fails the spawn, not the first fallback), and moves
down the chain when a model is unavailable (breaker open, retries exhausted) or cannot
fit the budget. When the budget is nearly spent it tries the cheapest models first.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, Self

from pydantic import BaseModel, Field

from actors.budget import Budget
from actors.client import CompletionResult, LLMClient
from actors.errors import BudgetExceededError, ModelUnavailableError
from actors.providers import ChatMessage, estimate_tokens
from actors.ratelimit import limits_for
from actors.retry import RetryPolicy
from actors.tools import Tool
from actors.usage import PriceTable, UsageLedger
from mesh import get_logger

__all__ = ["RouteRule", "RoutedClient", "Router"]

_log = get_logger()


class RouteRule(BaseModel):
    """Use `model` for requests that match every condition given."""

    model: str
    #: The requesting role (an agent's role, or the role named in the request).
    role: str | None = None
    #: Bounds on the prompt's estimated tokens: a proxy for how hard the request is.
    min_prompt_tokens: int | None = None
    max_prompt_tokens: int | None = None

    def matches(self, *, role: str | None, prompt_tokens: int) -> bool:
        """Return whether a request matches this rule."""
        if self.role is not None and self.role != role:
            return False
        if self.min_prompt_tokens is not None and prompt_tokens < self.min_prompt_tokens:
            return False
        return not (self.max_prompt_tokens is not None and prompt_tokens > self.max_prompt_tokens)


class Router(BaseModel):
    """Which model serves a request, and which ones to fall back to."""

    default: str = "offline:default"
    rules: list[RouteRule] = Field(default_factory=list)
    fallback: list[str] = Field(default_factory=list)
    #: Below this fraction of budget left, the chain is tried cheapest first.
    low_budget_fraction: float = Field(default=0.2, ge=0, le=1)

    def models(self) -> list[str]:
        """Return every model the policy may use, each once, default first."""
        seen: dict[str, None] = {self.default: None}
        for model in [r.model for r in self.rules] + self.fallback:
            seen.setdefault(model, None)
        return list(seen)

    def chain(
        self,
        *,
        role: str | None = None,
        prompt_tokens: int = 0,
        budget_fraction: float = 1.0,
        prices: PriceTable | None = None,
    ) -> list[str]:
        """Return the models to try for one request, in order."""
        first = next(
            (r.model for r in self.rules if r.matches(role=role, prompt_tokens=prompt_tokens)),
            self.default,
        )
        chain = list(dict.fromkeys([first, *self.fallback]))
        if budget_fraction < self.low_budget_fraction:
            table = prices or PriceTable()

            def unit_cost(model: str) -> float:
                price = table.price(model)
                return float("inf") if price is None else price.input + price.output

            chain.sort(key=unit_cost)  # stable: equal prices keep their configured order
        return chain


class RoutedClient:
    """A `ModelClient` over several models, routed by a `Router`."""

    def __init__(
        self,
        router: Router,
        *,
        agent: str | None = None,
        role: str | None = None,
        base_urls: Mapping[str, str] | None = None,
        api_keys: Mapping[str, str] | None = None,
        prices: PriceTable | None = None,
        ledger: UsageLedger | None = None,
        budget: Budget | None = None,
        retry: RetryPolicy | None = None,
        options: Mapping[str, Mapping[str, Any]] | None = None,
        limits: Mapping[str, Any] | None = None,
        cache: Any = None,
    ) -> None:
        """Build a client for every model of the router.

        Args:
            router: The routing policy.
            agent: The agent the clients serve.
            role: The agent's role, matched by rules.
            base_urls: Model string -> endpoint, for models not at the provider's default.
            api_keys: Model string -> API key; others read the provider's variable.
            prices: The price table, shared by the clients.
            ledger: The usage ledger, shared by the clients.
            budget: The budget, shared by the clients.
            retry: Retry policy of every client.
            options: Model string -> offline options.
            limits: Model string or provider name -> its key's rate limits.
            cache: The response cache settings of every client (None: off).

        Raises:
            ConfigError: A model string is bad, or a key is missing.
        """
        self.router = router
        self.role = role
        self.prices = prices or PriceTable()
        self.ledger = ledger if ledger is not None else UsageLedger()
        self.budget = budget
        self.clients: dict[str, LLMClient] = {
            model: LLMClient(
                model,
                agent=agent,
                api_key=(api_keys or {}).get(model),
                base_url=(base_urls or {}).get(model),
                prices=self.prices,
                ledger=self.ledger,
                budget=budget,
                retry=retry,
                limits=limits_for(model, limits),
                cache=cache,
                **dict((options or {}).get(model, {})),
            )
            for model in router.models()
        }
        self.model_id = self.clients[router.default].model_id
        self.agent = agent

    async def aclose(self) -> None:
        """Release every client's connections."""
        for client in self.clients.values():
            await client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

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
        role: str | None = None,
    ) -> CompletionResult:
        """Complete with the routed model, falling back along the chain.

        Takes the arguments of `LLMClient.complete`, and `role` to route by (the
        client's own role by default).

        Raises:
            ModelUnavailableError: Every model of the chain was unavailable.
            BudgetExceededError: No model of the chain fits the budget.
            DeadlineExceededError: The deadline passed.
            ProviderError: A model refused the request (not retryable: no fallback).
            StructuredOutputError: The answer did not fit `response_model`.
            ToolError: The model kept calling tools past `max_rounds`.
        """
        if timeout is not None:
            end = time.time() + timeout
            deadline = end if deadline is None else min(deadline, end)
        text = prompt if isinstance(prompt, str) else " ".join(m.content for m in prompt)
        chain = self.router.chain(
            role=role or self.role,
            prompt_tokens=estimate_tokens(text + (system or "")),
            budget_fraction=1.0 if self.budget is None else self.budget.fraction_left(),
            prices=self.prices,
        )
        failures: list[Exception] = []
        for model in chain:
            if deadline is not None and deadline <= time.time() and failures:
                break
            try:
                return await self.clients[model].complete(
                    prompt, system=system, response_model=response_model, tools=tools,
                    max_rounds=max_rounds, max_tokens=max_tokens, temperature=temperature,
                    deadline=deadline, trace_id=trace_id,
                )  # fmt: skip
            except (ModelUnavailableError, BudgetExceededError) as exc:
                failures.append(exc)
                _log.warning(
                    "model unavailable, falling back",
                    model=model, error=exc.message, agent=self.agent, trace_id=trace_id,
                )  # fmt: skip
        last = failures[-1]
        if len(failures) == 1:
            raise last
        tried = ", ".join(chain[: len(failures)])
        if isinstance(last, BudgetExceededError) and all(
            isinstance(f, BudgetExceededError) for f in failures
        ):
            raise BudgetExceededError(
                f"no model of the chain ({tried}) fits the budget: {last.message}",
                needed=last.needed, remaining=last.remaining,
                agent=self.agent, trace_id=trace_id, hint=last.hint,
            ) from last  # fmt: skip
        raise ModelUnavailableError(
            f"every model of the chain failed ({tried}); last: {last}",
            model=chain[len(failures) - 1],
            agent=self.agent,
            trace_id=trace_id,
            hint="check the providers' status; add another fallback model",
        ) from last
