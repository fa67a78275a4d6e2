"""A donor signs up over HTTP and is welcomed by email, traced across every service."""

from __future__ import annotations

import uuid

import httpx
import pytest

from pitchin_testing.otlp import OtlpReceiver, ReceivedSpan
from pitchin_testing.smtp_sink import SmtpSink
from pitchin_testing.stack import Stack
from tests.e2e.conftest import Tenant
from tests.e2e.helpers import bearer, create_event, eventually, fetch, new_trace, sign_up

pytestmark = pytest.mark.e2e


def _server_span(otlp: OtlpReceiver, service: str, name: str, trace_id: str) -> ReceivedSpan:
    """The HTTP server span of `service` called `name` in the trace the test started."""

    def mine(s: ReceivedSpan) -> bool:
        return s.service == service and s.kind == "server" and s.name == name and s.trace_id == trace_id

    [span] = [s for s in otlp.wait_for(lambda spans: any(mine(s) for s in spans), timeout=30) if mine(s)]
    return span


def _by_id(spans: list[ReceivedSpan]) -> dict[str, ReceivedSpan]:
    return {s.span_id: s for s in spans}


def test_signup_reaches_matching_and_sends_a_welcome_email_in_one_trace(
    stack: Stack, tenant: Tenant, mailbox: SmtpSink, otlp: OtlpReceiver
) -> None:
    email = f"donor-{uuid.uuid4().hex[:8]}@example.org"
    trace_id, traced = new_trace()
    answer = sign_up(stack, tenant.organiser_key, headers=traced, name="Elana Levin", email=email)
    donor = answer.json()
    assert answer.headers["location"] == f"/v1/donors/{donor['donor_id']}"
    assert donor["organisation_id"] == tenant.organisation_id

    mail = mailbox.wait_for(lambda m: m["To"] == email, timeout=30)
    assert mail["Subject"] == "Welcome to Pitch In, Elana Levin"
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "social media, graphic design" in text
    assert f"/me/d1.{donor['donor_id']}." in text, "a signed link to their own page"

    profile = eventually(
        lambda: (
            (
                r := httpx.get(
                    f"{stack['matching'].url}/v1/donors/{donor['donor_id']}",
                    headers=bearer(tenant.staff_key),
                    timeout=5,
                )
            ).status_code
            == 200
            and r.json()
        ),
        what="matching to learn the donor",
    )
    assert profile["skills"] == {"social-media": 3, "graphic-design": 1}
    published = [
        line
        for line in httpx.get(f"{stack['signups'].url}/metrics", timeout=5).text.splitlines()
        if line.startswith("pitchin_events_published_total{") and "org.pitchin.donor.registered.v1" in line
    ]
    assert published and float(published[0].rsplit(" ", 1)[1]) >= 1, published

    # One trace: signups' HTTP span -> outbox relay send -> matching and notifications
    # consume -> notifications' SMTP send.
    server = _server_span(otlp, "signups", "POST /v1/donors", trace_id)

    def whole_trace(spans: list[ReceivedSpan]) -> bool:
        mine = [s for s in spans if s.trace_id == trace_id]
        # By name as well as kind: PostgreSQL spans are CLIENT spans too.
        return {
            ("matching", "consumer", None),
            ("notifications", "consumer", None),
            ("notifications", "client", "smtp send"),
        } <= {(s.service, s.kind, s.name if s.kind == "client" else None) for s in mine}

    spans = [s for s in otlp.wait_for(whole_trace, timeout=30) if s.trace_id == trace_id]
    index = _by_id(spans)
    [send] = [s for s in spans if s.service == "signups" and s.kind == "producer"]
    assert send.name == "send pitchin.donors.v1"
    assert send.attributes["messaging.destination.name"] == "pitchin.donors.v1"
    assert send.attributes["messaging.system"] == "kafka"
    assert send.attributes["cloudevents.event_type"] == "org.pitchin.donor.registered.v1"
    # The relay's span continues the request that wrote the outbox row.
    assert send.parent_span_id == server.span_id
    for consumer_service in ("matching", "notifications"):
        [consume] = [
            s for s in spans if s.service == consumer_service and s.kind == "consumer" and "pitchin.donors.v1" in s.name
        ]
        assert consume.parent_span_id == send.span_id, f"{consumer_service} is not a child of the relay's send"
    [smtp] = [s for s in spans if s.service == "notifications" and s.kind == "client" and s.name == "smtp send"]
    parent = index[smtp.parent_span_id]
    assert parent.service == "notifications"
    assert {s.service for s in spans} >= {"signups", "matching", "notifications"}


def test_event_created_is_mailed_to_the_organiser_and_learned_by_signups(
    stack: Stack, tenant: Tenant, mailbox: SmtpSink, otlp: OtlpReceiver
) -> None:
    organiser = f"events-{uuid.uuid4().hex[:8]}@dudleycvs.example"
    trace_id, traced = new_trace()
    event = create_event(
        stack,
        tenant.organiser_key,
        headers=traced,
        kind="training",
        title="Anarchists in the Boardroom: a training afternoon",
        starts_at="2027-10-04T13:30:00",
        ends_at="2027-10-04T16:30:00",
        venue_name="Dudley CVS, 7 Albion Street",
        capacity=30,
        free_places=True,
        organiser_email=organiser,
    ).json()
    assert event["starts_at"].startswith("2027-10-04T13:30:00+01:00")

    mail = mailbox.wait_for(lambda m: m["To"] == organiser, timeout=30)
    assert "Anarchists in the Boardroom" in mail["Subject"]
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert f"/v1/events/{event['event_id']}.ics" in text

    calendar = httpx.get(f"{stack['scheduling'].url}/v1/events/{event['event_id']}.ics", timeout=5)
    assert calendar.status_code == 200
    assert "BEGIN:VEVENT" in calendar.text and "TZID=Europe/London" in calendar.text

    def known_event() -> str | None:
        rows = fetch(stack, "SELECT title FROM signups.known_events WHERE event_id = $1", event["event_id"])
        title: str | None = rows[0]["title"] if rows else None
        return title

    assert eventually(known_event, what="signups to learn the event") == event["title"]

    server = _server_span(otlp, "scheduling", "POST /v1/events", trace_id)
    # Notifications (which mails the organiser) and signups (which learns the event) both
    # consume it within the request's trace.
    otlp.wait_for(
        lambda spans: (
            {(s.service, s.kind, None) for s in spans if s.trace_id == server.trace_id and s.kind != "client"}
            >= {
                ("notifications", "consumer", None),
                ("signups", "consumer", None),
                ("scheduling", "producer", None),
            }
        )
    )
