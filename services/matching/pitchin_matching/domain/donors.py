"""How matching sees a donor: only what ranking needs, no contact details."""

from __future__ import annotations

from dataclasses import dataclass

from pitchin_core.contracts.donors import DonorRegisteredV1


@dataclass(frozen=True)
class DonorProfile:
    donor_id: str
    federation_id: str
    organisation_id: str | None
    status: str
    time_zone: str
    hours_per_week: float
    remote: bool
    languages: tuple[str, ...]
    causes: tuple[str, ...]
    skills: dict[str, int]  # skill slug -> level rank (0 beginner .. 3 expert)


def profile_of(event: DonorRegisteredV1) -> DonorProfile:
    return DonorProfile(
        donor_id=event.donor_id,
        federation_id=event.federation_id,
        organisation_id=event.organisation_id,
        status=event.status.value,
        time_zone=event.availability.time_zone,
        hours_per_week=event.availability.hours_per_week,
        remote=event.place.remote,
        languages=tuple(event.languages),
        causes=tuple(event.causes),
        skills={s.skill: s.level.rank for s in event.skills},
    )
