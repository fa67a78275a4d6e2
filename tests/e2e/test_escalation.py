"""Escalation of an urgent need end to end: signups, matching and notifications as processes on
real Kafka and PostgreSQL. A critical need asks a first wave, each decline is replaced at once,
the ask widens when its step falls due (the offer clock's durable timer), and once the place is
filled the others are stood down: their offers cancelled, and each of them thanked by mail.
The organiser follows every step on the need's escalation page (API) and on matching's topic.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx
import pytest

from pitchin_testing.kafka import KafkaServer
from pitchin_testing.smtp_sink import SmtpSink
from pitchin_testing.stack import Stack
from tests.e2e.conftest import Tenant
from tests.e2e.helpers import bearer, eventually, sign_up
from tests.e2e.test_matching import (
    _at,
    _event,
    _known_to_matching,
    _made_event,
    _matches_for,
    _need_opened,
    _publish,
    _set_policy,
    _types,
    _wait_offers,
)
from tests.e2e.test_notifications_kit import configure

pytestmark = pytest.mark.e2e


def _escalation(stack: Stack, tenant: Tenant, need_id: str) -> dict[str, Any]:
    answer = httpx.get(
        f"{stack['matching'].url}/v1/needs/{need_id}/escalation", headers=bearer(tenant.organiser_key), timeout=10
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _withdrawn_to(address: str) -> Callable[[EmailMessage], bool]:
    return lambda message: message["To"] == address and message["Subject"] == "An offer was withdrawn"


def test_a_critical_need_replaces_a_decline_at_once_widens_when_due_and_stands_the_others_down(
    stack: Stack, tenant: Tenant, kafka_server: KafkaServer, mailbox: SmtpSink
) -> None:
    matching = stack["matching"].url
    configure(stack, tenant, quiet_hours="")  # the thank-you must not wait for the morning
    # One step, 30 s into a 10-minute need: long after the decline below, well before the deadline.
    _set_policy(stack, tenant, escalation={"at": [0.05]})
    emails = {}
    for n in range(6):
        email = f"esc-{uuid.uuid4().hex[:10]}@example.org"
        donor_id = sign_up(stack, tenant.organiser_key, name=f"Donor {n}", email=email).json()["donor_id"]
        emails[donor_id] = email
        eventually(_known_to_matching(stack, tenant, donor_id), timeout=60, what=f"matching to learn {donor_id}")
    need_id = f"need-{uuid.uuid4().hex[:8]}"
    deadline = datetime.now(UTC) + timedelta(minutes=10)
    opened = _need_opened(tenant, need_id, urgency="critical", deadline=deadline.isoformat())
    _publish(kafka_server, "pitchin.needs.v1", need_id, _event(opened, tenant))

    wave = _wait_offers(stack, tenant, need_id, "the first wave", lambda o: len(o) == 3)
    first = _escalation(stack, tenant, need_id)
    assert [s["kind"] for s in first["steps"]] == ["first-wave"] and first["stage"] == 0
    assert first["steps"][0]["offers_wanted"] == 3

    # A decline is replaced at once: the fourth offer is made in the decline's own transaction.
    made = _made_event(kafka_server, need_id, wave[0]["offer_id"])
    declined = httpx.post(_at(matching, made["decline_url"]), json={"reason": "on shift"}, timeout=10)
    assert declined.status_code == 200, declined.text
    offers = _wait_offers(stack, tenant, need_id, "the decline replaced", lambda o: len(o) == 4, timeout=10)
    assert len({o["donor_id"] for o in offers}) == 4

    # The step falls due (the offer clock's timer in the need's row): one more offer in flight.
    widened = eventually(
        lambda: (lambda e: e if e["stage"] == 1 else None)(_escalation(stack, tenant, need_id)),
        timeout=90,
        what="the escalation step",
    )
    assert [s["kind"] for s in widened["steps"]] == ["first-wave", "widened"]
    assert widened["steps"][1]["offers_wanted"] == 4 and widened["next_step_at"] is None
    offers = _wait_offers(stack, tenant, need_id, "the widened ask", lambda o: len(o) == 5)

    # One says yes: the three others still asked are stood down, and each is thanked by mail.
    pending = [o for o in offers if o["status"] == "pending"]
    assert len(pending) == 4
    yes = _made_event(kafka_server, need_id, pending[0]["offer_id"])
    assert httpx.post(_at(matching, yes["accept_url"]), timeout=10).status_code == 200
    offers = _wait_offers(
        stack,
        tenant,
        need_id,
        "the others stood down",
        lambda o: sorted(x["status"] for x in o) == ["accepted", "cancelled", "cancelled", "cancelled", "declined"],
        timeout=10,
    )
    stood_down = _escalation(stack, tenant, need_id)
    assert [s["kind"] for s in stood_down["steps"]] == ["first-wave", "widened", "stood-down"]
    assert "3 other donor(s) stood down and thanked" in stood_down["steps"][2]["detail"]
    for offer in (o for o in offers if o["status"] == "cancelled"):
        mail = mailbox.wait_for(_withdrawn_to(emails[offer["donor_id"]]), timeout=60)
        assert "Thank you for being ready to help" in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]

    # Every step is on matching's topic too, in order with the offers of the need.
    events = eventually(
        lambda: (lambda e: e if _types(e).count("need.escalated") == 3 else None)(_matches_for(kafka_server, need_id)),
        timeout=90,
        what="the stand-down on Kafka",
    )
    steps = [e for e in events if e["type"] == "org.pitchin.need.escalated.v1"]
    assert [(e["step"], e["kind"]) for e in steps] == [(0, "first-wave"), (1, "widened"), (2, "stood-down")]
    assert _types(events)[:4] == ["need.escalated", "offer.made", "offer.made", "offer.made"]
    assert _types(events).count("offer.cancelled") == 3
