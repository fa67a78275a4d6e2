"""Federation staff manage the systems that publish into Pitch In, end to end on real Kafka and PostgreSQL.

Registered over signups' HTTP API (`/v1/publishers`), a publisher's key works at the ingest
door at once; the list counts what it published; revoking it shuts the door within the
registry's cache time (5 s); scheduling learns registrations from `pitchin.publishers.v1`.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from examples.publishers.samples import every_type
from pitchin_testing.kafka import KafkaServer
from pitchin_testing.stack import Stack
from tests.e2e.conftest import Tenant
from tests.e2e.helpers import bearer, eventually, fetch, read_topic

pytestmark = pytest.mark.e2e

REVOCATION_DEADLINE = 10.0
LISTING_FIELDS = {
    "source",
    "label",
    "organisations",
    "any_organisation",
    "rate_per_second",
    "burst",
    "created_at",
    "revoked_at",
    "accepted_24h",
    "rejected_24h",
    "last_seen_at",
}


def _url(stack: Stack, path: str) -> str:
    return f"{stack['signups'].url}/v1{path}"


def _register(stack: Stack, key: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(_url(stack, "/publishers"), json=body, headers={**bearer(key), **headers}, timeout=15)


def _listing(stack: Stack, key: str) -> list[dict[str, Any]]:
    answer = httpx.get(_url(stack, "/publishers"), headers=bearer(key), timeout=15)
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def _revoke(stack: Stack, key: str, source: str) -> httpx.Response:
    return httpx.post(_url(stack, "/publishers/revoke"), json={"source": source}, headers=bearer(key), timeout=15)


def _problem(answer: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = answer.json()
    if field is not None:
        assert field in [e["field"] for e in problem["errors"]], problem
    return problem


def _new(source: str, tenant: Tenant, **extra: Any) -> dict[str, Any]:
    return {"source": source, "label": f"CRM {source}", "organisations": [tenant.organisation_id], **extra}


def _ingest(stack: Stack, key: str, source: str, event: tuple[str, dict[str, Any]], event_id: str) -> httpx.Response:
    """One event to the ingest door, binary mode, with the publisher's key."""
    event_type, data = event
    headers = {"ce-specversion": "1.0", "ce-id": event_id, "ce-source": source, "ce-type": event_type}
    return httpx.post(
        _url(stack, "/ingest"),
        content=json.dumps(data),
        headers={"content-type": "application/json", **headers, **bearer(key)},
        timeout=15,
    )


def _person(tenant: Tenant) -> tuple[str, dict[str, Any]]:
    return every_type(tenant.federation_id, tenant.organisation_id, uuid.uuid4().hex[:8])[0]


def _count(stack: Stack, query: str, *args: object) -> int:
    [row] = fetch(stack, query, *args)
    return int(row[0])


def _scheduling_copy(stack: Stack, source: str) -> asyncpg.Record | None:
    rows = fetch(
        stack,
        "SELECT federation_id, organisations, key_hash, signing_secret, revoked_at"
        " FROM scheduling.publishers WHERE source = $1",
        source,
    )
    return rows[0] if rows else None


