"""An event of an organisation: what the API accepts, the event itself, and its lifecycle.

Every command is a function from the event as it is (and `now`) to the event as it becomes
plus the facts to publish; the service layer stores both in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import Field, HttpUrl, field_validator, model_validator

from pitchin_core.contracts.common import Contract, Email, EventData, Label, TimeZoneName
from pitchin_core.contracts.scheduling import (
    WAITLIST_OFFER_MAX_SECONDS,
    EventArchivedV1,
    EventCancelledV1,
    EventCreatedV1,
    EventEndedV1,
    EventFacts,
    EventKind,
    EventPublishedV1,
    EventRescheduledV1,
    EventSnapshot,
    EventStartedV1,
    EventStatus,
    EventUpdatedV1,
    LivestreamEndedV1,
    LivestreamStartedV1,
    LivestreamStatus,
    RecordingAvailableV1,
)
from pitchin_core.errors import Conflict, Refused

HASHTAG = r"^#?[A-Za-z0-9_]{1,100}$"
# Reminders further ahead than this are almost always a typo (P1D meant, P100D written).
LONGEST_REMINDER = timedelta(days=60)


class ReminderRule(Contract):
    before: timedelta = Field(
        description="How long before the start: an ISO 8601 duration (P1D, PT1H, PT30S) or seconds; 0 = at start",
        examples=["P1D", "PT1H", "PT0S"],
    )

    @field_validator("before")
    @classmethod
    def _sensible(cls, before: timedelta) -> timedelta:
        if before < timedelta(0):
            raise ValueError("a reminder is due before the start (or at it), not after")
        if before > LONGEST_REMINDER:
            raise ValueError("a reminder can be at most 60 days before the start")
        if before.microseconds:
            raise ValueError("reminders are set in whole seconds")
        return before


class EventDraft(Contract):
    kind: EventKind
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=20_000)
    starts_at: datetime = Field(description="Local wall-clock time in `time_zone`, or an instant with an offset")
    ends_at: datetime
    time_zone: TimeZoneName
    venue_name: str | None = Field(default=None, min_length=1, max_length=200)
    venue_address: str | None = Field(default=None, max_length=500)
    venue_capacity: int | None = Field(default=None, ge=1, le=1_000_000)
    venue_latitude: float | None = Field(default=None, ge=-90, le=90)
    venue_longitude: float | None = Field(default=None, ge=-180, le=180)
    online_url: HttpUrl | None = Field(default=None, description="Where to watch or join: the livestream's page")
    livestream_platform: str | None = Field(default=None, max_length=80, examples=["YouTube", "Facebook Live"])
    embed_url: HttpUrl | None = None
    hashtag: str | None = Field(default=None, pattern=HASHTAG)
    capacity: int | None = Field(default=None, ge=1, le=1_000_000, description="Places to book; none = unlimited")
    free_places: bool = True
    booking_deadline: datetime | None = Field(default=None, description="Local time in `time_zone`, or an instant")
    waitlist: bool = True
    waitlist_offer_seconds: int | None = Field(
        default=None,
        ge=5,
        le=WAITLIST_OFFER_MAX_SECONDS,
        description="How long a freed place is held for the first on the waitlist; default 24 hours,"
        " shorter as the booking deadline nears, never past it",
    )
    co_hosts: list[Label] = Field(default_factory=list, max_length=20)
    supporting_organisations: list[Label] = Field(default_factory=list, max_length=50)
    image_urls: list[HttpUrl] = Field(default_factory=list, max_length=10)
    organiser_email: Email
    status: EventStatus = Field(default=EventStatus.published, description="draft or published")
    reminders: list[ReminderRule] | None = Field(
        default=None, max_length=10, description="Default: a day and an hour before, and at the start if online"
    )

    @model_validator(mode="after")
    def _where_and_when(self) -> EventDraft:
        if self.venue_name is None and self.online_url is None:
            raise ValueError("an event needs a venue_name, an online_url, or both")
        if localise(self.ends_at, self.time_zone) <= localise(self.starts_at, self.time_zone):
            raise ValueError("ends_at must be later than starts_at")
        if self.status not in (EventStatus.draft, EventStatus.published):
            raise ValueError("a new event is a draft or published")
        if (self.venue_latitude is None) != (self.venue_longitude is None):
            raise ValueError("venue_latitude and venue_longitude go together")
        return self


class EventChanges(Contract):
    """A partial update of an event's details; a field sent as null is cleared."""

    kind: EventKind | None = None
    title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=20_000)
    venue_name: str | None = Field(default=None, min_length=1, max_length=200)
    venue_address: str | None = Field(default=None, max_length=500)
    venue_capacity: int | None = Field(default=None, ge=1, le=1_000_000)
    venue_latitude: float | None = Field(default=None, ge=-90, le=90)
    venue_longitude: float | None = Field(default=None, ge=-180, le=180)
    online_url: HttpUrl | None = None
    livestream_platform: str | None = Field(default=None, max_length=80)
    embed_url: HttpUrl | None = None
    hashtag: str | None = Field(default=None, pattern=HASHTAG)
    capacity: int | None = Field(default=None, ge=1, le=1_000_000)
    free_places: bool | None = None
    booking_deadline: datetime | None = None
    waitlist: bool | None = None
    waitlist_offer_seconds: int | None = Field(default=None, ge=5, le=WAITLIST_OFFER_MAX_SECONDS)
    co_hosts: list[Label] | None = Field(default=None, max_length=20)
    supporting_organisations: list[Label] | None = Field(default=None, max_length=50)
    image_urls: list[HttpUrl] | None = Field(default=None, max_length=10)
    organiser_email: Email | None = None
    reminders: list[ReminderRule] | None = Field(default=None, max_length=10)


