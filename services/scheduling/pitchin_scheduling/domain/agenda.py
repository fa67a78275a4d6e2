"""An event's agenda: sessions with times, rooms or tracks, and people in roles.

A person cannot be in two places at once and a room holds one session at a time: a session
that overlaps another for the same person or room (in any event of the organisation) is
refused, naming the clash (`BookedTwice`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import Field, model_validator

from pitchin_core.contracts.common import Contract
from pitchin_core.contracts.scheduling import SessionPerson
from pitchin_core.errors import Conflict, FieldError
from pitchin_scheduling.domain.events import Event, EventRefused, in_zone, localise


class SessionDraft(Contract):
    title: str = Field(min_length=1, max_length=200)
    starts_at: datetime = Field(description="Local wall-clock time in the event's zone, or an instant")
    ends_at: datetime
    room: str | None = Field(default=None, min_length=1, max_length=120)
    track: str | None = Field(default=None, min_length=1, max_length=120)
    people: list[SessionPerson] = Field(default_factory=list, max_length=30)

    @model_validator(mode="after")
    def _one_role_each(self) -> SessionDraft:
        seen = set()
        for person in self.people:
            if (person.person_id, person.role) in seen:
                raise ValueError(f"{person.name} is listed twice as {person.role.value}")
            seen.add((person.person_id, person.role))
        return self


class Session(Contract):
    session_id: str
    event_id: str
    title: str
    starts_at: datetime
    ends_at: datetime
    room: str | None = None
    track: str | None = None
    people: list[SessionPerson] = Field(default_factory=list)
    # Where the room is: rooms of the same name in two venues are two rooms.
    venue: str | None = None

    def overlaps(self, other: Session) -> bool:
        # Half-open intervals: a session ending at 10:00 and one starting at 10:00 do not clash.
        # Compared as UTC instants: Python compares times of one zone on the wall clock.
        starts, ends = self.starts_at.astimezone(UTC), self.ends_at.astimezone(UTC)
        return starts < other.ends_at.astimezone(UTC) and other.starts_at.astimezone(UTC) < ends

    def room_key(self) -> tuple[str, str] | None:
        if self.room is None:
            return None
        return ((self.venue or f"event:{self.event_id}").casefold(), self.room.casefold())


@dataclass(frozen=True)
class Clash:
    what: str  # "person" or "room"
    name: str
    session: Session

    def describe(self, time_zone: str) -> str:
        start = in_zone(self.session.starts_at, time_zone).strftime("%Y-%m-%d %H:%M")
        end = in_zone(self.session.ends_at, time_zone).strftime("%H:%M")
        return (
            f"{self.name} is already booked for '{self.session.title}' ({self.session.event_id},"
            f" {start}-{end} {time_zone})"
        )


class BookedTwice(Conflict):
    """A session would put a person or a room in two places at once (409, naming each clash)."""

    default_title = "Booked twice"
    default_kind = "/problems/clash"

    def __init__(self, clashes: list[Clash], time_zone: str) -> None:
        described = [c.describe(time_zone) for c in clashes]
        super().__init__(
            "; ".join(described),
            errors=[
                FieldError("people" if c.what == "person" else "room", d)
                for c, d in zip(clashes, described, strict=True)
            ],
            clashes=[
                {"what": c.what, "name": c.name, "session_id": c.session.session_id, "event_id": c.session.event_id}
                for c in clashes
            ],
        )
        self.clashes = clashes

    def problem_body(self) -> dict[str, Any]:
        body = super().problem_body()
        # The body keeps the member order it had before refusals became domain errors: clashes, then errors.
        body["errors"] = body.pop("errors")
        return body


def plan_session(draft: SessionDraft, event: Event, session_id: str) -> Session:
    starts = in_zone(localise(draft.starts_at, event.time_zone), event.time_zone)
    ends = in_zone(localise(draft.ends_at, event.time_zone), event.time_zone)
    if ends <= starts:
        raise EventRefused("ends_at", "a session must end after it starts")
    if starts < event.starts_at or ends > event.ends_at:
        raise EventRefused("starts_at", "a session must fit within its event's start and end")
    return Session(
        session_id=session_id,
        event_id=event.event_id,
        title=draft.title.strip(),
        starts_at=starts,
        ends_at=ends,
        room=draft.room,
        track=draft.track,
        people=draft.people,
        venue=event.venue_name,
    )


def find_clashes(session: Session, others: list[Session]) -> list[Clash]:
    """Every way `session` collides with the organisation's other sessions (itself excluded)."""
    names = {p.person_id: p.name for p in session.people}
    clashes = []
    for other in others:
        if other.session_id == session.session_id or not session.overlaps(other):
            continue
        for person in other.people:
            if person.person_id in names:
                clashes.append(Clash("person", names[person.person_id], other))
        room = session.room_key()
        if room is not None and room == other.room_key():
            clashes.append(Clash("room", f"room '{session.room}'", other))
    return clashes


def move_with_event(sessions: list[Session], before: Event, after: Event) -> list[Session]:
    """Sessions keep their place on the wall clock relative to the event's start.

    A session at 10:30 in an event starting at 09:00 stays 90 minutes in, on the local
    clock, when the event moves to a day on the other side of a daylight-saving change.
    """
    old_start = in_zone(before.starts_at, before.time_zone).replace(tzinfo=None)
    new_start = in_zone(after.starts_at, after.time_zone).replace(tzinfo=None)
    moved = []
    for session in sessions:
        start = in_zone(session.starts_at, before.time_zone).replace(tzinfo=None) - old_start + new_start
        end = in_zone(session.ends_at, before.time_zone).replace(tzinfo=None) - old_start + new_start
        shifted = session.model_copy(
            update={
                "starts_at": in_zone(localise(start, after.time_zone), after.time_zone),
                "ends_at": in_zone(localise(end, after.time_zone), after.time_zone),
            }
        )
        if shifted.ends_at > after.ends_at:
            raise EventRefused("ends_at", f"session '{session.title}' would end after the rescheduled event")
        moved.append(shifted)
    return moved
