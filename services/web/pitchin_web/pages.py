"""The pages: parse the form, call the services, render a template (thin, like the services' api.py).

Who calls the services with which key:
  - public pages (events, RSVP, donor sign-up, a donor's page reached by a signed link) use the
    web's federation key (PITCHIN_FEDERATION_KEY), for the one federation this front serves;
  - organisers and federation staff log in with their own API key, kept in the signed session
    cookie and sent on their calls, so every organiser sees only what the services let that key see;
  - donors answer offers with matching's own signed offer token, passed through untouched.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import quote

import icalendar
import jinja2
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from pitchin_core.links import (
    BadLink,
    DonorLink,
    read_donor_link,
    read_record_link,
    sign_donor_link,
    sign_record_link,
)
from pitchin_web.clients import ServiceError, Services
from pitchin_web.domain import forms, views
from pitchin_web.domain.forms import Errors, FieldError, Form
from pitchin_web.domain.timefmt import COMMON_ZONES, format_span, format_when, is_zone, iso_instant, reader_zone
from pitchin_web.messages import LANGUAGES, Translator, preferred_language
from pitchin_web.messages.en import CONSENT_PURPOSES, CONSENT_VERSION
from pitchin_web.security import CsrfFailed, FormTooLarge, check_csrf, csrf_token, read_form

router = APIRouter()
CALENDAR = "text/calendar; charset=utf-8"
EVENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,79}$")


@dataclass
class Web:
    settings: Any  # WebSettings (main.py imports this module)
    services: Services
    templates: jinja2.Environment


def templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(str(files("pitchin_web") / "templates")))),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(
        levels=forms.LEVELS, days=forms.DAYS, causes=forms.CAUSES, zones=COMMON_ZONES, val=_val, has=_has
    )
    return env


def _val(values: Any, name: str, default: str = "") -> str:
    """A field's value to show again: forms give lists, the sign-up draft plain values."""
    value = values.get(name, default) if values else default
    if isinstance(value, list):
        return str(value[0]) if value else default
    if isinstance(value, bool):
        return "on" if value else ""
    return default if value is None else str(value)


def _has(values: Any, name: str, option: str) -> bool:
    """Whether a checkbox or option was chosen."""
    value = values.get(name) if values else None
    if isinstance(value, list | tuple):
        return option in value
    if isinstance(value, dict):
        return option in value
    if isinstance(value, bool):
        return value
    return value == option


def _web(request: Request) -> Web:
    web: Web = request.app.state.web
    return web


def _now() -> datetime:
    return datetime.now(UTC)


def _t(request: Request) -> Translator:
    """The reader's language: the one they chose (kept in their session), else their browser's."""
    chosen = request.session.get("lang")
    return Translator(chosen or preferred_language(request.headers.get("accept-language", ""), LANGUAGES))


def _lang(request: Request) -> str:
    return _t(request).language


def _zone(request: Request, fallback: str = "UTC") -> str:
    return reader_zone(request.cookies.get("tz"), fallback)


def _flash(request: Request, key: str, **values: Any) -> None:
    request.session.setdefault("flash", []).append(_t(request)(key, **values))


