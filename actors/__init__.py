"""LLM-backed agents for raymesh: providers, routing, usage, budgets, memory and roles.

Everything runs out of the box on the offline model (``offline:default``); point an
agent at ``openai:MODEL`` or ``anthropic:MODEL`` (with its API key in the environment, or
a ``base_url`` for an OpenAI-compatible server) for a real one::

    await mesh.spawn(Reasoner, name="reasoner", role="reasoner")
    reply = await mesh.ask("reasoner", Prompt(text="Why?"), expect=Completion)
"""

from typing import Any

from actors import messages as _messages
from actors.agent import DEFAULT_MODEL, LLMAgent
from actors.breaker import BreakerState, CircuitBreaker, breaker_for, reset_breakers
from actors.budget import Budget
from actors.client import CompletionResult, LLMClient, ModelClient, ToolRun
from actors.delegation import ASK_PEER, peer_tool
from actors.errors import (
    BudgetExceededError,
    ModelError,
    ModelUnavailableError,
    ProviderError,
    StructuredOutputError,
    ToolError,
)
from actors.gate import GatedOrchestrator, VetoedError
from actors.memory import ConversationWindow, LongTermMemory, MemoryHit, SQLiteMemory
from actors.messages import (
    CallUsage,
    Completion,
    Prompt,
    Remember,
    Remembered,
    Verdict,
    Verify,
)
from actors.pattern_agent import PatternAgent
from actors.providers import (
    ChatMessage,
    ModelSpec,
    Provider,
    TokenUsage,
    make_provider,
    parse_model,
)
from actors.retry import RetryPolicy
from actors.roles import (
    Coder,
    Generalist,
    Orchestrator,
    Plan,
    PlanStep,
    Reasoner,
    Retriever,
    Safety,
    Verifier,
)
from actors.router import RoutedClient, Router, RouteRule
from actors.routing import QualityRouter, escalate
from actors.routing_agent import Routed, RoutedAnswer, RoutingAgent
from actors.tools import Approver, Tool, Toolbox, tool
from actors.usage import DEFAULT_PRICES, Price, PriceTable, UsageLedger, UsageRecord, UsageTotals

__all__ = [
    "ASK_PEER",
    "DEFAULT_MODEL",
    "DEFAULT_PRICES",
    "Approver",
    "BreakerState",
    "Budget",
    "BudgetExceededError",
    "CallUsage",
    "ChatMessage",
    "CircuitBreaker",
    "Coder",
    "Completion",
    "CompletionResult",
    "ConversationWindow",
    "GatedOrchestrator",
    "Generalist",
    "LLMAgent",
    "LLMClient",
    "LongTermMemory",
    "MemoryHit",
    "ModelClient",
    "ModelError",
    "ModelSpec",
    "ModelUnavailableError",
    "Orchestrator",
    "PatternAgent",
    "Plan",
    "PlanStep",
    "Price",
    "PriceTable",
    "Prompt",
    "Provider",
    "ProviderError",
    "QualityRouter",
    "Reasoner",
    "Remember",
    "Remembered",
    "Retriever",
    "RetryPolicy",
    "RouteRule",
    "Routed",
    "RoutedAnswer",
    "RoutedClient",
    "Router",
    "RoutingAgent",
    "SQLiteMemory",
    "Safety",
    "StructuredOutputError",
    "TokenUsage",
    "Tool",
    "ToolError",
    "ToolRun",
    "Toolbox",
    "UsageLedger",
    "UsageRecord",
    "UsageTotals",
    "Verdict",
    "Verifier",
    "Verify",
    "VetoedError",
    "breaker_for",
    "escalate",
    "make_provider",
    "parse_model",
    "peer_tool",
    "reset_breakers",
    "tool",
]


def __getattr__(name: str) -> Any:
    # Deprecated names (``GetUsage``, ``UsageReport``) and their warning live in messages.
    try:
        return _messages.deprecated(name, stacklevel=3)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
