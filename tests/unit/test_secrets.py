"""API keys: the environment first, then a 0600 secrets file; both redacted once read."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors import make_provider
from mesh import ConfigError
from mesh.security._redaction import redact
from mesh.security._secrets import get_secret, looks_like_secret, read_secrets_file


def _file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "secrets.env"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_a_provider_finds_its_key_in_the_secrets_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "sk-from-the-file-0123456789"
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("RAYMESH_SECRETS_FILE", str(_file(tmp_path, f"OPENAI_API_KEY={key}\n")))
    provider = make_provider("openai:gpt-test", base_url="http://127.0.0.1:9/v1")
    assert provider is not None
    assert get_secret("OPENAI_API_KEY") == key
    assert redact(f"calling with {key}") == "calling with [redacted]"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment-99")
    assert get_secret("OPENAI_API_KEY") == "sk-from-the-environment-99"


def test_a_readable_file_or_a_bad_line_is_refused_without_showing_the_line(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError, match="mode 0640"):
        read_secrets_file(_file(tmp_path, "A=b\n", mode=0o640))
    with pytest.raises(ConfigError, match="line 2: expected KEY=value") as caught:
        read_secrets_file(_file(tmp_path, "# keys\nsk-orphan-value-123456789\n"))
    assert "sk-orphan" not in str(caught.value)
    with pytest.raises(ConfigError, match="cannot read"):
        read_secrets_file(tmp_path / "missing.env")


def test_what_looks_like_a_key() -> None:
    assert looks_like_secret("anything", "sk-ant-api03-abcdefghijkl")
    assert looks_like_secret("api_key", "Zk3jq9Lw0pX7vB2nM5cR8tY1uA4sD6fG")
    assert not looks_like_secret("api_key", "unused")
    assert not looks_like_secret("key_env", "ANTHROPIC_API_KEY_FOR_PRODUCTION")
    assert not looks_like_secret("description", "Zk3jq9Lw0pX7vB2nM5cR8tY1uA4sD6fG")
    # A name for where a secret is kept holds a path, however random it looks.
    assert not looks_like_secret("secrets_file", "/tmp/raymesh-chaos-203o3an4/secrets.env")
    assert looks_like_secret("secret", "/tmp/raymesh-chaos-203o3an4/secrets.env")
