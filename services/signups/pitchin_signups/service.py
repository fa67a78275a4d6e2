"""Signups' use cases: one function per command, one transaction each."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from pitchin_core.auth import Caller
from pitchin_core.contracts.cloudevents import CloudEvent
from pitchin_core.contracts.donors import DonorRegisteredV1
from pitchin_core.contracts.scheduling import EventCreatedV1
from pitchin_core.http import Problem
from pitchin_core.inbox import first_delivery
from pitchin_core.outbox import add_to_outbox
from pitchin_signups import storage
from pitchin_signups.domain.donors import DonorSignup, SignupRefused, register

SOURCE = "/pitchin/signups"
CONSUMER = "signups"


async def register_donor(pool: asyncpg.Pool, caller: Caller, signup: DonorSignup, now: datetime) -> DonorRegisteredV1:
    try:
        donor = register(
            signup, federation_id=caller.federation_id, caller_organisation=caller.organisation_id, now=now
        )
    except SignupRefused as exc:
        raise Problem(
            422,
            "Sign-up refused",
            f"{exc.field}: {exc}",
            kind="/problems/validation",
            errors=[{"field": exc.field, "message": str(exc)}],
        ) from exc
    async with pool.acquire() as conn, conn.transaction():
        if not await storage.insert_donor(conn, donor):
            raise Problem(
                409,
                "Already signed up",
                "A donor with this email has already signed up in this federation.",
                kind="/problems/duplicate",
                errors=[{"field": "email", "message": "already signed up"}],
            )
        await add_to_outbox(conn, donor, source=SOURCE, key=donor.donor_id, subject=f"donors/{donor.donor_id}")
    return donor


async def learn_event(pool: asyncpg.Pool, event: CloudEvent, data: EventCreatedV1) -> bool:
    async with pool.acquire() as conn, conn.transaction():
        if not await first_delivery(conn, CONSUMER, event.id, event.type):
            return False
        await storage.upsert_known_event(conn, data)
        return True
