from datetime import UTC, datetime, timedelta
from functools import partial
from itertools import count

import pytest
from icalendar import Calendar

from pitchin_core.contracts.scheduling import ReminderKind
from pitchin_scheduling.domain import events as rules
from pitchin_scheduling.domain.agenda import Session, SessionDraft, find_clashes, move_with_event, plan_session
from pitchin_scheduling.domain.calendar import to_icalendar
from pitchin_scheduling.domain.events import Event, EventDraft, EventRefused, Reschedule, create_event
from pitchin_scheduling.domain.reminders import PlannedReminder, plan_reminders
from pitchin_scheduling.domain.series import SeriesDraft, occurrences

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
_serial = count(1)


def _new_id(prefix: str) -> str:
    return f"{prefix}_{next(_serial)}"


def _plan(draft: SessionDraft, event: Event) -> Session:
    return plan_session(draft, event, _new_id("ses"))


def _reminders(event: Event, now: datetime) -> list[PlannedReminder]:
    return plan_reminders(event, now, partial(_new_id, "rem"))


def _event(**overrides: object) -> Event:
    body: dict[str, object] = {
        "kind": "panel",
        "title": "Unions and the internet",
        "starts_at": "2027-03-27T18:00:00",
        "ends_at": "2027-03-27T21:00:00",
        "time_zone": "Europe/London",
        "venue_name": "Union Hall",
        "organiser_email": "events@example.org",
    }
    body.update(overrides)
    event, _ = create_event(
        EventDraft.model_validate(body), federation_id="f", organisation_id="o", now=NOW, event_id=_new_id("evt")
    )
    return event


def _session(event: Event, start: str, end: str, **overrides: object) -> SessionDraft:
    body: dict[str, object] = {"title": "Opening", "starts_at": start, "ends_at": end}
    body.update(overrides)
    return SessionDraft.model_validate(body)


CHAIR = {"person_id": "gloria", "name": "Gloria Cruz", "role": "chair"}
RESPONDENT = {"person_id": "tefere", "name": "Tefere Gebre", "role": "respondent"}


def test_a_person_in_two_overlapping_sessions_is_a_clash_named_with_the_other_session() -> None:
    event = _event()
    first = _plan(_session(event, "2027-03-27T18:00:00", "2027-03-27T19:00:00", people=[CHAIR]), event)
    second = _plan(
        _session(event, "2027-03-27T18:30:00", "2027-03-27T19:30:00", title="Panel", people=[CHAIR, RESPONDENT]),
        event,
    )
    [clash] = find_clashes(second, [first])
    assert clash.what == "person" and clash.name == "Gloria Cruz"
    assert "Gloria Cruz is already booked for 'Opening'" in clash.describe("Europe/London")
    assert "18:00-19:00 Europe/London" in clash.describe("Europe/London")
    # Back to back is not a clash.
    later = _plan(_session(event, "2027-03-27T19:00:00", "2027-03-27T20:00:00", people=[CHAIR]), event)
    assert find_clashes(later, [first]) == []


def test_a_room_holds_one_session_at_a_time_in_its_own_venue() -> None:
    event = _event()
    other_venue = _event(venue_name="Coffee shop")
    first = _plan(_session(event, "2027-03-27T18:00:00", "2027-03-27T19:00:00", room="Hall A"), event)
    same_room = _plan(_session(event, "2027-03-27T18:30:00", "2027-03-27T19:00:00", room="hall a"), event)
    elsewhere = _plan(_session(other_venue, "2027-03-27T18:30:00", "2027-03-27T19:00:00", room="Hall A"), other_venue)
    assert [c.what for c in find_clashes(same_room, [first])] == ["room"]
    assert find_clashes(elsewhere, [first]) == []


def test_sessions_must_fit_their_event() -> None:
    event = _event()
    with pytest.raises(EventRefused) as refused:
        _plan(_session(event, "2027-03-27T17:00:00", "2027-03-27T19:00:00"), event)
    assert refused.value.field == "starts_at"


