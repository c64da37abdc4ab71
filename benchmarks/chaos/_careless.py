"""An agent that puts every key it holds or is given where a careless program would.

The secrets scenario hands it canaries of every shape and plants more in its process:
values under every kind of secret variable name, and a secrets file's. It then writes
them to a standard library logger (as a vendor SDK would), to structlog in nested
fields, to a span event, into its error, and into its answer to a task.
"""

from __future__ import annotations

import logging
import os

from mesh.agent import Agent, Context, handler
from mesh.extension import add_event, get_secret
from protocols import Message, Result, Task

__all__ = ["LICENSE_NAME", "Careless", "Spill"]

#: The secrets file's entry the agent reads: a name no redaction rule knows as a secret's.
LICENSE_NAME = "CHAOS_VENDOR_LICENSE"

_vendor = logging.getLogger("chaos.vendor_sdk")


class Spill(Message, type="raymesh.chaos.spill/1"):
    """Texts holding keys, for the agent to leak along with its own."""

    texts: list[str]


class Careless(Agent):
    """Leaks what it knows on every message.

    Args:
        env: Variables set in the agent's process, as its node's environment would.
        secrets_file: A 0600 file it reads a licence key from (`get_secret`).
    """

    def __init__(self, env: dict[str, str] | None = None, secrets_file: str | None = None) -> None:
        os.environ.update(env or {})
        self._known = list((env or {}).values())
        if secrets_file is not None:
            self._known.append(get_secret(LICENSE_NAME, secrets_file=secrets_file) or "")

    def _leak(self, texts: list[str], ctx: Context) -> list[str]:
        leaked = [*texts, *self._known]
        _vendor.error("request failed, credentials %s", leaked)
        ctx.log.error("vendor call failed", request={"headers": {"X-Debug": leaked}})
        add_event("vendor.call", texts=leaked)
        return leaked

    @handler
    async def on_spill(self, msg: Spill, ctx: Context) -> Spill:
        raise RuntimeError(f"vendor refused: {self._leak(msg.texts, ctx)}")

    @handler
    async def on_task(self, msg: Task, ctx: Context) -> Result:
        leaked = self._leak([msg.text], ctx)
        return Result(text=f"done with {' '.join(leaked)}", data={"used": leaked})
