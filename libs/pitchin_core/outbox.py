"""Transactional outbox: write events with the state change, relay them to Kafka after commit."""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

from pitchin_core.contracts.cloudevents import CloudEvent, tenant_of, to_kafka_headers
from pitchin_core.contracts.common import EventData
from pitchin_core.contracts.topics import topic_for
from pitchin_core.db import Conn
from pitchin_core.errors import Refused
from pitchin_core.kafka_auth import KafkaCredentials, client_options
from pitchin_core.telemetry import Metrics, context_from, current_traceparent
from pitchin_core.worker import BatchWorker

if TYPE_CHECKING:
    from pitchin_core.personal import Sealer

log = logging.getLogger(__name__)
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


# The largest event data an outbox row takes. Kafka refuses records over 1 MiB (broker and
# producer defaults), headers included; the contracts bound every list and string well below
# this, so reaching it means a bound is missing, and the write is refused rather than stalling
# the relay (a row that got past it anyway goes to `outbox_dead_letters`).
MAX_EVENT_BYTES = 512 * 1024


def stage_event(data: EventData, *, source: str, key: str, subject: str | None = None) -> StagedEvent:
    """The outbox row of `data`; the event id becomes the CloudEvent `id`. Refuses data over MAX_EVENT_BYTES."""
    payload = data.model_dump_json()
    if len(payload) > MAX_EVENT_BYTES // 4 and len(payload.encode("utf-8")) > MAX_EVENT_BYTES:
        raise Refused(
            "(body)",
            f"the {data.event_type} this would publish is {len(payload.encode('utf-8'))} bytes;"
            f" at most {MAX_EVENT_BYTES} are taken: send less",
            title="Too large to publish",
        )
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
        payload,
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


class Unpublishable(Exception):
    """A row Kafka will never take as it is. `category` labels the metric; the text is the reason kept."""

    def __init__(self, reason: str, category: str) -> None:
        super().__init__(reason)
        self.category = category


class KafkaUnavailable(ConnectionError):
    """Kafka did not take rows for a reason that passes (broker away, a timeout, a topic not created yet).

    An OSError, so the worker pauses with its backoff and logs a warning rather than a trace.
    """


# Broker or client errors that the same record will meet again however often it is sent.
# Everything else (connections, timeouts, leaders moving, unknown topics) is retried.
_REFUSED_FOR_GOOD: dict[type[Exception], str] = {
    MessageSizeTooLargeError: "too-large",
    RecordListTooLargeError: "too-large",
    RecordTooLargeError: "too-large",
    InvalidTopicError: "invalid-topic",
}
# Kafka's own rule for topic names; checked here because a name the broker cannot have is
# otherwise only a metadata timeout, retried for ever.
_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")
# Non-leaders keep their gauges current too (no replica shows a stale backlog), but at most
# this often: they are woken by every commit in their process.
_FOLLOWER_MEASURE_SECONDS = 1.0


def _refusal(exc: BaseException) -> str | None:
    """The reason class if Kafka refused a record for good, None if trying again may work."""
    for kind, category in _REFUSED_FOR_GOOD.items():
        if isinstance(exc, kind):
            return category
    return None


@dataclass
class _Settlement:
    """What one pass learnt: rows Kafka acknowledged, rows it refused for good, and why it stopped."""

    published: list[asyncpg.Record] = field(default_factory=list)
    refused: list[tuple[asyncpg.Record, str, str]] = field(default_factory=list)
    transient: BaseException | None = None


