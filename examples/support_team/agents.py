"""The support team's agents: a coordinator and its knowledge-base, data, policy and
sentiment agents, with a handoff to a person through the approval desk.

A task names its customer first (``"alice: where is order 1002?"``). The coordinator
keeps each customer's earlier exchanges apart and gives an agent only what belongs to the
customer it is serving: the data agent's order lookup is bound to that customer in SQL.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel

from actors import Completion, LLMAgent, Prompt, Retriever, Tool
from mesh import Context, MeshError, handler
from mesh.control import RayApprovalGate
from protocols import Message, Result, Task
from protocols.patterns import OnTimeout, checkpoint
from support_team.orders import Order, OrderBook
from support_team.policy import Ruling, rule

HERE = Path(__file__).parent
_CUSTOMER = re.compile(r"^\s*([a-z][a-z0-9_-]{0,31})\s*:\s*(.+)$", re.I | re.S)
_ORDER = re.compile(r"\border\s*#?\s*(\d{3,})", re.I)
_NEGATIVE = re.compile(
    r"\b(angry|furious|terrible|awful|worst|unacceptable|ridiculous|disgusting|never again|"
    r"scam|lawyer|hate)\b",
    re.I,
)


class SupportTaskError(MeshError):
    """A support task that does not say which customer it is for."""


class OrderQuery(Message, type="support.order_query/1"):
    """Find the customer's order named in `text`."""

    customer: str
    text: str


class OrderFound(Message, type="support.order_found/1"):
    """The order, or None when the customer has no such order."""

    order: Order | None
    answer: str


class Feeling(Message, type="support.feeling/1"):
    """How does the customer sound?"""

    text: str


class Sentiment(Message, type="support.sentiment/1"):
    """The sentiment agent's reading."""

    label: Literal["negative", "neutral", "positive"]
    cues: list[str]


class PolicyCheck(Message, type="support.policy_check/1"):
    """Is this request within policy, for this order?"""

    text: str
    order: Order | None


class PolicyRuling(Message, type="support.policy_ruling/1"):
    """The rules' ruling, with the model's judgement where the rules leave one."""

    ruling: Ruling


class KnowledgeBase(Retriever):
    """Answers from the shipped FAQ (``faq.json``): one passage per entry, FTS5-ranked."""

    def __init__(self, *args: Any, faq: str = str(HERE / "faq.json"), **kwargs: Any) -> None:
        entries = json.loads(Path(faq).read_text(encoding="utf-8"))
        super().__init__(*args, corpus=[e["text"] for e in entries], top_k=2, **kwargs)


