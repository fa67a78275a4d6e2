"""Transactional outbox: write events with the state change, relay them to Kafka after commit."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from aiokafka import AIOKafkaProducer
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

from pitchin_core.contracts.cloudevents import CloudEvent, tenant_of, to_kafka_headers, to_kafka_value
from pitchin_core.contracts.common import EventData
from pitchin_core.contracts.topics import topic_for
from pitchin_core.db import Conn
from pitchin_core.telemetry import Metrics, context_from, current_traceparent
from pitchin_core.worker import BatchWorker

tracer = trace.get_tracer("pitchin.outbox")


OUTBOX_COLUMNS = "event_id, topic, message_key, event_type, source, subject, tenant, payload, traceparent, tracestate"


@dataclass(frozen=True)
class StagedEvent:
    """One outbox row's values, for a statement that writes it together with the change."""

    event_id: uuid.UUID
    values: tuple[object, ...]

    def select(self, first: int) -> str:
        """`SELECT $first, ...` of this row's values, numbered from parameter `first`."""
        n = [f"${first + i}" for i in range(len(self.values))]
        n[0] += "::uuid"
        n[7] += "::jsonb"
        return "SELECT " + ", ".join(n)


def stage_event(data: EventData, *, source: str, key: str, subject: str | None = None) -> StagedEvent:
    """The outbox row of `data`; the event id becomes the CloudEvent `id`."""
    event_id = uuid.uuid4()
    traceparent, tracestate = current_traceparent()
    values = (
        event_id,
        topic_for(type(data)).name,
        key,
        data.event_type,
        source,
        subject,
        tenant_of(data.federation_id, data.organisation_id),
        data.model_dump_json(),
        traceparent,
        tracestate,
    )
    return StagedEvent(event_id, values)


async def add_to_outbox(
    conn: Conn,
    data: EventData,
    *,
    source: str,
    key: str,
    subject: str | None = None,
) -> uuid.UUID:
    """Stage an event in the caller's transaction; the event id becomes the CloudEvent `id`."""
    staged = stage_event(data, source=source, key=key, subject=subject)
    await conn.execute(f"INSERT INTO outbox ({OUTBOX_COLUMNS}) {staged.select(1)}", *staged.values)
    return staged.event_id


class OutboxRelay(BatchWorker):
    """Drains one service's outbox to Kafka in order.

    One drainer at a time per schema (a transaction-scoped advisory lock), so replicas
    cannot reorder events of one key; rows are deleted only after every send in the
    batch was acknowledged, so a crash re-sends rather than loses (consumers de-duplicate
    on the event id).
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        *,
        schema: str,
        metrics: Metrics,
        batch_size: int = 500,
        idle_poll_seconds: float = 1.0,
    ) -> None:
        super().__init__(
            pool, name=f"outbox-relay-{schema}", batch_size=batch_size, idle_poll_seconds=idle_poll_seconds
        )
        self.producer = producer
        self.schema = schema
        self.metrics = metrics

    async def work_once(self) -> int:
        return await self.drain_once()

    async def drain_once(self) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            locked = await conn.fetchval(
                "SELECT pg_try_advisory_xact_lock(hashtext($1))", f"pitchin-outbox-{self.schema}"
            )
            if not locked:
                return 0
            rows = await conn.fetch(
                "SELECT seq, event_id, topic, message_key, event_type, source, subject, tenant, occurred_at,"
                " payload::text AS payload, traceparent, tracestate"
                " FROM outbox ORDER BY seq LIMIT $1 FOR UPDATE",
                self.batch_size,
            )
            if rows:
                await self._publish(rows)
                await conn.execute("DELETE FROM outbox WHERE seq = ANY($1::bigint[])", [r["seq"] for r in rows])
                self.metrics.outbox_relayed.labels(self.metrics.service).inc(len(rows))
                for row in rows:
                    self.metrics.events_published.labels(self.metrics.service, row["event_type"]).inc()
            backlog = await conn.fetchrow("SELECT count(*) AS n, min(occurred_at) AS oldest FROM outbox")
        assert backlog is not None
        self.metrics.outbox_backlog.labels(self.metrics.service).set(backlog["n"])
        oldest: datetime | None = backlog["oldest"]
        age = (datetime.now(UTC) - oldest).total_seconds() if oldest else 0.0
        self.metrics.outbox_oldest_age.labels(self.metrics.service).set(max(age, 0.0))
        return len(rows)

    async def _publish(self, rows: Sequence[asyncpg.Record]) -> None:
        acks = []
        for row in rows:
            event = CloudEvent(
                id=str(row["event_id"]),
                source=row["source"],
                type=row["event_type"],
                data=json.loads(row["payload"]),
                time=row["occurred_at"],
                subject=row["subject"],
                tenant=row["tenant"],
            )
            parent = context_from(row["traceparent"], row["tracestate"])
            with tracer.start_as_current_span(
                f"send {row['topic']}",
                context=parent,
                kind=SpanKind.PRODUCER,
                attributes={
                    "messaging.system": "kafka",
                    "messaging.operation.type": "send",
                    "messaging.operation.name": "send",
                    "messaging.destination.name": row["topic"],
                    "messaging.message.id": event.id,
                    "messaging.kafka.message.key": row["message_key"],
                    "cloudevents.event_type": event.type,
                    "cloudevents.event_id": event.id,
                },
            ):
                carrier: dict[str, str] = {}
                propagate.inject(carrier)
                headers = to_kafka_headers(event, extra=carrier.items())
                # send() only enqueues; awaiting the futures below waits for the acks.
                acks.append(
                    await self.producer.send(
                        row["topic"],
                        value=to_kafka_value(event),
                        key=row["message_key"].encode("utf-8"),
                        headers=headers,
                    )
                )
        await asyncio.gather(*acks)


def new_producer(bootstrap: str, client_id: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=256 * 1024,
    )
