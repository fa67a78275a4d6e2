"""Every SQL statement of the scheduling service."""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from pitchin_core.contracts.bookings import BookingFacts
from pitchin_core.contracts.scheduling import SessionPerson
from pitchin_core.db import Conn
from pitchin_scheduling.domain.agenda import Session
from pitchin_scheduling.domain.events import Event, in_zone
from pitchin_scheduling.domain.reminders import PlannedReminder

Db = Conn | asyncpg.Pool

_EVENT_COLUMNS = (
    "event_id",
    "federation_id",
    "organisation_id",
    "kind",
    "title",
    "description",
    "starts_at",
    "ends_at",
    "time_zone",
    "venue_name",
    "venue_address",
    "venue_capacity",
    "venue_latitude",
    "venue_longitude",
    "online_url",
    "livestream_platform",
    "embed_url",
    "hashtag",
    "capacity",
    "free_places",
    "booking_deadline",
    "waitlist",
    "waitlist_offer_seconds",
    "co_hosts",
    "supporting_organisations",
    "image_urls",
    "organiser_email",
    "status",
    "livestream_status",
    "recording_url",
    "series_id",
    "version",
    "reminder_offsets",
)
_SELECT_EVENT = "SELECT " + ", ".join(f"e.{c}" for c in _EVENT_COLUMNS) + " FROM events e"


def event_from_row(row: asyncpg.Record) -> Event:
    values = {c: row[c] for c in _EVENT_COLUMNS}
    zone = values["time_zone"]
    for name in ("starts_at", "ends_at", "booking_deadline"):
        if values[name] is not None:
            values[name] = in_zone(values[name], zone)
    return Event.model_validate(values)


def _event_values(event: Event) -> list[Any]:
    dumped = event.model_dump()
    return [dumped[c].value if hasattr(dumped[c], "value") else dumped[c] for c in _EVENT_COLUMNS]


async def insert_event(conn: Conn, event: Event) -> None:
    placeholders = ", ".join(f"${i}" for i in range(1, len(_EVENT_COLUMNS) + 1))
    await conn.execute(
        f"INSERT INTO events ({', '.join(_EVENT_COLUMNS)}) VALUES ({placeholders})", *_event_values(event)
    )


async def save_event(conn: Conn, event: Event, read_version: int) -> None:
    """Write the event as the domain left it; the version it was read at guards against a lost update.

    One command may move the version more than one step (a publisher's change that edits and
    reschedules emits two facts, each with its own version).
    """
    fixed = ("event_id", "federation_id", "organisation_id")
    settable = [c for c in _EVENT_COLUMNS if c not in fixed]
    values = dict(zip(_EVENT_COLUMNS, _event_values(event), strict=True))
    assignments = ", ".join(f"{c} = ${i}" for i, c in enumerate(settable, start=2))
    status = await conn.execute(
        f"UPDATE events SET {assignments}, updated_at = now() WHERE event_id = $1 AND version = ${len(settable) + 2}",
        event.event_id,
        *(values[c] for c in settable),
        read_version,
    )
    if status != "UPDATE 1":
        raise RuntimeError(f"event {event.event_id} changed under a held lock")


async def insert_series(
    conn: Conn, series_id: str, federation_id: str, organisation_id: str, rrule: str, zone: str
) -> None:
    await conn.execute(
        "INSERT INTO series (series_id, federation_id, organisation_id, rrule, time_zone) VALUES ($1, $2, $3, $4, $5)",
        series_id,
        federation_id,
        organisation_id,
        rrule,
        zone,
    )


async def get_event(db: Db, federation_id: str, event_id: str) -> Event | None:
    row = await db.fetchrow(f"{_SELECT_EVENT} WHERE e.federation_id = $1 AND e.event_id = $2", federation_id, event_id)
    return event_from_row(row) if row else None


async def lock_event(conn: Conn, federation_id: str, event_id: str) -> Event | None:
    row = await conn.fetchrow(
        f"{_SELECT_EVENT} WHERE e.federation_id = $1 AND e.event_id = $2 FOR UPDATE", federation_id, event_id
    )
    return event_from_row(row) if row else None


async def get_public_event(db: Db, event_id: str) -> Event | None:
    """Anything once published: a cancelled event stays in calendars, marked cancelled."""
    row = await db.fetchrow(f"{_SELECT_EVENT} WHERE e.event_id = $1 AND e.status <> 'draft'", event_id)
    return event_from_row(row) if row else None


