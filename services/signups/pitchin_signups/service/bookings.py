"""Places at events: what signups knows of scheduling's events, booking, cancelling, checking in."""

from __future__ import annotations

from datetime import datetime
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
from pitchin_core.contracts.scheduling import EventCreatedV1, EventFacts, EventSnapshot
from pitchin_core.errors import Conflict, FieldError, NotFound
from pitchin_core.uow import Tenant, Transactions
from pitchin_signups import storage
from pitchin_signups.domain.bookings import BookingRequest, EventForBooking, check_can_book, status_after
from pitchin_signups.service import new_id

# Events ---------------------------------------------------------------------------------------


async def learn_event(uow: Transactions, event: CloudEvent, data: EventCreatedV1 | EventSnapshot) -> bool:
    """Keep what bookings need of scheduling's event: times, capacity, registration, status.

    Created and the snapshots (published, updated) carry the whole registration.
    """
    details: dict[str, object] = {
        "capacity": data.capacity,
        "booking_deadline": data.booking_deadline,
        "waitlist": data.waitlist,
    }
    return await _learn(uow, event, data, data.status.value, details)


async def learn_event_fact(uow: Transactions, event: CloudEvent, data: EventFacts) -> bool:
    """Keep an event's times and title from any other fact about it, and its status when the fact moves it."""
    return await _learn(uow, event, data, status_after(data), None)


async def _learn(
    uow: Transactions,
    event: CloudEvent,
    data: EventCreatedV1 | EventFacts,
    status: str | None,
    details: dict[str, object] | None,
) -> bool:
    async with uow(Tenant(data.federation_id, data.organisation_id)) as tx:
        if not await tx.first_delivery(event):
            return False
        await storage.apply_event_facts(tx.conn, data, status=status, details=details)
        return True


async def of_event(uow: Transactions, caller: Caller, event_id: str, status: str | None) -> dict[str, Any]:
    """An event's bookings, for its organisation (or federation staff)."""
    async with uow(caller.tenant, readonly=True) as tx:
        event = await storage.get_known_event(tx.conn, event_id)
        if event is None or not caller.can_act_for(event["federation_id"], event["organisation_id"]):
            raise NotFound("event", event_id)
        rows = await storage.list_bookings(tx.conn, event_id, status)
    return {
        "event_id": event_id,
        "capacity": event["capacity"],
        "confirmed": event["confirmed"],
        "items": [dict(r) for r in rows],
    }


# Bookings -------------------------------------------------------------------------------------


async def book(
    uow: Transactions, caller: Caller, event_id: str, request: BookingRequest, now: datetime
) -> BookingConfirmedV1 | BookingWaitlistedV1:
    """A place if one is free, else a waitlist position; capacity is enforced in PostgreSQL."""
    async with uow(caller.tenant) as tx:
        event = await storage.get_known_event(tx.conn, event_id)
        if event is None or event["federation_id"] != caller.federation_id:
            raise NotFound("event", event_id)
        check_can_book(
            EventForBooking(
                event_id, event["starts_at"], event["booking_deadline"], event["status"], event["waitlist"]
            ),
            now,
        )
        booking_id = new_id("bkg")
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
        if await storage.take_place(tx.conn, event_id):
            status, seq = "confirmed", None
        elif event["waitlist"]:
            status, seq = "waitlisted", await storage.next_waitlist_seq(tx.conn, event_id)
        else:
            raise Conflict(
                "Every place is taken and this event keeps no waitlist.",
                title="Event full",
                errors=[FieldError("event_id", "full")],
            )
        inserted = await storage.insert_booking(
            tx.conn,
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
            # Raised inside the transaction: the place (or waitlist number) taken above goes back with it.
            raise Conflict(
                "This person already has a place or a waitlist spot.",
                title="Already booked",
                errors=[FieldError("email", "already booked")],
            )
        result: BookingConfirmedV1 | BookingWaitlistedV1
        if status == "confirmed":
            result = BookingConfirmedV1(**facts, confirmed_at=now)
        else:
            assert seq is not None
            position = await storage.waitlist_position(tx.conn, event_id, seq)
            result = BookingWaitlistedV1(**facts, position=position, waitlisted_at=now)
        await tx.emit(result, key=event_id, subject=f"bookings/{booking_id}")
    return result


async def get(uow: Transactions, caller: Caller, booking_id: str) -> dict[str, Any]:
    """A booking of the caller's federation, with its waitlist position while it waits."""
    async with uow(caller.tenant, readonly=True) as tx:
        row = await storage.get_booking(tx.conn, booking_id)
        if row is None or row["federation_id"] != caller.federation_id:
            raise NotFound("booking", booking_id)
        body = dict(row)
        if row["status"] == "waitlisted":
            body["position"] = await storage.waitlist_position(tx.conn, row["event_id"], row["waitlist_seq"])
    return body


def _facts(row: asyncpg.Record) -> dict[str, Any]:
    return {
        k: row[k]
        for k in ("federation_id", "organisation_id", "booking_id", "event_id", "donor_id", "name", "email", "language")
    }


async def cancel(uow: Transactions, caller: Caller, booking_id: str, now: datetime) -> list[EventData]:
    """Cancel a booking; a confirmed place goes to the first on the waitlist, in the same transaction."""
    async with uow(caller.tenant) as tx:
        row = await storage.get_booking(tx.conn, booking_id)
        if row is None or row["federation_id"] != caller.federation_id:
            raise NotFound("booking", booking_id)
        # Lock the event before the booking, in the order book() takes them: no deadlock.
        await storage.lock_known_event(tx.conn, row["event_id"])
        row = await storage.get_booking(tx.conn, booking_id, for_update=True)
        assert row is not None
        if row["status"] == "cancelled":
            raise Conflict(f"Booking {booking_id} was cancelled.", title="Already cancelled")
        await storage.cancel_booking(tx.conn, booking_id, now)
        events: list[EventData] = [
            BookingCancelledV1(
                **_facts(row), cancelled_at=now, by_organiser=caller.organisation_id == row["organisation_id"]
            )
        ]
        if row["status"] == "confirmed":
            nxt = await storage.first_waitlisted(tx.conn, row["event_id"])
            if nxt is None:
                await storage.release_place(tx.conn, row["event_id"])
            else:
                await storage.promote(tx.conn, nxt["booking_id"], now)
                events.append(BookingPromotedV1(**_facts(nxt), promoted_at=now))
        for event in events:
            subject = f"bookings/{getattr(event, 'booking_id', booking_id)}"
            await tx.emit(event, key=row["event_id"], subject=subject)
    return events


async def check_in(uow: Transactions, caller: Caller, booking_id: str, now: datetime) -> dict[str, Any]:
    async with uow(caller.tenant) as tx:
        row = await storage.get_booking(tx.conn, booking_id)
        if row is None or not caller.can_act_for(row["federation_id"], row["organisation_id"]):
            raise NotFound("booking", booking_id)
        checked = await storage.check_in(tx.conn, booking_id, now)
        if checked is None:
            raise Conflict(
                f"Booking {booking_id} is {row['status']}; only confirmed places check in.", title="Not confirmed"
            )
    return dict(checked)