def test_rescheduling_across_daylight_saving_keeps_sessions_at_their_local_time() -> None:
    event = _event()  # 27 March 2027, GMT
    session = _plan(_session(event, "2027-03-27T19:30:00", "2027-03-27T20:00:00"), event)
    moved, _ = rules.reschedule(
        event, Reschedule(starts_at=datetime(2027, 3, 28, 18), ends_at=datetime(2027, 3, 28, 21)), NOW
    )  # 28 March 2027, BST
    [shifted] = move_with_event([session], event, moved)
    assert shifted.starts_at.strftime("%H:%M %Z") == "19:30 BST"
    assert shifted.starts_at.astimezone(UTC) - session.starts_at.astimezone(UTC) == timedelta(hours=23)


def test_reminders_are_24_hours_before_the_instant_and_skip_times_already_past() -> None:
    event = _event(starts_at="2027-03-28T18:00:00", ends_at="2027-03-28T20:00:00", online_url="https://s.example/x")
    planned = {p.kind: p for p in _reminders(event, NOW)}
    assert set(planned) == {ReminderKind.day_before, ReminderKind.hour_before, ReminderKind.at_start}
    # Across the change to BST, a day before is 24 hours earlier: 17:00 GMT on the wall clock.
    assert planned[ReminderKind.day_before].due_at == datetime(2027, 3, 27, 17, tzinfo=UTC)
    assert planned[ReminderKind.at_start].due_at == event.starts_at
    late = _reminders(event, event.starts_at - timedelta(hours=5))
    assert {p.kind for p in late} == {ReminderKind.hour_before, ReminderKind.at_start}
    cancelled, _ = rules.cancel(event, "", NOW)
    assert _reminders(cancelled, NOW) == []
    draft = _event(status="draft")
    assert _reminders(draft, NOW) == []


def test_custom_reminders_in_seconds_are_custom() -> None:
    event = _event(reminders=[{"before": "PT90S"}])
    [reminder] = _reminders(event, NOW)
    assert reminder.kind is ReminderKind.custom and reminder.offset_seconds == 90


def test_weekly_series_keeps_local_time_across_the_daylight_saving_change() -> None:
    draft = SeriesDraft.model_validate(
        {
            "event": {
                "kind": "meet-up",
                "title": "Digital organisers' coffee",
                "starts_at": "2027-03-16T18:00:00",
                "ends_at": "2027-03-16T19:30:00",
                "time_zone": "Europe/London",
                "venue_name": "Coffee shop",
                "organiser_email": "events@example.org",
            },
            "rrule": "FREQ=WEEKLY;COUNT=4",
        }
    )
    found = occurrences(draft, NOW)
    assert [s.strftime("%m-%d %H:%M %Z") for s, _ in found] == [
        "03-16 18:00 GMT",
        "03-23 18:00 GMT",
        "03-30 18:00 BST",
        "04-06 18:00 BST",
    ]
    assert [s.astimezone(UTC).hour for s, _ in found] == [18, 18, 17, 17]
    assert all(e - s == timedelta(minutes=90) for s, e in found)


def test_series_rules_that_cannot_work_are_refused_on_the_rrule_field() -> None:
    base = {
        "kind": "training",
        "title": "x",
        "starts_at": "2027-01-05T18:00:00",
        "ends_at": "2027-01-05T19:00:00",
        "time_zone": "Europe/London",
        "venue_name": "Hall",
        "organiser_email": "e@example.org",
    }
    for rule in ("FREQ=SOMETIMES", "FREQ=WEEKLY;UNTIL=20200101T000000Z"):
        with pytest.raises(EventRefused) as refused:
            occurrences(SeriesDraft.model_validate({"event": base, "rrule": rule}), NOW)
        assert refused.value.field == "rrule"
    unbounded = occurrences(SeriesDraft.model_validate({"event": base, "rrule": "FREQ=DAILY"}), NOW)
    assert len(unbounded) == 100


def test_calendar_carries_the_agenda() -> None:
    event = _event()
    session = _plan(_session(event, "2027-03-27T18:30:00", "2027-03-27T19:00:00", room="Hall A", people=[CHAIR]), event)
    feed = Calendar.from_ical(to_icalendar([event], public_base_url="https://p", now=NOW, sessions=[session]))
    [entry] = feed.walk("VEVENT")
    assert "18:30 Opening [Hall A] - Gloria Cruz (chair)" in str(entry["description"])
