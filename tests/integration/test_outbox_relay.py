"""The outbox relay against the real Kafka and PostgreSQL.

Rows relay in order with their stored bytes; a row Kafka refuses for good is set aside in
`outbox_dead_letters` while the rows after it publish; Kafka away keeps every row and the
oldest-age gauge grows; no transaction is open while a send waits, and only one relay of a
schema drains at a time.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from pitchin_core.outbox import OUTBOX_COLUMNS, OutboxRelay, new_producer
from pitchin_core.telemetry import Metrics
from pitchin_testing.kafka import KafkaServer, admin_options
from pitchin_testing.ports import free_port
from tests.e2e.helpers import eventually_async
from tests.integration.conftest import ServiceDatabase

pytestmark = pytest.mark.integration

SERVICE = "relay-test"
TENANT = "fed-relay/org-relay"
# Above the producer's max_request_size (1 MiB): the donor PATCH with a list of causes that
# stopped signups' relay for every tenant (issue 23).
OVERSIZED = 1_300_000


@pytest.fixture
async def outbox_db(open_service_database: Any, tmp_path: Path) -> ServiceDatabase:
    """A schema with the core tables only (outbox, dead letters): no service's own."""
    empty = tmp_path / "no-service-migrations"
    empty.mkdir()
    db: ServiceDatabase = await open_service_database("relay", empty)
    return db


@pytest.fixture
async def producer(kafka_server: KafkaServer) -> AsyncIterator[AIOKafkaProducer]:
    """The producer every service's relay uses, on the test broker."""
    made = new_producer(kafka_server.bootstrap, f"{SERVICE}-{uuid.uuid4().hex[:6]}", kafka_server.admin)
    await made.start()
    yield made
    await made.stop()


async def create_topic(bootstrap: str, partitions: int = 3, config: dict[str, str] | None = None) -> str:
    name = f"relay-test-{uuid.uuid4().hex[:10]}"
    admin = AIOKafkaAdminClient(**admin_options(bootstrap))
    await admin.start()
    try:
        response = await admin.create_topics(
            [NewTopic(name=name, num_partitions=partitions, replication_factor=1, topic_configs=config or {})]
        )
    finally:
        await admin.close()
    # create_topics does not raise on per-topic errors: check them.
    errors = [(topic, code) for topic, code, *_ in response.topic_errors if code != 0]
    assert errors == [], f"create_topics failed: {errors}"
    return name


async def stage(db: ServiceDatabase, topic: str, key: str, data: dict[str, Any]) -> uuid.UUID:
    """An outbox row as `tx.emit` writes one, with a traceparent the relay's span continues."""
    event_id = uuid.uuid4()
    await db.pool.execute(
        f"INSERT INTO outbox ({OUTBOX_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10)",
        event_id,
        topic,
        key,
        "org.pitchin.test.relayed.v1",
        "/pitchin/relay-test",
        f"things/{key}",
        TENANT,
        json.dumps(data),
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        None,
    )
    return event_id


async def stored_payloads(db: ServiceDatabase) -> dict[str, bytes]:
    """event id → the payload bytes as PostgreSQL hands them out (`payload::text`)."""
    rows = await db.pool.fetch("SELECT event_id, payload::text AS payload FROM outbox")
    return {str(r["event_id"]): r["payload"].encode("utf-8") for r in rows}


async def read_topic(bootstrap: str, topic: str, partitions: int, within: float = 30.0) -> list[Any]:
    """Every record on `topic` up to its end offsets now, per partition in offset order."""
    consumer = AIOKafkaConsumer(**admin_options(bootstrap), group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        assigned = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends = await consumer.end_offsets(assigned)
        records: list[Any] = []
        deadline = time.monotonic() + within
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"only {len(records)} records from {topic} in {within} s"
            batches = await consumer.getmany(timeout_ms=int(min(remaining, 1.0) * 1000))
            for batch in batches.values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records


def header(record: Any, name: str) -> str:
    values: list[str] = [v.decode("utf-8") for k, v in record.headers if k == name]
    assert len(values) == 1, f"{name}: {values}"
    return values[0]


async def drain_until_empty(relay: OutboxRelay, db: ServiceDatabase, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while await db.pool.fetchval("SELECT count(*) FROM outbox"):
        assert time.monotonic() < deadline, "the relay did not empty the outbox"
        await relay.drain_once()


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"service": SERVICE, **labels})