class Reschedule(Contract):
    starts_at: datetime = Field(description="Local wall-clock time in `time_zone`, or an instant with an offset")
    ends_at: datetime
    time_zone: TimeZoneName | None = Field(default=None, description="Default: the event's zone")
    reason: str = Field(default="", max_length=1000)


class Event(Contract):
    """An event as scheduling keeps it. Times are aware, in the event's own zone."""

    event_id: str
    federation_id: str
    organisation_id: str
    kind: EventKind
    title: str
    description: str = ""
    starts_at: datetime
    ends_at: datetime
    time_zone: str
    venue_name: str | None = None
    venue_address: str | None = None
    venue_capacity: int | None = None
    venue_latitude: float | None = None
    venue_longitude: float | None = None
    online_url: str | None = None
    livestream_platform: str | None = None
    embed_url: str | None = None
    hashtag: str | None = None
    capacity: int | None = None
    free_places: bool = True
    booking_deadline: datetime | None = None
    waitlist: bool = True
    waitlist_offer_seconds: int | None = None
    co_hosts: list[Label] = Field(default_factory=list, max_length=20)
    supporting_organisations: list[Label] = Field(default_factory=list, max_length=50)
    image_urls: list[str] = Field(default_factory=list)
    organiser_email: str
    status: EventStatus
    livestream_status: LivestreamStatus | None = None
    recording_url: str | None = None
    series_id: str | None = None
    version: int = 1
    reminder_offsets: list[int] = Field(default_factory=list, description="Seconds before the start")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def facts(self) -> dict[str, Any]:
        """The fields every later fact repeats (`EventFacts`)."""
        return self._values_for(EventFacts)

    def snapshot(self) -> dict[str, Any]:
        """The whole public description (`EventSnapshot`)."""
        return self._values_for(EventSnapshot)

    def created(self) -> EventCreatedV1:
        """The fact that the event was created, telling it as it is now."""
        return EventCreatedV1(**self._values_for(EventCreatedV1))

    def _values_for(self, contract: type[EventData]) -> dict[str, Any]:
        # Each field of these contracts is a field of the event, under the same name.
        return {name: getattr(self, name) for name in contract.model_fields}


class EventRefused(Refused):
    """A command the event's rules refuse; `field` names what to change (422)."""

    default_title = "Event refused"


class TransitionRefused(Conflict):
    """A lifecycle step that is not possible from the event's current state (409, naming the state)."""

    default_title = "Not possible now"
    default_kind = "/problems/lifecycle"

    def __init__(self, action: str, state: str, allowed_from: Iterable[str]) -> None:
        allowed = ", ".join(sorted(allowed_from))
        super().__init__(f"cannot {action} an event that is {state} (only from: {allowed})", state=state)
        self.action = action
        self.state = state