def render(request: Request, name: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    t = _t(request)
    errors: Errors = context.pop("errors", {}) or {}
    messages = {field: t(e.key, **e.values) for field, e in errors.items()}
    body = (
        _web(request)
        .templates.get_template(name)
        .render(
            t=t,
            csrf=csrf_token(request),
            flashes=request.session.pop("flash", []),
            user=request.session.get("role"),
            errors=messages,
            values=context.pop("values", {}),
            path=request.url.path,
            languages=LANGUAGES,
            **context,
        )
    )
    return HTMLResponse(body, status_code=status)


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _api_errors(exc: ServiceError, table: dict[str, str], fallback: str) -> Errors:
    """A service's field errors beside the matching form fields; the rest beside `fallback`."""
    errors: Errors = {}
    for api_field, message in exc.fields or [("", exc.detail)]:
        name = forms.map_api_field(api_field, table) or fallback
        errors.setdefault(name, FieldError("{message}", {"message": message}))
    return errors


async def _form(request: Request) -> Form:
    form = await read_form(request)
    check_csrf(request, form)
    return form


@dataclass
class LinkRefused(Exception):
    """A donor's link (ours, or matching's offer token) is missing, wrong or expired."""

    status: int
    title: str  # message key of the page's title
    message: str = "me.link_bad"


def _donor_claims(request: Request, link: str, read: Callable[[str, str, float], DonorLink], title: str) -> DonorLink:
    try:
        return read(_web(request).settings.donor_link_secret, link, time.time())
    except BadLink as exc:
        raise LinkRefused(403, title) from exc


async def _with_offer_token(request: Request, method: str, path: str, token: str, body: Any = None) -> Any:
    """A call to matching on the donor's behalf, with the token from their offer email."""
    if not token:
        raise LinkRefused(401, "offers.title", "offer.no_token")
    try:
        return await _web(request).services.matching.call(method, path, headers={"X-Offer-Token": token}, json=body)
    except ServiceError as exc:
        if exc.status in (401, 404):
            raise LinkRefused(exc.status, "offers.title") from exc
        raise


def install_page_errors(app: FastAPI) -> None:
    """Pages answer errors as pages (the JSON routes keep pitchin_core's problem+json)."""

    @app.exception_handler(LinkRefused)
    async def _link(request: Request, exc: LinkRefused) -> HTMLResponse:
        return render(request, "error.html", status=exc.status, title=_t(request)(exc.title), message=exc.message)

    @app.exception_handler(CsrfFailed)
    async def _csrf(request: Request, exc: CsrfFailed) -> HTMLResponse:
        return render(request, "error.html", status=403, title=_t(request)("error.title"), message="common.csrf")

    @app.exception_handler(FormTooLarge)
    async def _large(request: Request, exc: FormTooLarge) -> HTMLResponse:
        return render(request, "error.html", status=413, title=_t(request)("error.title"), message="error.title")

    @app.exception_handler(ServiceError)
    async def _service(request: Request, exc: ServiceError) -> HTMLResponse:
        if exc.status == 404:
            return render(
                request, "error.html", status=404, title=_t(request)("error.notfound.title"), message="common.not_found"
            )
        if exc.status in (401, 403):
            return render(
                request, "error.html", status=exc.status, title=_t(request)("error.title"), message="common.forbidden"
            )
        return render(request, "error.html", status=503, title=_t(request)("error.title"), message="common.unavailable")

    previous = app.exception_handlers.get(StarletteHTTPException)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith("/v1/") and previous is not None:
            answer: Response = await previous(request, exc)  # type: ignore[misc]
            return answer
        key = "common.not_found" if exc.status_code == 404 else "error.title"
        return render(request, "error.html", status=exc.status_code, title=_t(request)("error.title"), message=key)


# -- home and public events -----------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> HTMLResponse:
    return render(request, "home.html")


@router.get("/language/{code}")
async def choose_language(request: Request, code: str, back: str = "/") -> Response:
    """A plain link (no form, no JavaScript) that keeps the reader's language in their session."""
    if code not in LANGUAGES:
        raise StarletteHTTPException(404)
    request.session["lang"] = code
    return _redirect(back if back.startswith("/") and not back.startswith("//") else "/")


@router.get("/events", response_class=HTMLResponse)
async def events(request: Request) -> HTMLResponse:
    web = _web(request)
    params = {"federation_id": web.settings.federation_id} if web.settings.federation_id else {}
    page = await web.services.scheduling.call("GET", "/v1/public/events", params={**params, "limit": 50})
    zone = _zone(request)
    listed = [
        {
            "event_id": e["event_id"],
            "title": e["title"],
            "when": format_span(e["starts_at"], e["ends_at"], _zone(request, e["time_zone"]), _lang(request)),
            "where": e.get("venue_name") or _t(request)("event.online"),
            "iso": iso_instant(e["starts_at"]),
        }
        for e in page["events"]
    ]
    return render(request, "events.html", events=listed, zone=zone)


async def _public_event(
    request: Request, event_id: str, *, with_sessions: bool = False
) -> tuple[dict[str, Any], views.PublicEventView, list[dict[str, Any]]]:
    """The event, its places and (for the page) its agenda: the three calls go out together."""
    web = _web(request)
    key = web.settings.federation_key
    path = f"/v1/events/{quote(event_id)}"
    event_call = web.services.scheduling.call("GET", path, key=key)
    bookings_call = web.services.signups.call("GET", f"{path}/bookings", key=key, params={"status": "waitlisted"})
    sessions_call = web.services.scheduling.call("GET", f"{path}/sessions", key=key) if with_sessions else _nothing()
    answers: list[Any] = list(await asyncio.gather(event_call, bookings_call, sessions_call, return_exceptions=True))
    event, bookings, raw_sessions = answers
    if isinstance(event, BaseException):
        raise event
    if event["status"] == "draft":
        raise ServiceError(404, "Not found", "draft")
    if isinstance(bookings, BaseException):
        if not isinstance(bookings, ServiceError) or bookings.status != 404:
            raise bookings
        bookings = None  # signups has not heard of the event yet: scheduling's counts stand in
    view = views.public_event(event, bookings, _zone(request, event["time_zone"]), _now(), _lang(request))
    sessions = [] if isinstance(raw_sessions, BaseException) else raw_sessions or []  # the agenda is a nicety
    shown = [
        {**s, "when": format_span(s["starts_at"], s["ends_at"], view.reader_zone, _lang(request))} for s in sessions
    ]
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
    form = await _form(request)
    t = _t(request)
    payload, errors = forms.rsvp(form, {"name": t("event.rsvp.name")})
    if not errors:
        try:
            booking = await _web(request).services.signups.call(
                "POST",
                f"/v1/events/{quote(event_id)}/bookings",
                key=_web(request).settings.federation_key,
                json=payload,
            )
            request.session["last_email"] = payload["email"]
            return _redirect(f"/bookings/{quote(booking['booking_id'])}")
        except ServiceError as exc:
            if exc.unavailable:
                raise
            errors = _api_errors(exc, {"name": "name", "email": "email"}, "email")
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
    web = _web(request)
    key = web.settings.federation_key
    booking = await web.services.signups.call("GET", f"/v1/bookings/{quote(booking_id)}", key=key)
    event = await web.services.scheduling.call("GET", f"/v1/events/{quote(booking['event_id'])}", key=key)
    return booking, event


@router.get("/bookings/{booking_id}", response_class=HTMLResponse)
async def booking_page(request: Request, booking_id: str) -> HTMLResponse:
    booking, event = await _booking(request, booking_id)
    zone = _zone(request, event["time_zone"])
    return render(
        request,
        "booking.html",
        booking=booking,
        event=event,
        when=format_span(event["starts_at"], event["ends_at"], zone, _lang(request)),
        sent_to=request.session.pop("last_email", None),
    )


@router.get("/bookings/{booking_id}/cancel", response_class=HTMLResponse)
async def booking_cancel_page(request: Request, booking_id: str) -> HTMLResponse:
    # The link in the email lands here; a GET never cancels (mail scanners follow links).
    return await booking_page(request, booking_id)


@router.post("/bookings/{booking_id}/cancel")
async def booking_cancel(request: Request, booking_id: str) -> Response:
    form = await _form(request)
    await _web(request).services.signups.call(
        "POST", f"/v1/bookings/{quote(booking_id)}/cancel", key=_web(request).settings.federation_key
    )
    _flash(request, "booking.cancel.done")
    back = form.get("back")
    return _redirect(back if back.startswith("/") and not back.startswith("//") else f"/bookings/{quote(booking_id)}")


# Calendar feeds: the services' links point at this public front; the feed comes from scheduling.


@router.get("/v1/events/{event_id}.ics")
async def event_calendar(event_id: str, request: Request) -> Response:
    answer = await _web(request).services.scheduling.raw(f"/v1/events/{quote(event_id)}.ics")
    return Response(answer.content, status_code=answer.status_code, media_type=CALENDAR)


@router.get("/v1/feeds/{token}.ics")
async def person_calendar(token: str, request: Request) -> Response:
    answer = await _web(request).services.scheduling.raw(f"/v1/feeds/{quote(token)}.ics")
    return Response(answer.content, status_code=answer.status_code, media_type=CALENDAR)


# -- donor sign-up ----------------------------------------------------------------------------------

STEPS = 3


async def _skills(request: Request) -> dict[str, str]:
    web = _web(request)
    skills: dict[str, str] = await web.services.signups.call("GET", "/v1/skills", key=web.settings.federation_key)
    return skills


@router.get("/donors/signup", response_class=HTMLResponse)
async def signup_page(request: Request, step: int = 1) -> HTMLResponse:
    draft = request.session.get("signup", {})
    step = max(1, min(step, STEPS, int(draft.get("reached", 1))))
    return render(
        request,
        "signup.html",
        step=step,
        total=STEPS,
        values=draft,
        skills=await _skills(request),
        consent_version=CONSENT_VERSION,
    )


@router.post("/donors/signup", response_class=HTMLResponse)
async def signup(request: Request) -> Response:
    form = await _form(request)
    t = _t(request)
    draft: dict[str, Any] = dict(request.session.get("signup", {}))
    step = int(form.get("step") or 1) if form.get("step").isdigit() else 1
    skills = await _skills(request)
    if form.get("go") == "back":
        return _redirect(f"/donors/signup?step={max(step - 1, 1)}")
    if step == 1:
        values, errors = forms.signup_step1(form, {"name": t("signup.name"), "city": t("signup.city")})
    elif step == 2:
        values, errors = forms.signup_step2(form, list(skills))
    else:
        values, errors = forms.signup_step3(form, bool(draft.get("phone")))
    draft.update(values)
    if errors:
        shown = {**draft, **form.fields} if step == 1 else draft
        return render(
            request,
            "signup.html",
            status=422,
            step=step,
            total=STEPS,
            values=shown,
            skills=skills,
            errors=errors,
            consent_version=CONSENT_VERSION,
        )
    if step < STEPS:
        draft["reached"] = max(int(draft.get("reached", 1)), step + 1)
        request.session["signup"] = draft
        return _redirect(f"/donors/signup?step={step + 1}")
    payload = forms.signup_payload(draft, consent_version=CONSENT_VERSION, purposes=CONSENT_PURPOSES, now=_now())
    web = _web(request)
    try:
        donor = await web.services.signups.call("POST", "/v1/donors", key=web.settings.federation_key, json=payload)
    except ServiceError as exc:
        if exc.unavailable:
            raise
        errors = {}
        first_step = STEPS
        for api_field, message in exc.fields or [("", exc.detail)]:
            found = forms.map_api_field(api_field, forms.SIGNUP_FIELDS)
            name, at = found if found else ("consent", STEPS)
            key = "signup.already" if message == "already signed up" else "{message}"
            errors.setdefault(name, FieldError(key, {"message": message}))
            first_step = min(first_step, at)
        request.session["signup"] = draft
        return render(
            request,
            "signup.html",
            status=422,
            step=first_step,
            total=STEPS,
            values=draft,
            skills=skills,
            errors=errors,
            consent_version=CONSENT_VERSION,
        )
    request.session.pop("signup", None)
    link = sign_donor_link(
        web.settings.donor_link_secret, donor["donor_id"], time.time(), web.settings.donor_link_days * 86400
    )
    request.session["donor_done"] = {"name": donor["name"], "email": donor["email"], "link": link}
    return _redirect("/donors/welcome")


@router.get("/donors/welcome", response_class=HTMLResponse)
async def signup_done(request: Request) -> Response:
    done = request.session.get("donor_done")
    if not done:
        return _redirect("/donors/signup")
    url = f"{_web(request).settings.public_base_url.rstrip('/')}/me/{done['link']}"
    return render(request, "signup_done.html", done=done, url=url, days=_web(request).settings.donor_link_days)


# -- a donor's own page, by signed link ---------------------------------------------------------------


@router.get("/me/{link}", response_class=HTMLResponse)
async def donor_page(request: Request, link: str) -> HTMLResponse:
    web = _web(request)
    claims = _donor_claims(request, link, read_donor_link, "me.title")
    key = web.settings.federation_key
    donor_path = f"/v1/donors/{quote(claims.donor_id)}"
    donor = await web.services.signups.call("GET", donor_path, key=key)
    zone = reader_zone(donor.get("availability", {}).get("time_zone"), "UTC")
    offered, record, (bookings, feed_url) = await asyncio.gather(
        _optional(web.services.matching.call("GET", f"{donor_path}/offers", key=key)),
        _optional(web.services.matching.call("GET", f"{donor_path}/record", key=key)),
        _donor_bookings(request, str(donor.get("email", "")), zone),
    )
    offers = [views.offer_view(o, zone, _now(), _lang(request)) for o in (offered or {}).get("offers", [])]
    return render(
        request,
        "me.html",
        donor=donor,
        offers=offers,
        bookings=bookings,
        feed_url=feed_url,
        record=views.donor_record(record, zone, _lang(request)) if record is not None else None,
        share_url=f"/record/{sign_record_link(web.settings.donor_link_secret, claims.donor_id, time.time())}",
        link=link,
    )


async def _optional(call: Awaitable[Any]) -> Any:
    """A part of a page that may be missing when its service is down: None, and the page still renders."""
    try:
        return await call
    except ServiceError as exc:
        if not exc.unavailable and exc.status != 404:
            raise
        return None


@router.get("/record/{link}", response_class=HTMLResponse)
async def record_page(request: Request, link: str) -> HTMLResponse:
    """The record a donor chose to show: hours given and thanks received, nothing else about them."""
    web = _web(request)
    claims = _donor_claims(request, link, read_record_link, "record.title")
    key = web.settings.federation_key
    donor_path = f"/v1/donors/{quote(claims.donor_id)}"
    donor, record, labels = await asyncio.gather(
        web.services.signups.call("GET", donor_path, key=key),
        web.services.matching.call("GET", f"{donor_path}/record", key=key),
        _skills(request),
    )
    if donor.get("status") == "withdrawn":
        raise ServiceError(404, "Not found", "withdrawn")  # a donor who left shows nothing any more
    zone = _zone(request, reader_zone(donor.get("availability", {}).get("time_zone"), "UTC"))
    return render(
        request,
        "record.html",
        donor_name=donor.get("name", ""),
        skills=[{**s, "label": labels.get(s["skill"], s["skill"])} for s in donor.get("skills", [])],
        record=views.donor_record(record, zone, _lang(request)),
        noindex=True,
    )


async def _donor_bookings(request: Request, email: str, zone: str) -> tuple[list[dict[str, Any]], str | None]:
    """A person's bookings: the events in their calendar feed, and their booking at each."""
    web = _web(request)
    key = web.settings.federation_key
    try:
        feed = await web.services.scheduling.call("GET", "/v1/people/calendar", key=key, params={"email": email})
    except ServiceError as exc:
        if exc.status == 404:
            return [], None
        raise
    token = str(feed["feed_url"]).rsplit("/", 1)[-1]
    answer = await web.services.scheduling.raw(f"/v1/feeds/{token}")
    event_ids = []
    if answer.status_code == 200:
        for item in icalendar.Calendar.from_ical(answer.content).walk("VEVENT"):
            event_ids.append(str(item.get("uid", "")).split("@", 1)[0])

    async def booking_at(event_id: str) -> list[dict[str, Any]]:
        try:
            listing, event = await asyncio.gather(
                web.services.signups.call("GET", f"/v1/events/{quote(event_id)}/bookings", key=key),
                web.services.scheduling.call("GET", f"/v1/events/{quote(event_id)}", key=key),
            )
        except ServiceError:
            return []
        return [
            {
                "booking_id": b["booking_id"],
                "status": b["status"],
                "title": event["title"],
                "event_id": event_id,
                "when": format_span(event["starts_at"], event["ends_at"], zone, _lang(request)),
            }
            for b in listing.get("items", [])
            if str(b.get("email", "")).lower() == email.lower() and b["status"] in ("confirmed", "waitlisted")
        ]

    found = await asyncio.gather(*(booking_at(e) for e in event_ids[:20] if EVENT_ID.match(e)))
    rows = [row for rows_of_event in found for row in rows_of_event]
    return rows, f"/v1/feeds/{token}"


# -- offers, answered with matching's signed tokens ------------------------------------------------------


@router.get("/v1/donors/{donor_id}/offers", response_class=HTMLResponse)
async def donor_offers(request: Request, donor_id: str, token: str = "") -> HTMLResponse:
    answer = await _with_offer_token(request, "GET", f"/v1/donors/{quote(donor_id)}/offers", token)
    zone = _zone(request)
    with_needs = await asyncio.gather(*(_with_need(request, o) for o in answer.get("offers", [])))
    offers = [views.offer_view(o, zone, _now(), _lang(request)) for o in with_needs]
    return render(request, "offers.html", offers=offers, token=token)


@router.get("/v1/offers/{offer_id}/accept", response_class=HTMLResponse)
@router.get("/v1/offers/{offer_id}/decline", response_class=HTMLResponse)
@router.get("/offers/{offer_id}", response_class=HTMLResponse)
@router.get("/offers/{offer_id}/accept", response_class=HTMLResponse)
@router.get("/offers/{offer_id}/decline", response_class=HTMLResponse)
async def offer_page(request: Request, offer_id: str, token: str = "") -> HTMLResponse:
    """Where the offer email's links land: the offer, why they were asked, and the two buttons.

    A GET never answers (mail scanners follow links); the buttons POST with the token.
    """
    offer = await _with_offer_token(request, "GET", f"/v1/offers/{quote(offer_id)}", token)
    view = views.offer_view(await _with_need(request, offer), _zone(request), _now(), _lang(request))
    choice = "decline" if request.url.path.endswith("/decline") else "accept"
    return render(request, "offer.html", offer=view, token=token, choice=choice)


async def _with_need(request: Request, offer: dict[str, Any]) -> dict[str, Any]:
    """The need's title, hours, deadline and urgency beside the offer (matching's offer carries ids only)."""
    if offer.get("need_title") and offer.get("estimated_hours"):
        return offer
    web = _web(request)
    try:
        need = await web.services.signups.call(
            "GET", f"/v1/needs/{quote(str(offer['need_id']))}", key=web.settings.federation_key
        )
    except ServiceError:
        return offer
    facts = {"need_title": need.get("title"), **{k: need.get(k) for k in ("estimated_hours", "deadline", "urgency")}}
    return {**facts, **{k: v for k, v in offer.items() if v is not None}}


@router.post("/offers/{offer_id}/answer", response_class=HTMLResponse)
async def answer_offer(request: Request, offer_id: str) -> Response:
    form = await _form(request)
    token = form.get("token")
    answer = "decline" if form.get("answer") == "decline" else "accept"
    reason = form.get("reason")[:1000]
    body = {"reason": reason} if answer == "decline" else None
    try:
        await _with_offer_token(request, "POST", f"/v1/offers/{quote(offer_id)}/{answer}", token, body)
    except ServiceError as exc:
        if exc.status in (409, 410, 422):
            _flash(request, "offer.answered")
            return _redirect(f"/offers/{quote(offer_id)}?token={quote(token)}")
        raise
    _flash(request, "offer.accepted" if answer == "accept" else "offer.declined")
    return _redirect(f"/offers/{quote(offer_id)}?token={quote(token)}")


# -- organisers and staff: log in with an API key ---------------------------------------------------------


def _key(request: Request) -> str | None:
    key = request.session.get("key")
    return key if isinstance(key, str) else None


class LoginNeeded(Exception):
    pass


def _require(request: Request) -> str:
    key = _key(request)
    if key is None:
        raise LoginNeeded()
    return key


def install_login_redirect(app: FastAPI) -> None:
    @app.exception_handler(LoginNeeded)
    async def _login(request: Request, exc: LoginNeeded) -> Response:
        _flash(request, "login.needed")
        return _redirect(f"/login?next={quote(request.url.path)}")


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request) -> HTMLResponse:
    return render(request, "login.html", next=request.query_params.get("next", ""))


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    form = await _form(request)
    key = form.get("api_key")
    role = "staff" if form.get("role") == "staff" else "organiser"
    errors: Errors = {}
    if not key:
        errors["api_key"] = FieldError("field.missing", {"label": _t(request)("login.key")})
    else:
        try:
            # Any authenticated call tells whether the key is known; what it may do is the services' to say.
            await _web(request).services.scheduling.call("GET", "/v1/events", key=key, params={"limit": 1})
        except ServiceError as exc:
            if exc.unavailable:
                raise
            errors["api_key"] = FieldError("field.api_key")
    if errors:
        return render(request, "login.html", status=422, errors=errors, next=form.get("next"), values={"role": role})
    csrf = request.session.get("csrf")
    request.session.clear()  # a new session on login: nothing carried over from before
    request.session.update({"key": key, "role": role, "csrf": csrf})
    nxt = form.get("next")
    default = "/staff" if role == "staff" else "/organiser"
    return _redirect(nxt if nxt.startswith("/") and not nxt.startswith("//") else default)


