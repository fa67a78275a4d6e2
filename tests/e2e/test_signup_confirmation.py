"""Double opt-in end to end (issue 18): a sign-up on the public page is held until the person follows
the link in the confirmation mail and confirms; only then is there a donor, and a welcome mail.

Web front, signups, Kafka, notifications and the SMTP sink all real; the link is followed as mailed.
"""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from pitchin_testing.smtp_sink import SmtpSink
from pitchin_testing.stack import Stack
from tests.e2e.helpers import bearer

pytestmark = pytest.mark.e2e


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field"
    return found.group(1)


def _donors_with(stack: Stack, email: str) -> list[dict[str, Any]]:
    # A staff key of the web's federation: the web front's own key lists no donors (issue 17).
    staff = stack.issue_key(stack.web_federation_id, None, "federation-staff")
    answer = httpx.get(f"{stack['signups'].url}/v1/donors", headers=bearer(staff), params={"limit": 500}, timeout=5)
    assert answer.status_code == 200, answer.text
    return [d for d in answer.json()["items"] if d["email"] == email]


def _text(mail: Any) -> str:
    text: str = mail.get_body(("plain",)).get_content()
    return text


def test_a_public_signup_becomes_a_donor_only_once_the_mailed_link_is_confirmed(
    stack: Stack, mailbox: SmtpSink
) -> None:
    email = f"optin-{uuid.uuid4().hex[:8]}@example.org"
    with httpx.Client(base_url=stack["web"].url, timeout=10) as web:
        csrf = _csrf(web.get("/donors/signup").text)
        step1 = {"csrf": csrf, "step": "1", "name": "Dana Okafor", "email": email, "time_zone": "Europe/London"}
        assert web.post("/donors/signup", data=step1 | {"languages": "en", "remote": "on"}).status_code == 303
        step2 = {"csrf": csrf, "step": "2", "skill-social-media": "advanced", "hours": "3"}
        assert web.post("/donors/signup", data=step2).status_code == 303
        step3 = {"csrf": csrf, "step": "3", "contact_email": "on", "contact_language": "es", "consent": "on"}
        held = web.post("/donors/signup", data=step3)
        assert (held.status_code, held.headers["location"]) == (303, "/donors/check-email")
        assert email in web.get("/donors/check-email").text

    mail = mailbox.wait_for(lambda m: m["To"] == email, timeout=30)
    assert mail["Subject"] == "Confirma tu inscripción en Pitch In, Dana Okafor", "in the language they chose"
    assert _donors_with(stack, email) == [], "no donor before the person confirms"
    found = re.search(r"https?://\S+/donors/confirm\?token=\S+", _text(mail))
    assert found, _text(mail)
    mailed = found.group(0)
    link = urlsplit(mailed)
    assert f"{link.scheme}://{link.netloc}" == stack["web"].url, "the public base URL: the web front's"

    # Another browser (the mail client's), with the link exactly as mailed: a GET shows the button only.
    with httpx.Client(base_url=stack["web"].url, timeout=10) as browser:
        page = browser.get(mailed)
        assert page.status_code == 200 and 'id="confirm-signup"' in page.text
        assert _donors_with(stack, email) == [], "a GET never confirms (mail scanners follow links)"
        token = re.search(r'name="token" value="([^"]+)"', page.text)
        assert token and f"token={token.group(1)}" == link.query
        confirmed = browser.post("/donors/confirm", data={"csrf": _csrf(page.text), "token": token.group(1)})
        assert (confirmed.status_code, confirmed.headers["location"]) == (303, "/donors/welcome")
        assert "Dana Okafor" in browser.get("/donors/welcome").text

        [donor] = _donors_with(stack, email)
        assert donor["status"] == "active"
        welcome = mailbox.wait_for(lambda m: m["To"] == email and m["Subject"] != mail["Subject"], 30)
        assert welcome["Subject"] == "Bienvenida a Pitch In, Dana Okafor"
        assert f"/me/d1.{donor['donor_id']}." in _text(welcome)

        # The same link again: refused, and no second donor.
        again = browser.get(mailed)
        twice = browser.post("/donors/confirm", data={"csrf": _csrf(again.text), "token": token.group(1)})
        assert twice.status_code == 409 and "confirmed already" in twice.text
    assert len(_donors_with(stack, email)) == 1


def test_the_api_refuses_an_unknown_token_naming_the_field(stack: Stack) -> None:
    answer = httpx.post(
        f"{stack['signups'].url}/v1/donors/confirmations",
        headers=bearer(stack.web_key),
        json={"token": "not-a-token-we-ever-sent"},
        timeout=5,
    )
    assert answer.status_code == 422
    assert [e["field"] for e in answer.json()["errors"]] == ["token"]
