"""Decoding is bounded while it unpacks: lengths, the object budget, depth, payload cap.

Each bomb is built from raw msgpack bytes (what a hostile peer would send) and must be
refused with a `DecodeLimitError` naming the setting, fast and without building the
objects it announces; legitimate payloads at the limits still decode.
"""

from __future__ import annotations

import struct
import tracemalloc
from typing import Any

import msgpack
import pytest

from mesh.config import MeshConfig
from protocols import (
    DRIVER,
    Codec,
    DecodeError,
    DecodeLimitError,
    EncodeError,
    Envelope,
    Kind,
    Message,
)


class Bag(Message, type="test.limits.bag/1"):
    """Carries any plain data."""

    data: Any = None


def _array(n: int) -> bytes:
    return b"\xdd" + struct.pack(">I", n)


def _map(n: int) -> bytes:
    return b"\xdf" + struct.pack(">I", n)


def _bag(data: bytes) -> bytes:
    return b"\x81\xa4data" + data  # {"data": <data>}


def _env(payload: bytes) -> Envelope:
    return Envelope(kind=Kind.TELL, type=Bag.type_tag or "", sender="a", recipient="b",
                    payload=payload)  # fmt: skip


def _refused(codec: Codec, payload: bytes) -> DecodeLimitError:
    with pytest.raises(DecodeLimitError) as info:
        codec.decode_message(_env(payload), Bag)
    assert info.value.limit
    assert info.value.limit in (info.value.hint or "")
    return info.value


#: Shapes of the 1 MiB bomb and its relatives, each with the setting that refuses it.
_MIB = 1024 * 1024
BOMBS = {
    "one array of a million empty arrays": (_array(_MIB - 16) + b"\x90" * (_MIB - 16),
                                            "max_array_len"),
    "ten arrays of 90,000 empty arrays": ((b"\x9a" + (_array(90_000) + b"\x90" * 90_000) * 10),
                                          "max_objects"),
    "empty maps": (b"\x9a" + (_array(90_000) + b"\x80" * 90_000) * 10, "max_objects"),
    "a map of 200,000 entries": (_map(200_000) + b"\x01\xc0" * 200_000, "max_map_len"),
    "a string longer than allowed": (b"\xdb" + struct.pack(">I", _MIB - 100) + b"a" * (_MIB - 100),
                                     "max_str_len"),
    "nesting past max_depth": (b"\x91" * 40 + b"\xc0", "max_depth"),
    "nesting past msgpack's own stack": (b"\x91" * 5000 + b"\xc0", "max_depth"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(BOMBS))
def test_each_bomb_is_refused_within_10_mib_of_heap(name: str) -> None:
    data, limit = BOMBS[name]
    codec = Codec(max_str_len=_MIB // 2)
    payload = _bag(data)
    tracemalloc.start()
    try:
        error = _refused(codec, payload)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert error.limit == limit
    assert peak < 10 * _MIB


def test_a_payload_over_its_cap_is_refused_before_unpacking_and_not_encoded() -> None:
    codec = Codec(max_payload_bytes=1000)
    error = _refused(codec, _bag(b"\xc4\xff" + b"x" * 255) * 4)
    assert error.limit == "max_payload_bytes"
    with pytest.raises(EncodeError, match="RAYMESH_MAX_PAYLOAD_BYTES"):
        codec.encode(_env(b"\x00" * 1001))
    # The header's own bin limit is the cap too: a frame from a peer with a larger one.
    frame = Codec().encode(_env(_bag(b"\xc5\x04\x00" + b"x" * 1024)))
    with pytest.raises(DecodeLimitError, match="max_payload_bytes"):
        codec.decode(frame)


def test_payloads_at_the_limits_decode() -> None:
    codec = Codec(max_objects=1000, max_array_len=500, max_depth=4)
    at_limit = {"data": [[0] * 100 for _ in range(4)] + [list(range(490))]}
    assert codec.decode_message(_env(msgpack.packb(at_limit)), Bag).data == at_limit["data"]
    deep = {"data": [[[1]]]}  # the payload's map is the first of 4 levels
    assert codec.decode_message(_env(msgpack.packb(deep)), Bag).data == [[[1]]]
    with pytest.raises(DecodeLimitError, match="deeper than 4"):
        codec.decode_message(_env(msgpack.packb({"data": [[[[1]]]]})), Bag)
    over = {"data": [list(range(400))] * 3}  # 1200 numbers, 4 arrays and a map
    assert _refused(codec, msgpack.packb(over)).limit == "max_objects"
    assert _refused(codec, msgpack.packb({"data": list(range(501))})).limit == "max_array_len"


def test_a_header_that_nests_is_refused_whatever_its_bytes() -> None:
    # A chain of arrays of arrays: the header holds at most its own array, the chain
    # and the budget map, so this fails at the fourth container, not after the bomb.
    codec = Codec()
    fields = msgpack.unpackb(codec.encode(_env(b"\x80")))
    bomb = msgpack.packb([[[]] * 200] * 200)
    parts = [msgpack.packb(f, use_bin_type=True) for f in fields]
    parts[11] = bomb
    frame = b"\xdc\x00\x12" + b"".join(parts)
    with pytest.raises(DecodeLimitError, match="more arrays and maps"):
        codec.decode(frame)


def test_the_header_binds_the_recipient_incarnation_and_the_driver_flag() -> None:
    codec = Codec()
    env = _env(b"\x80")
    env.to_incarnation, env.from_incarnation, env.flags = "inc-b", "inc-a", DRIVER
    back = codec.decode(codec.encode(env))
    assert (back.to_incarnation, back.from_incarnation, back.flags) == ("inc-b", "inc-a", DRIVER)
    fields = msgpack.unpackb(codec.encode(env))
    assert (fields[0], len(fields)) == (2, 18)
    malformed = [(15, 7, "incarnation"), (16, "", "incarnation"), (17, 2, "flags"),
                 (17, -1, "flags"), (17, "1", "flags")]  # fmt: skip
    for index, value, text in malformed:
        bad = list(fields)
        bad[index] = value
        with pytest.raises(DecodeError, match=text):
            codec.decode(msgpack.packb(bad, use_bin_type=True))
    old = list(fields[:15])
    old[0] = 1
    with pytest.raises(DecodeError, match="a frame must be a msgpack array of 18 fields"):
        codec.decode(msgpack.packb(old, use_bin_type=True))


def test_the_settings_reach_the_codec_and_must_fit_together() -> None:
    config = MeshConfig(max_payload_bytes=2048, max_objects=10, max_array_len=5, max_map_len=3,
                        max_str_len=100, max_depth=3)  # fmt: skip
    codec = config.codec()
    assert (codec.max_payload_bytes, codec.max_objects, codec.max_array_len, codec.max_map_len,
            codec.max_str_len, codec.max_depth) == (2048, 10, 5, 3, 100, 3)  # fmt: skip
    assert _refused(codec, msgpack.packb({"data": "x" * 101})).limit == "max_str_len"
    assert _refused(codec, msgpack.packb({"data": {str(i): 1 for i in range(4)}})).limit in (
        "max_map_len",
    )
    with pytest.raises(ValueError, match="raise max_frame_bytes"):
        MeshConfig(max_payload_bytes=MeshConfig().max_frame_bytes + 1)
    with pytest.raises(ValueError, match="raise mailbox_bytes"):
        MeshConfig(mailbox_bytes=4096, max_payload_bytes=8192)
