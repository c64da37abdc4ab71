"""The edge: `Mesh`, where a driver starts or joins Ray and conversations begin."""

from mesh.edge._connect import join_cluster, prepare_driver, probe_port, use_token_auth
from mesh.edge._mesh import Mesh
from mesh.edge._run import AgentRun, RunOutcome, settled_trace

__all__ = [
    "AgentRun",
    "Mesh",
    "RunOutcome",
    "join_cluster",
    "prepare_driver",
    "probe_port",
    "settled_trace",
    "use_token_auth",
]
