"""Two replicas of signups and of notifications; one of each is SIGKILLed in the middle of a
stream of people published over Kafka. Nothing is lost, nothing is done twice, and the
consumer groups catch up.

The system runs on a Kafka of its own: the session's stack shares the consumer groups' names
(a group is its service's name), and its signups would take partitions of this stream.

`kill_one_replica_mid_stream` is the scenario; tests/bench/bench_replicas.py runs it with
10,000 events and the `make run` workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from pitchin_core.contracts.topics import DONORS, INGEST, consumed_by
from pitchin_core.lag import compute_lag
from pitchin_testing.kafka import KafkaServer, admin_options
from pitchin_testing.ports import free_port, free_ports
from pitchin_testing.postgres import PostgresServer
from pitchin_testing.processes import ServiceProcess
from pitchin_testing.smtp_sink import SmtpSink
from pitchin_testing.stack import Stack
from tests.e2e.helpers import eventually_async
from tests.unit.factories import donor_signup

pytestmark = pytest.mark.e2e

PERSON_SIGNED_UP = "org.pitchin.ingest.person-signed-up.v1"
DONOR_REGISTERED = "org.pitchin.donor.registered.v1"
# The groups whose lag must come back to 0, and the replicated services.
GROUPS = ("signups", "notifications")
# Events in the test's stream (the benchmark sends 10,000); overridable to try larger ones.
EVENTS = int(os.environ.get("PITCHIN_REPLICA_KILL_EVENTS", "1000"))
# The target of issue 23: consumer lag back to 0 within 30 s of the kill.
LAG_TARGET_SECONDS = 30.0
# A Kafka record as the publisher sends it: key, value, headers.
Record = tuple[bytes, bytes, list[tuple[str, bytes]]]


class Mailbox(Protocol):
    """What the scenario reads of an SMTP sink: who got which mail."""

    def deliveries(self) -> list[tuple[str, str]]:
        """(recipient, Message-ID) per mail received, re-deliveries included."""
        ...


class InProcessMailbox:
    """The test's in-process sink."""

    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    def deliveries(self) -> list[tuple[str, str]]:
        return [(str(m["To"]).lower(), str(m["Message-ID"])) for m in self.sink.messages]


@dataclass
class LagSample:
    seconds: float  # since the stream's first record was sent
    lag: dict[str, int]  # group -> records left


@dataclass
class Outcome:
    """What a replica kill left behind: counts per person, timings and the lag over time."""

    people: int
    donors: int = 0  # distinct people who became donors
    donor_rows_twice: int = 0  # people with more than one donor row
    registered_ids: dict[str, set[str]] = field(default_factory=dict)  # donor id -> donor.registered event ids
    registered_records: int = 0  # donor.registered records on Kafka, re-sends included
    mail_ids: dict[str, set[str]] = field(default_factory=dict)  # recipient -> distinct Message-IDs
    mails: int = 0  # mails received, re-deliveries included
    killed: dict[str, float] = field(default_factory=dict)  # group -> seconds into the stream of its kill
    victims: dict[str, str] = field(default_factory=dict)  # group -> the replica killed (signups-1)
    progress_at_kill: dict[str, int] = field(default_factory=dict)  # group -> people done at its kill
    published_after: float = 0.0
    # Every record sent, every person a donor with a welcome mail and every group's lag 0.
    drained_after: float = 0.0
    samples: list[LagSample] = field(default_factory=list)

    @property
    def donors_lost(self) -> int:
        return self.people - self.donors

    @property
    def registered_lost(self) -> int:
        return self.people - len(self.registered_ids)

    @property
    def registered_twice(self) -> int:
        """Donors with more than one donor.registered event id (a second event, not a re-send)."""
        return sum(1 for ids in self.registered_ids.values() if len(ids) > 1)

    @property
    def registered_resent(self) -> int:
        """Records of an event id already on the topic: the relay re-sending after a crash."""
        return self.registered_records - sum(len(ids) for ids in self.registered_ids.values())

    @property
    def mails_lost(self) -> int:
        return self.people - len(self.mail_ids)

    @property
    def duplicate_mails(self) -> int:
        """People with more than one distinct welcome mail."""
        return sum(1 for ids in self.mail_ids.values() if len(ids) > 1)

    @property
    def redelivered(self) -> int:
        """Mails received again with a Message-ID the person already had (an SMTP accept the
        killed process did not get to record: the same mail, which clients show once)."""
        return self.mails - sum(len(ids) for ids in self.mail_ids.values())

    @property
    def last_kill(self) -> float:
        return max(self.killed.values(), default=0.0)

    def lag_back_to_zero(self, group: str) -> float:
        """Seconds from the kill of one of `group`'s replicas to the group's lag reaching 0 for
        good (the first sample after its last non-zero one)."""
        kill = self.killed[group]
        after = [s for s in self.samples if s.seconds >= kill]
        behind = [i for i, s in enumerate(after) if s.lag[group]]
        if not behind:
            return after[0].seconds - kill if after else 0.0
        if behind[-1] + 1 == len(after):
            return float("inf")
        return after[behind[-1] + 1].seconds - kill

    @property
    def slowest_lag_recovery(self) -> float:
        return max(self.lag_back_to_zero(group) for group in self.killed)

    @property
    def mails_in_after_kill(self) -> float:
        """Seconds from the notifications kill to every person having a mail (and lag 0 everywhere)."""
        return self.drained_after - self.killed["notifications"]


