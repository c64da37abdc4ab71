"""Runtime settings, read from ``RAYMESH_*`` environment variables or given in code.

One frozen `MeshConfig` is made at the edge and shipped to every host, so that all agents
of a mesh share the same limits whatever the environment of the node they land on.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from mesh.security import private_dir, read_secrets_file, remember_secret
from protocols import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_FRAME_BYTES,
    DEFAULT_MAX_OBJECTS,
    DEFAULT_MAX_PAYLOAD_BYTES,
    Codec,
    Signer,
)
from protocols.calls import DEFAULT_MAX_BATCH
from protocols.signing import MAKE_KEY, MIN_KEY_BYTES

__all__ = ["MeshConfig", "adopt_secrets", "raymesh_home"]


class MeshConfig(BaseSettings):
    """Limits and timings of a mesh.

    Every field can be set from the environment, e.g. ``RAYMESH_ASK_TIMEOUT_S=5``.
    """

    model_config = SettingsConfigDict(env_prefix="RAYMESH_", frozen=True, extra="forbid")

    namespace: str = Field("raymesh", description="Ray namespace of the registry and agents.")
    ask_timeout_s: float = Field(30.0, gt=0, description="Deadline of an ask given none.")
    mailbox_size: int = Field(1024, ge=1, description="Messages queued per agent before refusal.")
    mailbox_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="Payload bytes queued per agent before refusal."
    )
    max_frame_bytes: int = Field(DEFAULT_MAX_FRAME_BYTES, ge=256, description="Largest frame.")
    max_payload_bytes: int = Field(
        DEFAULT_MAX_PAYLOAD_BYTES, ge=1, description="Largest message payload sent or taken."
    )
    max_depth: int = Field(DEFAULT_MAX_DEPTH, ge=1, description="Deepest payload nesting.")
    max_objects: int = Field(
        DEFAULT_MAX_OBJECTS, ge=1, description="Arrays, maps and elements in one payload."
    )
    max_array_len: int = Field(DEFAULT_MAX_OBJECTS, ge=1, description="Longest payload array.")
    max_map_len: int = Field(DEFAULT_MAX_OBJECTS, ge=1, description="Most entries of a map.")
    max_str_len: int = Field(
        DEFAULT_MAX_PAYLOAD_BYTES, ge=1, description="Longest payload string, in bytes."
    )
    offloop_decode_bytes: int = Field(
        64 * 1024, ge=0, description="Payloads larger than this are decoded off the event loop."
    )
    max_hops: int = Field(64, ge=1, description="Longest causal chain of handled messages.")
    max_batch: int = Field(
        DEFAULT_MAX_BATCH, ge=1, description="Frames coalesced into one Ray call."
    )
    max_inflight: int = Field(1, ge=1, description="Ray calls in flight per link.")
    stream_buffer_chunks: int = Field(
        16,
        ge=1,
        description="Chunks a streamed ask buffers at its handler (and again in "
        "Ray) before `emit` waits for the reader: the bound on a stream's memory.",
    )
    gap_timeout_s: float = Field(2.0, gt=0, description="Wait for a missing batch before skipping.")
    lease_s: float = Field(10.0, gt=0, description="Registry lease; hosts renew at a third of it.")
    watchdogs: bool = Field(True, description="Deadlock probes, handler deadlines, heartbeats.")
    probe_delay_s: float = Field(
        0.1, gt=0, description="Wait before an ask made in a handler sends deadlock probes."
    )
    tick_s: float = Field(0.1, gt=0, description="Event-loop heartbeat period of each host.")
    stuck_after_s: float = Field(1.0, gt=0, description="Event-loop lag reported as stuck.")
    tracing: bool = Field(True, description="A span per handled message, kept by the mesh.")
    max_spans: int = Field(100_000, ge=100, description="Spans the span store keeps.")
    metrics: bool = Field(True, description="Per-agent metrics in Ray's metrics (Prometheus).")
    stop_grace_s: float = Field(5.0, ge=0, description="Time on_stop and running handlers get.")
    dead_letters_kept: int = Field(1000, ge=1, description="Dead letters each host keeps.")
    log_dead_letters: bool = Field(
        True,
        description="Log dead letters (a line per reason a second at most). Off, they are "
        "still recorded and counted: for runs that cause them on purpose, e.g. benchmarks.",
    )
    dedup_window: int = Field(1024, ge=1, description="Message ids remembered per sender.")
    snapshot_every: int = Field(1, ge=1, description="Handled messages between state snapshots.")
    state_dir: Path = Field(
        Path("~/.raymesh/state"),
        description="Where agents' state snapshots are kept: shared storage on a cluster.",
    )
    mailbox_policy: Literal["error", "wait"] = Field(
        "error", description="On a full mailbox: refuse (MailboxFullError) or make the send wait."
    )
    max_outbox: int = Field(10_000, ge=1, description="Frames queued per link before refusal.")
    refusal_penalty: float = Field(
        4.0,
        ge=0,
        description="A batch with refused frames pauses this many times what refusing "
        "them took, as it goes (at most 1 s a call; 0: no pause), so a sender of bad frames "
        "gets at most 1 / (1 + penalty) of the host.",
    )
    log_format: Literal["console", "json"] = "console"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    secret: SecretStr | None = Field(
        None, description="Cluster secret, at least 32 random bytes: frames are signed with it."
    )
    previous_secrets: Annotated[tuple[SecretStr, ...], NoDecode] = Field(
        (), description="Earlier secrets still accepted during a rollover (comma-separated)."
    )
    secrets_file: Path | None = Field(None, description="A 0600 KEY=value file of secrets.")
    replay_window_s: float = Field(300.0, gt=0, description="Age beyond which signed frames fail.")

    @field_validator("previous_secrets", mode="before")
    @classmethod
    def _split_previous(cls, value: Any) -> Any:
        return previous_keys(value)

    @model_validator(mode="after")
    def _read_secrets_file(self) -> Self:
        with_file_secrets(self)
        return self

    @model_validator(mode="after")
    def _payload_fits(self) -> Self:
        if self.max_payload_bytes > self.max_frame_bytes:
            raise ValueError(
                f"max_payload_bytes ({self.max_payload_bytes}) exceeds max_frame_bytes "
                f"({self.max_frame_bytes}): raise max_frame_bytes with it"
            )
        if self.mailbox_bytes < self.max_payload_bytes:
            raise ValueError(
                f"mailbox_bytes ({self.mailbox_bytes}) cannot hold one payload of "
                f"max_payload_bytes ({self.max_payload_bytes}): raise mailbox_bytes"
            )
        return self

    def state_path(self, agent: str) -> Path:
        """Return where `agent`'s state snapshot is kept (one file per agent name)."""
        return self.state_dir.expanduser() / self.namespace / f"{agent}.json"

    def codec(self) -> Codec:
        """Return a codec with this mesh's limits, signing frames when a secret is set."""
        return Codec(
            max_frame_bytes=self.max_frame_bytes,
            max_payload_bytes=self.max_payload_bytes,
            max_depth=self.max_depth,
            max_objects=self.max_objects,
            max_array_len=self.max_array_len,
            max_map_len=self.max_map_len,
            max_str_len=self.max_str_len,
            signer=signer_of(self),
        )


