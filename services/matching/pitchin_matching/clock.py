"""The offer clock: expires due offers (a durable timer: the `offers` table) and sweeps waiting needs.

Nothing about a timer lives in memory: an offer's `expires_at` is its timer, so a restart
or a second replica simply finds the due rows (claimed with FOR UPDATE SKIP LOCKED) and
expires each exactly once, with the next offer in the same transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime

import asyncpg

from pitchin_matching import service, storage
from pitchin_matching.service import Matching

log = logging.getLogger(__name__)
BATCH = 200


class OfferClock:
    def __init__(self, matching: Matching, *, poll_seconds: float, sweep_seconds: float) -> None:
        self.matching = matching
        self.poll_seconds = poll_seconds
        self.sweep_seconds = sweep_seconds
        self._task: asyncio.Task[None] | None = None
        self._last_sweep = 0.0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="matching-offer-clock")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def tick(self) -> int:
        """One pass: every due offer expired (and replaced); waiting needs swept now and then."""
        m = self.matching
        now = datetime.now(UTC)
        expired = 0
        for federation_id in await storage.federations_with_due_offers(m.pool, now):
            while (done := await service.expire_due(m, federation_id, now, BATCH)) > 0:
                expired += done
                if done < BATCH:
                    break
        if time.monotonic() - self._last_sweep >= self.sweep_seconds:
            self._last_sweep = time.monotonic()
            for federation_id in await storage.federations_with_waiting_needs(m.pool, now):
                await service.match_waiting(m, federation_id, now)
        return expired

    async def _run(self) -> None:
        await self.matching.ready.wait()
        backoff = self.poll_seconds
        while True:
            try:
                await self.tick()
                backoff = self.poll_seconds
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("offer clock paused: %r", exc)
                backoff = min(backoff * 2, 5.0)
            except Exception:
                log.exception("offer clock failed; retrying")
                backoff = min(backoff * 2, 5.0)
            await asyncio.sleep(backoff)
