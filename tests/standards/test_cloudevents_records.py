"""The records Pitch In writes to Kafka, read by the official CloudEvents SDK (cloudevents 2.x, Kafka binding)."""

from __future__ import annotations

from datetime import UTC, datetime

from cloudevents.core.bindings.kafka import KafkaMessage, from_binary_event

from pitchin_core.contracts.cloudevents import CloudEvent, from_kafka, to_kafka_headers, to_kafka_value


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
