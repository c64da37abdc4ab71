"""The four stages of research -> analysis -> synthesis -> verification, and their lead.

The lead gathers sources, has them analysed, then runs verify-and-retry: the writer
drafts with citations ``[S1]``, the checker (another vendor's model) verifies that every
citation names a gathered source and that the model finds no fault, and a failed draft
goes back with the checker's feedback. The lead refuses to run when the writer and the
checker are one vendor's models (a verifier shares its writer's blind spots).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, ClassVar

from actors import Completion, PatternAgent, Prompt, Reasoner, SQLiteMemory, parse_model
from mesh import Agent, ConfigError, Context, handler
from protocols import Message, Result, Task
from protocols.patterns import Reply, Request, Verdict, Verify, verify_and_retry

HERE = Path(__file__).parent
_CITED = re.compile(r"\[(S\d+)\]")


class WhichModel(Message, type="research.which_model/1"):
    """Which model do you run on?"""


class ModelIs(Message, type="research.model_is/1"):
    """The model an agent runs on."""

    model: str


class Gather(Message, type="research.gather/1"):
    """Find the sources on a topic."""

    topic: str


class Source(Message, type="research.source/1"):
    """One gathered source."""

    id: str
    title: str
    url: str
    text: str


class Gathered(Message, type="research.gathered/1"):
    """The sources found, best first, and the researcher's notes on them."""

    sources: list[Source]
    notes: str


@handler
async def _which_model(self: Any, msg: WhichModel, ctx: Context) -> ModelIs:
    """Name this agent's primary model, so the lead can check who verifies whom."""
    return ModelIs(model=self.model_id)


def load_sources(path: Path = HERE / "sources.json") -> dict[str, Source]:
    """The shipped corpus, by source id."""
    return {s["id"]: Source(**s) for s in json.loads(path.read_text(encoding="utf-8"))}


class Researcher(PatternAgent):
    """Finds sources by full-text rank (SQLite FTS5) and notes what they say."""

    default_system_prompt: ClassVar[str] = "Summarise what the sources say on the topic."
    on_which_model = _which_model

    async def on_start(self) -> None:
        """Build the clients and index the corpus."""
        await super().on_start()
        self.sources = load_sources()
        self.index = SQLiteMemory(":memory:")
        for source in self.sources.values():
            await self.index.add(f"{source.title}. {source.text}", metadata={"id": source.id})

    @handler
    async def on_gather(self, msg: Gather, ctx: Context) -> Gathered:
        """Return up to three sources on the topic, with notes."""
        hits = await self.index.search(msg.topic, k=3)
        found = [self.sources[h.metadata["id"]] for h in hits]
        notes = await self._say(
            f"Topic: {msg.topic}\n" + "\n".join(f"[{s.id}] {s.text}" for s in found), ctx
        )
        return Gathered(sources=found, notes=notes)


class Analyst(Reasoner):
    """Reasons over the sources: what follows, and what is missing (the reasoner preset)."""

    on_which_model = _which_model


class Writer(PatternAgent):
    """Drafts the answer from the analysis and cites the sources it was given as [S#]."""

    on_which_model = _which_model

    @handler
    async def on_request(self, msg: Request, ctx: Context) -> Reply:
        """Draft with the model, then list the sources it drew on as citations."""
        reply = await super().on_request(msg, ctx)
        assert isinstance(reply, Reply)  # PatternAgent's handler answers with one
        sources = [Source(**s) for s in msg.data.get("sources", [])]
        cited = " ".join(f"[{s.id}]" for s in sources)
        listed = "\n".join(f"[{s.id}] {s.title}, {s.url}" for s in sources)
        return reply.model_copy(update={"text": f"{reply.text} {cited}\n\nSources:\n{listed}"})


class Checker(PatternAgent):
    """Verifies citations in code (each names a known source; at least one), then asks
    its model for a verdict; `must_mention` words are required as well."""

    on_which_model = _which_model

    @handler
    async def on_verify(self, msg: Verify, ctx: Context) -> Verdict:
        """Fail uncited or wrongly cited drafts before the model looks."""
        cited = set(_CITED.findall(msg.answer))
        unknown = sorted(cited - set(load_sources()))
        if not cited:
            return Verdict(passed=False, feedback="cite the sources as [S#]", model=self.model_id)
        if unknown:
            return Verdict(passed=False, model=self.model_id,
                           feedback=f"{', '.join(unknown)} is no gathered source")  # fmt: skip
        verdict = await super().on_verify(msg, ctx)
        assert isinstance(verdict, Verdict)  # PatternAgent's handler answers with one
        return verdict.model_copy(update={"model": self.model_id})


def vendor(model: str) -> str:
    """The provider of a model string (the offline stand-in counts as every vendor's)."""
    return parse_model(model).provider


def check_vendors(models: dict[str, str]) -> None:
    """Refuse a writer and a checker from one vendor; four stages on four models.

    Raises:
        ConfigError: Two stages share a model, or the writer and the checker a vendor.
    """
    if len(set(models.values())) < len(models):
        raise ConfigError(f"the stages must run on different models: {models}",
                          hint="give each stage its own model line")  # fmt: skip
    writer, checker = vendor(models["writer"]), vendor(models["checker"])
    if writer == checker != "offline":
        raise ConfigError(
            f"the writer and the checker are both {writer} models",
            hint="verify with another vendor's model (e.g. anthropic: for an openai: writer)",
        )


class ResearchLead(Agent):
    """Runs the four stages; the draft is verified, and retried on failure.

    Args:
        attempts: Drafts the writer may make before the task fails.
    """

    def __init__(self, attempts: int = 3) -> None:
        self.attempts = attempts

    @handler
    async def on_task(self, msg: Task, ctx: Context) -> Result:
        """Research, analyse, then write and verify."""
        models = {name: (await ctx.ask(name, WhichModel(), expect=ModelIs)).model
                  for name in ("researcher", "analyst", "writer", "checker")}  # fmt: skip
        check_vendors(models)
        gathered = await ctx.ask("researcher", Gather(topic=msg.text), expect=Gathered)
        analysis = await ctx.ask(
            "analyst",
            Prompt(text=f"Analyse, for: {msg.text}",
                   context=[gathered.notes, *(f"[{s.id}] {s.text}" for s in gathered.sources)]),
            expect=Completion,
        )  # fmt: skip
        request = Request(text=f"{msg.text}\nAnalysis: {analysis.text}",
                          data={"sources": [s.model_dump() for s in gathered.sources]})  # fmt: skip
        done = await verify_and_retry(ctx, "writer", "checker", request,
                                      max_attempts=self.attempts)  # fmt: skip
        data: dict[str, Any] = {
            "models": models,
            "sources": [s.id for s in gathered.sources],
            "attempts": [a.model_dump() for a in done.attempts],
        }
        return Result(text=done.answer.text, data=data)
