"""Per-sender memory with a bound on the senders: what replay and dedup windows share."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

__all__ = ["PerSender"]

W = TypeVar("W")


class PerSender(Generic[W]):
    """One `W` per sender, for at most `max_senders` senders.

    A receiver cannot choose who writes to it, so whatever it keeps per sender must be
    bounded in senders too: the least recently heard from is forgotten first.
    """

    def __init__(self, make: Callable[[], W], *, max_senders: int) -> None:
        self._make = make
        self._max = max_senders
        self._by_sender: OrderedDict[str, W] = OrderedDict()

    def get(self, sender: str) -> W | None:
        """Return `sender`'s value if it is remembered (without refreshing it)."""
        return self._by_sender.get(sender)

    def heard_from(self, sender: str) -> W:
        """Return `sender`'s value, made if new, as the most recently heard from."""
        value = self._by_sender.get(sender)
        if value is None:
            value = self._by_sender[sender] = self._make()
            if len(self._by_sender) > self._max:
                self._by_sender.popitem(last=False)
        else:
            self._by_sender.move_to_end(sender)
        return value

    def __len__(self) -> int:
        return len(self._by_sender)

    def items(self) -> Iterator[tuple[str, W]]:
        """Return the senders and their values, least recently heard from first."""
        return iter(self._by_sender.items())
