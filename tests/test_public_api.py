"""The public names of `protocols` and `mesh` exist, and `protocols` stays free of Ray."""

from __future__ import annotations

import subprocess
import sys

import pytest

import mesh
import protocols


def test_the_documented_imports_work() -> None:
    from mesh import (
        Agent,
        Context,
        DeadlineExceededError,
        HandlerError,
        MailboxFullError,
        Mesh,
        MeshError,
        PeerDeadError,
        PeerNotFoundError,
        handler,
    )
    from protocols import DecodeError, Envelope, Message, decode, encode

    assert callable(encode)
    assert callable(decode)
    assert callable(handler)
    for cls in (Agent, Context, Mesh, Message, Envelope):
        assert isinstance(cls, type)
    for error in (
        DecodeError,
        PeerNotFoundError,
        PeerDeadError,
        DeadlineExceededError,
        HandlerError,
        MailboxFullError,
    ):
        assert issubclass(error, MeshError)


@pytest.mark.parametrize("module", [protocols, mesh], ids=lambda module: module.__name__)
def test_every_name_in_all_exists(module: object) -> None:
    names: list[str] = module.__all__  # type: ignore[attr-defined]
    assert len(names) == len(set(names))
    missing = [name for name in names if not hasattr(module, name)]
    assert missing == []


def test_importing_protocols_does_not_import_ray_or_mesh() -> None:
    check = "import protocols, sys; bad = {'ray', 'mesh'} & set(sys.modules); assert not bad, bad"
    done = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
