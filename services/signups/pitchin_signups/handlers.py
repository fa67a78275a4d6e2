"""Signups' Kafka subscribers: decode, then hand to the service layer."""

from __future__ import annotations

from pitchin_core.contracts.cloudevents import CloudEvent
from pitchin_core.contracts.common import EventData
from pitchin_core.contracts.scheduling import EventCreatedV1
from pitchin_core.contracts.topics import EVENTS
from pitchin_core.runtime import Runtime
from pitchin_signups import service


def register(runtime: Runtime) -> None:
    async def on_event(event: CloudEvent, data: EventData) -> None:
        if isinstance(data, EventCreatedV1):
            await service.learn_event(runtime.pool, event, data)

    runtime.subscribe(EVENTS, on_event)
