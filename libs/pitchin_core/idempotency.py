"""`Idempotency-Key` on every POST: the first answer is stored and replayed for a retry.

An ASGI middleware rather than per-route code, so no POST can forget it. The key is
scoped to the caller's API key; the same key with another body is refused (422). The key
is claimed inside the request's own transaction (`pitchin_core.uow.RequestClaim`): the
claim, the work and the stored answer commit together, and the answer is sent only once
they have. A request killed midway leaves no claim behind, so its retry simply runs; a
retry that arrives while the first is still running waits for it and gets its answer.
An answer sent with `Cache-Control: no-store` (one carrying credentials) is never stored:
its retry runs again. Answers of 500 and above roll the work back and are not stored.
Answers are stored only for callers the request gate found (a known API key), and kept
for `KEEP_ANSWERS`: `ExpiredAnswers` deletes older ones.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

import asyncpg
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pitchin_core.auth import hash_key
from pitchin_core.errors import problem_type
from pitchin_core.gate import CALLER
from pitchin_core.uow import AMBIENT, AlreadyAnswered, RequestClaim
from pitchin_core.worker import BatchWorker

MAX_KEY_LENGTH = 255
# How long a retry gets the first answer (the IETF draft leaves it to the server; 24 hours is
# what payment APIs keep). A key may be reused after that.
KEEP_ANSWERS = timedelta(hours=24)


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        key = headers.get("idempotency-key")
        authorization = headers.get("authorization", "")
        # Only a caller the request gate found gets answers stored: a stranger's keys would
        # be rows anyone could write.
        if not key or scope.get(CALLER) is None or not authorization.lower().startswith("bearer "):
            await self.app(scope, receive, send)
            return
        if len(key) > MAX_KEY_LENGTH:
            await _problem(send, 422, "Idempotency-Key is longer than 255 characters", "Idempotency-Key")
            return
        body = await _read_body(receive)
        claim = RequestClaim(
            caller_key_hash=hash_key(authorization[7:].strip()),
            key=key,
            fingerprint=hashlib.sha256(scope["path"].encode() + b"\n" + body).hexdigest(),
        )
        # No lookup first: the claim itself finds an answer already committed (and the booking
        # call finds its own), so a first attempt costs no round trip more than its work.

        async def replay_body() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        # The answer is held back until the work it reports has committed.
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        token = AMBIENT.set(claim)
        try:
            await self.app(scope, replay_body, hold)
        except AlreadyAnswered as twin:
            await _replay(send, twin.stored, claim.fingerprint)
            return
        except BaseException:
            await claim.abandon()
            raise
        finally:
            AMBIENT.reset(token)
        if claim.is_open:
            status, response_body, response_headers = _answer(held)
            if status >= 500:
                # A failure we caused is not an answer to replay: roll back and let the client retry.
                await claim.abandon()
            else:
                keep = "no-store" not in response_headers.get("cache-control", "")
                answer = (
                    status,
                    response_body,
                    response_headers.get("content-type", "application/json"),
                    response_headers.get("location"),
                )
                try:
                    claim.answer = answer if keep else None
                    await claim.commit()
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    await _problem(send, 503, "The request could not be committed; retry it with the same key", None)
                    return
        for message in held:
            await send(message)


def _answer(held: list[Message]) -> tuple[int, bytes, dict[str, str]]:
    status, headers, body = 500, {}, b""
    for message in held:
        if message["type"] == "http.response.start":
            status = message["status"]
            headers = {k.decode().lower(): v.decode() for k, v in message.get("headers", [])}
        elif message["type"] == "http.response.body":
            body += message.get("body", b"")
    return status, body, headers


async def _replay(send: Send, stored: asyncpg.Record | None, fingerprint: str) -> None:
    if stored is None or stored["fingerprint"] != fingerprint:
        await _problem(send, 422, "This Idempotency-Key was used for a different request", "Idempotency-Key")
    elif stored["status_code"] is None:  # a claim of the schema before claims were transactional
        await _problem(send, 409, "A request with this Idempotency-Key is still being processed", None)
    else:
        extra = [(b"location", stored["location"].encode())] if stored["location"] else []
        await _respond(send, stored["status_code"], stored["response_body"], stored["content_type"], extra)


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            # Gone (or refused by the request gate) before the body ended: no request to claim.
            raise ClientDisconnect
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
        "type": problem_type("/problems/idempotency"),
        "title": "Idempotency-Key",
        "status": status,
        "detail": detail,
    }
    if field:
        problem["errors"] = [{"field": field, "message": detail}]
    await _respond(send, status, json.dumps(problem).encode(), "application/problem+json", [])


class ExpiredAnswers(BatchWorker):
    """Deletes idempotency records older than `KEEP_ANSWERS`, a batch at a time.

    Every process of a service runs one; SKIP LOCKED lets them share the work without waiting
    on each other, and a record is at most `every` seconds past its time when it goes.
    """

    def __init__(self, pool: asyncpg.Pool, *, batch_size: int = 5000, every: float = 300.0) -> None:
        super().__init__(pool, name="idempotency-expiry", batch_size=batch_size, idle_poll_seconds=every)
        self.deleted = 0

    async def work_once(self) -> int:
        done = await self.pool.fetchval(
            "WITH gone AS (DELETE FROM idempotency_keys WHERE (caller_key_hash, idempotency_key) IN"
            " (SELECT caller_key_hash, idempotency_key FROM idempotency_keys WHERE created_at < now() - $1::interval"
            " ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING 1)"
            " SELECT count(*) FROM gone",
            KEEP_ANSWERS,
            self.batch_size,
        )
        self.deleted += int(done)
        return int(done)
