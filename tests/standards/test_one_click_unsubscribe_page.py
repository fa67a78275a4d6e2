"""The web front's one-click unsubscribe (RFC 8058) against a stand-in notifications: what it forwards.

The end-to-end test (tests/e2e/test_unsubscribe_one_click.py) posts to the URL of a real mail.
"""

from __future__ import annotations

import httpx
import pytest
from fastapi.testclient import TestClient

from pitchin_web.clients import Services
from pitchin_web.main import WebSettings, create_app
from pitchin_web.sessions import MemorySessions

GOOD = "u1.good.token"


def test_get_shows_a_button_and_changes_nothing_post_one_click_unsubscribes_without_csrf() -> None:
    seen: list[tuple[str, str, bytes, str]] = []

    def notifications(request: httpx.Request) -> httpx.Response:
        token = request.url.params.get("token", "")
        seen.append((request.method, token, request.content, request.headers.get("content-type", "")))
        if token != GOOD:
            return httpx.Response(404, text="<p>not valid</p>", headers={"content-type": "text/html"})
        if request.method == "GET":
            return httpx.Response(200, text="<form></form>", headers={"content-type": "text/html"})
        assert request.content == b"List-Unsubscribe=One-Click"
        return httpx.Response(200, json={"unsubscribed": True, "channel": "email"})

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
    app.state.web.services = Services(settings.service_urls, 2.0, httpx.MockTransport(notifications))
    web = TestClient(app)

    page = web.get(f"/v1/unsubscribe?token={GOOD}")
    assert page.status_code == 200 and 'name="List-Unsubscribe" value="One-Click"' in page.text
    assert [m for m, *_ in seen] == ["GET"]

    # A mail client's POST: no cookie, no CSRF token, only the one-click body (RFC 8058 section 3.1).
    mail_client = TestClient(app)
    done = mail_client.post(
        f"/v1/unsubscribe?token={GOOD}",
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert done.status_code == 200 and "Unsubscribed" in done.text
    assert seen[-1] == ("POST", GOOD, b"List-Unsubscribe=One-Click", "application/x-www-form-urlencoded")

    other = mail_client.post(f"/v1/unsubscribe?token={GOOD}", content=b"", headers={"content-type": "text/plain"})
    assert other.status_code == 400 and seen[-1][0] == "POST" and len(seen) == 2  # not forwarded

    bad = mail_client.post(
        "/v1/unsubscribe?token=forged",
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert bad.status_code == 404
    assert web.get("/v1/unsubscribe?token=forged").status_code == 404


@pytest.mark.parametrize("token", ["", "a%20b"])
def test_a_missing_or_odd_token_is_a_page_not_a_crash(token: str) -> None:
    def notifications(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, text="no")

    settings = WebSettings(
        environment="test",
        session_secret="s" * 40,
        donor_link_secret="d" * 40,
        federation_key="pk_fed",
        notifications_url="http://notifications",
    )
    app = create_app(settings, MemorySessions(3600, 8 * 3600))  # sessions without a database
    app.state.web.services = Services(settings.service_urls, 2.0, httpx.MockTransport(notifications))
    assert TestClient(app).get(f"/v1/unsubscribe?token={token}").status_code == 404
