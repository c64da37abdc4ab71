"""HMAC-SHA256 signatures on frames, key rotation by key id, and replay refusal.

A signed frame is the plain msgpack frame followed by a fixed 52-byte trailer::

    frame | key_id (8) | signed_at (8, big-endian float64) | mac (32) | b"RMS1"

The MAC covers the key id, the signing time and every byte of the frame (header and
payload), so nothing in a frame can change without the key. The key id names which
key signed, so that during a rollover a receiver accepts the current key and the
previous ones without trying each. A trailer rather than a header field keeps the
codec's header check untouched and lets a receiver refuse a forged frame before
unpacking a byte of it. MACs are compared with `hmac.compare_digest` only.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import struct
import time
from collections import deque
from collections.abc import Sequence

from protocols._senders import PerSender
from protocols.errors import ReplayError, SignatureError

__all__ = [
    "MAKE_KEY",
    "MIN_KEY_BYTES",
    "TRAILER_BYTES",
    "ReplayGuard",
    "Signer",
    "is_signed",
    "key_id",
]

_MAGIC = b"RMS1"
_TRAILER = struct.Struct(">8sd32s4s")
TRAILER_BYTES = _TRAILER.size
_DOMAIN = b"raymesh.frame/1\x00"
#: The shortest key accepted: 32 random bytes, what HMAC-SHA256 needs for full strength.
MIN_KEY_BYTES = 32
#: How to make a key: what the errors about a short one suggest.
MAKE_KEY = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'


def key_id(key: bytes) -> bytes:
    """Return the 8-byte id of `key`: a MAC of a constant, so it reveals nothing of the key."""
    return hmac.new(key, b"raymesh.key-id/1", hashlib.sha256).digest()[:8]


def is_signed(frame: bytes | bytearray | memoryview) -> bool:
    """Return True when `frame` ends like a signed frame (its signature is not checked)."""
    return len(frame) >= TRAILER_BYTES and bytes(frame[-len(_MAGIC) :]) == _MAGIC


class Signer:
    """Signs frames with the current key and verifies them with the current or previous ones.

    Args:
        current: The key new frames are signed with.
        previous: Keys still accepted while a rollover reaches every host.

    Raises:
        ValueError: A key is shorter than `MIN_KEY_BYTES`, or two keys are the same.
    """

    __slots__ = ("_current", "_current_id", "_keys")

    def __init__(self, current: bytes, previous: Sequence[bytes] = ()) -> None:
        keys = [current, *previous]
        if any(len(key) < MIN_KEY_BYTES for key in keys):
            raise ValueError(
                f"a signing key must be at least {MIN_KEY_BYTES} bytes; make one with {MAKE_KEY}"
            )
        self._keys = {key_id(key): key for key in keys}
        if len(self._keys) != len(keys):
            raise ValueError("the current and previous signing keys must differ")
        self._current = current
        self._current_id = key_id(current)

    def sign(self, frame: bytes, *, now: float | None = None) -> bytes:
        """Return `frame` with its signature trailer."""
        signed_at = time.time() if now is None else now
        mac = self._mac(self._current, self._current_id, signed_at, frame)
        return frame + _TRAILER.pack(self._current_id, signed_at, mac, _MAGIC)

    def verify(self, signed: bytes) -> tuple[bytes, float]:
        """Return the frame inside `signed` and when it was signed.

        Raises:
            SignatureError: No trailer, an unknown key id, or a MAC that does not match.
        """
        data = bytes(signed)
        if not is_signed(data):
            raise SignatureError(
                "frame carries no signature",
                hint="every process of a signed mesh needs the same RAYMESH_SECRET",
            )
        frame = data[:-TRAILER_BYTES]
        kid, signed_at, mac, _ = _TRAILER.unpack(data[-TRAILER_BYTES:])
        key = self._keys.get(kid)
        if key is None:
            raise SignatureError(
                f"frame is signed with an unknown key (id {kid.hex()})",
                hint="a rollover in progress? list the old key in RAYMESH_PREVIOUS_SECRETS",
            )
        if not hmac.compare_digest(mac, self._mac(key, kid, signed_at, frame)):
            raise SignatureError("frame signature does not match its contents")
        return frame, signed_at

    @staticmethod
    def _mac(key: bytes, kid: bytes, signed_at: float, frame: bytes) -> bytes:
        mac = hmac.new(key, _DOMAIN, hashlib.sha256)
        mac.update(kid)
        mac.update(struct.pack(">d", signed_at))
        mac.update(frame)
        return mac.digest()


class ReplayGuard:
    """Refuses a signed frame seen before, or signed too long ago, per sender.

    A frame is identified by its message id and signing time: a replay repeats both
    (the attacker cannot re-sign), while a sender's own retry of a message is signed
    afresh and left to deduplication. Memory is bounded: each sender keeps at most
    `max_ids` entries; once it is full the oldest goes, and nothing signed at or before
    an evicted entry is accepted any more, so an evicted frame cannot come back.

    Args:
        window_s: How far a signing time may lie from this host's clock, either way.
        max_ids: Entries kept per sender.
        max_senders: Senders tracked; the least recently seen is forgotten first, and
            its frames older than `window_s` stay refused by the time check alone.
    """

    def __init__(self, *, window_s: float, max_ids: int = 65_536, max_senders: int = 4096) -> None:
        if window_s <= 0 or max_ids < 1 or max_senders < 1:
            raise ValueError("window_s must be > 0, max_ids and max_senders >= 1")
        self.window_s = window_s
        self.max_ids = max_ids
        self.max_senders = max_senders
        self._seen = PerSender(_SenderWindow, max_senders=max_senders)

    def check(self, sender: str, message_id: str, signed_at: float, *,
              now: float | None = None) -> None:  # fmt: skip
        """Record the frame, or raise if it must be refused.

        Raises:
            SignatureError: The signing time is outside the window of this host's clock.
            ReplayError: The frame was seen before, or is older than what was forgotten.
        """
        now = time.time() if now is None else now
        if not math.isfinite(signed_at) or abs(now - signed_at) > self.window_s:
            raise SignatureError(
                f"frame from {sender!r} was signed {now - signed_at:+.1f}s from now, "
                f"outside the {self.window_s:g}s window",
                agent=sender,
                hint="check the clocks of the nodes (NTP), or raise replay_window_s",
            )
        self._seen.heard_from(sender).admit(
            (message_id, signed_at), now - self.window_s, self.max_ids, sender
        )


class _SenderWindow:
    __slots__ = ("floor", "ids", "order")

    def __init__(self) -> None:
        self.ids: set[tuple[str, float]] = set()
        self.order: deque[tuple[str, float]] = deque()
        self.floor = -math.inf  # the latest signing time forgotten while still in the window

    def admit(self, key: tuple[str, float], oldest: float, limit: int, sender: str) -> None:
        while self.order and self.order[0][1] < oldest:
            self.ids.discard(self.order.popleft())
        if key in self.ids or key[1] <= self.floor:
            raise ReplayError(f"frame {key[0]} from {sender!r} was already received",
                              agent=sender)  # fmt: skip
        self.ids.add(key)
        self.order.append(key)
        if len(self.order) > limit:
            evicted = self.order.popleft()
            self.ids.discard(evicted)
            self.floor = max(self.floor, evicted[1])
