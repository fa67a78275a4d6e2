"""A knowledge donor's sign-up, as the public API accepts it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

from pydantic import Field

from pitchin_core.contracts.common import (
    MAX_CAUSES,
    MAX_LANGUAGES,
    Availability,
    Consent,
    ContactPreferences,
    Contract,
    DonorSkill,
    Email,
    Identifier,
    LanguageTag,
    PhoneNumber,
    Place,
    Slug,
)
from pitchin_core.contracts.donors import (
    DonorConfirmationRequestedV1,
    DonorRegisteredV1,
    DonorStatus,
    DonorUpdatedV1,
    Lending,
)
from pitchin_core.errors import Conflict, FieldError, Refused


class DonorSignup(Contract):
    """What a person tells us when they offer what they know."""

    name: str = Field(min_length=1, max_length=200)
    email: Email
    phone: PhoneNumber | None = None
    skills: list[DonorSkill] = Field(min_length=1, max_length=30)
    availability: Availability
    place: Place = Place()
    languages: list[LanguageTag] = Field(default_factory=lambda: ["en"], min_length=1, max_length=MAX_LANGUAGES)
    causes: list[Slug] = Field(default_factory=list, max_length=MAX_CAUSES)
    union_member: bool = False
    contact: ContactPreferences = ContactPreferences()
    consent: Consent
    organisation_id: Identifier | None = Field(
        default=None, description="The member organisation the person signed up through, if any."
    )
    lending: Lending = Field(
        default_factory=Lending,
        description="Which other member organisations may ask them; absent: only their own (`home`)",
    )


class SignupRefused(Refused):
    """A sign-up that breaks a rule, naming the field to change."""

    default_title = "Sign-up refused"


class DonorChangeRefused(SignupRefused):
    """A change to a donor that breaks a rule."""

    default_title = "Change refused"


def register(
    signup: DonorSignup, *, donor_id: str, federation_id: str, caller_organisation: str | None, now: datetime
) -> DonorRegisteredV1:
    """Turn a sign-up into the fact that a donor registered.

    An organisation's key can only sign people up through that organisation; a federation
    key may name any member organisation, or none.
    """
    organisation_id = signup.organisation_id or caller_organisation
    if caller_organisation is not None and organisation_id != caller_organisation:
        raise SignupRefused("organisation_id", "an organisation's key can only sign donors up for itself")
    if signup.consent.agreed_at > now:
        raise SignupRefused("consent.agreed_at", "consent cannot be given in the future")
    if signup.phone is None and signup.contact.sms:
        raise SignupRefused("contact.sms", "SMS was chosen but no phone number was given")
    skills = {s.skill for s in signup.skills}
    if len(skills) != len(signup.skills):
        raise SignupRefused("skills", "each skill may be listed once")
    return DonorRegisteredV1(
        federation_id=federation_id,
        organisation_id=organisation_id,
        donor_id=donor_id,
        name=signup.name.strip(),
        email=signup.email.lower(),
        phone=signup.phone,
        skills=signup.skills,
        availability=signup.availability,
        place=signup.place,
        languages=signup.languages,
        causes=signup.causes,
        union_member=signup.union_member,
        contact=signup.contact,
        consent=signup.consent,
        lending=signup.lending,
        registered_at=now,
    )


# -- double opt-in: a sign-up held until the person confirms from their inbox ------------------

# How long a confirmation link works. Two days covers a weekend's unread mail; after that the
# person signs up again (a data protection officer wants nothing unconfirmed kept for long).
PENDING_SIGNUP_TTL = timedelta(hours=48)
# The web front's page the link opens (a GET shows a button; its POST confirms).
CONFIRM_PAGE = "/donors/confirm"


class ConfirmationRefused(Refused):
    """A confirmation whose token cannot confirm anything, naming the field (`token`)."""

    default_title = "Confirmation refused"


def token_hash(token: str) -> str:
    """What is stored of a confirmation token: a copy of the table confirms nobody."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def held_signup(signup: DonorSignup, donor: DonorRegisteredV1) -> DonorSignup:
    """The sign-up as it is held: for the organisation it was made through, so the confirmation
    (whoever's key carries it) registers the donor where the sign-up would have."""
    return signup.model_copy(update={"organisation_id": donor.organisation_id})


def confirmation_requested(
    donor: DonorRegisteredV1, *, pending_id: str, token: str, public_base_url: str, now: datetime
) -> DonorConfirmationRequestedV1:
    """The fact that asks the person to confirm: to their address, in their language, with the link.

    `donor` is the donor the sign-up would register (built by `register`, so every rule ran).
    """
    link = f"{public_base_url.rstrip('/')}{CONFIRM_PAGE}?token={quote(token, safe='')}"
    return DonorConfirmationRequestedV1(
        federation_id=donor.federation_id,
        organisation_id=donor.organisation_id,
        pending_id=pending_id,
        name=donor.name,
        email=donor.email,
        language=donor.contact.language,
        confirm_url=link,
        expires_at=now + PENDING_SIGNUP_TTL,
        valid_hours=int(PENDING_SIGNUP_TTL.total_seconds() // 3600),
    )


@dataclass(frozen=True)
class PendingState:
    """What decides whether a held sign-up can be confirmed."""

    expires_at: datetime
    confirmed_at: datetime | None


def check_confirmable(pending: PendingState | None, now: datetime) -> None:
    """Refuse a token that confirms nothing: unknown (or replaced), used once already, or expired."""
    if pending is None:
        raise ConfirmationRefused(
            "token", "not a link we sent, or an older one replaced by a newer sign-up with this address"
        )
    if pending.confirmed_at is not None:
        raise Conflict(
            "This sign-up was confirmed already; the link works once.",
            title="Already confirmed",
            kind="/problems/duplicate",
            errors=[FieldError("token", "already used")],
        )
    if pending.expires_at <= now:
        raise ConfirmationRefused("token", "expired: sign up again")


class DonorChanges(Contract):
    """A PATCH of a donor: only the fields given change."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    email: Email | None = None
    phone: PhoneNumber | None = None
    skills: list[DonorSkill] | None = Field(default=None, min_length=1, max_length=30)
    availability: Availability | None = None
    place: Place | None = None
    languages: list[LanguageTag] | None = Field(default=None, min_length=1, max_length=MAX_LANGUAGES)
    causes: list[Slug] | None = Field(default=None, max_length=MAX_CAUSES)
    union_member: bool | None = None
    contact: ContactPreferences | None = None
    consent: Consent | None = None
    lending: Lending | None = Field(default=None, description="The donor's new choice of who may ask them")
    status: DonorStatus | None = Field(default=None, description="active or paused; withdraw with its own call")


def updated(current: dict[str, object], changes: DonorChanges, *, now: datetime) -> DonorUpdatedV1:
    """The donor's next version. `current` is the stored donor (columns and profile merged)."""
    if current.get("status") == DonorStatus.withdrawn.value:
        raise DonorChangeRefused("status", "a withdrawn donor cannot be changed")
    if changes.status == DonorStatus.withdrawn:
        raise DonorChangeRefused("status", "use POST /v1/donors/{donor_id}/withdraw to withdraw")
    patch = changes.model_dump(exclude_none=True)
    merged = {**current, **patch, "version": int(str(current["version"])) + 1, "updated_at": now}
    if merged.get("phone") is None and isinstance(merged.get("contact"), dict) and merged["contact"].get("sms"):
        raise DonorChangeRefused("contact.sms", "SMS was chosen but no phone number was given")
    fields = DonorUpdatedV1.model_fields
    return DonorUpdatedV1.model_validate({k: v for k, v in merged.items() if k in fields})
