"""Forms, CSRF and security headers.

Sessions are kept on the server (sessions.py); the cookie holds a random id. CSRF: every form
carries a token that must equal an HMAC of that id under the session secret (the attacker can
neither read the id nor forge the HMAC), and the session cookie is SameSite=Lax as a second line.
The token needs no stored session, so reading a page with a form writes nothing; it changes when
the id does (at login and logout).
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pitchin_core.signing import mac
from pitchin_web.domain.forms import Form
from pitchin_web.sessions import session_id

MAX_FORM_BYTES = 64 * 1024

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; "
    "font-src 'self'; connect-src 'self'; frame-src https:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
    (b"cross-origin-opener-policy", b"same-origin"),
)


class CsrfFailed(Exception):
    pass


class FormTooLarge(Exception):
    pass


class SecurityHeadersMiddleware:
    """CSP and friends on every answer; HSTS when served over https; pages never cached by proxies."""

    def __init__(self, app: ASGIApp, https: bool) -> None:
        self.app = app
        self.https = https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in HEADERS if h[0] not in present)
                if self.https:
                    headers.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))
                if b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


async def read_form(request: Request) -> Form:
    """An urlencoded form body (every form of the site is one; no file uploads)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormTooLarge()
    fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True, max_num_fields=500)
    return Form(fields)


def csrf_token(request: Request) -> str:
    """The form token of this browser's session (`app.state.session_secret` is set by create_app)."""
    secret: str = request.app.state.session_secret
    return mac(secret, "csrf." + session_id(request))


def check_csrf(request: Request, form: Form) -> None:
    sent = form.get("csrf")
    if not sent or not hmac.compare_digest(csrf_token(request).encode(), sent.encode("utf-8", "replace")):
        raise CsrfFailed()