@router.post("/logout")
async def logout(request: Request) -> Response:
    await _form(request)
    request.session.clear()
    _flash(request, "logout.done")
    return _redirect("/")


@router.get("/organiser", response_class=HTMLResponse)
async def organiser_home(request: Request) -> HTMLResponse:
    key = _require(request)
    web = _web(request)
    fights = await web.services.signups.call("GET", "/v1/fights", key=key, params={"limit": 50})
    needs = await web.services.signups.call("GET", "/v1/needs", key=key, params={"limit": 100})
    events = await web.services.scheduling.call("GET", "/v1/events", key=key, params={"limit": 100})
    zone = _zone(request)
    listed = [
        {**e, "when": format_span(e["starts_at"], e["ends_at"], _zone(request, e["time_zone"]), _lang(request))}
        for e in events
    ]
    return render(request, "organiser.html", fights=fights["items"], needs=needs["items"], events=listed, zone=zone)


async def _organiser_skills(request: Request, key: str) -> dict[str, str]:
    skills: dict[str, str] = await _web(request).services.signups.call("GET", "/v1/skills", key=key)
    return skills


def _fight_labels(t: Translator) -> dict[str, str]:
    return {
        "title": t("fight.name"),
        "description": t("fight.description"),
        "need_title": t("fight.need.title"),
        "city": t("fight.need.city"),
    }


