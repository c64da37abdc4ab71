"""Messages and agents shared by the integration tests (importable by Ray workers)."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import msgpack

from actors import Completion, LLMAgent, Prompt
from mesh import Agent, Context, MeshError, handler
from mesh._compat import is_ray_call
from protocols import Envelope, Kind, Message, Result, Task, decode, encode
from protocols.calls import open_call
from protocols.patterns import collect_reviews, pipeline
from protocols.patterns.messages import (
    Assemble,
    Critique,
    DraftShare,
    Judge,
    Position,
    Propose,
    Review,
    ReviewDraft,
    Verify,
)
from protocols.patterns.messages import Draft as PatternDraft
from protocols.patterns.messages import Reply as PatternReply
from protocols.patterns.messages import Request as PatternRequest
from protocols.patterns.messages import Verdict as PatternVerdict


class Ping(Message, type="test.ping/1"):
    text: str = ""


class Pong(Message, type="test.pong/1"):
    text: str


class Note(Message, type="test.note/1"):
    seq: int


class GetNotes(Message, type="test.get_notes/1"):
    pass


class Notes(Message, type="test.notes/1"):
    seqs: list[int]
    senders: list[str]


class SendNotes(Message, type="test.send_notes/1"):
    peer: str
    count: int


class PingMany(Message, type="test.ping_many/1"):
    """Ask `peer` once, then `count` pings in one turn; reply with their answers."""

    peer: str
    count: int


class Pongs(Message, type="test.pongs/1"):
    texts: list[str]


class Sleep(Message, type="test.sleep/1"):
    seconds: float


class Boom(Message, type="test.boom/1"):
    text: str


class Relay(Message, type="test.relay/1"):
    """Ask each agent in `route` in turn; the last one answers with what it saw."""

    route: list[str]


class Seen(Message, type="test.seen/1"):
    hops: list[dict[str, str | int | None]]


class SlowRelay(Message, type="test.slow_relay/1"):
    """Relay along `route`; the last agent sleeps `seconds` before answering."""

    route: list[str]
    seconds: float


class FindPeers(Message, type="test.find_peers/1"):
    role: str | None = None
    capability: str | None = None


class PeerNames(Message, type="test.peer_names/1"):
    names: list[str]


class Recurse(Message, type="test.recurse/1"):
    pass


class Gather(Message, type="test.gather/1"):
    """Wait until `count` of these are being handled at once."""

    count: int


class Unhandled(Message, type="test.unhandled/1"):
    pass


class Blob(Message, type="test.blob/1"):
    data: bytes


class Echo(Agent):
    """Answers pings, records notes in arrival order, and fails on request."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.notes: list[int] = []
        self.senders: list[str] = []

    @handler
    async def on_ping(self, msg: Ping, ctx: Context) -> Pong:
        return Pong(text=f"{self.prefix}{msg.text}")

    @handler
    async def on_note(self, msg: Note, ctx: Context) -> None:
        self.notes.append(msg.seq)
        self.senders.append(ctx.sender)

    @handler
    async def on_get_notes(self, msg: GetNotes, ctx: Context) -> Notes:
        return Notes(seqs=self.notes, senders=sorted(set(self.senders)))

    @handler
    async def on_send_notes(self, msg: SendNotes, ctx: Context) -> None:
        # Concurrent tells from one sender: order must still hold per pair.
        await asyncio.gather(*(ctx.tell(msg.peer, Note(seq=i)) for i in range(msg.count)))

    @handler
    async def on_sleep(self, msg: Sleep, ctx: Context) -> Pong:
        await asyncio.sleep(msg.seconds)
        return Pong(text="slept")

    @handler
    async def on_boom(self, msg: Boom, ctx: Context) -> Pong:
        raise ValueError(f"boom: {msg.text}")

    @handler
    async def on_ping_many(self, msg: PingMany, ctx: Context) -> Pongs:
        # The first ask goes alone (a `request` call) and leaves the link and the
        # message classes known, so the rest leave in this turn, in one batch call.
        await ctx.ask(msg.peer, Ping(text="first"), expect=Pong)
        asks = (ctx.ask(msg.peer, Ping(text=str(i)), expect=Pong) for i in range(msg.count))
        return Pongs(texts=[pong.text for pong in await asyncio.gather(*asks)])

    @handler
    async def on_blob(self, msg: Blob, ctx: Context) -> Blob:
        return Blob(data=msg.data * 2)

    @handler
    async def on_find_peers(self, msg: FindPeers, ctx: Context) -> PeerNames:
        found = await ctx.peers(role=msg.role, capability=msg.capability)
        return PeerNames(names=sorted(p.name for p in found))


