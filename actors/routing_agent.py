"""`RoutingAgent`: the router role, sending each request to the cheapest model that suffices.

It holds a `QualityRouter` over its models and a verifier peer: each `Routed` request
goes to the model the router picks for its difficulty, the verifier judges the answer
(against `ground_truth` when the request has one, by its rules otherwise), a failed
answer goes to the next dearer model, and every verdict updates what the router has
measured, so the agent learns which model is good enough for what.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, Field

from actors.agent import LLMAgent
from actors.messages import Verdict, Verify
from actors.router import Router
from actors.routing import QualityRouter, escalate
from mesh import ConfigError, Context, handler
from protocols import Message

__all__ = ["Routed", "RoutedAnswer", "RoutingAgent"]


class Routed(Message, type="llm.routed/1"):
    """A request for the router role, with its difficulty (``easy``, ``medium``, ``hard``...)."""

    text: str
    difficulty: str
    #: What a right answer contains, for a verifier that checks it exactly.
    ground_truth: str | None = None


class RoutedTry(BaseModel):
    """One model's try and the verifier's verdict on it."""

    model: str
    passed: bool


class RoutedAnswer(Message, type="llm.routed_answer/1"):
    """The answer that passed (or the dearest model's), and the way up the price ladder."""

    text: str
    model: str
    passed: bool
    tries: list[RoutedTry] = Field(default_factory=list)
    #: What the router has measured so far: model -> difficulty -> success rate.
    estimates: dict[str, dict[str, float]] = Field(default_factory=dict)


class RoutingAgent(LLMAgent):
    """The router role: cheapest sufficient model per request, learnt from a verifier.

    Args:
        models: The models to route between (each needs a price: ``prices=``).
        verifier: The peer that answers `Verify` with a `Verdict`.
        target: The success rate that suffices, for every difficulty without one in
            `targets`; the other arguments are those of `LLMAgent`.

    Raises:
        ConfigError: No models (at start: a model without a price).
    """

    def __init__(
        self,
        *args: Any,
        models: Sequence[str] = (),
        verifier: str = "verifier",
        target: float = 0.9,
        targets: Mapping[str, float] | None = None,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        """Configure as `LLMAgent`; every model gets a client when the agent starts."""
        if not models:
            raise ConfigError("a routing agent needs models=[...] to route between")
        super().__init__(*args, router=Router(default=models[0], fallback=list(models[1:])),
                         **kwargs)  # fmt: skip
        self.models = list(models)
        self.verifier = verifier
        self.target = target
        self.targets = dict(targets or {})
        self.seed = seed
        self.quality: QualityRouter | None = None

    async def on_start(self) -> None:
        """Build the clients and the router over their prices.

        Raises:
            ConfigError: A model is unusable or has no price.
        """
        await super().on_start()
        self.quality = QualityRouter(self.models, prices=self.client.prices,
                                     default_target=self.target, targets=self.targets,
                                     seed=self.seed)  # fmt: skip

    @handler
    async def on_routed(self, msg: Routed, ctx: Context) -> RoutedAnswer:
        """Route, verify, escalate on a failed verdict, and learn from every verdict."""
        assert self.quality is not None  # built by on_start
        clients = self.client.clients

        async def ask(model: str) -> str:
            done = await clients[model].complete(
                msg.text, system=self.system_prompt, max_tokens=self.max_tokens, tools=(),
                deadline=ctx.deadline, trace_id=ctx.trace_id,
            )  # fmt: skip
            return done.text

        async def verify(answer: str) -> bool:
            check = Verify(task=msg.text, answer=answer, ground_truth=msg.ground_truth)
            return (await ctx.ask(self.verifier, check, expect=Verdict)).passed

        done = await escalate(self.quality, msg.difficulty, ask, verify)
        return RoutedAnswer(
            text=done.answer, model=done.attempts[-1].model, passed=done.passed,
            tries=[RoutedTry(model=a.model, passed=a.passed) for a in done.attempts],
            estimates=self.quality.estimates(),
        )  # fmt: skip
