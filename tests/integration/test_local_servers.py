"""The local real-servers harness: Kafka, PostgreSQL and the SMTP sink really work."""

from __future__ import annotations

import asyncio
import time
import uuid
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from pitchin_testing.kafka import KafkaServer, admin_options
from pitchin_testing.postgres import PostgresServer
from pitchin_testing.smtp_sink import SmtpSink

pytestmark = pytest.mark.integration


async def create_topic(bootstrap: str, name: str, partitions: int = 1) -> None:
    admin = AIOKafkaAdminClient(**admin_options(bootstrap))
    await admin.start()
    try:
        response = await admin.create_topics([NewTopic(name=name, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()
    # create_topics does not raise on per-topic errors: check them.
    errors = [(topic, code) for topic, code, *_ in response.topic_errors if code != 0]
    assert errors == [], f"create_topics failed: {errors}"


async def read_all(bootstrap: str, topic: str, expected: int, within: float = 30.0) -> list[Any]:
    """Read ``topic`` from the beginning until ``expected`` records arrived (or the deadline)."""
    consumer = AIOKafkaConsumer(
        topic,
        **admin_options(bootstrap),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = time.monotonic() + within
        while len(records) < expected:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"only {len(records)} of {expected} records from {topic} in {within} s"
            batches = await consumer.getmany(timeout_ms=int(min(remaining, 1.0) * 1000))
            for batch in batches.values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records


async def produce(bootstrap: str, topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> None:
    producer = AIOKafkaProducer(**admin_options(bootstrap), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=value, key=key, headers=headers)
    finally:
        await producer.stop()


async def test_kafka_produce_and_consume_with_headers(kafka_server: KafkaServer) -> None:
    topic = f"harness-{uuid.uuid4().hex[:8]}"
    await create_topic(kafka_server.bootstrap, topic, partitions=3)

    await produce(
        kafka_server.bootstrap,
        topic,
        key=b"donor-1",
        value=b'{"hello": "kafka"}',
        headers=[("event_type", b"DonorSignedUp"), ("trace", b"abc")],
    )

    (record,) = await read_all(kafka_server.bootstrap, topic, expected=1)
    assert record.key == b"donor-1"
    assert record.value == b'{"hello": "kafka"}'
    assert list(record.headers) == [("event_type", b"DonorSignedUp"), ("trace", b"abc")]


async def test_kafka_keeps_messages_across_restart_and_crash(kafka_server: KafkaServer) -> None:
    topic = f"durable-{uuid.uuid4().hex[:8]}"
    await create_topic(kafka_server.bootstrap, topic)
    await produce(kafka_server.bootstrap, topic, b"k", b"before-restart", [])

    first_pid = kafka_server.pid
    exit_code = await asyncio.to_thread(kafka_server.stop)
    assert exit_code in (0, 143)
    assert not kafka_server.is_running()
    await asyncio.to_thread(kafka_server.start)
    assert kafka_server.is_running()
    assert kafka_server.pid != first_pid

    records = await read_all(kafka_server.bootstrap, topic, expected=1)
    assert [r.value for r in records] == [b"before-restart"]

    # acks=all on a single node: acknowledged means written to the page cache, which survives
    # the process (not the machine) being killed.
    await produce(kafka_server.bootstrap, topic, b"k", b"before-crash", [])
    await asyncio.to_thread(kafka_server.kill)
    assert not kafka_server.is_running()
    await asyncio.to_thread(kafka_server.start)

    records = await read_all(kafka_server.bootstrap, topic, expected=2)
    assert [r.value for r in records] == [b"before-restart", b"before-crash"]


async def test_postgres_query_and_create_database(postgres_server: PostgresServer) -> None:
    conn = await asyncpg.connect(postgres_server.dsn)
    try:
        assert await conn.fetchval("SELECT 40 + 2") == 42
        version = await conn.fetchval("SHOW server_version_num")
        assert int(version) >= 150000
        assert await conn.fetchval("SHOW fsync") == "on"
        assert await conn.fetchval("SHOW max_connections") == "300"
    finally:
        await conn.close()

    name = f"harness_{uuid.uuid4().hex[:8]}"
    dsn = await asyncio.to_thread(postgres_server.create_database, name)
    assert dsn.endswith(f"/{name}")
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT current_database()") == name
        await conn.execute("CREATE TABLE t (id int PRIMARY KEY, note text NOT NULL)")
        await conn.execute("INSERT INTO t VALUES (1, 'one')")
        assert await conn.fetchval("SELECT note FROM t WHERE id = 1") == "one"
    finally:
        await conn.close()

    await asyncio.to_thread(postgres_server.drop_database, name)
    conn = await asyncpg.connect(postgres_server.dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", name) == 0
    finally:
        await conn.close()


async def test_postgres_keeps_committed_rows_after_crash(postgres_server: PostgresServer) -> None:
    name = f"crash_{uuid.uuid4().hex[:8]}"
    dsn = await asyncio.to_thread(postgres_server.create_database, name)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
        await conn.execute("INSERT INTO t SELECT generate_series(1, 100)")
    finally:
        await conn.close()

    first_pid = postgres_server.pid
    assert first_pid is not None
    await asyncio.to_thread(postgres_server.kill)
    assert not postgres_server.is_running()
    await asyncio.to_thread(postgres_server.start)
    assert postgres_server.pid not in (None, first_pid)

    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM t") == 100
    finally:
        await conn.close()
    await asyncio.to_thread(postgres_server.drop_database, name)


async def test_smtp_sink_collects_mail(mailbox: SmtpSink) -> None:
    message = EmailMessage()
    message["From"] = "noreply@pitchin.test"
    message["To"] = "donor@pitchin.test"
    subject = f"Welcome {uuid.uuid4().hex[:6]}"
    message["Subject"] = subject
    message.set_content("Thanks for pitching in.\n")

    await aiosmtplib.send(message, hostname=mailbox.host, port=mailbox.port)

    received = await asyncio.to_thread(mailbox.wait_for, lambda m: m["Subject"] == subject, 10.0)
    assert received["To"] == "donor@pitchin.test"
    assert received["X-RcptTo"] == "donor@pitchin.test"
    body = received.get_body(preferencelist=("plain",))
    assert body is not None
    assert body.get_content() == "Thanks for pitching in.\n"

    # The async variant finds the same mail; the .eml copy is on disk for people to read.
    same = await mailbox.wait_for_async(lambda m: m["Subject"] == subject, timeout=5.0)
    assert same is received
    assert mailbox.maildir is not None
    emls = list(mailbox.maildir.glob("*.eml"))
    assert any(subject in p.read_text() for p in emls)

    with pytest.raises(TimeoutError):
        mailbox.wait_for(lambda m: m["Subject"] == "never sent", timeout=0.2)
