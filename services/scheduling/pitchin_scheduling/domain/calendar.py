"""iCalendar (RFC 5545) feeds, built with the `icalendar` package.

Every client must read the same instants: vobject (Radicale, khal) and ical.js (Thunderbird,
many web calendars) read only the first date of an RDATE that lists several, so each
VTIMEZONE observance carries one date per RDATE line, and only the transitions of the years
the feed's events fall in (a few lines a zone, instead of 1970-2038 on two long lines).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

from icalendar import Calendar, Component, vGeo
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
    # A feed or a download to add, not an invitation to answer (RFC 5546).
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", name)
    by_event: dict[str, list[Session]] = {}
    for session in sessions:
        by_event.setdefault(session.event_id, []).append(session)
    listed = list(events)
    for event in listed:
        calendar.add_component(_entry(event, by_event.get(event.event_id, []), public_base_url, now))
    if listed:
        # From a year before the first event to well after the last: every instant in the feed is covered.
        first = min(e.starts_at for e in listed).year - 1
        last = max(e.ends_at for e in listed).year + 2
        calendar.add_missing_timezones(first_date=date(first, 1, 1), last_date=date(last, 1, 1))
        for timezone in calendar.timezones:
            for observance in timezone.subcomponents:
                _one_date_per_rdate(observance)
    ical: bytes = calendar.to_ical()
    return ical


def _one_date_per_rdate(observance: Component) -> None:
    """Each RDATE date on its own line: RFC 5545 allows a list, but vobject and ical.js read only its first."""
    listed = observance.get("RDATE")
    if listed is None:
        return
    moments = [value.dt for dates in (listed if isinstance(listed, list) else [listed]) for value in dates.dts]
    del observance["RDATE"]
    for moment in moments:
        observance.add("rdate", moment)


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