@router.get("/organiser/fights/new", response_class=HTMLResponse)
async def fight_page(request: Request) -> HTMLResponse:
    key = _require(request)
    return render(
        request,
        "fight.html",
        skills=await _organiser_skills(request, key),
        values={"remote": ["on"], "urgency": ["normal"], "level": ["beginner"]},
    )


@router.post("/organiser/fights/new", response_class=HTMLResponse)
async def fight_create(request: Request) -> Response:
    key = _require(request)
    form = await _form(request)
    skills = await _organiser_skills(request, key)
    payload, errors = forms.fight(form, list(skills), _fight_labels(_t(request)), _zone(request), _now())
    if not errors:
        try:
            opened = await _web(request).services.signups.call("POST", "/v1/fights", key=key, json=payload)
            _flash(request, "fight.opened")
            needs = opened.get("needs") or []
            return _redirect(f"/organiser/needs/{quote(needs[0]['need_id'])}" if needs else "/organiser")
        except ServiceError as exc:
            if exc.unavailable:
                raise
            errors = _api_errors(exc, forms.FIGHT_FIELDS, "title")
    return render(request, "fight.html", status=422, skills=skills, errors=errors, values=form.fields)


@router.get("/organiser/suggest", response_class=HTMLResponse)
async def suggest_page(request: Request) -> HTMLResponse:
    _require(request)
    return render(request, "suggest.html", suggestions=None, kinds=forms.FIGHT_KINDS)


