"""Scheduling's use cases: one function per command, one transaction each.

Each command locks the event row, asks the domain for the event as it becomes and the facts
to publish, and writes the event, its agenda, its pending reminders and the outbox rows in
one transaction: a reschedule and the reminders it moves commit together or not at all.

Every use case takes the unit of work first (`Transactions`): the service's `UnitOfWork`,
or, when ingest applies a publisher's event, the pipeline's open transaction, in which the
use case runs as a savepoint. Refusals are the domain's errors (`EventRefused`,
`TransitionRefused`, `BookedTwice`, `NotFound`); the HTTP layer and ingest answer them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any

from pitchin_core.auth import WEB_FRONT, Caller
from pitchin_core.contracts.bookings import (
    BookingCancelledV1,
    BookingConfirmedV1,
    BookingFacts,
    BookingOfferAcceptedV1,
    BookingOfferDeclinedV1,
    BookingOfferExpiredV1,
    BookingPromotedV1,
    BookingWaitlistedV1,
)
from pitchin_core.contracts.cloudevents import CloudEvent
from pitchin_core.contracts.common import EventData
from pitchin_core.contracts.scheduling import SessionChangedV1, SessionRemovedV1, SessionScheduledV1
from pitchin_core.db import Conn
from pitchin_core.errors import NotFound
from pitchin_core.telemetry import current_traceparent
from pitchin_core.uow import Tenant, Transaction, Transactions
from pitchin_scheduling import storage
from pitchin_scheduling.domain import events as rules
from pitchin_scheduling.domain.agenda import (
    BookedTwice,
    Session,
    SessionDraft,
    find_clashes,
    move_with_event,
    plan_session,
)
from pitchin_scheduling.domain.events import Event, EventDraft, check_allowed
from pitchin_scheduling.domain.reminders import plan_reminders
from pitchin_scheduling.domain.series import SeriesDraft, occurrences
from pitchin_scheduling.storage import new_feed_token

Command = Callable[[Event], tuple[Event, list[EventData]]]


def new_id(prefix: str) -> str:
    """A new id in scheduling's shape: the prefix, `_`, then 20 hex digits (`evt_…`, `ser_…`, `ses_…`, `rem_…`)."""
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


async def _publish(tx: Transaction, facts: list[EventData], event_id: str) -> None:
    for fact in facts:
        await tx.emit(fact, key=event_id, subject=f"events/{event_id}")


async def _replan_reminders(conn: Conn, event: Event, now: datetime) -> None:
    """Pending reminders are replaced, never edited: what fired stays as history."""
    await storage.delete_pending_reminders(conn, event.event_id)
    traceparent, tracestate = current_traceparent()
    planned = plan_reminders(event, now, partial(new_id, "rem"))
    await storage.insert_reminders(conn, event, planned, traceparent, tracestate)


def _timing_changed(before: Event, after: Event) -> bool:
    return (
        before.starts_at != after.starts_at
        or before.reminder_offsets != after.reminder_offsets
        or rules.reminders_pending(before) != rules.reminders_pending(after)
    )


# -- events -------------------------------------------------------------------------------


async def create_event(
    uow: Transactions, caller: Caller, draft: EventDraft, now: datetime, *, event_id: str | None = None
) -> Event:
    """A new event; `event_id` is given only when its id is derived elsewhere (a publisher's external id)."""
    event, facts = rules.create_event(
        draft,
        federation_id=caller.federation_id,
        organisation_id=caller.organisation_id,
        now=now,
        event_id=event_id or new_id("evt"),
    )
    async with uow(caller.tenant) as tx:
        await storage.insert_event(tx.conn, event)
        await _replan_reminders(tx.conn, event, now)
        await _publish(tx, facts, event.event_id)
    return event


async def create_series(
    uow: Transactions, caller: Caller, draft: SeriesDraft, now: datetime
) -> tuple[str, list[Event]]:
    series_id = new_id("ser")
    created = [
        rules.create_event(
            draft.event,
            federation_id=caller.federation_id,
            organisation_id=caller.organisation_id,
            now=now,
            event_id=new_id("evt"),
            starts_at=starts,
            ends_at=ends,
            series_id=series_id,
        )
        for starts, ends in occurrences(draft, now)
    ]
    async with uow(caller.tenant) as tx:
        first = created[0][0]
        await storage.insert_series(
            tx.conn, series_id, first.federation_id, first.organisation_id, draft.rrule, first.time_zone
        )
        for event, facts in created:
            await storage.insert_event(tx.conn, event)
            await _replan_reminders(tx.conn, event, now)
            await _publish(tx, facts, event.event_id)
    return series_id, [event for event, _ in created]


