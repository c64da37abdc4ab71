"""The one place where Ray's exceptions become raymesh's."""

from __future__ import annotations

from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError, RayError

from mesh.errors import MeshError, PeerDeadError

__all__ = ["translate"]


def translate(exc: BaseException, *, agent: str, trace_id: str | None = None) -> MeshError:
    """Return the raymesh error for a failed Ray call to `agent`'s actor."""
    if isinstance(exc, MeshError):
        return exc.with_context(agent=agent, trace_id=trace_id)
    if isinstance(exc, ActorDiedError):
        return PeerDeadError(
            f"agent {agent!r} died",
            agent=agent,
            trace_id=trace_id,
            hint="a message in flight may or may not have been handled; its supervisor "
            "restarts it if it has one",
        )
    if isinstance(exc, ActorUnavailableError):
        return PeerDeadError(
            f"agent {agent!r} is unreachable; the outcome of messages in flight is unknown",
            agent=agent,
            trace_id=trace_id,
        )
    if isinstance(exc, RayActorError):
        return PeerDeadError(f"agent {agent!r} is gone: {exc}", agent=agent, trace_id=trace_id)
    if isinstance(exc, RayError):
        return MeshError(f"Ray call to {agent!r} failed: {exc}", agent=agent, trace_id=trace_id)
    raise exc
