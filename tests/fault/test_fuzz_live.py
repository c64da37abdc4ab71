"""Random and mutated frames straight at a live agent's host: no crash, typed, dead-lettered.

The scenario is `benchmarks.chaos.fuzz_agent` (``raymesh chaos --only fuzz`` reports its
latency figures too); these tests assert its guarantees, never its speed. The CI form
sends a few thousand frames; the full form (100,000) runs with ``pytest -m long``.
Set ``RAYMESH_FUZZ_SEED`` to replay a run's frames (each run prints its seed).
"""

from __future__ import annotations

import os
import time

import pytest
from _hostcalls import deliver

from benchmarks.chaos import fuzz_agent, is_typed
from benchmarks.chaos._agents import Echoer
from mesh import Mesh, MeshConfig, MeshError, ProtocolError
from mesh.control._spawn import start_host
from mesh.control._team import AgentSpec

pytestmark = pytest.mark.ray


@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    "frames",
    [
        int(os.environ.get("RAYMESH_FUZZ_FRAMES", "3000")),
        pytest.param(100_000, marks=[pytest.mark.slow, pytest.mark.long]),
    ],
    ids=["ci", "full"],
)
async def test_a_live_agent_survives_a_flood_of_bad_frames_and_keeps_serving(
    mesh: Mesh, frames: int
) -> None:
    seed = os.environ.get("RAYMESH_FUZZ_SEED")
    figures = await fuzz_agent(
        mesh, frames=frames, seed=None if seed is None else int(seed), baseline_asks=50
    )
    print(f"fuzz seed {figures.seed} (replay with RAYMESH_FUZZ_SEED={figures.seed}): "
          f"{figures.by_kind}")  # fmt: skip
    assert figures.crashes == 0
    assert figures.serving
    assert figures.refused_typed == figures.refused
    assert figures.refused > figures.frames // 2
    # Every frame the host received (the bad ones, the well-formed asks before and
    # during the flood, and the last ask) was handled or left exactly one dead letter.
    assert figures.received == figures.frames + figures.baseline_asks + figures.fuzzed_asks + 1
    assert figures.dead_letters + figures.handled == figures.received
    assert figures.ask_errors == {}
    # Each decode bomb was refused by a limit, but the long string, which is valid.
    assert figures.bombs == 6
    assert (figures.bombs_refused_by_limit, figures.bombs_handled) == (5, 1)


def test_every_error_class_the_fuzzer_accepts_is_a_mesh_error() -> None:
    assert is_typed({"code": "DecodeError"})
    assert is_typed({"code": "MailboxFullError"})
    assert not is_typed({"code": "NoSuchError"})
    assert issubclass(ProtocolError, MeshError)


@pytest.mark.parametrize("penalty", [0.0, 500.0])
async def test_a_sender_of_refused_frames_waits_in_a_tarpit(mesh: Mesh, penalty: float) -> None:
    # The call that carried refused frames is answered only after `refusal_penalty`
    # times what refusing them took (at most 1 s), so the link of a flooding sender
    # slows down while the host serves the others.
    config = MeshConfig(**{**mesh.config.model_dump(), "refusal_penalty": penalty})
    name = f"tarpit-{int(penalty)}"
    host, _ = await start_host(AgentSpec(name=name, agent=Echoer), config)
    try:
        garbage = [b"\xc1 not msgpack %d" % n for n in range(50)]
        started = time.monotonic()
        refusals, _ = await deliver(host, "flooder#1", 0, garbage)
        held_s = time.monotonic() - started
        assert len(refusals) == len(garbage)
        if penalty:
            assert held_s >= 0.02  # 50 refusals take well over 40 us: 500x is over 20 ms
    finally:
        await mesh.stop(name)
