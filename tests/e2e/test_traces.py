"""One connected trace per flow, across every service and Kafka hop, with the right span kinds.

Flows driven through the real services (issue 7's "done when"): a donor signs up; an organiser
creates an event; someone books a place on it; the event's reminder fires. Each is asserted
as a trace read back from the real OTLP receiver the services export to:

- the HTTP server span of the service that took the request is the root;
- the outbox relay's PRODUCER span (``send <topic>``) is its child, with the messaging
  attributes of the OpenTelemetry semantic conventions;
- every consumer of the topic has a CONSUMER span (``<topic> process``) that is a child of
  that producer span;
- notifications' SMTP CLIENT span hangs below its consumer when the flow sends an email;
- a reminder starts a new trace (it fires long after the request) whose root links back to
  the request that scheduled it, and continues through the relay to the consumers.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from pitchin_core.contracts.matching import OfferMadeV1
from pitchin_core.contracts.topics import TOPICS
from pitchin_testing.otlp import OtlpReceiver, ReceivedSpan
from pitchin_testing.smtp_sink import SmtpSink
from pitchin_testing.stack import Stack
from tests.e2e.conftest import Tenant
from tests.e2e.helpers import bearer, create_event, eventually, sign_up, wait_until_signups_knows

pytestmark = pytest.mark.e2e

CONSUMERS = {spec.name: set(spec.consumers) for spec in TOPICS}


def _trace(spans: Iterable[ReceivedSpan], trace_id: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.trace_id == trace_id]


def _server_span(otlp: OtlpReceiver, service: str, name: str, marker: Callable[[ReceivedSpan], bool]) -> ReceivedSpan:
    """The HTTP server span of `service` called `name` for which `marker` holds."""

    def found(spans: list[ReceivedSpan]) -> bool:
        return any(s.service == service and s.kind == "server" and s.name == name and marker(s) for s in spans)

    spans = otlp.wait_for(found, timeout=30)
    return [s for s in spans if s.service == service and s.kind == "server" and s.name == name and marker(s)][-1]


def _first_span(
    otlp: OtlpReceiver, wanted: Callable[[ReceivedSpan, list[ReceivedSpan]], bool], timeout: float = 30
) -> ReceivedSpan:
    """The first span received for which `wanted(span, every span received)` holds, once there is one."""

    def found(spans: list[ReceivedSpan]) -> ReceivedSpan | None:
        return next((s for s in spans if wanted(s, spans)), None)

    span = found(otlp.wait_for(lambda spans: found(spans) is not None, timeout=timeout))
    assert span is not None
    return span


def _root_server(otlp: OtlpReceiver, trace_id: str) -> ReceivedSpan:
    """The HTTP server span that roots a trace (exported a moment after its children, perhaps)."""

    def roots(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
        return [s for s in _trace(spans, trace_id) if s.kind == "server" and not s.parent_span_id]

    [root] = roots(otlp.wait_for(lambda spans: bool(roots(spans)), timeout=15))
    return root


def _target(path: str) -> Callable[[ReceivedSpan], bool]:
    """Matches the server span of a request to `path` (http.target / url.path, by semconv version)."""

    def probe(span: ReceivedSpan) -> bool:
        return any(span.attributes.get(key) == path for key in ("http.target", "url.path"))

    return probe


def _orphans(spans: list[ReceivedSpan], root: ReceivedSpan) -> list[str]:
    """Spans of the trace that do not reach `root` through their parents."""
    index = {s.span_id: s for s in spans}
    lost = []
    for span in spans:
        seen, hops = span, 0
        while seen.span_id != root.span_id and seen.parent_span_id in index and hops < 100:
            seen, hops = index[seen.parent_span_id], hops + 1
        if seen.span_id != root.span_id:
            lost.append(f"{span.service}:{span.kind}:{span.name}")
    return lost


def _assert_connected(otlp: OtlpReceiver, trace_id: str, root: ReceivedSpan) -> list[ReceivedSpan]:
    """Every span of the trace reaches `root`: one tree, no orphans (parents may be exported after children)."""
    assert root.parent_span_id == "", "the root has no parent"
    try:
        spans = otlp.wait_for(lambda spans: not _orphans(_trace(spans, trace_id), root), timeout=15)
    except AssertionError:
        raise AssertionError(f"not connected to {root.name}: {_orphans(_trace(otlp.spans, trace_id), root)}") from None
    return _trace(spans, trace_id)


def _assert_producer(span: ReceivedSpan, topic: str) -> None:
    """The relay's PRODUCER span, attributed by the messaging semantic conventions (v1.27+)."""
    assert span.kind == "producer" and span.name == f"send {topic}"
    attributes = span.attributes
    assert attributes["messaging.system"] == "kafka"
    assert attributes["messaging.operation.name"] == "send"
    assert attributes["messaging.operation.type"] == "send"
    assert attributes["messaging.destination.name"] == topic
    assert attributes["messaging.message.id"] == attributes["cloudevents.event_id"]
    assert attributes["messaging.kafka.message.key"]
    assert str(attributes["cloudevents.event_type"]).startswith("org.pitchin.")