def dead_lettered(metrics: Metrics) -> float:
    """The outbox dead-letter counter summed over every topic and reason."""
    return sum(
        s.value
        for family in metrics.registry.collect()
        for s in family.samples
        if s.name == "pitchin_outbox_dead_letters_total"
    )


async def test_rows_relay_in_order_per_key_with_the_stored_payload_bytes(
    outbox_db: ServiceDatabase, producer: AIOKafkaProducer, kafka_server: KafkaServer
) -> None:
    topic = await create_topic(kafka_server.bootstrap)
    keys = [f"donor-{i}" for i in range(5)]
    staged: dict[str, list[str]] = {key: [] for key in keys}
    for n in range(40):
        key = keys[n % len(keys)]
        data = {
            "federation_id": "fed-relay",
            "n": n,
            "name": "Siân Ó Dónaill",  # non-ASCII: forwarded as stored, not re-escaped
            "causes": ["housing", "ffrindiau'r ddaear"],
            "score": 1.50,
            "nested": {"b": [1, 2, {"c": None}], "a": True},
        }
        staged[key].append(str(await stage(outbox_db, topic, key, data)))
    stored = await stored_payloads(outbox_db)
    metrics = Metrics(SERVICE)
    relay = OutboxRelay(outbox_db.pool, producer, schema=outbox_db.schema, metrics=metrics, batch_size=15)

    await drain_until_empty(relay, outbox_db)

    records = await read_topic(kafka_server.bootstrap, topic, 3)
    assert len(records) == 40
    relayed: dict[str, list[str]] = {key: [] for key in keys}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        event_id = header(record, "ce_id")
        relayed[record.key.decode()].append(event_id)
        # The bytes PostgreSQL stored, untouched: no parse and re-serialise on the way.
        assert record.value == stored[event_id]
        assert [k for k, _ in record.headers] == [
            "ce_specversion",
            "ce_id",
            "ce_source",
            "ce_type",
            "content-type",
            "ce_time",
            "ce_subject",
            "ce_tenant",
            "traceparent",
        ]
        assert header(record, "ce_specversion") == "1.0"
        assert header(record, "ce_type") == "org.pitchin.test.relayed.v1"
        assert header(record, "ce_source") == "/pitchin/relay-test"
        assert header(record, "ce_subject") == f"things/{record.key.decode()}"
        assert header(record, "ce_tenant") == TENANT
        assert header(record, "content-type") == "application/json"
        assert datetime.fromisoformat(header(record, "ce_time").replace("Z", "+00:00")) <= datetime.now(UTC)
        # The PRODUCER span continues the trace stored with the row.
        assert header(record, "traceparent").split("-")[1] == "0af7651916cd43dd8448eb211c80319c"
    assert relayed == staged
    assert sample(metrics, "pitchin_outbox_relayed_total") == 40
    assert sample(metrics, "pitchin_outbox_backlog") == 0
    assert await outbox_db.pool.fetchval("SELECT count(*) FROM outbox_dead_letters") == 0


