"""Waitlist offers (issue 22) through the running system: real Kafka, PostgreSQL and SMTP sink.

A freed place is offered to the first on the waitlist for the organiser's window, held
meanwhile, passed on when the offer lapses or is declined, and taken with the mail's link.
The organiser sets a short window (`waitlist_offer_seconds`, a real registration field) so
an expiry happens within the test.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx
import pytest

from pitchin_core.links import BOOKING_LINK_HEADER, read_booking_link
from pitchin_testing.smtp_sink import SmtpSink
from pitchin_testing.stack import Stack
from tests.conftest import new_tenant
from tests.e2e.conftest import Tenant
from tests.e2e.helpers import (
    bearer,
    create_event,
    eventually,
    eventually_async,
    fetch,
    read_topic,
    wait_until_signups_knows,
)

pytestmark = pytest.mark.e2e
BOOKINGS_TOPIC = "pitchin.bookings.v1"
_TAKE_LINK = re.compile(r"/bookings/([A-Za-z0-9._~-]+)/take")


def _text(mail: EmailMessage) -> str:
    part = mail.get_body(("plain",))
    assert part is not None
    content: str = part.get_content()
    return content


def _event(stack: Stack, tenant: Tenant, *, capacity: int, window: int) -> str:
    created = create_event(
        stack, tenant.organiser_key, capacity=capacity, waitlist_offer_seconds=window, title="Tenants' assembly"
    ).json()
    event_id: str = created["event_id"]
    wait_until_signups_knows(stack, tenant.organiser_key, event_id)
    return event_id


def _book(stack: Stack, tenant: Tenant, event_id: str, email: str) -> dict[str, Any]:
    answer = httpx.post(
        f"{stack['signups'].url}/v1/events/{event_id}/bookings",
        json={"name": email.split("@")[0], "email": email},
        headers=bearer(tenant.staff_key),
        timeout=15,
    )
    assert answer.status_code == 201, answer.text
    booked: dict[str, Any] = answer.json()
    return booked


def _booking(stack: Stack, tenant: Tenant, booking_id: str) -> dict[str, Any]:
    answer = httpx.get(f"{stack['signups'].url}/v1/bookings/{booking_id}", headers=bearer(tenant.staff_key), timeout=10)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _cancel(stack: Stack, tenant: Tenant, booking_id: str) -> None:
    answer = httpx.post(
        f"{stack['signups'].url}/v1/bookings/{booking_id}/cancel", headers=bearer(tenant.staff_key), timeout=15
    )
    assert answer.status_code == 200, answer.text


def _counts(stack: Stack, tenant: Tenant, event_id: str) -> dict[str, Any]:
    answer = httpx.get(
        f"{stack['signups'].url}/v1/events/{event_id}/bookings", headers=bearer(tenant.organiser_key), timeout=15
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _offer_mail(mailbox: SmtpSink, email: str) -> EmailMessage:
    return mailbox.wait_for(lambda m: m["To"] == email and "A place is free" in m["Subject"], timeout=30)


def _take_link(stack: Stack, mail: EmailMessage) -> str:
    found = _TAKE_LINK.search(_text(mail))
    assert found, _text(mail)
    return found.group(1)


async def _distinct_events(stack: Stack, event_id: str, count: int) -> list[dict[str, Any]]:
    """The first `count` distinct events (by CloudEvents id: a relay may publish one twice) of an event's places."""
    seen: set[bytes] = set()

    def keep(record: dict[str, Any]) -> bool:
        ce_id = record["headers"].get("ce_id", b"")
        if record["key"] != event_id.encode() or ce_id in seen:
            return False
        seen.add(ce_id)
        return True

    return await read_topic(stack.kafka_bootstrap, BOOKINGS_TOPIC, keep, count, within=60)


