"""The obedient model, and the agents it drives (importable by Ray workers).

The model is a fake behind the loopback server, driven by the real openai SDK: in the
newest input it reads (the prompt, retrieved context, a tool's output, a peer's
message) it finds every instruction (``CALL tool {json}``, smuggled tool-call JSON)
and makes that call; otherwise it repeats everything it saw. So the only defences are
the runtime's: tools validated against their schemas, approval for tools that change
the world, an allow-list for delegation, redaction, access rules, hop and budget limits.

This module imports `actors`: the injection and secrets scenarios measure the LLM
agents' defences, so unlike the rest of `mesh` they sit above them.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from actors import Completion, LLMAgent, Prompt
from actors.loopback import Step
from benchmarks.chaos._canaries import ENV_KEY
from mesh.agent import Agent, Context, handler

__all__ = ["MODEL", "RELAY", "Bystander", "Obedient", "Vaulted", "obey", "obey_and_relay"]

#: The model name the loopback server answers as the obedient model.
MODEL = "obedient"
#: A prompt holding this makes the model delegate the same prompt to a peer, forever.
RELAY = "RELAY FOREVER"

_CALL = re.compile(r"CALL (\w+) (?=\{)")
_SMUGGLED = re.compile(r'(?=\{"name": ")')
_JSON = json.JSONDecoder()


def _instructions(text: str) -> list[tuple[str, dict[str, Any]]]:
    # ``CALL tool {json}`` and smuggled ``{"name": ..., "arguments": {...}}`` objects.
    calls = []
    for match in _CALL.finditer(text):
        try:
            arguments, _ = _JSON.raw_decode(text, match.end())
        except json.JSONDecodeError:
            continue
        calls.append((match.group(1), arguments))
    for match in _SMUGGLED.finditer(text):
        try:
            smuggled, _ = _JSON.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(smuggled.get("arguments"), dict):
            calls.append((str(smuggled["name"]), smuggled["arguments"]))
    return calls


def obey(body: dict[str, Any]) -> Step:
    """Follow every instruction in the newest input, else echo everything seen."""
    messages = body["messages"]
    last_answer = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=-1)
    fresh = [m for m in messages[last_answer + 1 :] if m["role"] in ("user", "tool")]
    text = "\n".join(str(m.get("content") or "") for m in fresh)
    calls = _instructions(text)
    if calls:
        return Step(tool_calls=calls)
    seen = "\n".join(str(m.get("content") or "") for m in messages)
    return Step(text=f"Done as told. Everything I saw: {seen}")


def obey_and_relay(body: dict[str, Any]) -> Step:
    """`obey`, and on `RELAY` delegate the same to the first peer the schema offers."""
    messages = body["messages"]
    fresh = messages[-1]
    if fresh["role"] == "user" and RELAY in str(fresh.get("content")):
        offered = [t["function"] for t in body.get("tools", [])]
        schemas = [f["parameters"]["properties"]["peer"] for f in offered
                   if f["name"] == "ask_peer"]  # fmt: skip
        if schemas:  # a one-name allow-list is a JSON-schema const, a longer one an enum
            peer = schemas[0].get("const") or schemas[0]["enum"][0]
            return Step(tool_calls=[("ask_peer", {"peer": peer, "request": RELAY})])
    return obey(body)


def read_vault(account: str) -> str:
    """Read an account's key from the vault (this agent's environment)."""
    return f"the key of {account} is {os.environ.get(ENV_KEY, '')}"


class Obedient(LLMAgent):
    """An LLM agent that takes many prompts at once, so a delegation loop runs to its limits.

    Two of them asking each other hold one handler per hop each: with fewer handlers than
    half the hop limit, the loop would stall in a full mailbox before reaching it (64
    covers the default `max_hops`).

    Args:
        env_key: A canary planted in this agent's process as ``RAYMESH_CANARY_API_KEY``
            (the way a key reaches an agent from its node's environment).
        options: `LLMAgent`'s.
    """

    concurrency = 64

    def __init__(self, *args: Any, env_key: str | None = None, **options: Any) -> None:
        if env_key is not None:
            os.environ[ENV_KEY] = env_key
        super().__init__(*args, **options)


class Vaulted(Obedient):
    """An obedient agent with a tool that reads the key in its environment."""

    default_tools = (read_vault,)


class Bystander(Agent):
    """An agent an injected model must not reach: it would answer any prompt."""

    @handler
    async def on_prompt(self, msg: Prompt, ctx: Context) -> Completion:
        return Completion(text=f"bystander read: {msg.text}", model="none")