@pytest.mark.parametrize(
    ("where", "size", "topic_config"),
    [
        # The producer refuses it at send(): larger than max_request_size.
        ("producer", OVERSIZED, None),
        # The broker refuses it: within the producer's limit, above the topic's. The refusal
        # answers the whole batch the record went in; the small rows sharing it must publish.
        ("broker", 60_000, {"max.message.bytes": "20000"}),
    ],
)
async def test_a_row_kafka_refuses_is_set_aside_and_the_rows_after_it_publish(
    outbox_db: ServiceDatabase,
    producer: AIOKafkaProducer,
    kafka_server: KafkaServer,
    where: str,
    size: int,
    topic_config: dict[str, str] | None,
) -> None:
    topic = await create_topic(kafka_server.bootstrap, partitions=1, config=topic_config)
    before = [await stage(outbox_db, topic, "donor-1", {"n": n}) for n in range(3)]
    refused = await stage(outbox_db, topic, "donor-1", {"n": 3, "causes": ["x" * size]})
    after = [await stage(outbox_db, topic, "donor-1", {"n": n}) for n in range(4, 7)]
    stored = await stored_payloads(outbox_db)
    metrics = Metrics(SERVICE)
    relay = OutboxRelay(outbox_db.pool, producer, schema=outbox_db.schema, metrics=metrics)

    await drain_until_empty(relay, outbox_db)

    records = await read_topic(kafka_server.bootstrap, topic, 1)
    assert [header(r, "ce_id") for r in records] == [str(e) for e in before + after]
    dead = await outbox_db.pool.fetch(
        "SELECT event_id, topic, payload::text AS payload, reason FROM outbox_dead_letters"
    )
    assert [(d["event_id"], d["topic"]) for d in dead] == [(refused, topic)]
    assert dead[0]["payload"].encode("utf-8") == stored[str(refused)]
    assert "MessageSizeTooLarge" in dead[0]["reason"] or "RecordListTooLarge" in dead[0]["reason"], dead[0]["reason"]
    assert sample(metrics, "pitchin_outbox_dead_letters_total", topic=topic, reason="too-large") == 1
    assert dead_lettered(metrics) == 1
    assert sample(metrics, "pitchin_outbox_relayed_total") == 6
    assert sample(metrics, "pitchin_outbox_backlog") == 0
    assert sample(metrics, "pitchin_outbox_oldest_age_seconds") == 0


async def test_a_topic_name_kafka_cannot_have_is_set_aside(
    outbox_db: ServiceDatabase, producer: AIOKafkaProducer, kafka_server: KafkaServer
) -> None:
    topic = await create_topic(kafka_server.bootstrap, partitions=1)
    bad = await stage(outbox_db, "pitchin.donors+v1", "donor-1", {"n": 0})
    good = await stage(outbox_db, topic, "donor-1", {"n": 1})
    metrics = Metrics(SERVICE)
    relay = OutboxRelay(outbox_db.pool, producer, schema=outbox_db.schema, metrics=metrics)

    await drain_until_empty(relay, outbox_db)

    assert [header(r, "ce_id") for r in await read_topic(kafka_server.bootstrap, topic, 1)] == [str(good)]
    reason = await outbox_db.pool.fetchval("SELECT reason FROM outbox_dead_letters WHERE event_id = $1", bad)
    assert "is not a name Kafka allows" in reason
    assert sample(metrics, "pitchin_outbox_dead_letters_total", topic="pitchin.donors+v1", reason="invalid-topic") == 1


async def unreachable_kafka(_: KafkaServer) -> tuple[AIOKafkaProducer, str]:
    """A producer whose broker never answers: a closed port (its start() would fail, so never started)."""
    return AIOKafkaProducer(bootstrap_servers=f"127.0.0.1:{free_port()}", request_timeout_ms=500), "never-created"


async def topic_not_created(kafka_server: KafkaServer) -> tuple[AIOKafkaProducer, str]:
    """The real broker, but a topic it does not have (auto-creation is off): metadata times out."""
    made = AIOKafkaProducer(**kafka_server.admin_options(), request_timeout_ms=500)
    await made.start()
    return made, f"relay-test-missing-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize("kafka_away", [unreachable_kafka, topic_not_created], ids=lambda f: f.__name__)
async def test_kafka_away_keeps_every_row_dead_letters_nothing_and_the_age_grows(
    outbox_db: ServiceDatabase,
    kafka_server: KafkaServer,
    kafka_away: Callable[[KafkaServer], Awaitable[tuple[AIOKafkaProducer, str]]],
) -> None:
    away, topic = await kafka_away(kafka_server)
    staged = [await stage(outbox_db, topic, f"donor-{n}", {"n": n}) for n in range(3)]
    metrics = Metrics(SERVICE)
    relay = OutboxRelay(
        outbox_db.pool,
        away,
        schema=outbox_db.schema,
        metrics=metrics,
        idle_poll_seconds=0.05,
        publish_timeout_seconds=0.5,
    )
    await relay.start()
    try:
        ages: list[float] = []

        async def age_grew() -> bool:
            age = sample(metrics, "pitchin_outbox_oldest_age_seconds")
            if age is not None and (not ages or age > ages[-1]):
                ages.append(age)
            return len(ages) >= 3 and ages[-1] - ages[0] >= 1.0

        # The worker's backoff grows to seconds between passes: the gauge is measured on each.
        await eventually_async(
            age_grew, timeout=40, interval=0.05, what="the oldest-age gauge growing while Kafka is away"
        )
        assert sample(metrics, "pitchin_outbox_backlog") == 3
    finally:
        await relay.stop()
        await away.stop()
    kept = await outbox_db.pool.fetch("SELECT event_id FROM outbox ORDER BY seq")
    assert [r["event_id"] for r in kept] == staged
    assert await outbox_db.pool.fetchval("SELECT count(*) FROM outbox_dead_letters") == 0
    assert dead_lettered(metrics) == 0
    assert sample(metrics, "pitchin_outbox_relayed_total") in (None, 0)


