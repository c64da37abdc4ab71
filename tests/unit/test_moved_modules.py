"""The module paths of 0.1 still import, with a DeprecationWarning naming the new place."""

from __future__ import annotations

import importlib
import sys

import pytest

from mesh import _moved, extension
from mesh.observability import AgentStats


@pytest.mark.parametrize("old", sorted(_moved.MOVED))
def test_each_old_path_imports_with_a_deprecation_warning(old: str) -> None:
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=r"moved in raymesh 0\.2"):
        module = importlib.import_module(old)
    assert module.__name__ == old


def test_names_come_from_where_they_live_now() -> None:
    sys.modules.pop("mesh.stats", None)
    sys.modules.pop("mesh.telemetry", None)
    with pytest.warns(DeprecationWarning, match="mesh.stats moved"):
        old_stats = importlib.import_module("mesh.stats")
    with pytest.warns(DeprecationWarning, match="mesh.telemetry moved"):
        old_telemetry = importlib.import_module("mesh.telemetry")
    OldStats, count_model_call = old_stats.AgentStats, old_stats.count_model_call
    redact = old_telemetry.redact
    assert OldStats is AgentStats
    assert count_model_call is extension.count_model_call
    assert redact is extension.redact


def test_a_name_the_old_module_never_had_is_an_attribute_error() -> None:
    sys.modules.pop("mesh.registry", None)
    with pytest.warns(DeprecationWarning, match="mesh.registry moved"):
        registry = importlib.import_module("mesh.registry")
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        _ = registry.nonsense


def test_the_model_client_protocol_is_still_found_where_it_was() -> None:
    import actors
    import actors.providers

    with pytest.warns(DeprecationWarning, match="ModelClient moved to actors.client"):
        old = actors.providers.ModelClient
    assert old is actors.ModelClient
