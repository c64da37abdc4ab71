"""Secrets: canary keys put where a careless program would, then looked for everywhere.

The suite's Ray is already running when this scenario starts, so a key exported now
would never reach its workers. The canaries are planted where they would really
arrive: in the driver's environment (an ``*_API_KEY`` variable), in an agent's
environment (set in its process, as a node's environment would: one variable of every
secret name pattern), in a secrets file an agent reads, in messages and in the
exception texts of handlers that fail with them, in log lines (structlog's, nested,
and a standard library logger's, as a vendor SDK writes them), in span events, in URLs
with a password, in a tool's output that an LLM agent passes to its model, and in the
answer ``raymesh run`` prints. Keys of every shape the redactor knows are minted
(OpenAI, Anthropic, Google, AWS ids and secret keys, Hugging Face, GitHub, GitLab,
Stripe, Slack). Then the places a key could end up are swept for every canary this
process minted (the injection scenario's too): the errors the driver got, the log lines
the driver wrote, the spans in the trace store and the traces saved from it, every
agent's dead letters, what ``raymesh run`` printed (a job's output is that), and every
file under the Ray session's log directory. A self-check plants one more canary in a
file of that directory and expects the sweep to find it, so a sweep that finds nothing
is shown to be able to. The cost of redaction itself is measured too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import ray
import yaml

from actors import Completion, Prompt
from actors.loopback import LoopbackLLMServer
from benchmarks.chaos._agents import Expose, Leaky
from benchmarks.chaos._canaries import (
    ENV_KEY,
    SECRET_NAMES,
    canary_env_key,
    canary_key,
    canary_shapes,
    canary_word,
    in_environment,
    planted,
)
from benchmarks.chaos._careless import LICENSE_NAME, Careless, Spill
from benchmarks.chaos._figure import Figure
from benchmarks.chaos._obedient import MODEL, Vaulted, obey
from benchmarks.chaos._support import unique
from benchmarks.chaos._sweep import Place, log_lines, sweep_files, sweep_texts
from mesh.config import raymesh_home
from mesh.edge import Mesh, settled_trace
from mesh.errors import HandlerError
from mesh.observability import get_logger
from mesh.ops import save_trace
from mesh.security import redact
from protocols import new_trace_id

__all__ = ["SecretsFigures", "secrets_sweep", "session_log_dir"]

_log = get_logger()


@dataclass
class SecretsFigures:
    """Where the canaries were planted, what each place held afterwards, what masking cost."""

    canaries: int = 0
    exercised: dict[str, int] = field(default_factory=dict)
    places: list[Place] = field(default_factory=list)
    selfcheck_found: int = 0
    redact_clean_ns: float = 0.0
    redact_dirty_ns: float = 0.0
    seconds: float = 0.0

    @property
    def hits(self) -> int:
        """Items, across every place, that held a canary."""
        return sum(place.hits for place in self.places)

    def lines(self) -> list[Figure]:
        """Return this scenario's lines of the chaos table."""
        name = f"secrets: {self.canaries} canary keys, swept after the suite"
        paths = ", ".join(f"{path} {n}" for path, n in self.exercised.items())
        lines = [Figure(name, "paths a key went down", paths)]
        for place in self.places:
            swept = f"{place.items:,} {place.unit}, {place.size:,} bytes"
            lines.append(Figure(
                name, f"hits in {place.name}",
                f"{place.hits} in {swept}; {place.masked} masked"
                + (f"; at {', '.join(place.found)}" if place.found else ""),
                "0 (of > 0 swept)", place.hits == 0 and place.items > 0,
            ))  # fmt: skip
        lines.append(Figure(
            name, "self-check: a canary planted in a log file, found by the sweep",
            str(self.selfcheck_found), "1", self.selfcheck_found == 1,
        ))  # fmt: skip
        lines.append(Figure(
            name, "redaction per 200-character text: clean / with 2 keys",
            f"{self.redact_clean_ns / 1000:.1f} / {self.redact_dirty_ns / 1000:.1f} µs",
        ))  # fmt: skip
        return lines


def session_log_dir() -> Path:
    """Return the log directory of the Ray session this process is connected to."""
    context = ray.get_runtime_context()
    return Path(context.get_temp_dir()) / context.get_session_name() / "logs"


@dataclass
class _Seen:
    """What came back to the driver on the way: errors, answers, and the traces to sweep."""

    errors: list[tuple[str, str]] = field(default_factory=list)
    answers: list[tuple[str, str]] = field(default_factory=list)
    traces: list[str] = field(default_factory=list)


