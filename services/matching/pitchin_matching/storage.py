"""Every SQL statement of the matching service."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from datetime import date, datetime
from typing import Any

import asyncpg

from pitchin_core.db import Conn
from pitchin_matching.domain.budget import RECENT_ASKS
from pitchin_matching.domain.donors import DonorProfile
from pitchin_matching.domain.needs import OPEN_STATUSES, NeedState

OPEN = list(OPEN_STATUSES)

# --- locks -------------------------------------------------------------------------------


async def lock_federation(conn: Conn, federation_id: str) -> None:
    """Serialise offer-making within a federation: the cap on each donor's load is then exact."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"pitchin-matching-{federation_id}")


# --- donors ------------------------------------------------------------------------------


async def donor_version(conn: Conn, donor_id: str) -> int | None:
    version: int | None = await conn.fetchval("SELECT version FROM donors WHERE donor_id = $1 FOR UPDATE", donor_id)
    return version


async def upsert_donor(conn: Conn, donor: DonorProfile, registered_at: datetime) -> datetime:
    """Store the donor's profile; returns the registration time kept (the first one seen)."""
    kept: datetime = await conn.fetchval(
        "INSERT INTO donors (donor_id, federation_id, organisation_id, status, version, time_zone, hours_per_week,"
        " remote, latitude, longitude, country, languages, causes, windows_utc, registered_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
        " ON CONFLICT (donor_id) DO UPDATE SET organisation_id = EXCLUDED.organisation_id, status = EXCLUDED.status,"
        " version = EXCLUDED.version, time_zone = EXCLUDED.time_zone, hours_per_week = EXCLUDED.hours_per_week,"
        " remote = EXCLUDED.remote, latitude = EXCLUDED.latitude, longitude = EXCLUDED.longitude,"
        " country = EXCLUDED.country, languages = EXCLUDED.languages, causes = EXCLUDED.causes,"
        " windows_utc = EXCLUDED.windows_utc, learned_at = now(), changed_by = pg_current_xact_id()"
        " RETURNING registered_at",
        donor.donor_id,
        donor.federation_id,
        donor.organisation_id,
        donor.status,
        donor.version,
        donor.time_zone,
        donor.hours_per_week,
        donor.remote,
        donor.latitude,
        donor.longitude,
        donor.country,
        list(donor.languages),
        list(donor.causes),
        [minute for interval in donor.windows_utc for minute in interval],
        registered_at,
    )
    await conn.execute("DELETE FROM donor_skills WHERE donor_id = $1", donor.donor_id)
    await conn.executemany(
        "INSERT INTO donor_skills (donor_id, skill, level) VALUES ($1, $2, $3)",
        [(donor.donor_id, skill, level) for skill, level in donor.skills.items()],
    )
    return kept


async def withdraw_donor(
    conn: Conn, donor_id: str, federation_id: str, version: int, erase: bool, at: datetime
) -> None:
    """A tombstone that no late update can revive; with `erase`, nothing about the person is kept."""
    await conn.execute(
        "INSERT INTO donors (donor_id, federation_id, status, version, time_zone, hours_per_week, remote,"
        " languages, causes, registered_at) VALUES ($1, $2, 'withdrawn', $3, 'UTC', 0, false, '{}', '{}', $4)"
        " ON CONFLICT (donor_id) DO UPDATE SET status = 'withdrawn', version = EXCLUDED.version, learned_at = now(),"
        " changed_by = pg_current_xact_id()",
        donor_id,
        federation_id,
        version,
        at,
    )
    if erase:
        await conn.execute(
            "UPDATE donors SET languages = '{}', causes = '{}', windows_utc = '{}', latitude = NULL,"
            " longitude = NULL, country = NULL, hours_per_week = 0, changed_by = pg_current_xact_id()"
            " WHERE donor_id = $1",
            donor_id,
        )
        await conn.execute("DELETE FROM donor_skills WHERE donor_id = $1", donor_id)


async def donor_with_skills(conn: Conn, federation_id: str, donor_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT d.donor_id, d.status, d.time_zone, d.hours_per_week, d.remote,"
        " coalesce(jsonb_object_agg(s.skill, s.level) FILTER (WHERE s.skill IS NOT NULL), '{}')::text AS skills"
        " FROM donors d LEFT JOIN donor_skills s USING (donor_id)"
        " WHERE d.federation_id = $1 AND d.donor_id = $2 GROUP BY d.donor_id",
        federation_id,
        donor_id,
    )


