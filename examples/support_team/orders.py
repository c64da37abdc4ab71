"""The example's order database (SQLite, created on first use) and the typed order lookup.

Every lookup is scoped to one customer in the SQL itself: the customer comes from the
conversation, never from the model, so no prompt can read another customer's order.
"""

from __future__ import annotations

import sqlite3
from datetime import date, timedelta
from pathlib import Path

from pydantic import BaseModel

__all__ = ["Order", "OrderBook"]

#: (order id, customer, item, amount in USD, status, days since delivery or None).
_SEED = [
    (1001, "alice", "espresso grinder", 189.0, "delivered", 12),
    (1002, "alice", "milk jug", 24.0, "shipped", None),
    (2001, "bob", "gooseneck kettle", 349.0, "delivered", 5),
    (2002, "bob", "paper filters", 9.5, "delivered", 45),
]


class Order(BaseModel):
    """One order, as the data agent reports it."""

    order_id: int
    item: str
    amount_usd: float
    status: str
    delivered_on: date | None


class OrderBook:
    """The orders, in a SQLite file (created and filled when missing)."""

    def __init__(self, path: str | Path, *, today: date | None = None) -> None:
        self.path = str(path)
        today = today or date.today()
        with sqlite3.connect(self.path) as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, customer TEXT, "
                "item TEXT, amount REAL, status TEXT, delivered_on TEXT)"
            )
            if db.execute("SELECT COUNT(*) FROM orders").fetchone()[0] == 0:
                db.executemany(
                    "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?)",
                    [(i, c, item, amount, status,
                      None if days is None else (today - timedelta(days=days)).isoformat())
                     for i, c, item, amount, status, days in _SEED],
                )  # fmt: skip

    def lookup(self, customer: str, order_id: int) -> Order | None:
        """Return `customer`'s order `order_id`, or None (also when it is someone else's)."""
        with sqlite3.connect(self.path) as db:
            row = db.execute(
                "SELECT id, item, amount, status, delivered_on FROM orders "
                "WHERE id = ? AND customer = ?",
                (order_id, customer),
            ).fetchone()
        if row is None:
            return None
        delivered = None if row[4] is None else date.fromisoformat(row[4])
        return Order(order_id=row[0], item=row[1], amount_usd=row[2], status=row[3],
                     delivered_on=delivered)  # fmt: skip
