"""The public pages: home, the events listing and an event's page, RSVP, bookings and calendar feeds.

Anyone may read them; they call the services with the web's own narrow key (role `web-front`).
A booking page opens only with the signed booking link (pitchin_core.links `b1.…`) mailed to the
person who booked, never with the bare booking id; the web checks it and forwards it to signups
and scheduling (`X-Booking-Link`), which check it again rather than trust the web's key.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from pitchin_core.links import BadLink, read_booking_link, sign_booking_link
from pitchin_web.clients import ServiceError
from pitchin_web.domain import forms, views
from pitchin_web.domain.timefmt import format_when, is_zone, iso_instant
from pitchin_web.pages.common import (
    LinkRefused,
    flash,
    language,
    now,
    optional,
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
        return redirect(f"/bookings/{booking_link(request, booking['booking_id'])}")
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


def booking_link(request: Request, booking_id: str) -> str:
    """The signed link that opens `booking_id` for the person who booked (as mailed to them)."""
    return sign_booking_link(web_of(request).settings.donor_link_secret, booking_id, time.time())


def _proof(request: Request, link: str) -> tuple[str, dict[str, str]]:
    """The booking a signed link opens, and the header that shows the services the same proof."""
    try:
        booking_id = read_booking_link(web_of(request).settings.donor_link_secret, link, time.time())
    except BadLink as exc:
        raise LinkRefused(403, "booking.title") from exc
    return booking_id, {BOOKING_LINK_HEADER: link}


BOOKING_LINK_HEADER = "X-Booking-Link"


async def _booking(request: Request, link: str) -> tuple[dict[str, Any], dict[str, Any], str | None]:
    web = web_of(request)
    key = web.settings.federation_key
    booking_id, proof = _proof(request, link)
    booking = await web.services.signups.call("GET", f"/v1/bookings/{quote(booking_id)}", key=key, headers=proof)
    event_call = web.services.scheduling.call("GET", f"/v1/events/{quote(booking['event_id'])}", key=key)
    feed_call = optional(
        web.services.scheduling.call("GET", f"/v1/bookings/{quote(booking_id)}/calendar", key=key, headers=proof)
    )
    event, feed = await asyncio.gather(event_call, feed_call)
    return booking, event, _feed_path(feed)


def _feed_path(feed: Any) -> str | None:
    """The person's private feed on this front (scheduling's URL names the same path)."""
    if not isinstance(feed, dict) or not feed.get("feed_url"):
        return None
    return "/v1/feeds/" + str(feed["feed_url"]).rsplit("/", 1)[-1]


@router.get("/bookings/{link}", response_class=HTMLResponse)
async def booking_page(request: Request, link: str, choice: str | None = None) -> HTMLResponse:
    booking, event, feed_url = await _booking(request, link)
    zone = zone_of(request, event["time_zone"])
    return render(
        request,
        "booking.html",
        booking=booking,
        event=event,
        link=link,
        feed_url=feed_url,
        when=when(request, event, zone),
        # A waitlist offer (issue 22): until when the place is held, and the answer the mail's link chose.
        offer_until=format_when(booking.get("offer_expires_at"), zone, language(request)),
        choice=choice,
        sent_to=request.session.pop("last_email", None),
        noindex=True,
    )


@router.get("/bookings/{link}/take", response_class=HTMLResponse)
async def booking_offer_take_page(request: Request, link: str) -> HTMLResponse:
    # The offer mail's "take the place" link lands here; a GET never answers (mail scanners
    # follow links): the page puts that answer's button first.
    return await booking_page(request, link, choice="accept")


@router.get("/bookings/{link}/give-up", response_class=HTMLResponse)
async def booking_offer_give_up_page(request: Request, link: str) -> HTMLResponse:
    return await booking_page(request, link, choice="decline")


@router.post("/bookings/{link}/offer")
async def booking_offer_answer(request: Request, link: str) -> Response:
    """The person offered a freed place takes it or gives up their spot: one button, one call to signups."""
    form = await posted_form(request)
    answer = "decline" if form.get("answer") == "decline" else "accept"
    web = web_of(request)
    booking_id, proof = _proof(request, link)
    path = f"/v1/bookings/{quote(booking_id)}/offer/{answer}"
    try:
        await web.services.signups.call("POST", path, key=web.settings.federation_key, headers=proof)
    except ServiceError as exc:
        if exc.status != 409:
            raise
        flash(request, "booking.offer.closed")  # expired or answered meanwhile: the page says which
        return redirect(f"/bookings/{quote(link)}")
    flash(request, "booking.offer.taken" if answer == "accept" else "booking.offer.given_up")
    return redirect(f"/bookings/{quote(link)}")


@router.get("/bookings/{link}/cancel", response_class=HTMLResponse)
async def booking_cancel_page(request: Request, link: str) -> HTMLResponse:
    # The link in the email lands here; a GET never cancels (mail scanners follow links).
    return await booking_page(request, link)


@router.post("/bookings/{link}/cancel")
async def booking_cancel(request: Request, link: str) -> Response:
    form = await posted_form(request)
    web = web_of(request)
    booking_id, proof = _proof(request, link)
    path = f"/v1/bookings/{quote(booking_id)}/cancel"
    await web.services.signups.call("POST", path, key=web.settings.federation_key, headers=proof)
    flash(request, "booking.cancel.done")
    return redirect_back(form.get("back"), f"/bookings/{quote(link)}")


@router.post("/bookings/{link}/calendar")
async def booking_calendar_rotate(request: Request, link: str) -> Response:
    """A new private calendar link for this person: the old one stops working (a feed shared by mistake)."""
    await posted_form(request)
    web = web_of(request)
    booking_id, proof = _proof(request, link)
    path = f"/v1/bookings/{quote(booking_id)}/calendar/rotate"
    await web.services.scheduling.call("POST", path, key=web.settings.federation_key, headers=proof)
    flash(request, "booking.calendar.rotated")
    return redirect(f"/bookings/{quote(link)}")


@router.post("/bookings/{link}/erase")
async def booking_asks_erasure(request: Request, link: str) -> Response:
    """The person who booked (a donor or not) asks to be forgotten, with their booking link."""
    await posted_form(request)
    web = web_of(request)
    booking_id, proof = _proof(request, link)
    path = f"/v1/bookings/{quote(booking_id)}/erasure-request"
    await web.services.signups.call("POST", path, key=web.settings.federation_key, headers=proof)
    flash(request, "erase.done")
    return redirect("/")


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
