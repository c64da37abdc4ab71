"""Hub and spoke: route each request to a specialist found by role or capability.

The hub looks specialists up through `Messenger.peers` at call time (not from a fixed
list), so a restarted or added agent is picked up, and spreads requests for the same
key over the agents that have it. Requests run in parallel; a failed spoke is recorded,
not fatal, because the other answers are still worth assembling.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel

from protocols.errors import describe
from protocols.messenger import Messenger
from protocols.patterns._deadline import (
    deadline_of,
    reraise_if_conversation_wide,
    time_left,
)
from protocols.patterns.errors import NoPeerError
from protocols.patterns.messages import Assemble, Draft, Reply, Request

__all__ = ["HubResult", "SpokeRecord", "hub_and_spoke"]


class SpokeRecord(BaseModel):
    """One routed request: the key, the specialist chosen, and its reply or failure."""

    key: str
    agent: str
    reply: Reply | None = None
    error: str | None = None


class HubResult(BaseModel):
    """The assembled answer and every spoke's record, in request order."""

    answer: Reply
    spokes: list[SpokeRecord]
    assembled_by: str | None = None

    @property
    def failed(self) -> list[SpokeRecord]:
        """The spokes that did not reply."""
        return [s for s in self.spokes if s.reply is None]


async def hub_and_spoke(
    messenger: Messenger,
    requests: Sequence[tuple[str, Request]],
    *,
    route_by: Literal["role", "capability"] = "role",
    assembler: str | None = None,
    task: str = "",
    timeout: float | None = None,
) -> HubResult:
    """Send each ``(key, request)`` to an agent whose role (or capability) is `key`.

    Args:
        messenger: Who to talk through.
        requests: Routing key and request pairs.
        route_by: Whether keys name roles or capabilities.
        assembler: An agent to assemble the replies (sent an `Assemble`); without one,
            the replies' texts are joined, one a line, in request order.
        task: The overall task, passed to the assembler.
        timeout: Seconds for the whole exchange (the messenger's deadline also applies).

    Raises:
        NoPeerError: No agent has a key's role or capability; nothing was sent.
        PatternTimeoutError: The deadline passed before assembly.
    """
    deadline = deadline_of(messenger, timeout)
    # Route everything before sending anything, so that a missing specialist costs
    # no work elsewhere.
    chosen: list[str] = []
    used: dict[str, int] = {}
    for key, _ in requests:
        if route_by == "role":
            found = await messenger.peers(role=key)
        else:
            found = await messenger.peers(capability=key)
        if not found:
            raise NoPeerError(
                f"no agent has the {route_by} {key!r}",
                trace_id=messenger.trace_id,
                hint=f"start an agent with that {route_by}, or route by another key",
            )
        names = sorted(p.name for p in found)
        chosen.append(names[used.get(key, 0) % len(names)])
        used[key] = used.get(key, 0) + 1

    async def spoke(key: str, agent: str, request: Request) -> SpokeRecord:
        try:
            left = time_left(messenger, deadline, what="hub_and_spoke")
            reply = await messenger.ask(agent, request, timeout=left, expect=Reply)
        except Exception as exc:
            reraise_if_conversation_wide(exc)
            return SpokeRecord(key=key, agent=agent, error=describe(exc))
        return SpokeRecord(key=key, agent=agent, reply=reply)

    spokes = list(
        await asyncio.gather(
            *(spoke(key, agent, req) for (key, req), agent in zip(requests, chosen, strict=True))
        )
    )
    if assembler is None:
        text = "\n".join(s.reply.text for s in spokes if s.reply is not None)
        return HubResult(answer=Reply(text=text), spokes=spokes)
    drafts = [Draft(author=s.agent, text=s.reply.text) for s in spokes if s.reply is not None]
    left = time_left(messenger, deadline, what="hub_and_spoke before assembly")
    answer = await messenger.ask(
        assembler, Assemble(task=task, drafts=drafts), timeout=left, expect=Reply
    )
    return HubResult(answer=answer, spokes=spokes, assembled_by=assembler)
