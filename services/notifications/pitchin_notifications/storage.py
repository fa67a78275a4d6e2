"""Every SQL statement of the notifications service."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from pitchin_core.db import Conn

# The sender asks when the next row falls due straight from its pool, outside any transaction.
Pool = Conn | asyncpg.Pool

# Deliveries -----------------------------------------------------------------------------


@dataclass(frozen=True)
class NewDelivery:
    """One delivery to stage: every column `stage_deliveries` writes."""

    idempotency_key: str
    federation_id: str
    organisation_id: str | None
    event_id: str
    event_type: str
    channel: str
    recipient: str
    subject: str
    body_text: str
    body_html: str | None
    traceparent: str | None
    template: str = ""
    language: str = "en"
    priority: int = 1
    bulk: bool = False
    person_ref: str | None = None
    subscription_id: uuid.UUID | None = None
    action_url: str | None = None
    unsubscribe_url: str | None = None
    segments: int | None = None
    status: str = "pending"
    next_attempt_at: datetime | None = None
    delivery_id: uuid.UUID = field(default_factory=uuid.uuid4)


# (column, array type) in the order of NewDelivery's fields; next_attempt_at NULL means now().
_STAGED_COLUMNS = (
    ("idempotency_key", "text"),
    ("federation_id", "text"),
    ("organisation_id", "text"),
    ("event_id", "text"),
    ("event_type", "text"),
    ("channel", "text"),
    ("recipient", "text"),
    ("subject", "text"),
    ("body_text", "text"),
    ("body_html", "text"),
    ("traceparent", "text"),
    ("template", "text"),
    ("language", "text"),
    ("priority", "smallint"),
    ("bulk", "boolean"),
    ("person_ref", "text"),
    ("subscription_id", "uuid"),
    ("action_url", "text"),
    ("unsubscribe_url", "text"),
    ("segments", "integer"),
    ("status", "text"),
    ("next_attempt_at", "timestamptz"),
    ("delivery_id", "uuid"),
)
_STAGE_SQL = (
    "INSERT INTO deliveries ("
    + ", ".join(c for c, _ in _STAGED_COLUMNS)
    + ") SELECT "
    + ", ".join("coalesce(next_attempt_at, now())" if c == "next_attempt_at" else c for c, _ in _STAGED_COLUMNS)
    + " FROM unnest("
    + ", ".join(f"${i + 1}::{t}[]" for i, (_, t) in enumerate(_STAGED_COLUMNS))
    + ") AS x("
    + ", ".join(c for c, _ in _STAGED_COLUMNS)
    + ") ON CONFLICT (idempotency_key) DO NOTHING"
)


async def stage_deliveries(conn: Conn, deliveries: Sequence[NewDelivery]) -> int:
    """Stage many deliveries in one statement; one already staged under its idempotency key is left as it is.

    Returns how many were new (a key repeated within the call is staged once).
    """
    if not deliveries:
        return 0
    columns = [[getattr(d, c) for d in deliveries] for c, _ in _STAGED_COLUMNS]
    result: str = await conn.execute(_STAGE_SQL, *columns)
    return int(result.rsplit(" ", 1)[-1])


async def stage_delivery(conn: Conn, **columns: Any) -> bool:
    """Stage one delivery (`NewDelivery`'s fields as keywords); False when its idempotency key was staged before."""
    if columns.get("delivery_id") is None:
        columns.pop("delivery_id", None)
    return await stage_deliveries(conn, [NewDelivery(**columns)]) == 1


async def claim_due(conn: Conn, channel: str, limit: int) -> list[asyncpg.Record]:
    """Lock due deliveries for this transaction; other senders skip them.

    One-to-one messages go before event-wide fan-out, then by priority, then oldest first,
    so a 100,000-recipient reminder never holds up an offer or a booking confirmation.
    """
    return await conn.fetch(
        "SELECT d.delivery_id, d.idempotency_key, d.federation_id, d.recipient, d.subject, d.body_text,"
        " d.body_html, d.unsubscribe_url, d.attempts, d.traceparent, d.subscription_id, d.event_type, d.priority,"
        " d.person_ref, c.smtp_host, c.smtp_port, c.mail_from,"
        " c.sms_base_url, c.sms_account_sid, c.sms_auth_token, c.sms_from,"
        " c.max_attempts, c.retry_base_seconds,"
        " w.url AS webhook_url, w.secret AS webhook_secret, w.status AS webhook_status"
        " FROM deliveries d LEFT JOIN channel_config c USING (federation_id)"
        " LEFT JOIN webhook_subscriptions w USING (subscription_id)"
        " WHERE d.status = 'pending' AND d.channel = $1 AND d.next_attempt_at <= now()"
        " ORDER BY d.bulk, d.priority, d.next_attempt_at LIMIT $2 FOR UPDATE OF d SKIP LOCKED",
        channel,
        limit,
    )


async def mark_sent(conn: Conn, sent: Sequence[tuple[uuid.UUID, str | None]]) -> None:
    if not sent:
        return
    await conn.execute(
        "UPDATE deliveries d SET status = 'sent', sent_at = now(), updated_at = now(), attempts = d.attempts + 1,"
        " last_error = NULL, provider_ref = x.ref FROM unnest($1::uuid[], $2::text[]) AS x(id, ref)"
        " WHERE d.delivery_id = x.id",
        [s[0] for s in sent],
        [s[1] for s in sent],
    )


async def mark_retry(conn: Conn, retries: Sequence[tuple[uuid.UUID, str, datetime]]) -> None:
    """Count a failed attempt on each (delivery, error, next attempt at), in one statement."""
    if not retries:
        return
    await conn.execute(
        "UPDATE deliveries d SET attempts = d.attempts + 1, last_error = x.error, next_attempt_at = x.retry_at,"
        " updated_at = now() FROM unnest($1::uuid[], $2::text[], $3::timestamptz[]) AS x(id, error, retry_at)"
        " WHERE d.delivery_id = x.id",
        [r[0] for r in retries],
        [r[1][:2000] for r in retries],
        [r[2] for r in retries],
    )


async def mark_dead(conn: Conn, dead: Sequence[tuple[uuid.UUID, str]], attempted: bool = True) -> None:
    """Give up on each (delivery, error): the row says dead and a dead-letter record keeps the reason."""
    if not dead:
        return
    await conn.execute(
        "WITH x AS (SELECT * FROM unnest($1::uuid[], $2::text[]) AS x(id, error)),"
        " d AS (UPDATE deliveries SET status = 'dead', attempts = attempts + $3::int, last_error = x.error,"
        " updated_at = now() FROM x WHERE delivery_id = x.id"
        " RETURNING delivery_id, federation_id, organisation_id, channel, event_type, recipient, attempts, x.error)"
        " INSERT INTO dead_letters (delivery_id, federation_id, organisation_id, channel, event_type, recipient,"
        " attempts, reason) SELECT delivery_id, federation_id, organisation_id, channel, event_type, recipient,"
        " attempts, error FROM d ON CONFLICT (delivery_id) DO UPDATE SET reason = excluded.reason,"
        " attempts = excluded.attempts, dead_at = now(), resent_at = NULL",
        [d[0] for d in dead],
        [d[1][:2000] for d in dead],
        1 if attempted else 0,
    )


async def next_due_at(conn: Pool) -> datetime | None:
    """When the next delivery (any channel), fan-out or digest falls due."""
    value: datetime | None = await conn.fetchval(
        "SELECT least((SELECT min(next_attempt_at) FROM deliveries WHERE status = 'pending'),"
        " (SELECT min(not_before) FROM fanouts WHERE done_at IS NULL),"
        " (SELECT min(next_attempt_at) FROM deliveries WHERE status = 'held'))"
    )
    return value


async def next_delivery_due_at(conn: Pool, channel: str) -> datetime | None:
    """When this channel's next pending delivery falls due: one probe of `deliveries_due` per (bulk, priority).

    `min(next_attempt_at)` over the pending rows would read the whole index (it is ordered by
    channel, bulk and priority first): 100,000 entries during a fan-out, for every idle pass of
    every worker.
    """
    value: datetime | None = await conn.fetchval(
        "SELECT min(due.next_attempt_at) FROM (VALUES (false, 0), (false, 1), (false, 2), (true, 0), (true, 1),"
        " (true, 2)) AS k(bulk, priority), LATERAL (SELECT next_attempt_at FROM deliveries"
        " WHERE status = 'pending' AND channel = $1 AND bulk = k.bulk AND priority = k.priority::smallint"
        " ORDER BY next_attempt_at LIMIT 1) AS due",
        channel,
    )
    return value


async def next_job_due_at(conn: Pool) -> datetime | None:
    """When the next fan-out job or digest falls due."""
    value: datetime | None = await conn.fetchval(
        "SELECT least((SELECT min(not_before) FROM fanouts WHERE done_at IS NULL),"
        " (SELECT min(next_attempt_at) FROM deliveries WHERE status = 'held'))"
    )
    return value


_LOG_COLUMNS = (
    "delivery_id, event_id, event_type, channel, template, language, priority, bulk, recipient, subject, status,"
    " attempts, next_attempt_at, last_error, digest_id, subscription_id, segments, action_url, created_at, sent_at"
)


@dataclass(frozen=True)
class LogFilter:
    """Which deliveries of the log to list; None: any."""

    status: str | None = None
    channel: str | None = None
    event_type: str | None = None
    event_id: str | None = None


EVERY_DELIVERY = LogFilter()


async def list_deliveries(
    conn: Conn,
    federation_id: str,
    organisation_id: str | None,
    limit: int,
    before: datetime | None,
    only: LogFilter = EVERY_DELIVERY,
) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {_LOG_COLUMNS} FROM deliveries WHERE federation_id = $1"
        " AND ($2::text IS NULL OR organisation_id = $2) AND ($4::timestamptz IS NULL OR created_at < $4)"
        " AND ($5::text IS NULL OR status = $5) AND ($6::text IS NULL OR channel = $6)"
        " AND ($7::text IS NULL OR event_type = $7) AND ($8::text IS NULL OR event_id = $8)"
        " ORDER BY created_at DESC, delivery_id LIMIT $3",
        federation_id,
        organisation_id,
        limit,
        before,
        only.status,
        only.channel,
        only.event_type,
        only.event_id,
    )


