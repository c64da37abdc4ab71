"""Ready role agents: orchestrator, reasoner, coder, retriever, verifier, generalist.

Each is an `LLMAgent` with a system prompt, a default model and tools, all overridable
with the spawn arguments (``system_prompt=``, ``model=``, ``tools=``...). Replace any of
them with your own class; other agents find them by role, not by class.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, create_model

from actors.agent import LLMAgent, completion
from actors.errors import StructuredOutputError
from actors.memory import SQLiteMemory
from actors.messages import CallUsage, Completion, Prompt, Remember, Remembered, Verdict, Verify
from mesh import Context, MeshError, handler
from mesh.extension import add_event, redact
from protocols.errors import describe

__all__ = [
    "Coder",
    "Generalist",
    "Orchestrator",
    "Plan",
    "PlanStep",
    "Reasoner",
    "Retriever",
    "Safety",
    "Verifier",
]


class PlanStep(BaseModel):
    """One step of a plan: which role does what."""

    role: str
    instruction: str


class Plan(BaseModel):
    """An orchestrator's plan."""

    steps: list[PlanStep] = Field(min_length=1, max_length=8)


class Generalist(LLMAgent):
    """Answers anything; the fallback when no specialist fits."""


class Reasoner(LLMAgent):
    """Thinks a problem through step by step before answering."""

    default_system_prompt: ClassVar[str] = (
        "You are a careful reasoner. Think the problem through step by step, state your "
        "assumptions, then give the answer on a last line starting with 'Answer:'."
    )


class Coder(LLMAgent):
    """Writes code: one fenced code block with a short explanation."""

    default_system_prompt: ClassVar[str] = (
        "You are an expert programmer. Write correct, idiomatic, typed code for the request. "
        "Reply with one fenced code block, then at most three sentences of explanation."
    )


class Retriever(LLMAgent):
    """Answers from a local document corpus, through a long-term `SQLiteMemory`.

    Documents come from `corpus` (texts, or paths of ``.txt`` / ``.md`` files or of
    directories of them) and from `Remember` messages; they persist in `db_path`.
    """

    default_system_prompt: ClassVar[str] = (
        "You answer only from the numbered context passages given with the request, citing "
        "them as [n]. If they do not contain the answer, say so."
    )

    def __init__(
        self,
        *args: Any,
        corpus: Sequence[str] = (),
        db_path: str = ":memory:",
        top_k: int = 4,
        **kwargs: Any,
    ) -> None:
        """Configure as `LLMAgent`, plus the corpus, the store's file and passages per answer."""
        super().__init__(*args, **kwargs)
        self.corpus = list(corpus)
        self.db_path = db_path
        self.top_k = top_k
        self.memory: SQLiteMemory | None = None

    async def on_start(self) -> None:
        """Build the clients, open the store and load the corpus into it (once).

        Raises:
            ConfigError: As `LLMAgent.on_start`.
        """
        await super().on_start()
        self.memory = SQLiteMemory(self.db_path)
        if await self.memory.count() == 0:
            for text in _documents(self.corpus):
                await self.memory.add(text)

    async def on_stop(self) -> None:
        """Close the clients and the store."""
        await super().on_stop()
        if self.memory is not None:
            await self.memory.close()

    @handler
    async def on_remember(self, msg: Remember, ctx: Context) -> Remembered:
        """Add documents to the store."""
        assert self.memory is not None  # opened by on_start
        for text in msg.texts:
            await self.memory.add(text)
        return Remembered(count=await self.memory.count())

    async def answer(self, msg: Prompt, ctx: Context | None) -> Completion:
        """Retrieve the passages most relevant to the prompt, then answer from them."""
        assert self.memory is not None  # opened by on_start
        hits = await self.memory.search(msg.text, k=self.top_k)
        return await super().answer(
            msg.model_copy(update={"context": [*msg.context, *(h.text for h in hits)]}), ctx
        )


class _Judgement(BaseModel):
    passed: bool
    reasons: list[str] = Field(min_length=1)


