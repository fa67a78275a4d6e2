"""Issue 16's figures, measured the way a skeptic would: a rush of 10,000 RSVPs, sign-ups/s,
the public event page and sign-up → welcome mail, on the services run as `make run` runs them,
with the load from processes of its own (wrk; paced client processes) and, in the same run,
the raw limits beside each figure and the CPU each process spent."""

from __future__ import annotations

import asyncio
import json
import math
import multiprocessing
import resource
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer

from pitchin_core.contracts.topics import BOOKINGS
from pitchin_testing.kafka import admin_options
from pitchin_testing.processes import BACKENDS, RUN_WORKERS
from tests.bench.cpu import CpuMeter, CpuUse
from tests.bench.limits import (
    WrkRun,
    bare_route,
    kafka_round_trip_ms,
    percentile,
    pgbench_commits_per_s,
    run_wrk,
)
from tests.bench.system import System, running_system
from tests.e2e.helpers import create_event, opened_all, wait_until_signups_knows
from tests.unit.factories import donor_signup

THREADS = 2  # wrk threads: one per core
RUSH_PEOPLE = 10_000
RUSH_CAPACITY = 60
RUSH_CONNECTIONS = 256
SIGNUP_CONNECTIONS = 64
PAGE_CONNECTIONS = 64
RUN_SECONDS = 10  # the sign-up and page runs
MAIL_RATE = 200  # sign-ups offered per second, open loop
MAIL_SECONDS = 60
MAIL_CLIENTS = 4  # client processes sharing the offered rate
MAIL_CONNECTIONS_PER_CLIENT = 64
QUIET_SECONDS = 5.0  # no new mail for this long, and empty outboxes: the last run's work is done
DRAIN_TIMEOUT = 600.0


@dataclass
class Target:
    figure: str
    measured: str
    raw: str
    ratio: str
    target: str
    met: bool


def _json_template() -> str:
    """A sign-up body with @EMAIL@ where each person's address goes."""
    return json.dumps(donor_signup(name="Bench Person", email="@EMAIL@"))


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


async def _one_value(dsn: str, sql: str, *args: object) -> Any:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


def _wait_quiet(system: System, what: str) -> None:
    """Wait until the last run's consequences (outbox rows, mails) are done, so that the next
    figure is not measured beside a backlog; print how long that took."""
    started = time.monotonic()
    outboxes = " + ".join(f'(SELECT count(*) FROM "{schema}".outbox)' for schema in BACKENDS)
    last_count, last_change = system.mail_log.count(), time.monotonic()
    first_count = last_count
    while time.monotonic() - started < DRAIN_TIMEOUT:
        time.sleep(0.5)
        count = system.mail_log.count()
        if count != last_count:
            last_count, last_change = count, time.monotonic()
        pending = asyncio.run(_one_value(system.database_url, f"SELECT {outboxes}"))
        if pending == 0 and time.monotonic() - last_change >= QUIET_SECONDS:
            break
    else:
        print(f"  (still busy after {DRAIN_TIMEOUT:.0f} s: measuring {what} anyway)")
    mails = last_count - first_count
    took = last_change - started
    if mails:
        print(f"  (before {what}: {mails} mails from the last run drained in {took:.1f} s, {mails / took:.0f}/s)")


# The rush ------------------------------------------------------------------------------------------


