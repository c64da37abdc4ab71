"""The messages conversation patterns exchange, so that agents in any runtime can take part.

An agent joins a pattern by handling these tags (``pattern.*/1``); the replies it
returns are listed next to each request. New fields get defaults, as for every tag.
"""

from __future__ import annotations

import warnings
from typing import Any

from pydantic import AliasChoices, Field

from protocols.message import Message

__all__ = [
    "Assemble",
    "Critique",
    "Draft",
    "DraftShare",
    "Judge",
    "Position",
    "Propose",
    "Reply",
    "Request",
    "Review",
    "ReviewDraft",
    "Verdict",
    "Verify",
]


class Request(Message, type="pattern.request/1"):
    """A unit of work: hub, pipeline, delegate, race and verify-and-retry send it.

    Reply: `Reply`.
    """

    text: str
    data: dict[str, Any] = Field(default_factory=dict)
    #: Feedback on earlier attempts (verify-and-retry) or results of dependencies (delegate).
    feedback: list[str] = Field(default_factory=list)


class Reply(Message, type="pattern.reply/1"):
    """The answer to a `Request` or an `Assemble`."""

    text: str
    data: dict[str, Any] = Field(default_factory=dict)


class Verify(Message, type="pattern.verify/1"):
    """Ask a verifier whether `answer` solves `task`. Reply: `Verdict`.

    The verify-and-retry and race patterns send `task` and `answer` only; the other
    fields are checks a caller may add (the ``verifier`` role of ``actors`` applies them).
    """

    #: The task the answer answers, for the verifier's context.
    task: str = ""
    #: The answer (or any output) to check; ``output=`` is accepted, as in raymesh 0.1.
    answer: str = Field(validation_alias=AliasChoices("answer", "output"))
    #: Rules in plain words, judged by the verifier's model.
    rules: list[str] = Field(default_factory=list)
    #: Text the answer must contain (checked exactly, after normalising spaces and case).
    ground_truth: str | None = None
    #: Regular expressions the answer must not match (checked exactly).
    forbidden: list[str] = Field(default_factory=list)

    @property
    def output(self) -> str:
        """Deprecated: `answer` (the name of raymesh 0.1's ``actors.Verify``)."""
        warnings.warn(
            "Verify.output is Verify.answer since raymesh 0.2; the old name goes in 0.3",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.answer


class Verdict(Message, type="pattern.verdict/1"):
    """A verifier's or judge's decision: `passed`, with feedback or the winning answer."""

    passed: bool
    #: Why, in one text: what verify-and-retry feeds back to the generator.
    feedback: str = ""
    #: A judge's choice of debater, when it picks one.
    winner: str | None = None
    answer: str = ""
    #: The findings one by one, when the verifier lists them (`feedback` joins them).
    reasons: list[str] = Field(default_factory=list)
    #: ``provider:MODEL`` that judged, when a model did.
    model: str = ""


class Propose(Message, type="pattern.propose/1"):
    """Ask a debater for its opening position on `question`. Reply: `Position`."""

    question: str


class Position(Message, type="pattern.position/1"):
    """A debater's current answer."""

    answer: str
    reasoning: str = ""


class Critique(Message, type="pattern.critique/1"):
    """Another debater's positions, sent for critique; the reply is a `Position`.

    The receiver criticises `positions` (debater -> answer) and answers with its own,
    possibly revised, position.
    """

    question: str
    round: int
    positions: dict[str, str]


class Judge(Message, type="pattern.judge/1"):
    """Ask a judge to decide between the final positions. Reply: `Verdict`."""

    question: str
    positions: dict[str, str]


class DraftShare(Message, type="pattern.draft_share/1"):
    """Ask a mesh peer to draft its share of `task` and have it reviewed by `peers`.

    Reply: `Draft` (with its reviews).
    """

    task: str
    share: int
    peers: list[str]


class ReviewDraft(Message, type="pattern.review_draft/1"):
    """Ask a peer to review another peer's draft. Reply: `Review`."""

    task: str
    author: str
    text: str


class Review(Message, type="pattern.review/1"):
    """A peer's review of a draft."""

    reviewer: str
    author: str
    approved: bool = True
    comments: str = ""


class Draft(Message, type="pattern.draft/1"):
    """A peer's share of the work, with the reviews it collected from the others."""

    author: str
    text: str
    reviews: list[Review] = Field(default_factory=list)


class Assemble(Message, type="pattern.assemble/1"):
    """Ask one peer to assemble the reviewed drafts into the result. Reply: `Reply`."""

    task: str
    drafts: list[Draft]
