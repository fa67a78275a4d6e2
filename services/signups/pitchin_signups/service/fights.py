"""Fights and their needs: opening, changing and closing them, and the needs' life cycle under assignments."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg

from pitchin_core.auth import Caller
from pitchin_core.contracts.cloudevents import CloudEvent
from pitchin_core.contracts.fights import (
    FightClosedV1,
    FightOpenedV1,
    NeedClosedV1,
    NeedOpenedV1,
    NeedStatus,
    NeedUpdatedV1,
)
from pitchin_core.contracts.matching import AssignmentConfirmedV1, AssignmentReleasedV1
from pitchin_core.db import Conn
from pitchin_core.errors import Conflict, NotFound
from pitchin_core.uow import Tenant, Transaction, Transactions
from pitchin_signups import storage
from pitchin_signups.domain.fights import (
    FightDraft,
    NeedChanges,
    NeedDraft,
    as_state,
    closed_need,
    open_fight,
    open_need,
    reassigned,
    status_for,
    updated_need,
)
from pitchin_signups.service import new_id, visible_to
from pitchin_signups.service.taxonomy import check_skills


async def start(
    uow: Transactions, caller: Caller, draft: FightDraft, now: datetime
) -> tuple[FightOpenedV1, list[NeedOpenedV1]]:
    fight, needs = open_fight(
        draft,
        fight_id=new_id("fgt"),
        need_ids=[new_id("ned") for _ in draft.needs],
        federation_id=caller.federation_id,
        organisation_id=caller.organisation_id,
        now=now,
    )
    async with uow(caller.tenant) as tx:
        for i, need in enumerate(needs):
            await check_skills(
                tx.conn,
                caller.federation_id,
                [s.skill for s in need.required_skills] + need.nice_to_have,
                f"needs.{i}.required_skills",
            )
        await storage.insert_fight(tx.conn, fight)
        await tx.emit(fight, key=fight.fight_id, subject=f"fights/{fight.fight_id}")
        for need in needs:
            await storage.save_need(tx.conn, as_state(need), need.opened_at)
            await tx.emit(need, key=need.need_id, subject=f"needs/{need.need_id}")
    return fight, needs


async def find(
    uow: Transactions, caller: Caller, after: tuple[datetime, str] | None, limit: int
) -> list[dict[str, Any]]:
    return [dict(r) for r in await visible_to(uow, caller, storage.list_fights, after, limit)]


async def _own_open_fight(conn: Conn, caller: Caller, fight_id: str, if_closed: str, title: str) -> asyncpg.Record:
    """The caller's fight, refused as a conflict (`if_closed`, `title`) once it is closed."""
    row = await storage.get_fight(conn, caller.federation_id, fight_id)
    if row is None or not caller.can_act_for(row["federation_id"], row["organisation_id"]):
        raise NotFound("fight", fight_id)
    if row["status"] != "open":
        raise Conflict(if_closed, title=title)
    return row


async def add_need(uow: Transactions, caller: Caller, fight_id: str, draft: NeedDraft, now: datetime) -> NeedOpenedV1:
    async with uow(caller.tenant) as tx:
        row = await _own_open_fight(
            tx.conn, caller, fight_id, f"Fight {fight_id} is closed; open a new one.", title="Fight closed"
        )
        fight = FightOpenedV1(
            federation_id=row["federation_id"],
            organisation_id=row["organisation_id"],
            fight_id=fight_id,
            kind=row["kind"],
            title=row["title"],
            causes=row["causes"],
            opened_at=row["opened_at"],
        )
        need = open_need(draft, fight, need_id=new_id("ned"), now=now)
        await check_skills(tx.conn, caller.federation_id, [s.skill for s in need.required_skills], "required_skills")
        await storage.save_need(tx.conn, as_state(need), now)
        await tx.emit(need, key=need.need_id, subject=f"needs/{need.need_id}")
    return need


async def _need_row(conn: Conn, caller: Caller, need_id: str, *, for_update: bool = False) -> asyncpg.Record:
    row = await storage.get_need(conn, caller.federation_id, need_id, for_update=for_update)
    if row is None or not caller.can_act_for(row["federation_id"], row["organisation_id"]):
        raise NotFound("need", need_id)
    return row


