"""Each service's part of an erasure (issue 19), against the real PostgreSQL, no Kafka: the use
case is given the request as the consumer would be, and its tables are read back."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from typing import Any

import pytest

from pitchin_core.contracts.bookings import BookingConfirmedV1
from pitchin_core.contracts.privacy import ErasureCompletedV1, ErasureRequestedV1
from pitchin_core.erasure import PersonHasher
from pitchin_core.errors import Conflict
from pitchin_core.retention import Retention, Rule
from pitchin_matching import erasure as matching_erasure
from pitchin_notifications import erasure as notifications_erasure
from pitchin_notifications import storage as notifications_storage
from pitchin_scheduling import erasure as scheduling_erasure
from pitchin_scheduling import service as scheduling
from pitchin_signups.domain.bookings import BookingRequest
from pitchin_signups.domain.donors import DonorSignup
from pitchin_signups.service import bookings, donors, erasure
from pitchin_signups.service import erasure as signups_erasure
from pitchin_signups.service.erasure import PersonToErase
from tests.integration.conftest import cloud_event
from tests.integration.tenancy import FED, ORG, ORGANISER, STAFF
from tests.integration.test_signups_rules import _event
from tests.unit.factories import donor_signup

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC).replace(microsecond=0)
HASHER = PersonHasher("integration-tests-person-hash-secret-0123456789")
EMAIL = "Ysolde.Marchbank@Example.org"


async def test_the_hash_postgresql_computes_is_the_one_python_computes(open_service_database: Any) -> None:
    db = await open_service_database("signups", files("pitchin_signups") / "migrations")
    in_sql = await db.pool.fetchval(
        f"SELECT {HASHER.sql('$1::text', 2, 3)}", "  " + EMAIL + " ", HASHER.inner, HASHER.outer
    )
    assert in_sql == HASHER.of(EMAIL)


async def test_signups_erases_its_part_at_once_and_asks_the_others_by_ids_and_hash(open_service_database: Any) -> None:
    db = await open_service_database("signups", files("pitchin_signups") / "migrations")
    event = _event()
    assert await bookings.learn_event(db.uow, cloud_event(event), event)
    donor = await donors.sign_up(db.uow, ORGANISER, DonorSignup.model_validate(donor_signup(email=EMAIL)), NOW)
    booked = await bookings.book(
        db.uow, STAFF, event.event_id, BookingRequest(name="Ysolde Marchbank", email=EMAIL.lower()), NOW
    )

    view = await erasure.request(
        db.uow, STAFF, PersonToErase(email=EMAIL.upper()), HASHER, NOW, asked_by="federation-staff"
    )
    assert view["status"] == "in-progress"
    assert view["services"]["signups"]["status"] == "done"
    assert view["services"]["signups"]["counts"]["donors"] == 1
    assert view["services"]["signups"]["counts"]["bookings"] == 1
    assert {s for s, v in view["services"].items() if v["status"] == "waiting"} == {
        "matching",
        "notifications",
        "scheduling",
    }
    stored = await db.pool.fetchrow("SELECT name, email, phone FROM donors WHERE donor_id = $1", donor.donor_id)
    assert (stored["name"], stored["phone"]) == ("erased", None) and stored["email"].endswith("@invalid")
    booking = await db.pool.fetchrow(
        "SELECT name, email, status FROM bookings WHERE booking_id = $1", booked.booking_id
    )
    assert booking["name"] == "erased" and booking["status"] == "confirmed"  # the place stays counted

    staged = [e for e in await db.outbox() if e["type"] == ErasureRequestedV1.event_type]
    [asked] = staged
    assert asked["key"] == view["request_id"]
    assert asked["data"]["person_hash"] == HASHER.of(EMAIL)
    assert asked["data"]["donor_ids"] == [donor.donor_id] and asked["data"]["booking_ids"] == [booked.booking_id]
    assert EMAIL.lower() not in json.dumps(asked["data"]).lower()

    # Again while it runs: the same request. Once done, the address is gone, so nothing to find.
    again = await erasure.request(db.uow, STAFF, PersonToErase(email=EMAIL), HASHER, NOW, asked_by="federation-staff")
    assert again["request_id"] == view["request_id"]
    for number, service in enumerate(("matching", "notifications", "scheduling")):
        done = ErasureCompletedV1(
            federation_id=FED, request_id=view["request_id"], service=service, counts={"rows": number}, completed_at=NOW
        )
        assert await erasure.record_completion(db.uow, cloud_event(done), done)
    finished = await erasure.get(db.uow, STAFF, view["request_id"])
    assert finished["status"] == "done" and finished["services"]["scheduling"]["counts"] == {"rows": 2}
    with pytest.raises(Conflict):
        await erasure.request(
            db.uow, STAFF, PersonToErase(donor_id=donor.donor_id), HASHER, NOW, asked_by="federation-staff"
        )


async def test_scheduling_anonymises_attendees_for_good_and_ends_the_feed(open_service_database: Any) -> None:
    db = await open_service_database("scheduling", files("pitchin_scheduling") / "migrations")
    facts = {"federation_id": FED, "organisation_id": ORG, "event_id": "evt_1", "language": "en"}
    mine = BookingConfirmedV1(
        **facts, booking_id="bkg_mine", name="Oona Brackenridge", email="oona@example.org", confirmed_at=NOW
    )
    theirs = BookingConfirmedV1(
        **facts, booking_id="bkg_theirs", name="Someone Else", email="else@example.org", confirmed_at=NOW
    )
    for booking in (mine, theirs):
        assert await scheduling.record_booking(db.uow, cloud_event(booking), booking)
    # The request names no booking here: the address's hash alone finds it (someone who only RSVPed).
    request = ErasureRequestedV1(
        federation_id=FED, request_id="era_1", person_hash=HASHER.of("Oona@Example.org"), requested_at=NOW
    )
    delivered = cloud_event(request)
    assert await scheduling_erasure.erase(db.uow, HASHER, delivered, request)
    assert not await scheduling_erasure.erase(db.uow, HASHER, delivered, request), "a redelivery changes nothing"
    rows = {r["booking_id"]: r for r in await db.pool.fetch("SELECT booking_id, name, email FROM attendees")}
    assert rows["bkg_mine"]["name"] == "erased" and rows["bkg_theirs"]["name"] == "Someone Else"
    feeds = [r["email"] for r in await db.pool.fetch("SELECT email FROM person_feeds")]
    assert feeds == ["else@example.org"]
    # A booking fact still in flight does not write the name back.
    late = mine.model_copy(update={"confirmed_at": NOW + timedelta(days=1)})
    await scheduling.record_booking(db.uow, cloud_event(late), late)
    assert await db.pool.fetchval("SELECT name FROM attendees WHERE booking_id = 'bkg_mine'") == "erased"
    assert [r["email"] for r in await db.pool.fetch("SELECT email FROM person_feeds")] == ["else@example.org"]
    [done] = [e for e in await db.outbox() if e["type"] == ErasureCompletedV1.event_type]
    assert done["data"]["counts"]["attendees"] == 1 and done["data"]["counts"]["person_feeds"] == 1


async def test_notifications_blanks_every_message_to_or_about_the_person(open_service_database: Any) -> None:
    db = await open_service_database("notifications", files("pitchin_notifications") / "migrations")
    await db.pool.execute(
        "INSERT INTO people (donor_id, federation_id, name, email, phone, email_ok, sms_ok, language, status)"
        " VALUES ('don_1', $1, 'Ysolde Marchbank', 'ysolde@example.org', '+447700900999', true, true, 'en', 'active')",
        FED,
    )
    await db.pool.execute(
        "INSERT INTO attendees (booking_id, event_id, federation_id, donor_id, name, email, language, status)"
        " VALUES ('bkg_1', 'evt_1', $1, NULL, 'Ysolde Marchbank', 'ysolde@example.org', 'en', 'confirmed')",
        FED,
    )
    deliveries = [
        # (channel, person_ref, recipient, body): to the donor, to the address alone (an RSVP's
        # mail), by text, an organisation's webhook about the booking, and someone else's mail.
        ("email", "don_1", "ysolde@example.org", "Welcome, Ysolde"),
        ("email", None, "Ysolde@Example.org", "Your place, Ysolde"),
        ("sms", None, "+447700900999", "Reminder"),
        ("webhook", None, "https://org.example/hooks", '{"booking_id": "bkg_1", "name": "Ysolde"}'),
        ("email", None, "else@example.org", "Hello"),
    ]
    for number, (channel, ref, recipient, body) in enumerate(deliveries):
        await db.pool.execute(
            "INSERT INTO deliveries (delivery_id, idempotency_key, federation_id, event_id, event_type, channel,"
            " person_ref, recipient, subject, body_text, action_url, last_error, status)"
            " VALUES (gen_random_uuid(), $1, $2, 'e1', 't', $3, $4, $5, 'Subject', $6, 'https://x/me/d1', 'err',"
            " 'sent')",
            f"e{number}:{recipient.lower()}:{channel}",  # as the service makes it: with the address
            FED,
            channel,
            ref,
            recipient,
            body,
        )
    request = ErasureRequestedV1(
        federation_id=FED,
        request_id="era_1",
        person_hash=HASHER.of("ysolde@example.org"),
        donor_ids=["don_1"],
        booking_ids=["bkg_1"],
        requested_at=NOW,
    )
    assert await notifications_erasure.erase(db.uow, HASHER, cloud_event(request), request)
    kept = await db.pool.fetch("SELECT idempotency_key, channel, recipient, body_text, action_url FROM deliveries")
    blanked = [r for r in kept if r["body_text"] == ""]
    assert len(blanked) == 4 and all(r["action_url"] is None for r in blanked)
    assert not any("ysolde" in r["idempotency_key"].lower() for r in kept)
    assert {r["recipient"] for r in kept} == {"erased", "https://org.example/hooks", "else@example.org"}
    assert await db.pool.fetchval("SELECT name FROM people") == "erased"
    assert await db.pool.fetchval("SELECT name FROM attendees") == "erased"
    # Facts still in flight on other topics do not bring the person back.
    late_person: dict[str, Any] = {
        "donor_id": "don_1",
        "federation_id": FED,
        "organisation_id": None,
        "name": "Ysolde Marchbank",
        "email": "ysolde@example.org",
        "phone": None,
        "email_ok": True,
        "sms_ok": False,
        "language": "en",
        "time_zone": None,
        "purposes": [],
        "status": "active",
        "version": 7,
    }
    assert not await notifications_storage.upsert_person(db.pool, late_person)
    late_booking: dict[str, Any] = {
        "booking_id": "bkg_1",
        "event_id": "evt_1",
        "federation_id": FED,
        "organisation_id": None,
        "donor_id": None,
        "name": "Ysolde Marchbank",
        "email": "ysolde@example.org",
        "language": "en",
        "status": "confirmed",
    }
    await notifications_storage.upsert_attendee(db.pool, late_booking)
    assert await db.pool.fetchval("SELECT name FROM people") == "erased"
    assert await db.pool.fetchval("SELECT name FROM attendees") == "erased"
    [done] = [e for e in await db.outbox() if e["type"] == ErasureCompletedV1.event_type]
    assert done["data"]["counts"]["deliveries"] == 4 and done["data"]["counts"]["people"] == 1


async def test_matching_keeps_hours_and_forgets_words(open_service_database: Any) -> None:
    db = await open_service_database("matching", files("pitchin_matching") / "migrations")
    await db.pool.execute(
        "INSERT INTO assignments (assignment_id, need_id, fight_id, donor_id, federation_id, status, accepted_at,"
        " completed_at, hours_given, thanks) VALUES ('off_1', 'ned_1', 'fgt_1', 'don_1', $1, 'completed', $2, $2,"
        " 6.5, 'Thank you Ysolde, the posters were wonderful')",
        FED,
        NOW,
    )
    await db.pool.execute(
        "INSERT INTO offers (offer_id, need_id, fight_id, donor_id, federation_id, status, score, explanation,"
        " made_at, expires_at, reason) VALUES ('off_2', 'ned_2', 'fgt_1', 'don_1', $1, 'declined', 1, '{}', $2, $2,"
        " 'I am Ysolde and I am away')",
        FED,
        NOW,
    )
    request = ErasureRequestedV1(
        federation_id=FED, request_id="era_1", person_hash="0" * 64, donor_ids=["don_1"], requested_at=NOW
    )
    assert await matching_erasure.erase(db.uow, cloud_event(request), request)
    row = await db.pool.fetchrow("SELECT hours_given, thanks, status FROM assignments")
    assert (float(row["hours_given"]), row["thanks"], row["status"]) == (6.5, "", "completed")
    assert await db.pool.fetchval("SELECT reason FROM offers") == ""
    assert await db.pool.fetchval("SELECT status FROM donors WHERE donor_id = 'don_1'") == "withdrawn"


@pytest.mark.parametrize(
    ("service", "rules"),
    [
        ("signups", signups_erasure.RETENTION),
        ("matching", matching_erasure.RETENTION),
        ("notifications", notifications_erasure.RETENTION),
        ("scheduling", scheduling_erasure.RETENTION),
    ],
)
async def test_every_retention_rule_runs_on_its_schema(
    open_service_database: Any, service: str, rules: tuple[Rule, ...]
) -> None:
    db = await open_service_database(service, files(f"pitchin_{service}") / "migrations")
    job = Retention(db.pool, rules, batch_size=10)
    assert await job.work_once() == 0  # nothing is due in an empty schema, and every statement is valid SQL
    assert set(job.applied) == {rule.table for rule in rules}


async def test_a_finished_message_keeps_its_row_but_not_its_words_after_90_days(open_service_database: Any) -> None:
    db = await open_service_database("notifications", files("pitchin_notifications") / "migrations")
    for key, age in (("old", 91), ("recent", 89)):
        await db.pool.execute(
            "INSERT INTO deliveries (delivery_id, idempotency_key, federation_id, event_id, event_type, channel,"
            " recipient, subject, body_text, status, updated_at) VALUES (gen_random_uuid(), $1, $2, 'e', 't',"
            " 'email', 'ana@example.org', 'Hello Ana', 'Dear Ana', 'sent', now() - make_interval(days => $3))",
            f"e:{key}:ana@example.org:email",
            FED,
            age,
        )
    job = Retention(db.pool, notifications_erasure.RETENTION)
    assert await job.work_once() == 1
    rows = await db.pool.fetch("SELECT recipient, body_text FROM deliveries ORDER BY updated_at")
    assert [(r["recipient"], r["body_text"]) for r in rows] == [("expired", ""), ("ana@example.org", "Dear Ana")]
    assert job.applied["deliveries"] == 1
