"""Every SQL statement of the signups service."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from pitchin_core.contracts.donors import DonorRegisteredV1, DonorUpdatedV1
from pitchin_core.contracts.fights import FightOpenedV1, NeedUpdatedV1
from pitchin_core.contracts.scheduling import EventCreatedV1, EventFacts
from pitchin_core.db import Conn
from pitchin_core.outbox import OUTBOX_COLUMNS, StagedEvent

# The donor's profile, kept as one jsonb column: a new field (like `lending`) needs no migration,
# and a row stored before it had one reads as the contract's default.
_PROFILE = {"skills", "availability", "place", "languages", "causes", "union_member", "contact", "consent", "lending"}


# Donors ---------------------------------------------------------------------------------


async def insert_donor(conn: Conn, donor: DonorRegisteredV1, registered: StagedEvent) -> bool:
    """Insert the donor and, only if that happened, its outbox row: one statement, one round trip.

    False when the federation already has a donor with this email (and nothing was written).
    """
    status: str = await conn.execute(
        "WITH donor AS (INSERT INTO donors (donor_id, federation_id, organisation_id, name, email, phone, profile,"
        " status, registered_at) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9) ON CONFLICT DO NOTHING"
        f" RETURNING 1) INSERT INTO outbox ({OUTBOX_COLUMNS}) {registered.select(10)} FROM donor",
        donor.donor_id,
        donor.federation_id,
        donor.organisation_id,
        donor.name,
        donor.email,
        donor.phone,
        donor.model_dump_json(include=_PROFILE),
        donor.status.value,
        donor.registered_at,
        *registered.values,
    )
    return status == "INSERT 0 1"


async def insert_donors(conn: Conn, donors: Sequence[tuple[DonorRegisteredV1, StagedEvent]]) -> set[str]:
    """`insert_donor` for many, in one statement: the ids of the donors inserted (with their outbox rows).

    A donor whose email the federation already has, or an earlier one of the same list has,
    is left out with its outbox row; rows go in the list's order (the outbox's too).
    """
    if not donors:
        return set()
    outbox = [registered.values for _, registered in donors]
    rows = await conn.fetch(
        "WITH batch AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],"
        " $7::text[], $8::text[], $9::timestamptz[]) WITH ORDINALITY"
        " AS b(donor_id, federation_id, organisation_id, name, email, phone, profile, status, registered_at, ord)),"
        " donor AS (INSERT INTO donors (donor_id, federation_id, organisation_id, name, email, phone, profile,"
        " status, registered_at) SELECT donor_id, federation_id, organisation_id, name, email, phone, profile::jsonb,"
        " status, registered_at FROM batch ORDER BY ord ON CONFLICT DO NOTHING RETURNING donor_id),"
        " event AS (SELECT * FROM unnest($10::uuid[], $11::text[], $12::text[], $13::text[], $14::text[],"
        " $15::text[], $16::text[], $17::text[], $18::text[], $19::text[]) WITH ORDINALITY"
        f" AS e({OUTBOX_COLUMNS}, ord))"
        f" INSERT INTO outbox ({OUTBOX_COLUMNS}) SELECT e.event_id, e.topic, e.message_key, e.event_type, e.source,"
        " e.subject, e.tenant, e.payload::jsonb, e.traceparent, e.tracestate"
        " FROM event e JOIN donor d ON d.donor_id = e.message_key ORDER BY e.ord RETURNING message_key",
        [d.donor_id for d, _ in donors],
        [d.federation_id for d, _ in donors],
        [d.organisation_id for d, _ in donors],
        [d.name for d, _ in donors],
        [d.email for d, _ in donors],
        [d.phone for d, _ in donors],
        [d.model_dump_json(include=_PROFILE) for d, _ in donors],
        [d.status.value for d, _ in donors],
        [d.registered_at for d, _ in donors],
        *([row[column] for row in outbox] for column in range(len(OUTBOX_COLUMNS.split(", ")))),
    )
    return {row["message_key"] for row in rows}


async def update_donor(conn: Conn, donor: DonorUpdatedV1) -> None:
    await conn.execute(
        "UPDATE donors SET name = $2, email = $3, phone = $4, profile = $5::jsonb, status = $6, version = $7,"
        " updated_at = $8 WHERE donor_id = $1",
        donor.donor_id,
        donor.name,
        donor.email,
        donor.phone,
        donor.model_dump_json(include=_PROFILE),
        donor.status.value,
        donor.version,
        donor.updated_at,
    )


async def erase_donor(conn: Conn, donor_id: str, now: datetime) -> None:
    """Keep the id (bookings and history point at it); remove everything that names the person."""
    await conn.execute(
        "UPDATE donors SET name = 'erased', email = 'erased+' || donor_id || '@invalid', phone = NULL,"
        " profile = '{}'::jsonb, status = 'withdrawn', erased_at = $2, updated_at = $2, version = version + 1"
        " WHERE donor_id = $1",
        donor_id,
        now,
    )
    await conn.execute(
        "UPDATE bookings SET name = 'erased', email = 'erased+' || booking_id || '@invalid' WHERE donor_id = $1",
        donor_id,
    )


async def withdraw_donor(conn: Conn, donor_id: str, now: datetime) -> None:
    await conn.execute("UPDATE donors SET status = 'withdrawn', updated_at = $2 WHERE donor_id = $1", donor_id, now)


async def get_donor(
    conn: Conn, federation_id: str, donor_id: str, *, for_update: bool = False
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT donor_id, federation_id, organisation_id, name, email, phone, profile::text AS profile, status,"
        " version, registered_at, updated_at, erased_at FROM donors WHERE federation_id = $1 AND donor_id = $2"
        + (" FOR UPDATE" if for_update else ""),
        federation_id,
        donor_id,
    )


async def list_donors(
    conn: Conn,
    federation_id: str,
    organisation_id: str | None,
    *,
    skill: str | None,
    status: str | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT donor_id, organisation_id, name, email, status, profile->'skills' AS skills, registered_at"
        " FROM donors WHERE federation_id = $1 AND ($2::text IS NULL OR organisation_id = $2)"
        " AND ($3::text IS NULL OR profile->'skills' @> jsonb_build_array(jsonb_build_object('skill', $3::text)))"
        " AND ($4::text IS NULL OR status = $4)"
        " AND ($5::timestamptz IS NULL OR (registered_at, donor_id) > ($5, $6))"
        " ORDER BY registered_at, donor_id LIMIT $7",
        federation_id,
        organisation_id,
        skill,
        status,
        after[0] if after else None,
        after[1] if after else "",
        limit,
    )


async def active_donors_among(conn: Conn, federation_id: str, donor_ids: Sequence[str]) -> list[asyncpg.Record]:
    """The active donors of a federation among `donor_ids`, with what a candidate's profile shows
    and what decides who may ask them (home organisation, lending); never contact details."""
    return await conn.fetch(
        "SELECT donor_id, organisation_id, name, profile->'skills' AS skills, profile->'languages' AS languages,"
        " coalesce((profile->'place'->>'remote')::boolean, true) AS remote, profile->'lending' AS lending"
        " FROM donors WHERE federation_id = $1 AND donor_id = ANY($2::text[]) AND status = 'active'"
        " ORDER BY donor_id",
        federation_id,
        list(donor_ids),
    )


# Sign-ups held for confirmation (double opt-in, migration 004) ---------------------------


async def donor_email_taken(conn: Conn, federation_id: str, email: str) -> bool:
    taken: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM donors WHERE federation_id = $1 AND lower(email) = lower($2))",
        federation_id,
        email,
    )
    return taken


async def hold_signup(
    conn: Conn,
    *,
    pending_id: str,
    federation_id: str,
    email: str,
    token_hash: str,
    signup: str,
    now: datetime,
    expires_at: datetime,
) -> None:
    """Hold a sign-up until it is confirmed; a newer one for the same address replaces the older
    (whose token then confirms nothing)."""
    await conn.execute(
        "INSERT INTO pending_signups (pending_id, federation_id, email, token_hash, signup, requested_at, expires_at)"
        " VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7)"
        " ON CONFLICT (federation_id, lower(email)) DO UPDATE SET pending_id = EXCLUDED.pending_id,"
        " email = EXCLUDED.email, token_hash = EXCLUDED.token_hash, signup = EXCLUDED.signup,"
        " requested_at = EXCLUDED.requested_at, expires_at = EXCLUDED.expires_at, confirmed_at = NULL,"
        " donor_id = NULL",
        pending_id,
        federation_id,
        email,
        token_hash,
        signup,
        now,
        expires_at,
    )


async def forget_expired_signups(conn: Conn, now: datetime, limit: int = 100) -> int:
    """Delete up to `limit` held sign-ups past their expiry (rows another transaction holds are left for later)."""
    status: str = await conn.execute(
        "DELETE FROM pending_signups WHERE pending_id IN (SELECT pending_id FROM pending_signups"
        " WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
        now,
        limit,
    )
    return int(status.rsplit(" ", 1)[-1])


async def held_signup(conn: Conn, federation_id: str, token_hash: str) -> asyncpg.Record | None:
    """The held sign-up a token confirms, locked: two confirmations of one token go one after the other."""
    return await conn.fetchrow(
        "SELECT pending_id, signup::text AS signup, expires_at, confirmed_at, donor_id FROM pending_signups"
        " WHERE federation_id = $1 AND token_hash = $2 FOR UPDATE",
        federation_id,
        token_hash,
    )


async def mark_signup_confirmed(conn: Conn, pending_id: str, donor_id: str, now: datetime) -> None:
    """Confirmed: the personal data goes (the donor row has it now); the row stays until its expiry
    only to tell a second click it was used."""
    await conn.execute(
        "UPDATE pending_signups SET signup = NULL, confirmed_at = $2, donor_id = $3 WHERE pending_id = $1",
        pending_id,
        now,
        donor_id,
    )


async def forget_signup(conn: Conn, pending_id: str) -> None:
    await conn.execute("DELETE FROM pending_signups WHERE pending_id = $1", pending_id)


# Skills taxonomy ------------------------------------------------------------------------


async def federation_skills(conn: Conn, federation_id: str) -> dict[str, str]:
    rows = await conn.fetch("SELECT slug, label FROM skills WHERE federation_id = $1", federation_id)
    return {r["slug"]: r["label"] for r in rows}


async def replace_skills(conn: Conn, federation_id: str, skills: dict[str, str]) -> None:
    await conn.execute("DELETE FROM skills WHERE federation_id = $1", federation_id)
    await conn.executemany(
        "INSERT INTO skills (federation_id, slug, label) VALUES ($1, $2, $3)",
        [(federation_id, slug, label) for slug, label in skills.items()],
    )


# Fights and needs ----------------------------------------------------------------------


async def insert_fight(conn: Conn, fight: FightOpenedV1) -> None:
    await conn.execute(
        "INSERT INTO fights (fight_id, federation_id, organisation_id, kind, title, description, causes, opened_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        fight.fight_id,
        fight.federation_id,
        fight.organisation_id,
        fight.kind.value,
        fight.title,
        fight.description,
        fight.causes,
        fight.opened_at,
    )


async def get_fight(conn: Conn, federation_id: str, fight_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM fights WHERE federation_id = $1 AND fight_id = $2", federation_id, fight_id
    )


async def close_fight(conn: Conn, fight_id: str, now: datetime) -> None:
    await conn.execute("UPDATE fights SET status = 'closed', closed_at = $2 WHERE fight_id = $1", fight_id, now)


async def list_fights(
    conn: Conn, federation_id: str, organisation_id: str | None, after: tuple[datetime, str] | None, limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM fights WHERE federation_id = $1 AND ($2::text IS NULL OR organisation_id = $2)"
        " AND ($3::timestamptz IS NULL OR (opened_at, fight_id) > ($3, $4)) ORDER BY opened_at, fight_id LIMIT $5",
        federation_id,
        organisation_id,
        after[0] if after else None,
        after[1] if after else "",
        limit,
    )


async def save_need(conn: Conn, need: NeedUpdatedV1, opened_at: datetime) -> None:
    await conn.execute(
        "INSERT INTO needs (need_id, fight_id, federation_id, organisation_id, state, status, urgency, deadline,"
        " version, opened_at) VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9, $10)"
        " ON CONFLICT (need_id) DO UPDATE SET state = EXCLUDED.state, status = EXCLUDED.status,"
        " urgency = EXCLUDED.urgency, deadline = EXCLUDED.deadline, version = EXCLUDED.version",
        need.need_id,
        need.fight_id,
        need.federation_id,
        need.organisation_id,
        need.model_dump_json(),
        need.status.value,
        need.urgency.value,
        need.deadline,
        need.version,
        opened_at,
    )


async def get_need(
    conn: Conn, federation_id: str | None, need_id: str, *, for_update: bool = False
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT need_id, fight_id, federation_id, organisation_id, state::text AS state, status, assigned_donors,"
        " version, opened_at FROM needs WHERE need_id = $1 AND ($2::text IS NULL OR federation_id = $2)"
        + (" FOR UPDATE" if for_update else ""),
        need_id,
        federation_id,
    )


async def set_assigned(conn: Conn, need_id: str, donors: list[str]) -> None:
    await conn.execute("UPDATE needs SET assigned_donors = $2 WHERE need_id = $1", need_id, donors)


async def live_needs_of_fight(conn: Conn, fight_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT need_id, state::text AS state, opened_at FROM needs WHERE fight_id = $1"
        " AND status IN ('open', 'partly-filled', 'filled') FOR UPDATE",
        fight_id,
    )


async def list_needs(
    conn: Conn,
    federation_id: str,
    organisation_id: str | None,
    *,
    status: str | None,
    urgency: str | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT need_id, state::text AS state, assigned_donors, opened_at FROM needs WHERE federation_id = $1"
        " AND ($2::text IS NULL OR organisation_id = $2) AND ($3::text IS NULL OR status = $3)"
        " AND ($4::text IS NULL OR urgency = $4)"
        " AND ($5::timestamptz IS NULL OR (opened_at, need_id) > ($5, $6)) ORDER BY opened_at, need_id LIMIT $7",
        federation_id,
        organisation_id,
        status,
        urgency,
        after[0] if after else None,
        after[1] if after else "",
        limit,
    )


# Events and bookings -------------------------------------------------------------------


async def apply_event_facts(
    conn: Conn, fact: EventCreatedV1 | EventFacts, *, status: str | None, details: dict[str, object] | None
) -> bool:
    """Upsert what bookings need to know of an event from a fact about it; a late, older version changes nothing.

    `details` (capacity, booking_deadline, waitlist) is given by facts that carry the whole
    description; other facts leave those columns as they were.
    """
    result: str = await conn.execute(
        "INSERT INTO known_events (event_id, federation_id, organisation_id, title, starts_at, capacity,"
        " booking_deadline, waitlist, status, version, waitlist_offer_seconds)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, coalesce($8, true), coalesce($9, 'published'), $10, $12)"
        " ON CONFLICT (event_id) DO UPDATE SET title = EXCLUDED.title, starts_at = EXCLUDED.starts_at,"
        " capacity = CASE WHEN $11 THEN EXCLUDED.capacity ELSE known_events.capacity END,"
        " booking_deadline = CASE WHEN $11 THEN EXCLUDED.booking_deadline ELSE known_events.booking_deadline END,"
        " waitlist = CASE WHEN $11 THEN EXCLUDED.waitlist ELSE known_events.waitlist END,"
        " waitlist_offer_seconds = CASE WHEN $11 THEN EXCLUDED.waitlist_offer_seconds"
        " ELSE known_events.waitlist_offer_seconds END,"
        " status = coalesce($9, known_events.status), version = EXCLUDED.version"
        " WHERE known_events.version < EXCLUDED.version",
        fact.event_id,
        fact.federation_id,
        fact.organisation_id,
        fact.title,
        fact.starts_at,
        (details or {}).get("capacity"),
        (details or {}).get("booking_deadline"),
        (details or {}).get("waitlist"),
        status,
        fact.version,
        details is not None,
        (details or {}).get("waitlist_offer_seconds"),
    )
    return result != "INSERT 0 0"


async def get_known_event(conn: Conn, event_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM known_events WHERE event_id = $1", event_id)


async def book_many(
    conn: Conn, event_id: str, federation_id: str, now: datetime, meta: str, items: Sequence[str]
) -> list[asyncpg.Record]:
    """Book a batch for one event in one call (migration 003): one row per item, in order."""
    return await conn.fetch(
        "SELECT * FROM book_many($1, $2, $3, $4::jsonb, $5::jsonb[])", event_id, federation_id, now, meta, list(items)
    )


async def cancel_booking(
    conn: Conn, booking_id: str, federation_id: str, now: datetime, meta: str
) -> list[asyncpg.Record]:
    """Cancel and offer the freed place to the waitlist in one call (migration 007): the events staged, in order."""
    return await conn.fetch("SELECT * FROM cancel_booking($1, $2, $3, $4::jsonb)", booking_id, federation_id, now, meta)


async def answer_offer(
    conn: Conn, booking_id: str, federation_id: str, now: datetime, answer: str, meta: str
) -> list[asyncpg.Record]:
    """Take or give up an offered place (migration 007): the events staged, or one row saying why not."""
    return await conn.fetch(
        "SELECT * FROM answer_offer($1, $2, $3, $4, $5::jsonb)", booking_id, federation_id, now, answer, meta
    )


async def offer_free_places(conn: Conn, event_id: str, now: datetime, meta: str) -> list[asyncpg.Record]:
    """Offer an event's free places to its waitlist, under its lock (migration 007): the offers staged."""
    return await conn.fetch("SELECT * FROM offer_free_places($1, $2, $3::jsonb)", event_id, now, meta)


