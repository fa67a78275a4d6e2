"""Events other systems publish, applied by scheduling through its own use cases.

event-created → `service.create_event`, event-changed → `service.change_event` with the
same `update` (and `reschedule`, when the time moved) rules as PATCH and /reschedule,
event-cancelled → `change_event` with `cancel`: the outbox emits what the API would. Each
use case runs in a savepoint of the pipeline's transaction (the `Transaction` given to
`apply` is its unit of work), so its rows, outbox events and the external-id record commit
together, and a refusal rolls back only its own part.

An event created this way gets a Pitch In id derived from (source, external id)
(`pitchin_core.ingest.external_event_id`), so signups can take RSVPs for it by the
publisher's id without asking scheduling.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pitchin_core.auth import Caller
from pitchin_core.contracts.cloudevents import CloudEvent
from pitchin_core.contracts.common import EventData
from pitchin_core.contracts.ingest import IngestEventCancelledV1, IngestEventChangedV1, IngestEventCreatedV1
from pitchin_core.contracts.publishers import PublisherRegisteredV1, PublisherRevokedV1
from pitchin_core.contracts.scheduling import EventStatus
from pitchin_core.ingest import (
    Accepted,
    Pipeline,
    Rejection,
    check_fresh,
    external_event_id,
    learn_publisher,
    save_subject,
    subject_of,
    subscribe_ingest,
    unknown,
)
from pitchin_core.runtime import Runtime
from pitchin_core.uow import Tenant, Transaction, Transactions
from pitchin_scheduling import service
from pitchin_scheduling.domain import events as rules
from pitchin_scheduling.domain.events import Event, EventChanges, EventDraft, Reschedule

EVENT = "event"
_CHANGES = set(EventChanges.model_fields)


def _caller(accepted: Accepted) -> Caller:
    return Caller(accepted.data.federation_id, accepted.data.organisation_id, "publisher")


async def apply(tx: Transaction, accepted: Accepted, now: datetime) -> dict[str, Any]:
    data = accepted.data
    known = await subject_of(tx.conn, accepted.source, EVENT, data.external_id)
    if known is not None:
        check_fresh(known, accepted)
    if isinstance(data, IngestEventCreatedV1):
        if known is not None:
            raise Rejection.one(409, "conflict", "data.external_id", "this event exists: publish event-changed")
        fields = data.model_dump(exclude={"federation_id", "organisation_id", "external_id", "updated_at", "draft"})
        draft = EventDraft(**fields, status=EventStatus.draft if data.draft else EventStatus.published)
        event_id = external_event_id(accepted.source, data.external_id)
        event = await service.create_event(tx, _caller(accepted), draft, now, event_id=event_id)
        await save_subject(tx.conn, accepted, EVENT, event.event_id)
        return {"event_id": event.event_id}
    if known is None:
        raise unknown("event", data.external_id, "publish event-created first")
    if isinstance(data, IngestEventChangedV1):
        given = data.model_fields_set
        changes = EventChanges.model_validate(data.model_dump(include=given & _CHANGES))
        move = (
            Reschedule(starts_at=data.starts_at, ends_at=data.ends_at, time_zone=data.time_zone)
            if data.starts_at is not None and data.ends_at is not None
            else None
        )

        def command(event: Event) -> tuple[Event, list[EventData]]:
            updated, facts = rules.update(event, changes, now)
            if move is not None:
                updated, moved = rules.reschedule(updated, move, now)
                facts = [*facts, *moved]
            return updated, facts

        event = await service.change_event(tx, _caller(accepted), known.internal_id, command, now)
        await save_subject(tx.conn, accepted, EVENT, known.internal_id)
        return {"event_id": event.event_id, "version": event.version}
    assert isinstance(data, IngestEventCancelledV1)
    reason = data.reason
    event = await service.change_event(
        tx, _caller(accepted), known.internal_id, lambda e: rules.cancel(e, reason, now), now
    )
    await save_subject(tx.conn, accepted, EVENT, known.internal_id, state="cancelled")
    return {"event_id": event.event_id}


async def learn_registration(
    uow: Transactions, event: CloudEvent, fact: PublisherRegisteredV1 | PublisherRevokedV1
) -> bool:
    """Keep scheduling's copy of a publisher registered or revoked in signups; False for a redelivery.

    Scheduling decides the event types over Kafka (and those signups relays from its HTTP door)
    against this copy; a revocation applies here within the registry's cache time (5 s).
    """
    async with uow(Tenant(fact.federation_id)) as tx:
        if not await tx.first_delivery(event):
            return False
        await learn_publisher(tx.conn, fact)
        return True


def register(runtime: Runtime) -> None:
    subscribe_ingest(runtime, Pipeline("scheduling", runtime.metrics), apply)