async def donor_federation(conn: Conn, donor_id: str) -> str | None:
    federation_id: str | None = await conn.fetchval("SELECT federation_id FROM donors WHERE donor_id = $1", donor_id)
    return federation_id


# What the index holds per donor: the profile, and the fairness figures counted from the donor's
# offers and assignments (`o` and `a`, one row per donor, joined by the queries below).
_INDEX_ROW = (
    "d.donor_id, d.federation_id, d.status, d.hours_per_week, d.remote, d.latitude, d.longitude,"
    " d.country, d.languages, d.causes, d.windows_utc, d.registered_at,"
    " coalesce((SELECT array_agg(s.skill || '=' || s.level) FROM donor_skills s WHERE s.donor_id = d.donor_id),"
    " '{}') AS skills,"
    " coalesce(o.pending, 0) + coalesce(a.active, 0) AS load, o.last_asked,"
    " coalesce(o.declined, 0) AS declined, coalesce(a.confirmed, 0) AS completed,"
    " coalesce(o.pending, 0) AS pending, coalesce(o.recent_asks, '{}') AS recent_asks"
)
_OFFER_FIGURES = (
    "SELECT donor_id, count(*) FILTER (WHERE status = 'pending') AS pending,"
    " count(*) FILTER (WHERE status IN ('declined', 'expired')) AS declined, max(made_at) AS last_asked,"
    f" (array_agg(made_at ORDER BY made_at DESC))[1:{RECENT_ASKS}] AS recent_asks FROM offers"
)
_ASSIGNMENT_FIGURES = (
    "SELECT donor_id, count(*) FILTER (WHERE status IN ('accepted', 'confirmed')) AS active,"
    " count(*) FILTER (WHERE status IN ('confirmed', 'completed')) AS confirmed FROM assignments"
)
# The oldest transaction still running when the statement's snapshot was taken: every change this
# snapshot cannot see was written by a transaction with this id or a later one (see follow.py).
_HORIZON = "pg_snapshot_xmin(pg_current_snapshot())::text"


async def donors_for_index(conn: Conn, batch: int = 20_000) -> AsyncIterator[list[asyncpg.Record]]:
    """Every donor with skills and what the fairness rules need, in batches (a cursor: 1M rows fit).

    Call it inside a transaction: a cursor lives in one.
    """
    query = (
        f"SELECT {_INDEX_ROW} FROM donors d"
        f" LEFT JOIN ({_OFFER_FIGURES} GROUP BY donor_id) o USING (donor_id)"
        f" LEFT JOIN ({_ASSIGNMENT_FIGURES} GROUP BY donor_id) a USING (donor_id)"
    )
    chunk: list[asyncpg.Record] = []
    async for row in conn.cursor(query, prefetch=batch):
        chunk.append(row)
        if len(chunk) >= batch:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def index_horizon(conn: Conn) -> int:
    """The horizon of this statement's snapshot; a later statement's snapshot sees at least as much."""
    return int(await conn.fetchval(f"SELECT {_HORIZON}"))


# Donors whose profile, offers or assignments a transaction numbered $1 or later wrote, but
# none the running transaction wrote itself (its id is at least $1 while it runs, so its rows
# are among these; outside a writing transaction there is no such id and nobody is left out).
_CHANGED = (
    "SELECT donor_id FROM ("
    " SELECT donor_id, changed_by FROM donors WHERE changed_by >= $1::text::xid8"
    " UNION ALL SELECT donor_id, changed_by FROM offers WHERE changed_by >= $1::text::xid8"
    " UNION ALL SELECT donor_id, changed_by FROM assignments WHERE changed_by >= $1::text::xid8"
    ") AS changes GROUP BY donor_id"
    " HAVING count(*) FILTER (WHERE changed_by = pg_current_xact_id_if_assigned()) = 0"
)
_DONORS_CHANGED_SINCE = (
    f"WITH changed AS MATERIALIZED ({_CHANGED})"
    f" SELECT {_HORIZON} AS horizon, pg_current_xact_id_if_assigned() IS NOT NULL AS writing, r.*"
    " FROM (SELECT) AS one LEFT JOIN ("
    f"  SELECT {_INDEX_ROW} FROM donors d JOIN changed USING (donor_id)"
    f"  LEFT JOIN ({_OFFER_FIGURES} WHERE donor_id IN (SELECT donor_id FROM changed) GROUP BY donor_id) o"
    "   USING (donor_id)"
    f"  LEFT JOIN ({_ASSIGNMENT_FIGURES} WHERE donor_id IN (SELECT donor_id FROM changed) GROUP BY donor_id) a"
    "   USING (donor_id)"
    " ) AS r ON true"
)


