"""SIGKILL signups with sign-ups and bookings in flight: every request retried with its own
Idempotency-Key ends in one 201 (or the replay of it), and each person is signed up and
booked exactly once (issue 16).

Before the key was claimed inside the request's transaction, a request killed midway left
its key "in progress" for ever and its retries got 409 until the client gave up. So the
kill here is made to land inside open transactions, not only between them: just before
it, the test holds a lock that one sign-up (its key already claimed) and one booking batch
wait on in PostgreSQL, and it releases the lock once signups is dead.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from pitchin_core.auth import hash_key
from pitchin_testing.stack import Stack
from tests.e2e.conftest import Tenant
from tests.e2e.helpers import bearer, create_event, eventually_async, fetch, wait_until_signups_knows
from tests.unit.factories import donor_signup

pytestmark = pytest.mark.e2e

SIGN_UPS = 150
BOOKINGS = 150
CAPACITY = 40
# Requests in flight at once, as a client's connection pool would have them.
CONCURRENCY = 16
# The lock is taken once this many requests were answered, so most of the stream is still to come.
HOLD_AFTER_ANSWERS = 60
# Between a connection error and the retry: paces the retries while signups is down.
RETRY_PAUSE = 0.1
# Each request is retried until this long after the stream began, then given up on.
GIVE_UP_AFTER = 45.0
RESTART_WITHIN = 40.0


@dataclass
class Failure:
    """An attempt that got no HTTP answer (connection refused, reset, closed mid-answer)."""

    error: str
    started: float
    sent: bool  # the whole request had left for signups: it may have done the work, even committed it


@dataclass
class Request:
    """One POST as the client sends it again and again: the same key and the same bytes."""

    kind: str  # "sign-up" or "booking"
    path: str
    api_key: str
    idempotency_key: str
    email: str
    body: bytes
    failures: list[Failure] = field(default_factory=list)
    answer: httpx.Response | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {**bearer(self.api_key), "Idempotency-Key": self.idempotency_key, "Content-Type": "application/json"}

    @property
    def replayed(self) -> bool:
        return self.answer is not None and self.answer.headers.get("idempotent-replayed") == "true"

    def cut_off_by(self, kill: Kill) -> bool:
        """Signups had this request whole when it was killed, and never answered that attempt."""
        return any(f.sent and f.started <= kill.at for f in self.failures)


@dataclass
class Kill:
    """What the kill cut off, and when signups served again."""

    at: float = 0.0
    sent_unanswered: frozenset[int] = frozenset()
    held_sign_up: int | None = None  # its transaction waited on the test's lock when signups died
    still_waiting: dict[str, int] = field(default_factory=dict)  # on the test's lock, just after the kill
    ready_at: float = 0.0


def _requests(tenant: Tenant, event_id: str, run: str) -> list[Request]:
    """Sign-ups and bookings interleaved, as a stream from many people would arrive."""
    sign_ups = [
        Request(
            "sign-up",
            "/v1/donors",
            tenant.organiser_key,
            f"signup-{run}-{n}",
            f"donor-{run}-{n}@kill.example",
            json.dumps(donor_signup(name=f"Donor {n}", email=f"donor-{run}-{n}@kill.example")).encode(),
        )
        for n in range(SIGN_UPS)
    ]
    bookings = [
        Request(
            "booking",
            f"/v1/events/{event_id}/bookings",
            tenant.staff_key,
            f"booking-{run}-{n}",
            f"guest-{run}-{n}@kill.example",
            json.dumps({"name": f"Guest {n}", "email": f"guest-{run}-{n}@kill.example"}).encode(),
        )
        for n in range(BOOKINGS)
    ]
    return [r for pair in zip(sign_ups, bookings, strict=True) for r in pair]


async def _stream_with_a_kill(stack: Stack, federation_id: str, event_id: str, requests: list[Request]) -> Kill:
    """Send every request (retrying on connection errors) while signups is SIGKILLed and restarted."""
    service = stack["signups"]
    kill = Kill()
    started: set[int] = set()
    sent_unanswered: set[int] = set()  # the whole request written to signups, no answer yet
    answered = 0
    enough_answered = asyncio.Event()
    slots = asyncio.Semaphore(CONCURRENCY)
    give_up_at = time.monotonic() + GIVE_UP_AFTER

    async def attempt(client: httpx.AsyncClient, number: int, request: Request) -> None:
        sent = False

        async def trace(event: str, info: dict[str, Any]) -> None:
            # httpcore's trace extension: this event means the body left for signups.
            nonlocal sent
            if event == "http11.send_request_body.complete":
                sent = True
                sent_unanswered.add(number)

        started.add(number)
        began = time.monotonic()
        try:
            request.answer = await client.post(
                request.path, content=request.body, headers=request.headers, extensions={"trace": trace}
            )
        except httpx.TransportError as exc:
            request.failures.append(Failure(type(exc).__name__, began, sent))
        finally:
            sent_unanswered.discard(number)

    async def send(client: httpx.AsyncClient, number: int, request: Request) -> None:
        nonlocal answered
        async with slots:
            while True:
                await attempt(client, number, request)
                if request.answer is not None or time.monotonic() >= give_up_at:
                    break
                await asyncio.sleep(RETRY_PAUSE)
            answered += 1
            if answered >= HOLD_AFTER_ANSWERS:
                enough_answered.set()

    async def kill_inside_held_transactions(conn: asyncpg.Connection, looking: asyncpg.Connection) -> None:
        """Lock the event row (the next booking batch waits on it) and take the email of the
        next sign-up (its insert waits on it, its key already claimed); once both wait in
        PostgreSQL, kill signups; then roll back: the held transactions go on, find their
        client gone, and roll back."""
        await enough_answered.wait()
        holding = conn.transaction()
        await holding.start()
        try:
            await conn.execute("SELECT 1 FROM signups.known_events WHERE event_id = $1 FOR UPDATE", event_id)
            for number, request in enumerate(requests):
                if (
                    request.kind == "sign-up"
                    and number not in started
                    and await _take_email(conn, federation_id, request)
                ):
                    kill.held_sign_up = number
                    break

            async def both_waiting() -> bool:
                waiting = await _waiting_on(looking, conn.get_server_pid())
                return waiting["sign_ups"] >= 1 and waiting["batches"] >= 1

            await eventually_async(both_waiting, timeout=10, interval=0.02, what="a sign-up and a batch to wait")
            kill.sent_unanswered = frozenset(sent_unanswered)
            kill.at = time.monotonic()
            # From this (the main) thread: a service gets SIGTERM when the thread that started
            # it ends (PR_SET_PDEATHSIG), so one started from a worker thread would die again.
            service.kill()
            service.start()
            kill.still_waiting = await _waiting_on(looking, conn.get_server_pid())  # transactions of a dead process
        finally:
            await holding.rollback()

    async def hold_and_restart() -> None:
        conn, looking = await asyncpg.connect(stack.database_url), await asyncpg.connect(stack.database_url)
        try:
            await kill_inside_held_transactions(conn, looking)
        finally:
            await conn.close()
            await looking.close()
        await asyncio.to_thread(service.wait_ready, RESTART_WITHIN)
        kill.ready_at = time.monotonic()

    restart = asyncio.create_task(hold_and_restart())
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=service.url, timeout=20, limits=limits) as client:
        await asyncio.gather(*(send(client, n, r) for n, r in enumerate(requests)))
    if not kill.at:
        if restart.done() and restart.exception() is not None:
            raise AssertionError("holding the transactions for the kill failed") from restart.exception()
        restart.cancel()
        raise AssertionError("the stream ended before the kill")
    await restart  # the retries of the last requests ended once it served again
    return kill


async def _waiting_on(looking: asyncpg.Connection, holder: int) -> dict[str, int]:
    """Signups' statements waiting for the lock the backend `holder` holds: donor inserts and
    booking batches. Read outside the holding transaction: a transaction sees pg_stat_activity
    as it was at its first look."""
    row = await looking.fetchrow(
        "SELECT count(*) FILTER (WHERE query LIKE '%INSERT INTO donors%') AS sign_ups,"
        " count(*) FILTER (WHERE query LIKE '%book_many(%') AS batches"
        " FROM pg_stat_activity WHERE $1 = ANY (pg_blocking_pids(pid))",
        holder,
    )
    assert row is not None
    return {"sign_ups": row["sign_ups"], "batches": row["batches"]}


async def _take_email(conn: asyncpg.Connection, federation_id: str, request: Request) -> bool:
    """An uncommitted donor with the request's email: the sign-up's insert waits for this transaction."""
    taken: bool | None = await conn.fetchval(
        "INSERT INTO signups.donors (donor_id, federation_id, name, email, profile, registered_at)"
        " VALUES ($1, $2, 'Held', $3, '{}', $4) ON CONFLICT DO NOTHING RETURNING true",
        f"held-{uuid.uuid4().hex[:8]}",
        federation_id,
        request.email,
        datetime.now(UTC),
    )
    return bool(taken)


async def _send_each_again(url: str, requests: list[Request]) -> list[httpx.Response]:
    """Every request once more with its key and body: each must be a replay of its answer."""
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        slots = asyncio.Semaphore(CONCURRENCY)

        async def again(request: Request) -> httpx.Response:
            async with slots:
                return await client.post(request.path, content=request.body, headers=request.headers)

        return await asyncio.gather(*(again(r) for r in requests))


def _describe(request: Request) -> str:
    if request.answer is None:
        return f"{request.kind} {request.email}: no answer ({[f.error for f in request.failures]})"
    return f"{request.kind} {request.email}: {request.answer.status_code} {request.answer.text[:200]}"


def test_every_retried_idempotency_key_succeeds_after_signups_is_killed_mid_stream(
    stack: Stack, tenant: Tenant
) -> None:
    began = time.monotonic()
    answer = create_event(stack, tenant.organiser_key, starts_in=timedelta(days=20), capacity=CAPACITY)
    event_id: str = answer.json()["event_id"]
    wait_until_signups_knows(stack, tenant.organiser_key, event_id)
    requests = _requests(tenant, event_id, uuid.uuid4().hex[:8])

    kill = asyncio.run(_stream_with_a_kill(stack, tenant.federation_id, event_id, requests))

    # The kill really hit the stream, inside open transactions: the held sign-up (its key
    # claimed) and a booking batch waited on the test's lock, and their answers never came.
    assert kill.held_sign_up is not None and requests[kill.held_sign_up].cut_off_by(kill)
    assert kill.still_waiting["sign_ups"] >= 1 and kill.still_waiting["batches"] >= 1, kill.still_waiting
    cut_off = [r for r in requests if r.cut_off_by(kill)]
    assert any(r.kind == "booking" for r in cut_off), "no booking lost its answer to the kill"
    retried = [r for r in requests if r.failures]
    assert {r.kind for r in retried} == {"sign-up", "booking"}, "both kinds must meet the kill"

    # Every request ends in its 201, first-hand or replayed: no 409 "still being processed", no 5xx.
    finals = Counter(r.answer.status_code if r.answer else None for r in requests)
    not_created = [_describe(r) for r in requests if r.answer is None or r.answer.status_code != 201]
    assert not not_created, f"final answers {dict(finals)}; not created:\n" + "\n".join(not_created[:20])
    answers = {r.idempotency_key: r.answer for r in requests if r.answer is not None}
    body_of = {key: answer.json() for key, answer in answers.items()}
    # What the killed process had started and not committed was done again, not replayed.
    assert not requests[kill.held_sign_up].replayed

    # Sent once more, each key replays its answer, byte for byte, with the same Location.
    again = asyncio.run(_send_each_again(stack["signups"].url, requests))
    for request, replay in zip(requests, again, strict=True):
        first = answers[request.idempotency_key]
        assert replay.status_code == 201, _describe(request) + f"; again: {replay.status_code} {replay.text[:200]}"
        assert replay.headers.get("idempotent-replayed") == "true", f"{request.email} was not replayed"
        assert replay.content == first.content, f"{request.email}: {first.text!r} then {replay.text!r}"
        assert replay.headers.get("location") == first.headers.get("location")

    # Each person signed up exactly once, as the donor their answer names.
    sign_ups = [r for r in requests if r.kind == "sign-up"]
    donors = fetch(
        stack,
        "SELECT lower(email) AS email, count(*) AS n, min(donor_id) AS donor_id FROM signups.donors"
        " WHERE federation_id = $1 GROUP BY lower(email)",
        tenant.federation_id,
    )
    assert Counter({d["email"]: d["n"] for d in donors}) == Counter(r.email for r in sign_ups)
    donor_of = {d["email"]: d["donor_id"] for d in donors}
    assert all(body_of[r.idempotency_key]["donor_id"] == donor_of[r.email] for r in sign_ups)

    # Each booking exactly once, as the booking its answer names; the places and the waitlist
    # stay exact across the batch the kill rolled back.
    bookings = [r for r in requests if r.kind == "booking"]
    booked = fetch(
        stack,
        "SELECT email, count(*) AS n, min(booking_id) AS booking_id, min(status) AS status FROM signups.bookings"
        " WHERE event_id = $1 GROUP BY email",
        event_id,
    )
    assert Counter({b["email"]: b["n"] for b in booked}) == Counter(r.email for r in bookings)
    booking_of = {b["email"]: b["booking_id"] for b in booked}
    assert all(body_of[r.idempotency_key]["booking_id"] == booking_of[r.email] for r in bookings)
    assert Counter(b["status"] for b in booked) == {"confirmed": CAPACITY, "waitlisted": BOOKINGS - CAPACITY}
    positions = sorted(body_of[r.idempotency_key].get("position") or 0 for r in bookings)
    assert positions == [0] * CAPACITY + list(range(1, BOOKINGS - CAPACITY + 1)), "confirmed, then 1..N waitlisted"

    # Nothing was left "in progress": every key holds its stored 201.
    keys = fetch(
        stack,
        "SELECT idempotency_key, status_code FROM signups.idempotency_keys"
        " WHERE caller_key_hash = ANY($1) AND idempotency_key = ANY($2)",
        [hash_key(tenant.organiser_key), hash_key(tenant.staff_key)],
        [r.idempotency_key for r in requests],
    )
    assert Counter(k["status_code"] for k in keys) == {201: len(requests)}

    errors = Counter(f.error for r in requests for f in r.failures)
    print(
        f"\nkilled with {len(kill.sent_unanswered)} requests sent and unanswered, {kill.still_waiting} of signups'"
        f" statements waiting on the test's lock; serving again after {kill.ready_at - kill.at:.1f} s;"
        f" {len(cut_off)} cut off ({dict(Counter(r.kind for r in cut_off))}),"
        f" {sum(r.replayed for r in cut_off)} of them answered by a replay (committed before the kill);"
        f" {len(retried)} retried in all, errors {dict(errors)}; whole test {time.monotonic() - began:.1f} s"
    )
