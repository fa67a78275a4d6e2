"""What every audience's pages share: the web's dependencies, rendering, error pages, language and login.

Who calls the services with which key:
  - public pages (events, RSVP, donor sign-up, a donor's page reached by a signed link) use the
    web's own narrow key (PITCHIN_FEDERATION_KEY, role `web-front`), for the one federation this
    front serves; a page that acts for one person (their donor page, their booking) forwards that
    person's signed link (`X-Donor-Link`, `X-Booking-Link`), which the service checks itself;
  - organisers and federation staff log in with their own API key, kept in their session on the
    server (sessions.py: the cookie holds only a random id) and sent on their calls, so every
    organiser sees only what the services let that key see; a key the services no longer know
    (revoked, expired) ends the session;
  - donors answer offers with matching's own signed offer token, passed through untouched.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import jinja2
from cachetools import TTLCache
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from pitchin_core.ratelimit import Limit, Throttle
from pitchin_web.clients import ServiceClient, ServiceError, Services
from pitchin_web.domain import forms
from pitchin_web.domain.forms import Errors, FieldError, Form
from pitchin_web.domain.timefmt import COMMON_ZONES, format_span, reader_zone
from pitchin_web.messages import LANGUAGES, Translator, preferred_language
from pitchin_web.security import CsrfFailed, FormTooLarge, check_csrf, csrf_token, read_form
from pitchin_web.sessions import renew

if TYPE_CHECKING:
    from pitchin_web.main import WebSettings  # main.py imports the pages

router = APIRouter()


PUBLIC_EVENT_TTL_SECONDS = 1.0


@dataclass
class Web:
    settings: WebSettings
    services: Services
    templates: jinja2.Environment
    doors: Doors
    # What the public event page shows of an event, kept for a second per process: a rush of
    # readers of one page costs the services one set of calls a second, not one per view.
    public_events: TTLCache[tuple[str, bool], tuple[Any, ...]] = field(
        default_factory=lambda: TTLCache(maxsize=1024, ttl=PUBLIC_EVENT_TTL_SECONDS)
    )


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


def web_of(request: Request) -> Web:
    web: Web = request.app.state.web
    return web


def now() -> datetime:
    return datetime.now(UTC)


def translator(request: Request) -> Translator:
    """The reader's language: the one they chose (kept in their session), else their browser's."""
    chosen = request.session.get("lang")
    return Translator(chosen or preferred_language(request.headers.get("accept-language", ""), LANGUAGES))


def language(request: Request) -> str:
    return translator(request).language


def zone_of(request: Request, fallback: str = "UTC") -> str:
    return reader_zone(request.cookies.get("tz"), fallback)


def when(request: Request, item: Mapping[str, Any], zone: str) -> str:
    """When an event or session runs, in `zone` and the reader's language."""
    return format_span(item["starts_at"], item["ends_at"], zone, language(request))


def flash(request: Request, key: str, **values: Any) -> None:
    request.session.setdefault("flash", []).append(translator(request)(key, **values))


