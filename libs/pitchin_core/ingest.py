"""One pipeline for what other systems publish, whichever door it came through.

Reading (Kafka binary mode; HTTP binary, structured and batch mode) gives an `Envelope`
that never raises; `validate` checks it against the publisher's registration and the
public contract (`pitchin_core.contracts.ingest`); `process` then decides it in one
transaction: (source, id) claimed in `ingest_seen`, the owning service's use case applied
through a savepoint on the same connection (so its outbox rows, the external-id record
and the answer commit together), or the rejection recorded and, for Kafka, staged on
`pitchin.ingest.rejections.v1` through the outbox.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import math
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import asyncpg
from faststream import AckPolicy
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import Counter
from pydantic import ValidationError

from pitchin_core.auth import hash_key
from pitchin_core.contracts.cloudevents import SPEC_VERSION, tenant_of
from pitchin_core.contracts.common import EventData
from pitchin_core.contracts.ingest import (
    BY_TYPE,
    REJECTIONS_TOPIC,
    IngestRejectedV1,
    Published,
    RejectionReason,
    owner_of,
)
from pitchin_core.contracts.publishers import PublisherRegisteredV1, PublisherRevokedV1
from pitchin_core.db import Conn
from pitchin_core.http import Problem
from pitchin_core.telemetry import Metrics, current_traceparent

if TYPE_CHECKING:
    from pitchin_core.runtime import Runtime

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
MAX_BATCH = 500
SIGNATURE_TOLERANCE_SECONDS = 300
REGISTRY_TTL_SECONDS = 5.0
_FORWARD_NAMESPACE = uuid.UUID("7d1b6c2e-5a0f-4c4e-9a55-2f0a9d3f1e11")
_KNOWN_ATTRIBUTES = {"id", "source", "type", "specversion", "time", "subject", "tenant", "datacontenttype", "data"}


# -- publishers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Registration:
    source: str
    federation_id: str
    organisations: tuple[str, ...]
    any_organisation: bool
    signing_secret: str | None
    rate_per_second: float
    burst: int

    def may_publish_for(self, organisation_id: str | None) -> bool:
        if self.any_organisation:
            return True
        return organisation_id is not None and organisation_id in self.organisations


@dataclass(frozen=True)
class Credentials:
    """What a publisher is given once: the API key and the Standard Webhooks signing secret."""

    source: str
    key: str
    signing_secret: str


def new_signing_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def new_publisher_key() -> str:
    return "pub_" + secrets.token_urlsafe(32)


class SourceTaken(Exception):
    """The source is registered to another federation: a source names one system of one federation."""

    def __init__(self, source: str) -> None:
        super().__init__(f"{source!r} is registered to another federation")
        self.source = source


async def register_publisher(
    conn: Conn | asyncpg.Pool,
    *,
    source: str,
    federation_id: str,
    organisations: Sequence[str] = (),
    any_organisation: bool = False,
    key: str | None = None,
    signing_secret: str | None = None,
    rate_per_second: float = 50.0,
    burst: int = 200,
    label: str = "",
    own_federation_only: bool = False,
) -> Credentials:
    """Register (or re-register, replacing credentials and scope) a publishing system in this schema.

    Re-registering rotates: the old key and secret stop working, a revoked registration is active
    again, `created_at` stays. With `own_federation_only` (the staff API) a source registered to
    another federation is left as it is and `SourceTaken` raised; without it (the test harness)
    the source moves.
    """
    key = key or new_publisher_key()
    signing_secret = signing_secret or new_signing_secret()
    registered = await conn.fetchval(
        "INSERT INTO publishers (source, federation_id, organisations, any_organisation, key_hash, signing_secret,"
        " rate_per_second, burst, label) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        " ON CONFLICT (source) DO UPDATE SET federation_id = EXCLUDED.federation_id,"
        " organisations = EXCLUDED.organisations, any_organisation = EXCLUDED.any_organisation,"
        " key_hash = EXCLUDED.key_hash, signing_secret = EXCLUDED.signing_secret,"
        " rate_per_second = EXCLUDED.rate_per_second, burst = EXCLUDED.burst, label = EXCLUDED.label,"
        " revoked_at = NULL"
        " WHERE NOT $10::boolean OR publishers.federation_id = EXCLUDED.federation_id"
        " RETURNING true",
        source,
        federation_id,
        list(organisations),
        any_organisation,
        hash_key(key),
        signing_secret,
        rate_per_second,
        burst,
        label,
        own_federation_only,
    )
    if not registered:
        raise SourceTaken(source)
    return Credentials(source, key, signing_secret)


async def revoke_publisher(conn: Conn | asyncpg.Pool, *, source: str, federation_id: str, now: datetime) -> bool:
    """Revoke a federation's publisher (again: no change); False when it has no such source.

    Every `Registry` stops answering for it within its cache time (5 s).
    """
    found = await conn.fetchval(
        "UPDATE publishers SET revoked_at = coalesce(revoked_at, $3) WHERE source = $1 AND federation_id = $2"
        " RETURNING true",
        source,
        federation_id,
        now,
    )
    return bool(found)


async def learn_publisher(conn: Conn, fact: PublisherRegisteredV1 | PublisherRevokedV1) -> None:
    """Keep this schema's copy of a registration made in signups (scope only: credentials stay there)."""
    if isinstance(fact, PublisherRevokedV1):
        await conn.execute(
            "UPDATE publishers SET revoked_at = coalesce(revoked_at, $2) WHERE source = $1",
            fact.source,
            fact.revoked_at,
        )
        return
    await conn.execute(
        "INSERT INTO publishers (source, federation_id, organisations, any_organisation, rate_per_second, burst,"
        " label, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        " ON CONFLICT (source) DO UPDATE SET federation_id = EXCLUDED.federation_id,"
        " organisations = EXCLUDED.organisations, any_organisation = EXCLUDED.any_organisation,"
        " key_hash = NULL, signing_secret = NULL, rate_per_second = EXCLUDED.rate_per_second,"
        " burst = EXCLUDED.burst, label = EXCLUDED.label, revoked_at = NULL",
        fact.source,
        fact.federation_id,
        list(fact.organisations),
        fact.any_organisation,
        fact.rate_per_second,
        fact.burst,
        fact.label,
        fact.registered_at,
    )


