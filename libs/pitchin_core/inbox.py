"""Inbox de-duplication: call inside the transaction that applies the event's effect."""

from __future__ import annotations

from pitchin_core.db import Conn


async def first_delivery(conn: Conn, consumer: str, event_id: str, event_type: str) -> bool:
    """Record the event id; False when this consumer has applied it before (a redelivery)."""
    status: str = await conn.execute(
        "INSERT INTO inbox (consumer, event_id, event_type) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        consumer,
        event_id,
        event_type,
    )
    return status == "INSERT 0 1"
