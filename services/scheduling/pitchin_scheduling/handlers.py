"""Scheduling's Kafka subscribers: per topic, the event types scheduling acts on and the use case each starts."""

from __future__ import annotations

from functools import partial

from pitchin_core.contracts.bookings import (
    BookingCancelledV1,
    BookingConfirmedV1,
    BookingPromotedV1,
    BookingWaitlistedV1,
)
from pitchin_core.contracts.publishers import PublisherRegisteredV1, PublisherRevokedV1
from pitchin_core.contracts.topics import BOOKINGS, PUBLISHERS
from pitchin_core.runtime import Runtime
from pitchin_scheduling import ingest, service


def register(runtime: Runtime) -> None:
    uow = runtime.uow
    # Who booked what, for attendee counts and each person's calendar feed.
    record_booking = partial(service.record_booking, uow)
    runtime.handle(
        BOOKINGS,
        {
            BookingConfirmedV1: record_booking,
            BookingWaitlistedV1: record_booking,
            BookingPromotedV1: record_booking,
            BookingCancelledV1: record_booking,
        },
    )
    # Publishers registered or revoked by federation staff in signups: scheduling's own copy.
    learn_registration = partial(ingest.learn_registration, uow)
    runtime.handle(PUBLISHERS, {PublisherRegisteredV1: learn_registration, PublisherRevokedV1: learn_registration})
    # The Kafka door for other systems' events (and those signups relays from its HTTP door).
    ingest.register(runtime)
