"""The one broker factory every service calls, the consumer wiring and the dead-letter route.

Consumers take records in batches (faststream `batch=True`): every record's use case writes
in one transaction (`uow.BatchTransaction`), committed once, then one offset commit for
the batch. Committing per record capped a consumer near 150 records/s whatever it did:
Kafka 4's group coordinator holds each offset commit up to 5 ms, and each transaction
waits for its own WAL flush (see the shared notes, batching-and-rls.md: 129/s one at a
time, 25,700/s batched).

Delivery rules (see README, "Nothing lost, nothing twice"):
- offsets are committed only after the batch's transaction committed
  (AckPolicy.NACK_ON_ERROR: on an exception each partition seeks back to the batch's first
  record, so a kill or a failure redelivers, and each service's inbox absorbs what it had
  applied); every other policy loses records of a failed batch;
- a transient failure (PostgreSQL or the network away) is retried with backoff;
- anything else about a record is poison: it goes to `<topic>.<group>.dlq` with the reason
  in headers, bytes untouched, and the rest of its batch carries on. A record's use case
  that fails rolls the batch back; the batch is then applied one record at a time, in
  order, each in its own transaction, so only the failing record is set aside.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import types
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING, Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import KafkaError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.prometheus.provider import BatchKafkaMetricsSettingsProvider, KafkaMetricsSettingsProvider
from faststream.kafka.subscriber.usecase import BatchSubscriber
from faststream.params import NoCast
from faststream.prometheus import ConsumeAttrs, PrometheusMiddleware
from faststream.security import SASLScram512
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind
from pydantic import ValidationError

from pitchin_core.contracts.cloudevents import CloudEvent, InvalidCloudEvent, from_kafka
from pitchin_core.contracts.common import EventData
from pitchin_core.contracts.ingest import TOPIC as INGEST_TOPIC
from pitchin_core.contracts.registry import EVENT_TYPES
from pitchin_core.contracts.topics import TopicSpec, dead_letter_topic
from pitchin_core.kafka_auth import (
    INGEST_PUBLISHER_PREFIX,
    METADATA_MAX_AGE_MS,
    KafkaCredentials,
    is_publisher_topic,
    topic_of_record,
)
from pitchin_core.telemetry import Metrics
from pitchin_core.uow import one_transaction

if TYPE_CHECKING:
    from pitchin_core.personal import Opener

log = logging.getLogger(__name__)
tracer = trace.get_tracer("pitchin.messaging")

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    KafkaError,
)

EventHandler = Callable[[CloudEvent, EventData], Awaitable[None]]


class PoisonMessage(Exception):
    """A record that no number of retries will make acceptable."""

    def __init__(self, reason: str, category: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.category = category


def parse_event(event: CloudEvent, accepted: tuple[type[EventData], ...]) -> EventData:
    model = EVENT_TYPES.get(event.type)
    if model is None or model not in accepted:
        raise PoisonMessage(f"event type {event.type!r} is not accepted on this topic", "unknown-type")
    try:
        data = model.model_validate(event.data)
    except ValidationError as exc:
        fields = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or '(data)'}: {err['msg']}" for err in exc.errors())
        raise PoisonMessage(f"data does not match {event.type}: {fields}", "schema") from exc
    if event.federation_id and event.federation_id != data.federation_id:
        raise PoisonMessage("ce_tenant names another federation than the data", "tenant")
    return data


class DeadLetters:
    """Publishes a rejected record, bytes untouched, with the reason in `dlq_*` headers."""

    def __init__(self, producer: AIOKafkaProducer, consumer_group: str, metrics: Metrics) -> None:
        self.producer = producer
        self.consumer_group = consumer_group
        self.metrics = metrics

    async def send(self, record: Any, reason: str, category: str) -> None:
        topic: str = record.topic
        headers = [(k, v) for k, v in (record.headers or ()) if not k.startswith("dlq_")]
        headers += [
            ("dlq_reason", reason[:2000].encode("utf-8")),
            ("dlq_category", category.encode()),
            ("dlq_source_topic", topic.encode()),
            ("dlq_source_partition", str(record.partition).encode()),
            ("dlq_source_offset", str(record.offset).encode()),
            ("dlq_consumer_group", self.consumer_group.encode()),
        ]
        # A publisher's own ingest topic has no dead-letter topic of its own: its records are
        # parked on pitchin.ingest.v1's (dlq_source_topic says which topic they came from).
        parked = dead_letter_topic(topic_of_record(topic), self.consumer_group)
        value = record.value
        if topic_of_record(topic) == INGEST_TOPIC and value is not None:
            # What other systems publish comes in clear and cannot be sealed by Pitch In; its topic
            # is trimmed once consumed (pitchin_core.ingest.trim). Parked for 30 days, it would
            # outlive that: the reason, the attributes and the offsets are kept, not the data.
            headers.append(("dlq_value_dropped", f"{len(value)} bytes".encode()))
            value = None
        await self.producer.send_and_wait(parked, value=value, key=record.key, headers=headers)
        # Labelled by the topic family, not a publisher's own topic: one series per publisher
        # would put ids in label values (dlq_source_topic on the parked record says which one).
        self.metrics.dead_letters.labels(self.metrics.service, topic_of_record(topic), category).inc()
        # Handled, so a warning (not an error or worse): the record is kept and the stream flows on.
        log.warning(
            "dead-lettered %s@%s/%s to %s (%s): %s",
            topic,
            record.partition,
            record.offset,
            parked,
            category,
            reason,
            extra={"topic": topic, "reason": category, "dead_letter_topic": parked},
        )


def create_broker(
    *,
    bootstrap: str,
    service: str,
    metrics: Metrics,
    credentials: KafkaCredentials | None = None,
) -> KafkaBroker:
    # No faststream telemetry middleware: it would make one span per batch; each record gets
    # its own CONSUMER span below, child of the span that produced it.
    return KafkaBroker(
        bootstrap,
        client_id=service,
        # The service's own principal (SASL/SCRAM-SHA-512, pitchin_core.kafka_auth).
        security=SASLScram512(username=credentials.username, password=credentials.password) if credentials else None,
        # Topics are the operator's to make (a service has no CREATE): no CreateTopics on start.
        allow_auto_create_topics=False,
        # The ingest consumers subscribe by pattern: a new publisher's topic is seen within this.
        metadata_max_age_ms=METADATA_MAX_AGE_MS,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        middlewares=[
            PrometheusMiddleware(
                settings_provider_factory=_metrics_by_topic_family,
                registry=metrics.registry,
                app_name=service,
                metrics_prefix="faststream",
            ),
        ],
        logger=log,
        log_level=logging.DEBUG,
    )


class _BatchByTopicFamily(BatchKafkaMetricsSettingsProvider):
    """faststream labels consumer metrics by the record's topic. The ingest consumers read one
    topic per publisher by pattern, so that label would grow with every publisher and carry
    their hashed names: all publishers' topics share one label value."""

    def get_consume_attrs_from_message(self, msg: Any) -> ConsumeAttrs:
        attrs = super().get_consume_attrs_from_message(msg)
        return {**attrs, "destination_name": topic_family(attrs["destination_name"])}


