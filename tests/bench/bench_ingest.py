"""Events/s accepted from other systems through each door, validation and idempotency included,
beside this run's raw PostgreSQL limits: one transaction per row + outbox row (the one-by-one
path's ceiling) and multi-row inserts of rows + outbox rows in batches (the set-based path's),
with the CPU-seconds each process spent per 1,000 events.

The Kafka door runs twice: keyed by the publisher's source (what the contract says today:
one publisher's records land on one partition, so on one consumer of a group) and keyed by
the person's external id (order per person is what matters; spreads over every partition)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer

from pitchin_testing.kafka import admin_options
from tests.bench import targets
from tests.bench.cpu import CpuMeter, CpuUse, _parents, tree
from tests.bench.limits import line, postgres_row_and_outbox_txn_per_s
from tests.bench.system import System, running_system
from tests.e2e.helpers import eventually_async
from tests.unit.factories import donor_signup

KAFKA_EVENTS = 5000
HTTP_EVENTS = 800
BATCH_EVENTS = 5000
BATCH_SIZE = 100
CONCURRENCY = 16
TYPE = "org.pitchin.ingest.person-signed-up.v1"
TARGET = 1000.0  # events/s, issue 23
RAW_BATCH = 500  # rows per statement in the raw multi-row limit (the Kafka door's max_records)


async def postgres_multirow_rows_per_s(dsn: str, seconds: float = 3.0, concurrency: int = 2) -> float:
    """Rows/s of business rows + outbox rows written `RAW_BATCH` at a time: one transaction per
    batch, a multi-row INSERT (unnest) of each, `concurrency` at once. The ceiling of a set-based
    apply on this machine, as `postgres_row_and_outbox_txn_per_s` is the one-by-one path's."""
    conn = await asyncpg.connect(dsn)
    schema = f"limits_{uuid.uuid4().hex[:8]}"
    await conn.execute(f"CREATE SCHEMA {schema}")
    await conn.execute(f"CREATE TABLE {schema}.business (id uuid PRIMARY KEY, body jsonb)")
    await conn.execute(f"CREATE TABLE {schema}.outbox (seq bigserial PRIMARY KEY, id uuid, payload jsonb)")
    await conn.close()
    pool = await asyncpg.create_pool(dsn, min_size=concurrency, max_size=concurrency)
    assert pool is not None
    body = json.dumps(_person("raw", 0))
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            ids = [uuid.uuid4() for _ in range(RAW_BATCH)]
            bodies = [body] * RAW_BATCH
            async with pool.acquire() as c, c.transaction():
                await c.execute(
                    f"WITH b AS (INSERT INTO {schema}.business SELECT * FROM unnest($1::uuid[], $2::jsonb[])"
                    f" RETURNING id, body) INSERT INTO {schema}.outbox (id, payload) SELECT id, body FROM b",
                    ids,
                    bodies,
                )
            done += RAW_BATCH

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    rate = done / (time.perf_counter() - started)
    await pool.execute(f"DROP SCHEMA {schema} CASCADE")
    await pool.close()
    return rate


def _meter(system: System) -> CpuMeter:
    def pid_of(get: Any) -> Any:
        return lambda: [p] if (p := get()) is not None else []

    groups = {
        name: pid_of(lambda s=service: s.process.pid if s.process is not None else None)
        for name, service in system.stack.services.items()
    }
    groups["postgres"] = pid_of(lambda: system.postgres.pid)
    groups["kafka"] = pid_of(lambda: system.kafka.pid)
    groups["smtp sink"] = pid_of(lambda: system.mail_log.pid)
    return CpuMeter(groups)


def _measured(meter: CpuMeter, run: Any) -> tuple[Any, CpuUse]:
    """`run()`'s result and the CPU each process spent on it (the load generator's own included)."""
    meter.start()
    own = time.process_time()
    result = run()
    return result, meter.stop({"load generator": time.process_time() - own})


def _person(tag: str, i: int) -> dict[str, Any]:
    return {
        **donor_signup(name=f"Bench {i}", email=f"{tag}-{i}@ingest.example"),
        "federation_id": "fed-bench",
        "organisation_id": "org-bench",
        "external_id": f"{tag}-{i}",
        "updated_at": "2026-11-23T10:00:00Z",
    }


async def _decided(conn: asyncpg.Connection, source: str) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM signups.ingest_seen WHERE source = $1 AND outcome = 'applied'", source
    )
    return count