async def donors_changed_since(conn: Conn, since: int) -> tuple[int, bool, list[asyncpg.Record]]:
    """The index rows of donors whose profile, offers or assignments a transaction numbered
    `since` or later changed, read in one snapshot; with that snapshot's horizon, and whether
    this statement ran inside a transaction that wrote (whose own changes it leaves out).

    Inside a writing transaction, donors it changed itself are skipped: the statement sees
    those changes before they commit, and they may yet roll back.
    """
    rows = await conn.fetch(_DONORS_CHANGED_SINCE, str(since))
    first = rows[0]
    return int(first["horizon"]), bool(first["writing"]), [r for r in rows if r["donor_id"] is not None]


async def donor_loads(conn: Conn, donor_ids: Sequence[str]) -> dict[str, int]:
    """Open offers + active assignments per donor, from the tables (the index may lag a commit)."""
    rows = await conn.fetch(
        "SELECT donor_id, count(*) AS n FROM ("
        " SELECT donor_id FROM offers WHERE donor_id = ANY($1::text[]) AND status = 'pending'"
        " UNION ALL SELECT donor_id FROM assignments WHERE donor_id = ANY($1::text[])"
        "  AND status IN ('accepted', 'confirmed')"
        ") t GROUP BY donor_id",
        list(donor_ids),
    )
    return {r["donor_id"]: r["n"] for r in rows}


async def donor_status(conn: Conn, donor_ids: Sequence[str]) -> dict[str, str]:
    rows = await conn.fetch("SELECT donor_id, status FROM donors WHERE donor_id = ANY($1::text[])", list(donor_ids))
    return {r["donor_id"]: r["status"] for r in rows}


# --- needs -------------------------------------------------------------------------------


async def need_version(conn: Conn, need_id: str) -> int | None:
    version: int | None = await conn.fetchval("SELECT version FROM needs WHERE need_id = $1 FOR UPDATE", need_id)
    return version


async def upsert_need(conn: Conn, need: NeedState) -> None:
    await conn.execute(
        "INSERT INTO needs (need_id, fight_id, federation_id, organisation_id, title, required_skills, nice_to_have,"
        " estimated_hours, deadline, urgency, remote, latitude, longitude, country, language, causes, donors_wanted,"
        " status, version) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,"
        " $17, $18, $19)"
        " ON CONFLICT (need_id) DO UPDATE SET fight_id = EXCLUDED.fight_id, organisation_id = EXCLUDED.organisation_id,"
        " title = EXCLUDED.title, required_skills = EXCLUDED.required_skills, nice_to_have = EXCLUDED.nice_to_have,"
        " estimated_hours = EXCLUDED.estimated_hours, deadline = EXCLUDED.deadline, urgency = EXCLUDED.urgency,"
        " remote = EXCLUDED.remote, latitude = EXCLUDED.latitude, longitude = EXCLUDED.longitude,"
        " country = EXCLUDED.country, language = EXCLUDED.language, causes = EXCLUDED.causes,"
        " donors_wanted = EXCLUDED.donors_wanted, status = EXCLUDED.status, version = EXCLUDED.version,"
        " retry_after = NULL, learned_at = now()",
        need.need_id,
        need.fight_id,
        need.federation_id,
        need.organisation_id,
        need.title,
        json.dumps([list(r) for r in need.required_skills]),
        list(need.nice_to_have),
        need.estimated_hours,
        need.deadline,
        need.urgency,
        need.remote,
        need.latitude,
        need.longitude,
        need.country,
        need.language,
        list(need.causes),
        need.donors_wanted,
        need.status,
        need.version,
    )


async def set_need_status(conn: Conn, need_id: str, status: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "UPDATE needs SET status = $2, learned_at = now() WHERE need_id = $1 RETURNING federation_id", need_id, status
    )


def need_from_row(row: asyncpg.Record) -> NeedState:
    return NeedState(
        need_id=row["need_id"],
        fight_id=row["fight_id"],
        federation_id=row["federation_id"],
        organisation_id=row["organisation_id"],
        title=row["title"],
        required_skills=tuple((str(s), int(level)) for s, level in json.loads(row["required_skills"])),
        nice_to_have=tuple(row["nice_to_have"]),
        estimated_hours=float(row["estimated_hours"]),
        deadline=row["deadline"],
        urgency=row["urgency"],
        remote=row["remote"],
        latitude=row["latitude"],
        longitude=row["longitude"],
        country=row["country"],
        language=row["language"],
        causes=tuple(row["causes"]),
        donors_wanted=row["donors_wanted"],
        status=row["status"],
        version=row["version"],
    )


