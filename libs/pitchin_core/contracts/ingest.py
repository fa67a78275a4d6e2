"""What other systems may publish into Pitch In: the public ingest contract, v1.

A union's CRM, a petition tool, a website form or a federation's membership system
publishes these CloudEvents on `pitchin.ingest.v1` (Kafka, binary mode, keyed by its
source) or to signups' `POST /v1/ingest` (binary, structured or batch mode). Each carries
the publisher's own ids (`external_id`) and an `updated_at` from the publisher's system:
an update older than one already applied for the same external id changes nothing.

Owners: person, fight and RSVP types are applied by signups; event types by scheduling,
through the same use cases as their HTTP APIs, so they emit the same downstream events.
Rejections come back on `pitchin.ingest.rejections.v1` keyed by source
(`IngestRejectedV1`) and, over HTTP, as problem+json.

Versioning (docs/ingest.md): within v1 a type may only gain optional fields; anything else
is a `.v2` type accepted beside v1; a deprecation is announced in the README with a date at
least one release before the type is refused.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from pydantic import Field, HttpUrl, model_validator

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
    TimeZoneName,
)
from pitchin_core.contracts.fights import FightKind, NeedPlace, RequiredSkill, Urgency
from pitchin_core.contracts.scheduling import EventKind

TOPIC = "pitchin.ingest.v1"
REJECTIONS_TOPIC = "pitchin.ingest.rejections.v1"
PREFIX = "org.pitchin.ingest."

ExternalId = Identifier
HASHTAG = r"^#?[A-Za-z0-9_]{1,100}$"


class Published(EventData):
    """What every published type carries besides the tenant (`federation_id`, `organisation_id`)."""

    external_id: ExternalId = Field(description="The publisher's own id of the person, fight, event or RSVP")
    updated_at: datetime = Field(
        description="When this became true in the publisher's system; an older fact for the same external id is ignored"
    )


class IngestPersonSignedUpV1(Published):
    """A person offered what they know (a knowledge donor signing up). A repeat for a known
    `external_id` with a later `updated_at` updates the donor."""

    event_type: ClassVar[str] = PREFIX + "person-signed-up.v1"
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


class IngestPersonUpdatedV1(Published):
    """A known person changed: only the fields given change."""

    event_type: ClassVar[str] = PREFIX + "person-updated.v1"
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


class IngestPersonWithdrawnV1(Published):
    """A known person left; with `erase`, their personal data is removed in every service."""

    event_type: ClassVar[str] = PREFIX + "person-withdrawn.v1"
    erase: bool = False


class IngestNeed(Contract):
    """One need of a fight: the skills, hours and deadline it asks for."""

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


class IngestFightOpenedV1(Published):
    """A fight was opened with what it needs (a strike was called). Needs an `organisation_id`."""

    event_type: ClassVar[str] = PREFIX + "fight-opened.v1"
    kind: FightKind
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=20_000)
    causes: list[Slug] = Field(default_factory=list, max_length=MAX_CAUSES)
    needs: list[IngestNeed] = Field(default_factory=list, max_length=30)


class IngestEventCreatedV1(Published):
    """An event (training, panel, livestream, meet-up…) was created. Needs an `organisation_id`."""

    event_type: ClassVar[str] = PREFIX + "event-created.v1"
    kind: EventKind
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=20_000)
    starts_at: datetime = Field(description="Local wall-clock time in `time_zone`, or an instant with an offset")
    ends_at: datetime
    time_zone: TimeZoneName
    venue_name: str | None = Field(default=None, min_length=1, max_length=200)
    venue_address: str | None = Field(default=None, max_length=500)
    online_url: HttpUrl | None = None
    livestream_platform: str | None = Field(default=None, max_length=80)
    hashtag: str | None = Field(default=None, pattern=HASHTAG)
    capacity: int | None = Field(default=None, ge=1, le=1_000_000)
    free_places: bool = True
    booking_deadline: datetime | None = None
    waitlist: bool = True
    organiser_email: Email
    draft: bool = Field(default=False, description="Create as a draft rather than published")


class IngestEventChangedV1(Published):
    """A known event changed: only the fields given change; a new `starts_at`/`ends_at` reschedules it."""

    event_type: ClassVar[str] = PREFIX + "event-changed.v1"
    kind: EventKind | None = None
    title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=20_000)
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    time_zone: TimeZoneName | None = None
    venue_name: str | None = Field(default=None, min_length=1, max_length=200)
    venue_address: str | None = Field(default=None, max_length=500)
    online_url: HttpUrl | None = None
    livestream_platform: str | None = Field(default=None, max_length=80)
    hashtag: str | None = Field(default=None, pattern=HASHTAG)
    capacity: int | None = Field(default=None, ge=1, le=1_000_000)
    free_places: bool | None = None
    booking_deadline: datetime | None = None
    waitlist: bool | None = None
    organiser_email: Email | None = None

    @model_validator(mode="after")
    def _times_together(self) -> IngestEventChangedV1:
        if (self.starts_at is None) != (self.ends_at is None):
            raise ValueError("starts_at and ends_at go together")
        return self


class IngestEventCancelledV1(Published):
    """A known event was cancelled; people booked on it are told."""

    event_type: ClassVar[str] = PREFIX + "event-cancelled.v1"
    reason: str = Field(default="", max_length=1000)


class EventReference(Contract):
    """Which event: Pitch In's `event_id`, or the `event_external_id` the same publisher created it with."""

    event_id: Identifier | None = None
    event_external_id: ExternalId | None = None


