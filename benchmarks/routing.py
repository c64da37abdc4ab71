"""Routing measured: a routed team against an all-strong and an all-cheap one.

The task set (``benchmarks/data/routing_tasks.json``) is 100 arithmetic questions with
checkable answers, easy, medium and hard. Each team answers every question through real
model clients (`LLMClient`: retries, usage, the price table):

- **cheap** and **strong**: one model answers every question, once;
- **routed**: a `QualityRouter` picks the cheapest model whose measured success rate
  suffices for the question's difficulty, a verifier checks the answer against the
  task's answer, a failed answer escalates to the next dearer model, and every verdict
  updates the router's estimates.

Offline (the default) the models are ``offline:`` stand-ins with a `quality` per
difficulty and a price from the price table, so the figures are repeatable and cost
nothing. ``python -m benchmarks.routing --models openai:gpt-4o-mini,openai:gpt-4o`` runs
the same harness on real providers (their keys in the environment; their prices from
the default price table).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from actors import LLMClient, PriceTable, UsageLedger
from actors.routing import QualityRouter, escalate

__all__ = ["OFFLINE_MODELS", "TASKS", "Team", "load_tasks", "run", "saving", "table"]

#: The shipped task set.
TASKS = Path(__file__).parent / "data" / "routing_tasks.json"
#: The offline stand-ins, cheap to dear: quality per difficulty, USD per 1M tokens, latency.
OFFLINE_MODELS: dict[str, dict[str, Any]] = {
    "offline:small?quality=easy:0.97,medium:0.7,hard:0.25&latency_s=0.005":
        {"input": 0.15, "output": 0.6},
    "offline:medium?quality=easy:0.99,medium:0.93,hard:0.6&latency_s=0.01":
        {"input": 1.0, "output": 4.0},
    "offline:large?quality=easy:0.99,medium:0.97,hard:0.92&latency_s=0.02":
        {"input": 5.0, "output": 15.0},
}  # fmt: skip
SYSTEM = "Answer the arithmetic question. End with a last line 'Answer: <integer>'."
_INTEGER = re.compile(r"-?\d+")


@dataclass(frozen=True)
class Team:
    """One team's figures over the task set."""

    team: str
    tasks: int
    accuracy: float
    cost_usd: float
    calls: int
    latency_s: float
    #: Difficulty -> model -> questions first routed to it (routed team only).
    routed: dict[str, dict[str, int]]


def load_tasks(path: Path = TASKS) -> list[dict[str, str]]:
    """Read a task set: a JSON object whose ``tasks`` have question, answer and difficulty."""
    tasks: list[dict[str, str]] = json.loads(path.read_text(encoding="utf-8"))["tasks"]
    return tasks


def _correct(answer: str, expected: str) -> bool:
    """The verifier: the answer's last integer is the expected one (checked in code)."""
    found = _INTEGER.findall(answer)
    return bool(found) and found[-1] == expected


async def _team(
    name: str, tasks: list[dict[str, str]], clients: dict[str, LLMClient], ledger: UsageLedger,
    *, router: QualityRouter | None = None, single: str | None = None,
) -> Team:  # fmt: skip
    before = ledger.total.model_copy()
    right = 0
    routed: dict[str, dict[str, int]] = {}
    start = time.perf_counter()
    for task in tasks:

        async def ask(model: str, question: str = task["question"]) -> str:
            return (await clients[model].complete(question, system=SYSTEM, max_tokens=64)).text

        if router is None:
            assert single is not None  # a single-model team
            right += _correct(await ask(single), task["answer"])
            continue

        async def verify(answer: str, expected: str = task["answer"]) -> bool:
            return _correct(answer, expected)

        done = await escalate(router, task["difficulty"], ask, verify)
        right += done.passed
        first = routed.setdefault(task["difficulty"], {})
        model = done.attempts[0].model
        first[_short(model)] = first.get(_short(model), 0) + 1
    elapsed = time.perf_counter() - start
    after = ledger.total
    return Team(name, len(tasks), right / len(tasks), after.cost_usd - before.cost_usd,
                after.calls - before.calls, elapsed / len(tasks), routed)  # fmt: skip


