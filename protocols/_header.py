"""The frame header: its fields, their exact types and shapes, checked before any use.

A frame from a buggy or hostile peer fails here, named, and never inside a handler.
"""

from __future__ import annotations

import math
import re
from typing import Any

from protocols.envelope import KNOWN_FLAGS, Envelope, Kind
from protocols.errors import DecodeError

__all__ = [
    "FRAME_VERSION",
    "HEADER_STR_BYTES",
    "MAX_BUDGET_UNITS",
    "MAX_CHAIN",
    "check_header",
    "read_header",
]

FRAME_VERSION = 2
_FIELDS = 18
MAX_BUDGET_UNITS = 16
_MAX_NAME = 256
MAX_CHAIN = 256
_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_SPAN_ID = re.compile(r"[0-9a-f]{16}")
_KINDS = {kind.value: kind for kind in Kind}
HEADER_STR_BYTES = 4 * _MAX_NAME  # names are counted in characters, of up to 4 bytes


def read_header(fields: Any) -> Envelope:
    check_header(fields)
    (_, kind, tag, sender, recipient, trace_id, span_id, parent, corr, deadline, hops,
     chain, msg_id, payload, budget, to_incarnation, from_incarnation, flags) = fields  # fmt: skip
    return Envelope(
        kind=_KINDS[kind],
        type=tag,
        sender=sender,
        recipient=recipient,
        payload=payload,
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        correlation_id=corr,
        deadline=deadline,
        hops=hops,
        chain=tuple(chain),
        id=msg_id,
        budget=budget,
        to_incarnation=to_incarnation,
        from_incarnation=from_incarnation,
        flags=flags,
    )


def check_header(fields: Any) -> None:
    # Also run on encode, where building the envelope again would be wasted work.
    if type(fields) is not list or len(fields) != _FIELDS:
        raise DecodeError(f"a frame must be a msgpack array of {_FIELDS} fields")
    (version, kind, tag, sender, recipient, trace_id, span_id, parent, corr, deadline, hops,
     chain, msg_id, payload, budget, to_incarnation, from_incarnation, flags) = fields  # fmt: skip
    if version != FRAME_VERSION or type(version) is not int:
        raise DecodeError(f"unsupported frame version {version!r} (expected {FRAME_VERSION})")
    if type(kind) is not str or kind not in _KINDS:
        raise DecodeError(f"unknown envelope kind {kind!r}")
    _check_name("type", tag)
    _check_name("sender", sender)
    _check_name("recipient", recipient)
    _check_trace(trace_id, span_id, parent)
    if corr is not None:
        _check_name("correlation_id", corr)
    if deadline is not None and (type(deadline) not in (float, int) or not math.isfinite(deadline)):
        raise DecodeError(f"deadline {deadline!r} is not a finite number of epoch seconds")
    if type(hops) is not int or not 0 <= hops < 2**31:
        raise DecodeError(f"hops {hops!r} is not a small non-negative integer")
    if type(chain) is not list or len(chain) > MAX_CHAIN:
        raise DecodeError(f"chain must be a list of at most {MAX_CHAIN} agent names")
    for name in chain:
        _check_name("chain entry", name)
    _check_name("id", msg_id)
    if type(payload) is not bytes:
        raise DecodeError(f"payload must be msgpack bin, not {type(payload).__name__}")
    if budget is not None:
        _check_budget(budget)
    _check_binding(to_incarnation, from_incarnation, flags)


def _check_binding(to_incarnation: Any, from_incarnation: Any, flags: Any) -> None:
    for incarnation in (to_incarnation, from_incarnation):
        if incarnation is not None and (
            type(incarnation) is not str or not 0 < len(incarnation) <= _MAX_NAME
        ):
            raise DecodeError(
                f"an incarnation must be a non-empty string of at most {_MAX_NAME} characters"
            )
    if type(flags) is not int or flags & ~KNOWN_FLAGS or flags < 0:
        raise DecodeError(f"flags {flags!r} are not a combination of known flags")


def _check_trace(trace_id: Any, span_id: Any, parent: Any) -> None:
    if type(trace_id) is not str or not _TRACE_ID.fullmatch(trace_id):
        raise DecodeError(f"trace_id {trace_id!r} is not 32 lowercase hex digits")
    if type(span_id) is not str or not _SPAN_ID.fullmatch(span_id):
        raise DecodeError(f"span_id {span_id!r} is not 16 lowercase hex digits")
    if parent is not None and (type(parent) is not str or not _SPAN_ID.fullmatch(parent)):
        raise DecodeError(f"parent_span_id {parent!r} is not 16 lowercase hex digits")


def _check_budget(budget: Any) -> None:
    if type(budget) is not dict or len(budget) > MAX_BUDGET_UNITS:
        raise DecodeError(f"budget must be a map of at most {MAX_BUDGET_UNITS} units")
    for unit, amount in budget.items():
        _check_name("budget unit", unit)
        if type(amount) not in (int, float) or not math.isfinite(amount) or amount < 0:
            raise DecodeError(f"budget of {unit!r} must be a finite number >= 0, not {amount!r}")


def _check_name(what: str, value: Any) -> None:
    if type(value) is not str or not 0 < len(value) <= _MAX_NAME:
        raise DecodeError(f"{what} must be a non-empty string of at most {_MAX_NAME} characters")
