"""Consumer lag per topic and partition, and build info, as Prometheus gauges.

faststream's Prometheus middleware counts what a consumer did, not what it has yet to do, so
lag is measured here: every `interval` seconds a background task asks Kafka for the service's
consumer group's committed offsets (admin client) and each partition's end offset (a
group-less consumer, which never joins the group), and sets

- ``pitchin_consumer_lag{service,topic,partition}``: end offset - committed offset (records);
- ``pitchin_consumer_lag_seconds{service,topic,partition}``: roughly how long the oldest
  unconsumed record has waited. Estimated from this monitor's own history of end offsets (the
  time of the first sample whose end offset passed the committed one), so it costs no reads of
  records; its resolution is the interval, and 0 means caught up;
- ``pitchin_consumer_lag_last_success_timestamp_seconds{service}``: when lag was last measured
  (an alert can tell a stale measurement from a small lag).

The consumer group is the service's name (see ``Runtime.subscribe``); the topics are those the
topic table names the service a consumer of. Labels are bounded: topics come from the table and
partitions from the cluster, never ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import weakref
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import CollectorRegistry, Gauge

from pitchin_core.contracts.topics import consumed_by
from pitchin_core.kafka_auth import KafkaCredentials, client_options, kafka_credentials
from pitchin_core.settings import ServiceSettings
from pitchin_core.telemetry import Metrics

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_SECONDS = 5.0
#: How much end-offset history each partition keeps for the lag-in-seconds estimate.
HISTORY_SECONDS = 3600.0


class _HasRuntimeParts(Protocol):
    """What the monitor needs of ``pitchin_core.runtime.Runtime`` (no import cycle)."""

    settings: ServiceSettings
    metrics: Metrics


class LagMetrics:
    """The gauges, registered once per registry (a runtime restarted in-process reuses them)."""

    _by_registry: weakref.WeakKeyDictionary[CollectorRegistry, LagMetrics] = weakref.WeakKeyDictionary()

    def __init__(self, registry: CollectorRegistry) -> None:
        self.lag = Gauge(
            "pitchin_consumer_lag",
            "Records not yet consumed by the service's consumer group: end offset - committed offset.",
            ["service", "topic", "partition"],
            registry=registry,
        )
        self.lag_seconds = Gauge(
            "pitchin_consumer_lag_seconds",
            "Estimated age of the oldest record the service's consumer group has not consumed (0 when caught up).",
            ["service", "topic", "partition"],
            registry=registry,
        )
        self.last_success = Gauge(
            "pitchin_consumer_lag_last_success_timestamp_seconds",
            "Unix time of the last successful consumer lag measurement.",
            ["service"],
            registry=registry,
        )
        self.build_info = Gauge(
            "pitchin_build_info",
            "Always 1; the labels say which version of the service is running.",
            ["service", "version"],
            registry=registry,
        )

    @classmethod
    def of(cls, registry: CollectorRegistry) -> LagMetrics:
        found = cls._by_registry.get(registry)
        if found is None:
            found = cls._by_registry[registry] = cls(registry)
        return found


@dataclass
class PartitionHistory:
    """(wall time, end offset) samples of one partition, oldest first."""

    samples: deque[tuple[float, int]] = field(default_factory=deque)

    def record(self, now: float, end: int) -> None:
        if not self.samples or self.samples[-1][1] != end:
            self.samples.append((now, end))
        while len(self.samples) > 1 and self.samples[1][0] < now - HISTORY_SECONDS:
            self.samples.popleft()

    def waited(self, committed: int, now: float) -> float:
        """Seconds since the end offset first passed `committed` (a lower bound on the oldest record's wait)."""
        for at, end in self.samples:
            if end > committed:
                return max(now - at, 0.0)
        return 0.0


def compute_lag(end: int, committed: int | None, beginning: int) -> int:
    """Records left for the group; with no commit yet it starts from the beginning (auto_offset_reset=earliest)."""
    start = beginning if committed is None or committed < 0 else max(committed, beginning)
    return max(end - start, 0)


class LagMonitor:
    def __init__(
        self,
        *,
        bootstrap: str,
        service: str,
        group: str,
        topics: Iterable[str],
        metrics: LagMetrics,
        interval: float = DEFAULT_INTERVAL_SECONDS,
        credentials: KafkaCredentials | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.credentials = credentials
        self.service = service
        self.group = group
        self.topics = tuple(topics)
        self.metrics = metrics
        self.interval = interval
        self._history: dict[TopicPartition, PartitionHistory] = {}
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def run(self) -> None:
        """Measure forever; failures are logged and retried at the next interval, never raised."""
        try:
            while True:
                began = time.monotonic()
                try:
                    await self.measure_once()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("consumer lag not measured: %r", exc)
                    await self._close()
                await asyncio.sleep(max(self.interval - (time.monotonic() - began), 0.1))
        finally:
            await self._close()

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._admin is None or self._consumer is None:
            # As the service's own principal: its READ ACLs let it describe its topics and group.
            options = client_options(self.bootstrap, self.credentials)
            admin = AIOKafkaAdminClient(**options, client_id=f"{self.service}-lag")
            consumer = AIOKafkaConsumer(
                **options,
                client_id=f"{self.service}-lag",
                group_id=None,
                enable_auto_commit=False,
            )
            await admin.start()
            try:
                await consumer.start()
            except BaseException:
                await admin.close()
                raise
            self._admin, self._consumer = admin, consumer
        return self._admin, self._consumer

    async def _close(self) -> None:
        admin, consumer = self._admin, self._consumer
        self._admin = self._consumer = None
        if consumer is not None:
            with contextlib.suppress(Exception):
                await consumer.stop()
        if admin is not None:
            with contextlib.suppress(Exception):
                await admin.close()

    async def measure_once(self) -> dict[TopicPartition, int]:
        admin, consumer = await self._clients()
        partitions: list[TopicPartition] = []
        for described in await admin.describe_topics(list(self.topics)):
            if described.get("error_code", 0) != 0:
                continue  # not created yet: nothing to lag behind
            numbers = sorted(int(p["partition"]) for p in described.get("partitions", ()))
            partitions += [TopicPartition(str(described["topic"]), n) for n in numbers]
        if not partitions:
            return {}
        ends: Mapping[TopicPartition, int] = await consumer.end_offsets(partitions)
        beginnings: Mapping[TopicPartition, int] = await consumer.beginning_offsets(partitions)
        committed = await admin.list_consumer_group_offsets(self.group, partitions=partitions)
        now = time.time()
        lags: dict[TopicPartition, int] = {}
        for tp in partitions:
            end = ends[tp]
            meta = committed.get(tp)
            offset = meta.offset if meta is not None else None
            lag = compute_lag(end, offset, beginnings[tp])
            history = self._history.setdefault(tp, PartitionHistory())
            history.record(now, end)
            waited = history.waited(end - lag, now) if lag else 0.0
            labels = (self.service, tp.topic, str(tp.partition))
            self.metrics.lag.labels(*labels).set(lag)
            self.metrics.lag_seconds.labels(*labels).set(waited)
            lags[tp] = lag
        self.metrics.last_success.labels(self.service).set(now)
        return lags


def lag_interval_from_env() -> float:
    raw = os.environ.get("PITCHIN_CONSUMER_LAG_INTERVAL_SECONDS", "")
    try:
        value = float(raw) if raw else DEFAULT_INTERVAL_SECONDS
    except ValueError:
        log.warning("PITCHIN_CONSUMER_LAG_INTERVAL_SECONDS=%r is not a number; using %s", raw, DEFAULT_INTERVAL_SECONDS)
        return DEFAULT_INTERVAL_SECONDS
    return value if value > 0 else DEFAULT_INTERVAL_SECONDS


def start_lag_monitor(runtime: _HasRuntimeParts, interval: float | None = None) -> asyncio.Task[None]:
    """Set build info and start measuring the service's consumer lag; call from a running event loop.

    The interval comes from ``PITCHIN_CONSUMER_LAG_INTERVAL_SECONDS`` (default 5 s) unless given.
    """
    settings = runtime.settings
    metrics = LagMetrics.of(runtime.metrics.registry)
    metrics.build_info.labels(settings.service_name, settings.service_version).set(1)
    monitor = LagMonitor(
        bootstrap=settings.kafka_bootstrap,
        service=settings.service_name,
        group=settings.service_name,
        topics=[spec.name for spec in consumed_by(settings.service_name)],
        metrics=metrics,
        interval=interval if interval is not None else lag_interval_from_env(),
        credentials=kafka_credentials(settings),
    )
    return asyncio.create_task(monitor.run(), name=f"consumer-lag-{settings.service_name}")


async def stop_lag_monitor(task: asyncio.Task[None] | None) -> None:
    """Cancel the monitor and wait until its Kafka clients are closed."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
