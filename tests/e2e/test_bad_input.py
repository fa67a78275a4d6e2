"""Malformed input gets a clear answer: HTTP 4xx naming the field, or a dead letter with the reason."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from pitchin_core.contracts.cloudevents import CloudEvent, to_kafka_headers, to_kafka_value
from pitchin_testing.kafka import KafkaServer, admin_options
from pitchin_testing.smtp_sink import SmtpSink
from pitchin_testing.stack import Stack
from tests.e2e.conftest import Tenant
from tests.e2e.helpers import bearer, eventually
from tests.unit.factories import donor_registered, donor_signup

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (donor_signup(email="not-an-email"), "email"),
        (donor_signup(phone="07700 900123"), "phone"),
        (donor_signup(skills=[]), "skills"),
        (donor_signup(skills=[{"skill": "social-media", "level": "guru"}]), "skills.0.level"),
        (
            {**donor_signup(), "availability": {"hours_per_week": 4, "time_zone": "Mars/Olympus"}},
            "availability.time_zone",
        ),
        ({k: v for k, v in donor_signup().items() if k != "consent"}, "consent"),
        (donor_signup(phone=None, contact={"email": True, "sms": True, "language": "en"}), "contact.sms"),
    ],
)
def test_malformed_signup_is_a_422_naming_the_field(
    stack: Stack, tenant: Tenant, body: dict[str, object], field: str
) -> None:
    answer = httpx.post(
        f"{stack['signups'].url}/v1/donors", json=body, headers=bearer(tenant.organiser_key), timeout=10
    )
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert field in [e["field"] for e in problem["errors"]], problem
    assert field in problem["detail"]


def test_not_json_and_no_key_are_clear_4xx(stack: Stack, tenant: Tenant) -> None:
    url = f"{stack['signups'].url}/v1/donors"
    answer = httpx.post(
        url,
        content=b"{name: ",
        headers={**bearer(tenant.organiser_key), "content-type": "application/json"},
        timeout=10,
    )
    assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json"
    assert httpx.post(url, json=donor_signup(), timeout=10).status_code == 401
    assert httpx.post(url, json=donor_signup(), headers=bearer("pk_wrong"), timeout=10).status_code == 401


def test_a_second_signup_with_the_same_email_is_a_409(stack: Stack, tenant: Tenant) -> None:
    body = donor_signup(email=f"twice-{uuid.uuid4().hex[:6]}@example.org")
    url = f"{stack['signups'].url}/v1/donors"
    assert httpx.post(url, json=body, headers=bearer(tenant.organiser_key), timeout=10).status_code == 201
    again = httpx.post(url, json=body, headers=bearer(tenant.organiser_key), timeout=10)
    assert again.status_code == 409
    assert again.json()["errors"] == [{"field": "email", "message": "already signed up"}]


def test_another_federations_donor_is_not_found(stack: Stack, tenant: Tenant) -> None:
    url = f"{stack['signups'].url}/v1/donors"
    donor = httpx.post(
        url,
        json=donor_signup(email=f"mine-{uuid.uuid4().hex[:6]}@example.org"),
        headers=bearer(tenant.organiser_key),
        timeout=10,
    ).json()
    stranger = stack.issue_key(f"fed-{uuid.uuid4().hex[:6]}", None, "federation-staff")
    assert httpx.get(f"{url}/{donor['donor_id']}", headers=bearer(stranger), timeout=10).status_code == 404
    mine = httpx.get(f"{url}/{donor['donor_id']}", headers=bearer(tenant.staff_key), timeout=10)
    assert mine.status_code == 200 and mine.json()["email"] == donor["email"]


def _good_event(federation_id: str, email: str) -> tuple[list[tuple[str, bytes]], bytes]:
    event = CloudEvent(
        id=str(uuid.uuid4()),
        source="/test/publisher",
        type="org.pitchin.donor.registered.v1",
        data=donor_registered(federation_id=federation_id, donor_id=f"don_{uuid.uuid4().hex[:10]}", email=email),
        tenant=federation_id,
    )
    return to_kafka_headers(event), to_kafka_value(event)


async def _read_topic(
    bootstrap: str, topic: str, keep: Callable[[bytes], bool], count: int, within: float
) -> list[dict[str, object]]:
    """Read `topic` from the start until `count` records with a key that `keep` accepts arrived."""
    consumer = AIOKafkaConsumer(
        topic, **admin_options(bootstrap), auto_offset_reset="earliest", enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    found: list[dict[str, object]] = []
    try:
        async with asyncio.timeout(within):
            while len(found) < count:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    found += [
                        {"key": r.key, "value": r.value, "headers": dict(r.headers)}
                        for r in records
                        if r.key is not None and keep(r.key)
                    ]
    finally:
        await consumer.stop()
    return found


def test_poison_records_go_to_each_groups_dead_letter_topic_and_the_consumers_carry_on(
    stack: Stack, tenant: Tenant, kafka_server: KafkaServer, mailbox: SmtpSink
) -> None:
    marker = uuid.uuid4().hex[:8]
    headers, _ = _good_event(tenant.federation_id, "x@example.org")
    missing_id = [h for h in headers if h[0] != "ce_id"]
    bad_utf8 = [*headers, ("x-origin", b"\xff\xfeCRM")]
    wrong_schema = json.dumps({"federation_id": tenant.federation_id, "donor_id": "don_x"}).encode()
    unknown_type = [(k, b"org.pitchin.donor.teleported.v1" if k == "ce_type" else v) for k, v in headers]
    poison = [
        ("not-json", headers, b"{oops"),
        ("missing-id", missing_id, b"{}"),
        ("bad-utf8-header", bad_utf8, b"{}"),
        ("wrong-schema", headers, wrong_schema),
        ("unknown-type", unknown_type, b"{}"),
    ]
    good_email = f"after-poison-{marker}@example.org"
    good_headers, good_value = _good_event(tenant.federation_id, good_email)

    async def publish() -> None:
        producer = AIOKafkaProducer(**kafka_server.admin_options(), acks="all")
        await producer.start()
        try:
            for name, hdrs, value in poison:
                # Same key as the good record: same partition, so the good one comes after them.
                await producer.send_and_wait(
                    "pitchin.donors.v1", value=value, key=f"{marker}-{name}".encode(), headers=hdrs, partition=0
                )
            await producer.send_and_wait(
                "pitchin.donors.v1", value=good_value, key=b"good", headers=good_headers, partition=0
            )
        finally:
            await producer.stop()

    asyncio.run(publish())
    # The consumer carried on: the valid record behind the poison was applied.
    mailbox.wait_for(lambda m: m["To"] == good_email, timeout=30)

    for group in ("matching", "notifications"):
        letters = _collect(kafka_server.bootstrap, group, marker, len(poison))
        by_key = {bytes(letter["key"]).decode().split("-", 1)[1]: letter for letter in letters}  # type: ignore[call-overload]
        assert set(by_key) == {name for name, _, _ in poison}
        for name, _, value in poison:
            letter = by_key[name]
            assert letter["value"] == value, "the dead letter keeps the original bytes"
            hdrs = letter["headers"]
            assert isinstance(hdrs, dict)
            assert hdrs["dlq_source_topic"] == b"pitchin.donors.v1"
            assert hdrs["dlq_consumer_group"] == group.encode()
            assert hdrs["dlq_reason"], name
        reasons = {name: by_key[name]["headers"]["dlq_reason"].decode() for name, _, _ in poison}  # type: ignore[index]
        assert "not valid JSON" in reasons["not-json"]
        assert "ce_id" in reasons["missing-id"]
        assert "UTF-8" in reasons["bad-utf8-header"]
        assert "availability" in reasons["wrong-schema"] and "email" in reasons["wrong-schema"]
        assert "teleported" in reasons["unknown-type"]

    # And each group committed past every poison record: nothing is left to redeliver.
    for group in ("matching", "notifications"):

        def committed(group: str = group) -> bool:
            return asyncio.run(_committed_to_end(kafka_server.bootstrap, group))

        eventually(committed, what=f"{group} to commit past the poison records")


async def _committed_to_end(bootstrap: str, group: str) -> bool:
    admin = AIOKafkaAdminClient(**admin_options(bootstrap))
    consumer = AIOKafkaConsumer(**admin_options(bootstrap), group_id=None)
    await admin.start()
    await consumer.start()
    try:
        partition = TopicPartition("pitchin.donors.v1", 0)
        committed = (await admin.list_consumer_group_offsets(group)).get(partition)
        end = (await consumer.end_offsets([partition]))[partition]
        return committed is not None and committed.offset == end
    finally:
        await consumer.stop()
        await admin.close()


def _collect(bootstrap: str, group: str, marker: str, count: int) -> list[dict[str, object]]:
    return asyncio.run(
        _read_topic(bootstrap, f"pitchin.donors.v1.{group}.dlq", lambda key: key.startswith(marker.encode()), count, 30)
    )
