from datetime import UTC, datetime
from itertools import count
from typing import Any

import pytest
from icalendar import Calendar
from pydantic import ValidationError

from pitchin_core.contracts.scheduling import (
    EventCancelledV1,
    EventCreatedV1,
    EventPublishedV1,
    EventRescheduledV1,
    EventStartedV1,
    EventStatus,
    EventUpdatedV1,
    LivestreamStartedV1,
    LivestreamStatus,
    RecordingAvailableV1,
)
from pitchin_scheduling.domain import events as rules
from pitchin_scheduling.domain.calendar import to_icalendar
from pitchin_scheduling.domain.events import (
    Event,
    EventChanges,
    EventDraft,
    EventRefused,
    Reschedule,
    TransitionRefused,
    create_event,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
_serial = count(1)


def _new_id() -> str:
    return f"evt_{next(_serial)}"


def _draft(**overrides: object) -> EventDraft:
    body: dict[str, object] = {
        "kind": "training",
        "title": "Social media for organisations",
        "starts_at": "2027-03-28T09:00:00",
        "ends_at": "2027-03-28T17:00:00",
        "time_zone": "Europe/London",
        "venue_name": "Murphy Institute",
        "organiser_email": "events@example.org",
    }
    body.update(overrides)
    return EventDraft.model_validate(body)


def _event(**overrides: object) -> Event:
    event, _ = create_event(_draft(**overrides), federation_id="f", organisation_id="o", now=NOW, event_id=_new_id())
    return event


def test_wall_clock_time_is_read_in_the_events_zone_across_daylight_saving() -> None:
    # 28 March 2027 is the day the UK moves to BST: 09:00 local is 08:00 UTC.
    assert _event().starts_at.astimezone(UTC) == datetime(2027, 3, 28, 8, 0, tzinfo=UTC)
    winter = _event(starts_at="2027-01-10T09:00:00", ends_at="2027-01-10T10:00:00")
    assert winter.starts_at.astimezone(UTC) == datetime(2027, 1, 10, 9, 0, tzinfo=UTC)


def test_an_instant_given_with_an_offset_is_kept_and_shown_on_the_events_clock() -> None:
    event = _event(starts_at="2027-06-01T12:00:00Z", ends_at="2027-06-01T14:00:00Z", time_zone="America/New_York")
    assert event.starts_at.isoformat() == "2027-06-01T08:00:00-04:00"


def test_a_skipped_wall_clock_time_reads_as_rfc_5545_says() -> None:
    # 01:30 does not exist in London on 28 March 2027; RFC 5545 reads it with the offset before
    # the gap, i.e. 01:30 UTC, shown as 02:30 BST.
    event = _event(starts_at="2027-03-28T01:30:00", ends_at="2027-03-28T03:30:00")
    assert event.starts_at.astimezone(UTC) == datetime(2027, 3, 28, 1, 30, tzinfo=UTC)
    assert event.starts_at.strftime("%H:%M %Z") == "02:30 BST"


def test_an_event_needs_a_place_and_must_end_after_it_starts() -> None:
    with pytest.raises(ValidationError, match="venue_name, an online_url"):
        _draft(venue_name=None)
    with pytest.raises(ValidationError, match="ends_at must be later"):
        _draft(ends_at="2027-03-28T08:00:00")


def test_past_events_and_federation_keys_are_refused() -> None:
    with pytest.raises(EventRefused) as refused:
        create_event(
            _draft(starts_at="2020-01-01T09:00:00", ends_at="2020-01-01T10:00:00"),
            federation_id="f",
            organisation_id="o",
            now=NOW,
            event_id=_new_id(),
        )
    assert refused.value.field == "starts_at"
    with pytest.raises(EventRefused) as refused:
        create_event(_draft(), federation_id="f", organisation_id=None, now=NOW, event_id=_new_id())
    assert refused.value.field == "organisation_id"


def test_registration_settings_are_checked_against_the_venue_and_the_start() -> None:
    with pytest.raises(EventRefused) as refused:
        _event(capacity=80, venue_capacity=60)
    assert refused.value.field == "capacity"
    with pytest.raises(EventRefused) as refused:
        _event(booking_deadline="2027-03-28T10:00:00")
    assert refused.value.field == "booking_deadline"
    event = _event(capacity=60, venue_capacity=60, booking_deadline="2027-03-27T18:00:00", waitlist=False)
    assert event.booking_deadline is not None and event.booking_deadline.isoformat() == "2027-03-27T18:00:00+00:00"


def test_created_published_event_emits_created_and_published() -> None:
    _, facts = create_event(
        _draft(hashtag="PitchIn"), federation_id="f", organisation_id="o", now=NOW, event_id=_new_id()
    )
    assert [type(f) for f in facts] == [EventCreatedV1, EventPublishedV1]
    assert facts[0].model_dump()["hashtag"] == "#PitchIn"
    _, facts = create_event(_draft(status="draft"), federation_id="f", organisation_id="o", now=NOW, event_id=_new_id())
    assert [type(f) for f in facts] == [EventCreatedV1]


def test_default_reminders_add_one_at_the_start_for_online_events() -> None:
    assert _event().reminder_offsets == [86_400, 3_600]
    assert _event(online_url="https://stream.example/panel").reminder_offsets == [86_400, 3_600, 0]
    assert _event(reminders=[{"before": "PT30S"}, {"before": 0}]).reminder_offsets == [30, 0]
    with pytest.raises(ValidationError, match="before the start"):
        _draft(reminders=[{"before": -5}])


def test_lifecycle_follows_draft_published_live_ended_archived() -> None:
    event = _event(status="draft")
    event, facts = rules.publish(event, NOW)
    assert event.status is EventStatus.published and isinstance(facts[0], EventPublishedV1)
    event, facts = rules.start(event, NOW)
    assert event.status is EventStatus.live and isinstance(facts[0], EventStartedV1)
    with pytest.raises(TransitionRefused, match="cannot cancel an event that is live"):
        rules.cancel(event, "rain", NOW)
    event, _ = rules.end(event, NOW)
    event, _ = rules.archive(event, NOW)
    assert event.status is EventStatus.archived and event.version == 5


def test_cancel_names_the_reason_and_the_version_goes_up() -> None:
    event, facts = rules.cancel(_event(), "venue flooded", NOW)
    [fact] = facts
    assert isinstance(fact, EventCancelledV1) and fact.reason == "venue flooded" and fact.version == 2
    with pytest.raises(TransitionRefused):
        rules.publish(event, NOW)


def test_livestream_has_its_own_state_and_starting_it_puts_the_event_live() -> None:
    event = _event(kind="panel", online_url="https://stream.example/panel", hashtag="#UnionsOnline")
    assert event.livestream_status is LivestreamStatus.scheduled
    event, facts = rules.start_livestream(event, NOW)
    assert event.status is EventStatus.live and event.livestream_status is LivestreamStatus.live
    assert [type(f) for f in facts] == [LivestreamStartedV1, EventStartedV1]
    with pytest.raises(TransitionRefused):
        rules.recording_available(event, "https://video.example/r", NOW)
    event, _ = rules.end_livestream(event, NOW)
    event, facts = rules.recording_available(event, "https://video.example/r", NOW)
    assert event.livestream_status is LivestreamStatus.recording_available
    assert isinstance(facts[0], RecordingAvailableV1)
    with pytest.raises(TransitionRefused, match="without a livestream"):
        rules.start_livestream(_event(), NOW)


def test_update_reports_what_changed_and_nothing_when_nothing_did() -> None:
    event = _event()
    same, facts = rules.update(event, EventChanges.model_validate({"title": event.title}), NOW)
    assert facts == [] and same == event
    changed, facts = rules.update(event, EventChanges.model_validate({"title": "New", "capacity": 40}), NOW)
    [fact] = facts
    assert isinstance(fact, EventUpdatedV1) and fact.changed == ["capacity", "title"] and changed.version == 2
    with pytest.raises(EventRefused) as refused:
        rules.update(event, EventChanges.model_validate({"venue_name": None}), NOW)
    assert refused.value.field == "venue_name"


def test_reschedule_across_daylight_saving_keeps_the_wall_clock_and_moves_the_deadline() -> None:
    event = _event(
        starts_at="2027-03-20T09:00:00", ends_at="2027-03-20T17:00:00", booking_deadline="2027-03-19T09:00:00"
    )
    moved, facts = rules.reschedule(
        event, Reschedule(starts_at=datetime(2027, 4, 3, 9), ends_at=datetime(2027, 4, 3, 17), reason="strike"), NOW
    )
    [fact] = facts
    assert isinstance(fact, EventRescheduledV1)
    assert fact.previous_starts_at == event.starts_at and fact.reason == "strike"
    assert moved.starts_at.astimezone(UTC) == datetime(2027, 4, 3, 8, tzinfo=UTC)  # 09:00 BST
    assert moved.booking_deadline is not None
    assert moved.booking_deadline.astimezone(UTC) == datetime(2027, 4, 2, 8, tzinfo=UTC)
    with pytest.raises(EventRefused) as refused:
        rules.reschedule(event, Reschedule(starts_at=datetime(2020, 1, 1), ends_at=datetime(2020, 1, 2)), NOW)
    assert refused.value.field == "starts_at"


def test_icalendar_feed_parses_back_with_the_same_instant_zone_and_status() -> None:
    event = _event(venue_latitude=52.51, venue_longitude=-2.08, hashtag="Dudley")
    cancelled, _ = rules.cancel(event, "", NOW)
    other = _event(time_zone="America/New_York", title="Panel")
    feed = Calendar.from_ical(to_icalendar([cancelled, other], public_base_url="https://p", now=NOW))
    entries: dict[str, Any] = {str(e["uid"]): e for e in feed.walk("VEVENT")}
    first = entries[f"{event.event_id}@pitchin"]
    start = first.decoded("dtstart")
    assert start == event.starts_at and str(start.tzinfo) == "Europe/London"
    assert str(first["status"]) == "CANCELLED" and int(first["sequence"]) == 1
    assert first["geo"].latitude == 52.51 and "#Dudley" in str(first["description"])
    second = entries[f"{other.event_id}@pitchin"]
    assert str(second.decoded("dtstart").tzinfo) == "America/New_York" and str(second["status"]) == "CONFIRMED"
    assert {str(z["tzid"]) for z in feed.walk("VTIMEZONE")} == {"Europe/London", "America/New_York"}