async def get_need(conn: Conn, need_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM needs WHERE need_id = $1", need_id)


async def needs_waiting(
    conn: Conn,
    federation_id: str,
    now: datetime,
    fan_out: dict[str, float],
    limit: int,
    force: Sequence[str] = (),
    more_per_step: float = 0.0,
) -> list[asyncpg.Record]:
    """Open needs of a federation with fewer offers in flight than their urgency wants.

    Most urgent and nearest deadline first; needs that found nobody recently wait for
    `retry_after` unless named in `force`. Each escalation step adds `more_per_step` offers
    in flight per free place (`domain.escalation.widened`).
    """
    return await conn.fetch(
        "SELECT n.*, coalesce(a.active, 0) AS active_assignments, coalesce(o.pending, 0) AS pending_offers"
        " FROM needs n"
        " LEFT JOIN LATERAL (SELECT count(*) AS active FROM assignments"
        "  WHERE need_id = n.need_id AND status <> 'released') a ON true"
        " LEFT JOIN LATERAL (SELECT count(*) AS pending FROM offers"
        "  WHERE need_id = n.need_id AND status = 'pending') o ON true"
        " WHERE n.federation_id = $1 AND n.status = ANY($2::text[]) AND n.deadline > $3"
        "  AND (n.retry_after IS NULL OR n.retry_after <= $3 OR n.need_id = ANY($8::text[]))"
        "  AND coalesce(o.pending, 0) < ceil(greatest(n.donors_wanted - coalesce(a.active, 0), 0)"
        "   * (CASE n.urgency WHEN 'critical' THEN $4::float8 WHEN 'high' THEN $5::float8 ELSE $6::float8 END"
        "   + n.escalation_stage * $9::float8))"
        " ORDER BY CASE n.urgency WHEN 'critical' THEN 0 WHEN 'high' THEN 1 ELSE 2 END, n.deadline, n.need_id"
        " LIMIT $7",
        federation_id,
        OPEN,
        now,
        fan_out.get("critical", 3.0),
        fan_out.get("high", 2.0),
        fan_out.get("normal", 1.0),
        limit,
        list(force),
        more_per_step,
    )


async def postpone_needs(conn: Conn, need_ids: Sequence[str], until: datetime) -> None:
    await conn.execute("UPDATE needs SET retry_after = $2 WHERE need_id = ANY($1::text[])", list(need_ids), until)


async def retry_needs_of(conn: Conn, federation_id: str) -> None:
    """A donor joined or changed: needs that found nobody may find them now."""
    await conn.execute(
        "UPDATE needs SET retry_after = NULL WHERE federation_id = $1 AND retry_after IS NOT NULL", federation_id
    )


async def federations_with_waiting_needs(conn: Conn, now: datetime, limit: int = 100) -> list[str]:
    rows = await conn.fetch(
        "SELECT DISTINCT federation_id FROM needs WHERE status = ANY($1::text[]) AND deadline > $2"
        " AND (retry_after IS NULL OR retry_after <= $2) LIMIT $3",
        OPEN,
        now,
        limit,
    )
    return [r["federation_id"] for r in rows]


async def offered_donors(conn: Conn, need_ids: Sequence[str]) -> dict[str, set[str]]:
    """Everyone ever asked about each need: nobody is asked twice about the same need."""
    rows = await conn.fetch("SELECT need_id, donor_id FROM offers WHERE need_id = ANY($1::text[])", list(need_ids))
    asked: dict[str, set[str]] = {}
    for row in rows:
        asked.setdefault(row["need_id"], set()).add(row["donor_id"])
    return asked


# --- offers ------------------------------------------------------------------------------


async def insert_offer(
    conn: Conn,
    *,
    offer_id: str,
    need: NeedState,
    donor_id: str,
    score: float,
    explanation: list[dict[str, Any]],
    made_at: datetime,
    expires_at: datetime,
    newcomer: bool = False,
) -> bool:
    status: str = await conn.execute(
        "INSERT INTO offers (offer_id, need_id, fight_id, donor_id, federation_id, organisation_id, status, score,"
        " explanation, made_at, expires_at, newcomer)"
        " VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8::jsonb, $9, $10, $11)"
        " ON CONFLICT (need_id, donor_id) DO NOTHING",
        offer_id,
        need.need_id,
        need.fight_id,
        donor_id,
        need.federation_id,
        need.organisation_id,
        score,
        json.dumps(explanation),
        made_at,
        expires_at,
        newcomer,
    )
    return status == "INSERT 0 1"


async def get_offer(conn: Conn, offer_id: str, lock: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM offers WHERE offer_id = $1" + (" FOR UPDATE" if lock else ""), offer_id)


async def answer_offer(conn: Conn, offer_id: str, status: str, at: datetime, reason: str = "") -> None:
    await conn.execute(
        "UPDATE offers SET status = $2, answered_at = $3, reason = $4, changed_by = pg_current_xact_id()"
        " WHERE offer_id = $1",
        offer_id,
        status,
        at,
        reason,
    )


async def claim_due_offers(conn: Conn, federation_id: str, now: datetime, limit: int) -> list[asyncpg.Record]:
    """Pending offers past their expiry, locked; another replica's clock skips them."""
    return await conn.fetch(
        "SELECT * FROM offers WHERE federation_id = $1 AND status = 'pending' AND expires_at <= $2"
        " ORDER BY expires_at LIMIT $3 FOR UPDATE SKIP LOCKED",
        federation_id,
        now,
        limit,
    )


async def federations_with_due_offers(conn: Conn, now: datetime, limit: int = 100) -> list[str]:
    rows = await conn.fetch(
        "SELECT DISTINCT federation_id FROM offers WHERE status = 'pending' AND expires_at <= $1 LIMIT $2", now, limit
    )
    return [r["federation_id"] for r in rows]


async def pending_offers_of_need(conn: Conn, need_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM offers WHERE need_id = $1 AND status = 'pending' ORDER BY offer_id FOR UPDATE", need_id
    )


async def pending_offers_of_donor(conn: Conn, donor_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM offers WHERE donor_id = $1 AND status = 'pending' ORDER BY offer_id FOR UPDATE", donor_id
    )


async def offers_of_donor(conn: Conn, federation_id: str, donor_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT o.*, n.title AS need_title FROM offers o LEFT JOIN needs n USING (need_id)"
        " WHERE o.federation_id = $1 AND o.donor_id = $2 ORDER BY o.made_at DESC",
        federation_id,
        donor_id,
    )


async def offers_of_need(conn: Conn, need_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT o.*, a.status AS assignment_status FROM offers o LEFT JOIN assignments a"
        " ON a.assignment_id = o.offer_id WHERE o.need_id = $1 ORDER BY o.made_at, o.offer_id",
        need_id,
    )


# --- assignments -------------------------------------------------------------------------


async def insert_assignment(conn: Conn, offer: asyncpg.Record, at: datetime) -> None:
    await conn.execute(
        "INSERT INTO assignments (assignment_id, need_id, fight_id, donor_id, federation_id, organisation_id,"
        " status, accepted_at) VALUES ($1, $2, $3, $4, $5, $6, 'accepted', $7)",
        offer["offer_id"],
        offer["need_id"],
        offer["fight_id"],
        offer["donor_id"],
        offer["federation_id"],
        offer["organisation_id"],
        at,
    )


async def active_assignments(conn: Conn, need_id: str) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM assignments WHERE need_id = $1 AND status <> 'released'", need_id
    )
    return count


async def get_assignment(conn: Conn, assignment_id: str, lock: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM assignments WHERE assignment_id = $1" + (" FOR UPDATE" if lock else ""), assignment_id
    )


async def active_assignments_of_donor(conn: Conn, donor_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM assignments WHERE donor_id = $1 AND status IN ('accepted', 'confirmed')"
        " ORDER BY assignment_id FOR UPDATE",
        donor_id,
    )


async def confirm_assignment(conn: Conn, assignment_id: str, at: datetime) -> None:
    await conn.execute(
        "UPDATE assignments SET status = 'confirmed', confirmed_at = $2, changed_by = pg_current_xact_id()"
        " WHERE assignment_id = $1",
        assignment_id,
        at,
    )


async def complete_assignment(conn: Conn, assignment_id: str, at: datetime, hours_given: float, thanks: str) -> None:
    await conn.execute(
        "UPDATE assignments SET status = 'completed', completed_at = $2, hours_given = $3, thanks = $4,"
        " changed_by = pg_current_xact_id() WHERE assignment_id = $1",
        assignment_id,
        at,
        hours_given,
        thanks,
    )


async def donor_record(conn: Conn, federation_id: str, donor_id: str) -> list[asyncpg.Record]:
    """The donor's completed work in a federation, newest first: hours given and thanks received."""
    return await conn.fetch(
        "SELECT a.assignment_id, a.need_id, a.fight_id, a.organisation_id, a.completed_at,"
        " a.hours_given::float8 AS hours_given, a.thanks, coalesce(n.title, '') AS need_title"
        " FROM assignments a LEFT JOIN needs n USING (need_id)"
        " WHERE a.federation_id = $1 AND a.donor_id = $2 AND a.status = 'completed'"
        " ORDER BY a.completed_at DESC, a.assignment_id",
        federation_id,
        donor_id,
    )


async def hours_by_organisation(conn: Conn, federation_id: str) -> list[asyncpg.Record]:
    """Confirmed hours given and pieces of work done, per member organisation of a federation: work
    marked done counts its final figure, work in progress its confirmed logged hours (domain.hours)."""
    return await conn.fetch(
        "SELECT organisation_id, sum(hours)::float8 AS hours_given, count(*) FILTER (WHERE done) AS completed FROM ("
        " SELECT coalesce(organisation_id, '') AS organisation_id, hours_given AS hours, true AS done"
        " FROM assignments WHERE federation_id = $1 AND status = 'completed'"
        " UNION ALL SELECT coalesce(l.organisation_id, ''), l.hours_confirmed, false"
        " FROM hour_logs l JOIN assignments a USING (assignment_id)"
        " WHERE l.federation_id = $1 AND l.status = 'confirmed' AND a.status <> 'completed'"
        ") AS counted GROUP BY 1 ORDER BY 1",
        federation_id,
    )


async def release_assignment(conn: Conn, assignment_id: str, at: datetime, reason: str) -> None:
    await conn.execute(
        "UPDATE assignments SET status = 'released', released_at = $2, reason = $3, changed_by = pg_current_xact_id()"
        " WHERE assignment_id = $1",
        assignment_id,
        at,
        reason,
    )


# --- policies ----------------------------------------------------------------------------


async def get_policy(conn: Conn, federation_id: str) -> dict[str, Any] | None:
    raw: str | None = await conn.fetchval("SELECT policy::text FROM policies WHERE federation_id = $1", federation_id)
    return None if raw is None else dict(json.loads(raw))


async def put_policy(conn: Conn, federation_id: str, policy: dict[str, Any]) -> None:
    await conn.execute(
        "INSERT INTO policies (federation_id, policy) VALUES ($1, $2::jsonb)"
        " ON CONFLICT (federation_id) DO UPDATE SET policy = EXCLUDED.policy, updated_at = now()",
        federation_id,
        json.dumps(policy),
    )


# --- rebuild -----------------------------------------------------------------------------


async def reset_read_model(conn: Conn, consumer: str, event_types: Sequence[str]) -> None:
    """Forget donors and needs and the inbox entries of the events they were built from.

    Offers, assignments and policies are matching's own facts and stay.
    """
    # DELETE, not TRUNCATE: the runtime role has no TRUNCATE (it would ignore row-level security).
    await conn.execute("DELETE FROM donor_skills; DELETE FROM donors; DELETE FROM needs")
    await conn.execute(
        "DELETE FROM inbox WHERE consumer = $1 AND event_type = ANY($2::text[])", consumer, list(event_types)
    )


async def donor_reachable_by(conn: Conn, donor_id: str, federation_id: str, organisation_id: str) -> bool:
    """Whether a member organisation may see a donor: its own, or one it was matched with (an offer
    for one of its needs: the donor lent to it), in its federation."""
    found: bool | None = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM donors WHERE donor_id = $1 AND federation_id = $2 AND organisation_id = $3)"
        " OR EXISTS (SELECT 1 FROM offers WHERE donor_id = $1 AND federation_id = $2 AND organisation_id = $3)",
        donor_id,
        federation_id,
        organisation_id,
    )
    return bool(found)


