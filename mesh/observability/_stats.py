"""Per-agent counters, kept by each host and read by `Mesh.stats`."""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field

from protocols import Usage, UsageSummary

__all__ = ["AgentStats", "UsageReport", "count_model_call"]

_current: ContextVar[AgentStats | None] = ContextVar("raymesh_agent_stats", default=None)


@dataclass(slots=True)
class AgentStats:
    """What one agent has done since it started.

    Attributes:
        received: Frames that arrived (messages, replies and malformed ones).
        handled: Messages whose handler completed.
        failed: Messages whose handling ended in an error.
        refused: Frames refused at the door (malformed, mailbox full, forged, denied).
        refusals: Refusals by the security checks, by reason (signature, replay,
            spoofed_sender, access).
        waited: Messages that waited for mailbox room (mailbox_policy "wait").
        expired: Messages dropped because their deadline had passed before handling.
        late_replies: Replies that came after their ask had given up.
        gaps: Times a sender's sequence had a hole that was skipped after waiting.
        sent: Messages this agent sent (asks and tells; replies are not counted).
        replies_carried: Replies that went back as the result of the batch call that
            brought their ask, not in a call of their own.
        asks_together: Asks from the edge that came with others in one `asks` call
            (made in the same loop turn), their replies going back on it as ready.
        cancelled: Messages dropped or stopped because their asker gave up.
        probes_sent: Deadlock probes this agent sent or forwarded.
        probes_received: Deadlock probes that reached this agent.
        deadlocks_broken: Cycles this agent detected and broke.
        duplicates: Messages dropped because their id had been taken before (resends).
        snapshots: State snapshots written (agents that declare a State).
        dead_letters: Messages this agent recorded as dead letters.
        mailbox_depth: Messages waiting when the stats were read.
        models: Model calls, tokens and cost, per model (see `count_model_call`).
        ray_calls_settle: Whether Ray's calls to this host settle as they end (the
            start-up self-check of `mesh._compat`); None before the host started.
    """

    name: str
    received: int = 0
    handled: int = 0
    failed: int = 0
    refused: int = 0
    refusals: dict[str, int] = field(default_factory=dict)
    waited: int = 0
    expired: int = 0
    late_replies: int = 0
    gaps: int = 0
    sent: int = 0
    replies_carried: int = 0
    asks_together: int = 0
    cancelled: int = 0
    probes_sent: int = 0
    probes_received: int = 0
    deadlocks_broken: int = 0
    duplicates: int = 0
    snapshots: int = 0
    dead_letters: int = 0
    mailbox_depth: int = 0
    models: dict[str, Usage] = field(default_factory=dict)
    ray_calls_settle: bool | None = None

    def bind(self) -> None:
        """Make these the stats that model calls in this context (and its tasks) count on."""
        _current.set(self)


def count_model_call(
    model: str,
    *,
    tokens_in: int,
    tokens_out: int,
    cost_usd: float,
    estimated: bool = False,
    saved_usd: float | None = None,
) -> None:
    """Count a model call on the stats of the agent whose handler made it.

    LLM clients call it; they do not know their host, the context does. Outside an
    agent (a driver calling a model itself) it does nothing. A call answered from a
    response cache gives `saved_usd`, what the model call would have cost.
    """
    stats = _current.get()
    if stats is None:
        return
    usage = Usage(calls=1, input_tokens=tokens_in, output_tokens=tokens_out,
                  cost_usd=cost_usd, estimated_calls=int(estimated),
                  cached_calls=int(saved_usd is not None), saved_usd=saved_usd or 0.0)  # fmt: skip
    stats.models.setdefault(model, Usage()).add(usage)


@dataclass
class UsageReport:
    """Model usage and cost across agents: in total, per agent, team, model and trace.

    A team's figure includes its sub-teams' (``review`` totals ``review/writers`` too).
    """

    total: Usage = field(default_factory=Usage)
    by_agent: dict[str, Usage] = field(default_factory=dict)
    by_team: dict[str, Usage] = field(default_factory=dict)
    by_model: dict[str, Usage] = field(default_factory=dict)
    by_trace: dict[str, Usage] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        summaries: list[UsageSummary],
        *,
        trace_id: str | None = None,
        teams: Mapping[str, str] | None = None,
    ) -> UsageReport:
        """Total agents' summaries, optionally for one trace only.

        Args:
            summaries: What each agent reported.
            trace_id: Count only this conversation.
            teams: Each team member's team path (``review/writers``), for `by_team`.
        """
        report = cls()
        for summary in summaries:
            mine = summary.total if trace_id is None else summary.by_trace.get(trace_id, Usage())
            if mine.calls == 0:
                continue
            report.total.add(mine)
            report.by_agent[summary.agent] = mine
            path = (teams or {}).get(summary.agent, "").split("/")
            for depth in range(1, len(path) + 1 if path[0] else 0):
                report.by_team.setdefault("/".join(path[:depth]), Usage()).add(mine)
            if trace_id is None:
                for model, usage in summary.by_model.items():
                    report.by_model.setdefault(model, Usage()).add(usage)
            for trace, usage in summary.by_trace.items():
                if trace_id is None or trace == trace_id:
                    report.by_trace.setdefault(trace, Usage()).add(usage)
        return report