async def _locked(conn: Conn, caller: Caller, event_id: str) -> Event:
    event = await storage.lock_event(conn, caller.federation_id, event_id)
    if event is None or not caller.can_act_for(event.federation_id, event.organisation_id):
        raise NotFound("event", event_id)
    return event


async def _visible(conn: Conn, caller: Caller, event_id: str) -> Event:
    event = await storage.get_event(conn, caller.federation_id, event_id)
    if event is None or not caller.can_act_for(event.federation_id, event.organisation_id):
        raise NotFound("event", event_id)
    if caller.role == WEB_FRONT and event.status == "draft":
        raise NotFound("event", event_id)  # the public web front sees published events only
    return event


async def change_event(uow: Transactions, caller: Caller, event_id: str, command: Command, now: datetime) -> Event:
    """Apply a lifecycle step or an edit; reminders and the agenda follow a change of time."""
    async with uow(caller.tenant) as tx:
        before = await _locked(tx.conn, caller, event_id)
        after, facts = command(before)
        if not facts and after == before:
            return before
        if before.starts_at != after.starts_at or before.time_zone != after.time_zone:
            facts = [*facts, *await _move_agenda(tx.conn, before, after, now)]
        await storage.save_event(tx.conn, after, before.version)
        if _timing_changed(before, after):
            await _replan_reminders(tx.conn, after, now)
        await _publish(tx, facts, event_id)
    return after


async def get_event(uow: Transactions, caller: Caller, event_id: str) -> tuple[Event, dict[str, int]]:
    """An event of the caller's, with its bookings by status (as learned from signups)."""
    async with uow(caller.tenant, readonly=True) as tx:
        event = await _visible(tx.conn, caller, event_id)
        return event, await storage.attendee_counts(tx.conn, event_id)


async def series_events(uow: Transactions, caller: Caller, series_id: str) -> list[Event]:
    async with uow(caller.tenant, readonly=True) as tx:
        events = await storage.events_of_series(tx.conn, caller.federation_id, series_id)
    visible = [e for e in events if caller.can_act_for(e.federation_id, e.organisation_id)]
    if not visible:
        raise NotFound("series", series_id)
    return visible


async def find_events(uow: Transactions, query: storage.EventQuery, tenant: Tenant | None = None) -> list[Event]:
    """Events by `query`: the caller's own (pass their tenant), or the public listings (no tenant)."""
    async with uow(tenant, readonly=True) as tx:
        return await storage.list_events(tx.conn, query)


async def public_event(uow: Transactions, event_id: str) -> tuple[Event, list[Session]]:
    """An event anyone may add to a calendar (anything once published), with its agenda."""
    async with uow(readonly=True) as tx:
        event = await storage.get_public_event(tx.conn, event_id)
        if event is None:
            raise NotFound("event", event_id, detail=f"No published event {event_id}.")
        return event, await storage.sessions_of_event(tx.conn, event_id)


# -- agenda ---------------------------------------------------------------------------------


async def _move_agenda(conn: Conn, before: Event, after: Event, now: datetime) -> list[EventData]:
    sessions = await storage.sessions_of_event(conn, before.event_id)
    if not sessions:
        return []
    await storage.lock_agenda(conn, after.federation_id, after.organisation_id)
    moved = move_with_event(sessions, before, after)
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
        raise BookedTwice(clashes, after.time_zone)
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


def _no_session(event_id: str, session_id: str) -> NotFound:
    return NotFound("session", session_id, detail=f"No session {session_id} in event {event_id}.")


async def put_session(
    uow: Transactions,
    caller: Caller,
    event_id: str,
    draft: SessionDraft,
    now: datetime,
    session_id: str | None = None,
) -> Session:
    """Add a session, or replace one; refused when a person or room would be in two places."""
    async with uow(caller.tenant) as tx:
        event = await _locked(tx.conn, caller, event_id)
        check_allowed(event, "change agenda")
        session = plan_session(draft, event, session_id or new_id("ses"))
        if session_id is not None and await storage.get_session(tx.conn, event_id, session_id) is None:
            raise _no_session(event_id, session_id)
        await storage.lock_agenda(tx.conn, event.federation_id, event.organisation_id)
        others = await storage.sessions_overlapping(
            tx.conn, event.federation_id, event.organisation_id, session.starts_at, session.ends_at
        )
        clashes = find_clashes(session, others)
        if clashes:
            raise BookedTwice(clashes, event.time_zone)
        await storage.upsert_session(tx.conn, event, session)
        fact: EventData
        if session_id is None:
            fact = SessionScheduledV1(**_session_facts(event, session), scheduled_at=now)
        else:
            fact = SessionChangedV1(**_session_facts(event, session), changed_at=now)
        await _publish(tx, [fact], event_id)
    return session


