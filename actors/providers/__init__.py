"""Providers behind one interface, chosen by a model string ``provider:MODEL``.

Model strings are parsed strictly, and every problem with them (an unknown provider, a
malformed string, a missing API key) is a `ConfigError` raised when the provider is
built, that is when the agent starts, never at its first message.
"""

from __future__ import annotations

import importlib
import re
import warnings
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

from actors.providers._base import (
    ChatMessage,
    ModelRequest,
    ModelResponse,
    Provider,
    StructuredSpec,
    TextSink,
    TokenUsage,
    ToolCall,
    ToolSpec,
    estimate_tokens,
    pieces,
    rate_headers,
    streaming_to,
    text_sink,
)
from mesh import ConfigError
from mesh.extension import get_secret

__all__ = [
    "API_KEY_ENV",
    "ChatMessage",
    "ModelRequest",
    "ModelResponse",
    "ModelSpec",
    "Provider",
    "StructuredSpec",
    "TextSink",
    "TokenUsage",
    "ToolCall",
    "ToolSpec",
    "estimate_tokens",
    "make_provider",
    "parse_model",
    "pieces",
    "rate_headers",
    "streaming_to",
    "text_sink",
]

#: The environment variable each keyed provider reads its API key from.
API_KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
PROVIDERS = ("openai", "anthropic", "offline")
_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}$")
_OFFLINE_OPTIONS = {
    "latency_s": float, "fail_rate": float, "fail_first_n": int, "seed": int, "quality": str,
}  # fmt: skip


class ModelSpec(NamedTuple):
    """A parsed model string."""

    provider: str
    model: str
    #: ``?key=value`` options (offline only).
    options: dict[str, Any]

    def __str__(self) -> str:
        return f"{self.provider}:{self.model}"


def parse_model(spec: str, *, agent: str | None = None) -> ModelSpec:
    """Parse ``provider:MODEL`` (``offline:NAME?latency_s=0.1`` for offline options).

    Raises:
        ConfigError: The string is malformed or names an unknown provider or option.
    """
    example = "e.g. 'openai:gpt-4o-mini', 'anthropic:claude-sonnet-4-5' or 'offline:default'"
    if not isinstance(spec, str) or ":" not in spec:
        raise ConfigError(
            f"model {spec!r} is not of the form 'provider:MODEL'", agent=agent, hint=example
        )
    provider, _, rest = spec.partition(":")
    if provider not in PROVIDERS:
        raise ConfigError(
            f"model {spec!r} names an unknown provider {provider!r}",
            agent=agent,
            hint=f"use one of {', '.join(PROVIDERS)}; {example}",
        )
    model, _, query = rest.partition("?")
    if not _MODEL.match(model):
        raise ConfigError(f"model {spec!r} has no valid model name", agent=agent, hint=example)
    options: dict[str, Any] = {}
    if query:
        if provider != "offline":
            raise ConfigError(
                f"model {spec!r}: '?options' are only for offline models",
                agent=agent,
                hint="pass base_url and keys as agent options instead",
            )
        for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
            kind = _OFFLINE_OPTIONS.get(key)
            if kind is None:
                raise ConfigError(
                    f"model {spec!r}: unknown offline option {key!r}",
                    agent=agent,
                    hint=f"known options: {', '.join(_OFFLINE_OPTIONS)}",
                )
            try:
                options[key] = kind(value)
            except ValueError:
                raise ConfigError(
                    f"model {spec!r}: option {key}={value!r} is not a {kind.__name__}",
                    agent=agent,
                ) from None
    return ModelSpec(provider, model, options)


def make_provider(
    spec: str | ModelSpec,
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    agent: str | None = None,
    **options: Any,
) -> Provider:
    """Build the provider for a model string. No request is made.

    Args:
        spec: ``provider:MODEL``.
        api_key: The key; by default read from ``OPENAI_API_KEY`` / ``ANTHROPIC_API_KEY``.
        base_url: Another endpoint for the provider (an OpenAI-compatible server, a proxy).
        agent: The agent the provider is for, named in errors.
        options: Offline options (``latency_s``, ``fail_first_n``, ``fail_rate``, ``seed``).

    Raises:
        ConfigError: The model string is bad, an option is unknown, or the key is missing.
    """
    parsed = spec if isinstance(spec, ModelSpec) else parse_model(spec, agent=agent)
    if parsed.provider == "offline":
        merged = {**parsed.options, **options}
        unknown = set(merged) - set(_OFFLINE_OPTIONS)
        if unknown:
            raise ConfigError(
                f"unknown offline option(s) {sorted(unknown)} for {parsed}",
                agent=agent,
                hint=f"known options: {', '.join(_OFFLINE_OPTIONS)}",
            )
        from actors.providers.offline import OfflineProvider

        return OfflineProvider(parsed.model, **merged)
    if options:
        raise ConfigError(
            f"options {sorted(options)} are only for offline models, not {parsed}", agent=agent
        )
    env = API_KEY_ENV[parsed.provider]
    key = api_key if api_key is not None else get_secret(env)
    if not key:
        raise ConfigError(
            f"no API key for model {str(parsed)!r}: {env} is not set",
            agent=agent,
            hint=f"set {env} in the agent's environment or in the 0600 file named by "
            "RAYMESH_SECRETS_FILE, or pass api_key=...; for a local server that needs no "
            "key, any non-empty value works",
        )
    if parsed.provider == "openai":
        from actors.providers.openai import OpenAIProvider

        return OpenAIProvider(parsed.model, api_key=key, base_url=base_url)
    from actors.providers.anthropic import AnthropicProvider

    return AnthropicProvider(parsed.model, api_key=key, base_url=base_url)


def __getattr__(name: str) -> Any:
    # 0.1 exported the client protocol from here; it moved to actors.client (0.2).
    if name == "ModelClient":
        warnings.warn(
            "actors.providers.ModelClient moved to actors.client (import it from actors); "
            "the old name goes in 0.3",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.import_module("actors.client").ModelClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
