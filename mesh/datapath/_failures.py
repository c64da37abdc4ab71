"""How a handler's or a starting agent's exception becomes the error its asker gets.

The cause's text goes in without its own ``[agent=…, trace=…]`` and hint (`describe`):
the new error adds its context, and a cause's hint is kept as the new error's, so an
asker reads each once. Pure functions, so that text is checked without a Ray actor.
"""

from __future__ import annotations

import traceback

from mesh.errors import ConfigError, HandlerError, MeshError
from mesh.security import redact
from protocols.errors import describe

__all__ = ["handler_failed", "start_failed"]


def handler_failed(exc: Exception, *, handler: str, agent: str, trace_id: str | None) -> MeshError:
    """Return the error for `exc`, raised by `agent`'s `handler` in trace `trace_id`."""
    if isinstance(exc, HandlerError) or (isinstance(exc, MeshError) and exc.conversation_wide):
        # Passed up unchanged: the asker learns where the failure really happened,
        # and a deadlock or a spent budget concerns the whole chain, not this handler.
        return exc
    return HandlerError(
        redact(f"handler {handler} of {agent!r} raised {describe(exc)}"),
        remote_type=type(exc).__name__,
        remote_traceback=redact("".join(traceback.format_exception(exc))),
        agent=agent,
        trace_id=trace_id,
        hint=redact(exc.hint) if isinstance(exc, MeshError) and exc.hint else None,
    )


def start_failed(exc: Exception, *, agent: str, cls: type) -> ConfigError:
    """Return the error for `exc`, raised while agent `agent` of class `cls` started."""
    return ConfigError(
        redact(f"agent {agent!r} ({cls.__qualname__}) failed to start: {describe(exc)}"),
        agent=agent,
        hint="see the agent's log for the traceback",
    )
