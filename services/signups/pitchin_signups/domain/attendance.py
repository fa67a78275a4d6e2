"""After the event: who came to a confirmed place, who did not, and what the people who came thought.

A place is *attended* once its person checked in at the door or the organiser marked them so,
*no-show* once the organiser marked it so, else *unmarked*. The organiser's latest mark wins
over the door (they may put a wrong check-in right); a check-in after a no-show mark means the
person came late, so it wins over that mark. The thank-you goes out the first time a place
is known to be attended, never twice for the same place.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pydantic import Field

from pitchin_core.contracts.common import Contract
from pitchin_core.errors import Conflict


class Outcome(StrEnum):
    attended = "attended"
    no_show = "no_show"
    unmarked = "unmarked"


class AttendanceMark(Contract):
    """What the organiser says of one confirmed place once the event has begun."""

    outcome: Outcome = Field(description="attended or no_show (unmarked is what a place is until then)")


class Feedback(Contract):
    """What a person who came thought of the event: a rating from 1 to 5 and, if they like, a comment."""

    rating: int = Field(ge=1, le=5, description="1 (poor) to 5 (excellent)")
    # No NUL: PostgreSQL cannot store it.
    comment: str = Field(default="", max_length=2000, pattern=r"^[^\x00]*$")


class AttendanceRefused(Conflict):
    """The place or its event is not in a state where attendance means anything."""

    default_title = "Attendance refused"


@dataclass(frozen=True)
class Place:
    """One booking as attendance sees it."""

    status: str  # confirmed, waitlisted, cancelled
    checked_in: bool
    mark: Outcome | None  # the organiser's latest mark, if any
    ever_attended: bool  # known to have come at some point: they were thanked then


@dataclass(frozen=True)
class Change:
    """What a mark or a check-in changes: the outcome to store and whether this is the first time
    the place is known to be attended (the thank-you is due)."""

    outcome: Outcome
    first_time: bool


def outcome_of(place: Place) -> Outcome:
    if place.status != "confirmed":
        return Outcome.unmarked
    if place.mark is not None:
        return place.mark
    return Outcome.attended if place.checked_in else Outcome.unmarked


def check_can_mark(place: Place, event_status: str, starts_at: datetime, now: datetime) -> None:
    """Only a confirmed place of an event that has begun and was not cancelled is marked."""
    if place.status != "confirmed":
        raise AttendanceRefused(f"Only confirmed places are marked; this booking is {place.status}.")
    if event_status in ("cancelled", "draft"):
        raise AttendanceRefused(f"The event is {event_status}: nobody attends it.")
    if now < starts_at:
        raise AttendanceRefused("Attendance is marked once the event has begun.")


def mark(place: Place, wanted: Outcome) -> Change | None:
    """What the organiser's mark changes (None: the place already is so, nothing to tell anyone)."""
    if wanted is Outcome.unmarked:
        raise ValueError("a mark is attended or no_show")
    if outcome_of(place) is wanted:
        return None
    return Change(wanted, first_time=wanted is Outcome.attended and not place.ever_attended)


def checked_in(place: Place) -> Change | None:
    """What a first check-in at the door changes: attended, unless the organiser already said so."""
    if place.checked_in or place.mark is Outcome.attended:
        return None
    return Change(Outcome.attended, first_time=not place.ever_attended)


@dataclass(frozen=True)
class Turnout:
    """An event's confirmed places by what became of them."""

    confirmed: int
    attended: int
    no_show: int
    unmarked: int


def turnout(places: list[Place]) -> Turnout:
    outcomes = [outcome_of(p) for p in places if p.status == "confirmed"]
    return Turnout(
        confirmed=len(outcomes),
        attended=outcomes.count(Outcome.attended),
        no_show=outcomes.count(Outcome.no_show),
        unmarked=outcomes.count(Outcome.unmarked),
    )


def check_can_give_feedback(place: Place) -> None:
    """Feedback comes from people who came (the thank-you's link), not from anyone who booked."""
    if outcome_of(place) is not Outcome.attended:
        raise AttendanceRefused("Feedback is asked of the people who came.", title="Not attended")