class Relayer(Agent):
    """Passes a Relay along its route and reports each hop's trace context."""

    @handler
    async def on_relay(self, msg: Relay, ctx: Context) -> Seen:
        mine: dict[str, str | int | None] = {
            "agent": ctx.agent,
            "sender": ctx.sender,
            "trace_id": ctx.trace_id,
            "span_id": ctx.span_id,
            "parent_span_id": ctx.parent_span_id,
            "hops": ctx.hops,
            "chain": ",".join(ctx.chain),
            "deadline": repr(ctx.deadline),
            "pid": os.getpid(),
        }
        if not msg.route:
            return Seen(hops=[mine])
        rest = await ctx.ask(msg.route[0], Relay(route=msg.route[1:]), expect=Seen)
        return Seen(hops=[mine, *rest.hops])

    @handler
    async def on_slow_relay(self, msg: SlowRelay, ctx: Context) -> Pong:
        if not msg.route:
            await asyncio.sleep(msg.seconds)
            return Pong(text="slept")
        return await ctx.ask(msg.route[0], msg.model_copy(update={"route": msg.route[1:]}),
                             expect=Pong)  # fmt: skip


class Recursive(Agent):
    """Asks itself forever: only the hop limit stops it."""

    concurrency = 128

    @handler
    async def on_recurse(self, msg: Recurse, ctx: Context) -> Pong:
        await ctx.ask(ctx.agent, Recurse())
        return Pong(text="unreachable")


class Gatherer(Agent):
    """Replies only once `count` Gather messages are in its handlers together."""

    def __init__(self) -> None:
        self.inside = 0
        self.full = asyncio.Event()

    @handler
    async def on_gather(self, msg: Gather, ctx: Context) -> Pong:
        self.inside += 1
        if self.inside >= msg.count:
            self.full.set()
        await asyncio.wait_for(self.full.wait(), timeout=5)
        return Pong(text=str(self.inside))


class FailingStart(Agent):
    async def on_start(self) -> None:
        raise RuntimeError("no database")


class CrossAsk(Message, type="test.cross_ask/1"):
    """Wait `delay` seconds inside the handler, then ask `peer` a Ping."""

    peer: str
    delay: float


class Block(Message, type="test.block/1"):
    """Block the event loop for `seconds` (a synchronous sleep: a badly written handler)."""

    seconds: float


class CallPeer(Message, type="test.call_peer/1"):
    """Ask `peer` to sleep `seconds`; report how the ask ended."""

    peer: str
    seconds: float


class Outcome(Message, type="test.outcome/1"):
    error_type: str
    error_agent: str | None
    seconds: float


class Crosser(Agent):
    """Holds a conversation while asking a peer: two of them can deadlock across traces."""

    @handler
    async def on_cross_ask(self, msg: CrossAsk, ctx: Context) -> Pong:
        await asyncio.sleep(msg.delay)
        return await ctx.ask(msg.peer, Ping(text=ctx.agent), expect=Pong)

    @handler
    async def on_ping(self, msg: Ping, ctx: Context) -> Pong:
        return Pong(text=f"{ctx.agent} saw {msg.text}")

    @handler
    async def on_block(self, msg: Block, ctx: Context) -> Pong:
        time.sleep(msg.seconds)  # noqa: ASYNC251 -- the fault under test
        return Pong(text="unblocked")

    @handler
    async def on_call_peer(self, msg: CallPeer, ctx: Context) -> Outcome:
        start = time.monotonic()
        try:
            await ctx.ask(msg.peer, Sleep(seconds=msg.seconds))
        except MeshError as exc:
            return Outcome(error_type=type(exc).__name__, error_agent=exc.agent,
                           seconds=time.monotonic() - start)  # fmt: skip
        return Outcome(error_type="", error_agent=None, seconds=time.monotonic() - start)


class Die(Message, type="test.die/1"):
    """End the agent's process at once, as an OOM kill would."""


class Quit(Message, type="test.quit/1"):
    """Stop the agent normally."""