async def get_delivery(
    conn: Conn, federation_id: str, organisation_id: str | None, delivery_id: uuid.UUID
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_LOG_COLUMNS} FROM deliveries WHERE delivery_id = $1 AND federation_id = $2"
        " AND ($3::text IS NULL OR organisation_id = $3)",
        delivery_id,
        federation_id,
        organisation_id,
    )


async def resend(conn: Conn, federation_id: str, organisation_id: str | None, delivery_id: uuid.UUID) -> str | None:
    """Queue a dead (or sent) delivery again, keeping its id; returns its status before."""
    previous: str | None = await conn.fetchval(
        "WITH old AS (SELECT status FROM deliveries WHERE delivery_id = $1 AND federation_id = $2"
        " AND ($3::text IS NULL OR organisation_id = $3) AND status IN ('dead', 'sent') FOR UPDATE)"
        " UPDATE deliveries d SET status = 'pending', attempts = 0, next_attempt_at = now(), updated_at = now(),"
        " last_error = NULL FROM old WHERE d.delivery_id = $1 RETURNING old.status",
        delivery_id,
        federation_id,
        organisation_id,
    )
    if previous is not None:
        await conn.execute("UPDATE dead_letters SET resent_at = now() WHERE delivery_id = $1", delivery_id)
    return previous