@dataclass
class RushLog:
    """What wrk's threads wrote: per thread, the requests and the answers in the order they came."""

    sent: dict[str, tuple[int, int, float]]  # email -> (thread, answers the thread had before, sent at)
    answers: list[list[tuple[int, str, str, str, float]]]  # per thread: (status, email, booking_id, position, at)
    first_sent: float
    last_answer: float
    refusals: list[str]  # the first refusal's status and text, per thread that had one

    @classmethod
    def read(cls, folder: Path, threads: int) -> RushLog:
        sent: dict[str, tuple[int, int, float]] = {}
        answers: list[list[tuple[int, str, str, str, float]]] = []
        refusals: list[str] = []
        for tid in range(1, threads + 1):
            mine: list[tuple[int, str, str, str, float]] = []
            for line in (folder / f"rush-{tid}.log").read_text().splitlines():
                parts = line.split(" ")
                if parts[0] == "S":
                    sent[parts[1]] = (tid, int(parts[2]), float(parts[3]))
                elif parts[0] == "A":
                    mine.append((int(parts[2]), parts[3], parts[4], parts[5], float(parts[6])))
                elif parts[0] == "E":
                    refusals.append(line[2:300])
            answers.append(mine)
        starts = [at for _, _, at in sent.values()]
        ends = [a[4] for thread in answers for a in thread]
        return cls(sent, answers, min(starts, default=0.0), max(ends, default=0.0), refusals)

    def statuses(self) -> dict[int, int]:
        counted: dict[int, int] = {}
        for thread in self.answers:
            for status, *_ in thread:
                counted[status] = counted.get(status, 0) + 1
        return counted

    @property
    def seconds(self) -> float:
        return self.last_answer - self.first_sent

    def latencies_ms(self) -> list[float]:
        return [
            (at - self.sent[email][2]) * 1000
            for thread in self.answers
            for _, email, _, _, at in thread
            if email in self.sent
        ]


def _rush(url: str, key: str, people: int, connections: int) -> tuple[WrkRun, RushLog]:
    with tempfile.TemporaryDirectory(prefix="pitchin-rush-") as folder:
        out = Path(folder)
        run = run_wrk(
            url,
            connections=connections,
            threads=THREADS,
            script="rush.lua",
            args=[str(people), str(THREADS), folder],
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            until=lambda: len(list(out.glob("done-*"))) == THREADS,
            until_timeout=600,
        )
        return run, RushLog.read(out, THREADS)