class Member(Agent):
    """A team member that can crash in every way a supervisor must notice."""

    crash_on_error = True

    def __init__(self, record: str | None = None, started: str | None = None) -> None:
        self.record = record  # a file each member appends its name to when it stops
        self.started = started  # and this one, when it starts

    async def on_start(self) -> None:
        if self.started:
            with open(self.started, "a", encoding="utf-8") as out:  # noqa: ASYNC230
                out.write(f"{self.name}\n")

    @handler
    async def on_ping(self, msg: Ping, ctx: Context) -> Pong:
        return Pong(text=f"{ctx.agent}:{os.getpid()}")

    @handler
    async def on_boom(self, msg: Boom, ctx: Context) -> Pong:
        raise RuntimeError(f"crash: {msg.text}")

    @handler
    async def on_die(self, msg: Die, ctx: Context) -> None:
        os._exit(1)

    @handler
    async def on_quit(self, msg: Quit, ctx: Context) -> None:
        self.stop()

    @handler
    async def on_sleep(self, msg: Sleep, ctx: Context) -> Pong:
        await asyncio.sleep(msg.seconds)
        return Pong(text="slept")

    @handler
    async def on_block(self, msg: Block, ctx: Context) -> Pong:
        time.sleep(msg.seconds)  # noqa: ASYNC251 -- the fault under test
        return Pong(text="unblocked")

    async def on_stop(self) -> None:
        if self.record:
            with open(self.record, "a", encoding="utf-8") as out:  # noqa: ASYNC230
                out.write(f"{self.name}\n")


class Delegate(Message, type="test.delegate/1"):
    """Ask `peer` a prompt, then answer with the agent's own model."""

    peer: str
    text: str


class Delegator(LLMAgent):
    """Spends on a peer first, then on its own model: both draw on one allowance."""

    @handler
    async def on_delegate(self, msg: Delegate, ctx: Context) -> Completion:
        await ctx.ask(msg.peer, Prompt(text=msg.text), expect=Completion)
        return await self.answer(Prompt(text=msg.text), ctx)


class SlowLead(Agent):
    """Takes a team task and works on it for a long time; notes its start and stop."""

    def __init__(self, record: str) -> None:
        self.record = record

    def _note(self, line: str) -> None:
        with open(self.record, "a", encoding="utf-8") as out:
            out.write(f"{line}\n")

    @handler
    async def on_task(self, msg: Task, ctx: Context) -> Result:
        self._note(f"working {self.name}")
        await asyncio.sleep(120)
        return Result(text="too late")

    async def on_stop(self) -> None:
        self._note(f"stopped {self.name}")


class Stage(Agent):
    """A pipeline stage: appends its name to the text it is given."""

    @handler
    async def on_request(self, msg: PatternRequest, ctx: Context) -> PatternReply:
        return PatternReply(text=f"{msg.text}>{ctx.agent}")


class RunPipeline(Message, type="test.run_pipeline/1"):
    stages: list[str]
    text: str


class Piper(Agent):
    """Runs the pipeline pattern from inside a handler, over its own context."""

    @handler
    async def on_run(self, msg: RunPipeline, ctx: Context) -> PatternReply:
        done = await pipeline(ctx, msg.stages, PatternRequest(text=msg.text), timeout=10)
        return PatternReply(text=done.output.text, data={"trace": done.trace_id})


class News(Message, type="test.news/1"):
    headline: str


class Publish(Message, type="test.publish/1"):
    topic: str
    headline: str


class Subscriber(Agent):
    """Keeps the news it hears on its topics; publishes on request."""

    topics = ("news",)

    def __init__(self) -> None:
        self.heard: list[str] = []

    @handler
    async def on_news(self, msg: News, ctx: Context) -> None:
        self.heard.append(msg.headline)

    @handler
    async def on_publish(self, msg: Publish, ctx: Context) -> None:
        await ctx.publish(msg.topic, News(headline=msg.headline))

    @handler
    async def on_get_notes(self, msg: GetNotes, ctx: Context) -> Notes:
        return Notes(seqs=[], senders=self.heard)


class Guarded(Crosser):
    """A Crosser that also sleeps on request: both ends of the access-control tests."""

    @handler
    async def on_sleep(self, msg: Sleep, ctx: Context) -> Pong:
        await asyncio.sleep(msg.seconds)
        return Pong(text="slept")


