"""The one redactor: every key shape, every secret name, nested data, and the fast path."""

from __future__ import annotations

import re

import pytest

from mesh.security._redaction import (
    _CANDIDATES,
    _SHAPES,
    MASK,
    is_secret_name,
    redact,
    redact_data,
    remember_secret,
)

#: One made-up key of every shape the redactor knows, and what must stay of its text.
SHAPED = {
    "openai": ("key sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t end", "key [redacted] end"),
    "openai-legacy": ("sk-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z", MASK),
    "anthropic": ("x=sk-ant-api03-Ab3dEf6hIj9kLm2nOp5q-Rs8t_Uv1w", "x=[redacted]"),
    "google": ("AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q", MASK),
    "google-oauth": ("token ya29.a0AfH6SMBx1y2z3w4v5u6t7s8r", "token [redacted]"),
    "aws-id": ("id AKIAIOSFODNN7EXAMPLE,", "id [redacted],"),
    "aws-session-id": ("ASIAY34FZKBOKMUTVV7A", MASK),
    "aws-secret": (
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
        "aws_secret_access_key = [redacted]\n",
    ),
    "aws-secret-json": (
        '{"SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}',
        '{"SecretAccessKey": "[redacted]"}',
    ),
    "aws-secret-env": (
        "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "AWS_SECRET_ACCESS_KEY=[redacted]",
    ),
    "huggingface": ("hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", MASK),
    "github": ("ghp_Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z0123", MASK),
    "github-app": ("ghs_Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z0123", MASK),
    "github-pat": ("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", MASK),
    "gitlab": ("glpat-Ab3dEf6hIj9kLm2nOp5q", MASK),
    "stripe": ("sk_live_51Hab3dEf6hIj9kLm2nOp5qRs", MASK),
    "stripe-restricted": ("rk_live_51Hab3dEf6hIj9kLm2nOp5qRs", MASK),
    "slack": ("xoxb-1234567890-0987654321-Ab3dEf6hIj9kLm2n", MASK),
    "slack-user": ("xoxp-1234567890-0987654321-Ab3dEf6hIj9kLm2n", MASK),
    "jwt": (
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9P",
        MASK,
    ),
    "url-password": (
        "postgres://app:s3cr3t-pw@db.internal:5432/orders",
        "postgres://app:[redacted]@db.internal:5432/orders",
    ),
    "url-password-no-user": ("redis://:hunter2@cache:6379/0", "redis://:[redacted]@cache:6379/0"),
    "bearer": (
        "Authorization: Bearer abc.DEF-ghi_JKL~mno+pqr/stu=",
        "Authorization: Bearer [redacted]",
    ),
    "basic-auth": ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "Authorization: Basic [redacted]"),
    "auth-header": (
        "{'authorization': 'Token 9a8b7c6d5e4f'}",
        "{'authorization': 'Token [redacted]'}",
    ),
    "private-key": (
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n"
        "-----END OPENSSH PRIVATE KEY-----",
        MASK,
    ),
}


@pytest.mark.parametrize("shape", sorted(SHAPED))
def test_every_key_shape_is_masked(shape: str) -> None:
    text, masked = SHAPED[shape]
    assert redact(text) == masked


@pytest.mark.parametrize("shape", sorted(SHAPED))
def test_the_fast_path_lets_no_shape_through(shape: str) -> None:
    # The candidate search must find every text the substitution would change: each
    # shape alone, and inside a line of ordinary words.
    candidates = re.compile("|".join(_CANDIDATES))
    text = SHAPED[shape][0]
    assert candidates.search(text)
    assert candidates.search(f"the call failed: {text} (retrying)")


def test_every_shape_has_a_sample() -> None:
    assert len(_SHAPES) <= len(SHAPED)


@pytest.mark.parametrize(
    "text",
    [
        "handler on_task of 'reviewer' handled raymesh.task/1 in 12.5 ms",
        "trace=4bf92f3577b34da6a3ce929d0e0e4736 span=00f067aa0ba902b7",
        "see https://docs.example.com:8443/guide@v2 and http://host:8080/x",
        "task-runner sk-learn skipped; AKIA is not a key; mask_tokens=12",
        "a Bearer of bad news",
        "authorization: required (see the docs)",
        "ask_for_help ghp_short hf_short",
    ],
)
def test_clean_texts_come_back_unchanged(text: str) -> None:
    assert redact(text) is text


def test_secret_names() -> None:
    for name in (
        "OPENAI_API_KEY",
        "GH_TOKEN",
        "APP_SECRET",
        "DB_PASSWORD",
        "GCP_CREDENTIALS",
        "SSH_PRIVATE_KEY_DATA",
        "MY_PRIVATE_THING",
        "BASIC_AUTH_HEADER",
        "RAYMESH_SECRETS",
    ):
        assert is_secret_name(name), name
    for name in (
        "PATH",
        "HOME",
        "RAYMESH_SECRETS_FILE",
        "RAY_AUTH_TOKEN_PATH",
        "SSH_AUTH_SOCK",
        "KEY_DIR",
        "MONKEY",
    ):
        assert not is_secret_name(name), name


@pytest.mark.parametrize(
    "name",
    [
        "SERVICE_KEY",
        "SERVICE_TOKEN",
        "SERVICE_SECRET",
        "SERVICE_PASSWORD",
        "SERVICE_PRIVATE",
        "SERVICE_AUTH_BLOB",
        "SERVICE_CREDENTIALS",
    ],
)
def test_values_of_secret_variables_are_masked_whatever_they_look_like(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, "opaque value 42")
    assert redact("connecting with opaque value 42 now") == "connecting with [redacted] now"


def test_a_settings_word_or_a_path_is_not_taken_for_a_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FEATURE_AUTH_MODE", "disabled")
    monkeypatch.setenv("CACHE_KEY_FILE", "/etc/cache/keyfile.bin")
    text = "auth disabled; key at /etc/cache/keyfile.bin"
    assert redact(text) == text


def test_a_remembered_value_is_masked_whole_even_when_it_holds_another() -> None:
    remember_secret("inner-secret-77")
    remember_secret("outer inner-secret-77 too")
    assert redact("got outer inner-secret-77 too!") == "got [redacted]!"
    assert redact("got inner-secret-77") == "got [redacted]"


def test_nested_data_is_redacted_through_one_function() -> None:
    data = {
        "event": "calling sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t",
        "headers": {"Authorization": "Basic dXNlcjpwYXNz", "Accept": "json"},
        "api_key": "short1",
        "attempts": [1, ("postgres://u:pw12345@db/x", None)],
        "max_tokens": 1024,
        "tokens_in": "12",
    }
    assert redact_data(data) == {
        "event": "calling [redacted]",
        "headers": {"Authorization": MASK, "Accept": "json"},
        "api_key": MASK,
        "attempts": [1, ("postgres://u:[redacted]@db/x", None)],
        "max_tokens": 1024,
        "tokens_in": "12",
    }
    assert data["api_key"] == "short1"  # a copy: the caller's data is untouched
