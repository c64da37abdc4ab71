"""The edge: `Mesh`, where a driver starts or joins Ray and conversations begin."""

from mesh.edge._connect import _probe, _use_token_auth, prepare_driver
from mesh.edge._mesh import Mesh
from mesh.edge._run import AgentRun, RunOutcome, settled_trace

__all__ = [
    "AgentRun",
    "Mesh",
    "RunOutcome",
    "_probe",
    "_use_token_auth",
    "prepare_driver",
    "settled_trace",
]
