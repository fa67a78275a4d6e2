"""The web front's own key (role `web-front`, issue 17) against the real services, and the pages
that act for one person: they open only with that person's signed link, checked by the service.

The key may read published events, their places and agenda, take held sign-ups and RSVPs, and
nothing else (403); a booking or a donor opens to it only with the person's link forwarded in
`X-Booking-Link` / `X-Donor-Link`, and a bare id or a forged link opens nothing, on the services
and on the web front's pages.
"""

from __future__ import annotations

import re
import time
import uuid

import httpx
import pytest

from pitchin_core.links import read_booking_link, sign_booking_link, sign_donor_link
from pitchin_testing.smtp_sink import SmtpSink
from pitchin_testing.stack import Stack
from tests.conftest import Tenant
from tests.e2e.helpers import bearer, create_event, sign_up, wait_until_signups_knows
from tests.unit.factories import donor_signup

pytestmark = pytest.mark.e2e

FORGED_SECRET = "not-the-donor-link-secret-" * 2


def _web_key(stack: Stack, tenant: Tenant) -> dict[str, str]:
    return bearer(stack.issue_key(tenant.federation_id, None, "web-front"))


def test_the_web_key_is_refused_everywhere_but_its_public_doors(stack: Stack, tenant: Tenant) -> None:
    web = _web_key(stack, tenant)
    event = create_event(stack, tenant.organiser_key, capacity=5).json()
    wait_until_signups_knows(stack, tenant.organiser_key, event["event_id"])
    refused = [
        ("GET", "signups", "/v1/publishers"),
        ("GET", "signups", "/v1/donors"),
        ("GET", "signups", "/v1/fights"),
        ("GET", "signups", f"/v1/events/{event['event_id']}/bookings"),
        ("GET", "scheduling", "/v1/events"),
        ("GET", "scheduling", f"/v1/events/{event['event_id']}/attendees"),
        ("GET", "notifications", "/v1/deliveries"),
        ("GET", "matching", "/v1/policy"),
        ("GET", "matching", "/v1/totals"),
    ]
    for method, service, path in refused:
        answer = httpx.request(method, f"{stack[service].url}{path}", headers=web, timeout=10)
        assert answer.status_code == 403, (method, service, path, answer.status_code, answer.text)
    # Its doors: the skills list, a held sign-up (never an immediate one), a published event, places, an RSVP.
    assert httpx.get(f"{stack['signups'].url}/v1/skills", headers=web).status_code == 200
    held = donor_signup(email=f"held-{uuid.uuid4().hex[:8]}@example.org")
    at_once = httpx.post(f"{stack['signups'].url}/v1/donors", json=held, headers=web)
    assert at_once.status_code == 403, at_once.text
    pending = httpx.post(f"{stack['signups'].url}/v1/donors", json=held, params={"confirm": "email"}, headers=web)
    assert pending.status_code == 202, pending.text
    shown = httpx.get(f"{stack['scheduling'].url}/v1/events/{event['event_id']}", headers=web)
    assert shown.status_code == 200 and shown.json()["organiser_email"] == "", "no organiser's address"
    assert httpx.get(f"{stack['signups'].url}/v1/events/{event['event_id']}/places", headers=web).status_code == 200
    booked = httpx.post(
        f"{stack['signups'].url}/v1/events/{event['event_id']}/bookings",
        json={"name": "Ana Ruiz", "email": f"ana-{uuid.uuid4().hex[:6]}@example.org"},
        headers=web,
    )
    assert booked.status_code == 201, booked.text


def test_a_booking_opens_to_the_web_key_only_with_the_persons_link(stack: Stack, tenant: Tenant) -> None:
    web = _web_key(stack, tenant)
    event = create_event(stack, tenant.organiser_key, capacity=5).json()
    wait_until_signups_knows(stack, tenant.organiser_key, event["event_id"])
    booked = httpx.post(
        f"{stack['signups'].url}/v1/events/{event['event_id']}/bookings",
        json={"name": "Ana Ruiz", "email": f"ana-{uuid.uuid4().hex[:6]}@example.org"},
        headers=web,
    ).json()
    booking_id = booked["booking_id"]
    path = f"{stack['signups'].url}/v1/bookings/{booking_id}"
    link = sign_booking_link(stack.donor_link_secret, booking_id, time.time())
    other = sign_booking_link(stack.donor_link_secret, "bkg_someone_else", time.time())
    forged = sign_booking_link(FORGED_SECRET, booking_id, time.time())
    assert httpx.get(path, headers=web).status_code == 403, "the bare id opens nothing"
    for wrong in (forged, other, link + "x"):
        assert httpx.get(path, headers=web | {"X-Booking-Link": wrong}).status_code == 403, wrong
    assert httpx.post(f"{path}/cancel", headers=web).status_code == 403
    seen = httpx.get(path, headers=web | {"X-Booking-Link": link})
    assert seen.status_code == 200 and seen.json()["booking_id"] == booking_id
    cancelled = httpx.post(f"{path}/cancel", headers=web | {"X-Booking-Link": link})
    assert cancelled.status_code == 200, cancelled.text


