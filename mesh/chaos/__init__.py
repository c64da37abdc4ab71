"""The chaos suite: faults injected into a live mesh, and the figures of how it held.

Each scenario is a coroutine over a running `Mesh` that returns its figures;
`run_chaos` runs them all (``raymesh chaos`` prints its table). The CI forms of the
scenarios are tests: ``tests/fault/test_chaos.py``, ``tests/llm/test_prompt_injection.py``
and ``tests/integration/test_secrets_canary.py``.
"""

from mesh.chaos._figure import Figure, Figures
from mesh.chaos.conversation import ConversationFigures, chaos_conversation
from mesh.chaos.exactly_once import ExactlyOnceFigures, exactly_once
from mesh.chaos.expiry import ExpiryFigures, late_and_expired
from mesh.chaos.forged import Attack, ForgedFigures, MacCheck, forged_frames, mac_comparisons
from mesh.chaos.fuzz import FuzzFigures, fuzz_agent, is_typed
from mesh.chaos.hung import Fault, HungFigures, hung_agent
from mesh.chaos.injection import InjectionFigures, prompt_injection
from mesh.chaos.order import OrderFigures, order_across_restarts
from mesh.chaos.overload import OverloadFigures, overload
from mesh.chaos.registry import RegistryFigures, registry_killed
from mesh.chaos.report import SCENARIOS, ChaosReport, Scenario, run_chaos
from mesh.chaos.secrets import SecretsFigures, secrets_sweep

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
