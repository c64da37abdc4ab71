"""Teams declared in YAML or Python: `AgentSpec`, `TeamSpec` and their loading.

A team file names agent classes by import path (``pkg.module:Class``) or by a role
preset that a package registers under the ``raymesh.roles`` entry-point group, the way
Ray Serve and Python plugins do, so `mesh` never imports the packages that define
agents. Names are resolved when the file is loaded: an unknown class or role is an
error then, naming the file and the field, not at the first message.

::

    name: review
    strategy: one_for_one          # one_for_all | rest_for_one
    max_restarts: 3
    within_s: 5
    entry: lead
    agents:
      - name: lead
        agent: review_team:Lead    # or a role preset: reasoner
        role: orchestrator
        restart: permanent         # transient | temporary
        options: {style: terse}    # constructor keyword arguments
    teams:
      - name: writers
        agents: [...]
    access: {...}                  # who may send what to whom: see mesh.security._acl
    serve: {replicas: 2, port: 8000}  # `raymesh serve`: see ServeSpec

A value that looks like an API key or token is a load error: keys come from the
environment or a secrets file (mesh.security._secrets), never from a team file.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from mesh.agent import Agent
from mesh.control._patterns import PatternSpec, with_conductor
from mesh.control._policy import RestartType, Strategy
from mesh.errors import ConfigError
from mesh.security import AccessPolicy, AgentAccess, compile_access, secret_fields

__all__ = [
    "ROLE_GROUP",
    "AgentSpec",
    "ServeSpec",
    "TeamSpec",
    "load_team",
    "resolve_agent",
    "with_access",
]

ROLE_GROUP = "raymesh.roles"
_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


class AgentSpec(BaseModel):
    """One agent of a team."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    agent: str | type[Agent] | Any = Field(
        description="An Agent class, its import path 'pkg.module:Class', or a role preset."
    )
    role: str | None = None
    capabilities: tuple[str, ...] = ()
    model: str | None = None
    topics: tuple[str, ...] = Field((), description="Topics to subscribe to (adds to the class's).")
    concurrency: int | None = Field(None, ge=1)
    mailbox_size: int | None = Field(None, ge=1)
    restart: RestartType = "permanent"
    options: dict[str, Any] = Field(default_factory=dict)
    actor_options: dict[str, Any] = Field(
        default_factory=dict, description="Ray actor options: resources, scheduling_strategy."
    )
    # What this agent accepts from whom; set by `load_team` from its team's access rules.
    _access: AgentAccess | None = PrivateAttr(None)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                f"agent name {value!r} is not valid: "
                "use 1-128 letters, digits, '_', '.', ':' or '-'"
            )
        return value

    @field_validator("agent")
    @classmethod
    def _known(cls, value: Any) -> str | type[Agent]:
        if isinstance(value, str):
            resolve_agent(value)
        elif not (isinstance(value, type) and issubclass(value, Agent)):
            raise ValueError(f"{value!r} is not an Agent subclass")
        return value  # type: ignore[no-any-return]

    @classmethod
    def build(cls, **fields: Any) -> AgentSpec:
        """Return a validated spec.

        Raises:
            ConfigError: A field is invalid; the message names it and what is wrong.
        """
        try:
            return cls.model_validate(fields)
        except ValidationError as exc:
            raise ConfigError(
                f"cannot use agent {fields.get('name')!r}:\n{_problems(exc)}",
                agent=fields.get("name"),
            ) from None

    def agent_class(self) -> type[Agent]:
        """Return the agent class this spec names."""
        return self.agent if isinstance(self.agent, type) else resolve_agent(self.agent)

    @property
    def access(self) -> AgentAccess | None:
        """The access rules its host enforces; None for an agent outside any team."""
        return self._access


