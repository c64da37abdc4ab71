"""raymesh's runtime: agents in Ray actors that find each other and talk directly."""

from mesh.acl import AccessPolicy, AccessRule
from mesh.agent import Agent, Context, handler
from mesh.approvals import CheckpointNotFoundError
from mesh.cluster import ClusterError, ClusterUnreachableError
from mesh.config import MeshConfig
from mesh.deadletters import DeadLetter
from mesh.errors import (
    AccessDeniedError,
    BaselineError,
    ConfigError,
    DeadlineExceededError,
    DeadlockError,
    DecodeError,
    DeliveryError,
    DiedBeforeRunError,
    DuplicateMessageError,
    EncodeError,
    HandlerError,
    HopLimitError,
    MailboxFullError,
    MeshError,
    NameTakenError,
    NoHandlerError,
    OutboxFullError,
    OutcomeUnknownError,
    PeerDeadError,
    PeerNotFoundError,
    ProtocolError,
    RegistryUnavailableError,
    ReplayError,
    RestartIntensityError,
    SignatureError,
    SupervisionError,
    TraceNotFoundError,
    UnknownMessageTypeError,
)
from mesh.registry import AgentInfo
from mesh.runtime import Mesh
from mesh.stats import AgentStats
from mesh.supervisor import TeamHandle
from mesh.team import AgentSpec, TeamSpec, load_team
from mesh.tracing import get_logger

__all__ = [
    "AccessDeniedError",
    "AccessPolicy",
    "AccessRule",
    "Agent",
    "AgentInfo",
    "AgentSpec",
    "AgentStats",
    "BaselineError",
    "CheckpointNotFoundError",
    "ClusterError",
    "ClusterUnreachableError",
    "ConfigError",
    "Context",
    "DeadLetter",
    "DeadlineExceededError",
    "DeadlockError",
    "DecodeError",
    "DeliveryError",
    "DiedBeforeRunError",
    "DuplicateMessageError",
    "EncodeError",
    "HandlerError",
    "HopLimitError",
    "MailboxFullError",
    "Mesh",
    "MeshConfig",
    "MeshError",
    "NameTakenError",
    "NoHandlerError",
    "OutboxFullError",
    "OutcomeUnknownError",
    "PeerDeadError",
    "PeerNotFoundError",
    "ProtocolError",
    "RegistryUnavailableError",
    "ReplayError",
    "RestartIntensityError",
    "SignatureError",
    "SupervisionError",
    "TeamHandle",
    "TeamSpec",
    "TraceNotFoundError",
    "UnknownMessageTypeError",
    "get_logger",
    "handler",
    "load_team",
]
