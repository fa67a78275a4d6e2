"""What other systems publish, applied by signups' own use cases inside the ingest pipeline's transaction.

Real PostgreSQL, no Kafka: the pipeline decides each envelope with `pitchin_signups.ingest.apply`,
whose use cases run as savepoints of the pipeline's transaction; the outbox shows what the API
would have emitted, and a refusal leaves none of the use case's rows behind.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from types import SimpleNamespace
from typing import Any

import pytest

from pitchin_core.contracts.scheduling import EventCreatedV1, EventKind
from pitchin_core.ingest import Answer, Envelope, NotYet, Pipeline, register_publisher
from pitchin_core.ingest.kafka_door import KafkaDoor
from pitchin_core.telemetry import Metrics
from pitchin_core.uow import one_transaction
from pitchin_signups.ingest.apply import apply
from pitchin_signups.service import bookings
from tests.integration.conftest import INGEST_REGISTRATION, INGEST_SOURCE, cloud_event, decide_ingest, ingest_envelope
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


def _batch() -> list[Envelope]:
    """A batch with every case the set-based path must answer as one by one would."""
    invalid = _person("e6", "p-6", "dee@example.org")
    invalid.data.pop("email")
    return [
        _person("e1", "p-1", "ana@example.org"),
        _person("e2", "p-2", "bo@example.org"),
        _person("e3", "p-1", "ana@example.org", name="Ana O.", updated_at=NOW.isoformat()),  # sees e1
        _person("e4", "p-3", "ANA@example.org"),  # Ana's email under another external id
        _person("e5", "p-4", "cy@example.org", skills=[{"skill": "knitting", "level": "expert"}]),
        _person("e1", "p-1", "ana@example.org"),  # the publisher sent e1 twice
        invalid,
        _person("e7", "p-5", "eve@example.org"),
        _person("e2", "p-2", "someone.else@example.org"),  # e2's id for another event
    ]


def _comparable(answers: list[Answer]) -> list[tuple[Any, ...]]:
    """What a publisher is told, with the donor ids (new each run) left out."""
    return [
        (a.status, a.outcome, a.reason, a.replayed, {k: v for k, v in a.body.items() if k != "donor_id"})
        for a in answers
    ]


async def test_a_batch_decided_set_based_answers_and_writes_as_one_by_one(open_service_database: Any) -> None:
    one_by_one, together = (
        await open_service_database("signups", MIGRATIONS),
        await open_service_database("signups", MIGRATIONS),
    )
    expected = [await _decide(one_by_one, envelope) for envelope in _batch()]
    pipeline = Pipeline("signups", Metrics("signups"))
    async with one_transaction():
        answers = await pipeline.decide_many(
            together.uow, [(e, INGEST_REGISTRATION) for e in _batch()], apply, apply.many, now=NOW
        )

    assert _comparable(answers) == _comparable(expected)
    assert [(a.status, a.reason, a.replayed) for a in answers] == [
        (202, "", False),
        (202, "", False),
        (202, "", False),
        (409, "conflict", False),
        (422, "refused", False),
        (202, "", True),
        (422, "schema", False),
        (202, "", False),
        (409, "id-reused", False),
    ]
    # The update saw the sign-up of the same person earlier in the batch.
    assert answers[2].body["donor_id"] == answers[0].body["donor_id"] and answers[2].body["version"] == 2
    assert (
        await together.types_emitted()
        == await one_by_one.types_emitted()
        == [
            "org.pitchin.donor.registered.v1",
            "org.pitchin.donor.registered.v1",
            "org.pitchin.donor.updated.v1",
            "org.pitchin.donor.registered.v1",
        ]
    )
    count = "SELECT count(*) FROM donors"
    assert await together.pool.fetchval(count) == await one_by_one.pool.fetchval(count) == 3
    subjects = "SELECT external_id, internal_id FROM ingest_subjects ORDER BY external_id"
    assert [r["external_id"] for r in await together.pool.fetch(subjects)] == ["p-1", "p-2", "p-5"]

    # The batch redelivered adds nothing and replays every answer it kept.
    async with one_transaction():
        again = await pipeline.decide_many(
            together.uow, [(e, INGEST_REGISTRATION) for e in _batch()], apply, apply.many, now=NOW
        )
    kept = [i for i, a in enumerate(answers) if a.reason not in ("schema", "id-reused")]
    assert all(again[i].replayed and again[i].body == answers[i].body for i in kept)
    assert len(await together.outbox()) == 4 and await together.pool.fetchval(count) == 3


async def test_a_batch_of_sign_ups_stages_each_registration_for_kafka_with_its_own_key(
    open_service_database: Any,
) -> None:
    db = await open_service_database("signups", MIGRATIONS)
    people = [_person(f"b{i}", f"p-{i}", f"person{i}@example.org") for i in range(50)]
    async with one_transaction():
        answers = await Pipeline("signups", Metrics("signups")).decide_many(
            db.uow, [(e, INGEST_REGISTRATION) for e in people], apply, apply.many, now=NOW, stage_rejections=True
        )
    assert {a.status for a in answers} == {202}
    events = await db.outbox()
    # In the batch's order, each keyed by its own donor and carrying that donor.
    assert [e["key"] for e in events] == [a.body["donor_id"] for a in answers]
    assert [e["data"]["email"] for e in events] == [f"person{i}@example.org" for i in range(50)]
    assert all(e["subject"] == f"donors/{e['key']}" for e in events)


@dataclass
class _Record:
    """What the Kafka door reads of a consumed record."""

    headers: list[tuple[str, bytes]]
    value: bytes
    topic: str = "pitchin.ingest.v1"
    partition: int = 0
    offset: int = 0
    key: bytes | None = None


def _kafka(envelope: Envelope, offset: int, *, source: str | None = INGEST_SOURCE) -> _Record:
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", (envelope.id or "").encode()),
        ("ce_type", (envelope.type or "").encode()),
    ]
    if source is not None:
        headers.append(("ce_source", source.encode()))
    return _Record(headers, json.dumps(envelope.data).encode(), offset=offset, key=(source or "").encode())


async def test_the_kafka_door_decides_a_batch_set_based_keeps_order_per_person_and_sets_poison_aside(
    open_service_database: Any,
) -> None:
    db = await open_service_database("signups", MIGRATIONS)
    async with db.uow() as tx:
        await register_publisher(tx.conn, source=INGEST_SOURCE, federation_id=FED, organisations=(ORG,))
    runtime = SimpleNamespace(
        pool=db.pool, uow=db.uow, settings=SimpleNamespace(service_name="signups"), metrics=Metrics("signups")
    )
    door = KafkaDoor(runtime, Pipeline("signups", runtime.metrics), apply, apply.many)  # type: ignore[arg-type]
    people = _batch()
    records = [_kafka(e, offset) for offset, e in enumerate(people)]
    records.insert(3, _kafka(people[1], 99, source=None))  # cannot be answered to anyone

    poisoned = await door(records)
    assert [(r.offset, p.category) for r, p in poisoned] == [(99, "unaddressable")]
    # What one by one would have written, and each refusal staged for the publisher.
    emitted = await db.types_emitted()
    donors_events = [t for t in emitted if ".donor." in t]
    assert donors_events == [
        "org.pitchin.donor.registered.v1",
        "org.pitchin.donor.registered.v1",
        "org.pitchin.donor.updated.v1",
        "org.pitchin.donor.registered.v1",
    ]
    rejected = [e["data"]["reason"] for e in await db.outbox() if e["type"] == "org.pitchin.ingest.rejected.v1"]
    assert rejected == ["conflict", "refused", "schema", "id-reused"]
    outcomes = "SELECT event_id, outcome FROM ingest_seen WHERE source = $1 ORDER BY event_id"
    assert [tuple(r) for r in await db.pool.fetch(outcomes, INGEST_SOURCE)] == [
        ("e1", "applied"),
        ("e2", "applied"),
        ("e3", "applied"),
        ("e4", "rejected"),
        ("e5", "rejected"),
        ("e6", "rejected"),
        ("e7", "applied"),
    ]

    # The batch redelivered (a crash before the offsets committed) adds no donor and no event,
    # except the refusal of the reused id, told to the publisher again (as one by one does).
    assert [(r.offset, p.category) for r, p in await door(records)] == [(99, "unaddressable")]
    assert await db.types_emitted() == [*emitted, "org.pitchin.ingest.rejected.v1"]
    assert await db.pool.fetchval("SELECT count(*) FROM donors") == 3
