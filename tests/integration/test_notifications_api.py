"""Notifications' HTTP answers against the real PostgreSQL, in process (no Kafka, no SMTP):
the routes over the use cases, with the problem+json bodies callers and the web front read.

The app here is the service's router and error handlers over a migrated schema of its own;
API keys are issued into it as the real ones are.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from importlib.resources import files
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI

from pitchin_core.auth import KnownKeys, issue_key
from pitchin_core.contracts.donors import DonorRegisteredV1
from pitchin_core.http import install_error_handlers
from pitchin_notifications import api
from pitchin_notifications.service.messages import Notifications, Policy
from pitchin_notifications.templates import Renderer
from tests.integration.conftest import ServiceDatabase, cloud_event
from tests.integration.tenancy import FED, ORG
from tests.unit.factories import donor_registered

pytestmark = pytest.mark.integration
MIGRATIONS = files("pitchin_notifications") / "migrations"
DONOR = DonorRegisteredV1.model_validate(donor_registered(organisation_id=ORG))


class Door:
    """An HTTP client on the notifications routes, with an organiser's and a staff key."""

    def __init__(self, client: httpx.AsyncClient, db: ServiceDatabase, notifications: Notifications) -> None:
        self.client = client
        self.db = db
        self.notifications = notifications
        self.organiser: dict[str, str] = {}
        self.staff: dict[str, str] = {}
        self.publisher: dict[str, str] = {}


@pytest.fixture
async def door(open_service_database: Any) -> AsyncIterator[Door]:
    db: ServiceDatabase = await open_service_database("notifications", MIGRATIONS)
    policy = Policy(
        public_base_url="http://127.0.0.1:8000", unsubscribe_key=b"k" * 32, quiet_hours=None, digest_seconds=60
    )
    notifications = Notifications(Renderer(), policy)
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(api.router)
    app.state.runtime = SimpleNamespace(
        pool=db.pool, uow=db.uow, api_keys=KnownKeys(), settings=SimpleNamespace(environment="production")
    )
    app.state.notifications = notifications
    app.state.outbound_allow = ()  # the guard as in production: nothing private allowed
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://notifications") as client:
        opened = Door(client, db, notifications)
        for attribute, organisation, role in (
            ("organiser", ORG, "organiser"),
            ("staff", None, "federation-staff"),
            ("publisher", ORG, "publisher"),
        ):
            key = await issue_key(db.pool, federation_id=FED, organisation_id=organisation, role=role)
            setattr(opened, attribute, {"Authorization": f"Bearer {key}"})
        yield opened


def _problem(answer: httpx.Response) -> dict[str, Any]:
    assert answer.headers["content-type"] == "application/problem+json", answer.text
    body: dict[str, Any] = answer.json()
    return body


def _assert_plain_problem(answer: httpx.Response, status: int, title: str, detail: str) -> None:
    """An about:blank problem with exactly these members and no others."""
    assert answer.status_code == status
    assert _problem(answer) == {"type": "about:blank", "title": title, "status": status, "detail": detail}


async def test_refusals_answer_as_they_always_did(door: Door) -> None:
    client = door.client
    missing = await client.get("/v1/deliveries/00000000-0000-0000-0000-000000000000", headers=door.organiser)
    _assert_plain_problem(missing, 404, "Not found", "No such delivery for this organisation.")
    forbidden = await client.post(
        "/v1/webhooks", json={"url": "https://x.example", "event_types": ["*"]}, headers=door.publisher
    )
    _assert_plain_problem(forbidden, 403, "Forbidden", "A publisher key cannot change notification settings.")
    private = await client.post(
        "/v1/webhooks", json={"url": "http://10.0.0.8/hook", "event_types": ["*"]}, headers=door.organiser
    )
    refused = _problem(private)
    assert private.status_code == 422 and refused["title"] == "Address not allowed"
    assert refused["errors"] == [
        {"field": "url", "message": "10.0.0.8 resolves to 10.0.0.8, a private address: use a public address"}
    ]
    no_hook = await client.post("/v1/webhooks/00000000-0000-0000-0000-000000000000/enable", headers=door.organiser)
    assert no_hook.status_code == 404
    assert _problem(no_hook)["detail"] == "No such webhook subscription for this organisation."
    broken = await client.put(
        "/v1/templates/booking_confirmed/en/text", json={"body": "{% if %}"}, headers=door.organiser
    )
    problem = _problem(broken)
    assert broken.status_code == 422 and (problem["type"], problem["title"]) == ("about:blank", "Invalid request")
    assert problem["detail"].startswith("body: the template does not compile: ")
    assert problem["errors"][0]["field"] == "body"
    no_override = await client.delete("/v1/templates/booking_confirmed/cy/subject", headers=door.organiser)
    assert no_override.status_code == 404 and _problem(no_override)["detail"] == "No such override."
    not_staff = await client.put("/v1/channel-config", json={"quiet_hours": ""}, headers=door.organiser)
    assert not_staff.status_code == 403
    assert _problem(not_staff)["detail"] == "Only a federation staff key can change the federation's channels."


async def test_the_log_resending_and_one_click_unsubscribe(door: Door) -> None:
    client, db = door.client, door.db
    configured = await client.put(
        "/v1/channel-config", json={"quiet_hours": "", "sms_auth_token": "t"}, headers=door.staff
    )
    assert configured.status_code == 200
    assert configured.json()["quiet_hours"] == "" and "sms_auth_token" not in configured.json()
    welcome = cloud_event(DONOR)
    await door.notifications.learn_donor(db.uow, welcome, DONOR)
    log = (await client.get("/v1/deliveries", headers=door.organiser)).json()
    [item] = log["items"]
    assert item["event_id"] == welcome.id and log["next"] is None
    # The welcome links to the donor's own page: stored as a reference (signed when sent, issue 17),
    # and the log shows where the link goes, not even the reference.
    stored = await db.pool.fetchval("SELECT action_url FROM deliveries WHERE delivery_id = $1", item["delivery_id"])
    assert "/me/~d1~" in stored and "/me/d1." not in stored and item["action_url"].endswith("/me/[signed]")

    pending = await client.post(f"/v1/deliveries/{item['delivery_id']}/resend", headers=door.organiser)
    assert pending.status_code == 409 and _problem(pending) == {
        "type": "about:blank",
        "title": "Cannot re-send",
        "status": 409,
        "detail": "Only a sent or dead delivery of this organisation can be sent again.",
    }

    link = await db.pool.fetchval("SELECT unsubscribe_url FROM deliveries WHERE event_id = $1", welcome.id)
    query = urlsplit(link).query
    assert (await client.get(f"/v1/unsubscribe?{query}")).status_code == 200
    wrong = await client.post(f"/v1/unsubscribe?{query}", content=b"nothing")
    assert wrong.status_code == 400 and _problem(wrong)["errors"] == [
        {"field": "List-Unsubscribe", "message": "must be One-Click"}
    ]
    one_click = {"content-type": "application/x-www-form-urlencoded"}
    forged = await client.post(
        f"/v1/unsubscribe?{query[:-3]}AAA", content=b"List-Unsubscribe=One-Click", headers=one_click
    )
    assert forged.status_code == 404 and _problem(forged)["detail"] == "This unsubscribe token is not valid."
    done = await client.post(f"/v1/unsubscribe?{query}", content=b"List-Unsubscribe=One-Click", headers=one_click)
    assert done.status_code == 200 and done.json() == {"unsubscribed": True, "channel": "email"}
    [stopped] = (await client.get("/v1/deliveries?status=suppressed", headers=door.organiser)).json()["items"]
    assert stopped["delivery_id"] == item["delivery_id"]
