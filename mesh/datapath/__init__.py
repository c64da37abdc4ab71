"""The data path: a message from one agent's handler to another's, and back.

The host actor (a thin Ray facade), frame acceptance, inbound sequencing, dispatch,
the endpoint verbs (ask, tell, publish), the peer directory, links, deadlines,
deadlock probes and durable state. It imports no operations, CLI, YAML or Rich.
"""

from mesh.datapath._directory import REGISTRY_NAME, RegistryClient
from mesh.datapath._endpoint import Endpoint
from mesh.datapath._host import AgentHost
from mesh.datapath._raycalls import translate
from mesh.datapath._typeshare import TYPE_CATALOG_NAME, TypeShare

__all__ = [
    "REGISTRY_NAME",
    "TYPE_CATALOG_NAME",
    "AgentHost",
    "Endpoint",
    "RegistryClient",
    "TypeShare",
    "translate",
]
