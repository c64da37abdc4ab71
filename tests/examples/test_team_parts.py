"""The example teams' parts without Ray: refund rules, order scoping, vendor checks, pages.

The pages are rendered from the committed runs (``docs/teams/*.json``); a team file that
changed since its run was recorded fails here, so the page never shows another team.
"""

from __future__ import annotations

import json
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml

from mesh import ConfigError

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))
sys.path.insert(0, str(ROOT / "docs"))

from _gen import teams  # noqa: E402 (docs/ is not a package)
from research_team.stages import check_vendors  # noqa: E402
from support_team.orders import Order, OrderBook  # noqa: E402
from support_team.policy import rule  # noqa: E402

TODAY = date(2026, 12, 6)


def _order(amount: float, days: int | None, status: str = "delivered") -> Order:
    delivered = None if days is None else TODAY - timedelta(days=days)
    return Order(order_id=1, item="x", amount_usd=amount, status=status, delivered_on=delivered)


@pytest.mark.parametrize(
    ("text", "order", "eligible", "handoff", "judged"),
    [
        ("where is it?", _order(50, 3), None, False, False),  # no refund asked
        ("refund please", None, False, False, False),
        ("refund please", _order(50, None, "shipped"), False, False, False),
        ("refund please", _order(250, 3), None, True, False),  # over $200: a person
        ("I want my money back", _order(50, 30), True, False, False),
        ("return it", _order(50, 45), None, False, True),  # the model's goodwill call
        ("refund please", _order(50, 61), False, False, False),
    ],
)
def test_the_refund_rules(text: str, order: Order | None, eligible: bool | None,
                          handoff: bool, judged: bool) -> None:  # fmt: skip
    ruling = rule(text, order, today=TODAY)
    assert (ruling.eligible, ruling.handoff, ruling.needs_judgement) == (eligible, handoff, judged)
    assert ruling.reasons


def test_an_order_lookup_never_crosses_customers(tmp_path: Path) -> None:
    book = OrderBook(tmp_path / "orders.db", today=TODAY)
    found = book.lookup("alice", 1001)
    assert found is not None
    assert found.item == "espresso grinder"
    assert book.lookup("bob", 1001) is None  # alice's order, asked for by bob


def test_one_vendor_may_not_write_and_check() -> None:
    stages = {"researcher": "offline:r", "analyst": "offline:a"}
    check_vendors({**stages, "writer": "openai:gpt-4o", "checker": "anthropic:claude-x"})
    check_vendors({**stages, "writer": "offline:w", "checker": "offline:c"})
    with pytest.raises(ConfigError, match="both openai"):
        check_vendors({**stages, "writer": "openai:gpt-4o", "checker": "openai:gpt-4o-mini"})
    with pytest.raises(ConfigError, match="different models"):
        check_vendors({**stages, "writer": "offline:w", "checker": "offline:w"})


@pytest.mark.parametrize("name", sorted(teams.TITLES))
def test_each_team_page_renders_its_committed_run(name: str) -> None:
    run = json.loads((ROOT / teams.TEAMS_DIR / f"{name}.json").read_text())
    spec = yaml.safe_load((ROOT / "examples" / f"{name}.yaml").read_text())
    agents = [a["name"] for a in spec["agents"]]
    assert [m["name"] for m in run["members"]] == agents, "re-run docs/_gen/record_teams.py"
    page = teams.render_all(ROOT)[f"teams/{name}.md"]
    for agent in spec["agents"]:
        assert f"| {agent['name']} | `{agent['agent']}` |" in page
    assert run["result"]["text"] in page
    assert page.count(" | ok |") + page.count(" | error |") >= len(run["spans"]) > 0


def test_the_routing_page_quotes_the_committed_saving() -> None:
    data = json.loads((ROOT / teams.TEAMS_DIR / "routing.json").read_text())
    page = teams.render_all(ROOT)["teams/routing.md"]
    assert f"costs {data['saving']['cost_saving']:.0%} less" in page
    assert page.count("| routed |") == 1
