"""The doors anyone may use on the web front (sign-up, RSVP, login) answer 429 with Retry-After
once a client address or an email has knocked too often (issue 18).

Each test speaks from an address of its own on the loopback network (127.0.0.0/8 all reaches
this host), so its knocks count against no other test's.
"""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from pitchin_testing.stack import Stack
from tests.e2e.helpers import create_event, wait_until_signups_knows

pytestmark = pytest.mark.e2e


def _client(stack: Stack, address: str) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=stack["web"].url, transport=transport, timeout=10)


def _csrf(client: httpx.Client, path: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get(path).text)
    assert found, f"no CSRF field on {path}"
    return found.group(1)


def _throttled(answer: httpx.Response) -> bool:
    return answer.status_code == 429 and int(answer.headers["retry-after"]) >= 1


def test_login_is_limited_per_address(stack: Stack) -> None:
    with _client(stack, "127.0.0.21") as client:
        csrf = _csrf(client, "/login")
        answers = [client.post("/login", data={"csrf": csrf, "api_key": "pk_wrong"}) for _ in range(11)]
    assert [a.status_code for a in answers[:10]] == [422] * 10  # wrong keys, told so
    assert _throttled(answers[10]), answers[10].status_code
    # Another address is not held back.
    with _client(stack, "127.0.0.22") as other:
        assert other.post("/login", data={"csrf": _csrf(other, "/login"), "api_key": "pk_wrong"}).status_code == 422


def test_rsvp_is_limited_per_email(stack: Stack) -> None:
    key = stack.issue_key(stack.web_federation_id, f"org-{uuid.uuid4().hex[:8]}", "organiser")
    event_id = create_event(stack, key, capacity=100).json()["event_id"]
    wait_until_signups_knows(stack, key, event_id)
    email = f"rsvp-{uuid.uuid4().hex[:8]}@example.org"
    with _client(stack, "127.0.0.23") as client:
        csrf = _csrf(client, f"/events/{event_id}")
        answers = [
            client.post(f"/events/{event_id}/rsvp", data={"csrf": csrf, "name": "Ana Ruiz", "email": email})
            for _ in range(11)
        ]
    assert all(a.status_code in (303, 422) for a in answers[:10]), [a.status_code for a in answers]
    assert _throttled(answers[10])


def test_signup_is_limited_per_email(stack: Stack) -> None:
    email = f"signup-{uuid.uuid4().hex[:8]}@example.org"
    with _client(stack, "127.0.0.24") as client:
        finished = []
        for _ in range(4):
            csrf = _csrf(client, "/donors/signup")
            step1 = {"csrf": csrf, "step": "1", "name": "Dana Okafor", "email": email, "time_zone": "Europe/London"}
            step1 |= {"languages": "en", "remote": "on"}
            assert client.post("/donors/signup", data=step1).status_code == 303
            step2 = {"csrf": csrf, "step": "2", "skill-social-media": "advanced", "hours": "3"}
            assert client.post("/donors/signup", data=step2).status_code == 303
            step3 = {"csrf": csrf, "step": "3", "contact_email": "on", "contact_language": "en", "consent": "on"}
            finished.append(client.post("/donors/signup", data=step3))
    # Three sign-ups held for confirmation by mail (none is a donor yet), then held back.
    assert [a.status_code for a in finished[:3]] == [303, 303, 303]
    assert _throttled(finished[3])
