"""Places at events (RSVPs): produced by signups on pitchin.bookings.v1, keyed by event id."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from pydantic import Field

from pitchin_core.contracts.common import Email, EventData, Identifier, LanguageTag


class BookingFacts(EventData):
    booking_id: Identifier
    event_id: Identifier
    donor_id: Identifier | None = None
    name: str = Field(min_length=1, max_length=200)
    email: Email
    language: LanguageTag = "en"


class BookingConfirmedV1(BookingFacts):
    event_type: ClassVar[str] = "org.pitchin.booking.confirmed.v1"
    confirmed_at: datetime


class BookingWaitlistedV1(BookingFacts):
    event_type: ClassVar[str] = "org.pitchin.booking.waitlisted.v1"
    position: int = Field(ge=1)
    waitlisted_at: datetime


class BookingPromotedV1(BookingFacts):
    """A place freed up and the first on the waitlist now has it."""

    event_type: ClassVar[str] = "org.pitchin.booking.promoted.v1"
    promoted_at: datetime


class BookingCancelledV1(BookingFacts):
    event_type: ClassVar[str] = "org.pitchin.booking.cancelled.v1"
    cancelled_at: datetime
    by_organiser: bool = False
