"""Joining a running cluster: fail fast when nothing answers, send the token."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from typing import Any

from mesh._compat import gcs_cluster_id, reload_ray_config
from mesh.errors import ClusterError, ClusterUnreachableError

_PROBE_S = 3.0


def _probe(host: str, port: int, shown: str) -> None:
    try:
        with socket.create_connection((host, port), timeout=_PROBE_S):
            return
    except OSError as exc:
        raise ClusterUnreachableError(
            f"nothing answers at {shown} ({exc.strerror or exc})",
            hint="check the address and that the cluster is up (`raymesh up` starts one)",
        ) from exc


def prepare_driver(address: str) -> None:
    """Get this process ready to join the cluster at `address` with ``ray.init``.

    Fails fast when nothing listens there (``ray.init`` would retry for a minute), and
    turns on Ray's token mode when a token is at hand.

    Raises:
        ClusterUnreachableError: Nothing answers at the address.
        ClusterError: The address is not ``HOST:PORT``, ``ray://HOST:PORT`` or ``auto``.
    """
    if address != "auto":
        host, _, port = address.removeprefix("ray://").rpartition(":")
        if not port.isdigit():
            raise ClusterError(f"{address!r} is not HOST:PORT", hint="e.g. 10.0.0.5:6379")
        _probe(host or "127.0.0.1", int(port), address)
    _use_token_auth()
    if address != "auto" and not address.startswith("ray://"):
        _probe_gcs(address)


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


def _use_token_auth() -> None:
    # Ray clients send the cluster's token only in token mode, and Ray leaves the mode
    # unset on clients: a client without it waits about 20 s, then fails to connect.
    if "RAY_AUTH_MODE" in os.environ:
        return
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token"
    if os.environ.get("RAY_AUTH_TOKEN") or Path(path).exists():
        os.environ["RAY_AUTH_MODE"] = "token"
        reload_ray_config()  # Ray read its config when imported: make it read the mode again
