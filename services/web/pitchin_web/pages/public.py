"""The public pages: home, the events listing and an event's page, RSVP, bookings and calendar feeds.

Anyone may read them; they call the services with the web's federation key.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from pitchin_web.clients import ServiceError
from pitchin_web.domain import forms, views
from pitchin_web.domain.timefmt import is_zone, iso_instant
from pitchin_web.pages.common import (
    flash,
    language,
    now,
    post_form,
    posted_form,
    redirect,
    redirect_back,
    render,
    translator,
    web_of,
    when,
    zone_of,
)

router = APIRouter()
CALENDAR = "text/calendar; charset=utf-8"


@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> HTMLResponse:
    return render(request, "home.html")


@router.get("/events", response_class=HTMLResponse)
async def events(request: Request) -> HTMLResponse:
    web = web_of(request)
    params = {"federation_id": web.settings.federation_id} if web.settings.federation_id else {}
    page = await web.services.scheduling.call("GET", "/v1/public/events", params={**params, "limit": 50})
    zone = zone_of(request)
    listed = [
        {
            "event_id": e["event_id"],
            "title": e["title"],
            "when": when(request, e, zone_of(request, e["time_zone"])),
            "where": e.get("venue_name") or translator(request)("event.online"),
            "iso": iso_instant(e["starts_at"]),
        }
        for e in page["events"]
    ]
    return render(request, "events.html", events=listed, zone=zone)


async def _public_event(
    request: Request, event_id: str, *, with_sessions: bool = False
) -> tuple[dict[str, Any], views.PublicEventView, list[dict[str, Any]]]:
    """The event, its places and (for the page) its agenda: the three calls go out together."""
    web = web_of(request)
    cached = web.public_events.get((event_id, with_sessions))
    if cached is None:
        key = web.settings.federation_key
        path = f"/v1/events/{quote(event_id)}"
        event_call = web.services.scheduling.call("GET", path, key=key)
        bookings_call = web.services.signups.call("GET", f"{path}/places", key=key)
        sessions_call = (
            web.services.scheduling.call("GET", f"{path}/sessions", key=key) if with_sessions else _nothing()
        )
        cached = tuple(await asyncio.gather(event_call, bookings_call, sessions_call, return_exceptions=True))
        if not any(isinstance(a, BaseException) for a in cached):
            web.public_events[(event_id, with_sessions)] = cached
    event, bookings, raw_sessions = cached
    if isinstance(event, BaseException):
        raise event
    if event["status"] == "draft":
        raise ServiceError(404, "Not found", "draft")
    if isinstance(bookings, BaseException):
        if not isinstance(bookings, ServiceError) or bookings.status != 404:
            raise bookings
        bookings = None  # signups has not heard of the event yet: scheduling's counts stand in
    view = views.public_event(event, bookings, zone_of(request, event["time_zone"]), now(), language(request))
    sessions = [] if isinstance(raw_sessions, BaseException) else raw_sessions or []  # the agenda is a nicety
    shown = [{**s, "when": when(request, s, view.reader_zone)} for s in sessions]
    return event, view, shown


async def _nothing() -> Any:
    return None


def _zone_known(request: Request) -> bool:
    """Whether the browser told us its zone (site.js sets the cookie; until then times are the event's)."""
    return is_zone(request.cookies.get("tz") or "")


@router.get("/events/{event_id}", response_class=HTMLResponse)
async def event_page(request: Request, event_id: str) -> HTMLResponse:
    _, view, sessions = await _public_event(request, event_id, with_sessions=True)
    return render(request, "event.html", event=view, sessions=sessions, zone_known=_zone_known(request))


@router.post("/events/{event_id}/rsvp", response_class=HTMLResponse)
async def rsvp(request: Request, event_id: str) -> Response:
    form = await posted_form(request)
    web = web_of(request)
    web.doors.knock(request, "rsvp", email=form.get("email"))
    checked = forms.rsvp(form, translator(request).labels(name="event.rsvp.name"))
    path = f"/v1/events/{quote(event_id)}/bookings"
    booking, errors = await post_form(
        web.services.signups, path, web.settings.federation_key, checked, forms.RSVP_FIELDS, "email"
    )
    if not errors:
        request.session["last_email"] = form.get("email")
        for with_sessions in (True, False):  # this reader's next view shows their own booking counted
            web.public_events.pop((event_id, with_sessions), None)
        return redirect(f"/bookings/{quote(booking['booking_id'])}")
    _, view, _ = await _public_event(request, event_id)
    return render(
        request,
        "event.html",
        status=422,
        event=view,
        sessions=[],
        errors=errors,
        values=form.fields,
        zone_known=_zone_known(request),
    )


async def _booking(request: Request, booking_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    web = web_of(request)
    key = web.settings.federation_key
    booking = await web.services.signups.call("GET", f"/v1/bookings/{quote(booking_id)}", key=key)
    event = await web.services.scheduling.call("GET", f"/v1/events/{quote(booking['event_id'])}", key=key)
    return booking, event


@router.get("/bookings/{booking_id}", response_class=HTMLResponse)
async def booking_page(request: Request, booking_id: str) -> HTMLResponse:
    booking, event = await _booking(request, booking_id)
    return render(
        request,
        "booking.html",
        booking=booking,
        event=event,
        when=when(request, event, zone_of(request, event["time_zone"])),
        sent_to=request.session.pop("last_email", None),
    )


@router.get("/bookings/{booking_id}/cancel", response_class=HTMLResponse)
async def booking_cancel_page(request: Request, booking_id: str) -> HTMLResponse:
    # The link in the email lands here; a GET never cancels (mail scanners follow links).
    return await booking_page(request, booking_id)


@router.post("/bookings/{booking_id}/cancel")
async def booking_cancel(request: Request, booking_id: str) -> Response:
    form = await posted_form(request)
    web = web_of(request)
    await web.services.signups.call("POST", f"/v1/bookings/{quote(booking_id)}/cancel", key=web.settings.federation_key)
    flash(request, "booking.cancel.done")
    return redirect_back(form.get("back"), f"/bookings/{quote(booking_id)}")


# Calendar feeds: the services' links point at this public front; the feed comes from scheduling.


@router.get("/v1/events/{event_id}.ics")
async def event_calendar(event_id: str, request: Request) -> Response:
    return await _calendar(request, f"/v1/events/{quote(event_id)}.ics")


@router.get("/v1/feeds/{token}.ics")
async def person_calendar(token: str, request: Request) -> Response:
    return await _calendar(request, f"/v1/feeds/{quote(token)}.ics")


async def _calendar(request: Request, path: str) -> Response:
    answer = await web_of(request).services.scheduling.raw(path)
    return Response(answer.content, status_code=answer.status_code, media_type=CALENDAR)