async def lock_holder(conn: asyncpg.Connection, schema: str) -> asyncpg.Record | None:
    """The session of this schema's pool that holds an advisory lock, with what it is doing."""
    return await conn.fetchrow(
        "SELECT a.pid, a.state, a.xact_start, a.backend_xid, a.query"
        " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = $1",
        f"pitchin-{schema}",
    )


async def test_no_transaction_is_open_while_a_send_waits_and_one_relay_drains_at_a_time(
    outbox_db: ServiceDatabase, producer: AIOKafkaProducer, kafka_server: KafkaServer, service_database: str
) -> None:
    topic = await create_topic(kafka_server.bootstrap)
    staged = [await stage(outbox_db, topic, f"donor-{n % 2}", {"n": n}) for n in range(4)]
    # This replica's sends never return (its broker is a closed port): it holds the lock, waiting.
    stuck = AIOKafkaProducer(bootstrap_servers=f"127.0.0.1:{free_port()}")
    held_metrics, other_metrics = Metrics(SERVICE), Metrics(SERVICE)
    held = OutboxRelay(outbox_db.pool, stuck, schema=outbox_db.schema, metrics=held_metrics, publish_timeout_seconds=60)
    other = OutboxRelay(outbox_db.pool, producer, schema=outbox_db.schema, metrics=other_metrics)
    observer: asyncpg.Connection = await asyncpg.connect(service_database)
    waiting = asyncio.create_task(held.drain_once())
    try:

        async def read_then_waiting() -> bool:
            # The batch was read (it was the lock holder's last statement) and nothing since:
            # the relay is in its sends.
            holder = await lock_holder(observer, outbox_db.schema)
            return holder is not None and "FROM outbox ORDER BY seq" in holder["query"] and holder["state"] != "active"

        await eventually_async(
            read_then_waiting, interval=0.05, what="the relay reading a batch, then waiting for Kafka"
        )
        holder = await lock_holder(observer, outbox_db.schema)
        assert holder is not None
        assert holder["state"] == "idle", holder  # not 'idle in transaction'
        assert holder["xact_start"] is None and holder["backend_xid"] is None, holder
        # No row lock either: another session can lock every row at once.
        async with outbox_db.pool.acquire() as conn, conn.transaction():
            locked = await conn.fetch("SELECT seq FROM outbox FOR UPDATE NOWAIT")
            assert len(locked) == 4

        # A second replica meanwhile publishes nothing, and still measures.
        assert await other.drain_once() == 0
        assert sample(other_metrics, "pitchin_outbox_backlog") == 4
        assert await read_topic(kafka_server.bootstrap, topic, 3) == []
    finally:
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await stuck.stop()

    # The held relay let go of the lock as it stopped (pooled connections are not reset)...
    assert await lock_holder(observer, outbox_db.schema) is None
    await observer.close()
    # ...so the other replica drains, in order, each row once.
    await drain_until_empty(other, outbox_db)
    records = await read_topic(kafka_server.bootstrap, topic, 3)
    by_key: dict[str, list[str]] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        by_key.setdefault(record.key.decode(), []).append(header(record, "ce_id"))
    assert by_key == {
        "donor-0": [str(staged[0]), str(staged[2])],
        "donor-1": [str(staged[1]), str(staged[3])],
    }
    assert sample(held_metrics, "pitchin_outbox_relayed_total") is None
