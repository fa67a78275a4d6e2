"""Times as a reader reads them: in their own zone, in words; and local form input into instants."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from babel.core import UnknownLocaleError
from babel.dates import format_datetime

_ZONES: frozenset[str] | None = None
DASH = "\u2013"


def zone_names() -> frozenset[str]:
    """Every IANA zone name this machine knows (computed once)."""
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(z for z in available_timezones() if "/" in z or z == "UTC")
    return _ZONES


COMMON_ZONES = (
    "Europe/London",
    "Europe/Dublin",
    "Europe/Paris",
    "Europe/Berlin",
    "Europe/Madrid",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Toronto",
    "America/Mexico_City",
    "Australia/Sydney",
    "Pacific/Auckland",
    "Asia/Kolkata",
    "Africa/Johannesburg",
    "UTC",
)


def is_zone(name: str) -> bool:
    if not name or name not in zone_names():
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def reader_zone(preferred: str | None, fallback: str) -> str:
    """The reader's zone if we know a valid one, else the fallback (the event's own zone)."""
    if preferred and is_zone(preferred):
        return preferred
    return fallback if is_zone(fallback) else "UTC"


def as_datetime(value: datetime | str | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _day_and_time(local: datetime, language: str) -> str:
    """``Wed 4 Oct 2027, 18:30``; day and month names in the reader's language (CLDR, via Babel)."""
    if language == "en":
        return f"{local:%a} {local.day} {local:%b %Y, %H:%M}"
    try:
        return str(format_datetime(local, "EEE d MMM y, HH:mm", tzinfo=local.tzinfo, locale=language))
    except (UnknownLocaleError, ValueError):
        return f"{local:%a} {local.day} {local:%b %Y, %H:%M}"


def format_when(moment: datetime | str | None, zone: str, language: str = "en") -> str:
    """``Wed 4 Oct 2027, 18:30 BST``: a day a person recognises, in the given zone and language.

    The zone's abbreviation stays as the zone database gives it (BST, EST, CET): readers see it
    on tickets and calendars in that form whatever their language.
    """
    aware = as_datetime(moment)
    if aware is None:
        return ""
    local = aware.astimezone(ZoneInfo(zone)) if aware.tzinfo else aware
    return f"{_day_and_time(local, language)} {local.tzname() or ''}".strip()


def format_span(start: datetime | str | None, end: datetime | str | None, zone: str, language: str = "en") -> str:
    """``Wed 4 Oct 2027, 18:30-20:00 BST`` (with an en dash), or both ends in full when they fall on different days."""
    s, e = as_datetime(start), as_datetime(end)
    if s is None:
        return ""
    if e is None:
        return format_when(s, zone, language)
    ls, le = s.astimezone(ZoneInfo(zone)), e.astimezone(ZoneInfo(zone))
    if ls.date() == le.date():
        return f"{_day_and_time(ls, language)}{DASH}{le:%H:%M} {le.tzname() or ''}".strip()
    return f"{format_when(ls, zone, language)} {DASH} {format_when(le, zone, language)}"


def iso_instant(moment: datetime | str | None) -> str:
    """The machine-readable form for <time datetime=...>."""
    aware = as_datetime(moment)
    return aware.isoformat() if aware else ""


def parse_date(text: str) -> date | None:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        return None


def parse_time(text: str) -> time | None:
    try:
        parsed = time.fromisoformat(text.strip())
    except ValueError:
        return None
    return parsed.replace(second=0, microsecond=0)


def parse_local(text: str, zone: str) -> datetime | None:
    """A ``datetime-local`` field (``2027-10-04T18:30``, or with a space) in the given zone."""
    cleaned = text.strip().replace(" ", "T")
    if not cleaned:
        return None
    try:
        naive = datetime.fromisoformat(cleaned)
    except ValueError:
        return None
    if naive.tzinfo is not None:
        return naive
    return naive.replace(tzinfo=ZoneInfo(zone))


def end_of_day(day: date, zone: str) -> datetime:
    return datetime.combine(day, time(23, 59), tzinfo=ZoneInfo(zone))
