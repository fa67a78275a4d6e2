"""Scheduling's HTTP routes: parse, call the service layer, map errors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
from fastapi import APIRouter, Request, Response, status

from pitchin_core.auth import CallerDep
from pitchin_core.contracts.scheduling import EventCreatedV1
from pitchin_core.http import Problem
from pitchin_scheduling import service, storage
from pitchin_scheduling.domain.events import EventDraft, to_icalendar

router = APIRouter(prefix="/v1", tags=["events"])


def _pool(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.runtime.pool
    return pool


@router.post("/events", status_code=status.HTTP_201_CREATED, response_model=EventCreatedV1)
async def create(draft: EventDraft, caller: CallerDep, request: Request, response: Response) -> Any:
    event = await service.schedule_event(_pool(request), caller, draft, datetime.now(UTC))
    response.headers["Location"] = f"/v1/events/{event.event_id}"
    return event


# Declared before /events/{event_id}, which would otherwise swallow the .ics suffix.
@router.get("/events/{event_id}.ics", response_class=Response)
async def calendar(event_id: str, request: Request) -> Response:
    """Public: anyone with the link can add a published event to their calendar."""
    row = await storage.get_public_event(_pool(request), event_id)
    if row is None:
        raise Problem(404, "Not found", f"No published event {event_id}.")
    event = EventCreatedV1.model_validate({k: row[k] for k in EventCreatedV1.model_fields if k in row.keys()})
    base_url = request.app.state.runtime.settings.public_base_url
    body = to_icalendar([event], public_base_url=base_url, now=datetime.now(UTC))
    return Response(body, media_type="text/calendar; charset=utf-8")


@router.get("/events/{event_id}")
async def get(event_id: str, caller: CallerDep, request: Request) -> dict[str, Any]:
    row = await storage.get_event(_pool(request), caller.federation_id, event_id)
    if row is None or not caller.can_act_for(row["federation_id"], row["organisation_id"]):
        raise Problem(404, "Not found", f"No event {event_id} here.")
    return dict(row)
