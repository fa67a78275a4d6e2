"""The Kafka door: `pitchin.ingest.v1`, consumed by every service that owns ingest types.

Each record is read, attributed to its registered source and decided by the service's
`Pipeline` in the service's unit of work (`runtime.uow`), a batch in one transaction; refusals go to
`pitchin.ingest.rejections.v1` through the outbox, and records that cannot even be
addressed go to the dead-letter topic.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from opentelemetry import propagate, trace
from opentelemetry.trace import Link, SpanKind

from pitchin_core.contracts import topics
from pitchin_core.contracts.ingest import owner_of
from pitchin_core.ingest.envelope import Envelope, envelope_from_kafka
from pitchin_core.ingest.pipeline import AppliesMany, Apply, ApplyMany, NotYet, Pipeline
from pitchin_core.ingest.publishers import Registration
from pitchin_core.ingest.validation import Accepted, Rejection
from pitchin_core.kafka_auth import INGEST_SUBSCRIPTION, ingest_topic, is_publisher_topic
from pitchin_core.messaging import TRANSIENT_ERRORS, PoisonMessage, consumer_span, subscribe_batches
from pitchin_core.uow import Transaction, one_transaction

if TYPE_CHECKING:
    from pitchin_core.runtime import Runtime

log = logging.getLogger(__name__)
tracer = trace.get_tracer("pitchin.ingest")

NOT_YET_PATIENCE_SECONDS = 30.0


def subscribe_ingest(runtime: Runtime, pipeline: Pipeline, apply: Apply, apply_many: ApplyMany | None = None) -> None:
    """Consume `pitchin.ingest.v1` in this service's group, in batches; decide the types this service owns.

    Records another service owns are skipped (committed). Records that are not even a
    CloudEvent we can address (no `ce_source`) go to `pitchin.ingest.v1.<group>.dlq` with the
    raw bytes; everything else is decided: applied, or refused on the rejections topic. A
    batch's decisions share one transaction (`BatchTransaction`) and are made set-based
    (`Pipeline.decide_many` with `apply_many`, or the `many` of an `apply` that has one); if
    one fails, the batch is decided again record by record, each in its own.
    """
    spec = topics.INGEST
    service = runtime.settings.service_name
    if service not in spec.consumers:
        raise ValueError(f"{service} is not a consumer of {spec.name} in the topic table")
    if apply_many is None and isinstance(apply, AppliesMany):
        apply_many = apply.many
    door = KafkaDoor(runtime, pipeline, apply, apply_many)
    subscribe_batches(
        runtime.broker,
        spec.name,
        group=service,
        handler=door,
        dead_letters=lambda: runtime.dead_letters,
        settings=runtime.consumer_settings,
        # pitchin.ingest.v1 (signups' relay) and every publisher's own pitchin.ingest.v1.<slug>.
        pattern=INGEST_SUBSCRIPTION,
    )


def forged_source(topic: str, source: str) -> PoisonMessage | None:
    """Why a record on a publisher's topic may not act for the source its `ce_source` names, if so.

    Only that publisher's principal may write its topic (a LITERAL WRITE ACL), so the topic is who
    wrote the record; the header is whatever the client sent. A record whose header names another
    source is refused to the dead-letter topic rather than applied under the topic's publisher:
    it is a publisher misconfigured or trying to speak for another, an operator should see it,
    and a rejection on the rejections topic would be addressed (keyed) to the source it forged.
    The base topic is written by signups alone (its relay of what the HTTP door authenticated).
    """
    if is_publisher_topic(topic) and ingest_topic(source) != topic:
        return PoisonMessage(f"ce_source {source!r} is not the publisher of topic {topic}", "forged-source")
    return None


class KafkaDoor:
    """One service's decisions on the batches of `pitchin.ingest.v1`."""

    def __init__(self, runtime: Runtime, pipeline: Pipeline, apply: Apply, apply_many: ApplyMany | None) -> None:
        self.runtime = runtime
        self.pipeline = pipeline
        self.apply = apply
        self.apply_many = apply_many
        self.service = runtime.settings.service_name
        self.first_seen: dict[tuple[str, str], float] = {}
        self.retry_delay = 0.1

    async def __call__(self, records: list[Any]) -> list[tuple[Any, PoisonMessage]]:
        poisoned: list[tuple[Any, PoisonMessage]] = []
        mine: list[tuple[Any, Envelope]] = []
        for record in records:
            # Whose record it is, from its type header alone: the other service's records
            # (half the topic, say) are skipped without parsing their bodies.
            if owner_of(_type_of(record.headers or ())) != self.service:
                continue
            envelope = envelope_from_kafka(record.headers or (), record.value)
            if envelope.source is None:
                self.pipeline.count("kafka", "dead-lettered", "missing-attribute")
                reason = "ce_source is missing: a rejection could not be addressed to anyone"
                poisoned.append((record, PoisonMessage(reason, "unaddressable")))
                continue
            forged = forged_source(record.topic, envelope.source)
            if forged is not None:
                self.pipeline.count("kafka", "dead-lettered", "forged-source")
                poisoned.append((record, forged))
                continue
            mine.append((record, envelope))
        try:
            await self._together(mine)
        except TRANSIENT_ERRORS as exc:
            await self._pause(exc)
            raise
        except Exception:
            log.info("a batch of %s needs deciding record by record", topics.INGEST.name, exc_info=True)
            poisoned += await self._one_by_one(mine)
        self.retry_delay = 0.1
        return poisoned

    async def _decide(self, record: Any, envelope: Envelope, now: datetime) -> None:
        assert envelope.source is not None
        with consumer_span(record, self.service, None):
            registration = await self.pipeline.registry.by_source(self.runtime.pool, envelope.source)
            await self.pipeline.decide(
                self.runtime.uow, envelope, registration, self.apply, now=now, stage_rejections=True
            )
        self.first_seen.pop((envelope.source, envelope.id or ""), None)

    async def _together(self, mine: list[tuple[Any, Envelope]]) -> None:
        """The batch decided set-based (`Pipeline.decide_many`) in one transaction, under one span
        linked to each record's publisher span."""
        if not mine:
            return
        now = datetime.now(UTC)
        registrations: dict[str, Registration | None] = {}
        for source in {envelope.source for _, envelope in mine if envelope.source is not None}:
            registrations[source] = await self.pipeline.registry.by_source(self.runtime.pool, source)
        batch = [(envelope, registrations[envelope.source or ""]) for _, envelope in mine]
        with _batch_span([record for record, _ in mine], self.service):
            async with one_transaction():
                await self.pipeline.decide_many(
                    self.runtime.uow, batch, self.apply, self.apply_many, now=now, stage_rejections=True
                )
        for _, envelope in mine:
            self.first_seen.pop((envelope.source or "", envelope.id or ""), None)

    async def _one_by_one(self, mine: list[tuple[Any, Envelope]]) -> list[tuple[Any, PoisonMessage]]:
        poisoned: list[tuple[Any, PoisonMessage]] = []
        for record, envelope in mine:
            now = datetime.now(UTC)
            try:
                await self._decide(record, envelope, now)
            except NotYet as exc:
                assert envelope.source is not None
                key = (envelope.source, envelope.id or "")
                started = self.first_seen.setdefault(key, time.monotonic())
                if time.monotonic() - started > NOT_YET_PATIENCE_SECONDS:
                    self.first_seen.pop(key, None)
                    registration = await self.pipeline.registry.by_source(self.runtime.pool, envelope.source)
                    await _refuse_late(self.runtime, self.pipeline, envelope, registration, exc.rejection, now)
                    continue
                await asyncio.sleep(0.5)
                raise  # not committed: redelivered, by then the event is usually known
            except TRANSIENT_ERRORS as exc:
                await self._pause(exc)
                raise
            except PoisonMessage as exc:
                poisoned.append((record, exc))
            except Exception as exc:
                log.exception("ingest failed on %s", topics.INGEST.name)
                poisoned.append((record, PoisonMessage(f"{type(exc).__name__}: {exc}", "handler-error")))
        return poisoned

    async def _pause(self, exc: BaseException) -> None:
        log.warning("transient failure on %s, will retry in %.1fs: %r", topics.INGEST.name, self.retry_delay, exc)
        await asyncio.sleep(self.retry_delay)
        self.retry_delay = min(self.retry_delay * 2, 5.0)


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


