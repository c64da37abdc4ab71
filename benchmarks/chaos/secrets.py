"""Secrets: canary keys put where a careless program would, then looked for everywhere.

The suite's Ray is already running when this scenario starts, so a key exported now
would never reach its workers. The canaries are planted where they would really
arrive: in the driver's environment (an ``*_API_KEY`` variable), in an agent's
environment (set in its process, as a node's environment would), in messages and in
the exception texts of handlers that fail with them, in log lines, and in a tool's
output that an LLM agent passes to its model. Then the places a key could end up are
swept for every canary this process minted (the injection scenario's too): the errors
the driver got, the log lines the driver wrote, the spans in the trace store and the
traces saved from it, every agent's dead letters, and every file under the Ray
session's log directory. A self-check plants one more canary in a file of that
directory and expects the sweep to find it, so a sweep that finds nothing is shown
to be able to.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import ray

from actors import Completion, Prompt
from actors.loopback import LoopbackLLMServer
from benchmarks.chaos._agents import Expose, Leaky
from benchmarks.chaos._canaries import ENV_KEY, canary_env_key, canary_key, in_environment, planted
from benchmarks.chaos._figure import Figure
from benchmarks.chaos._obedient import MODEL, Vaulted, obey
from benchmarks.chaos._support import unique
from benchmarks.chaos._sweep import Place, log_lines, sweep_files, sweep_texts
from mesh.edge import Mesh, settled_trace
from mesh.errors import HandlerError
from mesh.observability import get_logger
from mesh.ops import save_trace
from protocols import new_trace_id

__all__ = ["SecretsFigures", "secrets_sweep", "session_log_dir"]

_log = get_logger()


@dataclass
class SecretsFigures:
    """Where the canaries were planted, and what each place held afterwards."""

    canaries: int = 0
    exercised: dict[str, int] = field(default_factory=dict)
    places: list[Place] = field(default_factory=list)
    selfcheck_found: int = 0
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
    leaky, vaulted = unique("leaky"), unique("vaulted")
    seen = _Seen()
    with (
        in_environment(ENV_KEY, driver_env),
        log_lines() as driver_lines,
        LoopbackLLMServer() as server,
    ):
        server.respond_with(MODEL, obey)
        await mesh.spawn(Leaky, name=leaky, env_key=agent_env)
        await mesh.spawn(Vaulted, name=vaulted, env_key=agent_env, max_rounds=2,
                         model=f"openai:{MODEL}", base_url=server.openai_url,
                         api_key=shaped)  # fmt: skip
        try:
            for _ in range(rounds):
                await _leak_towards_the_driver(mesh, leaky, shaped, seen)
                await _leak_through_a_tool(mesh, vaulted, seen)
            figures.exercised = {
                "asks failing with it": rounds, "tells crashing with it": rounds,
                "logged by the driver": rounds, "a tool's output to a model": rounds,
            }  # fmt: skip
            # The places that live in the agents are swept before they stop.
            figures.places += await _sweep_the_mesh(mesh, seen)
        finally:
            await mesh.stop(vaulted)
            await mesh.stop(leaky)
    figures.places.append(sweep_texts(Place("the driver's log lines", "lines"),
                                      [("driver", line) for line in driver_lines],
                                      list(planted().values())))  # fmt: skip
    await asyncio.sleep(1.0)  # workers' last lines reach their session log files
    session, figures.selfcheck_found = _sweep_session_logs()
    figures.places.append(session)
    figures.canaries = len(planted())
    figures.seconds = time.monotonic() - started
    return figures


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
