"""The OSDI specification's example requests posted unchanged to the running helpers.

Bodies: tests/standards/osdi_examples/ (see tests/standards/test_osdi_examples.py for where
they come from). Only the URL is Pitch In's and the key is this publisher's.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from pitchin_core.signing import webhook_signature
from pitchin_testing.stack import Stack
from tests.e2e.conftest import Tenant
from tests.e2e.helpers import create_event, wait_until_signups_knows

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).parents[1] / "standards" / "osdi_examples"


def body_of(name: str) -> bytes:
    return (EXAMPLES / f"{name}.json").read_bytes()


def post(url: str, body: bytes, key: str) -> httpx.Response:
    return httpx.post(
        url, content=body, headers={"OSDI-API-Token": key, "content-type": "application/json"}, timeout=15
    )


def test_the_specification_examples_are_taken_unchanged(stack: Stack, tenant: Tenant) -> None:
    source = f"/osdi/{uuid.uuid4().hex[:8]}"
    creds = stack.register_publisher(source, tenant.federation_id, (tenant.organisation_id,))
    signups = stack["signups"].url

    person = post(f"{signups}/v1/osdi/person_signup", body_of("person_signup"), creds.key)
    assert person.status_code == 202, person.text
    assert person.json()["outcome"] == "pending-profile" and person.json()["missing"]

    # The example's own event id is not an event of Pitch In: 404, never another event's booking.
    unknown = post(
        f"{signups}/v1/osdi/events/c945d6fe-929e-11e3-a2e9-12313d316c29/record_attendance",
        body_of("record_attendance"),
        creds.key,
    )
    assert unknown.status_code == 404, unknown.text
    assert unknown.headers["content-type"].startswith("application/problem+json")

    for name in ("record_attendance", "record_attendance_ticketed", "record_attendance_unauthenticated"):
        event = create_event(stack, tenant.organiser_key, starts_in=timedelta(days=12)).json()
        wait_until_signups_knows(stack, tenant.organiser_key, event["event_id"])
        url = f"{signups}/v1/osdi/events/{event['event_id']}/record_attendance"
        answer = post(url, body_of(name), creds.key)
        assert answer.status_code == 202, f"{name}: {answer.text}"
        assert answer.json()["event_id"] == event["event_id"] and answer.json()["booking_status"] == "confirmed"
        # The same request again is the same attendance (its action_date makes it one event).
        again = post(url, body_of(name), creds.key)
        assert again.status_code == 202 and again.json()["booking_id"] == answer.json()["booking_id"]


def test_a_signed_ingest_request_without_webhook_id_is_refused(stack: Stack, tenant: Tenant) -> None:
    source = f"/signed/{uuid.uuid4().hex[:8]}"
    creds = stack.register_publisher(source, tenant.federation_id, (tenant.organisation_id,))
    assert creds.signing_secret is not None
    now = int(time.time())
    body = json.dumps(
        {
            "federation_id": tenant.federation_id,
            "organisation_id": tenant.organisation_id,
            "external_id": "p1",
            "updated_at": "2026-12-01T10:00:00Z",
        }
    ).encode()
    binary = {
        "ce-specversion": "1.0",
        "ce-id": uuid.uuid4().hex,
        "ce-source": source,
        "ce-type": "org.pitchin.ingest.person-updated.v1",
        "content-type": "application/json",
    }
    # Signed over an empty id ("" + "." + timestamp + "." + body), as a lax verifier would accept.
    unsigned_id = {
        "webhook-timestamp": str(now),
        "webhook-signature": webhook_signature(creds.signing_secret, "", now, body),
    }
    answer = httpx.post(
        f"{stack['signups'].url}/v1/ingest", content=body, headers={**binary, **unsigned_id}, timeout=15
    )
    assert answer.status_code == 401, answer.text
    assert answer.json()["errors"][0]["field"] == "webhook-id"
    signed = {
        **unsigned_id,
        "webhook-id": "msg_1",
        "webhook-signature": webhook_signature(creds.signing_secret, "msg_1", now, body),
    }
    accepted = httpx.post(f"{stack['signups'].url}/v1/ingest", content=body, headers={**binary, **signed}, timeout=15)
    # Authenticated; the person is unknown to this new source, so the event itself is refused (not-found, 422).
    assert accepted.status_code == 422 and accepted.json()["errors"][0]["field"] == "data.external_id", accepted.text
