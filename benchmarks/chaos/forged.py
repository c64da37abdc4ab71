"""Forged frames at a signed agent: flips, a wrong key, replays, spoofing, misdirection, rights.

The chaos run's own mesh is unsigned, so the scenario starts a signed agent of its
own: a host with a config that carries a fresh secret, in the same Ray namespace and
registry, under a team access policy that lets drivers send it `Say` and nothing else.
An attacker who holds the secret for some attacks and not for others then calls the
host's inbound method with raw frames, as a hostile peer would:

- byte flips: every byte of `frames` signed frames flipped in turn (header, payload,
  key id, signing time, MAC and magic alike);
- wrong key: frames signed with another secret, under its own key id or the host's;
- replay: signed frames taken once, then sent again on a fresh link of the same sender;
- spoofed sender: frames signed by a key holder that name another sender than the
  link they come in on;
- denied type: signed frames of a type the access policy does not let drivers send;
- another recipient: signed frames naming another agent, delivered to this one;
- an earlier incarnation: signed frames for this agent's name but another incarnation
  (what a frame sent before a restart, or captured then, names);
- driver flag added: a signed frame of a sender without driver rights, its flag bit
  set afterwards (the flag is under the signature);
- an ``edge-`` name without the flag: signed frames from a sender named like a driver
  but without the driver flag, of the type only drivers may send;
- replies from the wrong peer: a second signed agent waits on an ask to a third; the
  attacker, knowing the ask's id, answers it in its own (signed) name. Each must be
  refused, and the ask must still get its real answer afterwards.

Every attempt must be refused with the typed error of its attack, counted under its
reason and dead-lettered, and none may reach the agent; a well-formed signed ask must
still be answered afterwards, and an agent named ``edge-x`` must be refused at spawn.
The last line checks the source of `protocols.signing`: MACs are compared with
`hmac.compare_digest` and never with ``==``.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import ray

import protocols.signing
from benchmarks.chaos._agents import Echoer, Reset, Say
from benchmarks.chaos._figure import Figure, as_share
from benchmarks.chaos._holding import AskIs, Held, Holder, HoldOn, LetGo, Waiter, WhatAsk
from benchmarks.chaos._support import eventually, unique
from mesh.config import MeshConfig
from mesh.control import AgentSpec, TeamSpec, start_host, with_access
from mesh.edge import Mesh
from mesh.errors import AccessDeniedError, ConfigError, MeshError, MisdirectedError
from protocols import (
    DRIVER,
    Codec,
    Envelope,
    Kind,
    Message,
    ReplayError,
    SignatureError,
)
from protocols.calls import open_result, pack_call
from protocols.errors import error_class
from protocols.signing import TRAILER_BYTES

__all__ = ["Attack", "ForgedFigures", "MacCheck", "forged_frames", "mac_comparisons"]

#: Frames per Ray call.
_BATCH = 500


@dataclass
class Attack:
    """How one kind of forged frame fared: each attempt must be refused, typed, recorded."""

    name: str
    reason: str
    expected: str
    attempts: int = 0
    refused: int = 0
    typed: int = 0
    counted: int = 0
    dead_letters: int = 0

    @property
    def held(self) -> bool:
        """True when every attempt was refused with its error, counted and dead-lettered."""
        n = self.attempts
        return n > 0 and self.refused == self.typed == self.counted == self.dead_letters == n


@dataclass
class MacCheck:
    """What the source of `protocols.signing` compares MACs with."""

    compare_digest_calls: int
    equality_on_macs: list[int] = field(default_factory=list)

    @property
    def held(self) -> bool:
        """True when MACs are compared with `hmac.compare_digest` only."""
        return self.compare_digest_calls > 0 and not self.equality_on_macs


@dataclass
class ForgedFigures:
    """How a signed agent took forged, replayed, spoofed and denied frames."""

    frames: int
    attacks: list[Attack] = field(default_factory=list)
    reached_agent: int = 0
    still_accepts: bool = False
    real_answer_after_wrong_peers: bool = False
    edge_name_refused: bool = False
    mac: MacCheck | None = None

    def lines(self) -> list[Figure]:
        """Return this scenario's lines of the chaos table."""
        name = f"forged frames at a signed agent ({self.frames} signed frames per attack)"
        lines = [
            Figure(
                name,
                f"{attack.name}: refused ({attack.expected}, dead-lettered)",
                f"{as_share(attack.refused, attack.attempts)}; typed {attack.typed:,}, "
                f"dead letters {attack.dead_letters:,}",
                "100%",
                attack.held,
            )
            for attack in self.attacks
        ]
        lines += [
            Figure(
                name,
                "refused frames that reached the agent",
                str(self.reached_agent),
                "0",
                self.reached_agent == 0,
            ),
            Figure(
                name,
                "a well-formed signed ask answered afterwards",
                "yes" if self.still_accepts else "no",
                "yes",
                self.still_accepts,
            ),
            Figure(
                name,
                "the ask answered by wrong peers got its real answer",
                "yes" if self.real_answer_after_wrong_peers else "no",
                "yes",
                self.real_answer_after_wrong_peers,
            ),
            Figure(
                name,
                "an agent named edge-x refused at spawn (ConfigError)",
                "yes" if self.edge_name_refused else "no",
                "yes",
                self.edge_name_refused,
            ),
        ]
        if self.mac is not None:
            found = self.mac.equality_on_macs
            value = (
                f"{self.mac.compare_digest_calls} compare_digest call(s), "
                f"== on a MAC at lines {found}"
                if found
                else f"{self.mac.compare_digest_calls} compare_digest call(s), no == on a MAC"
            )
            lines.append(
                Figure(
                    name, "MAC comparison: hmac.compare_digest only", value, "yes", self.mac.held
                )
            )
        return lines


