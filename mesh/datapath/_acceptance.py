"""The checks a host makes on each decoded frame before the agent sees it.

With a cluster secret, a frame's signature proves it was made by a holder of the
secret; these checks add what a signature alone does not: that the frame is not a
replay, and that its signed sender is the participant whose link it came in on.
Then the team's access rules judge the (authenticated) sender and the message type.
"""

from __future__ import annotations

from mesh.config import MeshConfig
from mesh.datapath._link import sender_of
from mesh.security import AgentAccess
from protocols import Envelope, Kind, MeshError, ReplayError, SignatureError
from protocols.signing import ReplayGuard

__all__ = ["InboundGuard", "Refusal"]

#: Why a frame was refused, and the typed error its sender gets.
Refusal = tuple[str, MeshError]


class InboundGuard:
    """Checks frames arriving at one host; keeps the replay window of its senders."""

    def __init__(self, *, name: str, config: MeshConfig, access: AgentAccess | None = None) -> None:
        self._name = name
        self._access = access
        self._signed = config.secret is not None
        self._replays = ReplayGuard(window_s=config.replay_window_s)

    def check(self, env: Envelope, link_id: str) -> Refusal | None:
        """Return why `env`, which came in on `link_id`, must be refused, or None."""
        refusal = self._authentic(env, link_id) if self._signed else None
        if refusal is None and self._access is not None and env.kind in (Kind.TELL, Kind.ASK):
            denied = self._access.check(env.sender, env.type, trace_id=env.trace_id)
            if denied is not None:
                return "access", denied
        return refusal

    def _authentic(self, env: Envelope, link_id: str) -> Refusal | None:
        linked = sender_of(link_id)[0]
        if env.sender != linked:
            return "spoofed_sender", SignatureError(
                f"frame signed as from {env.sender!r} came in on the link of {linked!r}",
                agent=self._name,
                trace_id=env.trace_id,
            )
        assert env.signed_at is not None  # a signing codec decoded it
        try:
            self._replays.check(env.sender, env.id, env.signed_at)
        except ReplayError as exc:
            return "replay", exc.with_context(trace_id=env.trace_id)
        except SignatureError as exc:
            return "signature", exc.with_context(trace_id=env.trace_id)
        return None
