"""Conversation patterns by name: the ``pattern:`` block of a team file, and its conductor.

A team file may name one pattern and its parameters::

    pattern:
      name: debate            # hub | pipeline | mesh_review | debate | delegation |
      debaters: [pro, con]    # race | verify_retry | approval
      judge: referee
      rounds: 2

Loading the team adds a `PatternConductor` agent (named ``conductor`` unless the block
says otherwise) as the team's entry: it takes the task, runs the pattern through its own
context (so the pattern runs on the mesh, under the task's trace and deadline) and
answers with the pattern's answer and a summary of who did what. A conductor also
answers a pattern `Request`, so a conductor can be a stage, a racer or a subtask of
another pattern: that is how patterns nest in a team file.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from mesh.agent import Agent, Context, handler
from mesh.control._approvals import RayApprovalGate
from protocols import Result, Task
from protocols.messenger import Messenger
from protocols.patterns import (
    OnTimeout,
    Plan,
    PlanError,
    Reply,
    Request,
    Subtask,
    ValidSpec,
    check_plan,
    checkpoint,
    debate,
    delegate,
    hub_and_spoke,
    mesh_review,
    pipeline,
    race,
    validity_predicate,
    verify_and_retry,
)

__all__ = [
    "CONDUCTOR",
    "ApprovalSpec",
    "DebateSpec",
    "DelegationSpec",
    "HubSpec",
    "MeshReviewSpec",
    "PatternConductor",
    "PatternOutcome",
    "PatternSpec",
    "PipelineSpec",
    "RaceSpec",
    "VerifyRetrySpec",
    "parse_pattern",
    "with_conductor",
]

#: The conductor's default agent name in a team.
CONDUCTOR = "conductor"


class PatternOutcome(BaseModel):
    """What running a pattern produced: the answer and who did what, as plain data."""

    pattern: str
    answer: str
    summary: dict[str, Any]


class _Member(Protocol):
    """What a pattern checks of a team's agent (an `AgentSpec` fits)."""

    @property
    def name(self) -> str: ...
    @property
    def role(self) -> str | None: ...


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The conductor's agent name in the team.
    conductor: str = CONDUCTOR
    #: Seconds for the whole pattern (the task's deadline also applies).
    timeout: float | None = Field(None, gt=0)

    def agents(self) -> Iterator[tuple[str, str]]:
        """Yield (field path, agent name) for every agent the pattern talks to."""
        yield from ()

    def roles(self) -> Iterator[tuple[str, str]]:
        """Yield (field path, role) for every role the pattern routes to."""
        yield from ()

    def check(self, team: str, members: Sequence[_Member]) -> None:
        """Check that every agent and role the pattern names is in the team.

        Raises:
            ValueError: One is not; the message names the field.
        """
        names = {m.name for m in members}
        roles = {m.role for m in members}
        for where, name in self.agents():
            if name not in names:
                raise ValueError(f"pattern.{where}: {name!r} is not an agent of team {team!r} "
                                 f"(its agents: {', '.join(sorted(names))})")  # fmt: skip
        for where, role in self.roles():
            if role not in roles:
                raise ValueError(f"pattern.{where}: no agent of team {team!r} has the role "
                                 f"{role!r}")  # fmt: skip


def _each(field: str, names: list[str]) -> Iterator[tuple[str, str]]:
    for index, name in enumerate(names):
        yield f"{field}[{index}]", name