class ServeSpec(BaseModel):
    """How ``raymesh serve`` serves a team over HTTP (the team file's ``serve:`` block).

    Scaling is Ray Serve's: `replicas` or `autoscaling_config` (passed to Serve as they
    are) and `max_ongoing_requests` per replica. The rate limit is per token and per
    replica: N replicas admit up to N times `rate_per_s` for one token.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    replicas: int = Field(1, ge=1, description="Gateway replicas (without autoscaling).")
    autoscaling_config: dict[str, Any] | None = Field(
        None, description="Ray Serve's autoscaling settings (min_replicas, max_replicas, ...)."
    )
    max_ongoing_requests: int = Field(64, ge=1, description="Requests one replica takes at once.")
    port: int = Field(8000, ge=1, le=65535, description="The HTTP port of Serve's proxy.")
    host: str = Field("127.0.0.1", description="The address Serve's proxy listens on.")
    route_prefix: str = Field("/", pattern=r"^/", description="Where the API is mounted.")
    cors_origins: tuple[str, ...] = Field((), description="Origins allowed by CORS (none: off).")
    deadline_s: float = Field(60.0, gt=0, description="A request's deadline given none.")
    max_deadline_s: float = Field(300.0, gt=0, description="Cap on X-Raymesh-Deadline-S.")
    max_body_bytes: int = Field(1_048_576, ge=1, description="Larger request bodies get 413.")
    rate_per_s: float = Field(20.0, gt=0, description="Requests a token may make per second.")
    burst: int = Field(40, ge=1, description="Requests a token may make at once.")

    @model_validator(mode="after")
    def _deadlines(self) -> ServeSpec:
        if self.deadline_s > self.max_deadline_s:
            raise ValueError(
                f"deadline_s {self.deadline_s} is over max_deadline_s {self.max_deadline_s}"
            )
        return self


class TeamSpec(BaseModel):
    """A team: a supervisor with its agents and sub-teams."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_NAME.pattern)
    strategy: Strategy = "one_for_one"
    max_restarts: int = Field(3, ge=0)
    within_s: float = Field(5.0, gt=0)
    entry: str | None = Field(None, description="The agent that takes the team's tasks.")
    actor_options: dict[str, Any] = Field(
        default_factory=dict, description="Ray actor options of the team's supervisor."
    )
    agents: tuple[AgentSpec, ...] = ()
    teams: tuple[TeamSpec, ...] = ()
    access: AccessPolicy | None = Field(None, description="Who may send what to whom.")
    pattern: PatternSpec | None = Field(
        None, description="A conversation pattern its conductor runs on each task."
    )
    serve: ServeSpec | None = Field(None, description="How `raymesh serve` serves the team.")

    @model_validator(mode="before")
    @classmethod
    def _conductor(cls, data: Any) -> Any:
        return with_conductor(data)

    @model_validator(mode="after")
    def _consistent(self) -> TeamSpec:
        if not self.agents and not self.teams:
            raise ValueError(f"team {self.name!r} has no agents and no teams")
        seen: set[str] = set()
        for name in [a.name for a in self.walk_agents()] + [t.name for t in self.walk_teams()]:
            if name in seen:
                raise ValueError(f"the name {name!r} is used twice in team {self.name!r}")
            seen.add(name)
        if self.entry is not None and self.entry not in {a.name for a in self.walk_agents()}:
            raise ValueError(f"entry {self.entry!r} is not an agent of team {self.name!r}")
        if any(team.serve is not None for team in self.walk_teams()):
            raise ValueError("serve: only the top-level team of a file may declare it")
        if any(team.access is not None for team in self.walk_teams()):
            raise ValueError("access: only the top-level team of a file may declare access rules")
        if self.access is not None:
            problems = self.access.check_names({a.name: a.role for a in self.walk_agents()})
            if problems:
                raise ValueError("; ".join(problems))
        if self.pattern is not None:
            self.pattern.check(self.name, list(self.walk_agents()))
        return self

    def walk_agents(self) -> Iterator[AgentSpec]:
        """Yield every agent of the tree, depth first, in start order."""
        yield from self.agents
        for team in self.teams:
            yield from team.walk_agents()

    def walk_teams(self) -> Iterator[TeamSpec]:
        """Yield every sub-team of the tree, depth first."""
        for team in self.teams:
            yield team
            yield from team.walk_teams()

    def entry_agent(self) -> str:
        """Return the name of the agent that takes the team's tasks."""
        if self.entry is not None:
            return self.entry
        first = next(self.walk_agents(), None)
        if first is None:
            raise ConfigError(f"team {self.name!r} has no agents")
        return first.name

    def children(self) -> list[tuple[str, RestartType]]:
        """Return (name, restart type) of the direct children in start order."""
        # A sub-team is always restarted when it fails (it is a supervisor).
        teams: list[tuple[str, RestartType]] = [(t.name, "permanent") for t in self.teams]
        return [(a.name, a.restart) for a in self.agents] + teams


