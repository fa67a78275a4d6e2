"""Service-level tests: one service's use cases and storage against the real PostgreSQL only.

No Kafka and no other process: events a use case emits are read back from its outbox
table, and events it consumes are handed to it as CloudEvents. Each test gets a schema
of its own, migrated like the service's, so tests never share rows. The ingest tests
decide envelopes from one registered publisher (`ingest_envelope`, `decide_ingest`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from importlib.resources.abc import Traversable
from typing import Any

import asyncpg
import pytest

from pitchin_core.contracts.cloudevents import CloudEvent, tenant_of
from pitchin_core.contracts.common import EventData
from pitchin_core.db import create_pool, migrate
from pitchin_core.ingest import Answer, Apply, Envelope, Pipeline, Registration, envelope_from_structured
from pitchin_core.telemetry import Metrics
from pitchin_core.uow import UnitOfWork
from pitchin_testing.postgres import PostgresServer
from tests.integration.tenancy import FED, ORG

# The publisher the ingest tests hear from: a union's CRM, registered for one member organisation.
INGEST_SOURCE = "/crm/unite"
INGEST_REGISTRATION = Registration(INGEST_SOURCE, FED, (ORG,), False, None, 50.0, 200)


@pytest.fixture(scope="session")
def service_database(postgres_server: PostgresServer) -> str:
    return postgres_server.create_database("pitchin_service_tests")


class ServiceDatabase:
    """A migrated schema of one service, its pool and unit of work, and its outbox to read."""

    def __init__(self, pool: asyncpg.Pool, schema: str, uow: UnitOfWork) -> None:
        self.pool = pool
        self.schema = schema
        self.uow = uow

    async def outbox(self) -> list[dict[str, Any]]:
        """The events staged so far, oldest first: type, key, subject and data."""
        rows = await self.pool.fetch(
            "SELECT event_type, message_key, subject, payload::text AS payload FROM outbox ORDER BY seq"
        )
        return [
            {
                "type": r["event_type"],
                "key": r["message_key"],
                "subject": r["subject"],
                "data": json.loads(r["payload"]),
            }
            for r in rows
        ]

    async def types_emitted(self) -> list[str]:
        return [e["type"] for e in await self.outbox()]


@pytest.fixture
async def open_service_database(service_database: str) -> AsyncIterator[Any]:
    """`await open_service_database(service_name, migrations)`: a fresh schema for this test."""
    opened: list[asyncpg.Pool] = []

    async def open_(service: str, migrations: Traversable) -> ServiceDatabase:
        schema = f"{service}_{uuid.uuid4().hex[:10]}"
        await migrate(service_database, schema, migrations)
        pool = await create_pool(service_database, schema, size=4)
        opened.append(pool)
        return ServiceDatabase(pool, schema, UnitOfWork(pool, source=f"/pitchin/{service}", consumer=service))

    yield open_
    for pool in opened:
        await pool.close()


def ingest_envelope(ident: str, kind: str, data: dict[str, Any], *, now: datetime) -> Envelope:
    """The publisher's `org.pitchin.ingest.<kind>` for ORG, last updated an hour before `now` unless `data` says."""
    base = {"federation_id": FED, "organisation_id": ORG, "updated_at": (now - timedelta(hours=1)).isoformat()}
    event_type = f"org.pitchin.ingest.{kind}"
    return envelope_from_structured(
        {"id": ident, "source": INGEST_SOURCE, "type": event_type, "specversion": "1.0", "data": {**base, **data}}
    )


async def decide_ingest(
    db: ServiceDatabase, service: str, apply: Apply, envelope: Envelope, *, now: datetime
) -> Answer:
    """The ingest pipeline's answer to the publisher, with `service`'s own `apply`."""
    return await Pipeline(service, Metrics(service)).decide(db.uow, envelope, INGEST_REGISTRATION, apply, now=now)


def cloud_event(data: EventData, *, source: str = "/pitchin/test") -> CloudEvent:
    """A CloudEvent as a consumer receives it, for a use case that takes consumed events."""
    return CloudEvent(
        id=str(uuid.uuid4()),
        source=source,
        type=data.event_type,
        data=data.model_dump(mode="json"),
        tenant=tenant_of(data.federation_id, data.organisation_id),
    )
