"""What the mesh shows of itself: logs, spans, metrics, stats, dead letters,
the span store and the trace view.
"""

from mesh.observability._deadletters import DeadLetter, DeadLetterBox, collect_dead_letters
from mesh.observability._logging import _redact_secrets, configure_logging, get_logger, trace_scope
from mesh.observability._metrics import (
    FLUSH_S,
    HostMetrics,
    count_compat_failure,
    count_restart,
)
from mesh.observability._spans import Recorder, add_event, add_to
from mesh.observability._spanstore import SPAN_STORE_NAME, span_store
from mesh.observability._stats import AgentStats, UsageReport, count_model_call

__all__ = [
    "FLUSH_S",
    "SPAN_STORE_NAME",
    "AgentStats",
    "DeadLetter",
    "DeadLetterBox",
    "HostMetrics",
    "Recorder",
    "UsageReport",
    "_redact_secrets",
    "add_event",
    "add_to",
    "collect_dead_letters",
    "configure_logging",
    "count_compat_failure",
    "count_model_call",
    "count_restart",
    "get_logger",
    "span_store",
    "trace_scope",
]
