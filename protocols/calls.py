"""A data-path call between hosts: one msgpack argument, and one msgpack result.

A host's data-path methods take one argument, the call ``[link_id, seq, body]``: the
sender's link, the call's sequence number on it, and the body, one frame (`request`,
`stream`) or an array of frames (`deliver`). A `deliver` call's result is
``[refusals, carried]``: the refused frames as ``[index, wire error]`` pairs (nil when
every frame was taken; the index `WHOLE_CALL` when the call itself could not be opened,
which refuses every frame in it), and the reply frames the call carries back. An `asks`
call (the edge's asks made together) has a batch call's argument and yields its answers as
they come, each item ``[[index, reply frame], ...]``, the index that of the ask in the call
(`WHOLE_CALL`: the call could not be opened, and the frame is the error for every ask).

Why one blob, not Ray arguments: Ray serializes, ships and deserializes each argument
and each result apart, and on a small message that, not the bytes, is the cost.
Measured between two plain Ray actors on this 2-core machine (round trips one at a
time, medians of five runs of 1,000): a 1.3 KiB frame with its link id and sequence
number as three arguments 1,089 µs, as one call 997 µs; a batch of eight frames as
four arguments with a tuple result 1,150 µs, as one call with a msgpack result 975 µs.

Opening a call or a result is bounded like decoding a header: more frames than
`max_batch`, a link id longer than a header's names allow, more arrays and maps than
the shape has, or anything but this shape is refused as msgpack builds it, with a
`DecodeError` (`DecodeLimitError` for a length) that says what was wrong. The frames
inside are bytes, which cost what the call already holds: each is then decoded, and
refused or taken, on its own, within the frame limits (`Codec`).
"""

from __future__ import annotations

from typing import Any

import msgpack

from protocols._header import HEADER_STR_BYTES, MAX_CHAIN
from protocols._limits import describe, raise_hint
from protocols.errors import DecodeError, DecodeLimitError

__all__ = [
    "DEFAULT_MAX_BATCH",
    "PEER_HOST_HINT",
    "WHOLE_CALL",
    "Refusals",
    "open_answers",
    "open_batch_call",
    "open_call",
    "open_result",
    "pack_answers",
    "pack_call",
    "pack_result",
]

#: Frames one `deliver` call carries at most, unless the mesh says otherwise.
DEFAULT_MAX_BATCH = 512
#: The index of a refusal of a whole batch call, which could not be opened.
WHOLE_CALL = -1
#: A link id is an agent name, its incarnation and a serial: `name#incarnation/serial`.
_LINK_ID_BYTES = HEADER_STR_BYTES + 64
#: Entries of a wire error (its code, message, agent, trace, hint and details).
_ERROR_FIELDS = 32
#: Arrays and maps a batch result may build per frame of its call: a refusal's pair, its
#: wire error, and an array or two among the error's details (a deadlock's cycle).
_RESULT_CONTAINERS = 4
_CALL_HINT = (
    "raymesh's links send [link id, sequence number, frames]: the caller is buggy or hostile"
)

#: The hint of an error in what a peer host answered: its result or its items.
PEER_HOST_HINT = "a buggy or hostile peer host answered the call"
_SHAPE = "a call must be an array of [link id, sequence number, frames]"

#: The refused frames of a batch call: ``(index, wire error)`` pairs, or None.
Refusals = list[tuple[int, dict[str, Any]]] | None


def pack_call(link_id: str, seq: int, body: bytes | list[bytes]) -> bytes:
    """Return the call that carries `body` (a frame, or a batch) as call `seq` of `link_id`."""
    packed: bytes = msgpack.packb((link_id, seq, body), use_bin_type=True)
    return packed


def open_call(call: Any) -> tuple[str, int, bytes]:
    """Return the link id, sequence number and frame of a one-frame call.

    Raises:
        DecodeError: The call is not ``[link_id, seq, frame]``.
    """
    link_id, seq, frame = _unpack_call(call, max_batch=None)
    if type(frame) is not bytes:
        raise DecodeError(f"a call's frame must be bytes, not {type(frame).__name__}",
                          hint=_CALL_HINT)  # fmt: skip
    return link_id, seq, frame


def open_batch_call(
    call: Any, *, max_batch: int = DEFAULT_MAX_BATCH
) -> tuple[str, int, list[bytes]]:
    """Return the link id, sequence number and frames of a batch call.

    Raises:
        DecodeError: The call is not ``[link_id, seq, [frame, ...]]``, or holds more than
            `max_batch` frames.
    """
    link_id, seq, frames = _unpack_call(call, max_batch=max_batch)
    if type(frames) is not list or any(type(frame) is not bytes for frame in frames):
        raise DecodeError("a batch call's frames must be an array of bytes", hint=_CALL_HINT)
    return link_id, seq, frames


def pack_result(refusals: Refusals, carried: list[bytes]) -> bytes:
    """Return a batch call's result: the refused frames, and the reply frames it carries."""
    packed: bytes = msgpack.packb((refusals, carried), use_bin_type=True)
    return packed


