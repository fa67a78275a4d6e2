"""The organisers' pages: their fights and needs, candidates and assignments, and their events.

An organiser logs in with their organisation's API key; every call goes out with it, so the
services decide what they may see and do.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from pitchin_web.clients import ServiceError
from pitchin_web.domain import forms, views
from pitchin_web.domain.forms import Errors, FieldError, Form
from pitchin_web.domain.timefmt import format_when
from pitchin_web.pages.common import (
    api_errors,
    flash,
    language,
    login_key,
    now,
    optional,
    post_form,
    posted_form,
    redirect,
    render,
    skills,
    submit,
    translator,
    web_of,
    when,
    zone_of,
)

router = APIRouter()


@router.get("/organiser", response_class=HTMLResponse)
async def organiser_home(request: Request) -> HTMLResponse:
    key = login_key(request)
    web = web_of(request)
    fights = await web.services.signups.call("GET", "/v1/fights", key=key, params={"limit": 50})
    needs = await web.services.signups.call("GET", "/v1/needs", key=key, params={"limit": 100})
    events = await web.services.scheduling.call("GET", "/v1/events", key=key, params={"limit": 100})
    zone = zone_of(request)
    listed = [{**e, "when": when(request, e, zone_of(request, e["time_zone"]))} for e in events]
    return render(request, "organiser.html", fights=fights["items"], needs=needs["items"], events=listed, zone=zone)


# -- fights and needs ---------------------------------------------------------------------------------------


def _fight_opened(request: Request, opened: dict[str, Any]) -> Response:
    """On to the fight's first need, where the organiser finds its candidates."""
    flash(request, "fight.opened")
    needs = opened.get("needs") or []
    return redirect(f"/organiser/needs/{quote(needs[0]['need_id'])}" if needs else "/organiser")


@router.get("/organiser/fights/new", response_class=HTMLResponse)
async def fight_page(request: Request) -> HTMLResponse:
    key = login_key(request)
    return render(
        request,
        "fight.html",
        skills=await skills(request, key),
        values={"remote": ["on"], "urgency": ["normal"], "level": ["beginner"]},
    )


@router.post("/organiser/fights/new", response_class=HTMLResponse)
async def fight_create(request: Request) -> Response:
    key = login_key(request)
    form = await posted_form(request)
    labels = await skills(request, key)
    field_labels = translator(request).labels(
        title="fight.name", description="fight.description", need_title="fight.need.title", city="fight.need.city"
    )
    checked = forms.fight(form, list(labels), field_labels, zone_of(request), now())
    opened, errors = await post_form(
        web_of(request).services.signups, "/v1/fights", key, checked, forms.FIGHT_FIELDS, "title"
    )
    if not errors:
        return _fight_opened(request, opened)
    return render(request, "fight.html", status=422, skills=labels, errors=errors, values=form.fields)


@router.get("/organiser/suggest", response_class=HTMLResponse)
async def suggest_page(request: Request) -> HTMLResponse:
    login_key(request)
    return render(request, "suggest.html", suggestions=None, kinds=forms.FIGHT_KINDS)


@router.post("/organiser/suggest", response_class=HTMLResponse)
async def suggest(request: Request) -> Response:
    key = login_key(request)
    form = await posted_form(request)
    t = translator(request)
    web = web_of(request)
    payload, errors = forms.situation(form, t.labels(situation="suggest.situation"), zone_of(request))
    if errors:
        return _suggest_again(request, form, None, errors)
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
        return _suggest_again(request, form, suggestions, errors)
    fight = {"kind": kind, "title": title, "description": payload["situation"], "needs": needs}
    opened, errors = await submit(
        web.services.signups.call("POST", "/v1/fights", key=key, json=fight), {"title": "fight_title"}, "pick"
    )
    if errors:
        return _suggest_again(request, form, suggestions, errors)
    return _fight_opened(request, opened)


