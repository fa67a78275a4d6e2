"""Signups' HTTP routes: parse, call the service layer, map errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import asyncpg
from fastapi import APIRouter, Request, Response, status

from pitchin_core.auth import CallerDep
from pitchin_core.contracts.donors import DonorRegisteredV1
from pitchin_core.http import Problem
from pitchin_signups import service, storage
from pitchin_signups.domain.donors import DonorSignup

router = APIRouter(prefix="/v1", tags=["donors"])


def _pool(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.runtime.pool
    return pool


@router.post("/donors", status_code=status.HTTP_201_CREATED, response_model=DonorRegisteredV1)
async def sign_up_donor(signup: DonorSignup, caller: CallerDep, request: Request, response: Response) -> Any:
    donor = await service.register_donor(_pool(request), caller, signup, datetime.now(UTC))
    response.headers["Location"] = f"/v1/donors/{donor.donor_id}"
    return donor


@router.get("/donors/{donor_id}")
async def get_donor(donor_id: str, caller: CallerDep, request: Request) -> dict[str, Any]:
    row = await storage.get_donor(_pool(request), caller.federation_id, donor_id)
    if row is None or not caller.can_act_for(row["federation_id"], row["organisation_id"]):
        raise Problem(404, "Not found", f"No donor {donor_id} here.")
    return {**{k: row[k] for k in row.keys() if k != "profile"}, **json.loads(row["profile"])}
