"""Access control: which agents (or roles) may send which message types to which agents.

A team file is one trust domain. Within it, agents may message each other freely (or
only as its rules allow, with ``within: closed``); from outside it (another team, a
lone agent) nothing gets in unless a rule allows it. Drivers (the edge) may reach
every agent unless ``edge: false``. A driver is known by the driver flag of a frame's
header (signed with the rest, in a signed mesh), never by its name: names beginning
with ``edge-`` are reserved for drivers, and no agent may take one. The receiving host
enforces the rules on the authenticated sender, since a sender can claim anything
(sign the mesh, or the names and the flag checked here are only as good as the
network)::

    access:
      within: open                 # open | closed
      edge: true                   # drivers may send to every agent of the team
      allow:
        - from: [lead, "role:orchestrator", "other-team-lead"]   # names, role:R, edge, *
          to: ["role:writer"]                                     # names of this team, role:R, *
          types: ["review.draft/1"]                               # type tags, or * (default)

Replies and errors are not messages a sender chooses to send, so they are not checked:
they answer an ask the receiver made itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mesh.errors import AccessDeniedError

__all__ = ["EDGE", "EDGE_PREFIX", "AccessPolicy", "AccessRule", "AgentAccess", "compile_access"]

#: The principal that matches drivers: frames with the driver flag in their header.
EDGE = "edge"
#: How drivers' names begin; reserved, so no agent can be mistaken for one in a log.
EDGE_PREFIX = f"{EDGE}-"
_ANY = "*"
_ROLE = "role:"


class AccessRule(BaseModel):
    """Senders that may send message types to receivers."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    senders: tuple[str, ...] = Field(
        alias="from", min_length=1, description="Agent names, 'role:R', 'edge' or '*'."
    )
    to: tuple[str, ...] = Field(min_length=1, description="Agents of this team, 'role:R' or '*'.")
    types: tuple[str, ...] = Field((_ANY,), min_length=1, description="Type tags, or '*'.")


class AccessPolicy(BaseModel):
    """The ``access`` section of a team file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    within: Literal["open", "closed"] = Field(
        "open", description="open: the team's agents may message each other freely."
    )
    edge: bool = Field(True, description="Drivers (the edge) may send to every agent.")
    allow: tuple[AccessRule, ...] = ()

    def check_names(self, roles: dict[str, str | None]) -> list[str]:
        """Return what is wrong with the rules for a team of agents `roles` (name: role)."""
        known_roles = {role for role in roles.values() if role}
        problems = []
        for index, rule in enumerate(self.allow):
            for field, names in (("from", rule.senders), ("to", rule.to)):
                for name in names:
                    where = f"access.allow[{index}].{field}"
                    if name.startswith(_ROLE) and name[len(_ROLE) :] not in known_roles:
                        problems.append(f"{where}: no agent of the team has role {name[5:]!r}")
                    elif (
                        field == "to"
                        and not name.startswith(_ROLE)
                        and name != _ANY
                        and (name not in roles)
                    ):
                        problems.append(f"{where}: {name!r} is not an agent of this team")
        return problems


class AgentAccess(BaseModel):
    """The rules compiled for one receiving agent: who may send it what."""

    model_config = ConfigDict(frozen=True)

    agent: str
    team: str
    members: frozenset[str]
    within_open: bool
    edge: bool
    # (senders, types) pairs; None means any.
    rules: tuple[tuple[frozenset[str] | None, frozenset[str] | None], ...] = ()

    def check(
        self, sender: str, message_type: str, *, trace_id: str | None = None, driver: bool = False
    ) -> AccessDeniedError | None:
        """Return the error for a message this agent may not take, or None.

        `driver` is the frame's driver flag: what gives a sender the `edge` rights.
        """
        edge = driver and sender not in self.members
        if (sender in self.members and self.within_open) or (edge and self.edge):
            return None
        for senders, types in self.rules:
            by_sender = senders is None or sender in senders or (edge and EDGE in senders)
            if by_sender and (types is None or message_type in types):
                return None
        where = "" if sender in self.members else f"{sender!r} is not in team {self.team!r}; "
        return AccessDeniedError(
            f"{sender!r} may not send {message_type!r} to {self.agent!r}",
            agent=self.agent,
            trace_id=trace_id,
            hint=f"{where}allow it with an access.allow rule in the file of team {self.team!r}",
        )


def compile_access(
    policy: AccessPolicy | None, *, team: str, roles: dict[str, str | None], agent: str
) -> AgentAccess:
    """Return what `agent` of `team` (agents `roles`, name: role) accepts under `policy`."""
    policy = policy or AccessPolicy()
    my_role = roles.get(agent)
    rules = []
    for rule in policy.allow:
        if not _names(rule.to, roles, my_role=my_role, me=agent):
            continue
        senders = None if _ANY in rule.senders else frozenset(_expand(rule.senders, roles))
        types = None if _ANY in rule.types else frozenset(rule.types)
        rules.append((senders, types))
    return AgentAccess(agent=agent, team=team, members=frozenset(roles),
                       within_open=policy.within == "open", edge=policy.edge,
                       rules=tuple(rules))  # fmt: skip


def _names(targets: Iterable[str], roles: dict[str, str | None], *, my_role: str | None,
           me: str) -> bool:  # fmt: skip
    return any(t in (_ANY, me) or (my_role and t == f"{_ROLE}{my_role}") for t in targets)


def _expand(names: Iterable[str], roles: dict[str, str | None]) -> list[str]:
    found: list[str] = []
    for name in names:
        if name.startswith(_ROLE):
            found.extend(agent for agent, role in roles.items() if role == name[len(_ROLE) :])
        else:
            found.append(name)
    return found
