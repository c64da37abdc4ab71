"""The gateway as a Ray Serve application: its deployment, deploying it, and its status.

Each replica is a Serve actor inside the cluster that joins the mesh as an edge of its
own (a `Mesh` on the replica's Ray connection) and builds its FastAPI app when Serve
starts it (``__serve_build_asgi_app__``), so the app's CORS and limits come from the
team's serve block. The application is named ``raymesh-<team>``; ``raymesh status``
lists the applications so named.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, cast

from fastapi import FastAPI
from ray import serve

from mesh.edge import Mesh
from mesh.gateway._app import Driver, build_app
from mesh.gateway._settings import GatewaySettings

__all__ = ["APP_PREFIX", "app_name", "deploy_gateway", "gateway_rows", "remove_gateway"]

APP_PREFIX = "raymesh-"


def app_name(team: str) -> str:
    """The Serve application that serves `team`."""
    return f"{APP_PREFIX}{team}"


@serve.deployment(name="gateway", ray_actor_options={"num_cpus": 0})
@serve.ingress()
class Gateway:
    """One replica of a team's gateway."""

    def __init__(self, settings: GatewaySettings) -> None:
        self._settings = settings
        # Already in Ray (a Serve replica): this joins the mesh without a new connection.
        self._mesh = Mesh.connect("auto", config=settings.config)

    def __serve_build_asgi_app__(self) -> FastAPI:
        """Serve calls this once the replica is built: the app over this replica's mesh."""
        # `stream` is the streaming contract's: the mesh may not have it yet.
        return build_app(self._settings, cast(Driver, self._mesh))

    def describe(self) -> dict[str, Any]:
        """What ``raymesh status`` shows of the gateway besides Serve's own status."""
        spec = self._settings.spec
        return {"team": self._settings.team, "route": spec.route_prefix,
                "url": f"http://{spec.host}:{spec.port}{spec.route_prefix}",
                "models": sorted(self._settings.models)}  # fmt: skip


def deploy_gateway(settings: GatewaySettings) -> str:
    """Start Serve's proxy (if it is not running) and deploy the team's gateway; return its URL.

    Returns once every replica is up. Serve's proxy listens on the serve block's host
    and port; a proxy already running keeps its own.
    """
    spec = settings.spec
    serve.start(http_options={"host": spec.host, "port": spec.port})
    scaling: dict[str, Any] = (
        {"autoscaling_config": spec.autoscaling_config}
        if spec.autoscaling_config is not None
        else {"num_replicas": spec.replicas}
    )
    # `serve.deployment` made the class a Deployment: its `options` are Serve's.
    options = Gateway.options  # type: ignore[attr-defined]
    deployment = options(max_ongoing_requests=spec.max_ongoing_requests, **scaling)
    serve.run(deployment.bind(settings), name=app_name(settings.team),
              route_prefix=spec.route_prefix)  # fmt: skip
    return f"http://{spec.host}:{spec.port}{spec.route_prefix.rstrip('/')}"


def remove_gateway(team: str) -> None:
    """Delete the team's gateway application (the proxy stays for other applications)."""
    serve.delete(app_name(team))


async def gateway_rows(*, timeout: float = 5.0) -> list[dict[str, Any]]:
    """Return a row per raymesh gateway on the cluster: application, route, replicas, status.

    Reads Serve's status (starting nothing when Serve does not run) and asks each
    gateway what it serves; one that does not answer within `timeout` shows no route.
    """
    rows = []
    for name, app in serve.status().applications.items():
        if not name.startswith(APP_PREFIX):
            continue
        replicas = sum(
            count
            for deployment in app.deployments.values()
            for state, count in deployment.replica_states.items()
            if str(getattr(state, "value", state)) == "RUNNING"
        )
        row: dict[str, Any] = {"application": name, "status": str(app.status.value),
                               "replicas": replicas, "route": None, "url": None,
                               "models": []}  # fmt: skip
        # A gateway starting or failing does not answer: Serve's status says which.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(timeout):
                row |= await serve.get_app_handle(name).describe.remote()
        rows.append(row)
    return rows
