"""After the event: the feedback form the thank-you mail links to, on the person's signed booking link.

The link is the booking's own (pitchin_core.links), as on the booking page; signups checks it
again and takes feedback only from people who came.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from pitchin_core.links import BadLink, read_booking_link
from pitchin_web.domain import forms
from pitchin_web.pages.common import LinkRefused, flash, posted_form, redirect, render, submit, translator, web_of

router = APIRouter()
BOOKING_LINK_HEADER = "X-Booking-Link"


def _proof(request: Request, link: str) -> tuple[str, dict[str, str]]:
    """The booking a signed link opens, and the header that shows signups the same proof."""
    try:
        booking_id = read_booking_link(web_of(request).settings.donor_link_secret, link, time.time())
    except BadLink as exc:
        raise LinkRefused(403, "feedback.title") from exc
    return booking_id, {BOOKING_LINK_HEADER: link}


async def _event_of(request: Request, link: str) -> dict[str, Any]:
    web = web_of(request)
    key = web.settings.federation_key
    booking_id, proof = _proof(request, link)
    booking = await web.services.signups.call("GET", f"/v1/bookings/{quote(booking_id)}", key=key, headers=proof)
    event: dict[str, Any] = await web.services.scheduling.call(
        "GET", f"/v1/events/{quote(str(booking['event_id']))}", key=key
    )
    return event


@router.get("/bookings/{link}/feedback", response_class=HTMLResponse)
async def feedback_page(request: Request, link: str) -> HTMLResponse:
    """Where the thank-you's link lands: a rating and a comment (a GET stores nothing)."""
    event = await _event_of(request, link)
    return render(request, "feedback.html", event=event, link=link, noindex=True)


@router.post("/bookings/{link}/feedback", response_class=HTMLResponse)
async def give_feedback(request: Request, link: str) -> Response:
    form = await posted_form(request)
    web = web_of(request)
    booking_id, proof = _proof(request, link)
    checked, errors = forms.feedback(form, translator(request).labels(comment="feedback.comment"))
    if not errors:
        call = web.services.signups.call(
            "POST",
            f"/v1/bookings/{quote(booking_id)}/feedback",
            key=web.settings.federation_key,
            json=checked,
            headers=proof,
        )
        # 403/404: the link does not open this booking any more (the error pages say so).
        _, errors = await submit(call, forms.FEEDBACK_FIELDS, "rating", passes=(403, 404))
    if not errors:
        flash(request, "feedback.thanks")
        return redirect(f"/bookings/{quote(link)}")
    event = await _event_of(request, link)
    return render(
        request, "feedback.html", status=422, event=event, link=link, errors=errors, values=form.fields, noindex=True
    )
