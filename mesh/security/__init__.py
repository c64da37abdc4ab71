"""Who may talk to whom and what never leaks: ACLs, secrets and their
redaction, the cluster secret that signs frames, and Ray's token authentication.
"""

from mesh.security._acl import AccessPolicy, AccessRule, AgentAccess, compile_access
from mesh.security._ray_auth import LOOPBACK, bind_args, head_env, secure_token_file, token_path
from mesh.security._redaction import redact, remember_secret
from mesh.security._secrets import env_secret_reason, get_secret, read_secrets_file, secret_fields
from mesh.security._tls import (
    TLS_DIR_ENV,
    TlsFiles,
    ensure_certificates,
    read_certificates,
    speaks_tls,
    tls_directory,
    tls_enabled,
)

__all__ = [
    "LOOPBACK",
    "TLS_DIR_ENV",
    "AccessPolicy",
    "AccessRule",
    "AgentAccess",
    "TlsFiles",
    "bind_args",
    "compile_access",
    "ensure_certificates",
    "env_secret_reason",
    "get_secret",
    "head_env",
    "read_certificates",
    "read_secrets_file",
    "redact",
    "remember_secret",
    "secret_fields",
    "secure_token_file",
    "speaks_tls",
    "tls_directory",
    "tls_enabled",
    "token_path",
]