def test_an_offer_lapses_goes_to_the_next_who_takes_it_from_the_mail(stack: Stack, mailbox: SmtpSink) -> None:
    tenant = new_tenant(stack.web_federation_id, stack.issue_key)  # the web front's: its page shows the event
    event_id = _event(stack, tenant, capacity=1, window=10)
    first, second, third, late = (f"{n}-{uuid.uuid4().hex[:8]}@example.org" for n in ("ana", "ben", "cai", "dee"))
    holder = _book(stack, tenant, event_id, first)
    waiting = [_book(stack, tenant, event_id, email) for email in (second, third)]
    assert "confirmed_at" in holder and [w["position"] for w in waiting] == [1, 2]

    # The holder cancels: the place is offered to the first in line and held for them.
    _cancel(stack, tenant, holder["booking_id"])
    offer = _booking(stack, tenant, waiting[0]["booking_id"])
    assert offer["status"] == "offered"
    expires = datetime.fromisoformat(offer["offer_expires_at"])
    assert timedelta(seconds=9) < expires - datetime.fromisoformat(offer["offered_at"]) <= timedelta(seconds=10)
    mail = _offer_mail(mailbox, second)
    assert read_booking_link(stack.donor_link_secret, _take_link(stack, mail), time.time()) == offer["booking_id"]
    assert "give-up" in _text(mail)
    # A new RSVP meanwhile joins the waitlist: the held place is not free, and the page says why.
    assert _book(stack, tenant, event_id, late)["position"] == 2
    page = httpx.get(f"{stack['web'].url}/events/{event_id}", timeout=15)
    assert "being offered to the people on the waitlist" in page.text
    listing = _counts(stack, tenant, event_id)
    assert (listing["confirmed"], listing["offered"], listing["waitlisted"]) == (0, 1, 2)

    # Unanswered, it lapses: that person is told, and the place is offered to the next.
    lapsed = mailbox.wait_for(lambda m: m["To"] == second and "has gone to the next" in m["Subject"], timeout=40)
    assert "Tenants' assembly" in lapsed["Subject"]
    assert _booking(stack, tenant, waiting[0]["booking_id"])["cancel_reason"] == "offer_expired"
    mail = _offer_mail(mailbox, third)

    # The next takes it with the mail's link, as the web front does for them (it forwards the link).
    link = _take_link(stack, mail)
    answer = httpx.post(
        f"{stack['signups'].url}/v1/bookings/{waiting[1]['booking_id']}/offer/accept",
        headers={**bearer(stack.web_key), BOOKING_LINK_HEADER: link},
        timeout=15,
    )
    assert answer.status_code == 200, answer.text
    assert [e["type"] for e in answer.json()["events"]] == ["org.pitchin.booking.offer-accepted.v1"]
    taken = mailbox.wait_for(lambda m: m["To"] == third and m["Subject"].startswith("You have a place"), timeout=30)
    assert "/cancel" in _text(taken)
    listing = _counts(stack, tenant, event_id)
    assert (listing["confirmed"], listing["offered"], listing["waitlisted"]) == (1, 0, 1)

    # Every step is an event on pitchin.bookings.v1, in order.
    events = asyncio.run(_distinct_events(stack, event_id, 9))
    assert [e["type"] for e in events] == [
        "org.pitchin.booking.confirmed.v1",
        "org.pitchin.booking.waitlisted.v1",
        "org.pitchin.booking.waitlisted.v1",
        "org.pitchin.booking.cancelled.v1",
        "org.pitchin.booking.offered.v1",
        "org.pitchin.booking.waitlisted.v1",
        "org.pitchin.booking.offer-expired.v1",
        "org.pitchin.booking.offered.v1",
        "org.pitchin.booking.offer-accepted.v1",
    ]
    # Another booking link opens nothing: the link is the person's.
    stolen = httpx.post(
        f"{stack['signups'].url}/v1/bookings/{waiting[0]['booking_id']}/offer/accept",
        headers={**bearer(stack.web_key), BOOKING_LINK_HEADER: link},
        timeout=15,
    )
    assert stolen.status_code in (403, 404), stolen.text


CAPACITY = 100
WAITING = 300


