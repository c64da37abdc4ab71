"""Hard spending limits in tokens and/or dollars, checked before each call.

A call first *reserves* its estimated cost (refused with `BudgetExceededError` if the
budget cannot cover it) and *settles* to the real cost when it returns, so concurrent
calls cannot all pass the check and overspend together. The real cost may exceed the
estimate; it is charged in full, and later calls are refused.

A budget crosses process boundaries as plain numbers (`remaining`), so a budget for a
whole trace can travel with its messages and be rebuilt by each agent
(`Budget.from_remaining`).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel, Field

from actors.errors import BudgetExceededError
from actors.providers import estimate_tokens

__all__ = ["Budget", "ChargedBudget", "Reservation", "StreamMeter", "current_charge"]


@dataclass(frozen=True)
class Reservation:
    """What one call has reserved."""

    tokens: int
    usd: float


#: The budget of the message being handled, rebuilt from its envelope's allowance by
#: `LLMAgent.complete`; every model call checks it besides the agent's own.
current_budget: ContextVar[Budget | None] = ContextVar("raymesh_current_budget", default=None)
#: The same budget, with the handler it is charged to (see `ChargedBudget`).
current_charge: ContextVar[ChargedBudget | None] = ContextVar(
    "raymesh_current_charge", default=None
)


class _Spender(Protocol):
    def spend(self, **units: float) -> None: ...

    @property
    def spent(self) -> dict[str, float]: ...


@dataclass
class ChargedBudget:
    """A message's budget for one completion, and the handler context it is charged to.

    An ask made during the completion (a delegation) carries the handler's allowance:
    what the message arrived with less what was charged so far. Charging what the
    model calls spent before each such ask, not only when the completion ends, keeps a
    chain of agents that delegate to each other within the one budget (otherwise every
    hop would pass on the whole of it).
    """

    budget: Budget
    ctx: _Spender
    charged_tokens: int = 0
    charged_usd: float = 0.0

    def charge(self) -> None:
        """Charge what the budget spent since the last charge to the handler."""
        tokens = self.budget.spent_tokens - self.charged_tokens
        usd = self.budget.spent_usd - self.charged_usd
        self.charged_tokens, self.charged_usd = self.budget.spent_tokens, self.budget.spent_usd
        if tokens or usd:
            self.ctx.spend(tokens=tokens, usd=usd)

    def absorb(self, *, tokens: float, usd: float) -> None:
        """Count what a delegation spent (already charged to the handler) against the budget.

        The completion's later model calls then see it spent, so unwinding a chain of
        delegations cannot overspend what the chain as a whole had.
        """
        self.budget.spent_tokens += int(tokens)
        self.budget.spent_usd += usd
        self.charged_tokens += int(tokens)
        self.charged_usd += usd


class Budget(BaseModel):
    """A hard limit on tokens and/or US dollars; None means no limit on that axis."""

    max_tokens: int | None = Field(default=None, ge=0)
    max_usd: float | None = Field(default=None, ge=0)
    spent_tokens: int = 0
    spent_usd: float = 0.0
    #: Reserved by calls in flight, not yet settled.
    reserved_tokens: int = 0
    reserved_usd: float = 0.0

    @classmethod
    def from_remaining(cls, *, tokens: int | None = None, usd: float | None = None) -> Budget:
        """Rebuild a budget from what another agent had left (see `remaining`)."""
        return cls(max_tokens=tokens, max_usd=usd)

    def remaining(self) -> dict[str, float | None]:
        """Return what is left, as plain numbers: ``{"tokens": ..., "usd": ...}``.

        None means unlimited. Reservations of calls in flight count as spent.
        """
        tokens = (
            None
            if self.max_tokens is None
            else max(0, self.max_tokens - self.spent_tokens - self.reserved_tokens)
        )
        usd = (
            None
            if self.max_usd is None
            else max(0.0, self.max_usd - self.spent_usd - self.reserved_usd)
        )
        return {"tokens": tokens, "usd": usd}

    def fraction_left(self) -> float:
        """Return the smallest fraction left over the limited axes (1.0 when unlimited)."""
        fractions = [1.0]
        left = self.remaining()
        if self.max_tokens:
            fractions.append(float(left["tokens"] or 0) / self.max_tokens)
        elif self.max_tokens == 0:
            fractions.append(0.0)
        if self.max_usd:
            fractions.append(float(left["usd"] or 0) / self.max_usd)
        elif self.max_usd == 0:
            fractions.append(0.0)
        return min(fractions)

    def can_afford(self, *, tokens: int, usd: float) -> bool:
        """Return whether a call estimated at `tokens` and `usd` fits in what is left."""
        left = self.remaining()
        if left["tokens"] is not None and tokens > left["tokens"]:
            return False
        return not (left["usd"] is not None and usd > left["usd"])

    def reserve(
        self,
        *,
        tokens: int,
        usd: float,
        model: str | None = None,
        agent: str | None = None,
        trace_id: str | None = None,
    ) -> Reservation:
        """Reserve a call's estimated cost.

        Raises:
            BudgetExceededError: What is left does not cover the estimate.
        """
        if not self.can_afford(tokens=tokens, usd=usd):
            left = self.remaining()
            raise BudgetExceededError(
                f"the call to {model or 'the model'} needs about {tokens} tokens / "
                f"${usd:.4f}, but the budget has {_describe(left)} left",
                model=model,
                needed={"tokens": tokens, "usd": usd},
                remaining=left,
                agent=agent,
                trace_id=trace_id,
                hint="raise the budget, shorten the prompt or lower max_tokens, "
                "or route to a cheaper model",
            )
        self.reserved_tokens += tokens
        self.reserved_usd += usd
        return Reservation(tokens=tokens, usd=usd)

    def settle(self, reservation: Reservation, *, tokens: int, usd: float) -> None:
        """Replace a reservation by the call's real cost (0 and 0.0 if it failed)."""
        self.release(reservation)
        self.spent_tokens += tokens
        self.spent_usd += usd

    def release(self, reservation: Reservation) -> None:
        """Drop a reservation without charging (the call was never made)."""
        self.reserved_tokens = max(0, self.reserved_tokens - reservation.tokens)
        self.reserved_usd = max(0.0, self.reserved_usd - reservation.usd)


