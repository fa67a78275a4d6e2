"""After the event: the organiser marks who came, the door's check-in counts, the people who came say how it was.

Each mark is one transaction with its fact on pitchin.bookings.v1 (keyed by event id, like every
booking fact): `booking.attended` (notifications thanks the person the first time) or
`booking.no-show`. Rules are in `domain.attendance`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from pitchin_core.auth import Caller
from pitchin_core.contracts.bookings import BookingAttendedV1, BookingNoShowV1
from pitchin_core.errors import NotFound
from pitchin_core.uow import Transaction, Transactions
from pitchin_signups import storage
from pitchin_signups.domain.attendance import (
    Change,
    Feedback,
    Outcome,
    Place,
    check_can_give_feedback,
    check_can_mark,
    checked_in,
    mark,
    outcome_of,
    turnout,
)


def _place(row: asyncpg.Record) -> Place:
    return Place(
        status=row["status"],
        checked_in=row["checked_in_at"] is not None,
        mark=Outcome(row["mark"]) if row["mark"] else None,
        ever_attended=row["first_attended_at"] is not None,
    )


async def _locked_place(tx: Transaction, caller: Caller, booking_id: str) -> asyncpg.Record:
    row = await storage.place_for_attendance(tx.conn, booking_id)
    if row is None or not caller.can_act_for(row["federation_id"], row["organisation_id"]):
        raise NotFound("booking", booking_id)
    return row


async def _record(tx: Transaction, row: asyncpg.Record, change: Change, now: datetime, *, by_check_in: bool) -> None:
    await storage.save_attendance(
        tx.conn, row, change.outcome.value, now, by_check_in=by_check_in, first_time=change.first_time
    )
    facts: dict[str, Any] = {
        "federation_id": row["federation_id"],
        "organisation_id": row["organisation_id"],
        "booking_id": row["booking_id"],
        "event_id": row["event_id"],
        "donor_id": row["donor_id"],
        "name": row["name"],
        "email": row["email"],
        "language": row["language"],
    }
    fact: BookingAttendedV1 | BookingNoShowV1
    if change.outcome is Outcome.attended:
        fact = BookingAttendedV1(**facts, attended_at=now, by_check_in=by_check_in, first_time=change.first_time)
    else:
        fact = BookingNoShowV1(**facts, marked_at=now)
    await tx.emit(fact, key=row["event_id"], subject=f"bookings/{row['booking_id']}")


async def mark_place(
    uow: Transactions, caller: Caller, booking_id: str, wanted: Outcome, now: datetime
) -> dict[str, Any]:
    """The organiser (of the event's organisation, or federation staff) says whether the person came.

    Saying it again changes nothing and tells nobody; saying otherwise corrects the mark.
    """
    async with uow(caller.tenant) as tx:
        row = await _locked_place(tx, caller, booking_id)
        place = _place(row)
        check_can_mark(place, row["event_status"], row["starts_at"], now)
        change = mark(place, wanted)
        if change is not None:
            await _record(tx, row, change, now, by_check_in=False)
    return {"booking_id": booking_id, "event_id": row["event_id"], "outcome": wanted.value, "changed": bool(change)}


async def on_check_in(tx: Transaction, booking_id: str, now: datetime) -> None:
    """Called by the door's check-in, in its transaction, before it records the time: a first
    check-in of a confirmed place makes it attended (and the person is thanked), once."""
    row = await storage.place_for_attendance(tx.conn, booking_id)
    if row is None or row["status"] != "confirmed":
        return  # the check-in itself refuses it
    change = checked_in(_place(row))
    if change is not None:
        await _record(tx, row, change, now, by_check_in=True)


async def of_event(uow: Transactions, caller: Caller, event_id: str) -> dict[str, Any]:
    """An event's turnout for its organisation (or federation staff): confirmed places by what became
    of them, each place's outcome, and the feedback of the people who came."""
    async with uow(caller.tenant, readonly=True) as tx:
        event = await storage.get_known_event(tx.conn, event_id)
        if event is None or not caller.can_act_for(event["federation_id"], event["organisation_id"]):
            raise NotFound("event", event_id)
        rows = await storage.places_of_event(tx.conn, event_id)
        feedback = await storage.feedback_of_event(tx.conn, event_id)
    places = {r["booking_id"]: _place(r) for r in rows}
    counts = turnout(list(places.values()))
    ratings = [f["rating"] for f in feedback]
    return {
        "event_id": event_id,
        "confirmed": counts.confirmed,
        "attended": counts.attended,
        "no_show": counts.no_show,
        "unmarked": counts.unmarked,
        "places": {booking_id: outcome_of(p).value for booking_id, p in places.items()},
        "feedback": {
            "count": len(ratings),
            "average_rating": round(sum(ratings) / len(ratings), 1) if ratings else None,
            "comments": [
                {"rating": f["rating"], "comment": f["comment"], "given_at": f["given_at"]}
                for f in feedback
                if f["comment"]
            ],
        },
    }


async def give_feedback(
    uow: Transactions, caller: Caller, booking_id: str, feedback: Feedback, now: datetime
) -> dict[str, Any]:
    """A person who came rates the event (from the thank-you's link); given again, it replaces the first."""
    async with uow(caller.tenant) as tx:
        row = await _locked_place(tx, caller, booking_id)
        check_can_give_feedback(_place(row))
        await storage.save_feedback(tx.conn, row, feedback.rating, feedback.comment.strip(), now)
    return {"booking_id": booking_id, "rating": feedback.rating, "comment": feedback.comment.strip(), "given_at": now}
