"""Notifications end to end on real Kafka, PostgreSQL and SMTP: each mapped event type gives the
right message on the right channel; SMS through a provider's REST API; signed webhooks;
quiet hours; one-click unsubscribe; digests; overrides and languages; tenancy; erasure."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from pitchin_notifications.domain import webhooks
from pitchin_testing.kafka import KafkaServer
from pitchin_testing.smtp_sink import SmtpSink
from pitchin_testing.stack import Stack
from tests.e2e.conftest import Tenant
from tests.e2e.helpers import bearer, booking_link_in, eventually, fetch
from tests.e2e.test_notifications_kit import (
    Recorder,
    applied,
    booking,
    configure,
    donor,
    event_created,
    event_facts,
    offer,
    publish,
    publish_many,
    put_template,
)

pytestmark = pytest.mark.e2e


def _text(mail: EmailMessage) -> str:
    part = mail.get_body(("plain",))
    assert part is not None
    content: str = part.get_content()
    return content


def _sms_answer(_: object) -> dict[str, str]:
    return {"sid": f"SM{uuid.uuid4().hex}", "status": "queued"}


def test_each_mapped_event_reaches_the_right_person_on_the_right_channel(
    stack: Stack, tenant: Tenant, mailbox: SmtpSink, kafka_server: KafkaServer
) -> None:
    with Recorder(status=201, answer=_sms_answer) as provider:
        configure(
            stack,
            tenant,
            quiet_hours="",
            sms_base_url=provider.url,
            sms_account_sid="AC0123",
            sms_auth_token="token-1",
            sms_from="+447700900000",
        )
        bootstrap = kafka_server.bootstrap
        # A Welsh-speaking donor who wants texts too.
        welsh = donor(tenant, phone="+447700900321", contact={"email": True, "sms": True, "language": "cy"})
        publish(bootstrap, tenant, "org.pitchin.donor.registered.v1", welsh)
        welcome = mailbox.wait_for(lambda m: m["To"] == welsh["email"], timeout=30)
        assert welcome["Subject"] == f"Croeso i Pitch In, {welsh['name']}"
        assert f"/me/d1.{welsh['donor_id']}." in _text(welcome)

        # An offer: email and SMS, in Welsh, with the producer's signed links.
        made = offer(
            tenant, welsh["donor_id"], accept_url="https://pitchin.example/o/accept?t=signed", decline_url="https://d"
        )
        publish(bootstrap, tenant, "org.pitchin.offer.made.v1", made)
        mail = mailbox.wait_for(lambda m: m["To"] == welsh["email"] and "helpu" in m["Subject"], timeout=30)
        assert mail["Subject"] == "Allwch chi helpu? Design the strike poster"
        assert "https://pitchin.example/o/accept?t=signed" in _text(mail)
        [text] = provider.wait_for(lambda r: len(r) >= 1)
        assert text.path == "/2010-04-01/Accounts/AC0123/Messages.json"
        assert text.headers["authorization"] == "Basic " + base64.b64encode(b"AC0123:token-1").decode()
        form = {k: v[0] for k, v in parse_qs(text.body.decode()).items()}
        assert form["To"] == "+447700900321" and form["From"] == "+447700900000"
        assert "Design the strike poster" in form["Body"] and form["Body"].endswith(f"/offers/{made['offer_id']}")

        # An event: the organiser is told; a booking is confirmed with calendar and cancel links.
        created = event_created(tenant)
        publish(bootstrap, tenant, "org.pitchin.event.created.v1", created)
        organiser = mailbox.wait_for(lambda m: m["To"] == created["organiser_email"], timeout=30)
        assert created["title"] in organiser["Subject"]
        confirmed = booking(tenant, created["event_id"])
        publish(bootstrap, tenant, "org.pitchin.booking.confirmed.v1", confirmed)
        mail = mailbox.wait_for(lambda m: m["To"] == confirmed["email"], timeout=30)
        assert mail["Subject"] == f"Your place at {created['title']} is confirmed"
        body = _text(mail)
        assert f"/v1/events/{created['event_id']}.ics" in body
        assert booking_link_in(body, stack.donor_link_secret) == confirmed["booking_id"]

        # Waitlisted, then promoted (the donor books too: promotion goes by email and SMS).
        waiting = booking(tenant, created["event_id"], donor_id=welsh["donor_id"], email=welsh["email"], language="cy")
        waiting.pop("confirmed_at")
        publish(
            bootstrap,
            tenant,
            "org.pitchin.booking.waitlisted.v1",
            {**waiting, "position": 1, "waitlisted_at": datetime.now(UTC).isoformat()},
        )
        mailbox.wait_for(lambda m: m["To"] == welsh["email"] and "waiting list" in m["Subject"], timeout=30)
        publish(
            bootstrap,
            tenant,
            "org.pitchin.booking.promoted.v1",
            {**waiting, "promoted_at": datetime.now(UTC).isoformat()},
        )
        mailbox.wait_for(lambda m: m["To"] == welsh["email"] and "place freed up" in m["Subject"], timeout=30)
        provider.wait_for(lambda r: len(r) >= 2)

        # Cancelled by the organiser.
        publish(
            bootstrap,
            tenant,
            "org.pitchin.booking.cancelled.v1",
            {
                **{k: v for k, v in confirmed.items() if k != "confirmed_at"},
                "cancelled_at": datetime.now(UTC).isoformat(),
                "by_organiser": True,
            },
        )
        mailbox.wait_for(lambda m: m["To"] == confirmed["email"] and "organiser cancelled" in m["Subject"], timeout=30)

        # Assignment confirmed, offer expired (low: digested later, so only staged as held).
        facts = {
            k: made[k] for k in ("federation_id", "organisation_id", "offer_id", "need_id", "fight_id", "donor_id")
        }
        publish(
            bootstrap,
            tenant,
            "org.pitchin.assignment.confirmed.v1",
            {**facts, "confirmed_at": datetime.now(UTC).isoformat()},
        )
        mailbox.wait_for(lambda m: m["To"] == welsh["email"] and "confirmed" in m["Subject"], timeout=30)

    # The delivery log, for this organisation: every message sent, on its channel.
    def all_sent() -> list[dict[str, object]] | None:
        answer = httpx.get(
            f"{stack['notifications'].url}/v1/deliveries", headers=bearer(tenant.organiser_key), timeout=10
        )
        items: list[dict[str, object]] = answer.json()["items"]
        return items if items and all(i["status"] == "sent" for i in items) and len(items) >= 8 else None

    log = eventually(all_sent, timeout=30, what="the delivery log to show every message sent")
    channels = {(i["template"], i["channel"]) for i in log}
    assert {("offer_made", "email"), ("offer_made", "sms"), ("booking_promoted", "sms")} <= channels
    assert ("booking_confirmed", "email") in channels and ("booking_cancelled_by_organiser", "email") in channels
    # Another tenant sees none of it.
    stranger = stack.issue_key(f"fed-{uuid.uuid4().hex[:6]}", "org-x", "organiser")
    answer = httpx.get(f"{stack['notifications'].url}/v1/deliveries", headers=bearer(stranger), timeout=10)
    assert answer.json()["items"] == []


def test_event_wide_messages_reach_everyone_booked_and_no_one_else(
    stack: Stack, tenant: Tenant, mailbox: SmtpSink, kafka_server: KafkaServer
) -> None:
    configure(stack, tenant, quiet_hours="")
    bootstrap = kafka_server.bootstrap
    created = event_created(tenant)
    confirmed = [booking(tenant, created["event_id"]) for _ in range(25)]
    waitlisted = [booking(tenant, created["event_id"], position=n + 1) for n in range(3)]
    cancelled = [booking(tenant, created["event_id"]) for _ in range(2)]
    events: list[tuple[str, dict[str, object], str | None]] = [("org.pitchin.event.created.v1", created, None)]
    events += [("org.pitchin.booking.confirmed.v1", b, None) for b in confirmed + cancelled]
    for b in waitlisted:
        data = {k: v for k, v in b.items() if k != "confirmed_at"}
        events.append(
            ("org.pitchin.booking.waitlisted.v1", {**data, "waitlisted_at": datetime.now(UTC).isoformat()}, None)
        )
    for b in cancelled:
        data = {k: v for k, v in b.items() if k != "confirmed_at"}
        events.append(
            ("org.pitchin.booking.cancelled.v1", {**data, "cancelled_at": datetime.now(UTC).isoformat()}, None)
        )
    ids = publish_many(bootstrap, tenant, events)
    eventually(lambda: all(applied(stack, i) for i in ids), timeout=60, what="the bookings to be learned")

    facts = event_facts(created)
    reminder = publish(
        bootstrap,
        tenant,
        "org.pitchin.event.reminder-due.v1",
        {
            **facts,
            "reminder_id": "rem_1",
            "reminder_kind": "day-before",
            "offset_seconds": 86400,
            "due_at": datetime.now(UTC).isoformat(),
            "status": "published",
            "venue_name": "Dudley CVS",
            "organiser_email": created["organiser_email"],
        },
    )
    live = publish(
        bootstrap,
        tenant,
        "org.pitchin.livestream.started.v1",
        {
            **facts,
            "version": 3,
            "online_url": "https://stream.example/now",
            "started_at": datetime.now(UTC).isoformat(),
        },
    )
    moved = (datetime.fromisoformat(created["starts_at"]) + timedelta(days=7)).isoformat()
    rescheduled = publish(
        bootstrap,
        tenant,
        "org.pitchin.event.rescheduled.v1",
        {
            **facts,
            "version": 4,
            "starts_at": moved,
            "ends_at": (datetime.fromisoformat(moved) + timedelta(hours=2)).isoformat(),
            "previous_starts_at": created["starts_at"],
            "previous_ends_at": created["ends_at"],
            "previous_time_zone": "Europe/London",
            "reason": "the venue flooded",
            "rescheduled_at": datetime.now(UTC).isoformat(),
        },
    )
    attendees = {b["email"] for b in confirmed}
    everyone_booked = attendees | {b["email"] for b in waitlisted}

    def arrived(prefix: str, wanted: set[object]) -> set[str]:
        return {str(m["To"]) for m in mailbox.messages if str(m["Subject"]).startswith(prefix) and m["To"] in wanted}

    eventually(lambda: arrived("Reminder:", attendees) == attendees, timeout=60, what="every reminder")
    eventually(lambda: arrived("Live now:", attendees) == attendees, timeout=60, what="every live-now")
    eventually(lambda: arrived("New time:", everyone_booked) == everyone_booked, timeout=60, what="every reschedule")
    not_told = {b["email"] for b in cancelled}
    for prefix in ("Reminder:", "Live now:", "New time:"):
        assert not arrived(prefix, not_told), f"a cancelled booking was sent {prefix}"
    waitlist = {b["email"] for b in waitlisted}
    assert not arrived("Reminder:", waitlist)
    sample = next(m for m in mailbox.messages if m["To"] == confirmed[0]["email"] and m["Subject"].startswith("New"))
    assert "the venue flooded" in _text(sample)
    assert booking_link_in(_text(sample), stack.donor_link_secret) == confirmed[0]["booking_id"]
    rows = fetch(
        stack,
        "SELECT event_id, count(*) AS n, bool_and(bulk) AS bulk FROM notifications.deliveries"
        " WHERE event_id = any($1::text[]) GROUP BY event_id",
        [reminder, live, rescheduled],
    )
    counts = {r["event_id"]: r["n"] for r in rows}
    assert counts == {reminder: 25, live: 25, rescheduled: 28}
    assert all(r["bulk"] for r in rows)


def test_webhooks_are_signed_retried_disabled_and_resent(
    stack: Stack, tenant: Tenant, kafka_server: KafkaServer
) -> None:
    configure(stack, tenant, max_attempts=2, retry_base_seconds=0.2)
    url = stack["notifications"].url
    with Recorder(status=200) as receiver:
        answer = httpx.post(
            f"{url}/v1/webhooks",
            json={"url": f"{receiver.url}/hooks", "event_types": ["org.pitchin.booking.*"], "disable_after": 1},
            headers=bearer(tenant.organiser_key),
            timeout=10,
        )
        assert answer.status_code == 201, answer.text
        subscription = answer.json()
        secret = subscription["secret"]
        assert secret.startswith("whsec_")
        first = booking(tenant, "evt_hooked")
        first_id = publish(kafka_server.bootstrap, tenant, "org.pitchin.booking.confirmed.v1", first)
        [hit] = receiver.wait_for(lambda r: len(r) >= 1)
        assert hit.path == "/hooks"
        # Verified by the spec's rule, computed here independently of the service's code.
        content = f"{hit.headers['webhook-id']}.{hit.headers['webhook-timestamp']}.".encode() + hit.body
        key = base64.b64decode(secret.removeprefix("whsec_"))
        expected = "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
        assert expected in hit.headers["webhook-signature"].split()
        assert webhooks.verify(secret, hit.headers, hit.body, datetime.now(UTC))
        payload = httpx.Response(200, content=hit.body).json()
        assert payload["type"] == "org.pitchin.booking.confirmed.v1"
        assert payload["data"]["booking_id"] == first["booking_id"] and payload["data"]["id"] == first_id

        # The endpoint starts failing: retried, then a dead letter, then the endpoint is disabled.
        receiver.status = 500
        second = booking(tenant, "evt_hooked")
        publish(kafka_server.bootstrap, tenant, "org.pitchin.booking.confirmed.v1", second)
        failing = receiver.wait_for(lambda r: len(r) >= 3)
        assert failing[1].headers["webhook-id"] == failing[2].headers["webhook-id"]  # same id on every attempt

        def disabled() -> dict[str, object] | None:
            got = httpx.get(
                f"{url}/v1/webhooks/{subscription['subscription_id']}", headers=bearer(tenant.organiser_key), timeout=5
            ).json()
            return got if got["status"] == "disabled" else None

        assert "HTTP 500" in str(
            eventually(disabled, timeout=30, what="the endpoint to be disabled")["disabled_reason"]
        )
        dead = httpx.get(f"{url}/v1/dead-letters", headers=bearer(tenant.organiser_key), timeout=5).json()["items"]
        assert [(d["channel"], d["attempts"]) for d in dead] == [("webhook", 2)]
        # While disabled, new events are not queued for it.
        third_id = publish(
            kafka_server.bootstrap, tenant, "org.pitchin.booking.confirmed.v1", booking(tenant, "evt_hooked")
        )
        eventually(lambda: applied(stack, third_id), what="the third booking to be consumed")

        # Fixed: re-send what failed; it arrives with the webhook-id it had.
        receiver.status = 204
        answer = httpx.post(
            f"{url}/v1/webhooks/{subscription['subscription_id']}/resend-failed",
            headers=bearer(tenant.organiser_key),
            timeout=5,
        )
        assert answer.status_code == 202 and answer.json()["requeued"] == 1
        resent = receiver.wait_for(lambda r: len(r) >= 4)[3]
        assert resent.headers["webhook-id"] == failing[1].headers["webhook-id"]
        assert webhooks.verify(secret, resent.headers, resent.body, datetime.now(UTC))
        assert disabled() is None  # enabled again
        # And the one-off re-send API for a delivered message.
        [delivered] = [
            d
            for d in httpx.get(
                f"{url}/v1/deliveries?channel=webhook&status=sent", headers=bearer(tenant.organiser_key), timeout=5
            ).json()["items"]
            if d["event_id"] == first_id
        ]
        again = httpx.post(
            f"{url}/v1/deliveries/{delivered['delivery_id']}/resend", headers=bearer(tenant.organiser_key), timeout=5
        )
        assert again.status_code == 202, again.text
        assert receiver.wait_for(lambda r: len(r) >= 5)[4].headers["webhook-id"] == hit.headers["webhook-id"]


def test_quiet_hours_hold_normal_messages_and_let_urgent_ones_through(
    stack: Stack, tenant: Tenant, mailbox: SmtpSink, kafka_server: KafkaServer
) -> None:
    now = datetime.now(UTC)
    window = f"{(now - timedelta(hours=1)):%H:%M}-{(now + timedelta(hours=2)):%H:%M}"
    configure(stack, tenant, quiet_hours=window)
    person = donor(tenant, availability={"hours_per_week": 4, "time_zone": "UTC"})
    publish(kafka_server.bootstrap, tenant, "org.pitchin.donor.registered.v1", person)
    mailbox.wait_for(lambda m: m["To"] == person["email"], timeout=30)  # the welcome is urgent
    made = offer(tenant, person["donor_id"])
    offer_event = publish(kafka_server.bootstrap, tenant, "org.pitchin.offer.made.v1", made)
    created = event_created(tenant)
    publish(kafka_server.bootstrap, tenant, "org.pitchin.event.created.v1", created)
    urgent = booking(tenant, created["event_id"], email=person["email"], donor_id=person["donor_id"])
    publish(kafka_server.bootstrap, tenant, "org.pitchin.booking.confirmed.v1", urgent)
    mailbox.wait_for(lambda m: m["To"] == person["email"] and "confirmed" in m["Subject"], timeout=30)
    eventually(lambda: applied(stack, offer_event), what="the offer to be consumed")
    [held] = fetch(
        stack, "SELECT status, next_attempt_at FROM notifications.deliveries WHERE event_id = $1", offer_event
    )
    assert held["status"] == "pending"
    end = (now + timedelta(hours=2)).replace(second=0, microsecond=0)
    assert abs((held["next_attempt_at"] - end).total_seconds()) < 120
    assert not [m for m in mailbox.messages if m["To"] == person["email"] and "help" in str(m["Subject"])]


def test_one_click_unsubscribe_sticks(
    stack: Stack, tenant: Tenant, mailbox: SmtpSink, kafka_server: KafkaServer
) -> None:
    configure(stack, tenant, quiet_hours="")
    person = donor(tenant)
    publish(kafka_server.bootstrap, tenant, "org.pitchin.donor.registered.v1", person)
    welcome = mailbox.wait_for(lambda m: m["To"] == person["email"], timeout=30)
    assert welcome["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = str(welcome["List-Unsubscribe"]).strip("<>")
    assert link.startswith(f"{stack['web'].url}/v1/unsubscribe?token=") and link in _text(welcome)
    # Notifications' own route, which the web front's one-click page forwards to.
    target = f"{stack['notifications'].url}/v1/unsubscribe?{urlsplit(link).query}"
    assert httpx.get(target, timeout=5).status_code == 200  # a GET only shows a button
    wrong = httpx.post(target, content=b"nothing", timeout=5)
    assert wrong.status_code == 400
    forged = httpx.post(
        target[:-3] + "AAA",
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
        timeout=5,
    )
    assert forged.status_code == 404
    done = httpx.post(
        target,
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
        timeout=5,
    )
    assert done.status_code == 200 and done.json()["unsubscribed"] is True
    # Later messages (even after the person updates their profile) are not emailed.
    updated = {k: v for k, v in person.items() if k != "registered_at"}
    publish(
        kafka_server.bootstrap,
        tenant,
        "org.pitchin.donor.updated.v1",
        {**updated, "version": 2, "status": "active", "updated_at": datetime.now(UTC).isoformat()},
    )
    later = publish(kafka_server.bootstrap, tenant, "org.pitchin.offer.made.v1", offer(tenant, person["donor_id"]))
    eventually(lambda: applied(stack, later), what="the offer to be consumed")
    assert fetch(stack, "SELECT 1 FROM notifications.deliveries WHERE event_id = $1", later) == []
    assert len([m for m in mailbox.messages if m["To"] == person["email"]]) == 1


def test_low_priority_messages_are_digested_into_one_email(
    stack: Stack, tenant: Tenant, mailbox: SmtpSink, kafka_server: KafkaServer
) -> None:
    configure(stack, tenant, quiet_hours="", digest_seconds=2)
    person = donor(tenant)
    publish(kafka_server.bootstrap, tenant, "org.pitchin.donor.registered.v1", person)
    expired = []
    for title in ("Poster", "Website"):
        facts = offer(tenant, person["donor_id"], need_title=title)
        facts = {
            k: facts[k] for k in ("federation_id", "organisation_id", "offer_id", "need_id", "fight_id", "donor_id")
        }
        expired.append(
            publish(
                kafka_server.bootstrap,
                tenant,
                "org.pitchin.offer.expired.v1",
                {**facts, "expired_at": datetime.now(UTC).isoformat()},
            )
        )
    digest = mailbox.wait_for(lambda m: m["To"] == person["email"] and "2 updates" in str(m["Subject"]), timeout=30)
    assert _text(digest).count("has expired") == 2
    rows = fetch(
        stack, "SELECT status, digest_id FROM notifications.deliveries WHERE event_id = any($1::text[])", expired
    )
    assert {r["status"] for r in rows} == {"digested"} and len({r["digest_id"] for r in rows}) == 1
    assert not [m for m in mailbox.messages if m["To"] == person["email"] and "expired" in str(m["Subject"])]


def test_organisation_overrides_win_and_an_erased_donor_is_forgotten(
    stack: Stack, tenant: Tenant, mailbox: SmtpSink, kafka_server: KafkaServer
) -> None:
    configure(stack, tenant, quiet_hours="")
    staff = put_template(stack, tenant.staff_key, "booking_confirmed/en/subject", "Federation: {{ name }} is in")
    assert staff.status_code == 200 and staff.json()["scope"] == "federation"
    subject = "{{ name }}, see you at {{ event.title }}"
    organisation = put_template(stack, tenant.organiser_key, "booking_confirmed/en/subject", subject)
    assert organisation.status_code == 200 and organisation.json()["scope"] == "organisation"
    broken = put_template(stack, tenant.organiser_key, "booking_confirmed/en/text", "{% if %}")
    assert broken.status_code == 422
    created = event_created(tenant)
    publish(kafka_server.bootstrap, tenant, "org.pitchin.event.created.v1", created)
    person = donor(tenant)
    publish(kafka_server.bootstrap, tenant, "org.pitchin.donor.registered.v1", person)
    mine = booking(tenant, created["event_id"], name="Ana", email=person["email"], donor_id=person["donor_id"])
    publish(kafka_server.bootstrap, tenant, "org.pitchin.booking.confirmed.v1", mine)
    mail = mailbox.wait_for(lambda m: m["To"] == person["email"] and "see you" in str(m["Subject"]), timeout=30)
    assert mail["Subject"] == f"Ana, see you at {created['title']}"

    gone = publish(
        kafka_server.bootstrap,
        tenant,
        "org.pitchin.donor.withdrawn.v1",
        {
            "federation_id": tenant.federation_id,
            "organisation_id": tenant.organisation_id,
            "donor_id": person["donor_id"],
            "erase": True,
            "withdrawn_at": datetime.now(UTC).isoformat(),
        },
    )
    eventually(lambda: applied(stack, gone), what="the withdrawal to be applied")
    assert fetch(stack, "SELECT 1 FROM notifications.people WHERE donor_id = $1", person["donor_id"]) == []
    rows = fetch(
        stack, "SELECT recipient, body_text FROM notifications.deliveries WHERE person_ref = $1", person["donor_id"]
    )
    assert rows and all(r["recipient"] == "erased" and r["body_text"] == "" for r in rows)
    assert not fetch(stack, "SELECT 1 FROM notifications.attendees WHERE email = $1", person["email"])