async def remove_session(uow: Transactions, caller: Caller, event_id: str, session_id: str, now: datetime) -> None:
    async with uow(caller.tenant) as tx:
        event = await _locked(tx.conn, caller, event_id)
        if not await storage.delete_session(tx.conn, event_id, session_id):
            raise _no_session(event_id, session_id)
        removed = SessionRemovedV1(
            federation_id=event.federation_id,
            organisation_id=event.organisation_id,
            event_id=event_id,
            session_id=session_id,
            removed_at=now,
        )
        await _publish(tx, [removed], event_id)


async def sessions_of_event(uow: Transactions, caller: Caller, event_id: str) -> list[Session]:
    async with uow(caller.tenant, readonly=True) as tx:
        await _visible(tx.conn, caller, event_id)
        return await storage.sessions_of_event(tx.conn, event_id)


# -- reminders ------------------------------------------------------------------------------


async def reminders_of_event(uow: Transactions, caller: Caller, event_id: str) -> list[dict[str, Any]]:
    """The event's reminders, pending and fired, with their times on the event's clock."""
    async with uow(caller.tenant, readonly=True) as tx:
        event = await _visible(tx.conn, caller, event_id)
        rows = await storage.reminders_of_event(tx.conn, event_id)
    return [
        {
            **dict(r),
            "due_at": rules.in_zone(r["due_at"], event.time_zone),
            "fired_at": r["fired_at"] and rules.in_zone(r["fired_at"], event.time_zone),
        }
        for r in rows
    ]


# -- bookings read model --------------------------------------------------------------------

# Each booking fact scheduling records: the attendee's status after it, and the field saying when.
BOOKING_STATUS: dict[type[BookingFacts], tuple[str, str]] = {
    BookingConfirmedV1: ("confirmed", "confirmed_at"),
    BookingPromotedV1: ("confirmed", "promoted_at"),
    BookingWaitlistedV1: ("waitlisted", "waitlisted_at"),
    BookingCancelledV1: ("cancelled", "cancelled_at"),
    # Waitlist offers (issue 22): taking the place confirms; giving it up or letting it lapse cancels.
    BookingOfferAcceptedV1: ("confirmed", "accepted_at"),
    BookingOfferDeclinedV1: ("cancelled", "declined_at"),
    BookingOfferExpiredV1: ("cancelled", "expired_at"),
}


async def record_booking(uow: Transactions, event: CloudEvent, data: BookingFacts) -> bool:
    """Keep who booked what; False for a redelivery (the inbox already has it)."""
    status, at_field = BOOKING_STATUS[type(data)]
    async with uow(Tenant(data.federation_id)) as tx:
        if not await tx.first_delivery(event):
            return False
        await storage.record_attendee(tx.conn, data, status, getattr(data, at_field))
        return True


async def attendees_of_event(uow: Transactions, caller: Caller, event_id: str) -> list[dict[str, Any]]:
    async with uow(caller.tenant, readonly=True) as tx:
        await _visible(tx.conn, caller, event_id)
        return [dict(r) for r in await storage.attendees_of_event(tx.conn, event_id)]


async def booking_feed_token(uow: Transactions, caller: Caller, booking_id: str) -> str:
    """The private feed token of the person who made `booking_id` (the route checked their link)."""
    async with uow(caller.tenant, readonly=True) as tx:
        token = await storage.feed_token_of_booking(tx.conn, caller.federation_id, booking_id)
    if token is None:
        raise NotFound("calendar feed for booking", booking_id, detail="No calendar feed for this booking yet.")
    return token


async def rotate_booking_feed(uow: Transactions, caller: Caller, booking_id: str) -> str:
    """A new feed token for the person who made `booking_id`: the old feed is gone (404) at once."""
    async with uow(caller.tenant) as tx:
        token = await storage.rotate_feed_of_booking(tx.conn, caller.federation_id, booking_id, new_feed_token())
    if token is None:
        raise NotFound("calendar feed for booking", booking_id, detail="No calendar feed for this booking yet.")
    return token


async def rotate_person_feed(uow: Transactions, caller: Caller, email: str) -> None:
    """Federation staff end a person's feed (shared by mistake): a new token, handed to nobody here;
    the person finds the new one through the link in their booking mail."""
    async with uow(caller.tenant) as tx:
        done = await storage.rotate_feed(tx.conn, caller.federation_id, email, new_feed_token())
    if not done:
        raise NotFound("calendar feed for", email, detail="No calendar feed for this person here.")


async def events_booked_by_token(uow: Transactions, token: str) -> list[Event]:
    """The events a person holds a place at, found by their feed's token (calendar apps send no key)."""
    async with uow(readonly=True) as tx:
        events = await storage.events_booked_by_token(tx.conn, token)
    if events is None:
        raise NotFound("calendar feed", token, detail="No such calendar feed.")
    return events
