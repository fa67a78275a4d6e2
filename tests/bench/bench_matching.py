"""Matching benchmarks: print figures beside a raw limit measured in the same run; never assert time.

1. Ranking one need among 1,000,000 synthetic donors (p50/p99 over 200 needs), beside
   numpy's plain dot product over the same number of donors (the floor for touching every
   donor once).
2. Re-matching 10,000 open needs (e.g. after a taxonomy change): rank each among the 1M
   donors, then the global assignment across all of them.
3. With real Kafka + PostgreSQL and the matching service as a process: need opened on
   Kafka -> first offer.made on Kafka (p50/p99), beside aiokafka send_and_wait -> consume,
   with 1 and with 2 uvicorn workers (each worker's donor index follows the other's commits
   through the tables: pitchin_matching/follow.py), and CPU-seconds per 1,000 needs.

Run: `.venv/bin/python -m tests.bench.bench_matching [--donors N] [--needs N] [--rematch N] [--kafka-needs N]
[--kafka-workers 1,2]`.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import secrets
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from pitchin_core.contracts.cloudevents import CloudEvent, from_kafka, to_kafka_headers, to_kafka_value
from pitchin_core.contracts.common import EventData
from pitchin_core.contracts.donors import DonorRegisteredV1
from pitchin_core.contracts.fights import NeedOpenedV1
from pitchin_matching.domain.assignment import Demand, assign
from pitchin_matching.domain.needs import offers_wanted
from pitchin_matching.domain.ranking import (
    NO_SKILL,
    SLOT_WORDS,
    DonorColumns,
    NeedQuery,
    Policy,
    explain,
    rank,
    slots_of,
)
from pitchin_testing.kafka import admin_credentials, admin_options
from tests.bench.cpu import CpuMeter, CpuUse
from tests.e2e.helpers import as_cloud_event, eventually_async

SKILLS = [f"skill-{i}" for i in range(40)]
URGENCIES = ("critical", "high", "normal")
NOW = datetime(2026, 11, 23, 12, tzinfo=UTC).timestamp()
DAY = 86_400.0


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def synthetic_donors(n: int, seed: int = 1) -> DonorColumns:
    """A million donors with a realistic spread: 1-4 of 40 skills, mostly remote, UK-ish places."""
    rng = np.random.default_rng(seed)
    skills: dict[str, np.ndarray[Any, np.dtype[np.int8]]] = {}
    for slug in SKILLS:
        held = rng.random(n) < 2.5 / len(SKILLS)
        column = np.full(n, NO_SKILL, dtype=np.int8)
        column[held] = rng.integers(0, 4, int(held.sum()), dtype=np.int8)
        skills[slug] = column
    slots = np.zeros((n, SLOT_WORDS), dtype=np.uint64)
    # Evenings and weekends, give or take: random bits in two of the six words.
    slots[:, 2] = rng.integers(0, 2**63, n, dtype=np.uint64)
    slots[:, 5] = rng.integers(0, 2**15, n, dtype=np.uint64)
    last = NOW - rng.random(n) * 60 * DAY
    last[rng.random(n) < 0.5] = np.nan
    return DonorColumns(
        size=n,
        federation=np.zeros(n, dtype=np.int32),
        active=rng.random(n) < 0.97,
        skills=skills,
        hours_per_week=rng.uniform(1, 20, n).astype(np.float32),
        slots=slots,
        has_windows=rng.random(n) < 0.8,
        remote=rng.random(n) < 0.7,
        latitude=rng.uniform(50.0, 56.0, n).astype(np.float32),
        longitude=rng.uniform(-5.0, 1.0, n).astype(np.float32),
        country=np.zeros(n, dtype=np.int16),
        languages=rng.integers(1, 8, n).astype(np.uint64),
        causes=rng.integers(0, 2**10, n).astype(np.uint64),
        load=rng.choice(np.array([0, 0, 0, 1, 2], dtype=np.int16), n),
        last_asked=last,
        registered=NOW - rng.random(n) * 400 * DAY,
        completed=rng.poisson(0.5, n).astype(np.int32),
        declined=rng.poisson(0.5, n).astype(np.int32),
    )


def synthetic_needs(count: int, seed: int = 2) -> list[tuple[NeedQuery, int]]:
    rng = np.random.default_rng(seed)
    collaboration = slots_of(tuple((d * 1440 + 540, d * 1440 + 1020) for d in range(5)))
    needs = []
    for _ in range(count):
        picked = rng.choice(len(SKILLS), int(rng.integers(1, 3)), replace=False)
        remote = bool(rng.random() < 0.8)
        needs.append(
            (
                NeedQuery(
                    federation=0,
                    required=tuple((SKILLS[i], int(rng.integers(0, 3))) for i in picked),
                    nice_to_have=tuple(SKILLS[i] for i in rng.choice(len(SKILLS), 2, replace=False)),
                    share_hours=float(rng.uniform(2, 40)),
                    deadline=NOW + float(rng.uniform(2, 30)) * DAY,
                    urgency=URGENCIES[int(rng.integers(0, 3))],
                    remote=remote,
                    latitude=None if remote else float(rng.uniform(51, 55)),
                    longitude=None if remote else float(rng.uniform(-3, 0)),
                    country=0,
                    language_bit=1,
                    language="en",
                    cause_bits=int(rng.integers(1, 2**10)),
                    cause_count=3,
                    collaboration=collaboration,
                ),
                int(rng.integers(1, 4)),
            )
        )
    return needs


def timed(action: Callable[[], object]) -> float:
    began = time.perf_counter()
    action()
    return (time.perf_counter() - began) * 1000


def bench_ranking(columns: DonorColumns, needs: list[tuple[NeedQuery, int]]) -> None:
    policy = Policy()

    def rank_and_explain(query: NeedQuery) -> None:
        result = rank(columns, query, policy, NOW, limit=10)
        for i, row in enumerate(result.rows.tolist()):
            explain(columns, row, {k: float(v[i]) for k, v in result.values.items()}, query, policy, NOW)

    rank_and_explain(needs[0][0])  # warm up
    samples = [timed(functools.partial(rank_and_explain, query)) for query, _ in needs]
    # Two floors: a dense scorer (12 features per donor, one dot product) and one pass over
    # one skill column (the least any ranking that looks at every donor must do).
    features = np.random.default_rng(3).random((columns.size, 12), dtype=np.float32)
    weights = np.ones(12, dtype=np.float32)
    dot = [timed(functools.partial(np.dot, features, weights)) for _ in range(len(needs))]
    column = columns.skills[SKILLS[0]]
    scan = [timed(functools.partial(np.greater_equal, column, 2)) for _ in range(len(needs))]
    p50, p99 = percentile(samples, 50), percentile(samples, 99)
    dot50, dot99, scan50 = percentile(dot, 50), percentile(dot, 99), percentile(scan, 50)
    print(f"ranking 1 need among {columns.size:,} donors (top 10, explained), {len(needs)} needs:")
    print(f"  p50 {p50:.2f} ms   p99 {p99:.2f} ms   mean {statistics.fmean(samples):.2f} ms")
    print(f"  raw limit: numpy float32 dot {columns.size:,} x 12: p50 {dot50:.2f} ms p99 {dot99:.2f} ms;")
    print(f"             one int8 column compare: p50 {scan50:.2f} ms")
    print(f"  ratio p50: {p50 / dot50:.1f}x the dot product, {p50 / scan50:.0f}x the single-column pass")


def bench_rematch(columns: DonorColumns, needs: list[tuple[NeedQuery, int]]) -> None:
    policy = Policy()
    fan_out = dict(policy.fan_out)
    began = time.perf_counter()
    demands = []
    for number, (query, wanted) in enumerate(needs):
        places = offers_wanted(
            donors_wanted=wanted, active_assignments=0, pending_offers=0, urgency=query.urgency, fan_out=fan_out
        )
        result = rank(columns, query, policy, NOW, limit=places * 3 + 5)
        candidates = [(int(r), float(s)) for r, s in zip(result.rows.tolist(), result.scores.tolist(), strict=True)]
        demands.append(
            Demand(f"need-{number}", query.urgency, query.deadline, places, [(str(r), s) for r, s in candidates])
        )
    ranked = time.perf_counter()
    everyone = {d for demand in demands for d, _ in demand.candidates}
    capacity = {d: policy.max_open_per_donor - int(columns.load[int(d)]) for d in everyone}
    plan = assign(demands, capacity, NOW)
    done = time.perf_counter()
    offers = sum(len(v) for v in plan.values())
    covered = sum(1 for v in plan.values() if v)
    print(f"re-matching {len(needs):,} open needs among {columns.size:,} donors:")
    per_need = (ranked - began) / len(needs) * 1000
    print(f"  total {done - began:.1f} s = ranking {ranked - began:.1f} s ({per_need:.1f} ms/need)")
    print(f"  + global assignment {done - ranked:.2f} s over {len(everyone):,} candidate donors")
    print(f"  {offers:,} offers planned; {covered:,} of {len(needs):,} needs get at least one")


# --- need opened -> first offer on Kafka ---------------------------------------------------


def _cloud_event(data: EventData) -> CloudEvent:
    return as_cloud_event(data, source="/bench", tenant=data.federation_id)


async def _kafka_latencies(
    bootstrap: str, database_url: str, needs: int, donors: int, meter: CpuMeter
) -> tuple[list[float], list[float], CpuUse]:
    import asyncpg
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    from pitchin_core.kafka_admin import ensure_topics

    await ensure_topics(bootstrap, ["bench.raw.v1"], partitions=1, credentials=admin_credentials(bootstrap))
    producer = AIOKafkaProducer(**admin_options(bootstrap), acks="all", linger_ms=0)
    await producer.start()
    federation = "fed-bench"
    try:
        for n in range(donors):
            donor = DonorRegisteredV1.model_validate(
                {
                    "federation_id": federation,
                    "donor_id": f"don-{n}",
                    "name": f"Donor {n}",
                    "email": f"donor{n}@example.org",
                    "skills": [{"skill": SKILLS[n % 10], "level": "expert"}],
                    "availability": {"hours_per_week": 5, "time_zone": "Europe/London"},
                    "place": {"remote": True},
                    "languages": ["en"],
                    "contact": {"email": True},
                    "consent": {"wording_version": "v1", "purposes": ["matching"], "agreed_at": "2026-11-01T00:00:00Z"},
                    "registered_at": "2026-11-01T00:00:00Z",
                }
            )
            event = _cloud_event(donor)
            await producer.send("pitchin.donors.v1", to_kafka_value(event), key=donor.donor_id.encode(),
                                headers=to_kafka_headers(event))  # fmt: skip
        await producer.flush()
        conn = await asyncpg.connect(database_url)
        try:
            await eventually_async(lambda: _count_at_least(conn, donors), 300, 0.05, "matching to learn every donor")
        finally:
            await conn.close()

        consumer = AIOKafkaConsumer(
            "pitchin.matches.v1", "bench.raw.v1", **admin_options(bootstrap), group_id=None, auto_offset_reset="latest"
        )
        await consumer.start()
        try:
            await eventually_async(lambda: _assigned(consumer, 2), 30, 0.05, "the consumer's partitions")
            for tp in consumer.assignment():
                await consumer.seek_to_end(tp)
            first_offer: list[float] = []
            raw: list[float] = []
            meter.start()
            for n in range(needs):
                need = NeedOpenedV1.model_validate(
                    {
                        "federation_id": federation,
                        "organisation_id": "org-bench",
                        "need_id": f"need-{uuid.uuid4().hex[:10]}",
                        "fight_id": "fight-bench",
                        "title": "Bench need",
                        "required_skills": [{"skill": SKILLS[n % 10], "min_level": "advanced"}],
                        "estimated_hours": 4,
                        "deadline": (datetime.now(UTC) + timedelta(days=7)).isoformat(),
                        "opened_at": datetime.now(UTC).isoformat(),
                    }
                )
                event = _cloud_event(need)
                began = time.perf_counter()
                await producer.send_and_wait(
                    "pitchin.needs.v1",
                    to_kafka_value(event),
                    key=need.need_id.encode(),
                    headers=to_kafka_headers(event),
                )
                await _wait_for(consumer, functools.partial(_is_first_offer, need.need_id.encode()))
                first_offer.append((time.perf_counter() - began) * 1000)
                marker = uuid.uuid4().hex.encode()
                began = time.perf_counter()
                await producer.send_and_wait("bench.raw.v1", b"{}", key=marker)
                await _wait_for(consumer, functools.partial(_has_key, marker))
                raw.append((time.perf_counter() - began) * 1000)
            used = meter.stop()
        finally:
            await consumer.stop()
    finally:
        await producer.stop()
    return first_offer, raw, used


def _is_first_offer(key: bytes, record: Any) -> bool:
    return bool(record.key == key and from_kafka(record.headers, record.value).type.endswith("offer.made.v1"))


def _has_key(key: bytes, record: Any) -> bool:
    return bool(record.key == key)


async def _count_at_least(conn: Any, donors: int) -> bool:
    return bool(await conn.fetchval("SELECT count(*) FROM matching.donors") >= donors)


async def _assigned(consumer: Any, topics: int) -> bool:
    return len({tp.topic for tp in consumer.assignment()}) >= topics


async def _wait_for(consumer: Any, match: Callable[[Any], bool]) -> None:
    async with asyncio.timeout(30):
        while True:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                if any(match(r) for r in records):
                    return


def bench_kafka(needs: int, donors: int, workers: int) -> None:
    from pitchin_testing.install import ensure_installed
    from pitchin_testing.kafka import KafkaServer
    from pitchin_testing.ports import free_ports
    from pitchin_testing.postgres import PostgresServer
    from pitchin_testing.processes import ServiceProcess, service_env
    from pitchin_testing.stack import SECRET_SETTINGS

    ensure_installed()
    state = Path(tempfile.mkdtemp(prefix="pitchin-bench-matching-"))
    kafka_port, controller_port, pg_port, http_port, smtp_port = free_ports(5)
    kafka = KafkaServer(state / "kafka", port=kafka_port, controller_port=controller_port)
    postgres = PostgresServer(state / "postgres", port=pg_port)
    kafka.start()
    postgres.start()
    matching: ServiceProcess | None = None
    try:
        database_url = postgres.create_database("pitchin_bench")
        env = service_env(
            kafka_bootstrap=kafka.bootstrap,
            database_url=database_url,
            smtp_port=smtp_port,
            otlp_endpoint=None,
            environment="test",
        )
        # A real secret for each secret setting, as the stack gives its services (no built-in one outside local).
        service_env_ = {
            **env,
            **{variable: secrets.token_urlsafe(32) for variable in SECRET_SETTINGS},
            "PITCHIN_LOG_LEVEL": "WARNING",
            "PITCHIN_WORKERS": str(workers),
        }
        matching = ServiceProcess("matching", http_port, service_env_, state / "logs")
        matching.start()
        matching.wait_ready(120)
        process = matching.process
        meter = CpuMeter(
            {
                "matching": lambda: [process.pid] if process is not None else [],
                "postgresql": lambda: [pid] if (pid := postgres.pid) is not None else [],
                "kafka": lambda: [pid] if (pid := kafka.pid) is not None else [],
            }
        )
        first_offer, raw, used = asyncio.run(_kafka_latencies(kafka.bootstrap, database_url, needs, donors, meter))
        p50, p99 = percentile(first_offer, 50), percentile(first_offer, 99)
        r50, r99 = percentile(raw, 50), percentile(raw, 99)
        print(
            f"need opened on Kafka -> first offer.made on Kafka ({needs} needs, {donors:,} donors,"
            f" service process with {workers} worker{'s' if workers > 1 else ''}):"
        )
        print(f"  p50 {p50:.1f} ms   p99 {p99:.1f} ms")
        print(f"  raw limit: aiokafka send_and_wait -> consume, same broker: p50 {r50:.1f} ms   p99 {r99:.1f} ms")
        print(f"  ratio p50 {p50 / r50:.1f}x   p99 {p99 / r99:.1f}x")
        print("  CPU while the needs were matched (the load generator's own process is not counted):")
        print(used.table(needs, "needs"))
    finally:
        if matching is not None:
            matching.stop()
        kafka.stop()
        postgres.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--donors", type=int, default=1_000_000)
    parser.add_argument("--needs", type=int, default=200)
    parser.add_argument("--rematch", type=int, default=10_000)
    parser.add_argument("--kafka-needs", type=int, default=100)
    parser.add_argument("--kafka-donors", type=int, default=2_000)
    parser.add_argument("--kafka-workers", default="1,2", help="uvicorn worker counts to run the Kafka part with")
    args = parser.parse_args(argv)
    print(f"matching benchmarks on {os.cpu_count()} cores")
    began = time.perf_counter()
    columns = synthetic_donors(args.donors)
    print(f"({args.donors:,} synthetic donors built in {time.perf_counter() - began:.1f} s)")
    bench_ranking(columns, synthetic_needs(args.needs))
    if args.rematch:
        bench_rematch(columns, synthetic_needs(args.rematch, seed=5))
    if args.kafka_needs:
        for workers in (int(w) for w in args.kafka_workers.split(",")):
            bench_kafka(args.kafka_needs, args.kafka_donors, workers)


if __name__ == "__main__":
    main()