class Scripted(Agent):
    """Takes part in every pattern with canned answers; fails, stalls or rejects on request.

    Args:
        answer: Its answer to requests and its debate position (its name by default).
        fail: Raise in every handler.
        delay: Seconds to wait in every handler first.
        pass_after: As a verifier: reject this many answers before passing any.
        reject: As a verifier: reject answers containing this text, always.
    """

    concurrency = 8

    def __init__(
        self,
        answer: str | None = None,
        *,
        fail: bool = False,
        delay: float = 0.0,
        pass_after: int = 0,
        reject: str | None = None,
    ) -> None:
        self.answer = answer
        self.fail = fail
        self.delay = delay
        self.pass_after = pass_after
        self.reject = reject
        self.checked = 0

    async def _act(self, ctx: Context) -> str:
        await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError(f"{ctx.agent} fails on purpose")
        return self.answer or ctx.agent

    @handler
    async def on_request(self, msg: PatternRequest, ctx: Context) -> PatternReply:
        mine = await self._act(ctx)
        inputs = msg.data.get("inputs", {})
        text = f"{mine}({msg.text.splitlines()[0]}" + "".join(f"+{k}" for k in sorted(inputs)) + ")"
        return PatternReply(text=text, data={"trace": ctx.trace_id, "feedback": msg.feedback})

    @handler
    async def on_position(self, msg: Propose | Critique, ctx: Context) -> Position:
        return Position(answer=await self._act(ctx), reasoning=ctx.trace_id)

    @handler
    async def on_judge(self, msg: Judge, ctx: Context) -> PatternVerdict:
        await self._act(ctx)
        winner = sorted(msg.positions)[-1]
        return PatternVerdict(passed=True, winner=winner, feedback=ctx.trace_id)

    @handler
    async def on_verify(self, msg: Verify, ctx: Context) -> PatternVerdict:
        await self._act(ctx)
        self.checked += 1
        if self.reject is not None and self.reject in msg.answer:
            return PatternVerdict(passed=False, feedback=f"{self.reject!r} is not allowed")
        if self.checked <= self.pass_after:
            return PatternVerdict(passed=False, feedback=f"not yet (check {self.checked})")
        return PatternVerdict(passed=True)

    @handler
    async def on_draft_share(self, msg: DraftShare, ctx: Context) -> PatternDraft:
        mine = await self._act(ctx)
        return await collect_reviews(ctx, msg, f"{mine} drafts share {msg.share}")

    @handler
    async def on_review_draft(self, msg: ReviewDraft, ctx: Context) -> Review:
        await self._act(ctx)
        return Review(reviewer=ctx.agent, author=msg.author, comments=ctx.trace_id)

    @handler
    async def on_assemble(self, msg: Assemble, ctx: Context) -> PatternReply:
        await self._act(ctx)
        text = " + ".join(d.text for d in msg.drafts)
        return PatternReply(text=f"assembled by {ctx.agent}: {text}", data={"trace": ctx.trace_id})


class BlockAfterNextCall(Message, type="test.block_after_next_call/1"):
    """Block the loop for `seconds` just as the next Ray call to this host ends."""

    seconds: float


class CallEndBlocker(Agent):
    """Blocks its loop in the turn between a Ray call's end and its result being handed
    back: the moment at which Ray 2.60's dispatch of all calls to the actor can freeze."""

    @handler
    async def on_block_after_next_call(self, msg: BlockAfterNextCall, ctx: Context) -> None:
        seen = {task for task in asyncio.all_tasks() if is_ray_call(task.get_coro())}
        self._watching = asyncio.create_task(self._block_when_one_ends(seen, msg.seconds))

    @staticmethod
    async def _block_when_one_ends(pending: set[asyncio.Task[object]], seconds: float) -> None:
        while True:
            await asyncio.sleep(0)  # a turn of the loop: look at every step's outcome
            pending |= {task for task in asyncio.all_tasks() if is_ray_call(task.get_coro())}
            if any(task.done() for task in pending):
                time.sleep(seconds)  # noqa: ASYNC251 -- the fault under test
                return


class FactorySettingBlocker(CallEndBlocker):
    """A `CallEndBlocker` that sets a task factory of its own in on_start (as a library
    for eager tasks or tracing might): the host must chain it, not lose the settling."""

    async def on_start(self) -> None:
        def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
            return asyncio.Task(coro, loop=loop, **kwargs)

        asyncio.get_running_loop().set_task_factory(factory)


class UnknownTagReplier:
    """A stand-in peer (a plain actor, no host) that answers every ask with a reply of a
    type tag that no participant of the mesh ever defined or published."""

    TAG = "nobody.defined/1"

    async def request(self, call: bytes) -> bytes:
        _link_id, _seq, frame = open_call(call)
        ask = decode(frame)
        return encode(Envelope(kind=Kind.REPLY, type=self.TAG, sender=ask.recipient,
                               recipient=ask.sender, payload=msgpack.packb({"text": "?"}),
                               trace_id=ask.trace_id, span_id=ask.span_id,
                               correlation_id=ask.id, deadline=ask.deadline,
                               to_incarnation=ask.from_incarnation,
                               from_incarnation=ask.to_incarnation))  # fmt: skip

    async def ping(self) -> str:
        return "alive"

    async def watch(self) -> None:
        await asyncio.Event().wait()  # it never stops on its own
