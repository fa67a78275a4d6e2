"""What other systems publish, applied by signups through its own use cases.

People (donor sign-up, update, withdrawal), fights with their needs, and RSVPs: each is
turned into the command signups' HTTP API takes and handed to the same use case, run as a
savepoint of the pipeline's transaction (the `Transaction` given to `apply` is the use
case's unit of work), so the outbox emits exactly what the API would (donor.registered,
fight.opened + need.opened, booking.confirmed…). Scheduling's types accepted over HTTP are
relayed to scheduling on `pitchin.ingest.v1` through this outbox (`forward`): one
pipeline, one place that applies them.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from pitchin_core.auth import Caller
from pitchin_core.contracts.donors import DonorRegisteredV1
from pitchin_core.contracts.ingest import (
    SCHEDULING_TYPES,
    TOPIC,
    IngestFightOpenedV1,
    IngestPersonSignedUpV1,
    IngestPersonUpdatedV1,
    IngestPersonWithdrawnV1,
    IngestRsvpCancelledV1,
    IngestRsvpMadeV1,
    Published,
)
from pitchin_core.ingest import (
    FORWARDED_PREFIX,
    Accepted,
    NotYet,
    Rejection,
    Subject,
    check_fresh,
    external_event_id,
    forwarded_id,
    save_subject,
    save_subjects,
    stage,
    subject_of,
    subjects_of,
    unknown,
)
from pitchin_core.uow import Transaction
from pitchin_signups import storage
from pitchin_signups.domain.bookings import BookingRequest
from pitchin_signups.domain.donors import DonorChanges, DonorSignup
from pitchin_signups.domain.fights import FightDraft, NeedDraft
from pitchin_signups.service import bookings, donors, fights

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

# A step takes the accepted event's data as its own type (the table below picks the step by that type).
Step = Callable[[Transaction, Accepted, Any, datetime], Awaitable[dict[str, Any]]]


def _caller(accepted: Accepted, *, organisation: bool = True) -> Caller:
    data = accepted.data
    return Caller(data.federation_id, data.organisation_id if organisation else None, "publisher")


async def _known(tx: Transaction, accepted: Accepted, kind: str) -> Subject | None:
    """What the publisher's external id already names here, if anything; refuses an update older than that."""
    known = await subject_of(tx.conn, accepted.source, kind, accepted.data.external_id)
    if known is not None:
        check_fresh(known, accepted)
    return known


async def _must_know(tx: Transaction, accepted: Accepted, kind: str, what: str, first: str) -> Subject:
    """What the publisher's external id names here; when nothing, refused as unknown, saying what to publish `first`."""
    known = await _known(tx, accepted, kind)
    if known is None:
        raise unknown(what, accepted.data.external_id, first)
    return known


# People -----------------------------------------------------------------------------------


async def person_signed_up(
    tx: Transaction, accepted: Accepted, data: IngestPersonSignedUpV1, now: datetime
) -> dict[str, Any]:
    known = await _known(tx, accepted, PERSON)
    fields = data.model_dump(include=set(_PERSON_FIELDS))
    if known is None:
        signup = DonorSignup(**fields, organisation_id=data.organisation_id)
        donor = await donors.sign_up(tx, _caller(accepted), signup, now)
        await save_subject(tx.conn, accepted, PERSON, donor.donor_id)
        return {"donor_id": donor.donor_id}
    # A sign-up again for a person we know, and newer: the person as they are now.
    return await _change_person(tx, accepted, known, DonorChanges(**fields), now)


def signup_of(data: IngestPersonSignedUpV1) -> DonorSignup:
    """The sign-up command of a person-signed-up the pipeline validated, not validated again: the
    contract's person fields are `DonorSignup`'s, field for field, with the same model config (a
    unit test holds them equal), and each email validation costs ~0.1 ms of a batch's CPU."""
    fields = {name: getattr(data, name) for name in _PERSON_FIELDS}
    return DonorSignup.model_construct(**fields, organisation_id=data.organisation_id)