def _check_rush(system: System, event_id: str, log: RushLog) -> tuple[bool, list[str]]:
    """Exactness from the service's own database and its stream on Kafka; lines to print."""

    async def rows() -> tuple[list[asyncpg.Record], asyncpg.Record | None]:
        conn = await asyncpg.connect(system.database_url)
        try:
            bookings = await conn.fetch(
                "SELECT booking_id, lower(email) AS email, status, waitlist_seq FROM signups.bookings"
                " WHERE event_id = $1",
                event_id,
            )
            counters = await conn.fetchrow(
                "SELECT confirmed, waitlisted, waitlist_seq FROM signups.known_events WHERE event_id = $1", event_id
            )
            return bookings, counters
        finally:
            await conn.close()

    bookings, counters = asyncio.run(rows())
    lines: list[str] = []
    ok = True

    def check(passed: bool, text: str) -> None:
        nonlocal ok
        ok = ok and passed
        lines.append(f"    [{'ok' if passed else 'FAIL'}] {text}")

    confirmed = [b for b in bookings if b["status"] == "confirmed"]
    waitlisted = [b for b in bookings if b["status"] == "waitlisted"]
    expect_wait = RUSH_PEOPLE - RUSH_CAPACITY
    check(len(log.sent) == RUSH_PEOPLE, f"requests sent by wrk's threads: {len(log.sent)} (distinct people)")
    check(len(bookings) == RUSH_PEOPLE, f"bookings stored for the event: {len(bookings)}")
    check(len(confirmed) == RUSH_CAPACITY, f"confirmed: {len(confirmed)} (places {RUSH_CAPACITY})")
    check(len(waitlisted) == expect_wait, f"waitlisted: {len(waitlisted)}")
    seqs = sorted(b["waitlist_seq"] for b in waitlisted)
    check(seqs == list(range(1, expect_wait + 1)), f"waitlist positions are 1..{expect_wait}, no gap, no repeat")
    emails = {b["email"] for b in bookings}
    check(len(emails) == len(bookings) and emails == set(log.sent), "no person twice; exactly the people who asked")
    check(
        counters is not None
        and (counters["confirmed"], counters["waitlisted"]) == (len(confirmed), len(waitlisted))
        and counters["waitlist_seq"] == expect_wait,
        "the event's counters equal the rows",
    )
    stored = {b["email"]: b for b in bookings}
    answered = [a for thread in log.answers for a in thread]
    mismatched = sum(
        1
        for status, email, booking_id, position, _ in answered
        if status == 201
        and (
            email not in stored
            or stored[email]["booking_id"] != booking_id
            or (position != "-" and stored[email]["waitlist_seq"] != int(position))
            or (position == "-") != (stored[email]["status"] == "confirmed")
        )
    )
    created = sum(1 for a in answered if a[0] == 201)
    check(
        created == RUSH_PEOPLE and mismatched == 0,
        f"201 answers: {created}; answers unlike the stored row: {mismatched}",
    )

    # The order of outcomes: the event's CloudEvents on its partition, in the order the booking
    # calls staged them (the relay publishes the outbox in sequence).
    stream, seen = asyncio.run(_event_stream(system.kafka.bootstrap, event_id, RUSH_PEOPLE))
    kinds = [(r["type"].rsplit(".", 2)[-2], (r["data"] or {}).get("position")) for r in stream]
    in_order = (
        len(stream) == RUSH_PEOPLE
        and all(kind == "confirmed" for kind, _ in kinds[:RUSH_CAPACITY])
        and [pos for _, pos in kinds[RUSH_CAPACITY:]] == list(range(1, expect_wait + 1))
    )
    check(
        in_order,
        f"the event's stream on Kafka ({BOOKINGS.name}): {len(stream)} of {seen} messages read are this event's,"
        f" {RUSH_CAPACITY} confirmed then positions 1..{expect_wait} in order",
    )
    # The emails are sealed on the topic (issue 19): opened as a consumer opens them.
    datas = opened_all(system.stack, [r["data"] or {} for r in stream])
    rank = {str(d.get("email", "")).lower(): i for i, d in enumerate(datas)}

    # Arrival order as far as a client can know it: a request sent after another request's
    # answer came back (same wrk thread, so the same clock and event loop) arrived after it,
    # so it must have the later outcome. Requests in flight together have no order to check.
    checked = violations = 0
    for thread_answers in log.answers:
        best = [-1]  # best[r]: the latest outcome among the thread's first r answers
        for _, email, _, _, _ in thread_answers:
            best.append(max(best[-1], rank.get(email, -1)))
        tid = log.answers.index(thread_answers) + 1
        for email, (sent_by, before, _) in log.sent.items():
            if sent_by == tid and before > 0 and best[before] >= 0:
                checked += 1
                violations += rank.get(email, -1) <= best[before]
    check(
        violations == 0 and checked > 0,
        f"arrival order: {checked} requests were sent after an earlier one's answer came back;"
        f" {violations} of them got an earlier place or position",
    )
    lines.append(
        "    (not checkable from outside: the order among requests in flight at the same moment —"
        " up to 256 here — which the server may take in either order)"
    )
    return ok, lines


