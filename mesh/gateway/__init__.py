"""The gateway: a team served over HTTP, OpenAI-compatible, through Ray Serve.

An edge above the runtime, beside `mesh.edge`: each replica is a driver of the mesh
like any other, and nothing below this package imports it (``raymesh serve`` and
``raymesh status`` do).
"""

from mesh.gateway._a2a import A2A_PREFIX, MAX_TASKS, BoundedTaskStore, MeshExecutor, agent_card
from mesh.gateway._access import DEV_CLIENT, TOKEN_PREFIX, RateLimiter, TokenCheck, load_tokens
from mesh.gateway._app import DEADLINE_HEADER, TRACE_HEADER, build_app
from mesh.gateway._errors import (
    BadRequestError,
    GatewayError,
    RequestTooLargeError,
    TooManyRequestsError,
    UnauthorizedError,
    UnknownModelError,
    error_body,
    status_of,
)
from mesh.gateway._openai import ChatRequest, EntryPoint, chat_chunks, completion_body
from mesh.gateway._serve import APP_PREFIX, app_name, deploy_gateway, gateway_rows, remove_gateway
from mesh.gateway._settings import GatewaySettings, gateway_settings

__all__ = [
    "A2A_PREFIX",
    "APP_PREFIX",
    "DEADLINE_HEADER",
    "DEV_CLIENT",
    "MAX_TASKS",
    "TOKEN_PREFIX",
    "TRACE_HEADER",
    "BadRequestError",
    "BoundedTaskStore",
    "ChatRequest",
    "EntryPoint",
    "GatewayError",
    "GatewaySettings",
    "MeshExecutor",
    "RateLimiter",
    "RequestTooLargeError",
    "TokenCheck",
    "TooManyRequestsError",
    "UnauthorizedError",
    "UnknownModelError",
    "agent_card",
    "app_name",
    "build_app",
    "chat_chunks",
    "completion_body",
    "deploy_gateway",
    "error_body",
    "gateway_rows",
    "gateway_settings",
    "load_tokens",
    "remove_gateway",
    "status_of",
]
