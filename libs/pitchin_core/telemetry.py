"""Tracing, metrics registry and JSON logs, set up once per process."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import StatusCode
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from pitchin_core.settings import ServiceSettings


class RecordUnsampled(Sampler):
    """Head sampling that still records the traces it does not sample, so errors can be kept.

    A trace is sampled (exported whole) for `ratio` of trace ids; the others are recorded
    but not exported, except the spans that end in error (`KeepErrors`). Without an
    exporter nothing is recorded at all: spans then cost only their trace ids, which logs
    and outbox rows still carry.
    """

    def __init__(self, ratio: float) -> None:
        self._ratio = TraceIdRatioBased(ratio)

    def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
        result = self._ratio.should_sample(*args, **kwargs)
        if result.decision is Decision.DROP:
            return SamplingResult(Decision.RECORD_ONLY, result.attributes, result.trace_state)
        return result

    def get_description(self) -> str:
        return f"RecordUnsampled({self._ratio.get_description()})"


class KeepErrors(BatchSpanProcessor):
    """Exports every span of a sampled trace, and of the others only the spans that failed.

    The batch processor's queue and export thread, with its sampled-only filter widened.
    """

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is None:
            return
        if span.context.trace_flags.sampled or span.status.status_code is StatusCode.ERROR:
            self._batch_processor.emit(span)


def setup_tracing(settings: ServiceSettings) -> TracerProvider:
    resource = Resource.create(
        {
            "service.name": settings.service_name,
            "service.namespace": "pitchin",
            "service.version": settings.service_version,
            "deployment.environment.name": settings.environment,
        }
    )
    if not settings.otlp_endpoint:
        # Nowhere to send spans: make none (about a tenth of a request's CPU), keep the ids.
        return _installed(TracerProvider(resource=resource, sampler=ALWAYS_OFF))
    root: Sampler = RecordUnsampled(settings.trace_sample_ratio)
    if settings.trace_sample_ratio >= 1.0:
        root = TraceIdRatioBased(1.0)
    provider = TracerProvider(resource=resource, sampler=ParentBased(root))
    endpoint = settings.otlp_endpoint.rstrip("/") + "/v1/traces"
    provider.add_span_processor(KeepErrors(OTLPSpanExporter(endpoint=endpoint)))
    return _installed(provider)


def _installed(provider: TracerProvider) -> TracerProvider:
    trace.set_tracer_provider(provider)
    return provider


def current_traceparent() -> tuple[str | None, str | None]:
    """The W3C trace context of the current span, to be stored with an outbox row."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent"), carrier.get("tracestate")


def context_from(traceparent: str | None, tracestate: str | None = None) -> Context:
    carrier = {k: v for k, v in (("traceparent", traceparent), ("tracestate", tracestate)) if v}
    return propagate.extract(carrier)


class JsonLogFormatter(logging.Formatter):
    """One JSON object a line, with the trace and span ids of the active span.

    Hand-written: the ten lines below are less to pin than a logging library, and the
    trace fields have to be read from OpenTelemetry at format time anyway.
    """

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            entry["trace_id"] = format(span_context.trace_id, "032x")
            entry["span_id"] = format(span_context.span_id, "016x")
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        for key in ("event_id", "event_type", "topic", "reason"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        return json.dumps(entry, default=str)


def setup_logging(settings: ServiceSettings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter(settings.service_name))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    for noisy in ("aiokafka", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class Metrics:
    """The metrics every service exports; names and labels are the same in all four."""

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        self.service = service
        self.http_requests = Counter(
            "pitchin_http_requests",
            "HTTP requests by route template and status class.",
            ["service", "method", "route", "status"],
            registry=self.registry,
        )
        self.http_duration = Histogram(
            "pitchin_http_request_duration_seconds",
            "HTTP request duration by route template.",
            ["service", "method", "route"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "pitchin_dead_letters",
            "Records sent to a dead-letter topic, by source topic and reason class.",
            ["service", "topic", "reason"],
            registry=self.registry,
        )
        self.events_applied = Counter(
            "pitchin_events_applied",
            "Consumed events by type and outcome (applied, duplicate).",
            ["service", "event_type", "outcome"],
            registry=self.registry,
        )
        self.outbox_backlog = Gauge(
            "pitchin_outbox_backlog", "Outbox rows not yet relayed.", ["service"], registry=self.registry
        )
        self.outbox_oldest_age = Gauge(
            "pitchin_outbox_oldest_age_seconds",
            "Age of the oldest outbox row not yet relayed.",
            ["service"],
            registry=self.registry,
        )
        self.events_published = Counter(
            "pitchin_events_published",
            "Events relayed to Kafka by type: offers by outcome, bookings by status, and the rest.",
            ["service", "event_type"],
            registry=self.registry,
        )
        self.outbox_relayed = Counter(
            "pitchin_outbox_relayed", "Outbox rows published to Kafka.", ["service"], registry=self.registry
        )
        self.outbox_dead_letters = Counter(
            "pitchin_outbox_dead_letters",
            "Outbox rows Kafka refused for good, set aside in outbox_dead_letters, by topic and reason class.",
            ["service", "topic", "reason"],
            registry=self.registry,
        )
