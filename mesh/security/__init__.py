"""Who may talk to whom and what never leaks: ACLs, secrets and their
redaction, the cluster secret that signs frames, and Ray's token authentication.
"""

from mesh.security._acl import AccessPolicy, AccessRule, AgentAccess, compile_access
from mesh.security._ray_auth import LOOPBACK, bind_args, head_env, secure_token_file, token_path
from mesh.security._redaction import MASK, is_secret_name, redact, redact_data, remember_secret
from mesh.security._secrets import env_secret_reason, get_secret, read_secrets_file, secret_fields

__all__ = [
    "LOOPBACK",
    "MASK",
    "AccessPolicy",
    "AccessRule",
    "AgentAccess",
    "bind_args",
    "compile_access",
    "env_secret_reason",
    "get_secret",
    "head_env",
    "is_secret_name",
    "read_secrets_file",
    "redact",
    "redact_data",
    "remember_secret",
    "secret_fields",
    "secure_token_file",
    "token_path",
]
