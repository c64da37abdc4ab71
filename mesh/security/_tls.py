"""The certificates Ray's TLS needs: a CA and a node certificate, and the environment naming them.

With ``RAY_USE_TLS=1`` every gRPC channel of Ray (GCS, raylets, workers, object
transfers, drivers) runs mutual TLS: a server presents ``RAY_TLS_SERVER_CERT`` /
``RAY_TLS_SERVER_KEY`` and asks its client for a certificate signed by
``RAY_TLS_CA_CERT``; a client presents the same pair and checks the server against the
same CA. So every process of a TLS cluster, drivers included, needs all four variables.

`ensure_certificates` makes a CA and a node certificate with `cryptography`, keeps them in
a 0700 directory whose files are 0600 from their first byte (`write_private`: a
temporary name opened 0600, fsynced, then renamed), and reuses them while they are
valid: a node certificate that expires, does not cover a host asked for, or was not signed by the CA
is made again; a CA that expires is made again with a new node certificate.
`speaks_tls` answers a client's first question: does the server at that port use TLS?
"""

from __future__ import annotations

import os
import socket
import ssl
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from mesh.errors import ConfigError
from mesh.security._private_files import private_dir

__all__ = [
    "TLS_DIR_ENV",
    "TlsFiles",
    "ensure_certificates",
    "read_certificates",
    "speaks_tls",
    "tls_directory",
    "tls_enabled",
]

#: Where a client finds the certificates of a TLS cluster, when not under $RAYMESH_HOME/tls.
TLS_DIR_ENV = "RAYMESH_TLS_DIR"
_CA_CERT, _CA_KEY, _NODE_CERT, _NODE_KEY = "ca.crt", "ca.key", "node.crt", "node.key"
_LOOPBACK_NAMES = ("127.0.0.1", "::1", "localhost")
_WILDCARDS = {"0.0.0.0", "::", ""}


@dataclass(frozen=True)
class TlsFiles:
    """The PEM files of one node: the CA's certificate, and the node's certificate and key."""

    directory: Path

    @property
    def ca_cert(self) -> Path:
        """The CA certificate every process trusts."""
        return self.directory / _CA_CERT

    @property
    def ca_key(self) -> Path:
        """The CA's key: on the head only (clients get the directory without it)."""
        return self.directory / _CA_KEY

    @property
    def cert(self) -> Path:
        """The node certificate, presented as server and as client."""
        return self.directory / _NODE_CERT

    @property
    def key(self) -> Path:
        """The node certificate's private key."""
        return self.directory / _NODE_KEY

    def env(self) -> dict[str, str]:
        """Return the variables Ray's TLS reads, for a head, its workers and its drivers."""
        return {
            "RAY_USE_TLS": "1",
            "RAY_TLS_SERVER_CERT": str(self.cert),
            "RAY_TLS_SERVER_KEY": str(self.key),
            "RAY_TLS_CA_CERT": str(self.ca_cert),
        }


def tls_directory(home: Path, env: Mapping[str, str] | None = None) -> Path:
    """Return where this machine keeps its TLS files: ``$RAYMESH_TLS_DIR``, else `home`/tls."""
    env = os.environ if env is None else env
    explicit = env.get(TLS_DIR_ENV)
    return Path(explicit).expanduser() if explicit else home / "tls"


def tls_enabled(env: Mapping[str, str]) -> bool:
    """Return True if `env` turns Ray's TLS on (Ray reads ``1`` or ``true``)."""
    return env.get("RAY_USE_TLS", "0").lower() in ("1", "true")


def ensure_certificates(directory: Path, *, hosts: Iterable[str] = ()) -> TlsFiles:
    """Return the CA and node certificate under `directory`, made or renewed as needed.

    The node certificate names 127.0.0.1, ::1, localhost, this machine's hostname, the
    address Ray gives this node, and `hosts` (the address a head binds to), as IP
    addresses or DNS names.

    Raises:
        ConfigError: The directory belongs to another user, or a file cannot be written.
    """
    # Imported here: `cryptography` costs every process that imports mesh (each agent's
    # worker) a tenth of a second, and only a TLS head makes certificates.
    from mesh.security._certificates import Pems, renew

    private_dir(directory)
    files = TlsFiles(directory)
    renew(Pems(files.ca_cert, files.ca_key, files.cert, files.key), _names(hosts))
    return files


def read_certificates(directory: Path) -> TlsFiles:
    """Return the certificates a client joins a TLS cluster with, checked to be there.

    Raises:
        ConfigError: A file is missing, or others can read the node's key.
    """
    files = TlsFiles(directory)
    missing = [p.name for p in (files.ca_cert, files.cert, files.key) if not p.is_file()]
    if missing:
        raise ConfigError(
            f"the TLS directory {directory} lacks {', '.join(missing)}",
            hint="`raymesh up --tls` writes them to $RAYMESH_HOME/tls; copy that directory "
            f"(without ca.key) to this machine and point {TLS_DIR_ENV} at it",
        )
    mode = stat.S_IMODE(files.key.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"the TLS key {files.key} has mode {mode:04o}: others on this machine can read it",
            hint=f"chmod 600 {files.key}",
        )
    return files


def speaks_tls(host: str, port: int, *, timeout: float = 3.0) -> bool:
    """Return True if the server at host:port completes (or alerts in) a TLS handshake."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # only asking whether it speaks TLS at all
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host),
        ):
            return True
    except ssl.SSLError as exc:
        return "ALERT" in (exc.reason or "")  # a TLS server that refused the hello
    except OSError:
        return False  # a plain server closed or timed out on a hello it cannot read


def _names(hosts: Iterable[str]) -> list[str]:
    # Ray gives a node the address it reaches the network from even when told
    # 127.0.0.1, and its processes dial each other there: the certificate must name it.
    names = [*_LOOPBACK_NAMES, socket.gethostname(), _node_ip(), *hosts]
    return list(dict.fromkeys(n for n in names if n not in _WILDCARDS))


def _node_ip() -> str:
    import ray.util

    ip: str = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
    return ip
