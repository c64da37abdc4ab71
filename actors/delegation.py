"""The one way a model's output may pick a recipient: a tool whose schema is an allow-list.

A model that delegates names a peer; that name is model output, so it is never used
as an address until it has matched the agent's declared list of peers (a JSON-schema
enum the model is offered and the call is validated against). The message type is
fixed (`Prompt`), never chosen by the model. The runtime's hop limit and the
conversation's budget bound how far a chain of delegations can run, and the peer's
host enforces its team's access rules on top.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from actors.budget import current_charge
from actors.messages import Completion, Prompt
from actors.tools import Tool
from mesh import ConfigError, Context

__all__ = ["ASK_PEER", "peer_tool"]

#: The delegation tool's name, as the model sees it.
ASK_PEER = "ask_peer"


def peer_tool(ctx: Context, peers: Sequence[str]) -> Tool:
    """Return a tool with which the model may ask one of `peers`, and no one else, a question.

    Raises:
        ConfigError: `peers` is empty.
    """
    allowed = tuple(sorted(set(peers)))
    if not allowed:
        raise ConfigError("a delegation tool needs at least one peer", agent=ctx.agent)

    async def ask_peer(peer: str, request: str) -> str:
        """Ask a peer agent to do part of the work; returns its answer."""
        # The ask carries what is left of the budget now, this completion's calls spent;
        # what the peer spent counts against this completion's later calls.
        charged = current_charge.get()
        if charged is None:
            reply = await ctx.ask(peer, Prompt(text=request), expect=Completion)
            return reply.text
        charged.charge()
        before = ctx.spent
        try:
            reply = await ctx.ask(peer, Prompt(text=request), expect=Completion)
        finally:
            after = ctx.spent
            charged.absorb(tokens=after.get("tokens", 0.0) - before.get("tokens", 0.0),
                           usd=after.get("usd", 0.0) - before.get("usd", 0.0))  # fmt: skip
        return reply.text

    # The allow-list is the schema: built here, since it is only known now.
    ask_peer.__annotations__ = {"peer": Literal[allowed], "request": str, "return": str}
    return Tool(ask_peer, name=ASK_PEER)
