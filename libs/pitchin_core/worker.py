"""A background loop that works in batches: the outbox relay, timers and senders.

Each does its work in batches: a full batch means more is waiting, so it goes again at once;
otherwise it sleeps until `wake()` is called in this process (a commit here added work) or
until `idle_seconds()` passes, whichever comes first. Other processes' commits are found by
that poll: no NOTIFY is sent from a write transaction, because a transaction that notified
takes a cluster-wide lock through its commit flush and such commits cannot share a WAL flush
(measured: 23% fewer single bookings a second; see docs/ARCHITECTURE.md, "Waking workers").
PostgreSQL or Kafka being away pauses a worker with a backoff; it never dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

log = logging.getLogger(__name__)


class BatchWorker:
    """Subclasses do one batch in `work_once` and may wait smarter in `idle_seconds`."""

    def __init__(self, pool: asyncpg.Pool, *, name: str, batch_size: int, idle_poll_seconds: float = 1.0) -> None:
        self.pool = pool
        self.name = name  # for logs and the task's name
        self.batch_size = batch_size
        self.idle_poll_seconds = idle_poll_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.passes = 0  # batches tried so far (tests wait on it instead of sleeping)

    async def before_first_run(self) -> None:
        """Wait for whatever must be ready before the first batch (e.g. an index loaded)."""

    def wake(self) -> None:
        """Run the next batch now (e.g. after this process committed new work)."""
        self._wake.set()

    async def work_once(self) -> int:
        """Do up to one batch of work; return how much was done."""
        raise NotImplementedError

    async def idle_seconds(self) -> float:
        """How long to sleep when nothing wakes the worker."""
        return self.idle_poll_seconds

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        await self.before_first_run()
        backoff = 0.1
        while True:
            # Cleared before the batch: a wake-up during it means work it may not have seen.
            self._wake.clear()
            try:
                done = await self.work_once()
                self.passes += 1
                backoff = 0.1
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("%s paused: %s", self.name, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            except Exception:
                log.exception("%s failed; retrying", self.name)
                await asyncio.sleep(1.0)
                continue
            if done >= self.batch_size or self._wake.is_set():
                continue
            wait = await self.idle_seconds()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)
