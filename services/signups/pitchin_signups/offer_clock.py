"""The waitlist offer clock: expires due offers and offers their places to the next on the list.

Nothing about the timer lives in memory: an offer's `offer_expires_at` is its timer, so after a
restart, or beside another replica, the clock finds the due offers in the database (their
events claimed with FOR UPDATE SKIP LOCKED, migration 007) and expires each exactly once, with
the next offer in the same transaction (as matching's offer clock does for its offers).
"""

from __future__ import annotations

from datetime import UTC, datetime

from pitchin_core.uow import UnitOfWork
from pitchin_core.worker import BatchWorker
from pitchin_signups import storage
from pitchin_signups.service import bookings

# Events per call: each is locked for its own expiries and offers, so a call stays short.
BATCH = 100


class OfferClock(BatchWorker):
    def __init__(self, uow: UnitOfWork, *, poll_seconds: float) -> None:
        super().__init__(uow.pool, name="signups-offer-clock", batch_size=BATCH, idle_poll_seconds=poll_seconds)
        self.uow = uow
        self.expired = 0  # offers expired by this process (tests and logs read it)

    async def work_once(self) -> int:
        return await self.tick()

    async def tick(self, now: datetime | None = None) -> int:
        """One pass over every federation with a due offer; the number of offers expired."""
        now = now or datetime.now(UTC)
        async with self.uow(readonly=True) as tx:  # across federations: each is then expired as its own tenant
            due_in = await storage.federations_with_due_offers(tx.conn, now)
        done = 0
        for federation_id in due_in:
            events = await bookings.expire_due(self.uow, federation_id, now, BATCH)
            done += sum(1 for e in events if e.event_type.endswith(".offer-expired.v1"))
        self.expired += done
        return done
