"""The refund rules, in code: what is decided without a model, and what is left to one."""

from __future__ import annotations

import re
from datetime import date

from pydantic import BaseModel, Field

from support_team.orders import Order

__all__ = ["Ruling", "rule"]

#: Refunds above this need a person, whatever the model thinks.
HANDOFF_ABOVE_USD = 200.0
#: Full refund within this many days of delivery; up to GRACE_DAYS the model may judge.
REFUND_DAYS = 30
GRACE_DAYS = 60
_REFUND = re.compile(r"\b(refund|return|money back)\b", re.I)


class Ruling(BaseModel):
    """What the rules say: eligible (None: not a refund request, or the model's call)."""

    refund_asked: bool
    eligible: bool | None = None
    handoff: bool = False
    needs_judgement: bool = False
    reasons: list[str] = Field(default_factory=list)


def rule(text: str, order: Order | None, *, today: date | None = None) -> Ruling:  # noqa: PLR0911
    """Apply the refund rules to a request and the customer's order."""
    if not _REFUND.search(text):
        return Ruling(refund_asked=False, reasons=["no refund asked"])
    if order is None:
        return Ruling(refund_asked=True, eligible=False,
                      reasons=["no order of this customer is named"])  # fmt: skip
    if order.status != "delivered" or order.delivered_on is None:
        why = f"order {order.order_id} is {order.status}, not delivered"
        return Ruling(refund_asked=True, eligible=False, reasons=[why])
    if order.amount_usd > HANDOFF_ABOVE_USD:
        return Ruling(refund_asked=True, handoff=True,
                      reasons=[f"refunds over ${HANDOFF_ABOVE_USD:.0f} need a person"])  # fmt: skip
    days = ((today or date.today()) - order.delivered_on).days
    if days <= REFUND_DAYS:
        return Ruling(refund_asked=True, eligible=True,
                      reasons=[f"delivered {days} days ago, within {REFUND_DAYS}"])  # fmt: skip
    if days <= GRACE_DAYS:
        return Ruling(refund_asked=True, needs_judgement=True,
                      reasons=[f"delivered {days} days ago: past {REFUND_DAYS}, within "
                               f"{GRACE_DAYS}, a goodwill call"])  # fmt: skip
    return Ruling(refund_asked=True, eligible=False,
                  reasons=[f"delivered {days} days ago, past {GRACE_DAYS}"])  # fmt: skip
