"""Publishing systems a federation registers (docs/ingest.md): registration, rotation, revocation."""

from __future__ import annotations

from datetime import datetime, timedelta

from pitchin_core.auth import Caller
from pitchin_core.contracts.publishers import PublisherRegisteredV1, PublisherRevokedV1
from pitchin_core.errors import Conflict, FieldError, NotFound
from pitchin_core.ingest import Credentials, PublisherSummary, SourceTaken, publisher_summaries
from pitchin_core.ingest import register_publisher as register_source
from pitchin_core.ingest import revoke_publisher as revoke_source
from pitchin_core.uow import Transactions
from pitchin_signups.domain.publishers import PublisherRegistration

WINDOW = timedelta(hours=24)


class NoSuchPublisher(NotFound):
    """Revoking a source the federation does not have: answered as any unknown id, naming the field."""

    def __init__(self, source: str) -> None:
        super().__init__("publisher", source, detail=f"source: no publisher {source} in this federation")
        self.errors = [FieldError("source", "not a publisher of this federation")]


async def summaries(uow: Transactions, caller: Caller, now: datetime) -> list[PublisherSummary]:
    """The federation's publishing systems and what each published in the last 24 hours."""
    async with uow(caller.tenant, readonly=True) as tx:
        return await publisher_summaries(tx.conn, caller.federation_id, now - WINDOW)


async def register(
    uow: Transactions, caller: Caller, registration: PublisherRegistration, now: datetime
) -> tuple[PublisherSummary, Credentials]:
    """Register a publishing system for the federation, or rotate its credentials and replace its scope.

    Scheduling learns the registration (scope only) from `publisher.registered` on
    pitchin.publishers.v1; only signups holds the key hash and the signing secret.
    """
    federation_id = caller.federation_id
    source = registration.source
    # The registration's fields are the scope both the registry and the fact carry, by the same names.
    scope = registration.model_dump()
    async with uow(caller.tenant) as tx:
        try:
            credentials = await register_source(tx.conn, federation_id=federation_id, own_federation_only=True, **scope)
        except SourceTaken as exc:
            raise Conflict(
                f"source: {source} is registered to another federation; choose another source",
                title="Source taken",
                kind="/problems/conflict",
                errors=[FieldError("source", "registered to another federation")],
            ) from exc
        fact = PublisherRegisteredV1(federation_id=federation_id, **scope, registered_at=now)
        await tx.emit(fact, key=source, subject=source)
        [summary] = await publisher_summaries(tx.conn, federation_id, now - WINDOW, source)
    return summary, credentials


async def revoke(uow: Transactions, caller: Caller, source: str, now: datetime) -> PublisherSummary:
    """Revoke a federation's publisher (again: unchanged); scheduling learns it from `publisher.revoked`."""
    federation_id = caller.federation_id
    async with uow(caller.tenant) as tx:
        if not await revoke_source(tx.conn, source=source, federation_id=federation_id, now=now):
            raise NoSuchPublisher(source)
        [summary] = await publisher_summaries(tx.conn, federation_id, now - WINDOW, source)
        assert summary.revoked_at is not None
        fact = PublisherRevokedV1(federation_id=federation_id, source=source, revoked_at=summary.revoked_at)
        await tx.emit(fact, key=source, subject=source)
    return summary
