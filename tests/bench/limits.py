"""This machine's raw Kafka and PostgreSQL limits, measured in the same run as a benchmark.

The machine is shared and noisy: a figure alone says little, its ratio to the raw limit
measured a moment earlier says how much of the machine the system turns into work.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from pitchin_testing.kafka import admin_options
from pitchin_testing.lifecycle import stop_process, wait_until_serving
from pitchin_testing.ports import free_port


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
    admin = AIOKafkaAdminClient(**admin_options(bootstrap))
    await admin.start()
    await admin.create_topics([NewTopic(topic, 1, 1)])
    await admin.close()
    producer = AIOKafkaProducer(**admin_options(bootstrap), acks="all")
    consumer = AIOKafkaConsumer(topic, **admin_options(bootstrap), auto_offset_reset="earliest", group_id=None)
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


# wrk, pgbench and a bare route -------------------------------------------------------------------

WRK_SCRIPTS = Path(__file__).parent / "wrk"
PG_BIN = Path("/usr/lib/postgresql/15/bin")


@dataclass(frozen=True)
class WrkRun:
    """One wrk run: its exact figures (from the scripts' `done`), its own output and CPU."""

    requests: int
    seconds: float  # wrk's run time; for a fixed count, the benchmark measures the span itself
    p50_ms: float
    p99_ms: float
    max_ms: float
    status_errors: int  # answers with status 400 or above
    socket_errors: int
    cpu_seconds: float  # wrk's own user+system time
    output: str

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else float("nan")


def run_wrk(
    url: str,
    *,
    connections: int,
    script: str,
    args: Sequence[str] = (),
    headers: Mapping[str, str] | None = None,
    seconds: float = 10.0,
    threads: int = 2,
    until: Callable[[], bool] | None = None,
    until_timeout: float = 300.0,
) -> WrkRun:
    """Run wrk in its own process; with `until`, SIGINT it as soon as `until()` is true.

    wrk runs for `-d` whatever its threads do, so a run of a fixed count of requests gives a
    long `-d` and an `until` that sees the script's threads are done.
    """
    duration = until_timeout if until is not None else seconds
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{int(duration)}s", "--latency", "--timeout", "30s"]
    command += ["-s", str(WRK_SCRIPTS / script)]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    command += [url, "--", *args]
    with tempfile.TemporaryFile() as out:
        started = time.monotonic()
        wrk = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if until is not None:
            deadline = started + until_timeout
            while not until() and time.monotonic() < deadline and wrk.poll() is None:
                time.sleep(0.005)
            if wrk.poll() is None:
                wrk.send_signal(signal.SIGINT)  # wrk prints its summary and runs `done`
        _, status, usage = os.wait4(wrk.pid, 0)
        wrk.returncode = os.waitstatus_to_exitcode(status)
        elapsed = time.monotonic() - started
        out.seek(0)
        output = out.read().decode(errors="replace")
    if wrk.returncode != 0:
        raise RuntimeError(f"wrk exited with {wrk.returncode}:\n{output}")
    found = re.search(r"^PITCHIN (.*)$", output, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"wrk printed no figures:\n{output}")
    figures = {k: int(v) for k, v in (pair.split("=") for pair in found.group(1).split())}
    ran = re.search(r"requests in ([\d.]+)(us|ms|s|m)\b", output)
    unit = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}
    wrk_seconds = float(ran.group(1)) * unit[ran.group(2)] if ran else elapsed
    return WrkRun(
        requests=figures["requests"],
        seconds=wrk_seconds,
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        max_ms=figures["max_us"] / 1000,
        status_errors=figures["status_errors"],
        socket_errors=figures["socket_errors"],
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        output=output,
    )


def pgbench_commits_per_s(dsn: str, clients: int, seconds: int = 5) -> float:
    """Durable single-row INSERT commits/s (pgbench, a custom one-INSERT script), `clients` at once."""
    table = f"limits_commits_{uuid.uuid4().hex[:8]}"

    async def ddl(sql: str) -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(ddl(f"CREATE TABLE {table} (id bigserial PRIMARY KEY, body jsonb NOT NULL)"))
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".sql") as script:
            script.write(f"INSERT INTO {table} (body) VALUES ('{{\"a\": 1}}');\n")
            script.flush()
            command = [str(PG_BIN / "pgbench"), "-n", "-c", str(clients), "-j", str(min(clients, 2))]
            done = subprocess.run(
                [*command, "-T", str(seconds), "-f", script.name, dsn],
                capture_output=True,
                text=True,
                timeout=seconds + 60,
                check=False,
            )
    finally:
        asyncio.run(ddl(f"DROP TABLE {table}"))
    found = re.search(r"tps = ([\d.]+) \(without initial connection time\)", done.stdout)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"pgbench failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return float(found.group(1))


BARE_APP = """
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

async def answer(request):
    await request.body()
    return JSONResponse({"ok": True}, status_code=201 if request.method == "POST" else 200)

app = Starlette(routes=[Route("/{path:path}", answer, methods=["GET", "POST"])])
"""


@contextmanager
def bare_route(workers: int) -> Iterator[str]:
    """A bare Starlette route under uvicorn with `workers` processes, as the services are run
    (uvloop and httptools when installed, no access log); yields its base URL."""
    folder = Path(tempfile.mkdtemp(prefix="pitchin-bench-bare-"))
    (folder / "bare_app.py").write_text(BARE_APP)
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "bare_app:app", "--port", str(port), "--workers", str(workers)]
    command += ["--no-access-log", "--log-level", "warning", "--timeout-keep-alive", "75"]
    server = subprocess.Popen(
        command, cwd=folder, env={**os.environ, "PYTHONPATH": str(folder)}, start_new_session=True
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_serving(server, f"{url}/ready", 60, "bare route", lambda: "(see stderr)")
        yield url
    finally:
        stop_process(server, 10)
        shutil.rmtree(folder, ignore_errors=True)
