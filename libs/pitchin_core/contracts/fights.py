"""Fights (campaigns) of member organisations and what they need: produced by signups on
pitchin.needs.v1, keyed by need id (fight events by fight id)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from pydantic import Field

from pitchin_core.contracts.common import (
    MAX_CAUSES,
    Contract,
    EventData,
    Identifier,
    LanguageTag,
    SkillLevel,
    Slug,
)


class FightKind(StrEnum):
    strike = "strike"
    organising_drive = "organising-drive"
    advocacy = "advocacy"
    community = "community"


class Urgency(StrEnum):
    critical = "critical"
    high = "high"
    normal = "normal"


class NeedStatus(StrEnum):
    open = "open"
    partly_filled = "partly-filled"
    filled = "filled"
    closed = "closed"
    cancelled = "cancelled"


class RequiredSkill(Contract):
    skill: Slug
    min_level: SkillLevel = SkillLevel.beginner


class NeedPlace(Contract):
    remote: bool = True
    city: str | None = Field(default=None, max_length=120)
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)


class FightOpenedV1(EventData):
    event_type: ClassVar[str] = "org.pitchin.fight.opened.v1"
    fight_id: Identifier
    kind: FightKind
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=20_000)
    causes: list[Slug] = Field(default_factory=list, max_length=MAX_CAUSES)
    opened_at: datetime


class FightClosedV1(EventData):
    event_type: ClassVar[str] = "org.pitchin.fight.closed.v1"
    fight_id: Identifier
    outcome: str = Field(default="", max_length=2000)
    closed_at: datetime


class NeedOpenedV1(EventData):
    event_type: ClassVar[str] = "org.pitchin.need.opened.v1"
    need_id: Identifier
    fight_id: Identifier
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=20_000)
    required_skills: list[RequiredSkill] = Field(min_length=1, max_length=10)
    nice_to_have: list[Slug] = Field(default_factory=list, max_length=20)
    estimated_hours: float = Field(gt=0, le=2000)
    deadline: datetime
    urgency: Urgency = Urgency.normal
    place: NeedPlace = NeedPlace()
    language: LanguageTag = "en"
    causes: list[Slug] = Field(default_factory=list, max_length=MAX_CAUSES)
    donors_wanted: int = Field(default=1, ge=1, le=100)
    version: int = Field(default=1, ge=1)
    opened_at: datetime


class NeedUpdatedV1(EventData):
    """The need as of `version` (a full state, so consumers need no earlier event)."""

    event_type: ClassVar[str] = "org.pitchin.need.updated.v1"
    need_id: Identifier
    fight_id: Identifier
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=20_000)
    required_skills: list[RequiredSkill] = Field(min_length=1, max_length=10)
    nice_to_have: list[Slug] = Field(default_factory=list, max_length=20)
    estimated_hours: float = Field(gt=0, le=2000)
    deadline: datetime
    urgency: Urgency
    place: NeedPlace
    language: LanguageTag
    causes: list[Slug] = Field(default_factory=list, max_length=MAX_CAUSES)
    donors_wanted: int = Field(ge=1, le=100)
    status: NeedStatus
    version: int = Field(ge=1)
    updated_at: datetime


class NeedFilledV1(EventData):
    event_type: ClassVar[str] = "org.pitchin.need.filled.v1"
    need_id: Identifier
    fight_id: Identifier
    donor_ids: list[Identifier] = Field(max_length=100)  # donors_wanted is at most 100
    filled_at: datetime


class NeedClosedV1(EventData):
    """Closed by the organisation (done or no longer wanted) or cancelled with its fight."""

    event_type: ClassVar[str] = "org.pitchin.need.closed.v1"
    need_id: Identifier
    fight_id: Identifier
    status: NeedStatus = NeedStatus.closed
    closed_at: datetime
