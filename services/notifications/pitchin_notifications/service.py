"""Notifications' use cases: stage the messages an event causes, in one transaction with the inbox."""

from __future__ import annotations

import asyncpg

from pitchin_core.contracts.cloudevents import CloudEvent
from pitchin_core.contracts.common import EventData
from pitchin_core.inbox import first_delivery
from pitchin_core.telemetry import current_traceparent
from pitchin_notifications import storage
from pitchin_notifications.domain.messages import plan_messages
from pitchin_notifications.templates import Renderer

CONSUMER = "notifications"


async def stage_messages(
    pool: asyncpg.Pool, renderer: Renderer, event: CloudEvent, data: EventData, public_base_url: str
) -> int | None:
    """Store the messages `event` causes; None when the event was applied before."""
    planned = plan_messages(data, public_base_url=public_base_url)
    traceparent, _ = current_traceparent()
    async with pool.acquire() as conn, conn.transaction():
        if not await first_delivery(conn, CONSUMER, event.id, event.type):
            return None
        staged = 0
        for message in planned:
            rendered = renderer.render(message)
            staged += await storage.stage_delivery(
                conn,
                idempotency_key=message.idempotency_key(event.id),
                federation_id=data.federation_id,
                organisation_id=data.organisation_id,
                event_id=event.id,
                event_type=event.type,
                channel=message.channel,
                recipient=message.recipient,
                subject=rendered.subject,
                body_text=rendered.text,
                body_html=rendered.html,
                traceparent=traceparent,
            )
        return staged
