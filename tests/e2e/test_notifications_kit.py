"""Helpers for the notifications end-to-end tests (no tests here): publishing CloudEvents, local
HTTP servers in an SMS provider's and a webhook receiver's place, a failing SMTP server."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from pitchin_core.contracts.cloudevents import CloudEvent, tenant_of, to_kafka_headers, to_kafka_value
from pitchin_core.contracts.registry import EVENT_TYPES
from pitchin_core.contracts.topics import topic_for
from pitchin_testing.kafka import admin_options
from pitchin_testing.stack import Stack
from tests.e2e.conftest import Tenant
from tests.e2e.helpers import bearer, fetch
from tests.unit.factories import donor_registered

SOON = datetime.now(UTC) + timedelta(days=30)


def publish(bootstrap: str, tenant: Tenant, event_type: str, data: dict[str, Any], event_id: str | None = None) -> str:
    """Publish one event as its producer would (binary CloudEvent); returns its id."""
    return publish_many(bootstrap, tenant, [(event_type, data, event_id)])[0]


def publish_many(bootstrap: str, tenant: Tenant, events: list[tuple[str, dict[str, Any], str | None]]) -> list[str]:
    async def send() -> list[str]:
        producer = AIOKafkaProducer(**admin_options(bootstrap), acks="all", linger_ms=5)
        await producer.start()
        ids = []
        try:
            for event_type, data, event_id in events:
                event = CloudEvent(
                    id=event_id or str(uuid.uuid4()),
                    source="/test/notifications",
                    type=event_type,
                    data=json.loads(json.dumps(data, default=str)),
                    time=datetime.now(UTC),
                    tenant=tenant_of(str(data["federation_id"]), data.get("organisation_id")),
                )
                key = str(data.get("event_id") or data.get("need_id") or data.get("donor_id") or event.id)
                await producer.send(
                    topic_for(EVENT_TYPES[event_type]).name,
                    value=to_kafka_value(event),
                    key=key.encode(),
                    headers=to_kafka_headers(event),
                )
                ids.append(event.id)
            await producer.flush()
        finally:
            await producer.stop()
        return ids

    return asyncio.run(send())


def applied(stack: Stack, event_id: str) -> bool:
    return bool(fetch(stack, "SELECT 1 FROM notifications.inbox WHERE event_id = $1", event_id))


def configure(stack: Stack, tenant: Tenant, **config: Any) -> dict[str, Any]:
    """The federation's channels, set by its staff; by the platform operator when they name a server."""
    servers = {"smtp_host", "smtp_port", "sms_base_url"} & set(config)  # None included: back to the default
    key = tenant.operator_key if servers else tenant.staff_key
    answer = httpx.put(f"{stack['notifications'].url}/v1/channel-config", json=config, headers=bearer(key), timeout=10)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def put_template(stack: Stack, key: str, part: str, body: str) -> httpx.Response:
    """Override one template `part` (`<template>/<language>/<subject|text|html>`) for the key's scope."""
    return httpx.put(
        f"{stack['notifications'].url}/v1/templates/{part}", json={"body": body}, headers=bearer(key), timeout=5
    )


def unique_email(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@example.org"


def donor(tenant: Tenant, **overrides: Any) -> dict[str, Any]:
    body = donor_registered(
        federation_id=tenant.federation_id,
        organisation_id=tenant.organisation_id,
        donor_id=f"don_{uuid.uuid4().hex[:10]}",
        email=unique_email("donor"),
    )
    body.update(overrides)
    return body


def event_created(tenant: Tenant, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "federation_id": tenant.federation_id,
        "organisation_id": tenant.organisation_id,
        "event_id": f"evt_{uuid.uuid4().hex[:10]}",
        "kind": "training",
        "title": f"Online campaigning {uuid.uuid4().hex[:4]}",
        "starts_at": SOON.isoformat(),
        "ends_at": (SOON + timedelta(hours=2)).isoformat(),
        "time_zone": "Europe/London",
        "venue_name": "Dudley CVS",
        "online_url": "https://stream.example/live",
        "organiser_email": unique_email("organiser"),
    }
    body.update(overrides)
    return body


def event_facts(created: dict[str, Any], version: int = 2) -> dict[str, Any]:
    keys = ("federation_id", "organisation_id", "event_id", "kind", "title", "starts_at", "ends_at", "time_zone")
    return {**{k: created[k] for k in keys}, "version": version}


def booking(tenant: Tenant, event_id: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "federation_id": tenant.federation_id,
        "organisation_id": tenant.organisation_id,
        "booking_id": f"bk_{uuid.uuid4().hex[:12]}",
        "event_id": event_id,
        "name": "Ana Ortiz",
        "email": unique_email("booker"),
        "confirmed_at": datetime.now(UTC).isoformat(),
    }
    body.update(overrides)
    return body


def offer(tenant: Tenant, donor_id: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "federation_id": tenant.federation_id,
        "organisation_id": tenant.organisation_id,
        "offer_id": f"off_{uuid.uuid4().hex[:10]}",
        "need_id": f"need_{uuid.uuid4().hex[:8]}",
        "fight_id": "fight_1",
        "donor_id": donor_id,
        "need_title": "Design the strike poster",
        "score": 0.92,
        "explanation": [{"name": "skill", "points": 5, "why": "graphic design at expert level"}],
        "expires_at": SOON.isoformat(),
        "made_at": datetime.now(UTC).isoformat(),
    }
    body.update(overrides)
    return body


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


class Recorder:
    """A real HTTP server on a free port that records requests and answers `status`."""

    def __init__(self, status: int = 200, answer: Callable[[Received], dict[str, Any]] | None = None) -> None:
        self.status = status
        self.answer = answer
        self.requests: list[Received] = []
        self._cond = threading.Condition()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                got = Received(
                    self.path, {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length), time.time()
                )
                with recorder._cond:
                    recorder.requests.append(got)
                    recorder._cond.notify_all()
                    status = recorder.status
                payload = json.dumps(recorder.answer(got) if recorder.answer else {}).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Recorder:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(list(self.requests)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"timed out; received {len(self.requests)} request(s)")
                self._cond.wait(min(remaining, 0.5))
            return list(self.requests)


class RefusingSmtp:
    """A real SMTP server that answers every message with a temporary failure (451)."""

    def __init__(self, port: int) -> None:
        from aiosmtpd.controller import Controller

        self.attempts = 0
        server = self

        class Handler:
            async def handle_DATA(self, srv: Any, session: Any, envelope: Any) -> str:
                server.attempts += 1
                return "451 4.3.0 Mailbox busy, try again later"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=port, ready_timeout=30)

    def __enter__(self) -> RefusingSmtp:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()
