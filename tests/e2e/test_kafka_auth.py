"""Authenticated Kafka (issue 17): who may connect, write and read, and who a record speaks for.

The running system's broker as the tests and `make run` start it: SASL/SCRAM-SHA-512, ACLs with
StandardAuthorizer, deny by default. Each service is its own principal with the ACLs derived
from the topic table (pitchin_core.kafka_auth); each publisher writes only its own topic, and
the ingest consumers take the publisher from that topic, not from a header.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError

from examples.publishers.samples import every_type
from pitchin_core.contracts import topics
from pitchin_core.kafka_auth import KafkaCredentials, client_options, ingest_topic, service_grants
from pitchin_testing.kafka import KafkaServer
from pitchin_testing.processes import BACKENDS
from pitchin_testing.stack import Stack
from tests.e2e.conftest import Tenant
from tests.e2e.helpers import read_topic

pytestmark = pytest.mark.e2e

SIGNED_UP = "org.pitchin.ingest.person-signed-up.v1"
INGEST_DEAD_LETTERS = topics.INGEST.dead_letter("signups")


def of(federation: str) -> Any:
    return lambda r: isinstance(r.get("data"), dict) and r["data"].get("federation_id") == federation


def _source() -> str:
    return f"/crm/auth-{uuid.uuid4().hex[:8]}"


def service_login(stack: Stack, service: str) -> KafkaCredentials:
    """The principal the stack handed `service`'s processes."""
    env = stack[service].env
    return KafkaCredentials(env["PITCHIN_KAFKA_USERNAME"], env["PITCHIN_KAFKA_PASSWORD"])


async def _write(options: dict[str, Any], topic: str, value: bytes = b"{}", **send: Any) -> None:
    """One record to `topic`; raises what the broker answered."""
    producer = AIOKafkaProducer(**options, acks="all", request_timeout_ms=10_000)
    try:
        await producer.start()
        await producer.send_and_wait(topic, value=value, **send)
    finally:
        await producer.stop()


def write(options: dict[str, Any], topic: str, value: bytes = b"{}", **send: Any) -> None:
    asyncio.run(_write(options, topic, value, **send))


async def _read(options: dict[str, Any], topic: str) -> None:
    consumer = AIOKafkaConsumer(topic, **options, group_id=None, auto_offset_reset="earliest")
    try:
        await consumer.start()
        await consumer.getmany(timeout_ms=2000)
    finally:
        await consumer.stop()


def test_a_client_that_does_not_authenticate_is_refused(kafka_server: KafkaServer, stack: Stack) -> None:
    # PLAINTEXT on the SASL port: no handshake, so no metadata and no start.
    with pytest.raises(KafkaConnectionError):
        write(client_options(kafka_server.bootstrap, None), topics.DONORS.name)
    # A known user with a wrong password, and a user nobody made: the same refusal.
    for wrong in (KafkaCredentials("signups", "not-the-password"), KafkaCredentials("mallory", "x" * 40)):
        with pytest.raises(KafkaConnectionError):
            write(client_options(kafka_server.bootstrap, wrong), topics.DONORS.name)


def test_each_service_holds_exactly_the_acls_the_topic_table_gives_it(stack: Stack) -> None:
    for service in BACKENDS:
        assert stack.kafka_access.acls_of(service) == set(service_grants(service)), service
    # Spot checks of the derivation itself: matching writes matches, reads donors, writes no donors.
    matching = {(g.name, g.operation) for g in service_grants("matching")}
    assert (topics.MATCHES.name, "Write") in matching and (topics.DONORS.name, "Read") in matching
    assert (topics.DONORS.name, "Write") not in matching


def test_a_service_cannot_write_another_services_topic(kafka_server: KafkaServer, stack: Stack) -> None:
    matching = client_options(kafka_server.bootstrap, service_login(stack, "matching"))
    # Its own dead-letter topic it may write (harmless to write: nobody consumes it)…
    write(matching, topics.DONORS.dead_letter("matching"))
    # …but not signups' donors (a forged donor.registered), nor a publisher's ingest topic.
    with pytest.raises(TopicAuthorizationFailedError):
        write(matching, topics.DONORS.name)
    with pytest.raises(TopicAuthorizationFailedError):
        write(matching, topics.INGEST.name)
    # Notifications writes no event topic at all: no offer.made carrying a phishing link.
    notifications = client_options(kafka_server.bootstrap, service_login(stack, "notifications"))
    with pytest.raises(TopicAuthorizationFailedError):
        write(notifications, topics.MATCHES.name)


