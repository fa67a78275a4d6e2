"""The HTTP door for other systems: `POST /v1/ingest` (CloudEvents binary, structured, batch).

Authenticated by the publisher's API key (`Authorization: Bearer pub_…`) or a Standard
Webhooks signature (`webhook-id`, `webhook-timestamp`, `webhook-signature` with the
publisher's `whsec_` secret, all three required; the source is the events' `source`). Limited per source (a token
bucket in this process: 429 with Retry-After), 1 MiB a request (413), 500 events a batch.
Each event goes through the same pipeline as the Kafka door: signups' types are applied here
at once, scheduling's are relayed to scheduling on `pitchin.ingest.v1` through the outbox.
"""

from __future__ import annotations

import json
import logging
import math
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from pitchin_core.auth import checks_credential
from pitchin_core.http import PROBLEM_JSON, Problem
from pitchin_core.ingest import (
    MAX_BATCH,
    MAX_BODY_BYTES,
    Answer,
    Envelope,
    NotYet,
    Pipeline,
    RateLimiter,
    Registration,
    Rejection,
    envelope_from_http_binary,
    envelope_from_structured,
)
from pitchin_core.messaging import TRANSIENT_ERRORS
from pitchin_core.signing import verify_webhook
from pitchin_core.uow import AMBIENT, UnitOfWork, one_transaction
from pitchin_signups.ingest.apply import apply

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["ingest"])
BATCH = "application/cloudevents-batch+json"
STRUCTURED = "application/cloudevents+json"

_BODY_DOC = {
    "requestBody": {
        "description": "A CloudEvent of a type in docs/ingest.md: binary mode (ce-* headers, data as the body),"
        f" structured ({STRUCTURED}) or a batch ({BATCH}).",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            STRUCTURED: {"schema": {"type": "object"}},
            BATCH: {"schema": {"type": "array", "items": {"type": "object"}, "maxItems": MAX_BATCH}},
        },
    }
}


def pipeline_of(request: Request) -> Pipeline:
    state = request.app.state
    pipeline: Pipeline | None = getattr(state, "ingest_pipeline", None)
    if pipeline is None:
        pipeline = Pipeline("signups", state.runtime.metrics)
        state.ingest_pipeline = pipeline
        state.ingest_limiter = RateLimiter()
    return pipeline


