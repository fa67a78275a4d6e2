"""Matching's Kafka subscribers: per topic, the event types matching acts on and the use case each starts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from pitchin_core.contracts.cloudevents import CloudEvent
from pitchin_core.contracts.donors import DonorRegisteredV1, DonorUpdatedV1, DonorWithdrawnV1
from pitchin_core.contracts.fights import NeedClosedV1, NeedFilledV1, NeedOpenedV1, NeedUpdatedV1
from pitchin_core.contracts.privacy import ErasureRequestedV1
from pitchin_core.contracts.topics import DONORS, NEEDS, PRIVACY
from pitchin_core.runtime import EventUseCase, Runtime
from pitchin_matching import erasure, service
from pitchin_matching.service import Matching

UseCase = Callable[[Matching, CloudEvent, Any, datetime], Awaitable[bool]]


def register(runtime: Runtime, matching: Matching) -> None:
    # API keys issued, rotated and revoked in signups: this service's copy, to check callers against.
    runtime.learn_api_keys()

    def once_ready(use_case: UseCase) -> EventUseCase:
        async def run(event: CloudEvent, data: Any) -> bool:
            # Events wait for the index: ranking against a half-loaded index would skip donors.
            await matching.ready.wait()
            return await use_case(matching, event, data, datetime.now(UTC))

        return run

    learn_donor = once_ready(service.learn_donor)
    runtime.handle(
        DONORS,
        {
            DonorRegisteredV1: learn_donor,
            DonorUpdatedV1: learn_donor,
            DonorWithdrawnV1: once_ready(service.withdraw_donor),
        },
    )
    # Fight events are not here: a need carries its own causes, so matching needs nothing from them.
    learn_need, end_need = once_ready(service.learn_need), once_ready(service.end_need)
    runtime.handle(
        NEEDS,
        {NeedOpenedV1: learn_need, NeedUpdatedV1: learn_need, NeedFilledV1: end_need, NeedClosedV1: end_need},
    )
    # A person's erasure: their profile and words go, their hours stay (erasure.py).
    runtime.handle(PRIVACY, {ErasureRequestedV1: partial(erasure.erase, runtime.uow)})
