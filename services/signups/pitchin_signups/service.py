"""Signups' use cases: one function per command, one transaction each."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from pitchin_core.auth import Caller
from pitchin_core.contracts.bookings import (
    BookingCancelledV1,
    BookingConfirmedV1,
    BookingPromotedV1,
    BookingWaitlistedV1,
)
from pitchin_core.contracts.cloudevents import CloudEvent
from pitchin_core.contracts.common import EventData
from pitchin_core.contracts.donors import DonorRegisteredV1, DonorUpdatedV1, DonorWithdrawnV1
from pitchin_core.contracts.fights import (
    FightClosedV1,
    FightOpenedV1,
    NeedClosedV1,
    NeedFilledV1,
    NeedOpenedV1,
    NeedStatus,
    NeedUpdatedV1,
)
from pitchin_core.contracts.matching import AssignmentConfirmedV1, AssignmentReleasedV1
from pitchin_core.contracts.publishers import PublisherRegisteredV1, PublisherRevokedV1
from pitchin_core.contracts.scheduling import (
    EventArchivedV1,
    EventCancelledV1,
    EventCreatedV1,
    EventEndedV1,
    EventFacts,
    EventSnapshot,
    EventStartedV1,
    ReminderDueV1,
)
from pitchin_core.db import Conn
from pitchin_core.http import Problem
from pitchin_core.inbox import first_delivery
from pitchin_core.ingest import Credentials, PublisherSummary, SourceTaken, publisher_summaries
from pitchin_core.ingest import register_publisher as register_source
from pitchin_core.ingest import revoke_publisher as revoke_source
from pitchin_core.outbox import add_to_outbox
from pitchin_signups import storage
from pitchin_signups.domain import bookings as booking_rules
from pitchin_signups.domain import csv_import
from pitchin_signups.domain.donors import DonorChanges, DonorSignup, SignupRefused, register, updated
from pitchin_signups.domain.fights import (
    FightDraft,
    FightRefused,
    NeedChanges,
    NeedDraft,
    as_state,
    is_live,
    open_fight,
    open_need,
    status_for,
    updated_need,
)
from pitchin_signups.domain.taxonomy import DEFAULT_SKILLS, unknown_skills

SOURCE = "/pitchin/signups"
EVENT_STATUS_AFTER: dict[type[EventFacts], str] = {
    EventCancelledV1: "cancelled",
    EventStartedV1: "live",
    EventEndedV1: "ended",
    EventArchivedV1: "archived",
}
CONSUMER = "signups"


def _refused(
    title: str, exc: SignupRefused | FightRefused | booking_rules.BookingRefused, status: int = 422
) -> Problem:
    return Problem(
        status,
        title,
        f"{exc.field}: {exc}",
        kind="/problems/validation",
        errors=[{"field": exc.field, "message": str(exc)}],
    )


def _not_found(what: str, ident: str) -> Problem:
    return Problem(404, "Not found", f"No {what} {ident} here.")


async def _emit(conn: Conn, data: EventData, key: str, subject: str) -> None:
    await add_to_outbox(conn, data, source=SOURCE, key=key, subject=subject)


# Skills taxonomy -------------------------------------------------------------------------


async def taxonomy(conn: Conn | asyncpg.Pool, federation_id: str) -> dict[str, str]:
    return await storage.federation_skills(conn, federation_id) or dict(DEFAULT_SKILLS)


async def replace_taxonomy(pool: asyncpg.Pool, caller: Caller, skills: dict[str, str]) -> dict[str, str]:
    if caller.role != "federation-staff":
        raise Problem(403, "Forbidden", "Only federation staff own the skills taxonomy.")
    async with pool.acquire() as conn, conn.transaction():
        await storage.replace_skills(conn, caller.federation_id, skills)
    return skills


async def _check_skills(conn: Conn | asyncpg.Pool, federation_id: str, slugs: list[str], field: str) -> None:
    known = await taxonomy(conn, federation_id)
    missing = unknown_skills(slugs, known)
    if missing:
        errors = [
            {"field": f"{field}.{i}.skill", "message": f"{slug!r} is not in the federation's skills"}
            for i, slug in missing
        ]
        raise Problem(
            422,
            "Unknown skill",
            "; ".join(f"{e['field']}: {e['message']}" for e in errors),
            kind="/problems/validation",
            errors=errors,
        )


# Donors ----------------------------------------------------------------------------------


async def register_donor(pool: asyncpg.Pool, caller: Caller, signup: DonorSignup, now: datetime) -> DonorRegisteredV1:
    try:
        donor = register(
            signup, federation_id=caller.federation_id, caller_organisation=caller.organisation_id, now=now
        )
    except SignupRefused as exc:
        raise _refused("Sign-up refused", exc) from exc
    async with pool.acquire() as conn, conn.transaction():
        await _check_skills(conn, caller.federation_id, [s.skill for s in donor.skills], "skills")
        if not await storage.insert_donor(conn, donor):
            raise Problem(
                409,
                "Already signed up",
                "A donor with this email has already signed up in this federation.",
                kind="/problems/duplicate",
                errors=[{"field": "email", "message": "already signed up"}],
            )
        await _emit(conn, donor, donor.donor_id, f"donors/{donor.donor_id}")
    return donor


def donor_view(row: asyncpg.Record) -> dict[str, Any]:
    return {**{k: row[k] for k in row.keys() if k != "profile"}, **json.loads(row["profile"])}


async def _own_donor(conn: Conn, caller: Caller, donor_id: str) -> asyncpg.Record:
    row = await storage.get_donor(conn, caller.federation_id, donor_id, for_update=True)
    if row is None or not caller.can_act_for(row["federation_id"], row["organisation_id"]):
        raise _not_found("donor", donor_id)
    return row


async def change_donor(
    pool: asyncpg.Pool, caller: Caller, donor_id: str, changes: DonorChanges, now: datetime
) -> DonorUpdatedV1:
    async with pool.acquire() as conn, conn.transaction():
        row = await _own_donor(conn, caller, donor_id)
        try:
            donor = updated(donor_view(row), changes, now=now)
        except SignupRefused as exc:
            raise _refused("Change refused", exc) from exc
        if changes.skills is not None:
            await _check_skills(conn, caller.federation_id, [s.skill for s in changes.skills], "skills")
        try:
            await storage.update_donor(conn, donor)
        except asyncpg.UniqueViolationError as exc:
            raise Problem(
                409,
                "Email in use",
                "Another donor in this federation has this email.",
                errors=[{"field": "email", "message": "already signed up"}],
            ) from exc
        await _emit(conn, donor, donor_id, f"donors/{donor_id}")
    return donor


async def withdraw_donor(
    pool: asyncpg.Pool, caller: Caller, donor_id: str, erase: bool, now: datetime
) -> DonorWithdrawnV1:
    """Withdraw; with `erase`, remove the person's data here, and through the event everywhere."""
    async with pool.acquire() as conn, conn.transaction():
        row = await _own_donor(conn, caller, donor_id)
        if row["erased_at"] is not None:
            raise Problem(409, "Already erased", f"Donor {donor_id} was erased on {row['erased_at']:%Y-%m-%d}.")
        if erase:
            await storage.erase_donor(conn, donor_id, now)
        else:
            await conn.execute(
                "UPDATE donors SET status = 'withdrawn', updated_at = $2 WHERE donor_id = $1", donor_id, now
            )
        event = DonorWithdrawnV1(
            federation_id=row["federation_id"],
            organisation_id=row["organisation_id"],
            donor_id=donor_id,
            erase=erase,
            withdrawn_at=now,
        )
        await _emit(conn, event, donor_id, f"donors/{donor_id}")
    return event


