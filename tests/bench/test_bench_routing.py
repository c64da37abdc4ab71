"""The routing benchmark: the router learns what suffices, and saves at equal accuracy.

Everything runs through real model clients on the offline model with its `quality`
option, so the figures are exact for a seed; the assertions are the claims the docs make.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from conftest import Bench

from actors import LLMClient, PriceTable
from actors.routing import QualityRouter, escalate
from benchmarks import SUITES
from benchmarks.routing import load_tasks, run
from mesh import ConfigError


def test_the_task_set_is_100_checkable_questions_across_three_difficulties() -> None:
    tasks = load_tasks()
    assert len(tasks) == 100
    assert {t["difficulty"] for t in tasks} == {"easy", "medium", "hard"}
    for task in tasks:  # the answers are the expressions' values
        expression = task["question"].removeprefix("What is ").removesuffix("?")
        assert str(eval(expression)) == task["answer"]


async def test_the_offline_quality_option_answers_right_at_its_rate_per_difficulty() -> None:
    rates: dict[str, list[bool]] = {}
    async with LLMClient("offline:q?quality=easy:1,medium:0.5,hard:0") as client:
        for task in load_tasks():
            done = await client.complete(task["question"])
            right = done.text.endswith(f" {task['answer']}")
            rates.setdefault(task["difficulty"], []).append(right)
    assert all(rates["easy"])
    assert not any(rates["hard"])
    assert 0.2 < sum(rates["medium"]) / len(rates["medium"]) < 0.8


def test_a_bad_quality_is_refused_with_a_hint() -> None:
    with pytest.raises(ConfigError, match="quality") as caught:
        LLMClient("offline:q?quality=tricky:0.5")
    assert "easy" in (caught.value.hint or "")


async def test_the_router_learns_from_verdicts_and_escalates_on_failure() -> None:
    prices = PriceTable({"offline:cheap": {"input": 1, "output": 1},
                         "offline:dear": {"input": 10, "output": 10}})  # fmt: skip
    router = QualityRouter(["offline:dear", "offline:cheap"], prices=prices, seed=1)
    assert router.models == ["offline:cheap", "offline:dear"]  # ordered by price
    asked: list[str] = []

    async def ask(model: str) -> str:
        asked.append(model)
        return model

    async def verify(answer: str) -> bool:  # the cheap model never passes a hard request
        return answer == "offline:dear"

    for _ in range(30):
        done = await escalate(router, "hard", ask, verify)
        assert done.passed
        assert done.answer == "offline:dear"
    assert "offline:cheap" in asked  # unmeasured, it starts at the target: it is tried
    assert (
        router.estimates()["offline:cheap"]["hard"]
        < 0.5
        < router.estimates()["offline:dear"]["hard"]
    )
    # Learnt: after a few failures the requests go straight to the dear model.
    assert asked[-10:] == ["offline:dear"] * 10
    assert asked.count("offline:cheap") <= 5


def test_a_model_without_a_price_is_refused() -> None:
    with pytest.raises(ConfigError, match="no price"):
        QualityRouter(["openai:unknown-model"], prices=PriceTable(defaults=False))


def test_routing_saves_at_equal_accuracy() -> None:
    report = asyncio.run(run())
    by = {t["team"]: t for t in report["teams"]}
    assert by["routed"]["accuracy"] >= by["all-strong"]["accuracy"] > by["all-cheap"]["accuracy"]
    assert by["all-cheap"]["cost_usd"] < by["routed"]["cost_usd"] < by["all-strong"]["cost_usd"]
    assert report["saving"]["cost_saving"] > 0.3
    routed = by["routed"]["routed"]  # easy questions mostly go to the cheap model, hard to dear
    assert max(routed["easy"], key=routed["easy"].get) == "offline:small"
    assert max(routed["hard"], key=routed["hard"].get) == "offline:large"


@pytest.mark.timeout(120)
def test_raymesh_bench_routing_writes_its_json(bench: Bench, tmp_path: Path) -> None:
    assert "routing" in SUITES
    out = tmp_path / "routing.json"
    done = bench("routing", "--json", str(out), timeout=110)
    assert "routed saves" in done.stdout
    report = json.loads(out.read_text())["routing"]
    assert [t["team"] for t in report["teams"]] == ["routed", "all-strong", "all-cheap"]
