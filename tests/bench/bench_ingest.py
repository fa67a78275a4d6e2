"""Events/s accepted from other systems through each door, validation and idempotency included,
beside this run's raw PostgreSQL limit (each accepted event is one transaction with an outbox row)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer

from tests.bench.limits import line, postgres_row_and_outbox_txn_per_s
from tests.bench.system import running_system
from tests.e2e.helpers import eventually_async
from tests.unit.factories import donor_signup

KAFKA_EVENTS = 1000
HTTP_EVENTS = 800
BATCH_EVENTS = 2000
BATCH_SIZE = 100
CONCURRENCY = 16
TYPE = "org.pitchin.ingest.person-signed-up.v1"


def _person(tag: str, i: int) -> dict[str, Any]:
    return {
        **donor_signup(name=f"Bench {i}", email=f"{tag}-{i}@ingest.example"),
        "federation_id": "fed-bench",
        "organisation_id": "org-bench",
        "external_id": f"{tag}-{i}",
        "updated_at": "2026-11-23T10:00:00Z",
    }


async def _decided(database_url: str, source: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM signups.ingest_seen WHERE source = $1 AND outcome = 'applied'", source
        )
        return count
    finally:
        await conn.close()


async def _kafka_door(bootstrap: str, database_url: str, source: str) -> float:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    tag = uuid.uuid4().hex[:6]
    started = time.perf_counter()
    try:
        for i in range(KAFKA_EVENTS):
            headers = [
                ("ce_specversion", b"1.0"),
                ("ce_id", f"{tag}-{i}".encode()),
                ("ce_source", source.encode()),
                ("ce_type", TYPE.encode()),
                ("content-type", b"application/json"),
            ]
            await producer.send(
                "pitchin.ingest.v1", json.dumps(_person(tag, i)).encode(), key=source.encode(), headers=headers
            )
        await producer.flush()
    finally:
        await producer.stop()

    async def all_decided() -> bool:
        return await _decided(database_url, source) >= KAFKA_EVENTS

    await eventually_async(all_decided, timeout=300, what="the Kafka door to decide every event")
    return KAFKA_EVENTS / (time.perf_counter() - started)


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


def main() -> None:
    with running_system() as system:
        stack, kafka, database_url = system.stack, system.kafka, system.database_url
        url = stack["signups"].url
        print("ingest benchmark (services as processes; real Kafka 4.1.1, PostgreSQL 15)")
        raw_txn = asyncio.run(postgres_row_and_outbox_txn_per_s(database_url, concurrency=8))
        limit = "PG row+outbox txn/s (8 conns)"

        kafka_source = "/bench/kafka"
        stack.register_publisher(kafka_source, "fed-bench", ("org-bench",), rate_per_second=1e6, burst=1_000_000)
        rate = asyncio.run(_kafka_door(kafka.bootstrap, database_url, kafka_source))
        print(line(f"Kafka door: person-signed-up applied/s ({KAFKA_EVENTS})", rate, "per s", limit, raw_txn, "per s"))

        http_source = "/bench/http"
        creds = stack.register_publisher(http_source, "fed-bench", ("org-bench",), rate_per_second=1e6, burst=100_000)
        rate, statuses = asyncio.run(_http_single(url, creds.key, http_source))
        assert statuses == {202: HTTP_EVENTS}, statuses
        label = f"HTTP binary: accepted/s ({HTTP_EVENTS}, {CONCURRENCY} at once)"
        print(line(label, rate, "per s", limit, raw_txn, "per s"))

        rate, statuses = asyncio.run(_http_batch(url, creds.key, http_source))
        assert statuses == {202: BATCH_EVENTS}, statuses
        label = f"HTTP batch of {BATCH_SIZE}: accepted/s ({BATCH_EVENTS})"
        print(line(label, rate, "per s", limit, raw_txn, "per s"))


if __name__ == "__main__":
    main()
