"""Entry point: builds the notifications app from settings; nothing happens at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files

from fastapi import FastAPI

from pitchin_core.runtime import Runtime, serve
from pitchin_core.settings import ServiceSettings
from pitchin_notifications import api, handlers
from pitchin_notifications.sender import EmailSender
from pitchin_notifications.templates import Renderer


class NotificationsSettings(ServiceSettings):
    service_name: str = "notifications"
    http_port: int = 8003
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    mail_from: str = "Pitch In <no-reply@pitchin.local>"
    email_concurrency: int = 10
    email_max_attempts: int = 6


def create_app(settings: NotificationsSettings | None = None) -> FastAPI:
    settings = settings or NotificationsSettings()
    runtime = Runtime(settings, files("pitchin_notifications") / "migrations")
    handlers.register(runtime, Renderer())
    app = runtime.http_app([api.router], title="Pitch In notifications")
    service_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app_: FastAPI) -> AsyncIterator[None]:
        async with service_lifespan(app_):
            sender = EmailSender(
                runtime.pool,
                runtime.metrics,
                schema=settings.db_schema,
                smtp_host=settings.smtp_host,
                smtp_port=settings.smtp_port,
                mail_from=settings.mail_from,
                max_attempts=settings.email_max_attempts,
                concurrency=settings.email_concurrency,
            )
            await sender.start()
            try:
                yield
            finally:
                await sender.stop()

    app.router.lifespan_context = lifespan
    return app


def main() -> None:
    settings = NotificationsSettings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