def resolve_agent(ref: str) -> type[Agent]:
    """Return the agent class for an import path ``pkg.module:Class`` or a role preset.

    Raises:
        ValueError: Nothing by that name, or it is not an Agent subclass.
    """
    if ":" in ref:
        module_name, _, attr = ref.partition(":")
        try:
            found: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                found = getattr(found, part)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"cannot import agent class {ref!r}: {exc}") from None
    else:
        presets = {ep.name: ep for ep in entry_points(group=ROLE_GROUP)}
        if ref not in presets:
            known = ", ".join(sorted(presets)) or "none installed"
            raise ValueError(
                f"unknown role preset {ref!r} (known: {known}); name a class as 'module:Class'"
            )
        found = presets[ref].load()
    if not (isinstance(found, type) and issubclass(found, Agent)):
        raise ValueError(f"{ref!r} is not an Agent subclass")
    return found


def load_team(source: str | Path | dict[str, Any] | TeamSpec) -> TeamSpec:
    """Return a validated team from a YAML file, a mapping or a spec.

    A file's directory is put on ``sys.path`` first, so that agent modules next to the
    team file resolve.

    Raises:
        ConfigError: The file is missing or not YAML, or the team is invalid; the message
            names the file, the field path and what is wrong.
    """
    if isinstance(source, TeamSpec):
        return with_access(source)
    where = "team"
    if isinstance(source, str | Path):
        path = Path(source)
        where = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read team file {where}: {exc.strerror}") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{where} is not valid YAML: {exc}") from None
        if str(path.parent.resolve()) not in sys.path:
            sys.path.insert(0, str(path.parent.resolve()))
    else:
        data = source
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: a team must be a mapping with 'name' and 'agents'")
    keys = secret_fields(data)
    if keys:
        raise ConfigError(
            f"{where}: {', '.join(keys)} looks like an API key or secret in plain text",
            hint="remove it; set it in the environment (e.g. OPENAI_API_KEY) or in the "
            "0600 file named by RAYMESH_SECRETS_FILE",
        )
    try:
        return with_access(TeamSpec.model_validate(data))
    except ValidationError as exc:
        raise ConfigError(f"{where}: invalid team\n{_problems(exc)}",
                          hint="see the team file reference in the README") from None  # fmt: skip


def with_access(team: TeamSpec) -> TeamSpec:
    """Return `team` with each agent carrying the access rules its host will enforce."""
    roles = {a.name: a.role for a in team.walk_agents()}

    def compiled(node: TeamSpec) -> TeamSpec:
        agents = []
        for agent in node.agents:
            copy = agent.model_copy()
            copy._access = compile_access(team.access, team=team.name, roles=roles,
                                          agent=agent.name)  # fmt: skip
            agents.append(copy)
        teams = tuple(compiled(t) for t in node.teams)
        return node.model_copy(update={"agents": tuple(agents), "teams": teams})

    return compiled(team)


def _problems(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        where = path.lstrip(".")
        lines.append(f"  {where}: {message}" if where else f"  {message}")
    return "\n".join(lines)
