"""Sign-ups accepted per second, sign-up → welcome email latency, and a booking rush,
on the real services, Kafka, PostgreSQL and SMTP, beside the raw limits of this run."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable

import asyncpg
import httpx

from pitchin_testing.smtp_sink import SmtpSinkProcess
from tests.bench import targets
from tests.bench.limits import (
    kafka_round_trip_ms,
    line,
    percentile,
    postgres_capacity_rush,
    postgres_row_and_outbox_txn_per_s,
)
from tests.bench.system import running_system
from tests.e2e.helpers import create_event, wait_until_signups_knows
from tests.unit.factories import donor_signup

SIGNUPS = 2000
CONCURRENCY = 32
# Sign-ups per second for the latency runs: below what the welcome-email path sustains on two
# shared cores (printed first), so that they measure the path, not a queue.
PACED_RATES = (5, 20)
PACED_SECONDS = 10
RUSH_ATTEMPTS = 3000
RUSH_CAPACITY = 60


async def _sign_up(client: httpx.AsyncClient, url: str, key: str, count: int, tag: str) -> list[int]:
    slots = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> int:
        async with slots:
            answer = await client.post(
                f"{url}/v1/donors",
                headers={"Authorization": f"Bearer {key}"},
                json=donor_signup(name=f"Bench {i}", email=f"{tag}-{i}@bench.example"),
            )
            return answer.status_code

    return await asyncio.gather(*(one(i) for i in range(count)))


async def _paced(client: httpx.AsyncClient, url: str, key: str, tag: str, rate: int) -> dict[str, float]:
    sent: dict[str, float] = {}

    async def one(i: int) -> None:
        email = f"{tag}-{i}@paced.example"
        answer = await client.post(
            f"{url}/v1/donors",
            headers={"Authorization": f"Bearer {key}"},
            json=donor_signup(name=f"Paced {i}", email=email),
        )
        answer.raise_for_status()
        sent[email] = time.time()

    tasks = []
    start = time.perf_counter()
    for i in range(rate * PACED_SECONDS):
        await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))  # pacing, not waiting
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    return sent


def _wait_for_mail(
    sink: SmtpSinkProcess, wanted: Callable[[str], bool], count: int, timeout: float
) -> dict[str, float]:
    """Recipient → first arrival time of the wanted mails, once `count` arrived or the deadline passed.

    The sink runs in its own process and logs (arrival time, recipient) per mail, taken as the
    mail comes in: this process only reads that log, twice a second.
    """
    deadline = time.monotonic() + timeout
    while True:
        arrived: dict[str, float] = {}
        for to, at in sink.arrivals():
            if wanted(to):
                arrived.setdefault(to, at)
        if len(arrived) >= count or time.monotonic() > deadline:
            return arrived
        time.sleep(0.5)


def _wait_until_published(database_url: str, timeout: float) -> None:
    """Until signups' outbox is empty: every sign-up of the burst is on Kafka."""

    async def backlog() -> int:
        conn = await asyncpg.connect(database_url)
        try:
            count: int = await conn.fetchval("SELECT count(*) FROM signups.outbox")
            return count
        finally:
            await conn.close()

    deadline = time.monotonic() + timeout
    while (left := asyncio.run(backlog())) and time.monotonic() < deadline:
        time.sleep(0.5)  # polling the outbox, not waiting on an outcome
    if left:
        raise RuntimeError(f"signups' outbox still holds {left} events after {timeout:.0f} s")


