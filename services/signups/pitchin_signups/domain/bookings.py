"""Places at events: who may book, and what a booking attempt turns into.

Capacity itself is enforced in PostgreSQL under the event's row lock (`book_many`, migration
003), never in Python: two requests cannot both see the last free place.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field

from pitchin_core.contracts.common import Contract, Email, Identifier, LanguageTag
from pitchin_core.contracts.scheduling import (
    EventArchivedV1,
    EventCancelledV1,
    EventEndedV1,
    EventFacts,
    EventStartedV1,
)
from pitchin_core.errors import Refused


class BookingRequest(Contract):
    # No NUL: PostgreSQL cannot store it, and one in a rush's batch would fail the whole batch.
    name: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00]+$")
    email: Email
    donor_id: Identifier | None = None
    language: LanguageTag = "en"


@dataclass(frozen=True)
class EventForBooking:
    event_id: str
    starts_at: datetime
    booking_deadline: datetime | None
    status: str
    waitlist: bool


class BookingRefused(Refused):
    """The event does not take bookings now: its state, not the request, is in the way."""

    status = 409
    default_title = "Booking refused"


# The statuses in which an event takes no bookings; the booking call in PostgreSQL is given
# this list, so the rule checked under the event's lock is this one.
NOT_BOOKABLE = ("draft", "cancelled", "ended", "archived")


def check_can_book(event: EventForBooking, now: datetime) -> None:
    if event.status == "draft":
        raise BookingRefused("event_id", "the event is not open for booking yet")
    if event.status in NOT_BOOKABLE:
        raise BookingRefused("event_id", f"the event is {event.status}")
    closes = event.booking_deadline or event.starts_at
    if now >= closes:
        raise BookingRefused("event_id", "bookings for this event have closed")


# What an event is, for bookings, after each fact that changes it; other facts leave it as it was.
_STATUS_AFTER: dict[type[EventFacts], str] = {
    EventCancelledV1: "cancelled",
    EventStartedV1: "live",
    EventEndedV1: "ended",
    EventArchivedV1: "archived",
}


def status_after(fact: EventFacts) -> str | None:
    """The event's status once `fact` happened, or None when the fact does not change it."""
    return _STATUS_AFTER.get(type(fact))


# Waitlist offers (issue 22) ---------------------------------------------------------------------


@dataclass(frozen=True)
class OfferRule:
    """How long a freed place is held for the person it is offered to.

    The organiser's window (`waitlist_offer_seconds`; none: `default`), shortened as bookings
    close: at most `share` of the time left, so the next on the list still has a chance when
    this one lets it lapse, but at least `floor` (or all the time left, when less). Never past
    the booking deadline. The offers are made in PostgreSQL under the event's lock
    (`offer_expiry`, migration 007), which is given this rule's numbers (`as_json`).
    """

    default: timedelta = timedelta(hours=24)
    share: float = 0.5
    floor: timedelta = timedelta(hours=1)

    def window(self, configured_seconds: int | None, now: datetime, closes: datetime) -> timedelta | None:
        """How long an offer made `now` stays open; None when bookings have closed (no offers then)."""
        left = closes - now
        if left <= timedelta(0):
            return None
        wanted = self.default if configured_seconds is None else timedelta(seconds=configured_seconds)
        return min(wanted, max(left * self.share, min(self.floor, left)))

    def expires_at(self, configured_seconds: int | None, now: datetime, closes: datetime) -> datetime | None:
        window = self.window(configured_seconds, now, closes)
        return None if window is None else now + window

    def as_json(self) -> dict[str, Any]:
        return {
            "default_seconds": int(self.default.total_seconds()),
            "share": self.share,
            "floor_seconds": int(self.floor.total_seconds()),
        }


OFFER_RULE = OfferRule()


class OfferNotOpen(Refused):
    """An answer to an offer that is not open: expired, answered, or never made (409)."""

    status = 409
    default_title = "Offer not open"
