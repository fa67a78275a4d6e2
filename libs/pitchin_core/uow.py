"""The unit of work: one transaction, its tenant, its outbox events, its inbox record, and
what must happen only once it committed.

Every use case in every service opens its transaction here::

    async with uow(tenant) as tx:
        if not await tx.first_delivery(event):   # a consumer's redelivery: nothing to do
            return
        await storage.save(tx.conn, ...)
        await tx.emit(SomethingHappenedV1(...), key=aggregate_id, subject=f"things/{aggregate_id}")
        tx.after_commit(lambda: index.upsert(...))

A use case takes `Transactions`: either the service's `UnitOfWork` (a new transaction on a
pooled connection) or an open `Transaction`, in which it runs as a savepoint. Ingest uses
the second form so a publisher's event, its effects, their outbox rows and the idempotency
record commit together, and a refusal rolls back only the use case's part.

This is the one place that tells PostgreSQL whose data a transaction touches
(`set_config(..., true)` is `SET LOCAL`: it ends with the transaction, so nothing leaks to
the next user of a pooled connection).
"""

from __future__ import annotations

import inspect
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg

from pitchin_core.contracts.cloudevents import CloudEvent
from pitchin_core.contracts.common import EventData
from pitchin_core.db import Conn
from pitchin_core.inbox import first_delivery
from pitchin_core.outbox import StagedEvent, add_to_outbox, stage_event

log = logging.getLogger(__name__)

AfterCommit = Callable[[], Awaitable[None] | None]


@dataclass(frozen=True)
class Tenant:
    """Whose data a transaction acts on: a federation, and within it one organisation or all."""

    federation_id: str
    organisation_id: str | None = None


# A tenant's transaction becomes the service's tenant role (`pitchin.tenant_role`, set on the
# login role: `pitchin_core.db.bootstrap_roles_sql`), which row-level security binds to the
# federation set here, whatever a later WHERE says. Everything in one statement, the
# transaction's first: no extra round trip. Without `pitchin.tenant_role` (a superuser's test
# pool) 'none' keeps the login role. All three are transaction-local (`SET LOCAL`).
_BECOME_TENANT = "set_config('role', coalesce(nullif(current_setting('pitchin.tenant_role', true), ''), 'none'), true)"
SET_TENANT = (
    f"SELECT {_BECOME_TENANT}, set_config('pitchin.federation_id', $1, true),"
    " set_config('pitchin.organisation_id', $2, true)"
)
# Back to the login role, which sees every tenant of its schema (a tenant-less use case in a
# transaction that acted for a tenant: a consumer's batch, an ingest round).
ACROSS_TENANTS = (
    "SELECT set_config('role', 'none', true), set_config('pitchin.federation_id', '', true),"
    " set_config('pitchin.organisation_id', '', true)"
)


