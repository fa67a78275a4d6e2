"""Helpers for end-to-end tests: waiting on conditions with deadlines (no bare sleeps), the calls
many tests make (a donor's sign-up, a new event), and reading or writing Kafka and the database."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from pitchin_core.contracts.cloudevents import CloudEvent, tenant_of, to_kafka_headers, to_kafka_value
from pitchin_core.contracts.common import EventData
from pitchin_core.links import read_booking_link
from pitchin_testing.kafka import admin_options
from pitchin_testing.stack import Stack
from tests.unit.factories import donor_signup

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


def fetch(stack: Stack, query: str, *args: object) -> list[asyncpg.Record]:
    """Rows from the system's database, read on a connection of their own (tests look, services own)."""

    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(stack.database_url)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    return asyncio.run(run())


def new_trace() -> tuple[str, dict[str, str]]:
    """A fresh W3C trace id and the `traceparent` header that starts a request inside it.

    Spans reach the collector in batches and out of order, so "the newest span called X" may
    belong to an earlier test; a trace the test chose itself cannot."""
    trace_id, parent_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    return trace_id, {"traceparent": f"00-{trace_id}-{parent_id}-01"}


def sign_up(stack: Stack, key: str, *, headers: dict[str, str] | None = None, **fields: Any) -> httpx.Response:
    """Sign a donor up over signups' HTTP API (the factory's sign-up, changed by `fields`); it must be taken."""
    answer = httpx.post(
        f"{stack['signups'].url}/v1/donors",
        json=donor_signup(**fields),
        headers={**bearer(key), **(headers or {})},
        timeout=15,
    )
    assert answer.status_code == 201, answer.text
    return answer


def create_event(
    stack: Stack,
    key: str,
    starts_in: timedelta = timedelta(days=10),
    *,
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> httpx.Response:
    """Create a two-hour meet-up on scheduling `starts_in` from now (whole seconds), changed by `fields`;
    it must be created."""
    starts = (datetime.now(UTC) + starts_in).replace(microsecond=0)
    body: dict[str, Any] = {
        "kind": "meet-up",
        "title": "Informal meet-up",
        "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=2)).isoformat(),
        "time_zone": "Europe/London",
        "venue_name": "Cafe",
        "capacity": 10,
        "organiser_email": "o@example.org",
    }
    body.update(fields)
    answer = httpx.post(
        f"{stack['scheduling'].url}/v1/events", json=body, headers={**bearer(key), **(headers or {})}, timeout=15
    )
    assert answer.status_code == 201, answer.text
    return answer


def wait_until_signups_knows(stack: Stack, key: str, event_id: str, timeout: float = 30.0) -> None:
    """Signups learns events from scheduling over Kafka: wait until it takes bookings for this one."""
    bookings = f"{stack['signups'].url}/v1/events/{event_id}/bookings"
    eventually(
        lambda: httpx.get(bookings, headers=bearer(key), timeout=5).status_code == 200,
        timeout=timeout,
        what="signups to learn the event",
    )


async def read_topic(
    bootstrap: str, topic: str, keep: Callable[[dict[str, Any]], bool], count: int, within: float = 30.0
) -> list[dict[str, Any]]:
    """Read `topic` from the beginning until `count` records that `keep` accepts have arrived.

    Each record is a dict with key, value (bytes), headers (name -> bytes) and, for
    CloudEvents, `type` and `data` decoded for convenience.
    """
    consumer = AIOKafkaConsumer(
        topic, **admin_options(bootstrap), auto_offset_reset="earliest", enable_auto_commit=False, group_id=None
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


def as_cloud_event(data: EventData, *, source: str = "/test", tenant: str | None = None) -> CloudEvent:
    """Contract data as its producer sends it, with a new id; the tenant is the data's unless given."""
    return CloudEvent(
        id=str(uuid.uuid4()),
        source=source,
        type=data.event_type,
        data=data.model_dump(mode="json"),
        time=datetime.now(UTC),
        tenant=tenant or tenant_of(data.federation_id, data.organisation_id),
    )


async def send_cloud_events(bootstrap: str, topic: str, keyed: Iterable[tuple[str, CloudEvent]]) -> None:
    """Send CloudEvents (binary mode) in order, each under its message key, acknowledged by every replica."""
    producer = AIOKafkaProducer(**admin_options(bootstrap), acks="all")
    await producer.start()
    try:
        for key, event in keyed:
            await producer.send_and_wait(
                topic, value=to_kafka_value(event), key=key.encode(), headers=to_kafka_headers(event)
            )
    finally:
        await producer.stop()


async def publish_events(bootstrap: str, topic: str, events: list[tuple[str, EventData]]) -> None:
    """Publish contract events as another service would (binary-mode CloudEvents)."""
    await send_cloud_events(bootstrap, topic, [(key, as_cloud_event(data)) for key, data in events])


_BOOKING_CANCEL_LINK = re.compile(r"/bookings/([A-Za-z0-9._~-]+)/cancel")


def booking_link_in(text: str, secret: str) -> str | None:
    """The booking a mail's cancel link opens, checked with `secret` (None when the mail has none);
    raises BadLink when the link is forged or expired."""
    found = _BOOKING_CANCEL_LINK.search(text)
    return read_booking_link(secret, found.group(1), time.time()) if found else None


def opened(stack: Stack, data: dict[str, Any]) -> dict[str, Any]:
    """An event's data as a consumer reads it: its sealed personal fields opened with signups' keys
    (pitchin_core.personal), asked as notifications asks for them."""
    return opened_all(stack, [data])[0]


def opened_all(stack: Stack, datas: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`opened` for many events' data, with one look-up for all their keys."""
    from pitchin_core.personal import RemoteKeys, is_sealed, opened_data

    async def open_all() -> list[dict[str, Any]]:
        secret = stack["signups"].env["PITCHIN_PERSON_KEYS_SECRET"]
        keys = RemoteKeys(stack["signups"].url, secret=secret, service="notifications")
        try:
            wanted = sorted({v["key"] for data in datas for v in data.values() if is_sealed(v)})
            secrets = await keys.opening_keys(wanted) if wanted else {}
        finally:
            await keys.close()
        return [opened_data(data, secrets.get) for data in datas]

    return asyncio.run(open_all())
