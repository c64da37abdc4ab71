"""Bad frames for the fuzz scenario: random, truncated, flipped, deep, bombs, bad text, schema.

Each maker takes a seeded `random.Random` and the target agent's address (its name and
incarnation: a fuzzer that knows where it sends) and returns the frame's kind and its
bytes. The frames bypass the sender's codec, the way a buggy or hostile peer would
write them; a few are still valid by chance (a bit flip in a text field), and the
target may handle those.

`decode_bombs` are frames whose header is well-formed and whose payload, within the
frame cap, costs a decoder without limits far more than its bytes: floods of empty
arrays and maps, a huge map, nesting past the depth limit, a long string (valid, and
handled), and a payload over the payload cap.
"""

from __future__ import annotations

import os
import random
import struct
from collections.abc import Callable

import msgpack

from benchmarks.chaos._agents import Say
from protocols import DEFAULT_MAX_PAYLOAD_BYTES, Codec, Envelope, Kind

__all__ = ["SENDER", "Address", "decode_bombs", "make_frames", "random_frame"]

#: The sender every fuzz frame names (a msgpack fixstr the invalid-UTF-8 maker breaks).
SENDER = "fuzzer"

#: The target agent's name and incarnation: what a frame must name to get past the door.
Address = tuple[str, str]

_codec = Codec()
_HEADER_FIELDS = 18
_PAYLOAD, _CHAIN = 13, 11  # positions of those header fields in the frame's array

Maker = Callable[[random.Random, Address], tuple[str, bytes]]


def make_frames(rng: random.Random, to: Address, count: int) -> list[tuple[str, bytes]]:
    """Return `count` bad frames for agent `to` in random order, three of them oversize."""
    oversize = _with_payload(_valid(rng, to), b"\x00" * (_codec.max_frame_bytes + 1))
    made = [rng.choice(_MAKERS)(rng, to) for _ in range(max(0, count - 3))]
    made += [("oversize", oversize)] * min(3, count)
    rng.shuffle(made)
    return made


def random_frame(rng: random.Random, to: Address) -> tuple[str, bytes]:
    """Return one bad frame of a random kind (the oversize kind aside)."""
    return rng.choice(_MAKERS)(rng, to)


def decode_bombs(rng: random.Random, to: Address) -> list[tuple[str, bytes]]:
    """Return one frame of each decode bomb for agent `to`, each within the frame cap."""
    per, chunks = 60_000, 4  # arrays short enough for max_array_len; 240,000 objects in all
    deep = rng.choice((40, 200, 900))
    bombs = {
        "bomb: empty-array flood": _array(chunks) + (_array(per) + b"\x90" * per) * chunks,
        "bomb: empty-map flood": _array(chunks) + (_array(per) + b"\x80" * per) * chunks,
        "bomb: huge map": b"\xdf" + struct.pack(">I", 90_000)
        + b"".join(b"\xce" + struct.pack(">I", i) + b"\xc0" for i in range(90_000)),
        "bomb: deep nesting": b"\x91" * deep + b"\xc0",
        "bomb: long string (valid)": msgpack.packb("x" * (DEFAULT_MAX_PAYLOAD_BYTES - 64)),
    }  # fmt: skip
    bombs["bomb: payload over the cap"] = msgpack.packb("y" * DEFAULT_MAX_PAYLOAD_BYTES)
    # Each a message of its own (its own id): the same id twice is a duplicate.
    return [(kind, _with_payload(_valid(rng, to), b"\x81\xa4text" + data))
            for kind, data in bombs.items()]  # fmt: skip


def _array(n: int) -> bytes:
    return b"\xdd" + struct.pack(">I", n)


def _valid(rng: random.Random, to: Address) -> Envelope:
    text = "".join(rng.choice("abcdef ") for _ in range(rng.randrange(40)))
    return Envelope(kind=Kind.TELL, type=Say.type_tag or "", sender=SENDER, recipient=to[0],
                    payload=_codec.encode_message(Say(text=text)), to_incarnation=to[1],
                    from_incarnation="1")  # fmt: skip


