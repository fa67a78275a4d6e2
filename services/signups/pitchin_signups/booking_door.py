"""`POST /v1/events/{event_id}/bookings` without FastAPI's router and dependency injection.

The route a rush hits. Profiled under a rush of 10,000 (py-spy, two workers), FastAPI's
route matching and dependency solving took about 40% of signups' CPU per booking, more
than the booking itself; this door answers that one request as plain ASGI instead, inside
the same middleware (Idempotency-Key claims, RED metrics, request spans), with the same
authentication, validation, booking desk and problem+json answers (`validation_problem`)
as the FastAPI route in `api.py`, which stays for the OpenAPI document and answers if the
door is not installed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from pitchin_core.auth import Caller, KnownKeys
from pitchin_core.errors import DomainError, Unauthorised
from pitchin_core.gate import CALLER
from pitchin_core.http import PROBLEM_JSON, validation_problem
from pitchin_signups.domain.bookings import BookingRequest
from pitchin_signups.service.bookings import BookingDesk

# Status, body, headers.
Answer = tuple[int, bytes, list[tuple[bytes, bytes]]]


@dataclass(frozen=True)
class _Template:
    path: str


ROUTE = _Template("/v1/events/{event_id}/bookings")
_PATH = re.compile(r"^/v1/events/([A-Za-z0-9_.:-]{1,128})/bookings$")
MAX_BODY_BYTES = 16 * 1024


class BookingDoor:
    def __init__(self, app: ASGIApp, *, desk: BookingDesk, keys: KnownKeys, pool: Any) -> None:
        self.app = app
        self.desk = desk
        self.keys = keys
        self.pool = pool  # a callable: the pool exists once the app started

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = _PATH.match(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if match is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = ROUTE  # metrics label the template, as for any other route
        try:
            status, body, headers = await self._book(scope, receive, match.group(1))
        except DomainError as error:
            status, body, headers = error.status, json.dumps(error.problem_body()).encode(), [PROBLEM]
            if status == 401:
                headers = [*headers, (b"www-authenticate", b'Bearer realm="pitchin"')]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _book(
        self, scope: Scope, receive: Receive, event_id: str
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        caller = scope.get(CALLER)  # found by the request gate before the body was read
        if not isinstance(caller, Caller):
            authorization = next((v for k, v in scope["headers"] if k == b"authorization"), b"").decode("latin-1")
            scheme, _, key = authorization.partition(" ")
            if scheme.lower() != "bearer" or not key.strip():
                raise Unauthorised("Send an API key as 'Authorization: Bearer <key>'.")
            caller = await self.keys.caller(self.pool(), key.strip())
            if caller is None:
                raise Unauthorised("This API key is not known or was revoked.")
        raw = await _body(receive)
        try:
            request = BookingRequest.model_validate_json(raw)
        except ValidationError as exc:
            return 422, json.dumps(validation_problem(exc)).encode(), [PROBLEM]
        booked = await self.desk.book(caller, event_id, request)
        location = f"/v1/bookings/{booked.booking_id}".encode()
        headers = [(b"content-type", b"application/json"), (b"location", location)]
        if booked.replayed:
            headers.append((b"idempotent-replayed", b"true"))
        return 201, booked.payload.encode(), headers


PROBLEM = (b"content-type", PROBLEM_JSON.encode())


async def _body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _TooLarge()
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


class _TooLarge(DomainError):
    status = 413
    default_title = "Too large"

    def __init__(self) -> None:
        super().__init__(f"A booking is at most {MAX_BODY_BYTES} bytes.")