async def resend_dead_of_subscription(conn: Conn, subscription_id: uuid.UUID, since: datetime | None) -> int:
    ids = await conn.fetch(
        "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = now(), updated_at = now(),"
        " last_error = NULL WHERE subscription_id = $1 AND status = 'dead'"
        " AND ($2::timestamptz IS NULL OR created_at >= $2) RETURNING delivery_id",
        subscription_id,
        since,
    )
    await conn.execute(
        "UPDATE dead_letters SET resent_at = now() WHERE delivery_id = any($1::uuid[])", [r[0] for r in ids]
    )
    return len(ids)


async def list_dead_letters(
    conn: Conn, federation_id: str, organisation_id: str | None, limit: int, before: datetime | None
) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT delivery_id, channel, event_type, recipient, attempts, reason, dead_at, resent_at FROM dead_letters"
        " WHERE federation_id = $1 AND ($2::text IS NULL OR organisation_id = $2)"
        " AND ($4::timestamptz IS NULL OR dead_at < $4) ORDER BY dead_at DESC LIMIT $3",
        federation_id,
        organisation_id,
        limit,
        before,
    )


# Digests ---------------------------------------------------------------------------------


async def due_digests(conn: Conn, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT federation_id, recipient FROM deliveries WHERE status = 'held' AND channel = 'email'"
        " GROUP BY federation_id, recipient HAVING min(next_attempt_at) <= now() LIMIT $1",
        limit,
    )


