"""Verify and retry: a generator answers, a verifier checks, feedback goes into the next try.

Feedback from every failed attempt goes back to the generator, so that it does not
repeat an earlier mistake; the result keeps each attempt and why it failed, which is
what a person debugging the loop needs first.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from protocols.errors import describe
from protocols.messenger import Messenger
from protocols.patterns._deadline import (
    deadline_of,
    reraise_if_conversation_wide,
    time_left,
)
from protocols.patterns.errors import VerificationFailedError
from protocols.patterns.messages import Reply, Request, Verdict, Verify

__all__ = ["Attempt", "VerifiedResult", "verify_and_retry"]


class Attempt(BaseModel):
    """One try: the answer (if any), whether it passed, and the feedback or failure."""

    number: int
    answer: str | None
    passed: bool
    feedback: str


class VerifiedResult(BaseModel):
    """The answer that passed and every attempt that led to it."""

    answer: Reply
    attempts: list[Attempt]


async def verify_and_retry(
    messenger: Messenger,
    generator: str,
    verifier: str,
    task: Request,
    *,
    max_attempts: int = 3,
    timeout: float | None = None,
) -> VerifiedResult:
    """Ask `generator` for an answer until `verifier` passes one, feeding back its critique.

    Attempt n's `Request` carries the feedback of attempts 1..n-1 in ``feedback``.
    A generator or verifier that fails counts as a failed attempt.

    Args:
        messenger: Who to talk through.
        generator: The agent that answers.
        verifier: The agent that answers `Verify` with a `Verdict`.
        task: The task.
        max_attempts: How many answers to try, at least 1.
        timeout: Seconds for the whole loop (the messenger's deadline also applies).

    Raises:
        ValueError: `max_attempts` is below 1.
        VerificationFailedError: No answer passed in `max_attempts`; ``.attempts`` says why.
        PatternTimeoutError: The deadline passed before an answer passed.
        TimeoutError: An ask ran into the deadline (the messenger's timeout error).
    """
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    deadline = deadline_of(messenger, timeout)
    attempts: list[Attempt] = []
    for number in range(1, max_attempts + 1):
        request = task.model_copy(
            update={"feedback": [*task.feedback, *(a.feedback for a in attempts)]}
        )
        answer: Reply | None = None
        try:
            left = time_left(messenger, deadline, what=f"verify_and_retry attempt {number}")
            answer = await messenger.ask(generator, request, timeout=left, expect=Reply)
            left = time_left(messenger, deadline, what=f"verify_and_retry check {number}")
            verdict = await messenger.ask(
                verifier, Verify(task=task.text, answer=answer.text), timeout=left, expect=Verdict
            )
        except TimeoutError:
            raise
        except Exception as exc:
            reraise_if_conversation_wide(exc)
            who = generator if answer is None else verifier
            attempts.append(
                Attempt(
                    number=number,
                    answer=None if answer is None else answer.text,
                    passed=False,
                    feedback=f"{who} failed: {describe(exc)}",
                )
            )
            continue
        attempts.append(
            Attempt(
                number=number, answer=answer.text, passed=verdict.passed, feedback=verdict.feedback
            )
        )
        if verdict.passed:
            return VerifiedResult(answer=answer, attempts=attempts)
    plain: list[dict[str, Any]] = [a.model_dump() for a in attempts]
    raise VerificationFailedError(
        f"no answer from {generator!r} passed {verifier!r} in {max_attempts} attempts",
        attempts=plain,
        agent=generator,
        trace_id=messenger.trace_id,
        hint="see .attempts for the feedback on each; raise max_attempts or improve the generator",
    )
