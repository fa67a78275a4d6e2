"""The delivery log of a tenant, its dead letters, and sending a delivery again."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pitchin_core.auth import Caller
from pitchin_core.errors import Conflict, NotFound
from pitchin_core.uow import Transactions
from pitchin_notifications import storage
from pitchin_notifications.domain.redaction import shown_link
from pitchin_notifications.service import require_manager
from pitchin_notifications.storage import EVERY_DELIVERY, LogFilter


async def log(
    uow: Transactions, caller: Caller, limit: int, before: datetime | None, only: LogFilter = EVERY_DELIVERY
) -> list[dict[str, Any]]:
    """The caller's deliveries, newest first, from before `before`; links shown without their credentials."""
    async with uow(caller.tenant, readonly=True) as tx:
        rows = await storage.list_deliveries(tx.conn, caller.federation_id, caller.organisation_id, limit, before, only)
    return [_shown(r) for r in rows]


async def one(uow: Transactions, caller: Caller, delivery_id: uuid.UUID) -> dict[str, Any]:
    async with uow(caller.tenant, readonly=True) as tx:
        row = await storage.get_delivery(tx.conn, caller.federation_id, caller.organisation_id, delivery_id)
    if row is None:
        raise NotFound("delivery", str(delivery_id), detail="No such delivery for this organisation.")
    return _shown(row)


def _shown(row: Any) -> dict[str, Any]:
    """A delivery as the log shows it: its action link without the donor's credential."""
    return {**dict(row), "action_url": shown_link(row["action_url"])}


async def resend(uow: Transactions, caller: Caller, delivery_id: uuid.UUID) -> str:
    """Queue a sent or dead delivery again, with its id (so the same Message-ID / webhook-id); its status before."""
    require_manager(caller)
    async with uow(caller.tenant) as tx:
        previous = await storage.resend(tx.conn, caller.federation_id, caller.organisation_id, delivery_id)
    if previous is None:
        raise Conflict("Only a sent or dead delivery of this organisation can be sent again.", title="Cannot re-send")
    return previous


async def dead_letters(uow: Transactions, caller: Caller, limit: int, before: datetime | None) -> list[dict[str, Any]]:
    async with uow(caller.tenant, readonly=True) as tx:
        rows = await storage.list_dead_letters(tx.conn, caller.federation_id, caller.organisation_id, limit, before)
    return [dict(r) for r in rows]
