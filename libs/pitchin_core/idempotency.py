"""`Idempotency-Key` on every POST: the first answer is stored and replayed for a retry.

An ASGI middleware rather than per-route code, so no POST can forget it. The key is
scoped to the caller's API key; the same key with another body is refused (422), and a
retry that arrives while the first request is still running gets 409. An answer sent with
`Cache-Control: no-store` (one carrying credentials) is never stored: its retry runs again.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import asyncpg
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pitchin_core.auth import hash_key

MAX_KEY_LENGTH = 255


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp, pool: Any) -> None:
        self.app = app
        # A callable returning the pool: the pool exists only once the app has started.
        self.pool = pool

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        key = headers.get("idempotency-key")
        authorization = headers.get("authorization", "")
        if not key or not authorization.lower().startswith("bearer "):
            await self.app(scope, receive, send)
            return
        if len(key) > MAX_KEY_LENGTH:
            await _problem(send, 422, "Idempotency-Key is longer than 255 characters", "Idempotency-Key")
            return
        body = await _read_body(receive)
        caller = hash_key(authorization[7:].strip())
        fingerprint = hashlib.sha256(scope["path"].encode() + b"\n" + body).hexdigest()
        pool: asyncpg.Pool = self.pool()
        claimed = await pool.fetchval(
            "INSERT INTO idempotency_keys (caller_key_hash, idempotency_key, fingerprint) VALUES ($1, $2, $3)"
            " ON CONFLICT DO NOTHING RETURNING true",
            caller,
            key,
            fingerprint,
        )
        if not claimed:
            row = await pool.fetchrow(
                "SELECT fingerprint, status_code, response_body, content_type, location FROM idempotency_keys"
                " WHERE caller_key_hash = $1 AND idempotency_key = $2",
                caller,
                key,
            )
            if row is None or row["fingerprint"] != fingerprint:
                await _problem(send, 422, "This Idempotency-Key was used for a different request", "Idempotency-Key")
            elif row["status_code"] is None:
                await _problem(send, 409, "A request with this Idempotency-Key is still being processed", None)
            else:
                extra = [(b"location", row["location"].encode())] if row["location"] else []
                await _respond(send, row["status_code"], row["response_body"], row["content_type"], extra)
            return

        captured: dict[str, Any] = {"status": 500, "body": b"", "headers": []}

        async def replay_body() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = message.get("headers", [])
            elif message["type"] == "http.response.body":
                captured["body"] += message.get("body", b"")
            await send(message)

        try:
            await self.app(scope, replay_body, capture)
        finally:
            status = captured["status"]
            response_headers = {k.decode().lower(): v.decode() for k, v in captured["headers"]}
            if status >= 500 or "no-store" in response_headers.get("cache-control", ""):
                # A failure we caused is not an answer to replay: let the client retry. An answer
                # marked no-store (it carries credentials) is not kept either: a retry runs again.
                await pool.execute(
                    "DELETE FROM idempotency_keys WHERE caller_key_hash = $1 AND idempotency_key = $2", caller, key
                )
            else:
                await pool.execute(
                    "UPDATE idempotency_keys SET status_code = $3, response_body = $4, content_type = $5, location = $6"
                    " WHERE caller_key_hash = $1 AND idempotency_key = $2",
                    caller,
                    key,
                    status,
                    captured["body"],
                    response_headers.get("content-type", "application/json"),
                    response_headers.get("location"),
                )


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _respond(send: Send, status: int, body: bytes, content_type: str, extra: list[tuple[bytes, bytes]]) -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()), *extra]
    headers.append((b"idempotent-replayed", b"true"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _problem(send: Send, status: int, detail: str, field: str | None) -> None:
    problem: dict[str, Any] = {
        "type": "/problems/idempotency",
        "title": "Idempotency-Key",
        "status": status,
        "detail": detail,
    }
    if field:
        problem["errors"] = [{"field": field, "message": detail}]
    await _respond(send, status, json.dumps(problem).encode(), "application/problem+json", [])
