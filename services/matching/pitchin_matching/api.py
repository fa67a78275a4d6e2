"""Matching's HTTP routes: what matching knows of a donor (organisers' view, no contact details)."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
from fastapi import APIRouter, Request

from pitchin_core.auth import CallerDep
from pitchin_core.http import Problem
from pitchin_matching import storage

router = APIRouter(prefix="/v1", tags=["matching"])


@router.get("/donors/{donor_id}")
async def donor_profile(donor_id: str, caller: CallerDep, request: Request) -> dict[str, Any]:
    pool: asyncpg.Pool = request.app.state.runtime.pool
    row = await storage.donor_with_skills(pool, caller.federation_id, donor_id)
    if row is None:
        raise Problem(404, "Not found", f"Matching knows no donor {donor_id} in this federation.")
    return {**{k: row[k] for k in row.keys() if k != "skills"}, "skills": json.loads(row["skills"])}
