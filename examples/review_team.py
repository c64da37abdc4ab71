"""The agents of the review team in ``review_team.yaml`` (scripted: no model, no API key).

The lead takes the task, asks the researcher for facts and the writers' team for a text;
in that team the writer has the critic review its draft, and tells the archivist to file
the result. Run it with ``raymesh run examples/review_team.yaml --task "..."``.
"""

from __future__ import annotations

from mesh import Agent, Context, handler
from protocols import Message, Result, Task


class Research(Message, type="review.research/1"):
    topic: str


class Facts(Message, type="review.facts/1"):
    items: list[str]


class Draft(Message, type="review.draft/1"):
    topic: str
    facts: list[str]


class Review(Message, type="review.review/1"):
    text: str


class Verdict(Message, type="review.verdict/1"):
    approved: bool
    notes: str


class Written(Message, type="review.written/1"):
    text: str
    verdict: str


class File(Message, type="review.file/1"):
    topic: str
    text: str


class Lead(Agent):
    """Plans the work: facts first, then a reviewed text."""

    @handler
    async def on_task(self, msg: Task, ctx: Context) -> Result:
        self.log.info("task received", topic=msg.text)
        facts = await ctx.ask("researcher", Research(topic=msg.text), expect=Facts)
        written = await ctx.ask("writer", Draft(topic=msg.text, facts=facts.items), expect=Written)
        return Result(text=written.text, data={"verdict": written.verdict, "facts": facts.items})


class Researcher(Agent):
    """Answers with facts about the topic."""

    @handler
    async def on_research(self, msg: Research, ctx: Context) -> Facts:
        return Facts(
            items=[
                f"{msg.topic}: each agent is a Ray actor",
                f"{msg.topic}: peers talk directly, with no broker on the path",
                f"{msg.topic}: every ask has a deadline",
            ]
        )


class Writer(Agent):
    """Writes a text from facts, has it reviewed, and files it."""

    @handler
    async def on_draft(self, msg: Draft, ctx: Context) -> Written:
        text = f"On {msg.topic}: " + "; ".join(f.split(": ", 1)[1] for f in msg.facts) + "."
        verdict = await ctx.ask("critic", Review(text=text), expect=Verdict)
        await ctx.tell("archivist", File(topic=msg.topic, text=text))
        return Written(text=text, verdict=verdict.notes)


class Critic(Agent):
    """Approves texts that are short enough."""

    def __init__(self, max_chars: int = 400) -> None:
        self.max_chars = max_chars

    @handler
    async def on_review(self, msg: Review, ctx: Context) -> Verdict:
        approved = len(msg.text) <= self.max_chars
        return Verdict(approved=approved, notes="approved" if approved else "too long")


class Archivist(Agent):
    """Keeps what was filed."""

    def __init__(self) -> None:
        self.filed: list[str] = []

    @handler
    async def on_file(self, msg: File, ctx: Context) -> None:
        self.filed.append(msg.topic)
