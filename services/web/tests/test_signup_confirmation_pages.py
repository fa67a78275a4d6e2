"""The public sign-up's double opt-in pages against a stand-in signups (httpx.MockTransport).

The last step asks signups to hold the sign-up (`confirm=email`) and shows "check your email";
the emailed link's GET shows a button and confirms nothing; its POST confirms.
"""

from __future__ import annotations

import json
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

GOOD, USED, EXPIRED = "tok-good-0123456789", "tok-used-0123456789", "tok-expired-0123456789"


class StandIn:
    """Signups as the pages see it, recording what they sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, Any] | None]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        body: Any = json.loads(request.content) if request.content else {}
        self.sent.append((method, str(request.url), body))
        if path == "/v1/skills":
            return httpx.Response(200, json={"photography": "Photography"})
        if path == "/v1/donors" and method == "POST":
            if request.url.params.get("confirm") != "email":
                return httpx.Response(201, json={"donor_id": "don_wrong"})
            expires = (datetime.now(UTC) + timedelta(hours=48)).isoformat()
            pending = {"pending_id": "pnd_1", "email": body["email"], "expires_at": expires}
            return httpx.Response(202, json=pending)
        if path == "/v1/donors/confirmations":
            token = body["token"]
            if token == GOOD:
                return httpx.Response(201, json={"donor_id": "don_1", "name": "Dana", "email": "d@x.org"})
            problem: dict[str, Any] = {"title": "Refused", "detail": "token", "errors": []}
            if token == USED:
                problem["errors"] = [{"field": "token", "message": "already used"}]
                return httpx.Response(409, json=problem, headers={"content-type": "application/problem+json"})
            problem["errors"] = [{"field": "token", "message": "expired: sign up again"}]
            return httpx.Response(422, json=problem, headers={"content-type": "application/problem+json"})
        return httpx.Response(404, json={"title": "Not found", "detail": path})


@pytest.fixture
def signups() -> StandIn:
    return StandIn()


@pytest.fixture
def client(signups: StandIn) -> TestClient:
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
    app.state.web.services = Services(settings.service_urls, 2.0, httpx.MockTransport(signups))
    return TestClient(app)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found
    return found.group(1)


def _sign_up(client: TestClient) -> httpx.Response:
    token = csrf_of(client.get("/donors/signup").text)
    step1 = {"csrf": token, "step": "1", "name": "Dana", "email": "d@x.org", "time_zone": "Europe/London"}
    step1 |= {"languages": "en", "remote": "on"}
    assert client.post("/donors/signup", data=step1, follow_redirects=False).status_code == 303
    step2 = {"csrf": token, "step": "2", "skill-photography": "expert", "hours": "2"}
    assert client.post("/donors/signup", data=step2, follow_redirects=False).status_code == 303
    step3 = {"csrf": token, "step": "3", "contact_email": "on", "consent": "on", "contact_language": "en"}
    answer: httpx.Response = client.post("/donors/signup", data=step3, follow_redirects=False)
    return answer


def test_the_last_step_holds_the_signup_and_asks_the_person_to_check_their_email(
    client: TestClient, signups: StandIn
) -> None:
    answer = _sign_up(client)
    assert (answer.status_code, answer.headers["location"]) == (303, "/donors/check-email")
    [(_, url, body)] = [s for s in signups.sent if "/v1/donors" in s[1] and s[0] == "POST"]
    assert url.endswith("/v1/donors?confirm=email") and body is not None and body["email"] == "d@x.org"
    page = client.get("/donors/check-email")
    assert "Check your email, Dana" in page.text and "d@x.org" in page.text and "48 hours" in page.text
    welsh = client.get("/donors/check-email", headers={"Accept-Language": "cy"})
    assert cy.MESSAGES["signup.check.title"].format(name="Dana") in welsh.text
    confirm = client.get(f"/donors/confirm?token={GOOD}", headers={"Accept-Language": "cy"})
    assert cy.MESSAGES["signup.confirm.button"] in confirm.text


def test_the_emailed_link_shows_a_button_and_a_get_confirms_nothing(client: TestClient, signups: StandIn) -> None:
    page = client.get(f"/donors/confirm?token={GOOD}")
    assert page.status_code == 200 and 'name="token" value="' + GOOD + '"' in page.text
    assert '<meta name="robots" content="noindex">' in page.text
    assert not [s for s in signups.sent if "confirmations" in s[1]], "a GET never confirms"
    answer = client.post("/donors/confirm", data={"csrf": csrf_of(page.text), "token": GOOD}, follow_redirects=False)
    assert (answer.status_code, answer.headers["location"]) == (303, "/donors/welcome")
    assert [s[2] for s in signups.sent if "confirmations" in s[1]] == [{"token": GOOD}]
    welcome = client.get("/donors/welcome")
    assert "Thank you, Dana" in welcome.text and "/me/d1.don_1." in welcome.text


@pytest.mark.parametrize(
    ("token", "status", "words"), [(USED, 409, "confirmed already"), (EXPIRED, 422, "does not work")]
)
def test_a_used_or_expired_link_says_so_and_offers_a_new_signup(
    client: TestClient, token: str, status: int, words: str
) -> None:
    page = client.get(f"/donors/confirm?token={token}")
    answer = client.post("/donors/confirm", data={"csrf": csrf_of(page.text), "token": token})
    assert answer.status_code == status and words in answer.text
    assert 'href="/donors/signup"' in answer.text


def test_the_confirm_post_needs_the_forms_csrf_token(client: TestClient, signups: StandIn) -> None:
    client.get(f"/donors/confirm?token={GOOD}")
    assert client.post("/donors/confirm", data={"token": GOOD}).status_code == 403
    assert not [s for s in signups.sent if "confirmations" in s[1]]