@router.post("/organiser/suggest", response_class=HTMLResponse)
async def suggest(request: Request) -> Response:
    key = _require(request)
    form = await _form(request)
    t = _t(request)
    web = _web(request)
    payload, errors = forms.situation(form, {"situation": t("suggest.situation")}, _zone(request))
    if errors:
        return render(
            request,
            "suggest.html",
            status=422,
            suggestions=None,
            errors=errors,
            values=form.fields,
            kinds=forms.FIGHT_KINDS,
        )
    found = await web.services.signups.call("POST", "/v1/needs/suggestions", key=key, json=payload)
    suggestions = found.get("suggestions", [])
    if form.get("action") != "pick":
        return render(request, "suggest.html", suggestions=suggestions, values=form.fields, kinds=forms.FIGHT_KINDS)
    needs, errors = forms.picked_needs(form, suggestions)
    title = form.get("fight_title")
    kind = form.get("kind") if form.get("kind") in forms.FIGHT_KINDS else "community"
    if not title:
        errors["fight_title"] = FieldError("field.missing", {"label": t("suggest.fight_name")})
    if errors:
        return render(
            request,
            "suggest.html",
            status=422,
            suggestions=suggestions,
            errors=errors,
            values=form.fields,
            kinds=forms.FIGHT_KINDS,
        )
    fight = {"kind": kind, "title": title, "description": payload["situation"], "needs": needs}
    try:
        opened = await web.services.signups.call("POST", "/v1/fights", key=key, json=fight)
    except ServiceError as exc:
        if exc.unavailable:
            raise
        return render(
            request,
            "suggest.html",
            status=422,
            suggestions=suggestions,
            values=form.fields,
            errors=_api_errors(exc, {"title": "fight_title"}, "pick"),
            kinds=forms.FIGHT_KINDS,
        )
    _flash(request, "fight.opened")
    return _redirect(f"/organiser/needs/{quote(opened['needs'][0]['need_id'])}" if opened["needs"] else "/organiser")