async def person_updated(
    tx: Transaction, accepted: Accepted, data: IngestPersonUpdatedV1, now: datetime
) -> dict[str, Any]:
    known = await _must_know(tx, accepted, PERSON, "person", "publish person-signed-up first")
    given = data.model_fields_set & set(_PERSON_FIELDS)
    changes = DonorChanges.model_validate(data.model_dump(include=given))
    return await _change_person(tx, accepted, known, changes, now)


async def _change_person(
    tx: Transaction, accepted: Accepted, known: Subject, changes: DonorChanges, now: datetime
) -> dict[str, Any]:
    updated = await donors.change(tx, _caller(accepted), known.internal_id, changes, now)
    await save_subject(tx.conn, accepted, PERSON, known.internal_id)
    return {"donor_id": known.internal_id, "version": updated.version}


async def person_withdrawn(
    tx: Transaction, accepted: Accepted, data: IngestPersonWithdrawnV1, now: datetime
) -> dict[str, Any]:
    known = await _must_know(tx, accepted, PERSON, "person", "publish person-signed-up first")
    await donors.withdraw(tx, _caller(accepted), known.internal_id, data.erase, now)
    await save_subject(tx.conn, accepted, PERSON, known.internal_id, state="withdrawn")
    return {"donor_id": known.internal_id}


# Fights -----------------------------------------------------------------------------------


async def fight_opened(tx: Transaction, accepted: Accepted, data: IngestFightOpenedV1, now: datetime) -> dict[str, Any]:
    known = await subject_of(tx.conn, accepted.source, FIGHT, data.external_id)
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
    fight, needs = await fights.start(tx, _caller(accepted), draft, now)
    await save_subject(tx.conn, accepted, FIGHT, fight.fight_id)
    return {"fight_id": fight.fight_id, "need_ids": [n.need_id for n in needs]}


# RSVPs ------------------------------------------------------------------------------------


async def rsvp_made(tx: Transaction, accepted: Accepted, data: IngestRsvpMadeV1, now: datetime) -> dict[str, Any]:
    known = await _known(tx, accepted, RSVP)
    if known is not None and known.state == "active":
        await save_subject(tx.conn, accepted, RSVP, known.internal_id)
        return {"booking_id": known.internal_id, "unchanged": True}
    if data.event_id is not None:
        event_id, where = data.event_id, "data.event_id"
    else:
        assert data.event_external_id is not None
        event_id, where = external_event_id(accepted.source, data.event_external_id), "data.event_external_id"
    event = await storage.get_known_event(tx.conn, event_id)
    if event is None or event["federation_id"] != data.federation_id:
        raise NotYet(
            Rejection.one(
                409, "not-yet", where, "this event is not known to Pitch In (yet): retry shortly", retry_after=2
            )
        )
    request = BookingRequest(name=data.name, email=data.email, language=data.language)
    booking = await bookings.book(tx, _caller(accepted), event_id, request, now)
    await save_subject(tx.conn, accepted, RSVP, booking.booking_id)
    return {"booking_id": booking.booking_id, "event_id": event_id, "booking_status": booking.status}


async def rsvp_cancelled(
    tx: Transaction, accepted: Accepted, data: IngestRsvpCancelledV1, now: datetime
) -> dict[str, Any]:
    known = await _must_know(tx, accepted, RSVP, "RSVP", "publish rsvp-made first")
    if known.state == "cancelled":
        await save_subject(tx.conn, accepted, RSVP, known.internal_id, state="cancelled")
        return {"booking_id": known.internal_id, "unchanged": True}
    # As the person, not the organiser: the person's own cancellation.
    await bookings.cancel(tx, _caller(accepted, organisation=False), known.internal_id, now)
    await save_subject(tx.conn, accepted, RSVP, known.internal_id, state="cancelled")
    return {"booking_id": known.internal_id}