async def events_of_series(db: Db, federation_id: str, series_id: str) -> list[Event]:
    rows = await db.fetch(
        f"{_SELECT_EVENT} WHERE e.federation_id = $1 AND e.series_id = $2 ORDER BY e.starts_at",
        federation_id,
        series_id,
    )
    return [event_from_row(r) for r in rows]


# -- listings -------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventQuery:
    federation_id: str | None = None
    organisation_id: str | None = None
    kind: str | None = None
    online: bool | None = None
    hashtag: str | None = None
    starts_from: datetime | None = None
    starts_before: datetime | None = None
    near: tuple[float, float] | None = None
    within_km: float = 25.0
    statuses: Sequence[str] = ("published", "live")
    ending_after: datetime | None = None
    after: tuple[datetime, str] | None = None  # keyset cursor: (starts_at, event_id) of the last row seen
    limit: int = 20


async def list_events(db: Db, query: EventQuery) -> list[Event]:
    where = ["e.status = ANY($1::text[])"]
    args: list[Any] = [list(query.statuses)]

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    # A comparison with each value the query gives; a value left None does not narrow the listing.
    compared = (
        ("e.federation_id =", query.federation_id),
        ("e.organisation_id =", query.organisation_id),
        ("e.kind =", query.kind),
        ("e.ends_at >", query.ending_after),
        ("e.starts_at >=", query.starts_from),
        ("e.starts_at <", query.starts_before),
    )
    where += [f"{comparison} {arg(value)}" for comparison, value in compared if value is not None]
    if query.online is True:
        where.append("e.online_url IS NOT NULL")
    elif query.online is False:
        where.append("e.online_url IS NULL")
    if query.hashtag is not None:
        where.append(f"lower(e.hashtag) = lower({arg('#' + query.hashtag.lstrip('#'))})")
    if query.near is not None:
        lat, lon = arg(query.near[0]), arg(query.near[1])
        # Haversine on a sphere of 6371 km: a few kilometres of error do not matter for "near me".
        where.append(
            "e.venue_latitude IS NOT NULL AND 2 * 6371 * asin(sqrt("
            f"power(sin(radians(e.venue_latitude - {lat}) / 2), 2) + cos(radians({lat}))"
            f" * cos(radians(e.venue_latitude)) * power(sin(radians(e.venue_longitude - {lon}) / 2), 2)"
            f")) <= {arg(query.within_km)}"
        )
    if query.after is not None:
        where.append(f"(e.starts_at, e.event_id) > ({arg(query.after[0])}, {arg(query.after[1])})")
    sql = f"{_SELECT_EVENT} WHERE {' AND '.join(where)} ORDER BY e.starts_at, e.event_id LIMIT {arg(query.limit)}"
    return [event_from_row(r) for r in await db.fetch(sql, *args)]


# -- agenda ---------------------------------------------------------------------------------


async def lock_agenda(conn: Conn, federation_id: str, organisation_id: str) -> None:
    """Serialise agenda changes of one organisation, so two clashing sessions cannot both pass the check."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext($1))", f"pitchin-agenda:{federation_id}/{organisation_id}"
    )


def _session_from_row(row: asyncpg.Record, time_zone: str | None = None) -> Session:
    zone = time_zone or row["time_zone"]
    return Session(
        session_id=row["session_id"],
        event_id=row["event_id"],
        title=row["title"],
        starts_at=in_zone(row["starts_at"], zone),
        ends_at=in_zone(row["ends_at"], zone),
        room=row["room"],
        track=row["track"],
        people=[SessionPerson.model_validate(p) for p in json.loads(row["people"])],
        venue=row["venue_name"],
    )


_SELECT_SESSION = (
    "SELECT s.session_id, s.event_id, s.title, s.starts_at, s.ends_at, s.room, s.track, s.people::text AS people,"
    " e.venue_name, e.time_zone FROM sessions s JOIN events e USING (event_id)"
)


async def sessions_of_event(db: Db, event_id: str) -> list[Session]:
    rows = await db.fetch(f"{_SELECT_SESSION} WHERE s.event_id = $1 ORDER BY s.starts_at, s.session_id", event_id)
    return [_session_from_row(r) for r in rows]


async def sessions_of_events(db: Db, event_ids: list[str]) -> list[Session]:
    rows = await db.fetch(f"{_SELECT_SESSION} WHERE s.event_id = ANY($1::text[]) ORDER BY s.starts_at", event_ids)
    return [_session_from_row(r) for r in rows]


async def sessions_overlapping(
    conn: Conn, federation_id: str, organisation_id: str, starts_at: datetime, ends_at: datetime
) -> list[Session]:
    """The organisation's sessions that overlap a time span, in events still taking place."""
    rows = await conn.fetch(
        f"{_SELECT_SESSION} WHERE s.federation_id = $1 AND s.organisation_id = $2"
        " AND s.starts_at < $4 AND s.ends_at > $3 AND e.status NOT IN ('cancelled', 'archived')",
        federation_id,
        organisation_id,
        starts_at,
        ends_at,
    )
    return [_session_from_row(r) for r in rows]


