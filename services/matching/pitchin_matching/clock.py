"""The offer clock: expires due offers (a durable timer: the `offers` table), takes urgent needs'
due escalation steps (a durable timer: `needs.escalate_at`) and sweeps waiting needs.

Nothing about a timer lives in memory: an offer's `expires_at` is its timer, so a restart
or a second replica simply finds the due rows (claimed with FOR UPDATE SKIP LOCKED) and
expires each exactly once, with the next offer in the same transaction.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from pitchin_core.worker import BatchWorker
from pitchin_matching import service, storage
from pitchin_matching.service import Matching

BATCH = 200


class OfferClock(BatchWorker):
    """A periodic worker: one tick every `poll_seconds`, once the donor index is loaded."""

    def __init__(self, matching: Matching, *, poll_seconds: float, sweep_seconds: float) -> None:
        # A tick drains what is due; one that expired a full batch or more looks again at once
        # (more may have fallen due meanwhile), any other waits `poll_seconds`.
        super().__init__(
            matching.uow.pool, name="matching-offer-clock", batch_size=BATCH, idle_poll_seconds=poll_seconds
        )
        self.matching = matching
        self.sweep_seconds = sweep_seconds
        self._last_sweep = 0.0

    async def before_first_run(self) -> None:
        # Expiring offers asks the next candidates: ranking needs the whole index.
        await self.matching.ready.wait()

    async def work_once(self) -> int:
        return await self.tick()

    async def tick(self, now: datetime | None = None) -> int:
        """One pass: every due offer expired (and replaced); waiting needs swept now and then.

        `now` is the clock's time unless a test gives another.
        """
        m = self.matching
        now = now or datetime.now(UTC)
        expired = 0
        async with m.uow(readonly=True) as tx:  # across federations: each is then expired as its own tenant
            due_in = await storage.federations_with_due_offers(tx.conn, now)
        for federation_id in due_in:
            while (done := await service.expire_due(m, federation_id, now, BATCH)) > 0:
                expired += done
                if done < BATCH:
                    break
        # Escalation steps of urgent needs: durable timers on the needs' rows, taken the same way.
        async with m.uow(readonly=True) as tx:
            escalating_in = await storage.federations_with_due_escalations(tx.conn, now)
        for federation_id in escalating_in:
            while (done := await service.escalate_due(m, federation_id, now, BATCH)) > 0:
                expired += done
                if done < BATCH:
                    break
        if time.monotonic() - self._last_sweep >= self.sweep_seconds:
            self._last_sweep = time.monotonic()
            async with m.uow(readonly=True) as tx:
                waiting_in = await storage.federations_with_waiting_needs(tx.conn, now)
            for federation_id in waiting_in:
                await service.match_waiting(m, federation_id, now)
        return expired
