"""The Kafka door: `pitchin.ingest.v1`, consumed by every service that owns ingest types.

Each record is read, attributed to its registered source and decided by the service's
`Pipeline` in the service's unit of work (`runtime.uow`); refusals go to
`pitchin.ingest.rejections.v1` through the outbox, and records that cannot even be
addressed go to the dead-letter topic.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from faststream import AckPolicy
from faststream.kafka.annotations import KafkaMessage

from pitchin_core.contracts import topics
from pitchin_core.contracts.ingest import owner_of
from pitchin_core.ingest.envelope import Envelope, envelope_from_kafka
from pitchin_core.ingest.pipeline import Apply, NotYet, Pipeline
from pitchin_core.ingest.publishers import Registration
from pitchin_core.ingest.validation import Accepted, Rejection
from pitchin_core.messaging import TRANSIENT_ERRORS, PoisonMessage, track_subscriber
from pitchin_core.uow import Transaction

if TYPE_CHECKING:
    from pitchin_core.runtime import Runtime

log = logging.getLogger(__name__)

NOT_YET_PATIENCE_SECONDS = 30.0


def subscribe_ingest(runtime: Runtime, pipeline: Pipeline, apply: Apply) -> None:
    """Consume `pitchin.ingest.v1` in this service's group; decide the types this service owns.

    Records another service owns are skipped (committed). Records that are not even a
    CloudEvent we can address (no `ce_source`) and records faststream cannot parse (a header
    that is not UTF-8) go to `pitchin.ingest.v1.<group>.dlq` with the raw bytes; everything
    else is decided: applied, or refused on the rejections topic.
    """
    spec = topics.INGEST
    service = runtime.settings.service_name
    if service not in spec.consumers:
        raise ValueError(f"{service} is not a consumer of {spec.name} in the topic table")
    first_seen: dict[tuple[str, str], float] = {}
    retry_delay = 0.1

    async def consume(message: KafkaMessage) -> None:
        nonlocal retry_delay
        record: Any = message.raw_message
        envelope = envelope_from_kafka(record.headers or (), record.value)
        if owner_of(envelope.type) != service:
            return
        if envelope.source is None:
            pipeline.count("kafka", "dead-lettered", "missing-attribute")
            raise PoisonMessage("ce_source is missing: a rejection could not be addressed to anyone", "unaddressable")
        now = datetime.now(UTC)
        try:
            registration = await pipeline.registry.by_source(runtime.pool, envelope.source)
            await pipeline.decide(runtime.uow, envelope, registration, apply, now=now, stage_rejections=True)
            retry_delay = 0.1
        except NotYet as exc:
            key = (envelope.source, envelope.id or "")
            started = first_seen.setdefault(key, time.monotonic())
            if time.monotonic() - started > NOT_YET_PATIENCE_SECONDS:
                first_seen.pop(key, None)
                await _refuse_late(runtime, pipeline, envelope, registration, exc.rejection, now)
                return
            await asyncio.sleep(0.5)
            raise  # not committed: redelivered, by then the event is usually known
        except TRANSIENT_ERRORS as exc:
            log.warning("transient failure on %s, will retry in %.1fs: %r", spec.name, retry_delay, exc)
            await asyncio.sleep(retry_delay)
            retry_delay = min(retry_delay * 2, 5.0)
            raise
        except PoisonMessage:
            raise
        except Exception as exc:
            log.exception("ingest failed on %s", spec.name)
            raise PoisonMessage(f"{type(exc).__name__}: {exc}", "handler-error") from exc
        first_seen.pop((envelope.source, envelope.id or ""), None)

    async def raw_body(message: Any) -> bytes:
        body: bytes = message.body
        return body

    consume.__name__ = f"on_{spec.name.replace('.', '_')}"
    subscriber = runtime.broker.subscriber(
        spec.name,
        group_id=service,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        heartbeat_interval_ms=runtime.settings.consumer_heartbeat_ms,
        session_timeout_ms=max(10_000, runtime.settings.consumer_heartbeat_ms * 3),
        title=f"{service}:{spec.name}",
        decoder=raw_body,
    )
    subscriber(consume)
    track_subscriber(spec.name, subscriber)


async def _refuse_late(
    runtime: Runtime,
    pipeline: Pipeline,
    envelope: Envelope,
    registration: Registration | None,
    rejection: Rejection,
    now: datetime,
) -> None:
    async def refuse(tx: Transaction, accepted: Accepted, now: datetime) -> dict[str, Any]:
        raise rejection

    await pipeline.decide(runtime.uow, envelope, registration, refuse, now=now, stage_rejections=True)
