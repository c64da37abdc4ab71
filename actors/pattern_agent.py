"""`PatternAgent`: an LLM agent that takes part in every conversation pattern.

It answers each ``pattern.*`` message (``protocols.patterns.messages``) by prompting its
model for that duty (answer, propose, critique, judge, verify, draft, review, assemble),
so one class can play any part of any pattern in a team file, on the offline model by
default and on a real one by changing its ``model``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, create_model

from actors.agent import LLMAgent
from mesh import Context, handler
from protocols.patterns import (
    Assemble,
    Critique,
    Draft,
    DraftShare,
    Judge,
    Position,
    Propose,
    Reply,
    Request,
    Review,
    ReviewDraft,
    Verdict,
    Verify,
    collect_reviews,
)

__all__ = ["PatternAgent"]

_FAIL = re.compile(r"VERDICT:\s*FAIL", re.I)


class PatternAgent(LLMAgent):
    """Plays any part of a conversation pattern with its model.

    Args:
        must_mention: As a verifier, reject answers that do not mention each of these
            words (checked in code, before the model's verdict), with that as feedback.
        args, kwargs: As `LLMAgent`.
    """

    #: A mesh-review peer reviews the others' drafts while it waits for reviews of its own:
    #: handling one message at a time, the peers would deadlock on each other.
    concurrency = 8
    verify_prompt: ClassVar[str] = (
        "You are a strict verifier. Start with 'VERDICT: PASS' or 'VERDICT: FAIL', "
        "then give one reason a line."
    )
    judge_prompt: ClassVar[str] = (
        "You are the judge of a debate. Pick the debater whose answer is best supported."
    )
    review_prompt: ClassVar[str] = (
        "You review a peer's draft: give a short critique and one concrete suggestion."
    )

    def __init__(self, *args: Any, must_mention: Sequence[str] = (), **kwargs: Any) -> None:
        """Configure as `LLMAgent`, plus the words a verified answer must mention."""
        super().__init__(*args, **kwargs)
        self.must_mention = list(must_mention)

    async def _say(self, prompt: str, ctx: Context, *, system: str | None = None) -> str:
        return (await self.complete(prompt, ctx, system=system, tools=())).text

    @handler
    async def on_request(self, msg: Request, ctx: Context) -> Reply:
        """Answer a unit of work, with earlier feedback and dependencies' results first."""
        parts = []
        if msg.feedback:
            parts.append("Feedback on earlier attempts: " + "; ".join(msg.feedback))
        for name, result in msg.data.get("inputs", {}).items():
            parts.append(f"Result of {name}: {result['text']}")
        parts.append(msg.text)
        text = await self._say("\n".join(parts), ctx)
        return Reply(text=text, data={"model": self.model_id})

    @handler
    async def on_propose(self, msg: Propose, ctx: Context) -> Position:
        """Give an opening position."""
        return Position(answer=await self._say(msg.question, ctx))

    @handler
    async def on_critique(self, msg: Critique, ctx: Context) -> Position:
        """Criticise the others' positions and give a refined one."""
        others = "\n".join(f"- {name}: {answer}" for name, answer in msg.positions.items())
        prompt = (
            f"Question: {msg.question}\nThe other answers (round {msg.round}):\n{others}\n"
            "Point out their weaknesses, then give your refined answer."
        )
        return Position(answer=await self._say(prompt, ctx))

    @handler
    async def on_judge(self, msg: Judge, ctx: Context) -> Verdict:
        """Pick the winner among the final positions (the model may only name a debater)."""
        names = sorted(msg.positions)
        winner: Any = Literal[tuple(names)]
        choice: type[BaseModel] = create_model("Choice", winner=(winner, ...), reason=(str, ...))
        listed = "\n".join(f"- {name}: {msg.positions[name]}" for name in names)
        done = await self.complete(f"Question: {msg.question}\nAnswers:\n{listed}", ctx,
                                   system=self.judge_prompt, response_model=choice,
                                   tools=())  # fmt: skip
        return Verdict(passed=True, winner=done.parsed.winner, feedback=done.parsed.reason)

    @handler
    async def on_verify(self, msg: Verify, ctx: Context) -> Verdict:
        """Check an answer: the required words in code, then the model's verdict."""
        missing = [w for w in self.must_mention if w.casefold() not in msg.answer.casefold()]
        if missing:
            return Verdict(passed=False, feedback=f"the answer must mention {', '.join(missing)}")
        text = await self._say(f"Task: {msg.task}\nAnswer to check:\n{msg.answer}", ctx,
                               system=self.verify_prompt)  # fmt: skip
        return Verdict(passed=_FAIL.search(text) is None, feedback=text)

    @handler
    async def on_draft_share(self, msg: DraftShare, ctx: Context) -> Draft:
        """Draft this agent's share, then have every other peer review it directly."""
        text = await self._say(
            f"Task: {msg.task}\nWrite part {msg.share + 1} of {len(msg.peers)} of the answer.", ctx
        )
        return await collect_reviews(ctx, msg, text)

    @handler
    async def on_review_draft(self, msg: ReviewDraft, ctx: Context) -> Review:
        """Review a peer's draft."""
        text = await self._say(f"Task: {msg.task}\nDraft by {msg.author}:\n{msg.text}", ctx,
                               system=self.review_prompt)  # fmt: skip
        return Review(reviewer=ctx.agent, author=msg.author, approved=_FAIL.search(text) is None,
                      comments=text)  # fmt: skip

    @handler
    async def on_assemble(self, msg: Assemble, ctx: Context) -> Reply:
        """Assemble drafts (and their reviews) into one answer."""
        drafts = "\n".join(
            f"- {d.author}: {d.text}"
            + "".join(f"\n  review by {r.reviewer}: {r.comments}" for r in d.reviews)
            for d in msg.drafts
        )
        text = await self._say(f"Task: {msg.task}\nAssemble one answer from:\n{drafts}", ctx)
        return Reply(text=text, data={"model": self.model_id})