async def _kafka_door(bootstrap: str, database_url: str, source: str, *, key_by_person: bool) -> float:
    """Applied/s from the first record sent to the last one applied; the records are built before
    the clock starts, so the load generator spends its CPU sending, not serialising."""
    producer = AIOKafkaProducer(**admin_options(bootstrap), acks="all", linger_ms=5)
    await producer.start()
    tag = uuid.uuid4().hex[:6]
    records = []
    for i in range(KAFKA_EVENTS):
        headers = [
            ("ce_specversion", b"1.0"),
            ("ce_id", f"{tag}-{i}".encode()),
            ("ce_source", source.encode()),
            ("ce_type", TYPE.encode()),
            ("content-type", b"application/json"),
        ]
        key = f"{tag}-{i}" if key_by_person else source
        records.append((key.encode(), json.dumps(_person(tag, i)).encode(), headers))
    # One connection for the polls: a new one each 0.1 s would fork a PostgreSQL backend each time,
    # CPU the system under test would pay for.
    conn = await asyncpg.connect(database_url)
    try:
        started = time.perf_counter()
        try:
            for key_bytes, value, headers in records:
                await producer.send("pitchin.ingest.v1", value, key=key_bytes, headers=headers)
            await producer.flush()
        finally:
            await producer.stop()

        async def all_decided() -> bool:
            return await _decided(conn, source) >= KAFKA_EVENTS

        await eventually_async(all_decided, timeout=300, what="the Kafka door to decide every event")
    finally:
        await conn.close()
    return KAFKA_EVENTS / (time.perf_counter() - started)


@contextmanager
def _paused(system: System, names: tuple[str, ...]) -> Iterator[None]:
    """SIGSTOP these services (every process of each) for the block, SIGCONT after: what the
    ingest path does when the services that react to its events are not sharing the 2 cores."""
    children = _parents()
    pids = [
        pid
        for name in names
        if (process := system.stack.services[name].process) is not None
        for pid in tree(process.pid, children)
    ]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


async def _http_single(url: str, key: str, source: str) -> tuple[float, Counter[int]]:
    tag = uuid.uuid4().hex[:6]
    slots = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=CONCURRENCY)) as client:

        async def one(i: int) -> int:
            async with slots:
                answer = await client.post(
                    f"{url}/v1/ingest",
                    content=json.dumps(_person(tag, i)),
                    headers={
                        "Authorization": f"Bearer {key}",
                        "content-type": "application/json",
                        "ce-specversion": "1.0",
                        "ce-id": f"{tag}-{i}",
                        "ce-source": source,
                        "ce-type": TYPE,
                    },
                )
                return answer.status_code

        started = time.perf_counter()
        statuses = await asyncio.gather(*(one(i) for i in range(HTTP_EVENTS)))
        return HTTP_EVENTS / (time.perf_counter() - started), Counter(statuses)


async def _http_batch(url: str, key: str, source: str) -> tuple[float, Counter[int]]:
    tag = uuid.uuid4().hex[:6]
    slots = asyncio.Semaphore(4)
    async with httpx.AsyncClient(timeout=120) as client:

        async def one(start: int) -> list[int]:
            batch = [
                {"specversion": "1.0", "id": f"{tag}-{i}", "source": source, "type": TYPE, "data": _person(tag, i)}
                for i in range(start, start + BATCH_SIZE)
            ]
            async with slots:
                answer = await client.post(
                    f"{url}/v1/ingest",
                    content=json.dumps(batch),
                    headers={"Authorization": f"Bearer {key}", "content-type": "application/cloudevents-batch+json"},
                )
            return [r["status"] for r in answer.json()["results"]]

        started = time.perf_counter()
        results = await asyncio.gather(*(one(s) for s in range(0, BATCH_EVENTS, BATCH_SIZE)))
        return BATCH_EVENTS / (time.perf_counter() - started), Counter(s for r in results for s in r)


def _rate_line(label: str, rate: float, raw_rows: float, raw_txn: float) -> str:
    return (
        line(label, rate, "per s", f"PG multi-row rows/s ({RAW_BATCH}/stmt)", raw_rows, "per s")
        + f" | {rate / raw_txn:5.2f}x PG row+outbox txn/s"
    )


