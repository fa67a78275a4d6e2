"""Every SQL statement of the matching service."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from pitchin_core.db import Conn
from pitchin_matching.domain.donors import DonorProfile


async def upsert_donor(conn: Conn, donor: DonorProfile, registered_at: datetime) -> None:
    await conn.execute(
        "INSERT INTO donors (donor_id, federation_id, organisation_id, status, time_zone, hours_per_week, remote,"
        " languages, causes, registered_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        " ON CONFLICT (donor_id) DO UPDATE SET status = EXCLUDED.status, time_zone = EXCLUDED.time_zone,"
        " hours_per_week = EXCLUDED.hours_per_week, remote = EXCLUDED.remote, languages = EXCLUDED.languages,"
        " causes = EXCLUDED.causes",
        donor.donor_id,
        donor.federation_id,
        donor.organisation_id,
        donor.status,
        donor.time_zone,
        donor.hours_per_week,
        donor.remote,
        list(donor.languages),
        list(donor.causes),
        registered_at,
    )
    await conn.execute("DELETE FROM donor_skills WHERE donor_id = $1", donor.donor_id)
    await conn.executemany(
        "INSERT INTO donor_skills (donor_id, skill, level) VALUES ($1, $2, $3)",
        [(donor.donor_id, skill, level) for skill, level in donor.skills.items()],
    )


async def donor_with_skills(conn: Conn | asyncpg.Pool, federation_id: str, donor_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT d.donor_id, d.status, d.time_zone, d.hours_per_week, d.remote,"
        " coalesce(jsonb_object_agg(s.skill, s.level) FILTER (WHERE s.skill IS NOT NULL), '{}')::text AS skills"
        " FROM donors d LEFT JOIN donor_skills s USING (donor_id)"
        " WHERE d.federation_id = $1 AND d.donor_id = $2 GROUP BY d.donor_id",
        federation_id,
        donor_id,
    )