class HubSpec(_Spec):
    """Hub and spoke: the task goes to one agent of each role (or capability) in `routes`."""

    name: Literal["hub"]
    routes: list[str] = Field(min_length=1)
    route_by: Literal["role", "capability"] = "role"
    assembler: str | None = None

    def agents(self) -> Iterator[tuple[str, str]]:
        """The assembler, if any."""
        if self.assembler is not None:
            yield "assembler", self.assembler

    def roles(self) -> Iterator[tuple[str, str]]:
        """The routes, when they are roles."""
        if self.route_by == "role":
            yield from _each("routes", self.routes)

    async def run(self, messenger: Messenger, task: str) -> PatternOutcome:
        """Route the task to every spoke, then assemble."""
        done = await hub_and_spoke(
            messenger, [(key, Request(text=task)) for key in self.routes],
            route_by=self.route_by, assembler=self.assembler, task=task, timeout=self.timeout,
        )  # fmt: skip
        return PatternOutcome(
            pattern=self.name,
            answer=done.answer.text,
            summary={
                "spokes": {s.key: s.agent for s in done.spokes},
                "failed": {s.agent: s.error for s in done.failed},
                "assembled_by": done.assembled_by,
            },
        )


class PipelineSpec(_Spec):
    """Pipeline: each stage's reply is the next stage's request."""

    name: Literal["pipeline"]
    stages: list[str] = Field(min_length=1)

    def agents(self) -> Iterator[tuple[str, str]]:
        """The stages."""
        yield from _each("stages", self.stages)

    async def run(self, messenger: Messenger, task: str) -> PatternOutcome:
        """Pass the task through the stages."""
        done = await pipeline(messenger, self.stages, Request(text=task), timeout=self.timeout)
        return PatternOutcome(
            pattern=self.name,
            answer=done.output.text,
            summary={"stages": [s.agent for s in done.stages]},
        )


class MeshReviewSpec(_Spec):
    """Mesh review: peers draft shares and review each other directly; one assembles."""

    name: Literal["mesh_review"]
    peers: list[str] = Field(min_length=1)
    assembler: str | None = None

    def agents(self) -> Iterator[tuple[str, str]]:
        """The peers and the assembler."""
        yield from _each("peers", self.peers)
        if self.assembler is not None:
            yield "assembler", self.assembler

    async def run(self, messenger: Messenger, task: str) -> PatternOutcome:
        """Draft, review peer to peer, assemble."""
        done = await mesh_review(
            messenger, self.peers, task, assembler=self.assembler, timeout=self.timeout
        )
        return PatternOutcome(
            pattern=self.name,
            answer=done.answer.text,
            summary={
                "drafts": {d.author: sorted(r.reviewer for r in d.reviews) for d in done.drafts},
                "assembler": done.assembler,
                "failed": done.failures,
            },
        )


class DebateSpec(_Spec):
    """Debate: the debaters propose and critique for some rounds; the judge decides."""

    name: Literal["debate"]
    debaters: list[str] = Field(min_length=1)
    judge: str
    rounds: int = Field(2, ge=0)
    judge_timeout: float | None = Field(None, gt=0)

    def agents(self) -> Iterator[tuple[str, str]]:
        """The debaters and the judge."""
        yield from _each("debaters", self.debaters)
        yield "judge", self.judge

    async def run(self, messenger: Messenger, task: str) -> PatternOutcome:
        """Debate the task as a question."""
        done = await debate(
            messenger, self.debaters, self.judge, task, rounds=self.rounds,
            judge_timeout=self.judge_timeout, timeout=self.timeout,
        )  # fmt: skip
        return PatternOutcome(
            pattern=self.name,
            answer=done.answer,
            summary={
                "winner": done.winner,
                "consensus": done.consensus,
                "judge": done.judge,
                "rounds": done.critique_rounds,
                "failed": done.failures,
            },
        )


