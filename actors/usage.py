"""Tokens and cost of every model call, and their totals per agent, trace and model.

Costs come from a `PriceTable`: list prices in US dollars per million tokens. The
defaults are a convenience, not a bill: override them with a dict or a YAML file
(``{model: {input: 2.5, output: 10.0}}``) when prices change or you have a contract.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from mesh import ConfigError

__all__ = [
    "DEFAULT_PRICES",
    "Price",
    "PriceTable",
    "UsageLedger",
    "UsageRecord",
    "UsageTotals",
]


class Price(BaseModel):
    """US dollars per million input and output tokens."""

    model_config = ConfigDict(frozen=True)

    input: float = Field(ge=0)
    output: float = Field(ge=0)


# Assumption: public list prices (standard tier, no caching or batch discounts) as
# published on openai.com/api/pricing and docs.anthropic.com/en/docs/about-claude/pricing,
# as known in mid-2025. Check them before relying on the dollar figures.
DEFAULT_PRICES: dict[str, Price] = {
    "openai:gpt-5": Price(input=1.25, output=10.0),
    "openai:gpt-5-mini": Price(input=0.25, output=2.0),
    "openai:gpt-5-nano": Price(input=0.05, output=0.40),
    "openai:gpt-4.1": Price(input=2.0, output=8.0),
    "openai:gpt-4.1-mini": Price(input=0.40, output=1.60),
    "openai:gpt-4.1-nano": Price(input=0.10, output=0.40),
    "openai:gpt-4o": Price(input=2.50, output=10.0),
    "openai:gpt-4o-mini": Price(input=0.15, output=0.60),
    "openai:o3": Price(input=2.0, output=8.0),
    "openai:o4-mini": Price(input=1.10, output=4.40),
    "anthropic:claude-opus-4-1": Price(input=15.0, output=75.0),
    "anthropic:claude-opus-4": Price(input=15.0, output=75.0),
    "anthropic:claude-sonnet-4-5": Price(input=3.0, output=15.0),
    "anthropic:claude-sonnet-4": Price(input=3.0, output=15.0),
    "anthropic:claude-3-7-sonnet": Price(input=3.0, output=15.0),
    "anthropic:claude-haiku-4-5": Price(input=1.0, output=5.0),
    "anthropic:claude-3-5-haiku": Price(input=0.80, output=4.0),
    "offline:": Price(input=0.0, output=0.0),
}


class PriceTable:
    """Prices by model string; a dated snapshot (``claude-sonnet-4-20250514``) matches its
    family by the longest known prefix."""

    def __init__(
        self,
        overrides: Mapping[str, Price | Mapping[str, float]] | None = None,
        *,
        defaults: bool = True,
    ) -> None:
        """Build a table from the defaults (unless `defaults` is False) and `overrides`.

        Raises:
            ConfigError: An override is not ``{input: float, output: float}``.
        """
        self._prices: dict[str, Price] = dict(DEFAULT_PRICES) if defaults else {}
        for model, price in (overrides or {}).items():
            try:
                self._prices[model] = (
                    price if isinstance(price, Price) else Price.model_validate(dict(price))
                )
            except (ValueError, TypeError) as exc:
                raise ConfigError(
                    f"price for {model!r} is not usable: {exc}",
                    hint="write prices as {input: USD per 1M tokens, output: USD per 1M tokens}",
                ) from None

    @classmethod
    def from_yaml(cls, path: str | Path, *, defaults: bool = True) -> PriceTable:
        """Load overrides from a YAML mapping of model string to ``{input, output}``.

        Raises:
            ConfigError: The file cannot be read or is not such a mapping.
        """
        try:
            data: Any = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read prices from {path}: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path} must hold a mapping of model to prices")
        return cls(data, defaults=defaults)

    def price(self, model: str) -> Price | None:
        """Return the price of `model` (``provider:MODEL``), or None when unknown."""
        found = self._prices.get(model)
        if found is not None:
            return found
        best = max((k for k in self._prices if model.startswith(k)), key=len, default=None)
        return None if best is None else self._prices[best]

    def cost(self, model: str, input_tokens: int, output_tokens: int) -> float:
        """Return the cost in US dollars; 0.0 for a model without a price."""
        price = self.price(model)
        if price is None:
            return 0.0
        return (input_tokens * price.input + output_tokens * price.output) / 1_000_000

    def as_dict(self) -> dict[str, dict[str, float]]:
        """Return the table as plain data."""
        return {k: v.model_dump() for k, v in self._prices.items()}


class UsageRecord(BaseModel):
    """One request to a model: who made it, in which trace, what it used and cost."""

    model_config = ConfigDict(frozen=True)

    agent: str | None
    model: str
    trace_id: str | None
    input_tokens: int
    output_tokens: int
    #: True when the provider reported no usage and the tokens are estimated.
    estimated: bool
    latency_s: float
    cost_usd: float
    #: False when the model has no price in the table (cost_usd is then 0).
    priced: bool = True
    #: Answered from the response cache: no model call was made and cost_usd is 0.
    cached: bool = False
    #: For a cached answer: what the model call would have cost.
    saved_usd: float = 0.0
    at: float = Field(default_factory=time.time)


class UsageTotals(BaseModel):
    """Sums over a set of records."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    #: Calls whose tokens were estimated.
    estimated_calls: int = 0
    #: Calls answered from the response cache, and the dollars they saved.
    cached_calls: int = 0
    saved_usd: float = 0.0

    @property
    def tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    def add(self, record: UsageRecord) -> None:
        """Add one record."""
        self.calls += 1
        self.input_tokens += record.input_tokens
        self.output_tokens += record.output_tokens
        self.cost_usd += record.cost_usd
        self.latency_s += record.latency_s
        self.estimated_calls += int(record.estimated)
        self.cached_calls += int(record.cached)
        self.saved_usd += record.saved_usd