def localise(moment: datetime, time_zone: str) -> datetime:
    """A naive time is wall-clock time in the event's zone; an aware one is kept as the instant given.

    Wall-clock times that do not exist (the hour skipped when clocks go forward) or happen
    twice (when they go back) are read as RFC 5545 reads them: the first (`fold=0`) reading,
    which for a skipped time means the same number of minutes after the gap.
    """
    zone = ZoneInfo(time_zone)
    return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment.astimezone(zone)


def in_zone(moment: datetime, time_zone: str) -> datetime:
    """An instant as read on the event's wall clock (normalised, so skipped times are shown as lived)."""
    return moment.astimezone(UTC).astimezone(ZoneInfo(time_zone))


def default_reminder_offsets(online: bool) -> list[int]:
    offsets = [86_400, 3_600]
    # A livestream is joined at the start from a link: the link is most useful then.
    return [*offsets, 0] if online else offsets


def _offsets(rules: list[ReminderRule] | None, online: bool) -> list[int]:
    if rules is None:
        return default_reminder_offsets(online)
    return sorted({int(rule.before.total_seconds()) for rule in rules}, reverse=True)


def _hashtag(tag: str | None) -> str | None:
    return None if tag is None else "#" + tag.lstrip("#")


def create_event(
    draft: EventDraft,
    *,
    federation_id: str,
    organisation_id: str | None,
    now: datetime,
    event_id: str,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    series_id: str | None = None,
) -> tuple[Event, list[EventData]]:
    """A new event (or one occurrence of a series, whose own times are passed in)."""
    if organisation_id is None:
        raise EventRefused("organisation_id", "events belong to a member organisation: use its API key")
    starts = in_zone(starts_at or localise(draft.starts_at, draft.time_zone), draft.time_zone)
    ends = in_zone(ends_at or localise(draft.ends_at, draft.time_zone), draft.time_zone)
    if starts <= now:
        raise EventRefused("starts_at", "an event cannot start in the past")
    deadline = None
    if draft.booking_deadline is not None:
        if series_id is not None:
            # One deadline cannot fit every occurrence; each closes at its own start.
            raise EventRefused("booking_deadline", "a series takes no booking_deadline: bookings close at each start")
        deadline = in_zone(localise(draft.booking_deadline, draft.time_zone), draft.time_zone)
        if deadline > starts:
            raise EventRefused("booking_deadline", "bookings must close no later than the start")
    if draft.capacity and draft.venue_capacity and draft.capacity > draft.venue_capacity:
        raise EventRefused("capacity", f"{draft.capacity} places do not fit a venue for {draft.venue_capacity}")
    online = draft.online_url is not None
    event = Event(
        event_id=event_id,
        federation_id=federation_id,
        organisation_id=organisation_id,
        kind=draft.kind,
        title=draft.title.strip(),
        description=draft.description,
        starts_at=starts,
        ends_at=ends,
        time_zone=draft.time_zone,
        venue_name=draft.venue_name,
        venue_address=draft.venue_address,
        venue_capacity=draft.venue_capacity,
        venue_latitude=draft.venue_latitude,
        venue_longitude=draft.venue_longitude,
        online_url=str(draft.online_url) if draft.online_url else None,
        livestream_platform=draft.livestream_platform,
        embed_url=str(draft.embed_url) if draft.embed_url else None,
        hashtag=_hashtag(draft.hashtag),
        capacity=draft.capacity,
        free_places=draft.free_places,
        booking_deadline=deadline,
        waitlist=draft.waitlist,
        waitlist_offer_seconds=draft.waitlist_offer_seconds,
        co_hosts=[c.strip() for c in draft.co_hosts if c.strip()],
        supporting_organisations=[s.strip() for s in draft.supporting_organisations if s.strip()],
        image_urls=[str(u) for u in draft.image_urls],
        organiser_email=str(draft.organiser_email),
        status=draft.status,
        livestream_status=LivestreamStatus.scheduled if online else None,
        series_id=series_id,
        version=1,
        reminder_offsets=_offsets(draft.reminders, online),
    )
    facts: list[EventData] = [event.created()]
    if event.status is EventStatus.published:
        facts.append(EventPublishedV1(**event.snapshot(), published_at=now))
    return event, facts


