"""A background loop woken by PostgreSQL: the outbox relay and scheduling's reminder timer.

Each does its work in batches: a full batch means more is waiting, so it goes again at once;
otherwise it sleeps until its channel is NOTIFYed (a commit that added work) or until
`idle_seconds()` passes, whichever comes first, so a lost notification delays work by that
much at most. PostgreSQL or Kafka being away pauses it with a backoff; it never dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg

log = logging.getLogger(__name__)


class NotifiedWorker:
    """Subclasses name their `channel`, do one batch in `work_once` and may wait smarter in `idle_seconds`.

    A worker whose `channel` is None listens to nothing: it runs every `idle_seconds()` (or
    at once after a full batch, or when `wake()` is called in this process) — the periodic
    form, for timers whose work no commit announces.
    """

    def __init__(self, pool: asyncpg.Pool, *, name: str, batch_size: int, idle_poll_seconds: float = 1.0) -> None:
        self.pool = pool
        self.name = name  # for logs and the task's name
        self.batch_size = batch_size
        self.idle_poll_seconds = idle_poll_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: Any = None

    @property
    def channel(self) -> str | None:
        raise NotImplementedError

    async def before_first_run(self) -> None:
        """Wait for whatever must be ready before the first batch (e.g. an index loaded)."""

    def wake(self) -> None:
        """Run the next batch now (e.g. after this process committed new work)."""
        self._wake.set()

    async def work_once(self) -> int:
        """Do up to one batch of work; return how much was done."""
        raise NotImplementedError

    async def idle_seconds(self) -> float:
        """How long to sleep when no notification comes."""
        return self.idle_poll_seconds

    async def start(self) -> None:
        if self.channel is not None:
            self._listener = await self.pool.acquire()
            await self._listener.add_listener(self.channel, self._notified)
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._listener is not None and self.channel is not None:
            with contextlib.suppress(Exception):
                await self._listener.remove_listener(self.channel, self._notified)
            await self.pool.release(self._listener)
            self._listener = None

    def _notified(self, *_: Any) -> None:
        self._wake.set()

    async def _run(self) -> None:
        await self.before_first_run()
        backoff = 0.1
        while True:
            try:
                done = await self.work_once()
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
            if done >= self.batch_size:
                continue
            self._wake.clear()
            wait = await self.idle_seconds()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)