# --- the ask budget and escalation (migration 005) ------------------------------------------


async def donor_asks(conn: Conn, donor_ids: Sequence[str], since: datetime) -> dict[str, tuple[int, int]]:
    """Per donor: offers waiting for their answer, and offers made since `since` (the ask budget's
    figures from the tables, under the federation lock: exact whatever the index says)."""
    rows = await conn.fetch(
        "SELECT donor_id, count(*) FILTER (WHERE status = 'pending') AS pending,"
        " count(*) FILTER (WHERE made_at > $2) AS asked FROM offers"
        " WHERE donor_id = ANY($1::text[]) AND (status = 'pending' OR made_at > $2) GROUP BY donor_id",
        list(donor_ids),
        since,
    )
    return {r["donor_id"]: (int(r["pending"]), int(r["asked"])) for r in rows}


async def offers_since(conn: Conn, federation_id: str, since: datetime) -> tuple[int, int]:
    """A federation's offers made since `since`: all of them, and those to newcomers."""
    row = await conn.fetchrow(
        "SELECT count(*) AS offered, count(*) FILTER (WHERE newcomer) AS to_newcomers FROM offers"
        " WHERE federation_id = $1 AND made_at > $2",
        federation_id,
        since,
    )
    assert row is not None
    return int(row["offered"]), int(row["to_newcomers"])


