"""Scheduling's HTTP routes: parse, call a use case, answer (pitchin_core.http answers the domain errors).

`router` needs an API key and shows a tenant its own events only (another tenant's are 404);
`public` serves what anyone may see: published events, their calendars and the listing.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import Field, HttpUrl

from pitchin_core.auth import WEB_FRONT, CallerDep, StaffDep, checks_credential, for_web_front, web_front_proof
from pitchin_core.contracts.common import Contract, Email
from pitchin_core.contracts.scheduling import EventKind, EventStatus
from pitchin_core.errors import Forbidden
from pitchin_core.http import Problem
from pitchin_core.links import BOOKING_LINK_HEADER, opens_booking
from pitchin_core.uow import UnitOfWork
from pitchin_scheduling import service, storage
from pitchin_scheduling.domain import events as rules
from pitchin_scheduling.domain.agenda import Session, SessionDraft
from pitchin_scheduling.domain.calendar import to_icalendar
from pitchin_scheduling.domain.events import Event, EventChanges, EventDraft, Reschedule
from pitchin_scheduling.domain.series import SeriesDraft

router = APIRouter(prefix="/v1", tags=["events"])
public = APIRouter(prefix="/v1", tags=["public"])
CALENDAR = "text/calendar; charset=utf-8"
# What the .ics routes answer, as their OpenAPI says it: an iCalendar document, not JSON.
ICALENDAR_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "An iCalendar (RFC 5545) document, METHOD:PUBLISH",
        "content": {"text/calendar": {"schema": {"type": "string"}}},
    }
}


class EventView(Event):
    calendar_url: str
    attendees: dict[str, int] | None = Field(default=None, description="Bookings by status, learned from signups")


class SeriesView(Contract):
    series_id: str
    rrule: str
    events: list[EventView]


class PublicEvent(Contract):
    event_id: str
    organisation_id: str
    kind: EventKind
    title: str
    description: str
    starts_at: datetime
    ends_at: datetime
    time_zone: str
    status: EventStatus
    venue_name: str | None
    venue_address: str | None
    venue_latitude: float | None
    venue_longitude: float | None
    online_url: str | None
    livestream_platform: str | None
    embed_url: str | None
    hashtag: str | None
    capacity: int | None
    free_places: bool
    booking_deadline: datetime | None
    co_hosts: list[str]
    supporting_organisations: list[str]
    image_urls: list[str]
    series_id: str | None
    calendar_url: str


class EventPage(Contract):
    events: list[PublicEvent]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")


class Cancellation(Contract):
    reason: str = Field(default="", max_length=1000)


class Recording(Contract):
    recording_url: HttpUrl


class PersonFeed(Contract):
    feed_url: str


class FeedOwner(Contract):
    email: Email


def _uow(request: Request) -> UnitOfWork:
    uow: UnitOfWork = request.app.state.runtime.uow
    return uow


def _base_url(request: Request) -> str:
    base: str = request.app.state.runtime.settings.public_base_url
    return base.rstrip("/")


def _calendar_url(event: Event) -> str:
    return f"/v1/events/{event.event_id}.ics"


def _view(event: Event, attendees: dict[str, int] | None = None) -> EventView:
    return EventView(**dict(event), calendar_url=_calendar_url(event), attendees=attendees)


def _public_view(event: Event) -> PublicEvent:
    fields = set(PublicEvent.model_fields) - {"calendar_url"}
    return PublicEvent(**{name: getattr(event, name) for name in fields}, calendar_url=_calendar_url(event))


def _now() -> datetime:
    return datetime.now(UTC)


# -- events -------------------------------------------------------------------------------


@router.post("/events", status_code=status.HTTP_201_CREATED, response_model=EventView)
async def create_event(draft: EventDraft, caller: CallerDep, request: Request, response: Response) -> EventView:
    event = await service.create_event(_uow(request), caller, draft, _now())
    response.headers["Location"] = f"/v1/events/{event.event_id}"
    return _view(event)


@router.post("/series", status_code=status.HTTP_201_CREATED, response_model=SeriesView)
async def create_series(draft: SeriesDraft, caller: CallerDep, request: Request, response: Response) -> SeriesView:
    """A series by recurrence rule: each occurrence is an event of its own (booked and reminded alone)."""
    series_id, events = await service.create_series(_uow(request), caller, draft, _now())
    response.headers["Location"] = f"/v1/series/{series_id}"
    return SeriesView(series_id=series_id, rrule=draft.rrule, events=[_view(e) for e in events])


@router.get("/series/{series_id}", response_model=list[EventView])
async def series_events(series_id: str, caller: CallerDep, request: Request) -> list[EventView]:
    return [_view(e) for e in await service.series_events(_uow(request), caller, series_id)]


@router.get("/events", response_model=list[EventView])
async def own_events(
    caller: CallerDep,
    request: Request,
    status_: Annotated[list[EventStatus] | None, Query(alias="status")] = None,
    starts_from: Annotated[datetime | None, Query(alias="from")] = None,
    starts_before: Annotated[datetime | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[EventView]:
    """The caller's events in every state, drafts included, in start order."""
    query = storage.EventQuery(
        federation_id=caller.federation_id,
        organisation_id=caller.organisation_id,
        statuses=[s.value for s in status_ or EventStatus],
        starts_from=_aware(starts_from),
        starts_before=_aware(starts_before),
        limit=limit,
    )
    return [_view(e) for e in await service.find_events(_uow(request), query, caller.tenant)]


