"""A new envelope: the header of a message a participant sends, continuing a chain or not."""

from __future__ import annotations

import time

from mesh.config import MeshConfig
from mesh.errors import HopLimitError
from protocols import Codec, Envelope, Kind, Message, new_trace_id

__all__ = ["new_envelope"]


def new_envelope(
    kind: Kind,
    peer: str,
    msg: Message,
    *,
    sender: str,
    incarnation: str,
    flags: int,
    codec: Codec,
    config: MeshConfig,
    parent: Envelope | None,
    trace_id: str | None = None,
    timeout: float | None = None,
    budget: dict[str, float] | None = None,
) -> Envelope:
    """Return a new envelope for `msg` from `sender`, continuing `parent`'s chain if given.

    Raises:
        EncodeError: `msg` is not a sendable message.
        HopLimitError: The chain would pass the configured maximum of hops.
    """
    payload = codec.encode_message(msg)
    deadline: float | None = None
    if kind is Kind.ASK:
        deadline = time.time() + (config.ask_timeout_s if timeout is None else timeout)
    if parent is None:
        return Envelope(
            kind=kind,
            type=msg.type_tag or "",
            sender=sender,
            recipient=peer,
            payload=payload,
            trace_id=trace_id or new_trace_id(),
            deadline=deadline,
            budget=budget,
            from_incarnation=incarnation,
            flags=flags,
        )
    hops = parent.hops + 1
    if hops > config.max_hops:
        raise HopLimitError(
            f"sending {msg.type_tag!r} to {peer!r} would make a chain of {hops} hops",
            agent=sender,
            trace_id=parent.trace_id,
            hint=f"a loop between agents? the limit is max_hops={config.max_hops}",
        )
    if parent.deadline is not None:
        # A handler's own asks never outlive the message it is handling.
        deadline = parent.deadline if deadline is None else min(deadline, parent.deadline)
    # Only askers wait; nobody waits on a tell, so it starts a fresh chain.
    waiting = (*parent.chain, sender) if kind is Kind.ASK else ()
    return Envelope(
        kind=kind,
        type=msg.type_tag or "",
        sender=sender,
        recipient=peer,
        payload=payload,
        trace_id=parent.trace_id,
        parent_span_id=parent.span_id,
        deadline=deadline,
        hops=hops,
        chain=waiting,
        budget=budget,
        from_incarnation=incarnation,
        flags=flags,
    )