async def get_session(conn: Conn, event_id: str, session_id: str) -> Session | None:
    row = await conn.fetchrow(f"{_SELECT_SESSION} WHERE s.event_id = $1 AND s.session_id = $2", event_id, session_id)
    return _session_from_row(row) if row else None


async def upsert_session(conn: Conn, event: Event, session: Session) -> None:
    await conn.execute(
        "INSERT INTO sessions (session_id, event_id, federation_id, organisation_id, title, starts_at, ends_at, room,"
        " track, people) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb)"
        " ON CONFLICT (session_id) DO UPDATE SET title = EXCLUDED.title, starts_at = EXCLUDED.starts_at,"
        " ends_at = EXCLUDED.ends_at, room = EXCLUDED.room, track = EXCLUDED.track, people = EXCLUDED.people",
        session.session_id,
        event.event_id,
        event.federation_id,
        event.organisation_id,
        session.title,
        session.starts_at,
        session.ends_at,
        session.room,
        session.track,
        json.dumps([p.model_dump(mode="json") for p in session.people]),
    )


async def delete_session(conn: Conn, event_id: str, session_id: str) -> bool:
    status: str = await conn.execute(
        "DELETE FROM sessions WHERE event_id = $1 AND session_id = $2", event_id, session_id
    )
    return status == "DELETE 1"


# -- reminders ------------------------------------------------------------------------------


async def delete_pending_reminders(conn: Conn, event_id: str) -> int:
    status: str = await conn.execute("DELETE FROM reminders WHERE event_id = $1 AND fired_at IS NULL", event_id)
    return int(status.split()[-1])


async def insert_reminders(
    conn: Conn,
    event: Event,
    planned: list[PlannedReminder],
    traceparent: str | None,
    tracestate: str | None,
) -> None:
    if not planned:
        return
    await conn.executemany(
        "INSERT INTO reminders (reminder_id, event_id, federation_id, organisation_id, kind, offset_seconds, due_at,"
        " event_version, traceparent, tracestate) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        [
            (
                p.reminder_id,
                event.event_id,
                event.federation_id,
                event.organisation_id,
                p.kind.value,
                p.offset_seconds,
                p.due_at,
                event.version,
                traceparent,
                tracestate,
            )
            for p in planned
        ],
    )


async def reminders_of_event(db: Db, event_id: str) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT reminder_id, kind, offset_seconds, due_at, event_version, fired_at FROM reminders"
        " WHERE event_id = $1 ORDER BY due_at, reminder_id",
        event_id,
    )


async def claim_due_reminders(conn: Conn, now: datetime, limit: int) -> list[asyncpg.Record]:
    """Due reminders with their event, locked until the caller's transaction ends; rows another
    timer holds are skipped, so replicas share the work and never fire one twice."""
    columns = ", ".join(f"e.{c}" for c in _EVENT_COLUMNS)
    return await conn.fetch(
        "SELECT r.reminder_id, r.kind AS reminder_kind, r.offset_seconds, r.due_at,"
        f" r.traceparent AS reminder_traceparent, r.tracestate AS reminder_tracestate, {columns}"
        " FROM reminders r JOIN events e USING (event_id)"
        " WHERE r.fired_at IS NULL AND r.due_at <= $1"
        " ORDER BY r.due_at LIMIT $2 FOR UPDATE OF r SKIP LOCKED",
        now,
        limit,
    )


async def mark_reminders_fired(conn: Conn, reminder_ids: list[str], now: datetime) -> None:
    await conn.execute("UPDATE reminders SET fired_at = $2 WHERE reminder_id = ANY($1::text[])", reminder_ids, now)