def open_result(result: Any, *, max_batch: int = DEFAULT_MAX_BATCH) -> tuple[Refusals, list[bytes]]:
    """Return the refused frames and the carried replies of a batch call's `result`.

    Raises:
        DecodeError: The result is not ``[refusals, carried]`` of those shapes.
    """
    fields = _unpack(result, "a batch call's result",
                     max_array_len=max(max_batch, MAX_CHAIN + 1, 2), max_str_len=-1,
                     containers=_RESULT_CONTAINERS * (max_batch + 1),
                     hint=PEER_HOST_HINT)  # fmt: skip
    shaped = type(fields) is list and len(fields) == 2
    refusals, carried = fields if shaped else (None, None)
    if (
        not shaped
        or type(carried) is not list
        or any(type(frame) is not bytes for frame in carried)
        or not (refusals is None or _refusals(refusals))
    ):
        raise DecodeError("a batch call's result must be [refusals, carried frames]",
                          hint=PEER_HOST_HINT)  # fmt: skip
    return ([(index, error) for index, error in refusals] if refusals else None), carried


def pack_answers(answers: list[tuple[int, bytes]]) -> bytes:
    """Return an item of an `asks` call: reply frames by the index of the ask they answer."""
    packed: bytes = msgpack.packb(answers, use_bin_type=True)
    return packed


def open_answers(item: Any, *, max_batch: int = DEFAULT_MAX_BATCH) -> list[tuple[int, bytes]]:
    """Return the ``(index, reply frame)`` pairs of an item of an `asks` call.

    Raises:
        DecodeError: The item is not ``[[index, frame], ...]`` with indexes below
            `max_batch` (or `WHOLE_CALL`).
    """
    pairs = _unpack(item, "an asks call's answers", max_array_len=max(max_batch, 2),
                    max_str_len=0, containers=max_batch + 1, hint=PEER_HOST_HINT)  # fmt: skip
    if type(pairs) is not list or not all(
        type(pair) is list and len(pair) == 2 and type(pair[0]) is int
        and WHOLE_CALL <= pair[0] < max_batch and type(pair[1]) is bytes
        for pair in pairs
    ):  # fmt: skip
        raise DecodeError("an asks call's answers must be [[index, reply frame], ...]",
                          hint=PEER_HOST_HINT)  # fmt: skip
    return [(index, frame) for index, frame in pairs]


def _refusals(value: Any) -> bool:
    return type(value) is list and all(
        type(item) is list and len(item) == 2 and type(item[0]) is int and type(item[1]) is dict
        for item in value
    )


def _unpack_call(call: Any, *, max_batch: int | None) -> tuple[str, int, Any]:
    # `max_batch`: the frames a batch call may hold; None for a one-frame call.
    fields = _unpack(call, "a call",
                     max_array_len=3 if max_batch is None else max(max_batch, 3),
                     max_str_len=_LINK_ID_BYTES, containers=1 if max_batch is None else 2,
                     batched=max_batch is not None)  # fmt: skip
    if type(fields) is not list or len(fields) != 3:
        raise DecodeError(_SHAPE, hint=_CALL_HINT)
    link_id, seq, body = fields
    if type(link_id) is not str or type(seq) is not int or seq < 0:
        raise DecodeError("a call must start with a link id (str) and a sequence number "
                          "(int >= 0)", hint=_CALL_HINT)  # fmt: skip
    return link_id, seq, body


class _Containers:
    """Refuses a blob that builds more arrays and maps than its shape has, as msgpack
    builds each: however its bytes nest, a call costs a few containers."""

    __slots__ = ("_hint", "_left", "_what")

    def __init__(self, limit: int, what: str, hint: str) -> None:
        self._left = limit
        self._what = what
        self._hint = hint

    def take(self, container: Any) -> Any:
        self._left -= 1
        if self._left < 0:
            raise DecodeError(f"{self._what} holds more arrays and maps than its shape has",
                              hint=self._hint)  # fmt: skip
        return container


def _unpack(
    blob: Any, what: str, *, max_array_len: int, max_str_len: int, containers: int,
    batched: bool = True, hint: str = _CALL_HINT,
) -> Any:  # fmt: skip
    if type(blob) is not bytes:
        raise DecodeError(f"{what} must be bytes, not {type(blob).__name__}", hint=hint)
    shape = _Containers(containers, what, hint)
    try:
        return msgpack.unpackb(
            blob, raw=False, use_list=True, strict_map_key=True,
            max_str_len=max_str_len,
            max_array_len=max_array_len, max_map_len=_ERROR_FIELDS, max_ext_len=0,
            list_hook=shape.take, object_hook=shape.take,
        )  # fmt: skip
    except DecodeError:
        raise
    except Exception as exc:  # msgpack raises a zoo of types for bad input
        if "max_array_len" in str(exc) and not batched:
            raise DecodeError(_SHAPE, hint=_CALL_HINT) from None
        if "max_array_len" in str(exc):
            raise DecodeLimitError(
                f"{what} holds more frames than max_batch allows",
                limit="max_batch",
                hint=raise_hint("max_batch"),
            ) from None
        if "max_str_len" in str(exc):
            raise DecodeLimitError(
                f"{what} holds a link id or text longer than allowed",
                limit="link id",
                hint=_CALL_HINT,
            ) from None
        raise DecodeError(f"{what} is not valid msgpack: {describe(exc)}",
                          hint=hint) from None  # fmt: skip
