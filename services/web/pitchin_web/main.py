"""Entry point: builds the web front from settings; nothing happens at import time.

The web front is a backend-for-frontend: it has no Kafka and reads no service's tables, so it
does not use `pitchin_core.runtime.Runtime`; its one table is its sessions (the `web` schema,
sessions.py), migrated at start like a service's. It is built from the same shared pieces
(settings, tracing, JSON logs, RED metrics, problem+json for its own JSON routes, health).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from pydantic import Field, model_validator

from pitchin_core.db import create_pool, migrate
from pitchin_core.http import (
    NATIVE_TELEMETRY_OFF,
    RedMetricsMiddleware,
    install_error_handlers,
    install_health,
    trace_requests,
)
from pitchin_core.links import LOCAL_DONOR_LINK_SECRET
from pitchin_core.runtime import serve
from pitchin_core.settings import ServiceSettings, local_secret
from pitchin_core.telemetry import Metrics, setup_logging, setup_tracing
from pitchin_web import pages
from pitchin_web.clients import Services
from pitchin_web.security import SecurityHeadersMiddleware
from pitchin_web.sessions import PostgresSessions, ServerSessions, SessionStore, purging


class WebSettings(ServiceSettings):
    service_name: str = "web"
    http_port: int = 8000
    signups_url: str = "http://127.0.0.1:8001"
    matching_url: str = "http://127.0.0.1:8002"
    notifications_url: str = "http://127.0.0.1:8003"
    scheduling_url: str = "http://127.0.0.1:8004"
    service_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    # Encrypts the stored sessions and keys the CSRF tokens (sessions.py, security.py); rotate it
    # and every session ends. Like every `*_secret` setting, refused weak outside local use.
    session_secret: str = local_secret("session-secret")
    # Signs donors' links (pitchin_core.links), shared with notifications, which mails them: the
    # local default is the one notifications signs with too.
    donor_link_secret: str = LOCAL_DONOR_LINK_SECRET
    # A session ends this long after login whatever happens, or after this long unused.
    session_max_age_seconds: int = Field(default=8 * 3600, ge=60)
    session_idle_seconds: int = Field(default=2 * 3600, ge=60)
    session_purge_seconds: float = Field(default=600.0, gt=0)
    donor_link_days: int = Field(default=30, ge=1, le=365)
    # The web front's own narrow API key (role `web-front`) of the federation it serves: public
    # pages (event pages, RSVP, donor sign-up) call the services with it; a donor's or a booking's
    # page also forwards that person's signed link, which the service checks. Organisers and staff
    # use their own keys, kept in their server-side session.
    federation_key: str = ""
    federation_id: str = ""
    # The anonymous doors' limits (pages/common.py `Doors`): per client address and per email.
    # An address may be a whole union office behind one NAT, so its limits are the looser.
    signups_per_address_per_hour: int = Field(default=30, ge=1)
    signups_per_email_per_hour: int = Field(default=3, ge=1)
    rsvps_per_address_per_hour: int = Field(default=120, ge=1)
    rsvps_per_email_per_hour: int = Field(default=10, ge=1)
    logins_per_address_per_minute: int = Field(default=10, ge=1)

    @model_validator(mode="after")
    def _federation_key_outside_local_use(self) -> WebSettings:
        if self.environment in {"staging", "production"} and not self.federation_key:
            raise ValueError("PITCHIN_FEDERATION_KEY is required outside local use")
        return self

    @property
    def service_urls(self) -> dict[str, str]:
        return {
            "signups": self.signups_url,
            "matching": self.matching_url,
            "notifications": self.notifications_url,
            "scheduling": self.scheduling_url,
        }


def create_app(settings: WebSettings | None = None, sessions: SessionStore | None = None) -> FastAPI:
    """The web front; `sessions` (the pages' unit tests give an in-memory one) else PostgreSQL."""
    settings = settings or WebSettings()
    setup_logging(settings)
    tracer_provider = setup_tracing(settings)
    metrics = Metrics(settings.service_name)
    services = Services(settings.service_urls, settings.service_timeout_seconds)
    store = sessions or PostgresSessions(settings.session_idle_seconds, settings.session_max_age_seconds)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        pool = None
        try:
            if isinstance(store, PostgresSessions):
                if settings.migrate_on_start:
                    owner = settings.migration_database_url or settings.database_url
                    await migrate(owner, settings.db_schema, files("pitchin_web") / "migrations")
                # PITCHIN_DATABASE_POOL_SIZE is the web's budget of connections, shared by its workers.
                size = max(2, settings.database_pool_size // settings.workers)
                pool = await create_pool(settings.database_url, settings.db_schema, size)
                store.open(pool)
            async with purging(store, settings.session_purge_seconds):
                yield
        finally:
            await services.close()
            if pool is not None:
                await pool.close()
            tracer_provider.shutdown()

    app = FastAPI(
        telemetry=NATIVE_TELEMETRY_OFF,
        title="Pitch In web",
        version=settings.service_version,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    install_error_handlers(app)
    https = settings.public_base_url.startswith("https://")
    app.state.session_secret = settings.session_secret  # keys the CSRF tokens (security.py)
    app.add_middleware(
        ServerSessions,
        store=store,
        secret=settings.session_secret,
        max_age_seconds=settings.session_max_age_seconds,
        https=https,
    )
    app.add_middleware(SecurityHeadersMiddleware, https=https)
    app.add_middleware(RedMetricsMiddleware, metrics=metrics)

    async def readiness() -> dict[str, str]:
        return {**await services.readiness(), "sessions": await store.ready()}

    install_health(app, readiness, metrics)
    app.mount("/static", StaticFiles(directory=str(Path(str(files("pitchin_web") / "static")))), name="static")
    pages.install(app, settings, services)  # after install_error_handlers: the pages keep its answers for /v1/
    trace_requests(app, tracer_provider, exporting=bool(settings.otlp_endpoint))
    return app


def main() -> None:
    serve("pitchin_web.main:create_app", WebSettings())


if __name__ == "__main__":
    main()