# Scheduling's types -----------------------------------------------------------------------


async def forward(tx: Transaction, accepted: Accepted, data: Published, now: datetime) -> dict[str, Any]:
    """Relay a validated scheduling type, accepted over HTTP, to scheduling on the ingest topic.

    The record keeps the publisher's source and data; its id is derived from the publisher's
    id (the same request twice is one record) and the publisher's id rides in `ce_subject`
    as `http:<id>`, so scheduling de-duplicates and reports rejections under the original id.
    """
    payload = data.model_dump_json(exclude_unset=True)
    # The tenant fields are always there, even when defaulted.
    event_id = await stage(
        tx.conn,
        data,
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


# Each ingested type and the step that applies it.
STEPS: dict[type[Published], Step] = {
    IngestPersonSignedUpV1: person_signed_up,
    IngestPersonUpdatedV1: person_updated,
    IngestPersonWithdrawnV1: person_withdrawn,
    IngestFightOpenedV1: fight_opened,
    IngestRsvpMadeV1: rsvp_made,
    IngestRsvpCancelledV1: rsvp_cancelled,
    **{kind: forward for kind in SCHEDULING_TYPES},
}


async def apply_many(
    tx: Transaction, batch: Sequence[Accepted], now: datetime
) -> list[dict[str, Any] | Exception | None]:
    """A round's sign-ups of people not known here, set-based (`pipeline.ApplyMany`): one lookup of
    their external ids, their donors with their outbox events in one statement, their external ids
    saved in one more. Everything else (updates, a sign-up again of a known person, other types)
    is left (None) to `apply`, one by one."""
    results: list[dict[str, Any] | Exception | None] = [None] * len(batch)
    people = [(i, a, a.data) for i, a in enumerate(batch) if isinstance(a.data, IngestPersonSignedUpV1)]
    known: dict[str, set[str]] = {}
    for source in {a.source for _, a, _ in people}:
        external_ids = [data.external_id for _, a, data in people if a.source == source]
        known[source] = set(await subjects_of(tx.conn, source, PERSON, external_ids))
    signups: list[tuple[int, Accepted, Caller, DonorSignup]] = []
    for i, a, data in people:
        if data.external_id in known[a.source]:
            continue
        signups.append((i, a, _caller(a), signup_of(data)))
    if not signups:
        return results
    decided = await donors.sign_up_many(tx, [(caller, signup) for _, _, caller, signup in signups], now)
    saved: list[tuple[Accepted, str]] = []
    for (i, a, _, _), outcome in zip(signups, decided, strict=True):
        if isinstance(outcome, DonorRegisteredV1):
            saved.append((a, outcome.donor_id))
            results[i] = {"donor_id": outcome.donor_id}
        else:
            results[i] = outcome
    await save_subjects(tx.conn, saved, PERSON)
    return results


async def apply_one(tx: Transaction, accepted: Accepted, now: datetime) -> dict[str, Any]:
    """Apply one validated event of signups' types; raises a DomainError, Rejection or NotYet to refuse it."""
    data = accepted.data
    step = STEPS.get(type(data))
    if step is None:
        raise Rejection.one(422, "unknown-type", "type", f"{data.event_type} is not applied by signups")
    return await step(tx, accepted, data, now)


class SignupsApply:
    """signups' `Apply` (`apply_one`) with its set-based `many` (`apply_many`): the doors that decide
    batches find it there (`pitchin_core.ingest.AppliesMany`)."""

    async def __call__(self, tx: Transaction, accepted: Accepted, now: datetime) -> dict[str, Any]:
        return await apply_one(tx, accepted, now)

    async def many(
        self, tx: Transaction, batch: Sequence[Accepted], now: datetime
    ) -> list[dict[str, Any] | Exception | None]:
        return await apply_many(tx, batch, now)


apply = SignupsApply()
