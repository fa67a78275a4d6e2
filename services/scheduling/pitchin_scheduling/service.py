"""Scheduling's use cases: one function per command, one transaction each.

Each command locks the event row, asks the domain for the event as it becomes and the facts
to publish, and writes the event, its agenda, its pending reminders and the outbox rows in
one transaction: a reschedule and the reminders it moves commit together or not at all.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

import asyncpg

from pitchin_core.auth import Caller
from pitchin_core.contracts.bookings import (
    BookingCancelledV1,
    BookingConfirmedV1,
    BookingFacts,
    BookingPromotedV1,
    BookingWaitlistedV1,
)
from pitchin_core.contracts.cloudevents import CloudEvent
from pitchin_core.contracts.common import EventData
from pitchin_core.contracts.scheduling import SessionChangedV1, SessionRemovedV1, SessionScheduledV1
from pitchin_core.db import Conn
from pitchin_core.http import Problem
from pitchin_core.inbox import first_delivery
from pitchin_core.outbox import add_to_outbox
from pitchin_core.telemetry import current_traceparent
from pitchin_scheduling import storage
from pitchin_scheduling.domain import events as rules
from pitchin_scheduling.domain.agenda import Clash, Session, SessionDraft, find_clashes, move_with_event, plan_session
from pitchin_scheduling.domain.events import Event, EventDraft, EventRefused, TransitionRefused, check_allowed
from pitchin_scheduling.domain.reminders import plan_reminders
from pitchin_scheduling.domain.series import SeriesDraft, occurrences

SOURCE = "/pitchin/scheduling"
CONSUMER = "scheduling"

Command = Callable[[Event], tuple[Event, list[EventData]]]


def refused(exc: EventRefused) -> Problem:
    return Problem(
        422,
        "Event refused",
        f"{exc.field}: {exc}",
        kind="/problems/validation",
        errors=[{"field": exc.field, "message": str(exc)}],
    )


def not_possible(exc: TransitionRefused) -> Problem:
    return Problem(409, "Not possible now", str(exc), kind="/problems/lifecycle", state=exc.state)


def clashing(clashes: list[Clash], time_zone: str) -> Problem:
    described = [c.describe(time_zone) for c in clashes]
    return Problem(
        409,
        "Booked twice",
        "; ".join(described),
        kind="/problems/clash",
        clashes=[
            {"what": c.what, "name": c.name, "session_id": c.session.session_id, "event_id": c.session.event_id}
            for c in clashes
        ],
        errors=[
            {"field": "people" if c.what == "person" else "room", "message": d}
            for c, d in zip(clashes, described, strict=True)
        ],
    )


def not_found(event_id: str) -> Problem:
    return Problem(404, "Not found", f"No event {event_id} here.")


async def _publish(conn: Conn, facts: list[EventData], event_id: str) -> None:
    for fact in facts:
        await add_to_outbox(conn, fact, source=SOURCE, key=event_id, subject=f"events/{event_id}")


async def _replan_reminders(conn: Conn, event: Event, now: datetime) -> None:
    """Pending reminders are replaced, never edited: what fired stays as history."""
    await storage.delete_pending_reminders(conn, event.event_id)
    traceparent, tracestate = current_traceparent()
    await storage.insert_reminders(conn, event, plan_reminders(event, now), traceparent, tracestate)


def _timing_changed(before: Event, after: Event) -> bool:
    return (
        before.starts_at != after.starts_at
        or before.reminder_offsets != after.reminder_offsets
        or rules.reminders_pending(before) != rules.reminders_pending(after)
    )


async def create_event(pool: asyncpg.Pool, caller: Caller, draft: EventDraft, now: datetime) -> Event:
    try:
        event, facts = rules.create_event(
            draft, federation_id=caller.federation_id, organisation_id=caller.organisation_id, now=now
        )
    except EventRefused as exc:
        raise refused(exc) from exc
    async with pool.acquire() as conn, conn.transaction():
        await storage.insert_event(conn, event)
        await _replan_reminders(conn, event, now)
        await _publish(conn, facts, event.event_id)
    return event


async def create_series(
    pool: asyncpg.Pool, caller: Caller, draft: SeriesDraft, now: datetime
) -> tuple[str, list[Event]]:
    series_id = f"ser_{uuid.uuid4().hex[:20]}"
    try:
        times = occurrences(draft, now)
        created = [
            rules.create_event(
                draft.event,
                federation_id=caller.federation_id,
                organisation_id=caller.organisation_id,
                now=now,
                starts_at=starts,
                ends_at=ends,
                series_id=series_id,
            )
            for starts, ends in times
        ]
    except EventRefused as exc:
        raise refused(exc) from exc
    async with pool.acquire() as conn, conn.transaction():
        first = created[0][0]
        await storage.insert_series(
            conn, series_id, first.federation_id, first.organisation_id, draft.rrule, first.time_zone
        )
        for event, facts in created:
            await storage.insert_event(conn, event)
            await _replan_reminders(conn, event, now)
            await _publish(conn, facts, event.event_id)
    return series_id, [event for event, _ in created]


async def _locked(conn: Conn, caller: Caller, event_id: str) -> Event:
    event = await storage.lock_event(conn, caller.federation_id, event_id)
    if event is None or not caller.can_act_for(event.federation_id, event.organisation_id):
        raise not_found(event_id)
    return event


async def change_event(pool: asyncpg.Pool, caller: Caller, event_id: str, command: Command, now: datetime) -> Event:
    """Apply a lifecycle step or an edit; reminders and the agenda follow a change of time."""
    async with pool.acquire() as conn, conn.transaction():
        before = await _locked(conn, caller, event_id)
        try:
            after, facts = command(before)
        except EventRefused as exc:
            raise refused(exc) from exc
        except TransitionRefused as exc:
            raise not_possible(exc) from exc
        if not facts and after == before:
            return before
        if before.starts_at != after.starts_at or before.time_zone != after.time_zone:
            facts = [*facts, *await _move_agenda(conn, before, after, now)]
        await storage.save_event(conn, after)
        if _timing_changed(before, after):
            await _replan_reminders(conn, after, now)
        await _publish(conn, facts, event_id)
    return after


async def _move_agenda(conn: Conn, before: Event, after: Event, now: datetime) -> list[EventData]:
    sessions = await storage.sessions_of_event(conn, before.event_id)
    if not sessions:
        return []
    await storage.lock_agenda(conn, after.federation_id, after.organisation_id)
    try:
        moved = move_with_event(sessions, before, after)
    except EventRefused as exc:
        raise refused(exc) from exc
    own = {s.session_id for s in sessions}
    others = [
        s
        for s in await storage.sessions_overlapping(
            conn, after.federation_id, after.organisation_id, after.starts_at, after.ends_at
        )
        if s.session_id not in own
    ]
    clashes = [clash for session in moved for clash in find_clashes(session, others)]
    if clashes:
        raise clashing(clashes, after.time_zone)
    facts: list[EventData] = []
    for session in moved:
        await storage.upsert_session(conn, after, session)
        facts.append(SessionChangedV1(**_session_facts(after, session), changed_at=now))
    return facts


def _session_facts(event: Event, session: Session) -> dict[str, object]:
    return {
        "federation_id": event.federation_id,
        "organisation_id": event.organisation_id,
        "event_id": event.event_id,
        "session_id": session.session_id,
        "title": session.title,
        "starts_at": session.starts_at,
        "ends_at": session.ends_at,
        "time_zone": event.time_zone,
        "room": session.room,
        "track": session.track,
        "people": session.people,
    }


async def put_session(
    pool: asyncpg.Pool,
    caller: Caller,
    event_id: str,
    draft: SessionDraft,
    now: datetime,
    session_id: str | None = None,
) -> Session:
    """Add a session, or replace one; refused when a person or room would be in two places."""
    async with pool.acquire() as conn, conn.transaction():
        event = await _locked(conn, caller, event_id)
        try:
            check_allowed(event, "change agenda")
            session = plan_session(draft, event, session_id)
        except EventRefused as exc:
            raise refused(exc) from exc
        except TransitionRefused as exc:
            raise not_possible(exc) from exc
        if session_id is not None and await storage.get_session(conn, event_id, session_id) is None:
            raise Problem(404, "Not found", f"No session {session_id} in event {event_id}.")
        await storage.lock_agenda(conn, event.federation_id, event.organisation_id)
        others = await storage.sessions_overlapping(
            conn, event.federation_id, event.organisation_id, session.starts_at, session.ends_at
        )
        clashes = find_clashes(session, others)
        if clashes:
            raise clashing(clashes, event.time_zone)
        await storage.upsert_session(conn, event, session)
        fact: EventData
        if session_id is None:
            fact = SessionScheduledV1(**_session_facts(event, session), scheduled_at=now)
        else:
            fact = SessionChangedV1(**_session_facts(event, session), changed_at=now)
        await _publish(conn, [fact], event_id)
    return session


async def remove_session(pool: asyncpg.Pool, caller: Caller, event_id: str, session_id: str, now: datetime) -> None:
    async with pool.acquire() as conn, conn.transaction():
        event = await _locked(conn, caller, event_id)
        if not await storage.delete_session(conn, event_id, session_id):
            raise Problem(404, "Not found", f"No session {session_id} in event {event_id}.")
        removed = SessionRemovedV1(
            federation_id=event.federation_id,
            organisation_id=event.organisation_id,
            event_id=event_id,
            session_id=session_id,
            removed_at=now,
        )
        await _publish(conn, [removed], event_id)


_BOOKING_STATUS: dict[type[BookingFacts], tuple[str, str]] = {
    BookingConfirmedV1: ("confirmed", "confirmed_at"),
    BookingPromotedV1: ("confirmed", "promoted_at"),
    BookingWaitlistedV1: ("waitlisted", "waitlisted_at"),
    BookingCancelledV1: ("cancelled", "cancelled_at"),
}


async def record_booking(pool: asyncpg.Pool, event: CloudEvent, data: BookingFacts) -> bool:
    """Keep who booked what; False for a redelivery (the inbox already has it)."""
    status, at_field = _BOOKING_STATUS[type(data)]
    async with pool.acquire() as conn, conn.transaction():
        if not await first_delivery(conn, CONSUMER, event.id, event.type):
            return False
        await storage.record_attendee(conn, data, status, getattr(data, at_field))
        return True