class Verifier(LLMAgent):
    """Checks an answer against ground truth, forbidden patterns and rules; gives a `Verdict`.

    It answers the patterns' `Verify` (``protocols.patterns``), so it can be the verifier
    of verify-and-retry or of a race. Ground truth and forbidden patterns are checked
    exactly, in code; plain-word rules are judged by the model. The answer passes only if
    every check passes. The verdict's `reasons` list the findings and its `feedback` joins
    them, which is what verify-and-retry feeds back to the generator.

    Args:
        rules: Rules every answer is judged by, besides a `Verify`'s own.
        forbidden: Regular expressions no answer may match, besides a `Verify`'s own.

    Other arguments are those of `LLMAgent`.

    A `Verify` with no check at all, to a verifier with none of its own (what the
    patterns send to a plain ``verifier``), is judged by `default_rules`.
    """

    default_system_prompt: ClassVar[str] = (
        "You are a strict verifier. Check the output against the task and every rule. "
        "Give a verdict: passed true only if every rule holds, with one reason per finding."
    )
    #: The rules of a check that names none.
    default_rules: ClassVar[tuple[str, ...]] = ("it is safe and correct",)

    def __init__(
        self, *args: Any, rules: Sequence[str] = (), forbidden: Sequence[str] = (), **kwargs: Any
    ) -> None:
        """Configure as `LLMAgent`, plus the rules and forbidden patterns of every check."""
        super().__init__(*args, **kwargs)
        self.rules = list(rules)
        self.forbidden = list(forbidden)

    @handler
    async def on_verify(self, msg: Verify, ctx: Context) -> Verdict:
        """Check `msg.answer` and explain the verdict."""
        return await self.check(msg, ctx)

    async def check(self, msg: Verify, ctx: Context | None = None) -> Verdict:
        """Check an answer; usable without a message (``ctx`` bounds the model call)."""
        reasons: list[str] = []
        passed = True
        rules = [*self.rules, *msg.rules]
        forbidden = [*self.forbidden, *msg.forbidden]
        if not (rules or forbidden or msg.ground_truth is not None):
            rules = list(self.default_rules)
        if msg.ground_truth is not None:
            if _normal(msg.ground_truth) in _normal(msg.answer):
                reasons.append("the output contains the expected answer")
            else:
                passed = False
                reasons.append(f"the output does not contain the expected {msg.ground_truth!r}")
        for pattern in forbidden:
            if re.search(pattern, msg.answer, re.I):
                passed = False
                reasons.append(f"the output matches the forbidden pattern {pattern!r}")
        if rules:
            listed = "\n".join(f"- {r}" for r in rules)
            result = await self.complete(
                f"Task: {msg.task}\nRules:\n{listed}\nOutput to check:\n{msg.answer}",
                ctx,
                response_model=_Judgement,
                tools=(),
            )
            judgement: _Judgement = result.parsed
            passed = passed and judgement.passed
            reasons.extend(judgement.reasons)
        return Verdict(
            passed=passed, feedback="; ".join(reasons), reasons=reasons, model=self.model_id
        )

    async def answer(self, msg: Prompt, ctx: Context | None) -> Completion:
        """Treat a plain prompt as an output to check against the default rules."""
        verdict = await self.check(Verify(answer=msg.text), ctx)
        text = ("PASS" if verdict.passed else "FAIL") + "\n" + "\n".join(verdict.reasons)
        return Completion(text=text, model=self.model_id, usage=CallUsage())


class Safety(Verifier):
    """A verifier for safety rules (no secrets, no harmful instructions) by default."""

    default_system_prompt: ClassVar[str] = (
        "You are a safety reviewer. Check that the output reveals no secrets or personal "
        "data and gives no harmful instructions. Give a verdict with reasons."
    )


