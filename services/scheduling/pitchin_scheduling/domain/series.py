"""Series of events by recurrence rule (RFC 5545 RRULE), expanded on the event's wall clock."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from dateutil.rrule import rrule, rrulestr
from pydantic import Field, field_validator

from pitchin_core.contracts.common import Contract
from pitchin_scheduling.domain.events import EventDraft, EventRefused, in_zone, localise

MAX_OCCURRENCES = 100
# An unbounded rule (no COUNT or UNTIL) is cut here rather than refused: "every Tuesday" is normal.
HORIZON = timedelta(days=366)


class SeriesDraft(Contract):
    event: EventDraft = Field(description="The first occurrence; the rule repeats it")
    rrule: str = Field(min_length=5, max_length=500, examples=["FREQ=WEEKLY;BYDAY=TU;COUNT=6"])

    @field_validator("rrule")
    @classmethod
    def _one_rule(cls, text: str) -> str:
        text = text.strip().removeprefix("RRULE:")
        if "\n" in text or "DTSTART" in text.upper():
            raise ValueError("give one RRULE's parts (FREQ=...;...), the start comes from the event")
        return text


def occurrences(draft: SeriesDraft, now: datetime) -> list[tuple[datetime, datetime]]:
    """Start and end of each occurrence that has not started yet.

    The rule runs on aware times in the event's zone: dateutil adds days and weeks to the
    wall clock and zoneinfo gives each result its own UTC offset, so a weekly 18:00 meet-up
    stays at 18:00 local when the clocks change and its UTC time moves instead. Each
    occurrence lasts the same wall-clock length as the first.
    """
    event = draft.event
    zone = ZoneInfo(event.time_zone)
    first_start = localise(event.starts_at, event.time_zone)
    first_end = localise(event.ends_at, event.time_zone)
    wall_length = first_end.replace(tzinfo=None) - first_start.replace(tzinfo=None)
    try:
        rule = rrulestr(draft.rrule, dtstart=first_start.replace(tzinfo=zone))
    except (ValueError, TypeError) as exc:
        raise EventRefused("rrule", f"not a recurrence rule this service understands: {exc}") from exc
    if not isinstance(rule, rrule):
        raise EventRefused("rrule", "give a single RRULE")
    horizon = now + HORIZON
    found: list[tuple[datetime, datetime]] = []
    try:
        for start in rule:
            if start > horizon or len(found) == MAX_OCCURRENCES:
                break
            if start <= now:
                continue
            end = (start.replace(tzinfo=None) + wall_length).replace(tzinfo=zone)
            found.append((in_zone(start, event.time_zone), in_zone(end, event.time_zone)))
    except (ValueError, TypeError) as exc:
        raise EventRefused("rrule", f"the recurrence rule cannot be expanded: {exc}") from exc
    if not found:
        raise EventRefused("rrule", "the rule gives no occurrence in the coming year")
    return found
