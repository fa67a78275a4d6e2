from datetime import UTC, datetime

import pytest
from icalendar import Calendar
from pydantic import ValidationError

from pitchin_scheduling.domain.events import EventDraft, EventRefused, create_event, to_icalendar

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


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


def test_wall_clock_time_is_read_in_the_events_zone_across_daylight_saving() -> None:
    # 28 March 2027 is the day the UK moves to BST: 09:00 local is 08:00 UTC.
    event = create_event(_draft(), federation_id="f", organisation_id="o", now=NOW)
    assert event.starts_at.astimezone(UTC) == datetime(2027, 3, 28, 8, 0, tzinfo=UTC)
    winter = create_event(
        _draft(starts_at="2027-01-10T09:00:00", ends_at="2027-01-10T10:00:00"),
        federation_id="f",
        organisation_id="o",
        now=NOW,
    )
    assert winter.starts_at.astimezone(UTC) == datetime(2027, 1, 10, 9, 0, tzinfo=UTC)


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
        )
    assert refused.value.field == "starts_at"
    with pytest.raises(EventRefused) as refused:
        create_event(_draft(), federation_id="f", organisation_id=None, now=NOW)
    assert refused.value.field == "organisation_id"


def test_icalendar_feed_parses_back_with_the_same_instant_and_zone() -> None:
    event = create_event(_draft(), federation_id="f", organisation_id="o", now=NOW)
    feed = Calendar.from_ical(to_icalendar([event], public_base_url="https://p", now=NOW))
    [entry] = feed.walk("VEVENT")
    start = entry.decoded("dtstart")
    assert start == event.starts_at and str(start.tzinfo) == "Europe/London"
    assert str(entry["uid"]) == f"{event.event_id}@pitchin"
    assert len(feed.walk("VTIMEZONE")) == 1