class _RecordByTopicFamily(KafkaMetricsSettingsProvider):
    def get_consume_attrs_from_message(self, msg: Any) -> ConsumeAttrs:
        attrs = super().get_consume_attrs_from_message(msg)
        return {**attrs, "destination_name": topic_family(attrs["destination_name"])}


def topic_family(topic: str) -> str:
    """A topic's name in metrics: each publisher's own topic as `pitchin.ingest.v1.<publisher>`."""
    return f"{INGEST_PUBLISHER_PREFIX}<publisher>" if is_publisher_topic(topic) else topic


def _metrics_by_topic_family(msg: Any) -> KafkaMetricsSettingsProvider | BatchKafkaMetricsSettingsProvider:
    return _BatchByTopicFamily() if isinstance(msg, Sequence) else _RecordByTopicFamily()


def _readable(record: ConsumerRecord[Any, Any]) -> ConsumerRecord[Any, Any]:
    """faststream's parser decodes every header as UTF-8, and one bad header would skip the whole
    batch unacknowledged: it parses a copy with the bad bytes replaced (the original is what
    the handler and the dead-letter topic get)."""
    try:
        for _, value in record.headers or ():
            (value or b"").decode("utf-8")
        return record
    except (UnicodeDecodeError, AttributeError):
        headers = [(k, (v or b"").decode("utf-8", "replace").encode()) for k, v in record.headers or ()]
        return dataclasses.replace(record, headers=headers)


async def tolerant_parser(records: Any, original: Callable[[Any], Awaitable[Any]]) -> Any:
    message = await original(tuple(_readable(r) for r in records))
    message.raw_message = records  # the originals: bytes for the dead-letter topic, offsets
    return message


async def raw_records(message: Any) -> list[ConsumerRecord[Any, Any]]:
    """The batch's records as they came: each is read and validated by itself, so one bad body
    cannot fail the others (faststream's JSON decoder would fail the whole batch)."""
    return list(message.raw_message)


