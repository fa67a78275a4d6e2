"""An event of an organisation as the API accepts it, and the fact that it was created."""

from __future__ import annotations

import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

from icalendar import Calendar
from icalendar import Event as CalendarEvent
from pydantic import EmailStr, Field, HttpUrl, model_validator

from pitchin_core.contracts.common import Contract, TimeZoneName
from pitchin_core.contracts.scheduling import EventCreatedV1, EventKind


class EventDraft(Contract):
    kind: EventKind
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=20_000)
    starts_at: datetime = Field(description="Local wall-clock time in `time_zone`, or an instant with an offset")
    ends_at: datetime
    time_zone: TimeZoneName
    venue_name: str | None = Field(default=None, max_length=200)
    venue_address: str | None = Field(default=None, max_length=500)
    online_url: HttpUrl | None = None
    hashtag: str | None = Field(default=None, pattern=r"^#?[A-Za-z0-9_]{1,100}$")
    capacity: int | None = Field(default=None, ge=1, le=1_000_000)
    free_places: bool = True
    organiser_email: EmailStr

    @model_validator(mode="after")
    def _where_and_when(self) -> EventDraft:
        if self.venue_name is None and self.online_url is None:
            raise ValueError("an event needs a venue_name, an online_url, or both")
        if localise(self.ends_at, self.time_zone) <= localise(self.starts_at, self.time_zone):
            raise ValueError("ends_at must be later than starts_at")
        return self


class EventRefused(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def localise(moment: datetime, time_zone: str) -> datetime:
    """A naive time is wall-clock time in the event's zone; an aware one is kept as given."""
    return moment.replace(tzinfo=ZoneInfo(time_zone)) if moment.tzinfo is None else moment


def create_event(
    draft: EventDraft, *, federation_id: str, organisation_id: str | None, now: datetime
) -> EventCreatedV1:
    if organisation_id is None:
        raise EventRefused("organisation_id", "events belong to a member organisation: use its API key")
    starts_at = localise(draft.starts_at, draft.time_zone)
    if starts_at <= now:
        raise EventRefused("starts_at", "an event cannot start in the past")
    return EventCreatedV1(
        federation_id=federation_id,
        organisation_id=organisation_id,
        event_id=f"evt_{uuid.uuid4().hex[:20]}",
        kind=draft.kind,
        title=draft.title.strip(),
        starts_at=starts_at,
        ends_at=localise(draft.ends_at, draft.time_zone),
        time_zone=draft.time_zone,
        venue_name=draft.venue_name,
        online_url=str(draft.online_url) if draft.online_url else None,
        capacity=draft.capacity,
        free_places=draft.free_places,
        organiser_email=draft.organiser_email,
    )


def to_icalendar(events: list[EventCreatedV1], *, public_base_url: str, now: datetime) -> bytes:
    calendar = Calendar()
    calendar.add("prodid", "-//Pitch In//scheduling//EN")
    calendar.add("version", "2.0")
    for event in events:
        entry = CalendarEvent()
        entry.add("uid", f"{event.event_id}@pitchin")
        entry.add("dtstamp", now)
        zone = ZoneInfo(event.time_zone)
        entry.add("dtstart", event.starts_at.astimezone(zone))
        entry.add("dtend", event.ends_at.astimezone(zone))
        entry.add("summary", event.title)
        entry.add("location", event.venue_name or event.online_url or "")
        entry.add("url", f"{public_base_url}/events/{event.event_id}")
        calendar.add_component(entry)
    calendar.add_missing_timezones()
    ical: bytes = calendar.to_ical()
    return ical