@dataclass
class Transaction:
    """An open transaction (or savepoint). Use it only inside its `async with` block."""

    conn: Conn
    source: str
    consumer: str
    tenant: Tenant | None = None
    emitted: list[uuid.UUID] = field(default_factory=list)
    after: list[AfterCommit] = field(default_factory=list)

    async def emit(self, data: EventData, *, key: str, subject: str | None = None) -> uuid.UUID:
        """Stage an event in this transaction's outbox; it is published once the transaction commits."""
        event_id = await add_to_outbox(self.conn, data, source=self.source, key=key, subject=subject)
        self.emitted.append(event_id)
        return event_id

    def stage(self, data: EventData, *, key: str, subject: str | None = None) -> StagedEvent:
        """An outbox row for a statement that writes it with the change itself (one round trip);
        call `emitted_by_sql` with its id once that statement wrote it."""
        return stage_event(data, source=self.source, key=key, subject=subject)

    def emitted_by_sql(self, *event_ids: uuid.UUID) -> None:
        """Outbox rows a statement or SQL function wrote: the relay is woken for them after commit."""
        self.emitted.extend(event_ids)

    async def first_delivery(self, event: CloudEvent) -> bool:
        """Record that this consumer applied the event; False when it already had (a redelivery)."""
        return await first_delivery(self.conn, self.consumer, event.id, event.type)

    def after_commit(self, callback: AfterCommit) -> None:
        """Run `callback` once the outermost transaction committed; never if it rolls back."""
        self.after.append(callback)

    def __call__(
        self, tenant: Tenant | None = None, *, readonly: bool = False
    ) -> AbstractAsyncContextManager[Transaction]:
        """A savepoint inside this transaction, offered where a use case expects a unit of work."""
        return self._savepoint(tenant)

    @asynccontextmanager
    async def _savepoint(self, tenant: Tenant | None) -> AsyncIterator[Transaction]:
        if tenant is not None and self.tenant is not None and tenant != self.tenant:
            # One transaction acts for one tenant: a nested use case cannot widen or switch it.
            raise RuntimeError(f"a transaction for {self.tenant} cannot open a savepoint for {tenant}")
        inner = Transaction(self.conn, self.source, self.consumer, self.tenant or tenant)
        switched = tenant is not None and self.tenant is None
        async with self.conn.transaction():
            if switched:
                assert tenant is not None
                await self.conn.execute(SET_TENANT, tenant.federation_id, tenant.organisation_id or "")
            yield inner
            if switched:
                # A released savepoint keeps its settings: the tenant-less transaction around it
                # goes on across tenants (a rolled-back one drops them by itself).
                await self.conn.execute(ACROSS_TENANTS)
        # The savepoint was released: its events and callbacks now belong to the enclosing transaction.
        self.emitted.extend(inner.emitted)
        self.after.extend(inner.after)


class SharedTransaction:
    """One transaction that several use cases join: an HTTP request's, or a consumed batch's.

    Set as `AMBIENT` around the work; `UnitOfWork` then opens it for the first use case and
    lets later ones join it instead of opening their own. Whoever set it commits it.
    """

    # A use case joining after the first gets a savepoint of its own (a request's use cases
    # may each be refused alone), or shares the transaction (a batch's: a failure redoes the
    # batch one record at a time, so no savepoint — hundreds per transaction would overflow
    # PostgreSQL's per-backend subtransaction cache).
    savepoint_per_use_case = True

    def __init__(self) -> None:
        self.tx: Transaction | None = None
        self._uow: UnitOfWork | None = None
        self._conn: Any = None
        self._db_tx: Any = None

    @property
    def in_use(self) -> bool:
        """Whether use cases should join this transaction (False: they open their own)."""
        return True

    @property
    def is_open(self) -> bool:
        return self.tx is not None

    async def open(self, uow: UnitOfWork, tenant: Tenant | None) -> Transaction:
        conn = await uow.pool.acquire()
        try:
            db_tx = conn.transaction()
            await db_tx.start()
            await self.opened(conn, db_tx, tenant)
        except BaseException:
            await uow.pool.release(conn)
            raise
        self._uow, self._conn, self._db_tx = uow, conn, db_tx
        self.tx = Transaction(conn, uow.source, uow.consumer, tenant)
        return self.tx

    async def opened(self, conn: Any, db_tx: Any, tenant: Tenant | None) -> None:
        """The transaction's first statement: the tenant, and for a request its Idempotency-Key claim."""
        if tenant is not None:
            await conn.execute(SET_TENANT, tenant.federation_id, tenant.organisation_id or "")

    async def commit(self) -> None:
        assert self._conn is not None and self.tx is not None and self._uow is not None
        try:
            await self.before_commit(self._conn)
            await self._db_tx.commit()
        except BaseException:
            await self.abandon()
            raise
        tx, uow = self.tx, self._uow
        await self._release()
        await uow.committed(tx)

    async def before_commit(self, conn: Any) -> None:
        """The last statement before the commit (a request stores its answer)."""

    async def abandon(self) -> None:
        """Roll back everything done in it (the request or batch failed)."""
        if self._db_tx is not None and self._conn is not None and not self._conn.is_closed():
            try:
                await self._db_tx.rollback()
            except Exception:  # the connection broke: PostgreSQL rolled back already
                log.warning("rolling back a shared transaction failed", exc_info=True)
        await self._release()

    async def _release(self) -> None:
        if self._conn is not None and self._uow is not None:
            await self._uow.pool.release(self._conn)
        self._conn = self._db_tx = self._uow = None
        self.tx = None


