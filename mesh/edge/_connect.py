"""Joining a running cluster: fail fast when nothing answers, send the token, speak its TLS."""

from __future__ import annotations

import os
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

import ray

from mesh._compat import gcs_cluster_id, reload_ray_config
from mesh.config import raymesh_home
from mesh.edge._local import joining
from mesh.errors import ClusterError, ClusterUnreachableError, ConfigError, TlsError
from mesh.security import (
    TLS_DIR_ENV,
    ensure_certificates,
    read_certificates,
    speaks_tls,
    tls_directory,
    tls_enabled,
)

_PROBE_S = 3.0
_TLS_VARS = ("RAY_TLS_SERVER_CERT", "RAY_TLS_SERVER_KEY", "RAY_TLS_CA_CERT")
#: HTTP/2's client preface and an empty SETTINGS frame: a gRPC server that accepted our
#: certificate answers with its own SETTINGS; one that refused it closes the connection.
_H2_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
_TLS_HINT = (
    "copy ca.crt, node.crt and node.key from the head's $RAYMESH_HOME/tls into a 0700 "
    f"directory and set {TLS_DIR_ENV} to it (on the head's machine, the same RAYMESH_HOME "
    "finds them)"
)


def probe_port(host: str, port: int, shown: str) -> None:
    """Fail fast, typed, when nothing accepts a connection at `host`:`port` (`shown` to users)."""
    try:
        with socket.create_connection((host, port), timeout=_PROBE_S):
            return
    except OSError as exc:
        raise ClusterUnreachableError(
            f"nothing answers at {shown} ({exc.strerror or exc})",
            hint="check the address and that the cluster is up (`raymesh up` starts one)",
        ) from exc


def prepare_driver(address: str, *, tls: bool | Path | None = None) -> None:
    """Get this process ready to join the cluster at `address` with ``ray.init``.

    Fails fast when nothing listens there (``ray.init`` would retry for a minute), turns
    on Ray's token mode when a token is at hand, and Ray's TLS when the cluster speaks it
    (a TLS handshake tells): Ray reads its TLS variables in every process, drivers
    included, and a driver without them waits for a minute, then fails untyped.

    Args:
        address: ``HOST:PORT``, ``ray://HOST:PORT`` or ``auto``.
        tls: None: use TLS if the cluster does, with the certificates in
            ``$RAYMESH_TLS_DIR``, else ``$RAYMESH_HOME/tls``, unless Ray's own
            ``RAY_USE_TLS`` variables are set. True: the cluster must speak TLS. A path:
            the directory of ``ca.crt``, ``node.crt`` and ``node.key``. False: never TLS.

    Raises:
        ClusterUnreachableError: Nothing answers at the address.
        TlsError: The cluster speaks TLS and this client has no certificates, or they
            are not signed by the cluster's CA, or the cluster does not speak TLS and
            `tls` (or ``RAY_USE_TLS``) asked for it.
        ConfigError: The certificates are missing, unreadable or readable by others.
        ClusterError: The address is not ``HOST:PORT``, ``ray://HOST:PORT`` or ``auto``.
    """
    if address != "auto":
        host, _, port = address.removeprefix("ray://").rpartition(":")
        if not port.isdigit():
            raise ClusterError(f"{address!r} is not HOST:PORT", hint="e.g. 10.0.0.5:6379")
        probe_port(host or "127.0.0.1", int(port), address)
        _use_tls(host or "127.0.0.1", int(port), address, tls)
    elif tls is not None and tls is not False:
        env = _client_tls_env(tls)  # `auto` names no port to probe: trust the caller
        if env is not None:
            _export(env)
    use_token_auth()
    if address != "auto" and not address.startswith("ray://"):
        _probe_gcs(address)


