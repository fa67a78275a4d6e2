"""Keeps what publishers sent off Kafka once it has been applied (issue 19, docs/privacy.md).

Publishers write people in clear to `pitchin.ingest.v1.<publisher>` (and signups' HTTP door
relays what it accepted for scheduling to `pitchin.ingest.v1`): Pitch In cannot seal what
another system sends. So those records must not outlive their use. Every `interval` seconds,
for each partition of the ingest topics, this job asks every consumer group of the topic table's
ingest topic (signups and scheduling) how far it has committed, and deletes the records before
the lowest of those offsets with Kafka's DeleteRecords. A record is therefore readable until
every consumer has applied it, plus at most one interval; a partition some group has never
committed on is left alone, so nothing is deleted before it is read.

Signups' principal holds DELETE on the ingest topics and DESCRIBE on the other consumers'
groups for this (`pitchin_core.kafka_auth.service_grants`). Every replica runs the job:
deleting up to an offset already deleted is a no-op, so replicas need no coordination.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from pitchin_core.contracts.topics import INGEST
from pitchin_core.kafka_auth import KafkaCredentials, client_options, is_publisher_topic

log = logging.getLogger(__name__)


def trim_points(
    partitions: list[TopicPartition], committed: Mapping[str, Mapping[TopicPartition, int]]
) -> dict[TopicPartition, int]:
    """Where each partition may be trimmed: the lowest offset every group has committed, for the
    partitions every group has committed on (a group with no offset has read nothing yet)."""
    points: dict[TopicPartition, int] = {}
    for tp in partitions:
        offsets = [group.get(tp) for group in committed.values()]
        if offsets and all(o is not None and o > 0 for o in offsets):
            points[tp] = min(o for o in offsets if o is not None)
    return points


class IngestTrimmer:
    """Deletes the consumed prefix of every ingest topic; see the module's docstring."""

    def __init__(
        self, bootstrap: str, credentials: KafkaCredentials | None, *, interval: float, service: str = "signups"
    ) -> None:
        self.bootstrap = bootstrap
        self.credentials = credentials
        self.interval = interval
        self.service = service
        self.groups = tuple(sorted(INGEST.consumers))
        self._admin: AIOKafkaAdminClient | None = None
        self._task: asyncio.Task[None] | None = None
        # What each partition was last trimmed to: ask Kafka only when a group has moved on.
        self._trimmed: dict[TopicPartition, int] = {}

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ingest-trim")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._close()

    async def _run(self) -> None:
        while True:
            began = time.monotonic()
            try:
                await self.trim_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker may be away; the next pass tries again
                log.warning("ingest topics not trimmed: %r", exc)
                await self._close()
            await asyncio.sleep(max(self.interval - (time.monotonic() - began), 0.1))

    async def _client(self) -> AIOKafkaAdminClient:
        if self._admin is None:
            admin = AIOKafkaAdminClient(
                **client_options(self.bootstrap, self.credentials), client_id=f"{self.service}-ingest-trim"
            )
            await admin.start()
            self._admin = admin
        return self._admin

    async def _close(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            with contextlib.suppress(Exception):
                await admin.close()

    async def trim_once(self) -> dict[TopicPartition, int]:
        """One pass: the partitions trimmed and the offset each now starts at."""
        admin = await self._client()
        names = [t for t in await admin.list_topics() if t == INGEST.name or is_publisher_topic(t)]
        partitions: list[TopicPartition] = []
        for described in await admin.describe_topics(names) if names else []:
            if described.get("error_code", 0) == 0:
                topic = str(described["topic"])
                partitions += [TopicPartition(topic, int(p["partition"])) for p in described["partitions"]]
        if not partitions:
            return {}
        committed = {
            group: {
                tp: meta.offset
                for tp, meta in (await admin.list_consumer_group_offsets(group, partitions=partitions)).items()
                if meta.offset >= 0
            }
            for group in self.groups
        }
        due = {tp: o for tp, o in trim_points(partitions, committed).items() if o > self._trimmed.get(tp, 0)}
        if not due:
            return {}
        starts = await admin.delete_records({tp: RecordsToDelete(before_offset=o) for tp, o in due.items()})
        self._trimmed.update(due)
        log.debug("ingest topics trimmed: %s", {f"{tp.topic}[{tp.partition}]": o for tp, o in starts.items()})
        return dict(starts)
