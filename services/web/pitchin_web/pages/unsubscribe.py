"""One-click unsubscribe (RFC 8058) at the URL every mail gives: `{public base URL}/v1/unsubscribe?token=`.

Mails are sent with `List-Unsubscribe: <{PITCHIN_PUBLIC_BASE_URL}/v1/unsubscribe?token=…>` and
`List-Unsubscribe-Post: List-Unsubscribe=One-Click`; the public base URL is this web front, so
the URL must answer here. Notifications owns the suppression list and checks the token: this
page only carries the request there.

- GET shows a page with a button and never unsubscribes: link scanners and mail previews
  follow links (RFC 8058 section 3).
- POST with the form body `List-Unsubscribe=One-Click` unsubscribes: what a mail client sends
  from its own "Unsubscribe" button, and what the page's button sends. No CSRF token is asked
  for: a mail client has neither the session cookie nor the form, and the signed token in the
  URL is the credential (it names one address and channel, and only notifications' key makes one).
"""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from opentelemetry.propagate import inject

from pitchin_web.clients import ServiceError, problem_of
from pitchin_web.messages import LANGUAGES
from pitchin_web.pages.common import translator, web_of
from pitchin_web.security import csrf_token, read_form

router = APIRouter()

ONE_CLICK = "List-Unsubscribe=One-Click"
PATH = "/v1/unsubscribe"

# The page extends the site's layout. Its English words are here until the catalogues have
# unsubscribe.* keys (the translator would show a missing key as the key itself).
_PAGE = """{% extends "base.html" %}
{% block title %}{{ heading }}{% endblock %}
{% block content %}
<h1>{{ heading }}</h1>
<p>{{ text }}</p>
{% if token %}
<form method="post" action="/v1/unsubscribe?token={{ token|urlencode }}">
<input type="hidden" name="List-Unsubscribe" value="One-Click">
<button type="submit">{{ button }}</button>
</form>
{% endif %}
<p><a href="/">{{ t("common.back") }}</a></p>
{% endblock %}"""

_TEXTS = {
    "ask": ("Unsubscribe", "Stop these messages from Pitch In to this address?", "Unsubscribe"),
    "done": ("Unsubscribed", "You will get no more of these messages from Pitch In at this address.", ""),
    "invalid": ("Link not valid", "This unsubscribe link is not valid: copy the whole link from the message.", ""),
    "not_one_click": ("Unsubscribe", "Use the button below to unsubscribe.", "Unsubscribe"),
}


def _page(request: Request, which: str, *, status: int = 200, token: str = "") -> HTMLResponse:
    """The page in the site's layout, with what `common.render` gives every template."""
    heading, text, button = _TEXTS[which]
    body = (
        web_of(request)
        .templates.from_string(_PAGE)
        .render(
            t=translator(request),
            csrf=csrf_token(request),
            flashes=request.session.pop("flash", []),
            user=request.session.get("role"),
            errors={},
            values={},
            path=request.url.path,
            languages=LANGUAGES,
            heading=heading,
            text=text,
            button=button,
            token=token,
            noindex=True,
        )
    )
    return HTMLResponse(body, status_code=status)


async def _notifications(request: Request, method: str, token: str, content: bytes | None = None) -> httpx.Response:
    """Notifications' own /v1/unsubscribe, with this trace; a form body is what it reads the one click from."""
    client = web_of(request).services.notifications
    headers: dict[str, Any] = {}
    if content is not None:
        headers["content-type"] = "application/x-www-form-urlencoded"
    inject(headers)
    try:
        return await client.http.request(method, PATH, params={"token": token}, content=content, headers=headers)
    except httpx.TimeoutException as exc:
        raise ServiceError(503, "Timeout", "notifications did not answer in time") from exc
    except httpx.HTTPError as exc:
        raise ServiceError(503, "Unavailable", f"notifications is not reachable: {type(exc).__name__}") from exc


@router.get(PATH, response_class=HTMLResponse, include_in_schema=False)
async def unsubscribe_page(request: Request, token: str = "") -> HTMLResponse:
    """A page with a button; the GET itself changes nothing."""
    answer = await _notifications(request, "GET", token)
    if answer.status_code == 404 or (400 <= answer.status_code < 500 and answer.status_code != 429):
        return _page(request, "invalid", status=404)
    if answer.status_code >= 400:
        raise problem_of(answer)
    return _page(request, "ask", token=token)


@router.post(PATH, response_class=HTMLResponse, include_in_schema=False)
async def unsubscribe(request: Request, token: str = "") -> HTMLResponse:
    """RFC 8058's one-click POST (body `List-Unsubscribe=One-Click`), from a mail client or the page's button."""
    form = await read_form(request)
    if form.get("List-Unsubscribe") != "One-Click":
        # Not the one click: show the page (with its button) rather than unsubscribe on a guess.
        return _page(request, "not_one_click", status=400, token=token)
    answer = await _notifications(request, "POST", token, ONE_CLICK.encode())
    if answer.status_code in (400, 404, 422):
        return _page(request, "invalid", status=404)
    if answer.status_code >= 400:
        raise problem_of(answer)
    return _page(request, "done")