async def expire_offers(conn: Conn, federation_id: str, now: datetime, limit: int, meta: str) -> list[asyncpg.Record]:
    """Expire due offers of up to `limit` events and offer their places on (migration 007)."""
    return await conn.fetch("SELECT * FROM expire_offers($1, $2, $3, $4::jsonb)", federation_id, now, limit, meta)


async def federations_with_due_offers(conn: Conn, now: datetime) -> list[str]:
    """Across tenants: the federations with an offer due to expire (the clock then works as each)."""
    rows = await conn.fetch(
        "SELECT DISTINCT federation_id FROM bookings WHERE status = 'offered' AND offer_expires_at <= $1", now
    )
    return [r["federation_id"] for r in rows]


async def get_booking(conn: Conn, booking_id: str, *, for_update: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM bookings WHERE booking_id = $1" + (" FOR UPDATE" if for_update else ""), booking_id
    )


async def waitlist_position(conn: Conn, event_id: str, seq: int) -> int:
    position: int = await conn.fetchval(
        "SELECT count(*) FROM bookings WHERE event_id = $1 AND status = 'waitlisted' AND waitlist_seq <= $2",
        event_id,
        seq,
    )
    return position


async def check_in(conn: Conn, booking_id: str, now: datetime) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "UPDATE bookings SET checked_in_at = coalesce(checked_in_at, $2) WHERE booking_id = $1"
        " AND status = 'confirmed' RETURNING *",
        booking_id,
        now,
    )


