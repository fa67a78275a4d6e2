"""Other systems publishing into Pitch In, end to end on real Kafka and PostgreSQL.

The publishers are the third-party examples in examples/publishers (plain aiokafka, plain
httpx). Each type through each door reaches its owning service and comes out as the same
downstream events as the services' own APIs; every malformed input gets a clear rejection
(problem+json, a record on pitchin.ingest.rejections.v1, or a dead letter with the raw bytes),
and nothing is lost or applied twice.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from examples.publishers import http_publisher, kafka_publisher
from examples.publishers.samples import every_type
from pitchin_core.ingest import external_event_id
from pitchin_core.kafka_auth import ingest_topic
from pitchin_core.signing import webhook_signature
from pitchin_testing.kafka import KafkaServer, admin_options
from pitchin_testing.stack import Stack
from tests.e2e.conftest import Tenant
from tests.e2e.helpers import bearer, create_event, eventually, opened, read_topic
from tests.unit.factories import donor_signup

pytestmark = pytest.mark.e2e

P = "org.pitchin.ingest."
REJECTIONS = "pitchin.ingest.rejections.v1"
# What each type turns into downstream: the same events the services' APIs emit.
EXPECTED = {
    "pitchin.donors.v1": ["donor.registered", "donor.updated", "donor.withdrawn"],
    "pitchin.needs.v1": ["fight.opened", "need.opened"],
    "pitchin.events.v1": ["event.created", "event.published", "event.updated", "event.cancelled"],
    "pitchin.bookings.v1": ["booking.confirmed", "booking.cancelled"],
}


def _of_federation(federation_id: str) -> Any:
    return lambda r: isinstance(r.get("data"), dict) and r["data"].get("federation_id") == federation_id


def downstream(bootstrap: str, federation_id: str, topic: str, count: int, within: float = 60) -> list[dict[str, Any]]:
    return asyncio.run(read_topic(bootstrap, topic, _of_federation(federation_id), count, within))


def types(records: list[dict[str, Any]]) -> list[str]:
    return [r["type"].removeprefix("org.pitchin.").removesuffix(".v1") for r in records]


def rejections(bootstrap: str, source: str, count: int, within: float = 60) -> list[dict[str, Any]]:
    records = asyncio.run(read_topic(bootstrap, REJECTIONS, lambda r: r["key"] == source.encode(), count, within))
    return [r["data"] for r in records]


def assert_every_type_arrived(bootstrap: str, tenant: Tenant, source: str, event_external_id: str) -> None:
    for topic, expected in EXPECTED.items():
        found = downstream(bootstrap, tenant.federation_id, topic, len(expected))
        assert sorted(types(found)) == sorted(expected), (topic, types(found))
    events = downstream(bootstrap, tenant.federation_id, "pitchin.events.v1", 4)
    assert {r["data"]["event_id"] for r in events} == {external_event_id(source, event_external_id)}
    assert {r["data"]["title"] for r in events if r["type"].endswith("updated.v1")} == {
        "Digital tools for strikers (2nd run)"
    }


def _source() -> str:
    return f"/crm/test-{uuid.uuid4().hex[:8]}"


def test_kafka_door_every_type_reaches_its_owner(stack: Stack, tenant: Tenant, kafka_server: KafkaServer) -> None:
    source = _source()
    stack.register_publisher(source, tenant.federation_id, (tenant.organisation_id,))
    # As the publisher, on its own topic: what a third party is given when it is registered.
    kafka = stack.publisher_kafka[source]
    door: dict[str, Any] = {
        "topic": ingest_topic(source),
        "login": kafka_publisher.sasl(kafka.username, kafka.password),
    }
    run = uuid.uuid4().hex[:8]
    events = every_type(tenant.federation_id, tenant.organisation_id, run)
    ids = asyncio.run(kafka_publisher.publish(kafka_server.bootstrap, source, events[:-1], **door))
    # The event's cancellation is scheduling's, the RSVPs signups': wait for those before it.
    downstream(kafka_server.bootstrap, tenant.federation_id, "pitchin.bookings.v1", 2)
    ids += asyncio.run(kafka_publisher.publish(kafka_server.bootstrap, source, events[-1:], **door))
    assert len(ids) == 9
    assert_every_type_arrived(kafka_server.bootstrap, tenant, source, f"cal-event-{run}")
    donors = downstream(kafka_server.bootstrap, tenant.federation_id, "pitchin.donors.v1", 3)
    assert {r["data"]["donor_id"] for r in donors} and len({r["data"]["donor_id"] for r in donors}) == 1
    # Read as the admin: one rejections topic for every publisher, which no publisher may read
    # without reading the others' (see docs/ingest.md).
    admin = kafka_publisher.sasl(kafka_server.admin.username, kafka_server.admin.password)
    assert asyncio.run(kafka_publisher.rejections(kafka_server.bootstrap, source, admin, seconds=1.0)) == []


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_http_door_every_type_reaches_its_owner(
    stack: Stack, tenant: Tenant, kafka_server: KafkaServer, mode: str
) -> None:
    source = _source()
    creds = stack.register_publisher(source, tenant.federation_id, (tenant.organisation_id,))
    run = uuid.uuid4().hex[:8]
    auth = {"key": creds.key} if mode == "binary" else {"secret": creds.signing_secret}
    answers = http_publisher.publish(
        stack["signups"].url, source, every_type(tenant.federation_id, tenant.organisation_id, run), mode=mode, **auth
    )
    assert [a.status_code for a in answers] == [202] * 9, [a.text for a in answers]
    assert answers[0].json()["donor_id"].startswith("don_")
    assert answers[3].json()["owner"] == "scheduling"
    assert_every_type_arrived(kafka_server.bootstrap, tenant, source, f"cal-event-{run}")


def test_batch_answers_per_event_and_keeps_the_good_ones(
    stack: Stack, tenant: Tenant, kafka_server: KafkaServer
) -> None:
    source = _source()
    creds = stack.register_publisher(source, tenant.federation_id, (tenant.organisation_id,))
    events = every_type(tenant.federation_id, tenant.organisation_id, uuid.uuid4().hex[:8])
    good = [events[0], events[2], events[3]]
    bad = (P + "person-signed-up.v1", {**events[0][1], "external_id": "other", "email": "not-an-email"})
    batch = [http_publisher.structured(source, t, d) for t, d in [*good, bad]]
    batch.append({"specversion": "1.0", "source": source, "type": P + "rsvp-made.v1", "data": {}})
    answer = httpx.post(
        f"{stack['signups'].url}/v1/ingest",
        content=json.dumps(batch),
        headers={"content-type": "application/cloudevents-batch+json", **bearer(creds.key)},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["status"] for r in results] == [202, 202, 202, 422, 422]
    assert results[3]["errors"][0]["field"] == "data.email"
    assert results[4]["errors"] == [{"field": "id", "message": "missing or empty CloudEvents attribute"}]
    assert types(downstream(kafka_server.bootstrap, tenant.federation_id, "pitchin.donors.v1", 1)) == [
        "donor.registered"
    ]
    found = downstream(kafka_server.bootstrap, tenant.federation_id, "pitchin.events.v1", 2)
    assert sorted(types(found)) == ["event.created", "event.published"]


def test_the_same_downstream_events_as_the_api(stack: Stack, tenant: Tenant, kafka_server: KafkaServer) -> None:
    """A person signed up through the API and the same person published: the same donor.registered."""
    source = _source()
    creds = stack.register_publisher(source, tenant.federation_id, (tenant.organisation_id,))
    via_api = donor_signup(email=f"api-{uuid.uuid4().hex[:6]}@example.org")
    assert httpx.post(
        f"{stack['signups'].url}/v1/donors", json=via_api, headers=bearer(tenant.organiser_key), timeout=10
    ).is_success
    published = {
        **{k: v for k, v in donor_signup(email=f"pub-{uuid.uuid4().hex[:6]}@example.org").items()},
        "federation_id": tenant.federation_id,
        "organisation_id": tenant.organisation_id,
        "external_id": "crm-1",
        "updated_at": datetime.now(UTC).isoformat(),
    }
    answers = http_publisher.publish(
        stack["signups"].url, source, [(P + "person-signed-up.v1", published)], key=creds.key
    )
    assert answers[0].status_code == 202, answers[0].text
    found = downstream(kafka_server.bootstrap, tenant.federation_id, "pitchin.donors.v1", 2)
    assert types(found) == ["donor.registered", "donor.registered"]
    ignore = {"donor_id", "email", "registered_at"}
    first, second = ({k: v for k, v in opened(stack, r["data"]).items() if k not in ignore} for r in found)
    assert first == second
    assert {r["headers"]["ce_source"] for r in found} == {b"/pitchin/signups"}


# -- malformed input, over Kafka ---------------------------------------------------------------


def _headers(source: str | None, event_type: str, event_id: str | None, **extra: bytes) -> list[tuple[str, bytes]]:
    headers = [("ce_specversion", b"1.0"), ("ce_type", event_type.encode()), ("content-type", b"application/json")]
    if source:
        headers.append(("ce_source", source.encode()))
    if event_id:
        headers.append(("ce_id", event_id.encode()))
    return headers + list(extra.items())


async def _send(bootstrap: str, records: list[tuple[bytes, list[tuple[str, bytes]], bytes]]) -> None:
    producer = AIOKafkaProducer(**admin_options(bootstrap), acks="all")
    await producer.start()
    try:
        for key, headers, value in records:
            await producer.send_and_wait("pitchin.ingest.v1", value=value, key=key, headers=headers)
    finally:
        await producer.stop()


def test_kafka_rejections_and_dead_letters(stack: Stack, tenant: Tenant, kafka_server: KafkaServer) -> None:
    source = _source()
    stack.register_publisher(source, tenant.federation_id, (tenant.organisation_id,))
    run = uuid.uuid4().hex[:8]
    signed_up_type, person = every_type(tenant.federation_id, tenant.organisation_id, run)[0]
    later = datetime.fromisoformat(person["updated_at"]) + timedelta(hours=1)
    newer = {**person, "updated_at": later.isoformat()}
    stale = {
        "federation_id": tenant.federation_id,
        "organisation_id": tenant.organisation_id,
        "external_id": person["external_id"],
        "updated_at": person["updated_at"],
        "name": "Old name",
    }
    key = source.encode()
    stranger = _source()
    first_id = str(uuid.uuid4())
    body = json.dumps(person).encode()
    records = [
        (key, _headers(source, signed_up_type, first_id), body),
        (key, _headers(source, signed_up_type, first_id), body),  # replayed: nothing twice
        (key, _headers(source, signed_up_type, "bad-json"), b"{not json"),
        (key, _headers(source, signed_up_type, "no-email"), json.dumps({**person, "email": None}).encode()),
        (key, _headers(source, P + "strike-called.v9", "unknown-type"), body),
        (key, _headers(source, signed_up_type, None), body),
        (
            key,
            _headers(source, signed_up_type, "wrong-tenant"),
            json.dumps({**person, "organisation_id": "org-not-mine"}).encode(),
        ),
        (stranger.encode(), _headers(stranger, signed_up_type, "unregistered"), body),
        (key, _headers(source, signed_up_type, "newer"), json.dumps(newer).encode()),
        (key, _headers(source, P + "person-updated.v1", "stale"), json.dumps(stale).encode()),
        (key, _headers(source, signed_up_type, first_id), json.dumps({**person, "name": "Other"}).encode()),
        (key, _headers(source, signed_up_type, "not-utf8", ce_subject=b"\xff\xfe caf\xe9"), body),
    ]
    asyncio.run(_send(kafka_server.bootstrap, records))
    found = {r["id"] or "(none)": r for r in rejections(kafka_server.bootstrap, source, 8)}
    reasons = {i: r["reason"] for i, r in found.items()}
    assert reasons["bad-json"] == "bad-json"
    assert reasons["no-email"] == "schema" and found["no-email"]["reasons"][0]["field"] == "data.email"
    assert reasons["unknown-type"] == "unknown-type"
    assert reasons["(none)"] == "missing-attribute" and found["(none)"]["reasons"][0]["field"] == "id"
    assert reasons["wrong-tenant"] == "tenant"
    assert reasons["stale"] == "stale" and found["stale"]["reasons"][0]["field"] == "data.updated_at"
    assert reasons[first_id] == "id-reused"
    # A header that is not UTF-8: read by our codec (not faststream's), so the publisher is told which.
    assert reasons["not-utf8"] == "encoding" and found["not-utf8"]["reasons"][0]["field"] == "ce_subject"
    assert all(r["door"] == "kafka" and r["source"] == source for r in found.values())
    unregistered = rejections(kafka_server.bootstrap, stranger, 1)
    assert unregistered[0]["reason"] == "unregistered-source" and unregistered[0]["id"] == "unregistered"
    # Applied once: registered, then the newer sign-up updated it; the stale update changed nothing.
    donors = downstream(kafka_server.bootstrap, tenant.federation_id, "pitchin.donors.v1", 2)
    assert types(donors) == ["donor.registered", "donor.updated"]
    assert opened(stack, donors[1]["data"])["name"] == person["name"]
    # ...and stays so: nothing more arrives for this federation.
    with pytest.raises(TimeoutError):
        downstream(kafka_server.bootstrap, tenant.federation_id, "pitchin.donors.v1", 3, within=3)


# -- malformed input, over HTTP ----------------------------------------------------------------


def _binary(source: str, event_type: str, event_id: str | None = None, **extra: str) -> dict[str, str]:
    headers = {
        "content-type": "application/json",
        "ce-specversion": "1.0",
        "ce-source": source,
        "ce-type": event_type,
        **extra,
    }
    if event_id is not None:
        headers["ce-id"] = event_id
    return headers


def _problem(answer: httpx.Response, status: int, field: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = answer.json()
    assert field in [e["field"] for e in problem["errors"]], problem
    return problem


def test_http_rejections_name_the_field(stack: Stack, tenant: Tenant, kafka_server: KafkaServer) -> None:
    source = _source()
    creds = stack.register_publisher(source, tenant.federation_id, (tenant.organisation_id,))
    url = f"{stack['signups'].url}/v1/ingest"
    signed_up_type, person = every_type(tenant.federation_id, tenant.organisation_id, uuid.uuid4().hex[:8])[0]
    body = json.dumps(person).encode()
    auth = bearer(creds.key)

    def post(headers: dict[str, str], content: bytes = body) -> httpx.Response:
        return httpx.post(url, content=content, headers=headers, timeout=15)

    _problem(post({**auth, **_binary(source, signed_up_type, "bad-json")}, b"{nope"), 400, "(body)")
    bad = json.dumps({**person, "email": "nope"}).encode()
    _problem(post({**auth, **_binary(source, signed_up_type, "schema")}, bad), 422, "data.email")
    _problem(post({**auth, **_binary(source, P + "strike-called.v9", "type")}), 422, "type")
    _problem(post({**auth, **_binary(source, signed_up_type)}), 422, "id")
    other_org = json.dumps({**person, "organisation_id": "org-not-mine"}).encode()
    _problem(post({**auth, **_binary(source, signed_up_type, "tenant")}, other_org), 403, "data.organisation_id")
    _problem(post({**auth, **_binary("/someone/else", signed_up_type, "source")}), 403, "source")
    _problem(post({**bearer("pub_unknown"), **_binary(source, signed_up_type, "key")}), 401, "authorization")
    _problem(post(_binary(source, signed_up_type, "nothing")), 401, "authorization")
    # Non-UTF-8 header bytes (httpx sends bytes as given).
    raw = httpx.post(
        url,
        content=body,
        headers=[(k.encode(), v.encode()) for k, v in {**auth, **_binary(source, signed_up_type, "utf8")}.items()]
        + [(b"ce-subject", b"caf\xe9")],
        timeout=15,
    )
    _problem(raw, 400, "ce-subject")
    _problem(post({**auth, **_binary(source, signed_up_type, "big")}, b" " * (1024 * 1024 + 1)), 413, "(body)")
    # Signed requests: a wrong secret, an old timestamp, an unregistered source.
    now = int(datetime.now(UTC).timestamp())
    binary = _binary(source, signed_up_type, "signed")
    wrong = {
        "webhook-id": "m1",
        "webhook-timestamp": str(now),
        "webhook-signature": webhook_signature("whsec_" + "A" * 32, "m1", now, body),
    }
    _problem(post({**binary, **wrong}), 401, "webhook-signature")
    old = now - 3600
    stale_sig = {
        "webhook-id": "m2",
        "webhook-timestamp": str(old),
        "webhook-signature": webhook_signature(creds.signing_secret, "m2", old, body),
    }
    _problem(post({**binary, **stale_sig}), 401, "webhook-timestamp")
    stranger = {**wrong, "webhook-signature": webhook_signature(creds.signing_secret, "m1", now, body)}
    _problem(post({**_binary("/not/registered", signed_up_type, "x"), **stranger}), 403, "source")

    # Accepted once; the same id again answers the same, with nothing done twice.
    first = post({**auth, **_binary(source, signed_up_type, "once")})
    assert first.status_code == 202, first.text
    again = post({**auth, **_binary(source, signed_up_type, "once")})
    assert again.status_code == 202 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    reused = post({**auth, **_binary(source, signed_up_type, "once")}, json.dumps({**person, "name": "X"}).encode())
    _problem(reused, 409, "id")
    # A stale update (not newer than what was applied) changes nothing.
    stale = {k: person[k] for k in ("federation_id", "organisation_id", "external_id", "updated_at")}
    update = json.dumps({**stale, "name": "Old"}).encode()
    _problem(post({**auth, **_binary(source, P + "person-updated.v1", "stale")}, update), 409, "data.updated_at")
    unknown = json.dumps({**stale, "external_id": "nobody"}).encode()
    _problem(post({**auth, **_binary(source, P + "person-updated.v1", "who")}, unknown), 422, "data.external_id")
    donors = downstream(kafka_server.bootstrap, tenant.federation_id, "pitchin.donors.v1", 1)
    assert types(donors) == ["donor.registered"]
    with pytest.raises(TimeoutError):
        downstream(kafka_server.bootstrap, tenant.federation_id, "pitchin.donors.v1", 2, within=3)
    metrics = httpx.get(f"{stack['signups'].url}/metrics", timeout=10).text
    assert 'pitchin_ingest_events_total{door="http",outcome="rejected",reason="schema",service="signups"}' in metrics


def test_rate_limit_answers_429_with_retry_after(stack: Stack, tenant: Tenant) -> None:
    source = _source()
    creds = stack.register_publisher(
        source, tenant.federation_id, (tenant.organisation_id,), rate_per_second=1, burst=2
    )
    signed_up_type, person = every_type(tenant.federation_id, tenant.organisation_id, uuid.uuid4().hex[:8])[0]
    statuses = []
    for i in range(3):
        answer = httpx.post(
            f"{stack['signups'].url}/v1/ingest",
            content=json.dumps({**person, "external_id": f"p{i}", "email": f"p{i}-{uuid.uuid4().hex[:6]}@x.example"}),
            headers={**bearer(creds.key), **_binary(source, signed_up_type, f"r{i}")},
            timeout=15,
        )
        statuses.append(answer.status_code)
    assert statuses == [202, 202, 429]
    assert int(answer.headers["retry-after"]) >= 1
    assert answer.json()["errors"][0]["field"] == "source"


# -- OSDI helpers ------------------------------------------------------------------------------


def test_osdi_person_signup_and_record_attendance(stack: Stack, tenant: Tenant, kafka_server: KafkaServer) -> None:
    source = _source()
    creds = stack.register_publisher(source, tenant.federation_id, (tenant.organisation_id,))
    email = f"osdi-{uuid.uuid4().hex[:6]}@example.org"
    signup = {
        "person": {
            "identifiers": [f"actionnetwork:{uuid.uuid4().hex[:10]}"],
            "given_name": "Farra",
            "family_name": "Trompeter",
            "email_addresses": [{"address": email, "primary": True}],
            "phone_numbers": [{"number": "+447700900123", "primary": True, "number_type": "Mobile"}],
            "postal_addresses": [{"locality": "Dudley", "region": "West Midlands", "country": "GB"}],
            "custom_fields": {
                "hours_per_week": "4",
                "time_zone": "Europe/London",
                "consent_wording_version": "2026-01",
            },
            "gender": "ignored",
        },
        "add_tags": ["skill:social-media:expert", "skill:online-video", "cause:labour", "volunteer"],
    }
    osdi = {"OSDI-API-Token": creds.key}
    answer = httpx.post(f"{stack['signups'].url}/v1/osdi/person_signup", json=signup, headers=osdi, timeout=15)
    assert answer.status_code == 202, answer.text
    donor = opened(stack, downstream(kafka_server.bootstrap, tenant.federation_id, "pitchin.donors.v1", 1)[0]["data"])
    assert donor["email"] == email and donor["name"] == "Farra Trompeter"
    assert donor["skills"] == [
        {"skill": "social-media", "level": "expert"},
        {"skill": "online-video", "level": "beginner"},
    ]
    assert donor["place"]["city"] == "Dudley" and donor["causes"] == ["labour"]

    event = create_event(stack, tenant.organiser_key, starts_in=timedelta(days=9)).json()
    attendance = {"person": {"given_name": "Ben", "email_addresses": [{"address": f"b-{email}"}]}, "status": "accepted"}
    path = f"{stack['signups'].url}/v1/osdi/events/{event['event_id']}/record_attendance"

    def attend() -> httpx.Response | None:
        answer = httpx.post(path, json=attendance, headers=osdi, timeout=15)
        return answer if answer.status_code == 202 else None

    assert eventually(attend, what="signups learns the event and takes the attendance").json()["booking_status"] == (
        "confirmed"
    )
    booking = downstream(kafka_server.bootstrap, tenant.federation_id, "pitchin.bookings.v1", 1)[0]
    assert booking["type"] == "org.pitchin.booking.confirmed.v1" and booking["data"]["event_id"] == event["event_id"]
    _problem(httpx.post(path, content=b"{", headers=osdi, timeout=15), 422, "(body)")
