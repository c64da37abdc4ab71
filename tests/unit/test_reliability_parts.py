"""Dead-letter rings, id windows and state snapshots, without Ray."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from mesh import Agent, ConfigError, DeadLetter
from mesh.datapath._durable import Durability, IdWindow
from mesh.observability._deadletters import DeadLetterBox, collect_dead_letters
from protocols import Envelope, Kind


def _env(sender: str = "a", **fields: Any) -> Envelope:
    return Envelope(kind=Kind.TELL, type="t.x/1", sender=sender, recipient="b", payload=b"",
                    **fields)  # fmt: skip


def test_the_dead_letter_ring_keeps_the_last_ones_and_counts_all() -> None:
    box = DeadLetterBox("b", capacity=3)
    envs = [_env() for _ in range(5)]
    for env in envs:
        box.add("decode", env, ValueError("bad"))
    assert box.total == 5
    assert box.by_reason == {"decode": 5}
    assert [d.message_id for d in box.recent()] == [e.id for e in envs[-3:]]
    assert [d.message_id for d in box.recent(2)] == [e.id for e in envs[-2:]]
    assert box.recent(0) == []
    assert box.recent()[0].error_type == "ValueError"


def test_a_dead_letter_redacts_secrets_and_carries_no_payload(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-canary-1234567890abcdef1234")
    box = DeadLetterBox("b", capacity=3)
    box.add("handler_crash", _env(), "leaked sk-canary-1234567890abcdef1234 here")
    letter = box.newest()
    assert "sk-canary" not in letter.error
    assert "payload" not in letter.model_dump()


def test_a_frame_without_a_header_is_recorded_with_its_size() -> None:
    box = DeadLetterBox("b", capacity=1)
    box.add("decode", None, "junk", frame_bytes=7)
    letter = box.newest()
    assert (letter.type, letter.trace_id, letter.frame_bytes) == (None, None, 7)


class _Host:
    def __init__(self, rows: list[dict[str, Any]], *, hang: bool = False) -> None:
        self.dead_letters = self
        self._rows = rows
        self._hang = hang

    def remote(self) -> Any:
        async def answer() -> list[dict[str, Any]]:
            if self._hang:
                await asyncio.Event().wait()
            return self._rows

        return answer()


async def test_collecting_skips_a_host_that_does_not_answer_and_filters_by_agent() -> None:
    box = DeadLetterBox("x", capacity=10)
    theirs = DeadLetterBox("y", capacity=10)
    box.add("no_peer", _env(sender="x"), "gone")
    theirs.add("late", _env(sender="y"), "late")
    mine, other = box.newest().model_dump(), theirs.newest().model_dump()
    hosts = [_Host([mine]), _Host([other]), _Host([], hang=True)]
    letters = await collect_dead_letters(hosts, limit=10, timeout=0.2)
    assert [d.reason for d in letters] == ["no_peer", "late"]
    only = await collect_dead_letters(hosts, agent="y", limit=10, timeout=0.2)
    assert only == [DeadLetter.model_validate(other)]


def test_an_id_window_is_bounded_per_sender() -> None:
    window = IdWindow(2)
    first, second, third = _env(), _env(), _env()
    for env in (first, second, third):
        window.add(env.sender, env.id)
    assert not window.has(first)
    assert window.has(second)
    assert window.has(third)
    assert not window.has(_env(sender="other", id=third.id))  # per sender


class _State(BaseModel):
    value: int = 0


class _Holder:
    state: _State


async def _handled(
    durability: Durability, env: Envelope, agent: _Holder, *, snapshot: bool = True
) -> None:
    # As the handler runner does: record it, and snapshot when one is due.
    if durability.handled(env, snapshot=snapshot):
        await durability.save(agent)


async def test_snapshots_hold_state_and_handled_ids_and_restore_both(tmp_path: Path) -> None:
    path = tmp_path / "ns" / "agent.json"
    durability = Durability(_State, path=path, window=8, every=1)
    agent = _Holder()
    assert not durability.restore(agent)
    assert agent.state == _State()
    env = _env()
    agent.state.value = 41
    await _handled(durability, env, agent)
    assert json.loads(path.read_text()) == {
        "format": 1,
        "state": {"value": 41},
        "handled": {"a": [env.id]},
    }
    successor = Durability(_State, path=path, window=8, every=1)
    restored = _Holder()
    assert successor.restore(restored)
    assert restored.state.value == 41
    assert successor.duplicate(env)
    assert not successor.duplicate(_env())


async def test_concurrent_snapshots_are_coalesced_and_the_last_state_wins(tmp_path: Path) -> None:
    path = tmp_path / "agent.json"
    durability = Durability(_State, path=path, window=64, every=1)
    agent = _Holder()
    durability.restore(agent)

    async def handle(value: int) -> None:
        agent.state.value = value
        await _handled(durability, _env(), agent)

    await asyncio.gather(*(handle(i) for i in range(50)))
    assert json.loads(path.read_text())["state"] == {"value": 49}
    assert durability.snapshots < 50
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


async def test_snapshots_come_every_k_messages(tmp_path: Path) -> None:
    durability = Durability(_State, path=tmp_path / "a.json", window=8, every=3)
    agent = _Holder()
    durability.restore(agent)
    for _ in range(7):
        await _handled(durability, _env(), agent)
    assert durability.snapshots == 2


def test_a_snapshot_that_no_longer_fits_the_model_fails_the_start(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text('{"format": 1, "state": {"value": "many"}, "handled": {}}')
    with pytest.raises(ConfigError, match="delete the file"):
        Durability(_State, path=path, window=8, every=1).restore(_Holder())


def test_a_state_that_is_not_a_model_is_refused_at_class_definition() -> None:
    with pytest.raises(ConfigError, match="State"):

        class _Bad(Agent):
            State = dict  # type: ignore[assignment]


async def test_a_message_whose_handler_raised_is_remembered_but_not_snapshotted(
    tmp_path: Path,
) -> None:
    path = tmp_path / "a.json"
    durability = Durability(_State, path=path, window=8, every=1)
    agent = _Holder()
    durability.restore(agent)
    agent.state.value = 1
    await _handled(durability, _env(), agent)
    agent.state.value = 999  # half changed by a handler that then raised
    failed = _env()
    await _handled(durability, failed, agent, snapshot=False)
    assert json.loads(path.read_text())["state"] == {"value": 1}
    assert durability.duplicate(failed)
