"""Webhook endpoints a tenant subscribes to our events with: adding, pausing, removing, re-sending."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from pitchin_core import outbound
from pitchin_core.auth import Caller
from pitchin_core.db import Conn
from pitchin_core.errors import NotFound
from pitchin_core.outbound import Network
from pitchin_core.signing import new_webhook_secret
from pitchin_core.uow import Transactions
from pitchin_notifications import storage
from pitchin_notifications.service import require_manager

# A secret of 32 random bytes (the spec allows 24 to 64).
SECRET_BYTES = 32


async def create(
    uow: Transactions,
    caller: Caller,
    *,
    url: str,
    event_types: list[str],
    description: str,
    disable_after: int,
    allowed: Sequence[Network] = (),
) -> asyncpg.Record:
    """A new endpoint for the caller's organisation (or federation); its row holds the secret, shown once."""
    require_manager(caller)
    await outbound.check(url, field="url", allowed=allowed)  # resolved: every address must be public
    async with uow(caller.tenant) as tx:
        return await storage.create_subscription(
            tx.conn,
            subscription_id=uuid.uuid4(),
            federation_id=caller.federation_id,
            organisation_id=caller.organisation_id,
            url=url,
            secret=new_webhook_secret(secrets.token_bytes(SECRET_BYTES)),
            event_types=event_types,
            description=description,
            disable_after=disable_after,
        )


async def of_caller(uow: Transactions, caller: Caller) -> list[asyncpg.Record]:
    async with uow(caller.tenant, readonly=True) as tx:
        return await storage.list_subscriptions(tx.conn, caller.federation_id, caller.organisation_id)


async def one(uow: Transactions, caller: Caller, subscription_id: uuid.UUID) -> asyncpg.Record:
    async with uow(caller.tenant, readonly=True) as tx:
        return await _subscription(tx.conn, caller, subscription_id)


async def delete(uow: Transactions, caller: Caller, subscription_id: uuid.UUID) -> None:
    require_manager(caller)
    async with uow(caller.tenant) as tx:
        await _subscription(tx.conn, caller, subscription_id)
        await storage.delete_subscription(tx.conn, subscription_id)


async def enable(uow: Transactions, caller: Caller, subscription_id: uuid.UUID) -> asyncpg.Record:
    return await _set_status(uow, caller, subscription_id, "active", None)


async def disable(uow: Transactions, caller: Caller, subscription_id: uuid.UUID) -> asyncpg.Record:
    return await _set_status(uow, caller, subscription_id, "disabled", "disabled by the organisation")


async def resend_failed(uow: Transactions, caller: Caller, subscription_id: uuid.UUID, since: datetime | None) -> int:
    """Re-enable the endpoint and queue every delivery to it that was given up on (since `since`); how many."""
    require_manager(caller)
    async with uow(caller.tenant) as tx:
        await _subscription(tx.conn, caller, subscription_id)
        await storage.set_subscription_status(tx.conn, subscription_id, "active", None)
        return await storage.resend_dead_of_subscription(tx.conn, subscription_id, since)


async def _set_status(
    uow: Transactions, caller: Caller, subscription_id: uuid.UUID, status: str, reason: str | None
) -> asyncpg.Record:
    require_manager(caller)
    async with uow(caller.tenant) as tx:
        await _subscription(tx.conn, caller, subscription_id)
        await storage.set_subscription_status(tx.conn, subscription_id, status, reason)
        return await _subscription(tx.conn, caller, subscription_id)


async def _subscription(conn: Conn, caller: Caller, subscription_id: uuid.UUID) -> asyncpg.Record:
    row = await storage.get_subscription(conn, caller.federation_id, caller.organisation_id, subscription_id)
    if row is None:
        raise NotFound(
            "webhook subscription", str(subscription_id), detail="No such webhook subscription for this organisation."
        )
    return row