def _suggest_again(
    request: Request, form: Form, suggestions: list[dict[str, Any]] | None, errors: Errors
) -> HTMLResponse:
    """The situation (and any suggestions) again, with what to put right."""
    return render(
        request,
        "suggest.html",
        status=422,
        suggestions=suggestions,
        errors=errors,
        values=form.fields,
        kinds=forms.FIGHT_KINDS,
    )


@router.get("/organiser/needs/{need_id}", response_class=HTMLResponse)
async def need_page(request: Request, need_id: str) -> HTMLResponse:
    key = login_key(request)
    web = web_of(request)
    path = f"/v1/needs/{quote(need_id)}"
    need = await web.services.signups.call("GET", path, key=key)
    candidates: dict[str, Any] | None = None
    offers: list[dict[str, Any]] = []
    hour_logs: list[dict[str, Any]] = []
    unavailable = False
    try:
        answers: tuple[Any, Any, Any] = await asyncio.gather(
            web.services.matching.call("GET", f"{path}/candidates", key=key, params={"limit": 10}),
            web.services.matching.call("GET", f"{path}/offers", key=key),
            # Hours donors logged on this need's work, to confirm or adjust (issue 22).
            web.services.matching.call("GET", f"{path}/hours", key=key),
        )
        candidates, offers, hour_logs = answers[0], answers[1].get("offers", []), answers[2].get("logs", [])
    except ServiceError as exc:
        if exc.status in (401, 403):
            raise
        unavailable = True
    labels = await optional(skills(request, key)) or {}
    escalation, found = await asyncio.gather(
        _escalation(request, key, path),
        _people(request, key, path, [*(candidates or {}).get("candidates", []), *offers, *hour_logs], labels),
    )
    zone = zone_of(request)
    lang = language(request)
    return render(
        request,
        "need.html",
        need=need,
        candidates=views.candidate_rows(candidates, found, lang, labels),
        asked=views.asked_rows(offers, found),
        hour_logs=[{**log, "who": views.person(found, log.get("donor_id"))} for log in hour_logs],
        # Matching confirms assignments and signups learns of it from Kafka a moment later: the
        # count beside the confirmed donors is matching's, signups' only when matching is not answering.
        placed=len(need.get("assigned_donors") or ()) if unavailable else views.placed(offers),
        unavailable=unavailable,
        escalation=views.escalation_view(escalation, zone, lang),
        deadline=format_when(need.get("deadline"), zone, lang),
    )


async def _escalation(request: Request, key: str, need_path: str) -> dict[str, Any] | None:
    """Matching's escalation of the need (urgent needs only); None when it has none or is not answering."""
    try:
        found: dict[str, Any] = await web_of(request).services.matching.call("GET", f"{need_path}/escalation", key=key)
    except ServiceError as exc:
        if exc.status in (401, 403):
            raise
        return None
    return found


async def _people(
    request: Request, key: str, need_path: str, rows: list[dict[str, Any]], labels: dict[str, str]
) -> dict[str, views.Person]:
    """The donors on the page by name, as signups lets the need's organisation see them (lending scope).

    A donor left out of signups' answer, or every donor when signups does not answer, reads as
    "a donor": the page still works, and shows no raw id in place of a name.
    """
    ids = list(dict.fromkeys(str(r["donor_id"]) for r in rows if r.get("donor_id")))[:PROFILES_AT_ONCE]
    if not ids:
        return {}
    try:
        answer = await web_of(request).services.signups.call(
            "POST", f"{need_path}/candidate-profiles", key=key, json={"donor_ids": ids}
        )
    except ServiceError:
        return {}
    return views.people(answer if isinstance(answer, dict) else None, labels)


PROFILES_AT_ONCE = 50  # what signups' candidate-profiles takes in one call


# -- assignments ---------------------------------------------------------------------------------------


@router.get("/organiser/assignments/{assignment_id}/complete", response_class=HTMLResponse)
async def complete_page(request: Request, assignment_id: str, need_id: str = "") -> HTMLResponse:
    key = login_key(request)
    need = await web_of(request).services.signups.call("GET", f"/v1/needs/{quote(need_id)}", key=key)
    return render(request, "complete.html", need=need, assignment_id=assignment_id)