async def claim_held(conn: Conn, federation_id: str, recipient: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT delivery_id, subject, action_url, language, person_ref, traceparent FROM deliveries"
        " WHERE status = 'held' AND channel = 'email' AND federation_id = $1 AND recipient = $2"
        " ORDER BY created_at, delivery_id FOR UPDATE SKIP LOCKED",
        federation_id,
        recipient,
    )


async def mark_digested(conn: Conn, ids: Sequence[uuid.UUID], digest_id: uuid.UUID) -> None:
    await conn.execute(
        "UPDATE deliveries SET status = 'digested', digest_id = $2, updated_at = now(), sent_at = now()"
        " WHERE delivery_id = any($1::uuid[])",
        list(ids),
        digest_id,
    )


# Fan-out of event-wide messages ----------------------------------------------------------


async def create_fanout(
    conn: Conn,
    *,
    event_id: str,
    event_type: str,
    rule_key: str,
    federation_id: str,
    organisation_id: str | None,
    audience: str,
    target: str,
    statuses: Sequence[str],
    data: dict[str, Any],
    traceparent: str | None,
) -> None:
    await conn.execute(
        "INSERT INTO fanouts (fanout_id, event_id, event_type, rule_key, federation_id, organisation_id,"
        " audience, target, statuses, data, traceparent) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        " ON CONFLICT (event_id, rule_key) DO NOTHING",
        uuid.uuid4(),
        event_id,
        event_type,
        rule_key,
        federation_id,
        organisation_id,
        audience,
        target,
        list(statuses),
        json.dumps(data, default=str),
        traceparent,
    )


async def claim_fanout(conn: Conn) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM fanouts WHERE done_at IS NULL AND not_before <= now() ORDER BY not_before"
        " LIMIT 1 FOR UPDATE SKIP LOCKED"
    )


async def postpone_fanout(conn: Conn, fanout_id: uuid.UUID, seconds: float, give_up: bool) -> None:
    await conn.execute(
        "UPDATE fanouts SET tries = tries + 1, not_before = now() + make_interval(secs => $2),"
        " done_at = CASE WHEN $3 THEN now() END WHERE fanout_id = $1",
        fanout_id,
        seconds,
        give_up,
    )


async def attendees_page(
    conn: Conn, event_id: str, statuses: Sequence[str], after: str, limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT a.booking_id, a.donor_id, a.name, a.email, a.language, p.phone, p.email_ok, p.sms_ok, p.time_zone,"
        " p.status AS donor_status FROM attendees a LEFT JOIN people p USING (donor_id)"
        " WHERE a.event_id = $1 AND a.status = any($2::text[]) AND a.booking_id > $3 ORDER BY a.booking_id LIMIT $4",
        event_id,
        list(statuses),
        after,
        limit,
    )


async def advance_fanout(conn: Conn, fanout_id: uuid.UUID, after: str, staged: int, done: bool) -> None:
    await conn.execute(
        "UPDATE fanouts SET after_booking = $2, expanded = expanded + $3,"
        " done_at = CASE WHEN $4 THEN now() ELSE NULL END WHERE fanout_id = $1",
        fanout_id,
        after,
        staged,
        done,
    )


# Read models -----------------------------------------------------------------------------


