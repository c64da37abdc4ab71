"""Mesh review: peers draft shares of a task and review each other's drafts directly.

Reviews travel peer to peer (each author asks the others), so no orchestrator relays
or sees them; the caller only starts the round and hands the reviewed drafts to one
peer to assemble. `collect_reviews` is the author's side, for agents to call from their
`DraftShare` handler.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from pydantic import BaseModel

from protocols.errors import describe
from protocols.messenger import Messenger
from protocols.patterns._deadline import (
    deadline_of,
    reraise_if_conversation_wide,
    time_left,
)
from protocols.patterns.errors import StageFailedError
from protocols.patterns.messages import Assemble, Draft, DraftShare, Reply, Review, ReviewDraft

__all__ = ["MeshReviewResult", "collect_reviews", "mesh_review"]


class MeshReviewResult(BaseModel):
    """The assembled answer, the reviewed drafts, and who assembled them."""

    answer: Reply
    drafts: list[Draft]
    assembler: str
    failures: dict[str, str]


async def collect_reviews(messenger: Messenger, share: DraftShare, text: str) -> Draft:
    """Ask every other peer of `share` to review `text`; return the draft with its reviews.

    Call it from a `DraftShare` handler with that handler's messenger. A reviewer that
    fails is left out, not fatal: one missing review should not sink a share.
    """
    me = messenger.agent
    others = [p for p in share.peers if p != me]
    replies = await asyncio.gather(
        *(
            messenger.ask(
                p,
                ReviewDraft(task=share.task, author=me, text=text),
                timeout=messenger.remaining(),
                expect=Review,
            )
            for p in others
        ),
        return_exceptions=True,
    )
    reviews = [r for r in replies if isinstance(r, Review)]
    return Draft(author=me, text=text, reviews=reviews)


async def mesh_review(
    messenger: Messenger,
    peers: Sequence[str],
    task: str,
    *,
    assembler: str | None = None,
    timeout: float | None = None,
) -> MeshReviewResult:
    """Have each peer draft a share (reviewed by the others), then one peer assemble.

    Each peer gets a `DraftShare` and answers with a `Draft` carrying the `Review` s it
    asked the other peers for; `assembler` (the first peer by default) gets `Assemble`.

    Args:
        messenger: Who to talk through.
        peers: The peers, at least one.
        task: The task to share out.
        assembler: The peer that assembles.
        timeout: Seconds for the whole exchange (the messenger's deadline also applies).

    Raises:
        ValueError: `peers` is empty.
        StageFailedError: Every peer failed to draft, or the assembler failed.
        PatternTimeoutError: The deadline passed.
    """
    if not peers:
        raise ValueError("mesh_review needs at least one peer")
    deadline = deadline_of(messenger, timeout)
    left = time_left(messenger, deadline, what="mesh_review drafts")
    replies = await asyncio.gather(
        *(
            messenger.ask(
                p, DraftShare(task=task, share=i, peers=list(peers)), timeout=left, expect=Draft
            )
            for i, p in enumerate(peers)
        ),
        return_exceptions=True,
    )
    drafts: list[Draft] = []
    failures: dict[str, str] = {}
    for peer, reply in zip(peers, replies, strict=True):
        if isinstance(reply, Draft):
            drafts.append(reply)
        elif isinstance(reply, Exception):
            reraise_if_conversation_wide(reply)
            failures[peer] = describe(reply)
        else:
            raise reply
    who = assembler or peers[0]
    if not drafts:
        raise StageFailedError(
            "every peer failed to draft its share",
            stage="draft",
            index=0,
            reason="; ".join(f"{p}: {r}" for p, r in failures.items()),
            trace_id=messenger.trace_id,
        )
    left = time_left(messenger, deadline, what="mesh_review assembly")
    try:
        answer = await messenger.ask(
            who, Assemble(task=task, drafts=drafts), timeout=left, expect=Reply
        )
    except Exception as exc:
        reraise_if_conversation_wide(exc)
        raise StageFailedError(
            f"assembler {who!r} failed: {describe(exc)}",
            stage=who,
            index=1,
            reason=describe(exc),
            agent=who,
            trace_id=messenger.trace_id,
        ) from exc
    return MeshReviewResult(answer=answer, drafts=drafts, assembler=who, failures=failures)
