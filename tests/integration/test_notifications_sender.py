"""Notifications' sender on its own: the channel workers against the real PostgreSQL, with an
adapter in the place of SMTP that records what it was given (nothing leaves the machine).

Batches until nothing is due, a NOTIFY wakes an idle sender at once, retries then a dead
letter, and a stop lets the batch in hand commit (a cancelled batch would send it again).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from importlib.resources import files
from typing import Any

import pytest

from pitchin_core.telemetry import Metrics
from pitchin_notifications import storage
from pitchin_notifications.channels import Outcome
from pitchin_notifications.sender import ChannelPolicy, Sender
from tests.e2e.helpers import eventually_async
from tests.integration.conftest import ServiceDatabase

pytestmark = pytest.mark.integration
MIGRATIONS = files("pitchin_notifications") / "migrations"


class RecordingEmail:
    """An email channel that answers `outcome` and can be held mid-send."""

    name = "email"

    def __init__(self, outcome: Outcome | None = None) -> None:
        self.outcome = outcome or Outcome()
        self.sent: list[uuid.UUID] = []
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()
        self.closed = False

    async def send(self, row: Any) -> Outcome:
        self.entered.set()
        await self.release.wait()
        self.sent.append(row["delivery_id"])
        return self.outcome

    async def close(self) -> None:
        self.closed = True


async def _stage(db: ServiceDatabase, count: int) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(count)]
    async with db.uow() as tx:
        for n, delivery_id in enumerate(ids):
            await storage.stage_delivery(
                tx.conn,
                delivery_id=delivery_id,
                idempotency_key=f"test:{delivery_id}",
                federation_id="fed-wm",
                organisation_id="org-dudley-cvs",
                event_id=f"evt-{n}",
                event_type="org.pitchin.event.reminder-due.v1",
                channel="email",
                recipient=f"person{n}@example.org",
                subject="Reminder",
                body_text="See you tomorrow.",
                body_html=None,
                traceparent=None,
            )
    return ids


def _sender(db: ServiceDatabase, adapter: RecordingEmail, *, batch: int = 100, attempts: int = 6) -> Sender:
    return Sender(
        db.pool,
        Metrics("notifications-test"),
        schema=db.schema,
        adapters={"email": adapter},
        policies={"email": ChannelPolicy(max_attempts=attempts, concurrency=10, batch_size=batch)},
        retry_base=0.05,
        retry_cap=0.1,
    )


async def _statuses(db: ServiceDatabase) -> Counter[str]:
    return Counter(
        {
            r["status"]: r["n"]
            for r in await db.pool.fetch("SELECT status, count(*) AS n FROM deliveries GROUP BY status")
        }
    )


async def test_every_due_delivery_is_sent_once_in_batches(open_service_database: Any) -> None:
    db = await open_service_database("notifications", MIGRATIONS)
    ids = await _stage(db, 250)
    adapter = RecordingEmail()
    sender = _sender(db, adapter, batch=100)
    await sender.start()
    try:

        async def all_sent() -> bool:
            return (await _statuses(db)) == Counter({"sent": 250})

        await eventually_async(all_sent, timeout=10, interval=0.02, what="every delivery sent")
    finally:
        await sender.stop()
    assert sorted(adapter.sent) == sorted(ids)  # each once
    assert await db.pool.fetchval("SELECT bool_and(attempts = 1 AND sent_at IS NOT NULL) FROM deliveries")
    assert adapter.closed


async def _true(value: bool) -> bool:
    return value


async def test_a_committed_delivery_wakes_an_idle_sender_at_once(open_service_database: Any) -> None:
    db = await open_service_database("notifications", MIGRATIONS)
    adapter = RecordingEmail()
    sender = _sender(db, adapter)
    db.uow.on_committed_writes(sender.wake)  # as notifications' main wires it
    await sender.start()
    try:
        # Idle: each worker has looked once, found nothing due, and sleeps up to 5 s unless woken.
        await eventually_async(
            lambda: _true(all(w.passes >= 1 for w in sender.workers)), timeout=5, interval=0.01, what="idle"
        )
        [delivery_id] = await _stage(db, 1)

        async def sent() -> bool:
            return adapter.sent == [delivery_id]

        woken = time.monotonic()
        await eventually_async(sent, timeout=5, interval=0.02, what="the new delivery sent")
        assert time.monotonic() - woken < 2.0
    finally:
        await sender.stop()


async def test_a_failing_channel_is_retried_then_dead_lettered(open_service_database: Any) -> None:
    db = await open_service_database("notifications", MIGRATIONS)
    [delivery_id] = await _stage(db, 1)
    adapter = RecordingEmail(Outcome(error="451 try again later"))
    sender = _sender(db, adapter, attempts=3)
    await sender.start()
    try:

        async def dead() -> bool:
            return (await _statuses(db)) == Counter({"dead": 1})

        await eventually_async(dead, timeout=10, interval=0.02, what="a dead letter")
    finally:
        await sender.stop()
    assert adapter.sent == [delivery_id] * 3
    letter = await db.pool.fetchrow("SELECT attempts, reason FROM dead_letters WHERE delivery_id = $1", delivery_id)
    assert letter is not None and (letter["attempts"], letter["reason"]) == (3, "451 try again later")


async def test_a_stop_lets_the_batch_in_hand_commit_and_starts_no_other(open_service_database: Any) -> None:
    db = await open_service_database("notifications", MIGRATIONS)
    ids = await _stage(db, 3)
    adapter = RecordingEmail()
    adapter.release.clear()  # the SMTP server is slow to answer
    sender = _sender(db, adapter)
    await sender.start()
    await asyncio.wait_for(adapter.entered.wait(), timeout=5)
    stopping = asyncio.create_task(sender.stop())
    finished, _ = await asyncio.wait({stopping}, timeout=0.2)
    assert not finished  # waiting for the batch, not cancelling it
    await _stage(db, 2)  # committed during the stop: left for the next start
    adapter.release.set()
    await asyncio.wait_for(stopping, timeout=5)
    assert sorted(adapter.sent) == sorted(ids)
    assert await _statuses(db) == Counter({"sent": 3, "pending": 2})
