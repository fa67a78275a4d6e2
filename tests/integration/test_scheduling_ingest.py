"""Events other systems publish, applied by scheduling's own use cases inside the ingest pipeline's transaction.

Real PostgreSQL, no Kafka: the pipeline decides each envelope with `pitchin_scheduling.ingest.apply`,
whose use cases run as savepoints of the pipeline's transaction; the outbox shows what the API
would have emitted, and a refusal leaves none of the use case's rows behind.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from importlib.resources import files
from typing import Any

import pytest

from pitchin_core.contracts.publishers import PublisherRegisteredV1, PublisherRevokedV1
from pitchin_core.ingest import Answer, Envelope, Registry
from pitchin_core.ingest import external_event_id as derived_id
from pitchin_scheduling import ingest, service
from tests.integration.conftest import INGEST_SOURCE, cloud_event, decide_ingest, ingest_envelope
from tests.integration.tenancy import FED, ORG, ORGANISER

pytestmark = pytest.mark.integration
MIGRATIONS = files("pitchin_scheduling") / "migrations"
NOW = datetime.now(UTC).replace(microsecond=0)
E = "org.pitchin."


def _envelope(ident: str, kind: str, data: dict[str, Any]) -> Envelope:
    return ingest_envelope(ident, kind, data, now=NOW)


def _created(ident: str, external_id: str, days: int = 20, **more: Any) -> Envelope:
    starts = NOW + timedelta(days=days)
    return _envelope(
        ident,
        "event-created.v1",
        {
            "external_id": external_id,
            "kind": "training",
            "title": "Free training afternoon",
            "starts_at": starts.isoformat(),
            "ends_at": (starts + timedelta(hours=3)).isoformat(),
            "time_zone": "Europe/London",
            "venue_name": "Dudley CVS",
            "organiser_email": "training@example.org",
            **more,
        },
    )


async def _decide(db: Any, envelope: Envelope) -> Answer:
    return await decide_ingest(db, "scheduling", ingest.apply, envelope, now=NOW)


async def test_an_event_is_created_changed_and_cancelled_as_the_api_would(open_service_database: Any) -> None:
    db = await open_service_database("scheduling", MIGRATIONS)
    created = await _decide(db, _created("e1", "ev-1"))
    assert (created.status, created.outcome) == (202, "applied"), created.body
    event_id = created.body["event_id"]
    assert event_id == derived_id(INGEST_SOURCE, "ev-1"), "signups can name it without asking scheduling"
    again = await _decide(db, _created("e2", "ev-1", updated_at=NOW.isoformat()))
    assert (again.status, again.reason) == (409, "conflict")

    later = NOW + timedelta(days=21)
    changed = await _decide(
        db,
        _envelope(
            "e3",
            "event-changed.v1",
            {
                "external_id": "ev-1",
                "title": "Free training day",
                "starts_at": later.isoformat(),
                "ends_at": (later + timedelta(hours=3)).isoformat(),
                "updated_at": (NOW - timedelta(minutes=30)).isoformat(),
            },
        ),
    )
    assert (changed.status, changed.body["version"]) == (202, 3), changed.body
    stale = await _decide(db, _envelope("e4", "event-changed.v1", {"external_id": "ev-1", "title": "Old news"}))
    assert (stale.status, stale.reason) == (409, "stale")
    cancelled = await _decide(
        db,
        _envelope(
            "e5", "event-cancelled.v1", {"external_id": "ev-1", "reason": "venue", "updated_at": NOW.isoformat()}
        ),
    )
    assert cancelled.status == 202, cancelled.body

    event, _ = await service.get_event(db.uow, ORGANISER, event_id)
    assert (event.title, event.status, event.version) == ("Free training day", "cancelled", 4)
    assert await db.types_emitted() == [
        E + "event.created.v1",
        E + "event.published.v1",
        E + "event.updated.v1",
        E + "event.rescheduled.v1",
        E + "event.cancelled.v1",
    ]


async def test_a_use_cases_refusal_is_the_publishers_rejection_and_rolls_back_only_its_part(
    open_service_database: Any,
) -> None:
    db = await open_service_database("scheduling", MIGRATIONS)
    past = await _decide(db, _created("e1", "ev-1", days=-3))
    assert (past.status, past.reason) == (422, "refused")
    assert past.body["errors"] == [{"field": "data.starts_at", "message": "an event cannot start in the past"}]
    unknown = await _decide(db, _envelope("e2", "event-cancelled.v1", {"external_id": "ev-never"}))
    assert (unknown.status, unknown.reason) == (422, "not-found")
    assert await db.outbox() == []
    # The refused event left no external id behind: a corrected one is judged afresh.
    corrected = await _decide(db, _created("e3", "ev-1"))
    assert corrected.status == 202, corrected.body
    # A step the event's state does not allow is the publisher's conflict, and changes nothing.
    half_an_hour_ago = (NOW - timedelta(minutes=30)).isoformat()
    ended = _envelope("e4", "event-cancelled.v1", {"external_id": "ev-1", "updated_at": half_an_hour_ago})
    assert (await _decide(db, ended)).status == 202
    too_late = await _decide(
        db,
        _envelope("e5", "event-changed.v1", {"external_id": "ev-1", "title": "Back on", "updated_at": NOW.isoformat()}),
    )
    assert (too_late.status, too_late.reason) == (409, "conflict"), too_late.body
    assert "cannot update an event that is cancelled" in too_late.body["errors"][0]["message"]
    assert await db.types_emitted() == [E + "event.created.v1", E + "event.published.v1", E + "event.cancelled.v1"]


async def test_publishers_registered_in_signups_are_learnt_once(open_service_database: Any) -> None:
    db = await open_service_database("scheduling", MIGRATIONS)
    registered = PublisherRegisteredV1(
        federation_id=FED, source=INGEST_SOURCE, organisations=[ORG], rate_per_second=5.0, burst=10, registered_at=NOW
    )
    delivered = cloud_event(registered, source="/pitchin/signups")
    assert await ingest.learn_registration(db.uow, delivered, registered)
    assert not await ingest.learn_registration(db.uow, delivered, registered)
    async with db.uow(readonly=True) as tx:
        learnt = await Registry(ttl=0).by_source(tx.conn, INGEST_SOURCE)
    assert learnt is not None and learnt.organisations == (ORG,)
    revoked = PublisherRevokedV1(federation_id=FED, source=INGEST_SOURCE, revoked_at=NOW)
    assert await ingest.learn_registration(db.uow, cloud_event(revoked), revoked)
    async with db.uow(readonly=True) as tx:
        assert await Registry(ttl=0).by_source(tx.conn, INGEST_SOURCE) is None
