"""`A2AAgent`: a remote A2A agent as a peer of the mesh, asked like any other agent.

A team file names it ``{name: x, agent: "a2a:http://host:port"}``: an agent of the mesh,
registered under the name, that forwards each `Task` or `Prompt` it is asked to the
remote agent with the official ``a2a-sdk`` client. What an ask carries crosses over:

- the deadline: the remote call is bounded by what is left of it (`DeadlineExceededError`);
- cancellation: an ask cancelled here (its asker gave up, the deadline passed) cancels
  the remote task with the A2A cancel call;
- the trace: the trace id goes in the A2A message's metadata (``trace_id`` and a W3C
  ``traceparent``), so the remote side can join the conversation;
- the budget: an ask whose budget is spent is refused before anything is sent
  (`BudgetExceededError`); the remote agent's own spending is its own.

The agent card is read when the agent starts: an unreachable URL fails the start with a
`RemoteAgentError`, not the first ask.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from a2a.client import A2ACardResolver, A2AClientError, Client, ClientConfig, create_client
from a2a.types import (
    AgentCard,
    CancelTaskRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    StreamResponse,
    TaskState,
)

from actors.errors import BudgetExceededError, RemoteAgentError
from actors.messages import CallUsage, Completion, Prompt
from mesh import Agent, Context, DeadlineExceededError, handler
from protocols import Result, Task

__all__ = ["A2AAgent"]

#: Seconds an ask with no deadline may wait for the remote agent.
DEFAULT_TIMEOUT_S = 120.0
#: Seconds the A2A cancel call of a cancelled ask may take.
CANCEL_TIMEOUT_S = 5.0
_FAILED = {
    TaskState.TASK_STATE_FAILED: "failed",
    TaskState.TASK_STATE_REJECTED: "rejected",
    TaskState.TASK_STATE_CANCELED: "canceled",
    TaskState.TASK_STATE_INPUT_REQUIRED: "input-required",
    TaskState.TASK_STATE_AUTH_REQUIRED: "auth-required",
}


class A2AAgent(Agent):
    """Forwards the asks it gets to a remote A2A agent (see the module docstring)."""

    def __init__(self, url: str, *, card_timeout_s: float = 10.0) -> None:
        """Record the remote agent's base URL; `on_start` reads its card.

        Args:
            url: The remote agent's base URL (its card is at
                ``/.well-known/agent-card.json`` under it).
            card_timeout_s: Seconds to read the card at the start.
        """
        self.url = url
        self.card_timeout_s = card_timeout_s
        self.card: AgentCard | None = None
        self._http: httpx.AsyncClient | None = None
        self._client: Client | None = None

    async def on_start(self) -> None:
        """Read the agent card and open the client.

        Raises:
            RemoteAgentError: The card cannot be read (unreachable, not an A2A agent).
        """
        self._http = httpx.AsyncClient(timeout=None)
        config = ClientConfig(streaming=True, httpx_client=self._http)
        try:
            async with asyncio.timeout(self.card_timeout_s):
                self.card = await A2ACardResolver(self._http, self.url).get_agent_card()
            self._client = await create_client(self.card, client_config=config)
        except (A2AClientError, httpx.HTTPError, TimeoutError, ValueError) as exc:
            await self._http.aclose()
            raise RemoteAgentError(
                f"cannot read the agent card of {self.url}: {type(exc).__name__}: {exc}",
                url=self.url,
                agent=getattr(self, "name", None),
                hint="check that the A2A agent runs and that the URL is its base URL",
            ) from None

    async def on_stop(self) -> None:
        """Close the client's connections."""
        if self._client is not None:
            await self._client.close()
        if self._http is not None:
            await self._http.aclose()

    @handler
    async def on_task(self, msg: Task, ctx: Context) -> Result:
        """Give the remote agent a team's task."""
        return Result(text=await self.forward(msg.text, ctx), data={"remote": self.url})

    @handler
    async def on_prompt(self, msg: Prompt, ctx: Context) -> Completion:
        """Ask the remote agent a prompt (what LLM agents and patterns send)."""
        text = await self.forward(msg.text, ctx)
        return Completion(text=text, model=f"a2a:{self.url}", usage=CallUsage())

    async def forward(self, text: str, ctx: Context) -> str:
        """Send `text` to the remote agent within the ask's deadline; return its answer.

        Raises:
            BudgetExceededError: The ask's budget is spent; nothing was sent.
            DeadlineExceededError: The deadline passed (the remote task is cancelled).
            RemoteAgentError: The remote agent failed, refused or could not be reached.
        """
        allowance = ctx.allowance()
        if allowance is not None and any(left <= 0 for left in allowance.values()):
            raise BudgetExceededError(
                f"the budget is spent: the task was not sent to {self.url}",
                remaining=dict(allowance),
                agent=ctx.agent,
                trace_id=ctx.trace_id,
            )
        remaining = ctx.remaining()
        timeout = DEFAULT_TIMEOUT_S if remaining is None else max(0.0, remaining)
        task_ids: list[str] = []
        try:
            async with asyncio.timeout(timeout):
                return await self._exchange(text, ctx, task_ids)
        except TimeoutError:
            await self._cancel(task_ids)
            raise DeadlineExceededError(
                f"the remote A2A agent {self.url} did not answer before the deadline",
                agent=ctx.agent,
                trace_id=ctx.trace_id,
                hint="give the ask a longer deadline; the remote task was cancelled",
            ) from None
        except asyncio.CancelledError:
            await self._cancel(task_ids)
            raise
        except (A2AClientError, httpx.HTTPError) as exc:
            raise RemoteAgentError(
                f"the remote A2A agent {self.url} failed: {type(exc).__name__}: {exc}",
                url=self.url,
                agent=ctx.agent,
                trace_id=ctx.trace_id,
            ) from None

    async def _exchange(self, text: str, ctx: Context, task_ids: list[str]) -> str:
        assert self._client is not None  # opened by on_start
        message = Message(
            message_id=uuid.uuid4().hex,
            role=Role.ROLE_USER,
            parts=[Part(text=text)],
            metadata={
                "trace_id": ctx.trace_id,
                "traceparent": f"00-{ctx.trace_id}-{ctx.span_id}-01",
            },
        )
        answer: list[str] = []
        state: Any = None
        async for event in self._client.send_message(SendMessageRequest(message=message)):
            state = _note(event, task_ids, answer, state)
        if state is not None and state in _FAILED:
            raise RemoteAgentError(
                f"the remote A2A agent {self.url} ended the task {_FAILED[state]}: "
                + ("\n".join(answer) or "no message"),
                url=self.url,
                state=_FAILED[state],
                agent=ctx.agent,
                trace_id=ctx.trace_id,
            )
        return "\n".join(answer)

    async def _cancel(self, task_ids: list[str]) -> None:
        """Cancel the remote task of an ask that ended early (best effort, bounded)."""
        if not task_ids or self._client is None:
            return
        try:
            async with asyncio.timeout(CANCEL_TIMEOUT_S):
                await asyncio.shield(self._client.cancel_task(CancelTaskRequest(id=task_ids[-1])))
        except (A2AClientError, httpx.HTTPError, TimeoutError, asyncio.CancelledError) as exc:
            self.log.warning("could not cancel the remote task", task_id=task_ids[-1],
                             error=f"{type(exc).__name__}: {exc}")  # fmt: skip


def _note(event: StreamResponse, task_ids: list[str], answer: list[str], state: Any) -> Any:
    """Take one streamed event's task id, state and text; return the state now known."""
    if event.HasField("message"):
        answer += [p.text for p in event.message.parts if p.text]
    elif event.HasField("task"):
        if event.task.id and event.task.id not in task_ids:
            task_ids.append(event.task.id)
        state = event.task.status.state
        for artifact in event.task.artifacts:
            answer += [p.text for p in artifact.parts if p.text]
        if not event.task.artifacts and event.task.status.HasField("message"):
            answer += [p.text for p in event.task.status.message.parts if p.text]
    elif event.HasField("status_update"):
        if event.status_update.task_id not in task_ids:
            task_ids.append(event.status_update.task_id)
        state = event.status_update.status.state
        if event.status_update.status.HasField("message") and state in _FAILED:
            answer += [p.text for p in event.status_update.status.message.parts if p.text]
    elif event.HasField("artifact_update"):
        answer += [p.text for p in event.artifact_update.artifact.parts if p.text]
    return state
