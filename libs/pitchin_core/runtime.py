"""What every service process is made of, built the same way in all four."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from functools import partial
from importlib.resources.abc import Traversable
from typing import Any

import asyncpg
import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import APIRouter, FastAPI
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

from pitchin_core.auth import KnownKeys, learn_key
from pitchin_core.contracts.cloudevents import CloudEvent
from pitchin_core.contracts.common import EventData
from pitchin_core.contracts.keys import ApiKeyIssuedV1, ApiKeyRevokedV1
from pitchin_core.contracts.topics import API_KEYS, TopicSpec, all_topic_names
from pitchin_core.db import create_pool, migrate
from pitchin_core.erasure import person_hasher
from pitchin_core.gate import RequestGate
from pitchin_core.http import (
    NATIVE_TELEMETRY_OFF,
    RedMetricsMiddleware,
    document_problems,
    install_error_handlers,
    install_health,
    trace_requests,
)
from pitchin_core.idempotency import ExpiredAnswers, IdempotencyMiddleware
from pitchin_core.kafka_admin import ensure_topics
from pitchin_core.kafka_auth import kafka_credentials
from pitchin_core.lag import start_lag_monitor, stop_lag_monitor
from pitchin_core.messaging import ConsumerSettings, DeadLetters, EventHandler, create_broker, subscribe
from pitchin_core.outbox import OutboxRelay, new_producer
from pitchin_core.personal import CachedKeys, KeyStore, Opener, PersonKeysSettings, RemoteKeys, Sealer
from pitchin_core.settings import ServiceSettings
from pitchin_core.telemetry import Metrics, setup_logging, setup_tracing
from pitchin_core.uow import UnitOfWork

# A use case a consumed event starts: True when it changed something, False for a redelivery.
EventUseCase = Callable[[CloudEvent, Any], Awaitable[bool]]
# Per topic, the event types a service acts on and the use case each one starts.
Dispatch = Mapping[type[EventData], EventUseCase]

log = logging.getLogger(__name__)


class Runtime:
    """Settings, pool, Kafka producer and broker, outbox relay: started and stopped in order."""

    def __init__(self, settings: ServiceSettings, migrations: Traversable) -> None:
        self.settings = settings
        self.migrations = migrations
        self.metrics = Metrics(settings.service_name)
        self.tracer_provider = setup_tracing(settings)
        self._producer: AIOKafkaProducer | None = None
        self._dead_letters: DeadLetters | None = None
        # The service's own Kafka principal, for every client it makes (pitchin_core.kafka_auth).
        self.kafka_credentials = kafka_credentials(settings)
        self.broker = create_broker(
            bootstrap=settings.kafka_bootstrap,
            service=settings.service_name,
            metrics=self.metrics,
            credentials=self.kafka_credentials,
        )
        self._pool: asyncpg.Pool | None = None
        self.relay: OutboxRelay | None = None
        self.expired_answers: ExpiredAnswers | None = None
        self._lag_monitor: asyncio.Task[None] | None = None
        self.api_keys = KnownKeys()
        # Personal fields leave sealed and are opened as they arrive (pitchin_core.personal): with
        # signups' keys, asked over its internal routes (signups reads its own table instead).
        self.person_keys: CachedKeys | None = None
        self._remote_keys: RemoteKeys | None = None
        if isinstance(settings, PersonKeysSettings):
            self._remote_keys = RemoteKeys(
                settings.signups_url, secret=settings.person_keys_secret, service=settings.service_name
            )
            self.person_keys = CachedKeys(self._remote_keys, ttl_seconds=settings.person_keys_cache_seconds)
        # Every use case's transactions; the pool is read when a transaction opens.
        self.uow = UnitOfWork(lambda: self.pool, source=self.source, consumer=settings.service_name)

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the runtime has not started")
        return self._pool

    @property
    def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("the runtime has not started")
        return self._producer

    @property
    def dead_letters(self) -> DeadLetters:
        if self._dead_letters is None:
            raise RuntimeError("the runtime has not started")
        return self._dead_letters

    @property
    def source(self) -> str:
        return f"/pitchin/{self.settings.service_name}"

    def handle(self, spec: TopicSpec, dispatch: Dispatch) -> None:
        """Subscribe to `spec` and start, for each event, the use case its type maps to.

        Types of the topic that are not in the table are not this service's business and
        are passed over; each handled event is counted once here, applied or duplicate.
        """
        metrics = self.metrics

        async def on_event(event: CloudEvent, data: EventData) -> None:
            use_case = dispatch.get(type(data))
            if use_case is None:
                return
            applied = await use_case(event, data)
            outcome = "applied" if applied else "duplicate"
            metrics.events_applied.labels(metrics.service, event.type, outcome).inc()

        self.subscribe(spec, on_event)

    def learn_api_keys(self) -> None:
        """Keep this service's copy of the API keys signups issues, rotates and revokes."""
        learn = partial(learn_key, self.uow)
        self.handle(API_KEYS, {ApiKeyIssuedV1: learn, ApiKeyRevokedV1: learn})

    def subscribe(self, spec: TopicSpec, handler: EventHandler) -> None:
        if self.settings.service_name not in spec.consumers:
            # The topic table is the one place consumers are declared (DLQs, chart, docs).
            raise ValueError(f"{self.settings.service_name} is not a consumer of {spec.name} in the topic table")
        subscribe(
            self.broker,
            spec,
            group=self.settings.service_name,
            handler=handler,
            dead_letters=lambda: self.dead_letters,
            settings=self.consumer_settings,
            opener=Opener(self.person_keys) if self.person_keys is not None else None,
        )

    def keep_person_keys(self, store: KeyStore) -> None:
        """Seal and open with `store` rather than asking signups (signups itself, holding the keys)."""
        if self.person_keys is None:
            raise ValueError("this service's settings have no person keys (pitchin_core.personal.PersonKeysSettings)")
        self.person_keys.store = store
        self._remote_keys = None

    @property
    def consumer_settings(self) -> ConsumerSettings:
        s = self.settings
        return ConsumerSettings(s.consumer_heartbeat_ms, s.consumer_batch_size, s.consumer_batch_timeout_ms)

    async def start(self) -> None:
        s = self.settings
        if s.create_topics:
            await ensure_topics(s.kafka_bootstrap, all_topic_names(), credentials=self.kafka_credentials)
        if s.migrate_on_start:
            await migrate(s.migration_database_url or s.database_url, s.db_schema, self.migrations)
        # PITCHIN_DATABASE_POOL_SIZE is the service's budget of connections, shared by its workers.
        self._pool = await create_pool(s.database_url, s.db_schema, max(2, s.database_pool_size // s.workers))
        # aiokafka binds its clients to the running event loop: made here, not in __init__.
        self._producer = new_producer(s.kafka_bootstrap, f"{s.service_name}-outbox", self.kafka_credentials)
        await self._producer.start()
        self._dead_letters = DeadLetters(self._producer, s.service_name, self.metrics)
        self.relay = OutboxRelay(
            self._pool,
            self.producer,
            schema=s.db_schema,
            metrics=self.metrics,
            batch_size=s.outbox_batch_size,
            idle_poll_seconds=s.outbox_poll_seconds,
            sealer=Sealer(self.person_keys, person_hasher(s)) if self.person_keys is not None else None,
        )
        self.uow.on_committed_events(self.relay.wake)
        await self.relay.start()
        self.expired_answers = ExpiredAnswers(self._pool)
        await self.expired_answers.start()
        await self.broker.start()
        self._lag_monitor = start_lag_monitor(self)
        log.info("%s started", s.service_name)

    async def stop(self) -> None:
        await stop_lag_monitor(self._lag_monitor)
        await self.broker.stop()
        if self.relay is not None:
            await self.relay.stop()
        if self.expired_answers is not None:
            await self.expired_answers.stop()
        if self._producer is not None:
            await self._producer.stop()
        if self._remote_keys is not None:
            await self._remote_keys.close()
        if self._pool is not None:
            await self._pool.close()
        self.tracer_provider.shutdown()

    async def ready(self) -> dict[str, str]:
        checks: dict[str, str] = {}
        try:
            async with asyncio.timeout(2):
                await self.pool.fetchval("SELECT 1")
            checks["postgresql"] = "ok"
        except Exception as exc:
            checks["postgresql"] = f"failing: {type(exc).__name__}"
        try:
            checks["kafka"] = "ok" if await self.broker.ping(timeout=2) else "failing: no answer"
        except Exception as exc:
            checks["kafka"] = f"failing: {type(exc).__name__}"
        return checks

    def http_app(
        self, routers: Sequence[APIRouter] = (), title: str = "", larger_bodies: Mapping[str, int] | None = None
    ) -> FastAPI:
        """The service's FastAPI app; `larger_bodies`: path prefixes allowed more than `max_body_bytes`."""
        setup_logging(self.settings)

        @asynccontextmanager
        async def lifespan(app_: FastAPI) -> AsyncIterator[None]:
            await self.start()
            app_.openapi()  # built now, not on the first request: the request gate reads it
            try:
                yield
            finally:
                await self.stop()

        app = FastAPI(
            telemetry=NATIVE_TELEMETRY_OFF,
            title=title or f"Pitch In {self.settings.service_name}",
            version=self.settings.service_version,
            lifespan=lifespan,
        )
        app.state.runtime = self
        install_error_handlers(app)
        # Added innermost first: the gate runs before idempotency (which stores answers only
        # for callers it found), and the RED metrics count what the gate refused too.
        app.add_middleware(IdempotencyMiddleware)
        app.add_middleware(RequestGate, max_body=self.settings.max_body_bytes, larger_bodies=larger_bodies)
        app.add_middleware(RedMetricsMiddleware, metrics=self.metrics)

        install_health(app, self.ready, self.metrics)
        for router in routers:
            app.include_router(router)
        document_problems(app)
        trace_requests(app, self.tracer_provider, exporting=bool(self.settings.otlp_endpoint))
        if self.settings.trace_database:
            AsyncPGInstrumentor().instrument(  # type: ignore[no-untyped-call]
                tracer_provider=self.tracer_provider
            )
        return app


KEEP_ALIVE_SECONDS = 75


def serve(factory: str, settings: ServiceSettings) -> None:
    """Serve the app that `factory` ("module:function") builds, in `settings.workers` processes.

    An import string rather than an app object, because uvicorn can only start several
    workers from one: each worker builds its own app, pool, consumers and relay (the pool
    size is divided among them; relays take an advisory lock, consumers share a group).
    """
    uvicorn.run(
        factory,
        factory=True,
        workers=settings.workers,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        # Longer than any client's or load balancer's idle timeout (httpx: 5 s, ingress: 60 s):
        # with uvicorn's 5 s default both sides close an idle connection at the same moment and
        # a request sent on it just then is reset (seen as ReadError in the benchmarks).
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