class Orchestrator(LLMAgent):
    """Plans a task, routes each step to a peer of the step's role, and assembles the answers.

    The plan's roles are limited to the roles of the live peers (a JSON-schema enum), so
    the model cannot route to a role nobody plays. A step whose peer fails is answered
    by the orchestrator itself, and the failure is noted.

    A model that does not follow the plan's schema, even repaired (common for small
    local models), does not fail the task: it goes whole to the role the unusable
    reply names first, or the orchestrator answers it, and the answer's
    ``planning_failed`` says why. ``strict_planning=True`` fails it instead.
    """

    default_system_prompt: ClassVar[str] = (
        "You are an orchestrator. Break the task into a short plan of steps, each for one "
        "of the available roles, then assemble the results into one answer."
    )
    #: Share of the remaining time given to the steps; the rest is for assembling.
    step_share: ClassVar[float] = 0.7

    def __init__(self, *args: Any, strict_planning: bool = False, **kwargs: Any) -> None:
        """Configure as `LLMAgent`; `strict_planning` raises `StructuredOutputError`
        when the model gives no valid plan, instead of answering without one."""
        super().__init__(*args, **kwargs)
        self.strict_planning = strict_planning

    async def answer(self, msg: Prompt, ctx: Context | None) -> Completion:
        """Plan, delegate and assemble."""
        if ctx is None:
            return await super().answer(msg, ctx)
        peers = [p for p in await ctx.peers() if p.role and p.role != self.role]
        by_role: dict[str, str] = {}
        for peer in sorted(peers, key=lambda p: p.name):
            by_role.setdefault(str(peer.role), peer.name)
        if not by_role:
            return await super().answer(msg, ctx)
        plan_model = _plan_model(sorted(by_role))
        try:
            planned = await self.complete(
                f"Available roles: {', '.join(sorted(by_role))}.\nTask: {msg.text}",
                ctx,
                response_model=plan_model,
                tools=(),
            )
        except StructuredOutputError as exc:
            if self.strict_planning:
                raise
            return await self._unplanned(msg, ctx, exc, by_role)
        steps: list[Any] = planned.parsed.steps
        remaining = ctx.remaining()
        timeout = None if remaining is None else remaining * self.step_share
        replies = await asyncio.gather(
            *(
                ctx.ask(
                    by_role[step.role],
                    Prompt(text=step.instruction, context=msg.context),
                    timeout=timeout,
                    expect=Completion,
                )
                for step in steps
            ),
            return_exceptions=True,
        )
        results: list[str] = []
        for step, reply in zip(steps, replies, strict=True):
            if isinstance(reply, Completion):
                results.append(f"{step.role} ({by_role[step.role]}): {reply.text}")
            elif isinstance(reply, MeshError):
                results.append(f"{step.role} failed: {reply.message}")
            else:
                raise reply
        final = await self.complete(
            f"Task: {msg.text}\nResults of the plan's steps:\n"
            + "\n".join(f"- {r}" for r in results)
            + "\nAssemble them into one answer.",
            ctx,
            tools=(),
        )
        done = completion(final)
        done.usage.calls += planned.usage.calls
        done.usage.input_tokens += planned.usage.input_tokens
        done.usage.output_tokens += planned.usage.output_tokens
        done.usage.cost_usd += planned.usage.cost_usd
        return done

    async def _unplanned(
        self, msg: Prompt, ctx: Context, error: StructuredOutputError, by_role: dict[str, str]
    ) -> Completion:
        """Answer without a plan: by the peer of the role the unusable reply names first
        (the model's choice, though not in the schema), else by the orchestrator itself."""
        why = redact(describe(error))[:500]  # redacted before cut: no half of a key stays
        role = _first_named(error.raw, by_role)
        ctx.log.warning("planning failed; answering without a plan", error=why,
                        role=role, peer=by_role.get(role or ""))  # fmt: skip
        add_event("orchestrator.planning_failed", error=why, role=role or "")
        if role is not None:
            try:
                reply = await ctx.ask(
                    by_role[role], Prompt(text=msg.text, context=msg.context), expect=Completion
                )
            except MeshError as exc:
                if exc.conversation_wide:
                    raise
                ctx.log.warning("the fallback peer failed; answering itself", error=describe(exc))
            else:
                # Its usage is its own ledger's, as for the steps of a plan.
                return reply.model_copy(update={"usage": CallUsage(), "planning_failed": why})
        done = await super().answer(msg, ctx)
        return done.model_copy(update={"planning_failed": why})


def _plan_model(roles: list[str]) -> type[BaseModel]:
    role_type: Any = Literal[tuple(roles)]
    step: type[BaseModel] = create_model("PlanStep", role=(role_type, ...), instruction=(str, ...))
    plan: type[BaseModel] = create_model(
        "Plan",
        steps=(list[step], Field(min_length=1, max_length=8)),
    )
    return plan


def _first_named(text: str, roles: Iterable[str]) -> str | None:
    """Return the role named first in `text` (as a whole word), if any."""
    found = [(m.start(), r) for r in roles if (m := re.search(rf"\b{re.escape(r)}\b", text))]
    return min(found)[1] if found else None


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def _documents(corpus: Sequence[str]) -> list[str]:
    texts: list[str] = []
    for item in corpus:
        path = Path(item)
        if len(item) < 4096 and "\n" not in item and path.exists():
            files = sorted(path.rglob("*")) if path.is_dir() else [path]
            texts += [
                f.read_text(encoding="utf-8")
                for f in files
                if f.is_file() and f.suffix in (".txt", ".md")
            ]
        else:
            texts.append(item)
    return texts
