"""Canary keys never show up anywhere: the `secrets` chaos scenario, and a signed mesh's keys.

The scenario (CI form) plants canaries of every key shape and secret name in
environments, a secrets file, messages, exceptions, log lines (structlog and stdlib),
span events, a tool's output and `raymesh run`'s answer, and sweeps every place they
could end up. The second test covers
what it does not: a signed mesh reads its secret and an API key from a 0600 file; a
handler raises with the key in its message, and forged frames are refused. Then the key
and the secret are looked for in what the asker got, the spans, the refusals and Ray's
session logs.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import pytest
import ray
from _agents import Boom, Echo, Ping, Pong
from _hostcalls import deliver

from benchmarks.chaos import secrets_sweep
from benchmarks.chaos._sweep import Place, sweep_files
from benchmarks.chaos.secrets import session_log_dir
from mesh import HandlerError, Mesh, MeshConfig, SignatureError
from mesh.control._spawn import start_host
from mesh.control._team import AgentSpec
from mesh.datapath._endpoint import Endpoint
from protocols import Codec, Envelope, Kind, MeshError

pytestmark = pytest.mark.ray

#: The full-size form, on demand with `pytest -m long`.
FULL_FORM = [pytest.mark.slow, pytest.mark.long]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("rounds", [3, pytest.param(20, marks=FULL_FORM)], ids=["ci", "full"])
async def test_no_canary_reaches_logs_traces_dead_letters_or_ray_session_logs(
    mesh: Mesh, rounds: int
) -> None:
    figures = await secrets_sweep(mesh, rounds=rounds)
    print(f"\nsecrets: {figures}")
    assert figures.selfcheck_found == 1  # the file sweep does find a planted canary
    places = {place.name: place for place in figures.places}
    assert {name: place.hits for name, place in places.items()} == dict.fromkeys(places, 0)
    assert all(place.items > 0 for place in figures.places), figures.places
    # The canaries did reach these places, masked.
    assert places["errors the driver got"].masked >= rounds
    assert places["the driver's log lines"].masked >= rounds
    assert places["dead letters of every agent"].masked >= rounds
    assert places["answers the driver got"].masked >= rounds
    assert places["the driver's stdlib log lines"].masked >= rounds
    assert places["`raymesh run`'s printed answers"].masked > 0
    # Every kind of canary was minted: 12 key shapes, 7 secret names, a secrets file's.
    assert figures.canaries >= 23


async def test_canaries_never_reach_errors_spans_refusals_or_ray_logs(
    mesh: Mesh, tmp_path: Path
) -> None:
    secret = "canary-secret-" + uuid.uuid4().hex
    key = "sk-canary-" + uuid.uuid4().hex
    path = tmp_path / "secrets.env"
    path.write_text(f"RAYMESH_SECRET={secret}\nOPENAI_API_KEY={key}\n")
    path.chmod(0o600)
    config = MeshConfig(**{**mesh.config.model_dump(exclude={"secret"}), "secrets_file": path})
    edge = Endpoint(name=f"edge-{uuid.uuid4().hex[:8]}", incarnation=uuid.uuid4().hex[:16],
                    config=config, registry=mesh._registry, types=mesh._edge.types)  # fmt: skip
    name = f"canary-{uuid.uuid4().hex[:6]}"
    host, _ = await start_host(AgentSpec.build(name=name, agent=Echo), config)
    seen: list[str] = []
    try:
        assert await edge.ask(name, Ping(text="hi"), expect=Pong) == Pong(text="hi")
        with pytest.raises(HandlerError) as raised:  # the exception text holds the key
            await edge.ask(name, Boom(text=f"using {key}"))
        seen += [str(raised.value), raised.value.remote_traceback]
        # Forged frames carrying the key are refused; what the refusal says is looked at.
        forged = Codec().encode(Envelope(kind=Kind.TELL, type="test.ping/1", sender=key,
                                         recipient=name, payload=key.encode()))  # fmt: skip
        refusals, _ = await deliver(host, f"{key}#1", 0, [forged, forged + b"RMS1" * 13])
        seen += [str(MeshError.from_wire(error)) for _, error in refusals]
        assert {MeshError.from_wire(e).__class__ for _, e in refusals} == {SignatureError}
        spans: list[dict[str, object]] = []
        for _ in range(100):  # spans reach the store in batches
            spans = await mesh.trace(raised.value.trace_id)
            if spans:
                break
            await asyncio.sleep(0.1)
        seen.append(repr(spans))
        assert spans, "the failed handling left a span"
        seen.append(repr(await host.stats.remote()))
    finally:
        edge.close()
        await host.stop.remote()
        ray.kill(host)
    await asyncio.sleep(1.0)  # Ray flushes worker output to the session logs
    session = sweep_files(Place("Ray session logs", "files"), session_log_dir(), [key, secret])
    assert "[redacted]" in "".join(seen[:2])  # the key was there, masked
    leaks = [text[:200] for text in seen if key in text or secret in text]
    assert leaks == []
    assert session.items > 0
    assert session.hits == 0, session.found
    assert os.environ.get("OPENAI_API_KEY") != key  # nothing set it in this process