async def _own_need(conn: Conn, caller: Caller, need_id: str) -> tuple[asyncpg.Record, NeedUpdatedV1]:
    row = await _need_row(conn, caller, need_id, for_update=True)
    return row, NeedUpdatedV1.model_validate_json(row["state"])


async def get_need(uow: Transactions, caller: Caller, need_id: str) -> dict[str, Any]:
    async with uow(caller.tenant, readonly=True) as tx:
        row = await _need_row(tx.conn, caller, need_id)
    return {**json.loads(row["state"]), "assigned_donors": row["assigned_donors"]}


async def find_needs(
    uow: Transactions,
    caller: Caller,
    *,
    status: str | None,
    urgency: str | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[dict[str, Any]]:
    rows = await visible_to(uow, caller, storage.list_needs, status=status, urgency=urgency, after=after, limit=limit)
    return [
        {**json.loads(r["state"]), "assigned_donors": r["assigned_donors"], "opened_at": r["opened_at"]} for r in rows
    ]


async def change_need(
    uow: Transactions, caller: Caller, need_id: str, changes: NeedChanges, now: datetime
) -> NeedUpdatedV1:
    async with uow(caller.tenant) as tx:
        row, current = await _own_need(tx.conn, caller, need_id)
        if changes.required_skills:
            await check_skills(
                tx.conn, caller.federation_id, [s.skill for s in changes.required_skills], "required_skills"
            )
        wanted = changes.donors_wanted or current.donors_wanted
        need = updated_need(current, changes, status=status_for(len(row["assigned_donors"]), wanted), now=now)
        await storage.save_need(tx.conn, need, row["opened_at"])
        await tx.emit(need, key=need_id, subject=f"needs/{need_id}")
    return need


async def close_need(uow: Transactions, caller: Caller, need_id: str, now: datetime) -> NeedClosedV1:
    async with uow(caller.tenant) as tx:
        row, current = await _own_need(tx.conn, caller, need_id)
        return await _close_need(tx, row["opened_at"], current, NeedStatus.closed, now)


async def _close_need(
    tx: Transaction, opened_at: datetime, current: NeedUpdatedV1, status: NeedStatus, now: datetime
) -> NeedClosedV1:
    state, fact = closed_need(current, status, now=now)
    await storage.save_need(tx.conn, state, opened_at)
    await tx.emit(fact, key=current.need_id, subject=f"needs/{current.need_id}")
    return fact


async def close(uow: Transactions, caller: Caller, fight_id: str, outcome: str, now: datetime) -> FightClosedV1:
    """Close a fight; its live needs are cancelled with it, in the same transaction."""
    async with uow(caller.tenant) as tx:
        row = await _own_open_fight(tx.conn, caller, fight_id, f"Fight {fight_id} is closed.", title="Already closed")
        for need in await storage.live_needs_of_fight(tx.conn, fight_id):
            current = NeedUpdatedV1.model_validate_json(need["state"])
            await _close_need(tx, need["opened_at"], current, NeedStatus.cancelled, now)
        await storage.close_fight(tx.conn, fight_id, now)
        event = FightClosedV1(
            federation_id=row["federation_id"],
            organisation_id=row["organisation_id"],
            fight_id=fight_id,
            outcome=outcome,
            closed_at=now,
        )
        await tx.emit(event, key=fight_id, subject=f"fights/{fight_id}")
    return event


async def apply_assignment(
    uow: Transactions, event: CloudEvent, data: AssignmentConfirmedV1 | AssignmentReleasedV1, now: datetime
) -> bool:
    """Record who matching assigned to a need, and move the need's status as the domain decides."""
    async with uow(Tenant(data.federation_id, data.organisation_id)) as tx:
        if not await tx.first_delivery(event):
            return False
        row = await storage.get_need(tx.conn, data.federation_id, data.need_id, for_update=True)
        if row is None:
            return True  # a need we never opened: nothing to move
        current = NeedUpdatedV1.model_validate_json(row["state"])
        moved = reassigned(current, row["assigned_donors"], data, now=now)
        if moved is None:
            return True
        await storage.set_assigned(tx.conn, data.need_id, moved.assigned)
        if moved.need is not None:
            await storage.save_need(tx.conn, moved.need, row["opened_at"])
        for fact in moved.events:
            await tx.emit(fact, key=data.need_id, subject=f"needs/{data.need_id}")
        return True
