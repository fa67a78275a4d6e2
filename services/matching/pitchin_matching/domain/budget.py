"""A firm ask budget per donor: how often one person may be asked, whatever ranks them first.

The load cap (`Policy.max_open_per_donor`) limits what a donor holds at once; it does not
stop the same few people from being asked again each time an offer of theirs is answered.
The budget does: at most `max_pending` offers waiting for their answer at a time (one, so
nobody has several asks to weigh against each other), and at most `weekly_asks` offers in
any seven days (a cap the federation sets; 3 by default, after Catchafire's cap of three
pending applications). Counted asks are offers made, whatever their answer: an ask costs
the donor attention even when they decline or it is cancelled.

The index keeps each donor's last `RECENT_ASKS` ask times (not a count), so the week is
counted at the moment of ranking: an ask ages out when its seventh day passes, without
anything having to re-read the donor.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

WEEK_SECONDS = 7 * 86_400.0
# The most asks a week a federation may allow: the index keeps this many ask times per donor.
RECENT_ASKS = 20


@dataclass(frozen=True)
class AskBudget:
    max_pending: int = 1
    weekly_asks: int = 3

    def __post_init__(self) -> None:
        if self.max_pending < 1 or self.weekly_asks < 1:
            raise ValueError("an ask budget allows at least one pending offer and one ask a week")
        if self.weekly_asks > RECENT_ASKS:
            raise ValueError(f"an ask budget allows at most {RECENT_ASKS} asks a week")


def asks_in_week(asked_at: Iterable[float], now: float) -> int:
    """Offers made to a donor in the seven days up to `now` (epoch seconds)."""
    return sum(1 for at in asked_at if now - WEEK_SECONDS < at <= now)


def weekly_counts(recent: npt.NDArray[np.float64], now: float) -> npt.NDArray[np.int16]:
    """Per row of `recent` (ask times, NaN for none): asks in the seven days up to `now`."""
    with np.errstate(invalid="ignore"):
        inside = (recent > now - WEEK_SECONDS) & (recent <= now)
    counts: npt.NDArray[np.int16] = inside.sum(axis=1).astype(np.int16)
    return counts


def spare_asks(pending: int, asked_this_week: int, budget: AskBudget) -> int:
    """How many more offers a donor may be made now: the tighter of the two limits, never below 0."""
    return max(min(budget.max_pending - pending, budget.weekly_asks - asked_this_week), 0)


def within_budget(
    pending: npt.NDArray[np.int16], asked_this_week: npt.NDArray[np.int16], budget: AskBudget
) -> npt.NDArray[np.bool_]:
    """Per donor: whether one more offer keeps them within the budget (the ranking's hard filter)."""
    result: npt.NDArray[np.bool_] = (pending < budget.max_pending) & (asked_this_week < budget.weekly_asks)
    return result


def note_ask(recent: npt.NDArray[np.float64], at: float) -> None:
    """Record an ask in one donor's row of ask times: it replaces the oldest (or an empty slot)."""
    oldest = int(np.argmin(np.where(np.isnan(recent), -np.inf, recent)))
    recent[oldest] = at