ACCEPTED_OUTCOMES = ("applied", "forwarded")
REJECTED_OUTCOME = "rejected"


@dataclass(frozen=True)
class PublisherSummary:
    """A registration as federation staff see it, with what it published in the last 24 hours.

    The counts are this schema's `ingest_seen`: distinct event ids first seen in the window,
    by their latest outcome (applied or forwarded: accepted; rejected). Refusals before an
    event could be read and attributed (unauthenticated, rate-limited, an unreadable batch, an
    event without `id`) are not events of the source and are not counted.
    """

    source: str
    label: str
    organisations: list[str]
    any_organisation: bool
    rate_per_second: float
    burst: int
    created_at: datetime
    revoked_at: datetime | None
    accepted_24h: int
    rejected_24h: int
    last_seen_at: datetime | None


async def publisher_summaries(
    conn: Conn | asyncpg.Pool, federation_id: str, since: datetime, source: str | None = None
) -> list[PublisherSummary]:
    """A federation's publishers (or the one `source`): active ones first, each group by source."""
    rows = await conn.fetch(
        "SELECT p.source, p.label, p.organisations, p.any_organisation, p.rate_per_second, p.burst, p.created_at,"
        " p.revoked_at,"
        " (SELECT count(*) FROM ingest_seen s WHERE s.source = p.source AND s.seen_at > $2"
        "   AND s.outcome = ANY($4::text[])) AS accepted_24h,"
        " (SELECT count(*) FROM ingest_seen s WHERE s.source = p.source AND s.seen_at > $2"
        "   AND s.outcome = $5) AS rejected_24h,"
        " (SELECT max(s.seen_at) FROM ingest_seen s WHERE s.source = p.source) AS last_seen_at"
        " FROM publishers p WHERE p.federation_id = $1 AND ($3::text IS NULL OR p.source = $3)"
        ' ORDER BY p.revoked_at IS NOT NULL, p.source COLLATE "C"',
        federation_id,
        since,
        source,
        list(ACCEPTED_OUTCOMES),
        REJECTED_OUTCOME,
    )
    return [
        PublisherSummary(
            source=row["source"],
            label=row["label"],
            organisations=list(row["organisations"]),
            any_organisation=row["any_organisation"],
            rate_per_second=row["rate_per_second"],
            burst=row["burst"],
            created_at=row["created_at"],
            revoked_at=row["revoked_at"],
            accepted_24h=row["accepted_24h"],
            rejected_24h=row["rejected_24h"],
            last_seen_at=row["last_seen_at"],
        )
        for row in rows
    ]


_COLUMNS = "source, federation_id, organisations, any_organisation, signing_secret, rate_per_second, burst"


def _registration(row: asyncpg.Record) -> Registration:
    return Registration(
        source=row["source"],
        federation_id=row["federation_id"],
        organisations=tuple(row["organisations"]),
        any_organisation=row["any_organisation"],
        signing_secret=row["signing_secret"],
        rate_per_second=row["rate_per_second"],
        burst=row["burst"],
    )