def _header_fields(env: Envelope) -> list[object]:
    return list(msgpack.unpackb(_codec.encode(env)))


def _frame_of(fields: list[object], raw: dict[int, bytes]) -> bytes:
    # A header array with some fields given as raw msgpack bytes (which packb could
    # not produce: nesting past its recursion limit, lengths that lie).
    parts = [
        raw.get(i) or msgpack.packb(field, use_bin_type=True) for i, field in enumerate(fields)
    ]
    return b"\xdc" + struct.pack(">H", len(parts)) + b"".join(parts)


def _with_payload(env: Envelope, payload: bytes) -> bytes:
    return _frame_of(_header_fields(env), {_PAYLOAD: msgpack.packb(payload, use_bin_type=True)})


def _nested(depth: int) -> bytes:
    return b"\x91" * depth + b"\xa1x"  # [[[...["x"]...]]]


def _random_bytes(rng: random.Random, name: Address) -> tuple[str, bytes]:
    return "random", rng.randbytes(rng.randrange(0, 600))


def _truncated(rng: random.Random, name: Address) -> tuple[str, bytes]:
    frame = _codec.encode(_valid(rng, name))
    return "truncated", frame[: rng.randrange(0, len(frame))]


def _bit_flips(rng: random.Random, name: Address) -> tuple[str, bytes]:
    frame = bytearray(_codec.encode(_valid(rng, name)))
    for _ in range(rng.randrange(1, 9)):
        frame[rng.randrange(len(frame))] ^= 1 << rng.randrange(8)
    return "bit flips", bytes(frame)


def _deep(rng: random.Random, name: Address) -> tuple[str, bytes]:
    depth = rng.choice((40, 200, 5000))
    env = _valid(rng, name)
    if rng.random() < 0.5:  # deep in the payload, behind a valid header
        return "deep payload", _with_payload(env, b"\x81\xa4text" + _nested(depth))
    return "deep header", _frame_of(_header_fields(env), {_CHAIN: _nested(depth)})


def _length_bomb(rng: random.Random, name: Address) -> tuple[str, bytes]:
    # Lengths of up to 4 GiB of string, bytes, array or map, announced and not sent.
    prefix = rng.choice((b"\xdb", b"\xc6", b"\xdd", b"\xdf"))
    bomb = prefix + rng.choice((b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff")) + rng.randbytes(8)
    if rng.random() < 0.5:
        return "length bomb", bomb
    return "length bomb", _frame_of(_header_fields(_valid(rng, name)), {_PAYLOAD: bomb})


def _bad_utf8(rng: random.Random, name: Address) -> tuple[str, bytes]:
    frame = _codec.encode(_valid(rng, name))
    # The sender's name as a msgpack fixstr: make one of its bytes invalid UTF-8.
    at = frame.index(b"\xa6" + SENDER.encode()) + 1 + rng.randrange(len(SENDER))
    return "invalid utf-8", frame[:at] + rng.choice((b"\xff", b"\xc3", b"\xed")) + frame[at + 1 :]


def _wrong_schema(rng: random.Random, name: Address) -> tuple[str, bytes]:
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
        fields[rng.randrange(1, _HEADER_FIELDS)] = rng.choice(
            (3.5, -1, {"a": 1}, [1, 2], None, True)
        )
    elif choice == 4:  # too few or too many fields
        fields = fields[: rng.randrange(_HEADER_FIELDS)] + (
            [0] * rng.randrange(2) if rng.random() < 0.5 else []
        )
    else:  # not even an array
        return "wrong schema", bytes(msgpack.packb(rng.choice(({"v": 1}, 7, "frame", b"x"))))
    return "wrong schema", bytes(msgpack.packb(fields, use_bin_type=True))


_MAKERS: list[Maker] = [
    _random_bytes, _truncated, _bit_flips, _deep, _length_bomb, _bad_utf8, _wrong_schema,
]  # fmt: skip
