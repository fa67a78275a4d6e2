"""After the event: who came, who did not, and when the thank-you is due (domain.attendance)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from pitchin_signups.domain.attendance import (
    AttendanceRefused,
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

NOW = datetime(2027, 10, 4, 18, 0, tzinfo=UTC)


def place(status: str = "confirmed", *, door: bool = False, marked: Outcome | None = None, came: bool = False) -> Place:
    return Place(status=status, checked_in=door, mark=marked, ever_attended=came)


def test_a_check_in_at_the_door_counts_as_attended_and_the_organisers_mark_wins_over_it() -> None:
    assert outcome_of(place()) is Outcome.unmarked
    assert outcome_of(place(door=True)) is Outcome.attended
    assert outcome_of(place(door=True, marked=Outcome.no_show)) is Outcome.no_show
    assert outcome_of(place("waitlisted", marked=Outcome.attended)) is Outcome.unmarked, "only confirmed places"


def test_the_first_time_a_place_is_known_attended_the_thank_you_is_due_and_never_again() -> None:
    assert mark(place(), Outcome.attended) == Change(Outcome.attended, first_time=True)
    assert mark(place(), Outcome.no_show) == Change(Outcome.no_show, first_time=False)
    # Put right after a no-show mark: attended, thanked now as never before.
    assert mark(place(marked=Outcome.no_show), Outcome.attended) == Change(Outcome.attended, first_time=True)
    # Attended, then no-show by mistake, then attended again: they were thanked the first time.
    corrected = place(marked=Outcome.no_show, came=True)
    assert mark(corrected, Outcome.attended) == Change(Outcome.attended, first_time=False)


def test_saying_it_again_changes_nothing() -> None:
    assert mark(place(marked=Outcome.attended, came=True), Outcome.attended) is None
    assert mark(place(door=True, came=True), Outcome.attended) is None, "checked in is attended already"
    assert mark(place(marked=Outcome.no_show), Outcome.no_show) is None
    with pytest.raises(ValueError):
        mark(place(), Outcome.unmarked)


def test_a_first_check_in_makes_the_place_attended_also_after_a_no_show_mark() -> None:
    assert checked_in(place()) == Change(Outcome.attended, first_time=True)
    assert checked_in(place(marked=Outcome.no_show)) == Change(Outcome.attended, first_time=True), "came late"
    assert checked_in(place(door=True, came=True)) is None, "a second scan at the door"
    assert checked_in(place(marked=Outcome.attended, came=True)) is None


def test_places_are_marked_once_the_event_began_and_only_confirmed_ones_of_an_event_that_happens() -> None:
    check_can_mark(place(), "live", NOW - timedelta(minutes=1), NOW)
    check_can_mark(place(), "ended", NOW - timedelta(days=3), NOW)
    with pytest.raises(AttendanceRefused, match="once the event has begun"):
        check_can_mark(place(), "published", NOW + timedelta(minutes=1), NOW)
    with pytest.raises(AttendanceRefused, match="cancelled"):
        check_can_mark(place(), "cancelled", NOW - timedelta(hours=1), NOW)
    for status in ("waitlisted", "cancelled"):
        with pytest.raises(AttendanceRefused, match=status):
            check_can_mark(place(status), "ended", NOW - timedelta(hours=1), NOW)


def test_turnout_counts_confirmed_places_by_what_became_of_them() -> None:
    places = [
        place(door=True),
        place(marked=Outcome.attended),
        place(marked=Outcome.no_show),
        place(door=True, marked=Outcome.no_show),
        place(),
        place("waitlisted"),
        place("cancelled", door=True),
    ]
    counts = turnout(places)
    assert (counts.confirmed, counts.attended, counts.no_show, counts.unmarked) == (5, 2, 2, 1)


def test_feedback_comes_from_people_who_came_and_its_rating_is_one_to_five() -> None:
    check_can_give_feedback(place(door=True))
    for not_there in (place(), place(marked=Outcome.no_show), place("cancelled")):
        with pytest.raises(AttendanceRefused):
            check_can_give_feedback(not_there)
    assert Feedback(rating=5, comment="Great afternoon").rating == 5
    for rating in (0, 6):
        with pytest.raises(ValidationError, match="rating"):
            Feedback(rating=rating)
    with pytest.raises(ValidationError, match="comment"):
        Feedback(rating=3, comment="x" * 2001)