async def upsert_person(conn: Conn, row: dict[str, Any]) -> bool:
    """Keep the newest version of a donor; an older one arriving late changes nothing."""
    result: str = await conn.execute(
        "INSERT INTO people (donor_id, federation_id, organisation_id, name, email, phone, email_ok, sms_ok, language,"
        " time_zone, purposes, status, version, updated_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, now())"
        " ON CONFLICT (donor_id) DO UPDATE SET name = excluded.name, email = excluded.email, phone = excluded.phone,"
        " email_ok = excluded.email_ok, sms_ok = excluded.sms_ok, language = excluded.language,"
        " time_zone = excluded.time_zone, purposes = excluded.purposes, status = excluded.status,"
        " version = excluded.version, updated_at = now() WHERE people.version < excluded.version",
        row["donor_id"],
        row["federation_id"],
        row["organisation_id"],
        row["name"],
        row["email"],
        row["phone"],
        row["email_ok"],
        row["sms_ok"],
        row["language"],
        row["time_zone"],
        row["purposes"],
        row["status"],
        row["version"],
    )
    return result.endswith(" 1")


async def get_person(conn: Conn, donor_id: str, *, to_message: bool = False) -> asyncpg.Record | None:
    """The donor's copy; `to_message` holds it FOR SHARE until the message staged from it commits."""
    lock = " FOR SHARE" if to_message else ""
    return await conn.fetchrow(f"SELECT * FROM people WHERE donor_id = $1{lock}", donor_id)


async def booking_erased(conn: Conn, facts: Mapping[str, Any]) -> bool:
    """Whether the booking these facts are about belongs to a person erased here (held FOR SHARE,
    as get_person's `to_message`)."""
    email = await conn.fetchval(
        "SELECT email FROM attendees WHERE booking_id = $1 FOR SHARE", str(facts.get("booking_id", ""))
    )
    return email is not None and str(email).startswith("erased+") and str(email).endswith("@invalid")


async def withdraw_person(conn: Conn, donor_id: str) -> None:
    await conn.execute("UPDATE people SET status = 'withdrawn', updated_at = now() WHERE donor_id = $1", donor_id)
    await conn.execute(
        "UPDATE deliveries SET status = 'suppressed', updated_at = now(), last_error = 'donor withdrew'"
        " WHERE person_ref = $1 AND status IN ('pending', 'held')",
        donor_id,
    )


async def erase_person(conn: Conn, donor_id: str) -> None:
    """Remove everything here that names the person; counts and statuses stay."""
    await withdraw_person(conn, donor_id)
    await conn.execute(
        "UPDATE dead_letters SET recipient = 'erased' WHERE delivery_id IN"
        " (SELECT delivery_id FROM deliveries WHERE person_ref = $1)",
        donor_id,
    )
    await conn.execute(
        "UPDATE deliveries SET recipient = 'erased', subject = '', body_text = '', body_html = NULL,"
        " unsubscribe_url = NULL, updated_at = now() WHERE person_ref = $1",
        donor_id,
    )
    await conn.execute(
        "UPDATE attendees SET name = 'erased', email = 'erased+' || booking_id || '@invalid', status = 'cancelled'"
        " WHERE donor_id = $1",
        donor_id,
    )
    await conn.execute(
        "DELETE FROM people WHERE donor_id = $1",
        donor_id,
    )


async def upsert_attendee(conn: Conn, row: dict[str, Any]) -> None:
    await conn.execute(
        "INSERT INTO attendees (booking_id, event_id, federation_id, organisation_id, donor_id, name, email, language,"
        " status) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (booking_id) DO UPDATE SET"
        " status = excluded.status, name = excluded.name, email = excluded.email, language = excluded.language,"
        # An erased attendee (erasure.py) stays erased, whatever booking fact comes late.
        " updated_at = now() WHERE attendees.email NOT LIKE 'erased+%@invalid'",
        row["booking_id"],
        row["event_id"],
        row["federation_id"],
        row["organisation_id"],
        row["donor_id"],
        row["name"],
        row["email"],
        row["language"],
        row["status"],
    )


