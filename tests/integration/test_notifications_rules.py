"""Notifications' rules on its own: consumed events fed to its use cases against the real
PostgreSQL, no Kafka and no SMTP (nothing is sent: what matters is what was staged).

Each rule here used to be seen only end to end (tests/e2e/test_notifications*.py): a
redelivered event staged once, quiet hours, unsubscribes, digests, event-wide messages,
webhooks, overrides, erasure, tenancy and re-sending.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest

from pitchin_core.auth import Caller
from pitchin_core.contracts.bookings import BookingCancelledV1, BookingConfirmedV1, BookingWaitlistedV1
from pitchin_core.contracts.cloudevents import CloudEvent
from pitchin_core.contracts.donors import DonorRegisteredV1, DonorUpdatedV1, DonorWithdrawnV1
from pitchin_core.contracts.matching import OfferExpiredV1, OfferMadeV1
from pitchin_core.contracts.scheduling import EventCreatedV1, EventKind, EventRescheduledV1, ReminderDueV1
from pitchin_core.errors import Conflict, Forbidden, NotFound
from pitchin_core.links import LOCAL_DONOR_LINK_SECRET, sign_references
from pitchin_core.outbound import OutboundRefused
from pitchin_notifications import storage
from pitchin_notifications.domain.messages import link_holder
from pitchin_notifications.service import configuration, deliveries, subscriptions
from pitchin_notifications.service.configuration import TemplateDoesNotCompile
from pitchin_notifications.service.messages import Notifications, Policy
from pitchin_notifications.templates import Renderer
from tests.e2e.helpers import booking_link_in
from tests.integration.conftest import ServiceDatabase, cloud_event
from tests.integration.tenancy import FED, NEIGHBOUR, ORG, ORGANISER, OTHER_ORG, STAFF, STRANGER
from tests.unit.factories import donor_registered

pytestmark = pytest.mark.integration
MIGRATIONS = files("pitchin_notifications") / "migrations"
NOW = datetime.now(UTC).replace(microsecond=0)
SOON = NOW + timedelta(days=30)
PUBLISHER = Caller(FED, ORG, "publisher")
BASE_URL = "http://127.0.0.1:8000"


async def _open(open_service_database: Any) -> tuple[ServiceDatabase, Notifications]:
    db: ServiceDatabase = await open_service_database("notifications", MIGRATIONS)
    policy = Policy(public_base_url=BASE_URL, unsubscribe_key=b"k" * 32, quiet_hours=None, digest_seconds=86_400)
    return db, Notifications(Renderer(), policy)


async def _rows(db: ServiceDatabase, event: CloudEvent) -> list[asyncpg.Record]:
    return await db.pool.fetch("SELECT * FROM deliveries WHERE event_id = $1 ORDER BY recipient, channel", event.id)


def _signed_links_in(row: asyncpg.Record) -> list[str]:
    """Donor or booking tokens (``d1.…``, ``b1.…``) a stored delivery holds: there should be none."""
    stored = " ".join(str(row[c] or "") for c in ("subject", "body_text", "body_html", "action_url"))
    return re.findall(r"\b[db]1\.[A-Za-z0-9_-]+\.\d+\.", stored)


def _donor(donor_id: str = "don_farra", **overrides: Any) -> DonorRegisteredV1:
    body = donor_registered(
        donor_id=donor_id,
        organisation_id=ORG,
        email=f"{donor_id}@example.org",
        availability={"hours_per_week": 4, "time_zone": "UTC"},
    )
    return DonorRegisteredV1.model_validate({**body, **overrides})


def _offer(donor_id: str = "don_farra", **overrides: Any) -> OfferMadeV1:
    body: dict[str, Any] = {
        "federation_id": FED,
        "organisation_id": ORG,
        "offer_id": "off_poster",
        "need_id": "ned_poster",
        "fight_id": "fgt_strike",
        "donor_id": donor_id,
        "need_title": "Design the strike poster",
        "score": 0.92,
        "expires_at": SOON,
        "made_at": NOW,
    }
    return OfferMadeV1.model_validate({**body, **overrides})


def _event() -> EventCreatedV1:
    return EventCreatedV1(
        federation_id=FED,
        organisation_id=ORG,
        event_id="evt_training",
        kind=EventKind.training,
        title="Online campaigning for strikes",
        starts_at=SOON,
        ends_at=SOON + timedelta(hours=2),
        time_zone="Europe/London",
        venue_name="Dudley CVS",
        organiser_email="organiser@example.org",
    )


def _booking(booking_id: str, **overrides: Any) -> BookingConfirmedV1:
    body: dict[str, Any] = {
        "federation_id": FED,
        "organisation_id": ORG,
        "booking_id": booking_id,
        "event_id": "evt_training",
        "name": "Ana Ortiz",
        "email": f"{booking_id}@example.org",
        "confirmed_at": NOW,
    }
    return BookingConfirmedV1.model_validate({**body, **overrides})


def _facts(version: int = 2) -> dict[str, Any]:
    event = _event()
    return {
        **event.model_dump(include={"federation_id", "organisation_id", "event_id", "kind", "title", "time_zone"}),
        "starts_at": event.starts_at,
        "ends_at": event.ends_at,
        "version": version,
    }


async def test_a_redelivered_event_stages_its_messages_once(open_service_database: Any) -> None:
    db, notifications = await _open(open_service_database)
    signed_up = cloud_event(_donor())
    assert await notifications.learn_donor(db.uow, signed_up, _donor())
    assert not await notifications.learn_donor(db.uow, signed_up, _donor())  # Kafka redelivered it
    [welcome] = await _rows(db, signed_up)
    assert (welcome["template"], welcome["channel"], welcome["recipient"]) == (
        "donor_welcome",
        "email",
        "don_farra@example.org",
    )
    assert welcome["status"] == "pending" and welcome["person_ref"] == "don_farra"
    # Issue 17: the row holds a reference to the donor's link, signed only when the mail is sent.
    assert "/me/~d1~don_farra~" in welcome["body_text"] and "/me/~d1~don_farra~" in welcome["action_url"]
    assert not _signed_links_in(welcome)

    booked = _booking("bkg_ana")
    confirmed = cloud_event(booked)
    for _ in range(3):
        await notifications.learn_booking(db.uow, confirmed, booked)
    assert [r["template"] for r in await _rows(db, confirmed)] == ["booking_confirmed"]
    assert await db.pool.fetchval("SELECT count(*) FROM attendees") == 1
    assert await db.pool.fetchval("SELECT count(*) FROM inbox") == 2

    # An event with no read model to feed is staged once too.
    made = cloud_event(_offer())
    assert await notifications.stage(db.uow, made, _offer())
    assert not await notifications.stage(db.uow, made, _offer())
    assert [(r["template"], r["channel"]) for r in await _rows(db, made)] == [("offer_made", "email")]


async def test_quiet_hours_hold_normal_messages_and_let_urgent_ones_through(open_service_database: Any) -> None:
    db, notifications = await _open(open_service_database)
    now = datetime.now(UTC)
    window = f"{(now - timedelta(hours=1)):%H:%M}-{(now + timedelta(hours=2)):%H:%M}"
    await configuration.put_channels(db.uow, STAFF, {"quiet_hours": window})
    welcome = cloud_event(_donor())
    await notifications.learn_donor(db.uow, welcome, _donor())
    offer = cloud_event(_offer())
    await notifications.stage(db.uow, offer, _offer())

    [urgent] = await _rows(db, welcome)
    assert abs((urgent["next_attempt_at"] - now).total_seconds()) < 60
    [held] = await _rows(db, offer)
    assert held["status"] == "pending"
    end = (now + timedelta(hours=2)).replace(second=0, microsecond=0)
    assert abs((held["next_attempt_at"] - end).total_seconds()) < 60

    # An offer expiring inside the window goes now: late is worse than early.
    soon_gone = _offer(offer_id="off_soon", expires_at=now + timedelta(minutes=30))
    hurried = cloud_event(soon_gone)
    await notifications.stage(db.uow, hurried, soon_gone)
    [now_or_never] = await _rows(db, hurried)
    assert abs((now_or_never["next_attempt_at"] - now).total_seconds()) < 60


async def test_an_unsubscribed_address_gets_nothing_more(open_service_database: Any) -> None:
    db, notifications = await _open(open_service_database)
    welcome = cloud_event(_donor())
    await notifications.learn_donor(db.uow, welcome, _donor())
    [mail] = await _rows(db, welcome)
    link = mail["unsubscribe_url"]
    assert link.startswith(f"{BASE_URL}/v1/unsubscribe?token=")
    [token] = parse_qs(urlsplit(link).query)["token"]

    who = await notifications.unsubscribe(db.uow, token)
    assert (who.federation_id, who.address, who.channel) == (FED, "don_farra@example.org", "email")
    [stopped] = await _rows(db, welcome)
    assert (stopped["status"], stopped["last_error"]) == ("suppressed", "unsubscribed")

    # Later messages, even after the donor changes their profile, are not staged at all.
    changed = DonorUpdatedV1.model_validate(
        {**_donor().model_dump(exclude={"registered_at"}), "version": 2, "updated_at": datetime.now(UTC)}
    )
    await notifications.learn_donor(db.uow, cloud_event(changed), changed)
    later = cloud_event(_offer())
    assert await notifications.stage(db.uow, later, _offer())
    assert await _rows(db, later) == []
    # Another federation's list is its own.
    assert await db.pool.fetchval("SELECT count(*) FROM suppressions WHERE federation_id = $1", FED) == 1

    with pytest.raises(NotFound) as refused:
        await notifications.unsubscribe(db.uow, token[:-3] + "AAA")
    assert refused.value.problem_body() == {
        "type": "about:blank",
        "title": "Not found",
        "status": 404,
        "detail": "This unsubscribe token is not valid.",
    }


async def test_low_priority_messages_wait_for_one_digest(open_service_database: Any) -> None:
    db, notifications = await _open(open_service_database)
    await configuration.put_channels(db.uow, STAFF, {"quiet_hours": "", "digest_seconds": 0})
    await notifications.learn_donor(db.uow, cloud_event(_donor()), _donor())
    expired = []
    for offer_id in ("off_poster", "off_website"):
        data = OfferExpiredV1(
            federation_id=FED,
            organisation_id=ORG,
            offer_id=offer_id,
            need_id="ned_poster",
            fight_id="fgt_strike",
            donor_id="don_farra",
            expired_at=NOW,
        )
        event = cloud_event(data)
        await notifications.stage(db.uow, event, data)
        expired.append(event)
    held = [row for event in expired for row in await _rows(db, event)]
    assert [r["status"] for r in held] == ["held", "held"]

    assert await notifications.make_digests(db.uow) == 1
    rows = [row for event in expired for row in await _rows(db, event)]
    assert {r["status"] for r in rows} == {"digested"} and len({r["digest_id"] for r in rows}) == 1
    digest = await db.pool.fetchrow("SELECT * FROM deliveries WHERE delivery_id = $1", rows[0]["digest_id"])
    assert digest is not None
    assert digest["subject"] == "Pitch In: 2 updates" and digest["status"] == "pending"
    assert digest["body_text"].count("has expired") == 2
    # The items link to the donor's page by reference, signed for the digest's reader when it is sent.
    assert digest["body_text"].count("/me/~d1~don_farra~") == 2 and not _signed_links_in(digest)
    holder = link_holder(digest["person_ref"], digest["recipient"])
    sent = sign_references(digest["body_text"], LOCAL_DONOR_LINK_SECRET, time.time(), holder)
    assert "~d1~" not in sent and sent.count("/me/d1.don_farra.") == 2
    assert await notifications.make_digests(db.uow) == -1  # nothing else due


async def test_event_wide_messages_reach_those_booked_and_no_one_else(open_service_database: Any) -> None:
    db, notifications = await _open(open_service_database)
    created = cloud_event(_event())
    await notifications.learn_event(db.uow, created, _event())
    assert [r["recipient"] for r in await _rows(db, created)] == ["organiser@example.org"]
    confirmed = [_booking(f"bkg_{n}") for n in range(3)]
    for booked in confirmed:
        await notifications.learn_booking(db.uow, cloud_event(booked), booked)
    waiting = BookingWaitlistedV1.model_validate(
        {**_booking("bkg_wait").model_dump(exclude={"confirmed_at"}), "position": 1, "waitlisted_at": NOW}
    )
    await notifications.learn_booking(db.uow, cloud_event(waiting), waiting)
    gone = _booking("bkg_gone")
    await notifications.learn_booking(db.uow, cloud_event(gone), gone)
    cancelled = BookingCancelledV1.model_validate({**gone.model_dump(exclude={"confirmed_at"}), "cancelled_at": NOW})
    await notifications.learn_booking(db.uow, cloud_event(cancelled), cancelled)

    reminder_data = ReminderDueV1.model_validate(
        {
            **_facts(),
            "reminder_id": "rem_1",
            "reminder_kind": "day-before",
            "offset_seconds": 86_400,
            "due_at": NOW,
            "status": "published",
            "organiser_email": "organiser@example.org",
        }
    )
    reminder = cloud_event(reminder_data)
    await notifications.learn_event(db.uow, reminder, reminder_data)
    assert await _rows(db, reminder) == []  # staged by the expansion job, in batches
    assert await notifications.expand_next_job(db.uow) == 3
    rows = await _rows(db, reminder)
    assert {r["recipient"] for r in rows} == {b.email for b in confirmed}
    assert all(r["bulk"] and r["template"] == "event_reminder" for r in rows)

    moved_data = EventRescheduledV1.model_validate(
        {
            **_facts(version=3),
            "starts_at": SOON + timedelta(days=7),
            "ends_at": SOON + timedelta(days=7, hours=2),
            "previous_starts_at": SOON,
            "previous_ends_at": SOON + timedelta(hours=2),
            "previous_time_zone": "Europe/London",
            "reason": "the venue flooded",
            "rescheduled_at": NOW,
        }
    )
    moved = cloud_event(moved_data)
    await notifications.learn_event(db.uow, moved, moved_data)
    assert await notifications.expand_next_job(db.uow) == 4  # the waiting list is told of a new time too
    rows = await _rows(db, moved)
    assert {r["recipient"] for r in rows} == {b.email for b in confirmed} | {waiting.email}
    assert all("the venue flooded" in r["body_text"] for r in rows)
    assert await notifications.expand_next_job(db.uow) == -1


async def test_a_message_for_a_donor_not_known_yet_waits_for_their_sign_up(open_service_database: Any) -> None:
    db, notifications = await _open(open_service_database)
    early = cloud_event(_offer())
    await notifications.stage(db.uow, early, _offer())
    assert await _rows(db, early) == []
    await db.pool.execute("UPDATE fanouts SET not_before = now()")
    assert await notifications.expand_next_job(db.uow) == 0  # still nobody to send it to: postponed
    await notifications.learn_donor(db.uow, cloud_event(_donor()), _donor())
    await db.pool.execute("UPDATE fanouts SET not_before = now()")
    assert await notifications.expand_next_job(db.uow) == 1
    [mail] = await _rows(db, early)
    assert (mail["template"], mail["recipient"]) == ("offer_made", "don_farra@example.org")
    assert await notifications.expand_next_job(db.uow) == -1


async def test_webhook_subscribers_get_what_they_asked_for_and_no_donor_credentials(
    open_service_database: Any,
) -> None:
    db, notifications = await _open(open_service_database)

    async def subscribe(event_types: list[str]) -> asyncpg.Record:
        return await subscriptions.create(
            db.uow,
            ORGANISER,
            # A public address literal: the outbound guard resolves names, and tests have no DNS.
            url="https://93.184.215.14/pitchin",
            event_types=event_types,
            description="",
            disable_after=5,
        )

    bookings_hook = await subscribe(["org.pitchin.booking.*"])
    assert bookings_hook["secret"].startswith("whsec_") and len(bookings_hook["secret"]) == 6 + 44
    everything = await subscribe(["*"])
    booked = _booking("bkg_ana")
    confirmed = cloud_event(booked)
    await notifications.learn_booking(db.uow, confirmed, booked)
    hooks = [r for r in await _rows(db, confirmed) if r["channel"] == "webhook"]
    assert {r["subscription_id"] for r in hooks} == {bookings_hook["subscription_id"], everything["subscription_id"]}
    payload = json.loads(hooks[0]["body_text"])
    assert payload["type"] == "org.pitchin.booking.confirmed.v1"
    assert payload["data"]["id"] == confirmed.id and payload["data"]["booking_id"] == "bkg_ana"

    signed = _offer(accept_url="https://pitchin.example/o/accept?t=signed", offer_token="secret-token")
    made = cloud_event(signed)
    await notifications.stage(db.uow, made, signed)
    [hook] = [r for r in await _rows(db, made) if r["channel"] == "webhook"]
    assert hook["subscription_id"] == everything["subscription_id"]
    data = json.loads(hook["body_text"])["data"]
    assert data["offer_id"] == "off_poster" and "accept_url" not in data and "offer_token" not in data

    # A paused endpoint is not queued for; another organisation cannot touch it.
    await subscriptions.disable(db.uow, ORGANISER, everything["subscription_id"])
    again = cloud_event(_booking("bkg_bo"))
    await notifications.learn_booking(db.uow, again, _booking("bkg_bo"))
    assert [r["subscription_id"] for r in await _rows(db, again) if r["channel"] == "webhook"] == [
        bookings_hook["subscription_id"]
    ]
    with pytest.raises(NotFound):
        await subscriptions.enable(db.uow, NEIGHBOUR, everything["subscription_id"])

    with pytest.raises(OutboundRefused) as private:
        await subscriptions.create(
            db.uow,
            ORGANISER,
            url="http://127.0.0.1:9000/hook",
            event_types=["*"],
            description="",
            disable_after=5,
        )
    assert private.value.status == 422 and private.value.field == "url"
    with pytest.raises(Forbidden):
        await subscriptions.delete(db.uow, PUBLISHER, bookings_hook["subscription_id"])


async def test_organisation_overrides_win_and_a_broken_template_is_refused(open_service_database: Any) -> None:
    db, notifications = await _open(open_service_database)
    renderer = notifications.renderer
    await configuration.put_template(
        db.uow, STAFF, renderer, "booking_confirmed", "en", "subject", "Federation: {{ name }} is in"
    )
    await configuration.put_template(
        db.uow, ORGANISER, renderer, "booking_confirmed", "en", "subject", "{{ name }}, see you at {{ event.title }}"
    )
    with pytest.raises(TemplateDoesNotCompile) as broken:
        await configuration.put_template(db.uow, ORGANISER, renderer, "booking_confirmed", "en", "text", "{% if %}")
    body = broken.value.problem_body()
    assert (body["type"], body["title"], body["status"]) == ("about:blank", "Invalid request", 422)
    assert body["detail"].startswith("body: the template does not compile: ")
    assert [e["field"] for e in body["errors"]] == ["body"]

    await notifications.learn_event(db.uow, cloud_event(_event()), _event())
    ours = cloud_event(_booking("bkg_ana"))
    await notifications.learn_booking(db.uow, ours, _booking("bkg_ana"))
    [mail] = await _rows(db, ours)
    assert mail["subject"] == "Ana Ortiz, see you at Online campaigning for strikes"
    # The neighbouring organisation gets the federation's wording.
    theirs_data = _booking("bkg_bo", organisation_id=OTHER_ORG)
    theirs = cloud_event(theirs_data)
    await notifications.learn_booking(db.uow, theirs, theirs_data)
    [mail] = await _rows(db, theirs)
    assert mail["subject"] == "Federation: Ana Ortiz is in"

    with pytest.raises(NotFound) as missing:
        await configuration.delete_template(db.uow, ORGANISER, "booking_confirmed", "cy", "subject")
    assert missing.value.detail == "No such override."
    with pytest.raises(Forbidden) as publisher:
        await configuration.put_template(db.uow, PUBLISHER, renderer, "booking_confirmed", "en", "subject", "Hi")
    assert publisher.value.detail == "A publisher key cannot change notification settings."
    with pytest.raises(Forbidden) as organiser:
        await configuration.put_channels(db.uow, ORGANISER, {"quiet_hours": ""})
    assert organiser.value.detail == "Only a federation staff key can change the federation's channels."


async def test_an_erased_donor_is_forgotten(open_service_database: Any) -> None:
    db, notifications = await _open(open_service_database)
    await notifications.learn_donor(db.uow, cloud_event(_donor()), _donor())
    mine = _booking("bkg_farra", donor_id="don_farra", email="don_farra@example.org")
    await notifications.learn_booking(db.uow, cloud_event(mine), mine)
    erased = DonorWithdrawnV1(
        federation_id=FED, organisation_id=ORG, donor_id="don_farra", erase=True, withdrawn_at=NOW
    )
    assert await notifications.donor_withdrew(db.uow, cloud_event(erased), erased)

    assert await db.pool.fetch("SELECT 1 FROM people WHERE donor_id = 'don_farra'") == []
    rows = await db.pool.fetch("SELECT recipient, body_text, status FROM deliveries WHERE person_ref = 'don_farra'")
    assert len(rows) == 2
    assert all(r["recipient"] == "erased" and r["body_text"] == "" and r["status"] == "suppressed" for r in rows)
    assert await db.pool.fetch("SELECT 1 FROM attendees WHERE email = 'don_farra@example.org'") == []


async def test_the_delivery_log_is_the_tenants_own_and_only_finished_deliveries_are_resent(
    open_service_database: Any,
) -> None:
    db, notifications = await _open(open_service_database)
    welcome = cloud_event(_donor())
    await notifications.learn_donor(db.uow, welcome, _donor())
    [logged] = await deliveries.log(db.uow, ORGANISER, 50, None)
    assert logged["event_id"] == welcome.id and logged["status"] == "pending"
    assert await deliveries.log(db.uow, STRANGER, 50, None) == []
    assert await deliveries.log(db.uow, NEIGHBOUR, 50, None) == []
    with pytest.raises(NotFound) as unseen:
        await deliveries.one(db.uow, NEIGHBOUR, logged["delivery_id"])
    assert unseen.value.detail == "No such delivery for this organisation."

    with pytest.raises(Conflict) as pending:
        await deliveries.resend(db.uow, ORGANISER, logged["delivery_id"])
    assert pending.value.problem_body() == {
        "type": "about:blank",
        "title": "Cannot re-send",
        "status": 409,
        "detail": "Only a sent or dead delivery of this organisation can be sent again.",
    }
    # The sender gave up on it: a dead letter, which the organisation can send again.
    async with db.uow() as tx:
        await storage.mark_dead(tx.conn, [(logged["delivery_id"], "550 mailbox unavailable")])
    [dead] = await deliveries.dead_letters(db.uow, ORGANISER, 50, None)
    assert (dead["delivery_id"], dead["reason"]) == (logged["delivery_id"], "550 mailbox unavailable")
    with pytest.raises(Forbidden):
        await deliveries.resend(db.uow, PUBLISHER, logged["delivery_id"])
    assert await deliveries.resend(db.uow, ORGANISER, logged["delivery_id"]) == "dead"
    again = await deliveries.one(db.uow, ORGANISER, logged["delivery_id"])
    assert (again["status"], again["attempts"], again["last_error"]) == ("pending", 0, None)
    [resent] = await deliveries.dead_letters(db.uow, ORGANISER, 50, None)
    assert resent["resent_at"] is not None


async def test_a_fan_out_page_is_staged_set_based_skipping_the_suppressed_and_adds_nothing_when_re_run(
    open_service_database: Any,
) -> None:
    db: ServiceDatabase = await open_service_database("notifications", MIGRATIONS)
    policy = Policy(
        public_base_url=BASE_URL, unsubscribe_key=b"k" * 32, quiet_hours=None, digest_seconds=86_400, fanout_batch=200
    )
    notifications = Notifications(Renderer(), policy)
    await notifications.learn_event(db.uow, cloud_event(_event()), _event())
    people = [_booking(f"bkg_{n:03d}", name=f"Person {n}") for n in range(450)]
    async with db.uow() as tx:
        for booked in people:
            await storage.upsert_attendee(
                tx.conn,
                {**booked.model_dump(include={"booking_id", "event_id", "federation_id", "organisation_id", "name"}),
                 "email": booked.email, "donor_id": None, "language": "en", "status": "confirmed"},
            )  # fmt: skip
    unsubscribed = {people[n].email for n in (0, 7, 199, 200, 449)}  # on every page, at its edges too
    for address in unsubscribed:
        token = parse_qs(urlsplit(notifications.unsubscribe_url(FED, address, "email")).query)["token"][0]
        await notifications.unsubscribe(db.uow, token)
    reminder_data = ReminderDueV1.model_validate(
        {
            **_facts(),
            "reminder_id": "rem_page",
            "reminder_kind": "day-before",
            "offset_seconds": 86_400,
            "due_at": NOW,
            "status": "published",
            "organiser_email": "organiser@example.org",
        }
    )
    reminder = cloud_event(reminder_data)
    await notifications.learn_event(db.uow, reminder, reminder_data)

    staged = [await notifications.expand_next_job(db.uow) for _ in range(3)]
    assert staged == [197, 199, 49]  # pages of 200, 200 and 50 people, less those unsubscribed
    assert await notifications.expand_next_job(db.uow) == -1  # the job is done
    rows = await _rows(db, reminder)
    assert {r["recipient"] for r in rows} == {p.email for p in people} - unsubscribed
    assert len(rows) == 445 and all(r["status"] == "pending" and r["bulk"] for r in rows)
    sample = next(r for r in rows if r["recipient"] == people[3].email)
    assert "Person 3" in sample["body_text"]
    assert "/bookings/~b1~bkg_003~" in sample["body_text"] and not _signed_links_in(sample)
    holder = link_holder(sample["person_ref"], sample["recipient"])
    sent = sign_references(sample["body_text"], LOCAL_DONOR_LINK_SECRET, time.time(), holder)
    assert booking_link_in(sent, LOCAL_DONOR_LINK_SECRET) == "bkg_003", "the reference signs to that booking's link"
    assert sample["unsubscribe_url"] and sample["unsubscribe_url"] in sample["body_text"]

    # A crash after a page was staged but before the job advanced: the page runs again, adds nothing.
    await db.pool.execute("UPDATE fanouts SET after_booking = '', expanded = 0, done_at = NULL")
    assert [await notifications.expand_next_job(db.uow) for _ in range(3)] == [0, 0, 0]
    assert len(await _rows(db, reminder)) == 445
