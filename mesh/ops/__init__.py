"""Cluster operations: a local head, jobs on a remote cluster, inspecting a
running mesh.
"""

from mesh.ops._head import gcs_address, live_head, start_head, stop_head
from mesh.ops._inspect import agent_rows, inspect_mesh, status_rows
from mesh.ops._jobs import (
    follow_job,
    job_client,
    job_logs,
    list_jobs,
    parse_env,
    refuse_key_files,
    stop_job,
    submit_team,
    version_mismatch,
)
from mesh.ops._traces import save_trace, saved_trace, trace_table
from mesh.ops._workdir import key_files

__all__ = [
    "agent_rows",
    "follow_job",
    "gcs_address",
    "inspect_mesh",
    "job_client",
    "job_logs",
    "key_files",
    "list_jobs",
    "live_head",
    "parse_env",
    "refuse_key_files",
    "save_trace",
    "saved_trace",
    "start_head",
    "status_rows",
    "stop_head",
    "stop_job",
    "submit_team",
    "trace_table",
    "version_mismatch",
]