async def reclaimable_offers(conn: Conn, donor_ids: Sequence[str]) -> dict[str, asyncpg.Record]:
    """Per donor: a pending offer of theirs for a need that is not critical (one a critical need
    may take the donor from), locked; the oldest when there are several."""
    rows = await conn.fetch(
        "SELECT o.* FROM offers o JOIN needs n USING (need_id) WHERE o.donor_id = ANY($1::text[])"
        " AND o.status = 'pending' AND n.urgency <> 'critical' ORDER BY o.made_at, o.offer_id FOR UPDATE OF o",
        list(donor_ids),
    )
    found: dict[str, asyncpg.Record] = {}
    for row in rows:
        found.setdefault(row["donor_id"], row)
    return found


async def start_escalation(conn: Conn, need_id: str, start: datetime, next_at: datetime | None) -> bool:
    """The need's escalation timer, set once (a later version of the need keeps it); True if set now."""
    status: str = await conn.execute(
        "UPDATE needs SET escalation_from = $2, escalate_at = $3 WHERE need_id = $1 AND escalation_from IS NULL",
        need_id,
        start,
        next_at,
    )
    return status == "UPDATE 1"


async def set_escalation(conn: Conn, need_id: str, stage: int, next_at: datetime | None) -> None:
    await conn.execute(
        "UPDATE needs SET escalation_stage = $2, escalate_at = $3, retry_after = NULL WHERE need_id = $1",
        need_id,
        stage,
        next_at,
    )


