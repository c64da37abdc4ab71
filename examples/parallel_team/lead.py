"""Parallel isolated workers: one task in eight parts, merged, approved before release.

The lead gives each worker one part and nothing else: each worker is its own actor with
its own model client and no shared history (`history_tokens` 0), so no part's context
leaks into another's. The synthesiser merges the parts; the merged answer waits at the
approval desk until a person approves, edits or rejects it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from actors import Completion, Prompt
from mesh import Agent, Context, MeshError, handler
from mesh.control import RayApprovalGate
from protocols import Result, Task
from protocols.errors import describe
from protocols.patterns import OnTimeout, checkpoint

#: The eight parts of a design task, one per worker.
PARTS = ("requirements", "interfaces", "data model", "failure modes", "security",
         "performance", "testing", "rollout")  # fmt: skip


class ParallelLead(Agent):
    """Splits the task across the workers, merges their parts, and holds it for approval.

    Args:
        workers: The workers' names, one per part (eight).
        synthesiser: The agent that merges the parts.
        wait_s: Seconds the merged answer waits for a person.
        on_timeout: ``reject``, ``approve`` or ``escalate`` when nobody decides.
    """

    concurrency = 2

    def __init__(self, workers: list[str], synthesiser: str = "synthesiser",
                 wait_s: float = 300.0, on_timeout: str = "reject") -> None:  # fmt: skip
        self.workers = list(workers)
        self.synthesiser = synthesiser
        self.wait_s = wait_s
        self.on_timeout = OnTimeout(on_timeout)

    @handler
    async def on_task(self, msg: Task, ctx: Context) -> Result:
        """Fan out the parts, merge them, then wait for a person's decision."""
        parts = dict(zip(self.workers, PARTS, strict=False))
        replies = await asyncio.gather(
            *(ctx.ask(worker, Prompt(text=f"Write the {part} section for: {msg.text}"),
                      expect=Completion) for worker, part in parts.items()),
            return_exceptions=True,
        )  # fmt: skip
        done: dict[str, str] = {}
        failed: dict[str, str] = {}
        for (worker, part), reply in zip(parts.items(), replies, strict=True):
            if isinstance(reply, Completion):
                done[part] = reply.text
            elif isinstance(reply, MeshError):
                failed[part] = f"{worker}: {describe(reply)}"
            else:
                raise reply
        merged = await ctx.ask(
            self.synthesiser,
            Prompt(text=f"Merge these sections into one design for: {msg.text}",
                   context=[f"{part}: {text}" for part, text in done.items()]),
            expect=Completion,
        )  # fmt: skip
        decision = await checkpoint(
            RayApprovalGate.here(), merged.text, timeout=self.wait_s,
            on_timeout=self.on_timeout, trace_id=ctx.trace_id,
            data={"parts": sorted(done), "failed": failed},
        )  # fmt: skip
        data: dict[str, Any] = {"parts": dict(parts), "failed": failed,
                                "decision": decision.kind.value, "by": decision.by}  # fmt: skip
        return Result(text=decision.edited or merged.text, data=data)