def _record(name: str, rate: float, raw_rows: float, raw_txn: float) -> None:
    targets.record(
        name,
        f"{rate:,.0f} events/s",
        f"≥ {TARGET:,.0f} events/s",
        rate >= TARGET,
        f"{raw_rows:,.0f} multi-row rows/s (ratio {rate / raw_rows:.3f}); {raw_txn:,.0f} row+outbox txn/s"
        f" (ratio {rate / raw_txn:.2f})",
    )


def main() -> None:
    # The SMTP sink in its own process: the welcome mails are not parsed by the load generator.
    with running_system(sink_process=True) as system:
        stack, kafka, database_url = system.stack, system.kafka, system.database_url
        url = stack["signups"].url
        meter = _meter(system)
        print("ingest benchmark (services as processes; real Kafka 4.1.1, PostgreSQL 15)")
        raw_txn = asyncio.run(postgres_row_and_outbox_txn_per_s(database_url, concurrency=8))
        raw_rows = asyncio.run(postgres_multirow_rows_per_s(database_url))
        print(
            f"  raw: PG row+outbox txn/s (8 conns) {raw_txn:,.1f}; PG multi-row rows/s ({RAW_BATCH}/stmt,"
            f" 2 conns) {raw_rows:,.1f}"
        )

        kafka_rates = {}
        for by_person in (False, True):
            keying = "external id" if by_person else "source"
            kafka_source = f"/bench/kafka-by-{keying.replace(' ', '-')}"
            stack.register_publisher(kafka_source, "fed-bench", ("org-bench",), rate_per_second=1e6, burst=1_000_000)
            rate, cpu = _measured(
                meter,
                lambda b=by_person, s=kafka_source: asyncio.run(
                    _kafka_door(kafka.bootstrap, database_url, s, key_by_person=b)
                ),
            )
            kafka_rates[by_person] = rate
            label = f"Kafka door, keyed by {keying}: applied/s ({KAFKA_EVENTS})"
            print(_rate_line(label, rate, raw_rows, raw_txn))
            print(cpu.table(KAFKA_EVENTS, "events"))
        downstream = ("matching", "notifications")
        alone_source = "/bench/kafka-alone"
        stack.register_publisher(alone_source, "fed-bench", ("org-bench",), rate_per_second=1e6, burst=1_000_000)
        with _paused(system, downstream):
            alone, cpu = _measured(
                meter,
                lambda: asyncio.run(_kafka_door(kafka.bootstrap, database_url, alone_source, key_by_person=False)),
            )
        label = f"Kafka door, keyed by source, {'+'.join(downstream)} paused ({KAFKA_EVENTS})"
        print(_rate_line(label, alone, raw_rows, raw_txn))
        print(cpu.table(KAFKA_EVENTS, "events"))
        _record("ingest over Kafka, person-signed-up, applied (keyed by source)", kafka_rates[False], raw_rows, raw_txn)
        _record(
            "ingest over Kafka, person-signed-up, applied (keyed by external id)", kafka_rates[True], raw_rows, raw_txn
        )

        http_source = "/bench/http"
        creds = stack.register_publisher(http_source, "fed-bench", ("org-bench",), rate_per_second=1e6, burst=100_000)
        (rate, statuses), cpu = _measured(meter, lambda: asyncio.run(_http_single(url, creds.key, http_source)))
        assert statuses == {202: HTTP_EVENTS}, statuses
        label = f"HTTP binary: accepted/s ({HTTP_EVENTS}, {CONCURRENCY} at once)"
        print(line(label, rate, "per s", "PG row+outbox txn/s (8 conns)", raw_txn, "per s"))
        print(cpu.table(HTTP_EVENTS, "events"))

        (rate, statuses), cpu = _measured(meter, lambda: asyncio.run(_http_batch(url, creds.key, http_source)))
        assert statuses == {202: BATCH_EVENTS}, statuses
        label = f"HTTP batch of {BATCH_SIZE}: accepted/s ({BATCH_EVENTS}, 4 at once)"
        print(_rate_line(label, rate, raw_rows, raw_txn))
        print(cpu.table(BATCH_EVENTS, "events"))
        _record(f"ingest over HTTP, batches of {BATCH_SIZE}", rate, raw_rows, raw_txn)
        print(f"  (not targets: Kafka door with {'+'.join(downstream)} paused {alone:,.0f}/s)")


if __name__ == "__main__":
    main()
