"""Sends staged deliveries: claims due rows, sends with bounded concurrency, records the outcome.

A row stays locked while its message is sent and is marked in the same transaction, so
a crash mid-send leaves it pending (re-sent with the same Message-ID) rather than lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import asyncpg
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import Counter

from pitchin_core.telemetry import Metrics, context_from
from pitchin_notifications import storage
from pitchin_notifications.domain.messages import message_id, next_attempt

log = logging.getLogger(__name__)
tracer = trace.get_tracer("pitchin.notifications")


class EmailSender:
    def __init__(
        self,
        pool: asyncpg.Pool,
        metrics: Metrics,
        *,
        schema: str,
        smtp_host: str,
        smtp_port: int,
        mail_from: str,
        max_attempts: int = 6,
        concurrency: int = 10,
        batch_size: int = 50,
    ) -> None:
        self.pool = pool
        self.schema = schema
        self.smtp_host = smtp_host
        self.smtp_port = smtp_port
        self.mail_from = mail_from
        self.max_attempts = max_attempts
        self.batch_size = batch_size
        self._slots = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        self._rng = random.Random()
        self._task: asyncio.Task[None] | None = None
        self._listener: Any = None
        self.deliveries = Counter(
            "pitchin_notification_deliveries",
            "Notification delivery attempts by channel and outcome (sent, retry, dead).",
            ["service", "channel", "outcome"],
            registry=metrics.registry,
        )
        self.service = metrics.service

    async def start(self) -> None:
        self._listener = await self.pool.acquire()
        await self._listener.add_listener(f"pitchin_deliveries_{self.schema}", self._notified)
        self._task = asyncio.create_task(self._run(), name="email-sender")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.remove_listener(f"pitchin_deliveries_{self.schema}", self._notified)
            await self.pool.release(self._listener)

    def _notified(self, *_: Any) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                sent = await self.send_due()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("email sender paused: %s", exc)
                sent = 0
            if sent >= self.batch_size:
                continue
            self._wake.clear()
            wait = await self._seconds_until_next_due()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)

    async def _seconds_until_next_due(self) -> float:
        try:
            due = await storage.next_due_at(self.pool)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return 1.0
        if due is None:
            return 5.0
        return min(max((due - datetime.now(UTC)).total_seconds(), 0.05), 5.0)

    async def send_due(self) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await storage.claim_due(conn, "email", self.batch_size)
            outcomes = await asyncio.gather(*(self._send_one(row) for row in rows))
            for row, error in zip(rows, outcomes, strict=True):
                attempts = row["attempts"] + 1
                if error is None:
                    await storage.mark_sent(conn, row["delivery_id"], attempts)
                    self.deliveries.labels(self.service, "email", "sent").inc()
                    continue
                retry_at = None
                if attempts < self.max_attempts:
                    retry_at = next_attempt(datetime.now(UTC), attempts, self._rng)
                await storage.mark_failed(conn, row["delivery_id"], attempts, error, retry_at)
                self.deliveries.labels(self.service, "email", "retry" if retry_at else "dead").inc()
        return len(rows)

    async def _send_one(self, row: asyncpg.Record) -> str | None:
        message = EmailMessage()
        message["From"] = self.mail_from
        message["To"] = row["recipient"]
        message["Subject"] = row["subject"]
        message["Message-ID"] = message_id(row["idempotency_key"], "pitchin.local")
        message.set_content(row["body_text"])
        if row["body_html"]:
            message.add_alternative(row["body_html"], subtype="html")
        async with self._slots:
            with tracer.start_as_current_span(
                "smtp send",
                context=context_from(row["traceparent"]),
                kind=SpanKind.CLIENT,
                attributes={
                    "server.address": self.smtp_host,
                    "server.port": self.smtp_port,
                    "pitchin.delivery.channel": "email",
                    "pitchin.delivery.attempt": row["attempts"] + 1,
                },
            ) as span:
                try:
                    await aiosmtplib.send(message, hostname=self.smtp_host, port=self.smtp_port, timeout=15)
                except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                    span.set_status(Status(StatusCode.ERROR, str(exc)))
                    log.warning("email to delivery %s failed: %s", row["delivery_id"], exc)
                    return f"{type(exc).__name__}: {exc}"
        return None
