"""The control plane: the actors beside the data path, never on it.

The registry, supervisors and their restart policy, the approval desk, team files
and the pattern conductor, and starting hosts for specs.
"""

from mesh.control._approvals import APPROVALS_NAME, CheckpointNotFoundError, RayApprovalGate
from mesh.control._catalog import type_catalog
from mesh.control._patterns import PatternConductor
from mesh.control._registry import start_registry
from mesh.control._spawn import start_host
from mesh.control._supervisor import SUPERVISOR, TeamHandle, supervisor_options
from mesh.control._team import AgentSpec, ServeSpec, TeamSpec, load_team, with_access

__all__ = [
    "APPROVALS_NAME",
    "SUPERVISOR",
    "AgentSpec",
    "CheckpointNotFoundError",
    "PatternConductor",
    "RayApprovalGate",
    "ServeSpec",
    "TeamHandle",
    "TeamSpec",
    "load_team",
    "start_host",
    "start_registry",
    "supervisor_options",
    "type_catalog",
    "with_access",
]
