"""Signups' Kafka subscribers: decode, then hand to the service layer."""

from __future__ import annotations

from datetime import UTC, datetime

from pitchin_core.contracts.cloudevents import CloudEvent
from pitchin_core.contracts.common import EventData
from pitchin_core.contracts.matching import AssignmentConfirmedV1, AssignmentReleasedV1
from pitchin_core.contracts.topics import EVENTS, MATCHES
from pitchin_core.runtime import Runtime
from pitchin_signups import ingest, service


def register(runtime: Runtime) -> None:
    metrics = runtime.metrics

    def count(event: CloudEvent, applied: bool) -> None:
        metrics.events_applied.labels(metrics.service, event.type, "applied" if applied else "duplicate").inc()

    async def on_event(event: CloudEvent, data: EventData) -> None:
        count(event, await service.learn_event(runtime.pool, event, data))

    async def on_match(event: CloudEvent, data: EventData) -> None:
        if isinstance(data, AssignmentConfirmedV1 | AssignmentReleasedV1):
            count(event, await service.apply_assignment(runtime.pool, event, data, datetime.now(UTC)))

    runtime.subscribe(EVENTS, on_event)
    runtime.subscribe(MATCHES, on_match)
    ingest.register(runtime)
