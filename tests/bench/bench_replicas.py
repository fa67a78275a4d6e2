"""Replicas: 10,000 people published over Kafka into two processes of signups and of
notifications (the `make run` workers each), one of each SIGKILLed mid-stream. Prints the time
to drain, the consumer lag over time and how soon after the kill it is back to 0, what was
lost or sent twice, beside this run's raw aiokafka producer and consumer rates on the same
records (12 partitions) and PostgreSQL's row+outbox transactions, with the CPU-seconds each
process spent per 1,000 events.

`REPLICAS=3 make bench` runs three of each (two at the least: one is killed)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from pitchin_core.contracts.topics import INGEST
from pitchin_testing.kafka import admin_options
from pitchin_testing.processes import RUN_WORKERS, ServiceProcess, replicas_from_env
from tests.bench import targets
from tests.bench.cpu import CpuMeter, _cpu_seconds, _parents, tree
from tests.bench.limits import line, postgres_row_and_outbox_txn_per_s
from tests.bench.system import System, running_system
from tests.e2e.test_replica_kill import LAG_TARGET_SECONDS, Outcome, describe, kill_one_replica_mid_stream
from tests.e2e.test_replica_kill import records as person_records

EVENTS = 10_000
RAW_RECORDS = 50_000


async def raw_kafka_rates(bootstrap: str) -> tuple[float, float]:
    """aiokafka producer records/s (send + one flush, acks=all, linger 5 ms) and group-less
    consumer records/s (getmany) of the benchmark's own records, on a topic partitioned as the
    ingest topic is: what one Python process can push through this broker."""
    topic = f"limits-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(**admin_options(bootstrap))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, INGEST.partitions, 1)])
    finally:
        await admin.close()
    stream = person_records("raw", "/bench/raw", RAW_RECORDS, "fed-raw", "org-raw")
    producer = AIOKafkaProducer(**admin_options(bootstrap), acks="all", linger_ms=5)
    await producer.start()
    try:
        started = time.perf_counter()
        for key, value, headers in stream:
            await producer.send(topic, value, key=key, headers=headers)
        await producer.flush()
        produced = RAW_RECORDS / (time.perf_counter() - started)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(**admin_options(bootstrap), group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(INGEST.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        read = 0
        started = time.perf_counter()
        while read < RAW_RECORDS:
            read += sum(len(b) for b in (await consumer.getmany(timeout_ms=500, max_records=5000)).values())
        consumed = read / (time.perf_counter() - started)
    finally:
        await consumer.stop()
    return produced, consumed


def _meter(system: System) -> CpuMeter:
    """A CPU meter over every process of the system, each replica on its own."""

    def roots(pid: Callable[[], int | None]) -> Callable[[], list[int]]:
        return lambda: [p] if (p := pid()) is not None else []

    def service_pid(service: ServiceProcess) -> Callable[[], int | None]:
        return lambda: service.process.pid if service.running and service.process is not None else None

    groups = {s.label: roots(service_pid(s)) for s in system.stack.processes}
    groups["postgres"] = roots(lambda: system.postgres.pid)
    groups["kafka"] = roots(lambda: system.kafka.pid)
    groups["smtp sink"] = roots(lambda: system.maildir_sink.pid)
    return CpuMeter(groups)


def _tree_cpu(service: ServiceProcess) -> float:
    assert service.process is not None
    return sum(_cpu_seconds(p) for p in tree(service.process.pid, _parents()))


def _lag_table(outcome: Outcome) -> str:
    """Records left per group about every 2 s from the first send, the kills marked; the
    stretch after both groups are at 0 for good is left out."""
    settled = outcome.last_kill + outcome.slowest_lag_recovery
    kills = sorted((at, group) for group, at in outcome.killed.items())
    rows, last = [], -10.0
    for sample in outcome.samples:
        marks = [f"<- {outcome.victims[g]} SIGKILLed" for at, g in kills if last < at <= sample.seconds]
        if sample.seconds - last >= 2.0 or marks or sample.seconds >= settled:
            lag = "  ".join(f"{group} {n:>6,}" for group, n in sample.lag.items())
            rows.append(f"    {sample.seconds:6.1f} s  {lag}  {' '.join(marks)}".rstrip())
            last = sample.seconds
        if sample.seconds >= settled:
            break
    return "\n".join(["    since the first send, records left per group:", *rows])


def main() -> None:
    count = max(2, replicas_from_env()["signups"])
    replicas = {**replicas_from_env(), "signups": count, "notifications": count}
    with running_system(workers=RUN_WORKERS, sink_maildir=True, replicas=replicas) as system:
        stack = system.stack
        print(
            f"replicas benchmark: {count} processes of signups and notifications ({RUN_WORKERS['signups']} workers"
            f" each), {EVENTS:,} person-signed-up over Kafka keyed by person; real Kafka 4.1.1, PostgreSQL 15"
        )
        produced, consumed = asyncio.run(raw_kafka_rates(system.kafka.bootstrap))
        raw_txn = asyncio.run(postgres_row_and_outbox_txn_per_s(system.database_url, concurrency=8))
        print(
            f"  raw: aiokafka producer {produced:,.0f} records/s, consumer {consumed:,.0f} records/s"
            f" ({RAW_RECORDS:,} records, {INGEST.partitions} partitions); PG row+outbox txn/s (8 conns) {raw_txn:,.0f}"
        )
        meter = _meter(system)
        # A killed replica has no /proc entry left to read when the meter stops: what it had used
        # is read just before its kill.
        killed_cpu: dict[str, float] = {}

        def before_kill(victim: ServiceProcess) -> None:
            killed_cpu[victim.label] = _tree_cpu(victim) - at_start[victim.label]

        at_start = meter.sample()
        meter.start()
        own = time.process_time()
        outcome = kill_one_replica_mid_stream(
            stack,
            system.kafka.bootstrap,
            system.maildir_sink,
            events=EVENTS,
            deadline=300,
            before_kill=before_kill,
        )
        cpu = meter.stop({"load generator": time.process_time() - own, **killed_cpu})
        print("  " + describe(outcome).replace("\n", "\n  "))
        rate = EVENTS / outcome.drained_after
        print(
            line(
                f"drained with a replica killed: people/s ({EVENTS:,})",
                rate,
                "per s",
                "aiokafka consumer",
                consumed,
                "records/s",
            )
        )
        print(
            line(
                "  the same, beside PG row+outbox txn/s (8 conns)",
                rate,
                "per s",
                "PG row+outbox txn/s",
                raw_txn,
                "per s",
            )
        )
        for group in outcome.killed:
            back = outcome.lag_back_to_zero(group)
            print(f"  {group}: lag back to 0 {back:.1f} s after {outcome.victims[group]}'s kill")
        print(f"  every welcome mail in {outcome.mails_in_after_kill:.1f} s after the notifications kill")
        print(_lag_table(outcome))
        print(cpu.table(EVENTS, "events"))
        lost = outcome.donors_lost + outcome.registered_lost + outcome.mails_lost
        twice = outcome.donor_rows_twice + outcome.registered_twice + outcome.duplicate_mails
        targets.record(
            f"one replica SIGKILLed mid-stream of {EVENTS:,} events",
            f"{lost} lost, {twice} duplicate mails/donors, lag 0 within {outcome.slowest_lag_recovery:.1f} s"
            f" of a kill; every mail in {outcome.mails_in_after_kill:.1f} s after it"
            f" ({outcome.redelivered} same-Message-ID re-deliveries)",
            f"0 lost, 0 duplicate mails, lag back to 0 within {LAG_TARGET_SECONDS:.0f} s",
            lost == 0 and twice == 0 and outcome.slowest_lag_recovery <= LAG_TARGET_SECONDS,
            f"aiokafka consumer {consumed:,.0f} records/s (drain ratio {rate / consumed:.3f});"
            f" PG row+outbox {raw_txn:,.0f} txn/s (ratio {rate / raw_txn:.2f})",
        )


if __name__ == "__main__":
    main()