def _assert_consumer(span: ReceivedSpan, topic: str) -> None:
    """The CONSUMER span, with the attributes the messaging conventions require (set in messaging.subscribe)."""
    assert span.kind == "consumer" and span.name == f"{topic} process"
    attributes = span.attributes
    assert attributes["messaging.system"] == "kafka"
    assert attributes["messaging.destination.name"] == topic
    assert attributes["messaging.operation.name"] == "process"
    assert attributes["messaging.operation.type"] == "process"
    assert attributes["messaging.consumer.group.name"] == span.service
    assert int(attributes["messaging.destination.partition.id"]) >= 0
    assert int(attributes["messaging.kafka.offset"]) >= 0
    assert attributes["messaging.message.id"] == attributes["cloudevents.event_id"]


def _hop(
    otlp: OtlpReceiver, trace_id: str, producer_service: str, topic: str, parent: ReceivedSpan, timeout: float = 30
) -> tuple[ReceivedSpan, dict[str, ReceivedSpan]]:
    """The producer span for `topic` under `parent`, and each consumer's span under it."""
    wanted = CONSUMERS[topic]

    def complete(spans: list[ReceivedSpan]) -> bool:
        mine = _trace(spans, trace_id)
        sends = [
            s for s in mine if s.service == producer_service and s.kind == "producer" and s.name == f"send {topic}"
        ]
        return any(
            {s.service for s in mine if s.kind == "consumer" and s.parent_span_id == send.span_id} >= wanted
            for send in sends
        )

    spans = _trace(otlp.wait_for(complete, timeout=timeout), trace_id)
    sends = [
        s
        for s in spans
        if s.service == producer_service and s.kind == "producer" and s.name == f"send {topic}"
        if {c.service for c in spans if c.kind == "consumer" and c.parent_span_id == s.span_id} >= wanted
    ]
    send = sends[0]
    _assert_producer(send, topic)
    assert send.parent_span_id == parent.span_id, f"send {topic} continues {parent.name}"
    consumers = {}
    for span in spans:
        if span.kind == "consumer" and span.parent_span_id == send.span_id:
            _assert_consumer(span, topic)
            consumers[span.service] = span
    assert set(consumers) == wanted, f"every consumer of {topic} in the trace: {set(consumers)} vs {wanted}"
    return send, consumers


def _smtp_under(otlp: OtlpReceiver, trace_id: str, consumer: ReceivedSpan, timeout: float = 30) -> ReceivedSpan:
    """notifications' SMTP CLIENT span in the trace, descending from `consumer`."""

    def descends(span: ReceivedSpan, index: dict[str, ReceivedSpan]) -> bool:
        while span.parent_span_id in index:
            if span.parent_span_id == consumer.span_id:
                return True
            span = index[span.parent_span_id]
        return False

    def sent_below(span: ReceivedSpan, spans: list[ReceivedSpan]) -> bool:
        if span.trace_id != trace_id or span.kind != "client" or span.name != "smtp send":
            return False
        return descends(span, {s.span_id: s for s in _trace(spans, trace_id)})

    smtp = _first_span(otlp, sent_below, timeout=timeout)
    assert smtp.service == "notifications"
    return smtp


