"""Keeps a process's donor index level with the read model's committed rows, whoever wrote them.

With several matching processes sharing a consumer group, each consumes only some
partitions and answers only some requests, so none can learn every donor change from what
it handles itself. Each follows the tables instead: every row that changes what the index
holds for a donor (the donor's profile, an offer to them, an assignment of theirs) records
the transaction that wrote it (`changed_by`, migration 003), and the follower re-reads the
donors whose rows were written by transactions it may not have seen yet, with their
fairness figures counted afresh from the tables (absolute values: reading a donor twice is
harmless, and nothing drifts).

Why a transaction id and not a sequence: numbers are taken before a transaction commits,
so a row numbered 10 can commit after one numbered 11 was read, and a watermark moved to 11
would skip it for good. Transaction ids have the same gap, but a snapshot says where it
ends: `pg_snapshot_xmin` of the snapshot a catch-up read with is the oldest transaction
still running then, so every change that snapshot could not see was written by a
transaction with that id or a later one. The watermark moves to that horizon (never
further), and the next catch-up reads every row written from there on: transactions that
committed out of order are re-read until the horizon passes them. A long-running writing
transaction anywhere in the cluster holds the horizon back; catch-ups then re-read the
rows changed since it began (more work, never a missed change).

When it catches up: every `poll_seconds` (the `IndexPoller`); before ranking candidates for
an organiser; and inside every offer-making transaction once it holds the federation's lock
(`catch_up_within`), when every other transaction of that federation has committed, so
ranking there sees all of them. That last read skips donors the transaction itself changed
(uncommitted, they might roll back) and so never moves the watermark.
"""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg

from pitchin_core.db import Conn
from pitchin_core.uow import Transaction, UnitOfWork
from pitchin_core.worker import BatchWorker
from pitchin_matching import storage
from pitchin_matching.index import DonorIndex

log = logging.getLogger(__name__)


class IndexFollower:
    """One process's index and how far it has followed the tables (the watermark)."""

    def __init__(self, uow: UnitOfWork, index: DonorIndex) -> None:
        self.uow = uow
        self.index = index
        # The lowest transaction id whose changes may be missing from the index; None until loaded.
        self.watermark: int | None = None
        # Catch-ups read and apply one at a time, so a read from an older snapshot never
        # overwrites a newer one. Each takes its connection before the lock: a holder never
        # waits for the pool, which writers waiting on the lock may have drained.
        self._lock = asyncio.Lock()
        self.donors_reread = 0  # donors read again since the load (a figure for tests and logs)

    async def load(self) -> None:
        """Fill the index from the read model (every federation's donors: no one tenant)."""
        began = time.perf_counter()
        async with self.uow(readonly=True) as tx, self._lock:
            # Read before the cursor's snapshot is taken: a horizon from an earlier snapshot is
            # never later than the cursor's own, so nothing the cursor missed is skipped.
            horizon = await storage.index_horizon(tx.conn)
            async for rows in storage.donors_for_index(tx.conn):
                self.index.load_rows(rows)
            self.watermark = horizon
        log.info("donor index loaded: %d donors in %.2f s", len(self.index), time.perf_counter() - began)

    async def catch_up(self) -> int:
        """Apply every committed change the index may not have yet; returns the donors re-read."""
        if self.watermark is None:
            return 0
        async with self.uow(readonly=True) as tx:
            return await self._apply(tx.conn)

    async def catch_up_within(self, tx: Transaction) -> int:
        """The same inside an open transaction: others' committed changes, not its own."""
        if self.watermark is None:
            return 0
        return await self._apply(tx.conn)

    async def _apply(self, conn: Conn) -> int:
        async with self._lock:
            assert self.watermark is not None
            horizon, writing, rows = await storage.donors_changed_since(conn, self.watermark)
            self.index.load_rows(rows)
            if not writing:
                # A writing transaction skipped the donors it changed: only a clean read moves on.
                self.watermark = max(self.watermark, horizon)
            self.donors_reread += len(rows)
            return len(rows)


class IndexPoller(BatchWorker):
    """Catches the index up every `poll_seconds`: what other processes committed reaches this one."""

    def __init__(self, follower: IndexFollower, pool: asyncpg.Pool, *, poll_seconds: float) -> None:
        super().__init__(pool, name="matching-index-follower", batch_size=1, idle_poll_seconds=poll_seconds)
        self.follower = follower

    async def work_once(self) -> int:
        # One catch-up reads everything there is, so none leaves work for an immediate second
        # one (which, with the horizon held back by a long transaction, would re-read the same
        # rows in a busy loop): always report a part batch and wait for the next poll.
        await self.follower.catch_up()
        return 0