@dataclass
class Delivery:
    """One record of a batch: what it is, or why it is poison."""

    record: ConsumerRecord[Any, Any]
    event: CloudEvent | None = None
    data: EventData | None = None
    poison: PoisonMessage | None = None


# Applies a batch's records (in delivery order) and returns the poison among them, with why.
BatchHandler = Callable[
    [list[ConsumerRecord[Any, Any]]], Awaitable[list[tuple[ConsumerRecord[Any, Any], "PoisonMessage"]]]
]


def subscribe_batches(
    broker: KafkaBroker,
    topic: str,
    *,
    group: str,
    handler: Callable[
        [list[ConsumerRecord[Any, Any]]], Awaitable[list[tuple[ConsumerRecord[Any, Any], PoisonMessage]]]
    ],
    dead_letters: Callable[[], DeadLetters],
    settings: ConsumerSettings,
    pattern: str | None = None,
) -> None:
    """Consume `topic` in batches: `handler` applies a batch and returns its poison records,
    which go to the dead-letter topic after the batch committed; then the offsets commit.

    With `pattern` (a regular expression) every topic it matches that the principal may read is
    consumed instead of `topic` alone (`topic` then names the subscriber)."""

    async def consume(records: NoCast[list[Any]], message: KafkaMessage) -> None:
        poisoned = await handler(records)
        for record, poison in poisoned:
            # After the commit of the batch: a crash here re-sends, it never loses.
            await dead_letters().send(record, poison.reason, poison.category)

    consume.__name__ = f"on_{topic.replace('.', '_')}"
    subscriber = broker.subscriber(
        *(() if pattern else (topic,)),
        pattern=pattern,
        group_id=group,
        batch=True,
        max_records=settings.max_records,
        batch_timeout_ms=settings.batch_timeout_ms,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        heartbeat_interval_ms=settings.heartbeat_ms,
        session_timeout_ms=max(10_000, settings.heartbeat_ms * 3),
        title=f"{group}:{topic}",
        parser=tolerant_parser,
        decoder=raw_records,
    )
    # This subscriber only (not faststream's class): poll without its sleep after an empty poll.
    subscriber.get_msg = types.MethodType(_next_batch, subscriber)  # type: ignore[method-assign]
    subscriber(consume)


async def _next_batch(subscriber: BatchSubscriber, consumer: AIOKafkaConsumer) -> tuple[ConsumerRecord[Any, Any], ...]:
    """The next batch: whatever Kafka has fetched (at most `max_records`), as soon as anything is.

    faststream 0.7.8 sleeps another `batch_timeout_ms` after an empty poll: an idle consumer then
    woke 100 times a second at 5 ms (a tenth of a core per idle service, measured), and a record
    arriving during the sleep waited for it. aiokafka's `getmany` returns the moment records are
    fetched, so waiting on Kafka alone costs no latency and an idle poll can be long.
    """
    batches = await consumer.getmany(timeout_ms=subscriber.batch_timeout_ms, max_records=subscriber.max_records)
    return tuple(chain.from_iterable(batches.values()))


@dataclass(frozen=True)
class ConsumerSettings:
    heartbeat_ms: int = 3000
    max_records: int = 500
    # How long an idle consumer waits on Kafka per poll: records end the wait as they come.
    batch_timeout_ms: int = 500


def consumer_span(record: ConsumerRecord[Any, Any], group: str, event: CloudEvent | None) -> Any:
    """The CONSUMER span of one record, a child of the span that published it."""
    carrier = {k: (v or b"").decode("utf-8", "replace") for k, v in record.headers or ()}
    attributes: dict[str, Any] = {
        "messaging.system": "kafka",
        "messaging.operation.name": "process",
        "messaging.operation.type": "process",
        "messaging.destination.name": record.topic,
        "messaging.consumer.group.name": group,
        "messaging.destination.partition.id": str(record.partition),
        "messaging.kafka.offset": record.offset,
    }
    if record.key is not None:
        attributes["messaging.kafka.message.key"] = record.key.decode("utf-8", "replace")
    if event is not None:
        attributes.update(
            {"messaging.message.id": event.id, "cloudevents.event_id": event.id, "cloudevents.event_type": event.type}
        )
    return tracer.start_as_current_span(
        f"{record.topic} process", context=propagate.extract(carrier), kind=SpanKind.CONSUMER, attributes=attributes
    )


