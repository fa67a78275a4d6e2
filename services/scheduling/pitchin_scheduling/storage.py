"""Every SQL statement of the scheduling service."""

from __future__ import annotations

import asyncpg

from pitchin_core.contracts.scheduling import EventCreatedV1
from pitchin_core.db import Conn
from pitchin_scheduling.domain.events import EventDraft


async def insert_event(conn: Conn, event: EventCreatedV1, draft: EventDraft) -> None:
    await conn.execute(
        "INSERT INTO events (event_id, federation_id, organisation_id, kind, title, description, starts_at, ends_at,"
        " time_zone, venue_name, venue_address, online_url, hashtag, capacity, free_places, organiser_email)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        event.event_id,
        event.federation_id,
        event.organisation_id,
        event.kind.value,
        event.title,
        draft.description,
        event.starts_at,
        event.ends_at,
        event.time_zone,
        event.venue_name,
        draft.venue_address,
        event.online_url,
        draft.hashtag,
        event.capacity,
        event.free_places,
        str(event.organiser_email),
    )


async def get_event(pool: asyncpg.Pool, federation_id: str, event_id: str) -> asyncpg.Record | None:
    return await pool.fetchrow(
        "SELECT * FROM events WHERE federation_id = $1 AND event_id = $2", federation_id, event_id
    )


async def get_public_event(pool: asyncpg.Pool, event_id: str) -> asyncpg.Record | None:
    return await pool.fetchrow("SELECT * FROM events WHERE event_id = $1 AND status = 'published'", event_id)
