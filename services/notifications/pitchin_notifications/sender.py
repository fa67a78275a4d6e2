"""Sends staged deliveries on every channel; expands event-wide messages; makes digests.

Each channel has its own loop, batch and semaphore, so a slow webhook endpoint never holds
email back. A batch claims due rows (one-to-one before fan-out, then by priority), keeps
them locked while they are sent and records every outcome in the same transaction: a crash
mid-batch leaves them pending, re-sent with the same Message-ID / webhook-id, never lost.
A graceful stop lets the batch in hand finish and commit first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from prometheus_client import Counter, Histogram

from pitchin_core.telemetry import Metrics
from pitchin_notifications import storage
from pitchin_notifications.channels import ChannelAdapter, Outcome
from pitchin_notifications.domain.messages import next_attempt

log = logging.getLogger(__name__)
DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


@dataclass(frozen=True)
class ChannelPolicy:
    max_attempts: int
    concurrency: int
    batch_size: int = 100


class Sender:
    def __init__(
        self,
        pool: asyncpg.Pool,
        metrics: Metrics,
        *,
        schema: str,
        adapters: dict[str, ChannelAdapter],
        policies: dict[str, ChannelPolicy],
        retry_base: float = 2.0,
        retry_cap: float = 900.0,
        jobs: tuple[Callable[[], Awaitable[int]], ...] = (),
    ) -> None:
        self.pool = pool
        self.schema = schema
        self.adapters = adapters
        self.policies = policies
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.jobs = jobs
        self._slots = {name: asyncio.Semaphore(policies[name].concurrency) for name in adapters}
        self._wakes = {name: asyncio.Event() for name in [*adapters, "_jobs"]}
        self._rng = random.Random()
        self._tasks: list[asyncio.Task[None]] = []
        self._listener: Any = None
        self._stopping = False
        self.service = metrics.service
        self.deliveries = Counter(
            "pitchin_notification_deliveries",
            "Notification delivery attempts by channel and outcome (sent, retry, dead).",
            ["service", "channel", "outcome"],
            registry=metrics.registry,
        )
        self.send_seconds = Histogram(
            "pitchin_notification_batch_seconds",
            "Time to send one claimed batch, by channel.",
            ["service", "channel"],
            registry=metrics.registry,
        )

    @property
    def channel_name(self) -> str:
        return f"pitchin_deliveries_{self.schema}"

    async def start(self) -> None:
        self._listener = await self.pool.acquire()
        await self._listener.add_listener(self.channel_name, self._notified)
        for name in self.adapters:
            self._tasks.append(asyncio.create_task(self._run_channel(name), name=f"sender-{name}"))
        if self.jobs:
            self._tasks.append(asyncio.create_task(self._run_jobs(), name="sender-jobs"))

    async def stop(self, grace: float = 8.0) -> None:
        self._stopping = True
        for wake in self._wakes.values():
            wake.set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=grace)
            for task in pending:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.remove_listener(self.channel_name, self._notified)
            await self.pool.release(self._listener)
        for adapter in self.adapters.values():
            with contextlib.suppress(Exception):
                await adapter.close()

    def _notified(self, *_: Any) -> None:
        for wake in self._wakes.values():
            wake.set()

    async def _sleep(self, name: str) -> None:
        wake = self._wakes[name]
        try:
            due = await storage.next_due_at(self.pool)
            wait = 5.0 if due is None else min(max((due - datetime.now(UTC)).total_seconds(), 0.05), 5.0)
        except DB_ERRORS:
            wait = 1.0
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=wait)

    async def _run_channel(self, name: str) -> None:
        batch = self.policies[name].batch_size
        while not self._stopping:
            self._wakes[name].clear()
            try:
                sent = await self.send_due(name)
            except DB_ERRORS as exc:
                log.warning("%s sender paused: %s", name, exc)
                sent = 0
            except Exception:  # never let one bad batch end the loop; its rows stay pending
                log.exception("%s sender batch failed", name)
                sent = 0
            if sent >= batch or self._stopping:
                continue
            await self._sleep(name)

    async def _run_jobs(self) -> None:
        while not self._stopping:
            self._wakes["_jobs"].clear()
            busy = False
            for job in self.jobs:
                try:
                    busy = (await job()) >= 0 or busy
                except DB_ERRORS as exc:
                    log.warning("notification job paused: %s", exc)
                except Exception:
                    log.exception("notification job failed")
            if busy and not self._stopping:
                continue
            await self._sleep("_jobs")

    async def _guarded(self, name: str, row: Any) -> Outcome:
        async with self._slots[name]:
            try:
                return await self.adapters[name].send(row)
            except Exception as exc:  # an adapter bug must not stop the batch or lose the row
                log.exception("%s adapter failed on delivery %s", name, row["delivery_id"])
                return Outcome(error=f"{type(exc).__name__}: {exc}")

    async def send_due(self, name: str) -> int:
        policy = self.policies[name]
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await storage.claim_due(conn, name, policy.batch_size)
            if not rows:
                return 0
            with self.send_seconds.labels(self.service, name).time():
                outcomes = await asyncio.gather(*(self._guarded(name, row) for row in rows))
            now = datetime.now(UTC)
            sent: list[tuple[uuid.UUID, str | None]] = []
            healthy: list[uuid.UUID] = []
            for row, outcome in zip(rows, outcomes, strict=True):
                if outcome.ok:
                    sent.append((row["delivery_id"], outcome.provider_ref))
                    if row["subscription_id"] is not None:
                        healthy.append(row["subscription_id"])
                    continue
                attempts = row["attempts"] + 1
                max_attempts = row["max_attempts"] or policy.max_attempts
                assert outcome.error is not None
                if outcome.permanent or attempts >= max_attempts:
                    await storage.mark_dead(conn, row["delivery_id"], outcome.error)
                    self.deliveries.labels(self.service, name, "dead").inc()
                    if row["subscription_id"] is not None and row["webhook_status"] == "active":
                        if await storage.webhook_gave_up(conn, row["subscription_id"], outcome.error, outcome.gone):
                            log.warning("webhook endpoint %s disabled: %s", row["subscription_id"], outcome.error)
                    continue
                base = row["retry_base_seconds"] or self.retry_base
                retry_at = next_attempt(now, attempts, self._rng, base=base, cap=self.retry_cap)
                await storage.mark_retry(conn, row["delivery_id"], outcome.error, retry_at)
                self.deliveries.labels(self.service, name, "retry").inc()
            await storage.mark_sent(conn, sent)
            await storage.webhook_succeeded(conn, healthy)
            if sent:
                self.deliveries.labels(self.service, name, "sent").inc(len(sent))
        return len(rows)
