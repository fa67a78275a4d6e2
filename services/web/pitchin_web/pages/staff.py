"""The federation staff's pages: the federation's totals, and the publishing systems allowed to send it work.

Staff log in with a federation-staff API key; every call goes out with it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from pitchin_web.domain import forms, views
from pitchin_web.pages.common import (
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
    translator,
    web_of,
    zone_of,
)

router = APIRouter()


async def _all_pages(request: Request, path: str, key: str, pages: int = 10) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(pages):
        params: dict[str, Any] = {"limit": 500}
        if cursor:
            params["cursor"] = cursor
        page = await web_of(request).services.signups.call("GET", path, key=key, params=params)
        items.extend(page.get("items", []))
        cursor = page.get("next")
        if not cursor:
            break
    return items


@router.get("/staff", response_class=HTMLResponse)
async def staff_home(request: Request) -> HTMLResponse:
    return await _staff_page(request)


async def _staff_page(request: Request, *, status: int = 200, **context: Any) -> HTMLResponse:
    key = login_key(request)
    web = web_of(request)
    events_query = {"status": ["published", "live"], "from": now().isoformat(), "limit": 200}
    donors, needs, events, labels, publishers, given = await asyncio.gather(
        _all_pages(request, "/v1/donors", key),
        _all_pages(request, "/v1/needs", key),
        web.services.scheduling.call("GET", "/v1/events", key=key, params=events_query),
        skills(request, key),
        web.services.signups.call("GET", "/v1/publishers", key=key),
        optional(web.services.matching.call("GET", "/v1/totals", key=key)),
    )
    hours = None if given is None else given.get("organisations", [])
    totals = views.federation_totals(donors, needs, events, now(), hours)
    listed = views.publisher_rows(publishers.get("items", []), zone_of(request), language(request))
    return render(request, "staff.html", status=status, totals=totals, skills=labels, publishers=listed, **context)


@router.post("/staff/publishers", response_class=HTMLResponse)
async def register_publisher(request: Request) -> Response:
    """Register a publishing system; its key and signing secret are shown on this answer only."""
    key = login_key(request)
    form = await posted_form(request)
    checked = forms.publisher(form, translator(request).labels(source="publisher.source", label="publisher.label"))
    registered, errors = await post_form(
        web_of(request).services.signups,
        "/v1/publishers",
        key,
        checked,
        forms.PUBLISHER_FIELDS,
        "source",
        passes=(401, 403),
    )
    if not errors:
        page = render(request, "publisher_registered.html", registered=registered)
        page.headers["Cache-Control"] = "no-store"  # the credentials are in this page only
        return page
    return await _staff_page(request, status=422, errors=errors, values=form.fields)


@router.post("/staff/publishers/revoke")
async def revoke_publisher(request: Request) -> Response:
    key = login_key(request)
    form = await posted_form(request)
    source = form.get("source")
    await web_of(request).services.signups.call("POST", "/v1/publishers/revoke", key=key, json={"source": source})
    flash(request, "publisher.revoked", source=source)
    return redirect("/staff#publishers-title")
