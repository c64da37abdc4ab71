"""Run each example team once and commit what it did: ``docs/teams/<team>.json``.

    python docs/_gen/record_teams.py            # every team, then the routing benchmark
    python docs/_gen/record_teams.py support_team

Each file holds the command, the answer, the agents' counters, the usage and the trace's
spans (ids, timing, tokens, outcome; no prompts), which `docs/_gen/teams.py` renders into
the team's page at build time. Checkpoints are decided here as a person would: approved.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
OUT = ROOT / "docs" / "teams"
#: Team file -> the task its page shows.
TASKS = {
    "support_team": "alice: where is my order 1002?",
    "research_team": "How should agents bound the time of a call?",
    "specialist_team": "Write a function that retries a call with backoff",
    "parallel_team": "Design a rate limiter",
}


def _span(span: dict[str, Any], start: int) -> dict[str, Any]:
    attrs = span["attributes"]
    return {
        "span_id": span["span_id"], "parent_span_id": span["parent_span_id"],
        "agent": attrs.get("raymesh.agent", "?"), "message": attrs.get("raymesh.message.type", ""),
        "start_ms": round((span["start_ns"] - start) / 1e6, 1),
        "ms": round((span["end_ns"] - span["start_ns"]) / 1e6, 1),
        "tokens": int(attrs.get("llm.tokens_in", 0)) + int(attrs.get("llm.tokens_out", 0)),
        "status": span["status"], "outcome": attrs.get("raymesh.outcome", ""),
    }  # fmt: skip


async def _approve_all(mesh: Any) -> None:
    while True:  # a person at the desk, approving what the run posts
        for point in await mesh.approvals():
            await mesh.approve(point.id)
        await asyncio.sleep(0.2)


async def record(names: list[str]) -> None:
    """Run each team on its task and write its JSON."""
    from mesh import Mesh

    sys.path.insert(0, str(EXAMPLES))
    env = {"PYTHONPATH": os.pathsep.join([str(EXAMPLES), os.environ.get("PYTHONPATH", "")])}
    async with Mesh.local(num_cpus=4, runtime_env={"env_vars": env}) as mesh:
        desk = asyncio.ensure_future(_approve_all(mesh))
        try:
            for name in names:
                spec = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text(encoding="utf-8"))
                for agent in spec["agents"]:  # the order database in a scratch directory
                    if "db_path" in agent.get("options", {}):
                        agent["options"]["db_path"] = str(Path(tempfile.mkdtemp()) / "o.db")
                outcome = await mesh.run(spec, TASKS[name], timeout=120)
                start = min((s["start_ns"] for s in outcome.spans), default=0)
                data = outcome.as_json() | {
                    "command": f'raymesh run examples/{name}.yaml --task "{TASKS[name]}"',
                    "spans": [_span(s, start) for s in outcome.spans],
                }
                path = OUT / f"{name}.json"
                path.write_text(json.dumps(data, indent=1, default=str) + "\n", encoding="utf-8")
                print(f"wrote {path.relative_to(ROOT)}")
        finally:
            desk.cancel()


def main() -> None:
    """Record the teams named on the command line (all by default), then routing."""
    names = sys.argv[1:] or list(TASKS)
    OUT.mkdir(parents=True, exist_ok=True)
    asyncio.run(record([n for n in names if n != "routing"]))
    if not sys.argv[1:] or "routing" in names:
        from benchmarks.routing import run

        report = asyncio.run(run())
        (OUT / "routing.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        print("wrote docs/teams/routing.json")


if __name__ == "__main__":
    main()
