"""Series of events by recurrence rule (RFC 5545 RRULE), expanded on the event's wall clock."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from dateutil.rrule import rrule, rrulestr
from pydantic import Field, field_validator

from pitchin_core.contracts.common import Contract
from pitchin_scheduling.domain.events import EventDraft, EventRefused, in_zone, localise

MAX_OCCURRENCES = 100
# An unbounded rule (no COUNT or UNTIL) is cut here rather than refused: "every Tuesday" is normal.
HORIZON = timedelta(days=366)

# The RRULE a series may use: what people's calendars make (Google, Outlook, Thunderbird),
# nothing finer than a day. dateutil walks a rule period by period until it finds an
# occurrence, up to the year 9999: a rule no date can satisfy ("FREQ=DAILY;BYMONTH=2;
# BYMONTHDAY=30") held the event loop for 6 s, FREQ=HOURLY for 9 s. So the parts are
# checked before any expansion, and only rules that find a date within a few periods pass.
FREQUENCIES = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
PARTS = frozenset({"FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "BYMONTH", "BYSETPOS", "WKST"})
MAX_INTERVAL = 52
# The longest a month can be, by month (February of a leap year).
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_WEEKDAY = re.compile(r"^([+-]?[1-5])?(MO|TU|WE|TH|FR|SA|SU)$")


def check_rule(text: str) -> dict[str, str]:
    """The rule's parts, or EventRefused naming what to change; cheap, and before any expansion."""
    parts: dict[str, str] = {}
    for part in text.split(";"):
        name, _, value = part.partition("=")
        name = name.strip().upper()
        if not value or name in parts:
            raise EventRefused("rrule", f"each part once, as NAME=value ({part!r} is not)")
        if name not in PARTS:
            raise EventRefused("rrule", f"{name} is not taken here; use {', '.join(sorted(PARTS))}")
        parts[name] = value.strip().upper()
    freq = parts.get("FREQ")
    if freq not in FREQUENCIES:
        raise EventRefused(
            "rrule", f"FREQ must be one of {', '.join(FREQUENCIES)} (a series repeats by the day or longer)"
        )
    if "COUNT" in parts and not (parts["COUNT"].isdigit() and 1 <= int(parts["COUNT"]) <= MAX_OCCURRENCES):
        raise EventRefused("rrule", f"COUNT must be from 1 to {MAX_OCCURRENCES}")
    if "INTERVAL" in parts and not (parts["INTERVAL"].isdigit() and 1 <= int(parts["INTERVAL"]) <= MAX_INTERVAL):
        raise EventRefused("rrule", f"INTERVAL must be from 1 to {MAX_INTERVAL}")
    days = [_WEEKDAY.match(d) for d in parts["BYDAY"].split(",")] if "BYDAY" in parts else []
    if not all(days):
        raise EventRefused("rrule", "BYDAY takes weekdays (MO..SU), each with an optional position from -5 to 5")
    positioned = any(m and m.group(1) for m in days)
    if positioned and not all(m and m.group(1) for m in days):
        # dateutil finds nothing for "MO,-1FR" and searches to the year 9999 (measured: 0.9 s).
        raise EventRefused("rrule", "BYDAY takes plain weekdays (MO,TU) or positioned ones (1MO,-1FR), not both")
    if positioned and freq not in ("MONTHLY", "YEARLY"):
        raise EventRefused("rrule", "a BYDAY position (e.g. 1MO) is for FREQ=MONTHLY or YEARLY (RFC 5545)")
    months = _numbers(parts, "BYMONTH", 1, 12, signed=False)
    month_days = _numbers(parts, "BYMONTHDAY", 1, 31, signed=True)
    if month_days and freq == "WEEKLY":
        raise EventRefused("rrule", "BYMONTHDAY is not for FREQ=WEEKLY (RFC 5545)")
    if month_days and (positioned or "BYSETPOS" in parts):
        # Such pairs ("the 1st, if it is the 5th Monday") may never meet: dateutil would search to 9999.
        raise EventRefused("rrule", "use BYMONTHDAY or a position (BYDAY=1MO, BYSETPOS), not both")
    if month_days and not any(abs(d) <= _MONTH_DAYS[m - 1] for m in months or range(1, 13) for d in month_days):
        raise EventRefused("rrule", "no month in BYMONTH has a day in BYMONTHDAY")
    positions = _numbers(parts, "BYSETPOS", 1, 5, signed=True)
    if positions and (positioned or any(abs(p) > 4 * len(days) for p in positions)):
        # A month has at least four of each weekday: a position past that may never be there.
        raise EventRefused("rrule", "BYSETPOS counts among plain BYDAY days (no 1MO), at most four per day given")
    if positions and (not days or freq not in ("MONTHLY", "YEARLY")):
        raise EventRefused(
            "rrule", "BYSETPOS picks among a month's or year's BYDAY days: FREQ=MONTHLY or YEARLY with BYDAY"
        )
    if int(parts.get("INTERVAL", "1")) > 1:
        # A step can keep landing beside what the filter wants (every 7th day never a Tuesday,
        # every 12th month always February): with a step, only filters every period can meet.
        if months or any(abs(d) > 28 for d in month_days) or (days and freq == "DAILY"):
            raise EventRefused(
                "rrule", "with INTERVAL, use no BYMONTH, BYMONTHDAY up to 28, and BYDAY only weekly or longer"
            )
    return parts


def _numbers(parts: dict[str, str], name: str, low: int, high: int, *, signed: bool) -> list[int]:
    if name not in parts:
        return []
    values: list[int] = []
    for item in parts[name].split(","):
        try:
            value = int(item)
        except ValueError:
            value = 0
        if not (low <= abs(value) <= high) or (value < 0 and not signed):
            span = f"{low} to {high}" + (f" or -{high} to -{low}" if signed else "")
            raise EventRefused("rrule", f"{name} takes numbers from {span}")
        values.append(value)
    return values


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
    check_rule(draft.rrule)
    if first_start <= now:
        # Checked before the walk: a start in 1900 would be walked for every day since.
        raise EventRefused("event.starts_at", "the series' first event must start in the future")
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
