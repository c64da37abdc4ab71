"""The module paths of raymesh 0.1, importable for one more release with a DeprecationWarning.

The runtime's modules moved into packages by job (see docs/architecture.md). Code that
imported a module by its old path (``from mesh.stats import count_model_call``) keeps
working: the old name is a stand-in module that finds each name in the modules that now
hold it, and says where to import it from instead.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings
from collections.abc import Sequence
from typing import Any

__all__ = ["MOVED", "install"]

#: Old module -> the modules that now hold its names, searched in order.
MOVED: dict[str, tuple[str, ...]] = {
    "mesh.acl": ("mesh.security._acl",),
    "mesh.approvals": ("mesh.control._approvals",),
    "mesh.cluster": (
        "mesh.ops._head", "mesh.ops._jobs", "mesh.ops._inspect", "mesh.edge._connect",
        "mesh.config", "mesh.errors",
    ),
    "mesh.deadletters": ("mesh.observability._deadletters",),
    "mesh.metrics": ("mesh.observability._metrics",),
    "mesh.patterns_run": ("mesh.control._patterns",),
    "mesh.registry": ("mesh.control._registry", "mesh.datapath._directory", "mesh._placement",
                      "mesh.agent"),
    "mesh.runtime": ("mesh.edge._mesh",),
    "mesh.secrets": ("mesh.security._secrets",),
    "mesh.spanstore": ("mesh.observability._spanstore",),
    "mesh.stats": ("mesh.observability._stats",),
    "mesh.supervisor": ("mesh.control._supervisor",),
    "mesh.team": ("mesh.control._team",),
    "mesh.telemetry": ("mesh.observability._spans", "mesh.security._redaction"),
    "mesh.traceview": ("mesh.ops._traces", "mesh.edge._run"),
    "mesh.tracing": ("mesh.observability._logging",),
    "mesh.typecatalog": ("mesh.control._catalog", "mesh.datapath._typeshare"),
    "mesh.watchdog": ("mesh.datapath._probes",),
}  # fmt: skip


class _Forwarder(types.ModuleType):
    """An old module path: each attribute comes from the first new module that has it."""

    def __init__(self, name: str, targets: Sequence[str]) -> None:
        super().__init__(name, f"Moved in raymesh 0.2 to {', '.join(targets)}.")
        self._targets = tuple(targets)

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        for target in self._targets:
            module = importlib.import_module(target)
            if hasattr(module, attr):
                return getattr(module, attr)
        raise AttributeError(f"module {self.__name__!r} (moved) has no attribute {attr!r}")


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        targets = MOVED[spec.name]
        warnings.warn(
            f"{spec.name} moved in raymesh 0.2 (to {', '.join(targets)}); import its public "
            "names from mesh, or mesh.extension for agent packages; the old path goes in 0.3",
            DeprecationWarning,
            stacklevel=3,
        )
        return _Forwarder(spec.name, targets)

    def exec_module(self, module: types.ModuleType) -> None:
        """Nothing to run: the forwarder finds names on access."""


def install() -> None:
    """Make the old module paths importable (once per process)."""
    if not any(isinstance(finder, _MovedFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
