"""The chaos suite: faults injected into a live mesh, and the figures of how it held.

Each scenario is a coroutine over a running `Mesh` that returns its figures;
`run_chaos` runs them all (``raymesh chaos`` prints its table). The CI forms of the
scenarios are the tests in ``tests/fault/``.
"""

from mesh.chaos._figure import Figure, Figures
from mesh.chaos.conversation import ConversationFigures, chaos_conversation
from mesh.chaos.exactly_once import ExactlyOnceFigures, exactly_once
from mesh.chaos.hung import Fault, HungFigures, hung_agent
from mesh.chaos.order import OrderFigures, order_across_restarts
from mesh.chaos.overload import OverloadFigures, overload
from mesh.chaos.registry import RegistryFigures, registry_killed
from mesh.chaos.report import SCENARIOS, ChaosReport, Scenario, run_chaos

__all__ = [
    "SCENARIOS",
    "ChaosReport",
    "ConversationFigures",
    "ExactlyOnceFigures",
    "Fault",
    "Figure",
    "Figures",
    "HungFigures",
    "OrderFigures",
    "OverloadFigures",
    "RegistryFigures",
    "Scenario",
    "chaos_conversation",
    "exactly_once",
    "hung_agent",
    "order_across_restarts",
    "overload",
    "registry_killed",
    "run_chaos",
]