class Registry:
    """Publisher registrations, cached for a few seconds (a revocation takes effect within 5 s).

    Only hits are cached: a source registered a moment ago is known at once.
    """

    def __init__(self, ttl: float = REGISTRY_TTL_SECONDS) -> None:
        self.ttl = ttl
        self._by_source: dict[str, tuple[float, Registration]] = {}
        self._by_key: dict[str, tuple[float, Registration]] = {}

    async def by_source(self, conn: Conn | asyncpg.Pool, source: str) -> Registration | None:
        return await self._get(self._by_source, source, conn, "source = $1", source)

    async def by_key(self, conn: Conn | asyncpg.Pool, key: str) -> Registration | None:
        digest = hash_key(key)
        return await self._get(self._by_key, digest, conn, "key_hash = $1", digest)

    async def _get(
        self,
        cache: dict[str, tuple[float, Registration]],
        name: str,
        conn: Conn | asyncpg.Pool,
        where: str,
        value: str,
    ) -> Registration | None:
        hit = cache.get(name)
        now = time.monotonic()
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM publishers WHERE {where} AND revoked_at IS NULL", value)
        if row is None:
            cache.pop(name, None)
            return None
        registration = _registration(row)
        cache[name] = (now, registration)
        return registration


# -- reading ---------------------------------------------------------------------------------


@dataclass
class Envelope:
    """A published event as read, before any judgement; `problems` holds what could not be read."""

    door: str
    attributes: dict[str, str] = field(default_factory=dict)
    data: Any = None
    problems: list[RejectionReason] = field(default_factory=list)
    reason: str = ""
    index: int | None = None

    @property
    def id(self) -> str | None:
        return self.attributes.get("id") or None

    @property
    def source(self) -> str | None:
        return self.attributes.get("source") or None

    @property
    def type(self) -> str | None:
        return self.attributes.get("type") or None

    @property
    def subject(self) -> str | None:
        return self.attributes.get("subject") or None

    def problem(self, reason: str, where: str, message: str) -> None:
        self.reason = self.reason or reason
        self.problems.append(RejectionReason(field=where, message=message))