class OutboxRelay(BatchWorker):
    """Drains one service's outbox to Kafka in order.

    One drainer at a time per schema: a session-level advisory lock, held on the connection
    the pass uses while its short statements (read, settle, measure) come and go, so no
    transaction and no row lock is open while Kafka acknowledges. A replica that does not
    get the lock only measures. Rows are deleted only once Kafka acknowledged them, so a
    crash between the send and the delete re-sends rather than loses (consumers de-duplicate
    on the event id). A row Kafka refuses for good moves to `outbox_dead_letters` with the
    reason and the rows after it flow on; a passing failure keeps every row not acknowledged
    and pauses the worker with its backoff.
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
        publish_timeout_seconds: float = 60.0,
        sealer: Sealer | None = None,
    ) -> None:
        super().__init__(
            pool, name=f"outbox-relay-{schema}", batch_size=batch_size, idle_poll_seconds=idle_poll_seconds
        )
        self.producer = producer
        self.schema = schema
        self.metrics = metrics
        # A bound on one pass's sends and acks, so the gauges keep being measured when a send
        # never returns; longer than the producer's own request timeout (40 s by default), so
        # normally aiokafka's failure is what ends a wait.
        self.publish_timeout_seconds = publish_timeout_seconds
        self._lock_name = f"pitchin-outbox-{schema}"
        self._measured_at = -math.inf
        # Seals personal fields as rows leave for Kafka (pitchin_core.personal): the rows, and the
        # SQL that stages them, stay as they are. This pass's sealed payloads, by seq.
        self.sealer = sealer
        self._sealed: dict[int, str] = {}

    async def work_once(self) -> int:
        return await self.drain_once()

    async def drain_once(self) -> int:
        """One pass: publish up to a batch if this process holds the schema's lock; always measure."""
        async with self.pool.acquire() as conn:
            # The same key as the transaction-scoped lock relays took before: session and
            # transaction advisory locks conflict, so old and new replicas exclude each other.
            locked = await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", self._lock_name)
            if not locked:
                if time.monotonic() - self._measured_at >= _FOLLOWER_MEASURE_SECONDS:
                    await self._measure(conn)
                return 0
            try:
                return await self._drain(conn)
            finally:
                try:
                    await self._measure(conn)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    # PostgreSQL away: the drain's own error (if any) is the one to report.
                    log.debug("outbox gauges of %s not measured: %s", self.schema, exc)
                finally:
                    await self._unlock(conn)

    async def _drain(self, conn: Conn) -> int:
        rows = await conn.fetch(
            "SELECT seq, event_id, topic, message_key, event_type, source, subject, tenant, occurred_at,"
            " payload::text AS payload, traceparent, tracestate"
            " FROM outbox ORDER BY seq LIMIT $1",
            self.batch_size,
        )
        if not rows:
            return 0
        # Keys are looked up once for the pass; signups away pauses the relay with every row kept.
        self._sealed = await self.sealer.seal(rows) if self.sealer is not None else {}
        outcome = await self._publish(rows)
        settled = await self._settle(conn, outcome)
        if outcome.transient is not None:
            reason = outcome.transient
            raise KafkaUnavailable(
                f"Kafka did not take outbox rows of {self.schema} ({settled} settled, the rest kept):"
                f" {type(reason).__name__}: {reason}"
            ) from reason
        return settled

    async def _publish(self, rows: Sequence[asyncpg.Record]) -> _Settlement:
        """Send the rows in order and wait for the acks, within `publish_timeout_seconds`."""
        outcome = _Settlement()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.publish_timeout_seconds
        sent: list[tuple[asyncpg.Record, asyncio.Future[Any]]] = []
        try:
            async with asyncio.timeout_at(deadline):
                for row in rows:
                    try:
                        sent.append((row, await self._send(row)))
                    except Unpublishable as exc:
                        outcome.refused.append((row, str(exc), exc.category))
                    except KafkaError as exc:
                        category = _refusal(exc)
                        if category is None:
                            # Later rows wait behind this one: sending them now could reorder a key.
                            outcome.transient = exc
                            break
                        outcome.refused.append((row, f"{type(exc).__name__}: {exc}", category))
        except TimeoutError as exc:
            outcome.transient = exc
        futures = [future for _, future in sent]
        if futures:
            # wait(), not gather(): a future still open at the deadline must not be cancelled,
            # since cancelling it does not stop the record (its outcome is just unknown).
            await asyncio.wait(futures, timeout=max(deadline - loop.time(), 0.0))
        refused_in_flight: list[asyncpg.Record] = []
        for row, future in sent:
            if not future.done():
                future.add_done_callback(_retrieve)
                outcome.transient = outcome.transient or TimeoutError("no ack within the relay's publish timeout")
            elif (error := future.exception()) is None:
                outcome.published.append(row)
            elif _refusal(error) is not None:
                refused_in_flight.append(row)
            else:
                outcome.transient = outcome.transient or error
        if refused_in_flight and outcome.transient is None:
            await self._send_alone(refused_in_flight, outcome, deadline)
        outcome.refused.sort(key=lambda refused: int(refused[0]["seq"]))
        return outcome

    async def _send_alone(self, rows: list[asyncpg.Record], outcome: _Settlement, deadline: float) -> None:
        """Send again, one at a time, rows the broker refused for good: a refusal answers a whole
        batch, and a small row that shared one with an oversized row must not be set aside."""
        try:
            async with asyncio.timeout_at(deadline):
                for row in rows:
                    try:
                        await (await self._send(row))
                    except KafkaError as exc:
                        category = _refusal(exc)
                        if category is None:
                            outcome.transient = exc
                            return
                        outcome.refused.append((row, f"{type(exc).__name__}: {exc}", category))
                    else:
                        outcome.published.append(row)
        except TimeoutError as exc:
            outcome.transient = exc

    async def _send(self, row: asyncpg.Record) -> asyncio.Future[Any]:
        """Enqueue one row as a record (binary-mode CloudEvent, the stored payload bytes as the value)."""
        topic: str = row["topic"]
        if not _TOPIC_NAME.fullmatch(topic) or topic in (".", ".."):
            raise Unpublishable(f"{topic!r} is not a name Kafka allows for a topic", "invalid-topic")
        # The attributes only: the data goes as the stored bytes, never parsed here.
        event = CloudEvent(
            id=str(row["event_id"]),
            source=row["source"],
            type=row["event_type"],
            data={},
            time=row["occurred_at"],
            subject=row["subject"],
            tenant=row["tenant"],
        )
        parent = context_from(row["traceparent"], row["tracestate"])
        with tracer.start_as_current_span(
            f"send {topic}",
            context=parent,
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "send",
                "messaging.operation.name": "send",
                "messaging.destination.name": topic,
                "messaging.message.id": event.id,
                "messaging.kafka.message.key": row["message_key"],
                "cloudevents.event_type": event.type,
                "cloudevents.event_id": event.id,
            },
        ):
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            try:
                headers = to_kafka_headers(event, extra=carrier.items())
                key = row["message_key"].encode("utf-8")
                value = self._sealed.get(row["seq"], row["payload"]).encode("utf-8")
            except (ValueError, TypeError) as exc:
                raise Unpublishable(f"the row cannot be made a Kafka record: {exc}", "unserialisable") from exc
            # send() only enqueues (or refuses a record larger than max_request_size at once);
            # the returned future is settled by the ack.
            future: asyncio.Future[Any] = await self.producer.send(topic, value=value, key=key, headers=headers)
            return future

    async def _settle(self, conn: Conn, outcome: _Settlement) -> int:
        """Delete what was published and move what was refused, in one statement (one transaction)."""
        done = [r["seq"] for r in outcome.published] + [r["seq"] for r, _, _ in outcome.refused]
        if not done:
            return 0
        await conn.execute(
            "WITH gone AS ("
            " DELETE FROM outbox WHERE seq = ANY($1::bigint[])"
            " RETURNING seq, event_id, topic, message_key, event_type, source, subject, tenant, occurred_at,"
            " payload, traceparent, tracestate"
            ") INSERT INTO outbox_dead_letters (seq, event_id, topic, message_key, event_type, source, subject,"
            " tenant, occurred_at, payload, traceparent, tracestate, reason)"
            " SELECT g.seq, g.event_id, g.topic, g.message_key, g.event_type, g.source, g.subject, g.tenant,"
            " g.occurred_at, g.payload, g.traceparent, g.tracestate, r.reason"
            " FROM gone g JOIN unnest($2::bigint[], $3::text[]) AS r(seq, reason) ON r.seq = g.seq",
            done,
            [r["seq"] for r, _, _ in outcome.refused],
            [reason for _, reason, _ in outcome.refused],
        )
        service = self.metrics.service
        if outcome.published:
            self.metrics.outbox_relayed.labels(service).inc(len(outcome.published))
            for row in outcome.published:
                self.metrics.events_published.labels(service, row["event_type"]).inc()
        for row, reason, category in outcome.refused:
            self.metrics.outbox_dead_letters.labels(service, row["topic"], category).inc()
            log.error(
                "outbox row set aside in outbox_dead_letters: %s",
                reason,
                extra={"event_id": str(row["event_id"]), "event_type": row["event_type"], "topic": row["topic"]},
            )
        return len(done)

    async def _measure(self, conn: Conn) -> None:
        backlog = await conn.fetchrow("SELECT count(*) AS n, min(occurred_at) AS oldest FROM outbox")
        assert backlog is not None
        self._measured_at = time.monotonic()
        self.metrics.outbox_backlog.labels(self.metrics.service).set(backlog["n"])
        oldest: datetime | None = backlog["oldest"]
        age = (datetime.now(UTC) - oldest).total_seconds() if oldest else 0.0
        self.metrics.outbox_oldest_age.labels(self.metrics.service).set(max(age, 0.0))

    async def _unlock(self, conn: Conn) -> None:
        try:
            await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", self._lock_name)
        except BaseException:
            # Pooled connections are not reset on release (pitchin_core.db), so a lock left on
            # one would stop this schema's relays for good: closing the session drops it.
            conn.terminate()
            raise


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Read a late future's outcome so asyncio does not log it as never retrieved."""
    if not future.cancelled():
        future.exception()


def new_producer(bootstrap: str, client_id: str, credentials: KafkaCredentials | None = None) -> AIOKafkaProducer:
    """The producer of a service's relay and dead letters.

    Not idempotent: aiokafka's idempotent producer never re-synchronises its sequence numbers
    after a batch fails for good (a broker refusing a record too large for the topic, or a
    batch expired while the broker was away), so every later send to that partition fails
    with OutOfOrderSequenceNumber until the process restarts (aiokafka issue 1017; seen here
    with a topic's max.message.bytes). Order per key does not need it: aiokafka keeps one
    batch per partition in flight and puts a retried batch back first. A record written twice
    by a retry is a duplicate the consumers drop by event id, as they do after a relay crash.
    """
    return AIOKafkaProducer(
        **client_options(bootstrap, credentials),
        client_id=client_id,
        acks="all",
        enable_idempotence=False,
        linger_ms=5,
        max_batch_size=256 * 1024,
        # Kafka's default message.max.bytes (1 MiB + 12): a record the producer lets through
        # fits the broker, and a larger one is refused here, at send(), with a clear error.
        max_request_size=1024 * 1024,
    )
