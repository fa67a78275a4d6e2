"""Every SQL statement of the signups service."""

from __future__ import annotations

import asyncpg

from pitchin_core.contracts.donors import DonorRegisteredV1
from pitchin_core.contracts.scheduling import EventCreatedV1
from pitchin_core.db import Conn


async def insert_donor(conn: Conn, donor: DonorRegisteredV1) -> bool:
    """False when the federation already has a donor with this email."""
    profile = donor.model_dump_json(
        include={
            "skills",
            "availability",
            "place",
            "languages",
            "causes",
            "union_member",
            "contact",
            "consent",
        }
    )
    status: str = await conn.execute(
        "INSERT INTO donors (donor_id, federation_id, organisation_id, name, email, phone, profile, status,"
        " registered_at) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9) ON CONFLICT DO NOTHING",
        donor.donor_id,
        donor.federation_id,
        donor.organisation_id,
        donor.name,
        donor.email,
        donor.phone,
        profile,
        donor.status.value,
        donor.registered_at,
    )
    return status == "INSERT 0 1"


async def get_donor(conn: Conn | asyncpg.Pool, federation_id: str, donor_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT donor_id, federation_id, organisation_id, name, email, phone, profile::text AS profile, status,"
        " registered_at FROM donors WHERE federation_id = $1 AND donor_id = $2",
        federation_id,
        donor_id,
    )


async def upsert_known_event(conn: Conn, event: EventCreatedV1) -> None:
    await conn.execute(
        "INSERT INTO known_events (event_id, federation_id, organisation_id, title, starts_at, capacity)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO UPDATE SET title = EXCLUDED.title,"
        " starts_at = EXCLUDED.starts_at, capacity = EXCLUDED.capacity",
        event.event_id,
        event.federation_id,
        event.organisation_id,
        event.title,
        event.starts_at,
        event.capacity,
    )
