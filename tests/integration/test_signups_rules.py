"""Signups' rules on its own: use cases and storage against the real PostgreSQL, no Kafka, no other service.

Each rule here used to be seen only end to end (tests/e2e/test_signups.py, test_bad_input.py);
here a refusal is the domain error itself and the events are read back from the outbox.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from importlib.resources import files
from typing import Any

import pytest

from pitchin_core.contracts.bookings import BookingOfferAcceptedV1, BookingOfferedV1
from pitchin_core.contracts.matching import AssignmentConfirmedV1, AssignmentReleasedV1
from pitchin_core.contracts.scheduling import EventCancelledV1, EventCreatedV1, EventKind
from pitchin_core.errors import Conflict, FieldError, Forbidden, NotFound
from pitchin_signups.domain.bookings import BookingRefused, BookingRequest
from pitchin_signups.domain.donors import DonorChanges, DonorSignup, SignupRefused
from pitchin_signups.domain.fights import FightDraft, NeedChanges, NeedNotLive
from pitchin_signups.domain.taxonomy import UnknownSkill
from pitchin_signups.service import bookings, donors, fights, taxonomy
from tests.integration.conftest import cloud_event
from tests.integration.tenancy import FED, NEIGHBOUR, ORG, ORGANISER, OTHER_ORG, STAFF, STRANGER
from tests.unit.factories import donor_signup

pytestmark = pytest.mark.integration
MIGRATIONS = files("pitchin_signups") / "migrations"
NOW = datetime.now(UTC).replace(microsecond=0)


def _signup(**overrides: Any) -> DonorSignup:
    return DonorSignup.model_validate(donor_signup(**overrides))


def _strike(donors_wanted: int = 1) -> FightDraft:
    return FightDraft.model_validate(
        {
            "kind": "strike",
            "title": "Retail Local 99 strike",
            "causes": ["labour"],
            "needs": [
                {
                    "title": "Placard graphics",
                    "required_skills": [{"skill": "graphic-design"}],
                    "estimated_hours": 8,
                    "deadline": (NOW + timedelta(days=6)).isoformat(),
                    "donors_wanted": donors_wanted,
                }
            ],
        }
    )


def _event(event_id: str = "evt_launch", *, capacity: int | None = 2, waitlist: bool = True) -> EventCreatedV1:
    starts = NOW + timedelta(days=20)
    return EventCreatedV1(
        federation_id=FED,
        organisation_id=ORG,
        event_id=event_id,
        kind=EventKind.book_launch,
        title="Anarchists in the Boardroom: book launch",
        starts_at=starts,
        ends_at=starts + timedelta(hours=2),
        time_zone="Europe/London",
        capacity=capacity,
        waitlist=waitlist,
        organiser_email="launch@example.org",
    )


async def _known_event(db: Any, event: EventCreatedV1) -> None:
    """Signups books only events it learnt from scheduling: learn it the way the consumer does."""
    assert await bookings.learn_event(db.uow, cloud_event(event), event)


def _person(i: int) -> BookingRequest:
    return BookingRequest.model_validate({"name": f"Person {i}", "email": f"p{i}@rush.example"})


# Donors ---------------------------------------------------------------------------------


async def test_a_second_signup_with_the_same_email_is_a_conflict_and_emits_nothing(open_service_database: Any) -> None:
    db = await open_service_database("signups", MIGRATIONS)
    donor = await donors.sign_up(db.uow, ORGANISER, _signup(email="Twice@Example.org"), NOW)
    assert donor.email == "twice@example.org" and donor.organisation_id == ORG
    with pytest.raises(Conflict) as refused:
        await donors.sign_up(db.uow, STAFF, _signup(email="twice@example.org"), NOW)
    assert (
        refused.value.title == "Already signed up"
        and refused.value.kind == "tag:pitchin.example,2026:problems/duplicate"
    )
    assert refused.value.errors == [FieldError("email", "already signed up")]
    assert await db.types_emitted() == ["org.pitchin.donor.registered.v1"]
    [registered] = await db.outbox()
    assert (registered["key"], registered["subject"]) == (donor.donor_id, f"donors/{donor.donor_id}")


async def test_another_organisations_or_federations_caller_finds_no_donor(open_service_database: Any) -> None:
    db = await open_service_database("signups", MIGRATIONS)
    donor = await donors.sign_up(db.uow, ORGANISER, _signup(), NOW)
    for caller in (NEIGHBOUR, STRANGER):
        with pytest.raises(NotFound):
            await donors.get(db.uow, caller, donor.donor_id)
        with pytest.raises(NotFound):
            await donors.change(db.uow, caller, donor.donor_id, DonorChanges(name="Taken over"), NOW)
        assert await donors.find(db.uow, caller, skill=None, status=None, after=None, limit=50) == []
    mine = await donors.get(db.uow, STAFF, donor.donor_id)
    assert mine["email"] == donor.email and mine["skills"][0]["skill"] == "social-media"


async def test_a_change_to_anothers_email_is_a_conflict(open_service_database: Any) -> None:
    db = await open_service_database("signups", MIGRATIONS)
    await donors.sign_up(db.uow, ORGANISER, _signup(email="first@example.org"), NOW)
    second = await donors.sign_up(db.uow, ORGANISER, _signup(email="second@example.org"), NOW)
    with pytest.raises(Conflict) as refused:
        await donors.change(db.uow, ORGANISER, second.donor_id, DonorChanges(email="first@example.org"), NOW)
    assert refused.value.title == "Email in use"
    changed = await donors.change(db.uow, ORGANISER, second.donor_id, DonorChanges(name="Second Person"), NOW)
    assert changed.version == 2
    assert await db.types_emitted() == ["org.pitchin.donor.registered.v1"] * 2 + ["org.pitchin.donor.updated.v1"]


async def test_refusals_name_the_field_and_change_nothing(open_service_database: Any) -> None:
    db = await open_service_database("signups", MIGRATIONS)
    with pytest.raises(SignupRefused) as other_org:
        await donors.sign_up(db.uow, ORGANISER, _signup(organisation_id=OTHER_ORG), NOW)
    assert other_org.value.field == "organisation_id"
    with pytest.raises(UnknownSkill) as unknown:
        await donors.sign_up(db.uow, ORGANISER, _signup(skills=[{"skill": "knitting", "level": "expert"}]), NOW)
    assert [e.field for e in unknown.value.errors] == ["skills.0.skill"]
    with pytest.raises(Forbidden):
        await taxonomy.replace(db.uow, ORGANISER, {"knitting": "Knitting"})
    assert await db.outbox() == []


async def test_erasure_removes_the_person_and_a_second_withdrawal_is_a_conflict(open_service_database: Any) -> None:
    db = await open_service_database("signups", MIGRATIONS)
    donor = await donors.sign_up(db.uow, ORGANISER, _signup(email="leaving@example.org"), NOW)
    withdrawn = await donors.withdraw(db.uow, ORGANISER, donor.donor_id, True, NOW)
    assert withdrawn.erase is True
    stored = await donors.get(db.uow, ORGANISER, donor.donor_id)
    assert stored["status"] == "withdrawn" and stored["name"] == "erased" and "leaving" not in str(stored)
    with pytest.raises(Conflict) as again:
        await donors.withdraw(db.uow, ORGANISER, donor.donor_id, True, NOW)
    assert again.value.title == "Already erased"
    assert await db.types_emitted() == ["org.pitchin.donor.registered.v1", "org.pitchin.donor.withdrawn.v1"]


async def test_a_csv_import_keeps_good_rows_and_a_rerun_changes_nothing(open_service_database: Any) -> None:
    db = await open_service_database("signups", MIGRATIONS)
    text = (
        "name,email,skills,hours_per_week,time_zone,consent_wording_version,consent_agreed_at\n"
        "Ann,ann@example.org,social-media:expert,3,Europe/London,2026-01,2026-11-01T09:00:00Z\n"
        "Bob,bob@example.org,knitting:expert,3,Europe/London,2026-01,2026-11-01T09:00:00Z\n"
        "Cy,not-an-email,photography,3,Europe/London,2026-01,2026-11-01T09:00:00Z\n"
    )
    first = await donors.import_csv(db.uow, STAFF, text, NOW)
    assert len(first.imported) == 1
    assert [(e["row"], e["field"]) for e in first.errors] == [(3, "skills.0.skill"), (4, "email")]
    second = await donors.import_csv(db.uow, STAFF, text, NOW)
    assert second.imported == [] and second.already_registered == [2]
    assert await db.types_emitted() == ["org.pitchin.donor.registered.v1"]


# Fights and needs -------------------------------------------------------------------------


async def test_a_need_is_filled_by_its_assignment_once_and_opens_again_on_release(open_service_database: Any) -> None:
    db = await open_service_database("signups", MIGRATIONS)
    fight, [need] = await fights.start(db.uow, ORGANISER, _strike(donors_wanted=1), NOW)
    confirmed = AssignmentConfirmedV1(
        federation_id=FED,
        organisation_id=ORG,
        offer_id="off_1",
        need_id=need.need_id,
        fight_id=fight.fight_id,
        donor_id="don_x",
        confirmed_at=NOW,
    )
    delivered = cloud_event(confirmed)
    assert await fights.apply_assignment(db.uow, delivered, confirmed, NOW)
    # The same CloudEvent again (a redelivery): applied once only.
    assert not await fights.apply_assignment(db.uow, delivered, confirmed, NOW)
    filled = await fights.get_need(db.uow, ORGANISER, need.need_id)
    assert (filled["status"], filled["version"], filled["assigned_donors"]) == ("filled", 2, ["don_x"])

    released = AssignmentReleasedV1(
        **confirmed.model_dump(exclude={"confirmed_at"}), reason="could not make it", released_at=NOW
    )
    assert await fights.apply_assignment(db.uow, cloud_event(released), released, NOW)
    reopened = await fights.get_need(db.uow, ORGANISER, need.need_id)
    assert (reopened["status"], reopened["version"], reopened["assigned_donors"]) == ("open", 3, [])

    events = await db.outbox()
    assert [e["type"] for e in events] == [
        "org.pitchin.fight.opened.v1",
        "org.pitchin.need.opened.v1",
        "org.pitchin.need.updated.v1",
        "org.pitchin.need.filled.v1",
        "org.pitchin.need.updated.v1",
    ]
    assert events[3]["data"]["donor_ids"] == ["don_x"]
    assert {e["key"] for e in events[1:]} == {need.need_id}


async def test_an_assignment_for_a_need_signups_never_opened_is_applied_as_nothing(open_service_database: Any) -> None:
    db = await open_service_database("signups", MIGRATIONS)
    stray = AssignmentConfirmedV1(
        federation_id=FED,
        organisation_id=ORG,
        offer_id="off_1",
        need_id="ned_unknown",
        fight_id="fgt_unknown",
        donor_id="don_x",
        confirmed_at=NOW,
    )
    assert await fights.apply_assignment(db.uow, cloud_event(stray), stray, NOW)
    assert await db.outbox() == []


async def test_closing_a_fight_cancels_its_live_needs_and_then_nothing_changes(open_service_database: Any) -> None:
    db = await open_service_database("signups", MIGRATIONS)
    fight, [need] = await fights.start(db.uow, ORGANISER, _strike(), NOW)
    with pytest.raises(NotFound):
        await fights.close(db.uow, NEIGHBOUR, fight.fight_id, "", NOW)
    await fights.close(db.uow, ORGANISER, fight.fight_id, "won", NOW)
    assert (await fights.get_need(db.uow, ORGANISER, need.need_id))["status"] == "cancelled"
    with pytest.raises(Conflict) as again:
        await fights.close(db.uow, ORGANISER, fight.fight_id, "won", NOW)
    assert again.value.title == "Already closed"
    with pytest.raises(Conflict) as closed_fight:
        await fights.add_need(db.uow, ORGANISER, fight.fight_id, _strike().needs[0], NOW)
    assert closed_fight.value.title == "Fight closed"
    with pytest.raises(NeedNotLive):
        await fights.change_need(db.uow, ORGANISER, need.need_id, NeedChanges(title="Later"), NOW)
    assert await db.types_emitted() == [
        "org.pitchin.fight.opened.v1",
        "org.pitchin.need.opened.v1",
        "org.pitchin.need.closed.v1",
        "org.pitchin.fight.closed.v1",
    ]


async def test_other_organisations_see_no_need(open_service_database: Any) -> None:
    db = await open_service_database("signups", MIGRATIONS)
    _, [need] = await fights.start(db.uow, ORGANISER, _strike(), NOW)
    for caller in (NEIGHBOUR, STRANGER):
        with pytest.raises(NotFound):
            await fights.get_need(db.uow, caller, need.need_id)
        with pytest.raises(NotFound):
            await fights.close_need(db.uow, caller, need.need_id, NOW)
        assert await fights.find_needs(db.uow, caller, status=None, urgency=None, after=None, limit=50) == []
    assert (await fights.get_need(db.uow, STAFF, need.need_id))["need_id"] == need.need_id


# Bookings ---------------------------------------------------------------------------------


async def test_places_go_up_to_capacity_then_the_waitlist_in_order(open_service_database: Any) -> None:
    db = await open_service_database("signups", MIGRATIONS)
    event = _event(capacity=2)
    await _known_event(db, event)
    booked = [await bookings.book(db.uow, STAFF, event.event_id, _person(i), NOW) for i in range(5)]
    answers = [b.event() for b in booked]
    assert [type(a).__name__ for a in answers] == ["BookingConfirmedV1"] * 2 + ["BookingWaitlistedV1"] * 3
    assert [getattr(a, "position", None) for a in answers] == [None, None, 1, 2, 3]
    assert [b.position for b in booked] == [None, None, 1, 2, 3]
    # The events the booking call built in SQL are the contract's, field for field.
    staged = await db.outbox()
    assert [set(e["data"]) for e in staged] == [set(type(a).model_fields) for a in answers]
    assert [type(a).model_validate(e["data"]) for a, e in zip(answers, staged, strict=True)] == answers

    # Booking again while holding a place (any case of the address) is a conflict and keeps no place.
    with pytest.raises(Conflict) as again:
        await bookings.book(
            db.uow, STAFF, event.event_id, _person(0).model_copy(update={"email": "P0@RUSH.EXAMPLE"}), NOW
        )
    assert again.value.title == "Already booked" and again.value.errors == [FieldError("email", "already booked")]
    listing = await bookings.of_event(db.uow, ORGANISER, event.event_id, None)
    assert (listing["capacity"], listing["confirmed"], len(listing["items"])) == (2, 2, 5)

    # A cancelled place is offered to the first in line and held for them; the rest move up.
    cancelled = await bookings.cancel(db.uow, STAFF, answers[0].booking_id, NOW)
    assert [set(e["data"]) for e in (await db.outbox())[-2:]] == [set(type(e).model_fields) for e in cancelled]
    assert [e.event_type for e in cancelled] == ["org.pitchin.booking.cancelled.v1", "org.pitchin.booking.offered.v1"]
    offered = cancelled[1]
    assert isinstance(offered, BookingOfferedV1) and offered.booking_id == answers[2].booking_id
    assert offered.expires_at > NOW
    assert (await bookings.get(db.uow, STAFF, answers[2].booking_id))["status"] == "offered"
    assert (await bookings.get(db.uow, STAFF, answers[3].booking_id))["position"] == 1
    held = await bookings.of_event(db.uow, ORGANISER, event.event_id, None)
    assert (held["confirmed"], held["offered"]) == (1, 1)
    # An offered place is not yet a place at the door.
    with pytest.raises(Conflict) as not_yet:
        await bookings.check_in(db.uow, ORGANISER, answers[2].booking_id, NOW)
    assert not_yet.value.title == "Not confirmed"
    taken = await bookings.answer_offer(db.uow, STAFF, answers[2].booking_id, "accept", NOW)
    assert [type(e) for e in taken] == [BookingOfferAcceptedV1]
    assert (await bookings.get(db.uow, STAFF, answers[2].booking_id))["status"] == "confirmed"
    assert (await bookings.of_event(db.uow, ORGANISER, event.event_id, None))["confirmed"] == 2
    with pytest.raises(Conflict) as twice:
        await bookings.cancel(db.uow, STAFF, answers[0].booking_id, NOW)
    assert twice.value.title == "Already cancelled"

    checked = await bookings.check_in(db.uow, ORGANISER, answers[2].booking_id, NOW)
    assert checked["checked_in_at"] is not None
    with pytest.raises(Conflict) as waiting:
        await bookings.check_in(db.uow, ORGANISER, answers[3].booking_id, NOW)
    assert waiting.value.title == "Not confirmed"

    assert await db.types_emitted() == [
        "org.pitchin.booking.confirmed.v1",
        "org.pitchin.booking.confirmed.v1",
        "org.pitchin.booking.waitlisted.v1",
        "org.pitchin.booking.waitlisted.v1",
        "org.pitchin.booking.waitlisted.v1",
        "org.pitchin.booking.cancelled.v1",
        "org.pitchin.booking.offered.v1",
        "org.pitchin.booking.offer-accepted.v1",
        "org.pitchin.booking.attended.v1",  # the check-in: a check-in at the door counts as attended
    ]
    assert {e["key"] for e in await db.outbox()} == {event.event_id}


async def test_a_full_event_without_a_waitlist_refuses_and_a_cancelled_event_takes_no_booking(
    open_service_database: Any,
) -> None:
    db = await open_service_database("signups", MIGRATIONS)
    event = _event(capacity=1, waitlist=False)
    await _known_event(db, event)
    await bookings.book(db.uow, STAFF, event.event_id, _person(1), NOW)
    with pytest.raises(Conflict) as full:
        await bookings.book(db.uow, STAFF, event.event_id, _person(2), NOW)
    assert full.value.title == "Event full" and full.value.errors == [FieldError("event_id", "full")]

    cancelled = EventCancelledV1(
        **event.model_dump(include={"federation_id", "organisation_id", "event_id", "kind", "title"}),
        **event.model_dump(include={"starts_at", "ends_at", "time_zone"}),
        version=2,
        cancelled_at=NOW,
    )
    assert await bookings.learn_event_fact(db.uow, cloud_event(cancelled), cancelled)
    with pytest.raises(BookingRefused) as refused:
        await bookings.book(db.uow, STAFF, event.event_id, _person(3), NOW)
    assert (refused.value.status, refused.value.field) == (409, "event_id")
    assert await db.types_emitted() == ["org.pitchin.booking.confirmed.v1"]


async def test_an_event_is_learnt_once_and_an_older_version_changes_nothing(open_service_database: Any) -> None:
    db = await open_service_database("signups", MIGRATIONS)
    created = _event(capacity=10)
    delivered = cloud_event(created)
    assert await bookings.learn_event(db.uow, delivered, created)
    assert not await bookings.learn_event(db.uow, delivered, created)
    newer = created.model_copy(update={"version": 3, "capacity": 20})
    assert await bookings.learn_event(db.uow, cloud_event(newer), newer)
    assert await bookings.learn_event(db.uow, cloud_event(created), created)  # late, older: applied as nothing
    assert (await bookings.of_event(db.uow, ORGANISER, created.event_id, None))["capacity"] == 20


async def test_events_of_other_federations_or_unknown_events_cannot_be_booked(open_service_database: Any) -> None:
    db = await open_service_database("signups", MIGRATIONS)
    await _known_event(db, _event())
    with pytest.raises(NotFound):
        await bookings.book(db.uow, STRANGER, "evt_launch", _person(1), NOW)
    with pytest.raises(NotFound):
        await bookings.book(db.uow, STAFF, "evt_never_heard_of", _person(1), NOW)
    with pytest.raises(NotFound):
        await bookings.of_event(db.uow, NEIGHBOUR, "evt_launch", None)
    assert await db.outbox() == []


async def test_an_organisation_sees_and_cancels_only_bookings_of_its_own_events(open_service_database: Any) -> None:
    db = await open_service_database("signups", MIGRATIONS)
    event = _event(capacity=5)  # ORG's event
    await _known_event(db, event)
    booked = await bookings.book(db.uow, STAFF, event.event_id, _person(1), NOW)
    # An organiser of another member organisation of the same federation: as if the id did not exist.
    with pytest.raises(NotFound):
        await bookings.get(db.uow, NEIGHBOUR, booked.booking_id)
    with pytest.raises(NotFound):
        await bookings.cancel(db.uow, NEIGHBOUR, booked.booking_id, NOW)
    assert (await bookings.get(db.uow, ORGANISER, booked.booking_id))["status"] == "confirmed"
    await bookings.cancel(db.uow, ORGANISER, booked.booking_id, NOW)
    assert (await bookings.get(db.uow, STAFF, booked.booking_id))["status"] == "cancelled"