class BatchApplier:
    """Applies a batch of one topic's events in one transaction, falling back to one by one.

    `handler(event, data)` starts the record's use case through the service's unit of work,
    which joins the batch's transaction. Per key the order of the batch is kept (records of
    a partition come in offset order and are applied in that order).
    """

    def __init__(self, spec: TopicSpec, group: str, handler: EventHandler, opener: Opener | None = None) -> None:
        self.spec = spec
        self.group = group
        self.handler = handler
        # Opens sealed personal fields before the data is parsed (pitchin_core.personal); the
        # record itself, sent to a dead-letter topic, stays sealed.
        self.opener = opener
        self.retry_delay = 0.1

    def read(self, record: ConsumerRecord[Any, Any]) -> Delivery:
        delivery = self.read_event(record)
        if delivery.event is not None:
            self.parse(delivery)
        return delivery

    async def read_all(self, records: list[ConsumerRecord[Any, Any]]) -> list[Delivery]:
        """The batch's records read, their sealed fields opened with one key look-up, then parsed."""
        deliveries = [self.read_event(r) for r in records]
        if self.opener is not None:
            opened = await self.opener.open([d.event for d in deliveries])
            for d, event in zip(deliveries, opened, strict=True):
                d.event = event
        for d in deliveries:
            if d.event is not None:
                self.parse(d)
        return deliveries

    def parse(self, delivery: Delivery) -> None:
        assert delivery.event is not None
        try:
            delivery.data = parse_event(delivery.event, self.spec.event_types)
        except PoisonMessage as exc:
            delivery.poison = exc

    def read_event(self, record: ConsumerRecord[Any, Any]) -> Delivery:
        delivery = Delivery(record)
        try:
            for _, value in record.headers or ():
                (value or b"").decode("utf-8")
        except UnicodeDecodeError as exc:
            delivery.poison = PoisonMessage(
                f"a header is not valid UTF-8 ({exc.reason} at byte {exc.start})", "encoding"
            )
            return delivery
        try:
            delivery.event = from_kafka(record.headers or (), record.value)
        except InvalidCloudEvent as exc:
            delivery.poison = PoisonMessage(str(exc), "not-a-cloudevent")
        return delivery

    async def __call__(
        self, records: list[ConsumerRecord[Any, Any]]
    ) -> list[tuple[ConsumerRecord[Any, Any], PoisonMessage]]:
        try:
            # Outside the record-by-record fallback: a failure to open is the batch's (retried), never a record's.
            deliveries = await self.read_all(records)
        except TRANSIENT_ERRORS as exc:
            await self._pause(exc)
            raise
        try:
            await self._together(deliveries)
        except TRANSIENT_ERRORS as exc:
            await self._pause(exc)
            raise
        except Exception:
            log.warning("a batch of %s failed; applying it record by record", self.spec.name, exc_info=True)
            await self._one_by_one(deliveries)
        self.retry_delay = 0.1
        return [(d.record, d.poison) for d in deliveries if d.poison is not None]

    async def _together(self, deliveries: list[Delivery]) -> None:
        async with one_transaction():
            for d in deliveries:
                if d.poison is None:
                    assert d.event is not None and d.data is not None
                    with consumer_span(d.record, self.group, d.event):
                        await self.handler(d.event, d.data)

    async def _one_by_one(self, deliveries: list[Delivery]) -> None:
        for d in deliveries:
            if d.poison is not None:
                continue
            assert d.event is not None and d.data is not None
            with consumer_span(d.record, self.group, d.event):
                try:
                    await self.handler(d.event, d.data)
                except TRANSIENT_ERRORS as exc:
                    # Not committed: the batch comes again; what this loop applied is in the inbox.
                    await self._pause(exc)
                    raise
                except PoisonMessage as exc:
                    d.poison = exc
                except Exception as exc:
                    log.exception("handler failed on %s", self.spec.name)
                    d.poison = PoisonMessage(f"{type(exc).__name__}: {exc}", "handler-error")

    async def _pause(self, exc: BaseException) -> None:
        log.warning("transient failure on %s, will retry in %.1fs: %r", self.spec.name, self.retry_delay, exc)
        await asyncio.sleep(self.retry_delay)
        self.retry_delay = min(self.retry_delay * 2, 5.0)


def subscribe(
    broker: KafkaBroker,
    spec: TopicSpec,
    *,
    group: str,
    handler: EventHandler,
    dead_letters: Callable[[], DeadLetters],
    settings: ConsumerSettings,
    opener: Opener | None = None,
) -> None:
    """Wire `handler` to a topic of the table, in batches, with the delivery rules above."""
    subscribe_batches(
        broker,
        spec.name,
        group=group,
        handler=BatchApplier(spec, group, handler, opener),
        dead_letters=dead_letters,
        settings=settings,
    )
