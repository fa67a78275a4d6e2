"""Small waiting and HTTP helpers for end-to-end tests: conditions with deadlines, no bare sleeps."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from pitchin_core.contracts.cloudevents import CloudEvent, tenant_of, to_kafka_headers, to_kafka_value
from pitchin_core.contracts.common import EventData

T = TypeVar("T")


def eventually(probe: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.1, what: str = "") -> T:
    """Poll `probe` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or probe!r}; last value {last!r}")


async def eventually_async(
    probe: Callable[[], Awaitable[T | None]],
    timeout: float = 30.0,  # noqa: ASYNC109 - the same signature as eventually, on purpose
    interval: float = 0.1,
    what: str = "",
) -> T:
    """`eventually` for a coroutine probe, so the event loop keeps running between tries."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or probe!r}; last value {last!r}")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def read_topic(
    bootstrap: str, topic: str, keep: Callable[[dict[str, Any]], bool], count: int, within: float = 30.0
) -> list[dict[str, Any]]:
    """Read `topic` from the beginning until `count` records that `keep` accepts have arrived.

    Each record is a dict with key, value (bytes), headers (name -> bytes) and, for
    CloudEvents, `type` and `data` decoded for convenience.
    """
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(within):
            while len(found) < count:
                batch = await consumer.getmany(timeout_ms=300)
                for records in batch.values():
                    for r in records:
                        headers = dict(r.headers)
                        record: dict[str, Any] = {"key": r.key, "value": r.value, "headers": headers}
                        if "ce_type" in headers:
                            record["type"] = headers["ce_type"].decode(errors="replace")
                            try:
                                record["data"] = json.loads(r.value or b"null")
                            except ValueError:
                                record["data"] = None
                        if keep(record):
                            found.append(record)
    finally:
        await consumer.stop()
    return found


async def publish_events(bootstrap: str, topic: str, events: list[tuple[str, EventData]]) -> None:
    """Publish contract events as another service would (binary-mode CloudEvents)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, data in events:
            event = CloudEvent(
                id=str(uuid.uuid4()),
                source="/test",
                type=data.event_type,
                data=data.model_dump(mode="json"),
                time=datetime.now(UTC),
                tenant=tenant_of(data.federation_id, data.organisation_id),
            )
            await producer.send_and_wait(
                topic, value=to_kafka_value(event), key=key.encode(), headers=to_kafka_headers(event)
            )
    finally:
        await producer.stop()
