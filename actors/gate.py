"""`GatedOrchestrator`: an orchestrator whose final answer a safety agent can veto.

The orchestrator plans, delegates and assembles as `Orchestrator` does; before the answer
leaves, the peer named `gate` (a `Safety` agent, or any verifier) checks it, and a failed
check raises `VetoedError` instead of answering: the answer is not released.
"""

from __future__ import annotations

from typing import Any, ClassVar

from actors.messages import Completion, Prompt, Verdict, Verify
from actors.roles import Orchestrator
from mesh import Context, MeshError

__all__ = ["GatedOrchestrator", "VetoedError"]


class VetoedError(MeshError):
    """The safety gate vetoed the final answer; it was not released."""

    details: ClassVar[tuple[str, ...]] = ("gate", "reasons")

    def __init__(self, message: str, *, gate: str = "", reasons: tuple[str, ...] = (),
                 **context: Any) -> None:  # fmt: skip
        super().__init__(message, **context)
        self.gate = gate
        self.reasons = reasons


class GatedOrchestrator(Orchestrator):
    """An `Orchestrator` whose answer passes the `gate` agent's check before it is released.

    Args:
        gate: The name of the agent that answers `Verify` with a `Verdict`; the other
            arguments are those of `Orchestrator`.
    """

    def __init__(self, *args: Any, gate: str = "safety", **kwargs: Any) -> None:
        """Configure as `Orchestrator`, plus the gate's agent name."""
        super().__init__(*args, **kwargs)
        self.gate = gate

    async def answer(self, msg: Prompt, ctx: Context | None) -> Completion:
        """Plan, delegate, assemble; then release the answer only if the gate passes it.

        Raises:
            VetoedError: The gate failed the answer.
        """
        done = await super().answer(msg, ctx)
        if ctx is None:
            return done
        verdict = await ctx.ask(self.gate, Verify(task=msg.text, answer=done.text),
                                expect=Verdict)  # fmt: skip
        if not verdict.passed:
            raise VetoedError(
                f"the safety gate {self.gate!r} vetoed the answer: {verdict.feedback}",
                gate=self.gate, reasons=tuple(verdict.reasons), agent=ctx.agent,
                trace_id=ctx.trace_id,
                hint="the answer was withheld; rephrase the task or review the gate's rules",
            )  # fmt: skip
        return done
