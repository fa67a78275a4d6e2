"""Waitlist offers (issue 22) in signups' PostgreSQL functions, against the real database.

A freed place is offered to the first on the waitlist and held; declining or letting it lapse
offers it to the next; accepting confirms. The window is the domain's rule (`OfferRule`),
computed in SQL under the event's lock: checked here against the Python rule itself.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from typing import Any

import pytest

from pitchin_core.contracts.bookings import BookingOfferedV1, BookingOfferExpiredV1
from pitchin_core.contracts.registry import EVENT_TYPES
from pitchin_core.contracts.scheduling import EventCreatedV1, EventKind
from pitchin_signups.domain.bookings import OFFER_RULE, BookingRequest, OfferNotOpen
from pitchin_signups.service import bookings
from tests.integration.conftest import cloud_event
from tests.integration.tenancy import FED, ORG, ORGANISER, STAFF

pytestmark = pytest.mark.integration
MIGRATIONS = files("pitchin_signups") / "migrations"
NOW = datetime.now(UTC).replace(microsecond=0)


def _event(*, capacity: int, window: int | None = None, version: int = 1, starts_in: timedelta) -> EventCreatedV1:
    starts = NOW + starts_in
    return EventCreatedV1(
        federation_id=FED,
        organisation_id=ORG,
        event_id="evt_offers",
        kind=EventKind.training,
        title="Branch meeting: the new contract",
        starts_at=starts,
        ends_at=starts + timedelta(hours=2),
        time_zone="Europe/London",
        capacity=capacity,
        waitlist=True,
        organiser_email="branch@example.org",
        waitlist_offer_seconds=window,
        version=version,
    )


def _person(i: int) -> BookingRequest:
    return BookingRequest.model_validate({"name": f"Person {i}", "email": f"p{i}@offers.example"})


async def _counts(db: Any) -> tuple[int, int, int]:
    row = await db.pool.fetchrow(
        "SELECT confirmed, offered, waitlisted FROM known_events WHERE event_id = 'evt_offers'"
    )
    return row["confirmed"], row["offered"], row["waitlisted"]


@pytest.mark.parametrize(
    ("configured", "left"),
    [
        (None, timedelta(days=5)),  # the default: 24 h
        (None, timedelta(hours=30)),  # half the time left: 15 h
        (600, timedelta(days=2)),  # the organiser's 10 minutes
        (None, timedelta(minutes=90)),  # the floor: an hour
        (None, timedelta(minutes=20)),  # less than the floor left: all of it
        (None, timedelta(0)),  # bookings closed: no offer
    ],
)
async def test_the_window_in_sql_is_the_domain_rule(
    open_service_database: Any, configured: int | None, left: timedelta
) -> None:
    db = await open_service_database("signups", MIGRATIONS)
    closes = NOW + left
    rule = json.dumps(OFFER_RULE.as_json())
    in_sql = await db.pool.fetchval("SELECT offer_expiry($1, $2, $3, $4::jsonb)", configured, NOW, closes, rule)
    assert in_sql == OFFER_RULE.expires_at(configured, NOW, closes)


async def test_a_freed_place_is_offered_held_passed_on_and_taken(open_service_database: Any) -> None:
    db = await open_service_database("signups", MIGRATIONS)
    event = _event(capacity=1, window=600, starts_in=timedelta(days=3))
    assert await bookings.learn_event(db.uow, cloud_event(event), event)
    booked = [await bookings.book(db.uow, STAFF, event.event_id, _person(i), NOW) for i in range(4)]
    assert [b.status for b in booked] == ["confirmed", "waitlisted", "waitlisted", "waitlisted"]

    # The place freed is offered to the first in line and held: a new booking waits behind.
    staged = await bookings.cancel(db.uow, STAFF, booked[0].booking_id, NOW)
    assert [e.event_type for e in staged] == ["org.pitchin.booking.cancelled.v1", "org.pitchin.booking.offered.v1"]
    offer = staged[1]
    assert isinstance(offer, BookingOfferedV1) and offer.booking_id == booked[1].booking_id
    assert offer.expires_at == NOW + timedelta(seconds=600)
    assert await _counts(db) == (0, 1, 2)
    late = await bookings.book(db.uow, STAFF, event.event_id, _person(9), NOW)
    assert (late.status, late.position) == ("waitlisted", 3)
    listing = await bookings.of_event(db.uow, ORGANISER, event.event_id, "offered")
    assert [(i["booking_id"], i["offer_expires_at"]) for i in listing["items"]] == [
        (offer.booking_id, offer.expires_at)
    ]

    # Declining gives up the spot; the place goes to the next.
    staged = await bookings.answer_offer(db.uow, STAFF, booked[1].booking_id, "decline", NOW)
    assert [(e.event_type, e.booking_id) for e in staged] == [
        ("org.pitchin.booking.offer-declined.v1", booked[1].booking_id),
        ("org.pitchin.booking.offered.v1", booked[2].booking_id),
    ]
    with pytest.raises(OfferNotOpen):
        await bookings.answer_offer(db.uow, STAFF, booked[1].booking_id, "accept", NOW)

    # Not yet due: the clock expires nothing. Due: it expires the offer and offers the place on.
    assert await bookings.expire_due(db.uow, FED, NOW + timedelta(seconds=599), 100) == []
    later = NOW + timedelta(seconds=600)
    staged = await bookings.expire_due(db.uow, FED, later, 100)
    assert [(e.event_type, e.booking_id) for e in staged] == [
        ("org.pitchin.booking.offer-expired.v1", booked[2].booking_id),
        ("org.pitchin.booking.offered.v1", booked[3].booking_id),
    ]
    assert isinstance(staged[0], BookingOfferExpiredV1)
    assert await bookings.expire_due(db.uow, FED, later, 100) == []  # once only
    with pytest.raises(OfferNotOpen, match="expired"):
        await bookings.answer_offer(db.uow, STAFF, booked[2].booking_id, "accept", later)

    staged = await bookings.answer_offer(db.uow, STAFF, booked[3].booking_id, "accept", later)
    assert [e.event_type for e in staged] == ["org.pitchin.booking.offer-accepted.v1"]
    assert await bookings.answer_offer(db.uow, STAFF, booked[3].booking_id, "accept", later) == []
    assert await _counts(db) == (1, 0, 1)
    assert (await bookings.get(db.uow, STAFF, late.booking_id))["position"] == 1
    # Every event the SQL built is its contract's, field for field.
    for staged_event in await db.outbox():
        model = EVENT_TYPES[staged_event["type"]]
        assert set(staged_event["data"]) == set(model.model_fields)
        model.model_validate(staged_event["data"])


async def test_a_capacity_raised_offers_the_new_places_and_the_deadline_bounds_the_window(
    open_service_database: Any,
) -> None:
    db = await open_service_database("signups", MIGRATIONS)
    event = _event(capacity=1, starts_in=timedelta(hours=10))
    assert await bookings.learn_event(db.uow, cloud_event(event), event)
    for i in range(4):
        await bookings.book(db.uow, STAFF, event.event_id, _person(i), NOW)
    raised = event.model_copy(update={"capacity": 3, "version": 2})
    assert await bookings.learn_event(db.uow, cloud_event(raised), raised)
    assert await _counts(db) == (1, 2, 1)
    offers = [e for e in await db.outbox() if e["type"] == BookingOfferedV1.event_type]
    assert [e["data"]["email"] for e in offers] == ["p1@offers.example", "p2@offers.example"]
    # Ten hours before the start, the default 24 h is cut to half the time left.
    for e in offers:
        offered_at = datetime.fromisoformat(e["data"]["offered_at"])
        left = datetime.fromisoformat(e["data"]["expires_at"]) - offered_at
        # Half of what is left when the offer is made (the clock is the database's, not NOW's).
        half = (event.starts_at - offered_at) / 2
        assert abs(left - half) <= timedelta(seconds=1) and left <= timedelta(hours=5), (left, half)