async def next_reminder_due(db: Db) -> datetime | None:
    due: datetime | None = await db.fetchval("SELECT min(due_at) FROM reminders WHERE fired_at IS NULL")
    return due


# -- bookings read model --------------------------------------------------------------------


async def record_attendee(conn: Conn, booking: BookingFacts, status: str, at: datetime) -> None:
    """Last state wins, in the order signups produced them (one partition per event); an erased
    attendee (updated_at = infinity, erasure.py) takes no later state, nor a calendar feed."""
    changed = await conn.fetchval(
        "INSERT INTO attendees (booking_id, event_id, federation_id, organisation_id, donor_id, name, email, status,"
        " updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        " ON CONFLICT (booking_id) DO UPDATE SET status = EXCLUDED.status, name = EXCLUDED.name,"
        " email = EXCLUDED.email, donor_id = EXCLUDED.donor_id, updated_at = EXCLUDED.updated_at"
        " WHERE attendees.updated_at <= EXCLUDED.updated_at RETURNING true",
        booking.booking_id,
        booking.event_id,
        booking.federation_id,
        booking.organisation_id,
        booking.donor_id,
        booking.name,
        str(booking.email),
        status,
        at,
    )
    if status != "cancelled" and changed:
        await conn.execute(
            "INSERT INTO person_feeds (federation_id, email, token) VALUES ($1, lower($2), $3)"
            " ON CONFLICT (federation_id, email) DO NOTHING",
            booking.federation_id,
            str(booking.email),
            new_feed_token(),
        )


async def attendee_counts(db: Db, event_id: str) -> dict[str, int]:
    rows = await db.fetch("SELECT status, count(*) AS n FROM attendees WHERE event_id = $1 GROUP BY status", event_id)
    counts = {"confirmed": 0, "waitlisted": 0, "cancelled": 0}
    counts.update({r["status"]: r["n"] for r in rows})
    return counts


async def attendees_of_event(db: Db, event_id: str) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT booking_id, donor_id, name, email, status, updated_at FROM attendees WHERE event_id = $1"
        " ORDER BY status, updated_at, booking_id",
        event_id,
    )


def new_feed_token() -> str:
    """What a private feed's URL carries: unguessable, and replaced whenever the person or staff rotate it."""
    return secrets.token_urlsafe(24)


async def feed_token_of_booking(db: Db, federation_id: str, booking_id: str) -> str | None:
    token: str | None = await db.fetchval(
        "SELECT f.token FROM attendees a JOIN person_feeds f"
        " ON f.federation_id = a.federation_id AND f.email = lower(a.email)"
        " WHERE a.federation_id = $1 AND a.booking_id = $2",
        federation_id,
        booking_id,
    )
    return token


async def rotate_feed_of_booking(db: Db, federation_id: str, booking_id: str, token: str) -> str | None:
    """The new token of the feed of whoever made `booking_id`; None when they have none."""
    new: str | None = await db.fetchval(
        "UPDATE person_feeds f SET token = $3 FROM attendees a"
        " WHERE a.federation_id = $1 AND a.booking_id = $2"
        " AND f.federation_id = a.federation_id AND f.email = lower(a.email) RETURNING f.token",
        federation_id,
        booking_id,
        token,
    )
    return new


async def rotate_feed(db: Db, federation_id: str, email: str, token: str) -> bool:
    done = await db.execute(
        "UPDATE person_feeds SET token = $3 WHERE federation_id = $1 AND email = lower($2)",
        federation_id,
        email,
        token,
    )
    return done != "UPDATE 0"


async def events_booked_by_token(db: Db, token: str) -> list[Event] | None:
    """The events a person holds a place at; None when the token is unknown."""
    owner = await db.fetchrow("SELECT federation_id, email FROM person_feeds WHERE token = $1", token)
    if owner is None:
        return None
    rows = await db.fetch(
        f"{_SELECT_EVENT} WHERE e.federation_id = $1 AND e.status <> 'draft' AND e.event_id IN"
        " (SELECT event_id FROM attendees WHERE federation_id = $1 AND lower(email) = $2 AND status = 'confirmed')"
        " ORDER BY e.starts_at",
        owner["federation_id"],
        owner["email"],
    )
    return [event_from_row(r) for r in rows]