def _type_of(headers: Iterable[tuple[str, bytes | None]]) -> str | None:
    """A record's `ce_type` as `envelope_from_kafka` reads it: the last one that is UTF-8, or None."""
    found: str | None = None
    for name, value in headers:
        if value is not None and name.lower() == "ce_type":
            try:
                found = value.decode("utf-8")
            except UnicodeDecodeError:
                continue
    return found


@contextmanager
def _batch_span(records: list[Any], group: str) -> Iterator[None]:
    """One CONSUMER span for a batch, linked to the span that published each record (OpenTelemetry's
    way for batch processing: a batch has many parents)."""
    links = []
    for record in records:
        carrier = {k: (v or b"").decode("utf-8", "replace") for k, v in record.headers or ()}
        context = trace.get_current_span(propagate.extract(carrier)).get_span_context()
        if context.is_valid:
            links.append(Link(context))
    attributes: dict[str, str | int] = {
        "messaging.system": "kafka",
        "messaging.operation.name": "process",
        "messaging.operation.type": "process",
        "messaging.destination.name": topics.INGEST.name,
        "messaging.consumer.group.name": group,
        "messaging.batch.message_count": len(records),
    }
    with tracer.start_as_current_span(
        f"{topics.INGEST.name} process", kind=SpanKind.CONSUMER, links=links, attributes=attributes
    ):
        yield
