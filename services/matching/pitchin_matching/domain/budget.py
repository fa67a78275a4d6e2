"""A firm ask budget per donor: how often one person may be asked, whatever ranks them first.

The load cap (`Policy.max_open_per_donor`) limits what a donor holds at once; it does not
stop the same few people from being asked again each time an offer of theirs is answered.
The budget does: at most `max_pending` offers waiting for their answer at a time (one, so
nobody has several asks to weigh against each other), and at most `weekly_asks` offers in
any seven days (a cap the federation sets; 3 by default, after Catchafire's cap of three
pending applications). Counted asks are offers made, whatever their answer: an ask costs
the donor attention even when they decline or it is cancelled.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

WEEK_SECONDS = 7 * 86_400.0


@dataclass(frozen=True)
class AskBudget:
    max_pending: int = 1
    weekly_asks: int = 3

    def __post_init__(self) -> None:
        if self.max_pending < 1 or self.weekly_asks < 1:
            raise ValueError("an ask budget allows at least one pending offer and one ask a week")


def asks_in_week(asked_at: Iterable[float], now: float) -> int:
    """Offers made to a donor in the seven days up to `now` (epoch seconds)."""
    return sum(1 for at in asked_at if now - WEEK_SECONDS < at <= now)


def spare_asks(pending: int, asked_this_week: int, budget: AskBudget) -> int:
    """How many more offers a donor may be made now: the tighter of the two limits, never below 0."""
    return max(min(budget.max_pending - pending, budget.weekly_asks - asked_this_week), 0)


def within_budget(
    pending: npt.NDArray[np.int16], asked_this_week: npt.NDArray[np.int16], budget: AskBudget
) -> npt.NDArray[np.bool_]:
    """Per donor: whether one more offer keeps them within the budget (the ranking's hard filter)."""
    result: npt.NDArray[np.bool_] = (pending < budget.max_pending) & (asked_this_week < budget.weekly_asks)
    return result