def raymesh_home() -> Path:
    """Return raymesh's state dir, ``$RAYMESH_HOME`` or ``~/.raymesh``, made private.

    It holds saved traces, the head's records and logs: it is created 0700, and
    tightened to that if it is this user's and looser.

    Raises:
        ConfigError: It is a shared directory, or another user's and open to others.
    """
    return private_dir(os.environ.get("RAYMESH_HOME") or Path.home() / ".raymesh")


_MIN_SECRET = MIN_KEY_BYTES


def previous_keys(value: Any) -> Any:
    """Accept the previous secrets as one comma-separated string (how env vars carry them)."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, SecretStr):
        return previous_keys(value.get_secret_value())
    return value


def with_file_secrets(config: MeshConfig) -> None:
    """Fill the secrets not given otherwise from the secrets file, then check them.

    Raises:
        ValueError: A secret is shorter than 32 bytes (pydantic names the field).
        ConfigError: The secrets file is missing or readable by others.
    """
    if config.secrets_file is not None:
        found = read_secrets_file(config.secrets_file)
        # Frozen model, still being validated: set the fields it did not get elsewhere.
        if config.secret is None and found.get("RAYMESH_SECRET"):
            object.__setattr__(config, "secret", SecretStr(found["RAYMESH_SECRET"]))
        if not config.previous_secrets and found.get("RAYMESH_PREVIOUS_SECRETS"):
            keys = previous_keys(found["RAYMESH_PREVIOUS_SECRETS"])
            object.__setattr__(config, "previous_secrets", tuple(SecretStr(k) for k in keys))
    keys = [config.secret, *config.previous_secrets] if config.secret is not None else []
    if config.previous_secrets and config.secret is None:
        raise ValueError("previous_secrets are set but secret is not")
    for key in keys:
        assert key is not None
        if len(key.get_secret_value().encode()) < _MIN_SECRET:
            raise ValueError(
                f"a secret must be at least {_MIN_SECRET} bytes of randomness; "
                f"make one with {MAKE_KEY}"
            )
    _remember_secrets(config)


def _remember_secrets(config: MeshConfig) -> None:
    """Make this process redact the config's secrets wherever they turn up."""
    for key in (config.secret, *config.previous_secrets):
        if key is not None:
            remember_secret(key.get_secret_value())


def adopt_secrets(config: MeshConfig) -> None:
    """In an agent's process: redact the config's secrets and its secrets file's values,
    and let providers find API keys in that file (``RAYMESH_SECRETS_FILE``)."""
    _remember_secrets(config)
    if config.secrets_file is not None and config.secrets_file.exists():
        read_secrets_file(config.secrets_file)  # remembers every value it reads
        os.environ.setdefault("RAYMESH_SECRETS_FILE", str(config.secrets_file))


def signer_of(config: MeshConfig) -> Signer | None:
    """Return the signer for the config's secrets, or None for an unsigned mesh."""
    if config.secret is None:
        return None
    return Signer(
        config.secret.get_secret_value().encode(),
        [key.get_secret_value().encode() for key in config.previous_secrets],
    )