@router.get("/organiser/needs/{need_id}", response_class=HTMLResponse)
async def need_page(request: Request, need_id: str) -> HTMLResponse:
    key = _require(request)
    web = _web(request)
    need = await web.services.signups.call("GET", f"/v1/needs/{quote(need_id)}", key=key)
    candidates: dict[str, Any] | None = None
    offers: list[dict[str, Any]] = []
    unavailable = False
    try:
        candidates = await web.services.matching.call(
            "GET", f"/v1/needs/{quote(need_id)}/candidates", key=key, params={"limit": 10}
        )
        offered = await web.services.matching.call("GET", f"/v1/needs/{quote(need_id)}/offers", key=key)
        offers = offered.get("offers", [])
    except ServiceError as exc:
        if exc.status in (401, 403):
            raise
        unavailable = True
    zone = _zone(request)
    return render(
        request,
        "need.html",
        need=need,
        candidates=candidates,
        offers=offers,
        unavailable=unavailable,
        deadline=format_when(need.get("deadline"), zone, _lang(request)),
    )


@router.get("/organiser/assignments/{assignment_id}/complete", response_class=HTMLResponse)
async def complete_page(request: Request, assignment_id: str, need_id: str = "") -> HTMLResponse:
    key = _require(request)
    need = await _web(request).services.signups.call("GET", f"/v1/needs/{quote(need_id)}", key=key)
    return render(request, "complete.html", need=need, assignment_id=assignment_id)