async def stop_escalation(conn: Conn, need_id: str) -> None:
    await conn.execute("UPDATE needs SET escalate_at = NULL WHERE need_id = $1", need_id)


async def claim_due_escalations(conn: Conn, federation_id: str, now: datetime, limit: int) -> list[asyncpg.Record]:
    """Open needs of a federation whose next escalation step is due, locked (another replica's
    clock skips them); needs whose places are all taken are not widened."""
    return await conn.fetch(
        "SELECT n.* FROM needs n WHERE n.federation_id = $1 AND n.escalate_at <= $2"
        " AND n.status = ANY($4::text[]) AND n.deadline > $2"
        " AND (SELECT count(*) FROM assignments a WHERE a.need_id = n.need_id AND a.status <> 'released')"
        "  < n.donors_wanted"
        " ORDER BY n.escalate_at LIMIT $3 FOR UPDATE OF n SKIP LOCKED",
        federation_id,
        now,
        limit,
        OPEN,
    )


async def federations_with_due_escalations(conn: Conn, now: datetime, limit: int = 100) -> list[str]:
    rows = await conn.fetch(
        "SELECT DISTINCT federation_id FROM needs WHERE escalate_at <= $1 AND status = ANY($2::text[]) LIMIT $3",
        now,
        OPEN,
        limit,
    )
    return [r["federation_id"] for r in rows]


async def add_escalation_step(
    conn: Conn, need_id: str, federation_id: str, kind: str, detail: str, offers_wanted: int, at: datetime
) -> int:
    """Record a step of a need's escalation; returns its number (0 for the first)."""
    step: int = await conn.fetchval(
        "INSERT INTO escalation_steps (need_id, federation_id, step, kind, detail, offers_wanted, taken_at)"
        " SELECT $1, $2, coalesce(max(step) + 1, 0), $3, $4, $5, $6 FROM escalation_steps WHERE need_id = $1"
        " RETURNING step",
        need_id,
        federation_id,
        kind,
        detail,
        offers_wanted,
        at,
    )
    return step


async def escalation_steps(conn: Conn, need_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT step, kind, detail, offers_wanted, taken_at FROM escalation_steps WHERE need_id = $1 ORDER BY step",
        need_id,
    )


# --- hours the donor logs (issue 22, migration 004) ----------------------------------------


async def insert_hour_log(
    conn: Conn, log_id: str, assignment: asyncpg.Record, worked_on: date, hours: float, note: str, at: datetime
) -> None:
    await conn.execute(
        "INSERT INTO hour_logs (log_id, assignment_id, need_id, fight_id, donor_id, federation_id, organisation_id,"
        " worked_on, hours, note, logged_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        log_id,
        assignment["assignment_id"],
        assignment["need_id"],
        assignment["fight_id"],
        assignment["donor_id"],
        assignment["federation_id"],
        assignment["organisation_id"],
        worked_on,
        hours,
        note,
        at,
    )


