"""The reminder timer: fires due reminders as reminder-due events, exactly once.

A batch of due rows is claimed with FOR UPDATE SKIP LOCKED; each reminder's event goes to
the outbox and the rows are marked fired in that same transaction. A crash before the commit
leaves them pending (fired on restart), after it they are done, and the outbox relay
publishes what was committed: no reminder is lost or sent twice, whatever is killed when.
One batch is one transaction of the unit of work, with no tenant: a batch holds reminders of
every federation.

Each firing starts a new trace (it is not part of the request that set the reminder, which
ended long ago) with a link back to that request's span.
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanKind
from prometheus_client import Counter, Histogram

from pitchin_core.contracts.scheduling import ReminderDueV1, ReminderKind
from pitchin_core.telemetry import Metrics, context_from
from pitchin_core.uow import Transaction, UnitOfWork
from pitchin_core.worker import BatchWorker
from pitchin_scheduling import storage

tracer = trace.get_tracer("pitchin.scheduling.reminders")
LONGEST_SLEEP = 5.0


def reminder_due(row: asyncpg.Record) -> ReminderDueV1:
    event = storage.event_from_row(row)
    return ReminderDueV1(
        **event.facts(),
        reminder_id=row["reminder_id"],
        reminder_kind=ReminderKind(row["reminder_kind"]),
        offset_seconds=row["offset_seconds"],
        due_at=row["due_at"],
        status=event.status,
        venue_name=event.venue_name,
        venue_address=event.venue_address,
        online_url=event.online_url,
        hashtag=event.hashtag,
        organiser_email=event.organiser_email,
    )


class ReminderTimer(BatchWorker):
    def __init__(self, uow: UnitOfWork, metrics: Metrics, *, schema: str, batch_size: int = 200) -> None:
        # The pool only holds the LISTEN connection; reminders are read and fired through the unit of work.
        super().__init__(uow.pool, name="reminder-timer", batch_size=batch_size)
        self.uow = uow
        self.schema = schema
        self.service = metrics.service
        self.fired = Counter(
            "pitchin_reminders_fired", "Reminders fired as reminder-due events.", ["service"], registry=metrics.registry
        )
        self.lateness = Histogram(
            "pitchin_reminder_lateness_seconds",
            "How long after its due time a reminder was fired.",
            ["service"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
            registry=metrics.registry,
        )

    async def work_once(self) -> int:
        return await self.fire_due(datetime.now(UTC))

    async def idle_seconds(self) -> float:
        return await self._seconds_until_next_due()

    async def _seconds_until_next_due(self) -> float:
        try:
            async with self.uow(readonly=True) as tx:
                due = await storage.next_reminder_due(tx.conn)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return 1.0
        if due is None:
            return LONGEST_SLEEP
        # Capped, so a clock jump or a lost notification delays a reminder by seconds at most.
        return min(max((due - datetime.now(UTC)).total_seconds(), 0.01), LONGEST_SLEEP)

    async def fire_due(self, now: datetime) -> int:
        """Fire up to one batch of reminders due by `now`; returns how many fired."""
        async with self.uow() as tx:
            rows = await storage.claim_due_reminders(tx.conn, now, self.batch_size)
            if not rows:
                return 0
            for row in rows:
                await self._fire(tx, row, now)
            await storage.mark_reminders_fired(tx.conn, [r["reminder_id"] for r in rows], now)
        self.fired.labels(self.service).inc(len(rows))
        return len(rows)

    async def _fire(self, tx: Transaction, row: asyncpg.Record, now: datetime) -> None:
        data = reminder_due(row)
        scheduled_by = trace.get_current_span(
            context_from(row["reminder_traceparent"], row["reminder_tracestate"])
        ).get_span_context()
        links = [Link(scheduled_by, {"pitchin.link": "scheduled-by"})] if scheduled_by.is_valid else []
        with tracer.start_as_current_span(
            "reminder due",
            context=Context(),
            kind=SpanKind.INTERNAL,
            links=links,
            attributes={
                "pitchin.event.id": data.event_id,
                "pitchin.reminder.id": data.reminder_id,
                "pitchin.reminder.kind": data.reminder_kind.value,
                "pitchin.reminder.lateness_s": (now - data.due_at).total_seconds(),
            },
        ):
            # Inside the span: the outbox row takes this trace, so notifications continue it.
            await tx.emit(data, key=data.event_id, subject=f"events/{data.event_id}/reminders")
        self.lateness.labels(self.service).observe(max((now - data.due_at).total_seconds(), 0.0))
