"""Knowledge donors: produced by signups on pitchin.donors.v1."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from pydantic import Field, ValidationInfo, field_validator

from pitchin_core.contracts.common import (
    MAX_CAUSES,
    MAX_LANGUAGES,
    Availability,
    Consent,
    ContactPreferences,
    Contract,
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


class LendingScope(StrEnum):
    """Which member organisations of the federation may ask the donor, as the donor chose."""

    home = "home"  # only the organisation they signed up through
    named = "named"  # that one and the organisations they name
    federation = "federation"  # any member organisation


# The most organisations a donor may name: a choice a person makes by hand, not a directory.
MAX_LENDING_ORGANISATIONS = 50


class Lending(Contract):
    """The donor's consent to be asked by member organisations other than their own.

    Absent, it is the narrowest (`home`): the donor has not agreed to more. A donor with no
    home organisation (signed up at federation level) has the federation as their home, so
    every member organisation may ask them whatever the scope (`may_ask`).
    """

    scope: LendingScope = LendingScope.home
    organisations: list[Identifier] = Field(
        default_factory=list,
        max_length=MAX_LENDING_ORGANISATIONS,
        validate_default=True,
        description="With `named` only, and then at least one: the other organisations that may ask",
    )

    @field_validator("organisations")
    @classmethod
    def _named_only(cls, organisations: list[str], info: ValidationInfo) -> list[str]:
        scope = info.data.get("scope")
        if scope == LendingScope.named and not organisations:
            raise ValueError("name at least one organisation with the scope named")
        if scope != LendingScope.named and organisations:
            raise ValueError("organisations are named only with the scope named")
        return list(dict.fromkeys(organisations))  # each once, in the order given


def may_ask(lending: Lending, home_organisation: str | None, asking_organisation: str | None) -> bool:
    """Whether `asking_organisation` (a need's organisation) may ask a donor of `home_organisation`.

    One rule for every service that chooses or shows candidates:
    - a donor with no home organisation belongs to the whole federation: anyone may ask;
    - their own organisation may always ask;
    - a need with no organisation (the federation's own) asks only donors who agreed to the
      whole federation, besides the home-less ones above: `named` names member organisations,
      and a federation-level need is none of them;
    - otherwise `federation` lets every member organisation ask, `named` the ones named.
    """
    if home_organisation is None or home_organisation == asking_organisation:
        return True
    if lending.scope == LendingScope.federation:
        return True
    if asking_organisation is None:
        return False
    return lending.scope == LendingScope.named and asking_organisation in lending.organisations


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
    lending: Lending = Field(default_factory=Lending, description="Who may ask them; absent: `home` only")
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
    lending: Lending = Field(default_factory=Lending, description="Who may ask them; absent: `home` only")
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
