"""`raymesh submit` carries no secret: --env refusals and the working directory's key files.

All of it is decided before the cluster is contacted, so no cluster is needed here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mesh.cli import app
from mesh.errors import ClusterError
from mesh.ops import key_files, parse_env


@pytest.mark.parametrize(
    "item",
    [
        "STRIPE_KEY=plainvalue",
        "SESSION_TOKEN=plainvalue",
        "APP_SECRET=plainvalue",
        "DB_PASSWORD=plainvalue",
        "SSH_PRIVATE_MATERIAL=plainvalue",
        "PROXY_AUTH_HEADER=plainvalue",
        "GCP_CREDENTIALS=plainvalue",
        "DATABASE_URL=postgres://app:s3cr3t-pw@db:5432/orders",
        "MIRROR=https://:hunter22@pypi.example.com/simple",
        "HARMLESS=sk-ant-api03-Ab3dEf6hIj9kLm2nOp5q",
        "HARMLESS=AKIAIOSFODNN7EXAMPLE",
        "HARMLESS=glpat-Ab3dEf6hIj9kLm2nOp5q",
        "HARMLESS=xoxb-1234567890-0987654321-Ab3dEf6hIj",
        "HARMLESS=hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
    ],
)
def test_secret_names_key_shapes_and_url_passwords_are_refused_without_the_value(
    item: str,
) -> None:
    name, _, value = item.partition("=")
    with pytest.raises(ClusterError) as refused:
        parse_env([item], {})
    shown = f"{refused.value} {refused.value.hint}"
    assert f"--env {name}: refused" in shown
    assert value not in shown
    assert "raymesh up --secrets-file" in shown


@pytest.mark.parametrize(
    "item",
    [
        "ZONE=guard-south-2b",
        "DATABASE_URL=postgres://guard@db:5432/orders",
        "DOCS=https://guard.example.com:8443/a@b",
        "RAYMESH_SECRETS_FILE=/etc/raymesh/guard.env",
        "KEY_DIR=/etc/guard-keys",
    ],
)
def test_plain_settings_and_urls_without_passwords_pass(item: str) -> None:
    # (parse_env remembers the values it lets through, to mask them in the job's logs:
    # each is one no other test prints.)
    name, _, value = item.partition("=")
    assert parse_env([item], {}) == {name: value}


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_the_scan_sees_what_rays_upload_would_carry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RAY_RUNTIME_ENV_IGNORE_GITIGNORE", raising=False)
    monkeypatch.delenv("RAY_OVERRIDE_RUNTIME_ENV_DEFAULT_EXCLUDES", raising=False)
    root = _tree(
        tmp_path,
        {
            "team.yaml": "name: t\n",
            "agents.py": "",
            "id_utils.py": "",
            "keys/id_ed25519.pub": "",
            ".env": "K=v",
            ".env.local": "K=v",
            "certs/server.pem": "",
            "tls/client.key": "",
            "deploy/id_rsa": "",
            ".venv/.env": "",
            ".git/id_rsa": "",
            "__pycache__/x.pem": "",
            "ignored/.env": "",
            ".gitignore": "ignored/\n",
            "sub/.rayignore": "*.pem\n",
            "sub/local.pem": "",
            "sub/deeper/also.pem": "",
        },
    )
    assert key_files(root) == [
        ".env",
        ".env.local",
        "certs/server.pem",
        "deploy/id_rsa",
        "tls/client.key",
    ]
    assert key_files(root, ["certs/", "*.key", ".env*"]) == ["deploy/id_rsa"]
    monkeypatch.setenv("RAY_RUNTIME_ENV_IGNORE_GITIGNORE", "1")
    assert "ignored/.env" in key_files(root)


def test_raymesh_submit_refuses_key_files_before_contacting_the_cluster(tmp_path: Path) -> None:
    team = _tree(tmp_path, {"team.yaml": "name: t\nagents: []\n", "deploy/id_ed25519": "k"})
    # Nothing listens at this address: the refusal must come before any connection.
    address = ["--address", "http://127.0.0.1:9"]
    refused = CliRunner().invoke(app, ["submit", str(team / "team.yaml"), "--task", "x", *address])
    assert refused.exit_code == 1
    assert "deploy/id_ed25519" in refused.output
    assert "--exclude" in refused.output
    assert "nothing answers" not in refused.output
    allowed = CliRunner().invoke(
        app, ["submit", str(team / "team.yaml"), "--task", "x", "--exclude", "deploy/", *address]
    )
    assert allowed.exit_code == 1
    assert "nothing answers at http://127.0.0.1:9" in allowed.output  # it went on to connect