class RequestClaim(SharedTransaction):
    """An HTTP request's `Idempotency-Key`, claimed in the first transaction the request opens.

    The claim, the use case's work and the stored answer commit together (the middleware in
    `pitchin_core.idempotency` commits once the answer is known): a request killed midway
    leaves nothing behind, and its retry runs again. A use case that writes on a connection
    of its own (the booking batch) takes the claim over and stores the answer with its work.
    """

    def __init__(self, caller_key_hash: str, key: str, fingerprint: str) -> None:
        super().__init__()
        self.caller_key_hash = caller_key_hash
        self.key = key
        self.fingerprint = fingerprint
        self.taken_by_use_case = False
        # (status, body, content type, location) to store, or None: commit without keeping the key.
        self.answer: tuple[int, bytes, str, str | None] | None = None

    @property
    def in_use(self) -> bool:
        return not self.taken_by_use_case

    async def opened(self, conn: Any, db_tx: Any, tenant: Tenant | None) -> None:
        # A twin request still in flight holds this key's row: the INSERT waits for it and
        # then either claims (the twin rolled back) or finds its answer (a retry of a request
        # that committed). The tenant is set by the same statement: one round trip. (Its
        # subquery runs once, before the row is written; the setting lasts the transaction.)
        claimed = await conn.fetchval(
            "INSERT INTO idempotency_keys (caller_key_hash, idempotency_key, fingerprint)"
            " SELECT $1, $2, $3 FROM (SELECT set_config('pitchin.federation_id', $4, true),"
            " set_config('pitchin.organisation_id', $5, true),"
            f" CASE WHEN $4 = '' THEN NULL ELSE {_BECOME_TENANT} END) AS tenant"
            " ON CONFLICT DO NOTHING RETURNING true",
            self.caller_key_hash,
            self.key,
            self.fingerprint,
            tenant.federation_id if tenant else "",
            (tenant.organisation_id or "") if tenant else "",
        )
        if not claimed:
            row = await conn.fetchrow(
                "SELECT fingerprint, status_code, response_body, content_type, location FROM idempotency_keys"
                " WHERE caller_key_hash = $1 AND idempotency_key = $2",
                self.caller_key_hash,
                self.key,
            )
            await db_tx.rollback()
            raise AlreadyAnswered(row)

    async def before_commit(self, conn: Any) -> None:
        if self.answer is None:
            await conn.execute(
                "DELETE FROM idempotency_keys WHERE caller_key_hash = $1 AND idempotency_key = $2",
                self.caller_key_hash,
                self.key,
            )
        else:
            await conn.execute(
                "UPDATE idempotency_keys SET status_code = $3, response_body = $4, content_type = $5,"
                " location = $6 WHERE caller_key_hash = $1 AND idempotency_key = $2",
                self.caller_key_hash,
                self.key,
                *self.answer,
            )


class BatchTransaction(SharedTransaction):
    """The one transaction of a consumed batch: every record's use case writes in it, one commit.

    A use case that failed inside it (even one whose caller caught the error) leaves its
    partial writes in the transaction: `failed` is then set and the batch must not commit.
    """

    savepoint_per_use_case = False

    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    def check(self) -> None:
        """Raise if a use case failed inside the batch (its writes must not commit)."""
        if self.failed:
            raise BatchFailed("a use case failed inside the batch's transaction")


class BatchFailed(Exception):
    """A batch's transaction holds a failed use case's writes: redo the batch one by one."""


@asynccontextmanager
async def one_transaction() -> AsyncIterator[BatchTransaction]:
    """Every use case started in the block writes in one `BatchTransaction`, committed when
    the block ends (not if it raised, nor if a use case failed inside it: `BatchFailed`)."""
    batch = BatchTransaction()
    token = AMBIENT.set(batch)
    try:
        yield batch
        batch.check()
    except BaseException:
        await batch.abandon()
        raise
    finally:
        AMBIENT.reset(token)
    if batch.is_open:
        await batch.commit()