class DataAgent(LLMAgent):
    """Looks orders up through a typed tool, bound to the customer being served."""

    default_system_prompt: ClassVar[str] = (
        "You look up orders with the lookup_order tool and report what it returns."
    )

    def __init__(self, *args: Any, db_path: str = "support-orders.db", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.db_path = db_path

    async def on_start(self) -> None:
        """Build the clients and create the order database (seeded when new)."""
        await super().on_start()
        self.book = OrderBook(self.db_path)

    @handler
    async def on_order_query(self, msg: OrderQuery, ctx: Context) -> OrderFound:
        """Let the model call ``lookup_order``; the customer is fixed here, not by the model."""
        found: list[Order] = []

        def lookup_order(order_id: int) -> str:
            """Look up one of the current customer's orders by its number."""
            order = self.book.lookup(msg.customer, order_id)
            if order is None:
                return f"no order {order_id} for this customer"
            found.append(order)
            return order.model_dump_json()

        done = await self.complete(f"Use lookup_order for: {msg.text}", ctx,
                                   tools=[Tool(lookup_order)])  # fmt: skip
        return OrderFound(order=found[-1] if found else None, answer=done.text)


class _Goodwill(BaseModel):
    grant_refund: bool
    reason: str


class PolicyAgent(LLMAgent):
    """Applies the refund rules in code; the model judges only the cases they leave open."""

    default_system_prompt: ClassVar[str] = (
        "You judge goodwill refunds just past the refund window: grant one when the "
        "customer's case is reasonable."
    )

    @handler
    async def on_policy_check(self, msg: PolicyCheck, ctx: Context) -> PolicyRuling:
        """Rule on the request; ask the model when the rules leave it open."""
        ruling = rule(msg.text, msg.order)
        if ruling.needs_judgement:
            order = msg.order.model_dump_json() if msg.order else "none"
            done = await self.complete(f"Request: {msg.text}\nOrder: {order}", ctx,
                                       response_model=_Goodwill, tools=())  # fmt: skip
            judged: _Goodwill = done.parsed
            ruling = ruling.model_copy(update={
                "eligible": judged.grant_refund,
                "reasons": [*ruling.reasons, f"model ({done.model}): {judged.reason}"],
            })  # fmt: skip
        return PolicyRuling(ruling=ruling)


class _Reading(BaseModel):
    label: Literal["negative", "neutral", "positive"]


class SentimentAgent(LLMAgent):
    """Reads the customer's mood: strong cues in code, the model's label for the rest."""

    default_system_prompt: ClassVar[str] = "Label the customer's sentiment."

    @handler
    async def on_feeling(self, msg: Feeling, ctx: Context) -> Sentiment:
        """Negative on any strong cue; otherwise the model's label, never negative alone."""
        cues = sorted({m.lower() for m in _NEGATIVE.findall(msg.text)})
        if cues:
            return Sentiment(label="negative", cues=cues)
        done = await self.complete(msg.text, ctx, response_model=_Reading, tools=())
        label = done.parsed.label
        # One model word is not enough to take a person's time: it needs a cue too.
        return Sentiment(label="neutral" if label == "negative" else label, cues=[])


class Coordinator(LLMAgent):
    """Takes a customer's message, consults the specialists, answers or hands off.

    Each customer's exchanges are kept in this agent, apart from every other customer's,
    and only theirs come with their next message; they last as long as the agent (a
    restart forgets them: put them in a `SQLiteMemory` file to keep them longer).

    Args:
        wait_s: Seconds a handoff waits for a person.
        on_timeout: What a handoff nobody takes does: ``reject`` (fail the task),
            ``approve`` (send the draft) or ``escalate``.
        history: Earlier exchanges of the same customer given with each answer.
    """

    default_system_prompt: ClassVar[str] = (
        "You are a customer support agent. Answer the customer kindly and exactly, from "
        "the facts given; never promise what the policy does not allow."
    )
    concurrency = 4

    def __init__(self, *args: Any, wait_s: float = 300.0, on_timeout: str = "reject",
                 history: int = 4, **kwargs: Any) -> None:  # fmt: skip
        super().__init__(*args, **kwargs)
        self.wait_s = wait_s
        self.on_timeout = OnTimeout(on_timeout)
        self.history = history
        self.memory: dict[str, list[str]] = {}

    @handler
    async def on_task(self, msg: Task, ctx: Context) -> Result:
        """Serve one message of one customer."""
        parsed = _CUSTOMER.match(msg.text)
        if parsed is None:
            raise SupportTaskError(
                "a support task starts with the customer's id: 'alice: where is order 1002?'",
                hint="name the customer first, then a colon",
            )
        customer, text = parsed.group(1).lower(), parsed.group(2).strip()
        named = _ORDER.search(text)
        found, feeling, kb = await asyncio.gather(
            ctx.ask("data", OrderQuery(customer=customer, text=text), expect=OrderFound)
            if named else _none(),
            ctx.ask("sentiment", Feeling(text=text), expect=Sentiment),
            ctx.ask("knowledge", Prompt(text=text), expect=Completion),
        )  # fmt: skip
        order = found.order if found is not None else None
        ruling = (await ctx.ask("policy", PolicyCheck(text=text, order=order),
                                expect=PolicyRuling)).ruling  # fmt: skip
        past = self.memory.setdefault(customer, [])
        facts = [f"FAQ: {kb.text}", f"Policy: {'; '.join(ruling.reasons)}",
                 f"Order: {order.model_dump_json() if order else 'none found'}",
                 *(f"Earlier: {turn}" for turn in past[-self.history:])]  # fmt: skip
        draft = (await self.complete("Facts:\n" + "\n".join(facts) + f"\nCustomer: {text}",
                                     ctx, tools=())).text  # fmt: skip
        reply, handoff = draft, None
        why = [*(["the customer sounds upset"] if feeling.label == "negative" else []),
               *(ruling.reasons if ruling.handoff else [])]  # fmt: skip
        if why:
            decision = await checkpoint(
                RayApprovalGate.here(), draft, timeout=self.wait_s, on_timeout=self.on_timeout,
                trace_id=ctx.trace_id, data={"customer": customer, "why": why},
            )  # fmt: skip
            reply = decision.edited or draft
            handoff = {"why": why, "decision": decision.kind.value, "by": decision.by}
        past.append(f"{text} -> {reply}")
        return Result(text=reply, data={
            "customer": customer, "order": order.model_dump(mode="json") if order else None,
            "sentiment": feeling.label, "policy": ruling.model_dump(), "handoff": handoff,
            "remembered": len(past) - 1,
        })  # fmt: skip


async def _none() -> None:
    return None
