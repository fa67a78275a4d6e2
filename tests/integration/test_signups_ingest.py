"""What other systems publish, applied by signups' own use cases inside the ingest pipeline's transaction.

Real PostgreSQL, no Kafka: the pipeline decides each envelope with `pitchin_signups.ingest.apply`,
whose use cases run as savepoints of the pipeline's transaction; the outbox shows what the API
would have emitted, and a refusal leaves none of the use case's rows behind.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from importlib.resources import files
from typing import Any

import pytest

from pitchin_core.contracts.scheduling import EventCreatedV1, EventKind
from pitchin_core.ingest import Answer, Envelope, NotYet
from pitchin_signups.ingest.apply import apply
from pitchin_signups.service import bookings
from tests.integration.conftest import cloud_event, decide_ingest, ingest_envelope
from tests.integration.tenancy import FED, ORG

pytestmark = pytest.mark.integration
MIGRATIONS = files("pitchin_signups") / "migrations"
NOW = datetime.now(UTC).replace(microsecond=0)


def _envelope(ident: str, kind: str, data: dict[str, Any]) -> Envelope:
    return ingest_envelope(ident, kind, data, now=NOW)


def _person(ident: str, external_id: str, email: str, **more: Any) -> Envelope:
    return _envelope(
        ident,
        "person-signed-up.v1",
        {
            "external_id": external_id,
            "name": "Ana Organiser",
            "email": email,
            "skills": [{"skill": "social-media", "level": "expert"}],
            "availability": {"hours_per_week": 4, "time_zone": "Europe/London"},
            "consent": {"wording_version": "1", "purposes": ["matching"], "agreed_at": "2026-01-01T00:00:00Z"},
            **more,
        },
    )


async def _decide(db: Any, envelope: Envelope) -> Answer:
    return await decide_ingest(db, "signups", apply, envelope, now=NOW)


async def test_a_person_signs_up_then_a_newer_sign_up_updates_and_an_older_one_is_stale(
    open_service_database: Any,
) -> None:
    db = await open_service_database("signups", MIGRATIONS)
    first = await _decide(db, _person("e1", "p-1", "ana@example.org"))
    assert first.status == 202 and first.outcome == "applied", first.body
    donor_id = first.body["donor_id"]
    newer = _person("e2", "p-1", "ana@example.org", name="Ana O.", updated_at=NOW.isoformat())
    second = await _decide(db, newer)
    assert (second.status, second.body["donor_id"], second.body["version"]) == (202, donor_id, 2)
    stale = await _decide(db, _person("e3", "p-1", "ana@example.org"))
    assert (stale.status, stale.reason) == (409, "stale")
    assert await db.types_emitted() == ["org.pitchin.donor.registered.v1", "org.pitchin.donor.updated.v1"]
    [event] = [e for e in await db.outbox() if e["type"].endswith("updated.v1")]
    assert event["data"]["name"] == "Ana O."


async def test_a_use_cases_refusal_is_the_publishers_rejection_and_rolls_back_only_its_part(
    open_service_database: Any,
) -> None:
    db = await open_service_database("signups", MIGRATIONS)
    assert (await _decide(db, _person("e1", "p-1", "ana@example.org"))).status == 202
    twice = await _decide(db, _person("e2", "p-2", "ANA@example.org"))
    assert (twice.status, twice.reason) == (409, "conflict")
    assert twice.body["errors"] == [{"field": "data.email", "message": "already signed up"}]
    unknown_skill = await _decide(
        db, _person("e3", "p-3", "bo@example.org", skills=[{"skill": "knitting", "level": "expert"}])
    )
    assert (unknown_skill.status, unknown_skill.body["errors"][0]["field"]) == (422, "data.skills.0.skill")
    assert await db.types_emitted() == ["org.pitchin.donor.registered.v1"]
    # The refused people left no external id behind: a corrected event for them is judged afresh.
    again = await _decide(db, _person("e4", "p-2", "ana.two@example.org"))
    assert again.status == 202


async def test_an_rsvp_waits_for_its_event_then_books_and_its_cancellation_is_the_persons(
    open_service_database: Any,
) -> None:
    db = await open_service_database("signups", MIGRATIONS)
    rsvp = _envelope(
        "r1", "rsvp-made.v1", {"external_id": "rsvp-1", "event_id": "evt_1", "name": "Ana", "email": "ana@example.org"}
    )
    with pytest.raises(NotYet):
        await _decide(db, rsvp)
    starts = NOW + timedelta(days=10)
    event = EventCreatedV1(
        federation_id=FED,
        organisation_id=ORG,
        event_id="evt_1",
        kind=EventKind.training,
        title="Free training afternoon",
        starts_at=starts,
        ends_at=starts + timedelta(hours=3),
        time_zone="Europe/London",
        capacity=10,
        organiser_email="training@example.org",
    )
    assert await bookings.learn_event(db.uow, cloud_event(event), event)
    booked = await _decide(db, rsvp)
    assert (booked.status, booked.body["booking_status"], booked.body["event_id"]) == (202, "confirmed", "evt_1")
    cancelled = await _decide(
        db, _envelope("r2", "rsvp-cancelled.v1", {"external_id": "rsvp-1", "updated_at": NOW.isoformat()})
    )
    assert cancelled.status == 202 and cancelled.body["booking_id"] == booked.body["booking_id"]
    events = await db.outbox()
    assert [e["type"] for e in events] == ["org.pitchin.booking.confirmed.v1", "org.pitchin.booking.cancelled.v1"]
    assert events[1]["data"]["by_organiser"] is False


async def test_a_fight_opens_with_its_needs_once(open_service_database: Any) -> None:
    db = await open_service_database("signups", MIGRATIONS)
    need = {
        "title": "Placard graphics",
        "required_skills": [{"skill": "graphic-design"}],
        "estimated_hours": 8,
        "deadline": (NOW + timedelta(days=6)).isoformat(),
    }
    fight = {"external_id": "f-1", "kind": "strike", "title": "Warehouse strike", "needs": [need]}
    opened = await _decide(db, _envelope("f1", "fight-opened.v1", fight))
    assert opened.status == 202 and len(opened.body["need_ids"]) == 1, opened.body
    again = await _decide(db, _envelope("f2", "fight-opened.v1", {**fight, "updated_at": NOW.isoformat()}))
    assert (again.status, again.reason) == (409, "conflict")
    assert await db.types_emitted() == ["org.pitchin.fight.opened.v1", "org.pitchin.need.opened.v1"]