class StreamMeter:
    """Draws a streamed answer's tokens on its budgets as they arrive, so a spent one ends it.

    A call reserves its estimated cost before it starts and settles the real cost when
    it ends, but a streamed answer can run past the estimate: each piece is counted as it
    comes (estimated, about four characters a token), and the stream is stopped with
    `BudgetExceededError` once the call's input and what it streamed pass the tokens its
    budgets had left when it began. The reserving and settling stay as for any call.
    """

    def __init__(
        self,
        budgets: Sequence[Budget],
        *,
        input_tokens: int,
        model: str | None = None,
        agent: str | None = None,
        trace_id: str | None = None,
    ) -> None:
        limits = [left for b in budgets if (left := b.remaining()["tokens"]) is not None]
        self._limit = min(limits, default=None)
        self._model, self._agent, self._trace_id = model, agent, trace_id
        #: The call's tokens so far: its input, then each piece streamed.
        self.tokens = input_tokens
        self.pieces = 0

    def draw(self, text: str) -> None:
        """Count one piece of the answer.

        Raises:
            BudgetExceededError: The call has now used more tokens than its budgets had.
        """
        self.tokens += estimate_tokens(text)
        self.pieces += 1
        if self._limit is not None and self.tokens > self._limit:
            raise BudgetExceededError(
                f"the streamed answer of {self._model or 'the model'} reached about "
                f"{self.tokens} tokens, past the {int(self._limit)} its budget had left",
                model=self._model,
                needed={"tokens": self.tokens},
                remaining={"tokens": self._limit},
                agent=self._agent,
                trace_id=self._trace_id,
                hint="raise the budget or lower max_tokens; the answer was cut short",
            )


def _describe(left: dict[str, float | None]) -> str:
    parts = []
    if left["tokens"] is not None:
        parts.append(f"{int(left['tokens'])} tokens")
    if left["usd"] is not None:
        parts.append(f"${left['usd']:.4f}")
    return " / ".join(parts) or "no limit"