def _pool(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.runtime.pool
    return pool


def _uow(request: Request) -> UnitOfWork:
    uow: UnitOfWork = request.app.state.runtime.uow
    return uow


def _refuse(pipeline: Pipeline, status: int, reason: str, field: str, message: str) -> Problem:
    pipeline.count("http", "rejected", reason)
    return Problem(
        status,
        Rejection.one(status, reason, field, message).problem_body()["title"],
        f"{field}: {message}",
        kind=f"/problems/ingest/{reason}",
        errors=[{"field": field, "message": message}],
    )


async def read_body(request: Request, pipeline: Pipeline) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _refuse(pipeline, 413, "too-large", "(body)", f"larger than {MAX_BODY_BYTES} bytes: split it")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _refuse(pipeline, 413, "too-large", "(body)", f"larger than {MAX_BODY_BYTES} bytes: split it")
        chunks.append(chunk)
    return b"".join(chunks)


async def publisher_by_key(request: Request, pipeline: Pipeline) -> Registration | None:
    """The publisher named by `Authorization: Bearer <key>` (or OSDI's `OSDI-API-Token`), if any key was sent."""
    authorization = request.headers.get("authorization", "")
    key = authorization[7:].strip() if authorization.lower().startswith("bearer ") else None
    key = key or request.headers.get("osdi-api-token")
    if not key:
        return None
    registration = await pipeline.registry.by_key(_pool(request), key)
    if registration is None:
        raise _refuse(
            pipeline, 401, "unregistered-source", "authorization", "this publisher key is not known or was revoked"
        )
    return registration


async def authenticate(request: Request, pipeline: Pipeline, body: bytes, envelopes: list[Envelope]) -> Registration:
    registration = await publisher_by_key(request, pipeline)
    if registration is not None:
        return registration
    headers = request.headers
    if "webhook-signature" not in headers:
        raise _refuse(
            pipeline,
            401,
            "unauthenticated",
            "authorization",
            "send 'Authorization: Bearer <publisher key>' or a Standard Webhooks signature",
        )
    # Standard Webhooks signs "<id>.<timestamp>.<body>": without its id a signature could be
    # replayed under any id, and the specification (and its official library) refuse it.
    for required in ("webhook-id", "webhook-timestamp"):
        if not headers.get(required, "").strip():
            raise _refuse(pipeline, 401, "bad-signature", required, "missing: a signed request carries it")
    sources = {e.source for e in envelopes}
    if len(sources) != 1 or None in sources:
        raise _refuse(pipeline, 401, "unauthenticated", "source", "a signed request carries events of one source")
    source = next(iter(sources))
    assert source is not None
    registration = await pipeline.registry.by_source(_pool(request), source)
    if registration is None or registration.signing_secret is None:
        raise _refuse(pipeline, 403, "unregistered-source", "source", f"{source!r} is not a registered publisher")
    wrong = verify_webhook(
        registration.signing_secret,
        headers["webhook-id"],
        headers["webhook-timestamp"],
        body,
        headers["webhook-signature"],
        time.time(),
    )
    if wrong:
        where, _, message = wrong.partition(": ")
        raise _refuse(pipeline, 401, "bad-signature", where, message)
    return registration


def envelopes_of(request: Request, body: bytes, pipeline: Pipeline) -> tuple[list[Envelope], bool]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in (BATCH, STRUCTURED):
        try:
            parsed = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _refuse(pipeline, 400, "bad-json", "(body)", f"not valid JSON: {exc}") from exc
        if content_type == STRUCTURED:
            return [envelope_from_structured(parsed)], False
        if not isinstance(parsed, list) or not parsed:
            raise _refuse(pipeline, 400, "bad-json", "(body)", "a batch is a non-empty JSON array of CloudEvents")
        if len(parsed) > MAX_BATCH:
            raise _refuse(pipeline, 413, "too-large", "(body)", f"more than {MAX_BATCH} events: split the batch")
        return [envelope_from_structured(event, index=i) for i, event in enumerate(parsed)], True
    if not any(name.lower().startswith("ce-") for name in request.headers):
        raise _refuse(
            pipeline,
            415,
            "bad-json",
            "content-type",
            f"send ce-* headers with a JSON body (binary mode), {STRUCTURED} or {BATCH}",
        )
    return [envelope_from_http_binary(request.headers, body)], False


def _other_source(pipeline: Pipeline, envelope: Envelope, registration: Registration) -> Answer | None:
    """The refusal of an event whose source is not the one these credentials publish as."""
    if envelope.source is None or envelope.source == registration.source:
        return None
    rejection = Rejection.one(
        403, "tenant", "source", f"these credentials publish as {registration.source!r}, not {envelope.source!r}"
    )
    pipeline.count("http", "rejected", "tenant")
    return pipeline.reject(envelope, rejection)


async def decide(request: Request, pipeline: Pipeline, envelope: Envelope, registration: Registration) -> Answer:
    refused = _other_source(pipeline, envelope, registration)
    if refused is not None:
        return refused
    try:
        return await pipeline.decide(_uow(request), envelope, registration, apply, now=datetime.now(UTC))
    except NotYet as exc:
        pipeline.count("http", "rejected", exc.rejection.reason)
        return pipeline.reject(envelope, exc.rejection)


async def decide_all(
    request: Request, pipeline: Pipeline, envelopes: list[Envelope], registration: Registration
) -> list[Answer]:
    """A batch's events decided set-based in one transaction (`Pipeline.decide_many`: one claim,
    one insert of the new people with their outbox rows, one answer statement per round), each
    with its own answer; if a decision fails unexpectedly (or an RSVP's event is not known yet),
    they are decided again one by one, each in its own transaction. Inside a request's
    Idempotency-Key transaction they join that one instead."""
    if len(envelopes) == 1 or AMBIENT.get() is not None:
        return [await decide(request, pipeline, envelope, registration) for envelope in envelopes]
    answers: list[Answer | None] = [_other_source(pipeline, e, registration) for e in envelopes]
    mine = [(i, e) for i, e in enumerate(envelopes) if answers[i] is None]
    try:
        # A decision that failed and was still answered (say, not yet known) left writes
        # behind: `one_transaction` then commits nothing, and the batch goes event by event.
        async with one_transaction():
            decided = await pipeline.decide_many(
                _uow(request), [(e, registration) for _, e in mine], apply, apply.many, now=datetime.now(UTC)
            )
        for (i, _), answer in zip(mine, decided, strict=True):
            answers[i] = answer
        return [answer for answer in answers if answer is not None]
    except TRANSIENT_ERRORS:
        raise
    except Exception:
        log.warning("an ingest batch failed as a whole; deciding it event by event", exc_info=True)
    return [await decide(request, pipeline, envelope, registration) for envelope in envelopes]


def respond(answer: Answer) -> Response:
    headers: dict[str, str] = {}
    if answer.replayed:
        headers["Idempotent-Replayed"] = "true"
    if answer.retry_after is not None:
        headers["Retry-After"] = str(math.ceil(answer.retry_after))
    media = PROBLEM_JSON if answer.status >= 400 else "application/json"
    return JSONResponse(answer.body, status_code=answer.status, media_type=media, headers=headers)


def _result(index: int, answer: Answer) -> dict[str, Any]:
    return {"index": index, "status": answer.status, "replayed": answer.replayed, **answer.body}


@router.post("/ingest", status_code=202, openapi_extra=_BODY_DOC, summary="Publish CloudEvents into Pitch In")
@checks_credential("a registered publisher's key and Standard Webhooks signature")
async def publish(request: Request) -> Response:
    """Answers 202 per accepted event (200 with a result per event for a batch), problem+json otherwise."""
    pipeline = pipeline_of(request)
    body = await read_body(request, pipeline)
    envelopes, batch = envelopes_of(request, body, pipeline)
    registration = await authenticate(request, pipeline, body, envelopes)
    limiter: RateLimiter = request.app.state.ingest_limiter
    wait = limiter.take(
        registration.source, len(envelopes), registration.rate_per_second, registration.burst, time.monotonic()
    )
    if wait == math.inf:
        raise _refuse(
            pipeline, 413, "too-large", "(body)", f"more events than this source's burst ({registration.burst})"
        )
    if wait > 0:
        pipeline.count("http", "rejected", "rate-limited")
        message = f"more than {registration.rate_per_second:g} events/s from {registration.source}: retry later"
        rejection = Rejection.one(429, "rate-limited", "source", message, retry_after=wait)
        return respond(Answer(429, "rejected", "rate-limited", rejection.problem_body(), retry_after=wait))
    answers = await decide_all(request, pipeline, envelopes, registration)
    if not batch:
        return respond(answers[0])
    results = [_result(i, a) for i, a in enumerate(answers)]
    summary = {
        "accepted": sum(a.status < 400 for a in answers),
        "rejected": sum(a.status >= 400 for a in answers),
        "results": results,
    }
    return JSONResponse(summary, status_code=200)