# Which states each lifecycle step may start from.
ALLOWED_FROM: dict[str, frozenset[EventStatus]] = {
    "publish": frozenset({EventStatus.draft}),
    "update": frozenset({EventStatus.draft, EventStatus.published, EventStatus.live}),
    "reschedule": frozenset({EventStatus.draft, EventStatus.published}),
    "cancel": frozenset({EventStatus.draft, EventStatus.published}),
    "start": frozenset({EventStatus.published}),
    "end": frozenset({EventStatus.live}),
    "archive": frozenset({EventStatus.ended, EventStatus.cancelled}),
    "change agenda": frozenset({EventStatus.draft, EventStatus.published, EventStatus.live}),
}


def check_allowed(event: Event, action: str) -> None:
    allowed = ALLOWED_FROM[action]
    if event.status not in allowed:
        raise TransitionRefused(action, event.status.value, (s.value for s in allowed))


def _next(event: Event, **changes: Any) -> Event:
    return event.model_copy(update={**changes, "version": event.version + 1})


def publish(event: Event, now: datetime) -> tuple[Event, list[EventData]]:
    check_allowed(event, "publish")
    if event.starts_at <= now:
        raise EventRefused("starts_at", "this draft's start has passed: reschedule it before publishing")
    published = _next(event, status=EventStatus.published)
    return published, [EventPublishedV1(**published.snapshot(), published_at=now)]


def update(event: Event, changes: EventChanges, now: datetime) -> tuple[Event, list[EventData]]:
    check_allowed(event, "update")
    given = changes.model_fields_set
    values: dict[str, Any] = {}
    for name in given:
        value = getattr(changes, name)
        if name == "reminders":
            values["reminder_offsets"] = _offsets(value, event.online_url is not None)
        elif name in ("online_url", "embed_url"):
            values[name] = str(value) if value is not None else None
        elif name == "image_urls":
            values[name] = [str(u) for u in value or []]
        elif name in ("co_hosts", "supporting_organisations"):
            values[name] = [v.strip() for v in value or [] if v.strip()]
        elif name == "hashtag":
            values[name] = _hashtag(value)
        elif name == "booking_deadline":
            values[name] = in_zone(localise(value, event.time_zone), event.time_zone) if value else None
        elif name == "organiser_email":
            if value is None:
                raise EventRefused("organiser_email", "an event needs an organiser_email")
            values[name] = str(value)
        elif name in ("kind", "title", "free_places", "waitlist") and value is None:
            raise EventRefused(name, f"{name} cannot be cleared")
        else:
            values[name] = value.strip() if name == "title" else value
    changed = sorted(k for k, v in values.items() if getattr(event, k) != v)
    if not changed:
        return event, []
    if "online_url" in changed:
        values["livestream_status"] = LivestreamStatus.scheduled if values["online_url"] else None
    updated = _next(event, **values)
    if updated.venue_name is None and updated.online_url is None:
        raise EventRefused("venue_name", "an event needs a venue_name, an online_url, or both")
    if (updated.venue_latitude is None) != (updated.venue_longitude is None):
        raise EventRefused("venue_latitude", "venue_latitude and venue_longitude go together")
    if updated.capacity and updated.venue_capacity and updated.capacity > updated.venue_capacity:
        raise EventRefused("capacity", f"{updated.capacity} places do not fit a venue for {updated.venue_capacity}")
    if updated.booking_deadline and updated.booking_deadline > updated.starts_at:
        raise EventRefused("booking_deadline", "bookings must close no later than the start")
    public = sorted(set(changed) & set(EventSnapshot.model_fields))
    facts: list[EventData] = []
    if public:
        facts.append(EventUpdatedV1(**updated.snapshot(), changed=public, updated_at=now))
    return updated, facts


def reschedule(event: Event, change: Reschedule, now: datetime) -> tuple[Event, list[EventData]]:
    check_allowed(event, "reschedule")
    zone = change.time_zone or event.time_zone
    starts = in_zone(localise(change.starts_at, zone), zone)
    ends = in_zone(localise(change.ends_at, zone), zone)
    if ends <= starts:
        raise EventRefused("ends_at", "ends_at must be later than starts_at")
    if starts <= now:
        raise EventRefused("starts_at", "an event cannot be moved into the past")
    if starts == event.starts_at and ends == event.ends_at and zone == event.time_zone:
        return event, []
    deadline = event.booking_deadline
    if deadline is not None:
        # Bookings keep closing the same time before the start.
        # In UTC: Python subtracts aware times of one zone on the wall clock, not as instants.
        lead = event.starts_at.astimezone(UTC) - deadline.astimezone(UTC)
        deadline = in_zone(starts.astimezone(UTC) - lead, zone)
    moved = _next(event, starts_at=starts, ends_at=ends, time_zone=zone, booking_deadline=deadline)
    fact = EventRescheduledV1(
        **moved.facts(),
        previous_starts_at=event.starts_at,
        previous_ends_at=event.ends_at,
        previous_time_zone=event.time_zone,
        reason=change.reason,
        rescheduled_at=now,
    )
    return moved, [fact]