class IngestRsvpMadeV1(Published, EventReference):
    """A person RSVP'd to an event: a place if one is free, else the waitlist."""

    event_type: ClassVar[str] = PREFIX + "rsvp-made.v1"
    name: str = Field(min_length=1, max_length=200)
    email: Email
    language: LanguageTag = "en"

    @model_validator(mode="after")
    def _one_event(self) -> IngestRsvpMadeV1:
        if (self.event_id is None) == (self.event_external_id is None):
            raise ValueError("give exactly one of event_id and event_external_id")
        return self


class IngestRsvpCancelledV1(Published):
    """A known RSVP was cancelled; a confirmed place goes to the first on the waitlist."""

    event_type: ClassVar[str] = PREFIX + "rsvp-cancelled.v1"


PERSON_TYPES: tuple[type[Published], ...] = (IngestPersonSignedUpV1, IngestPersonUpdatedV1, IngestPersonWithdrawnV1)
SIGNUPS_TYPES: tuple[type[Published], ...] = (
    *PERSON_TYPES,
    IngestFightOpenedV1,
    IngestRsvpMadeV1,
    IngestRsvpCancelledV1,
)
SCHEDULING_TYPES: tuple[type[Published], ...] = (IngestEventCreatedV1, IngestEventChangedV1, IngestEventCancelledV1)
PUBLISHABLE: tuple[type[Published], ...] = (*SIGNUPS_TYPES, *SCHEDULING_TYPES)
BY_TYPE: dict[str, type[Published]] = {model.event_type: model for model in PUBLISHABLE}


def owner_of(event_type: str | None) -> str:
    """The service that applies (or rejects) a record of this type: anything unknown is signups'."""
    model = BY_TYPE.get(event_type or "")
    return "scheduling" if model in SCHEDULING_TYPES else "signups"


class RejectionReason(Contract):
    field: str = Field(description="Where the problem is: `id`, `source`, `type`, `tenant`, `data.<path>`…")
    message: str


class IngestRejectedV1(EventData):
    """Pitch In refused a published event: the publisher's `source` and `id`, and why.

    Published on pitchin.ingest.rejections.v1 keyed by the publisher's source; `federation_id`
    is the registered federation, or `unregistered` when the source is not known.
    """

    event_type: ClassVar[str] = PREFIX + "rejected.v1"
    source: str = Field(min_length=1, max_length=500)
    id: str | None = Field(default=None, description="The rejected event's id (absent when it had none)")
    type: str | None = None
    reason: str = Field(description="A reason class: schema, unknown-type, tenant, unregistered-source, …")
    reasons: list[RejectionReason] = Field(min_length=1)
    door: str = Field(pattern="^(kafka|http)$")
    rejected_by: str
    rejected_at: datetime