class AlreadyAnswered(Exception):
    """A twin request with the same Idempotency-Key committed first: answer with what it stored."""

    def __init__(self, stored: asyncpg.Record | None) -> None:
        super().__init__("this Idempotency-Key was answered by an earlier request")
        self.stored = stored


# The shared transaction of the request or batch being served, if any (set by the
# idempotency middleware and the batch consumers).
AMBIENT: ContextVar[SharedTransaction | None] = ContextVar("pitchin_shared_transaction", default=None)


class Transactions(Protocol):
    """What a use case takes: something that opens a transaction (`UnitOfWork`) or a savepoint (`Transaction`)."""

    def __call__(
        self, tenant: Tenant | None = None, *, readonly: bool = False
    ) -> AbstractAsyncContextManager[Transaction]: ...


class UnitOfWork:
    """One service's transactions: the pool, the CloudEvents `source` and the inbox consumer name."""

    def __init__(
        self,
        pool: asyncpg.Pool | Callable[[], asyncpg.Pool],
        *,
        source: str,
        consumer: str,
    ) -> None:
        # A runtime's pool exists only once it started: services pass a callable that reads it.
        self._pool = pool
        self.source = source
        self.consumer = consumer
        self._on_events: list[Callable[[], None]] = []
        self._on_writes: list[Callable[[], None]] = []

    @property
    def pool(self) -> asyncpg.Pool:
        pool = self._pool
        if isinstance(pool, asyncpg.Pool):
            return pool
        return pool()

    def on_committed_events(self, callback: Callable[[], None]) -> None:
        """Call `callback` after every commit that staged outbox events (wakes this process's relay)."""
        self._on_events.append(callback)

    def on_committed_writes(self, callback: Callable[[], None]) -> None:
        """Call `callback` after every commit of a transaction that was not read-only (wakes a sender).

        This replaces NOTIFY from triggers: a worker of this process starts at once, the
        workers of other processes find the work on their next poll.
        """
        self._on_writes.append(callback)

    def __call__(
        self, tenant: Tenant | None = None, *, readonly: bool = False
    ) -> AbstractAsyncContextManager[Transaction]:
        return self._transaction(tenant, readonly)

    @asynccontextmanager
    async def _transaction(self, tenant: Tenant | None, readonly: bool) -> AsyncIterator[Transaction]:
        shared = AMBIENT.get()
        if shared is not None and shared.in_use:
            async with self._joined(shared, tenant) as tx:
                yield tx
            return
        async with self.pool.acquire() as conn:
            tx = Transaction(conn, self.source, self.consumer, tenant)
            async with conn.transaction(readonly=readonly):
                if tenant is not None:
                    await conn.execute(SET_TENANT, tenant.federation_id, tenant.organisation_id or "")
                yield tx
        await self.committed(tx, wrote=not readonly)

    @asynccontextmanager
    async def _joined(self, shared: SharedTransaction, tenant: Tenant | None) -> AsyncIterator[Transaction]:
        """The shared transaction: opened by the first use case, joined by the later ones."""
        if shared.tx is None:
            tx = await shared.open(self, tenant)
            try:
                yield tx
            except BaseException:
                if isinstance(shared, BatchTransaction):
                    shared.failed = True  # its consumer redoes the batch record by record
                else:  # the request's use case failed: its work and the claim go; a later one may claim again
                    await shared.abandon()
                raise
            return
        outer = shared.tx
        if not shared.savepoint_per_use_case:
            # A batch acts for many tenants, one use case after another on one connection: each
            # switches the transaction to its own tenant (or back across tenants) first.
            if tenant is not None and tenant != outer.tenant:
                await outer.conn.execute(SET_TENANT, tenant.federation_id, tenant.organisation_id or "")
            elif tenant is None and outer.tenant is not None:
                await outer.conn.execute(ACROSS_TENANTS)
                outer.tenant = None
            shared_tx = Transaction(outer.conn, self.source, self.consumer, tenant or outer.tenant)
            try:
                yield shared_tx
            except BaseException:
                assert isinstance(shared, BatchTransaction)
                shared.failed = True
                raise
            outer.emitted.extend(shared_tx.emitted)
            outer.after.extend(shared_tx.after)
            outer.tenant = shared_tx.tenant
            return
        async with outer.conn.transaction():
            if tenant is not None and tenant != outer.tenant:
                await outer.conn.execute(SET_TENANT, tenant.federation_id, tenant.organisation_id or "")
            inner = Transaction(outer.conn, self.source, self.consumer, tenant or outer.tenant)
            yield inner
        outer.emitted.extend(inner.emitted)
        outer.after.extend(inner.after)

    def around(self, conn: Conn, tenant: Tenant | None = None) -> Transaction:
        """A `Transaction` over a connection whose transaction the caller opened and will commit.

        For code that owns its connection and transaction (ingest's pipeline, which commits
        its idempotency record with the use case's work): once it committed, it calls
        `committed(tx)`.
        """
        return Transaction(conn, self.source, self.consumer, tenant)

    async def committed(self, tx: Transaction, *, wrote: bool = True) -> None:
        """What follows a commit: the transaction's after-commit callbacks, then the workers' wake-ups."""
        await run_after_commit(tx.after)
        if tx.emitted:
            for wake in self._on_events:
                wake()
        if wrote:
            for wake in self._on_writes:
                wake()


