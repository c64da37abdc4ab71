"""mesh_review: peers draft shares and review each other directly; one assembles."""

from __future__ import annotations

from pattern_helpers import failing

from protocols.envelope import Kind
from protocols.message import Message
from protocols.messenger import Handler, InMemoryMessenger
from protocols.patterns import (
    Assemble,
    DraftShare,
    Reply,
    Review,
    ReviewDraft,
    collect_reviews,
    mesh_review,
)


def peer(name: str) -> Handler:
    async def handle(msg: Message, m: InMemoryMessenger) -> Message | None:
        if isinstance(msg, DraftShare):
            return await collect_reviews(m, msg, f"{name}-part{msg.share}")
        if isinstance(msg, ReviewDraft):
            return Review(reviewer=name, author=msg.author, comments=f"{name} ok")
        assert isinstance(msg, Assemble)
        return Reply(text=" | ".join(d.text for d in msg.drafts))

    return handle


async def test_peers_review_each_other_directly_and_one_assembles() -> None:
    net = InMemoryMessenger()
    names = ["p1", "p2", "p3"]
    for name in names:
        net.register(name, peer(name))
    result = await mesh_review(net, names, "write a spec", timeout=1.0)
    assert result.answer.text == "p1-part0 | p2-part1 | p3-part2"
    assert result.assembler == "p1"
    for draft in result.drafts:
        assert sorted(r.reviewer for r in draft.reviews) == sorted(set(names) - {draft.author})
    # Six reviews, every one asked peer to peer: none of them passed through the edge.
    review_asks = [d for d in net.log if d.type == ReviewDraft.type_tag]
    assert len(review_asks) == 6
    assert all(d.sender in names and d.recipient in names for d in review_asks)
    assert net.count(sender="edge", kind=Kind.ASK) == 4  # three shares, one assembly


async def test_a_failing_peer_is_recorded_and_the_rest_is_assembled() -> None:
    net = InMemoryMessenger()
    net.register("p1", peer("p1"))
    net.register("p2", peer("p2"))
    net.register("p3", failing("offline"))
    result = await mesh_review(net, ["p1", "p2", "p3"], "t", assembler="p2", timeout=1.0)
    assert result.answer.text == "p1-part0 | p2-part1"
    assert "offline" in result.failures["p3"]
    assert all(len(d.reviews) == 1 for d in result.drafts)