async def run(
    models: Sequence[str] = tuple(OFFLINE_MODELS),
    *,
    prices: PriceTable | None = None,
    tasks: list[dict[str, str]] | None = None,
    target: float = 0.9,
    seed: int = 0,
) -> dict[str, Any]:
    """Run the three teams over the task set; return their figures and the router's estimates.

    Args:
        models: The models, any order (the price table orders them); cheap is the
            cheapest, strong the dearest.
        prices: Their prices (the offline stand-ins' by default).
        tasks: The task set (the shipped one by default).
        target: The success rate that suffices, for every difficulty.
        seed: The router's seed.

    Raises:
        ConfigError: A model is unusable (a bad string, a missing key) or has no price.
    """
    prices = prices or PriceTable({_short(m): p for m, p in OFFLINE_MODELS.items()})
    tasks = tasks if tasks is not None else load_tasks()
    ledger = UsageLedger()
    router = QualityRouter(models, prices=prices, default_target=target, seed=seed)
    cheap, strong = router.models[0], router.models[-1]
    clients = {m: LLMClient(m, prices=prices, ledger=ledger, agent="bench") for m in models}
    try:
        teams = [
            await _team("routed", tasks, clients, ledger, router=router),
            await _team("all-strong", tasks, clients, ledger, single=strong),
            await _team("all-cheap", tasks, clients, ledger, single=cheap),
        ]
    finally:
        for client in clients.values():
            await client.aclose()
    return {
        "models": {"cheap": _short(cheap), "strong": _short(strong), "all": router.models},
        "target": target,
        "teams": [asdict(t) for t in teams],
        "estimates": {_short(m): e for m, e in router.estimates().items()},
        "saving": saving(teams),
    }


def saving(teams: Sequence[Team]) -> dict[str, float]:
    """The routed team's cost saving against the all-strong team, with both accuracies."""
    by = {t.team: t for t in teams}
    routed, strong = by["routed"], by["all-strong"]
    return {
        "cost_saving": 1 - routed.cost_usd / strong.cost_usd if strong.cost_usd else 0.0,
        "routed_accuracy": routed.accuracy,
        "strong_accuracy": strong.accuracy,
        "accuracy_delta": routed.accuracy - strong.accuracy,
    }


def table(report: dict[str, Any]) -> Table:
    """The three teams side by side, with the saving at the routed team's accuracy."""
    out = Table(title=f"routing: {report['teams'][0]['tasks']} tasks, target {report['target']}")
    for column in ("team", "accuracy", "cost $", "calls", "latency ms / task"):
        out.add_column(column, justify="left" if column == "team" else "right")
    for team in report["teams"]:
        out.add_row(team["team"], f"{team['accuracy']:.0%}", f"{team['cost_usd']:.6f}",
                    str(team["calls"]), f"{team['latency_s'] * 1000:.1f}")  # fmt: skip
    cut = report["saving"]
    out.caption = (
        f"routed saves {cut['cost_saving']:.0%} of the all-strong cost at "
        f"{cut['routed_accuracy']:.0%} vs {cut['strong_accuracy']:.0%} accuracy"
    )
    return out


def _short(model: str) -> str:
    """A model string without its offline options: what prices and tables name."""
    return model.partition("?")[0]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.routing``: the harness on models of your choice."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.routing", description=__doc__)
    parser.add_argument("--models", help="comma-separated model strings (default: offline)")
    parser.add_argument("--target", type=float, default=0.9)
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args(argv)
    models = args.models.split(",") if args.models else list(OFFLINE_MODELS)
    prices = None if not args.models else PriceTable()
    report = asyncio.run(run(models, prices=prices, target=args.target))
    text = json.dumps({"routing": report}, indent=2)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
