"""The team pages, rendered from the committed runs in ``docs/teams/*.json``.

``docs/_gen/record_teams.py`` runs each example team and writes its JSON; this renders a
page per team (what it is, how to run it, one model line per role, the answer, what each
agent did, the trace as a tree) and the routing benchmark's page.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from _gen.bench import _table

#: Where the committed runs live, relative to the repository root.
TEAMS_DIR = Path("docs/teams")
#: Team file -> its page's title, in the order of the nav.
TITLES = {
    "support_team": "Customer support",
    "research_team": "Research, analysis, synthesis, verification",
    "specialist_team": "Orchestrator with specialists",
    "parallel_team": "Parallel isolated workers",
}


def _about(team_file: Path) -> str:
    """The team file's leading comment, as prose (its command lines as code)."""
    prose: list[str] = []
    code: list[str] = []
    for line in team_file.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        text = line[1:].strip()
        (code if line.startswith("#  ") else prose).append(text)
    block = "\n```bash\n" + "\n".join(code) + "\n```\n" if code else ""
    return " ".join(prose) + "\n" + block


def _roles(team_file: Path) -> str:
    """One row per agent: its class, its offline model and the real-provider line."""
    lines = team_file.read_text(encoding="utf-8").splitlines()
    spec = yaml.safe_load("\n".join(lines))
    real = [ln.split("# model:", 1)[1].split("#")[0].strip() for ln in lines if "# model:" in ln]
    rows, found = [], iter(real)
    for agent in spec["agents"]:
        model = agent.get("model")
        rows.append((agent["name"], f"`{agent['agent']}`", f"`{model}`" if model else "-",
                     f"`model: {next(found)}`" if model else "- (no model)"))  # fmt: skip
    return _table(("agent", "class", "runs on", "switch to a real provider"), rows, right=99)


def _trace(spans: list[dict[str, Any]]) -> str:
    """The spans as a tree, depth first, children in start order."""
    ids = {s["span_id"] for s in spans}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for span in sorted(spans, key=lambda s: s["start_ms"]):
        parent = span["parent_span_id"] if span["parent_span_id"] in ids else None
        children.setdefault(parent, []).append(span)
    rows: list[tuple[object, ...]] = []

    def walk(parent: str | None, depth: int) -> None:
        for span in children.get(parent, []):
            who = "&nbsp;&nbsp;" * depth + f"{span['agent']} `{span['message']}`"
            rows.append((who, span["start_ms"], span["ms"], span["tokens"] or "", span["outcome"]))
            walk(span["span_id"], depth + 1)

    walk(None, 0)
    return _table(("agent / message", "start ms", "ms", "tokens", "outcome"), rows)


def render_team(root: Path, name: str) -> str:
    """The page of one team, from its team file and its committed run."""
    run = json.loads((root / TEAMS_DIR / f"{name}.json").read_text(encoding="utf-8"))
    team_file = root / "examples" / f"{name}.yaml"
    members = [(m["name"], m.get("handled", "-"), m.get("sent", "-"), m.get("tokens") or "")
               for m in run["members"]]  # fmt: skip
    usage = run["usage"]
    return "\n".join([
        f"# {TITLES[name]}\n",
        f"`examples/{name}.yaml`"
        + (f", its Python in `examples/{name}/`" if (root / "examples" / name).is_dir() else "")
        + ".\n",
        _about(team_file),
        "## One model line per role\n",
        "Every role runs on the offline model; uncomment its `model:` line in the team "
        "file to run it on a real provider (the key from the environment).\n",
        _roles(team_file),
        "## A run\n",
        f"`{run['command']}` (trace `{run['trace_id']}`), recorded by "
        "`python docs/_gen/record_teams.py` on the offline model:\n",
        "```text\n" + run["result"]["text"] + "\n```\n",
        "What the entry agent reported with it:\n",
        "```json\n" + json.dumps(run["result"]["data"], indent=1) + "\n```\n",
        _table(("agent", "handled", "sent", "tokens"), members),
        f"Model calls: {usage['calls']}, {usage['tokens']:,} tokens "
        f"({usage['estimated_calls']} estimated), ${usage['cost_usd']:.4f}.\n",
        "## The trace\n",
        "Each row is one handled message; `raymesh trace ID` shows the same tree with "
        "timing bars while the mesh runs.\n",
        _trace(run["spans"]),
    ])  # fmt: skip