def join_cluster(
    address: str, *, namespace: str, tls: bool | Path | None = None, **ray_init_kwargs: Any
) -> None:
    """Join the Ray cluster at `address` as a driver: `prepare_driver`, then ``ray.init``.

    The one way every command and `Mesh.connect` join: fail fast, token, TLS, and a
    loopback head reached on loopback (`joining`).

    Raises:
        ClusterUnreachableError: Nothing answers at the address.
        TlsError: The cluster and this client disagree on TLS or on its CA.
        ConfigError: The cluster refused the connection.
    """
    prepare_driver(address, tls=tls)
    try:
        with joining(address):
            ray.init(address=address, namespace=namespace, **ray_init_kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ConfigError(
            f"cannot join the Ray cluster at {address!r}: {exc}",
            hint="check the address; `ray status` on the head shows it",
        ) from exc


def _probe_gcs(address: str, within: float = _PROBE_S) -> None:
    # Something may accept TCP without being a GCS (a proxy, another server), and
    # ray.init then retries for 20 s: ask the GCS for its cluster id first.
    outcome: dict[str, Any] = {}

    def ask() -> None:
        try:
            outcome["cluster_id"] = gcs_cluster_id(address)
        except Exception as exc:  # Ray raises RpcError, RuntimeError, ...
            outcome["error"] = exc

    # A daemon thread: a GCS that never answers must not keep the process alive.
    thread = threading.Thread(target=ask, name="raymesh-gcs-probe", daemon=True)
    thread.start()
    thread.join(within)
    if "cluster_id" in outcome:
        return
    reason = f"{type(outcome['error']).__name__}: {outcome['error']}" if outcome else "no answer"
    raise ClusterUnreachableError(
        f"no Ray cluster answers at {address} ({reason})",
        hint="pass the GCS address of the head (`ray start --head --port`, 6379 by default)",
    )


def use_token_auth() -> None:
    """Send the cluster's token from this client when one is at hand (Ray's token mode)."""
    # Ray clients send the cluster's token only in token mode, and Ray leaves the mode
    # unset on clients: a client without it waits about 20 s, then fails to connect.
    if "RAY_AUTH_MODE" in os.environ:
        return
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token"
    if os.environ.get("RAY_AUTH_TOKEN") or Path(path).exists():
        os.environ["RAY_AUTH_MODE"] = "token"
        reload_ray_config()  # Ray read its config when imported: make it read the mode again


def use_local_tls() -> None:
    """Turn Ray's TLS on for the local Ray this process is about to start.

    The CA and node certificate are made (or reused) in ``$RAYMESH_TLS_DIR``, else
    ``$RAYMESH_HOME/tls``; the Ray processes ``ray.init`` starts inherit the variables.
    """
    _export(ensure_certificates(tls_directory(raymesh_home())).env())


def _export(env: dict[str, str]) -> None:
    os.environ.update(env)
    reload_ray_config()  # Ray read its config when imported: make it read TLS's again


def _client_tls_env(tls: bool | Path | None) -> dict[str, str] | None:
    """The TLS variables this client would join with, or None if it has none."""
    if isinstance(tls, Path):
        return read_certificates(tls).env()
    if tls_enabled(os.environ):
        missing = [name for name in _TLS_VARS if not os.environ.get(name)]
        if missing:
            raise ConfigError(
                f"RAY_USE_TLS is set but {', '.join(missing)} is not",
                hint="set all of RAY_TLS_SERVER_CERT, RAY_TLS_SERVER_KEY and RAY_TLS_CA_CERT",
            )
        return {"RAY_USE_TLS": "1", **{name: os.environ[name] for name in _TLS_VARS}}
    directory = tls_directory(raymesh_home())
    if tls is True or TLS_DIR_ENV in os.environ or directory.exists():
        return read_certificates(directory).env()
    return None


def _use_tls(host: str, port: int, shown: str, tls: bool | Path | None) -> None:
    speaks = speaks_tls(host, port, timeout=_PROBE_S)
    if tls is False:
        if speaks:
            raise TlsError(
                f"the cluster at {shown} speaks TLS, and this client was told not to",
                hint="drop tls=False: a client without TLS cannot join it",
            )
        return
    if not speaks:
        if tls is not None or tls_enabled(os.environ):
            raise TlsError(
                f"the cluster at {shown} does not speak TLS, and this client was told to",
                hint="start it with `raymesh up --tls`, or join without TLS (unset RAY_USE_TLS)",
            )
        return
    env = _client_tls_env(tls)
    if env is None:
        raise TlsError(
            f"the cluster at {shown} requires TLS (Ray's mutual TLS), and this client has "
            "no certificates",
            hint=_TLS_HINT,
        )
    _handshake(host, port, shown, env)
    _export(env)


def _handshake(host: str, port: int, shown: str, env: dict[str, str]) -> None:
    """Check, as Ray's gRPC will, that each side accepts the other's certificate."""
    ca, cert, key = env["RAY_TLS_CA_CERT"], env["RAY_TLS_SERVER_CERT"], env["RAY_TLS_SERVER_KEY"]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.set_alpn_protocols(["h2"])
    try:
        context.load_verify_locations(ca)
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"cannot load the TLS files {ca}, {cert}, {key}: {exc}", hint=_TLS_HINT
        ) from exc
    answer = b""
    try:
        with (
            socket.create_connection((host, port), timeout=_PROBE_S) as raw,
            context.wrap_socket(raw, server_hostname=host) as conn,
        ):
            conn.sendall(_H2_HELLO)
            answer = conn.recv(9)
    except ssl.SSLCertVerificationError as exc:
        raise TlsError(
            f"the TLS certificate of the cluster at {shown} does not verify against this "
            f"client's CA {ca} ({exc.verify_message})",
            hint="use the ca.crt of the head that cluster runs on; " + _TLS_HINT,
        ) from exc
    except (ssl.SSLError, OSError):
        pass  # the server ended the handshake: it refused our certificate
    if not answer:
        raise TlsError(
            f"the cluster at {shown} refused this client's TLS certificate {cert}: it is "
            "not signed by the cluster's CA",
            hint=_TLS_HINT,
        )