@router.post("/organiser/assignments/{assignment_id}/complete", response_class=HTMLResponse)
async def complete(request: Request, assignment_id: str) -> Response:
    key = login_key(request)
    form = await posted_form(request)
    web = web_of(request)
    payload, errors = forms.completion(form, translator(request).labels(thanks="complete.thanks"))
    need_id = form.get("need_id")
    if not errors:
        try:
            await web.services.matching.call(
                "POST", f"/v1/assignments/{quote(assignment_id)}/complete", key=key, json=payload
            )
            flash(request, "complete.done")
            return redirect(f"/organiser/needs/{quote(need_id)}")
        except ServiceError as exc:
            if exc.unavailable or exc.status in (401, 403, 404):
                raise
            if exc.status == 409:
                errors = {"hours_given": FieldError("complete.conflict")}
            else:
                errors = api_errors(exc, forms.COMPLETION_FIELDS, "hours_given")
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


@router.post("/organiser/hours/{log_id}/confirm")
async def confirm_hours(request: Request, log_id: str) -> Response:
    """The organisation confirms hours a donor logged, as logged or adjusted (a figure and a reason)."""
    key = login_key(request)
    form = await posted_form(request)
    t = translator(request)
    payload, errors = forms.hours_confirmation(form, t.labels(reason="hours.reason"))
    if not errors:
        call = web_of(request).services.matching.call(
            "POST", f"/v1/hours/{quote(log_id)}/confirm", key=key, json=payload
        )
        _, errors = await submit(call, {"hours": "hours", "reason": "reason"}, "hours", passes=(401, 403, 404))
    if errors:
        first = next(iter(errors.values()))
        flash(request, "hours.refused", message=t(first.key, **first.values))
    else:
        flash(request, "hours.confirmed")
    return redirect(f"/organiser/needs/{quote(form.get('need_id'))}#hours")


# After the completion routes: this one would take /complete for an {action}.
@router.post("/organiser/assignments/{assignment_id}/{action}")
async def assignment(request: Request, assignment_id: str, action: str) -> Response:
    key = login_key(request)
    form = await posted_form(request)
    if action not in ("confirm", "release"):
        raise StarletteHTTPException(404)
    body = {"reason": form.get("reason")[:1000]} if action == "release" else None
    await web_of(request).services.matching.call(
        "POST", f"/v1/assignments/{quote(assignment_id)}/{action}", key=key, json=body
    )
    return redirect(f"/organiser/needs/{quote(form.get('need_id'))}")


# -- events -----------------------------------------------------------------------------------------------


@router.get("/organiser/events/new", response_class=HTMLResponse)
async def event_new_page(request: Request) -> HTMLResponse:
    login_key(request)
    return render(
        request, "event_new.html", kinds=forms.EVENT_KINDS, values={"time_zone": [zone_of(request, "Europe/London")]}
    )


@router.post("/organiser/events/new", response_class=HTMLResponse)
async def event_create(request: Request) -> Response:
    key = login_key(request)
    form = await posted_form(request)
    field_labels = translator(request).labels(
        title="event.name", description="event.description", venue="event.venue", address="event.address"
    )
    checked = forms.event(form, field_labels)
    event, errors = await post_form(
        web_of(request).services.scheduling, "/v1/events", key, checked, forms.EVENT_FIELDS, "title"
    )
    if not errors:
        flash(request, "event.created")
        return redirect(f"/organiser/events/{quote(event['event_id'])}")
    return render(request, "event_new.html", status=422, kinds=forms.EVENT_KINDS, errors=errors, values=form.fields)


