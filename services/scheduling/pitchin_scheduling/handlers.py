"""Scheduling's Kafka subscribers: decode, then hand to the service layer."""

from __future__ import annotations

from pitchin_core.contracts.bookings import BookingFacts
from pitchin_core.contracts.cloudevents import CloudEvent
from pitchin_core.contracts.common import EventData
from pitchin_core.contracts.publishers import PublisherRegisteredV1, PublisherRevokedV1
from pitchin_core.contracts.topics import BOOKINGS, PUBLISHERS
from pitchin_core.runtime import Runtime
from pitchin_scheduling import ingest, service


def register(runtime: Runtime) -> None:
    metrics = runtime.metrics

    async def on_booking(event: CloudEvent, data: EventData) -> None:
        # Who booked what, for attendee counts and each person's calendar feed.
        if not isinstance(data, BookingFacts):
            return
        applied = await service.record_booking(runtime.pool, event, data)
        metrics.events_applied.labels(metrics.service, event.type, "applied" if applied else "duplicate").inc()

    async def on_publisher(event: CloudEvent, data: EventData) -> None:
        # Publishers registered or revoked by federation staff in signups: scheduling's own copy.
        if not isinstance(data, PublisherRegisteredV1 | PublisherRevokedV1):
            return
        applied = await ingest.learn_registration(runtime.pool, event, data)
        metrics.events_applied.labels(metrics.service, event.type, "applied" if applied else "duplicate").inc()

    runtime.subscribe(BOOKINGS, on_booking)
    runtime.subscribe(PUBLISHERS, on_publisher)
    ingest.register(runtime)
