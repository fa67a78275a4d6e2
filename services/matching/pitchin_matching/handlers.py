"""Matching's Kafka subscribers: decode, then hand to the service layer."""

from __future__ import annotations

from pitchin_core.contracts.cloudevents import CloudEvent
from pitchin_core.contracts.common import EventData
from pitchin_core.contracts.donors import DonorRegisteredV1
from pitchin_core.contracts.topics import DONORS
from pitchin_core.runtime import Runtime
from pitchin_matching import service


def register(runtime: Runtime) -> None:
    metrics = runtime.metrics

    async def on_donor(event: CloudEvent, data: EventData) -> None:
        if isinstance(data, DonorRegisteredV1):
            applied = await service.learn_donor(runtime.pool, event, data)
            metrics.events_applied.labels(metrics.service, event.type, "applied" if applied else "duplicate").inc()

    runtime.subscribe(DONORS, on_donor)