def test_a_signup_is_one_trace_from_the_request_to_the_welcome_email(
    stack: Stack, tenant: Tenant, mailbox: SmtpSink, otlp: OtlpReceiver
) -> None:
    email = f"trace-{uuid.uuid4().hex[:8]}@example.org"
    answer = sign_up(stack, tenant.organiser_key, name="Trace Donor", email=email)
    mailbox.wait_for(lambda m: m["To"] == email, timeout=30)

    # Other tests post donors too: find this one's trace through the relay span's message key.
    donor_id = answer.json()["donor_id"]

    send_span = _first_span(
        otlp, lambda s, _: s.kind == "producer" and s.attributes.get("messaging.kafka.message.key") == donor_id
    )
    trace_id = send_span.trace_id
    server = _root_server(otlp, trace_id)
    assert (server.service, server.name) == ("signups", "POST /v1/donors")

    _, consumers = _hop(otlp, trace_id, "signups", "pitchin.donors.v1", server)
    _smtp_under(otlp, trace_id, consumers["notifications"])
    spans = _assert_connected(otlp, trace_id, server)
    assert {(s.service, s.kind) for s in spans} >= {
        ("signups", "server"),
        ("signups", "producer"),
        ("matching", "consumer"),
        ("notifications", "consumer"),
        ("notifications", "client"),
    }
    # No span per SQL statement unless PITCHIN_TRACE_DATABASE asks for them (a fifth of a request's CPU).
    assert not any(s.kind == "client" and s.attributes.get("db.system") for s in spans)


def test_an_event_a_booking_and_its_reminder_are_each_one_connected_trace(
    stack: Stack, tenant: Tenant, mailbox: SmtpSink, otlp: OtlpReceiver
) -> None:
    # 1. An organiser creates an event whose reminder falls due a few seconds from now.
    created = create_event(
        stack,
        tenant.organiser_key,
        starts_in=timedelta(seconds=12),
        kind="training",
        title=f"Tracing the picket line {uuid.uuid4().hex[:6]}",
        venue_name="Dudley CVS, 7 Albion Street",
        capacity=30,
        free_places=True,
        organiser_email=f"trace-{uuid.uuid4().hex[:8]}@example.org",
        reminders=[{"before": "PT4S"}],
    )
    event_id = created.json()["event_id"]

    def event_send(span: ReceivedSpan, spans: list[ReceivedSpan]) -> bool:
        return (
            span.service == "scheduling"
            and span.kind == "producer"
            and span.attributes.get("messaging.kafka.message.key") == event_id
            and any(p.span_id == span.parent_span_id and p.kind == "server" for p in spans)
        )

    first_send = _first_span(otlp, event_send)
    created_trace = first_send.trace_id
    setter = _root_server(otlp, created_trace)
    assert (setter.service, setter.name) == ("scheduling", "POST /v1/events")
    _, consumers = _hop(otlp, created_trace, "scheduling", "pitchin.events.v1", setter)
    _smtp_under(otlp, created_trace, consumers["notifications"])  # the organiser's confirmation
    _assert_connected(otlp, created_trace, setter)

    # 2. Someone books a place once signups has learned the event.
    wait_until_signups_knows(stack, tenant.organiser_key, event_id)
    attendee = f"attendee-{uuid.uuid4().hex[:8]}@example.org"
    booked = httpx.post(
        f"{stack['signups'].url}/v1/events/{event_id}/bookings",
        json={"name": "Trace Attendee", "email": attendee},
        headers=bearer(tenant.organiser_key),
        timeout=15,
    )
    assert booked.status_code == 201, booked.text
    booking_id = booked.json()["booking_id"]

    path = f"/v1/events/{event_id}/bookings"
    booking_server = _server_span(otlp, "signups", "POST /v1/events/{event_id}/bookings", _target(path))
    booking_trace = booking_server.trace_id
    assert booking_trace not in {created_trace}
    _, booking_consumers = _hop(otlp, booking_trace, "signups", "pitchin.bookings.v1", booking_server)
    assert set(booking_consumers) == {"notifications", "scheduling"}
    booking_spans = _assert_connected(otlp, booking_trace, booking_server)
    assert any(
        s.kind == "producer" and s.attributes.get("cloudevents.event_type", "").startswith("org.pitchin.booking.")
        for s in booking_spans
    ), booking_id

    # 3. The reminder fires: a new trace, linked to the request that scheduled it.
    reminder = _first_span(
        otlp, lambda s, _: s.name == "reminder due" and s.attributes.get("pitchin.event.id") == event_id, timeout=60
    )
    assert reminder.service == "scheduling"
    assert reminder.trace_id not in {created_trace, booking_trace}, "a reminder starts its own trace"
    assert setter.span_id in reminder.links, "the reminder links back to the POST that scheduled it"
    _, reminder_consumers = _hop(otlp, reminder.trace_id, "scheduling", "pitchin.events.v1", reminder)
    assert set(reminder_consumers) == {"signups", "notifications"}
    reminder_spans = _assert_connected(otlp, reminder.trace_id, reminder)
    assert any(
        s.kind == "producer" and s.attributes.get("cloudevents.event_type") == "org.pitchin.event.reminder-due.v1"
        for s in reminder_spans
    )


