"""Matching's use cases: one function per command, one transaction each."""

from __future__ import annotations

import asyncpg

from pitchin_core.contracts.cloudevents import CloudEvent
from pitchin_core.contracts.donors import DonorRegisteredV1
from pitchin_core.inbox import first_delivery
from pitchin_matching import storage
from pitchin_matching.domain.donors import profile_of

CONSUMER = "matching"


async def learn_donor(pool: asyncpg.Pool, event: CloudEvent, data: DonorRegisteredV1) -> bool:
    """Apply a donor's registration to the read model once; False for a redelivery."""
    async with pool.acquire() as conn, conn.transaction():
        if not await first_delivery(conn, CONSUMER, event.id, event.type):
            return False
        await storage.upsert_donor(conn, profile_of(data), data.registered_at)
        return True
