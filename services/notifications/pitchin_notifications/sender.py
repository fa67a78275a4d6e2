"""Sends staged deliveries on every channel; expands event-wide messages; makes digests.

Each channel has its own worker, batch and semaphore, so a slow webhook endpoint never holds
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
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
from prometheus_client import Counter, Histogram

from pitchin_core.links import LOCAL_DONOR_LINK_SECRET, sign_references
from pitchin_core.telemetry import Metrics
from pitchin_core.worker import BatchWorker
from pitchin_notifications import storage
from pitchin_notifications.channels import ChannelAdapter, Outcome
from pitchin_notifications.domain.messages import link_holder, next_attempt

log = logging.getLogger(__name__)
DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)
# No worker sleeps longer than this: work committed by another process waits this long at most.
LONGEST_SLEEP = 5.0
STOP_GRACE_SECONDS = 8.0

Job = Callable[[], Awaitable[int]]
# What a channel puts in front of a person: where a stored message's link references are signed.
SIGNED_PARTS = ("subject", "body_text", "body_html")
# Webhook bodies are event data for an organisation's endpoint: nothing in them is signed for anyone.
SIGNED_CHANNELS = frozenset({"email", "sms"})


def with_signed_links(row: Any, channel: str, secret: str, now: float) -> Any:
    """The message the channel sends: `row` with its link references replaced by freshly signed links.

    The stored row keeps the references (issue 17: the delivery log holds no credential), and
    each link's lifetime starts now, when it is sent, not when the message was planned or held.
    """
    if channel not in SIGNED_CHANNELS:
        return row
    holder = link_holder(row["person_ref"], row["recipient"])
    sent = dict(row)
    for part in SIGNED_PARTS:
        if sent.get(part):
            sent[part] = sign_references(sent[part], secret, now, holder)
    return sent


@dataclass(frozen=True)
class ChannelPolicy:
    max_attempts: int
    concurrency: int
    batch_size: int = 100


class _GracefulWorker(BatchWorker):
    """A periodic worker (the `Sender` wakes it) whose stop waits for the batch in hand.

    Cancelling a batch mid-send would roll back outcomes already delivered, and they would
    be sent again: stopping lets it commit first, for `grace` seconds at most.
    """

    def __init__(self, pool: asyncpg.Pool, *, name: str, batch_size: int) -> None:
        super().__init__(pool, name=name, batch_size=batch_size)
        self._stopping = False
        self._in_hand = asyncio.Lock()

    async def work_once(self) -> int:
        async with self._in_hand:
            if self._stopping:
                return 0
            return await self.run_batch()

    async def run_batch(self) -> int:
        raise NotImplementedError

    async def next_due(self) -> datetime | None:
        """When this worker's next piece of work falls due."""
        return await storage.next_due_at(self.pool)

    async def idle_seconds(self) -> float:
        """Until this worker's next delivery, fan-out or digest falls due, from 50 ms to LONGEST_SLEEP.

        Each worker asks only about its own work: an SMS worker that woke every 50 ms because
        email was due, during a 100,000-mail fan-out, kept PostgreSQL busy for nothing.
        """
        try:
            due = await self.next_due()
        except DB_ERRORS:
            return 1.0
        if due is None:
            return LONGEST_SLEEP
        return min(max((due - datetime.now(UTC)).total_seconds(), 0.05), LONGEST_SLEEP)

    async def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        self._stopping = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace), self._in_hand:
                pass
        await super().stop()