async def bookings_of_person(conn: Conn, federation_id: str, email: str, limit: int) -> list[asyncpg.Record]:
    """A person's places and waitlist entries at any event of the federation, soonest booked last."""
    return await conn.fetch(
        "SELECT booking_id, event_id, status, created_at FROM bookings"
        " WHERE federation_id = $1 AND lower(email) = lower($2) AND status <> 'cancelled'"
        " ORDER BY created_at DESC LIMIT $3",
        federation_id,
        email,
        limit,
    )


async def list_bookings(conn: Conn, event_id: str, status: str | None) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT booking_id, donor_id, name, email, status, waitlist_seq, created_at, confirmed_at, checked_in_at,"
        " offered_at, offer_expires_at, cancel_reason"
        " FROM bookings WHERE event_id = $1 AND ($2::text IS NULL OR status = $2)"
        " ORDER BY status, waitlist_seq NULLS FIRST, created_at",
        event_id,
        status,
    )


# Attendance and feedback (issue 22, migration 008) ---------------------------------------------


async def place_for_attendance(conn: Conn, booking_id: str) -> asyncpg.Record | None:
    """A booking with its event's start and status and what was marked of it, the booking locked
    (marks and a check-in at the door for the same place go one after the other)."""
    return await conn.fetchrow(
        "SELECT b.*, e.starts_at, e.status AS event_status, a.outcome AS mark, a.first_attended_at"
        " FROM bookings b JOIN known_events e USING (event_id) LEFT JOIN attendance a USING (booking_id)"
        " WHERE b.booking_id = $1 FOR UPDATE OF b",
        booking_id,
    )


