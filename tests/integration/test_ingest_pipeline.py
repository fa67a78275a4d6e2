"""The ingest pipeline against the real PostgreSQL: once only, replayed answers, refusals rolled back.

The `apply` here is a stand-in for a service's: it records the external id, emits an event
through the savepoint it is given and registers an after-commit callback, so each test can
see what committed with the pipeline's idempotency record and what was rolled back.
"""

from __future__ import annotations

from datetime import UTC, datetime
from importlib.resources import files
from typing import Any

import pytest

from pitchin_core.contracts.donors import DonorWithdrawnV1
from pitchin_core.errors import Conflict, FieldError
from pitchin_core.ingest import (
    Accepted,
    Envelope,
    NotYet,
    Pipeline,
    Registration,
    envelope_from_structured,
    save_subject,
    subject_of,
    unknown,
)
from pitchin_core.telemetry import Metrics
from pitchin_core.uow import Transaction

pytestmark = pytest.mark.integration
MIGRATIONS = files("pitchin_signups") / "migrations"
SOURCE = "/crm/a"
REG = Registration(SOURCE, "fed-a", ("org-a",), False, None, 10.0, 5)
NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


def person(ident: str = "e1", name: str = "Ana") -> Envelope:
    data = {
        "federation_id": "fed-a",
        "organisation_id": "org-a",
        "external_id": "p-1",
        "updated_at": "2026-11-23T10:00:00Z",
        "name": name,
        "email": "ana@example.org",
        "skills": [{"skill": "social-media", "level": "expert"}],
        "availability": {"hours_per_week": 4, "time_zone": "Europe/London"},
        "consent": {"wording_version": "1", "purposes": ["matching"], "agreed_at": "2026-11-01T00:00:00Z"},
    }
    return envelope_from_structured(
        {
            "id": ident,
            "source": SOURCE,
            "type": "org.pitchin.ingest.person-signed-up.v1",
            "specversion": "1.0",
            "data": data,
        }
    )


class Service:
    """A trivial consuming service: what it applied, and what ran after a commit."""

    def __init__(self, refuse: Exception | None = None) -> None:
        self.refuse = refuse
        self.applied: list[str] = []
        self.after_commit: list[str] = []

    async def apply(self, tx: Transaction, accepted: Accepted, now: datetime) -> dict[str, Any]:
        self.applied.append(accepted.id)
        await save_subject(tx.conn, accepted, "person", "don_1")
        withdrawn = DonorWithdrawnV1(federation_id="fed-a", organisation_id="org-a", donor_id="don_1", withdrawn_at=now)
        await tx.emit(withdrawn, key="don_1", subject="donors/don_1")
        tx.after_commit(lambda: self.after_commit.append(accepted.id))
        if self.refuse is not None:
            raise self.refuse
        return {"donor_id": "don_1"}


async def seen(db: Any, ident: str) -> dict[str, Any] | None:
    row = await db.pool.fetchrow(
        "SELECT outcome, answer IS NOT NULL AS answered FROM ingest_seen WHERE source = $1 AND event_id = $2",
        SOURCE,
        ident,
    )
    return dict(row) if row is not None else None


async def test_an_event_is_applied_once_and_the_same_id_replays_its_answer(open_service_database: Any) -> None:
    db = await open_service_database("signups", MIGRATIONS)
    pipeline, service = Pipeline("signups", Metrics("signups")), Service()

    first = await pipeline.decide(db.uow, person(), REG, service.apply, now=NOW)
    assert (first.status, first.outcome, first.replayed) == (202, "applied", False)
    assert first.body == {
        "status": 202,
        "outcome": "applied",
        "id": "e1",
        "source": SOURCE,
        "type": "org.pitchin.ingest.person-signed-up.v1",
        "donor_id": "don_1",
    }
    # The use case's event and after-commit callback committed with the pipeline's record.
    assert await db.outbox() == [
        {
            "type": "org.pitchin.donor.withdrawn.v1",
            "key": "don_1",
            "subject": "donors/don_1",
            "data": {
                "federation_id": "fed-a",
                "organisation_id": "org-a",
                "donor_id": "don_1",
                "withdrawn_at": "2026-11-23T12:00:00Z",
                "erase": False,
            },
        }
    ]
    assert service.after_commit == ["e1"]
    assert await seen(db, "e1") == {"outcome": "applied", "answered": True}

    again = await pipeline.decide(db.uow, person(), REG, service.apply, now=NOW)
    assert again.replayed and (again.status, again.outcome, again.body) == (202, "applied", first.body)
    assert service.applied == ["e1"]
    assert await db.types_emitted() == ["org.pitchin.donor.withdrawn.v1"]


