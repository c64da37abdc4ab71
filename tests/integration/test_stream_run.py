"""`Mesh.run` streaming its answer (`raymesh run --stream`), and the masking of streamed text."""

from __future__ import annotations

import pytest

from mesh import Mesh
from mesh.edge._stream import MaskedText
from mesh.security import MASK, remember_secret

pytestmark = pytest.mark.ray


def test_streamed_text_is_held_back_to_a_space_so_a_secret_cut_in_two_is_still_masked() -> None:
    remember_secret("streamsecret-0123456789abcdef")
    masked = MaskedText()
    printed = [
        masked.feed(piece) for piece in ("the key is stream", "secret-0123", "456789abcdef ok")
    ]
    printed.append(masked.rest())
    assert printed[:2] == ["the key is ", ""]  # nothing of the secret until it is whole
    assert "".join(printed) == f"the key is {MASK} ok"


@pytest.mark.timeout(120)
async def test_run_streams_the_entry_agents_answer_as_it_forms(mesh: Mesh) -> None:
    team = {"name": "streamed", "entry": "answerer", "agents": [
        {"name": "answerer", "agent": "generalist", "model": "offline:default?latency_s=0.3"},
    ]}  # fmt: skip
    pieces: list[str] = []
    outcome = await mesh.run(team, "explain streaming in a mesh", timeout=30,
                             on_text=pieces.append)  # fmt: skip
    assert len(pieces) >= 3  # word by word, not the answer at the end
    assert "".join(pieces) == outcome.result.text
    assert outcome.usage.total.calls == 1