class ChannelSender(_GracefulWorker):
    """One channel: claim due rows, send them concurrently, record every outcome in that transaction."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        adapter: ChannelAdapter,
        policy: ChannelPolicy,
        *,
        channel_name: str,
        retry_base: float,
        retry_cap: float,
        deliveries: Counter,
        send_seconds: Histogram,
        service: str,
        donor_link_secret: str = LOCAL_DONOR_LINK_SECRET,
    ) -> None:
        super().__init__(pool, name=f"sender-{channel_name}", batch_size=policy.batch_size)
        self.donor_link_secret = donor_link_secret
        self.channel_name = channel_name
        self.adapter = adapter
        self.policy = policy
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.deliveries = deliveries
        self.send_seconds = send_seconds
        self.service = service
        self._slots = asyncio.Semaphore(policy.concurrency)
        self._rng = random.Random()

    async def run_batch(self) -> int:
        return await self.send_due()

    async def next_due(self) -> datetime | None:
        return await storage.next_delivery_due_at(self.pool, self.channel_name)

    async def _guarded(self, row: Any) -> Outcome:
        async with self._slots:
            try:
                sent = with_signed_links(row, self.channel_name, self.donor_link_secret, time.time())
                return await self.adapter.send(sent)
            except Exception as exc:  # an adapter bug must not stop the batch or lose the row
                log.exception("%s adapter failed on delivery %s", self.channel_name, row["delivery_id"])
                return Outcome(error=f"{type(exc).__name__}: {exc}")

    async def send_due(self) -> int:
        name = self.channel_name
        policy = self.policy
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await storage.claim_due(conn, name, policy.batch_size)
            if not rows:
                return 0
            with self.send_seconds.labels(self.service, name).time():
                outcomes = await asyncio.gather(*(self._guarded(row) for row in rows))
            batch = self.sort_outcomes(rows, outcomes, datetime.now(UTC))
            # A handful of statements for the whole batch, whatever its size.
            await storage.mark_sent(conn, batch.sent)
            await storage.mark_retry(conn, batch.retry)
            await storage.mark_dead(conn, batch.dead)
            await storage.webhook_succeeded(conn, batch.healthy)
            for subscription_id, error, gone in batch.failed_webhooks:
                # One per dead webhook delivery: its endpoint's streak decides whether it is disabled.
                if await storage.webhook_gave_up(conn, subscription_id, error, gone):
                    log.warning("webhook endpoint %s disabled: %s", subscription_id, error)
        for outcome, count in (("sent", len(batch.sent)), ("retry", len(batch.retry)), ("dead", len(batch.dead))):
            if count:
                self.deliveries.labels(self.service, name, outcome).inc(count)
        return len(rows)

    def sort_outcomes(self, rows: Sequence[Any], outcomes: Sequence[Outcome], now: datetime) -> BatchOutcomes:
        """What each row of a sent batch becomes: sent, retried later, or given up on."""
        batch = BatchOutcomes()
        for row, outcome in zip(rows, outcomes, strict=True):
            if outcome.ok:
                batch.sent.append((row["delivery_id"], outcome.provider_ref))
                if row["subscription_id"] is not None:
                    batch.healthy.append(row["subscription_id"])
                continue
            attempts = row["attempts"] + 1
            max_attempts = row["max_attempts"] or self.policy.max_attempts
            assert outcome.error is not None
            if outcome.permanent or attempts >= max_attempts:
                batch.dead.append((row["delivery_id"], outcome.error))
                if row["subscription_id"] is not None and row["webhook_status"] == "active":
                    batch.failed_webhooks.append((row["subscription_id"], outcome.error, outcome.gone))
                continue
            base = row["retry_base_seconds"] or self.retry_base
            retry_at = next_attempt(now, attempts, self._rng, base=base, cap=self.retry_cap)
            batch.retry.append((row["delivery_id"], outcome.error, retry_at))
        return batch


@dataclass
class BatchOutcomes:
    """A sent batch's rows by what happens to them, each list recorded with one statement."""

    sent: list[tuple[uuid.UUID, str | None]] = field(default_factory=list)
    retry: list[tuple[uuid.UUID, str, datetime]] = field(default_factory=list)
    dead: list[tuple[uuid.UUID, str]] = field(default_factory=list)
    healthy: list[uuid.UUID] = field(default_factory=list)  # webhook endpoints that took a delivery
    failed_webhooks: list[tuple[uuid.UUID, str, bool]] = field(default_factory=list)  # (endpoint, error, gone)


class NotificationJobs(_GracefulWorker):
    """Expanding event-wide messages and making digests: each job returns -1 when it found nothing to do."""

    def __init__(self, pool: asyncpg.Pool, jobs: tuple[Job, ...]) -> None:
        super().__init__(pool, name="sender-jobs", batch_size=1)
        self.jobs = jobs

    async def next_due(self) -> datetime | None:
        return await storage.next_job_due_at(self.pool)

    async def run_batch(self) -> int:
        busy = False
        for job in self.jobs:
            # Each job on its own: a failing expansion must not hold digests back, nor the reverse.
            try:
                busy = (await job()) >= 0 or busy
            except DB_ERRORS as exc:
                log.warning("notification job paused: %s", exc)
            except Exception:
                log.exception("notification job failed")
        if not busy:
            # The jobs' own transactions wake every worker of this process when they commit
            # (`on_committed_writes`), this one too, even when they found nothing: without this
            # the idle service went round in a loop, a core of Python and two thirds of one of
            # PostgreSQL (measured). A job another commit made due meanwhile is found by the
            # poll, `idle_seconds` being 50 ms when it is due.
            self._wake.clear()
        return 1 if busy else 0


class Sender:
    """Every channel's worker and the jobs, woken together.

    `wake()` is called after each commit of this process (a delivery or fan-out staged, a
    re-send); rows committed by other processes are found by each worker's own poll, which
    sleeps only until the next row falls due (LONGEST_SLEEP at most).
    """

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
        jobs: tuple[Job, ...] = (),
        donor_link_secret: str = LOCAL_DONOR_LINK_SECRET,
    ) -> None:
        self.schema = schema
        self.adapters = adapters
        deliveries = Counter(
            "pitchin_notification_deliveries",
            "Notification delivery attempts by channel and outcome (sent, retry, dead).",
            ["service", "channel", "outcome"],
            registry=metrics.registry,
        )
        send_seconds = Histogram(
            "pitchin_notification_batch_seconds",
            "Time to send one claimed batch, by channel.",
            ["service", "channel"],
            registry=metrics.registry,
        )
        self.workers: list[_GracefulWorker] = [
            ChannelSender(
                pool,
                adapter,
                policies[name],
                channel_name=name,
                retry_base=retry_base,
                retry_cap=retry_cap,
                deliveries=deliveries,
                send_seconds=send_seconds,
                service=metrics.service,
                donor_link_secret=donor_link_secret,
            )
            for name, adapter in adapters.items()
        ]
        if jobs:
            self.workers.append(NotificationJobs(pool, jobs))

    def wake(self) -> None:
        for worker in self.workers:
            worker.wake()

    async def start(self) -> None:
        for worker in self.workers:
            await worker.start()

    async def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        await asyncio.gather(*(worker.stop(grace) for worker in self.workers))
        for adapter in self.adapters.values():
            with contextlib.suppress(Exception):
                await adapter.close()