async def secrets_sweep(mesh: Mesh, *, rounds: int = 3) -> SecretsFigures:
    """Send canary keys down every path `rounds` times each, then sweep for every canary."""
    figures = SecretsFigures()
    started = time.monotonic()
    shaped = canary_key("secrets: messages, exceptions and log lines")
    driver_env = canary_env_key("secrets: the driver's environment")
    agent_env = canary_env_key("secrets: an agent's environment")
    shapes = canary_shapes("secrets: every key shape")
    texts = [text for _, text in shapes.values()]
    named = {name: canary_word(f"secrets: an agent's {name}") for name in SECRET_NAMES}
    leaky, vaulted, careless = unique("leaky"), unique("vaulted"), unique("careless")
    seen = _Seen()
    with (
        in_environment(ENV_KEY, driver_env),
        log_lines() as driver_lines,
        _stdlib_lines() as driver_stdlib,
        LoopbackLLMServer() as server,
        _secrets_file() as secrets_file,
    ):
        server.respond_with(MODEL, obey)
        await mesh.spawn(Leaky, name=leaky, env_key=agent_env)
        await mesh.spawn(Vaulted, name=vaulted, env_key=agent_env, max_rounds=2,
                         model=f"openai:{MODEL}", base_url=server.openai_url,
                         api_key=shaped)  # fmt: skip
        await mesh.spawn(Careless, name=careless, env=named, secrets_file=str(secrets_file))
        try:
            for _ in range(rounds):
                await _leak_towards_the_driver(mesh, leaky, shaped, seen)
                await _leak_through_a_tool(mesh, vaulted, seen)
                await _spill(mesh, careless, texts, seen)
            figures.exercised = {
                "asks failing with it": rounds, "tells crashing with it": rounds,
                "logged by the driver": rounds, "a tool's output to a model": rounds,
                f"{len(shapes)} key shapes and {len(named) + 1} named or filed keys "
                "through stdlib logs, span events, asks and tells": rounds,
                "`raymesh run`'s printed answer": 1,
            }  # fmt: skip
            # The places that live in the agents are swept before they stop.
            figures.places += await _sweep_the_mesh(mesh, seen)
        finally:
            await mesh.stop(careless)
            await mesh.stop(vaulted)
            await mesh.stop(leaky)
        figures.places += _sweep_raymesh_run(secrets_file, texts)
    canaries = list(planted().values())
    figures.places.append(sweep_texts(Place("the driver's log lines", "lines"),
                                      [("driver", line) for line in driver_lines],
                                      canaries))  # fmt: skip
    figures.places.append(sweep_texts(Place("the driver's stdlib log lines", "lines"),
                                      [("driver", line) for line in driver_stdlib],
                                      canaries))  # fmt: skip
    await asyncio.sleep(1.0)  # workers' last lines reach their session log files
    session, figures.selfcheck_found = _sweep_session_logs()
    figures.places.append(session)
    figures.redact_clean_ns, figures.redact_dirty_ns = _redaction_cost(texts)
    figures.canaries = len(planted())
    figures.seconds = time.monotonic() - started
    return figures


