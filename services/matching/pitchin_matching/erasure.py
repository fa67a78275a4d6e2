"""Matching's part of a person's erasure (issue 19, pitchin.privacy.v1).

Matching never holds a name or an address: it holds a donor's profile (skills, places, times)
and what the donor wrote or was written (a decline's reason, the thanks of completed work).
Those go; the ids, statuses and hours stay, so the federation's totals and the donor's hours
are still right, attached to an id that no longer names anyone. Offers are cancelled and
assignments released by the `donor.withdrawn{erase}` signups emits with the request.
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
from pitchin_matching import storage
from pitchin_matching.domain.donors import WITHDRAWN_VERSION

SERVICE = "matching"


async def erase(uow: Transactions, event: CloudEvent, data: ErasureRequestedV1) -> bool:
    now = datetime.now(UTC)
    async with uow(Tenant(data.federation_id)) as tx:
        if not await tx.first_delivery(event):
            return False
        # The federation's lock first, as every matching write takes it (service.py): no deadlock
        # with a matching pass that is offering this donor work right now.
        await storage.lock_federation(tx.conn, data.federation_id)
        counts = {"donors": 0}
        for donor_id in data.donor_ids:
            await storage.donor_version(tx.conn, donor_id)  # the donor's row lock
            await storage.withdraw_donor(tx.conn, donor_id, data.federation_id, WITHDRAWN_VERSION, True, now)
            counts["donors"] += 1
        counts["offers"] = rows(
            await tx.conn.execute(
                "UPDATE offers SET reason = '', changed_by = pg_current_xact_id()"
                " WHERE donor_id = ANY($1::text[]) AND reason <> ''",
                data.donor_ids,
            )
        )
        counts["assignments"] = rows(
            await tx.conn.execute(
                "UPDATE assignments SET thanks = '', reason = '', changed_by = pg_current_xact_id()"
                " WHERE donor_id = ANY($1::text[]) AND (thanks <> '' OR reason <> '')",
                data.donor_ids,
            )
        )
        # The donor's own words on the hours they logged, and the organiser's reply; the hours stay.
        counts["hour_logs"] = rows(
            await tx.conn.execute(
                "UPDATE hour_logs SET note = '', reason = ''"
                " WHERE donor_id = ANY($1::text[]) AND (note <> '' OR reason <> '')",
                data.donor_ids,
            )
        )
        needles = needles_of(data.donor_ids)
        await finish_erasure(tx, data, SERVICE, counts, needles, now)
        return True


# A donor's record (offers, work, hours, thanks) is theirs to show for as long as they are a
# donor; erasure ends it. Only parked outbox rows expire by time (docs/privacy.md).
RETENTION: tuple[Rule, ...] = (PARKED_EVENTS,)


async def export(
    uow: Transactions, caller: Caller, asked: SubjectAccessAsked, hasher: PersonHasher | None
) -> dict[str, Any]:
    """Subject access: the donor's profile as matching holds it, their offers and their work."""
    async with uow(caller.tenant, readonly=True) as tx:
        conn, donors = tx.conn, list(asked.donor_ids)
        tables = {
            "donors": await rows_of(
                conn,
                "SELECT donor_id, status, time_zone, hours_per_week, remote, latitude, longitude, country, languages,"
                " causes, windows_utc, registered_at FROM donors WHERE donor_id = ANY($1::text[])",
                donors,
            ),
            "donor_skills": await rows_of(
                conn, "SELECT donor_id, skill, level FROM donor_skills WHERE donor_id = ANY($1::text[])", donors
            ),
            "offers": await rows_of(
                conn,
                "SELECT offer_id, need_id, donor_id, status, score, explanation::text AS explanation_json, made_at,"
                " expires_at, answered_at, reason FROM offers WHERE donor_id = ANY($1::text[]) ORDER BY made_at",
                donors,
            ),
            "assignments": await rows_of(
                conn,
                "SELECT assignment_id, need_id, donor_id, status, accepted_at, confirmed_at, completed_at,"
                " hours_given::float8 AS hours_given, thanks, released_at, reason FROM assignments"
                " WHERE donor_id = ANY($1::text[]) ORDER BY accepted_at",
                donors,
            ),
        }
    return {"tables": tables}