@router.post("/organiser/assignments/{assignment_id}/complete", response_class=HTMLResponse)
async def complete(request: Request, assignment_id: str) -> Response:
    key = _require(request)
    form = await _form(request)
    t = _t(request)
    web = _web(request)
    payload, errors = forms.completion(form, {"thanks": t("complete.thanks")})
    need_id = form.get("need_id")
    if not errors:
        try:
            await web.services.matching.call(
                "POST", f"/v1/assignments/{quote(assignment_id)}/complete", key=key, json=payload
            )
            _flash(request, "complete.done")
            return _redirect(f"/organiser/needs/{quote(need_id)}")
        except ServiceError as exc:
            if exc.unavailable or exc.status in (401, 403, 404):
                raise
            if exc.status == 409:
                errors = {"hours_given": FieldError("complete.conflict")}
            else:
                errors = _api_errors(exc, {"hours_given": "hours_given", "thanks": "thanks"}, "hours_given")
    need = await web.services.signups.call("GET", f"/v1/needs/{quote(need_id)}", key=key)
    return render(
        request,
        "complete.html",
        status=422,
        need=need,
        assignment_id=assignment_id,
        errors=errors,
        values=form.fields,
    )


# After the completion routes: this one would take /complete for an {action}.
@router.post("/organiser/assignments/{assignment_id}/{action}")
async def assignment(request: Request, assignment_id: str, action: str) -> Response:
    key = _require(request)
    form = await _form(request)
    if action not in ("confirm", "release"):
        raise StarletteHTTPException(404)
    body = {"reason": form.get("reason")[:1000]} if action == "release" else None
    await _web(request).services.matching.call(
        "POST", f"/v1/assignments/{quote(assignment_id)}/{action}", key=key, json=body
    )
    return _redirect(f"/organiser/needs/{quote(form.get('need_id'))}")


def _event_labels(t: Translator) -> dict[str, str]:
    return {
        "title": t("event.name"),
        "description": t("event.description"),
        "venue": t("event.venue"),
        "address": t("event.address"),
    }


@router.get("/organiser/events/new", response_class=HTMLResponse)
async def event_new_page(request: Request) -> HTMLResponse:
    _require(request)
    return render(
        request, "event_new.html", kinds=forms.EVENT_KINDS, values={"time_zone": [_zone(request, "Europe/London")]}
    )


@router.post("/organiser/events/new", response_class=HTMLResponse)
async def event_create(request: Request) -> Response:
    key = _require(request)
    form = await _form(request)
    payload, errors = forms.event(form, _event_labels(_t(request)))
    if not errors:
        try:
            event = await _web(request).services.scheduling.call("POST", "/v1/events", key=key, json=payload)
            _flash(request, "event.created")
            return _redirect(f"/organiser/events/{quote(event['event_id'])}")
        except ServiceError as exc:
            if exc.unavailable:
                raise
            errors = _api_errors(exc, forms.EVENT_FIELDS, "title")
    return render(request, "event_new.html", status=422, kinds=forms.EVENT_KINDS, errors=errors, values=form.fields)


async def _manage(request: Request, event_id: str, **extra: Any) -> HTMLResponse:
    key = _require(request)
    web = _web(request)
    event = await web.services.scheduling.call("GET", f"/v1/events/{quote(event_id)}", key=key)
    try:
        listing = await web.services.signups.call("GET", f"/v1/events/{quote(event_id)}/bookings", key=key)
        items = listing.get("items", [])
    except ServiceError as exc:
        if exc.status != 404:
            raise
        items = []
    confirmed, waiting = views.booking_rows(items)
    sessions = await web.services.scheduling.call("GET", f"/v1/events/{quote(event_id)}/sessions", key=key)
    zone = _zone(request, event["time_zone"])
    shown = [{**s, "when": format_span(s["starts_at"], s["ends_at"], zone, _lang(request))} for s in sessions]
    return render(
        request,
        "manage_event.html",
        status=extra.pop("status", 200),
        event=event,
        confirmed=confirmed,
        waiting=waiting,
        sessions=shown,
        when=format_span(event["starts_at"], event["ends_at"], zone, _lang(request)),
        **extra,
    )


