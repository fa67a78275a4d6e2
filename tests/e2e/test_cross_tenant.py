"""No key of another member organisation, another federation, or none reaches what an organisation made.

Resources are made as one organisation (a donor, a fight with needs, an event with a booking and a
session, a webhook, the delivery of a mail); then **every route with an id in its path**, read from
each service's own OpenAPI document (so a new route cannot be missed), is called with the keys of
a neighbouring organisation of the same federation, of another federation, and with none.
Not one answer may succeed (2xx or 3xx).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from pitchin_testing.stack import Stack
from tests.conftest import Tenant, new_tenant
from tests.e2e.helpers import bearer, create_event, eventually, sign_up, wait_until_signups_knows

pytestmark = pytest.mark.e2e

SERVICES = ("signups", "matching", "notifications", "scheduling")
# Public by design (docs/access.md): what the public event pages and calendar apps read of a
# *published* event or an organisation's published programme. Anyone may read these.
PUBLIC = {
    ("get", "/v1/events/{event_id}/places"),
    ("get", "/v1/events/{event_id}.ics"),
    ("get", "/v1/organisations/{organisation_id}/calendar.ics"),
}
# What the public web front's key reads by design: a *published* event and its agenda, as its
# public page shows them (no organiser's address). Everything else by id is refused to it.
WEB_FRONT_PUBLIC = {
    ("get", "/v1/events/{event_id}"),
    ("get", "/v1/events/{event_id}/sessions"),
}
WEB_FRONT = "web front of the federation"
METHODS = ("get", "post", "put", "patch", "delete")


def _made_by(stack: Stack, owner: Tenant) -> dict[str, str]:
    """Resources of `owner`'s organisation, by the name their id has in route paths."""
    key = bearer(owner.organiser_key)
    email = f"owner-{uuid.uuid4().hex[:8]}@example.org"
    donor = sign_up(stack, owner.organiser_key, email=email)
    assert donor.status_code == 201, donor.text
    deadline = (datetime.now(UTC) + timedelta(days=6)).isoformat()
    fight = httpx.post(
        f"{stack['signups'].url}/v1/fights",
        json={
            "kind": "strike",
            "title": "Retail Local 99 strike",
            "needs": [
                {
                    "title": "Placards",
                    "required_skills": [{"skill": "graphic-design"}],
                    "estimated_hours": 8,
                    "deadline": deadline,
                }
            ],
        },
        headers=key,
    )
    assert fight.status_code == 201, fight.text
    event = create_event(stack, owner.organiser_key, capacity=10).json()
    wait_until_signups_knows(stack, owner.organiser_key, event["event_id"])
    booking = httpx.post(
        f"{stack['signups'].url}/v1/events/{event['event_id']}/bookings",
        json={"name": "Ana Ruiz", "email": f"ana-{uuid.uuid4().hex[:6]}@example.org"},
        headers=key,
    )
    assert booking.status_code == 201, booking.text
    starts = datetime.fromisoformat(event["starts_at"])
    session = httpx.post(
        f"{stack['scheduling'].url}/v1/events/{event['event_id']}/sessions",
        json={
            "title": "Opening",
            "starts_at": starts.isoformat(),
            "ends_at": (starts + timedelta(minutes=30)).isoformat(),
        },
        headers=key,
    )
    assert session.status_code == 201, session.text
    hook = httpx.post(
        f"{stack['notifications'].url}/v1/webhooks",
        json={"url": "https://93.184.215.14/hook", "event_types": ["org.pitchin.booking.*"]},
        headers=key,
    )
    assert hook.status_code == 201, hook.text

    def delivered() -> str | None:
        items = httpx.get(f"{stack['notifications'].url}/v1/deliveries", headers=key).json()["items"]
        return items[0]["delivery_id"] if items else None

    ids = {
        "donor_id": donor.json()["donor_id"],
        "fight_id": fight.json()["fight"]["fight_id"],
        "need_id": fight.json()["needs"][0]["need_id"],
        "event_id": event["event_id"],
        "booking_id": booking.json()["booking_id"],
        "session_id": session.json()["session_id"],
        "subscription_id": hook.json()["subscription_id"],
        "delivery_id": eventually(delivered, what="a delivery of the owner's"),
        "organisation_id": owner.organisation_id,
    }
    return {name: value for name, value in ids.items() if value}


def _routes(stack: Stack, service: str) -> list[tuple[str, str]]:
    spec = httpx.get(f"{stack[service].url}/openapi.json").json()
    return [
        (method, path)
        for path, ops in spec["paths"].items()
        if "{" in path
        for method in ops
        if method in METHODS and (method, path) not in PUBLIC
    ]


def test_no_other_tenant_reaches_an_organisations_resources_by_id(stack: Stack, tenant: Tenant) -> None:
    made = _made_by(stack, tenant)
    neighbour = new_tenant(tenant.federation_id, stack.issue_key)  # same federation, another organisation
    elsewhere = new_tenant(f"fed-{uuid.uuid4().hex[:8]}", stack.issue_key)
    callers = {
        "neighbour organiser": bearer(neighbour.organiser_key),
        "other federation's staff": bearer(elsewhere.staff_key),
        "no key": {},
        # The public web front's narrow key, of the owner's own federation: it reaches a person's
        # things only with their signed link, and an organisation's not at all.
        WEB_FRONT: bearer(stack.issue_key(tenant.federation_id, None, "web-front")),
    }
    tried, reached = 0, []
    for service in SERVICES:
        for method, template in _routes(stack, service):
            names = re.findall(r"{(\w+)}", template)
            if not all(name in made for name in names):
                continue  # an id of a kind not made here (an offer, an assignment): nothing of the owner's to reach
            path = template
            for name in names:
                path = path.replace("{" + name + "}", made[name])
            for who, headers in callers.items():
                if who == WEB_FRONT and (method, template) in WEB_FRONT_PUBLIC:
                    continue
                tried += 1
                body: dict[str, Any] | None = {} if method in ("post", "put", "patch") else None
                answer = httpx.request(method.upper(), f"{stack[service].url}{path}", json=body, headers=headers)
                if answer.status_code < 400:
                    reached.append(f"{who}: {method.upper()} {service}{path} -> {answer.status_code}")
    assert tried > 60, f"only {tried} calls: the route list or the resources are missing"
    assert reached == [], "\n".join(reached)
