"""The chaos scenarios in their CI forms (full forms: `pytest -m long`), asserting guarantees only.

No figure of speed is asserted here: `raymesh chaos` reports those. What must hold on
any machine: no ask hangs and every one ends typed; no reorder within an incarnation
and no gap without an error; the registry is off the data path and is rebuilt; a hung
agent is found and replaced.
"""

from __future__ import annotations

import pytest

from benchmarks.chaos import chaos_conversation, hung_agent, order_across_restarts, registry_killed
from benchmarks.chaos.hung import LANE_REPORT
from mesh import Mesh, MeshError
from protocols.errors import error_class

pytestmark = pytest.mark.ray


def _is_error_name(name: str) -> bool:
    # "HandlerError(OutcomeUnknownError)" names the type it carries too.
    base = name.partition("(")[0]
    found = error_class(base)
    return found is not None and issubclass(found, MeshError)


#: The full-size forms: minutes each, on demand with `pytest -m long`.
FULL_FORM = [pytest.mark.slow, pytest.mark.long]


@pytest.mark.timeout(1800)
@pytest.mark.parametrize(
    ("asks", "kill_every_s"),
    # The CI form: enough asks for several kills to land mid-conversation (each second, on
    # 6 agents) at about a minute; `raymesh chaos --quick` runs 2,000.
    [(800, 1.0), pytest.param(10_000, 0.5, marks=FULL_FORM)],
    ids=["ci", "full"],
)
async def test_every_ask_of_a_chaos_conversation_ends_typed_and_none_hangs(
    mesh: Mesh, asks: int, kill_every_s: float
) -> None:
    figures = await chaos_conversation(mesh, asks=asks, kill_every_s=kill_every_s)
    assert figures.kills >= 3
    assert figures.hung == 0
    assert figures.untyped == 0
    assert figures.replies + sum(figures.errors.values()) == asks
    assert figures.replies > 0
    assert all(_is_error_name(name) for name in figures.errors), figures.errors


@pytest.mark.timeout(1800)
@pytest.mark.parametrize(
    ("messages", "kills"), [(1_000, 3), pytest.param(5_000, 5, marks=FULL_FORM)],
    ids=["ci", "full"],
)  # fmt: skip
async def test_order_holds_within_each_incarnation_and_every_gap_is_a_typed_error(
    mesh: Mesh, messages: int, kills: int
) -> None:
    figures = await order_across_restarts(mesh, messages=messages, kills=kills)
    assert figures.kills == kills
    assert figures.incarnations >= 2
    assert figures.reorders == 0
    assert figures.unreported == 0
    assert figures.handled + figures.gaps == messages
    assert all(_is_error_name(name) for name in figures.errors), figures.errors


@pytest.mark.timeout(600)
@pytest.mark.parametrize("kills", [3, pytest.param(10, marks=FULL_FORM)], ids=["ci", "full"])
async def test_killing_the_registry_fails_no_agent_message_and_every_agent_registers_again(
    mesh: Mesh, kills: int
) -> None:
    figures = await registry_killed(mesh, kills=kills)
    assert figures.kills == kills
    assert figures.messages > 0
    assert figures.failed == {}
    # Every kill was seen to empty the registry, and every agent came back after it (how
    # soon is the chaos report's figure: a loaded machine stretches it).
    assert figures.reregister_max_s is not None
    assert figures.returned == kills


@pytest.mark.timeout(300)
@pytest.mark.parametrize("fault", ["blocked loop", "SIGSTOP"])
async def test_a_hung_agent_is_detected_and_replaced_and_asks_to_it_end_typed(
    mesh: Mesh, fault: str
) -> None:
    figures = await hung_agent(mesh, fault=fault)  # type: ignore[arg-type]
    assert figures.detected_s is not None
    assert "stuck" in figures.reason
    assert figures.replaced_s is not None
    assert figures.hung == 0
    assert figures.replies + sum(figures.errors.values()) == figures.asks
    assert all(_is_error_name(name) for name in figures.errors), figures.errors
    if fault == "blocked loop":  # its control lane answered and reported the block
        assert figures.lane_answered
        assert figures.found_by == LANE_REPORT