def test_an_offer_is_one_trace_from_the_organiser_s_request_to_the_donor_s_email(
    stack: Stack, tenant: Tenant, mailbox: SmtpSink, otlp: OtlpReceiver
) -> None:
    email = f"offer-trace-{uuid.uuid4().hex[:8]}@example.org"
    donor = sign_up(stack, tenant.organiser_key, name="Offer Trace", email=email).json()
    eventually(
        lambda: (
            httpx.get(
                f"{stack['matching'].url}/v1/donors/{donor['donor_id']}", headers=bearer(tenant.staff_key), timeout=5
            ).status_code
            == 200
        ),
        what="matching to learn the donor",
    )
    deadline = (datetime.now(UTC) + timedelta(days=5)).isoformat()
    fight = httpx.post(
        f"{stack['signups'].url}/v1/fights",
        json={
            "kind": "strike",
            "title": "Trace strike",
            "needs": [
                {
                    "title": "Social media plan",
                    "required_skills": [{"skill": "social-media", "min_level": "advanced"}],
                    "estimated_hours": 4,
                    "deadline": deadline,
                    "urgency": "critical",
                }
            ],
        },
        headers=bearer(tenant.organiser_key),
        timeout=15,
    )
    assert fight.status_code == 201, fight.text
    need_id = fight.json()["needs"][0]["need_id"]
    mailbox.wait_for(lambda m: m["To"] == email and "Social media plan" in str(m["Subject"]), timeout=60)

    first = _first_span(
        otlp,
        lambda s, _: (
            s.kind == "producer"
            and s.name == "send pitchin.needs.v1"
            and s.attributes.get("messaging.kafka.message.key") == need_id
        ),
    )
    trace_id = first.trace_id
    server = _root_server(otlp, trace_id)
    assert (server.service, server.name) == ("signups", "POST /v1/fights")
    _hop(otlp, trace_id, "signups", "pitchin.needs.v1", server)

    # Matching's offer continues the trace of the need it answers (no orphans: checked below) …
    def offer_sent(span: ReceivedSpan, _: list[ReceivedSpan]) -> bool:
        return (
            span.trace_id == trace_id
            and span.service == "matching"
            and span.kind == "producer"
            and span.name == "send pitchin.matches.v1"
            # Not the escalation's first step, which the same pass records on the topic.
            and span.attributes.get("cloudevents.event_type") == OfferMadeV1.event_type
        )

    offer = _first_span(otlp, offer_sent, timeout=60)
    _assert_producer(offer, "pitchin.matches.v1")
    offer_consumers = {
        s.service: s
        for s in _trace(
            otlp.wait_for(
                lambda spans: (
                    sum(
                        1 for s in _trace(spans, trace_id) if s.kind == "consumer" and s.parent_span_id == offer.span_id
                    )
                    >= len(CONSUMERS["pitchin.matches.v1"])
                ),
                timeout=60,
            ),
            trace_id,
        )
        if s.kind == "consumer" and s.parent_span_id == offer.span_id
    }
    assert set(offer_consumers) == CONSUMERS["pitchin.matches.v1"]
    for span in offer_consumers.values():
        _assert_consumer(span, "pitchin.matches.v1")
    # … and the offer email is sent under notifications' consumer of it.
    _smtp_under(otlp, trace_id, offer_consumers["notifications"], timeout=60)
    _assert_connected(otlp, trace_id, server)


def test_background_polls_make_no_traces(otlp: OtlpReceiver) -> None:
    """Relays, timers and lag monitors poll PostgreSQL several times a second in every process; none
    of that may start a trace (it would bury real ones). Traces start at requests, consumed events
    and reminders; database statements are spans only when PITCHIN_TRACE_DATABASE asks for them."""
    seen = len(otlp.spans)

    def a_poll_traced(spans: list[ReceivedSpan]) -> bool:
        return any(not s.parent_span_id and s.kind == "client" for s in spans[seen:])

    with pytest.raises(AssertionError, match="did not arrive"):
        otlp.wait_for(a_poll_traced, timeout=3)
    # A statement's span is a client span naming its database ("DELETE /v1/…" is an HTTP server span).
    sql = [(s.service, s.name) for s in otlp.spans if s.kind == "client" and s.attributes.get("db.system")]
    assert sql == [], sql[:5]
