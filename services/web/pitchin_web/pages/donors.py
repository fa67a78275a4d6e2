"""The donors' pages: sign-up, a donor's own page and their shared record (by signed link).

No donor has a password or an account: their pages open with a signed, expiring link
(pitchin_core.links), and they answer offers with matching's own offer token, passed through.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from pitchin_core.links import (
    DONOR_LINK_HEADER,
    BadLink,
    DonorLink,
    read_donor_link,
    read_record_link,
    sign_donor_link,
    sign_record_link,
)
from pitchin_web.clients import ServiceError
from pitchin_web.domain import forms, views
from pitchin_web.domain.forms import Errors, FieldError
from pitchin_web.domain.timefmt import reader_zone
from pitchin_web.messages.en import CONSENT_PURPOSES, CONSENT_VERSION
from pitchin_web.pages.common import (
    LinkRefused,
    flash,
    language,
    now,
    optional,
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
from pitchin_web.pages.public import booking_link

router = APIRouter()
EVENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,79}$")

# -- donor sign-up ----------------------------------------------------------------------------------

STEPS = 3


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
        skills=await skills(request, web_of(request).settings.federation_key),
        consent_version=CONSENT_VERSION,
    )


@router.post("/donors/signup", response_class=HTMLResponse)
async def signup(request: Request) -> Response:
    form = await posted_form(request)
    t = translator(request)
    web = web_of(request)
    draft: dict[str, Any] = dict(request.session.get("signup", {}))
    step = int(form.get("step") or 1) if form.get("step").isdigit() else 1
    labels = await skills(request, web.settings.federation_key)
    if form.get("go") == "back":
        return redirect(f"/donors/signup?step={max(step - 1, 1)}")
    if step == 1:
        values, errors = forms.signup_step1(form, t.labels(name="signup.name", city="signup.city"))
    elif step == 2:
        values, errors = forms.signup_step2(form, list(labels))
    else:
        values, errors = forms.signup_step3(form, bool(draft.get("phone")))
    draft.update(values)
    if errors:
        shown = {**draft, **form.fields} if step == 1 else draft
        return _signup_again(request, step, shown, labels, errors)
    if step < STEPS:
        draft["reached"] = max(int(draft.get("reached", 1)), step + 1)
        request.session["signup"] = draft
        return redirect(f"/donors/signup?step={step + 1}")
    payload = forms.signup_payload(draft, consent_version=CONSENT_VERSION, purposes=CONSENT_PURPOSES, now=now())
    web.doors.knock(request, "signup", email=str(payload.get("email", "")))
    try:
        # Double opt-in (issue 18): signups checks the sign-up as it would register it, holds it and
        # mails the person a link; the donor exists only once they confirm from their inbox.
        pending = await web.services.signups.call(
            "POST", "/v1/donors", key=web.settings.federation_key, json=payload, params={"confirm": "email"}
        )
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
        return _signup_again(request, first_step, draft, labels, errors)
    request.session.pop("signup", None)
    # How long the link works, as signups holds it (not a second copy of its rule here).
    expires = datetime.fromisoformat(str(pending["expires_at"]).replace("Z", "+00:00"))
    hours = max(1, round((expires - now()).total_seconds() / 3600))
    held = {"name": str(payload.get("name", "")), "email": pending["email"], "hours": hours}
    request.session["signup_pending"] = held
    return redirect("/donors/check-email")


def _signup_again(
    request: Request, step: int, values: dict[str, Any], labels: dict[str, str], errors: Errors
) -> HTMLResponse:
    """The sign-up step to put right, with what the donor gave so far and why it was refused."""
    return render(
        request,
        "signup.html",
        status=422,
        step=step,
        total=STEPS,
        values=values,
        skills=labels,
        errors=errors,
        consent_version=CONSENT_VERSION,
    )


@router.get("/donors/check-email", response_class=HTMLResponse)
async def signup_held(request: Request) -> Response:
    """After the last step: the sign-up is held until the person confirms from the email just sent."""
    held = request.session.get("signup_pending")
    if not held:
        return redirect("/donors/signup")
    return render(request, "signup_check.html", held=held, hours=held.get("hours", 48))


@router.get("/donors/confirm", response_class=HTMLResponse)
async def confirm_page(request: Request, token: str = "") -> HTMLResponse:
    """Where the confirmation email's link lands: a page with a button. A GET never confirms
    (mail scanners and link previews follow links); the button POSTs the token."""
    if not token:
        return _confirm_refused(request, "signup.confirm.bad", 404)
    return render(request, "signup_confirm.html", token=token[:200], refused="", noindex=True)


@router.post("/donors/confirm", response_class=HTMLResponse)
async def confirm_signup(request: Request) -> Response:
    """The person confirmed: signups registers the donor (and notifications welcomes them), once."""
    form = await posted_form(request)
    web = web_of(request)
    token = form.get("token")[:200]
    if not token:
        return _confirm_refused(request, "signup.confirm.bad", 404)
    try:
        donor = await web.services.signups.call(
            "POST", "/v1/donors/confirmations", key=web.settings.federation_key, json={"token": token}
        )
    except ServiceError as exc:
        if exc.unavailable or exc.status not in (409, 422):
            raise
        fields = dict(exc.fields)
        if fields.get("email") == "already signed up":
            return _confirm_refused(request, "signup.already", 409)
        used = exc.status == 409  # confirmed already (a second click); 422: unknown, replaced or expired
        return _confirm_refused(request, "signup.confirm.used" if used else "signup.confirm.bad", exc.status)
    return _welcome(request, donor)


def _confirm_refused(request: Request, message: str, status: int) -> HTMLResponse:
    """Why a confirmation link did nothing, and the way to a new one."""
    return render(request, "signup_confirm.html", status=status, refused=message, token="", noindex=True)


def _welcome(request: Request, donor: dict[str, Any]) -> Response:
    """The donor is registered: the welcome page, with the signed link to their own page."""
    web = web_of(request)
    request.session.pop("signup_pending", None)
    link = sign_donor_link(
        web.settings.donor_link_secret, donor["donor_id"], time.time(), web.settings.donor_link_days * 86400
    )
    request.session["donor_done"] = {"name": donor["name"], "email": donor["email"], "link": link}
    return redirect("/donors/welcome")


@router.get("/donors/welcome", response_class=HTMLResponse)
async def signup_done(request: Request) -> Response:
    done = request.session.get("donor_done")
    if not done:
        return redirect("/donors/signup")
    settings = web_of(request).settings
    url = f"{settings.public_base_url.rstrip('/')}/me/{done['link']}"
    return render(request, "signup_done.html", done=done, url=url, days=settings.donor_link_days)


# -- a donor's own page, and the record they share, by signed link ---------------------------------------


def _linked_donor(
    request: Request, link: str, read: Callable[[str, str, float], DonorLink], title: str
) -> tuple[str, str]:
    """The donor a signed link is for, and their path on signups and matching (403 for a bad link)."""
    try:
        donor_id = read(web_of(request).settings.donor_link_secret, link, time.time()).donor_id
    except BadLink as exc:
        raise LinkRefused(403, title) from exc
    return donor_id, f"/v1/donors/{quote(donor_id)}"


def _donor_zone(donor: dict[str, Any]) -> str:
    """The time zone the donor gave at sign-up (UTC if none)."""
    return reader_zone(donor.get("availability", {}).get("time_zone"), "UTC")


@router.get("/me/{link}", response_class=HTMLResponse)
async def donor_page(request: Request, link: str) -> HTMLResponse:
    web = web_of(request)
    donor_id, donor_path = _linked_donor(request, link, read_donor_link, "me.title")
    key = web.settings.federation_key
    proof = {DONOR_LINK_HEADER: link}  # the services check the donor's link themselves, not the web's key
    donor = await web.services.signups.call("GET", donor_path, key=key, headers=proof)
    zone = _donor_zone(donor)
    offered, record, bookings, hours = await asyncio.gather(
        optional(web.services.matching.call("GET", f"{donor_path}/offers", key=key, headers=proof)),
        optional(web.services.matching.call("GET", f"{donor_path}/record", key=key, headers=proof)),
        _donor_bookings(request, donor_path, proof, zone),
        # Confirmed work and the hours logged on it, where the donor logs more (issue 22).
        optional(web.services.matching.call("GET", f"{donor_path}/hours", key=key, headers=proof)),
    )
    offers = [views.offer_view(o, zone, now(), language(request)) for o in (offered or {}).get("offers", [])]
    return render(
        request,
        "me.html",
        donor=donor,
        offers=offers,
        bookings=bookings,
        # A person's private calendar opens from a booking's own page (its signed link), not here.
        feed_url=None,
        record=views.donor_record(record, zone, language(request)) if record is not None else None,
        share_url=f"/record/{sign_record_link(web.settings.donor_link_secret, donor_id, time.time())}",
        link=link,
        hours=hours,
        today=now().astimezone(ZoneInfo(zone)).date().isoformat(),
    )


@router.post("/me/{link}/hours/{assignment_id}")
async def log_hours(request: Request, link: str, assignment_id: str) -> Response:
    """The donor logs hours on their confirmed work; matching checks their link itself."""
    form = await posted_form(request)
    web = web_of(request)
    _, donor_path = _linked_donor(request, link, read_donor_link, "me.title")
    t = translator(request)
    payload, errors = forms.hours_log(form, t.labels(note="hours.note"))
    if not errors:
        call = web.services.matching.call(
            "POST",
            f"{donor_path}/assignments/{quote(assignment_id)}/hours",
            key=web.settings.federation_key,
            json=payload,
            headers={DONOR_LINK_HEADER: link},
        )
        _, errors = await submit(call, forms.HOURS_FIELDS, "hours", passes=(401, 403, 404))
    if errors:
        # One line for the one form that was sent (the page has a form per piece of work).
        first = next(iter(errors.values()))
        flash(request, "hours.refused", message=t(first.key, **first.values))
    else:
        flash(request, "hours.logged")
    return redirect(f"/me/{quote(link)}#hours")


@router.post("/me/{link}/erase")
async def donor_asks_erasure(request: Request, link: str) -> Response:
    """The donor asks to be forgotten: signups checks their link itself and answers at once."""
    await posted_form(request)
    web = web_of(request)
    _, donor_path = _linked_donor(request, link, read_donor_link, "me.title")
    proof = {DONOR_LINK_HEADER: link}
    await web.services.signups.call(
        "POST", f"{donor_path}/erasure-request", key=web.settings.federation_key, headers=proof
    )
    flash(request, "erase.done")
    return redirect("/")


@router.get("/record/{link}", response_class=HTMLResponse)
async def record_page(request: Request, link: str) -> HTMLResponse:
    """The record a donor chose to show: hours given and thanks received, nothing else about them."""
    web = web_of(request)
    _, donor_path = _linked_donor(request, link, read_record_link, "record.title")
    key = web.settings.federation_key
    proof = {DONOR_LINK_HEADER: link}
    donor, record, labels = await asyncio.gather(
        web.services.signups.call("GET", donor_path, key=key, headers=proof),
        web.services.matching.call("GET", f"{donor_path}/record", key=key, headers=proof),
        skills(request, key),
    )
    if donor.get("status") == "withdrawn":
        raise ServiceError(404, "Not found", "withdrawn")  # a donor who left shows nothing any more
    zone = zone_of(request, _donor_zone(donor))
    return render(
        request,
        "record.html",
        donor_name=donor.get("name", ""),
        skills=[{**s, "label": labels.get(s["skill"], s["skill"])} for s in donor.get("skills", [])],
        record=views.donor_record(record, zone, language(request)),
        noindex=True,
    )


async def _donor_bookings(request: Request, donor_path: str, proof: dict[str, str], zone: str) -> list[dict[str, Any]]:
    """The donor's places (booked with their email), each with its own signed booking link."""
    web = web_of(request)
    key = web.settings.federation_key
    found = await optional(web.services.signups.call("GET", f"{donor_path}/bookings", key=key, headers=proof))
    items = [b for b in (found or {}).get("items", []) if b.get("status") in ("confirmed", "waitlisted")]

    async def row(booking: dict[str, Any]) -> dict[str, Any] | None:
        event_id = str(booking["event_id"])
        if not EVENT_ID.match(event_id):
            return None
        event = await optional(web.services.scheduling.call("GET", f"/v1/events/{quote(event_id)}", key=key))
        if event is None:
            return None
        return {
            "link": booking_link(request, str(booking["booking_id"])),
            "status": booking["status"],
            "title": event["title"],
            "event_id": event_id,
            "when": when(request, event, zone),
        }

    rows = await asyncio.gather(*(row(b) for b in items[:20]))
    return [r for r in rows if r is not None]
