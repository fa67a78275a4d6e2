"""Notifications' HTTP routes: the delivery log, for the organisation it belongs to."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Query, Request

from pitchin_core.auth import CallerDep
from pitchin_notifications import storage

router = APIRouter(prefix="/v1", tags=["deliveries"])


@router.get("/deliveries")
async def delivery_log(
    caller: CallerDep,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[datetime | None, Query(description="Cursor: created_at of the last row seen")] = None,
) -> dict[str, Any]:
    pool: asyncpg.Pool = request.app.state.runtime.pool
    rows = await storage.list_deliveries(pool, caller.federation_id, caller.organisation_id, limit, before)
    items = [dict(r) for r in rows]
    next_cursor = items[-1]["created_at"].isoformat() if len(items) == limit else None
    return {"items": items, "next": next_cursor}