@contextlib.contextmanager
def _stdlib_lines() -> Iterator[list[str]]:
    """Collect what the standard library's root logger writes while the block runs."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    collect = Collect()
    logging.getLogger().addHandler(collect)
    try:
        yield lines
    finally:
        logging.getLogger().removeHandler(collect)


@contextlib.contextmanager
def _secrets_file() -> Iterator[Path]:
    """A 0600 secrets file with one canary, under a name no redaction rule knows."""
    with tempfile.TemporaryDirectory(prefix="raymesh-chaos-") as folder:
        path = Path(folder) / "secrets.env"
        path.write_text(f"{LICENSE_NAME}={canary_word('secrets: a secrets file')}\n")
        path.chmod(0o600)
        yield path


async def _spill(mesh: Mesh, careless: str, texts: list[str], seen: _Seen) -> None:
    asked, told = new_trace_id(), new_trace_id()
    try:
        await mesh.ask(careless, Spill(texts=texts), trace_id=asked, timeout=10)
    except HandlerError as exc:
        seen.errors += [("HandlerError", str(exc)), ("its traceback", exc.remote_traceback or "")]
        # A careless driver logs it through a vendor's logger, keys and all.
        logging.getLogger("chaos.driver_sdk").error("call failed: %s (sent %s)", exc, texts)
    await mesh.tell(careless, Spill(texts=texts), trace_id=told)  # a dead letter
    seen.traces += [asked, told]


def _sweep_raymesh_run(secrets_file: Path, texts: list[str]) -> list[Place]:
    """Run ``raymesh run`` on this Ray with a careless team, and sweep what it printed.

    The task holds a key of every shape and the agent answers with them and its secrets
    file's key: the printed answer (as a person or a job's log sees it), the ``--json``
    form and the trace the run saved are swept.
    """
    canaries = list(planted().values())
    with tempfile.TemporaryDirectory(prefix="raymesh-chaos-") as folder:
        team = Path(folder) / "team.yaml"
        team.write_text(yaml.safe_dump({"name": unique("careless-team"), "agents": [{
            "name": unique("careless"), "agent": f"{Careless.__module__}:Careless",
            "options": {"secrets_file": str(secrets_file)}}]}))  # fmt: skip
        printed = [_raymesh_run(team, texts, secrets_file, as_json=flag) for flag in (False, True)]
    saved = raymesh_home() / "traces" / f"{json.loads(printed[1])['trace_id']}.json"
    outputs = Place("`raymesh run`'s printed answers", "outputs")
    sweep_texts(outputs, [("console", printed[0]), ("--json", printed[1])], canaries)
    trace = sweep_texts(Place("the trace `raymesh run` saved", "files"),
                        [(saved.name, saved.read_text())], canaries)  # fmt: skip
    saved.unlink(missing_ok=True)
    return [outputs, trace]


def _raymesh_run(team: Path, texts: list[str], secrets_file: Path, *, as_json: bool) -> str:
    # A process of its own, joining this Ray, as a job's `raymesh run --address auto` does:
    # `raymesh submit --secrets-file` names the cluster's secrets file to it the same way.
    address = ray.get_runtime_context().gcs_address
    env = {**os.environ, "RAYMESH_SECRETS_FILE": str(secrets_file)}
    command = [sys.executable, "-m", "mesh.cli", "run", str(team), "--address", address,
               "--task", " ".join(texts), "--timeout", "60"]  # fmt: skip
    command += ["--json"] if as_json else []
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False,
                          env=env)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"raymesh run failed: {redact(done.stderr)[-2000:]}")
    return done.stdout


def _redaction_cost(texts: list[str]) -> tuple[float, float]:
    """ns per `redact` call: a clean 200-character log line, and one holding two keys."""
    clean = ("handler on_task of 'reviewer' handled raymesh.task/1 from 'planner' in 12.5 ms; "
             "trace=4bf92f3577b34da6a3ce929d0e0e4736 span=00f067aa0ba902b7 hops=2 status ok, "
             "queue 3 of 1000, retries 0, all good here.")[:200]  # fmt: skip
    dirty = (clean[:100] + f" key {texts[1]} url {texts[-1]}")[:200]
    number = 20_000
    clean_s = min(timeit.repeat(lambda: redact(clean), number=number, repeat=5))
    dirty_s = min(timeit.repeat(lambda: redact(dirty), number=number, repeat=5))
    return clean_s / number * 1e9, dirty_s / number * 1e9


async def _leak_towards_the_driver(mesh: Mesh, leaky: str, key: str, seen: _Seen) -> None:
    asked, told = new_trace_id(), new_trace_id()
    try:
        await mesh.ask(leaky, Expose(key=key), trace_id=asked, timeout=10)
    except HandlerError as exc:
        seen.errors += [("HandlerError", str(exc)), ("its traceback", exc.remote_traceback or "")]
        # What a careless driver does with an error: log it, with the keys it holds.
        _log.error("the backend call failed", error=str(exc), key=key,
                   env_key=os.environ.get(ENV_KEY))  # fmt: skip
    await mesh.tell(leaky, Expose(key=key), trace_id=told)  # its handler crashes: a dead letter
    seen.traces += [asked, told]


async def _leak_through_a_tool(mesh: Mesh, vaulted: str, seen: _Seen) -> None:
    prompted = new_trace_id()
    ask = Prompt(text='Check the ops account: CALL read_vault {"account": "ops"}')
    reply = await mesh.ask(vaulted, ask, expect=Completion, trace_id=prompted, timeout=30)
    seen.answers.append(("the LLM agent's answer", reply.text))
    seen.traces.append(prompted)


async def _sweep_the_mesh(mesh: Mesh, seen: _Seen) -> list[Place]:
    canaries = list(planted().values())
    # The conversations ran one after another: once the last has settled, all have.
    await settled_trace(mesh, seen.traces[-1])
    spans = [(trace, await mesh.trace(trace)) for trace in seen.traces]
    saved = [path for _, found in spans if (path := save_trace(found)) is not None]
    try:
        saved_place = Place("saved traces", "files")
        for path in saved:
            sweep_texts(saved_place, [(path.name, path.read_text())], canaries)
    finally:
        for path in saved:  # the scenario's own; `raymesh trace` needs none of them
            path.unlink(missing_ok=True)
    letters = await mesh.dead_letters(limit=100_000)
    in_store = [(trace, span) for trace, found in spans for span in found]
    dead = [(f"{letter.agent}: {letter.reason}", letter.model_dump_json()) for letter in letters]
    return [
        sweep_texts(Place("errors the driver got", "texts"), seen.errors, canaries),
        sweep_texts(Place("answers the driver got", "answers"), seen.answers, canaries),
        sweep_texts(Place("spans in the trace store", "spans"), in_store, canaries),
        saved_place,
        sweep_texts(Place("dead letters of every agent", "letters"), dead, canaries),
    ]


def _sweep_session_logs() -> tuple[Place, int]:
    # The self-check's canary is none of the others: finding it is not a hit.
    selfcheck = "cnry-selfcheck-" + os.urandom(8).hex()
    logs = session_log_dir()
    planted_file = logs / f"raymesh-selfcheck-{os.getpid()}.log"
    planted_file.write_text(f"a planted line: {selfcheck}\n")
    try:
        check = sweep_files(Place("self-check", "files"), logs, [selfcheck])
        session = sweep_files(Place("Ray session logs", "files"), logs, list(planted().values()))
    finally:
        planted_file.unlink(missing_ok=True)
    return session, check.hits