@router.get("/events/{event_id}.ics", response_class=Response, tags=["public"], responses=ICALENDAR_DOC)
async def event_calendar(event_id: str, request: Request) -> Response:
    """Public: anyone with the link can add a published event (and its agenda) to their calendar."""
    event, sessions = await service.public_event(_uow(request), event_id)
    body = to_icalendar([event], public_base_url=_base_url(request), now=_now(), name=event.title, sessions=sessions)
    return Response(body, media_type=CALENDAR)


@router.get("/events/{event_id}", response_model=EventView)
@for_web_front
async def get_event(event_id: str, caller: CallerDep, request: Request) -> EventView:
    event, attendees = await service.get_event(_uow(request), caller, event_id)
    if caller.role == WEB_FRONT:
        # The public page's view of a published event: no organiser's address for the public front.
        event = event.model_copy(update={"organiser_email": ""})
    return _view(event, attendees)


@router.patch("/events/{event_id}", response_model=EventView)
async def update_event(event_id: str, changes: EventChanges, caller: CallerDep, request: Request) -> EventView:
    now = _now()
    event = await service.change_event(_uow(request), caller, event_id, lambda e: rules.update(e, changes, now), now)
    return _view(event)


@router.post("/events/{event_id}/reschedule", response_model=EventView)
async def reschedule_event(event_id: str, change: Reschedule, caller: CallerDep, request: Request) -> EventView:
    """Move the event; its sessions keep their place in it and pending reminders move with it."""
    now = _now()
    event = await service.change_event(_uow(request), caller, event_id, lambda e: rules.reschedule(e, change, now), now)
    return _view(event)


@router.post("/events/{event_id}/cancel", response_model=EventView)
async def cancel_event(event_id: str, body: Cancellation, caller: CallerDep, request: Request) -> EventView:
    now = _now()
    event = await service.change_event(
        _uow(request), caller, event_id, lambda e: rules.cancel(e, body.reason, now), now
    )
    return _view(event)


def _step(name: str, command: Any, summary: str) -> None:
    async def route(event_id: str, caller: CallerDep, request: Request) -> EventView:
        now = _now()
        event = await service.change_event(_uow(request), caller, event_id, partial(_apply, command, now=now), now)
        return _view(event)

    route.__name__ = name.replace("/", "_") + "_event"
    router.add_api_route(
        f"/events/{{event_id}}/{name}", route, methods=["POST"], response_model=EventView, summary=summary
    )


def _apply(command: Any, event: Event, *, now: datetime) -> Any:
    return command(event, now)


_step("publish", rules.publish, "Publish a draft")
_step("start", rules.start, "The event is live")
_step("end", rules.end, "The event has ended")
_step("archive", rules.archive, "Archive an ended or cancelled event")
_step("livestream/start", rules.start_livestream, "The livestream is on air")
_step("livestream/end", rules.end_livestream, "The livestream is over")


