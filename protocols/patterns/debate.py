"""Debate with a judge: debaters propose, critique each other for some rounds, a judge decides.

Each critique round shows every debater the others' current answers and takes back its
refined answer, so refining is part of each round rather than a separate step. When all
debaters agree the debate stops early and no judge is asked: consensus needs no verdict,
and every round saved is a round of model calls saved.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping, Sequence

from pydantic import BaseModel

from protocols.errors import describe
from protocols.message import Message
from protocols.messenger import Messenger
from protocols.patterns._deadline import (
    deadline_of,
    reraise_if_conversation_wide,
    time_left,
)
from protocols.patterns.errors import JudgeTimeoutError, NoValidAnswerError, PatternTimeoutError
from protocols.patterns.messages import Critique, Judge, Position, Propose, Verdict

__all__ = ["DebateResult", "DebateRound", "debate", "unanimous"]


class DebateRound(BaseModel):
    """The positions after one round (round 0: the proposals)."""

    round: int
    positions: dict[str, str]


class DebateResult(BaseModel):
    """The decided answer, how it was reached, and the transcript."""

    answer: str
    winner: str | None
    consensus: bool
    judge: str | None
    rounds: list[DebateRound]
    failures: dict[str, str]

    @property
    def critique_rounds(self) -> int:
        """How many critique rounds ran (the proposals not counted)."""
        return len(self.rounds) - 1


def unanimous(positions: Mapping[str, str]) -> bool:
    """Return True when every answer is the same, ignoring case and outer spaces."""
    return len({answer.strip().casefold() for answer in positions.values()}) == 1


def _critique(question: str, number: int, positions: dict[str, str], me: str) -> Critique:
    return Critique(
        question=question,
        round=number,
        positions={d: a for d, a in positions.items() if d != me},
    )


async def debate(
    messenger: Messenger,
    debaters: Sequence[str],
    judge: str,
    question: str,
    *,
    rounds: int = 2,
    consensus: Callable[[Mapping[str, str]], bool] = unanimous,
    judge_timeout: float | None = None,
    timeout: float | None = None,
) -> DebateResult:
    """Run a debate on `question` and return the judged (or agreed) answer.

    Debaters answer `Propose` and `Critique` with a `Position`; the judge answers
    `Judge` with a `Verdict` whose ``answer`` (or ``winner``'s position) is the result.
    A debater that fails drops out; the debate goes on with the rest.

    Args:
        messenger: Who to talk through.
        debaters: The debaters, at least one.
        judge: The agent that decides.
        question: The question.
        rounds: Critique rounds at most (0: the judge sees the proposals).
        consensus: When it returns True for the current positions, the debate stops.
        judge_timeout: Seconds the judge gets (never past the deadline).
        timeout: Seconds for the whole debate (the messenger's deadline also applies).

    Raises:
        ValueError: No debaters, or `rounds` is negative.
        NoValidAnswerError: Every debater failed.
        JudgeTimeoutError: The judge did not decide in time.
        PatternTimeoutError: The deadline passed during the rounds.
    """
    if not debaters or rounds < 0:
        raise ValueError("a debate needs debaters and rounds >= 0")
    deadline = deadline_of(messenger, timeout)
    failures: dict[str, str] = {}

    async def ask_all(make: Callable[[str], Message], what: str) -> dict[str, str]:
        left = time_left(messenger, deadline, what=what)
        alive = [d for d in debaters if d not in failures]
        requests = [make(d) for d in alive]
        replies = await asyncio.gather(
            *(
                messenger.ask(d, req, timeout=left, expect=Position)
                for d, req in zip(alive, requests, strict=True)
            ),
            return_exceptions=True,
        )
        positions: dict[str, str] = {}
        for name, reply in zip(alive, replies, strict=True):
            if isinstance(reply, Position):
                positions[name] = reply.answer
                continue
            if not isinstance(reply, Exception):
                raise reply  # CancelledError and the like end the debate
            reraise_if_conversation_wide(reply)
            failures[name] = describe(reply)
        if not positions:
            raise NoValidAnswerError(
                f"every debater failed during {what}",
                failures=failures,
                trace_id=messenger.trace_id,
            )
        return positions

    positions = await ask_all(lambda _: Propose(question=question), "the proposals")
    transcript = [DebateRound(round=0, positions=positions)]
    for number in range(1, rounds + 1):
        if consensus(positions):
            break
        positions = await ask_all(
            functools.partial(_critique, question, number, positions),
            f"critique round {number}",
        )
        transcript.append(DebateRound(round=number, positions=positions))
    if consensus(positions):
        answer = next(iter(positions.values()))
        return DebateResult(
            answer=answer, winner=None, consensus=True, judge=None,
            rounds=transcript, failures=failures,
        )  # fmt: skip

    try:
        left = time_left(messenger, deadline, what="debate before the judge")
        if judge_timeout is not None:
            left = judge_timeout if left is None else min(left, judge_timeout)
        verdict = await messenger.ask(
            judge, Judge(question=question, positions=positions), timeout=left, expect=Verdict
        )
    except (TimeoutError, PatternTimeoutError) as exc:
        raise JudgeTimeoutError(
            f"judge {judge!r} gave no verdict in time",
            agent=judge,
            trace_id=messenger.trace_id,
            hint="give the judge a longer judge_timeout, or use a faster model for it",
        ) from exc
    answer = verdict.answer or positions.get(verdict.winner or "", "")
    return DebateResult(
        answer=answer, winner=verdict.winner, consensus=False, judge=judge,
        rounds=transcript, failures=failures,
    )  # fmt: skip
