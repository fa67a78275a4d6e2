"""Notifications' Kafka subscribers: decode, then hand to the service layer."""

from __future__ import annotations

from pitchin_core.contracts.cloudevents import CloudEvent
from pitchin_core.contracts.common import EventData
from pitchin_core.contracts.topics import DONORS, EVENTS
from pitchin_core.runtime import Runtime
from pitchin_notifications import service
from pitchin_notifications.templates import Renderer


def register(runtime: Runtime, renderer: Renderer) -> None:
    metrics = runtime.metrics
    base_url = runtime.settings.public_base_url

    async def on_event(event: CloudEvent, data: EventData) -> None:
        staged = await service.stage_messages(runtime.pool, renderer, event, data, base_url)
        metrics.events_applied.labels(metrics.service, event.type, "duplicate" if staged is None else "applied").inc()

    runtime.subscribe(DONORS, on_event)
    runtime.subscribe(EVENTS, on_event)
