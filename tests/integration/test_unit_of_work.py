"""The unit of work against the real PostgreSQL: tenant, outbox, inbox, savepoints, after-commit."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from typing import Any

import pytest

from pitchin_core.contracts.donors import DonorWithdrawnV1
from pitchin_core.errors import Conflict
from pitchin_core.uow import AMBIENT, BatchFailed, BatchTransaction, Tenant
from tests.integration.conftest import cloud_event

pytestmark = pytest.mark.integration
MIGRATIONS = files("pitchin_signups") / "migrations"


def _withdrawn(donor_id: str) -> DonorWithdrawnV1:
    return DonorWithdrawnV1(federation_id="fed-1", donor_id=donor_id, withdrawn_at=datetime.now(UTC))


async def test_the_tenant_is_set_for_the_transaction_only(open_service_database: Any) -> None:
    db = await open_service_database("signups", MIGRATIONS)
    async with db.uow(Tenant("fed-1", "org-1")) as tx:
        seen = await tx.conn.fetchrow(
            "SELECT current_setting('pitchin.federation_id') AS f, current_setting('pitchin.organisation_id') AS o"
        )
        assert (seen["f"], seen["o"]) == ("fed-1", "org-1")

    async def next_user() -> str | None:
        async with db.uow() as tx:
            value: str | None = await tx.conn.fetchval("SELECT current_setting('pitchin.federation_id', true)")
            return value

    # Every connection of the pool, used after the tenant's transaction: none still carries it.
    leftovers = await asyncio.gather(*(next_user() for _ in range(8)))
    assert all(value in (None, "") for value in leftovers)


async def test_events_and_the_inbox_commit_with_the_work(open_service_database: Any) -> None:
    db = await open_service_database("signups", MIGRATIONS)
    event = cloud_event(_withdrawn("d-1"))
    ran: list[str] = []
    async with db.uow(Tenant("fed-1")) as tx:
        assert await tx.first_delivery(event)
        await tx.emit(_withdrawn("d-1"), key="d-1", subject="donors/d-1")
        tx.after_commit(lambda: ran.append("after"))
        assert ran == []
    assert ran == ["after"]
    assert await db.types_emitted() == ["org.pitchin.donor.withdrawn.v1"]
    async with db.uow(Tenant("fed-1")) as tx:
        assert not await tx.first_delivery(event)


async def test_a_refused_use_case_rolls_back_only_its_savepoint(open_service_database: Any) -> None:
    db = await open_service_database("signups", MIGRATIONS)
    ran: list[str] = []
    async with db.uow(Tenant("fed-1")) as outer:
        await outer.emit(_withdrawn("kept"), key="kept")
        with pytest.raises(Conflict):
            async with outer() as inner:
                await inner.emit(_withdrawn("dropped"), key="dropped")
                inner.after_commit(lambda: ran.append("dropped"))
                raise Conflict("refused")
        async with outer() as inner:
            inner.after_commit(lambda: ran.append("kept"))
        with pytest.raises(RuntimeError):
            async with outer(Tenant("fed-2")):
                pass
    assert [e["key"] for e in await db.outbox()] == ["kept"]
    assert ran == ["kept"]


async def test_a_failed_transaction_leaves_nothing(open_service_database: Any) -> None:
    db = await open_service_database("signups", MIGRATIONS)
    event = cloud_event(_withdrawn("d-2"))
    with pytest.raises(Conflict):
        async with db.uow(Tenant("fed-1")) as tx:
            assert await tx.first_delivery(event)
            await tx.emit(_withdrawn("d-2"), key="d-2")
            raise Conflict("no")
    assert await db.outbox() == []
    async with db.uow(Tenant("fed-1")) as tx:
        assert await tx.first_delivery(event)


async def _use_case(db: Any, donor_id: str, *, refuse: bool = False, ran: list[str] | None = None) -> None:
    async with db.uow(Tenant("fed-1")) as tx:
        await tx.emit(_withdrawn(donor_id), key=donor_id)
        if ran is not None:
            tx.after_commit(lambda: ran.append(donor_id))
        if refuse:
            raise Conflict("refused after writing")


async def test_a_batch_shares_one_transaction_and_commits_once(open_service_database: Any) -> None:
    db = await open_service_database("signups", MIGRATIONS)
    ran: list[str] = []
    batch = BatchTransaction()
    token = AMBIENT.set(batch)
    try:
        for n in range(3):
            await _use_case(db, f"don_{n}", ran=ran)
            assert ran == []  # nothing runs before the batch commits...
        # ...nor is anything visible to anyone else: it is one open transaction.
        assert await db.pool.fetchval("SELECT count(*) FROM outbox") == 0
        backend = await batch.tx.conn.fetchval("SELECT pg_backend_pid()") if batch.tx else None
    finally:
        AMBIENT.reset(token)
    batch.check()
    await batch.commit()
    assert ran == ["don_0", "don_1", "don_2"] and backend is not None
    assert await db.pool.fetchval("SELECT count(*) FROM outbox") == 3


async def test_a_use_case_failing_inside_a_batch_stops_its_commit(open_service_database: Any) -> None:
    db = await open_service_database("signups", MIGRATIONS)
    batch = BatchTransaction()
    token = AMBIENT.set(batch)
    try:
        await _use_case(db, "don_ok")
        with pytest.raises(Conflict):  # a caller that catches the refusal cannot save the batch
            await _use_case(db, "don_refused", refuse=True)
        with pytest.raises(BatchFailed):
            batch.check()
    finally:
        AMBIENT.reset(token)
    await batch.abandon()
    assert await db.pool.fetchval("SELECT count(*) FROM outbox") == 0


@pytest.mark.parametrize("service", ["signups", "matching", "notifications", "scheduling"])
async def test_no_write_transaction_sends_notify_once_migrated(open_service_database: Any, service: str) -> None:
    """The first migrations created NOTIFY triggers; later ones drop them (a transaction that
    notified takes a cluster-wide lock through its commit flush). None may survive."""
    db = await open_service_database(service, files(f"pitchin_{service}") / "migrations")
    notifying = await db.pool.fetch(
        "SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_proc p ON p.oid = t.tgfoid"
        " WHERE n.nspname = $1 AND NOT t.tgisinternal AND p.prosrc ILIKE '%pg_notify%'",
        db.schema,
    )
    assert [r["tgname"] for r in notifying] == []
    functions = await db.pool.fetch(
        "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE n.nspname = $1 AND p.prosrc ILIKE '%pg_notify%'",
        db.schema,
    )
    assert [r["proname"] for r in functions] == []


async def test_idempotency_answers_expire_after_a_day(open_service_database: Any) -> None:
    from pitchin_core.idempotency import KEEP_ANSWERS, ExpiredAnswers

    db = await open_service_database("signups", MIGRATIONS)
    await db.pool.executemany(
        "INSERT INTO idempotency_keys (caller_key_hash, idempotency_key, fingerprint, created_at)"
        " VALUES ('caller', $1, 'f', now() - $2::interval)",
        [("old-1", KEEP_ANSWERS * 2), ("old-2", KEEP_ANSWERS + timedelta(minutes=1)), ("fresh", timedelta(hours=23))],
    )
    janitor = ExpiredAnswers(db.pool, batch_size=1)
    assert [await janitor.work_once() for _ in range(3)] == [1, 1, 0]  # a batch at a time, oldest first
    kept = await db.pool.fetch("SELECT idempotency_key FROM idempotency_keys")
    assert [r["idempotency_key"] for r in kept] == ["fresh"]