async def forged_frames(mesh: Mesh, *, frames: int) -> ForgedFigures:
    """Attack a signed agent with forged frames built from `frames` signed frames each."""
    config = MeshConfig(**{**mesh.config.model_dump(), "secret": secrets.token_hex(24)})
    name = unique("signed")
    host, info = await start_host(_guarded_spec(name), config)
    figures = ForgedFigures(frames=frames, mac=mac_comparisons())
    attacker = _Attacker(host, config.codec(), f"edge-{secrets.token_hex(4)}", name,
                         info.incarnation)  # fmt: skip
    try:
        before = await host.stats.remote()
        figures.attacks.append(await attacker.flip_bytes(frames))
        figures.attacks.append(await attacker.wrong_key(frames))
        figures.attacks.append(await attacker.replay(frames))
        figures.attacks.append(await attacker.spoof(frames))
        figures.attacks.append(await attacker.denied_type(frames))
        figures.attacks.append(await attacker.another_recipient(frames))
        figures.attacks.append(await attacker.earlier_incarnation(frames))
        figures.attacks.append(await attacker.driver_flag_added(frames))
        figures.attacks.append(await attacker.edge_name_without_flag(frames))
        wrong_peer, figures.real_answer_after_wrong_peers = await _wrong_peers(config, frames)
        figures.attacks.append(wrong_peer)
        figures.edge_name_refused = await _edge_name_refused(config)
        figures.still_accepts = await attacker.still_accepted()
        after = await host.stats.remote()
        # Taken by a handler: the replayed frames' first sends, and the last ask; no more.
        taken = after["handled"] + after["failed"] - before["handled"] - before["failed"]
        figures.reached_agent = taken - frames - 1
    finally:
        await host.stop.remote()
        ray.kill(host)
    return figures


def _guarded_spec(name: str) -> AgentSpec:
    """An `Echoer` whose team lets drivers send it `Say` only (not `Reset`)."""
    team = TeamSpec.model_validate(
        {
            "name": unique("signed-team"),
            "agents": [{"name": name, "agent": Echoer}],
            "access": {
                "edge": False,
                "allow": [{"from": ["edge"], "to": ["*"], "types": [Say.type_tag]}],
            },
        }
    )
    return with_access(team).agents[0]