def person(tag: str, i: int, federation_id: str, organisation_id: str) -> dict[str, object]:
    return {
        **donor_signup(name=f"Replica {i}", email=f"{tag}-{i}@replicas.example"),
        "federation_id": federation_id,
        "organisation_id": organisation_id,
        "external_id": f"{tag}-{i}",
        "updated_at": "2026-11-23T10:00:00Z",
    }


def records(tag: str, source: str, count: int, federation_id: str, organisation_id: str) -> list[Record]:
    """Person-signed-up records as a publisher sends them (docs/ingest.md), keyed by the person:
    they spread over every partition, so over every consumer of the group."""
    built = []
    for i in range(count):
        headers = [
            ("ce_specversion", b"1.0"),
            ("ce_id", f"{tag}-{i}".encode()),
            ("ce_source", source.encode()),
            ("ce_type", PERSON_SIGNED_UP.encode()),
            ("content-type", b"application/json"),
        ]
        body = json.dumps(person(tag, i, federation_id, organisation_id)).encode()
        built.append((f"{tag}-{i}".encode(), body, headers))
    return built


class GroupLag:
    """Records left per consumer group (end offset - committed offset over the group's topics),
    from one admin client and one group-less consumer kept open for the run."""

    def __init__(self, bootstrap: str, groups: tuple[str, ...]) -> None:
        self.bootstrap = bootstrap
        self.topics = {group: [spec.name for spec in consumed_by(group)] for group in groups}
        self.admin = AIOKafkaAdminClient(**admin_options(bootstrap))
        self.consumer = AIOKafkaConsumer(**admin_options(bootstrap), group_id=None, enable_auto_commit=False)
        self.partitions: dict[str, list[TopicPartition]] = {}

    async def start(self) -> None:
        await self.admin.start()
        await self.consumer.start()
        for group, topics in self.topics.items():
            described = await self.admin.describe_topics(topics)
            self.partitions[group] = [
                TopicPartition(str(t["topic"]), int(p["partition"])) for t in described for p in t["partitions"]
            ]

    async def stop(self) -> None:
        await self.consumer.stop()
        await self.admin.close()

    async def measure(self) -> dict[str, int]:
        every = [tp for tps in self.partitions.values() for tp in tps]
        ends = await self.consumer.end_offsets(every)
        beginnings = await self.consumer.beginning_offsets(every)
        lags = {}
        for group, partitions in self.partitions.items():
            committed = await self.admin.list_consumer_group_offsets(group, partitions=partitions)
            lags[group] = sum(
                compute_lag(ends[tp], meta.offset if (meta := committed.get(tp)) is not None else None, beginnings[tp])
                for tp in partitions
            )
        return lags


