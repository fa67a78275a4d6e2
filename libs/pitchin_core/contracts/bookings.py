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


# After the event (issue 22): the organiser marks who came; a check-in at the door counts as attended.


class BookingAttendedV1(BookingFacts):
    """The person came: checked in at the door, or marked attended by the organiser afterwards.

    `first_time` is false when an earlier mark said otherwise and this one puts it right: the
    thank-you (with its feedback link) goes to people the first time they are known to have come.
    """

    event_type: ClassVar[str] = "org.pitchin.booking.attended.v1"
    attended_at: datetime
    by_check_in: bool = False
    first_time: bool = True


class BookingNoShowV1(BookingFacts):
    """The organiser marked a confirmed place as not taken up: the person did not come."""

    event_type: ClassVar[str] = "org.pitchin.booking.no-show.v1"
    marked_at: datetime


# Waitlist offers (issue 22): a freed place is held for the first on the waitlist, who takes
# it or gives up their spot; expiry or a decline offers it to the next. The events of one
# event's places are keyed by its id, so a consumer reads them in the order they happened.


class BookingOfferedV1(BookingFacts):
    """A place freed up and is held for this waitlisted person until `expires_at`."""

    event_type: ClassVar[str] = "org.pitchin.booking.offered.v1"
    offered_at: datetime
    expires_at: datetime


class BookingOfferAcceptedV1(BookingFacts):
    """The person took the place offered to them: their booking is confirmed."""

    event_type: ClassVar[str] = "org.pitchin.booking.offer-accepted.v1"
    accepted_at: datetime


class BookingOfferDeclinedV1(BookingFacts):
    """The person gave up their waitlist spot when offered a place: their booking is cancelled."""

    event_type: ClassVar[str] = "org.pitchin.booking.offer-declined.v1"
    declined_at: datetime


class BookingOfferExpiredV1(BookingFacts):
    """The offer lapsed unanswered: the booking is cancelled and the place offered to the next."""

    event_type: ClassVar[str] = "org.pitchin.booking.offer-expired.v1"
    expired_at: datetime
    offered_until: datetime
