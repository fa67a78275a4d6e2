"""Hours the donor logs on confirmed work, and the organisation's confirmation: the use cases.

Only the donor logs their own hours (their offer email's donor token, or the web front with their
signed link); only the organisation whose need it is (or federation staff) confirms or adjusts
them. Each step is one transaction with its fact on pitchin.matches.v1, keyed by need id like
every assignment fact: `hours.logged`, `hours.confirmed`. Rules: `domain.hours`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from pitchin_core.auth import Caller
from pitchin_core.contracts.matching import HoursConfirmedV1, HoursLoggedV1
from pitchin_core.errors import NotFound
from pitchin_core.uow import Transaction
from pitchin_matching import storage
from pitchin_matching.domain.hours import (
    HoursConfirmation,
    HoursLog,
    WorkHours,
    awaiting,
    check_can_log,
    confirm,
    counted,
    total,
)
from pitchin_matching.service import Matching, _donor_tenant


def _facts(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "federation_id": row["federation_id"],
        "organisation_id": row["organisation_id"],
        "offer_id": row["assignment_id"],
        "need_id": row["need_id"],
        "fight_id": row["fight_id"],
        "donor_id": row["donor_id"],
    }


async def _emit(tx: Transaction, data: HoursLoggedV1 | HoursConfirmedV1, row: asyncpg.Record) -> None:
    await tx.emit(data, key=row["need_id"], subject=f"assignments/{row['assignment_id']}")


async def log_hours(m: Matching, donor_id: str, assignment_id: str, log: HoursLog, now: datetime) -> dict[str, Any]:
    """The donor logs time given on their confirmed work; it counts once the organisation confirms it."""
    tenant = await _donor_tenant(m, donor_id, None)
    async with m.uow(tenant) as tx:
        await storage.lock_donor_hours(tx.conn, donor_id)
        assignment = await storage.get_assignment(tx.conn, assignment_id, lock=True)
        if assignment is None or assignment["donor_id"] != donor_id:
            raise NotFound("assignment", assignment_id, detail=f"The donor has no work {assignment_id}.")
        that_day = await storage.hours_of_donor_day(tx.conn, donor_id, log.worked_on)
        hours = check_can_log(assignment["status"], assignment["accepted_at"], log, that_day, now)
        log_id = f"hrs_{uuid.uuid4().hex[:20]}"
        note = log.note.strip()
        await storage.insert_hour_log(tx.conn, log_id, assignment, log.worked_on, hours, note, now)
        logged = HoursLoggedV1(
            **_facts(assignment), log_id=log_id, worked_on=log.worked_on, hours=hours, note=note, logged_at=now
        )
        await _emit(tx, logged, assignment)
    return {
        "log_id": log_id,
        "assignment_id": assignment_id,
        "worked_on": log.worked_on,
        "hours": hours,
        "note": note,
        "status": "logged",
        "logged_at": now,
    }


async def confirm_hours(
    m: Matching, caller: Caller, log_id: str, confirmation: HoursConfirmation, now: datetime
) -> dict[str, Any]:
    """The organisation confirms logged hours, as logged or adjusted (`hours`): from now they count."""
    async with m.uow(caller.tenant) as tx:
        found = await storage.get_hour_log(tx.conn, log_id)
        if found is None or not caller.can_act_for(found["federation_id"], found["organisation_id"]):
            raise NotFound("hours", log_id, detail=f"No logged hours {log_id} for this organisation.")
        await storage.lock_donor_hours(tx.conn, found["donor_id"])
        row = await storage.get_hour_log(tx.conn, log_id, lock=True)
        assert row is not None  # logs are never deleted
        others = await storage.hours_of_donor_day(tx.conn, row["donor_id"], row["worked_on"], besides=log_id)
        decided = confirm(row["status"], row["hours"], row["hours_confirmed"], confirmation, others)
        if decided is None:
            return _log_view(row)
        await storage.confirm_hour_log(tx.conn, log_id, decided.hours, decided.reason, now)
        confirmed = HoursConfirmedV1(
            **_facts(row),
            log_id=log_id,
            worked_on=row["worked_on"],
            hours_logged=row["hours"],
            hours=decided.hours,
            adjusted=decided.adjusted,
            reason=decided.reason,
            confirmed_at=now,
        )
        await _emit(tx, confirmed, row)
        stored = await storage.get_hour_log(tx.conn, log_id)
        assert stored is not None
    return _log_view(stored)


def _log_view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        k: row[k]
        for k in (
            "log_id",
            "assignment_id",
            "need_id",
            "donor_id",
            "worked_on",
            "hours",
            "note",
            "logged_at",
            "status",
            "hours_confirmed",
            "reason",
            "confirmed_at",
        )
    }


async def of_donor(m: Matching, donor_id: str, caller: Caller | None) -> dict[str, Any]:
    """A donor's confirmed and completed work with the hours logged on it, for the donor (no caller)
    or an organiser of the work's organisation or federation staff (`caller`)."""
    tenant = await _donor_tenant(m, donor_id, caller)
    async with m.uow(tenant, readonly=True) as tx:
        works = await storage.work_of_donor(tx.conn, tenant.federation_id, donor_id)
        logs = await storage.hour_logs_of_donor(tx.conn, tenant.federation_id, donor_id)
    if caller is not None:
        # An organiser sees the work and hours of its own organisation's needs only.
        works = [w for w in works if caller.can_act_for(tenant.federation_id, w["organisation_id"])]
    by_work: dict[str, list[dict[str, Any]]] = {}
    for log in logs:
        by_work.setdefault(log["assignment_id"], []).append(_log_view(log))
    items = []
    sums = [WorkHours(w["status"], w["hours_given"], w["confirmed_logs"], w["pending_logs"]) for w in works]
    for w, hours in zip(works, sums, strict=True):
        items.append(
            {
                **{k: w[k] for k in ("assignment_id", "need_id", "need_title", "organisation_id", "status")},
                "hours_counted": counted(hours),
                "hours_awaiting_confirmation": awaiting(hours),
                # Hours are logged on work in progress: once marked done its final figure stands.
                "may_log": w["status"] == "confirmed",
                "logs": by_work.get(w["assignment_id"], []),
            }
        )
    return {"donor_id": donor_id, "hours_counted": total(sums), "work": items}


async def of_need(m: Matching, caller: Caller, need_id: str) -> dict[str, Any]:
    """The hours logged on a need's work, for its organisation (to confirm or adjust) and federation staff."""
    async with m.uow(caller.tenant, readonly=True) as tx:
        need = await storage.get_need(tx.conn, need_id)
        if need is None or not caller.can_act_for(need["federation_id"], need["organisation_id"]):
            raise NotFound("need", need_id)
        logs = await storage.hour_logs_of_need(tx.conn, need_id)
    return {"need_id": need_id, "logs": [_log_view(r) for r in logs]}
