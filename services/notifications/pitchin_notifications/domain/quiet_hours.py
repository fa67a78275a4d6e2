"""Quiet hours in the recipient's time zone: non-urgent messages wait until they end. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pitchin_notifications.domain.messages import Priority


@dataclass(frozen=True)
class QuietHours:
    """A daily window of local time, e.g. 21:00-08:00 (may cross midnight)."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> QuietHours:
        start, _, end = text.partition("-")
        return cls(time.fromisoformat(start.strip()), time.fromisoformat(end.strip()))

    def contains(self, local: time) -> bool:
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def zone_of(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def release_at(
    now: datetime,
    zone: str | None,
    quiet: QuietHours | None,
    priority: Priority,
    send_by: datetime | None = None,
) -> datetime:
    """When a message may go: now, or the end of the recipient's quiet hours.

    Urgent messages always go now. A message that would wait past ``send_by`` (the event
    starts, the offer expires) goes now too: late is worse than early.
    """
    if quiet is None or priority is Priority.urgent:
        return now
    tz = zone_of(zone)
    local = now.astimezone(tz)
    wall = local.time().replace(tzinfo=None)
    if not quiet.contains(wall):
        return now
    day = local.date() if wall < quiet.end else local.date() + timedelta(days=1)
    # Wall-clock end of the window on that day; fold=0 takes the first of an ambiguous
    # hour, and a time in a spring-forward gap resolves to the offset before the change.
    release = datetime.combine(day, quiet.end, tzinfo=tz).astimezone(UTC)
    if release <= now:
        return now
    if send_by is not None and release > send_by:
        return now
    return release