async def merge_event(
    conn: Conn, event_id: str, federation_id: str, organisation_id: str | None, details: dict[str, Any]
) -> None:
    await conn.execute(
        "INSERT INTO known_events (event_id, federation_id, organisation_id, details) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (event_id) DO UPDATE SET details = known_events.details || excluded.details, updated_at = now()",
        event_id,
        federation_id,
        organisation_id,
        json.dumps(details, default=str),
    )


async def get_event(conn: Conn, event_id: str) -> dict[str, Any] | None:
    raw = await conn.fetchval("SELECT details FROM known_events WHERE event_id = $1", event_id)
    return None if raw is None else dict(json.loads(raw))


# Preferences, overrides, configuration, subscriptions -------------------------------------


async def suppressed(conn: Conn, federation_id: str, hashes: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of (channel, address hash) are unsubscribed in this federation."""
    if not hashes:
        return set()
    rows = await conn.fetch(
        "SELECT channel, address_hash FROM suppressions WHERE federation_id = $1"
        " AND (channel, address_hash) IN (SELECT * FROM unnest($2::text[], $3::text[]))",
        federation_id,
        [h[0] for h in hashes],
        [h[1] for h in hashes],
    )
    return {(r["channel"], r["address_hash"]) for r in rows}


async def suppress(conn: Conn, federation_id: str, channel: str, address_hash: str, recipient: str, reason: str) -> int:
    """Record an unsubscribe and stop what is still waiting for that address."""
    await conn.execute(
        "INSERT INTO suppressions (federation_id, address_hash, channel, reason) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT DO NOTHING",
        federation_id,
        address_hash,
        channel,
        reason,
    )
    result: str = await conn.execute(
        "UPDATE deliveries SET status = 'suppressed', last_error = 'unsubscribed', updated_at = now()"
        " WHERE federation_id = $1 AND channel = $2 AND lower(recipient) = lower($3) AND status IN ('pending', 'held')",
        federation_id,
        channel,
        recipient,
    )
    return int(result.rsplit(" ", 1)[-1])


async def overrides(conn: Conn, federation_id: str, organisation_id: str | None, template: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT organisation_id, language, part, body FROM template_overrides"
        " WHERE federation_id = $1 AND template = $3 AND (organisation_id = '' OR organisation_id = $2)",
        federation_id,
        organisation_id or "",
        template,
    )


async def put_override(
    conn: Conn, federation_id: str, organisation_id: str | None, template: str, language: str, part: str, body: str
) -> None:
    await conn.execute(
        "INSERT INTO template_overrides (federation_id, organisation_id, template, language, part, body)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (federation_id, organisation_id, template, language, part)"
        " DO UPDATE SET body = excluded.body, updated_at = now()",
        federation_id,
        organisation_id or "",
        template,
        language,
        part,
        body,
    )


async def delete_override(
    conn: Conn, federation_id: str, organisation_id: str | None, template: str, language: str, part: str
) -> bool:
    result: str = await conn.execute(
        "DELETE FROM template_overrides WHERE federation_id = $1 AND organisation_id = $2 AND template = $3"
        " AND language = $4 AND part = $5",
        federation_id,
        organisation_id or "",
        template,
        language,
        part,
    )
    return result == "DELETE 1"


async def list_overrides(conn: Conn, federation_id: str, organisation_id: str | None) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT organisation_id, template, language, part, body, updated_at FROM template_overrides"
        " WHERE federation_id = $1 AND ($2::text IS NULL OR organisation_id IN ('', $2))"
        " ORDER BY template, language, part, organisation_id",
        federation_id,
        organisation_id,
    )


CONFIG_FIELDS = (
    "smtp_host",
    "smtp_port",
    "mail_from",
    "sms_base_url",
    "sms_account_sid",
    "sms_auth_token",
    "sms_from",
    "sms_max_segments",
    "quiet_hours",
    "max_attempts",
    "retry_base_seconds",
    "digest_seconds",
)


async def channel_config(conn: Conn, federation_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM channel_config WHERE federation_id = $1", federation_id)


async def put_channel_config(conn: Conn, federation_id: str, values: dict[str, Any]) -> None:
    columns = ", ".join(CONFIG_FIELDS)
    params = ", ".join(f"${i + 2}" for i in range(len(CONFIG_FIELDS)))
    updates = ", ".join(f"{c} = excluded.{c}" for c in CONFIG_FIELDS)
    await conn.execute(
        f"INSERT INTO channel_config (federation_id, {columns}) VALUES ($1, {params})"
        f" ON CONFLICT (federation_id) DO UPDATE SET {updates}, updated_at = now()",
        federation_id,
        *(values.get(c) for c in CONFIG_FIELDS),
    )


async def subscriptions_for(conn: Conn, federation_id: str, organisation_id: str | None) -> list[asyncpg.Record]:
    """Active endpoints that may see this tenant's events: the organisation's and the federation's."""
    return await conn.fetch(
        "SELECT subscription_id, organisation_id, event_types FROM webhook_subscriptions"
        " WHERE federation_id = $1 AND status = 'active' AND (organisation_id IS NULL OR organisation_id = $2)",
        federation_id,
        organisation_id,
    )


async def create_subscription(
    conn: Conn,
    *,
    subscription_id: uuid.UUID,
    federation_id: str,
    organisation_id: str | None,
    url: str,
    secret: str,
    event_types: Sequence[str],
    description: str,
    disable_after: int,
) -> asyncpg.Record:
    row = await conn.fetchrow(
        "INSERT INTO webhook_subscriptions (subscription_id, federation_id, organisation_id, url, secret, event_types,"
        " description, disable_after) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *",
        subscription_id,
        federation_id,
        organisation_id,
        url,
        secret,
        list(event_types),
        description,
        disable_after,
    )
    assert row is not None
    return row


async def list_subscriptions(conn: Conn, federation_id: str, organisation_id: str | None) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM webhook_subscriptions WHERE federation_id = $1 AND ($2::text IS NULL OR organisation_id = $2)"
        " ORDER BY created_at",
        federation_id,
        organisation_id,
    )


