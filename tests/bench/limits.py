"""This machine's raw Kafka and PostgreSQL limits, measured in the same run as a benchmark.

The machine is shared and noisy: a figure alone says little, its ratio to the raw limit
measured a moment earlier says how much of the machine the system turns into work.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


async def postgres_row_and_outbox_txn_per_s(dsn: str, seconds: float = 3.0, concurrency: int = 8) -> float:
    """Transactions/s of one business row + one outbox-shaped row, `concurrency` at once."""
    conn = await asyncpg.connect(dsn)
    schema = f"limits_{uuid.uuid4().hex[:8]}"
    await conn.execute(f"CREATE SCHEMA {schema}")
    await conn.execute(f"CREATE TABLE {schema}.business (id uuid PRIMARY KEY, body jsonb)")
    await conn.execute(f"CREATE TABLE {schema}.outbox (seq bigserial PRIMARY KEY, id uuid, payload jsonb)")
    await conn.close()
    pool = await asyncpg.create_pool(dsn, min_size=concurrency, max_size=concurrency)
    assert pool is not None
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            async with pool.acquire() as c, c.transaction():
                ident = uuid.uuid4()
                await c.execute(f"INSERT INTO {schema}.business VALUES ($1, $2::jsonb)", ident, '{"a": 1}')
                await c.execute(f"INSERT INTO {schema}.outbox (id, payload) VALUES ($1, $2::jsonb)", ident, '{"a": 1}')
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    rate = done / (time.perf_counter() - started)
    await pool.execute(f"DROP SCHEMA {schema} CASCADE")
    await pool.close()
    return rate


async def postgres_capacity_rush(dsn: str, attempts: int, capacity: int, pool_size: int = 20) -> tuple[int, float]:
    """The notes' raw booking test: `attempts` concurrent `UPDATE … WHERE booked < capacity`."""
    conn = await asyncpg.connect(dsn)
    table = f"limits_seats_{uuid.uuid4().hex[:8]}"
    await conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, booked int NOT NULL, capacity int NOT NULL)")
    await conn.execute(f"INSERT INTO {table} VALUES (1, 0, $1)", capacity)
    await conn.close()
    pool = await asyncpg.create_pool(dsn, min_size=pool_size, max_size=pool_size)
    assert pool is not None

    async def attempt() -> bool:
        row = await pool.fetchval(
            f"UPDATE {table} SET booked = booked + 1 WHERE id = 1 AND booked < capacity RETURNING booked"
        )
        return row is not None

    started = time.perf_counter()
    results = await asyncio.gather(*(attempt() for _ in range(attempts)))
    elapsed = time.perf_counter() - started
    await pool.execute(f"DROP TABLE {table}")
    await pool.close()
    return sum(results), elapsed


async def kafka_round_trip_ms(bootstrap: str, messages: int = 500) -> tuple[float, float]:
    """p50/p99 of aiokafka send_and_wait (acks=all) to a consumer receiving it, one at a time."""
    topic = f"limits-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 1, 1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await producer.start()
    await consumer.start()
    latencies = []
    try:
        await producer.send_and_wait(topic, b"warm-up")
        await consumer.getone()
        for _ in range(messages):
            started = time.perf_counter()
            await producer.send_and_wait(topic, b"x" * 512)
            await consumer.getone()
            latencies.append((time.perf_counter() - started) * 1000)
    finally:
        await producer.stop()
        await consumer.stop()
    return statistics.median(latencies), percentile(latencies, 99)


def line(label: str, figure: float, unit: str, limit_label: str, limit: float, limit_unit: str) -> str:
    ratio = figure / limit if limit else float("nan")
    return (
        f"  {label:<52} {figure:>10.1f} {unit:<10} | raw {limit_label:<38} {limit:>10.1f} {limit_unit:<10}"
        f" | ratio {ratio:6.3f}"
    )
