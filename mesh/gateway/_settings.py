"""What a gateway replica is given: a team's models, its serve block, tokens, the config.

Built in the process that starts the gateway, where the team file's agent classes
resolve, and shipped to each replica with the deployment: a replica never loads the
team file or the secrets file itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mesh.config import MeshConfig
from mesh.control import ServeSpec, TeamSpec
from mesh.errors import ConfigError
from mesh.gateway._access import TokenCheck
from mesh.gateway._openai import EntryPoint, entry_point

__all__ = ["GatewaySettings", "gateway_settings"]


@dataclass(frozen=True)
class GatewaySettings:
    """What a replica needs to serve a team.

    Attributes:
        team: The team's name.
        models: Model name -> the entry agent it asks (each entry agent by its own name).
        task_agent: The agent ``POST /v1/tasks`` asks when the body names none.
        agents: Every agent of the team (a task may name any).
        spec: The team file's ``serve:`` block (its defaults when it has none).
        tokens: Who may call.
        config: The mesh's settings (namespace, limits, the cluster secret).
    """

    team: str
    models: dict[str, EntryPoint]
    task_agent: str
    agents: frozenset[str]
    spec: ServeSpec
    tokens: TokenCheck
    config: MeshConfig = field(repr=False)


def gateway_settings(
    team: TeamSpec, *, tokens: TokenCheck, config: MeshConfig, port: int | None = None
) -> GatewaySettings:
    """Return the settings that serve `team`: its entry and each sub-team's as models.

    Args:
        team: The team, loaded.
        tokens: Who may call.
        config: The mesh's settings.
        port: The HTTP port, over the serve block's.

    Raises:
        ConfigError: The team's entry agent takes neither an LLM prompt nor a `Task`.
    """
    spec = team.serve or ServeSpec()
    if port is not None:
        spec = spec.model_copy(update={"port": port})
    agents = {agent.name: agent for agent in team.walk_agents()}
    top = team.entry_agent()
    models = {top: entry_point(top, agents[top].agent_class())}
    for sub in team.walk_teams():
        name = sub.entry_agent()
        try:
            models[name] = entry_point(name, agents[name].agent_class())
        except ConfigError:
            continue  # a sub-team that takes neither is reached through its parent only
    return GatewaySettings(team=team.name, models=models, task_agent=top,
                           agents=frozenset(agents), spec=spec, tokens=tokens,
                           config=config)  # fmt: skip
