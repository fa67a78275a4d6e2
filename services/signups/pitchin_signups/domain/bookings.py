"""Places at events: who may book, and what a booking attempt turns into.

Capacity itself is enforced in PostgreSQL under the event's row lock (`book_many`, migration
003), never in Python: two requests cannot both see the last free place.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

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