@dataclass
class ImportReport:
    imported: list[str] = field(default_factory=list)
    already_registered: list[int] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


async def import_donors(pool: asyncpg.Pool, caller: Caller, text: str, now: datetime) -> ImportReport:
    """Valid rows are kept, bad rows reported; a row whose email is known is skipped, so a
    re-run of the same file changes nothing."""
    signups, errors = csv_import.parse(text)
    report = ImportReport(errors=[vars(e) for e in errors])
    known = await taxonomy(pool, caller.federation_id)
    async with pool.acquire() as conn:
        for row_number, signup in signups:
            try:
                donor = register(
                    signup, federation_id=caller.federation_id, caller_organisation=caller.organisation_id, now=now
                )
            except SignupRefused as exc:
                report.errors.append({"row": row_number, "field": exc.field, "message": str(exc)})
                continue
            bad = unknown_skills([s.skill for s in donor.skills], known)
            if bad:
                report.errors += [
                    {
                        "row": row_number,
                        "field": f"skills.{i}.skill",
                        "message": f"{slug!r} is not in the federation's skills",
                    }
                    for i, slug in bad
                ]
                continue
            async with conn.transaction():
                if await storage.insert_donor(conn, donor):
                    await _emit(conn, donor, donor.donor_id, f"donors/{donor.donor_id}")
                    report.imported.append(donor.donor_id)
                else:
                    report.already_registered.append(row_number)
    report.errors.sort(key=lambda e: (e["row"], e["field"]))
    return report


