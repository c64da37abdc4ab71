"""Data-path calls: every call and batch result round-trips, and anything else is refused
whole, as a DecodeError naming what was wrong, before it is built. No Ray."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols import DecodeError, DecodeLimitError, MeshError
from protocols.calls import (
    WHOLE_CALL,
    open_answers,
    open_batch_call,
    open_call,
    open_result,
    pack_answers,
    pack_call,
    pack_result,
)

_FRAME = 4096
_BATCH = 8
_frames = st.lists(st.binary(max_size=64), max_size=_BATCH)


@given(link_id=st.text(max_size=40), seq=st.integers(0, 2**63), frame=st.binary(max_size=_FRAME))
def test_a_one_frame_call_round_trips(link_id: str, seq: int, frame: bytes) -> None:
    assert open_call(pack_call(link_id, seq, frame)) == (
        link_id,
        seq,
        frame,
    )


@given(link_id=st.text(max_size=40), seq=st.integers(0, 2**63), frames=_frames)
def test_a_batch_call_round_trips(link_id: str, seq: int, frames: list[bytes]) -> None:
    call = pack_call(link_id, seq, frames)
    assert open_batch_call(call, max_batch=_BATCH) == (link_id, seq, frames)


@given(
    refused=st.lists(st.tuples(st.integers(0, _BATCH), st.sampled_from(["x", "y"])), max_size=3),
    carried=_frames,
)
def test_a_batch_result_round_trips(refused: list[tuple[int, str]], carried: list[bytes]) -> None:
    refusals = [(index, MeshError(text, agent="a").to_wire()) for index, text in refused] or None
    opened = open_result(pack_result(refusals, carried), max_batch=_BATCH)
    assert opened == (refusals, carried)


def _raw(*fields: Any) -> bytes:
    return msgpack.packb(list(fields), use_bin_type=True)


@pytest.mark.parametrize(
    ("call", "words"),
    [
        ("link#1/0", "must be bytes, not str"),
        (b"\xc1", "not valid msgpack"),
        (_raw("link#1/0", 0), "link id, sequence number, frames"),
        (_raw(7, 0, b"f"), "must start with a link id"),
        (_raw("link#1/0", -1, b"f"), "must start with a link id"),
        (_raw("link#1/0", True, b"f"), "must start with a link id"),
        (_raw("link#1/0", 0, "text"), "frame must be bytes, not str"),
        (_raw("link#1/0", 0, b"f", b"extra"), "link id, sequence number, frames"),
        (_raw("link#1/0", 0, b"f") + b"\x00", "not valid msgpack"),
    ],
)
def test_a_malformed_one_frame_call_is_refused_with_what_was_wrong(call: Any, words: str) -> None:
    with pytest.raises(DecodeError, match=words) as caught:
        open_call(call)
    assert caught.value.hint is not None


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (_raw("link#1/0", 0, b"f"), "an array of bytes"),
        (_raw("link#1/0", 0, [b"f", "text"]), "an array of bytes"),
        (_raw("link#1/0", 0, [[b"f"]]), "more arrays and maps than its shape has"),
    ],
)
def test_a_malformed_batch_call_is_refused_with_what_was_wrong(call: bytes, words: str) -> None:
    with pytest.raises(DecodeError, match=words):
        open_batch_call(call, max_batch=_BATCH)


def test_lengths_past_the_limits_are_refused_from_their_prefix_naming_the_setting() -> None:
    call = pack_call("link#1/0", 0, [b"x"] * (_BATCH + 1))
    with pytest.raises(DecodeLimitError, match="more frames than max_batch") as batch:
        open_batch_call(call, max_batch=_BATCH)
    assert batch.value.limit == "max_batch"
    with pytest.raises(DecodeLimitError, match="link id") as link:
        open_call(pack_call("n" * 100_000, 0, b"f"))
    assert link.value.limit == "link id"


def test_a_frame_of_any_length_opens_to_be_judged_on_its_own_by_the_frame_limits() -> None:
    # Bytes cost what the call already holds: an oversized frame is the codec's to refuse,
    # so one bad frame never takes the good ones of its batch down with it.
    frames = [b"ok", b"x" * 100_000]
    assert open_batch_call(pack_call("link#1/0", 0, frames)) == ("link#1/0", 0, frames)


@pytest.mark.parametrize(
    "result",
    [
        (None, []),  # a tuple, as Ray would return it: not the packed result
        _raw(None),
        _raw(None, ["text"]),
        _raw([[0]], []),
        _raw([["0", {}]], []),
        _raw([[0, "error"]], []),
        _raw("refusals", []),
    ],
)
def test_a_malformed_batch_result_is_refused(result: Any) -> None:
    with pytest.raises(DecodeError, match="result"):
        open_result(result, max_batch=_BATCH)


def test_nesting_inside_a_call_is_refused_as_it_is_built() -> None:
    bomb = b"\x91" * 500 + b"\x90"  # 500 arrays, each holding the next
    with pytest.raises(DecodeError, match="a call holds more arrays and maps"):
        open_batch_call(_raw("link#1/0", 0, []).replace(b"\x90", bomb), max_batch=_BATCH)
    with pytest.raises(DecodeError, match="result"):
        open_result(_raw(None, []).replace(b"\x90", bomb), max_batch=2)


@given(answers=st.lists(st.tuples(st.integers(WHOLE_CALL, _BATCH - 1), st.binary(max_size=64)),
                        max_size=_BATCH))  # fmt: skip
def test_an_asks_calls_answers_round_trip(answers: list[tuple[int, bytes]]) -> None:
    assert open_answers(pack_answers(answers), max_batch=_BATCH) == answers


@pytest.mark.parametrize(
    ("item", "words"),
    [
        (b"\xc1", "not valid msgpack"),
        (_raw(0, b"frame"), "must be \\[\\[index, reply frame\\], ...\\]"),
        (_raw([_BATCH, b"frame"]), "must be \\[\\[index, reply frame\\]"),  # no such ask
        (_raw([-2, b"frame"]), "must be \\[\\[index, reply frame\\]"),
        (_raw([0, "text"]), "answers holds a link id or text longer than allowed"),
        (_raw(*[[0, b"x"]] * (_BATCH + 1)), "more frames than max_batch"),
        (b"\x91" * 500 + b"\x90", "more arrays and maps than its shape has"),  # a bomb
    ],
    ids=["garbage", "not-pairs", "index-past-batch", "negative-index", "text-frame", "too-many",
         "nested"],
)  # fmt: skip
def test_a_malformed_asks_answer_is_refused_with_what_was_wrong(item: bytes, words: str) -> None:
    with pytest.raises(DecodeError, match=words):
        open_answers(item, max_batch=_BATCH)
