"""A rush on one event through the booking desk (group commit) against the real PostgreSQL.

Several hundred attempts at once, with duplicates among them, then concurrent cancellations:
capacity is exact, waitlist positions are 1..N with no gap or repeat in arrival order, each
person holds one booking, and every freed place goes to the next in line, in order.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from typing import Any

import pytest

from pitchin_core.contracts.bookings import BookingOfferedV1
from pitchin_core.contracts.scheduling import EventCreatedV1, EventKind
from pitchin_core.errors import Conflict
from pitchin_core.uow import AMBIENT, RequestClaim
from pitchin_signups.domain.bookings import BookingRequest
from pitchin_signups.service import bookings
from tests.integration.conftest import cloud_event
from tests.integration.tenancy import FED, ORG, STAFF

MIGRATIONS = files("pitchin_signups") / "migrations"
NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
CAPACITY = 60
PEOPLE = 400


async def _rush_event(db: Any) -> str:
    starts = NOW + timedelta(days=10)
    event = EventCreatedV1(
        federation_id=FED,
        organisation_id=ORG,
        event_id="evt_rush",
        kind=EventKind.training,
        title="Free training day: organising your workplace",
        starts_at=starts,
        ends_at=starts + timedelta(hours=6),
        time_zone="Europe/London",
        capacity=CAPACITY,
        waitlist=True,
        organiser_email="training@example.org",
    )
    assert await bookings.learn_event(db.uow, cloud_event(event), event)
    return event.event_id


def _person(i: int, *, shout: bool = False) -> BookingRequest:
    email = f"p{i}@rush.example"
    return BookingRequest.model_validate({"name": f"Person {i}", "email": email.upper() if shout else email})


async def _attempt(desk: bookings.BookingDesk, event_id: str, request: BookingRequest) -> bookings.Booked | str:
    try:
        return await desk.book(STAFF, event_id, request)
    except Conflict as refused:
        return refused.title


async def test_a_rush_books_exactly_the_capacity_then_the_waitlist_in_arrival_order(open_service_database: Any) -> None:
    db = await open_service_database("signups", MIGRATIONS)
    event_id = await _rush_event(db)
    desk = bookings.BookingDesk(db.uow, max_batch=64, clock=lambda: NOW)
    # Every tenth person tries twice at once (the second time in capitals): 40 duplicates among 440.
    attempts = []
    for i in range(PEOPLE):
        attempts.append((i, _person(i)))
        if i % 10 == 9:
            attempts.append((i, _person(i, shout=True)))
    answers = await asyncio.gather(*(_attempt(desk, event_id, request) for _, request in attempts))

    booked = [(i, a) for (i, _), a in zip(attempts, answers, strict=True) if isinstance(a, bookings.Booked)]
    refused = [a for a in answers if not isinstance(a, bookings.Booked)]
    assert refused == ["Already booked"] * 40
    assert sorted(i for i, _ in booked) == list(range(PEOPLE))  # the first attempt of each person won
    confirmed = [i for i, a in booked if a.status == "confirmed"]
    waitlisted = [(i, a.position) for i, a in booked if a.status == "waitlisted"]
    assert confirmed == list(range(CAPACITY))  # the first sixty to arrive
    assert [p for _, p in waitlisted] == list(range(1, PEOPLE - CAPACITY + 1))  # 1..340, in arrival order
    assert desk.batches.calls < len(attempts) / 4, "attempts that arrive together share a call"

    rows = await db.pool.fetch("SELECT status, count(*) AS n FROM bookings GROUP BY status")
    assert {r["status"]: r["n"] for r in rows} == {"confirmed": CAPACITY, "waitlisted": PEOPLE - CAPACITY}
    counters = await db.pool.fetchrow("SELECT confirmed, waitlisted FROM known_events WHERE event_id = $1", event_id)
    assert (counters["confirmed"], counters["waitlisted"]) == (CAPACITY, PEOPLE - CAPACITY)
    places = await bookings.places(db.uow, STAFF, event_id)  # what the public page shows, O(1)
    assert (places["capacity"], places["confirmed"], places["waitlisted"]) == (CAPACITY, CAPACITY, PEOPLE - CAPACITY)
    staged = await db.outbox()
    assert len(staged) == PEOPLE and len({e["data"]["booking_id"] for e in staged}) == PEOPLE

    # Twenty confirmed people cancel at once: the first twenty in line are offered the places
    # (held for them, so nobody else can take them), in line order.
    in_line = {a.booking_id: a.position or 0 for _, a in booked if a.status == "waitlisted"}
    leaving = [a.booking_id for _, a in booked[:20]]
    outcomes = await asyncio.gather(*(bookings.cancel(db.uow, STAFF, b, NOW) for b in leaving))
    offered = [e for events in outcomes for e in events if isinstance(e, BookingOfferedV1)]
    assert sorted(in_line[e.booking_id] for e in offered) == list(range(1, 21))
    counters = await db.pool.fetchrow(
        "SELECT confirmed, offered, waitlisted FROM known_events WHERE event_id = $1", event_id
    )
    assert (counters["confirmed"], counters["offered"], counters["waitlisted"]) == (
        CAPACITY - 20,
        20,
        PEOPLE - CAPACITY - 20,
    )
    still_waiting = next(a for i, a in booked if a.status == "waitlisted" and in_line[a.booking_id] == 21)
    assert (await bookings.get(db.uow, STAFF, still_waiting.booking_id))["position"] == 1

    # A person who cancelled may book again: the live booking is what is unique.
    again = await desk.book(STAFF, event_id, _person(0))
    assert (again.status, again.position) == ("waitlisted", PEOPLE - CAPACITY - 20 + 1)


async def test_an_idempotency_key_answer_commits_with_the_booking(open_service_database: Any) -> None:
    db = await open_service_database("signups", MIGRATIONS)
    event_id = await _rush_event(db)
    desk = bookings.BookingDesk(db.uow, clock=lambda: NOW)
    claim = RequestClaim("caller-hash", "retry-me", "body-hash")
    token = AMBIENT.set(claim)
    try:
        booked = await desk.book(STAFF, event_id, _person(1))
    finally:
        AMBIENT.reset(token)
    assert claim.taken_by_use_case and not claim.is_open
    stored = await db.pool.fetchrow("SELECT * FROM idempotency_keys WHERE idempotency_key = 'retry-me'")
    assert (stored["status_code"], stored["location"]) == (201, f"/v1/bookings/{booked.booking_id}")
    assert stored["response_body"].decode() == booked.payload and stored["fingerprint"] == "body-hash"


async def test_a_batch_the_database_refuses_fails_only_its_own_attempts(open_service_database: Any) -> None:
    db = await open_service_database("signups", MIGRATIONS)
    event_id = await _rush_event(db)
    desk = bookings.BookingDesk(db.uow, clock=lambda: NOW)
    # A name PostgreSQL cannot store (a NUL character, which BookingRequest refuses: built here
    # without its checks, as a bug would) fails the call it is in, and only that call.
    unstorable = BookingRequest.model_construct(name="bad\x00name", email="p1@rush.example", language="en")
    with pytest.raises(Exception, match="cannot be converted to text"):
        await desk.book(STAFF, event_id, unstorable)
    with pytest.raises(ValueError, match="name"):
        BookingRequest.model_validate({"name": "bad\x00name", "email": "p1@rush.example"})
    assert (await desk.book(STAFF, event_id, _person(2))).status == "confirmed"
    assert await db.pool.fetchval("SELECT count(*) FROM bookings") == 1


async def _with_key(desk: bookings.BookingDesk, event_id: str, request: BookingRequest, key: str, body: str) -> Any:
    """One HTTP attempt as the idempotency middleware hands it on: its claim in the task's context."""
    token = AMBIENT.set(RequestClaim("caller-hash", key, body))
    try:
        return await desk.book(STAFF, event_id, request)
    except Exception as refused:
        return refused
    finally:
        AMBIENT.reset(token)


