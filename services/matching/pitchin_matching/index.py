"""The in-memory donor index: numpy columns over every donor, for ranking a need in milliseconds.

Loaded from the read model when the process starts, then kept level with the tables'
committed rows by `follow.IndexFollower`, whichever process wrote them (each replica
consumes only some partitions, so none could learn every change from its own events).
Each catch-up re-reads a changed donor whole: profile, and load, last offer, work done and
offers declined counted from the tables. The tables stay the authority: offer-making
re-checks each chosen donor's load in SQL, so an index a moment behind can only rank,
never overload anyone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from pitchin_matching.domain.budget import RECENT_ASKS
from pitchin_matching.domain.donors import DonorProfile
from pitchin_matching.domain.needs import NeedState
from pitchin_matching.domain.ranking import (
    NO_SKILL,
    SLOT_WORDS,
    DonorColumns,
    NeedQuery,
    Policy,
    slots_of,
)

# Bits 0..62 name one language or cause each; the rest share bit 63 (a rare false match
# costs a few points, never a hard filter).
_SHARED_BIT = 63

# Each column of `DonorColumns` but the skills: its type, and what a row holds until a donor
# fills it (a NaN or -1 means unknown; see `DonorColumns`).
_LAYOUT: dict[str, tuple[type[np.generic], float | int | bool]] = {
    "federation": (np.int32, -1),
    "active": (np.bool_, False),
    "hours_per_week": (np.float32, 0.0),
    "slots": (np.uint64, 0),
    "has_windows": (np.bool_, False),
    "remote": (np.bool_, False),
    "latitude": (np.float32, math.nan),
    "longitude": (np.float32, math.nan),
    "country": (np.int16, -1),
    "languages": (np.uint64, 0),
    "causes": (np.uint64, 0),
    "load": (np.int16, 0),
    "last_asked": (np.float64, math.nan),
    "registered": (np.float64, 0.0),
    "completed": (np.int32, 0),
    "declined": (np.int32, 0),
    "pending": (np.int16, 0),
    "recent_asks": (np.float64, math.nan),
}
# Columns with more than one value per row.
_WIDTH = {"slots": (SLOT_WORDS,), "recent_asks": (RECENT_ASKS,)}


class _Bits:
    def __init__(self) -> None:
        self.codes: dict[str, int] = {}

    def bit(self, name: str, create: bool = True) -> int:
        code = self.codes.get(name)
        if code is None:
            if not create:
                return -1
            code = self.codes[name] = min(len(self.codes), _SHARED_BIT)
        return code

    def mask(self, names: Iterable[str], create: bool = True) -> int:
        mask = 0
        for name in names:
            code = self.bit(name, create)
            if code >= 0:
                mask |= 1 << code
        return mask


@dataclass
class DonorStats:
    load: int = 0
    last_asked: datetime | None = None
    completed: int = 0
    declined: int = 0
    pending: int = 0  # offers waiting for the donor's answer
    recent_asks: Sequence[datetime] = ()  # when the donor's latest offers were made (at most RECENT_ASKS)


class DonorIndex:
    def __init__(self, capacity: int = 1024) -> None:
        self._ids: list[str] = []
        self._rows: dict[str, int] = {}
        self._federations: dict[str, int] = {}
        self._countries: dict[str, int] = {}
        self._languages = _Bits()
        self._causes = _Bits()
        self._capacity = 0
        empty: dict[str, Any] = {
            name: np.empty((0, *_WIDTH.get(name, ())), dtype) for name, (dtype, _) in _LAYOUT.items()
        }
        self.columns = DonorColumns(size=0, skills={}, **empty)
        self._grow(capacity)

    def __len__(self) -> int:
        return len(self._ids)

    # --- identities -------------------------------------------------------------------

    def row_of(self, donor_id: str) -> int | None:
        return self._rows.get(donor_id)

    def donor_at(self, row: int) -> str:
        return self._ids[row]

    def rows_of(self, donor_ids: Iterable[str]) -> np.ndarray[Any, np.dtype[np.int64]]:
        return np.fromiter((r for d in donor_ids if (r := self._rows.get(d)) is not None), dtype=np.int64)

    def federation_code(self, federation_id: str) -> int:
        code = self._federations.get(federation_id)
        if code is None:
            code = self._federations[federation_id] = len(self._federations)
        return code

    # --- writes -----------------------------------------------------------------------

    def upsert(self, donor: DonorProfile, registered_at: datetime, stats: DonorStats | None = None) -> None:
        row = self._rows.get(donor.donor_id)
        if row is None:
            row = len(self._ids)
            if row >= self._capacity:
                self._grow(self._capacity * 2)
            self._ids.append(donor.donor_id)
            self._rows[donor.donor_id] = row
            self.columns.size = len(self._ids)
            stats = stats or DonorStats()
        c = self.columns
        c.federation[row] = self.federation_code(donor.federation_id)
        c.active[row] = donor.status == "active"
        for column in c.skills.values():
            column[row] = NO_SKILL
        for slug, level in donor.skills.items():
            self._skill_column(slug)[row] = level
        c.hours_per_week[row] = donor.hours_per_week
        c.slots[row] = slots_of(donor.windows_utc)
        c.has_windows[row] = bool(donor.windows_utc)
        c.remote[row] = donor.remote
        c.latitude[row] = np.nan if donor.latitude is None else donor.latitude
        c.longitude[row] = np.nan if donor.longitude is None else donor.longitude
        c.country[row] = self._country_code(donor.country)
        c.languages[row] = np.uint64(self._languages.mask(donor.languages))
        c.causes[row] = np.uint64(self._causes.mask(donor.causes))
        c.registered[row] = registered_at.timestamp()
        if stats is not None:
            c.load[row] = stats.load
            c.last_asked[row] = stats.last_asked.timestamp() if stats.last_asked else np.nan
            c.completed[row] = stats.completed
            c.declined[row] = stats.declined
            assert c.pending is not None and c.recent_asks is not None
            c.pending[row] = stats.pending
            asks = [at.timestamp() for at in stats.recent_asks[:RECENT_ASKS]]
            c.recent_asks[row] = math.nan
            c.recent_asks[row, : len(asks)] = asks

    def load_rows(self, rows: Sequence[Any]) -> None:
        """Add or replace donors read by `storage.donors_for_index` or `storage.donors_changed_since`."""
        for row in rows:
            skills = dict(item.rsplit("=", 1) for item in row["skills"])
            windows = row["windows_utc"]
            profile = DonorProfile(
                donor_id=row["donor_id"],
                federation_id=row["federation_id"],
                organisation_id=None,
                status=row["status"],
                version=0,
                time_zone="UTC",
                hours_per_week=float(row["hours_per_week"]),
                remote=row["remote"],
                latitude=row["latitude"],
                longitude=row["longitude"],
                country=row["country"],
                languages=tuple(row["languages"]),
                causes=tuple(row["causes"]),
                skills={slug: int(level) for slug, level in skills.items()},
                windows_utc=tuple(zip(windows[0::2], windows[1::2], strict=True)),
            )
            stats = DonorStats(
                load=int(row["load"]),
                last_asked=row["last_asked"],
                completed=int(row["completed"]),
                declined=int(row["declined"]),
                pending=int(row["pending"]),
                recent_asks=tuple(row["recent_asks"]),
            )
            self.upsert(profile, row["registered_at"], stats)

    # --- reads ------------------------------------------------------------------------

    def query(self, need: NeedState, policy: Policy, collaboration: np.ndarray[Any, np.dtype[np.uint64]]) -> NeedQuery:
        language = self._languages.bit(need.language, create=False)
        share = need.estimated_hours / max(need.donors_wanted, 1)
        return NeedQuery(
            federation=self.federation_code(need.federation_id),
            required=need.required_skills,
            nice_to_have=need.nice_to_have,
            share_hours=share,
            deadline=need.deadline.timestamp(),
            urgency=need.urgency,
            remote=need.remote,
            latitude=need.latitude,
            longitude=need.longitude,
            country=self._countries.get(need.country, -1) if need.country else -1,
            language_bit=0 if language < 0 else 1 << language,
            language=need.language,
            cause_bits=self._causes.mask(need.causes, create=False),
            cause_count=len(need.causes),
            collaboration=collaboration,
        )

    # --- storage ----------------------------------------------------------------------

    def _skill_column(self, slug: str) -> np.ndarray[Any, np.dtype[np.int8]]:
        skills = self.columns.skills
        assert isinstance(skills, dict)
        column = skills.get(slug)
        if column is None:
            column = skills[slug] = np.full(self._capacity, NO_SKILL, dtype=np.int8)
        return column

    def _country_code(self, country: str | None) -> int:
        if country is None:
            return -1
        code = self._countries.get(country)
        if code is None:
            code = self._countries[country] = len(self._countries)
        return code

    def _grow(self, capacity: int) -> None:
        capacity = max(capacity, 16)
        c = self.columns

        def grown(array: np.ndarray[Any, Any], fill: float | int | bool) -> np.ndarray[Any, Any]:
            shape = (capacity, *array.shape[1:])
            bigger = np.full(shape, fill, dtype=array.dtype)
            bigger[: array.shape[0]] = array
            return bigger

        for name, (_, fill) in _LAYOUT.items():
            setattr(c, name, grown(getattr(c, name), fill))
        c.skills = {slug: grown(column, NO_SKILL) for slug, column in c.skills.items()}
        self._capacity = capacity