# Fights and needs --------------------------------------------------------------------------


async def start_fight(
    pool: asyncpg.Pool, caller: Caller, draft: FightDraft, now: datetime
) -> tuple[FightOpenedV1, list[NeedOpenedV1]]:
    try:
        fight, needs = open_fight(
            draft, federation_id=caller.federation_id, organisation_id=caller.organisation_id, now=now
        )
    except FightRefused as exc:
        raise _refused("Fight refused", exc) from exc
    async with pool.acquire() as conn, conn.transaction():
        for i, need in enumerate(needs):
            await _check_skills(
                conn,
                caller.federation_id,
                [s.skill for s in need.required_skills] + need.nice_to_have,
                f"needs.{i}.required_skills",
            )
        await storage.insert_fight(conn, fight)
        await _emit(conn, fight, fight.fight_id, f"fights/{fight.fight_id}")
        for need in needs:
            await storage.save_need(conn, as_state(need), need.opened_at)
            await _emit(conn, need, need.need_id, f"needs/{need.need_id}")
    return fight, needs


async def _own_fight(conn: Conn, caller: Caller, fight_id: str) -> asyncpg.Record:
    row = await storage.get_fight(conn, caller.federation_id, fight_id)
    if row is None or not caller.can_act_for(row["federation_id"], row["organisation_id"]):
        raise _not_found("fight", fight_id)
    return row


async def add_need(pool: asyncpg.Pool, caller: Caller, fight_id: str, draft: NeedDraft, now: datetime) -> NeedOpenedV1:
    async with pool.acquire() as conn, conn.transaction():
        row = await _own_fight(conn, caller, fight_id)
        if row["status"] != "open":
            raise Problem(409, "Fight closed", f"Fight {fight_id} is closed; open a new one.")
        fight = FightOpenedV1(
            federation_id=row["federation_id"],
            organisation_id=row["organisation_id"],
            fight_id=fight_id,
            kind=row["kind"],
            title=row["title"],
            causes=row["causes"],
            opened_at=row["opened_at"],
        )
        try:
            need = open_need(draft, fight, now=now)
        except FightRefused as exc:
            raise _refused("Need refused", exc) from exc
        await _check_skills(conn, caller.federation_id, [s.skill for s in need.required_skills], "required_skills")
        await storage.save_need(conn, as_state(need), now)
        await _emit(conn, need, need.need_id, f"needs/{need.need_id}")
    return need


async def _own_need(conn: Conn, caller: Caller, need_id: str) -> tuple[asyncpg.Record, NeedUpdatedV1]:
    row = await storage.get_need(conn, caller.federation_id, need_id, for_update=True)
    if row is None or not caller.can_act_for(row["federation_id"], row["organisation_id"]):
        raise _not_found("need", need_id)
    return row, NeedUpdatedV1.model_validate_json(row["state"])


async def change_need(
    pool: asyncpg.Pool, caller: Caller, need_id: str, changes: NeedChanges, now: datetime
) -> NeedUpdatedV1:
    async with pool.acquire() as conn, conn.transaction():
        row, current = await _own_need(conn, caller, need_id)
        if changes.required_skills:
            await _check_skills(
                conn, caller.federation_id, [s.skill for s in changes.required_skills], "required_skills"
            )
        wanted = changes.donors_wanted or current.donors_wanted
        try:
            need = updated_need(current, changes, status=status_for(len(row["assigned_donors"]), wanted), now=now)
        except FightRefused as exc:
            raise _refused("Change refused", exc, 409 if exc.field == "status" else 422) from exc
        await storage.save_need(conn, need, row["opened_at"])
        await _emit(conn, need, need_id, f"needs/{need_id}")
    return need


