"""Signups' Kafka subscribers: per topic, the event types signups acts on and the use case each starts."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial

from pitchin_core.contracts.cloudevents import CloudEvent
from pitchin_core.contracts.matching import AssignmentConfirmedV1, AssignmentReleasedV1
from pitchin_core.contracts.privacy import ErasureCompletedV1
from pitchin_core.contracts.scheduling import (
    EventArchivedV1,
    EventCancelledV1,
    EventCreatedV1,
    EventEndedV1,
    EventPublishedV1,
    EventRescheduledV1,
    EventStartedV1,
    EventUpdatedV1,
    LivestreamEndedV1,
    LivestreamStartedV1,
    RecordingAvailableV1,
)
from pitchin_core.contracts.topics import EVENTS, MATCHES, PRIVACY
from pitchin_core.ingest import Pipeline, subscribe_ingest
from pitchin_core.runtime import Runtime
from pitchin_signups.ingest.apply import apply
from pitchin_signups.service import bookings, erasure, fights


def register(runtime: Runtime) -> None:
    uow = runtime.uow
    # Created and the snapshots carry the whole registration; the other facts times, title and status.
    # Sessions and reminders are not bookings' business.
    learn_event = partial(bookings.learn_event, uow)
    learn_fact = partial(bookings.learn_event_fact, uow)
    runtime.handle(
        EVENTS,
        {
            EventCreatedV1: learn_event,
            EventPublishedV1: learn_event,
            EventUpdatedV1: learn_event,
            EventRescheduledV1: learn_fact,
            EventCancelledV1: learn_fact,
            EventStartedV1: learn_fact,
            EventEndedV1: learn_fact,
            EventArchivedV1: learn_fact,
            LivestreamStartedV1: learn_fact,
            LivestreamEndedV1: learn_fact,
            RecordingAvailableV1: learn_fact,
        },
    )

    async def assignment(event: CloudEvent, data: AssignmentConfirmedV1 | AssignmentReleasedV1) -> bool:
        return await fights.apply_assignment(uow, event, data, datetime.now(UTC))

    runtime.handle(MATCHES, {AssignmentConfirmedV1: assignment, AssignmentReleasedV1: assignment})
    # Each service's answer to an erasure request (signups erased its own part when asked).
    runtime.handle(PRIVACY, {ErasureCompletedV1: partial(erasure.record_completion, uow)})
    # The Kafka door for other systems; the HTTP door (ingest.routes) keeps a pipeline of its own.
    subscribe_ingest(runtime, Pipeline("signups", runtime.metrics), apply)
