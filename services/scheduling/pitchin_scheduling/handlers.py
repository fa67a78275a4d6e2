"""Scheduling's Kafka subscribers: per topic, the event types scheduling acts on and the use case each starts."""

from __future__ import annotations

from functools import partial

from pitchin_core.contracts.privacy import ErasureRequestedV1
from pitchin_core.contracts.publishers import PublisherRegisteredV1, PublisherRevokedV1
from pitchin_core.contracts.topics import BOOKINGS, PRIVACY, PUBLISHERS
from pitchin_core.erasure import person_hasher
from pitchin_core.runtime import Runtime
from pitchin_scheduling import erasure, ingest, service


def register(runtime: Runtime) -> None:
    # API keys issued, rotated and revoked in signups: this service's copy, to check callers against.
    runtime.learn_api_keys()
    uow = runtime.uow
    # Who booked what, for attendee counts and each person's calendar feed: every booking fact the
    # read model knows the status after.
    runtime.handle(BOOKINGS, dict.fromkeys(service.BOOKING_STATUS, partial(service.record_booking, uow)))
    # Publishers registered or revoked by federation staff in signups: scheduling's own copy.
    learn_registration = partial(ingest.learn_registration, uow)
    runtime.handle(PUBLISHERS, {PublisherRegisteredV1: learn_registration, PublisherRevokedV1: learn_registration})
    # A person's erasure: their attendee rows anonymised, their calendar feed ended (erasure.py).
    hasher = person_hasher(runtime.settings)
    runtime.handle(PRIVACY, {ErasureRequestedV1: partial(erasure.erase, uow, hasher)})
    # The Kafka door for other systems' events (and those signups relays from its HTTP door).
    ingest.register(runtime)
