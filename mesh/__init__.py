"""raymesh's runtime: agents in Ray actors that find each other and talk directly."""

from mesh.agent import Agent, Context, handler
from mesh.cluster import ClusterError, ClusterUnreachableError
from mesh.config import MeshConfig
from mesh.errors import (
    ConfigError,
    DeadlineExceededError,
    DeadlockError,
    DecodeError,
    DeliveryError,
    DiedBeforeRunError,
    EncodeError,
    HandlerError,
    HopLimitError,
    MailboxFullError,
    MeshError,
    NameTakenError,
    NoHandlerError,
    OutcomeUnknownError,
    PeerDeadError,
    PeerNotFoundError,
    ProtocolError,
    RegistryUnavailableError,
    RestartIntensityError,
    SupervisionError,
    UnknownMessageTypeError,
)
from mesh.registry import AgentInfo
from mesh.runtime import Mesh
from mesh.stats import AgentStats
from mesh.supervisor import TeamHandle
from mesh.team import AgentSpec, TeamSpec, load_team
from mesh.tracing import get_logger

__all__ = [
    "Agent",
    "AgentInfo",
    "AgentSpec",
    "AgentStats",
    "ClusterError",
    "ClusterUnreachableError",
    "ConfigError",
    "Context",
    "DeadlineExceededError",
    "DeadlockError",
    "DecodeError",
    "DeliveryError",
    "DiedBeforeRunError",
    "EncodeError",
    "HandlerError",
    "HopLimitError",
    "MailboxFullError",
    "Mesh",
    "MeshConfig",
    "MeshError",
    "NameTakenError",
    "NoHandlerError",
    "OutcomeUnknownError",
    "PeerDeadError",
    "PeerNotFoundError",
    "ProtocolError",
    "RegistryUnavailableError",
    "RestartIntensityError",
    "SupervisionError",
    "TeamHandle",
    "TeamSpec",
    "UnknownMessageTypeError",
    "get_logger",
    "handler",
    "load_team",
]
