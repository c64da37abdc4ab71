"""The chaos suite: faults injected into a live mesh, and the figures of how it held.

Each scenario is a coroutine over a running `Mesh` that returns its figures;
`run_chaos` runs them all (``raymesh chaos`` prints its table). The CI forms of the
scenarios are tests: ``tests/fault/test_chaos.py``, ``tests/llm/test_prompt_injection.py``
and ``tests/integration/test_secrets_canary.py``.
"""

from benchmarks.chaos._figure import Figure, Figures
from benchmarks.chaos.conversation import ConversationFigures, chaos_conversation
from benchmarks.chaos.exactly_once import ExactlyOnceFigures, exactly_once
from benchmarks.chaos.expiry import ExpiryFigures, late_and_expired
from benchmarks.chaos.forged import Attack, ForgedFigures, MacCheck, forged_frames, mac_comparisons
from benchmarks.chaos.fuzz import FuzzFigures, fuzz_agent, is_typed
from benchmarks.chaos.hung import Fault, HungFigures, hung_agent
from benchmarks.chaos.injection import InjectionFigures, prompt_injection
from benchmarks.chaos.order import OrderFigures, order_across_restarts
from benchmarks.chaos.overload import OverloadFigures, overload
from benchmarks.chaos.registry import RegistryFigures, registry_killed
from benchmarks.chaos.report import SCENARIOS, ChaosReport, Scenario, run_chaos
from benchmarks.chaos.secrets import SecretsFigures, secrets_sweep

__all__ = [
    "SCENARIOS",
    "Attack",
    "ChaosReport",
    "ConversationFigures",
    "ExactlyOnceFigures",
    "ExpiryFigures",
    "Fault",
    "Figure",
    "Figures",
    "ForgedFigures",
    "FuzzFigures",
    "HungFigures",
    "InjectionFigures",
    "MacCheck",
    "OrderFigures",
    "OverloadFigures",
    "RegistryFigures",
    "Scenario",
    "SecretsFigures",
    "chaos_conversation",
    "exactly_once",
    "forged_frames",
    "fuzz_agent",
    "hung_agent",
    "is_typed",
    "late_and_expired",
    "mac_comparisons",
    "order_across_restarts",
    "overload",
    "prompt_injection",
    "registry_killed",
    "run_chaos",
    "secrets_sweep",
]
