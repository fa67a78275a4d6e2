"""Where the ingest topics may be trimmed: only what every consumer group has committed past."""

from __future__ import annotations

from aiokafka import TopicPartition

from pitchin_core.kafka_auth import INGEST_TRIMMER, service_grants
from pitchin_signups.ingest_trim import trim_points

A, B, C = (
    TopicPartition("pitchin.ingest.v1.crm-acme-0123456789ab", 0),
    TopicPartition("pitchin.ingest.v1", 3),
    TopicPartition("pitchin.ingest.v1", 4),
)


def test_a_partition_is_trimmed_to_the_lowest_offset_every_group_committed() -> None:
    committed = {"signups": {A: 40, B: 7, C: 9}, "scheduling": {A: 25, B: 12}}
    # C: scheduling has committed nothing there, so it may not have read it: left alone.
    assert trim_points([A, B, C], committed) == {A: 25, B: 7}


def test_nothing_is_trimmed_where_a_group_is_at_the_start() -> None:
    assert trim_points([A], {"signups": {A: 0}, "scheduling": {A: 5}}) == {}
    assert trim_points([A], {}) == {}


def test_the_trimmer_may_delete_ingest_records_and_read_the_other_groups_offsets() -> None:
    grants = {(g.resource, g.name, g.pattern, g.operation) for g in service_grants(INGEST_TRIMMER)}
    assert ("topic", "pitchin.ingest.v1", "literal", "Delete") in grants
    assert ("topic", "pitchin.ingest.v1.", "prefixed", "Delete") in grants
    assert ("group", "scheduling", "literal", "Describe") in grants
    # No other service may delete records.
    others = [s for s in ("matching", "notifications", "scheduling") if s != INGEST_TRIMMER]
    assert not [g for s in others for g in service_grants(s) if g.operation == "Delete"]