class _Attacker:
    """Sends raw frames to a signed host as a driver (edge) that may or may not hold the key."""

    def __init__(
        self, host: Any, codec: Codec, sender: str, recipient: str, incarnation: str
    ) -> None:
        self._host = host
        self._codec = codec
        self._sender = sender
        self._recipient = recipient
        self._incarnation = incarnation  # the host's: what its frames are bound to
        self._mine = secrets.token_hex(8)
        self._links = 0
        self._link = self._new_link()
        self._seq = 0
        self._made = 0

    def _new_link(self) -> str:
        self._links += 1
        return f"{self._sender}#{self._mine}/{self._links}"

    def signed(
        self,
        *,
        message: Message | None = None,
        sender: str | None = None,
        kind: Kind = Kind.TELL,
        recipient: str | None = None,
        to_incarnation: str | None = None,
        flags: int = DRIVER,
        correlation_id: str | None = None,
    ) -> bytes:
        """Return a correctly signed frame (the attacker holds the key for this one)."""
        self._made += 1
        message = message or Say(text=f"frame {self._made}")
        env = Envelope(
            kind=kind,
            type=message.type_tag or "",
            sender=sender or self._sender,
            recipient=recipient or self._recipient,
            payload=self._codec.encode_message(message),
            deadline=time.time() + 30,
            correlation_id=correlation_id,
            to_incarnation=to_incarnation or self._incarnation,
            from_incarnation=self._mine,
            flags=flags,
        )
        return self._codec.encode(env)

    async def flip_bytes(self, frames: int) -> Attack:
        flipped = []
        for _ in range(frames):
            frame = self.signed()
            flipped += [
                frame[:i] + bytes([frame[i] ^ 0xFF]) + frame[i + 1 :] for i in range(len(frame))
            ]
        return await self._attack(
            Attack("every byte flipped", "signature", "SignatureError"), flipped, SignatureError
        )

    async def wrong_key(self, frames: int) -> Attack:
        other = MeshConfig(secret=secrets.token_hex(24)).codec()
        ours = self.signed()[-TRAILER_BYTES:][:8]  # the host's key id: on every frame
        forged = []
        for i in range(frames):
            frame = other.encode(
                Envelope(
                    kind=Kind.TELL,
                    type=Say.type_tag or "",
                    sender=self._sender,
                    recipient=self._recipient,
                    payload=other.encode_message(Say(text="wrong key")),
                    to_incarnation=self._incarnation,
                    from_incarnation=self._mine,
                    flags=DRIVER,
                )
            )
            if i % 2:  # claims the host's key id; its MAC is still the other key's
                trailer = frame[-TRAILER_BYTES:]
                frame = frame[:-TRAILER_BYTES] + ours + trailer[len(ours) :]
            forged.append(frame)
        return await self._attack(
            Attack("wrong key", "signature", "SignatureError"), forged, SignatureError
        )

    async def replay(self, frames: int) -> Attack:
        originals = [self.signed() for _ in range(frames)]
        stats = await self._host.stats.remote()
        taken = await self._send(originals)
        assert not taken, f"well-formed signed frames were refused: {taken[:3]}"

        async def handled() -> bool:
            now = await self._host.stats.remote()
            return bool(now["handled"] - stats["handled"] >= frames)

        await eventually(handled, within=30)
        self._link = self._new_link()  # a new link of the same sender: its own sequence
        self._seq = 0
        return await self._attack(
            Attack("replayed", "replay", "ReplayError"), originals, ReplayError
        )

    async def spoof(self, frames: int) -> Attack:
        spoofed = [self.signed(sender=f"admin-{i}") for i in range(frames)]
        return await self._attack(
            Attack("spoofed sender", "spoofed_sender", "SignatureError"), spoofed, SignatureError
        )

    async def denied_type(self, frames: int) -> Attack:
        denied = [self.signed(message=Reset()) for _ in range(frames)]
        return await self._attack(
            Attack("type the access policy denies", "access", "AccessDeniedError"),
            denied,
            AccessDeniedError,
        )

    async def another_recipient(self, frames: int) -> Attack:
        misdirected = [self.signed(recipient=f"agent-{i}") for i in range(frames)]
        return await self._attack(
            Attack("for another agent", "misdirected", "MisdirectedError"),
            misdirected,
            MisdirectedError,
        )

    async def earlier_incarnation(self, frames: int) -> Attack:
        earlier = [self.signed(to_incarnation=secrets.token_hex(8)) for _ in range(frames)]
        return await self._attack(
            Attack("for an earlier incarnation", "misdirected", "MisdirectedError"),
            earlier,
            MisdirectedError,
        )

    async def driver_flag_added(self, frames: int) -> Attack:
        # The flags are the header's last field, a fixint just before the trailer.
        at = -TRAILER_BYTES - 1
        flagged = []
        for _ in range(frames):
            frame = bytearray(self.signed(flags=0))
            frame[at] |= DRIVER
            flagged.append(bytes(frame))
        return await self._attack(
            Attack("driver flag added after signing", "signature", "SignatureError"),
            flagged,
            SignatureError,
        )

    async def edge_name_without_flag(self, frames: int) -> Attack:
        # The sender is named edge-…, on its own link, but its frames say it is no driver:
        # the policy lets drivers send Say, so a name alone must not.
        unflagged = [self.signed(flags=0) for _ in range(frames)]
        return await self._attack(
            Attack("an edge- name without the driver flag", "access", "AccessDeniedError"),
            unflagged,
            AccessDeniedError,
        )

    async def request(self, frame: bytes) -> Envelope:
        """Send an ask as its own call; return the decoded reply."""
        self._seq += 1
        answer = await self._host.request.remote(pack_call(self._link, self._seq - 1, frame))
        return self._codec.decode(answer)

    async def still_accepted(self) -> bool:
        """Ask with a fresh, well-formed signed frame; True if its reply comes back."""
        frame = self.signed(message=Say(text="well-formed"), kind=Kind.ASK)
        try:
            reply = await self.request(frame)
            return reply.kind is Kind.REPLY and self._codec.decode_message(reply, Say) == Say(
                text="well-formed"
            )
        except (MeshError, ray.exceptions.RayError):
            return False

    async def _attack(
        self, attack: Attack, frames: Sequence[bytes], expected: type[MeshError]
    ) -> Attack:
        before = await self._host.stats.remote()
        refusals = await self._send(frames)
        after = await self._host.stats.remote()
        attack.attempts = len(frames)
        attack.refused = len(refusals)
        attack.typed = sum(_is(error, expected) for error in refusals)
        attack.counted = after["refusals"].get(attack.reason, 0) - before["refusals"].get(
            attack.reason, 0
        )
        attack.dead_letters = after["dead_letters"] - before["dead_letters"]
        return attack

    async def _send(self, frames: Sequence[bytes]) -> list[dict[str, Any]]:
        refusals: list[dict[str, Any]] = []
        for start in range(0, len(frames), _BATCH):
            call = pack_call(self._link, self._seq, list(frames[start : start + _BATCH]))
            found, _ = open_result(await self._host.deliver.remote(call))
            self._seq += 1
            refusals += [error for _, error in found or []]
        return refusals