async def hours_of_donor_day(conn: Conn, donor_id: str, worked_on: date, *, besides: str | None = None) -> float:
    """What a donor logged for a day on all their work (a confirmed log: its confirmed hours)."""
    found: float = await conn.fetchval(
        "SELECT coalesce(sum(coalesce(hours_confirmed, hours)), 0)::float8 FROM hour_logs"
        " WHERE donor_id = $1 AND worked_on = $2 AND log_id IS DISTINCT FROM $3",
        donor_id,
        worked_on,
        besides,
    )
    return found


async def get_hour_log(conn: Conn, log_id: str, *, lock: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT log_id, assignment_id, need_id, fight_id, donor_id, federation_id, organisation_id, worked_on,"
        " hours::float8 AS hours, note, logged_at, status, hours_confirmed::float8 AS hours_confirmed, reason,"
        " confirmed_at FROM hour_logs WHERE log_id = $1" + (" FOR UPDATE" if lock else ""),
        log_id,
    )


async def confirm_hour_log(conn: Conn, log_id: str, hours: float, reason: str, at: datetime) -> None:
    await conn.execute(
        "UPDATE hour_logs SET status = 'confirmed', hours_confirmed = $2, reason = $3, confirmed_at = $4"
        " WHERE log_id = $1",
        log_id,
        hours,
        reason,
        at,
    )


_LOG_COLUMNS = (
    "l.log_id, l.assignment_id, l.need_id, l.donor_id, l.organisation_id, l.worked_on, l.hours::float8 AS hours,"
    " l.note, l.logged_at, l.status, l.hours_confirmed::float8 AS hours_confirmed, l.reason, l.confirmed_at"
)


async def hour_logs_of_need(conn: Conn, need_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {_LOG_COLUMNS} FROM hour_logs l WHERE l.need_id = $1 ORDER BY l.worked_on, l.logged_at", need_id
    )


async def work_of_donor(conn: Conn, federation_id: str, donor_id: str) -> list[asyncpg.Record]:
    """A donor's confirmed and completed work in a federation, newest first, with its hours by state."""
    return await conn.fetch(
        "SELECT a.assignment_id, a.need_id, a.fight_id, a.organisation_id, a.status, a.confirmed_at, a.completed_at,"
        " a.hours_given::float8 AS hours_given, coalesce(n.title, '') AS need_title,"
        " coalesce(sum(l.hours_confirmed) FILTER (WHERE l.status = 'confirmed'), 0)::float8 AS confirmed_logs,"
        " coalesce(sum(l.hours) FILTER (WHERE l.status = 'logged'), 0)::float8 AS pending_logs"
        " FROM assignments a LEFT JOIN needs n USING (need_id) LEFT JOIN hour_logs l USING (assignment_id)"
        " WHERE a.federation_id = $1 AND a.donor_id = $2 AND a.status IN ('confirmed', 'completed', 'released')"
        " GROUP BY a.assignment_id, n.title ORDER BY a.confirmed_at DESC NULLS LAST, a.assignment_id",
        federation_id,
        donor_id,
    )


async def hour_logs_of_donor(conn: Conn, federation_id: str, donor_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {_LOG_COLUMNS} FROM hour_logs l WHERE l.federation_id = $1 AND l.donor_id = $2"
        " ORDER BY l.worked_on DESC, l.logged_at DESC",
        federation_id,
        donor_id,
    )


async def confirmed_hours_in_progress(conn: Conn, federation_id: str, donor_id: str) -> list[asyncpg.Record]:
    """Confirmed logged hours on a donor's work not marked done (marked done, its final figure counts instead)."""
    return await conn.fetch(
        "SELECT a.assignment_id, a.need_id, a.organisation_id, a.status, coalesce(n.title, '') AS need_title,"
        " sum(l.hours_confirmed)::float8 AS hours_confirmed"
        " FROM hour_logs l JOIN assignments a USING (assignment_id) LEFT JOIN needs n ON n.need_id = a.need_id"
        " WHERE l.federation_id = $1 AND l.donor_id = $2 AND l.status = 'confirmed' AND a.status <> 'completed'"
        " GROUP BY a.assignment_id, n.title ORDER BY a.assignment_id",
        federation_id,
        donor_id,
    )


async def lock_donor_hours(conn: Conn, donor_id: str) -> None:
    """One log or confirmation of a donor's hours at a time, so two at once cannot overfill a day."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('pitchin-hours:' || $1))", donor_id)
