"""Scheduling's use cases: one function per command, one transaction each."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from pitchin_core.auth import Caller
from pitchin_core.contracts.scheduling import EventCreatedV1
from pitchin_core.http import Problem
from pitchin_core.outbox import add_to_outbox
from pitchin_scheduling import storage
from pitchin_scheduling.domain.events import EventDraft, EventRefused, create_event

SOURCE = "/pitchin/scheduling"


async def schedule_event(pool: asyncpg.Pool, caller: Caller, draft: EventDraft, now: datetime) -> EventCreatedV1:
    try:
        event = create_event(draft, federation_id=caller.federation_id, organisation_id=caller.organisation_id, now=now)
    except EventRefused as exc:
        raise Problem(
            422,
            "Event refused",
            f"{exc.field}: {exc}",
            kind="/problems/validation",
            errors=[{"field": exc.field, "message": str(exc)}],
        ) from exc
    async with pool.acquire() as conn, conn.transaction():
        await storage.insert_event(conn, event, draft)
        await add_to_outbox(conn, event, source=SOURCE, key=event.event_id, subject=f"events/{event.event_id}")
    return event
