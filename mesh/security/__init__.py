"""Who may talk to whom and what never leaks: ACLs, secrets and their
redaction, the cluster secret that signs frames, Ray's token authentication and
loopback binding, and files only their owner can read.
"""

from mesh.security._acl import (
    EDGE_PREFIX,
    AccessPolicy,
    AccessRule,
    AgentAccess,
    compile_access,
)
from mesh.security._private_files import (
    DIR_MODE,
    FILE_MODE,
    open_private,
    private_dir,
    private_file,
    write_private,
)
from mesh.security._ray_auth import (
    LOOPBACK,
    bind_args,
    guard_local_ray,
    head_env,
    is_loopback,
    prepare_token,
    secure_token_file,
    token_path,
)
from mesh.security._redaction import MASK, is_secret_name, redact, redact_data, remember_secret
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
    "DIR_MODE",
    "EDGE_PREFIX",
    "FILE_MODE",
    "LOOPBACK",
    "MASK",
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
    "guard_local_ray",
    "head_env",
    "is_loopback",
    "is_secret_name",
    "open_private",
    "prepare_token",
    "private_dir",
    "private_file",
    "read_certificates",
    "read_secrets_file",
    "redact",
    "redact_data",
    "remember_secret",
    "secret_fields",
    "secure_token_file",
    "speaks_tls",
    "tls_directory",
    "tls_enabled",
    "token_path",
    "write_private",
]