async def _wrong_peers(config: MeshConfig, frames: int) -> tuple[Attack, bool]:
    """Answer a held ask from the wrong peer `frames` times; then let the real answer go.

    Returns the attack, and whether the ask got its real answer after all.
    """
    waiter_name, holder_name = unique("waiter"), unique("holder")
    waiter, waiter_info = await start_host(AgentSpec.build(name=waiter_name, agent=Waiter), config)
    holder, holder_info = await start_host(AgentSpec.build(name=holder_name, agent=Holder), config)
    codec = config.codec()
    at_waiter = _Attacker(waiter, codec, f"edge-{secrets.token_hex(4)}", waiter_name,
                          waiter_info.incarnation)  # fmt: skip
    at_holder = _Attacker(holder, codec, f"edge-{secrets.token_hex(4)}", holder_name,
                          holder_info.incarnation)  # fmt: skip
    try:
        held = asyncio.create_task(
            at_waiter.request(at_waiter.signed(message=HoldOn(peer=holder_name), kind=Kind.ASK))
        )

        async def ask_id() -> str | None:
            reply = await at_holder.request(at_holder.signed(message=WhatAsk(), kind=Kind.ASK))
            return codec.decode_message(reply, AskIs).id

        asked: list[str] = []

        async def known() -> bool:
            found = await ask_id()
            asked.extend([found] if found else [])
            return bool(found)

        await eventually(known, within=30)
        answer = Held(text="a forged answer", by=holder_name)
        forged = [at_waiter.signed(message=answer, kind=Kind.REPLY, correlation_id=asked[0])
                  for _ in range(frames)]  # fmt: skip
        attack = await at_waiter._attack(
            Attack("replies from the wrong peer", "wrong_peer", "MisdirectedError"),
            forged,
            MisdirectedError,
        )
        await at_holder.request(at_holder.signed(message=LetGo(), kind=Kind.ASK))
        reply = await asyncio.wait_for(held, 60)
        real = reply.kind is Kind.REPLY and codec.decode_message(reply, Held) == Held(
            text="the real answer", by=holder_name
        )
    finally:
        for host in (waiter, holder):
            await host.stop.remote()
            ray.kill(host)
    return attack, real


async def _edge_name_refused(config: MeshConfig) -> bool:
    """Return True when an agent named like a driver is refused at spawn."""
    try:
        host, _ = await start_host(AgentSpec.build(name="edge-x", agent=Echoer), config)
    except ConfigError:
        return True
    await host.stop.remote()
    ray.kill(host)
    return False


def _is(error: dict[str, Any], expected: type[MeshError]) -> bool:
    cls = error_class(str(error.get("code")))
    return cls is not None and issubclass(cls, expected)


def mac_comparisons(source: str | None = None) -> MacCheck:
    """Check `source` (by default `protocols.signing`'s) for how it compares MACs.

    Counts the calls of ``compare_digest`` and lists the lines where ``==``, ``!=``,
    ``is`` or ``is not`` has a MAC-like operand: a name or attribute with "mac",
    "digest" or "signature" in it, or a call of one (``hmac.new(...).digest()``).
    Such a comparison returns as soon as a byte differs, which leaks through timing
    how much of a forged MAC is right.
    """
    tree = ast.parse(source if source is not None else inspect.getsource(protocols.signing))
    check = MacCheck(compare_digest_calls=0)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _named(node.func) == "compare_digest":
            check.compare_digest_calls += 1
        elif (
            isinstance(node, ast.Compare)
            and any(isinstance(op, ast.Eq | ast.NotEq | ast.Is | ast.IsNot) for op in node.ops)
            and any(_mac_like(operand) for operand in (node.left, *node.comparators))
        ):
            check.equality_on_macs.append(node.lineno)
    return check


def _named(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _mac_like(node: ast.expr) -> bool:
    return any(
        any(word in _named(inner).lower() for word in ("mac", "digest", "signature"))
        for inner in ast.walk(node)
        if isinstance(inner, ast.expr)
    )
