"""The offers a donor answers: the offer, who asks and why, and the two buttons.

A donor answers with matching's own offer token (from the offer email), passed through: no account,
no password. A GET never answers (mail scanners follow links); the buttons POST with the token.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from pitchin_web.clients import ServiceError
from pitchin_web.domain import views
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
    web_of,
    zone_of,
)

router = APIRouter()

# -- offers, answered with matching's signed tokens ------------------------------------------------------


async def _with_offer_token(request: Request, method: str, path: str, token: str, body: Any = None) -> Any:
    """A call to matching on the donor's behalf, with the token from their offer email."""
    if not token:
        raise LinkRefused(401, "offers.title", "offer.no_token")
    try:
        return await web_of(request).services.matching.call(method, path, headers={"X-Offer-Token": token}, json=body)
    except ServiceError as exc:
        if exc.status in (401, 404):
            raise LinkRefused(exc.status, "offers.title") from exc
        raise


@router.get("/v1/donors/{donor_id}/offers", response_class=HTMLResponse)
async def donor_offers(request: Request, donor_id: str, token: str = "") -> HTMLResponse:
    answer = await _with_offer_token(request, "GET", f"/v1/donors/{quote(donor_id)}/offers", token)
    zone = zone_of(request)
    with_needs = await asyncio.gather(*(_with_need(request, o) for o in answer.get("offers", [])))
    labels = await _skill_labels(request)
    offers = [views.offer_view(o, zone, now(), language(request), labels) for o in with_needs]
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
    labels = await _skill_labels(request)
    view = views.offer_view(await _with_need(request, offer), zone_of(request), now(), language(request), labels)
    choice = "decline" if request.url.path.endswith("/decline") else "accept"
    return render(request, "offer.html", offer=view, token=token, choice=choice)


async def _skill_labels(request: Request) -> dict[str, str]:
    """The federation's names for its skills, so a reason reads "Data and analytics", not a slug."""
    return await optional(skills(request, web_of(request).settings.federation_key)) or {}


async def _with_need(request: Request, offer: dict[str, Any]) -> dict[str, Any]:
    """The need's title, hours, deadline and urgency beside the offer (matching's offer carries ids only)."""
    if offer.get("need_title") and offer.get("estimated_hours"):
        return offer
    web = web_of(request)
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
    form = await posted_form(request)
    token = form.get("token")
    answer = "decline" if form.get("answer") == "decline" else "accept"
    reason = form.get("reason")[:1000]
    body = {"reason": reason} if answer == "decline" else None
    try:
        await _with_offer_token(request, "POST", f"/v1/offers/{quote(offer_id)}/{answer}", token, body)
    except ServiceError as exc:
        if exc.status in (409, 410, 422):
            flash(request, "offer.answered")
            return redirect(f"/offers/{quote(offer_id)}?token={quote(token)}")
        raise
    flash(request, "offer.accepted" if answer == "accept" else "offer.declined")
    return redirect(f"/offers/{quote(offer_id)}?token={quote(token)}")