async def _event_stream(bootstrap: str, event_id: str, count: int) -> tuple[list[dict[str, Any]], int]:
    """The event's booking messages in partition order, and how many messages were read in all;
    stops at `count` of them or when the topic has had nothing new for 10 s."""
    consumer = AIOKafkaConsumer(
        BOOKINGS.name,
        **admin_options(bootstrap),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    found: list[dict[str, Any]] = []
    seen = 0
    key = event_id.encode()
    last_new = time.monotonic()
    try:
        while len(found) < count and time.monotonic() - last_new < 10:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for r in records:
                    seen += 1
                    last_new = time.monotonic()
                    if r.key == key:
                        headers = dict(r.headers)
                        kind = headers.get("ce_type", b"").decode(errors="replace")
                        found.append({"type": kind, "data": json.loads(r.value or b"null")})
    finally:
        await consumer.stop()
    return found, seen


# The welcome mail, open loop -----------------------------------------------------------------------


def _mail_client(
    url: str, key: str, template: str, tag: str, index: int, clients: int, start_at: float
) -> tuple[list[tuple[str, float, float, float, int]], float]:
    """One paced client process: every `clients`-th of the offered sign-ups, each at its planned
    time whatever the answers do (open loop). (email, planned, sent, answered, status) each, and
    this process's CPU-seconds."""
    results = asyncio.run(_paced_sign_ups(url, key, template, tag, index, clients, start_at))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return results, usage.ru_utime + usage.ru_stime


async def _paced_sign_ups(
    url: str, key: str, template: str, tag: str, index: int, clients: int, start_at: float
) -> list[tuple[str, float, float, float, int]]:
    results: list[tuple[str, float, float, float, int]] = []
    # Requests beyond the connections wait in a semaphore, not in httpx's pool, which gets slow
    # with thousands waiting in it and would then hold up this loop's pacing.
    slots = asyncio.Semaphore(MAIL_CONNECTIONS_PER_CLIENT)
    limits = httpx.Limits(max_connections=MAIL_CONNECTIONS_PER_CLIENT)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:

        async def one(email: str, planned: float) -> None:
            async with slots:
                await _post(email, planned)

        async def _post(email: str, planned: float) -> None:
            sent = time.time()
            try:
                answer = await client.post(
                    f"{url}/v1/donors",
                    headers={
                        "Authorization": f"Bearer {key}",
                        "Idempotency-Key": email,
                        "Content-Type": "application/json",
                    },
                    content=template.replace("@EMAIL@", email).encode(),
                )
                status = answer.status_code
            except httpx.HTTPError:
                status = -1
            results.append((email, planned, sent, time.time(), status))

        tasks = []
        for j in range(MAIL_RATE * MAIL_SECONDS // clients):
            planned = start_at + (index + j * clients) / MAIL_RATE
            await asyncio.sleep(max(0.0, planned - time.time()))
            tasks.append(asyncio.create_task(one(f"welcome-{tag}-{index}-{j}@mail.bench", planned)))
        await asyncio.gather(*tasks)
    return results


def _welcome_mail(system: System, key: str) -> tuple[dict[str, float], list[str], CpuUse]:
    url = system.stack["signups"].url
    tag = uuid.uuid4().hex[:6]
    template = _json_template()
    meter = _meter(system)
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(MAIL_CLIENTS, mp_context=spawn) as pool:
        start_at = time.time() + 5  # time for the client processes to start and import
        meter.start()
        futures = [
            pool.submit(_mail_client, url, key, template, tag, i, MAIL_CLIENTS, start_at) for i in range(MAIL_CLIENTS)
        ]
        outcomes = [f.result() for f in futures]
    sent = [r for results, _ in outcomes for r in results]
    # Latency from the planned time: an open-loop client's wait for a connection is the system's.
    accepted = {email: planned for email, planned, _, _, status in sent if status == 201}
    deadline = time.monotonic() + 120
    arrived: dict[str, float] = {}
    while time.monotonic() < deadline:
        arrived = {to: at for to, at in system.mail_log.arrivals() if to in accepted}
        if len(arrived) == len(accepted):
            break
        time.sleep(0.5)
    use = meter.stop(extra={"mail clients": sum(cpu for _, cpu in outcomes)})
    latencies = sorted(arrived[to] - accepted[to] for to in arrived)
    lateness = max((s - p for _, p, s, _, _ in sent), default=0.0)
    offered = len(sent)
    span = max(s for _, _, s, _, _ in sent) - min(s for _, _, s, _, _ in sent)
    not_201: dict[int, int] = {}
    for *_, status in sent:
        if status != 201:
            not_201[status] = not_201.get(status, 0) + 1
    figures = {
        "offered": offered,
        "accepted": len(accepted),
        "arrived": len(arrived),
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "max": max(latencies, default=float("nan")),
        "rate": offered / span if span else float("nan"),
        "lateness": lateness,
        "answer_p99": percentile([(a - p) * 1000 for _, p, _, a, _ in sent], 99),
    }
    notes = [f"non-201 answers: {not_201}"] if not_201 else []
    return figures, notes, use


# The run -------------------------------------------------------------------------------------------


def _fmt_ratio(measured: float, raw: float) -> str:
    return f"{measured / raw:.3f}" if raw and not math.isnan(raw) else "-"


def main() -> None:
    with running_system(web_federation_id="fed-bench", workers=RUN_WORKERS, sink_process=True) as system:
        _measure(system)


def _measure(system: System) -> None:
    stack = system.stack
    workers = RUN_WORKERS["signups"]
    print(
        f"issue 16 benchmark: services as processes ({', '.join(f'{k} x{v}' for k, v in RUN_WORKERS.items())}),"
        f" real Kafka, PostgreSQL 15, SMTP sink in its own process; load from wrk ({THREADS} threads)"
    )
    key = stack.issue_key("fed-bench", "org-bench", "organiser")
    signups = stack["signups"].url

    # Raw limits, in this run, on this machine --------------------------------------------------
    pg16 = pgbench_commits_per_s(system.database_url, 16)
    pg1 = pgbench_commits_per_s(system.database_url, 1)
    kafka_p50, kafka_p99 = asyncio.run(kafka_round_trip_ms(system.kafka.bootstrap))
    with tempfile.NamedTemporaryFile("w", suffix=".json") as body:
        body.write(_json_template())
        body.flush()
        with bare_route(workers) as bare:
            bare_rush, bare_log = _rush(f"{bare}/v1/events/bare/bookings", key, RUSH_PEOPLE, RUSH_CONNECTIONS)
            bare_post = run_wrk(
                f"{bare}/v1/donors",
                connections=SIGNUP_CONNECTIONS,
                script="signups.lua",
                args=["bare", body.name],
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
                seconds=5,
            )
            bare_get = run_wrk(f"{bare}/", connections=PAGE_CONNECTIONS, script="get.lua", seconds=5)
        bare_rush_rate = RUSH_PEOPLE / bare_log.seconds
        print("  raw limits (same run):")
        print(f"    PostgreSQL durable single-row INSERT commits/s (pgbench): -c 16 {pg16:,.0f}/s; -c 1 {pg1:,.0f}/s")
        print(f"    Kafka produce→consume round trip (acks=all): p50 {kafka_p50:.1f} ms, p99 {kafka_p99:.1f} ms")
        print(
            f"    bare ASGI route, uvicorn --workers {workers}: {RUSH_PEOPLE:,} POSTs at {RUSH_CONNECTIONS} connections"
            f" in {bare_log.seconds:.2f} s ({bare_rush_rate:,.0f}/s, p99 {bare_rush.p99_ms:.0f} ms);"
            f" POST at {SIGNUP_CONNECTIONS}: {bare_post.rate:,.0f}/s (p99 {bare_post.p99_ms:.1f} ms);"
            f" GET at {PAGE_CONNECTIONS}: {bare_get.rate:,.0f}/s (p99 {bare_get.p99_ms:.1f} ms)"
        )
        print(f"    wrk CPU on the bare rush: {bare_rush.cpu_seconds:.2f} s for {bare_log.seconds:.2f} s")

        # 1. The rush ---------------------------------------------------------------------------
        def bookable_event(title: str) -> str:
            event = create_event(stack, key, kind="book-launch", title=title, venue_name="Hall", capacity=RUSH_CAPACITY)
            event_id: str = event.json()["event_id"]
            wait_until_signups_knows(stack, key, event_id, timeout=60)
            return event_id

        warm_id = bookable_event("Warm-up")
        _rush(f"{signups}/v1/events/{warm_id}/bookings", key, 1000, 64)  # pools, caches, first imports
        rush_id = bookable_event("Rush")
        _wait_quiet(system, "the rush")
        meter = _meter(system)
        meter.start()
        rush, log = _rush(f"{signups}/v1/events/{rush_id}/bookings", key, RUSH_PEOPLE, RUSH_CONNECTIONS)
        rush_cpu = meter.stop(extra={"wrk": rush.cpu_seconds})
        rush_seconds = log.seconds
        rush_rate = RUSH_PEOPLE / rush_seconds
        own = log.latencies_ms()
        print(
            f"\n  1. {RUSH_PEOPLE:,} distinct people RSVP, {RUSH_CAPACITY} places + waitlist,"
            f" {RUSH_CONNECTIONS} connections"
        )
        print(
            f"    {rush_seconds:.2f} s for the {RUSH_PEOPLE:,} (first sent → last answered), {rush_rate:,.0f}/s"
            f" | bare route {bare_log.seconds:.2f} s, {bare_rush_rate:,.0f}/s, ratio {rush_rate / bare_rush_rate:.3f}"
            f" | pgbench -c16 {pg16:,.0f}/s, ratio {rush_rate / pg16:.3f};"
            f" -c1 {pg1:,.0f}/s, ratio {rush_rate / pg1:.3f}"
        )
        print(
            f"    wrk --latency p50 {rush.p50_ms:.1f} ms, p99 {rush.p99_ms:.1f} ms, max {rush.max_ms:.0f} ms"
            f" (per request from the log: p50 {percentile(own, 50):.1f}, p99 {percentile(own, 99):.1f} ms)"
            f" | bare p99 {bare_rush.p99_ms:.1f} ms"
        )
        print(
            f"    wrk: {rush.requests} answers, non-2xx {rush.status_errors}, socket errors {rush.socket_errors};"
            f" wrk used {rush.cpu_seconds / rush_seconds:.2f} of a core"
        )
        print(f"    answers by status: {log.statuses()}")
        for refusal in log.refusals:
            print(f"    a refusal: {refusal}")
        exact, lines = _check_rush(system, rush_id, log)
        print("\n".join(lines))
        print("    CPU:")
        print(rush_cpu.table(RUSH_PEOPLE, "RSVPs"))

        # 1b. The same rush with the services downstream of bookings stopped -------------------
        # (as where they run on other nodes): what the booking path itself does on these cores.
        # They start again afterwards and work off the 10,000 events; that drain is timed too.
        alone_id = bookable_event("Rush, front alone")
        _wait_quiet(system, "the rush with the front alone")
        downstream = ("notifications", "scheduling", "matching")
        for name in downstream:
            stack[name].stop()
        meter.start()
        alone, alone_log = _rush(f"{signups}/v1/events/{alone_id}/bookings", key, RUSH_PEOPLE, RUSH_CONNECTIONS)
        alone_cpu = meter.stop(extra={"wrk": alone.cpu_seconds})
        alone_exact, alone_lines = _check_rush(system, alone_id, alone_log)
        restarted = time.perf_counter()
        for name in downstream:
            stack[name].start()
            stack[name].wait_ready()
        print(
            f"\n  1b. the same rush with {', '.join(downstream)} stopped: {alone_log.seconds:.2f} s"
            f" ({RUSH_PEOPLE / alone_log.seconds:,.0f}/s), wrk p99 {alone.p99_ms:.0f} ms, non-2xx"
            f" {alone.status_errors}, socket errors {alone.socket_errors}; exact: {alone_exact}"
        )
        print("\n".join(line for line in alone_lines if not line.lstrip().startswith("[ok]")) or "    every check ok")
        print("    CPU:")
        print(alone_cpu.table(RUSH_PEOPLE, "RSVPs"))
        _wait_quiet(system, "the downstream drain after 1b")
        print(f"    downstream restarted and worked off the rush in {time.perf_counter() - restarted:.1f} s")

        # 3. The public event page --------------------------------------------------------------
        _wait_quiet(system, "the event page")
        page_url = f"{stack['web'].url}/events/{rush_id}"
        assert httpx.get(page_url, timeout=30).status_code == 200
        meter.start()
        page = run_wrk(page_url, connections=PAGE_CONNECTIONS, script="get.lua", seconds=RUN_SECONDS)
        page_cpu = meter.stop(extra={"wrk": page.cpu_seconds})
        print(f"\n  3. public event page (web → scheduling, signups), {PAGE_CONNECTIONS} connections, {RUN_SECONDS} s")
        print(
            f"    {page.rate:,.0f} pages/s, p50 {page.p50_ms:.1f} ms, p99 {page.p99_ms:.1f} ms,"
            f" non-2xx {page.status_errors}, socket errors {page.socket_errors}"
            f" | bare GET {bare_get.rate:,.0f}/s, ratio {page.rate / bare_get.rate:.3f}"
        )
        print(f"    wrk used {page.cpu_seconds / page.seconds:.2f} of a core")
        print("    CPU:")
        print(page_cpu.table(page.requests, "pages"))

        # 2. Sign-ups accepted ------------------------------------------------------------------
        run_wrk(
            f"{signups}/v1/donors",
            connections=SIGNUP_CONNECTIONS,
            script="signups.lua",
            args=[f"warm{uuid.uuid4().hex[:6]}", body.name],
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            seconds=2,
        )
        _wait_quiet(system, "the sign-ups")
        meter.start()
        sign = run_wrk(
            f"{signups}/v1/donors",
            connections=SIGNUP_CONNECTIONS,
            script="signups.lua",
            args=[uuid.uuid4().hex[:8], body.name],
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            seconds=RUN_SECONDS,
        )
        sign_cpu = meter.stop(extra={"wrk": sign.cpu_seconds})
    print(
        f"\n  2. sign-ups accepted (distinct people, an Idempotency-Key each),"
        f" {SIGNUP_CONNECTIONS} connections, {RUN_SECONDS} s"
    )
    print(
        f"    {sign.rate:,.0f}/s, p50 {sign.p50_ms:.1f} ms, p99 {sign.p99_ms:.1f} ms, non-2xx {sign.status_errors},"
        f" socket errors {sign.socket_errors}"
        f" | bare POST {bare_post.rate:,.0f}/s, ratio {sign.rate / bare_post.rate:.3f}"
        f" | pgbench -c16 {pg16:,.0f}/s, ratio {sign.rate / pg16:.3f}"
    )
    print(f"    wrk used {sign.cpu_seconds / sign.seconds:.2f} of a core")
    print("    CPU:")
    print(sign_cpu.table(sign.requests, "sign-ups"))

    # 4. Sign-up → welcome mail, open loop ---------------------------------------------------------
    _wait_quiet(system, "the welcome mail")
    mail, notes, mail_cpu = _welcome_mail(system, key)
    all_arrived = mail["arrived"] == mail["accepted"] == mail["offered"]
    print(
        f"\n  4. sign-up → welcome mail, {MAIL_RATE}/s offered for {MAIL_SECONDS} s"
        f" by {MAIL_CLIENTS} paced client processes"
    )
    print(
        f"    offered {mail['offered']:,} at {mail['rate']:.0f}/s"
        f" (the latest started {mail['lateness'] * 1000:.0f} ms after its planned time, waiting for one of"
        f" {MAIL_CLIENTS}x{MAIL_CONNECTIONS_PER_CLIENT} connections),"
        f" accepted {mail['accepted']:,} (planned → answer p99 {mail['answer_p99']:.0f} ms),"
        f" mails arrived {mail['arrived']:,}"
    )
    print(
        f"    planned send → in the sink: p50 {mail['p50'] * 1000:.0f} ms, p99 {mail['p99'] * 1000:.0f} ms,"
        f" max {mail['max'] * 1000:.0f} ms | Kafka round trip p99 {kafka_p99:.1f} ms"
    )
    for note in notes:
        print(f"    {note}")
    print("    CPU:")
    print(mail_cpu.table(int(mail["offered"]), "sign-ups"))

    # The issue's targets ---------------------------------------------------------------------------
    rows = [
        Target(
            f"{RUSH_PEOPLE:,} RSVPs for {RUSH_CAPACITY} places, {RUSH_CONNECTIONS} conns: seconds",
            f"{rush_seconds:.2f} s",
            f"bare {bare_log.seconds:.2f} s",
            _fmt_ratio(bare_log.seconds, rush_seconds),
            "< 2.5 s, exact, 0 errors",
            rush_seconds < 2.5 and exact and rush.status_errors == 0 and rush.socket_errors == 0,
        ),
        Target(
            "  … p99",
            f"{rush.p99_ms:.0f} ms",
            f"bare {bare_rush.p99_ms:.0f} ms",
            _fmt_ratio(bare_rush.p99_ms, rush.p99_ms),
            "< 500 ms",
            rush.p99_ms < 500,
        ),
        Target(
            "  … the booking path alone (downstream stopped): seconds",
            f"{alone_log.seconds:.2f} s",
            f"bare {bare_log.seconds:.2f} s",
            _fmt_ratio(bare_log.seconds, alone_log.seconds),
            "< 2.5 s, exact, 0 errors",
            alone_log.seconds < 2.5 and alone_exact and alone.status_errors == 0 and alone.socket_errors == 0,
        ),
        Target(
            "  … its p99",
            f"{alone.p99_ms:.0f} ms",
            f"bare {bare_rush.p99_ms:.0f} ms",
            _fmt_ratio(bare_rush.p99_ms, alone.p99_ms),
            "< 500 ms",
            alone.p99_ms < 500,
        ),
        Target(
            f"sign-ups accepted/s, {SIGNUP_CONNECTIONS} conns",
            f"{sign.rate:,.0f}/s",
            f"bare {bare_post.rate:,.0f}/s",
            _fmt_ratio(sign.rate, bare_post.rate),
            ">= 1,000/s",
            sign.rate >= 1000 and sign.status_errors == 0,
        ),
        Target(
            "  … p99",
            f"{sign.p99_ms:.0f} ms",
            f"bare {bare_post.p99_ms:.1f} ms",
            _fmt_ratio(bare_post.p99_ms, sign.p99_ms),
            "< 250 ms",
            sign.p99_ms < 250,
        ),
        Target(
            f"sign-up → welcome mail, {MAIL_RATE}/s for {MAIL_SECONDS} s: all arrived?",
            f"{mail['arrived']:,}/{mail['offered']:,}",
            "-",
            "-",
            "every mail",
            all_arrived,
        ),
        Target(
            "  … p99",
            f"{mail['p99'] * 1000:,.0f} ms",
            f"Kafka p99 {kafka_p99:.0f} ms",
            _fmt_ratio(kafka_p99, mail["p99"] * 1000),
            "< 2 s",
            mail["p99"] < 2.0,
        ),
        Target(
            f"public event page, {PAGE_CONNECTIONS} conns",
            f"{page.rate:,.0f}/s",
            f"bare {bare_get.rate:,.0f}/s",
            _fmt_ratio(page.rate, bare_get.rate),
            ">= 300 pages/s",
            page.rate >= 300 and page.status_errors == 0,
        ),
    ]
    print("\n  issue 16 targets (ratio: measured / raw limit; for times, raw / measured)")
    widths = (56, 12, 18, 6, 26)
    header = ("figure", "measured", "raw limit", "ratio", "target")
    print("    " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " | met?")
    for row in rows:
        cells = (row.figure, row.measured, row.raw, row.ratio, row.target)
        print(
            "    "
            + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))
            + f" | {'yes' if row.met else 'NO'}"
        )


if __name__ == "__main__":
    main()
