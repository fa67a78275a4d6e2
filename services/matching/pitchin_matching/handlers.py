"""Matching's Kafka subscribers: wait for the index, then hand to the service layer."""

from __future__ import annotations

from datetime import UTC, datetime

from pitchin_core.contracts.cloudevents import CloudEvent
from pitchin_core.contracts.common import EventData
from pitchin_core.contracts.donors import DonorRegisteredV1, DonorUpdatedV1, DonorWithdrawnV1
from pitchin_core.contracts.fights import NeedClosedV1, NeedFilledV1, NeedOpenedV1, NeedUpdatedV1
from pitchin_core.contracts.topics import DONORS, NEEDS
from pitchin_core.runtime import Runtime
from pitchin_matching import service
from pitchin_matching.service import Matching


def register(runtime: Runtime, matching: Matching) -> None:
    metrics = runtime.metrics

    def count(event: CloudEvent, outcome: str) -> None:
        metrics.events_applied.labels(metrics.service, event.type, outcome).inc()

    async def on_donor(event: CloudEvent, data: EventData) -> None:
        # Events wait for the index: ranking against a half-loaded index would skip donors.
        await matching.ready.wait()
        now = datetime.now(UTC)
        if isinstance(data, DonorRegisteredV1 | DonorUpdatedV1):
            applied = await service.learn_donor(matching, event, data, now)
        elif isinstance(data, DonorWithdrawnV1):
            applied = await service.withdraw_donor(matching, event, data, now)
        else:
            count(event, "ignored")
            return
        count(event, "applied" if applied else "duplicate")

    async def on_need(event: CloudEvent, data: EventData) -> None:
        await matching.ready.wait()
        now = datetime.now(UTC)
        if isinstance(data, NeedOpenedV1 | NeedUpdatedV1):
            applied = await service.learn_need(matching, event, data, now)
        elif isinstance(data, NeedFilledV1 | NeedClosedV1):
            applied = await service.end_need(matching, event, data, now)
        else:
            # Fight events: a need carries its own causes, so matching needs nothing from them.
            count(event, "ignored")
            return
        count(event, "applied" if applied else "duplicate")

    runtime.subscribe(DONORS, on_donor)
    runtime.subscribe(NEEDS, on_need)