async def run_after_commit(callbacks: list[AfterCommit]) -> None:
    """Run what waited for a commit; one failing callback is logged and does not stop the rest."""
    for callback in callbacks:
        try:
            result = callback()
            if inspect.isawaitable(result):
                await result
        except Exception:  # the commit happened: a failed follow-up must not look like a failed write
            log.exception("after-commit callback %r failed", callback)


class NoDatabase:
    """The connection of a `FakeUnitOfWork`: any SQL is a test bug, said loudly."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"a fake unit of work has no database (called conn.{name})")


class FakeUnitOfWork:
    """An in-memory unit of work for fast service-layer tests.

    It records the events a use case emits and the deliveries it claims, runs after-commit
    callbacks only when the block ends without an exception, and treats a CloudEvent id
    it has seen as a redelivery, as the real inbox does. `conn` is what storage functions
    receive: a `NoDatabase` unless the test supplies a stand-in.
    """

    def __init__(self, *, source: str = "/pitchin/test", consumer: str = "test", conn: Any = None) -> None:
        self.source = source
        self.consumer = consumer
        self.conn: Any = conn if conn is not None else NoDatabase()
        self.committed: list[tuple[EventData, str, str | None]] = []
        self.rolled_back = 0
        self.tenants: list[Tenant | None] = []
        self._seen: set[str] = set()

    def __call__(
        self, tenant: Tenant | None = None, *, readonly: bool = False
    ) -> AbstractAsyncContextManager[Transaction]:
        return self._transaction(tenant)

    @asynccontextmanager
    async def _transaction(self, tenant: Tenant | None) -> AsyncIterator[Transaction]:
        fake = self
        staged: list[tuple[EventData, str, str | None]] = []
        seen: set[str] = set()

        class _FakeTransaction(Transaction):
            async def emit(self, data: EventData, *, key: str, subject: str | None = None) -> uuid.UUID:
                staged.append((data, key, subject))
                event_id = uuid.uuid4()
                self.emitted.append(event_id)
                return event_id

            async def first_delivery(self, event: CloudEvent) -> bool:
                if event.id in fake._seen or event.id in seen:
                    return False
                seen.add(event.id)
                return True

        tx = _FakeTransaction(self.conn, self.source, self.consumer, tenant)
        self.tenants.append(tenant)
        try:
            yield tx
        except BaseException:
            self.rolled_back += 1
            raise
        self.committed.extend(staged)
        self._seen |= seen
        await run_after_commit(tx.after)

    def events_of(self, kind: type[EventData]) -> list[EventData]:
        return [data for data, _, _ in self.committed if isinstance(data, kind)]