async def get_subscription(
    conn: Conn, federation_id: str, organisation_id: str | None, subscription_id: uuid.UUID
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM webhook_subscriptions WHERE subscription_id = $1 AND federation_id = $2"
        " AND ($3::text IS NULL OR organisation_id = $3)",
        subscription_id,
        federation_id,
        organisation_id,
    )


async def set_subscription_status(conn: Conn, subscription_id: uuid.UUID, status: str, reason: str | None) -> None:
    await conn.execute(
        "UPDATE webhook_subscriptions SET status = $2, disabled_reason = $3,"
        " disabled_at = CASE WHEN $2 = 'disabled' THEN now() END,"
        " failure_streak = CASE WHEN $2 = 'active' THEN 0 ELSE failure_streak END WHERE subscription_id = $1",
        subscription_id,
        status,
        reason,
    )


async def delete_subscription(conn: Conn, subscription_id: uuid.UUID) -> None:
    await conn.execute("DELETE FROM webhook_subscriptions WHERE subscription_id = $1", subscription_id)


async def webhook_succeeded(conn: Conn, subscription_ids: Sequence[uuid.UUID]) -> None:
    if subscription_ids:
        await conn.execute(
            "UPDATE webhook_subscriptions SET failure_streak = 0, last_success_at = now()"
            " WHERE subscription_id = any($1::uuid[])",
            list(set(subscription_ids)),
        )


async def webhook_gave_up(conn: Conn, subscription_id: uuid.UUID, reason: str, disable_now: bool) -> bool:
    """Count a dead delivery against the endpoint; True when that disabled it."""
    disabled: bool | None = await conn.fetchval(
        "UPDATE webhook_subscriptions SET failure_streak = failure_streak + 1,"
        " status = CASE WHEN $3 OR failure_streak + 1 >= disable_after THEN 'disabled' ELSE status END,"
        " disabled_at = CASE WHEN status = 'active' AND ($3 OR failure_streak + 1 >= disable_after) THEN now()"
        " ELSE disabled_at END,"
        " disabled_reason = CASE WHEN status = 'active' AND ($3 OR failure_streak + 1 >= disable_after) THEN $2"
        " ELSE disabled_reason END WHERE subscription_id = $1 RETURNING status = 'disabled'",
        subscription_id,
        reason[:500],
        disable_now,
    )
    return bool(disabled)
