"""Knowledge donors: produced by signups on pitchin.donors.v1."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from pydantic import Field

from pitchin_core.contracts.common import (
    MAX_CAUSES,
    MAX_LANGUAGES,
    Availability,
    Consent,
    ContactPreferences,
    DonorSkill,
    Email,
    EventData,
    Identifier,
    LanguageTag,
    PhoneNumber,
    Place,
    Slug,
)


class DonorStatus(StrEnum):
    active = "active"
    paused = "paused"
    withdrawn = "withdrawn"


class DonorRegisteredV1(EventData):
    event_type: ClassVar[str] = "org.pitchin.donor.registered.v1"
    donor_id: Identifier
    name: str = Field(min_length=1, max_length=200)
    email: Email
    phone: PhoneNumber | None = None
    skills: list[DonorSkill] = Field(min_length=1, max_length=30)
    availability: Availability
    place: Place
    languages: list[LanguageTag] = Field(min_length=1, max_length=MAX_LANGUAGES)
    causes: list[Slug] = Field(default_factory=list, max_length=MAX_CAUSES)
    union_member: bool = False
    contact: ContactPreferences
    consent: Consent
    status: DonorStatus = DonorStatus.active
    registered_at: datetime


class DonorUpdatedV1(EventData):
    """The donor's whole profile as of `version`; an older version arriving late is ignored."""

    event_type: ClassVar[str] = "org.pitchin.donor.updated.v1"
    donor_id: Identifier
    version: int = Field(ge=1)
    name: str = Field(min_length=1, max_length=200)
    email: Email
    phone: PhoneNumber | None = None
    skills: list[DonorSkill] = Field(min_length=1, max_length=30)
    availability: Availability
    place: Place
    languages: list[LanguageTag] = Field(min_length=1, max_length=MAX_LANGUAGES)
    causes: list[Slug] = Field(default_factory=list, max_length=MAX_CAUSES)
    union_member: bool = False
    contact: ContactPreferences
    consent: Consent
    status: DonorStatus
    updated_at: datetime


class DonorWithdrawnV1(EventData):
    """The donor left. With `erase`, every service removes their personal data."""

    event_type: ClassVar[str] = "org.pitchin.donor.withdrawn.v1"
    donor_id: Identifier
    erase: bool = False
    withdrawn_at: datetime
