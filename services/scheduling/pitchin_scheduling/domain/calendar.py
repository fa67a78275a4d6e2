"""iCalendar (RFC 5545) feeds, built with the `icalendar` package."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from icalendar import Calendar, vGeo
from icalendar import Event as CalendarEvent

from pitchin_core.contracts.scheduling import EventStatus
from pitchin_scheduling.domain.agenda import Session
from pitchin_scheduling.domain.events import Event, in_zone

# RFC 5545 STATUS for VEVENT: a cancelled event stays in the feed so calendars remove it.
_STATUS = {
    EventStatus.draft: "TENTATIVE",
    EventStatus.cancelled: "CANCELLED",
}


def to_icalendar(
    events: Iterable[Event],
    *,
    public_base_url: str,
    now: datetime,
    name: str = "Pitch In events",
    sessions: Iterable[Session] = (),
) -> bytes:
    calendar = Calendar()
    calendar.add("prodid", "-//Pitch In//scheduling//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", name)
    by_event: dict[str, list[Session]] = {}
    for session in sessions:
        by_event.setdefault(session.event_id, []).append(session)
    for event in events:
        calendar.add_component(_entry(event, by_event.get(event.event_id, []), public_base_url, now))
    calendar.add_missing_timezones()
    ical: bytes = calendar.to_ical()
    return ical


def _entry(event: Event, sessions: list[Session], public_base_url: str, now: datetime) -> CalendarEvent:
    entry = CalendarEvent()
    entry.add("uid", f"{event.event_id}@pitchin")
    entry.add("dtstamp", now)
    # The version only goes up, which is what SEQUENCE asks for: a client replaces an older copy.
    entry.add("sequence", event.version - 1)
    entry.add("dtstart", in_zone(event.starts_at, event.time_zone))
    entry.add("dtend", in_zone(event.ends_at, event.time_zone))
    entry.add("summary", event.title)
    entry.add("status", _STATUS.get(event.status, "CONFIRMED"))
    entry.add("categories", [event.kind.value])
    location = ", ".join(p for p in (event.venue_name, event.venue_address) if p) or event.online_url or ""
    entry.add("location", location)
    if event.venue_latitude is not None and event.venue_longitude is not None:
        entry.add("geo", vGeo((event.venue_latitude, event.venue_longitude)))
    entry.add("url", event.online_url or f"{public_base_url}/events/{event.event_id}")
    lines = [event.description] if event.description else []
    if event.online_url:
        lines.append(f"Online: {event.online_url}")
    if event.hashtag:
        lines.append(f"Join the conversation: {event.hashtag}")
    for session in sorted(sessions, key=lambda s: s.starts_at):
        start = in_zone(session.starts_at, event.time_zone).strftime("%H:%M")
        people = "; ".join(f"{p.name} ({p.role.value.replace('-', ' ')})" for p in session.people)
        where = f" [{session.room}]" if session.room else ""
        lines.append(f"{start} {session.title}{where}" + (f" - {people}" if people else ""))
    if lines:
        entry.add("description", "\n".join(lines))
    return entry
