"""The edge: `Mesh`, where a driver starts or joins Ray and conversations begin."""

from mesh.edge._connect import _probe, _use_token_auth, prepare_driver
from mesh.edge._mesh import Mesh

__all__ = [
    "Mesh",
    "_probe",
    "_use_token_auth",
    "prepare_driver",
]