async def close_need(pool: asyncpg.Pool, caller: Caller, need_id: str, now: datetime) -> NeedClosedV1:
    async with pool.acquire() as conn, conn.transaction():
        row, current = await _own_need(conn, caller, need_id)
        return await _close_need(conn, row["opened_at"], current, NeedStatus.closed, now)


async def _close_need(
    conn: Conn, opened_at: datetime, current: NeedUpdatedV1, status: NeedStatus, now: datetime
) -> NeedClosedV1:
    if not is_live(current.status):
        raise Problem(409, "Already closed", f"Need {current.need_id} is {current.status.value}.")
    state = current.model_copy(update={"status": status, "version": current.version + 1, "updated_at": now})
    await storage.save_need(conn, state, opened_at)
    event = NeedClosedV1(
        federation_id=current.federation_id,
        organisation_id=current.organisation_id,
        need_id=current.need_id,
        fight_id=current.fight_id,
        status=status,
        closed_at=now,
    )
    await _emit(conn, event, current.need_id, f"needs/{current.need_id}")
    return event


async def close_fight(pool: asyncpg.Pool, caller: Caller, fight_id: str, outcome: str, now: datetime) -> FightClosedV1:
    async with pool.acquire() as conn, conn.transaction():
        row = await _own_fight(conn, caller, fight_id)
        if row["status"] != "open":
            raise Problem(409, "Already closed", f"Fight {fight_id} is closed.")
        for need in await storage.live_needs_of_fight(conn, fight_id):
            await _close_need(
                conn, need["opened_at"], NeedUpdatedV1.model_validate_json(need["state"]), NeedStatus.cancelled, now
            )
        await storage.close_fight(conn, fight_id, now)
        event = FightClosedV1(
            federation_id=row["federation_id"],
            organisation_id=row["organisation_id"],
            fight_id=fight_id,
            outcome=outcome,
            closed_at=now,
        )
        await _emit(conn, event, fight_id, f"fights/{fight_id}")
    return event


async def apply_assignment(
    pool: asyncpg.Pool, event: CloudEvent, data: AssignmentConfirmedV1 | AssignmentReleasedV1, now: datetime
) -> bool:
    """Matching's assignments drive the need's lifecycle: partly filled, filled, open again."""
    async with pool.acquire() as conn, conn.transaction():
        if not await first_delivery(conn, CONSUMER, event.id, event.type):
            return False
        row = await storage.get_need(conn, data.federation_id, data.need_id, for_update=True)
        if row is None:
            return True  # a need we never opened: nothing to move
        current = NeedUpdatedV1.model_validate_json(row["state"])
        donors = list(row["assigned_donors"])
        if isinstance(data, AssignmentConfirmedV1) and data.donor_id not in donors:
            donors.append(data.donor_id)
        elif isinstance(data, AssignmentReleasedV1) and data.donor_id in donors:
            donors.remove(data.donor_id)
        else:
            return True
        await storage.set_assigned(conn, data.need_id, donors)
        if not is_live(current.status):
            return True
        status = status_for(len(donors), current.donors_wanted)
        if status != current.status:
            need = current.model_copy(update={"status": status, "version": current.version + 1, "updated_at": now})
            await storage.save_need(conn, need, row["opened_at"])
            await _emit(conn, need, need.need_id, f"needs/{need.need_id}")
            if status == NeedStatus.filled:
                filled = NeedFilledV1(
                    federation_id=need.federation_id,
                    organisation_id=need.organisation_id,
                    need_id=need.need_id,
                    fight_id=need.fight_id,
                    donor_ids=donors,
                    filled_at=now,
                )
                await _emit(conn, filled, need.need_id, f"needs/{need.need_id}")
        return True


# Events and bookings -------------------------------------------------------------------------


