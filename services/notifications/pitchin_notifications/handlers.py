"""Notifications' Kafka subscribers: decode, then hand to the service layer."""

from __future__ import annotations

from pitchin_core.contracts.cloudevents import CloudEvent
from pitchin_core.contracts.common import EventData
from pitchin_core.contracts.topics import consumed_by
from pitchin_core.runtime import Runtime
from pitchin_notifications.service import Notifications


def register(runtime: Runtime, notifications: Notifications) -> None:
    metrics = runtime.metrics

    async def on_event(event: CloudEvent, data: EventData) -> None:
        staged = await notifications.apply_event(runtime.pool, event, data)
        metrics.events_applied.labels(metrics.service, event.type, "duplicate" if staged is None else "applied").inc()

    # Every topic the table names notifications a consumer of: donors, needs, bookings,
    # matches and events. Types without a message rule still feed read models and webhooks.
    for spec in consumed_by(runtime.settings.service_name):
        runtime.subscribe(spec, on_event)
