"""Pipeline: each stage's output is the next stage's input.

The caller sends to each stage in turn; a failing stage stops the pipeline with a
`StageFailedError` naming it, so that nobody downstream works on a broken input.
"""

from __future__ import annotations

import time
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
from protocols.patterns.messages import Reply, Request

__all__ = ["PipelineResult", "StageRecord", "pipeline"]


class StageRecord(BaseModel):
    """What one stage did."""

    agent: str
    output: Reply
    seconds: float


class PipelineResult(BaseModel):
    """The last stage's output and what every stage did, in order."""

    output: Reply
    stages: list[StageRecord]
    trace_id: str


async def pipeline(
    messenger: Messenger,
    stages: Sequence[str],
    first_input: Request,
    *,
    timeout: float | None = None,
) -> PipelineResult:
    """Send `first_input` through `stages`, each stage's `Reply` becoming the next `Request`.

    Args:
        messenger: Who to talk through.
        stages: Agent names, in order.
        first_input: The first stage's request.
        timeout: Seconds for the whole pipeline (the messenger's deadline also applies).

    Raises:
        ValueError: `stages` is empty.
        StageFailedError: A stage raised, timed out or did not reply with a `Reply`.
        PatternTimeoutError: The deadline passed between stages.
    """
    if not stages:
        raise ValueError("a pipeline needs at least one stage")
    deadline = deadline_of(messenger, timeout)
    records: list[StageRecord] = []
    current = first_input
    for index, stage in enumerate(stages):
        left = time_left(messenger, deadline, what=f"pipeline before stage {index} ({stage})")
        started = time.monotonic()
        try:
            output = await messenger.ask(stage, current, timeout=left, expect=Reply)
        except Exception as exc:
            reraise_if_conversation_wide(exc)
            raise StageFailedError(
                f"pipeline stage {index} ({stage!r}) failed: {describe(exc)}",
                stage=stage,
                index=index,
                reason=describe(exc),
                agent=stage,
                trace_id=messenger.trace_id,
                hint="fix or replace the stage; later stages did not run",
            ) from exc
        records.append(StageRecord(agent=stage, output=output, seconds=time.monotonic() - started))
        current = Request(text=output.text, data=output.data)
    return PipelineResult(output=records[-1].output, stages=records, trace_id=messenger.trace_id)
