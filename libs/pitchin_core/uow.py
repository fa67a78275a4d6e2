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
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg

from pitchin_core.contracts.cloudevents import CloudEvent
from pitchin_core.contracts.common import EventData
from pitchin_core.db import Conn
from pitchin_core.inbox import first_delivery
from pitchin_core.outbox import add_to_outbox

log = logging.getLogger(__name__)

AfterCommit = Callable[[], Awaitable[None] | None]


@dataclass(frozen=True)
class Tenant:
    """Whose data a transaction acts on: a federation, and within it one organisation or all."""

    federation_id: str
    organisation_id: str | None = None


SET_TENANT = "SELECT set_config('pitchin.federation_id', $1, true), set_config('pitchin.organisation_id', $2, true)"


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
        async with self.conn.transaction():
            if tenant is not None and self.tenant is None:
                await self.conn.execute(SET_TENANT, tenant.federation_id, tenant.organisation_id or "")
            yield inner
        # The savepoint was released: its events and callbacks now belong to the enclosing transaction.
        self.emitted.extend(inner.emitted)
        self.after.extend(inner.after)


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

    @property
    def pool(self) -> asyncpg.Pool:
        pool = self._pool
        if isinstance(pool, asyncpg.Pool):
            return pool
        return pool()

    def on_committed_events(self, callback: Callable[[], None]) -> None:
        """Call `callback` after every commit that staged outbox events (wakes this process's relay)."""
        self._on_events.append(callback)

    def __call__(
        self, tenant: Tenant | None = None, *, readonly: bool = False
    ) -> AbstractAsyncContextManager[Transaction]:
        return self._transaction(tenant, readonly)

    @asynccontextmanager
    async def _transaction(self, tenant: Tenant | None, readonly: bool) -> AsyncIterator[Transaction]:
        async with self.pool.acquire() as conn:
            tx = Transaction(conn, self.source, self.consumer, tenant)
            async with conn.transaction(readonly=readonly):
                if tenant is not None:
                    await conn.execute(SET_TENANT, tenant.federation_id, tenant.organisation_id or "")
                yield tx
        await self.committed(tx)

    def around(self, conn: Conn, tenant: Tenant | None = None) -> Transaction:
        """A `Transaction` over a connection whose transaction the caller opened and will commit.

        For code that owns its connection and transaction (ingest's pipeline, which commits
        its idempotency record with the use case's work): once it committed, it calls
        `committed(tx)`.
        """
        return Transaction(conn, self.source, self.consumer, tenant)

    async def committed(self, tx: Transaction) -> None:
        """What follows a commit: the transaction's after-commit callbacks, then the relay's wake-up."""
        await run_after_commit(tx.after)
        if tx.emitted:
            for wake in self._on_events:
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
