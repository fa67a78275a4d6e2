"""Scheduling's part of a person's erasure (issue 19, pitchin.privacy.v1).

Scheduling knows a person as an attendee (name and email, per booking) and by their private
calendar feed (keyed by email). The attendee rows stay for the events' counts, anonymised and
stamped `updated_at = infinity` so no booking fact still in flight can write the name back
(record_attendee keeps the last state only); the feed goes, so its link answers 404.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pitchin_core.auth import Caller
from pitchin_core.contracts.cloudevents import CloudEvent
from pitchin_core.contracts.privacy import ErasureRequestedV1
from pitchin_core.erasure import PersonHasher, finish_erasure, needles_of, rows
from pitchin_core.retention import PARKED_EVENTS, Rule
from pitchin_core.subject_access import SubjectAccessAsked, rows_of
from pitchin_core.uow import Tenant, Transactions

SERVICE = "scheduling"


async def erase(uow: Transactions, hasher: PersonHasher, event: CloudEvent, data: ErasureRequestedV1) -> bool:
    now = datetime.now(UTC)
    async with uow(Tenant(data.federation_id)) as tx:
        if not await tx.first_delivery(event):
            return False
        conn = tx.conn
        attendees = await conn.fetch(
            "SELECT booking_id, email FROM attendees WHERE booking_id = ANY($1::text[]) OR donor_id = ANY($2::text[])"
            f" OR {hasher.sql('email', 4, 5)} = $3",
            data.booking_ids,
            data.donor_ids,
            data.person_hash,
            hasher.inner,
            hasher.outer,
        )
        emails = sorted({r["email"].lower() for r in attendees if r["email"]})
        counts: dict[str, int] = {}
        counts["person_feeds"] = rows(
            await conn.execute(
                f"DELETE FROM person_feeds WHERE email = ANY($1::text[]) OR {hasher.sql('email', 3, 4)} = $2",
                emails,
                data.person_hash,
                hasher.inner,
                hasher.outer,
            )
        )
        counts["attendees"] = rows(
            await conn.execute(
                "UPDATE attendees SET name = 'erased', email = 'erased+' || booking_id || '@invalid',"
                " updated_at = 'infinity' WHERE booking_id = ANY($1::text[])",
                [r["booking_id"] for r in attendees],
            )
        )
        needles = needles_of(emails, data.donor_ids, data.booking_ids)
        await finish_erasure(tx, data, SERVICE, counts, needles, now)
        return True


# What scheduling keeps and for how long (docs/privacy.md), enforced by pitchin_core.retention.
RETENTION: tuple[Rule, ...] = (
    Rule(
        table="attendees",
        keeps="the name and email until a year after the event ended; the place, counted, for good",
        statement=(
            "UPDATE attendees SET name = 'expired', email = 'expired+' || booking_id || '@invalid',"
            " updated_at = 'infinity' WHERE booking_id IN (SELECT a.booking_id FROM attendees a JOIN events e"
            " USING (event_id) WHERE e.ends_at < now() - interval '365 days' AND a.updated_at <> 'infinity'"
            " LIMIT $1 FOR UPDATE OF a SKIP LOCKED)"
        ),
    ),
    Rule(
        table="person_feeds",
        keeps="while the person has a booking whose name and email are kept",
        statement=(
            "DELETE FROM person_feeds WHERE token IN (SELECT f.token FROM person_feeds f WHERE NOT EXISTS"
            " (SELECT 1 FROM attendees a WHERE a.federation_id = f.federation_id AND lower(a.email) = f.email)"
            " LIMIT $1 FOR UPDATE SKIP LOCKED)"
        ),
    ),
    PARKED_EVENTS,
)


async def export(
    uow: Transactions, caller: Caller, asked: SubjectAccessAsked, hasher: PersonHasher | None
) -> dict[str, Any]:
    """Subject access: the person's bookings as scheduling knows them, and whether they have a
    private calendar feed (its token is a credential: shown masked)."""
    email = asked.email.lower()
    async with uow(caller.tenant, readonly=True) as tx:
        attendees = await rows_of(
            tx.conn,
            "SELECT booking_id, event_id, donor_id, name, email, status, updated_at FROM attendees"
            " WHERE booking_id = ANY($1::text[]) OR donor_id = ANY($2::text[]) OR lower(email) = $3",
            asked.booking_ids,
            asked.donor_ids,
            email,
        )
        feeds = await rows_of(
            tx.conn,
            "SELECT email, left(token, 4) || '…' AS token, created_at FROM person_feeds"
            " WHERE federation_id = $1 AND email = $2",
            caller.federation_id,
            email,
        )
    return {"tables": {"attendees": attendees, "person_feeds": feeds}}
