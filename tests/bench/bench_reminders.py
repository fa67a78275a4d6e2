"""How many due reminders per second the timer loop turns into reminder-due events on Kafka.

Starts its own Kafka and PostgreSQL (pitchin_testing.servers), migrates the scheduling schema,
inserts N reminders that are all due, then runs the real ReminderTimer and OutboxRelay and
counts reminder-due records arriving on pitchin.events.v1. Beside it, measured in the same run
on the same server: single-row INSERT commits per second on one asyncpg connection, the raw
limit a one-transaction-per-batch timer is compared with. Prints figures; asserts nothing.

    .venv/bin/python -m tests.bench.bench_reminders [N]
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from importlib.resources import files

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from pitchin_core.contracts.topics import EVENTS
from pitchin_core.db import create_pool, migrate
from pitchin_core.kafka_admin import ensure_topics
from pitchin_core.outbox import OutboxRelay, new_producer
from pitchin_core.telemetry import Metrics
from pitchin_core.uow import UnitOfWork
from pitchin_scheduling.timer import ReminderTimer
from pitchin_testing.install import ensure_installed, repo_root
from pitchin_testing.kafka import KafkaServer, admin_credentials, admin_options
from pitchin_testing.ports import free_ports
from pitchin_testing.postgres import PostgresServer
from tests.e2e.helpers import eventually_async

SCHEMA = "scheduling"
EVENTS_PER_RUN = 100


async def raw_insert_commits_per_second(dsn: str, seconds: float = 3.0) -> float:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE TEMP TABLE bench_raw (id bigserial PRIMARY KEY, payload text NOT NULL)")
        count, began = 0, time.perf_counter()
        while time.perf_counter() - began < seconds:
            await conn.execute("INSERT INTO bench_raw (payload) VALUES ($1)", "x" * 200)  # autocommit: one commit each
            count += 1
        return count / (time.perf_counter() - began)
    finally:
        await conn.close()


async def insert_due_reminders(pool: asyncpg.Pool, n: int) -> None:
    now = datetime.now(UTC)
    starts = now + timedelta(hours=1)
    events = [f"evt_bench_{uuid.uuid4().hex[:12]}" for _ in range(EVENTS_PER_RUN)]
    async with pool.acquire() as conn, conn.transaction():
        await conn.executemany(
            "INSERT INTO events (event_id, federation_id, organisation_id, kind, title, starts_at, ends_at, time_zone,"
            " online_url, hashtag, organiser_email, status, livestream_status)"
            " VALUES ($1, 'fed-bench', 'org-bench', 'livestream', 'Bench livestream', $2, $3, 'Europe/London',"
            " 'https://stream.example/bench', '#Bench', 'bench@example.org', 'published', 'scheduled')",
            [(e, starts, starts + timedelta(hours=1)) for e in events],
        )
        await conn.copy_records_to_table(
            "reminders",
            columns=[
                "reminder_id",
                "event_id",
                "federation_id",
                "organisation_id",
                "kind",
                "offset_seconds",
                "due_at",
                "event_version",
            ],
            records=[
                (
                    f"rem_{i:08d}",
                    events[i % len(events)],
                    "fed-bench",
                    "org-bench",
                    "custom",
                    3600 - i % 3600,
                    now - timedelta(seconds=1),
                    1,
                )
                for i in range(n)
            ],
        )


async def count_on_kafka(consumer: AIOKafkaConsumer, n: int, deadline: float) -> int:
    seen = 0
    while seen < n and time.monotonic() < deadline:
        batch = await consumer.getmany(timeout_ms=500, max_records=5000)
        for records in batch.values():
            for record in records:
                headers = dict(record.headers)
                if headers.get("ce_type") == b"org.pitchin.event.reminder-due.v1":
                    seen += 1
    return seen


async def run(bootstrap: str, dsn: str, n: int) -> None:
    trace.set_tracer_provider(TracerProvider())  # spans are made (their CPU counts), not exported
    await ensure_topics(bootstrap, [EVENTS.name], credentials=admin_credentials(bootstrap))
    await migrate(dsn, SCHEMA, files("pitchin_scheduling") / "migrations")
    raw = await raw_insert_commits_per_second(dsn)

    pool = await create_pool(dsn, SCHEMA, size=5)
    await insert_due_reminders(pool, n)
    metrics = Metrics("scheduling-bench")
    consumer = AIOKafkaConsumer(**admin_options(bootstrap), enable_auto_commit=False)
    await consumer.start()
    # The topic is created with the table\'s partition count (kafka_admin.ensure_topics).
    partitions = [TopicPartition(EVENTS.name, p) for p in range(EVENTS.partitions)]
    consumer.assign(partitions)
    await consumer.seek_to_end(*partitions)
    for tp in partitions:
        await consumer.position(tp)
    producer = new_producer(bootstrap, "bench-outbox", admin_credentials(bootstrap))
    await producer.start()
    relay = OutboxRelay(pool, producer, schema=SCHEMA, metrics=metrics)
    uow = UnitOfWork(pool, source="/pitchin/scheduling", consumer="scheduling")
    timer = ReminderTimer(uow, metrics, schema=SCHEMA, batch_size=200)

    began = time.perf_counter()
    await timer.start()
    await relay.start()
    counting = asyncio.create_task(count_on_kafka(consumer, n, time.monotonic() + 600))

    async def all_fired() -> bool:
        return bool(await pool.fetchval("SELECT count(*) = 0 FROM reminders WHERE fired_at IS NULL"))

    await eventually_async(all_fired, timeout=600, interval=0.01, what="every reminder fired")
    fired_at = time.perf_counter()
    on_kafka = await counting
    delivered_at = time.perf_counter()
    await timer.stop()
    await relay.stop()
    await producer.stop()
    await consumer.stop()
    await pool.close()

    fired_rate = n / (fired_at - began)
    kafka_rate = on_kafka / (delivered_at - began)
    print(f"reminders due:                          {n}")
    print(f"timer: fired into the outbox            {fired_rate:10.0f} reminders/s  ({fired_at - began:.2f} s)")
    print(f"timer + relay: reminder-due on Kafka    {kafka_rate:10.0f} events/s     ({on_kafka} received)")
    print(f"raw PostgreSQL: single-row INSERT commits on one connection {raw:10.0f} /s")
    print(f"ratio, reminders on Kafka per raw commit: {kafka_rate / raw:.2f}")
    print("(the timer commits once per batch of 200: one transaction carries 200 outbox rows and marks)")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    ensure_installed()
    state = repo_root() / ".state" / f"bench-reminders-{os.getpid()}"
    kafka_port, controller_port, pg_port = free_ports(3)
    kafka = KafkaServer(state / "kafka", port=kafka_port, controller_port=controller_port)
    postgres = PostgresServer(state / "postgres", port=pg_port)
    try:
        kafka.start()
        postgres.start()
        dsn = postgres.create_database("bench_reminders")
        asyncio.run(run(kafka.bootstrap, dsn, n))
    finally:
        kafka.stop()
        postgres.cleanup()


if __name__ == "__main__":
    main()