@router.post("/events/{event_id}/livestream/recording", response_model=EventView)
async def recording_available(event_id: str, body: Recording, caller: CallerDep, request: Request) -> EventView:
    now = _now()
    url = str(body.recording_url)
    event = await service.change_event(
        _uow(request), caller, event_id, lambda e: rules.recording_available(e, url, now), now
    )
    return _view(event)


# -- agenda ---------------------------------------------------------------------------------


@router.get("/events/{event_id}/sessions", response_model=list[Session], tags=["agenda"])
@for_web_front
async def sessions(event_id: str, caller: CallerDep, request: Request) -> list[Session]:
    return await service.sessions_of_event(_uow(request), caller, event_id)


@router.post("/events/{event_id}/sessions", status_code=201, response_model=Session, tags=["agenda"])
async def add_session(
    event_id: str, draft: SessionDraft, caller: CallerDep, request: Request, response: Response
) -> Session:
    session = await service.put_session(_uow(request), caller, event_id, draft, _now())
    response.headers["Location"] = f"/v1/events/{event_id}/sessions/{session.session_id}"
    return session


@router.put("/events/{event_id}/sessions/{session_id}", response_model=Session, tags=["agenda"])
async def change_session(
    event_id: str, session_id: str, draft: SessionDraft, caller: CallerDep, request: Request
) -> Session:
    return await service.put_session(_uow(request), caller, event_id, draft, _now(), session_id=session_id)


@router.delete("/events/{event_id}/sessions/{session_id}", status_code=204, tags=["agenda"])
async def remove_session(event_id: str, session_id: str, caller: CallerDep, request: Request) -> Response:
    await service.remove_session(_uow(request), caller, event_id, session_id, _now())
    return Response(status_code=204)


# -- reminders and attendees ----------------------------------------------------------------


class ReminderView(Contract):
    reminder_id: str
    kind: str
    offset_seconds: int
    due_at: datetime
    event_version: int
    fired_at: datetime | None


@router.get("/events/{event_id}/reminders", response_model=list[ReminderView], tags=["reminders"])
async def reminders(event_id: str, caller: CallerDep, request: Request) -> list[ReminderView]:
    return [ReminderView(**r) for r in await service.reminders_of_event(_uow(request), caller, event_id)]


@router.get("/events/{event_id}/attendees", tags=["attendees"])
async def attendees(event_id: str, caller: CallerDep, request: Request) -> list[dict[str, Any]]:
    return await service.attendees_of_event(_uow(request), caller, event_id)


# A person's private feed lists every event they booked at any organisation: it is handed out
# only to that person, through the signed link in their booking mail (forwarded by the web front),
# never looked up by email (issue 17: `GET /v1/people/calendar?email=` is gone).


def _booking_proof(request: Request, caller: CallerDep, booking_id: str) -> None:
    if caller.role != WEB_FRONT:
        raise Forbidden("A person's calendar is theirs: it opens through their booking link on the web front.")
    web_front_proof(
        request, caller, BOOKING_LINK_HEADER, lambda secret, link, now: opens_booking(secret, link, booking_id, now)
    )


@router.get("/bookings/{booking_id}/calendar", response_model=PersonFeed, tags=["attendees"])
@for_web_front
async def booking_calendar_link(booking_id: str, caller: CallerDep, request: Request) -> PersonFeed:
    """The private feed of the person who made the booking (the web front, with their booking link)."""
    _booking_proof(request, caller, booking_id)
    token = await service.booking_feed_token(_uow(request), caller, booking_id)
    return PersonFeed(feed_url=f"{_base_url(request)}/v1/feeds/{token}.ics")


@router.post("/bookings/{booking_id}/calendar/rotate", response_model=PersonFeed, tags=["attendees"])
@for_web_front
async def rotate_booking_calendar(booking_id: str, caller: CallerDep, request: Request) -> PersonFeed:
    """A new private feed for that person; the old feed answers 404 from now on."""
    _booking_proof(request, caller, booking_id)
    token = await service.rotate_booking_feed(_uow(request), caller, booking_id)
    return PersonFeed(feed_url=f"{_base_url(request)}/v1/feeds/{token}.ics")