def test_a_publisher_writes_its_own_topic_only(kafka_server: KafkaServer, stack: Stack, tenant: Tenant) -> None:
    acme, globex = _source(), _source()
    stack.register_publisher(acme, tenant.federation_id, (tenant.organisation_id,))
    stack.register_publisher(globex, f"fed-{uuid.uuid4().hex[:8]}")
    as_acme = stack.publisher_options(acme)
    # Not another publisher's topic, not the shared ingest topic, not an internal topic.
    for topic in (ingest_topic(globex), topics.INGEST.name, topics.DONORS.name, topics.PUBLISHERS.name):
        with pytest.raises(TopicAuthorizationFailedError):
            write(as_acme, topic)
    # Nor may it read what the services say to each other.
    with pytest.raises(TopicAuthorizationFailedError):
        asyncio.run(_read(as_acme, topics.DONORS.name))


def test_a_forged_source_on_a_publishers_own_topic_acts_for_no_one(
    kafka_server: KafkaServer, stack: Stack, tenant: Tenant
) -> None:
    """acme, on its own topic, sends a sign-up claiming to be globex (another federation's CRM),
    then one as itself. The forged one goes to the dead-letter topic, no donor joins globex's
    federation, and acme's own record is applied."""
    acme, globex = _source(), _source()
    victim = f"fed-{uuid.uuid4().hex[:8]}"
    stack.register_publisher(acme, tenant.federation_id, (tenant.organisation_id,))
    stack.register_publisher(globex, victim, ("org-victim",))
    run = uuid.uuid4().hex[:8]
    _, genuine = every_type(tenant.federation_id, tenant.organisation_id, run)[0]
    _, forged = every_type(victim, "org-victim", f"forged-{run}")[0]
    forged_id, genuine_id = str(uuid.uuid4()), str(uuid.uuid4())

    def headers(source: str, event_id: str, federation: str, organisation: str) -> list[tuple[str, bytes]]:
        return [
            ("ce_specversion", b"1.0"),
            ("ce_id", event_id.encode()),
            ("ce_source", source.encode()),
            ("ce_type", SIGNED_UP.encode()),
            ("ce_time", datetime.now(UTC).isoformat().encode()),
            ("ce_tenant", f"{federation}/{organisation}".encode()),
            ("content-type", b"application/json"),
        ]

    async def send() -> None:
        producer = AIOKafkaProducer(**stack.publisher_options(acme), acks="all")
        await producer.start()
        try:
            # One partition, in this order: by the time the genuine one is applied, the forged one was decided.
            for source, event_id, data in ((globex, forged_id, forged), (acme, genuine_id, genuine)):
                await producer.send_and_wait(
                    ingest_topic(acme),
                    value=json.dumps(data).encode(),
                    key=source.encode(),
                    headers=headers(source, event_id, data["federation_id"], data["organisation_id"]),
                )
        finally:
            await producer.stop()

    asyncio.run(send())
    bootstrap = kafka_server.bootstrap
    [parked] = asyncio.run(
        read_topic(bootstrap, INGEST_DEAD_LETTERS, lambda r: r["headers"].get("ce_id") == forged_id.encode(), 1, 60)
    )
    assert parked["headers"]["dlq_category"] == b"forged-source"
    assert parked["headers"]["dlq_source_topic"] == ingest_topic(acme).encode()
    # acme's own record went through, after the forged one…
    [registered] = asyncio.run(read_topic(bootstrap, topics.DONORS.name, of(tenant.federation_id), 1, 60))
    assert registered["type"] == "org.pitchin.donor.registered.v1"
    # …and nothing joined the victim's federation, nor was a rejection addressed to globex.
    with pytest.raises(TimeoutError):
        asyncio.run(read_topic(bootstrap, topics.DONORS.name, of(victim), 1, 2))
    with pytest.raises(TimeoutError):
        asyncio.run(read_topic(bootstrap, topics.INGEST_REJECTIONS.name, lambda r: r["key"] == globex.encode(), 1, 2))


def test_removing_a_publisher_cuts_it_off(kafka_server: KafkaServer, stack: Stack, tenant: Tenant) -> None:
    source = _source()
    stack.register_publisher(source, tenant.federation_id, (tenant.organisation_id,))
    options = stack.publisher_options(source)
    stack.remove_publisher(source)
    with pytest.raises(KafkaConnectionError):
        write(options, ingest_topic(source))