def test_a_donor_opens_to_the_web_key_only_with_their_own_link(stack: Stack, tenant: Tenant) -> None:
    web = _web_key(stack, tenant)
    donor_id = sign_up(stack, tenant.organiser_key, email=f"d-{uuid.uuid4().hex[:8]}@example.org").json()["donor_id"]
    own = sign_donor_link(stack.donor_link_secret, donor_id, time.time())
    another = sign_donor_link(stack.donor_link_secret, "don_someone_else", time.time())
    forged = sign_donor_link(FORGED_SECRET, donor_id, time.time())
    for service, path in (
        ("signups", f"/v1/donors/{donor_id}"),
        ("signups", f"/v1/donors/{donor_id}/bookings"),
        ("matching", f"/v1/donors/{donor_id}/record"),
    ):
        url = f"{stack[service].url}{path}"
        assert httpx.get(url, headers=web).status_code == 403, path
        for wrong in (another, forged):
            assert httpx.get(url, headers=web | {"X-Donor-Link": wrong}).status_code == 403, (path, wrong)

    assert (
        httpx.get(f"{stack['signups'].url}/v1/donors/{donor_id}", headers=web | {"X-Donor-Link": own}).json()[
            "donor_id"
        ]
        == donor_id
    )
    bookings = httpx.get(f"{stack['signups'].url}/v1/donors/{donor_id}/bookings", headers=web | {"X-Donor-Link": own})
    assert bookings.status_code == 200 and bookings.json()["items"] == []
    record = httpx.get(f"{stack['matching'].url}/v1/donors/{donor_id}/record", headers=web | {"X-Donor-Link": own})
    assert record.status_code in (200, 404), "matching may not have heard of the donor yet; never refused"


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found
    return found.group(1)


def test_the_booking_page_needs_the_signed_link(stack: Stack, mailbox: SmtpSink) -> None:
    organiser = stack.issue_key(stack.web_federation_id, f"org-{uuid.uuid4().hex[:8]}", "organiser")
    event_id = create_event(stack, organiser, capacity=5).json()["event_id"]
    wait_until_signups_knows(stack, organiser, event_id)
    transport = httpx.HTTPTransport(local_address="127.0.0.31")  # its own address: no other test's RSVP limit
    with httpx.Client(base_url=stack["web"].url, transport=transport, timeout=10) as browser:
        csrf = _csrf(browser.get(f"/events/{event_id}").text)
        email = f"rsvp-{uuid.uuid4().hex[:8]}@example.org"
        rsvp = browser.post(f"/events/{event_id}/rsvp", data={"csrf": csrf, "name": "Ana Ruiz", "email": email})
        assert rsvp.status_code == 303
        link = rsvp.headers["location"].removeprefix("/bookings/")
        assert link.startswith("b1."), rsvp.headers["location"]
        booking_id = link.split(".")[1]
        page = browser.get(f"/bookings/{link}")
        assert page.status_code == 200 and "You have a place" in page.text
        assert browser.get(f"/bookings/{booking_id}").status_code == 403, "the bare id opens nothing"
        forged = sign_booking_link(FORGED_SECRET, booking_id, time.time())
        assert browser.get(f"/bookings/{forged}").status_code == 403
        csrf = _csrf(page.text)
        assert browser.post(f"/bookings/{booking_id}/cancel", data={"csrf": csrf}).status_code == 403
        assert browser.post(f"/bookings/{forged}/cancel", data={"csrf": csrf}).status_code == 403
        assert "You have a place" in browser.get(f"/bookings/{link}").text, "still booked after the refusals"
        done = browser.post(f"/bookings/{link}/cancel", data={"csrf": csrf})
        assert done.status_code == 303
        assert "This booking is cancelled" in browser.get(f"/bookings/{link}").text

    # The confirmation mail links to a page signed for this booking, never to the bare id.
    mail = mailbox.wait_for(lambda m: m["To"] == email and "is confirmed" in str(m["Subject"]), timeout=30)
    body = mail.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert f"/bookings/{booking_id}" not in text, text
    mailed = re.search(r"https?://\S+/bookings/(b1\.[^/\s]+)", text)
    assert mailed, text
    assert read_booking_link(stack.donor_link_secret, mailed.group(1), time.time()) == booking_id
