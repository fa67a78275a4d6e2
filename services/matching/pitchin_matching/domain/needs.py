"""How matching sees a need, and which need events replace what it knows."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from pitchin_core.contracts.fights import NeedOpenedV1, NeedStatus, NeedUpdatedV1, Urgency
from pitchin_matching.domain.donors import primary_language

# Statuses in which matching keeps offering: the rest cancel pending offers.
OPEN_STATUSES = frozenset({NeedStatus.open.value, NeedStatus.partly_filled.value})


@dataclass(frozen=True)
class NeedState:
    need_id: str
    fight_id: str
    federation_id: str
    organisation_id: str | None
    title: str
    required_skills: tuple[tuple[str, int], ...]  # (skill slug, minimum level rank)
    nice_to_have: tuple[str, ...]
    estimated_hours: float
    deadline: datetime
    urgency: str
    remote: bool
    latitude: float | None
    longitude: float | None
    country: str | None
    language: str
    causes: tuple[str, ...]
    donors_wanted: int
    status: str
    version: int

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


def need_of(event: NeedOpenedV1 | NeedUpdatedV1) -> NeedState:
    status = event.status.value if isinstance(event, NeedUpdatedV1) else NeedStatus.open.value
    return NeedState(
        need_id=event.need_id,
        fight_id=event.fight_id,
        federation_id=event.federation_id,
        organisation_id=event.organisation_id,
        title=event.title,
        required_skills=tuple((r.skill, r.min_level.rank) for r in event.required_skills),
        nice_to_have=tuple(event.nice_to_have),
        estimated_hours=event.estimated_hours,
        deadline=event.deadline,
        urgency=event.urgency.value,
        remote=event.place.remote,
        latitude=event.place.latitude,
        longitude=event.place.longitude,
        country=event.place.country,
        language=primary_language(event.language),
        causes=tuple(event.causes),
        donors_wanted=event.donors_wanted,
        status=status,
        version=event.version,
    )


def need_supersedes(incoming_version: int, stored_version: int | None) -> bool:
    """A need event replaces the stored state only when it is newer: duplicates and late arrivals change nothing."""
    return stored_version is None or incoming_version > stored_version


def offers_wanted(
    *,
    donors_wanted: int,
    active_assignments: int,
    pending_offers: int,
    urgency: str,
    fan_out: dict[str, float],
) -> int:
    """How many new offers a need should get now.

    Each place still free gets `fan_out[urgency]` offers in flight at once (an urgent need
    asks several people and takes the first yeses; a normal one asks one at a time so
    nobody is asked in vain). The first acceptances that fill the need cancel the rest.
    """
    remaining = max(donors_wanted - active_assignments, 0)
    if remaining == 0:
        return 0
    in_flight = math.ceil(remaining * fan_out.get(urgency, 1.0))
    return max(in_flight - pending_offers, 0)


URGENCY_RANK = {Urgency.critical.value: 2, Urgency.high.value: 1, Urgency.normal.value: 0}
