"""Conversation patterns over a `Messenger`: each a function with a deadline and a typed result.

They live in ``protocols`` (no Ray) so that the same pattern runs on the mesh and in a
unit test on `InMemoryMessenger`; handlers can run patterns through their own messenger,
so patterns nest.
"""

from protocols.patterns.approval import (
    ApprovalGate,
    Checkpoint,
    Decision,
    DecisionKind,
    InMemoryApprovalGate,
    OnTimeout,
    checkpoint,
)
from protocols.patterns.debate import DebateResult, DebateRound, debate, unanimous
from protocols.patterns.delegate import (
    DelegationResult,
    Plan,
    Subtask,
    SubtaskRecord,
    check_plan,
    delegate,
    plan_with,
)
from protocols.patterns.errors import (
    ApprovalRejectedError,
    ApprovalTimeoutError,
    JudgeTimeoutError,
    NoPeerError,
    NoValidAnswerError,
    PatternError,
    PatternTimeoutError,
    PlanCycleError,
    PlanError,
    StageFailedError,
    SubtaskFailedError,
    VerificationFailedError,
)
from protocols.patterns.hub import HubResult, SpokeRecord, hub_and_spoke
from protocols.patterns.mesh_review import MeshReviewResult, collect_reviews, mesh_review
from protocols.patterns.messages import (
    Assemble,
    Critique,
    Draft,
    DraftShare,
    Judge,
    Position,
    Propose,
    Reply,
    Request,
    Review,
    ReviewDraft,
    Verdict,
    Verify,
)
from protocols.patterns.pipeline import PipelineResult, StageRecord, pipeline
from protocols.patterns.race import RaceResult, race
from protocols.patterns.validity import ValidSpec, validity_predicate
from protocols.patterns.verify_retry import Attempt, VerifiedResult, verify_and_retry

__all__ = [
    "ApprovalGate",
    "ApprovalRejectedError",
    "ApprovalTimeoutError",
    "Assemble",
    "Attempt",
    "Checkpoint",
    "Critique",
    "DebateResult",
    "DebateRound",
    "Decision",
    "DecisionKind",
    "DelegationResult",
    "Draft",
    "DraftShare",
    "HubResult",
    "InMemoryApprovalGate",
    "Judge",
    "JudgeTimeoutError",
    "MeshReviewResult",
    "NoPeerError",
    "NoValidAnswerError",
    "OnTimeout",
    "PatternError",
    "PatternTimeoutError",
    "PipelineResult",
    "Plan",
    "PlanCycleError",
    "PlanError",
    "Position",
    "Propose",
    "RaceResult",
    "Reply",
    "Request",
    "Review",
    "ReviewDraft",
    "SpokeRecord",
    "StageFailedError",
    "StageRecord",
    "Subtask",
    "SubtaskFailedError",
    "SubtaskRecord",
    "ValidSpec",
    "Verdict",
    "VerificationFailedError",
    "VerifiedResult",
    "Verify",
    "check_plan",
    "checkpoint",
    "collect_reviews",
    "debate",
    "delegate",
    "hub_and_spoke",
    "mesh_review",
    "pipeline",
    "plan_with",
    "race",
    "unanimous",
    "validity_predicate",
    "verify_and_retry",
]
