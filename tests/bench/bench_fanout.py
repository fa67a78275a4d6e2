"""A reminder to 100,000 people: the notifications service expands it and mails them all.

    .venv/bin/python -m tests.bench.bench_fanout [people] [raw mails]

The whole system runs (`running_system`, notifications with 2 HTTP workers as `make run`
has it), the SMTP sink in a process of its own that only logs (arrival time, recipient).
The benchmark writes N booked people into notifications' read model (COPY: the bookings
would have come over Kafka one by one, which is not what is measured here) and one
event-wide reminder job, exactly the row consuming an `event.reminder-due` event stages.
From that commit it times the service's own work: expanding the job page by page into
deliveries, claiming them, sending over kept-open SMTP connections and recording each
outcome, until the last mail is in the sink's log. Duplicates are counted from the sink's
log: every person has one address and gets one reminder, so a recipient seen twice is a
mail sent twice (the sink does not log Message-IDs).

Beside it, the raw limit of the same run: plain aiosmtplib sends of ready-made mails to the
same sink process with the same number of connections, no database. And CPU-seconds per
process per 1,000 mails. Printed, never asserted.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import aiosmtplib
import asyncpg

from pitchin_notifications.channels import mime_message
from pitchin_testing.smtp_sink import SmtpSinkProcess
from tests.bench import targets
from tests.bench.cpu import CpuMeter
from tests.bench.system import System, running_system

PEOPLE = 100_000
RAW_MAILS = 20_000
WORKERS = 2  # notifications' HTTP worker processes, each with its own sender (as `make run`)
CONNECTIONS = 10  # kept-open SMTP connections per process (NotificationsSettings.email_concurrency)
SCHEMA = "notifications"
FEDERATION, ORGANISATION = "fed-bench", "org-bench"
RULE_KEY = "org.pitchin.event.reminder-due.v1:event_reminder"
ATTENDEE_COLUMNS = ["booking_id", "event_id", "federation_id", "organisation_id", "name", "email", "language", "status"]
TARGET_SECONDS = 120.0
IDLE_SECONDS = 5.0
TARGET_RATE = 1000.0


def _meter(system: System) -> CpuMeter:
    def pid_of(get: Callable[[], int | None]) -> Callable[[], list[int]]:
        return lambda: [p] if (p := get()) is not None else []

    groups: dict[str, Callable[[], list[int]]] = {}
    for name, service in system.stack.services.items():
        groups[name] = pid_of(lambda s=service: s.process.pid if s.process is not None else None)  # type: ignore[misc]
    groups["postgres"] = pid_of(lambda: system.postgres.pid)
    groups["kafka"] = pid_of(lambda: system.kafka.pid)
    groups["smtp sink"] = pid_of(lambda: system.mail_log.pid)
    return CpuMeter(groups)


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _raw_limit(sink: SmtpSinkProcess, count: int, connections: int) -> float:
    """Mails/s of plain aiosmtplib `sendmail`s of ready-made bytes over `connections` kept-open connections."""
    body = "Hello,\n\nA reminder that Organizing 2.0 is coming up: Sat 6 Nov 2027, 09:30 GMT.\n" * 6
    mails = [
        mime_message(
            header_from="Pitch In <no-reply@pitchin.local>",
            to=f"raw{n}@raw.example",
            subject="Reminder: Organizing 2.0",
            message_id=f"<raw{n}@pitchin.local>",
            text=body,
            html=f"<p>{body}</p>",
            unsubscribe_url="https://pitchin.example/v1/unsubscribe?token=x",
        )
        for n in range(count)
    ]
    queue = list(range(count))

    async def connection() -> None:
        client = aiosmtplib.SMTP(hostname=sink.host, port=sink.port, timeout=15, start_tls=False)
        await client.connect()
        try:
            while queue:
                n = queue.pop()
                await client.sendmail("no-reply@pitchin.local", [f"raw{n}@raw.example"], mails[n])
        finally:
            await client.quit()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(connections)))
    return count / (time.perf_counter() - started)


def _address(tag: str, n: int) -> tuple[str, str, str]:
    """(email, language, status) of the n-th person booked."""
    return f"{tag}-{n}@fanout.example", "en", "confirmed"


async def _book_people(dsn: str, event_id: str, tag: str, people: int) -> None:
    """The read model as `learn_booking` leaves it after `people` confirmed bookings, and the event."""
    conn = await asyncpg.connect(dsn)
    try:
        starts = datetime.now(UTC) + timedelta(days=1)
        details = {
            "event_id": event_id,
            "title": "Organizing 2.0",
            "starts_at": starts.isoformat(),
            "ends_at": (starts + timedelta(hours=8)).isoformat(),
            "time_zone": "America/New_York",
            "venue_name": "The Auditorium",
        }
        await conn.execute(
            f"INSERT INTO {SCHEMA}.known_events (event_id, federation_id, organisation_id, details)"
            " VALUES ($1, $2, $3, $4)",
            event_id,
            FEDERATION,
            ORGANISATION,
            json.dumps(details),
        )
        # No quiet hours for this federation: the figure must not depend on the hour it runs at.
        await conn.execute(
            f"INSERT INTO {SCHEMA}.channel_config (federation_id, quiet_hours) VALUES ($1, '')"
            " ON CONFLICT (federation_id) DO UPDATE SET quiet_hours = ''",
            FEDERATION,
        )
        await conn.copy_records_to_table(
            "attendees",
            schema_name=SCHEMA,
            columns=ATTENDEE_COLUMNS,
            records=(
                (f"bkg_{tag}_{n:06d}", event_id, FEDERATION, ORGANISATION, f"Person {n}", *_address(tag, n))
                for n in range(people)
            ),
        )
        await conn.execute(f"ANALYZE {SCHEMA}.attendees")
    finally:
        await conn.close()


async def _remind(dsn: str, event_id: str) -> None:
    """The fan-out job consuming `event.reminder-due` stages (`storage.create_fanout`), committed now."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            f"INSERT INTO {SCHEMA}.fanouts (fanout_id, event_id, event_type, rule_key, federation_id, organisation_id,"
            " audience, target, statuses, data) VALUES ($1, $2, $3, $4, $5, $6, 'attendees', $7, $8, $9)",
            uuid.uuid4(),
            f"evt-reminder-{uuid.uuid4().hex[:8]}",
            "org.pitchin.event.reminder-due.v1",
            RULE_KEY,
            FEDERATION,
            ORGANISATION,
            event_id,
            ["confirmed"],
            json.dumps({"event_id": event_id, "federation_id": FEDERATION, "organisation_id": ORGANISATION}),
        )
    finally:
        await conn.close()


