"""Notifications' Kafka subscribers: per topic, the use case each event type starts."""

from __future__ import annotations

from functools import partial

from pitchin_core.contracts.common import EventData
from pitchin_core.contracts.donors import DonorRegisteredV1, DonorUpdatedV1, DonorWithdrawnV1
from pitchin_core.contracts.privacy import ErasureRequestedV1
from pitchin_core.contracts.topics import API_KEYS, BOOKINGS, EVENTS, PRIVACY, consumed_by
from pitchin_core.erasure import person_hasher
from pitchin_core.runtime import EventUseCase, Runtime
from pitchin_notifications import erasure
from pitchin_notifications.service.messages import Notifications


def register(runtime: Runtime, notifications: Notifications) -> None:
    # API keys issued, rotated and revoked in signups: this service's copy, to check callers against.
    runtime.learn_api_keys()
    uow = runtime.uow
    learn_donor = partial(notifications.learn_donor, uow)
    learn_booking = partial(notifications.learn_booking, uow)
    learn_event = partial(notifications.learn_event, uow)
    # The types that feed a read model; each of these also stages its messages and webhook deliveries.
    learning: dict[type[EventData], EventUseCase] = {
        DonorRegisteredV1: learn_donor,
        DonorUpdatedV1: learn_donor,
        DonorWithdrawnV1: partial(notifications.donor_withdrew, uow),
        **dict.fromkeys(BOOKINGS.event_types, learn_booking),
        **dict.fromkeys(EVENTS.event_types, learn_event),
    }
    stage = partial(notifications.stage, uow)
    # Every type of every topic the table names notifications a consumer of (donors, needs,
    # bookings, matches, events): types without a message rule still feed webhooks. Keys'
    # facts only keep the copy above: they are nobody's webhook; nor is a person's erasure.
    hasher = person_hasher(runtime.settings)
    runtime.handle(PRIVACY, {ErasureRequestedV1: partial(erasure.erase, uow, hasher)})
    for spec in consumed_by(runtime.settings.service_name):
        if spec in (API_KEYS, PRIVACY):
            continue
        runtime.handle(spec, {event_type: learning.get(event_type, stage) for event_type in spec.event_types})