async def read_registered(bootstrap: str, federation_id: str) -> tuple[dict[str, set[str]], int]:
    """donor.registered of the federation on the donors topic, read to its end: event ids per
    donor id, and how many records there were."""
    consumer = AIOKafkaConsumer(**admin_options(bootstrap), group_id=None, enable_auto_commit=False)
    await consumer.start()
    ids: dict[str, set[str]] = defaultdict(set)
    seen = 0
    try:
        partitions = [TopicPartition(DONORS.name, p) for p in sorted(consumer.partitions_for_topic(DONORS.name) or ())]
        if not partitions:
            partitions = [TopicPartition(DONORS.name, p) for p in range(DONORS.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        async with asyncio.timeout(60):
            while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
                for batch in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
                    for record in batch:
                        headers = dict(record.headers)
                        if headers.get("ce_type", b"").decode() != DONOR_REGISTERED:
                            continue
                        data = json.loads(record.value or b"{}")
                        if data.get("federation_id") != federation_id:
                            continue
                        seen += 1
                        ids[str(data["donor_id"])].add(headers["ce_id"].decode())
    finally:
        await consumer.stop()
    return dict(ids), seen


def kill_one_replica_mid_stream(
    stack: Stack,
    bootstrap: str,
    mailbox: Mailbox,
    *,
    events: int,
    federation_id: str = "fed-replicas",
    organisation_id: str = "org-replicas",
    send_per_second: float | None = None,
    kill_at: float = 0.3,
    deadline: float = 120.0,
    sample_every: float = 0.5,
    on_sample: Callable[[LagSample], None] | None = None,
    before_kill: Callable[[ServiceProcess], None] | None = None,
) -> Outcome:
    """Publish `events` people over Kafka (paced at `send_per_second`, or as fast as the producer
    goes); SIGKILL the last signups replica once `kill_at` of the people are donors and the last
    notifications replica once `kill_at` of them have their welcome mail; wait (up to `deadline`
    seconds) until every person is a donor with a mail and both groups' lag is 0, then count."""
    tag = uuid.uuid4().hex[:6]
    source = f"/replicas/{tag}"
    stack.register_publisher(source, federation_id, (organisation_id,), rate_per_second=1e6, burst=1_000_000)
    return asyncio.run(
        _kill_mid_stream(
            stack,
            bootstrap,
            mailbox,
            records(tag, source, events, federation_id, organisation_id),
            tag=tag,
            federation_id=federation_id,
            send_per_second=send_per_second,
            kill_at=kill_at,
            deadline=deadline,
            sample_every=sample_every,
            on_sample=on_sample,
            before_kill=before_kill,
        )
    )


async def _kill_mid_stream(
    stack: Stack,
    bootstrap: str,
    mailbox: Mailbox,
    stream: list[Record],
    *,
    tag: str,
    federation_id: str,
    send_per_second: float | None,
    kill_at: float,
    deadline: float,
    sample_every: float,
    on_sample: Callable[[LagSample], None] | None,
    before_kill: Callable[[ServiceProcess], None] | None,
) -> Outcome:
    events = len(stream)
    victims = {"signups": stack.replicas("signups")[-1], "notifications": stack.replicas("notifications")[-1]}
    assert all(v.replica > 0 for v in victims.values()), "two replicas of signups and notifications are needed"
    outcome = Outcome(people=events)
    conn = await asyncpg.connect(stack.database_url)
    lag = GroupLag(bootstrap, GROUPS)
    await lag.start()
    producer = AIOKafkaProducer(**admin_options(bootstrap), acks="all", linger_ms=5)
    await producer.start()
    began = time.monotonic()

    def now() -> float:
        return time.monotonic() - began

    reading = asyncio.Lock()  # one connection, polled by the kill and the drain checks alike

    async def donors() -> int:
        async with reading:
            count: int = await conn.fetchval(
                "SELECT count(*) FROM signups.donors WHERE federation_id = $1", federation_id
            )
        return count

    async def publish() -> None:
        for i, (key, value, headers) in enumerate(stream):
            if send_per_second is not None and (ahead := i / send_per_second - now()) > 0:
                await asyncio.sleep(ahead)  # pacing the stream, not waiting on an outcome
            await producer.send(INGEST.name, value, key=key, headers=headers)
        await producer.flush()
        outcome.published_after = now()

    async def mails() -> int:
        return len({to for to, _ in mailbox.deliveries() if tag in to})

    async def kill(group: str, progress: Callable[[], Awaitable[int]], target: int) -> None:
        victim = victims[group]

        async def far_enough() -> int | None:
            done = await progress()
            return done if done >= target else None

        done = await eventually_async(far_enough, timeout=deadline, interval=0.05, what=f"{victim.label}'s stream")
        if before_kill is not None:
            before_kill(victim)  # e.g. the benchmark reading the CPU the victim has used
        await asyncio.to_thread(victim.kill)
        outcome.killed[group] = now()
        outcome.victims[group] = victim.label
        outcome.progress_at_kill[group] = done

    async def sample_lag() -> None:
        while True:
            sample = LagSample(now(), await lag.measure())
            outcome.samples.append(sample)
            if on_sample is not None:
                on_sample(sample)
            await asyncio.sleep(sample_every)  # the sampling period, not a wait for an outcome

    async def drained() -> bool:
        # Lag 0 counts once both kills are done, the last record is sent and everyone is a donor
        # with a mail: a group is briefly at 0 while the outbox has yet to relay what it reads next.
        last = outcome.samples[-1] if outcome.samples else None
        if last is None or len(outcome.killed) < len(victims) or last.seconds < outcome.last_kill:
            return False
        caught_up = sending.done() and not any(last.lag.values())
        return caught_up and await donors() >= events and await mails() >= events

    target = max(1, int(events * kill_at))
    sending = asyncio.create_task(publish())
    sampling = asyncio.create_task(sample_lag())
    try:
        await asyncio.gather(
            kill("signups", donors, target),
            kill("notifications", mails, target),
        )
        await eventually_async(drained, timeout=deadline, interval=sample_every, what="the stream to drain")
        outcome.drained_after = now()
        await sending
    finally:
        sending.cancel()
        sampling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampling
        await producer.stop()
        await lag.stop()
    try:
        rows = await conn.fetch(
            "SELECT lower(email) AS email, count(*) AS n FROM signups.donors WHERE federation_id = $1 GROUP BY 1",
            federation_id,
        )
    finally:
        await conn.close()
    outcome.donors = len(rows)
    outcome.donor_rows_twice = sum(1 for r in rows if r["n"] > 1)
    outcome.registered_ids, outcome.registered_records = await read_registered(bootstrap, federation_id)
    message_ids: dict[str, set[str]] = defaultdict(set)
    received = [(to, mid) for to, mid in mailbox.deliveries() if tag in to]
    for to, message_id in received:
        message_ids[to].add(message_id)
    outcome.mail_ids, outcome.mails = dict(message_ids), len(received)
    return outcome


def describe(outcome: Outcome) -> str:
    kills = ", ".join(
        f"{outcome.victims[group]} at {at:.1f} s ({outcome.progress_at_kill[group]:,} done,"
        f" {group}'s lag 0 {outcome.lag_back_to_zero(group):.1f} s later)"
        for group, at in outcome.killed.items()
    )
    return (
        f"{outcome.people:,} people; all sent after {outcome.published_after:.1f} s; SIGKILLed {kills};"
        f" every mail in {outcome.mails_in_after_kill:.1f} s after the notifications kill;"
        f" drained after {outcome.drained_after:.1f} s\n"
        f"donors lost {outcome.donors_lost}, twice {outcome.donor_rows_twice}; donor.registered lost"
        f" {outcome.registered_lost}, second events {outcome.registered_twice}, records re-sent"
        f" {outcome.registered_resent}; welcome mails lost {outcome.mails_lost}, duplicate {outcome.duplicate_mails},"
        f" re-delivered with the same Message-ID {outcome.redelivered}"
    )


# -- the test ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Replicated:
    stack: Stack
    kafka: KafkaServer
    sink: SmtpSink


def replicated_stack(
    *,
    kafka: KafkaServer,
    database_url: str,
    smtp_port: int,
    log_dir: Path,
    replicas: Mapping[str, int],
    workers: Mapping[str, int] | None = None,
) -> Stack:
    """Signups and notifications only: what a person published over Kafka goes through."""
    return Stack(
        kafka_bootstrap=kafka.bootstrap,
        database_url=database_url,
        smtp_port=smtp_port,
        otlp_endpoint=None,
        ports={"signups": free_port(), "notifications": free_port()},
        log_dir=log_dir,
        replicas=replicas,
        workers=workers,
    )


@pytest.fixture(scope="module")
def replicated(postgres_server: PostgresServer, state_root: Path) -> Iterator[Replicated]:
    port, controller_port = free_ports(2)
    kafka = KafkaServer(state_root / "kafka-replicas", port=port, controller_port=controller_port)
    kafka.start()
    sink = SmtpSink()
    stack: Stack | None = None
    try:
        sink.start()
        stack = replicated_stack(
            kafka=kafka,
            database_url=postgres_server.create_database("pitchin_replicas"),
            smtp_port=sink.port,
            log_dir=state_root / "replicas",
            replicas={"signups": 2, "notifications": 2},
        )
        stack.start()
        yield Replicated(stack, kafka, sink)
    finally:
        if stack is not None:
            stack.stop()
        sink.stop()
        kafka.stop()


def test_a_replica_killed_mid_stream_loses_nothing_and_mails_no_one_twice(replicated: Replicated) -> None:
    stack = replicated.stack
    # About five seconds of stream: the kills land while records still arrive.
    outcome = kill_one_replica_mid_stream(
        stack, replicated.kafka.bootstrap, InProcessMailbox(replicated.sink), events=EVENTS, send_per_second=EVENTS / 5
    )
    print(describe(outcome))
    assert outcome.victims == {"signups": "signups-1", "notifications": "notifications-1"}
    assert not stack.replicas("signups")[1].running and stack["signups"].running
    assert all(0 < done < EVENTS for done in outcome.progress_at_kill.values()), "each kill was mid-stream"
    assert (outcome.donors_lost, outcome.donor_rows_twice) == (0, 0)
    assert (outcome.registered_lost, outcome.registered_twice) == (0, 0)
    assert (outcome.mails_lost, outcome.duplicate_mails) == (0, 0)
    assert outcome.slowest_lag_recovery <= LAG_TARGET_SECONDS, describe(outcome)