async def _deliveries(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            f"SELECT status, count(*) AS n, count(*) FILTER (WHERE attempts > 1) AS again"
            f" FROM {SCHEMA}.deliveries WHERE bulk GROUP BY status"
        )
        out = {r["status"]: r["n"] for r in rows}
        out["attempted more than once"] = sum(r["again"] for r in rows)
        return out
    finally:
        await conn.close()


def _arrivals(sink: SmtpSinkProcess, tag: str) -> list[tuple[str, float]]:
    prefix = f"{tag}-"
    return [(to, at) for to, at in sink.arrivals() if to.startswith(prefix)]


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    people = int(args[0]) if args else PEOPLE
    raw_count = int(args[1]) if len(args) > 1 else RAW_MAILS
    with running_system(workers={"notifications": WORKERS}, sink_process=True) as system:
        sink, dsn = system.mail_log, system.database_url
        connections = WORKERS * CONNECTIONS
        print(
            f"reminder fan-out to {people} people: notifications x{WORKERS} processes, {CONNECTIONS} SMTP"
            " connections each; the SMTP sink in its own process; real PostgreSQL 15; 2 shared cores"
        )
        cpu_before = _own_cpu()
        raw_rate = asyncio.run(_raw_limit(sink, raw_count, connections))
        raw_cpu = _own_cpu() - cpu_before
        print(
            f"  raw limit: plain aiosmtplib, {raw_count} ready-made mails, {connections} connections, no database:"
            f" {raw_rate:8.0f} mails/s (client CPU {raw_cpu / raw_count * 1000:.3f} s per 1,000)"
        )

        tag = uuid.uuid4().hex[:6]
        event_id = f"evt_fanout_{tag}"
        asyncio.run(_book_people(dsn, event_id, tag, people))
        meter = _meter(system)
        meter.start()
        time.sleep(IDLE_SECONDS)  # what the system costs doing nothing (consumers polling), to read the run beside
        idle = meter.stop()
        meter.start()
        started = time.time()
        asyncio.run(_remind(dsn, event_id))
        deadline = time.monotonic() + 900
        while sink.count() < raw_count + people and time.monotonic() < deadline:
            time.sleep(0.5)  # polling the sink's line count: the benchmark's own process stays idle
        cpu = meter.stop()
        arrived = _arrivals(sink, tag)
        by_recipient = Counter(to for to, _ in arrived)
        duplicates = sum(n - 1 for n in by_recipient.values())
        first = min((at for _, at in arrived), default=started)
        last = max((at for _, at in arrived), default=time.time())
        seconds = last - started
        rate = len(by_recipient) / seconds if seconds > 0 else 0.0
        print(
            f"  reached {len(by_recipient)}/{people} people, {len(arrived)} mails, {duplicates} duplicates;"
            f" first mail {first - started:.1f} s after the job was committed, last {seconds:.1f} s"
        )
        print(f"  fan-out, job committed → last mail: {rate:8.0f} mails/s | raw {raw_rate:8.0f} mails/s"
              f" | ratio {rate / raw_rate:.3f}")  # fmt: skip
        print(f"  deliveries in notifications: {asyncio.run(_deliveries(dsn))}")
        print("  CPU per process group over the fan-out:")
        print(cpu.table(max(len(arrived), 1), "mails"))
        idle_cores = ", ".join(
            f"{name} {seconds / idle.wall_seconds:.2f}" for name, seconds in sorted(idle.by_group.items()) if seconds
        )
        print(f"  the same groups idle ({IDLE_SECONDS:.0f} s before the job), cores: {idle_cores}")
        met = len(by_recipient) == people and duplicates == 0 and seconds < TARGET_SECONDS
        targets.record(
            f"reminder fan-out to {people:,} people, mail at a local sink",
            f"{seconds:.1f} s, {rate:.0f} mails/s, {duplicates} duplicates, {len(by_recipient):,} reached",
            "< 2 min (>= 1,000 mails/s), 0 duplicates",
            met,
            f"{raw_rate:.0f} mails/s plain aiosmtplib, {connections} connections; ratio {rate / raw_rate:.2f}",
        )


if __name__ == "__main__":
    main()