def test_staff_register_a_publisher_see_its_traffic_and_revoke_it(stack: Stack, tenant: Tenant) -> None:
    run = uuid.uuid4().hex[:8]
    source = f"/crm/pub-{run}-a"
    answer = _register(stack, tenant.staff_key, _new(source, tenant), **{"Idempotency-Key": f"reg-{run}"})
    assert answer.status_code == 201, answer.text
    registered = answer.json()
    assert set(registered) == LISTING_FIELDS | {"key", "signing_secret"}
    assert registered["key"].startswith("pub_") and registered["signing_secret"].startswith("whsec_")
    assert registered["organisations"] == [tenant.organisation_id] and registered["any_organisation"] is False
    assert (registered["rate_per_second"], registered["burst"]) == (50.0, 200)
    assert registered["revoked_at"] is None and registered["last_seen_at"] is None
    assert answer.headers["cache-control"] == "no-store"
    # Credentials are never kept for a replay (only the key's hash is stored): a retry with the
    # same Idempotency-Key registers again, and only the newest credentials work.
    assert _count(stack, "SELECT count(*) FROM signups.idempotency_keys WHERE idempotency_key = $1", f"reg-{run}") == 0
    again = _register(stack, tenant.staff_key, _new(source, tenant), **{"Idempotency-Key": f"reg-{run}"})
    assert again.status_code == 201 and "idempotent-replayed" not in again.headers
    assert again.json()["key"] != registered["key"]
    registered = again.json()
    key = registered["key"]

    # The key opens the ingest door at once: one event accepted, one refused.
    event_type, person = _person(tenant)
    accepted = _ingest(stack, key, source, (event_type, person), f"ok-{run}")
    assert accepted.status_code == 202, accepted.text
    malformed = {**person, "external_id": "crm-other", "email": "not-an-email"}
    refused = _ingest(stack, key, source, (event_type, malformed), f"bad-{run}")
    _problem(refused, 422, "data.email")

    [item] = _listing(stack, tenant.staff_key)
    assert set(item) == LISTING_FIELDS
    assert item["source"] == source and item["label"] == f"CRM {source}"
    assert (item["accepted_24h"], item["rejected_24h"]) == (1, 1)
    assert item["last_seen_at"] is not None and item["revoked_at"] is None

    # Organisers' keys do none of it.
    _problem(httpx.get(_url(stack, "/publishers"), headers=bearer(tenant.organiser_key), timeout=15), 403)
    _problem(_register(stack, tenant.organiser_key, _new(f"/crm/pub-{run}-x", tenant)), 403)
    _problem(_revoke(stack, tenant.organiser_key, source), 403)
    _problem(httpx.get(_url(stack, "/publishers"), timeout=15), 401)

    # Another federation's staff neither see it nor can take its source.
    stranger = stack.issue_key(f"fed-{uuid.uuid4().hex[:8]}", None, "federation-staff")
    assert source not in [i["source"] for i in _listing(stack, stranger)]
    _problem(_register(stack, stranger, {**_new(source, tenant), "organisations": ["org-theirs"]}), 409, "source")
    _problem(_revoke(stack, stranger, source), 404, "source")
    [still] = _listing(stack, tenant.staff_key)
    assert still["organisations"] == [tenant.organisation_id]

    # Revoked: the key is refused within the registry's cache time.
    revoked = _revoke(stack, tenant.staff_key, source)
    assert revoked.status_code == 200, revoked.text
    assert set(revoked.json()) == LISTING_FIELDS and revoked.json()["revoked_at"] is not None

    def refused_now() -> httpx.Response | None:
        # The accepted event again: replayed (nothing done twice) until the key stops working.
        answer = _ingest(stack, key, source, (event_type, person), f"ok-{run}")
        return answer if answer.status_code in (401, 403) else None

    gone = eventually(refused_now, timeout=REVOCATION_DEADLINE, interval=0.2, what="the revoked key is refused")
    assert gone.json()["errors"][0]["field"] == "authorization"

    # Listed after the active ones, each group by source.
    for suffix in ("c", "b"):
        assert _register(stack, tenant.staff_key, _new(f"/crm/pub-{run}-{suffix}", tenant)).status_code == 201
    listed = _listing(stack, tenant.staff_key)
    assert [i["source"] for i in listed] == [f"/crm/pub-{run}-b", f"/crm/pub-{run}-c", source]
    assert [i["revoked_at"] is not None for i in listed] == [False, False, True]


