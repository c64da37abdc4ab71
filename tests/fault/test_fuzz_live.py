"""Random and mutated frames straight at a live agent's host: no crash, typed, dead-lettered.

The frames bypass the sender's codec and go to the host's own inbound methods, the way
a buggy or hostile peer would call them. Every frame must end one of three ways: refused
at the door with a typed error, taken and then dead-lettered (bad payload, no handler,
a stray reply), or, for the rare mutation that is still a valid message, handled. The
agent must keep serving. The CI form sends a few thousand frames; the full form
(100,000) runs on demand, with ``pytest -m long``.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Callable

import msgpack
import pytest
from _agents import Echo, Ping, Pong
from conftest import Spawn

from mesh import DeliveryError, Mesh, MeshError, ProtocolError
from protocols import Codec, Envelope, Kind
from protocols.errors import error_class

pytestmark = pytest.mark.ray

_codec = Codec()
_BATCH = 250


def _valid(rng: random.Random, recipient: str) -> Envelope:
    text = "".join(rng.choice("abcdef ") for _ in range(rng.randrange(40)))
    return Envelope(kind=Kind.TELL, type="test.ping/1", sender="fuzzer", recipient=recipient,
                    payload=_codec.encode_message(Ping(text=text)))  # fmt: skip


def _header_fields(env: Envelope) -> list[object]:
    return list(msgpack.unpackb(_codec.encode(env)))


def _frame_of(fields: list[object], raw: dict[int, bytes]) -> bytes:
    # A 15-field frame with some fields given as raw msgpack bytes (which packb could
    # not produce: nesting past its recursion limit, lengths that lie).
    parts = [
        raw.get(i) or msgpack.packb(field, use_bin_type=True) for i, field in enumerate(fields)
    ]
    return b"\x9f" + b"".join(parts)


def _with_payload(env: Envelope, payload: bytes) -> bytes:
    return _frame_of(_header_fields(env), {13: msgpack.packb(payload, use_bin_type=True)})


def _nested(depth: int) -> bytes:
    return b"\x91" * depth + b"\xa1x"  # [[[...["x"]...]]]


# Each maker returns (category, frame).
def _random_bytes(rng: random.Random, name: str) -> tuple[str, bytes]:
    return "random", rng.randbytes(rng.randrange(0, 600))


def _truncated(rng: random.Random, name: str) -> tuple[str, bytes]:
    frame = _codec.encode(_valid(rng, name))
    return "truncated", frame[: rng.randrange(0, len(frame))]


def _bit_flips(rng: random.Random, name: str) -> tuple[str, bytes]:
    frame = bytearray(_codec.encode(_valid(rng, name)))
    for _ in range(rng.randrange(1, 9)):
        frame[rng.randrange(len(frame))] ^= 1 << rng.randrange(8)
    return "bit flips", bytes(frame)


def _deep(rng: random.Random, name: str) -> tuple[str, bytes]:
    depth = rng.choice((40, 200, 5000))
    env = _valid(rng, name)
    if rng.random() < 0.5:  # deep in the payload, behind a valid header
        return "deep payload", _with_payload(env, b"\x81\xa4text" + _nested(depth))
    return "deep header", _frame_of(_header_fields(env), {11: _nested(depth)})  # the chain


def _length_bomb(rng: random.Random, name: str) -> tuple[str, bytes]:
    # Lengths of up to 4 GiB of string, bytes, array or map, announced and not sent.
    prefix = rng.choice((b"\xdb", b"\xc6", b"\xdd", b"\xdf"))
    bomb = prefix + rng.choice((b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff")) + rng.randbytes(8)
    if rng.random() < 0.5:
        return "length bomb", bomb
    return "length bomb", _frame_of(_header_fields(_valid(rng, name)), {13: bomb})


def _bad_utf8(rng: random.Random, name: str) -> tuple[str, bytes]:
    frame = _codec.encode(_valid(rng, name))
    # The sender's name, "fuzzer", as a msgpack fixstr: make one byte invalid UTF-8.
    at = frame.index(b"\xa6fuzzer") + 1 + rng.randrange(6)
    return "invalid utf-8", frame[:at] + rng.choice((b"\xff", b"\xc3", b"\xed")) + frame[at + 1 :]


def _wrong_schema(rng: random.Random, name: str) -> tuple[str, bytes]:
    env = _valid(rng, name)
    choice = rng.randrange(6)
    if choice == 0:  # the payload's fields have the wrong types
        return "wrong schema", _with_payload(env, msgpack.packb({"text": rng.randrange(99)}))
    if choice == 1:  # an unknown message type
        env.type = f"fuzz.unknown{rng.randrange(9)}/1"
        return "wrong schema", _codec.encode(env)
    if choice == 2:  # a reply to an ask that never was
        env.kind, env.correlation_id = Kind.REPLY, os.urandom(16).hex()
        return "stray reply", _codec.encode(env)
    fields = _header_fields(env)
    if choice == 3:  # a header field of the wrong type
        fields[rng.randrange(1, 15)] = rng.choice((3.5, -1, {"a": 1}, [1, 2], None, True))
    elif choice == 4:  # too few or too many fields
        fields = fields[: rng.randrange(15)] + (
            [0] * rng.randrange(2) if rng.random() < 0.5 else []
        )
    else:  # not even an array
        return "wrong schema", bytes(msgpack.packb(rng.choice(({"v": 1}, 7, "frame", b"x"))))
    return "wrong schema", bytes(msgpack.packb(fields, use_bin_type=True))


_MAKERS: list[Callable[[random.Random, str], tuple[str, bytes]]] = [
    _random_bytes, _truncated, _bit_flips, _deep, _length_bomb, _bad_utf8, _wrong_schema,
]  # fmt: skip


def _typed(error: dict[str, object]) -> bool:
    cls = error_class(str(error.get("code")))
    return cls is not None and issubclass(cls, ProtocolError | DeliveryError)


async def _fuzz(mesh: Mesh, spawn: Spawn, frames: int) -> None:
    seed = int(os.environ.get("RAYMESH_FUZZ_SEED", time.time_ns() % 2**32))
    print(f"fuzz seed {seed} (replay with RAYMESH_FUZZ_SEED={seed})")
    rng = random.Random(seed)
    echo = await spawn(Echo, "fuzzed")
    host = await mesh.actor(echo.name)
    incarnation = await host.ping.remote()
    before = await mesh.stats(echo.name)
    categories: Counter[str] = Counter()
    refused = untyped = 0
    made = [rng.choice(_MAKERS)(rng, echo.name) for _ in range(frames - 3)]
    oversize = _with_payload(_valid(rng, echo.name), b"\x00" * (_codec.max_frame_bytes + 1))
    made += [("oversize", oversize)] * 3
    rng.shuffle(made)
    for seq, start in enumerate(range(0, len(made), _BATCH)):
        batch = made[start : start + _BATCH]
        categories.update(category for category, _ in batch)
        refusals = await host.deliver.remote("fuzzer#1", seq, [frame for _, frame in batch])
        for _index, error in refusals or []:
            refused += 1
            untyped += not _typed(error)
    # The `request` lane too: a frame it cannot take still gets a typed error frame back.
    for seq in range(20):
        category, frame = rng.choice(_MAKERS)(rng, echo.name)
        reply = _codec.decode(await host.request.remote("fuzzer#2", seq, frame))
        assert reply.kind in (Kind.ERROR, Kind.REPLY), category
        if reply.kind is Kind.ERROR:
            error = _codec.decode_message(reply).model_dump()
            assert _typed(error), error
    # The agent keeps serving, in the same incarnation.
    assert await mesh.ask(echo.name, Ping(text="still here"), expect=Pong) == Pong(
        text="still here"
    )
    assert await host.ping.remote() == incarnation
    after = await mesh.stats(echo.name)
    received = after.received - before.received  # the request lane's and the ask included
    handled = after.handled - before.handled
    dead = after.dead_letters - before.dead_letters
    print(f"fuzz: {frames} frames {dict(categories)}; refused at the door {refused}, "
          f"dead letters {dead}, still valid and handled {handled}")  # fmt: skip
    assert untyped == 0
    assert received == frames + 20 + 1
    assert refused > frames // 2
    # Every frame that was not handled left exactly one dead letter.
    assert dead + handled == received


async def test_a_live_agent_survives_thousands_of_bad_frames(mesh: Mesh, spawn: Spawn) -> None:
    await _fuzz(mesh, spawn, int(os.environ.get("RAYMESH_FUZZ_FRAMES", "3000")))


@pytest.mark.slow
@pytest.mark.long
@pytest.mark.timeout(900)
async def test_a_live_agent_survives_a_hundred_thousand_bad_frames(
    mesh: Mesh, spawn: Spawn
) -> None:
    await _fuzz(mesh, spawn, 100_000)


def test_every_error_class_the_fuzzer_accepts_is_a_mesh_error() -> None:
    assert _typed({"code": "DecodeError"})
    assert _typed({"code": "MailboxFullError"})
    assert not _typed({"code": "NoSuchError"})
    assert issubclass(ProtocolError, MeshError)
