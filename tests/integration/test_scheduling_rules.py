"""Scheduling's rules on its own: use cases and storage against the real PostgreSQL, no Kafka, no other service.

Each rule here used to be seen only end to end (tests/e2e/test_scheduling.py,
test_scheduling_reminders.py); here a refusal is the domain error itself and the events are
read back from the outbox.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from importlib.resources import files
from typing import Any

import pytest

from pitchin_core.contracts.bookings import BookingCancelledV1, BookingConfirmedV1
from pitchin_core.contracts.common import EventData
from pitchin_core.errors import FieldError, NotFound
from pitchin_core.telemetry import Metrics
from pitchin_scheduling import service, storage
from pitchin_scheduling.domain import events as rules
from pitchin_scheduling.domain.agenda import BookedTwice, SessionDraft
from pitchin_scheduling.domain.events import (
    Event,
    EventChanges,
    EventDraft,
    EventRefused,
    Reschedule,
    TransitionRefused,
)
from pitchin_scheduling.domain.series import SeriesDraft
from pitchin_scheduling.timer import ReminderTimer
from tests.integration.conftest import cloud_event
from tests.integration.tenancy import FED, NEIGHBOUR, ORG, ORGANISER, STAFF, STRANGER

pytestmark = pytest.mark.integration
MIGRATIONS = files("pitchin_scheduling") / "migrations"
NOW = datetime.now(UTC).replace(microsecond=0)
E = "org.pitchin."
Change = tuple[Event, list[EventData]]
CHAIR = {"person_id": "gloria-cruz", "name": "Gloria Cruz", "role": "chair"}


def _at(days: int, hour: int, minute: int = 0) -> str:
    """A wall-clock time in London `days` from now: far enough ahead to publish, schedule and remind."""
    day = (NOW + timedelta(days=days)).date()
    return f"{day.isoformat()}T{hour:02d}:{minute:02d}:00"


def _draft(**overrides: Any) -> EventDraft:
    body: dict[str, Any] = {
        "kind": "panel",
        "title": "Unions and the internet: a panel",
        "starts_at": _at(30, 18),
        "ends_at": _at(30, 21),
        "time_zone": "Europe/London",
        "venue_name": "Union Hall",
        "online_url": "https://stream.example/unions",
        "capacity": 60,
        "organiser_email": "events@example.org",
    }
    body.update(overrides)
    return EventDraft.model_validate(body)


def _session(title: str, starts: str, ends: str, **more: Any) -> SessionDraft:
    return SessionDraft.model_validate({"title": title, "starts_at": starts, "ends_at": ends, **more})


def _reschedule(days: int) -> Any:
    change = Reschedule.model_validate({"starts_at": _at(days, 18), "ends_at": _at(days, 21), "reason": "hall flooded"})
    return lambda event: rules.reschedule(event, change, NOW)


def _step(step: Callable[[Event, datetime], Change], event: Event) -> Change:
    return step(event, NOW)


# Events ---------------------------------------------------------------------------------


async def test_a_published_event_is_created_with_its_reminders_and_both_facts_on_the_outbox(
    open_service_database: Any,
) -> None:
    db = await open_service_database("scheduling", MIGRATIONS)
    event = await service.create_event(db.uow, ORGANISER, _draft(), NOW)
    assert event.event_id.startswith("evt_") and event.organisation_id == ORG and event.version == 1
    stored, attendees = await service.get_event(db.uow, ORGANISER, event.event_id)
    assert stored == event and attendees == {"confirmed": 0, "waitlisted": 0, "cancelled": 0}
    reminders = await service.reminders_of_event(db.uow, ORGANISER, event.event_id)
    assert sorted(r["kind"] for r in reminders) == ["at-start", "day-before", "hour-before"]
    assert all(r["reminder_id"].startswith("rem_") and r["fired_at"] is None for r in reminders)
    outbox = await db.outbox()
    assert [e["type"] for e in outbox] == [E + "event.created.v1", E + "event.published.v1"]
    assert {(e["key"], e["subject"]) for e in outbox} == {(event.event_id, f"events/{event.event_id}")}

    draft = await service.create_event(db.uow, ORGANISER, _draft(status="draft"), NOW)
    assert await service.reminders_of_event(db.uow, ORGANISER, draft.event_id) == []
    assert (await db.types_emitted())[2:] == [E + "event.created.v1"]


async def test_refused_events_name_the_field_and_leave_nothing_behind(open_service_database: Any) -> None:
    db = await open_service_database("scheduling", MIGRATIONS)
    with pytest.raises(EventRefused) as past:
        await service.create_event(db.uow, ORGANISER, _draft(starts_at=_at(-2, 18), ends_at=_at(-2, 21)), NOW)
    assert past.value.field == "starts_at" and past.value.title == "Event refused" and past.value.status == 422
    with pytest.raises(EventRefused) as federation_key:
        await service.create_event(db.uow, STAFF, _draft(), NOW)
    assert federation_key.value.errors == [
        FieldError("organisation_id", "events belong to a member organisation: use its API key")
    ]
    with pytest.raises(EventRefused) as too_big:
        await service.create_event(db.uow, ORGANISER, _draft(capacity=80, venue_capacity=60), NOW)
    assert too_big.value.field == "capacity"
    series = SeriesDraft.model_validate({"event": _draft().model_dump(mode="json"), "rrule": "FREQ=SOMETIMES"})
    with pytest.raises(EventRefused) as bad_rule:
        await service.create_series(db.uow, ORGANISER, series, NOW)
    assert bad_rule.value.field == "rrule"
    assert await db.outbox() == []
    assert await service.find_events(db.uow, storage.EventQuery(statuses=("draft", "published"))) == []


async def test_update_reschedule_and_cancel_emit_each_change_and_move_the_reminders(open_service_database: Any) -> None:
    db = await open_service_database("scheduling", MIGRATIONS)
    event = await service.create_event(db.uow, ORGANISER, _draft(), NOW)
    before = await service.reminders_of_event(db.uow, ORGANISER, event.event_id)

    same = await service.change_event(
        db.uow, ORGANISER, event.event_id, lambda e: rules.update(e, EventChanges(title=event.title), NOW), NOW
    )
    assert same == event
    retitled = await service.change_event(
        db.uow, ORGANISER, event.event_id, lambda e: rules.update(e, EventChanges(title="Unions online"), NOW), NOW
    )
    assert (retitled.title, retitled.version) == ("Unions online", 2)
    # A new title does not move the reminders: they are the ones set at creation.
    assert await service.reminders_of_event(db.uow, ORGANISER, event.event_id) == before

    moved = await service.change_event(db.uow, ORGANISER, event.event_id, _reschedule(31), NOW)
    assert moved.version == 3 and moved.starts_at.date() - event.starts_at.date() == timedelta(days=1)
    after = await service.reminders_of_event(db.uow, ORGANISER, event.event_id)
    assert len(after) == 3 and all(r["event_version"] == 3 for r in after)
    assert not {r["reminder_id"] for r in after} & {r["reminder_id"] for r in before}, "old timers are gone"

    cancelled = await service.change_event(
        db.uow, ORGANISER, event.event_id, lambda e: rules.cancel(e, "strike called", NOW), NOW
    )
    assert cancelled.status == "cancelled"
    assert await service.reminders_of_event(db.uow, ORGANISER, event.event_id) == []
    outbox = await db.outbox()
    assert [e["type"] for e in outbox] == [
        E + "event.created.v1",
        E + "event.published.v1",
        E + "event.updated.v1",
        E + "event.rescheduled.v1",
        E + "event.cancelled.v1",
    ]
    assert outbox[2]["data"]["changed"] == ["title"]
    assert outbox[3]["data"]["reason"] == "hall flooded" and outbox[4]["data"]["reason"] == "strike called"


async def test_lifecycle_steps_from_the_wrong_state_are_conflicts_naming_the_state(open_service_database: Any) -> None:
    db = await open_service_database("scheduling", MIGRATIONS)
    event = await service.create_event(db.uow, ORGANISER, _draft(status="draft"), NOW)
    with pytest.raises(TransitionRefused) as draft_start:
        await service.change_event(db.uow, ORGANISER, event.event_id, lambda e: rules.start(e, NOW), NOW)
    assert (draft_start.value.status, draft_start.value.title) == (409, "Not possible now")
    assert draft_start.value.problem_body()["state"] == "draft"
    assert str(draft_start.value) == "cannot start an event that is draft (only from: published)"

    for step in (rules.publish, rules.start_livestream, rules.end_livestream, rules.end, rules.archive):
        await service.change_event(db.uow, ORGANISER, event.event_id, partial(_step, step), NOW)
    with pytest.raises(TransitionRefused) as archived:
        await service.change_event(db.uow, ORGANISER, event.event_id, lambda e: rules.cancel(e, "", NOW), NOW)
    assert archived.value.state == "archived"
    offline = await service.create_event(db.uow, ORGANISER, _draft(online_url=None), NOW)
    with pytest.raises(TransitionRefused) as no_stream:
        await service.change_event(db.uow, ORGANISER, offline.event_id, lambda e: rules.start_livestream(e, NOW), NOW)
    assert no_stream.value.problem_body()["state"] == "without a livestream"
    assert [t for t in await db.types_emitted() if t.endswith((".started.v1", ".ended.v1", ".archived.v1"))] == [
        E + "livestream.started.v1",
        E + "event.started.v1",
        E + "livestream.ended.v1",
        E + "event.ended.v1",
        E + "event.archived.v1",
    ]


async def test_a_series_is_one_event_per_occurrence(open_service_database: Any) -> None:
    db = await open_service_database("scheduling", MIGRATIONS)
    series = SeriesDraft.model_validate(
        {"event": _draft(kind="meet-up").model_dump(mode="json"), "rrule": "FREQ=WEEKLY;COUNT=3"}
    )
    series_id, events = await service.create_series(db.uow, ORGANISER, series, NOW)
    assert series_id.startswith("ser_") and len({e.event_id for e in events}) == 3
    assert [e.event_id for e in await service.series_events(db.uow, STAFF, series_id)] == [e.event_id for e in events]
    with pytest.raises(NotFound):
        await service.series_events(db.uow, NEIGHBOUR, series_id)
    assert await db.types_emitted() == [E + "event.created.v1", E + "event.published.v1"] * 3


# Tenancy ----------------------------------------------------------------------------------


async def test_another_organisations_or_federations_caller_finds_no_event(open_service_database: Any) -> None:
    db = await open_service_database("scheduling", MIGRATIONS)
    event = await service.create_event(db.uow, ORGANISER, _draft(), NOW)
    event_id = event.event_id
    for caller in (NEIGHBOUR, STRANGER):
        with pytest.raises(NotFound) as unseen:
            await service.get_event(db.uow, caller, event_id)
        assert unseen.value.detail == f"No event {event_id} here."
        with pytest.raises(NotFound):
            await service.change_event(db.uow, caller, event_id, lambda e: rules.cancel(e, "", NOW), NOW)
        with pytest.raises(NotFound):
            await service.put_session(db.uow, caller, event_id, _session("Opening", _at(30, 18), _at(30, 19)), NOW)
        for read in (service.sessions_of_event, service.reminders_of_event, service.attendees_of_event):
            with pytest.raises(NotFound):
                await read(db.uow, caller, event_id)
    with pytest.raises(NotFound) as no_session:
        await service.remove_session(db.uow, ORGANISER, event_id, "ses_none", NOW)
    assert no_session.value.detail == f"No session ses_none in event {event_id}."
    # Federation staff see their federation's events.
    assert (await service.get_event(db.uow, STAFF, event_id))[0].event_id == event_id
    assert await db.types_emitted() == [E + "event.created.v1", E + "event.published.v1"]


# Agenda -----------------------------------------------------------------------------------


async def test_a_person_or_room_booked_twice_is_a_conflict_naming_the_clash(open_service_database: Any) -> None:
    db = await open_service_database("scheduling", MIGRATIONS)
    panel = await service.create_event(db.uow, ORGANISER, _draft(), NOW)
    training = await service.create_event(
        db.uow,
        ORGANISER,
        _draft(kind="training", title="Social media training", starts_at=_at(30, 17), ends_at=_at(30, 20)),
        NOW,
    )
    opening = await service.put_session(
        db.uow,
        ORGANISER,
        panel.event_id,
        _session("Opening remarks", _at(30, 18), _at(30, 19), room="Main hall", people=[CHAIR]),
        NOW,
    )
    with pytest.raises(BookedTwice) as person:
        await service.put_session(
            db.uow,
            ORGANISER,
            training.event_id,
            _session("Writing for the web", _at(30, 18, 30), _at(30, 19, 30), people=[{**CHAIR, "role": "trainer"}]),
            NOW,
        )
    body = person.value.problem_body()
    assert (person.value.status, body["type"], body["title"]) == (
        409,
        "tag:pitchin.example,2026:problems/clash",
        "Booked twice",
    )
    assert body["clashes"] == [
        {"what": "person", "name": "Gloria Cruz", "session_id": opening.session_id, "event_id": panel.event_id}
    ]
    assert [e["field"] for e in body["errors"]] == ["people"]
    assert "Gloria Cruz is already booked for 'Opening remarks'" in body["detail"]
    with pytest.raises(BookedTwice) as room:
        await service.put_session(
            db.uow,
            ORGANISER,
            panel.event_id,
            _session("Respondents", _at(30, 18, 45), _at(30, 19, 30), room="main hall"),
            NOW,
        )
    assert [c["what"] for c in room.value.problem_body()["clashes"]] == ["room"]
    assert "room 'main hall'" in room.value.detail

    # Back to back is no clash; outside the event's times is refused on the field.
    after = await service.put_session(
        db.uow,
        ORGANISER,
        panel.event_id,
        _session("Respondents", _at(30, 19), _at(30, 19, 30), room="Main hall", people=[CHAIR]),
        NOW,
    )
    with pytest.raises(EventRefused) as outside:
        await service.put_session(db.uow, ORGANISER, panel.event_id, _session("Late", _at(30, 21), _at(30, 22)), NOW)
    assert outside.value.field == "starts_at"

    # The training moved onto the panel's evening would put Gloria in two places: refused, nothing moves.
    await service.put_session(
        db.uow,
        ORGANISER,
        training.event_id,
        _session("Writing for the web", _at(30, 17), _at(30, 18), people=[CHAIR]),
        NOW,
    )
    with pytest.raises(BookedTwice):
        await service.change_event(
            db.uow,
            ORGANISER,
            training.event_id,
            lambda e: rules.reschedule(
                e, Reschedule.model_validate({"starts_at": _at(30, 18), "ends_at": _at(30, 21)}), NOW
            ),
            NOW,
        )
    assert (await service.get_event(db.uow, ORGANISER, training.event_id))[0].version == 1

    # The panel moved a day keeps its sessions at their local times.
    await service.change_event(db.uow, ORGANISER, panel.event_id, _reschedule(31), NOW)
    sessions = await service.sessions_of_event(db.uow, ORGANISER, panel.event_id)
    assert [s.starts_at.strftime("%H:%M") for s in sessions] == ["18:00", "19:00"]
    assert {s.session_id for s in sessions} == {opening.session_id, after.session_id}
    await service.remove_session(db.uow, ORGANISER, panel.event_id, after.session_id, NOW)

    assert [t for t in await db.types_emitted() if ".session." in t or "rescheduled" in t] == [
        E + "session.scheduled.v1",
        E + "session.scheduled.v1",
        E + "session.scheduled.v1",
        E + "event.rescheduled.v1",
        E + "session.changed.v1",
        E + "session.changed.v1",
        E + "session.removed.v1",
    ]


# Reminders and bookings -------------------------------------------------------------------


async def test_due_reminders_are_fired_once_even_by_two_timers_at_once(open_service_database: Any) -> None:
    db = await open_service_database("scheduling", MIGRATIONS)
    events = [await service.create_event(db.uow, ORGANISER, _draft(), NOW) for _ in range(3)]
    metrics = Metrics("scheduling")
    first = ReminderTimer(db.uow, metrics, schema=db.schema, batch_size=4)
    second = ReminderTimer(db.uow, Metrics("scheduling"), schema=db.schema, batch_size=4)
    assert await first.fire_due(NOW) == 0, "nothing is due yet"

    later = NOW + timedelta(days=60)
    fired = 0
    while batch := sum(await asyncio.gather(first.fire_due(later), second.fire_due(later))):
        fired += batch
    assert fired == 9
    assert await first.fire_due(later) == 0
    due = [e for e in await db.outbox() if e["type"] == E + "event.reminder-due.v1"]
    assert len(due) == 9 and len({e["data"]["reminder_id"] for e in due}) == 9
    assert {e["subject"] for e in due} == {f"events/{e.event_id}/reminders" for e in events}
    reminders = await service.reminders_of_event(db.uow, ORGANISER, events[0].event_id)
    assert all(r["fired_at"] is not None for r in reminders)
    assert await first.idle_seconds() == 5.0, "nothing pending: the timer sleeps its longest"


async def test_bookings_are_recorded_once_and_give_counts_and_a_personal_feed(open_service_database: Any) -> None:
    db = await open_service_database("scheduling", MIGRATIONS)
    event = await service.create_event(db.uow, ORGANISER, _draft(), NOW)
    confirmed = BookingConfirmedV1(
        federation_id=FED,
        organisation_id=ORG,
        booking_id="bkg_1",
        event_id=event.event_id,
        name="Ana Organiser",
        email="Ana@example.org",
        confirmed_at=NOW,
    )
    delivered = cloud_event(confirmed)
    assert await service.record_booking(db.uow, delivered, confirmed)
    assert not await service.record_booking(db.uow, delivered, confirmed), "a redelivery changes nothing"
    assert (await service.get_event(db.uow, ORGANISER, event.event_id))[1]["confirmed"] == 1
    token = await service.booking_feed_token(db.uow, STAFF, "bkg_1")
    assert [e.event_id for e in await service.events_booked_by_token(db.uow, token)] == [event.event_id]
    with pytest.raises(NotFound):
        await service.booking_feed_token(db.uow, STRANGER, "bkg_1")
    # Rotated (by the person through their booking link, or by staff): the old feed is gone at once.
    rotated = await service.rotate_booking_feed(db.uow, STAFF, "bkg_1")
    assert rotated != token and await service.booking_feed_token(db.uow, STAFF, "bkg_1") == rotated
    with pytest.raises(NotFound):
        await service.events_booked_by_token(db.uow, token)
    await service.rotate_person_feed(db.uow, STAFF, "ANA@example.org")
    with pytest.raises(NotFound):
        await service.events_booked_by_token(db.uow, rotated)
    with pytest.raises(NotFound):
        await service.rotate_person_feed(db.uow, STRANGER, "ana@example.org")
    token = await service.booking_feed_token(db.uow, STAFF, "bkg_1")
    with pytest.raises(NotFound) as unknown_feed:
        await service.events_booked_by_token(db.uow, "not-a-token")
    assert unknown_feed.value.detail == "No such calendar feed."

    cancelled = BookingCancelledV1(**confirmed.model_dump(exclude={"confirmed_at"}), cancelled_at=NOW)
    assert await service.record_booking(db.uow, cloud_event(cancelled), cancelled)
    [attendee] = await service.attendees_of_event(db.uow, ORGANISER, event.event_id)
    assert attendee["status"] == "cancelled"
    assert await service.events_booked_by_token(db.uow, token) == []
    assert await db.types_emitted() == [E + "event.created.v1", E + "event.published.v1"]
