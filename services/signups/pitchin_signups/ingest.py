"""What other systems publish, applied by signups through its own use cases.

People (donor sign-up, update, withdrawal), fights with their needs, and RSVPs: each is
turned into the command signups' HTTP API takes and handed to the same function in
`service.py`, inside the pipeline's transaction (`ConnectionAsPool`), so the outbox emits
exactly what the API would (donor.registered, fight.opened + need.opened, booking.confirmed…).
Scheduling's types accepted over HTTP are relayed to scheduling on `pitchin.ingest.v1`
through this outbox (`forward`): one pipeline, one place that applies them.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pitchin_core.auth import Caller
from pitchin_core.contracts.ingest import (
    SCHEDULING_TYPES,
    TOPIC,
    IngestFightOpenedV1,
    IngestPersonSignedUpV1,
    IngestPersonUpdatedV1,
    IngestPersonWithdrawnV1,
    IngestRsvpCancelledV1,
    IngestRsvpMadeV1,
)
from pitchin_core.db import Conn
from pitchin_core.ingest import (
    FORWARDED_PREFIX,
    Accepted,
    ConnectionAsPool,
    NotYet,
    Pipeline,
    Rejection,
    check_fresh,
    external_event_id,
    forwarded_id,
    save_subject,
    stage,
    subject_of,
    subscribe_ingest,
    unknown,
)
from pitchin_core.runtime import Runtime
from pitchin_signups import service, storage
from pitchin_signups.domain.bookings import BookingRequest
from pitchin_signups.domain.donors import DonorChanges, DonorSignup
from pitchin_signups.domain.fights import FightDraft, NeedDraft

PERSON, FIGHT, RSVP = "person", "fight", "rsvp"
_PERSON_FIELDS = (
    "name",
    "email",
    "phone",
    "skills",
    "availability",
    "place",
    "languages",
    "causes",
    "union_member",
    "contact",
    "consent",
)


def _caller(accepted: Accepted, *, organisation: bool = True) -> Caller:
    data = accepted.data
    return Caller(data.federation_id, data.organisation_id if organisation else None, "publisher")


async def apply(conn: Conn, accepted: Accepted, now: datetime) -> dict[str, Any]:
    """Apply one validated event of signups' types; raises Rejection or Problem to refuse it."""
    data = accepted.data
    pool = ConnectionAsPool(conn).as_pool()
    if isinstance(data, IngestPersonSignedUpV1 | IngestPersonUpdatedV1 | IngestPersonWithdrawnV1):
        return await _person(conn, pool, accepted, now)
    if isinstance(data, IngestFightOpenedV1):
        known = await subject_of(conn, accepted.source, FIGHT, data.external_id)
        if known is not None:
            check_fresh(known, accepted)
            raise Rejection.one(
                409, "conflict", "data.external_id", "this fight was already opened (v1 has no fight update)"
            )
        draft = FightDraft(
            kind=data.kind,
            title=data.title,
            description=data.description,
            causes=data.causes,
            needs=[NeedDraft.model_validate(n.model_dump()) for n in data.needs],
        )
        fight, needs = await service.start_fight(pool, _caller(accepted), draft, now)
        await save_subject(conn, accepted, FIGHT, fight.fight_id)
        return {"fight_id": fight.fight_id, "need_ids": [n.need_id for n in needs]}
    if isinstance(data, IngestRsvpMadeV1 | IngestRsvpCancelledV1):
        return await _rsvp(conn, pool, accepted, now)
    if isinstance(data, SCHEDULING_TYPES):
        return await forward(conn, accepted, now)
    raise Rejection.one(422, "unknown-type", "type", f"{data.event_type} is not applied by signups")


