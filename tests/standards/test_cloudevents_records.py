"""The records Pitch In writes to Kafka, read by the official CloudEvents SDK (cloudevents 2.x, Kafka binding):
as the codec writes them, and as they come off the running system's broker."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary_event

from pitchin_core.contracts.cloudevents import CloudEvent, from_kafka, to_kafka_headers, to_kafka_value
from pitchin_core.contracts.donors import DonorRegisteredV1
from pitchin_core.contracts.topics import topic_for
from pitchin_testing.stack import Stack
from tests.conftest import Tenant
from tests.e2e.helpers import read_topic, sign_up


def test_the_sdk_reads_our_binary_mode_record_as_we_wrote_it() -> None:
    sent = CloudEvent(
        id="0193a1b2-7c4d-7e5f-8a9b-0c1d2e3f4a5b",
        source="/pitchin/signups",
        type="org.pitchin.donor.registered.v1",
        data={"donor_id": "don_1", "federation_id": "fed-wm", "name": "Ana Organiser", "note": "café ✊"},
        time=datetime(2026, 12, 2, 10, 0, 0, 123456, tzinfo=UTC),
        subject="don_1",
        tenant="fed-wm/org-unite",
        dataschema="https://pitchin.example/schemas/org.pitchin.donor.registered.v1.json",
        extensions={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
    )
    headers = to_kafka_headers(sent)
    value = to_kafka_value(sent)
    read = from_binary_event(KafkaMessage(headers=dict(headers), key=b"don_1", value=value))
    attributes = read.get_attributes()
    assert read.get_specversion() == "1.0"
    assert (read.get_id(), read.get_source(), read.get_type()) == (sent.id, sent.source, sent.type)
    assert read.get_time() == sent.time and read.get_subject() == "don_1"
    assert read.get_datacontenttype() == "application/json" and read.get_dataschema() == sent.dataschema
    assert attributes["tenant"] == "fed-wm/org-unite" and attributes["traceparent"] == sent.extensions["traceparent"]
    assert read.get_data() == sent.data
    # And what the SDK writes, Pitch In reads the same way.
    assert from_kafka(headers, value) == sent


@pytest.mark.e2e
def test_the_sdk_reads_the_records_signups_wrote_to_kafka(stack: Stack, tenant: Tenant) -> None:
    # Records read back from the running system's broker, as any CloudEvents consumer would get them.
    donor = sign_up(stack, tenant.organiser_key, email=f"sdk-{uuid.uuid4().hex[:8]}@example.org").json()
    records = asyncio.run(
        read_topic(
            stack.kafka_bootstrap,
            topic_for(DonorRegisteredV1).name,
            lambda r: (r.get("data") or {}).get("donor_id") == donor["donor_id"],
            1,
        )
    )
    assert len(records) == 1
    for record in records:
        read = from_binary_event(KafkaMessage(headers=record["headers"], key=record["key"], value=record["value"]))
        assert read.get_specversion() == "1.0" and read.get_type() == "org.pitchin.donor.registered.v1"
        assert read.get_source() == "/pitchin/signups" and read.get_datacontenttype() == "application/json"
        assert read.get_attributes()["tenant"] == f"{tenant.federation_id}/{tenant.organisation_id}"
        assert read.get_time() is not None and read.get_id()
        data = read.get_data()
        assert isinstance(data, dict) and data["donor_id"] == donor["donor_id"]
