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
    Url,
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


class DonorConfirmationRequestedV1(EventData):
    """Someone signed up on a public page and must confirm it from their inbox (double opt-in).

    No donor exists yet: signups holds the sign-up until the link is followed and confirmed,
    and only then emits `donor.registered`. `confirm_url` carries a one-time credential, so it
    goes to the person's email only (never to webhooks or logs).
    """

    event_type: ClassVar[str] = "org.pitchin.donor.confirmation-requested.v1"
    pending_id: Identifier
    name: str = Field(min_length=1, max_length=200)
    email: Email
    language: LanguageTag = "en"
    confirm_url: Url = Field(description="The web front's page that confirms, with the one-time token")
    expires_at: datetime
    valid_hours: int = Field(ge=1, le=720, description="How long the link works, for the email to say")