class DelegationSpec(_Spec):
    """Delegation: the conductor manages a plan of subtasks with dependencies (a DAG)."""

    name: Literal["delegation"]
    subtasks: list[Subtask] = Field(min_length=1)
    integrator: str | None = None
    max_attempts: int = Field(2, ge=1)

    @model_validator(mode="after")
    def _a_dag(self) -> DelegationSpec:
        try:
            check_plan(Plan(goal="", subtasks=self.subtasks))
        except PlanError as exc:
            raise ValueError(f"subtasks: {exc.message}") from None
        return self

    def agents(self) -> Iterator[tuple[str, str]]:
        """The subtasks' agents and the integrator."""
        for index, sub in enumerate(self.subtasks):
            if sub.agent is not None:
                yield f"subtasks[{index}].agent", sub.agent
        if self.integrator is not None:
            yield "integrator", self.integrator

    def roles(self) -> Iterator[tuple[str, str]]:
        """The subtasks' roles."""
        for index, sub in enumerate(self.subtasks):
            if sub.role is not None:
                yield f"subtasks[{index}].role", sub.role

    async def run(self, messenger: Messenger, task: str) -> PatternOutcome:
        """Run the plan with the task as its goal; each subtask is told the task too."""
        subtasks = [s.model_copy(update={"text": f"{s.text}\nTask: {task}"}) for s in self.subtasks]
        plan = Plan(goal=task, subtasks=subtasks, integrator=self.integrator)
        done = await delegate(messenger, plan, max_attempts=self.max_attempts,
                              timeout=self.timeout)  # fmt: skip
        last = list(done.subtasks.values())[-1].reply
        return PatternOutcome(
            pattern=self.name,
            answer=(done.answer or last).text,
            summary={
                "subtasks": {k: r.agent for k, r in done.subtasks.items()},
                "reassigned": {k: r.failures for k, r in done.subtasks.items() if r.failures},
                "integrator": self.integrator,
            },
        )


class RaceSpec(_Spec):
    """Race: every racer gets the task; the first valid answer wins.

    Valid means: `valid` (a predicate, `protocols.patterns.validity`) holds, when
    given, and `verifier` passes it, when given.
    """

    name: Literal["race"]
    racers: list[str] = Field(min_length=1)
    verifier: str | None = None
    valid: ValidSpec | None = None

    @model_validator(mode="after")
    def _a_predicate(self) -> RaceSpec:
        if self.valid is not None:
            validity_predicate(self.valid)  # a bad one fails the load, naming the field
        return self

    def agents(self) -> Iterator[tuple[str, str]]:
        """The racers and the verifier."""
        yield from _each("racers", self.racers)
        if self.verifier is not None:
            yield "verifier", self.verifier

    async def run(self, messenger: Messenger, task: str) -> PatternOutcome:
        """Race the racers."""
        valid = None if self.valid is None else validity_predicate(self.valid)
        done = await race(messenger, self.racers, Request(text=task), valid=valid,
                          verifier=self.verifier, timeout=self.timeout)  # fmt: skip
        return PatternOutcome(
            pattern=self.name,
            answer=done.answer.text,
            summary={"winner": done.winner, "cancelled": done.cancelled, "lost": done.failures},
        )


class VerifyRetrySpec(_Spec):
    """Verify and retry: the generator answers until the verifier passes, up to `attempts`."""

    name: Literal["verify_retry"]
    generator: str
    verifier: str
    attempts: int = Field(3, ge=1)

    def agents(self) -> Iterator[tuple[str, str]]:
        """The generator and the verifier."""
        yield "generator", self.generator
        yield "verifier", self.verifier

    async def run(self, messenger: Messenger, task: str) -> PatternOutcome:
        """Generate, verify, feed back."""
        done = await verify_and_retry(messenger, self.generator, self.verifier,
                                      Request(text=task), max_attempts=self.attempts,
                                      timeout=self.timeout)  # fmt: skip
        return PatternOutcome(
            pattern=self.name,
            answer=done.answer.text,
            summary={
                "attempts": len(done.attempts),
                "feedback": [a.feedback for a in done.attempts if not a.passed],
            },
        )


