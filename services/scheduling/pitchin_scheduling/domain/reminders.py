"""When an event's reminders are due: pure arithmetic on instants, so daylight saving cannot shift them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pitchin_core.contracts.scheduling import ReminderKind
from pitchin_scheduling.domain.events import Event, reminders_pending


@dataclass(frozen=True)
class PlannedReminder:
    reminder_id: str
    kind: ReminderKind
    offset_seconds: int
    due_at: datetime


def reminder_kind(offset_seconds: int) -> ReminderKind:
    return {0: ReminderKind.at_start, 3_600: ReminderKind.hour_before, 86_400: ReminderKind.day_before}.get(
        offset_seconds, ReminderKind.custom
    )


def plan_reminders(event: Event, now: datetime, new_id: Callable[[], str]) -> list[PlannedReminder]:
    """The reminders still to fire for `event` as it now is, each named by `new_id()`.

    "A day before" is 24 hours before the start instant, not the same wall-clock time on the
    previous day: across a daylight-saving change the two differ by an hour, and people read
    "in 24 hours" in the message. A reminder whose time has already passed is not set at all:
    a late "tomorrow!" an hour before the start would be wrong.
    """
    if not reminders_pending(event):
        return []
    planned = []
    for offset in event.reminder_offsets:
        # In UTC: Python subtracts on the wall clock when the zone is attached.
        due_at = event.starts_at.astimezone(UTC) - timedelta(seconds=offset)
        if due_at <= now:
            continue
        planned.append(PlannedReminder(new_id(), reminder_kind(offset), offset, due_at))
    return planned
