"""Message classes defined in a user's script decode wherever they arrive.

The README's tour runs as a real script (``python script.py``, classes in ``__main__``,
its own `Mesh.local`), with ``expect=`` and without it, and with replies of classes that
the asking agent never names, which it learns from the mesh's type catalog.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]

_SCRIPT = '''
import asyncio
import json

from mesh import Agent, Context, Mesh, handler
from protocols import Message


class Question(Message, type="qa.question/1"):
    text: str


class Answer(Message, type="qa.answer/1"):
    text: str


class Secret(Message, type="qa.secret/1"):
    text: str


class Note(Message, type="qa.note/1"):
    text: str


class Expert(Agent):
    @handler
    async def on_question(self, msg: Question, ctx: Context) -> Answer:
        return Answer(text=msg.text.upper())


class Front(Agent):
    @handler
    async def on_question(self, msg: Question, ctx: Context) -> Answer:
        experts = await ctx.peers(role="expert")
        return await ctx.ask(experts[0].name, msg, timeout=5, expect=Answer)


class LooseFront(Agent):
    """The tour's Front without `expect=`: the reply's class is its return annotation."""

    @handler
    async def on_question(self, msg: Question, ctx: Context) -> Answer:
        experts = await ctx.peers(role="expert")
        return await ctx.ask(experts[0].name, msg, timeout=5)


class Whisperer(Agent):
    """Replies with a class no annotation names: its host publishes it when it sends."""

    @handler
    async def on_question(self, msg: Question, ctx: Context) -> Message:
        return Secret(text=msg.text[::-1])


class Relay(Agent):
    """Forwards to a peer and returns whatever comes back, naming no reply class."""

    def __init__(self, peer: str) -> None:
        self.peer = peer

    @handler
    async def on_question(self, msg: Question, ctx: Context) -> Message | None:
        await ctx.tell(self.peer + "-notes", Note(text=msg.text))
        return await ctx.ask(self.peer, msg, timeout=5)


class Notebook(Agent):
    def __init__(self) -> None:
        self.notes: list[str] = []

    @handler
    async def on_note(self, msg: Note, ctx: Context) -> None:
        self.notes.append(msg.text)

    @handler
    async def on_question(self, msg: Question, ctx: Context) -> Answer:
        return Answer(text=",".join(self.notes))


async def case(found: dict, name: str, step) -> None:
    try:
        reply = await step()
        found[name] = [type(reply).__name__, reply.text]
    except Exception as exc:
        found[name] = [type(exc).__name__, str(exc)[:300]]


async def main() -> None:
    found: dict = {}
    async with Mesh.local(num_cpus=2) as mesh:
        await mesh.spawn(Expert, name="expert-1", role="expert", capabilities=["qa"])
        await mesh.spawn(Front, name="front")
        await mesh.spawn(LooseFront, name="loose-front")
        await mesh.spawn(Whisperer, name="whisperer")
        for peer in ("expert-1", "whisperer"):
            await mesh.spawn(Notebook, name=peer + "-notes")
            await mesh.spawn(Relay, name="relay-" + peer, peer=peer)
        q = Question(text="hi")
        await case(found, "tour", lambda: mesh.ask("front", q, timeout=10, expect=Answer))
        await case(found, "edge_without_expect", lambda: mesh.ask("front", q, timeout=10))
        await case(found, "front_without_expect", lambda: mesh.ask("loose-front", q, timeout=10))
        await case(found, "relay_of_answer", lambda: mesh.ask("relay-expert-1", q, timeout=10))
        await case(found, "relay_of_secret", lambda: mesh.ask("relay-whisperer", q, timeout=10))
        await case(found, "told_notes", lambda: mesh.ask("whisperer-notes", q, timeout=10))
    print(json.dumps(found))


asyncio.run(main())
'''


def test_the_readme_tour_runs_as_a_script_with_and_without_expect(tmp_path: Path) -> None:
    script = tmp_path / "tour.py"
    script.write_text(textwrap.dedent(_SCRIPT))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=240, check=False, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found == {
        "tour": ["Answer", "HI"],
        "edge_without_expect": ["Answer", "HI"],
        "front_without_expect": ["Answer", "HI"],
        "relay_of_answer": ["Answer", "HI"],
        "relay_of_secret": ["Secret", "ih"],
        "told_notes": ["Answer", "hi"],
    }