async def test_a_retry_with_the_same_key_gets_the_first_answer_in_or_after_its_batch(
    open_service_database: Any,
) -> None:
    db = await open_service_database("signups", MIGRATIONS)
    event_id = await _rush_event(db)
    desk = bookings.BookingDesk(db.uow, clock=lambda: NOW)
    # The first attempt and its retry arrive together: one batch, one booking, the same answer.
    first, retry = await asyncio.gather(
        _with_key(desk, event_id, _person(1), "k1", "body-1"), _with_key(desk, event_id, _person(1), "k1", "body-1")
    )
    assert isinstance(first, bookings.Booked) and isinstance(retry, bookings.Booked)
    assert (first.replayed, retry.replayed) == (False, True)
    assert (retry.booking_id, retry.payload) == (first.booking_id, first.payload)
    # A retry after the batch committed (the middleware's own check raced it) is answered the same.
    later = await _with_key(desk, event_id, _person(1), "k1", "body-1")
    assert isinstance(later, bookings.Booked) and later.replayed and later.booking_id == first.booking_id
    # The key again with another body is refused, naming the header; so is the twin of that in a batch.
    reused = await _with_key(desk, event_id, _person(2), "k1", "body-2")
    assert getattr(reused, "status", None) == 422 and "Idempotency-Key" in str(getattr(reused, "errors", ""))
    twins = await asyncio.gather(
        _with_key(desk, event_id, _person(3), "k3", "body-3"), _with_key(desk, event_id, _person(4), "k3", "body-4")
    )
    assert isinstance(twins[0], bookings.Booked) and getattr(twins[1], "status", None) == 422
    assert await db.pool.fetchval("SELECT count(*) FROM bookings") == 2
