"""Every page renders against a stand-in of the services' APIs (httpx.MockTransport); forms need CSRF.

The real services, Kafka and PostgreSQL are in tests/browser; this catches template and wiring
mistakes in a second.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from pitchin_web.clients import Services
from pitchin_web.main import WebSettings, create_app
from pitchin_web.messages import cy
from pitchin_web.sessions import MemorySessions

START = datetime.now(UTC) + timedelta(days=5)
EVENT = {
    "event_id": "evt_1",
    "federation_id": "fed",
    "organisation_id": "org",
    "kind": "panel",
    "title": "A panel",
    "description": "About things.\n\nMore.",
    "starts_at": START.isoformat(),
    "ends_at": (START + timedelta(hours=2)).isoformat(),
    "time_zone": "Europe/London",
    "venue_name": "Hall",
    "online_url": "https://stream.example.org/x",
    "hashtag": "Org20",
    "capacity": 2,
    "status": "live",
    "waitlist": True,
    "co_hosts": [],
    "livestream_status": "live",
}


def fake_services(request: httpx.Request) -> httpx.Response:
    path, method = request.url.path, request.method
    if path == "/v1/skills":
        return httpx.Response(200, json={"social-media": "Social media", "photography": "Photography"})
    if path == "/v1/events/evt_1" or (path == "/v1/events" and method == "GET" and "scheduling" in str(request.url)):
        body: Any = EVENT if path.endswith("evt_1") else [EVENT]
        return httpx.Response(200, json=body)
    if path == "/v1/events/evt_1/bookings":
        items = [
            {"booking_id": "bkg_1", "name": "Rosa", "email": "r@x.org", "status": "confirmed", "checked_in_at": None},
            {"booking_id": "bkg_2", "name": "Sam", "email": "s@x.org", "status": "waitlisted", "waitlist_seq": 4},
            {
                "booking_id": "bkg_3",
                "name": "Ade",
                "email": "a@x.org",
                "status": "offered",
                "offer_expires_at": "2027-10-04T17:00:00+00:00",
            },
        ]
        return httpx.Response(200, json={"event_id": "evt_1", "capacity": 2, "confirmed": 2, "items": items})
    if path == "/v1/events/evt_1/places":
        return httpx.Response(200, json={"event_id": "evt_1", "capacity": 2, "confirmed": 2, "waitlisted": 1})
    if path == "/v1/events/evt_1/sessions":
        return httpx.Response(200, json=[])
    if path == "/v1/public/events":
        return httpx.Response(200, json={"events": [EVENT], "next_cursor": None})
    if path == "/v1/publishers" and method == "GET":
        return httpx.Response(200, json={"items": []})
    if path in ("/v1/fights", "/v1/needs", "/v1/donors") and method == "GET":
        return httpx.Response(200, json={"items": [], "next": None})
    if path == "/v1/donors" and method == "POST":
        return httpx.Response(
            422,
            json={"title": "Invalid", "detail": "x", "errors": [{"field": "email", "message": "already signed up"}]},
            headers={"content-type": "application/problem+json"},
        )
    if path == "/v1/events" and method == "GET":
        return httpx.Response(200, json=[EVENT])
    return httpx.Response(404, json={"title": "Not found", "detail": path})


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> TestClient:
    settings = WebSettings(
        environment="test",
        session_secret="s" * 40,  # a real one: built-in secrets are for local runs only
        donor_link_secret="d" * 40,
        federation_key="pk_fed",
        signups_url="http://signups",
        matching_url="http://matching",
        notifications_url="http://notifications",
        scheduling_url="http://scheduling",
    )
    app = create_app(settings, MemorySessions(3600, 8 * 3600))  # sessions without a database
    app.state.web.services = Services(settings.service_urls, 2.0, httpx.MockTransport(fake_services))
    return TestClient(app)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found
    return found.group(1)


@pytest.mark.parametrize("path", ["/", "/events", "/events/evt_1", "/donors/signup", "/login"])
def test_public_pages_render_with_security_headers(client: TestClient, path: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 200, answer.text
    assert '<html lang="en">' in answer.text
    assert "default-src 'self'" in answer.headers["content-security-policy"]
    assert answer.headers["x-frame-options"] == "DENY"


def test_event_page_shows_live_hashtag_and_waitlist_position(client: TestClient) -> None:
    client.cookies.set("tz", "America/New_York")
    html = client.get("/events/evt_1").text
    assert "Live now" in html and "#Org20" in html
    assert "number 2 on the waitlist" in html  # two confirmed of two, one already waiting
    assert "EDT" in html or "EST" in html


def test_forms_refuse_a_missing_csrf_token(client: TestClient) -> None:
    client.get("/events/evt_1")
    answer = client.post("/events/evt_1/rsvp", data={"name": "A", "email": "a@b.org"})
    assert answer.status_code == 403
    assert "form expired" in answer.text


def test_rsvp_errors_are_shown_beside_the_fields(client: TestClient) -> None:
    token = csrf_of(client.get("/events/evt_1").text)
    answer = client.post("/events/evt_1/rsvp", data={"csrf": token, "name": "", "email": "nope"})
    assert answer.status_code == 422
    assert 'id="e-name"' in answer.text and 'id="e-email"' in answer.text
    assert 'aria-describedby="e-email"' in answer.text


def test_signup_steps_and_a_service_refusal_beside_the_field(client: TestClient) -> None:
    token = csrf_of(client.get("/donors/signup").text)
    step1 = {
        "csrf": token,
        "step": "1",
        "name": "Dana",
        "email": "d@x.org",
        "time_zone": "Europe/London",
        "languages": "en",
        "remote": "on",
    }
    assert client.post("/donors/signup", data=step1, follow_redirects=False).status_code == 303
    step2 = {"csrf": token, "step": "2", "skill-photography": "expert", "hours": "2"}
    assert client.post("/donors/signup", data=step2, follow_redirects=False).status_code == 303
    step3 = {"csrf": token, "step": "3", "contact_email": "on", "consent": "on", "contact_language": "en"}
    answer = client.post("/donors/signup", data=step3)
    assert answer.status_code == 422
    assert "already signed up" in answer.text and 'id="e-email"' in answer.text


def test_organiser_pages_need_a_login_then_render(client: TestClient) -> None:
    answer = client.get("/organiser", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
    token = csrf_of(client.get("/login").text)
    client.post("/login", data={"csrf": token, "api_key": "pk_org", "role": "organiser"}, follow_redirects=False)
    for path in [
        "/organiser",
        "/organiser/events/new",
        "/organiser/events/evt_1",
        "/organiser/fights/new",
        "/organiser/suggest",
        "/staff",
    ]:
        answer = client.get(path)
        assert answer.status_code == 200, (path, answer.text[:2000])
        title = re.search(r"<title>(.*?)</title>", answer.text, re.S)
        assert title and "<" not in title.group(1) and title.group(1).endswith("· Pitch In"), (path, title)
        assert answer.text.count("<h1") == 1, path
    manage = client.get("/organiser/events/evt_1").text
    assert "Rosa" in manage and "Sam" in manage
    # An open waitlist offer is listed apart, with when the held place moves on (issue 22).
    offers = manage[manage.index('id="offers"') : manage.index('id="waitlist"')]
    assert "Ade" in offers and "held until Mon 4 Oct 2027, 18:00 BST" in offers and "Sam" not in offers
    assert "1 booked, 1 waiting · 1 offered" in manage


def test_offer_link_without_token_asks_for_the_email_link(client: TestClient) -> None:
    answer = client.get("/v1/offers/off_1/accept")
    assert answer.status_code == 401
    assert "link in your email" in answer.text


def test_pages_speak_the_browsers_language_until_the_reader_chooses_another(client: TestClient) -> None:
    welsh = client.get("/events", headers={"Accept-Language": "cy-GB,cy;q=0.9,en;q=0.5"})
    assert '<html lang="cy">' in welsh.text and cy.MESSAGES["nav.signup"] in welsh.text
    chosen = client.get("/language/es?back=/events", headers={"Accept-Language": "cy"}, follow_redirects=False)
    assert chosen.status_code == 303 and chosen.headers["location"] == "/events"
    spanish = client.get("/events", headers={"Accept-Language": "cy"})
    assert '<html lang="es">' in spanish.text, "the reader's choice outlives the browser's preference"
    away = client.get("/language/es?back=//evil.example/", follow_redirects=False)
    assert away.headers["location"] == "/", "no open redirect"
    assert client.get("/language/xx", follow_redirects=False).status_code == 404


def test_a_welsh_reader_reads_the_event_time_in_welsh(client: TestClient) -> None:
    client.get("/language/cy")
    client.cookies.set("tz", "Europe/London")
    html = client.get("/events/evt_1").text
    assert re.search(
        r"(Llun|Maw|Mer|Iau|Gwen|Sad|Sul) \d+ (Ion|Chwef|Maw|Ebr|Mai|Meh|Gorff|Awst|Medi|Hyd|Tach|Rhag)", html
    )
