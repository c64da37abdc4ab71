"""A small review team on a local Ray: four agents, one conversation, one trace.

The lead takes a task from the edge, asks the researcher for facts and the writer for
a draft; the writer has the critic review its draft before answering, and tells the
archivist to file the result. No model and no API key: the agents are scripted, so the
run is the same everywhere. Run it with ``python examples/quickstart.py``.
"""

from __future__ import annotations

import asyncio
import sys

from rich.console import Console
from rich.table import Table

from mesh import Agent, Context, Mesh, handler
from protocols import Message, new_trace_id


class Task(Message, type="quickstart.task/1"):
    topic: str


class Report(Message, type="quickstart.report/1"):
    topic: str
    text: str
    verdict: str


class Research(Message, type="quickstart.research/1"):
    topic: str


class Facts(Message, type="quickstart.facts/1"):
    items: list[str]


class Draft(Message, type="quickstart.draft/1"):
    topic: str
    facts: list[str]


class Review(Message, type="quickstart.review/1"):
    text: str


class Verdict(Message, type="quickstart.verdict/1"):
    approved: bool
    notes: str


class Written(Message, type="quickstart.written/1"):
    text: str
    verdict: str


class File(Message, type="quickstart.file/1"):
    topic: str
    text: str


class Lead(Agent):
    @handler
    async def on_task(self, msg: Task, ctx: Context) -> Report:
        self.log.info("task received", topic=msg.topic)
        facts = await ctx.ask("researcher", Research(topic=msg.topic), expect=Facts)
        written = await ctx.ask("writer", Draft(topic=msg.topic, facts=facts.items), expect=Written)
        return Report(topic=msg.topic, text=written.text, verdict=written.verdict)


class Researcher(Agent):
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
    @handler
    async def on_draft(self, msg: Draft, ctx: Context) -> Written:
        text = f"On {msg.topic}: " + "; ".join(f.split(": ", 1)[1] for f in msg.facts) + "."
        verdict = await ctx.ask("critic", Review(text=text), expect=Verdict)
        await ctx.tell("archivist", File(topic=msg.topic, text=text))
        return Written(text=text, verdict=verdict.notes)


class Critic(Agent):
    @handler
    async def on_review(self, msg: Review, ctx: Context) -> Verdict:
        approved = len(msg.text) < 400
        return Verdict(approved=approved, notes="approved" if approved else "too long")


class Archivist(Agent):
    def __init__(self) -> None:
        self.filed: list[str] = []

    @handler
    async def on_file(self, msg: File, ctx: Context) -> None:
        self.filed.append(msg.topic)


TEAM: list[tuple[type[Agent], str, str]] = [
    (Lead, "lead", "orchestrator"),
    (Researcher, "researcher", "retriever"),
    (Writer, "writer", "writer"),
    (Critic, "critic", "verifier"),
    (Archivist, "archivist", "archivist"),
]


async def main(topic: str) -> None:
    console = Console()
    with console.status("starting a local Ray"):
        mesh = Mesh.local(log_to_driver=False)
    async with mesh:
        with console.status("spawning the team"):
            for agent_cls, name, role in TEAM:
                await mesh.spawn(agent_cls, name=name, role=role)
        trace_id = new_trace_id()  # minted at the edge; every message below carries it
        report = await mesh.ask("lead", Task(topic=topic), trace_id=trace_id, expect=Report)
        console.print(f"[bold]{report.text}[/bold]\ncritic: {report.verdict}")
        console.print(f"trace id: {trace_id}")
        table = Table(title="messages per agent")
        for column in ("agent", "role", "received", "handled", "sent", "failed"):
            table.add_column(column, justify="left" if column in ("agent", "role") else "right")
        for _cls, name, role in TEAM:
            stats = await mesh.stats(name)
            table.add_row(name, role, str(stats.received), str(stats.handled), str(stats.sent),
                          str(stats.failed))  # fmt: skip
        console.print(table)


if __name__ == "__main__":
    asyncio.run(main(" ".join(sys.argv[1:]) or "raymesh"))