class ApprovalSpec(_Spec):
    """Approval: the proposer drafts, a person approves, edits or rejects, the executor acts.

    The checkpoint waits on the namespace's approval desk (`mesh.control._approvals`) for at most
    `wait_s` (never past `timeout` or the task's deadline), then `on_timeout` decides.
    """

    name: Literal["approval"]
    proposer: str
    executor: str | None = None
    wait_s: float = Field(300.0, gt=0)
    on_timeout: OnTimeout = OnTimeout.REJECT

    def agents(self) -> Iterator[tuple[str, str]]:
        """The proposer and the executor."""
        yield "proposer", self.proposer
        if self.executor is not None:
            yield "executor", self.executor

    async def run(self, messenger: Messenger, task: str) -> PatternOutcome:
        """Draft, wait for a decision, then act on the approved (or edited) proposal."""
        draft = await messenger.ask(self.proposer, Request(text=task), timeout=self.timeout,
                                    expect=Reply)  # fmt: skip
        limits = [t for t in (self.wait_s, self.timeout, messenger.remaining()) if t is not None]
        decision = await checkpoint(
            RayApprovalGate.here(), draft.text, timeout=max(0.0, min(limits)),
            on_timeout=self.on_timeout, trace_id=messenger.trace_id,
            data={"task": task, "proposer": self.proposer, "executor": self.executor},
        )  # fmt: skip
        answer = decision.edited or draft.text
        if self.executor is not None:
            done = await messenger.ask(self.executor, Request(text=answer), expect=Reply)
            answer = done.text
        return PatternOutcome(
            pattern=self.name,
            answer=answer,
            summary={
                "proposer": self.proposer,
                "decision": decision.kind.value,
                "decided_by": decision.by,
                "by_policy": decision.by_policy,
                "executor": self.executor,
            },
        )


PatternSpec = Annotated[
    HubSpec | PipelineSpec | MeshReviewSpec | DebateSpec | DelegationSpec | RaceSpec
    | VerifyRetrySpec | ApprovalSpec,
    Field(discriminator="name"),
]  # fmt: skip
"""A pattern named in a team file, with its parameters."""

_ADAPTER: TypeAdapter[PatternSpec] = TypeAdapter(PatternSpec)


def parse_pattern(data: dict[str, Any]) -> PatternSpec:
    """Return the validated pattern spec of a ``pattern:`` block.

    Raises:
        pydantic.ValidationError: An unknown name or a bad parameter.
    """
    return _ADAPTER.validate_python(data)


def with_conductor(data: Any) -> Any:
    """Add the conductor agent a team mapping's ``pattern:`` block needs, and make it entry.

    Anything that is not a mapping with a ``pattern`` mapping is returned as it is, for
    the team's own validation to judge.
    """
    if not isinstance(data, dict) or not isinstance(data.get("pattern"), dict):
        return data
    pattern = data["pattern"]
    name = pattern.get("conductor", CONDUCTOR)
    conductor = {"name": name, "agent": PatternConductor, "role": "conductor",
                 "options": {"pattern": pattern}}  # fmt: skip
    return {**data, "agents": [*data.get("agents", ()), conductor],
            "entry": data.get("entry") or name}  # fmt: skip


class PatternConductor(Agent):
    """Runs one pattern on each task it is given, through its own context.

    It answers a team `Task` with a `Result` (``raymesh run``), and a pattern `Request`
    with a `Reply`, so that it can take part in another pattern.
    """

    concurrency = 16

    def __init__(self, pattern: dict[str, Any]) -> None:
        self.pattern = parse_pattern(pattern)

    @handler
    async def on_task(self, msg: Task, ctx: Context) -> Result:
        """Run the pattern on the task."""
        done = await self.pattern.run(ctx, msg.text)
        return Result(text=done.answer, data={"pattern": done.pattern, **done.summary})

    @handler
    async def on_request(self, msg: Request, ctx: Context) -> Reply:
        """Run the pattern on a request from another pattern."""
        done = await self.pattern.run(ctx, msg.text)
        return Reply(text=done.answer, data={"pattern": done.pattern, **done.summary})
