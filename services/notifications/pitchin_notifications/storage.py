"""Every SQL statement of the notifications service."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from pitchin_core.db import Conn


async def stage_delivery(
    conn: Conn,
    *,
    idempotency_key: str,
    federation_id: str,
    organisation_id: str | None,
    event_id: str,
    event_type: str,
    channel: str,
    recipient: str,
    subject: str,
    body_text: str,
    body_html: str | None,
    traceparent: str | None,
) -> bool:
    status: str = await conn.execute(
        "INSERT INTO deliveries (delivery_id, idempotency_key, federation_id, organisation_id, event_id, event_type,"
        " channel, recipient, subject, body_text, body_html, traceparent)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (idempotency_key) DO NOTHING",
        uuid.uuid4(),
        idempotency_key,
        federation_id,
        organisation_id,
        event_id,
        event_type,
        channel,
        recipient,
        subject,
        body_text,
        body_html,
        traceparent,
    )
    return status == "INSERT 0 1"


async def claim_due(conn: Conn, channel: str, limit: int) -> list[asyncpg.Record]:
    """Lock due deliveries for this transaction; other senders skip them."""
    return await conn.fetch(
        "SELECT delivery_id, idempotency_key, recipient, subject, body_text, body_html, attempts, traceparent"
        " FROM deliveries WHERE status = 'pending' AND channel = $1 AND next_attempt_at <= now()"
        " ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        channel,
        limit,
    )


async def mark_sent(conn: Conn, delivery_id: uuid.UUID, attempts: int) -> None:
    await conn.execute(
        "UPDATE deliveries SET status = 'sent', sent_at = now(), attempts = $2, last_error = NULL"
        " WHERE delivery_id = $1",
        delivery_id,
        attempts,
    )


async def mark_failed(conn: Conn, delivery_id: uuid.UUID, attempts: int, error: str, retry_at: datetime | None) -> None:
    await conn.execute(
        "UPDATE deliveries SET attempts = $2, last_error = $3,"
        " status = CASE WHEN $4::timestamptz IS NULL THEN 'dead' ELSE 'pending' END,"
        " next_attempt_at = coalesce($4::timestamptz, next_attempt_at) WHERE delivery_id = $1",
        delivery_id,
        attempts,
        error[:2000],
        retry_at,
    )


async def next_due_at(conn: Conn | asyncpg.Pool) -> datetime | None:
    value: datetime | None = await conn.fetchval("SELECT min(next_attempt_at) FROM deliveries WHERE status = 'pending'")
    return value


async def list_deliveries(
    pool: asyncpg.Pool, federation_id: str, organisation_id: str | None, limit: int, before: datetime | None
) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT delivery_id, event_id, event_type, channel, recipient, subject, status, attempts, last_error,"
        " created_at, sent_at FROM deliveries WHERE federation_id = $1"
        " AND ($2::text IS NULL OR organisation_id = $2) AND ($4::timestamptz IS NULL OR created_at < $4)"
        " ORDER BY created_at DESC LIMIT $3",
        federation_id,
        organisation_id,
        limit,
        before,
    )
