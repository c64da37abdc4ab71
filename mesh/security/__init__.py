"""Who may talk to whom and what never leaks: ACLs, secrets and their
redaction, the cluster secret that signs frames, and Ray's token authentication.
"""

from mesh.security._acl import (
    EDGE_PREFIX,
    AccessPolicy,
    AccessRule,
    AgentAccess,
    compile_access,
)
from mesh.security._ray_auth import LOOPBACK, bind_args, head_env, secure_token_file, token_path
from mesh.security._redaction import redact, remember_secret
from mesh.security._secrets import env_secret_reason, get_secret, read_secrets_file, secret_fields

__all__ = [
    "EDGE_PREFIX",
    "LOOPBACK",
    "AccessPolicy",
    "AccessRule",
    "AgentAccess",
    "bind_args",
    "compile_access",
    "env_secret_reason",
    "get_secret",
    "head_env",
    "read_secrets_file",
    "redact",
    "remember_secret",
    "secret_fields",
    "secure_token_file",
    "token_path",
]