async def _person(conn: Conn, pool: Any, accepted: Accepted, now: datetime) -> dict[str, Any]:
    data = accepted.data
    known = await subject_of(conn, accepted.source, PERSON, data.external_id)
    if known is not None:
        check_fresh(known, accepted)
    if isinstance(data, IngestPersonSignedUpV1):
        fields = data.model_dump(include=set(_PERSON_FIELDS))
        if known is None:
            signup = DonorSignup(**fields, organisation_id=data.organisation_id)
            donor = await service.register_donor(pool, _caller(accepted), signup, now)
            await save_subject(conn, accepted, PERSON, donor.donor_id)
            return {"donor_id": donor.donor_id}
        # A sign-up again for a person we know, and newer: the person as they are now.
        updated = await service.change_donor(pool, _caller(accepted), known.internal_id, DonorChanges(**fields), now)
        await save_subject(conn, accepted, PERSON, known.internal_id)
        return {"donor_id": known.internal_id, "version": updated.version}
    if known is None:
        raise unknown("person", data.external_id, "publish person-signed-up first")
    if isinstance(data, IngestPersonUpdatedV1):
        given = data.model_fields_set & set(_PERSON_FIELDS)
        changes = DonorChanges.model_validate(data.model_dump(include=given))
        updated = await service.change_donor(pool, _caller(accepted), known.internal_id, changes, now)
        await save_subject(conn, accepted, PERSON, known.internal_id)
        return {"donor_id": known.internal_id, "version": updated.version}
    assert isinstance(data, IngestPersonWithdrawnV1)
    await service.withdraw_donor(pool, _caller(accepted), known.internal_id, data.erase, now)
    await save_subject(conn, accepted, PERSON, known.internal_id, state="withdrawn")
    return {"donor_id": known.internal_id}


async def _rsvp(conn: Conn, pool: Any, accepted: Accepted, now: datetime) -> dict[str, Any]:
    data = accepted.data
    known = await subject_of(conn, accepted.source, RSVP, data.external_id)
    if known is not None:
        check_fresh(known, accepted)
    if isinstance(data, IngestRsvpCancelledV1):
        if known is None:
            raise unknown("RSVP", data.external_id, "publish rsvp-made first")
        if known.state == "cancelled":
            await save_subject(conn, accepted, RSVP, known.internal_id, state="cancelled")
            return {"booking_id": known.internal_id, "unchanged": True}
        # As the person, not the organiser: the person's own cancellation.
        await service.cancel(pool, _caller(accepted, organisation=False), known.internal_id, now)
        await save_subject(conn, accepted, RSVP, known.internal_id, state="cancelled")
        return {"booking_id": known.internal_id}
    assert isinstance(data, IngestRsvpMadeV1)
    if known is not None and known.state == "active":
        await save_subject(conn, accepted, RSVP, known.internal_id)
        return {"booking_id": known.internal_id, "unchanged": True}
    if data.event_id is not None:
        event_id, where = data.event_id, "data.event_id"
    else:
        assert data.event_external_id is not None
        event_id, where = external_event_id(accepted.source, data.event_external_id), "data.event_external_id"
    event = await storage.get_known_event(conn, event_id)
    if event is None or event["federation_id"] != data.federation_id:
        raise NotYet(
            Rejection.one(
                409, "not-yet", where, "this event is not known to Pitch In (yet): retry shortly", retry_after=2
            )
        )
    request = BookingRequest(name=data.name, email=data.email, language=data.language)
    booking = await service.book(pool, _caller(accepted), event_id, request, now)
    await save_subject(conn, accepted, RSVP, booking.booking_id)
    status = "waitlisted" if hasattr(booking, "position") else "confirmed"
    return {"booking_id": booking.booking_id, "event_id": event_id, "booking_status": status}


async def forward(conn: Conn, accepted: Accepted, now: datetime) -> dict[str, Any]:
    """Relay a validated scheduling type, accepted over HTTP, to scheduling on the ingest topic.

    The record keeps the publisher's source and data; its id is derived from the publisher's
    id (the same request twice is one record) and the publisher's id rides in `ce_subject`
    as `http:<id>`, so scheduling de-duplicates and reports rejections under the original id.
    """
    payload = accepted.data.model_dump_json(exclude_unset=True)
    # The tenant fields are always there, even when defaulted.
    event_id = await stage(
        conn,
        accepted.data,
        topic=TOPIC,
        key=accepted.source,
        source=accepted.source,
        subject=FORWARDED_PREFIX + accepted.id,
        event_id=forwarded_id(accepted.source, accepted.id),
        payload=_with_tenant(payload, accepted),
    )
    return {"forwarded": True, "owner": "scheduling", "relayed_as": str(event_id)}


def _with_tenant(payload: str, accepted: Accepted) -> str:
    body = json.loads(payload)
    body.setdefault("federation_id", accepted.data.federation_id)
    body.setdefault("organisation_id", accepted.data.organisation_id)
    return json.dumps(body)


def register(runtime: Runtime) -> Pipeline:
    """The Kafka door for signups' types; the HTTP door (ingest_api) reuses the pipeline."""
    pipeline = Pipeline("signups", runtime.metrics)
    subscribe_ingest(runtime, pipeline, apply)
    return pipeline
