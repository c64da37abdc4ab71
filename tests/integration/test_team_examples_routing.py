"""The router role on Ray: the cheapest model that suffices, learnt from verdicts."""

from __future__ import annotations

from typing import Any

import pytest

from actors import Routed, RoutedAnswer, RoutingAgent, Verifier
from mesh import Mesh

pytestmark = [pytest.mark.ray]

SMALL = "offline:small?quality=easy:1,medium:0,hard:0"
LARGE = "offline:large?quality=easy:1,medium:1,hard:1"
PRICES = {"offline:small": {"input": 0.15, "output": 0.6},
          "offline:large": {"input": 5.0, "output": 15.0}}  # fmt: skip


async def _router(spawn: Any, models: list[str]) -> tuple[str, str]:
    verifier = (await spawn(Verifier, "route-verifier", model="offline:judge")).name
    router = await spawn(RoutingAgent, "router", models=models, verifier=verifier,
                         prices=PRICES, seed=3)  # fmt: skip
    return router.name, verifier


async def test_the_router_learns_to_skip_a_model_that_fails_medium_questions(
    mesh: Mesh, spawn: Any
) -> None:
    router, _ = await _router(spawn, [LARGE, SMALL])  # any order: prices decide
    answers: list[RoutedAnswer] = []
    for a in range(10):
        question = f"What is {a + 10} * 10 + 3?"  # 2 operators: medium; answer 103..193
        answers.append(await mesh.ask(router, Routed(text=question, difficulty="medium",
                                                     ground_truth=str((a + 10) * 10 + 3)),
                                      timeout=30, expect=RoutedAnswer))  # fmt: skip
    assert all(a.passed for a in answers)
    assert all(a.model == LARGE for a in answers)  # the small model never passes
    tried_small = [a for a in answers if a.tries[0].model == SMALL]
    assert tried_small, "the unmeasured cheap model was never tried"
    assert all(len(a.tries) == 1 for a in answers[-4:])  # learnt: straight to the large one
    small = answers[-1].estimates[SMALL]["medium"]
    assert small < 0.5 < answers[-1].estimates[LARGE]["medium"]


async def test_easy_questions_stay_on_the_cheap_model(mesh: Mesh, spawn: Any) -> None:
    router, _ = await _router(spawn, [SMALL, LARGE])
    models = []
    for a in range(8):
        answer = await mesh.ask(router, Routed(text=f"What is {a + 100} + 5?", difficulty="easy",
                                               ground_truth=str(a + 105)),
                                timeout=30, expect=RoutedAnswer)  # fmt: skip
        assert answer.passed
        models.append(answer.tries[0].model)
    assert models.count(SMALL) >= 6  # it passes every time: it stays the first choice


async def test_no_model_suffices_the_answer_says_so(mesh: Mesh, spawn: Any) -> None:
    router, _ = await _router(spawn, [SMALL, LARGE.replace("medium:1", "medium:0")])
    answer = await mesh.ask(router, Routed(text="What is 12 * 10 + 3?", difficulty="medium",
                                           ground_truth="123"),
                            timeout=30, expect=RoutedAnswer)  # fmt: skip
    assert not answer.passed
    assert [t.passed for t in answer.tries] == [False] * len(answer.tries)
    assert answer.tries[-1].model.startswith("offline:large")  # climbed to the dearest
