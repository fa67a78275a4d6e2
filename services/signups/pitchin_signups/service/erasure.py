"""A person's erasure (issue 19): one request per person, by email or by an id signups knows them
by, answered at once; signups erases its own part in the request's transaction, every other
service through `erasure.requested` on pitchin.privacy.v1, and each reports back.

Signups is the only service that holds the email in clear when the request is made: it turns
it into the ids and the keyed hash the event carries (pitchin_core.contracts.privacy).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pitchin_core.auth import Caller
from pitchin_core.contracts.cloudevents import CloudEvent
from pitchin_core.contracts.donors import DonorWithdrawnV1
from pitchin_core.contracts.privacy import ErasureCompletedV1, ErasureRequestedV1
from pitchin_core.contracts.topics import PRIVACY
from pitchin_core.db import Conn
from pitchin_core.erasure import PersonHasher, forget_answers, forget_parked_events, needles_of, rows
from pitchin_core.errors import Conflict, NotFound
from pitchin_core.personal import erased_subjects
from pitchin_core.retention import PARKED_EVENTS, Rule
from pitchin_core.subject_access import SubjectAccessAsked, rows_of
from pitchin_core.uow import Tenant, Transactions
from pitchin_signups import person_keys, storage
from pitchin_signups.service import new_id

SERVICE = "signups"
ERASED_PREFIX = "erased+"


@dataclass(frozen=True)
class PersonToErase:
    """Who to forget: exactly one of an email, a donor id or a booking id."""

    email: str | None = None
    donor_id: str | None = None
    booking_id: str | None = None


@dataclass(frozen=True)
class Found:
    """Everything signups holds about one person, found from their email (and the id asked with)."""

    email: str
    donor_ids: list[str]
    booking_ids: list[str]
    pending_ids: list[str]
    needles: list[str]


async def _email_of(conn: Conn, federation_id: str, person: PersonToErase) -> str:
    if person.email:
        return person.email
    if person.donor_id:
        email = await conn.fetchval(
            "SELECT email FROM donors WHERE federation_id = $1 AND donor_id = $2", federation_id, person.donor_id
        )
        if email is None:
            raise NotFound("donor", person.donor_id)
    else:
        assert person.booking_id is not None
        email = await conn.fetchval(
            "SELECT email FROM bookings WHERE federation_id = $1 AND booking_id = $2", federation_id, person.booking_id
        )
        if email is None:
            raise NotFound("booking", person.booking_id)
    if str(email).startswith(ERASED_PREFIX):
        raise Conflict("This person's data was erased already.", title="Already erased")
    return str(email)


async def _find(conn: Conn, federation_id: str, email: str, person: PersonToErase) -> Found:
    donors = await conn.fetch(
        "SELECT donor_id, email, phone FROM donors WHERE federation_id = $1"
        " AND (lower(email) = lower($2) OR donor_id = $3)",
        federation_id,
        email,
        person.donor_id or "",
    )
    donor_ids = [r["donor_id"] for r in donors]
    bookings = await conn.fetch(
        "SELECT booking_id, email FROM bookings WHERE federation_id = $1"
        " AND (lower(email) = lower($2) OR donor_id = ANY($3::text[]) OR booking_id = $4)",
        federation_id,
        email,
        donor_ids,
        person.booking_id or "",
    )
    pending = await conn.fetch(
        "SELECT pending_id, email FROM pending_signups WHERE federation_id = $1 AND lower(email) = lower($2)",
        federation_id,
        email,
    )
    booking_ids = [r["booking_id"] for r in bookings]
    pending_ids = [r["pending_id"] for r in pending]
    needles = needles_of(
        [email],
        [r["email"] for r in (*donors, *bookings, *pending)],
        [r["phone"] for r in donors],
        donor_ids,
        booking_ids,
        pending_ids,
    )
    return Found(email, donor_ids, booking_ids, pending_ids, needles)


async def _erase_here(conn: Conn, found: Found, now: datetime) -> dict[str, int]:
    """Signups' part: profiles and bookings anonymised (ids, statuses and counts stay), held
    sign-ups and kept answers that name the person dropped."""
    counts: dict[str, int] = {"donors": 0}
    for donor_id in found.donor_ids:
        await storage.erase_donor(conn, donor_id, now)
        counts["donors"] += 1
    counts["bookings"] = rows(
        await conn.execute(
            "UPDATE bookings SET name = 'erased', email = 'erased+' || booking_id || '@invalid'"
            " WHERE booking_id = ANY($1::text[])",
            found.booking_ids,
        )
    )
    # What they wrote about an event; the rating stays in the event's average.
    counts["booking_feedback"] = rows(
        await conn.execute(
            "UPDATE booking_feedback SET comment = '' WHERE booking_id = ANY($1::text[]) AND comment <> ''",
            found.booking_ids,
        )
    )
    counts["pending_signups"] = rows(
        await conn.execute("DELETE FROM pending_signups WHERE pending_id = ANY($1::text[])", found.pending_ids)
    )
    counts["idempotency_keys"] = await forget_answers(conn, found.needles)
    counts["outbox_dead_letters"] = await forget_parked_events(conn, found.needles)
    return counts


async def request(
    uow: Transactions,
    caller: Caller,
    person: PersonToErase,
    hasher: PersonHasher,
    now: datetime,
    *,
    asked_by: str,
) -> dict[str, Any]:
    """Record the request, erase signups' part at once and ask every other service for theirs.

    A second request for a person whose request is still running answers with that one."""
    federation_id = caller.federation_id
    async with uow(caller.tenant) as tx:
        email = await _email_of(tx.conn, federation_id, person)
        person_hash = hasher.of(email)
        running = await tx.conn.fetchval(
            "SELECT request_id FROM erasure_requests WHERE federation_id = $1 AND person_hash = $2"
            " AND done_at IS NULL ORDER BY requested_at DESC LIMIT 1",
            federation_id,
            person_hash,
        )
        if running is not None:
            return await _view(tx.conn, federation_id, running)
        found = await _find(tx.conn, federation_id, email, person)
        request_id = new_id("era")
        expected = list(PRIVACY.consumers)
        await tx.conn.execute(
            "INSERT INTO erasure_requests (request_id, federation_id, person_hash, asked_by, donor_ids, booking_ids,"
            " pending_ids, expected, requested_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            request_id,
            federation_id,
            person_hash,
            asked_by,
            found.donor_ids,
            found.booking_ids,
            found.pending_ids,
            expected,
            now,
        )
        counts = await _erase_here(tx.conn, found, now)
        # Crypto-shredding: every record about the person on Kafka, wherever it is kept, now opens as erased.
        subjects = erased_subjects(found.donor_ids, person_hash)
        counts["person_keys"] = await person_keys.destroy(tx.conn, federation_id, subjects, now)
        await _record(tx.conn, federation_id, request_id, SERVICE, counts, now)
        # The donor records end as an erasing withdrawal does: consumers of pitchin.donors.v1
        # (and organisations' webhooks) see the donor leave, by id only.
        for donor_id in found.donor_ids:
            withdrawn = DonorWithdrawnV1(federation_id=federation_id, donor_id=donor_id, erase=True, withdrawn_at=now)
            await tx.emit(withdrawn, key=donor_id, subject=f"donors/{donor_id}")
        event = ErasureRequestedV1(
            federation_id=federation_id,
            request_id=request_id,
            person_hash=person_hash,
            donor_ids=found.donor_ids,
            booking_ids=found.booking_ids,
            pending_ids=found.pending_ids,
            requested_at=now,
        )
        await tx.emit(event, key=request_id, subject=f"erasure-requests/{request_id}")
        return await _view(tx.conn, federation_id, request_id)


async def _record(
    conn: Conn, federation_id: str, request_id: str, service: str, counts: dict[str, int], at: datetime
) -> None:
    await conn.execute(
        "INSERT INTO erasure_progress (request_id, federation_id, service, counts, completed_at)"
        " VALUES ($1, $2, $3, $4::jsonb, $5) ON CONFLICT DO NOTHING",
        request_id,
        federation_id,
        service,
        json.dumps(counts),
        at,
    )
    # Done once every expected service has reported (this one included).
    await conn.execute(
        "UPDATE erasure_requests r SET done_at = $2 WHERE r.request_id = $1 AND r.done_at IS NULL"
        " AND NOT EXISTS (SELECT 1 FROM unnest(r.expected) s(service) WHERE NOT EXISTS"
        " (SELECT 1 FROM erasure_progress p WHERE p.request_id = r.request_id AND p.service = s.service))",
        request_id,
        at,
    )


async def record_completion(uow: Transactions, event: CloudEvent, data: ErasureCompletedV1) -> bool:
    """A service reported its part of a request."""
    async with uow(Tenant(data.federation_id)) as tx:
        if not await tx.first_delivery(event):
            return False
        await _record(tx.conn, data.federation_id, data.request_id, data.service, dict(data.counts), data.completed_at)
        return True


async def _view(conn: Conn, federation_id: str, request_id: str) -> dict[str, Any]:
    row = await conn.fetchrow(
        "SELECT request_id, asked_by, expected, requested_at, done_at FROM erasure_requests"
        " WHERE federation_id = $1 AND request_id = $2",
        federation_id,
        request_id,
    )
    if row is None:
        raise NotFound("erasure request", request_id)
    reported = {
        r["service"]: r
        for r in await conn.fetch(
            "SELECT service, counts::text AS counts, completed_at FROM erasure_progress WHERE request_id = $1",
            request_id,
        )
    }
    services = {
        name: (
            {
                "status": "done",
                "counts": json.loads(reported[name]["counts"]),
                "completed_at": reported[name]["completed_at"],
            }
            if name in reported
            else {"status": "waiting"}
        )
        for name in row["expected"]
    }
    return {
        "request_id": row["request_id"],
        "status": "done" if row["done_at"] is not None else "in-progress",
        "asked_by": row["asked_by"],
        "requested_at": row["requested_at"],
        "done_at": row["done_at"],
        "services": services,
    }


async def get(uow: Transactions, caller: Caller, request_id: str) -> dict[str, Any]:
    async with uow(caller.tenant, readonly=True) as tx:
        return await _view(tx.conn, caller.federation_id, request_id)


# What signups keeps and for how long (docs/privacy.md), enforced by pitchin_core.retention.
RETENTION: tuple[Rule, ...] = (
    Rule(
        table="pending_signups",
        keeps="until the confirmation link expires",
        statement=(
            "DELETE FROM pending_signups WHERE pending_id IN (SELECT pending_id FROM pending_signups"
            " WHERE expires_at <= now() ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)"
        ),
    ),
    Rule(
        table="bookings",
        keeps="the name and email until a year after the event; the place, counted, for good",
        statement=(
            "UPDATE bookings SET name = 'expired', email = 'expired+' || booking_id || '@invalid'"
            " WHERE booking_id IN (SELECT b.booking_id FROM bookings b JOIN known_events e USING (event_id)"
            " WHERE e.starts_at < now() - interval '365 days' AND b.email NOT LIKE '%@invalid'"
            " LIMIT $1 FOR UPDATE OF b SKIP LOCKED)"
        ),
    ),
    Rule(
        table="erasure_requests",
        keeps="6 years (hash and ids only): proof that a person was forgotten",
        statement=(
            "DELETE FROM erasure_requests WHERE request_id IN (SELECT request_id FROM erasure_requests"
            " WHERE requested_at < now() - interval '6 years' LIMIT $1 FOR UPDATE SKIP LOCKED)"
        ),
    ),
    PARKED_EVENTS,
)


async def export(
    uow: Transactions, caller: Caller, asked: SubjectAccessAsked, hasher: PersonHasher | None
) -> dict[str, Any]:
    """Subject access: everything signups holds about the person, and the ids the others search by."""
    assert hasher is not None, "signups holds the donor-link secret the hash key is derived from"
    async with uow(caller.tenant, readonly=True) as tx:
        found = await _find(tx.conn, caller.federation_id, asked.email, PersonToErase(email=asked.email))
        donor_ids = sorted({*found.donor_ids, *asked.donor_ids})
        booking_ids = sorted({*found.booking_ids, *asked.booking_ids})
        conn = tx.conn
        tables = {
            "donors": await rows_of(
                conn,
                "SELECT donor_id, organisation_id, name, email, phone, profile::text AS profile_json, status,"
                " registered_at, updated_at FROM donors WHERE donor_id = ANY($1::text[])",
                donor_ids,
            ),
            "bookings": await rows_of(
                conn,
                "SELECT b.booking_id, b.event_id, e.title AS event_title, b.name, b.email, b.language, b.status,"
                " b.created_at, b.confirmed_at, b.cancelled_at, b.checked_in_at FROM bookings b"
                " JOIN known_events e USING (event_id) WHERE b.booking_id = ANY($1::text[]) ORDER BY b.created_at",
                booking_ids,
            ),
            "pending_signups": await rows_of(
                conn,
                "SELECT pending_id, email, signup::text AS signup_json, requested_at, expires_at, confirmed_at"
                " FROM pending_signups WHERE pending_id = ANY($1::text[])",
                found.pending_ids,
            ),
            "erasure_requests": await rows_of(
                conn,
                "SELECT request_id, asked_by, requested_at, done_at FROM erasure_requests"
                " WHERE federation_id = $1 AND person_hash = $2 ORDER BY requested_at",
                caller.federation_id,
                hasher.of(asked.email),
            ),
        }
    return {"ids": {"donor_ids": donor_ids, "booking_ids": booking_ids}, "tables": tables}
