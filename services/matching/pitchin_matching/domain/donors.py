"""How matching sees a donor: only what ranking needs, no contact details."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from pitchin_core.contracts.common import WeeklyWindow
from pitchin_core.contracts.donors import DonorRegisteredV1, DonorUpdatedV1

MINUTES_PER_WEEK = 7 * 24 * 60
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# A registration is the baseline every update (version >= 1) supersedes; a withdrawal is final.
REGISTERED_VERSION = 0
WITHDRAWN_VERSION = 2**31 - 1


@dataclass(frozen=True)
class DonorProfile:
    donor_id: str
    federation_id: str
    organisation_id: str | None
    status: str
    version: int
    time_zone: str
    hours_per_week: float
    remote: bool
    latitude: float | None
    longitude: float | None
    country: str | None
    languages: tuple[str, ...]
    causes: tuple[str, ...]
    skills: dict[str, int]  # skill slug -> level rank (0 beginner .. 3 expert)
    # Weekly availability in UTC, as [start, end) minute-of-week pairs (Monday 00:00 UTC = 0).
    windows_utc: tuple[tuple[int, int], ...]
    registered_at: datetime | None = None


def profile_of(event: DonorRegisteredV1 | DonorUpdatedV1) -> DonorProfile:
    at = event.registered_at if isinstance(event, DonorRegisteredV1) else event.updated_at
    return DonorProfile(
        donor_id=event.donor_id,
        federation_id=event.federation_id,
        organisation_id=event.organisation_id,
        status=event.status.value,
        version=REGISTERED_VERSION if isinstance(event, DonorRegisteredV1) else event.version,
        time_zone=event.availability.time_zone,
        hours_per_week=event.availability.hours_per_week,
        remote=event.place.remote,
        latitude=event.place.latitude,
        longitude=event.place.longitude,
        country=event.place.country,
        languages=tuple(primary_language(tag) for tag in event.languages),
        causes=tuple(event.causes),
        skills={s.skill: s.level.rank for s in event.skills},
        windows_utc=windows_in_utc(event.availability.windows, event.availability.time_zone, at),
        registered_at=event.registered_at if isinstance(event, DonorRegisteredV1) else None,
    )


def supersedes(incoming_version: int, stored_version: int | None) -> bool:
    """Whether a donor event of `incoming_version` replaces what is stored (None: nothing yet)."""
    return stored_version is None or incoming_version > stored_version


def primary_language(tag: str) -> str:
    """'en-GB' and 'en' are the same language for matching: a need asks for a language, not a region."""
    return tag.split("-", 1)[0].lower()


def windows_in_utc(windows: Sequence[WeeklyWindow], time_zone: str, at: datetime) -> tuple[tuple[int, int], ...]:
    """Local weekly windows as merged UTC minute-of-week intervals.

    The zone's offset is taken in the week of `at` (when the donor said it): a window
    stated in summer time drifts an hour against UTC in winter, which is within the
    slack of 30-minute matching slots and is corrected by the donor's next update.
    A window crossing the end of the week in UTC wraps to Monday.
    """
    zone = ZoneInfo(time_zone)
    local_at = at.astimezone(zone)
    monday = (local_at - timedelta(days=local_at.weekday())).replace(hour=12, minute=0, second=0, microsecond=0)
    pieces: list[tuple[int, int]] = []
    for window in windows:
        day = DAYS.index(window.day.value)
        noon = monday + timedelta(days=day)
        offset = noon.utcoffset()
        offset_minutes = int(offset.total_seconds() // 60) if offset is not None else 0
        start = (day * 1440 + _minutes(window.start) - offset_minutes) % MINUTES_PER_WEEK
        end = start + _minutes(window.end) - _minutes(window.start)
        if end > MINUTES_PER_WEEK:
            pieces += [(start, MINUTES_PER_WEEK), (0, end - MINUTES_PER_WEEK)]
        else:
            pieces.append((start, end))
    return merge_intervals(pieces)


def merge_intervals(pieces: Sequence[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(pieces):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return tuple(merged)


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)
