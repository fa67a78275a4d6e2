"""Notifications' part of a person's erasure (issue 19, pitchin.privacy.v1).

The request names the person by ids and by a keyed hash of their email. Notifications turns
those into the addresses it holds for them (the donor's copy, their bookings' attendee rows,
any delivery whose recipient hashes the same), then blanks every message to or about them:
recipient, subject, bodies, links, last error and the delivery's idempotency key (which
embeds the address). The rows stay, so counts and delivery statistics remain right.

Suppressions stay: they hold an address's SHA-256, not the address, and are what keeps an
unsubscribed or bounced address from being written to again (docs/privacy.md).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pitchin_core.auth import Caller
from pitchin_core.contracts.cloudevents import CloudEvent
from pitchin_core.contracts.privacy import ErasureRequestedV1
from pitchin_core.db import Conn
from pitchin_core.erasure import PersonHasher, finish_erasure, needles_of, rows
from pitchin_core.retention import PARKED_EVENTS, Rule
from pitchin_core.subject_access import SubjectAccessAsked, rows_of
from pitchin_core.uow import Tenant, Transactions
from pitchin_notifications.domain.unsubscribe import address_hash

SERVICE = "notifications"
# An erased donor's copy is at the last version there is: no update of theirs is newer.
ERASED_VERSION = 2**31 - 1


async def erase(uow: Transactions, hasher: PersonHasher, event: CloudEvent, data: ErasureRequestedV1) -> bool:
    now = datetime.now(UTC)
    async with uow(Tenant(data.federation_id)) as tx:
        if not await tx.first_delivery(event):
            return False
        conn = tx.conn
        # The person's rows are locked first (bookings before the donor, in the order a booking
        # fact's message takes them, so the two never deadlock), and anonymised before their
        # messages are looked for: a message being staged from them (which holds them FOR SHARE, see
        # service/messages.py) either commits before the search below and is found, or waits
        # for this transaction and then reads the erased rows.
        attendees = await conn.fetch(
            "SELECT booking_id, email FROM attendees WHERE booking_id = ANY($1::text[]) OR donor_id = ANY($2::text[])"
            f" OR {hasher.sql('email', 4, 5)} = $3 FOR UPDATE",
            data.booking_ids,
            data.donor_ids,
            data.person_hash,
            hasher.inner,
            hasher.outer,
        )
        people = await conn.fetch(
            "SELECT donor_id, email, phone FROM people WHERE donor_id = ANY($1::text[]) FOR UPDATE", data.donor_ids
        )
        addresses = [
            a.lower() for a in needles_of([r["email"] for r in (*people, *attendees)], [r["phone"] for r in people])
        ]
        needles = needles_of(addresses, data.donor_ids, data.booking_ids, data.pending_ids)
        counts: dict[str, int] = {}
        counts["attendees"] = rows(
            await conn.execute(
                "UPDATE attendees SET name = 'erased', email = 'erased+' || booking_id || '@invalid',"
                " status = 'cancelled', updated_at = now() WHERE booking_id = ANY($1::text[])",
                [r["booking_id"] for r in attendees],
            )
        )
        # A tombstone, not a delete: a donor.updated still in flight on pitchin.donors.v1 (another
        # topic, so in no order with this one) is older than it and changes nothing (upsert_person
        # keeps the newest version). The donor.withdrawn{erase} signups sent deletes it, after any
        # earlier fact of the donor (one partition per donor).
        counts["people"] = rows(
            await conn.execute(
                "INSERT INTO people (donor_id, federation_id, name, email, phone, email_ok, sms_ok, language,"
                " purposes, status, version) SELECT d, $2, 'erased', 'erased+' || d || '@invalid', NULL, false,"
                " false, 'en', '{}', 'withdrawn', $3 FROM unnest($1::text[]) d"
                " ON CONFLICT (donor_id) DO UPDATE SET name = excluded.name, email = excluded.email, phone = NULL,"
                " email_ok = false, sms_ok = false, time_zone = NULL, purposes = '{}', status = 'withdrawn',"
                " version = excluded.version, updated_at = now()",
                data.donor_ids,
                data.federation_id,
                ERASED_VERSION,
            )
        )
        counts["deliveries"] = counts["dead_letters"] = 0
        # Twice: a digest folding the person's held messages may commit while the first pass waits
        # on their rows; the second pass finds the digest it made.
        for _ in range(2):
            found = await _erase_messages(conn, hasher, data, addresses, needles)
            counts["deliveries"] += found[0]
            counts["dead_letters"] += found[1]
        counts["fanouts"] = rows(
            await conn.execute(
                "UPDATE fanouts SET data = '{}'::jsonb, done_at = coalesce(done_at, now())"
                " WHERE target = ANY($1::text[]) OR EXISTS"
                " (SELECT 1 FROM unnest($2::text[]) n WHERE strpos(data::text, n) > 0)",
                data.donor_ids,
                needles,
            )
        )
        await finish_erasure(tx, data, SERVICE, counts, needles, now)
        return True


async def _erase_messages(
    conn: Conn, hasher: PersonHasher, data: ErasureRequestedV1, addresses: list[str], needles: list[str]
) -> tuple[int, int]:
    """Blank every message to or about the person not blanked yet: (deliveries, dead letters) changed."""
    deliveries = [
        r["delivery_id"]
        for r in await conn.fetch(
            "SELECT delivery_id FROM deliveries WHERE idempotency_key NOT LIKE 'erased:%'"
            " AND (person_ref = ANY($1::text[]) OR lower(recipient) = ANY($2::text[])"
            f" OR (channel <> 'webhook' AND {hasher.sql('recipient', 5, 6)} = $3)"
            " OR EXISTS (SELECT 1 FROM unnest($4::text[]) n WHERE strpos(body_text, n) > 0))",
            data.donor_ids,
            addresses,
            data.person_hash,
            needles,
            hasher.inner,
            hasher.outer,
        )
    ]
    if not deliveries:
        return 0, 0
    dead_letters = rows(
        await conn.execute(
            "UPDATE dead_letters SET recipient = 'erased', reason = 'erased' WHERE delivery_id = ANY($1::uuid[])",
            deliveries,
        )
    )
    # A webhook's recipient is the organisation's endpoint, not the person: it stays. A message
    # still waiting is not sent blank: it is suppressed.
    changed = rows(
        await conn.execute(
            "UPDATE deliveries SET recipient = CASE WHEN channel = 'webhook' THEN recipient ELSE 'erased' END,"
            " subject = '', body_text = '', body_html = NULL, action_url = NULL, unsubscribe_url = NULL,"
            " last_error = NULL, idempotency_key = 'erased:' || delivery_id::text,"
            " status = CASE WHEN status IN ('pending', 'held') THEN 'suppressed' ELSE status END,"
            " updated_at = now() WHERE delivery_id = ANY($1::uuid[])",
            deliveries,
        )
    )
    return changed, dead_letters


# What notifications keeps and for how long (docs/privacy.md), enforced by pitchin_core.retention.
# A finished message keeps its row (channel, status, times: the delivery statistics) but not
# what it said nor to whom after 90 days: long enough to answer "did my email arrive?".
RETENTION: tuple[Rule, ...] = (
    Rule(
        table="deliveries",
        keeps="recipient, subject, bodies and links for 90 days after the message was finished",
        statement=(
            "UPDATE deliveries SET recipient = CASE WHEN channel = 'webhook' THEN recipient ELSE 'expired' END,"
            " subject = '', body_text = '', body_html = NULL, action_url = NULL, unsubscribe_url = NULL,"
            " last_error = NULL, idempotency_key = 'expired:' || delivery_id::text"
            " WHERE delivery_id IN (SELECT delivery_id FROM deliveries WHERE body_text <> ''"
            " AND status IN ('sent', 'dead', 'digested', 'suppressed') AND updated_at < now() - interval '90 days'"
            " ORDER BY updated_at LIMIT $1 FOR UPDATE SKIP LOCKED)"
        ),
    ),
    Rule(
        table="dead_letters",
        keeps="the recipient and reason for 90 days",
        statement=(
            "UPDATE dead_letters SET recipient = 'expired', reason = 'expired' WHERE delivery_id IN"
            " (SELECT delivery_id FROM dead_letters WHERE recipient <> 'expired'"
            " AND dead_at < now() - interval '90 days' LIMIT $1 FOR UPDATE SKIP LOCKED)"
        ),
    ),
    Rule(
        table="fanouts",
        keeps="30 days after the fan-out finished",
        statement=(
            "DELETE FROM fanouts WHERE fanout_id IN (SELECT fanout_id FROM fanouts"
            " WHERE done_at < now() - interval '30 days' LIMIT $1 FOR UPDATE SKIP LOCKED)"
        ),
    ),
    PARKED_EVENTS,
)


async def export(
    uow: Transactions, caller: Caller, asked: SubjectAccessAsked, hasher: PersonHasher | None
) -> dict[str, Any]:
    """Subject access: the person's contact copy, their bookings as known here, every message to
    or about them, and whether their address is suppressed."""
    email = asked.email.lower()
    async with uow(caller.tenant, readonly=True) as tx:
        conn = tx.conn
        people = await rows_of(
            conn,
            "SELECT donor_id, name, email, phone, email_ok, sms_ok, language, time_zone, purposes, status, updated_at"
            " FROM people WHERE donor_id = ANY($1::text[]) OR lower(email) = $2",
            asked.donor_ids,
            email,
        )
        attendees = await rows_of(
            conn,
            "SELECT booking_id, event_id, donor_id, name, email, language, status, updated_at FROM attendees"
            " WHERE booking_id = ANY($1::text[]) OR donor_id = ANY($2::text[]) OR lower(email) = $3",
            asked.booking_ids,
            asked.donor_ids,
            email,
        )
        addresses = needles_of([email], [p["phone"] for p in people])
        needles = needles_of(addresses, asked.donor_ids, asked.booking_ids)
        deliveries = await rows_of(
            conn,
            "SELECT delivery_id, event_type, channel, template, language, recipient, subject, body_text,"
            " action_url, status, attempts, last_error, created_at, sent_at FROM deliveries"
            " WHERE person_ref = ANY($1::text[]) OR lower(recipient) = ANY($2::text[])"
            " OR EXISTS (SELECT 1 FROM unnest($3::text[]) n WHERE strpos(body_text, n) > 0) ORDER BY created_at",
            asked.donor_ids,
            addresses,
            needles,
        )
        suppressions = await rows_of(
            conn,
            "SELECT channel, reason, created_at FROM suppressions WHERE federation_id = $1 AND address_hash = $2",
            caller.federation_id,
            address_hash(email),
        )
    return {
        "tables": {"people": people, "attendees": attendees, "deliveries": deliveries, "suppressions": suppressions}
    }
