"""Fights of an organisation, their needs, and how a need's lifecycle moves."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from pitchin_core.contracts.common import Contract, LanguageTag, Slug
from pitchin_core.contracts.fights import (
    FightKind,
    FightOpenedV1,
    NeedOpenedV1,
    NeedPlace,
    NeedStatus,
    NeedUpdatedV1,
    RequiredSkill,
    Urgency,
)


class NeedDraft(Contract):
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=20_000)
    required_skills: list[RequiredSkill] = Field(min_length=1, max_length=10)
    nice_to_have: list[Slug] = Field(default_factory=list, max_length=20)
    estimated_hours: float = Field(gt=0, le=2000)
    deadline: datetime
    urgency: Urgency = Urgency.normal
    place: NeedPlace = NeedPlace()
    language: LanguageTag = "en"
    donors_wanted: int = Field(default=1, ge=1, le=100)


class NeedChanges(Contract):
    """A PATCH: only the fields given change."""

    title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=20_000)
    required_skills: list[RequiredSkill] | None = Field(default=None, min_length=1, max_length=10)
    nice_to_have: list[Slug] | None = Field(default=None, max_length=20)
    estimated_hours: float | None = Field(default=None, gt=0, le=2000)
    deadline: datetime | None = None
    urgency: Urgency | None = None
    place: NeedPlace | None = None
    language: LanguageTag | None = None
    donors_wanted: int | None = Field(default=None, ge=1, le=100)


class FightDraft(Contract):
    kind: FightKind
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=20_000)
    causes: list[Slug] = Field(default_factory=list)
    needs: list[NeedDraft] = Field(default_factory=list, max_length=30)


class FightRefused(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def open_fight(
    draft: FightDraft, *, federation_id: str, organisation_id: str | None, now: datetime
) -> tuple[FightOpenedV1, list[NeedOpenedV1]]:
    if organisation_id is None:
        raise FightRefused("organisation_id", "fights belong to a member organisation: use its API key")
    fight = FightOpenedV1(
        federation_id=federation_id,
        organisation_id=organisation_id,
        fight_id=f"fgt_{uuid.uuid4().hex[:20]}",
        kind=draft.kind,
        title=draft.title.strip(),
        description=draft.description,
        causes=draft.causes,
        opened_at=now,
    )
    needs = [open_need(n, fight, now=now, field=f"needs.{i}") for i, n in enumerate(draft.needs)]
    return fight, needs


def open_need(draft: NeedDraft, fight: FightOpenedV1, *, now: datetime, field: str = "") -> NeedOpenedV1:
    prefix = f"{field}." if field else ""
    if draft.deadline <= now:
        raise FightRefused(f"{prefix}deadline", "the deadline has already passed")
    skills = [s.skill for s in draft.required_skills]
    if len(set(skills)) != len(skills):
        raise FightRefused(f"{prefix}required_skills", "each skill may be required once")
    if not draft.place.remote and draft.place.city is None and draft.place.latitude is None:
        raise FightRefused(f"{prefix}place", "an on-site need says where: a city or coordinates")
    return NeedOpenedV1(
        federation_id=fight.federation_id,
        organisation_id=fight.organisation_id,
        need_id=f"ned_{uuid.uuid4().hex[:20]}",
        fight_id=fight.fight_id,
        title=draft.title.strip(),
        description=draft.description,
        required_skills=draft.required_skills,
        nice_to_have=draft.nice_to_have,
        estimated_hours=draft.estimated_hours,
        deadline=draft.deadline,
        urgency=draft.urgency,
        place=draft.place,
        language=draft.language,
        causes=fight.causes,
        donors_wanted=draft.donors_wanted,
        opened_at=now,
    )


def status_for(assigned: int, wanted: int) -> NeedStatus:
    if assigned <= 0:
        return NeedStatus.open
    return NeedStatus.filled if assigned >= wanted else NeedStatus.partly_filled


def is_live(status: NeedStatus) -> bool:
    return status in (NeedStatus.open, NeedStatus.partly_filled, NeedStatus.filled)


def updated_need(
    current: NeedUpdatedV1, changes: NeedChanges | None, *, status: NeedStatus | None, now: datetime
) -> NeedUpdatedV1:
    """The next version of a need: the changes applied, the version bumped."""
    if not is_live(current.status):
        raise FightRefused("status", f"the need is {current.status.value} and can no longer change")
    patch = changes.model_dump(exclude_none=True) if changes else {}
    if "deadline" in patch and patch["deadline"] <= now:
        raise FightRefused("deadline", "the deadline has already passed")
    return current.model_copy(
        update={**patch, "status": status or current.status, "version": current.version + 1, "updated_at": now}
    )


def as_state(need: NeedOpenedV1) -> NeedUpdatedV1:
    """A need as first opened, in the full-state shape later versions have."""
    fields = need.model_dump(exclude={"opened_at"})
    return NeedUpdatedV1(**fields, status=NeedStatus.open, updated_at=need.opened_at)
