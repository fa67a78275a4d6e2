"""Places at events: who may book, and what a booking attempt turns into.

Capacity itself is enforced in PostgreSQL under a row lock (storage.take_place), never in
Python: two requests cannot both see the last free place.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import EmailStr, Field

from pitchin_core.contracts.common import Contract, Identifier, LanguageTag


class BookingRequest(Contract):
    name: str = Field(min_length=1, max_length=200)
    email: EmailStr
    donor_id: Identifier | None = None
    language: LanguageTag = "en"


@dataclass(frozen=True)
class EventForBooking:
    event_id: str
    starts_at: datetime
    booking_deadline: datetime | None
    status: str
    waitlist: bool


class BookingRefused(ValueError):
    def __init__(self, field: str, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.field = field
        self.status = status


def check_can_book(event: EventForBooking, now: datetime) -> None:
    if event.status == "draft":
        raise BookingRefused("event_id", "the event is not open for booking yet", 409)
    if event.status in ("cancelled", "ended", "archived"):
        raise BookingRefused("event_id", f"the event is {event.status}", 409)
    closes = event.booking_deadline or event.starts_at
    if now >= closes:
        raise BookingRefused("event_id", "bookings for this event have closed", 409)