def render(request: Request, name: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    t = translator(request)
    errors: Errors = context.pop("errors", {}) or {}
    messages = {field: t(e.key, **e.values) for field, e in errors.items()}
    body = (
        web_of(request)
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


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def redirect_back(back: str, default: str) -> RedirectResponse:
    """Back to a page of this site the reader came from; never elsewhere (no open redirect)."""
    return redirect(back if back.startswith("/") and not back.startswith("//") else default)


def api_errors(exc: ServiceError, table: Mapping[str, str], fallback: str) -> Errors:
    """A service's field errors beside the matching form fields; the rest beside `fallback`."""
    errors: Errors = {}
    for api_field, message in exc.fields or [("", exc.detail)]:
        name = forms.map_api_field(api_field, table) or fallback
        errors.setdefault(name, FieldError("{message}", {"message": message}))
    return errors


async def submit(
    call: Awaitable[Any], table: Mapping[str, str], fallback: str, *, passes: tuple[int, ...] = ()
) -> tuple[Any, Errors]:
    """A form's call to a service: its answer and no errors, or its refusal as errors beside the fields.

    A service that is down, or answers with a status in `passes`, is no mistake in the form: that
    goes on to the error pages.
    """
    try:
        return await call, {}
    except ServiceError as exc:
        if exc.unavailable or exc.status in passes:
            raise
        return None, api_errors(exc, table, fallback)


async def post_form(
    client: ServiceClient,
    path: str,
    key: str,
    checked: tuple[dict[str, Any], Errors],
    table: Mapping[str, str],
    fallback: str,
    *,
    passes: tuple[int, ...] = (),
) -> tuple[Any, Errors]:
    """A form checked here (`checked`: its payload and the errors found), then, when it passed,
    POSTed to `path` with `key`: the service's answer, or the errors of either step, as `submit`."""
    payload, errors = checked
    if errors:
        return None, errors
    return await submit(client.call("POST", path, key=key, json=payload), table, fallback, passes=passes)


async def posted_form(request: Request) -> Form:
    form = await read_form(request)
    check_csrf(request, form)
    return form


async def optional(call: Awaitable[Any]) -> Any:
    """A part of a page that may be missing when its service is down: None, and the page still renders."""
    try:
        return await call
    except ServiceError as exc:
        if not exc.unavailable and exc.status != 404:
            raise
        return None


async def skills(request: Request, key: str) -> dict[str, str]:
    """The federation's skills and their labels, as `key` may see them."""
    found: dict[str, str] = await web_of(request).services.signups.call("GET", "/v1/skills", key=key)
    return found


# -- errors as pages -------------------------------------------------------------------------------


@dataclass
class LinkRefused(Exception):
    """A donor's link (ours, or matching's offer token) is missing, wrong or expired."""

    status: int
    title: str  # message key of the page's title
    message: str = "me.link_bad"


class LoginNeeded(Exception):
    pass


class Throttled(Exception):
    """Too many tries at one of the doors anyone may use: answered 429 with Retry-After."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


class Doors:
    """The doors anyone may knock on (sign-up, RSVP, login), each limited by client address and,
    where one is given, by email: a script cannot fill an event or have the platform mail strangers.

    Limits are per web process (`pitchin_core.ratelimit`); settings say how many an hour or minute.
    """

    def __init__(self, settings: WebSettings) -> None:
        hour, minute = 3600.0, 60.0
        self.by_address = {
            "signup": Throttle(Limit(settings.signups_per_address_per_hour, hour)),
            "rsvp": Throttle(Limit(settings.rsvps_per_address_per_hour, hour)),
            "login": Throttle(Limit(settings.logins_per_address_per_minute, minute)),
        }
        self.by_email = {
            "signup": Throttle(Limit(settings.signups_per_email_per_hour, hour)),
            "rsvp": Throttle(Limit(settings.rsvps_per_email_per_hour, hour)),
        }

    def knock(self, request: Request, door: str, email: str | None = None) -> None:
        address = request.client.host if request.client else "unknown"
        wait = self.by_address[door].take(address)
        if not wait and email and door in self.by_email:
            wait = self.by_email[door].take(email.strip().lower())
        if wait:
            raise Throttled(wait)


def install_page_errors(app: FastAPI) -> None:
    """Pages answer errors as pages (the JSON routes keep pitchin_core's problem+json)."""

    @app.exception_handler(LinkRefused)
    async def _link(request: Request, exc: LinkRefused) -> HTMLResponse:
        return render(
            request, "error.html", status=exc.status, title=translator(request)(exc.title), message=exc.message
        )

    @app.exception_handler(CsrfFailed)
    async def _csrf(request: Request, exc: CsrfFailed) -> HTMLResponse:
        return render(
            request, "error.html", status=403, title=translator(request)("error.title"), message="common.csrf"
        )

    @app.exception_handler(FormTooLarge)
    async def _large(request: Request, exc: FormTooLarge) -> HTMLResponse:
        return render(
            request, "error.html", status=413, title=translator(request)("error.title"), message="error.title"
        )

    @app.exception_handler(ServiceError)
    async def _service(request: Request, exc: ServiceError) -> Response:
        t = translator(request)
        if exc.status == 401 and request.scope.get(USED_LOGIN_KEY):
            # The services no longer know this session's key (revoked or expired): the session
            # ends here too, and the person logs in again.
            end_session(request)
            flash(request, "login.needed")
            return redirect(f"/login?next={quote(request.url.path)}")
        if exc.status == 404:
            return render(
                request, "error.html", status=404, title=t("error.notfound.title"), message="common.not_found"
            )
        if exc.status in (401, 403):
            return render(request, "error.html", status=exc.status, title=t("error.title"), message="common.forbidden")
        return render(request, "error.html", status=503, title=t("error.title"), message="common.unavailable")

    @app.exception_handler(Throttled)
    async def _throttled(request: Request, exc: Throttled) -> HTMLResponse:
        page = render(
            request, "error.html", status=429, title=translator(request)("error.title"), message="error.throttled"
        )
        page.headers["Retry-After"] = str(max(1, round(exc.retry_after)))
        return page

    @app.exception_handler(LoginNeeded)
    async def _login(request: Request, exc: LoginNeeded) -> Response:
        flash(request, "login.needed")
        return redirect(f"/login?next={quote(request.url.path)}")

    previous = app.exception_handlers.get(StarletteHTTPException)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith("/v1/") and previous is not None:
            answer: Response = await previous(request, exc)  # type: ignore[misc]
            return answer
        key = "common.not_found" if exc.status_code == 404 else "error.title"
        return render(
            request, "error.html", status=exc.status_code, title=translator(request)("error.title"), message=key
        )


# -- language switch --------------------------------------------------------------------------------


@router.get("/language/{code}")
async def choose_language(request: Request, code: str, back: str = "/") -> Response:
    """A plain link (no form, no JavaScript) that keeps the reader's language in their session."""
    if code not in LANGUAGES:
        raise StarletteHTTPException(404)
    request.session["lang"] = code
    return redirect_back(back, "/")


# -- organisers and staff: log in with an API key ---------------------------------------------------------


USED_LOGIN_KEY = "pitchin.login_key_used"


def login_key(request: Request) -> str:
    """The API key of the organiser or staff member logged in; else they are sent to log in."""
    key = request.session.get("key")
    if not isinstance(key, str):
        raise LoginNeeded()
    request.scope[USED_LOGIN_KEY] = True  # a 401 from now on means this key, not the web's, was refused
    return key


def end_session(request: Request) -> None:
    """Forget all the session held and give the browser a new id: a copy of the old cookie opens nothing."""
    request.session.clear()
    renew(request)


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request) -> HTMLResponse:
    return render(request, "login.html", next=request.query_params.get("next", ""))


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    form = await posted_form(request)
    web_of(request).doors.knock(request, "login")
    key = form.get("api_key")
    role = "staff" if form.get("role") == "staff" else "organiser"
    errors: Errors = {}
    if not key:
        errors["api_key"] = FieldError("field.missing", {"label": translator(request)("login.key")})
    else:
        try:
            # Any authenticated call tells whether the key is known; what it may do is the services' to say.
            await web_of(request).services.scheduling.call("GET", "/v1/events", key=key, params={"limit": 1})
        except ServiceError as exc:
            if exc.unavailable:
                raise
            errors["api_key"] = FieldError("field.api_key")
    if errors:
        return render(request, "login.html", status=422, errors=errors, next=form.get("next"), values={"role": role})
    language_chosen = request.session.get("lang")
    end_session(request)  # a new session on login: nothing carried over, no id planted before it promoted
    request.session.update({"key": key, "role": role, **({"lang": language_chosen} if language_chosen else {})})
    return redirect_back(form.get("next"), "/staff" if role == "staff" else "/organiser")


@router.post("/logout")
async def logout(request: Request) -> Response:
    await posted_form(request)
    end_session(request)  # the row goes: a copied cookie is dead
    flash(request, "logout.done")
    return redirect("/")