async def _manage(request: Request, event_id: str, **extra: Any) -> HTMLResponse:
    key = login_key(request)
    web = web_of(request)
    event = await web.services.scheduling.call("GET", f"/v1/events/{quote(event_id)}", key=key)
    try:
        listing = await web.services.signups.call("GET", f"/v1/events/{quote(event_id)}/bookings", key=key)
        items = listing.get("items", [])
    except ServiceError as exc:
        if exc.status != 404:
            raise
        items = []
    bookings = views.booking_rows(items)
    sessions = await web.services.scheduling.call("GET", f"/v1/events/{quote(event_id)}/sessions", key=key)
    # After the event: who came (a check-in counts), who did not, and what they thought (issue 22).
    turnout = await optional(web.services.signups.call("GET", f"/v1/events/{quote(event_id)}/turnout", key=key))
    begun = now() >= datetime.fromisoformat(str(event["starts_at"]).replace("Z", "+00:00"))
    zone = zone_of(request, event["time_zone"])
    return render(
        request,
        "manage_event.html",
        status=extra.pop("status", 200),
        event=event,
        confirmed=bookings.confirmed,
        # Open waitlist offers with the moment each place moves on, in the reader's zone.
        offered=[
            {"row": b, "until": format_when(b.offer_expires_at, zone, language(request))} for b in bookings.offered
        ],
        waiting=bookings.waiting,
        sessions=[{**s, "when": when(request, s, zone)} for s in sessions],
        when=when(request, event, zone),
        turnout=turnout,
        begun=begun,
        **extra,
    )


@router.get("/organiser/events/{event_id}", response_class=HTMLResponse)
async def manage_event(request: Request, event_id: str) -> HTMLResponse:
    return await _manage(request, event_id)


@router.post("/organiser/bookings/{booking_id}/check-in")
async def check_in(request: Request, booking_id: str) -> Response:
    key = login_key(request)
    form = await posted_form(request)
    await web_of(request).services.signups.call("POST", f"/v1/bookings/{quote(booking_id)}/check-in", key=key)
    flash(request, "event.checked_in.done", name=form.get("name"))
    return redirect(f"/organiser/events/{quote(form.get('event_id'))}#bookings")


@router.post("/organiser/bookings/{booking_id}/attendance")
async def mark_attendance(request: Request, booking_id: str) -> Response:
    """The organiser marks a confirmed place attended or no-show, from the bookings list."""
    key = login_key(request)
    form = await posted_form(request)
    outcome = "no_show" if form.get("outcome") == "no_show" else "attended"
    path = f"/v1/bookings/{quote(booking_id)}/attendance"
    await web_of(request).services.signups.call("POST", path, key=key, json={"outcome": outcome})
    flash(request, "event.marked", name=form.get("name"))
    return redirect(f"/organiser/events/{quote(form.get('event_id'))}#bookings")


@router.post("/organiser/events/{event_id}/sessions", response_class=HTMLResponse)
async def add_session(request: Request, event_id: str) -> Response:
    key = login_key(request)
    form = await posted_form(request)
    web = web_of(request)
    event = await web.services.scheduling.call("GET", f"/v1/events/{quote(event_id)}", key=key)
    field_labels = translator(request).labels(title="event.session.title", room="event.session.room")
    checked = forms.session(form, field_labels, event["time_zone"])
    path = f"/v1/events/{quote(event_id)}/sessions"
    _, errors = await post_form(web.services.scheduling, path, key, checked, forms.SESSION_FIELDS, "title")
    if not errors:
        flash(request, "event.session.added")
        return redirect(f"/organiser/events/{quote(event_id)}#sessions")
    return await _manage(request, event_id, status=422, errors=errors, values=form.fields)


@router.post("/organiser/events/{event_id}/livestream")
async def livestream(request: Request, event_id: str) -> Response:
    key = login_key(request)
    form = await posted_form(request)
    step = "livestream/end" if form.get("action") == "end" else "livestream/start"
    await web_of(request).services.scheduling.call("POST", f"/v1/events/{quote(event_id)}/{step}", key=key)
    return redirect(f"/organiser/events/{quote(event_id)}")
