"""The one broker factory every service calls, the consumer wiring and the dead-letter route.

Delivery rules (see README, "Nothing lost, nothing twice"):
- subscribers commit only after the handler succeeded (AckPolicy.NACK_ON_ERROR); the
  default ACK_FIRST auto-commits and loses a message on an exception or a kill;
- a transient failure (PostgreSQL or the network away) is retried with backoff;
- anything else about a record is poison: it goes to `<topic>.<group>.dlq` with the reason
  in headers, and the consumer carries on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from faststream import AckPolicy, Context
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.middlewares import ExceptionMiddleware
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from pydantic import ValidationError

from pitchin_core.contracts.cloudevents import CloudEvent, InvalidCloudEvent, from_kafka
from pitchin_core.contracts.common import EventData
from pitchin_core.contracts.registry import EVENT_TYPES
from pitchin_core.contracts.topics import TopicSpec, dead_letter_topic
from pitchin_core.telemetry import Metrics

log = logging.getLogger(__name__)

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


# Subscribers by topic, to commit past a record that faststream itself could not read.
_SUBSCRIBERS: dict[str, Any] = {}


def track_subscriber(topic: str, subscriber: Any) -> None:
    """Let the dead-letter route commit for `subscriber` (every subscription must be tracked)."""
    _SUBSCRIBERS[topic] = subscriber


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
        await self.producer.send_and_wait(
            dead_letter_topic(topic, self.consumer_group), value=record.value, key=record.key, headers=headers
        )
        self.metrics.dead_letters.labels(self.metrics.service, topic, category).inc()
        log.warning(
            "dead-lettered %s@%s/%s: %s",
            topic,
            record.partition,
            record.offset,
            reason,
            extra={"topic": topic, "reason": category},
        )


def create_broker(
    *,
    bootstrap: str,
    service: str,
    tracer_provider: TracerProvider,
    metrics: Metrics,
    dead_letters: Callable[[], DeadLetters],
) -> KafkaBroker:
    exceptions = ExceptionMiddleware()

    @exceptions.add_handler(PoisonMessage)
    async def _poison(exc: PoisonMessage, message: Any = Context("message")) -> None:
        await dead_letters().send(_record_of(message), exc.reason, exc.category)

    @exceptions.add_handler(ValueError)
    async def _undecodable(exc: ValueError, message: Any = Context("message")) -> None:
        # Raised by faststream before our code runs: its parser decodes every header as
        # UTF-8, and publishers outside Pitch In will send bytes that are not.
        if isinstance(exc, UnicodeDecodeError):
            reason, category = f"a header is not valid UTF-8 ({exc.reason} at byte {exc.start})", "encoding"
        else:
            reason, category = f"the record cannot be read: {type(exc).__name__}: {exc}", "unreadable"
        record = _record_of(message)
        await dead_letters().send(record, reason, category)
        # The failure came before the acknowledgement machinery had a message to ack, so
        # the offset would stay uncommitted: the group would show a lag of one for ever and
        # a restart would dead-letter the record again. Processing is one record at a time
        # per subscriber, so committing just past this one is exact.
        subscriber = _SUBSCRIBERS.get(record.topic)
        if subscriber is not None and subscriber.consumer is not None:
            await subscriber.consumer.commit({TopicPartition(record.topic, record.partition): record.offset + 1})

    return KafkaBroker(
        bootstrap,
        client_id=service,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        middlewares=[
            KafkaTelemetryMiddleware(tracer_provider=tracer_provider),
            KafkaPrometheusMiddleware(registry=metrics.registry, app_name=service, metrics_prefix="faststream"),
            exceptions,
        ],
        logger=log,
        log_level=logging.DEBUG,
    )


def _record_of(message: Any) -> Any:
    # For parser failures the context holds the raw ConsumerRecord itself.
    return getattr(message, "raw_message", message)


def subscribe(
    broker: KafkaBroker,
    spec: TopicSpec,
    *,
    group: str,
    handler: EventHandler,
    heartbeat_ms: int = 3000,
) -> None:
    """Wire `handler` to a topic of the table with the delivery rules above."""
    retry_delay = 0.1

    async def consume(message: KafkaMessage) -> None:
        nonlocal retry_delay
        record: Any = message.raw_message
        try:
            event = from_kafka(record.headers or (), record.value)
            # faststream's consumer span carries the older attribute names; add the ones the
            # current messaging conventions require, and the CloudEvent's own id.
            trace.get_current_span().set_attributes(
                {
                    "messaging.system": "kafka",
                    "messaging.operation.name": "process",
                    "messaging.operation.type": "process",
                    "messaging.destination.name": record.topic,
                    "messaging.consumer.group.name": group,
                    "messaging.destination.partition.id": str(record.partition),
                    "messaging.kafka.offset": record.offset,
                    "messaging.message.id": event.id,
                    "cloudevents.event_id": event.id,
                    "cloudevents.event_type": event.type,
                }
            )
            data = parse_event(event, spec.event_types)
            await handler(event, data)
            retry_delay = 0.1
        except InvalidCloudEvent as exc:
            raise PoisonMessage(str(exc), "not-a-cloudevent") from exc
        except PoisonMessage:
            raise
        except TRANSIENT_ERRORS as exc:
            log.warning("transient failure on %s, will retry in %.1fs: %r", spec.name, retry_delay, exc)
            await asyncio.sleep(retry_delay)
            retry_delay = min(retry_delay * 2, 5.0)
            raise
        except Exception as exc:
            log.exception("handler failed on %s", spec.name)
            raise PoisonMessage(f"{type(exc).__name__}: {exc}", "handler-error") from exc

    async def raw_body(message: Any) -> bytes:
        # Our codec reads the record; faststream's JSON decoder would fail on bad bodies
        # before the handler could dead-letter them.
        body: bytes = message.body
        return body

    consume.__name__ = f"on_{spec.name.replace('.', '_')}"
    subscriber = broker.subscriber(
        spec.name,
        group_id=group,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        heartbeat_interval_ms=heartbeat_ms,
        session_timeout_ms=max(10_000, heartbeat_ms * 3),
        title=f"{group}:{spec.name}",
        decoder=raw_body,
    )
    subscriber(consume)
    track_subscriber(spec.name, subscriber)
