"""Email fan-out throughput: the notifications sender against a local SMTP sink.

    .venv/bin/python -m tests.bench.bench_notifications [deliveries] [concurrency]

Starts its own PostgreSQL and an SMTP sink in a process of its own (parsing mail in this
process would measure the sink, not the sender), stages N email deliveries (as a 100,000-recipient
reminder's expansion would), then times the sender (claim, send over kept-open SMTP
connections, record the outcome) until every row is sent. Beside it, the raw limit measured
in the same run: plain aiosmtplib sends of ready-made mails to the same sink with the same
concurrency and the same kept-open connections, no database. Printed, never asserted.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from importlib.resources import files
from pathlib import Path

import aiosmtplib

from pitchin_core.db import create_pool, migrate
from pitchin_core.telemetry import Metrics
from pitchin_notifications.channels import EmailChannel, mime_message
from pitchin_notifications.sender import ChannelPolicy, Sender
from pitchin_testing.install import ensure_installed
from pitchin_testing.ports import free_port
from pitchin_testing.postgres import PostgresServer
from pitchin_testing.smtp_sink import SmtpSinkProcess
from tests.e2e.helpers import eventually_async

SCHEMA = "notifications_bench"
BODY = "Hello,\n\nA reminder that Online campaigning for strikes starts tomorrow at 18:30.\n\nPitch In\n" * 3


async def _stage(dsn: str, count: int) -> None:
    pool = await create_pool(dsn, SCHEMA, 4)
    try:
        await pool.execute(
            "INSERT INTO deliveries (delivery_id, idempotency_key, federation_id, organisation_id, event_id,"
            " event_type, channel, recipient, subject, body_text, body_html, bulk, template)"
            " SELECT gen_random_uuid(), 'bench:' || $2 || ':' || n, 'fed-bench', 'org-bench', $2,"
            " 'org.pitchin.event.reminder-due.v1', 'email', 'person' || n || '@example.org',"
            " 'Reminder: Online campaigning for strikes', $3, '<p>' || $3 || '</p>', true, 'event_reminder'"
            " FROM generate_series(1, $1) AS n",
            count,
            str(uuid.uuid4()),
            BODY,
        )
    finally:
        await pool.close()


async def _sender_run(dsn: str, sink: SmtpSinkProcess, count: int, concurrency: int) -> float:
    pool = await create_pool(dsn, SCHEMA, 6)
    channel = EmailChannel("127.0.0.1", sink.port, "Pitch In <no-reply@pitchin.local>", keep=concurrency)
    sender = Sender(
        pool,
        Metrics("notifications-bench"),
        schema=SCHEMA,
        adapters={"email": channel},
        policies={"email": ChannelPolicy(max_attempts=6, concurrency=concurrency, batch_size=200)},
    )
    started = time.perf_counter()
    await sender.start()
    try:

        async def all_sent() -> bool:
            return bool(await pool.fetchval("SELECT count(*) = 0 FROM deliveries WHERE status = 'pending'"))

        await eventually_async(all_sent, timeout=600, interval=0.05, what="every pending delivery sent")
        elapsed = time.perf_counter() - started
    finally:
        await sender.stop()
        await pool.close()
    await eventually_async(
        lambda: _true(sink.count() >= count), timeout=60, interval=0.05, what="every message in the sink's log"
    )
    sent = sink.count()
    if sent < count:
        raise RuntimeError(f"only {sent} of {count} messages reached the sink")
    return elapsed


async def _true(value: bool) -> bool:
    return value


async def _raw_run(sink: SmtpSinkProcess, count: int, concurrency: int) -> float:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(count):
        queue.put_nowait(n)
    mails = [
        mime_message(
            header_from="Pitch In <no-reply@pitchin.local>",
            to=f"raw{n}@example.org",
            subject="Reminder: Online campaigning for strikes",
            message_id=f"<raw{n}@pitchin.local>",
            text=BODY,
            html=f"<p>{BODY}</p>",
            unsubscribe_url=None,
        )
        for n in range(count)
    ]

    async def worker() -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=sink.port, timeout=15, start_tls=False)
        await client.connect()
        try:
            while True:
                try:
                    n = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await client.sendmail("no-reply@pitchin.local", [f"raw{n}@example.org"], mails[n])
        finally:
            await client.quit()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    count = int(args[0]) if args else 20_000
    concurrency = int(args[1]) if len(args) > 1 else 10
    ensure_installed()
    state = Path(tempfile.mkdtemp(prefix="pitchin-bench-notifications-"))
    postgres = PostgresServer(state / "postgres", port=free_port())
    postgres.start()
    sink = SmtpSinkProcess(state / "mail.log")
    sink.start()
    try:
        dsn = postgres.create_database("bench_notifications")
        asyncio.run(migrate(dsn, SCHEMA, files("pitchin_notifications") / "migrations"))
        asyncio.run(_stage(dsn, count))
        sender_seconds = asyncio.run(_sender_run(dsn, sink, count, concurrency))
        raw_seconds = asyncio.run(_raw_run(sink, count, concurrency))
        sender_rate = count / sender_seconds
        raw_rate = count / raw_seconds
        print(f"notifications email fan-out: {count} deliveries, SMTP concurrency {concurrency}, one process, 2 cores")
        print(f"  sender (claim + send + record, PostgreSQL): {sender_rate:8.0f} messages/s ({sender_seconds:.1f} s)")
        print(f"  raw aiosmtplib, same sink and concurrency:  {raw_rate:8.0f} messages/s ({raw_seconds:.1f} s)")
        print(f"  ratio sender / raw: {sender_rate / raw_rate:.2f}")
    finally:
        sink.stop()
        postgres.cleanup()


if __name__ == "__main__":
    main()
