"""A host's data-path methods called as a sender (or an attacker) calls them: each call in
its wire form (`protocols.calls`), a batch call's result opened as a link opens it."""

from __future__ import annotations

from typing import Any

from protocols.calls import Refusals, open_result, pack_call


async def deliver(
    host: Any, link_id: str, seq: int, frames: list[bytes]
) -> tuple[Refusals, list[bytes]]:
    """Deliver `frames` to `host` as call `seq` of `link_id`; return the refused and the carried."""
    result = await host.deliver.remote(pack_call(link_id, seq, frames))
    return open_result(result)


async def request(host: Any, link_id: str, seq: int, frame: bytes) -> bytes:
    """Ask `host` with `frame` as call `seq` of `link_id`; return its reply frame."""
    result: bytes = await host.request.remote(pack_call(link_id, seq, frame))
    return result
