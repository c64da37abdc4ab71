"""Routing by measured quality: the cheapest model that is good enough for a request.

`Router` (``actors.router``) routes by fixed rules; `QualityRouter` learns. It keeps a
Beta posterior of each model's success rate per difficulty, updated by a verifier's
verdicts, and sends a request to the cheapest model whose sampled success rate reaches
the target for the request's difficulty (Thompson sampling, so a model that was unlucky
early is still tried now and then). A model nobody has measured starts at the target:
it is tried, and its verdicts decide. `escalate` runs a request up the price ladder until
the verifier passes an answer, feeding each verdict back.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from actors.usage import PriceTable
from mesh import ConfigError

__all__ = ["Attempted", "Escalated", "QualityRouter", "escalate"]


@dataclass
class _Posterior:
    successes: float
    failures: float

    @property
    def mean(self) -> float:
        return self.successes / (self.successes + self.failures)


class QualityRouter:
    """Picks, per difficulty, the cheapest model whose measured quality reaches the target.

    Args:
        models: The models to choose from (``provider:MODEL``).
        prices: Their prices; the order from cheap to dear is input plus output price.
        targets: Difficulty -> the success rate that suffices (``default_target`` else).
        default_target: The target of a difficulty not in `targets`.
        prior_strength: Weight of the prior (pseudo-observations at the target).
        seed: Seed of the samples, so a run can be repeated.

    Raises:
        ConfigError: No models, a model without a price, or a target outside (0, 1).
    """

    def __init__(
        self,
        models: Sequence[str],
        *,
        prices: PriceTable,
        targets: Mapping[str, float] | None = None,
        default_target: float = 0.9,
        prior_strength: float = 2.0,
        seed: int = 0,
    ) -> None:
        if not models:
            raise ConfigError("a quality router needs at least one model")
        unpriced = [m for m in models if prices.price(m) is None]
        if unpriced:
            raise ConfigError(
                f"no price for {', '.join(unpriced)}: the router cannot order them by cost",
                hint="give each model a price (prices={'provider:MODEL': {input:, output:}})",
            )
        self.targets = dict(targets or {})
        self.default_target = default_target
        for target in [*self.targets.values(), default_target]:
            if not 0 < target < 1:
                raise ConfigError(f"a routing target must be in (0, 1), not {target}")
        self.prior_strength = prior_strength
        self.models = sorted(dict.fromkeys(models), key=lambda m: _unit_price(prices, m))
        self._posteriors: dict[tuple[str, str], _Posterior] = {}
        self._rng = random.Random(seed)

    def target(self, difficulty: str) -> float:
        """The success rate that suffices for `difficulty`."""
        return self.targets.get(difficulty, self.default_target)

    def _posterior(self, model: str, difficulty: str) -> _Posterior:
        target = self.target(difficulty)
        return self._posteriors.setdefault(
            (model, difficulty),
            _Posterior(target * self.prior_strength, (1 - target) * self.prior_strength),
        )

    def choose(self, difficulty: str) -> str:
        """Return the cheapest model whose sampled success rate reaches the target.

        When none does, the model with the best sample: nothing is good enough, so the best.
        """
        target = self.target(difficulty)
        samples = {}
        for model in self.models:
            posterior = self._posterior(model, difficulty)
            samples[model] = self._rng.betavariate(posterior.successes, posterior.failures)
            if samples[model] >= target:
                return model
        return max(samples, key=lambda m: samples[m])

    def ladder(self, difficulty: str) -> list[str]:
        """Return the chosen model, then every dearer one: the order to escalate in."""
        first = self.choose(difficulty)
        return self.models[self.models.index(first) :]

    def update(self, model: str, difficulty: str, passed: bool) -> None:
        """Record a verifier's verdict on `model`'s answer to a `difficulty` request."""
        posterior = self._posterior(model, difficulty)
        if passed:
            posterior.successes += 1
        else:
            posterior.failures += 1

    def estimates(self) -> dict[str, dict[str, float]]:
        """Return model -> difficulty -> posterior mean success rate (what was measured)."""
        out: dict[str, dict[str, float]] = {}
        for (model, difficulty), posterior in sorted(self._posteriors.items()):
            out.setdefault(model, {})[difficulty] = round(posterior.mean, 3)
        return out


@dataclass(frozen=True)
class Attempted:
    """One model's answer to a request and the verifier's verdict on it."""

    model: str
    answer: str
    passed: bool


@dataclass(frozen=True)
class Escalated:
    """A request's way up the ladder: every attempt, and whether one passed."""

    attempts: tuple[Attempted, ...]

    @property
    def passed(self) -> bool:
        """True when the last attempt passed."""
        return bool(self.attempts) and self.attempts[-1].passed

    @property
    def answer(self) -> str:
        """The last answer (the one that passed, or the dearest model's)."""
        return self.attempts[-1].answer if self.attempts else ""


async def escalate(
    router: QualityRouter,
    difficulty: str,
    ask: Callable[[str], Awaitable[str]],
    verify: Callable[[str], Awaitable[bool]],
) -> Escalated:
    """Ask the routed model; while the verifier fails the answer, ask the next dearer one.

    Every verdict updates the router, so it learns which model suffices for what.

    Args:
        router: The policy (and what it has measured).
        difficulty: The request's difficulty.
        ask: Model string -> that model's answer to the request.
        verify: Answer -> the verifier's verdict (True passes).
    """
    attempts: list[Attempted] = []
    for model in router.ladder(difficulty):
        answer = await ask(model)
        passed = await verify(answer)
        router.update(model, difficulty, passed)
        attempts.append(Attempted(model, answer, passed))
        if passed:
            break
    return Escalated(tuple(attempts))


def _unit_price(prices: PriceTable, model: str) -> float:
    price = prices.price(model)
    return float("inf") if price is None else price.input + price.output
