"""The served test team, deployed on the session's Ray through Ray Serve (once per module)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from _ports import free_port
from ray import serve

from mesh import Mesh
from mesh.control import load_team
from mesh.gateway import TokenCheck, deploy_gateway, gateway_settings, load_tokens

TEAM = Path(__file__).with_name("team.yaml")
#: A token per client, so that one test's requests never spend another's rate.
TOKENS = {
    client: f"{client}-token-" + "q7" * 12
    for client in ("alice", "bob", "carol", "dave", "erin", "frank")
}


def secrets_file(folder: Path) -> Path:
    """A 0600 secrets file with the clients' gateway tokens and a key that is not one."""
    path = folder / "gateway.env"
    lines = [f"RAYMESH_GATEWAY_TOKEN_{client.upper()}={token}" for client, token in TOKENS.items()]
    path.write_text("\n".join([*lines, "OPENAI_API_KEY=sk-notagatewaytoken1234567890"]) + "\n")
    path.chmod(0o600)
    return path


@contextlib.asynccontextmanager
async def served(mesh: Mesh, folder: Path) -> AsyncIterator[str]:
    """Start the test team and its gateway on a free port; yield the API's base URL (…/v1)."""
    spec = load_team(TEAM)
    team = await mesh.team(spec)
    check = TokenCheck(load_tokens(secrets_file(folder)))
    settings = gateway_settings(spec, tokens=check, config=mesh.config, port=free_port())
    try:
        url = await asyncio.to_thread(deploy_gateway, settings)
        yield f"{url}/v1"
    finally:
        # The next module starts Serve afresh, on a port of its own.
        await asyncio.to_thread(serve.shutdown)
        await team.stop()