async def learn_event(pool: asyncpg.Pool, event: CloudEvent, data: EventData) -> bool:
    """Keep what bookings need of scheduling's events: times, capacity, registration, status."""
    async with pool.acquire() as conn, conn.transaction():
        if not await first_delivery(conn, CONSUMER, event.id, event.type):
            return False
        # Created and the snapshots (published, updated) carry the whole registration.
        if isinstance(data, EventCreatedV1 | EventSnapshot):
            await storage.apply_event_facts(
                conn,
                event_id=data.event_id,
                federation_id=data.federation_id,
                organisation_id=data.organisation_id,
                version=data.version,
                title=data.title,
                starts_at=data.starts_at,
                status=data.status.value,
                details={
                    "capacity": data.capacity,
                    "booking_deadline": data.booking_deadline,
                    "waitlist": data.waitlist,
                },
            )
        elif isinstance(data, EventFacts) and not isinstance(data, ReminderDueV1):
            status = EVENT_STATUS_AFTER.get(type(data))
            await storage.apply_event_facts(
                conn,
                event_id=data.event_id,
                federation_id=data.federation_id,
                organisation_id=data.organisation_id,
                version=data.version,
                title=data.title,
                starts_at=data.starts_at,
                status=status,
                details=None,
            )
        return True


async def book(
    pool: asyncpg.Pool, caller: Caller, event_id: str, request: booking_rules.BookingRequest, now: datetime
) -> BookingConfirmedV1 | BookingWaitlistedV1:
    async with pool.acquire() as conn, conn.transaction():
        event = await storage.get_known_event(conn, event_id)
        if event is None or event["federation_id"] != caller.federation_id:
            raise _not_found("event", event_id)
        try:
            booking_rules.check_can_book(
                booking_rules.EventForBooking(
                    event_id, event["starts_at"], event["booking_deadline"], event["status"], event["waitlist"]
                ),
                now,
            )
        except booking_rules.BookingRefused as exc:
            raise _refused("Booking refused", exc, exc.status) from exc
        booking_id = f"bkg_{uuid.uuid4().hex[:20]}"
        facts = {
            "federation_id": event["federation_id"],
            "organisation_id": event["organisation_id"],
            "booking_id": booking_id,
            "event_id": event_id,
            "donor_id": request.donor_id,
            "name": request.name,
            "email": request.email.lower(),
            "language": request.language,
        }
        if await storage.take_place(conn, event_id):
            status, seq = "confirmed", None
        elif event["waitlist"]:
            status, seq = "waitlisted", await storage.next_waitlist_seq(conn, event_id)
        else:
            raise Problem(
                409,
                "Event full",
                "Every place is taken and this event keeps no waitlist.",
                errors=[{"field": "event_id", "message": "full"}],
            )
        async with conn.transaction():  # a savepoint: a duplicate must not keep the place it took
            inserted = await storage.insert_booking(
                conn,
                booking_id=booking_id,
                event=event,
                donor_id=request.donor_id,
                name=request.name,
                email=facts["email"],
                language=request.language,
                status=status,
                waitlist_seq=seq,
                now=now,
            )
        if not inserted:
            raise Problem(
                409,
                "Already booked",
                "This person already has a place or a waitlist spot.",
                errors=[{"field": "email", "message": "already booked"}],
            )
        result: BookingConfirmedV1 | BookingWaitlistedV1
        if status == "confirmed":
            result = BookingConfirmedV1(**facts, confirmed_at=now)
        else:
            assert seq is not None
            result = BookingWaitlistedV1(
                **facts, position=await storage.waitlist_position(conn, event_id, seq), waitlisted_at=now
            )
        await _emit(conn, result, event_id, f"bookings/{booking_id}")
    return result


def _facts(row: asyncpg.Record) -> dict[str, Any]:
    return {
        k: row[k]
        for k in ("federation_id", "organisation_id", "booking_id", "event_id", "donor_id", "name", "email", "language")
    }


