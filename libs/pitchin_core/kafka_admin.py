"""Topic creation for local runs and tests; in Kubernetes Strimzi KafkaTopics do this."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.errors import InvalidPartitionsError

from pitchin_core.contracts.topics import all_topic_partitions
from pitchin_core.kafka_auth import KafkaCredentials, client_options

TOPIC_ALREADY_EXISTS = 36

log = logging.getLogger(__name__)


async def ensure_topics(
    bootstrap: str,
    names: Iterable[str],
    partitions: int | None = None,
    *,
    credentials: KafkaCredentials | None = None,
) -> None:
    """Create the missing topics, each with its count from the topic table
    (`pitchin_core.contracts.topics.all_topic_partitions`) unless `partitions` says one for all,
    and grow an existing topic that has fewer: a state directory from before a count was raised
    (or `REPLICAS=2 make run`) gets partitions for every consumer.

    Growing a topic moves keys to other partitions from then on; records already written stay
    where they are, so order per key holds only once a consumer has read past the growth. That
    is acceptable for a local or test cluster, the only ones this runs against.

    `credentials`: a principal allowed to CREATE and ALTER topics (locally the admin: services
    have no such right, so `make run` and the tests make the topics before the services start).
    """
    table = all_topic_partitions()
    wanted = {name: partitions if partitions is not None else table.get(name, 1) for name in names}
    admin = AIOKafkaAdminClient(**client_options(bootstrap, credentials))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in wanted if n not in existing]
        if missing:
            response = await admin.create_topics(
                [NewTopic(name=n, num_partitions=wanted[n], replication_factor=1) for n in missing]
            )
            # create_topics does not raise on per-topic errors; read them.
            for name, code, *_ in response.topic_errors:
                if code not in (0, TOPIC_ALREADY_EXISTS):
                    raise RuntimeError(f"could not create topic {name}: error code {code}")
        present = [n for n in wanted if n in existing]
        if present:
            await _grow(admin, {n: wanted[n] for n in present})
    finally:
        await admin.close()


async def _grow(admin: AIOKafkaAdminClient, wanted: Mapping[str, int]) -> None:
    counts = {str(t["topic"]): len(t.get("partitions", ())) for t in await admin.describe_topics(list(wanted))}
    short = {name: n for name, n in wanted.items() if 0 < counts.get(name, 0) < n}
    if not short:
        return
    log.warning(
        "growing topics to the table's partition counts: %s", {n: f"{counts[n]}->{c}" for n, c in short.items()}
    )
    for name, count in short.items():
        try:
            await admin.create_partitions({name: NewPartitions(total_count=count)})
        except InvalidPartitionsError as exc:
            # Asked only because the topic looked short: another process (a second worker or
            # replica starting) grew it first, and the broker says it has as many already.
            log.info("topic %s already grown: %s", name, exc)