@router.get("/organiser/events/{event_id}", response_class=HTMLResponse)
async def manage_event(request: Request, event_id: str) -> HTMLResponse:
    return await _manage(request, event_id)


@router.post("/organiser/bookings/{booking_id}/check-in")
async def check_in(request: Request, booking_id: str) -> Response:
    key = _require(request)
    form = await _form(request)
    await _web(request).services.signups.call("POST", f"/v1/bookings/{quote(booking_id)}/check-in", key=key)
    _flash(request, "event.checked_in.done", name=form.get("name"))
    return _redirect(f"/organiser/events/{quote(form.get('event_id'))}#bookings")


@router.post("/organiser/events/{event_id}/sessions", response_class=HTMLResponse)
async def add_session(request: Request, event_id: str) -> Response:
    key = _require(request)
    form = await _form(request)
    t = _t(request)
    event = await _web(request).services.scheduling.call("GET", f"/v1/events/{quote(event_id)}", key=key)
    payload, errors = forms.session(
        form, {"title": t("event.session.title"), "room": t("event.session.room")}, event["time_zone"]
    )
    if not errors:
        try:
            await _web(request).services.scheduling.call(
                "POST", f"/v1/events/{quote(event_id)}/sessions", key=key, json=payload
            )
            _flash(request, "event.session.added")
            return _redirect(f"/organiser/events/{quote(event_id)}#sessions")
        except ServiceError as exc:
            if exc.unavailable:
                raise
            errors = _api_errors(exc, forms.SESSION_FIELDS, "title")
    return await _manage(request, event_id, status=422, errors=errors, values=form.fields)


@router.post("/organiser/events/{event_id}/livestream")
async def livestream(request: Request, event_id: str) -> Response:
    key = _require(request)
    form = await _form(request)
    step = "livestream/end" if form.get("action") == "end" else "livestream/start"
    await _web(request).services.scheduling.call("POST", f"/v1/events/{quote(event_id)}/{step}", key=key)
    return _redirect(f"/organiser/events/{quote(event_id)}")


# -- federation staff -------------------------------------------------------------------------------------


async def _all_pages(request: Request, path: str, key: str, pages: int = 10) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(pages):
        params: dict[str, Any] = {"limit": 500}
        if cursor:
            params["cursor"] = cursor
        page = await _web(request).services.signups.call("GET", path, key=key, params=params)
        items.extend(page.get("items", []))
        cursor = page.get("next")
        if not cursor:
            break
    return items


@router.get("/staff", response_class=HTMLResponse)
async def staff_home(request: Request) -> HTMLResponse:
    return await _staff_page(request)


async def _staff_page(request: Request, *, status: int = 200, **context: Any) -> HTMLResponse:
    key = _require(request)
    web = _web(request)
    events_query = {"status": ["published", "live"], "from": _now().isoformat(), "limit": 200}
    donors, needs, events, skills, publishers, given = await asyncio.gather(
        _all_pages(request, "/v1/donors", key),
        _all_pages(request, "/v1/needs", key),
        web.services.scheduling.call("GET", "/v1/events", key=key, params=events_query),
        web.services.signups.call("GET", "/v1/skills", key=key),
        web.services.signups.call("GET", "/v1/publishers", key=key),
        _optional(web.services.matching.call("GET", "/v1/totals", key=key)),
    )
    hours = None if given is None else given.get("organisations", [])
    totals = views.federation_totals(donors, needs, events, _now(), hours)
    zone = _zone(request)
    listed = views.publisher_rows(publishers.get("items", []), zone, _lang(request))
    return render(request, "staff.html", status=status, totals=totals, skills=skills, publishers=listed, **context)


def _publisher_labels(t: Translator) -> dict[str, str]:
    return {"source": t("publisher.source"), "label": t("publisher.label")}


@router.post("/staff/publishers", response_class=HTMLResponse)
async def register_publisher(request: Request) -> Response:
    """Register a publishing system; its key and signing secret are shown on this answer only."""
    key = _require(request)
    form = await _form(request)
    payload, errors = forms.publisher(form, _publisher_labels(_t(request)))
    if not errors:
        try:
            registered = await _web(request).services.signups.call("POST", "/v1/publishers", key=key, json=payload)
        except ServiceError as exc:
            if exc.unavailable or exc.status in (401, 403):
                raise
            table = {k: k for k in ("source", "label", "organisations", "rate_per_second")}
            errors = _api_errors(exc, table, "source")
        else:
            page = render(request, "publisher_registered.html", registered=registered)
            page.headers["Cache-Control"] = "no-store"  # the credentials are in this page only
            return page
    return await _staff_page(request, status=422, errors=errors, values=form.fields)


@router.post("/staff/publishers/revoke")
async def revoke_publisher(request: Request) -> Response:
    key = _require(request)
    form = await _form(request)
    source = form.get("source")
    await _web(request).services.signups.call("POST", "/v1/publishers/revoke", key=key, json={"source": source})
    _flash(request, "publisher.revoked", source=source)
    return _redirect("/staff#publishers-title")