class UsageLedger(BaseModel):
    """Usage of every call: totals per agent, trace and model, and the latest records.

    Totals are kept as records arrive, so they stay exact however many calls are made;
    only the last `max_records` records are kept in full.
    """

    max_records: int = 1000
    total: UsageTotals = Field(default_factory=UsageTotals)
    by_agent: dict[str, UsageTotals] = Field(default_factory=dict)
    by_trace: dict[str, UsageTotals] = Field(default_factory=dict)
    by_model: dict[str, UsageTotals] = Field(default_factory=dict)
    records: list[UsageRecord] = Field(default_factory=list)

    def record(self, record: UsageRecord) -> None:
        """Add a record to the totals and the recent records."""
        self.total.add(record)
        self.by_agent.setdefault(record.agent or "", UsageTotals()).add(record)
        self.by_model.setdefault(record.model, UsageTotals()).add(record)
        if record.trace_id:
            self.by_trace.setdefault(record.trace_id, UsageTotals()).add(record)
        self.records.append(record)
        if len(self.records) > self.max_records:
            del self.records[: len(self.records) - self.max_records]

    def merge(self, other: UsageLedger) -> None:
        """Add another ledger's totals and records (e.g. a team's agents into one)."""
        for record in other.records:
            self.records.append(record)
        for mine, theirs in (
            (self.by_agent, other.by_agent),
            (self.by_trace, other.by_trace),
            (self.by_model, other.by_model),
        ):
            for key, totals in theirs.items():
                _add_totals(mine.setdefault(key, UsageTotals()), totals)
        _add_totals(self.total, other.total)
        if len(self.records) > self.max_records:
            del self.records[: len(self.records) - self.max_records]


def _add_totals(into: UsageTotals, other: UsageTotals) -> None:
    into.calls += other.calls
    into.input_tokens += other.input_tokens
    into.output_tokens += other.output_tokens
    into.cost_usd += other.cost_usd
    into.latency_s += other.latency_s
    into.estimated_calls += other.estimated_calls
    into.cached_calls += other.cached_calls
    into.saved_usd += other.saved_usd
