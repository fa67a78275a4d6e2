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
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from pitchin_core.settings import ServiceSettings


def setup_tracing(settings: ServiceSettings) -> TracerProvider:
    resource = Resource.create(
        {
            "service.name": settings.service_name,
            "service.namespace": "pitchin",
            "service.version": settings.service_version,
            "deployment.environment.name": settings.environment,
        }
    )
    provider = TracerProvider(resource=resource, sampler=ParentBased(TraceIdRatioBased(settings.trace_sample_ratio)))
    if settings.otlp_endpoint:
        endpoint = settings.otlp_endpoint.rstrip("/") + "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
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