@router.post("/people/calendar/rotate", status_code=status.HTTP_204_NO_CONTENT, tags=["attendees"])
async def rotate_person_calendar(owner: FeedOwner, caller: StaffDep, request: Request) -> Response:
    """Federation staff end a person's feed (e.g. shared by mistake). The new one is not answered here:
    the person gets it from their booking link."""
    await service.rotate_person_feed(_uow(request), caller, str(owner.email))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- public -----------------------------------------------------------------------------------


@public.get("/feeds/{token}.ics", response_class=Response, responses=ICALENDAR_DOC)
@checks_credential("the feed's secret token (rotated from the booking page)")
async def person_calendar(token: str, request: Request) -> Response:
    events = await service.events_booked_by_token(_uow(request), token)
    body = to_icalendar(events, public_base_url=_base_url(request), now=_now(), name="My Pitch In events")
    return Response(body, media_type=CALENDAR)


@public.get("/organisations/{organisation_id}/calendar.ics", response_class=Response, responses=ICALENDAR_DOC)
async def organisation_calendar(organisation_id: str, request: Request) -> Response:
    now = _now()
    query = storage.EventQuery(
        organisation_id=organisation_id,
        statuses=("published", "live", "cancelled"),
        ending_after=now,
        limit=500,
    )
    events = await service.find_events(_uow(request), query)
    body = to_icalendar(events, public_base_url=_base_url(request), now=now, name=f"Events of {organisation_id}")
    return Response(body, media_type=CALENDAR)


@public.get("/public/events", response_model=EventPage)
async def upcoming_events(
    request: Request,
    federation_id: str | None = None,
    organisation_id: str | None = None,
    kind: EventKind | None = None,
    online: bool | None = None,
    hashtag: Annotated[str | None, Query(pattern=rules.HASHTAG)] = None,
    starts_from: Annotated[datetime | None, Query(alias="from", description="Naive times are UTC")] = None,
    starts_before: Annotated[datetime | None, Query(alias="to")] = None,
    near_lat: Annotated[float | None, Query(ge=-90, le=90)] = None,
    near_lon: Annotated[float | None, Query(ge=-180, le=180)] = None,
    within_km: Annotated[float, Query(gt=0, le=20_000)] = 25.0,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: str | None = None,
) -> EventPage:
    """Upcoming published events (not yet ended), in start order, a page at a time."""
    if (near_lat is None) != (near_lon is None):
        raise Problem(
            422,
            "Invalid request",
            "near_lat and near_lon go together",
            kind="/problems/validation",
            errors=[{"field": "query.near_lat" if near_lat is None else "query.near_lon", "message": "missing"}],
        )
    query = storage.EventQuery(
        federation_id=federation_id,
        organisation_id=organisation_id,
        kind=kind.value if kind else None,
        online=online,
        hashtag=hashtag,
        starts_from=_aware(starts_from),
        starts_before=_aware(starts_before),
        near=(near_lat, near_lon) if near_lat is not None and near_lon is not None else None,
        within_km=within_km,
        ending_after=_now(),
        after=_read_cursor(cursor) if cursor else None,
        limit=limit + 1,
    )
    events = await service.find_events(_uow(request), query)
    page, more = events[:limit], len(events) > limit
    return EventPage(
        events=[_public_view(e) for e in page],
        next_cursor=_write_cursor(page[-1]) if more else None,
    )


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _write_cursor(event: Event) -> str:
    raw = json.dumps([event.starts_at.isoformat(), event.event_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _read_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        starts_at, event_id = json.loads(raw)
        moment = datetime.fromisoformat(starts_at)
        if moment.tzinfo is None or not isinstance(event_id, str):
            raise ValueError("incomplete cursor")
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise Problem(
            422,
            "Invalid request",
            "cursor is not one this listing gave out",
            kind="/problems/validation",
            errors=[{"field": "query.cursor", "message": "not a cursor from a previous page"}],
        ) from exc
    return moment, event_id