async def cancel(pool: asyncpg.Pool, caller: Caller, booking_id: str, now: datetime) -> list[EventData]:
    """Cancel a booking; a confirmed place goes to the first on the waitlist, in the same transaction."""
    async with pool.acquire() as conn, conn.transaction():
        row = await storage.get_booking(conn, booking_id)
        if row is None or row["federation_id"] != caller.federation_id:
            raise _not_found("booking", booking_id)
        # Lock the event before the booking, in the order book() takes them: no deadlock.
        await conn.execute("SELECT 1 FROM known_events WHERE event_id = $1 FOR UPDATE", row["event_id"])
        row = await storage.get_booking(conn, booking_id, for_update=True)
        assert row is not None
        if row["status"] == "cancelled":
            raise Problem(409, "Already cancelled", f"Booking {booking_id} was cancelled.")
        await storage.cancel_booking(conn, booking_id, now)
        events: list[EventData] = [
            BookingCancelledV1(
                **_facts(row), cancelled_at=now, by_organiser=caller.organisation_id == row["organisation_id"]
            )
        ]
        if row["status"] == "confirmed":
            nxt = await storage.first_waitlisted(conn, row["event_id"])
            if nxt is None:
                await storage.release_place(conn, row["event_id"])
            else:
                await storage.promote(conn, nxt["booking_id"], now)
                events.append(BookingPromotedV1(**_facts(nxt), promoted_at=now))
        for event in events:
            await _emit(conn, event, row["event_id"], f"bookings/{getattr(event, 'booking_id', booking_id)}")
    return events


async def check_in(pool: asyncpg.Pool, caller: Caller, booking_id: str, now: datetime) -> asyncpg.Record:
    row = await storage.get_booking(pool, booking_id)
    if row is None or not caller.can_act_for(row["federation_id"], row["organisation_id"]):
        raise _not_found("booking", booking_id)
    checked = await storage.check_in(pool, booking_id, now)
    if checked is None:
        raise Problem(409, "Not confirmed", f"Booking {booking_id} is {row['status']}; only confirmed places check in.")
    return checked


# Publishing systems (docs/ingest.md) ----------------------------------------------------------

PUBLISHER_WINDOW = timedelta(hours=24)


async def publishers(pool: asyncpg.Pool, federation_id: str, now: datetime) -> list[PublisherSummary]:
    return await publisher_summaries(pool, federation_id, now - PUBLISHER_WINDOW)


@dataclass(frozen=True)
class PublisherScope:
    source: str
    label: str
    organisations: list[str]
    any_organisation: bool
    rate_per_second: float
    burst: int


async def register_publisher(
    pool: asyncpg.Pool, federation_id: str, scope: PublisherScope, now: datetime
) -> tuple[PublisherSummary, Credentials]:
    """Register a publishing system for the federation, or rotate its credentials and replace its scope.

    Scheduling learns the registration (scope only) from `publisher.registered` on
    pitchin.publishers.v1; only signups holds the key hash and the signing secret.
    """
    async with pool.acquire() as conn, conn.transaction():
        try:
            credentials = await register_source(
                conn,
                source=scope.source,
                federation_id=federation_id,
                organisations=scope.organisations,
                any_organisation=scope.any_organisation,
                rate_per_second=scope.rate_per_second,
                burst=scope.burst,
                label=scope.label,
                own_federation_only=True,
            )
        except SourceTaken as exc:
            raise Problem(
                409,
                "Source taken",
                f"source: {scope.source} is registered to another federation; choose another source",
                kind="/problems/conflict",
                errors=[{"field": "source", "message": "registered to another federation"}],
            ) from exc
        fact = PublisherRegisteredV1(
            federation_id=federation_id,
            source=scope.source,
            label=scope.label,
            organisations=scope.organisations,
            any_organisation=scope.any_organisation,
            rate_per_second=scope.rate_per_second,
            burst=scope.burst,
            registered_at=now,
        )
        await _emit(conn, fact, scope.source, scope.source)
        [summary] = await publisher_summaries(conn, federation_id, now - PUBLISHER_WINDOW, scope.source)
    return summary, credentials


async def revoke_publisher(pool: asyncpg.Pool, federation_id: str, source: str, now: datetime) -> PublisherSummary:
    """Revoke a federation's publisher (again: unchanged); scheduling learns it from `publisher.revoked`."""
    async with pool.acquire() as conn, conn.transaction():
        if not await revoke_source(conn, source=source, federation_id=federation_id, now=now):
            raise Problem(
                404,
                "Not found",
                f"source: no publisher {source} in this federation",
                errors=[{"field": "source", "message": "not a publisher of this federation"}],
            )
        [summary] = await publisher_summaries(conn, federation_id, now - PUBLISHER_WINDOW, source)
        assert summary.revoked_at is not None
        fact = PublisherRevokedV1(federation_id=federation_id, source=source, revoked_at=summary.revoked_at)
        await _emit(conn, fact, source, source)
    return summary
