"""Subject access (issue 19): every service answers, for one person, everything it holds about
them as JSON, found the way an erasure finds them (their email, and the ids signups knows them by).

Each service mounts `router_for(its_export)`: `POST /v1/subject-access`, federation staff only
(the federation is the controller that answers the person). Signups' answer also gives the
person's ids, which the other services' searches take.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from pitchin_core.auth import Caller, StaffDep
from pitchin_core.contracts.common import Email, Identifier
from pitchin_core.contracts.privacy import MAX_BOOKINGS, MAX_DONORS
from pitchin_core.db import Conn
from pitchin_core.erasure import PersonHasher, person_hasher
from pitchin_core.uow import Transactions


class SubjectAccessAsked(BaseModel):
    """Whose data: their email, and the ids signups' answer gave (optional)."""

    model_config = ConfigDict(extra="forbid")

    email: Email
    donor_ids: list[Identifier] = Field(default_factory=list, max_length=MAX_DONORS)
    booking_ids: list[Identifier] = Field(default_factory=list, max_length=MAX_BOOKINGS)


Export = Callable[[Transactions, Caller, SubjectAccessAsked, PersonHasher | None], Awaitable[dict[str, Any]]]


async def rows_of(conn: Conn, query: str, *args: Any) -> list[dict[str, Any]]:
    """The rows as plain dicts; a column selected as `…::text AS x_json` comes back parsed, as `x`."""
    out: list[dict[str, Any]] = []
    for record in await conn.fetch(query, *args):
        row: dict[str, Any] = {}
        for key, value in record.items():
            if key.endswith("_json"):
                row[key.removesuffix("_json")] = json.loads(value) if value is not None else None
            else:
                row[key] = value
        out.append(row)
    return out


def router_for(service: str, export: Export) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["privacy"])

    @router.post("/subject-access")
    async def subject_access(asked: SubjectAccessAsked, caller: StaffDep, request: Request) -> Any:
        """Everything this service holds about one person, as JSON. Federation staff only."""
        runtime = request.app.state.runtime
        # Only the services that search by the person's hash hold its secret (matching does not).
        hasher = person_hasher(runtime.settings) if getattr(runtime.settings, "donor_link_secret", "") else None
        tables = await export(runtime.uow, caller, asked, hasher)
        # Personal data: never kept by a cache, nor by the Idempotency-Key store (which honours no-store).
        return JSONResponse(jsonable_encoder({"service": service, **tables}), headers={"Cache-Control": "no-store"})

    return router
