"""Events of organisations (training, panels, livestreams, meet-ups), their agenda, their
lifecycle and their reminders: produced by scheduling on pitchin.events.v1, keyed by event id.

Every type but `EventCreatedV1` carries the event's `version`: it goes up by one with each
change, so a consumer can ignore a fact older than one it has already applied.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from pydantic import Field

from pitchin_core.contracts.common import Contract, Email, EventData, Identifier, Label, TimeZoneName, Url

# The longest an organiser may hold a freed place for one person on the waitlist.
WAITLIST_OFFER_MAX_SECONDS = 7 * 24 * 3600


class EventKind(StrEnum):
    conference = "conference"
    training = "training"
    panel = "panel"
    livestream = "livestream"
    book_launch = "book-launch"
    meet_up = "meet-up"
    action = "action"


class EventStatus(StrEnum):
    draft = "draft"
    published = "published"
    live = "live"
    ended = "ended"
    archived = "archived"
    cancelled = "cancelled"


class LivestreamStatus(StrEnum):
    scheduled = "scheduled"
    live = "live"
    ended = "ended"
    recording_available = "recording-available"


class ReminderKind(StrEnum):
    day_before = "day-before"
    hour_before = "hour-before"
    at_start = "at-start"
    custom = "custom"


class SessionRole(StrEnum):
    chair = "chair"
    opening_remarks = "opening-remarks"
    presenter = "presenter"
    respondent = "respondent"
    trainer = "trainer"
    host = "host"


class EventCreatedV1(EventData):
    """An event was created. Fields after `organiser_email` were added within v1 and are optional."""

    event_type: ClassVar[str] = "org.pitchin.event.created.v1"
    event_id: Identifier
    kind: EventKind
    title: str = Field(min_length=1, max_length=200)
    starts_at: datetime
    ends_at: datetime
    time_zone: TimeZoneName
    venue_name: Label | None = None
    online_url: Url | None = None
    capacity: int | None = Field(default=None, ge=1)
    free_places: bool = True
    organiser_email: Email
    status: EventStatus = EventStatus.published
    version: int = Field(default=1, ge=1)
    booking_deadline: datetime | None = None
    waitlist: bool = True
    hashtag: Label | None = None
    waitlist_offer_seconds: int | None = Field(default=None, ge=5, le=WAITLIST_OFFER_MAX_SECONDS)
    series_id: Identifier | None = None


class EventFacts(EventData):
    """What every later fact about an event repeats, so a consumer needs no earlier one."""

    event_id: Identifier
    version: int = Field(ge=1)
    kind: EventKind
    title: str = Field(min_length=1, max_length=200)
    starts_at: datetime
    ends_at: datetime
    time_zone: TimeZoneName


class EventSnapshot(EventFacts):
    """The whole public description of an event as of `version`."""

    status: EventStatus
    description: str = Field(default="", max_length=20_000)
    venue_name: Label | None = None
    venue_address: str | None = Field(default=None, max_length=500)
    online_url: Url | None = None
    livestream_platform: Label | None = None
    hashtag: Label | None = None
    capacity: int | None = Field(default=None, ge=1)
    free_places: bool = True
    booking_deadline: datetime | None = None
    waitlist: bool = True
    # How long a freed place is held for the first on the waitlist (signups shortens it as the
    # booking deadline nears); none: the default, 24 hours.
    waitlist_offer_seconds: int | None = Field(default=None, ge=5, le=WAITLIST_OFFER_MAX_SECONDS)
    co_hosts: list[Label] = Field(default_factory=list, max_length=20)
    supporting_organisations: list[Label] = Field(default_factory=list, max_length=50)
    image_urls: list[Url] = Field(default_factory=list, max_length=10)
    series_id: Identifier | None = None
    organiser_email: Email


class EventPublishedV1(EventSnapshot):
    event_type: ClassVar[str] = "org.pitchin.event.published.v1"
    published_at: datetime


class EventUpdatedV1(EventSnapshot):
    """Details changed (not the time: that is `EventRescheduledV1`); `changed` names the fields."""

    event_type: ClassVar[str] = "org.pitchin.event.updated.v1"
    changed: list[Label] = Field(min_length=1, max_length=50)
    updated_at: datetime


class EventRescheduledV1(EventFacts):
    event_type: ClassVar[str] = "org.pitchin.event.rescheduled.v1"
    previous_starts_at: datetime
    previous_ends_at: datetime
    previous_time_zone: TimeZoneName
    reason: str = Field(default="", max_length=1000)
    rescheduled_at: datetime


class EventCancelledV1(EventFacts):
    event_type: ClassVar[str] = "org.pitchin.event.cancelled.v1"
    reason: str = Field(default="", max_length=1000)
    cancelled_at: datetime


class EventStartedV1(EventFacts):
    """The event went live (doors open, or its livestream started)."""

    event_type: ClassVar[str] = "org.pitchin.event.started.v1"
    started_at: datetime


class EventEndedV1(EventFacts):
    event_type: ClassVar[str] = "org.pitchin.event.ended.v1"
    ended_at: datetime


class EventArchivedV1(EventFacts):
    event_type: ClassVar[str] = "org.pitchin.event.archived.v1"
    archived_at: datetime


class LivestreamStartedV1(EventFacts):
    event_type: ClassVar[str] = "org.pitchin.livestream.started.v1"
    online_url: Url
    livestream_platform: Label | None = None
    hashtag: Label | None = None
    started_at: datetime


class LivestreamEndedV1(EventFacts):
    event_type: ClassVar[str] = "org.pitchin.livestream.ended.v1"
    ended_at: datetime


class RecordingAvailableV1(EventFacts):
    event_type: ClassVar[str] = "org.pitchin.livestream.recording-available.v1"
    recording_url: Url
    available_at: datetime


class SessionPerson(Contract):
    person_id: Identifier
    name: str = Field(min_length=1, max_length=200)
    role: SessionRole


class SessionFacts(EventData):
    event_id: Identifier
    session_id: Identifier
    title: str = Field(min_length=1, max_length=200)
    starts_at: datetime
    ends_at: datetime
    time_zone: TimeZoneName
    room: Label | None = None
    track: Label | None = None
    people: list[SessionPerson] = Field(default_factory=list, max_length=100)


class SessionScheduledV1(SessionFacts):
    event_type: ClassVar[str] = "org.pitchin.session.scheduled.v1"
    scheduled_at: datetime


class SessionChangedV1(SessionFacts):
    """The session's time, room, track or people changed (also when its event was rescheduled)."""

    event_type: ClassVar[str] = "org.pitchin.session.changed.v1"
    changed_at: datetime


class SessionRemovedV1(EventData):
    event_type: ClassVar[str] = "org.pitchin.session.removed.v1"
    event_id: Identifier
    session_id: Identifier
    removed_at: datetime


class ReminderDueV1(EventFacts):
    """Time to remind the people booked on an event; notifications knows them from bookings.

    Fired once per reminder (a durable timer); `version` is the event's version when it fired,
    so the details here are current even if the event was changed after the reminder was set.
    """

    event_type: ClassVar[str] = "org.pitchin.event.reminder-due.v1"
    reminder_id: Identifier
    reminder_kind: ReminderKind
    offset_seconds: int = Field(ge=0, description="How long before the start the reminder is due")
    due_at: datetime
    status: EventStatus
    venue_name: Label | None = None
    venue_address: str | None = Field(default=None, max_length=500)
    online_url: Url | None = None
    hashtag: Label | None = None
    organiser_email: Email
