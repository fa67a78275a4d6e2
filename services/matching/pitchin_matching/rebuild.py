"""Rebuild matching's read model (donors, needs) from the topics: `python -m pitchin_matching.rebuild`.

Stop the matching service first. The rebuild, in one transaction:
1. forgets donors, donor skills and needs, and the inbox entries of the events they came from;
2. reads pitchin.donors.v1 and pitchin.needs.v1 from the beginning up to their current end
   (a consumer without a group: the service's committed offsets are not touched);
3. applies each event with the same version rules as the live handlers, but without side
   effects (`service.replay`): offers, assignments and policies are matching's own facts
   and are kept; records that are poison were dead-lettered the first time and are skipped.
When the service starts again it resumes from its committed offsets; anything it sees again
is in the inbox and changes nothing. Same settings (environment) as the service.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from pitchin_core.contracts.cloudevents import CloudEvent, InvalidCloudEvent, from_kafka
from pitchin_core.contracts.topics import DONORS, NEEDS, TopicSpec
from pitchin_core.db import create_pool
from pitchin_core.kafka_auth import client_options, kafka_credentials
from pitchin_core.messaging import PoisonMessage, parse_event
from pitchin_core.personal import CachedKeys, Opener, RemoteKeys
from pitchin_core.uow import UnitOfWork
from pitchin_matching import service, storage
from pitchin_matching.main import MatchingSettings

log = logging.getLogger(__name__)
TOPICS: tuple[TopicSpec, ...] = (DONORS, NEEDS)


async def rebuild(settings: MatchingSettings) -> dict[str, int]:
    pool = await create_pool(settings.database_url, settings.db_schema, size=1)
    # The service's own unit of work (same source and inbox consumer), without the rest of a runtime.
    uow = UnitOfWork(pool, source=f"/pitchin/{settings.service_name}", consumer=settings.service_name)
    options = client_options(settings.kafka_bootstrap, kafka_credentials(settings))
    consumer = AIOKafkaConsumer(
        **options,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    counts = {"applied": 0, "skipped": 0}
    keys = RemoteKeys(settings.signups_url, secret=settings.person_keys_secret, service=settings.service_name)
    opener = Opener(CachedKeys(keys))
    try:
        specs = {spec.name: spec for spec in TOPICS}
        partitions = await partitions_of(options, list(specs))
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if ends[tp] > 0}
        async with uow() as tx:  # every federation's read model, in one transaction
            types = [model.event_type for spec in TOPICS for model in spec.event_types]
            await storage.reset_read_model(tx.conn, tx.consumer, types)
            while remaining:
                batch = await consumer.getmany(*remaining, timeout_ms=1000)
                for tp, records in batch.items():
                    read: list[CloudEvent | None] = []
                    for record in records:
                        try:
                            read.append(
                                from_kafka(record.headers or (), record.value) if record.offset < ends[tp] else None
                            )
                        except InvalidCloudEvent:
                            counts["skipped"] += 1
                            read.append(None)
                    # Personal fields opened as the consumers open them: one key look-up per batch.
                    for event in await opener.open(read):
                        if event is None:
                            continue
                        try:
                            data = parse_event(event, specs[tp.topic].event_types)
                        except PoisonMessage:
                            counts["skipped"] += 1
                            continue
                        await service.replay(tx, event, data)
                        counts["applied"] += 1
                for tp in list(remaining):
                    if await consumer.position(tp) >= ends[tp]:
                        remaining.discard(tp)
        async with uow(readonly=True) as tx:
            counts["donors"] = await tx.conn.fetchval("SELECT count(*) FROM donors")
            counts["needs"] = await tx.conn.fetchval("SELECT count(*) FROM needs")
    finally:
        await consumer.stop()
        await keys.close()
        await pool.close()
    return counts


async def partitions_of(options: dict[str, Any], topics: list[str]) -> list[TopicPartition]:
    """Every partition of the topics, from the broker's metadata (no consumer group involved);
    `options` are the client's (`kafka_auth.client_options`: matching's own principal)."""
    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    return sorted(
        TopicPartition(topic["topic"], partition["partition"])
        for topic in described
        for partition in topic["partitions"]
    )


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    counts = asyncio.run(rebuild(MatchingSettings()))
    print(" ".join(f"{k}={v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
