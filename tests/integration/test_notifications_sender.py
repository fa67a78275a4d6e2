"""Notifications' sender on its own: the channel workers against the real PostgreSQL, with an
adapter in the place of SMTP that records what it was given (nothing leaves the machine).

Batches until nothing is due, a NOTIFY wakes an idle sender at once, retries then a dead
letter, and a stop lets the batch in hand commit (a cancelled batch would send it again).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from importlib.resources import files
from typing import Any

import pytest

from pitchin_core.links import link_reference, read_donor_link
from pitchin_core.telemetry import Metrics
from pitchin_notifications import storage
from pitchin_notifications.channels import Outcome
from pitchin_notifications.domain.messages import link_holder
from pitchin_notifications.sender import ChannelPolicy, ChannelSender, NotificationJobs, Sender
from pitchin_notifications.service.messages import Notifications, Policy
from pitchin_notifications.templates import Renderer
from tests.e2e.helpers import eventually_async
from tests.integration.conftest import ServiceDatabase

pytestmark = pytest.mark.integration
MIGRATIONS = files("pitchin_notifications") / "migrations"
SECRET = "sender-test-donor-link-secret-of-40-chars"


class RecordingEmail:
    """An email channel that answers `outcome` and can be held mid-send."""

    name = "email"

    def __init__(self, outcome: Outcome | None = None) -> None:
        self.outcome = outcome or Outcome()
        self.sent: list[uuid.UUID] = []
        self.texts: dict[uuid.UUID, str] = {}  # the body each delivery was sent with
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()
        self.closed = False

    async def send(self, row: Any) -> Outcome:
        self.entered.set()
        await self.release.wait()
        self.sent.append(row["delivery_id"])
        self.texts[row["delivery_id"]] = row["body_text"]
        return self.outcome

    async def close(self) -> None:
        self.closed = True


async def _stage(db: ServiceDatabase, count: int) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(count)]
    async with db.uow() as tx:
        for n, delivery_id in enumerate(ids):
            await storage.stage_delivery(
                tx.conn,
                delivery_id=delivery_id,
                idempotency_key=f"test:{delivery_id}",
                federation_id="fed-wm",
                organisation_id="org-dudley-cvs",
                event_id=f"evt-{n}",
                event_type="org.pitchin.event.reminder-due.v1",
                channel="email",
                recipient=f"person{n}@example.org",
                subject="Reminder",
                body_text="See you tomorrow.",
                body_html=None,
                traceparent=None,
            )
    return ids


def _sender(
    db: ServiceDatabase, adapter: RecordingEmail, *, batch: int = 100, attempts: int = 6, secret: str = SECRET
) -> Sender:
    return Sender(
        db.pool,
        Metrics("notifications-test"),
        schema=db.schema,
        adapters={"email": adapter},
        policies={"email": ChannelPolicy(max_attempts=attempts, concurrency=10, batch_size=batch)},
        retry_base=0.05,
        retry_cap=0.1,
        donor_link_secret=secret,
    )


async def _statuses(db: ServiceDatabase) -> Counter[str]:
    return Counter(
        {
            r["status"]: r["n"]
            for r in await db.pool.fetch("SELECT status, count(*) AS n FROM deliveries GROUP BY status")
        }
    )


async def test_every_due_delivery_is_sent_once_in_batches(open_service_database: Any) -> None:
    db = await open_service_database("notifications", MIGRATIONS)
    ids = await _stage(db, 250)
    adapter = RecordingEmail()
    sender = _sender(db, adapter, batch=100)
    await sender.start()
    try:

        async def all_sent() -> bool:
            return (await _statuses(db)) == Counter({"sent": 250})

        await eventually_async(all_sent, timeout=10, interval=0.02, what="every delivery sent")
    finally:
        await sender.stop()
    assert sorted(adapter.sent) == sorted(ids)  # each once
    assert await db.pool.fetchval("SELECT bool_and(attempts = 1 AND sent_at IS NOT NULL) FROM deliveries")
    assert adapter.closed


async def test_the_mail_is_sent_with_signed_links_and_the_row_keeps_references(open_service_database: Any) -> None:
    """Issue 17: the delivery log holds a reference; the sender signs the link as it sends."""
    db = await open_service_database("notifications", MIGRATIONS)
    page = "/me/" + link_reference(SECRET, "d1", "don_ana", link_holder("don_ana", "ana@example.org"))
    stored = f"Your page: https://pitchin.example{page}"
    delivery_id = uuid.uuid4()
    async with db.uow() as tx:
        await storage.stage_delivery(
            tx.conn,
            delivery_id=delivery_id,
            idempotency_key="test:links",
            federation_id="fed-wm",
            organisation_id=None,
            event_id="evt-links",
            event_type="org.pitchin.donor.registered.v1",
            channel="email",
            recipient="ana@example.org",
            subject="Welcome",
            body_text=stored,
            body_html=None,
            traceparent=None,
            person_ref="don_ana",
        )
    adapter = RecordingEmail()
    sender = _sender(db, adapter)
    await sender.start()
    try:

        async def sent() -> bool:
            return (await _statuses(db)) == Counter({"sent": 1})

        await eventually_async(sent, timeout=10, interval=0.02, what="the welcome sent")
    finally:
        await sender.stop()
    token = adapter.texts[delivery_id].rsplit("/me/", 1)[1]
    assert read_donor_link(SECRET, token, time.time()).donor_id == "don_ana"
    assert await db.pool.fetchval("SELECT body_text FROM deliveries WHERE delivery_id = $1", delivery_id) == stored


async def _true(value: bool) -> bool:
    return value


async def test_a_committed_delivery_wakes_an_idle_sender_at_once(open_service_database: Any) -> None:
    db = await open_service_database("notifications", MIGRATIONS)
    adapter = RecordingEmail()
    sender = _sender(db, adapter)
    db.uow.on_committed_writes(sender.wake)  # as notifications' main wires it
    await sender.start()
    try:
        # Idle: each worker has looked once, found nothing due, and sleeps up to 5 s unless woken.
        await eventually_async(
            lambda: _true(all(w.passes >= 1 for w in sender.workers)), timeout=5, interval=0.01, what="idle"
        )
        [delivery_id] = await _stage(db, 1)

        async def sent() -> bool:
            return adapter.sent == [delivery_id]

        woken = time.monotonic()
        await eventually_async(sent, timeout=5, interval=0.02, what="the new delivery sent")
        assert time.monotonic() - woken < 2.0
    finally:
        await sender.stop()


async def test_a_failing_channel_is_retried_then_dead_lettered(open_service_database: Any) -> None:
    db = await open_service_database("notifications", MIGRATIONS)
    [delivery_id] = await _stage(db, 1)
    adapter = RecordingEmail(Outcome(error="451 try again later"))
    sender = _sender(db, adapter, attempts=3)
    await sender.start()
    try:

        async def dead() -> bool:
            return (await _statuses(db)) == Counter({"dead": 1})

        await eventually_async(dead, timeout=10, interval=0.02, what="a dead letter")
    finally:
        await sender.stop()
    assert adapter.sent == [delivery_id] * 3
    letter = await db.pool.fetchrow("SELECT attempts, reason FROM dead_letters WHERE delivery_id = $1", delivery_id)
    assert letter is not None and (letter["attempts"], letter["reason"]) == (3, "451 try again later")


async def test_a_stop_lets_the_batch_in_hand_commit_and_starts_no_other(open_service_database: Any) -> None:
    db = await open_service_database("notifications", MIGRATIONS)
    ids = await _stage(db, 3)
    adapter = RecordingEmail()
    adapter.release.clear()  # the SMTP server is slow to answer
    sender = _sender(db, adapter)
    await sender.start()
    await asyncio.wait_for(adapter.entered.wait(), timeout=5)
    stopping = asyncio.create_task(sender.stop())
    finished, _ = await asyncio.wait({stopping}, timeout=0.2)
    assert not finished  # waiting for the batch, not cancelling it
    await _stage(db, 2)  # committed during the stop: left for the next start
    adapter.release.set()
    await asyncio.wait_for(stopping, timeout=5)
    assert sorted(adapter.sent) == sorted(ids)
    assert await _statuses(db) == Counter({"sent": 3, "pending": 2})


class AnsweringEmail(RecordingEmail):
    """Answers each recipient as told: accepted, try again later, or refused for good."""

    def __init__(self, answers: dict[str, Outcome]) -> None:
        super().__init__()
        self.answers = answers

    async def send(self, row: Any) -> Outcome:
        self.sent.append(row["delivery_id"])
        return self.answers[row["recipient"]]


async def test_one_batch_records_its_sent_retried_and_dead_rows_each_as_they_went(
    open_service_database: Any,
) -> None:
    db = await open_service_database("notifications", MIGRATIONS)
    ids = await _stage(db, 6)
    # person5 has been tried twice before: with 3 attempts allowed, this failure is its last.
    await db.pool.execute("UPDATE deliveries SET attempts = 2 WHERE recipient = 'person5@example.org'")
    ok, later, refused = (
        Outcome(provider_ref="250 ok"),
        Outcome(error="451 try later"),
        Outcome(error="550 no such user", permanent=True),
    )
    answers = {f"person{n}@example.org": a for n, a in enumerate([ok, ok, later, later, refused, later])}
    adapter = AnsweringEmail(answers)
    sender = _sender(db, adapter, attempts=3)
    [worker] = sender.workers
    assert isinstance(worker, ChannelSender)
    before = await db.pool.fetchval("SELECT now()")

    assert await worker.send_due() == 6  # one batch, nothing started in the background
    assert sorted(adapter.sent) == sorted(ids)
    rows = {
        r["recipient"]: r
        for r in await db.pool.fetch(
            "SELECT recipient, status, attempts, last_error, provider_ref, sent_at, next_attempt_at FROM deliveries"
        )
    }
    for n in (0, 1):
        row = rows[f"person{n}@example.org"]
        assert (row["status"], row["attempts"], row["provider_ref"], row["last_error"]) == ("sent", 1, "250 ok", None)
        assert row["sent_at"] is not None
    for n in (2, 3):
        row = rows[f"person{n}@example.org"]
        assert (row["status"], row["attempts"], row["last_error"], row["sent_at"]) == (
            "pending",
            1,
            "451 try later",
            None,
        )
        assert row["next_attempt_at"] > before  # backed off, not due again at once
    refused_row, exhausted_row = rows["person4@example.org"], rows["person5@example.org"]
    assert (refused_row["status"], refused_row["attempts"]) == ("dead", 1)
    assert (exhausted_row["status"], exhausted_row["attempts"]) == ("dead", 3)
    letters = {
        r["recipient"]: (r["attempts"], r["reason"])
        for r in await db.pool.fetch("SELECT recipient, attempts, reason FROM dead_letters")
    }
    assert letters == {"person4@example.org": (1, "550 no such user"), "person5@example.org": (3, "451 try later")}
    assert await worker.send_due() == 0  # the retried rows wait for their time; the others are finished


async def test_jobs_that_found_nothing_do_not_wake_themselves_into_a_busy_loop(open_service_database: Any) -> None:
    db = await open_service_database("notifications", MIGRATIONS)
    policy = Policy(
        public_base_url="http://127.0.0.1:8000", unsubscribe_key=b"k" * 32, quiet_hours=None, digest_seconds=60
    )
    notifications = Notifications(Renderer(), policy)
    sender = Sender(
        db.pool,
        Metrics("notifications-test"),
        schema=db.schema,
        adapters={"email": RecordingEmail()},
        policies={"email": ChannelPolicy(max_attempts=6, concurrency=10)},
        jobs=(lambda: notifications.expand_next_job(db.uow), lambda: notifications.make_digests(db.uow)),
    )
    db.uow.on_committed_writes(sender.wake)  # as notifications' main wires it
    jobs = sender.workers[-1]
    assert isinstance(jobs, NotificationJobs)
    # Each job commits a transaction that wrote nothing, and every commit wakes the workers: the
    # idle service used to go round again at once, for ever (a core of Python, most of one of PostgreSQL).
    assert await jobs.work_once() == 0
    assert not jobs._wake.is_set()