def _json_data(envelope: Envelope, value: bytes | None, where: str) -> None:
    if value is None or value == b"":
        envelope.problem("bad-json", where, "there is no data: send the event's data as a JSON object")
        return
    try:
        envelope.data = json.loads(value)
    except UnicodeDecodeError as exc:
        envelope.problem("encoding", where, f"not UTF-8 (byte {exc.start})")
    except json.JSONDecodeError as exc:
        envelope.problem("bad-json", where, f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")


def envelope_from_kafka(headers: Iterable[tuple[str, bytes | None]], value: bytes | None) -> Envelope:
    envelope = Envelope(door="kafka")
    content_type = "application/json"
    for raw_name, raw_value in headers:
        name = raw_name.lower()
        if raw_value is None or not (name.startswith("ce_") or name == "content-type"):
            continue
        try:
            text = raw_value.decode("utf-8")
        except UnicodeDecodeError as exc:
            envelope.problem("encoding", raw_name, f"header is not valid UTF-8 (byte {exc.start})")
            continue
        if name == "content-type":
            content_type = text
        else:
            envelope.attributes[name[3:]] = text
    _check_content_type(envelope, content_type, "content-type")
    _json_data(envelope, value, "data")
    return envelope


def envelope_from_http_binary(headers: Mapping[str, str], body: bytes) -> Envelope:
    """Binary mode over HTTP: `ce-*` headers and the data as the body. Starlette gives headers as latin-1."""
    envelope = Envelope(door="http")
    for name, value in headers.items():
        lower = name.lower()
        if not lower.startswith("ce-"):
            continue
        try:
            text = value.encode("latin-1").decode("utf-8")
        except (UnicodeDecodeError, UnicodeEncodeError):
            envelope.problem("encoding", lower, "header is not valid UTF-8")
            continue
        envelope.attributes[lower[3:]] = text
    _check_content_type(envelope, headers.get("content-type", "application/json"), "content-type")
    _json_data(envelope, body, "(body)")
    return envelope


def envelope_from_structured(event: Any, door: str = "http", index: int | None = None) -> Envelope:
    """Structured mode (`application/cloudevents+json`): attributes and `data` in one JSON object."""
    envelope = Envelope(door=door, index=index)
    where = "" if index is None else f"{index}."
    if not isinstance(event, dict):
        envelope.problem("bad-json", f"{where}(event)", "a CloudEvent is a JSON object")
        return envelope
    for name, value in event.items():
        if name == "data":
            continue
        if name == "data_base64":
            envelope.problem("bad-json", f"{where}data_base64", "send JSON data in `data`, not data_base64")
        elif isinstance(value, str):
            envelope.attributes[name] = value
        elif value is not None:
            envelope.problem("schema", f"{where}{name}", "a CloudEvents attribute is a string")
    if "datacontenttype" in envelope.attributes:
        _check_content_type(envelope, envelope.attributes["datacontenttype"], f"{where}datacontenttype")
    if "data" not in event:
        envelope.problem("schema", f"{where}data", "missing: the event's data as a JSON object")
    else:
        envelope.data = event["data"]
    return envelope


def _check_content_type(envelope: Envelope, content_type: str, where: str) -> None:
    if not content_type.split(";")[0].strip().lower().endswith("json"):
        envelope.problem("bad-json", where, f"{content_type!r} is not JSON")


# -- judging -----------------------------------------------------------------------------------


class Rejection(Exception):
    """An event refused, with the HTTP status it is answered with and the failing fields."""

    def __init__(
        self, status: int, reason: str, reasons: list[RejectionReason], retry_after: float | None = None
    ) -> None:
        super().__init__("; ".join(f"{r.field}: {r.message}" for r in reasons))
        self.status = status
        self.reason = reason
        self.reasons = reasons
        self.retry_after = retry_after

    @classmethod
    def one(cls, status: int, reason: str, where: str, message: str, retry_after: float | None = None) -> Rejection:
        return cls(status, reason, [RejectionReason(field=where, message=message)], retry_after)

    @classmethod
    def from_problem(cls, problem: Problem, prefix: str = "data.") -> Rejection:
        errors = problem.extra.get("errors") or []
        reasons = [RejectionReason(field=_field(prefix, e.get("field")), message=str(e.get("message"))) for e in errors]
        if not reasons:
            reasons = [RejectionReason(field="data", message=problem.detail)]
        reason = {404: "not-found", 409: "conflict", 403: "tenant"}.get(problem.status, "refused")
        return cls(problem.status if problem.status < 500 else 422, reason, reasons)

    def problem_body(self) -> dict[str, Any]:
        return {
            "type": f"/problems/ingest/{self.reason}",
            "title": _TITLES.get(self.reason, "Event refused"),
            "status": self.status,
            "detail": str(self),
            "errors": [r.model_dump() for r in self.reasons],
        }


def _field(prefix: str, name: object) -> str:
    text = str(name or "")
    if text in ("", "event_id", "organisation_id"):
        return f"{prefix}{text}" if text else prefix.rstrip(".")
    return f"{prefix}{text}"


_TITLES = {
    "bad-json": "Not JSON",
    "schema": "Invalid event",
    "unknown-type": "Unknown event type",
    "missing-attribute": "Missing CloudEvents attribute",
    "tenant": "Not allowed for this tenant",
    "unregistered-source": "Unregistered source",
    "encoding": "Not UTF-8",
    "stale": "Stale update",
    "id-reused": "Event id reused",
    "not-found": "Unknown external id",
    "not-yet": "Not known yet",
    "conflict": "Conflict",
    "refused": "Refused",
    "too-large": "Too large",
    "rate-limited": "Too many events",
    "unauthenticated": "Unauthenticated",
    "bad-signature": "Bad signature",
}


@dataclass(frozen=True)
class Accepted:
    envelope: Envelope
    registration: Registration
    data: Published

    @property
    def source(self) -> str:
        return self.registration.source

    @property
    def id(self) -> str:
        return cast(str, self.envelope.id)


def validate(envelope: Envelope, registration: Registration | None) -> Accepted:
    """The envelope against the CloudEvents rules, the contract and the publisher's scope; raises Rejection."""
    if envelope.problems:
        status = 422 if envelope.reason == "schema" else 400
        raise Rejection(status, envelope.reason, envelope.problems)
    attrs = envelope.attributes
    missing = [name for name in ("id", "source", "type", "specversion") if not attrs.get(name)]
    if missing:
        raise Rejection(
            422,
            "missing-attribute",
            [RejectionReason(field=name, message="missing or empty CloudEvents attribute") for name in missing],
        )
    if attrs["specversion"] != SPEC_VERSION:
        raise Rejection.one(422, "schema", "specversion", f"{attrs['specversion']!r} is not {SPEC_VERSION}")
    if registration is None:
        raise Rejection.one(
            403, "unregistered-source", "source", f"{attrs['source']!r} is not a registered publisher (or was revoked)"
        )
    model = BY_TYPE.get(attrs["type"])
    if model is None:
        known = ", ".join(sorted(BY_TYPE))
        raise Rejection.one(422, "unknown-type", "type", f"{attrs['type']!r} is not published into Pitch In: {known}")
    if "time" in attrs:
        try:
            moment = datetime.fromisoformat(attrs["time"].replace("Z", "+00:00"))
            if moment.tzinfo is None:
                raise ValueError("no offset")
        except ValueError:
            raise Rejection.one(422, "schema", "time", "not an RFC 3339 timestamp with an offset") from None
    if not isinstance(envelope.data, dict):
        raise Rejection.one(422, "schema", "data", "the event's data must be a JSON object")
    try:
        data = model.model_validate(envelope.data)
    except ValidationError as exc:
        raise Rejection(
            422,
            "schema",
            [
                RejectionReason(
                    field=".".join(["data", *(str(p) for p in err["loc"])]), message=str(err["msg"]).lower()
                )
                for err in exc.errors()
            ],
        ) from exc
    if data.federation_id != registration.federation_id:
        raise Rejection.one(
            403, "tenant", "data.federation_id", f"this source publishes for {registration.federation_id} only"
        )
    if not registration.may_publish_for(data.organisation_id):
        raise Rejection.one(
            403,
            "tenant",
            "data.organisation_id",
            f"this source is not registered to publish for {data.organisation_id or 'the whole federation'}",
        )
    tenant = attrs.get("tenant")
    if tenant and tenant != tenant_of(data.federation_id, data.organisation_id):
        raise Rejection.one(403, "tenant", "tenant", "ce tenant names another federation or organisation than the data")
    return Accepted(envelope, registration, data)


def fingerprint(envelope: Envelope) -> str:
    """What makes two deliveries of one id the same event: type and data (canonical JSON)."""
    canonical = json.dumps([envelope.type, envelope.data], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def external_event_id(source: str, external_id: str) -> str:
    """The Pitch In id of an event a publisher created: derived, so every service can name it."""
    return "evt_" + hashlib.sha256(f"ingest|{source}|{external_id}".encode()).hexdigest()[:20]


def forwarded_id(source: str, original_id: str) -> uuid.UUID:
    """The outbox id of an HTTP-accepted event relayed to its owner on the ingest topic."""
    return uuid.uuid5(_FORWARD_NAMESPACE, f"{source}\n{original_id}")


FORWARDED_PREFIX = "http:"


def original_id(envelope: Envelope) -> str | None:
    """The publisher's id of a record: for one signups relayed from HTTP, the id the publisher sent."""
    subject, ident, source = envelope.subject, envelope.id, envelope.source
    if subject and subject.startswith(FORWARDED_PREFIX) and ident and source:
        candidate = subject[len(FORWARDED_PREFIX) :]
        if str(forwarded_id(source, candidate)) == ident:
            return candidate
    return ident


# -- deciding ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    outcome: str  # applied, forwarded, duplicate, rejected
    reason: str
    body: dict[str, Any]
    replayed: bool = False
    retry_after: float | None = None


class NotYet(Exception):
    """What the event refers to is not known here yet (e.g. an RSVP racing its event): retry soon."""

    def __init__(self, rejection: Rejection) -> None:
        super().__init__(str(rejection))
        self.rejection = rejection


class ConnectionAsPool:
    """One connection, already in a transaction, offered where a use case expects a pool.

    The use case's own `async with pool.acquire() as conn, conn.transaction()` becomes a
    savepoint of ours: its rows, its outbox rows and our idempotency record commit together,
    and a refusal rolls back only its part.
    """

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[Conn]:
        yield self.conn

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        return await self.conn.fetch(query, *args)

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        return await self.conn.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        return await self.conn.fetchval(query, *args)

    async def execute(self, query: str, *args: Any) -> str:
        return await self.conn.execute(query, *args)

    def as_pool(self) -> asyncpg.Pool:
        # Duck-typed: the use cases call only acquire/fetch/fetchrow/fetchval/execute.
        return cast(asyncpg.Pool, self)


Apply = Callable[[Conn, Accepted, datetime], Awaitable[dict[str, Any]]]


@dataclass
class Pipeline:
    """The decision every door shares, for one consuming service."""

    service: str
    metrics: Metrics
    registry: Registry = field(default_factory=Registry)

    def __post_init__(self) -> None:
        self.counter = ingest_counter(self.metrics)

    async def decide(
        self,
        pool: asyncpg.Pool,
        envelope: Envelope,
        registration: Registration | None,
        apply: Apply,
        *,
        now: datetime,
        door: str | None = None,
        stage_rejections: bool = False,
    ) -> Answer:
        door = door or envelope.door
        ident = original_id(envelope)
        try:
            accepted = validate(envelope, registration)
        except Rejection as rejection:
            answer = self.reject(envelope, rejection)
            if stage_rejections and envelope.source:
                async with pool.acquire() as conn, conn.transaction():
                    claimed = await self._claim_rejection(conn, envelope, ident)
                    if claimed:
                        await self._stage_rejection(conn, envelope, ident, registration, rejection, door, now)
                        await _remember(conn, envelope, ident, "rejected", answer)
            elif registration is not None and ident is not None and envelope.source == registration.source:
                # Answered at once (HTTP): recorded only to be counted for the publisher's staff.
                await _note_rejection(pool, envelope, ident)
            self._count(door, answer, envelope, registration)
            return answer
        assert ident is not None and envelope.source is not None
        async with pool.acquire() as conn, conn.transaction():
            prior = await _claim(conn, envelope.source, ident, accepted.data.event_type, fingerprint(envelope))
            if prior is not None:
                answer = prior
                if prior.reason == "id-reused" and stage_rejections:
                    reused = Rejection.one(409, "id-reused", "id", str(prior.body.get("detail", "")).partition(": ")[2])
                    await self._stage_rejection(conn, envelope, ident, registration, reused, door, now)
            else:
                refused: Rejection | None = None
                try:
                    async with conn.transaction():
                        result = await apply(conn, accepted, now)
                except Problem as problem:
                    refused = Rejection.from_problem(problem)
                except Rejection as caught:
                    refused = caught
                if refused is None:
                    outcome = "forwarded" if result.get("forwarded") else "applied"
                    body = {"status": 202, "outcome": outcome, "id": ident, "source": envelope.source}
                    answer = Answer(202, outcome, "", {**body, "type": envelope.type, **result})
                else:
                    answer = self.reject(envelope, refused)
                    if stage_rejections:
                        await self._stage_rejection(conn, envelope, ident, registration, refused, door, now)
                await _remember(conn, envelope, ident, answer.outcome, answer)
        self._count(door, answer, envelope, registration)
        return answer

    def reject(self, envelope: Envelope, rejection: Rejection) -> Answer:
        body = rejection.problem_body()
        body.update({"id": original_id(envelope), "source": envelope.source, "event_type": envelope.type})
        return Answer(rejection.status, "rejected", rejection.reason, body, retry_after=rejection.retry_after)

    async def _claim_rejection(self, conn: Conn, envelope: Envelope, ident: str | None) -> bool:
        if ident is None or envelope.source is None:
            return True
        prior = await _claim(conn, envelope.source, ident, envelope.type or "", fingerprint(envelope))
        return prior is None

    async def _stage_rejection(
        self,
        conn: Conn,
        envelope: Envelope,
        ident: str | None,
        registration: Registration | None,
        rejection: Rejection,
        door: str,
        now: datetime,
    ) -> None:
        assert envelope.source is not None
        forwarded = ident != envelope.id
        rejected = IngestRejectedV1(
            federation_id=registration.federation_id if registration else "unregistered",
            source=envelope.source,
            id=ident,
            type=envelope.type,
            reason=rejection.reason,
            reasons=rejection.reasons,
            door="http" if forwarded else door,
            rejected_by=self.service,
            rejected_at=now,
        )
        await stage(
            conn,
            rejected,
            topic=REJECTIONS_TOPIC,
            key=envelope.source,
            source=f"/pitchin/{self.service}",
            subject=f"rejections/{ident}" if ident else None,
        )

    def _count(self, door: str, answer: Answer, envelope: Envelope, registration: Registration | None) -> None:
        outcome = "duplicate" if answer.replayed else answer.outcome
        self.counter.labels(self.service, door, outcome, answer.reason or "none").inc()
        if answer.outcome == "rejected" and not answer.replayed:
            log.warning(
                "ingest rejected %s from %s (%s): %s",
                original_id(envelope),
                envelope.source,
                "registered" if registration else "unregistered",
                answer.body.get("detail"),
                extra={"reason": answer.reason, "event_type": envelope.type},
            )

    def count(self, door: str, outcome: str, reason: str) -> None:
        self.counter.labels(self.service, door, outcome, reason or "none").inc()


async def _claim(conn: Conn, source: str, ident: str, event_type: str, print_: str) -> Answer | None:
    """Claim (source, id) for this transaction, or the answer it got before (None: go ahead)."""
    claimed = await conn.fetchval(
        "INSERT INTO ingest_seen (source, event_id, event_type, fingerprint, outcome)"
        " VALUES ($1, $2, $3, $4, 'pending')"
        " ON CONFLICT (source, event_id) DO NOTHING RETURNING true",
        source,
        ident,
        event_type,
        print_,
    )
    if claimed:
        return None
    row = await conn.fetchrow(
        "SELECT fingerprint, outcome, answer::text AS answer FROM ingest_seen WHERE source = $1 AND event_id = $2"
        " FOR UPDATE",
        source,
        ident,
    )
    assert row is not None
    if row["fingerprint"] == print_ and row["answer"] is not None:
        stored = json.loads(row["answer"])
        return Answer(stored["status"], row["outcome"], stored.get("reason", ""), stored["body"], replayed=True)
    if row["outcome"] == "rejected":
        # A corrected event under the id of a refused one: decide it afresh.
        await conn.execute(
            "UPDATE ingest_seen SET fingerprint = $3, event_type = $4 WHERE source = $1 AND event_id = $2",
            source,
            ident,
            print_,
            event_type,
        )
        return None
    rejection = Rejection.one(409, "id-reused", "id", f"{ident!r} was already used by this source for another event")
    body = rejection.problem_body() | {"id": ident, "source": source, "event_type": event_type}
    return Answer(409, "rejected", "id-reused", body)


async def _note_rejection(pool: asyncpg.Pool, envelope: Envelope, ident: str) -> None:
    """Record an authenticated publisher's invalid event, without an answer to replay.

    The same id again is judged afresh (as before), and a row of an id already decided is
    left as it is.
    """
    assert envelope.source is not None
    await pool.execute(
        "INSERT INTO ingest_seen (source, event_id, event_type, fingerprint, outcome) VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT (source, event_id) DO NOTHING",
        envelope.source,
        ident,
        envelope.type or "",
        fingerprint(envelope),
        REJECTED_OUTCOME,
    )


async def _remember(conn: Conn, envelope: Envelope, ident: str | None, outcome: str, answer: Answer) -> None:
    if ident is None or envelope.source is None or answer.reason == "id-reused":
        return
    stored = {"status": answer.status, "reason": answer.reason, "body": answer.body}
    await conn.execute(
        "UPDATE ingest_seen SET outcome = $3, answer = $4::jsonb WHERE source = $1 AND event_id = $2",
        envelope.source,
        ident,
        outcome,
        json.dumps(stored, default=str),
    )


async def stage(
    conn: Conn,
    data: EventData,
    *,
    topic: str,
    key: str,
    source: str,
    subject: str | None = None,
    event_id: uuid.UUID | None = None,
    payload: str | None = None,
) -> uuid.UUID:
    """An outbox row with an explicit topic and id (the outbox relay publishes it like any other)."""
    event_id = event_id or uuid.uuid4()
    traceparent, tracestate = current_traceparent()
    await conn.execute(
        "INSERT INTO outbox (event_id, topic, message_key, event_type, source, subject, tenant,"
        " payload, traceparent, tracestate) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10)"
        " ON CONFLICT (event_id) DO NOTHING",
        event_id,
        topic,
        key,
        data.event_type,
        source,
        subject,
        tenant_of(data.federation_id, data.organisation_id),
        payload or data.model_dump_json(),
        traceparent,
        tracestate,
    )
    return event_id


# -- external ids ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    internal_id: str
    state: str
    updated_at: datetime
    organisation_id: str | None


async def subject_of(conn: Conn, source: str, kind: str, external_id: str) -> Subject | None:
    row = await conn.fetchrow(
        "SELECT internal_id, state, updated_at, organisation_id FROM ingest_subjects"
        " WHERE source = $1 AND kind = $2 AND external_id = $3 FOR UPDATE",
        source,
        kind,
        external_id,
    )
    if row is None:
        return None
    return Subject(row["internal_id"], row["state"], row["updated_at"], row["organisation_id"])


async def save_subject(conn: Conn, accepted: Accepted, kind: str, internal_id: str, state: str = "active") -> None:
    data = accepted.data
    await conn.execute(
        "INSERT INTO ingest_subjects (source, kind, external_id, internal_id, federation_id, organisation_id, state,"
        " updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        " ON CONFLICT (source, kind, external_id) DO UPDATE SET internal_id = EXCLUDED.internal_id,"
        " state = EXCLUDED.state, updated_at = EXCLUDED.updated_at",
        accepted.source,
        kind,
        data.external_id,
        internal_id,
        data.federation_id,
        data.organisation_id,
        state,
        data.updated_at,
    )


def check_fresh(subject: Subject, accepted: Accepted) -> None:
    """Refuse an update no newer than the last one applied for the same external id."""
    if accepted.data.updated_at <= subject.updated_at:
        raise Rejection.one(
            409,
            "stale",
            "data.updated_at",
            f"{accepted.data.updated_at.isoformat()} is not later than {subject.updated_at.astimezone(UTC).isoformat()}"
            f" already applied for external_id {accepted.data.external_id!r}: nothing changed",
        )


def unknown(kind: str, external_id: str, hint: str) -> Rejection:
    return Rejection.one(422, "not-found", "data.external_id", f"no {kind} {external_id!r} from this source: {hint}")


# -- HTTP helpers: signatures and rate limits --------------------------------------------------


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """A Standard Webhooks `v1` signature (what a publisher sends in `webhook-signature`)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def verify_signature(secret: str, msg_id: str, timestamp: str, body: bytes, signatures: str, now: float) -> str | None:
    """None when valid; otherwise what is wrong (the header to fix)."""
    try:
        sent_at = int(timestamp)
    except ValueError:
        return "webhook-timestamp: not a Unix timestamp in seconds"
    if abs(now - sent_at) > SIGNATURE_TOLERANCE_SECONDS:
        return f"webhook-timestamp: more than {SIGNATURE_TOLERANCE_SECONDS} s from now (replayed or clock skew)"
    expected = sign(secret, msg_id, sent_at, body)
    for candidate in signatures.split():
        if hmac.compare_digest(candidate, expected):
            return None
    return "webhook-signature: no v1 signature matches the body with this source's secret"


class RateLimiter:
    """A token bucket per source, in this process's memory: each replica allows the registered rate.

    Simple and enough while signups runs one or two replicas; a shared limit would need
    PostgreSQL or Redis and is not worth a round trip per request here.
    """

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, source: str, count: int, rate: float, burst: int, now: float) -> float:
        """0 when allowed; otherwise the seconds to wait before `count` tokens are there."""
        tokens, last = self._buckets.get(source, (float(burst), now))
        tokens = min(float(burst), tokens + (now - last) * rate)
        if count > burst:
            self._buckets[source] = (tokens, now)
            return math.inf
        if tokens >= count:
            self._buckets[source] = (tokens - count, now)
            return 0.0
        self._buckets[source] = (tokens, now)
        return (count - tokens) / rate


# -- metrics -----------------------------------------------------------------------------------

_COUNTERS: dict[int, Counter] = {}


def ingest_counter(metrics: Metrics) -> Counter:
    """`pitchin_ingest_events_total{service,door,outcome,reason}`, once per registry.

    No source label: sources are registered systems, but an unregistered one is whatever a
    caller claims, and hundreds of member organisations' systems times outcomes times reasons
    would make the series explode. The source is in the logs and the rejection records.
    """
    counter = _COUNTERS.get(id(metrics.registry))
    if counter is None:
        counter = Counter(
            "pitchin_ingest_events",
            "Events published into Pitch In by other systems, by door, outcome and reason class.",
            ["service", "door", "outcome", "reason"],
            registry=metrics.registry,
        )
        _COUNTERS[id(metrics.registry)] = counter
    return counter


# -- the Kafka door ----------------------------------------------------------------------------

NOT_YET_PATIENCE_SECONDS = 30.0


def subscribe_ingest(runtime: Runtime, pipeline: Pipeline, apply: Apply) -> None:
    """Consume `pitchin.ingest.v1` in this service's group; decide the types this service owns.

    Records another service owns are skipped (committed). Records that are not even a
    CloudEvent we can address (no `ce_source`) and records faststream cannot parse (a header
    that is not UTF-8) go to `pitchin.ingest.v1.<group>.dlq` with the raw bytes; everything
    else is decided: applied, or refused on the rejections topic.
    """
    from pitchin_core.contracts import topics
    from pitchin_core.messaging import TRANSIENT_ERRORS, PoisonMessage, track_subscriber

    spec = topics.INGEST
    service = runtime.settings.service_name
    if service not in spec.consumers:
        raise ValueError(f"{service} is not a consumer of {spec.name} in the topic table")
    first_seen: dict[tuple[str, str], float] = {}
    retry_delay = 0.1

    async def consume(message: KafkaMessage) -> None:
        nonlocal retry_delay
        record: Any = message.raw_message
        envelope = envelope_from_kafka(record.headers or (), record.value)
        if owner_of(envelope.type) != service:
            return
        if envelope.source is None:
            pipeline.count("kafka", "dead-lettered", "missing-attribute")
            raise PoisonMessage("ce_source is missing: a rejection could not be addressed to anyone", "unaddressable")
        now = datetime.now(UTC)
        try:
            registration = await pipeline.registry.by_source(runtime.pool, envelope.source)
            await pipeline.decide(runtime.pool, envelope, registration, apply, now=now, stage_rejections=True)
            retry_delay = 0.1
        except NotYet as exc:
            key = (envelope.source, envelope.id or "")
            started = first_seen.setdefault(key, time.monotonic())
            if time.monotonic() - started > NOT_YET_PATIENCE_SECONDS:
                first_seen.pop(key, None)
                await _refuse_late(runtime, pipeline, envelope, registration, exc.rejection, now)
                return
            await asyncio.sleep(0.5)
            raise  # not committed: redelivered, by then the event is usually known
        except TRANSIENT_ERRORS as exc:
            log.warning("transient failure on %s, will retry in %.1fs: %r", spec.name, retry_delay, exc)
            await asyncio.sleep(retry_delay)
            retry_delay = min(retry_delay * 2, 5.0)
            raise
        except PoisonMessage:
            raise
        except Exception as exc:
            log.exception("ingest failed on %s", spec.name)
            raise PoisonMessage(f"{type(exc).__name__}: {exc}", "handler-error") from exc
        first_seen.pop((envelope.source, envelope.id or ""), None)

    async def raw_body(message: Any) -> bytes:
        body: bytes = message.body
        return body

    consume.__name__ = f"on_{spec.name.replace('.', '_')}"
    subscriber = runtime.broker.subscriber(
        spec.name,
        group_id=service,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        heartbeat_interval_ms=runtime.settings.consumer_heartbeat_ms,
        session_timeout_ms=max(10_000, runtime.settings.consumer_heartbeat_ms * 3),
        title=f"{service}:{spec.name}",
        decoder=raw_body,
    )
    subscriber(consume)
    track_subscriber(spec.name, subscriber)


async def _refuse_late(
    runtime: Runtime,
    pipeline: Pipeline,
    envelope: Envelope,
    registration: Registration | None,
    rejection: Rejection,
    now: datetime,
) -> None:
    async def refuse(conn: Conn, accepted: Accepted, now: datetime) -> dict[str, Any]:
        raise rejection

    await pipeline.decide(runtime.pool, envelope, registration, refuse, now=now, stage_rejections=True)