def main() -> None:
    with running_system(sink_process=True) as system:
        stack, kafka, sink, database_url = system.stack, system.kafka, system.mail_log, system.database_url
        key = stack.issue_key("fed-bench", "org-bench", "organiser")
        url = stack["signups"].url
        print("signups benchmark (services as processes; real Kafka 4.1.1, PostgreSQL 15, SMTP)")

        raw_txn = asyncio.run(postgres_row_and_outbox_txn_per_s(database_url, concurrency=8))
        raw_p50, raw_p99 = asyncio.run(kafka_round_trip_ms(kafka.bootstrap))

        burst_tag = uuid.uuid4().hex[:6]
        # "Draining" means a backlog: notifications is stopped while the burst is accepted and
        # published, then started, and the welcome mails are timed from the moment it serves.
        # (Measured from the burst's start instead, the figure would be the sign-up intake.)
        notifications = stack.replicas("notifications")
        for process in notifications:
            process.stop()

        async def throughput() -> tuple[float, Counter[int], float]:
            async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=CONCURRENCY)) as client:
                await _sign_up(client, url, key, 50, "warm")
                started = time.perf_counter()
                statuses = await _sign_up(client, url, key, SIGNUPS, burst_tag)
                return SIGNUPS / (time.perf_counter() - started), Counter(statuses), time.time()

        rate, statuses, accepted_at = asyncio.run(throughput())
        assert statuses == {201: SIGNUPS}, statuses
        print(
            line(
                f"sign-ups accepted/s ({SIGNUPS}, {CONCURRENCY} at once)",
                rate,
                "per s",
                "PG row+outbox txn/s (8 conns)",
                raw_txn,
                "per s",
            )
        )
        _wait_until_published(database_url, timeout=300)
        restarted = time.time()
        for process in notifications:
            stack.start_one(process)
        serving = time.time()
        welcomed = _wait_for_mail(sink, lambda to: to.startswith(f"{burst_tag}-"), SIGNUPS, 600)
        drained_at = max(welcomed.values(), default=time.time())
        welcome_rate = len(welcomed) / max(drained_at - serving, 1e-9)
        print(
            line(
                f"welcome emails sent/s draining a backlog of {SIGNUPS} ({len(welcomed)} arrived)",
                welcome_rate,
                "per s",
                "PG row+outbox txn/s (8 conns)",
                raw_txn,
                "per s",
            )
        )
        print(
            f"  (notifications took {serving - restarted:.1f} s to start; the last welcome email arrived"
            f" {drained_at - serving:.1f} s after it served; burst accepted to last mail"
            f" {drained_at - accepted_at:.1f} s)"
        )
        targets.record(
            f"welcome mails while draining {SIGNUPS:,} sign-ups",
            f"{welcome_rate:.1f}/s ({len(welcomed)}/{SIGNUPS} arrived)",
            ">= 300/s",
            welcome_rate >= 300 and len(welcomed) == SIGNUPS,
            f"PG row+outbox {raw_txn:.0f} txn/s (8 conns); ratio {welcome_rate / raw_txn:.2f}",
        )

        for paced_rate in PACED_RATES:
            tag = uuid.uuid4().hex[:6]

            async def paced(rate: int = paced_rate, tag: str = tag) -> dict[str, float]:
                async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=64)) as client:
                    return await _paced(client, url, key, tag, rate)

            sent = asyncio.run(paced())
            arrived = _wait_for_mail(sink, sent.__contains__, len(sent), 120)
            latencies = [(arrived[to] - sent[to]) * 1000 for to in arrived]
            print(
                f"  sign-up → welcome email in the SMTP sink, {paced_rate}/s for {PACED_SECONDS}s:"
                f" {len(arrived)}/{len(sent)} arrived"
            )
            print(line("  p50 latency", percentile(latencies, 50), "ms", "Kafka round trip p50", raw_p50, "ms"))
            print(line("  p99 latency", percentile(latencies, 99), "ms", "Kafka round trip p99", raw_p99, "ms"))

        event = create_event(stack, key, kind="book-launch", title="Rush", venue_name="Hall", capacity=RUSH_CAPACITY)
        event_id = event.json()["event_id"]
        wait_until_signups_knows(stack, key, event_id, timeout=60)
        bookings_url = f"{url}/v1/events/{event_id}/bookings"

        async def rush() -> tuple[list[httpx.Response | BaseException], float]:
            # 200 in flight at once, the rest queued here: httpx's own pool slows down badly with
            # thousands of requests waiting in it, and then the figure would measure the client.
            in_flight = asyncio.Semaphore(200)
            async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=200)) as client:

                async def one(i: int) -> httpx.Response:
                    async with in_flight:
                        return await client.post(
                            bookings_url,
                            headers={"Authorization": f"Bearer {key}"},
                            json={"name": f"R {i}", "email": f"r{i}@rush.example"},
                        )

                started = time.perf_counter()
                answers = await asyncio.gather(*(one(i) for i in range(RUSH_ATTEMPTS)), return_exceptions=True)
                return answers, time.perf_counter() - started

        answers, elapsed = asyncio.run(rush())
        failed = [a for a in answers if isinstance(a, BaseException)]
        if failed:  # a connection the server dropped is a finding to print, not a reason to print nothing
            kinds = Counter(type(a).__name__ for a in failed)
            print(f"  booking rush: {len(failed)} of {RUSH_ATTEMPTS} requests got no answer: {dict(kinds)}")
        bodies = [a.json() for a in answers if isinstance(a, httpx.Response)]
        confirmed = sum("confirmed_at" in b for b in bodies)
        positions = sorted(b["position"] for b in bodies if "position" in b)
        in_order = positions == list(range(1, len(positions) + 1))
        raw_confirmed, raw_elapsed = asyncio.run(postgres_capacity_rush(database_url, RUSH_ATTEMPTS, RUSH_CAPACITY))
        print(
            f"  booking rush: {RUSH_ATTEMPTS} simultaneous RSVPs for {RUSH_CAPACITY} places →"
            f" {confirmed} confirmed, {len(positions)} waitlisted, positions 1..{len(positions)} in order: {in_order},"
            f" oversold: {confirmed > RUSH_CAPACITY}"
        )
        print(
            line(
                "  booking rush, attempts/s over HTTP",
                RUSH_ATTEMPTS / elapsed,
                "per s",
                f"PG raw UPDATE rush ({raw_confirmed} confirmed)",
                RUSH_ATTEMPTS / raw_elapsed,
                "per s",
            )
        )


if __name__ == "__main__":
    main()