def render_routing(root: Path) -> str:
    """The routing benchmark's page, from ``docs/teams/routing.json``."""
    data = json.loads((root / TEAMS_DIR / "routing.json").read_text(encoding="utf-8"))
    teams = _table(
        ("team", "accuracy", "cost $", "model calls", "latency ms / task"),
        [(t["team"], f"{t['accuracy']:.0%}", f"{t['cost_usd']:.6f}", t["calls"],
          f"{t['latency_s'] * 1000:.1f}") for t in data["teams"]],
    )  # fmt: skip
    routed = next(t for t in data["teams"] if t["team"] == "routed")["routed"]
    models = sorted({m for by in routed.values() for m in by} | set(data["estimates"]))
    order = [d for d in ("easy", "medium", "hard") if d in routed]
    first = _table(("difficulty", *models),
                   [(d, *(routed[d].get(m, 0) for m in models)) for d in order])  # fmt: skip
    learnt = _table(("model", *order), [(m, *(data["estimates"].get(m, {}).get(d, "-")
                                              for d in order)) for m in models])  # fmt: skip
    cut = data["saving"]
    return "\n".join([
        "# Routing, measured\n",
        f"**The routed team costs {cut['cost_saving']:.0%} less than the all-strong team, at "
        f"{cut['routed_accuracy']:.0%} accuracy against its {cut['strong_accuracy']:.0%}.** "
        "One run of `raymesh bench routing` (`docs/teams/routing.json`, written by "
        "`python docs/_gen/record_teams.py routing`).\n",
        "The task set is `benchmarks/data/routing_tasks.json`: 100 arithmetic questions with "
        "checkable answers, 40 easy, 35 medium, 25 hard. Three teams answer all of them "
        "through real model clients: **all-cheap** and **all-strong** ask one model once; "
        "**routed** asks the model `actors.QualityRouter` picks (the cheapest whose measured "
        f"success rate for the question's difficulty reaches {data['target']:.0%}, sampled "
        "from a Beta posterior per model and difficulty), a verifier checks the answer "
        "against the task's, a failed answer escalates to the next dearer model, and every "
        "verdict updates the posteriors.\n",
        teams,
        "Which model the router tried first, per difficulty:\n",
        first,
        "What it measured (posterior mean success rate per model and difficulty):\n",
        learnt,
        "The models are offline stand-ins: `offline:NAME?quality=easy:P,medium:P,hard:P` "
        "answers an arithmetic question right with probability P for its difficulty, and the "
        "price table prices them (USD per 1M tokens, input / output: small 0.15 / 0.60, "
        "medium 1 / 4, large 5 / 15). The same harness runs on real providers: "
        "`python -m benchmarks.routing --models openai:gpt-4o-mini,openai:gpt-4o` (keys in "
        "the environment, prices from the default table). Latency is per task, "
        "sequential, with the stand-ins' configured latency (5, 10 and 20 ms a call): "
        "the routed team pays for its escalations in time as well as in calls.\n",
    ])  # fmt: skip


def render_all(root: Path) -> dict[str, str]:
    """Page path -> Markdown, for every committed team run and the routing results."""
    pages = {f"teams/{name}.md": render_team(root, name) for name in TITLES
             if (root / TEAMS_DIR / f"{name}.json").exists()}  # fmt: skip
    if (root / TEAMS_DIR / "routing.json").exists():
        pages["teams/routing.md"] = render_routing(root)
    return pages
