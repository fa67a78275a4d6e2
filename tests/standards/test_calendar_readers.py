"""Scheduling's iCalendar feeds read by three independent parsers to the same instants.

icalendar (what builds them), vobject (Radicale, khal) and ical.js (Thunderbird and many web
calendars) must agree on every event's start and end in UTC, in winter and in summer, in
Europe/London and America/New_York: a VTIMEZONE that one of them misreads shows an event an
hour off there.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from itertools import count

import vobject
from icalendar import Calendar

from pitchin_scheduling.domain.calendar import to_icalendar
from pitchin_scheduling.domain.events import Event, EventDraft, create_event
from tests.standards.judges import node_tool, run_node

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
_ids = count(1)

# (zone, local start, local end): winter and summer on both sides of the Atlantic, and the
# days next to each change of clock.
WHEN = [
    ("Europe/London", "2026-12-13T18:00:00", "2026-12-13T20:00:00"),
    ("Europe/London", "2027-07-01T09:30:00", "2027-07-01T17:00:00"),
    ("Europe/London", "2027-03-27T10:00:00", "2027-03-28T10:00:00"),
    ("Europe/London", "2027-10-31T09:00:00", "2027-10-31T11:00:00"),
    ("America/New_York", "2027-01-20T19:00:00", "2027-01-20T21:00:00"),
    ("America/New_York", "2027-08-10T12:00:00", "2027-08-10T13:30:00"),
    ("America/New_York", "2027-03-14T12:00:00", "2027-03-14T13:00:00"),
    ("America/New_York", "2027-11-07T08:00:00", "2027-11-07T09:00:00"),
]


def events() -> list[Event]:
    made = []
    for zone, starts, ends in WHEN:
        draft = EventDraft.model_validate(
            {
                "kind": "training",
                "title": f"Training {zone} {starts}",
                "starts_at": starts,
                "ends_at": ends,
                "time_zone": zone,
                "venue_name": "Hall",
                "organiser_email": "events@example.org",
            }
        )
        event, _ = create_event(draft, federation_id="f", organisation_id="o", now=NOW, event_id=f"evt_{next(_ids)}")
        made.append(event)
    return made


def expected(listed: list[Event]) -> dict[str, tuple[str, str]]:
    return {f"{e.event_id}@pitchin": (_utc(e.starts_at), _utc(e.ends_at)) for e in listed}


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def by_icalendar(feed: bytes) -> dict[str, tuple[str, str]]:
    calendar = Calendar.from_ical(feed)
    return {str(e["uid"]): (_utc(e.decoded("dtstart")), _utc(e.decoded("dtend"))) for e in calendar.walk("VEVENT")}


def by_vobject(feed: bytes) -> dict[str, tuple[str, str]]:
    calendar = vobject.readOne(feed.decode("utf-8"))
    return {str(e.uid.value): (_utc(e.dtstart.value), _utc(e.dtend.value)) for e in calendar.contents.get("vevent", [])}


ICAL_JS = """
import ICAL from "ical.js";
let text = "";
for await (const chunk of process.stdin) text += chunk;
const calendar = new ICAL.Component(ICAL.parse(text));
for (const zone of calendar.getAllSubcomponents("vtimezone")) ICAL.TimezoneService.register(zone);
const utc = (t) => t.convertToZone(ICAL.Timezone.utcTimezone).toString().replace(/\\.\\d+/, "").slice(0, 19) + "Z";
const out = {};
for (const entry of calendar.getAllSubcomponents("vevent")) {
  const event = new ICAL.Event(entry);
  out[event.uid] = [utc(event.startDate), utc(event.endDate)];
}
console.log(JSON.stringify(out));
"""


def by_ical_js(feed: bytes) -> dict[str, tuple[str, str]]:
    node_tool("node_modules/ical.js/package.json")
    read: dict[str, list[str]] = json.loads(run_node(ICAL_JS, feed))
    return {uid: (start, end) for uid, (start, end) in read.items()}


def test_icalendar_and_vobject_read_every_instant_as_scheduling_means_it() -> None:
    listed = events()
    feed = to_icalendar(listed, public_base_url="https://p", now=NOW)
    assert by_icalendar(feed) == expected(listed)
    assert by_vobject(feed) == expected(listed)


def test_ical_js_reads_the_same_instants() -> None:
    listed = events()
    feed = to_icalendar(listed, public_base_url="https://p", now=NOW)
    assert by_ical_js(feed) == expected(listed)


def test_a_feed_is_published_and_lists_each_zone_change_on_its_own_rdate_line() -> None:
    feed = to_icalendar(events(), public_base_url="https://p", now=NOW).decode()
    assert "\r\nMETHOD:PUBLISH\r\n" in feed
    unfolded = feed.replace("\r\n ", "")
    rdates = [line for line in unfolded.split("\r\n") if line.startswith("RDATE")]
    assert rdates and all("," not in line for line in rdates)
    # Only the years around the events: a few transitions a zone, not 1970-2038.
    assert len(rdates) < 20


def test_an_empty_feed_is_still_a_calendar_all_three_read() -> None:
    feed = to_icalendar([], public_base_url="https://p", now=NOW)
    assert by_icalendar(feed) == {} and by_vobject(feed) == {}
