"""Frame acceptance: how a host takes the frames that come in, or refuses them.

Each frame is decoded, checked, then routed: a reply to the ask waiting for it, a
tell or an ask to the dispatcher's mailbox. A frame refused at any step is counted, is
a dead letter with its reason (header only, never the payload), and its error goes
back to the sender; nothing is dropped silently.

Every frame names its recipient and the recipient's incarnation: a host refuses one
meant for another agent, or for another incarnation of itself (an earlier one's
traffic, or a frame taken from elsewhere), and a reply completes an ask only if it
comes from the agent, and the incarnation, that was asked.

With a cluster secret, a frame's signature proves it was made by a holder of the
secret and that none of these header fields changed; these checks add what a
signature alone does not: that the frame is not a replay, and that its signed sender
is the participant whose link it came in on. Then the team's access rules judge the
(authenticated) sender, and the driver flag of its header, and the message type.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from mesh.config import MeshConfig
from mesh.datapath._dispatch import Dispatcher
from mesh.datapath._endpoint import Endpoint
from mesh.datapath._link import link_id, sender_of
from mesh.datapath._replies import Carry
from mesh.errors import DecodeError
from mesh.observability import AgentStats
from mesh.security import AgentAccess
from protocols import (
    DRIVER,
    Envelope,
    Kind,
    MeshError,
    MisdirectedError,
    ProtocolError,
    ReplayError,
    SignatureError,
)
from protocols.calls import open_batch_call, open_call
from protocols.signing import ReplayGuard

if TYPE_CHECKING:
    from mesh.datapath._sink import StreamSink

__all__ = ["MAX_HOLD_S", "FrameAcceptance", "InboundGuard", "Refusal"]

#: The longest a batch of frames holds the event loop before it lets other calls in.
MAX_HOLD_S = 0.0002
#: The longest the tarpit holds one call.
MAX_TARPIT_S = 1.0

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
            denied = self._access.check(env.sender, env.type, trace_id=env.trace_id,
                                        driver=bool(env.flags & DRIVER))  # fmt: skip
            if denied is not None:
                return "access", denied
        return refusal

    def _authentic(self, env: Envelope, link_id: str) -> Refusal | None:
        linked, incarnation = sender_of(link_id)
        if env.sender != linked or env.from_incarnation != incarnation:
            return "spoofed_sender", SignatureError(
                f"frame signed as from {env.sender!r} (incarnation {env.from_incarnation}) "
                f"came in on the link of {linked!r} (incarnation {incarnation})",
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


class FrameAcceptance:
    """Takes the frames that arrive at one host: replies to their asks, the rest to its mailbox.

    Args:
        name: The host's agent name.
        guard: The checks on each decoded frame.
        endpoint: Its codec, the asks waiting for replies, and the dead letters.
        dispatcher: Where tells and asks go.
    """

    def __init__(
        self,
        *,
        name: str,
        config: MeshConfig,
        guard: InboundGuard,
        endpoint: Endpoint,
        dispatcher: Dispatcher,
        stats: AgentStats,
    ) -> None:
        self._name = name
        self._incarnation = endpoint.incarnation
        self._refusal_penalty = config.refusal_penalty
        self._max_batch = config.max_batch
        self._guard = guard
        self._endpoint = endpoint
        self._codec = endpoint.codec
        self._pending = endpoint.pending
        self._dispatcher = dispatcher
        self._stats = stats

    def open_call(self, call: Any) -> tuple[str, int, bytes] | MeshError:
        """Return the link id, sequence number and frame of a one-frame call.

        A call that cannot be opened is refused whole: a dead letter, counted, and its
        error is returned for the caller.
        """
        try:
            return open_call(call)
        except DecodeError as exc:
            return self._refuse("decode", None, exc, frame_bytes=_size(call))

    def open_batch_call(self, call: Any) -> tuple[str, int, list[bytes]] | MeshError:
        """Return the link id, sequence number and frames of a batch call, as `open_call`."""
        try:
            return open_batch_call(call, max_batch=self._max_batch)
        except DecodeError as exc:
            return self._refuse("decode", None, exc, frame_bytes=_size(call))

    async def take_batch(
        self,
        frames: list[bytes],
        link_id: str,
        carry: Carry | None = None,
        waiters: list[asyncio.Future[bytes]] | None = None,
    ) -> list[tuple[int, dict[str, Any]]] | None:
        """Take a batch from `link_id`; return the refused frames as ``(index, wire error)``.

        The replies to its asks may go back in `carry`, the batch call's; or, for an
        `asks` call (every frame an ask), each to its waiter in `waiters`, by index.
        """
        refusals = None
        owed_s = served_s = 0.0  # the tarpit's time this call has earned, and served
        held_since = time.perf_counter()
        for index, frame in enumerate(frames):
            started = time.perf_counter()
            waiter = None if waiters is None else waiters[index]
            error = await self.accept(frame, link_id, call_waiter=waiter, carry=carry)
            if error is not None:
                refusals = refusals or []
                refusals.append((index, error.to_wire()))
                owed_s += (time.perf_counter() - started) * self._refusal_penalty
            if time.perf_counter() - held_since > MAX_HOLD_S:
                # A large batch (a flood of bad frames costs the most) lets the other
                # senders' calls and the workers in before it goes on, after the pause
                # its refusals so far earned: its work comes in short slices.
                pause = _tarpit(owed_s, served_s)
                await asyncio.sleep(pause)
                owed_s, served_s = 0.0, served_s + pause
                held_since = time.perf_counter()
        pause = _tarpit(owed_s, served_s)
        if pause:
            await asyncio.sleep(pause)
        return refusals

    async def accept(
        self,
        frame: bytes,
        link_id: str,
        *,
        call_waiter: asyncio.Future[bytes] | None = None,
        sink: StreamSink | None = None,
        carry: Carry | None = None,
    ) -> MeshError | None:
        """Take one frame from `link_id`; return the error for its sender if refused.

        `call_waiter` is given for a frame that came as a `request`, `stream` or `asks`
        call: it is an ask, and its reply (or error) will be (in) the call's result; `sink`
        takes the chunks of a streamed one; `carry` is given for a frame of a batch call.
        """
        self._stats.received += 1
        opened = self._open(frame, link_id)
        if isinstance(opened, MeshError):
            return opened
        env = opened
        if call_waiter is not None and env.kind is not Kind.ASK:
            # A `request` call ends with the reply; anything but an ask would hold it forever.
            self._stats.refused += 1
            error = DecodeError(f"a {env.kind} frame came as a request; only asks do",
                                agent=self._name, trace_id=env.trace_id)  # fmt: skip
            self._endpoint.dead_letter("decode", env, error, frame_bytes=_size(frame))
            return error
        if env.kind is Kind.REPLY or env.kind is Kind.ERROR:
            return self._answer(env, frame)
        if env.kind is Kind.CHUNK:
            # Chunks travel only as the results of the `stream` call they answer.
            error = DecodeError("a chunk frame came on a link; chunks answer a stream call",
                                agent=self._name, trace_id=env.trace_id)  # fmt: skip
            return self._refuse("decode", env, error, frame_bytes=_size(frame))
        return await self._dispatcher.admit(env, call_waiter, sink, carry)

    def take_carried(self, frames: list[bytes], peer: str, incarnation: str) -> None:
        """Take the replies that a batch call to `peer` brought back as its result.

        They pass the checks of any frame from that incarnation (decode, binding,
        signature, replay); only replies and errors may come this way. What is refused
        is a dead letter: the call has ended, there is nobody to tell.
        """
        carrier = link_id(f"{peer}#{incarnation}", 0)  # whose frames these must be
        for frame in frames:
            self._stats.received += 1
            opened = self._open(frame, carrier)
            if isinstance(opened, MeshError):
                continue
            if opened.kind is Kind.REPLY or opened.kind is Kind.ERROR:
                self._answer(opened, frame)
                continue
            self._refuse("decode", opened, DecodeError(
                f"a {opened.kind} frame came back in a call's result; only replies do",
                agent=self._name, trace_id=opened.trace_id,
            ), frame_bytes=_size(frame))  # fmt: skip

    def _answer(self, env: Envelope, frame: bytes) -> MeshError | None:
        # A reply completes its ask only if it comes from the peer, and the incarnation,
        # that was asked. An ask sent as a `request` call has no pending entry (the call's
        # result answers it), but is outstanding: a reply from another sender is refused
        # too; one from its peer is late (an earlier attempt's, say).
        corr = env.correlation_id or ""
        pending = self._pending.get(corr)
        if pending is not None and not pending[0].done():
            if env.sender == pending[1] and env.from_incarnation == pending[2]:
                pending[0].set_result(env)
                return None
            asked = pending[1]
        else:
            outstanding = self._endpoint.probes.outstanding.get(corr)
            if outstanding is None or env.sender == outstanding.peer:
                why = f"reply to {env.correlation_id} after its ask ended"
                self._endpoint.dead_letter("late", env, why)
                return None
            asked = outstanding.peer
        return self._refuse("wrong_peer", env, MisdirectedError(
            f"a reply to {env.correlation_id} came from {env.sender!r} (incarnation "
            f"{env.from_incarnation}), not from {asked!r}, which was asked",
            trace_id=env.trace_id,
            hint="only the agent asked can answer an ask; the ask still waits",
        ), frame_bytes=_size(frame))  # fmt: skip

    def _open(self, frame: bytes, link_id: str) -> Envelope | MeshError:
        # Decode, then the security checks; what fails comes back as the sender's error.
        try:
            env = self._codec.decode(frame)
        except SignatureError as exc:
            return self._refuse("signature", None, exc, frame_bytes=_size(frame))
        except ProtocolError as exc:
            self._stats.refused += 1
            error = exc.with_context(agent=self._name)
            self._endpoint.dead_letter("decode", None, error, frame_bytes=_size(frame))
            return error
        if env.recipient != self._name or env.to_incarnation != self._incarnation:
            return self._refuse("misdirected", env, MisdirectedError(
                f"frame for {env.recipient!r} (incarnation {env.to_incarnation}) came to "
                f"{self._name!r} (incarnation {self._incarnation})",
                trace_id=env.trace_id,
                hint="the sender holds a stale or wrong address; it looks the agent up again "
                "after a restart",
            ), frame_bytes=_size(frame))  # fmt: skip
        refusal = self._guard.check(env, link_id)
        if refusal is not None:
            return self._refuse(refusal[0], env, refusal[1], frame_bytes=_size(frame))
        return env

    def _refuse(
        self, reason: str, header: Envelope | None, error: MeshError, *, frame_bytes: int | None
    ) -> MeshError:
        # Every refusal of a frame by the security checks passes here: counted by reason
        # and dead-lettered (header only, redacted), never handled.
        self._stats.refused += 1
        self._stats.refusals[reason] = self._stats.refusals.get(reason, 0) + 1
        error = error.with_context(agent=self._name)
        self._endpoint.dead_letter(reason, header, error, frame_bytes=frame_bytes)
        return error


def _tarpit(owed_s: float, served_s: float) -> float:
    """Return the pause to serve now: what is owed, within `MAX_TARPIT_S` a call in all.

    A tarpit: refusals earn `refusal_penalty` times the time they took, and the sender's
    link waits for this call, so a sender of bad (or refused) frames gets at most
    1 / (1 + penalty) of this host's time.
    """
    return max(0.0, min(owed_s, MAX_TARPIT_S - served_s))


def _size(frame: Any) -> int | None:
    try:
        return len(frame)
    except TypeError:
        return None
