"""The door every request passes before any route reads its body: URL length, body size, API key.

FastAPI reads and parses a body before it resolves a route's dependencies, so an 8 MB POST
without a key would be read, parsed and only then refused. This ASGI middleware runs first:

- a URL longer than `MAX_URL_BYTES` is answered 414 (it bounds every path and query parameter);
- a body larger than its route's limit is answered 413 from its `Content-Length` alone, or as
  soon as a streamed (chunked) body passes the limit, without reading the rest;
- a route that takes an API key gets its caller checked here, before the body: no key or an
  unknown one is 401 at once. The caller found is kept in the scope (`CALLER`) for
  `pitchin_core.auth.authenticate` and for the idempotency middleware, which stores answers
  only for known callers.

Routes with their own credentials (ingest's publisher keys, offer and unsubscribe tokens) and
public routes pass on to check them themselves; their bodies are bounded all the same.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The scope key under which the caller the gate found travels on.
CALLER = "pitchin.caller"
MAX_URL_BYTES = 8 * 1024
DEFAULT_MAX_BODY = 1024 * 1024
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# The security scheme `pitchin_core.auth.authenticate` declares (FastAPI's HTTPBearer).
BEARER = "HTTPBearer"


class RequestGate:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body: int = DEFAULT_MAX_BODY,
        larger_bodies: Mapping[str, int] | None = None,
    ) -> None:
        self.app = app
        self.max_body = max_body
        # Path prefixes that take more (a CSV import, an ingest batch), longest first.
        self.larger = sorted((larger_bodies or {}).items(), key=lambda item: -len(item[0]))
        self._keyed: list[tuple[re.Pattern[str], frozenset[str]]] | None = None

    def limit_for(self, path: str) -> int:
        for prefix, limit in self.larger:
            if path.startswith(prefix):
                return limit
        return self.max_body

    def _routes_with_keys(self, scope: Scope) -> list[tuple[re.Pattern[str], frozenset[str]]]:
        """The routes that take an API key (`authenticate`'s bearer scheme), read once from the OpenAPI
        document: FastAPI's own description of every route, whatever routers it was built from."""
        if self._keyed is None:
            spec = scope["app"].openapi()
            keyed = []
            for template, operations in spec.get("paths", {}).items():
                methods = frozenset(m.upper() for m, op in operations.items() if BEARER in _schemes(op))
                if methods:
                    keyed.append((compile_path(template)[0], methods))
            self._keyed = keyed
        return self._keyed

    def _needs_key(self, scope: Scope) -> bool:
        path, method = scope["path"], scope["method"]
        return any(method in methods and pattern.match(path) for pattern, methods in self._routes_with_keys(scope))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if len(scope.get("raw_path") or scope["path"].encode()) + len(scope.get("query_string", b"")) > MAX_URL_BYTES:
            await problem(send, 414, "URL too long", "url", f"a URL may be at most {MAX_URL_BYTES} bytes")
            return
        # Who asks first: a stranger learns nothing about the route's limits.
        if scope["method"] in BODY_METHODS and self._needs_key(scope):
            caller = await self._caller(scope)
            if caller is None:
                await problem(
                    send,
                    401,
                    "Unauthorised",
                    "authorization",
                    "Send a known API key as 'Authorization: Bearer <key>'.",
                    www_authenticate=True,
                )
                return
            scope[CALLER] = caller
        limit = self.limit_for(scope["path"])
        length = _content_length(scope)
        if length is not None and length > limit:
            await problem(send, 413, "Body too large", "body", f"at most {limit} bytes here; this one is {length}")
            return
        await self._bounded(scope, receive, send, limit)

    async def _caller(self, scope: Scope) -> Any:
        key = _bearer(scope)
        if not key:
            return None
        runtime = scope["app"].state.runtime
        return await runtime.api_keys.caller(runtime.pool, key)

    async def _bounded(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """Pass the request on, answering 413 the moment a streamed body passes `limit`.

        The app is then told the client went away (as if it had), so it stops reading, and
        whatever it still tries to answer is dropped: the 413 is the answer.
        """
        seen = 0
        started = refused = False

        async def counted() -> Message:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit and not started:
                    refused = True
                    await problem(send, 413, "Body too large", "body", f"at most {limit} bytes here")
                    return {"type": "http.disconnect"}
            return message

        async def watch(message: Message) -> None:
            nonlocal started
            if refused:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watch)
        except ClientDisconnect:
            if not refused:
                raise


def _schemes(operation: dict[str, Any]) -> set[str]:
    return {name for requirement in operation.get("security", []) for name in requirement}


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            text = value.decode("latin-1")
            if text[:7].lower() == "bearer ":
                return text[7:].strip() or None
    return None


async def problem(
    send: Send, status: int, title: str, field: str, detail: str, *, www_authenticate: bool = False
) -> None:
    """An RFC 9457 problem naming the field, sent without reading the request's body."""
    body = json.dumps(
        {
            "type": "about:blank",
            "title": title,
            "status": status,
            "detail": detail,
            "errors": [{"field": field, "message": detail}],
        }
    ).encode()
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode()),
        # The body was not read: the connection cannot carry another request.
        (b"connection", b"close"),
    ]
    if www_authenticate:
        headers.append((b"www-authenticate", b'Bearer realm="pitchin"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