def test_registering_again_rotates_the_credentials(stack: Stack, tenant: Tenant) -> None:
    source = f"/crm/rotate-{uuid.uuid4().hex[:8]}"
    first = _register(stack, tenant.staff_key, _new(source, tenant)).json()
    assert _revoke(stack, tenant.staff_key, source).status_code == 200
    second = _register(stack, tenant.staff_key, _new(source, tenant, any_organisation=True, burst=5))
    assert second.status_code == 201, second.text
    rotated = second.json()
    assert rotated["key"] != first["key"] and rotated["signing_secret"] != first["signing_secret"]
    assert rotated["revoked_at"] is None and rotated["any_organisation"] is True and rotated["burst"] == 5
    assert rotated["created_at"] == first["created_at"]
    event_type, person = _person(tenant)

    def publish(key: str) -> httpx.Response:
        fresh = {**person, "external_id": f"crm-{uuid.uuid4().hex[:8]}", "email": f"{uuid.uuid4().hex[:8]}@x.example"}
        return _ingest(stack, key, source, (event_type, fresh), str(uuid.uuid4()))

    assert publish(rotated["key"]).status_code == 202
    eventually(
        lambda: publish(first["key"]).status_code == 401,
        timeout=REVOCATION_DEADLINE,
        interval=0.2,
        what="the old key is refused",
    )


def test_scheduling_learns_registrations(stack: Stack, tenant: Tenant, kafka_server: KafkaServer) -> None:
    """Scheduling decides its own types against its copy, learnt from pitchin.publishers.v1 (no credentials)."""
    source = f"/calendar/{uuid.uuid4().hex[:8]}"
    key = _register(stack, tenant.staff_key, _new(source, tenant)).json()["key"]
    copy = eventually(lambda: _scheduling_copy(stack, source), what="scheduling learns the registration")
    assert copy["federation_id"] == tenant.federation_id and copy["organisations"] == [tenant.organisation_id]
    assert copy["key_hash"] is None and copy["signing_secret"] is None
    run = uuid.uuid4().hex[:8]
    event_created = every_type(tenant.federation_id, tenant.organisation_id, run)[3]
    answer = _ingest(stack, key, source, event_created, f"created-{run}")
    assert answer.status_code == 202 and answer.json()["owner"] == "scheduling", answer.text

    def mine(record: dict[str, Any]) -> bool:
        return isinstance(record.get("data"), dict) and record["data"].get("federation_id") == tenant.federation_id

    found = asyncio.run(read_topic(kafka_server.bootstrap, "pitchin.events.v1", mine, 1, within=60))
    assert found[0]["type"] == "org.pitchin.event.created.v1"

    assert _revoke(stack, tenant.staff_key, source).status_code == 200

    def revoked_there() -> bool:
        row = _scheduling_copy(stack, source)
        return row is not None and row["revoked_at"] is not None

    eventually(revoked_there, what="scheduling learns the revocation")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"source": None}, "source"),
        ({"source": "crm unite"}, "source"),
        ({"source": "/crm/a b"}, "source"),
        ({"source": "/pitchin/signups"}, "source"),
        ({"rate_per_second": 0}, "rate_per_second"),
        ({"burst": 0}, "burst"),
        ({"organisations": []}, "organisations"),
        ({"label": ""}, "label"),
        ({"surprise": True}, "surprise"),
    ],
)
def test_bad_registrations_name_the_field(stack: Stack, tenant: Tenant, change: dict[str, Any], field: str) -> None:
    body = {**_new(f"/crm/bad-{uuid.uuid4().hex[:8]}", tenant), **change}
    body = {k: v for k, v in body.items() if v is not None}
    _problem(_register(stack, tenant.staff_key, body), 422, field)


def test_revoking_an_unknown_source_is_404(stack: Stack, tenant: Tenant) -> None:
    _problem(_revoke(stack, tenant.staff_key, "/crm/nobody"), 404, "source")
    nothing = httpx.post(_url(stack, "/publishers/revoke"), json={}, headers=bearer(tenant.staff_key), timeout=15)
    _problem(nothing, 422, "source")
