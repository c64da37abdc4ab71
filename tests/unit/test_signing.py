"""Signed frames: every forgery is refused before decoding, keys roll over, replays fail.

No Ray: the codec, the signer, the replay window and the host's inbound checks.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from pydantic import ValidationError

from mesh import ConfigError, MeshConfig
from mesh.datapath._acceptance import InboundGuard
from protocols import (
    Codec,
    Envelope,
    Kind,
    Message,
    ReplayError,
    ReplayGuard,
    SignatureError,
    Signer,
)
from protocols.signing import TRAILER_BYTES, key_id

KEY = b"k" * 32
OLD_KEY = b"o" * 32


class Order(Message, type="test.unit.order/1"):
    item: str
    quantity: int


def _envelope(rng: random.Random, codec: Codec, sender: str = "alice",
              incarnation: str = "inc1") -> Envelope:  # fmt: skip
    message = Order(item=rng.choice(["tea", "coffee", "ünïcode"]), quantity=rng.randrange(1000))
    return Envelope(
        kind=rng.choice([Kind.TELL, Kind.ASK]),
        type=Order.type_tag or "",
        sender=sender,
        recipient="bob",
        payload=codec.encode_message(message),
        deadline=1e10 if rng.random() < 0.5 else None,
        hops=rng.randrange(5),
        chain=("alice",),
        from_incarnation=incarnation,
    )


def test_a_signed_frame_round_trips_and_carries_its_signing_time() -> None:
    codec = Codec(signer=Signer(KEY))
    env = _envelope(random.Random(1), codec)
    frame = codec.encode(env)
    opened = codec.decode(frame)
    assert opened.signed_at is not None
    opened.signed_at = None
    assert opened == env
    assert len(frame) == len(Codec().encode(env)) + TRAILER_BYTES


def test_every_byte_of_100_signed_frames_flipped_is_refused() -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    codec = Codec(signer=Signer(KEY))
    tried = refused = 0
    for _ in range(100):
        frame = codec.encode(_envelope(rng, codec))
        for index in range(len(frame)):
            forged = bytearray(frame)
            forged[index] ^= 1 << rng.randrange(8)
            tried += 1
            with pytest.raises(SignatureError):
                codec.decode(bytes(forged))
            refused += 1
    assert refused == tried > 100 * 100, f"seed {seed}"


def test_truncated_and_extended_signed_frames_are_refused() -> None:
    codec = Codec(signer=Signer(KEY))
    frame = codec.encode(_envelope(random.Random(2), codec))
    for cut in range(len(frame)):
        with pytest.raises(SignatureError):
            codec.decode(frame[:cut])
    with pytest.raises(SignatureError):
        codec.decode(frame + b"\x00")
    with pytest.raises(SignatureError):
        codec.decode(b"\x00" + frame)


def test_a_frame_signed_with_a_wrong_key_is_refused() -> None:
    env = _envelope(random.Random(3), Codec())
    forged = Codec(signer=Signer(b"w" * 32)).encode(env)
    with pytest.raises(SignatureError, match="unknown key"):
        Codec(signer=Signer(KEY)).decode(forged)


def test_a_wrong_key_under_the_right_key_id_is_refused() -> None:
    # An attacker who learns the key id (it is on the wire) still cannot sign.
    env = _envelope(random.Random(4), Codec())
    frame = bytearray(Codec(signer=Signer(b"w" * 32)).encode(env))
    frame[-TRAILER_BYTES : -TRAILER_BYTES + 8] = key_id(KEY)
    with pytest.raises(SignatureError, match="does not match"):
        Codec(signer=Signer(KEY)).decode(bytes(frame))


def test_an_unsigned_frame_is_refused_by_a_signing_codec() -> None:
    env = _envelope(random.Random(5), Codec())
    with pytest.raises(SignatureError, match="no signature"):
        Codec(signer=Signer(KEY)).decode(Codec().encode(env))


def test_a_signed_frame_is_not_readable_without_the_key() -> None:
    env = _envelope(random.Random(6), Codec())
    with pytest.raises(SignatureError, match="no secret"):
        Codec().decode(Codec(signer=Signer(KEY)).encode(env))


def test_during_a_rollover_frames_of_the_previous_key_are_accepted() -> None:
    env = _envelope(random.Random(7), Codec())
    old_frame = Codec(signer=Signer(OLD_KEY)).encode(env)
    new_frame = Codec(signer=Signer(KEY, [OLD_KEY])).encode(env)
    rolled = Codec(signer=Signer(KEY, [OLD_KEY]))
    assert rolled.decode(old_frame).id == env.id
    assert rolled.decode(new_frame).id == env.id
    # Signing always uses the current key: a host on the old key alone refuses it...
    with pytest.raises(SignatureError, match="unknown key"):
        Codec(signer=Signer(OLD_KEY)).decode(new_frame)
    # ...and once the rollover ends, the old key's frames are refused.
    with pytest.raises(SignatureError, match="unknown key"):
        Codec(signer=Signer(KEY)).decode(old_frame)


def test_short_or_repeated_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes; make one with python -c"):
        Signer(b"s" * 31)
    with pytest.raises(ValueError, match="differ"):
        Signer(KEY, [KEY])


def test_a_replayed_frame_is_refused_but_a_fresh_signature_of_a_retry_is_not() -> None:
    guard = ReplayGuard(window_s=60)
    guard.check("alice", "m1", 1000.0, now=1000.0)
    with pytest.raises(ReplayError):
        guard.check("alice", "m1", 1000.0, now=1001.0)
    guard.check("alice", "m1", 1000.5, now=1001.0)  # re-signed retry: for dedup to judge
    guard.check("carol", "m1", 1000.0, now=1001.0)  # another sender's id space


def test_frames_signed_outside_the_window_are_refused() -> None:
    guard = ReplayGuard(window_s=60)
    with pytest.raises(SignatureError, match="outside"):
        guard.check("alice", "old", 900.0, now=1000.0)
    with pytest.raises(SignatureError, match="outside"):
        guard.check("alice", "future", 1100.0, now=1000.0)
    with pytest.raises(SignatureError):
        guard.check("alice", "nan", float("nan"), now=1000.0)


def test_the_replay_window_is_bounded_and_an_evicted_frame_cannot_come_back() -> None:
    guard = ReplayGuard(window_s=60, max_ids=10, max_senders=2)
    for n in range(100):
        guard.check("alice", f"m{n}", 1000.0 + n / 100, now=1001.0)
    window = guard._seen.get("alice")
    assert window is not None
    assert len(window.ids) == len(window.order) == 10
    with pytest.raises(ReplayError):
        guard.check("alice", "m0", 1000.0, now=1001.0)  # evicted, still refused
    for sender in ("bob", "carol", "dave"):
        guard.check(sender, "x", 1000.0, now=1001.0)
    assert len(guard._seen) == 2


def _signed_config() -> MeshConfig:
    return MeshConfig(secret="s" * 32)


def test_the_host_check_refuses_a_spoofed_sender_and_a_replay() -> None:
    config = _signed_config()
    codec = config.codec()
    guard = InboundGuard(name="bob", config=config)
    env = codec.decode(codec.encode(_envelope(random.Random(8), codec, sender="alice")))
    assert guard.check(env, "alice#inc1") is None
    reason, error = guard.check(env, "alice#inc1") or ("", None)
    assert reason == "replay"
    assert isinstance(error, ReplayError)
    spoof = codec.decode(codec.encode(_envelope(random.Random(9), codec, sender="admin")))
    reason, error = guard.check(spoof, "mallory#inc2") or ("", None)
    assert reason == "spoofed_sender"
    assert isinstance(error, SignatureError)
    assert "'admin'" in str(error)
    assert "'mallory'" in str(error)
    # The right name on a link of another incarnation: a stale or stolen frame.
    old = codec.decode(codec.encode(_envelope(random.Random(10), codec, incarnation="inc0")))
    assert (guard.check(old, "alice#inc1") or ("", None))[0] == "spoofed_sender"


def test_an_unsigned_mesh_makes_no_checks() -> None:
    codec = Codec()
    guard = InboundGuard(name="bob", config=MeshConfig())
    env = codec.decode(codec.encode(_envelope(random.Random(10), codec)))
    assert guard.check(env, "someone-else#1") is None
    assert guard.check(env, "someone-else#1") is None


def test_secrets_come_from_a_0600_file_and_never_show(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    path.write_text("# mesh\nRAYMESH_SECRET='" + "f" * 32 + "'\nOPENAI_API_KEY=sk-x\n")
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        MeshConfig(secrets_file=path)
    path.chmod(0o600)
    config = MeshConfig(secrets_file=path)
    assert config.secret is not None
    assert config.secret.get_secret_value() == "f" * 32
    assert "f" * 32 not in repr(config)
    assert "f" * 32 not in str(config)
    assert config.codec().signer is not None


def test_a_short_secret_or_previous_without_current_is_a_config_error() -> None:
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        MeshConfig(secret="s" * 31)
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        MeshConfig(secret="c" * 32, previous_secrets="p" * 31)
    with pytest.raises(ValidationError, match="secret is not"):
        MeshConfig(previous_secrets="p" * 32)
    config = MeshConfig(secret="c" * 32, previous_secrets=" " + "a" * 32 + ", " + "b" * 32)
    assert [k.get_secret_value() for k in config.previous_secrets] == ["a" * 32, "b" * 32]
