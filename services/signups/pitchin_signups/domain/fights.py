"""Fights of an organisation, their needs, and how a need's lifecycle moves."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import Field

from pitchin_core.contracts.common import MAX_CAUSES, Contract, EventData, LanguageTag, Slug
from pitchin_core.contracts.fights import (
    FightKind,
    FightOpenedV1,
    NeedClosedV1,
    NeedFilledV1,
    NeedOpenedV1,
    NeedPlace,
    NeedStatus,
    NeedUpdatedV1,
    RequiredSkill,
    Urgency,
)
from pitchin_core.contracts.matching import AssignmentConfirmedV1, AssignmentReleasedV1
from pitchin_core.errors import Conflict, Refused


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
    causes: list[Slug] = Field(default_factory=list, max_length=MAX_CAUSES)
    needs: list[NeedDraft] = Field(default_factory=list, max_length=30)


class FightRefused(Refused):
    """A fight (or one of the needs it opens with) that breaks a rule, naming the field to change."""

    default_title = "Fight refused"


class NeedRefused(FightRefused):
    """A need added to an open fight that breaks a rule."""

    default_title = "Need refused"


class NeedChangeRefused(FightRefused):
    """A change to a need that breaks a rule."""

    default_title = "Change refused"


class NeedNotLive(NeedChangeRefused):
    """A change to a need that was closed, cancelled or expired: its state, not the request, is in the way."""

    status = 409


def open_fight(
    draft: FightDraft,
    *,
    fight_id: str,
    need_ids: Sequence[str],
    federation_id: str,
    organisation_id: str | None,
    now: datetime,
) -> tuple[FightOpenedV1, list[NeedOpenedV1]]:
    """A fight and the needs it opens with; `need_ids` gives one id per need of the draft, in order."""
    if organisation_id is None:
        raise FightRefused("organisation_id", "fights belong to a member organisation: use its API key")
    fight = FightOpenedV1(
        federation_id=federation_id,
        organisation_id=organisation_id,
        fight_id=fight_id,
        kind=draft.kind,
        title=draft.title.strip(),
        description=draft.description,
        causes=draft.causes,
        opened_at=now,
    )
    needs = [
        _need(n, fight, need_id, now=now, field=f"needs.{i}.", refused=FightRefused)
        for i, (n, need_id) in enumerate(zip(draft.needs, need_ids, strict=True))
    ]
    return fight, needs


def open_need(draft: NeedDraft, fight: FightOpenedV1, *, need_id: str, now: datetime) -> NeedOpenedV1:
    """A need added to a fight that is already open."""
    return _need(draft, fight, need_id, now=now, field="", refused=NeedRefused)


def _need(
    draft: NeedDraft, fight: FightOpenedV1, need_id: str, *, now: datetime, field: str, refused: type[FightRefused]
) -> NeedOpenedV1:
    # `field` places the need in the request ("needs.0." when it came with its fight).
    if draft.deadline <= now:
        raise refused(f"{field}deadline", "the deadline has already passed")
    skills = [s.skill for s in draft.required_skills]
    if len(set(skills)) != len(skills):
        raise refused(f"{field}required_skills", "each skill may be required once")
    if not draft.place.remote and draft.place.city is None and draft.place.latitude is None:
        raise refused(f"{field}place", "an on-site need says where: a city or coordinates")
    return NeedOpenedV1(
        federation_id=fight.federation_id,
        organisation_id=fight.organisation_id,
        need_id=need_id,
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
        raise NeedNotLive("status", f"the need is {current.status.value} and can no longer change")
    patch = changes.model_dump(exclude_none=True) if changes else {}
    if "deadline" in patch and patch["deadline"] <= now:
        raise NeedChangeRefused("deadline", "the deadline has already passed")
    return _next_version(current, {**patch, "status": status or current.status}, now)


def _next_version(need: NeedUpdatedV1, changes: dict[str, Any], now: datetime) -> NeedUpdatedV1:
    return need.model_copy(update={**changes, "version": need.version + 1, "updated_at": now})


def _about(need: NeedUpdatedV1) -> dict[str, Any]:
    """Whose need it is, as every fact about a need repeats it."""
    return {
        "federation_id": need.federation_id,
        "organisation_id": need.organisation_id,
        "need_id": need.need_id,
        "fight_id": need.fight_id,
    }


def as_state(need: NeedOpenedV1) -> NeedUpdatedV1:
    """A need as first opened, in the full-state shape later versions have."""
    fields = need.model_dump(exclude={"opened_at"})
    return NeedUpdatedV1(**fields, status=NeedStatus.open, updated_at=need.opened_at)


def closed_need(current: NeedUpdatedV1, status: NeedStatus, *, now: datetime) -> tuple[NeedUpdatedV1, NeedClosedV1]:
    """A live need closed (by its organisation) or cancelled (with its fight): its last version and the fact."""
    if not is_live(current.status):
        raise Conflict(f"Need {current.need_id} is {current.status.value}.", title="Already closed")
    state = _next_version(current, {"status": status}, now)
    return state, NeedClosedV1(**_about(current), status=status, closed_at=now)


@dataclass(frozen=True)
class Reassigned:
    """A need after an assignment: who is assigned now and, when its status moved, its next version."""

    assigned: list[str]
    need: NeedUpdatedV1 | None = None
    filled: NeedFilledV1 | None = None

    @property
    def events(self) -> list[EventData]:
        """What to tell the others, in order: the new version, then that the need is filled."""
        return [e for e in (self.need, self.filled) if e is not None]


def reassigned(
    current: NeedUpdatedV1,
    assigned: Sequence[str],
    assignment: AssignmentConfirmedV1 | AssignmentReleasedV1,
    *,
    now: datetime,
) -> Reassigned | None:
    """Matching's assignments drive the need's lifecycle: partly filled, filled, open again.

    None when the assignment changes nothing (a donor confirmed who already was, or released
    who was not). A need no longer live keeps its status; only who is assigned is recorded.
    """
    donors = list(assigned)
    if isinstance(assignment, AssignmentConfirmedV1) and assignment.donor_id not in donors:
        donors.append(assignment.donor_id)
    elif isinstance(assignment, AssignmentReleasedV1) and assignment.donor_id in donors:
        donors.remove(assignment.donor_id)
    else:
        return None
    if not is_live(current.status):
        return Reassigned(donors)
    status = status_for(len(donors), current.donors_wanted)
    if status == current.status:
        return Reassigned(donors)
    need = _next_version(current, {"status": status}, now)
    filled = NeedFilledV1(**_about(need), donor_ids=donors, filled_at=now) if status == NeedStatus.filled else None
    return Reassigned(donors, need, filled)