async def save_attendance(
    conn: Conn, place: asyncpg.Record, outcome: str, now: datetime, *, by_check_in: bool, first_time: bool
) -> None:
    await conn.execute(
        "INSERT INTO attendance (booking_id, event_id, federation_id, organisation_id, outcome, marked_at,"
        " by_check_in, first_attended_at) VALUES ($1, $2, $3, $4, $5, $6::timestamptz, $7,"
        " CASE WHEN $8::boolean THEN $6::timestamptz END)"
        " ON CONFLICT (booking_id) DO UPDATE SET outcome = EXCLUDED.outcome, marked_at = EXCLUDED.marked_at,"
        " by_check_in = EXCLUDED.by_check_in,"
        " first_attended_at = coalesce(attendance.first_attended_at, EXCLUDED.first_attended_at)",
        place["booking_id"],
        place["event_id"],
        place["federation_id"],
        place["organisation_id"],
        outcome,
        now,
        by_check_in,
        first_time,
    )


async def places_of_event(conn: Conn, event_id: str) -> list[asyncpg.Record]:
    """Every confirmed place of an event with what was marked of it: the turnout's rows."""
    return await conn.fetch(
        "SELECT b.booking_id, b.status, b.checked_in_at, a.outcome AS mark, a.first_attended_at"
        " FROM bookings b LEFT JOIN attendance a USING (booking_id)"
        " WHERE b.event_id = $1 AND b.status = 'confirmed' ORDER BY b.booking_id",
        event_id,
    )


async def save_feedback(conn: Conn, place: asyncpg.Record, rating: int, comment: str, now: datetime) -> None:
    await conn.execute(
        "INSERT INTO booking_feedback (booking_id, event_id, federation_id, organisation_id, rating, comment,"
        " given_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (booking_id) DO UPDATE SET"
        " rating = EXCLUDED.rating, comment = EXCLUDED.comment, given_at = EXCLUDED.given_at",
        place["booking_id"],
        place["event_id"],
        place["federation_id"],
        place["organisation_id"],
        rating,
        comment,
        now,
    )


async def feedback_of_event(conn: Conn, event_id: str, limit: int = 100) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT booking_id, rating, comment, given_at FROM booking_feedback WHERE event_id = $1"
        " ORDER BY given_at DESC LIMIT $2",
        event_id,
        limit,
    )
