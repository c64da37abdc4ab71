"""Runtime settings, read from ``RAYMESH_*`` environment variables or given in code.

One frozen `MeshConfig` is made at the edge and shipped to every host, so that all agents
of a mesh share the same limits whatever the environment of the node they land on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from mesh._signing_config import previous_keys, signer_of, with_file_secrets
from protocols import DEFAULT_MAX_DEPTH, DEFAULT_MAX_FRAME_BYTES, Codec

__all__ = ["MeshConfig"]


class MeshConfig(BaseSettings):
    """Limits and timings of a mesh.

    Every field can be set from the environment, e.g. ``RAYMESH_ASK_TIMEOUT_S=5``.
    """

    model_config = SettingsConfigDict(env_prefix="RAYMESH_", frozen=True, extra="forbid")

    namespace: str = Field("raymesh", description="Ray namespace of the registry and agents.")
    ask_timeout_s: float = Field(30.0, gt=0, description="Deadline of an ask given none.")
    mailbox_size: int = Field(1024, ge=1, description="Messages queued per agent before refusal.")
    max_frame_bytes: int = Field(DEFAULT_MAX_FRAME_BYTES, ge=256)
    max_depth: int = Field(DEFAULT_MAX_DEPTH, ge=1, description="Deepest payload nesting.")
    max_hops: int = Field(64, ge=1, description="Longest causal chain of handled messages.")
    max_batch: int = Field(512, ge=1, description="Frames coalesced into one Ray call.")
    max_inflight: int = Field(1, ge=1, description="Ray calls in flight per link.")
    gap_timeout_s: float = Field(2.0, gt=0, description="Wait for a missing batch before skipping.")
    lease_s: float = Field(10.0, gt=0, description="Registry lease; hosts renew at a third of it.")
    watchdogs: bool = Field(True, description="Deadlock probes, handler deadlines, heartbeats.")
    probe_delay_s: float = Field(0.5, gt=0, description="Wait before an ask sends probes.")
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
        description="A batch with refused frames is answered after this many times what "
        "refusing them took (0: at once), so a sender of bad frames slows down.",
    )
    log_format: Literal["console", "json"] = "console"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    secret: SecretStr | None = Field(None, description="Cluster secret: frames are signed with it.")
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

    def state_path(self, agent: str) -> Path:
        """Return where `agent`'s state snapshot is kept (one file per agent name)."""
        return self.state_dir.expanduser() / self.namespace / f"{agent}.json"

    def codec(self) -> Codec:
        """Return a codec with this mesh's limits, signing frames when a secret is set."""
        return Codec(
            max_frame_bytes=self.max_frame_bytes, max_depth=self.max_depth, signer=signer_of(self)
        )
