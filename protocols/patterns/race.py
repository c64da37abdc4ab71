"""Race: ask several agents the same thing; the first valid answer wins, the rest are cancelled.

Cancelling the losers (rather than ignoring their replies) frees their model calls at
once, which is the point of racing: latency without paying for every answer in full.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from pydantic import BaseModel

from protocols.errors import describe
from protocols.messenger import Messenger
from protocols.patterns._deadline import (
    deadline_of,
    reraise_if_conversation_wide,
    time_left,
)
from protocols.patterns.errors import NoValidAnswerError
from protocols.patterns.messages import Reply, Request, Verdict, Verify

__all__ = ["RaceResult", "race"]


class RaceResult(BaseModel):
    """The winner, its answer, why the others lost, and who was cancelled."""

    winner: str
    answer: Reply
    failures: dict[str, str]
    cancelled: list[str]


class _InvalidAnswerError(Exception):
    pass


async def race(
    messenger: Messenger,
    agents: Sequence[str],
    request: Request,
    *,
    valid: Callable[[Reply], bool] | None = None,
    verifier: str | None = None,
    timeout: float | None = None,
) -> RaceResult:
    """Send `request` to every agent at once and return the first answer that is valid.

    An answer is valid when `valid` (if given) returns True and `verifier` (if given)
    answers a `Verify` with a passing `Verdict`.

    Args:
        messenger: Who to talk through.
        agents: The racers.
        request: What each racer is asked.
        valid: A local check of a reply.
        verifier: An agent that checks each reply.
        timeout: Seconds for the whole race (the messenger's deadline also applies).

    Raises:
        ValueError: `agents` is empty.
        NoValidAnswerError: Every racer failed, timed out or gave an invalid answer.
        PatternTimeoutError: The deadline had passed before the race started.
    """
    if not agents:
        raise ValueError("a race needs at least one agent")
    deadline = deadline_of(messenger, timeout)
    time_left(messenger, deadline, what="race")

    async def run(agent: str) -> Reply:
        reply = await messenger.ask(
            agent, request, timeout=time_left(messenger, deadline, what="race"), expect=Reply
        )
        if valid is not None and not valid(reply):
            raise _InvalidAnswerError("the answer failed the validity check")
        if verifier is not None:
            verdict = await messenger.ask(
                verifier,
                Verify(task=request.text, answer=reply.text),
                timeout=time_left(messenger, deadline, what="race verification"),
                expect=Verdict,
            )
            if not verdict.passed:
                raise _InvalidAnswerError(f"the verifier rejected it: {verdict.feedback}")
        return reply

    tasks = {asyncio.create_task(run(agent)): agent for agent in agents}
    failures: dict[str, str] = {}
    pending = set(tasks)
    try:
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            won: list[asyncio.Task[Reply]] = []
            for task in done:
                exc = task.exception()
                if exc is None:
                    won.append(task)
                    continue
                reraise_if_conversation_wide(exc)
                failures[tasks[task]] = (
                    str(exc) if isinstance(exc, _InvalidAnswerError) else describe(exc)
                )
            if won:
                first = min(won, key=lambda t: agents.index(tasks[t]))
                return RaceResult(
                    winner=tasks[first],
                    answer=first.result(),
                    failures=failures,
                    cancelled=sorted(tasks[t] for t in pending),
                )
    finally:
        # Invariant: no racer outlives the race, won or lost.
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    raise NoValidAnswerError(
        f"none of {len(agents)} racers gave a valid answer",
        failures=failures,
        trace_id=messenger.trace_id,
        hint="see .failures for why each answer was refused",
    )