def cancel(event: Event, reason: str, now: datetime) -> tuple[Event, list[EventData]]:
    check_allowed(event, "cancel")
    cancelled = _next(event, status=EventStatus.cancelled)
    return cancelled, [EventCancelledV1(**cancelled.facts(), reason=reason, cancelled_at=now)]


def start(event: Event, now: datetime) -> tuple[Event, list[EventData]]:
    check_allowed(event, "start")
    started = _next(event, status=EventStatus.live)
    return started, [EventStartedV1(**started.facts(), started_at=now)]


def end(event: Event, now: datetime) -> tuple[Event, list[EventData]]:
    check_allowed(event, "end")
    facts: list[EventData] = []
    changes: dict[str, Any] = {"status": EventStatus.ended}
    if event.livestream_status is LivestreamStatus.live:
        # The stream cannot outlive the event it belongs to.
        changes["livestream_status"] = LivestreamStatus.ended
    ended = _next(event, **changes)
    facts.append(EventEndedV1(**ended.facts(), ended_at=now))
    if "livestream_status" in changes:
        facts.append(LivestreamEndedV1(**ended.facts(), ended_at=now))
    return ended, facts


def archive(event: Event, now: datetime) -> tuple[Event, list[EventData]]:
    check_allowed(event, "archive")
    archived = _next(event, status=EventStatus.archived)
    return archived, [EventArchivedV1(**archived.facts(), archived_at=now)]


def _livestream_refused(event: Event, action: str, allowed: set[LivestreamStatus]) -> TransitionRefused:
    state = f"livestream {event.livestream_status.value}" if event.livestream_status else "without a livestream"
    return TransitionRefused(action, state, (f"livestream {s.value}" for s in allowed))


def start_livestream(event: Event, now: datetime) -> tuple[Event, list[EventData]]:
    if event.livestream_status is not LivestreamStatus.scheduled or event.online_url is None:
        raise _livestream_refused(event, "start the livestream of", {LivestreamStatus.scheduled})
    if event.status not in (EventStatus.published, EventStatus.live):
        raise TransitionRefused("start the livestream of", event.status.value, ["published", "live"])
    changes: dict[str, Any] = {"livestream_status": LivestreamStatus.live}
    if event.status is EventStatus.published:
        # Going on air is the event starting, for a panel streamed from a hall as for a webinar.
        changes["status"] = EventStatus.live
    live = _next(event, **changes)
    facts: list[EventData] = [
        LivestreamStartedV1(
            **live.facts(),
            online_url=event.online_url,
            livestream_platform=live.livestream_platform,
            hashtag=live.hashtag,
            started_at=now,
        )
    ]
    if "status" in changes:
        facts.append(EventStartedV1(**live.facts(), started_at=now))
    return live, facts


def end_livestream(event: Event, now: datetime) -> tuple[Event, list[EventData]]:
    if event.livestream_status is not LivestreamStatus.live:
        raise _livestream_refused(event, "end the livestream of", {LivestreamStatus.live})
    ended = _next(event, livestream_status=LivestreamStatus.ended)
    return ended, [LivestreamEndedV1(**ended.facts(), ended_at=now)]


def recording_available(event: Event, recording_url: str, now: datetime) -> tuple[Event, list[EventData]]:
    allowed = {LivestreamStatus.ended, LivestreamStatus.recording_available}
    if event.livestream_status not in allowed:
        raise _livestream_refused(event, "add a recording to", allowed)
    if event.recording_url == recording_url:
        return event, []
    done = _next(event, livestream_status=LivestreamStatus.recording_available, recording_url=recording_url)
    return done, [RecordingAvailableV1(**done.facts(), recording_url=recording_url, available_at=now)]


def reminders_pending(event: Event) -> bool:
    """Only an event people may still come to has reminders waiting."""
    return event.status in (EventStatus.published, EventStatus.live)