async def test_the_same_id_with_other_content_is_refused_as_reused(open_service_database: Any) -> None:
    db = await open_service_database("signups", MIGRATIONS)
    pipeline, service = Pipeline("signups", Metrics("signups")), Service()
    await pipeline.decide(db.uow, person(), REG, service.apply, now=NOW)

    reused = await pipeline.decide(db.uow, person(name="Someone else"), REG, service.apply, now=NOW)
    assert (reused.status, reused.outcome, reused.reason, reused.replayed) == (409, "rejected", "id-reused", False)
    assert reused.body["type"] == "tag:pitchin.example,2026:problems/ingest/id-reused"
    assert reused.body["errors"] == [
        {"field": "id", "message": "'e1' was already used by this source for another event"}
    ]
    assert service.applied == ["e1"]
    # The first event's answer is still what its id replays.
    assert (await pipeline.decide(db.uow, person(), REG, service.apply, now=NOW)).replayed
    assert await seen(db, "e1") == {"outcome": "applied", "answered": True}


async def test_a_domain_error_rolls_back_the_savepoint_and_keeps_the_rejection(open_service_database: Any) -> None:
    db = await open_service_database("signups", MIGRATIONS)
    pipeline = Pipeline("signups", Metrics("signups"))
    service = Service(Conflict("this person is already signed up", errors=[FieldError("external_id", "taken")]))

    answer = await pipeline.decide(db.uow, person(), REG, service.apply, now=NOW, stage_rejections=True)
    assert (answer.status, answer.outcome, answer.reason) == (409, "rejected", "conflict")
    assert answer.body["type"] == "tag:pitchin.example,2026:problems/ingest/conflict"
    assert answer.body["errors"] == [{"field": "data.external_id", "message": "taken"}]
    assert (answer.body["id"], answer.body["source"]) == ("e1", SOURCE)

    # What apply wrote is gone: its row, its event, its after-commit callback.
    async with db.uow() as tx:
        assert await subject_of(tx.conn, SOURCE, "person", "p-1") is None
    assert service.after_commit == []
    # The rejection is kept: recorded with its answer, and staged for the publisher.
    assert await seen(db, "e1") == {"outcome": "rejected", "answered": True}
    [staged] = await db.outbox()
    assert staged["type"] == "org.pitchin.ingest.rejected.v1" and staged["key"] == SOURCE
    assert staged["data"]["reason"] == "conflict" and staged["data"]["rejected_by"] == "signups"

    replayed = await pipeline.decide(db.uow, person(), REG, service.apply, now=NOW, stage_rejections=True)
    assert replayed.replayed and (replayed.status, replayed.body) == (409, answer.body)
    assert service.applied == ["e1"]


async def test_not_yet_leaves_the_id_unclaimed_for_the_retry(open_service_database: Any) -> None:
    db = await open_service_database("signups", MIGRATIONS)
    pipeline = Pipeline("signups", Metrics("signups"))
    early = Service(NotYet(unknown("event", "ev-1", "publish event-created first")))

    with pytest.raises(NotYet):
        await pipeline.decide(db.uow, person(), REG, early.apply, now=NOW)
    assert await seen(db, "e1") is None and await db.outbox() == []

    later = Service()
    answer = await pipeline.decide(db.uow, person(), REG, later.apply, now=NOW)
    assert (answer.status, answer.outcome, answer.replayed) == (202, "applied", False)
    assert later.applied == ["e1"]