def test_two_hundred_cancellations_and_answers_racing_on_one_event_keep_exact_counts(
    stack: Stack, tenant: Tenant
) -> None:
    event_id = _event(stack, tenant, capacity=CAPACITY, window=3600)
    signups = stack["signups"].url
    tag = uuid.uuid4().hex[:6]

    async def race() -> tuple[list[dict[str, Any]], list[int], list[int]]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(
            base_url=signups, timeout=60, limits=limits, headers=bearer(tenant.staff_key)
        ) as c:
            booked = []
            for start in range(0, CAPACITY + WAITING, 100):  # in order: positions are the booking order
                answers = await asyncio.gather(
                    *(
                        c.post(f"/v1/events/{event_id}/bookings", json={"name": f"P{i}", "email": f"p{i}-{tag}@r.ex"})
                        for i in range(start, start + 100)
                    )
                )
                booked += [a.json() for a in answers]
            holders = [b for b in booked if "confirmed_at" in b]
            waiting = sorted((b for b in booked if "position" in b), key=lambda b: b["position"])
            assert len(holders) == CAPACITY and len(waiting) == WAITING

            async def cancel(booking: dict[str, Any]) -> int:
                return (await c.post(f"/v1/bookings/{booking['booking_id']}/cancel")).status_code

            async def answer(n: int, booking: dict[str, Any]) -> int:
                # Each of the first hundred in line answers as soon as a place is offered to them:
                # the even take it, the odd give it up (offering it on), racing the cancellations.
                async def offered() -> bool:
                    status: str = (await c.get(f"/v1/bookings/{booking['booking_id']}")).json()["status"]
                    return status == "offered"

                await eventually_async(offered, timeout=90, interval=0.2, what=f"an offer to waiting #{n + 1}")
                verb = "accept" if n % 2 == 0 else "decline"
                return (await c.post(f"/v1/bookings/{booking['booking_id']}/offer/{verb}")).status_code

            results = await asyncio.gather(
                *(cancel(h) for h in holders), *(answer(n, w) for n, w in enumerate(waiting[:CAPACITY]))
            )
            return waiting, list(results[:CAPACITY]), list(results[CAPACITY:])

    waiting, cancelled, answered = asyncio.run(race())
    assert Counter(cancelled) == {200: CAPACITY}
    assert Counter(answered) == {200: CAPACITY}, "every one of the first hundred was offered a place and answered"

    # Exact: the 50 who took a place hold it; the 50 places given up went to the next 50 in line,
    # in order, and are held for them; nobody else was offered one, and no place is lost.
    listing = _counts(stack, tenant, event_id)
    by_status: dict[str, set[str]] = {}
    for item in listing["items"]:
        by_status.setdefault(item["status"], set()).add(item["booking_id"])
    ids = [w["booking_id"] for w in waiting]
    assert by_status["confirmed"] == set(ids[0:CAPACITY:2])
    assert by_status["offered"] == set(ids[CAPACITY : CAPACITY + CAPACITY // 2])
    assert by_status["waitlisted"] == set(ids[CAPACITY + CAPACITY // 2 :])
    assert len(by_status["cancelled"]) == CAPACITY + CAPACITY // 2
    assert (listing["confirmed"], listing["offered"], listing["waitlisted"]) == (50, 50, 150)
    assert listing["confirmed"] + listing["offered"] == CAPACITY

    # Nobody was offered a place twice: one offer event per person offered, on the topic.
    total = (CAPACITY + WAITING) + CAPACITY + 150 + 50 + 50  # booked, cancelled, offered, accepted, declined
    events = asyncio.run(_distinct_events(stack, event_id, total))
    offers = Counter(e["data"]["booking_id"] for e in events if e["type"] == "org.pitchin.booking.offered.v1")
    assert set(offers) == set(ids[: CAPACITY + CAPACITY // 2]) and set(offers.values()) == {1}
    assert Counter(e["type"] for e in events)["org.pitchin.booking.offer-declined.v1"] == 50


def test_a_restart_mid_offer_expires_it_exactly_once(stack: Stack, tenant: Tenant, mailbox: SmtpSink) -> None:
    event_id = _event(stack, tenant, capacity=1, window=8)
    emails = [f"{n}-{uuid.uuid4().hex[:8]}@example.org" for n in ("eli", "fay", "gus")]
    holder, waiting, next_in_line = (_book(stack, tenant, event_id, e) for e in emails)
    _cancel(stack, tenant, holder["booking_id"])
    offer = _booking(stack, tenant, waiting["booking_id"])
    assert offer["status"] == "offered"
    expires = datetime.fromisoformat(offer["offer_expires_at"])

    # Signups dies with the offer open and stays down past its deadline: no process holds the timer.
    signups = stack["signups"]
    signups.kill()
    eventually(lambda: datetime.now(UTC) > expires + timedelta(seconds=1), timeout=20, what="the offer to fall due")
    still = fetch(stack, "SELECT status FROM signups.bookings WHERE booking_id = $1", waiting["booking_id"])
    assert still[0]["status"] == "offered"
    signups.start()
    signups.wait_ready()

    # Back up, the clock finds it in the database: expired once, and the place offered to the next.
    _offer_mail(mailbox, emails[2])
    after = _booking(stack, tenant, waiting["booking_id"])
    assert (after["status"], after["cancel_reason"]) == ("cancelled", "offer_expired")
    assert _booking(stack, tenant, next_in_line["booking_id"])["status"] == "offered"
    events = asyncio.run(_distinct_events(stack, event_id, 7))
    assert [e["type"] for e in events][-3:] == [
        "org.pitchin.booking.offered.v1",
        "org.pitchin.booking.offer-expired.v1",
        "org.pitchin.booking.offered.v1",
    ]
    lapsed = mailbox.wait_for(lambda m: m["To"] == emails[1] and "has gone to the next" in m["Subject"], timeout=30)
    assert lapsed is not None
    assert sum(1 for m in mailbox.messages if m["To"] == emails[1] and "has gone to the next" in m["Subject"]) == 1
    assert Counter(e["type"] for e in events)["org.pitchin.booking.offer-expired.v1"] == 1
