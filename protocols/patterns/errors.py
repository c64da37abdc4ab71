"""Errors the conversation patterns raise, under `PatternError`, a `MeshError`.

They live in ``protocols`` (not ``mesh.errors``) because patterns run on any messenger;
the runtime catches them as its own through the common root. The whole tree, generated
from the classes, is the documentation's Errors reference page (``reference/errors.md``,
drawn by ``docs/_gen/errors.py``).

Every detail is plain data, so the errors cross the wire with ``to_wire``/``from_wire``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from protocols.errors import MeshError

__all__ = [
    "ApprovalRejectedError",
    "ApprovalTimeoutError",
    "JudgeTimeoutError",
    "NoPeerError",
    "NoValidAnswerError",
    "PatternError",
    "PatternTimeoutError",
    "PlanCycleError",
    "PlanError",
    "StageFailedError",
    "SubtaskFailedError",
    "VerificationFailedError",
]


class PatternError(MeshError):
    """A conversation pattern could not produce its result."""


class PatternTimeoutError(PatternError, TimeoutError):
    """The pattern's deadline passed before it finished."""


class JudgeTimeoutError(PatternTimeoutError):
    """The debate's judge gave no verdict before the deadline."""


class ApprovalTimeoutError(PatternTimeoutError):
    """Nobody approved, edited or rejected a checkpoint before its timeout.

    Attributes:
        checkpoint: The checkpoint's id.
    """

    details: ClassVar[tuple[str, ...]] = ("checkpoint",)

    def __init__(self, message: str, *, checkpoint: str = "", **context: Any) -> None:
        super().__init__(message, **context)
        self.checkpoint = checkpoint


class ApprovalRejectedError(PatternError):
    """A human (or policy) rejected a checkpoint.

    Attributes:
        checkpoint: The checkpoint's id.
        reason: Why it was rejected.
    """

    details: ClassVar[tuple[str, ...]] = ("checkpoint", "reason")

    def __init__(
        self, message: str, *, checkpoint: str = "", reason: str = "", **context: Any
    ) -> None:
        super().__init__(message, **context)
        self.checkpoint = checkpoint
        self.reason = reason


class NoPeerError(PatternError, LookupError):
    """No agent has the role or capability a request was routed by."""


class StageFailedError(PatternError):
    """A pipeline stage failed; the stages after it did not run.

    Attributes:
        stage: The failing stage's agent.
        index: Its position in the pipeline, from 0.
        reason: What went wrong, as text.
    """

    details: ClassVar[tuple[str, ...]] = ("stage", "index", "reason")

    def __init__(
        self, message: str, *, stage: str = "", index: int = -1, reason: str = "", **context: Any
    ) -> None:
        super().__init__(message, **context)
        self.stage = stage
        self.index = index
        self.reason = reason


class PlanError(PatternError, ValueError):
    """A delegation plan is malformed (a duplicate id, an unknown dependency)."""


class PlanCycleError(PlanError):
    """A delegation plan's dependencies form a cycle.

    Attributes:
        cycle: The subtask ids in the cycle, the first repeated at the end.
    """

    details: ClassVar[tuple[str, ...]] = ("cycle",)

    def __init__(
        self, message: str, *, cycle: list[str] | tuple[str, ...] = (), **context: Any
    ) -> None:
        super().__init__(message, **context)
        self.cycle = list(cycle)


class SubtaskFailedError(PatternError):
    """A subtask failed on every agent it was tried on.

    Attributes:
        subtask: The subtask's id.
        failures: One ``{"agent": ..., "reason": ...}`` per attempt.
    """

    details: ClassVar[tuple[str, ...]] = ("subtask", "failures")

    def __init__(
        self,
        message: str,
        *,
        subtask: str = "",
        failures: list[dict[str, str]] | None = None,
        **context: Any,
    ) -> None:
        super().__init__(message, **context)
        self.subtask = subtask
        self.failures = list(failures or [])


class NoValidAnswerError(PatternError):
    """Every racer failed or gave an answer that did not pass validation.

    Attributes:
        failures: Racer name -> why its answer was not accepted.
    """

    details: ClassVar[tuple[str, ...]] = ("failures",)

    def __init__(
        self, message: str, *, failures: dict[str, str] | None = None, **context: Any
    ) -> None:
        super().__init__(message, **context)
        self.failures = dict(failures or {})


class VerificationFailedError(PatternError):
    """No generated answer passed verification within the allowed attempts.

    Attributes:
        attempts: One ``{"number", "answer", "passed", "feedback"}`` map per attempt.
    """

    details: ClassVar[tuple[str, ...]] = ("attempts",)

    def __init__(
        self, message: str, *, attempts: list[dict[str, Any]] | None = None, **context: Any
    ) -> None:
        super().__init__(message, **context)
        self.attempts = list(attempts or [])
