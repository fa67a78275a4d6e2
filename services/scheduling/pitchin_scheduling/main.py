"""Entry point: builds the scheduling app from settings; nothing happens at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files

from fastapi import FastAPI
from pydantic import Field

from pitchin_core.links import LOCAL_DONOR_LINK_SECRET
from pitchin_core.personal import PersonKeysSettings
from pitchin_core.retention import enforce
from pitchin_core.runtime import Runtime, serve
from pitchin_core.subject_access import router_for
from pitchin_scheduling import api, handlers
from pitchin_scheduling.erasure import RETENTION, export
from pitchin_scheduling.timer import ReminderTimer


class SchedulingSettings(PersonKeysSettings):
    service_name: str = "scheduling"
    http_port: int = 8004
    # Checks the booking links the web front forwards for a person's calendar (pitchin_core.links),
    # shared with the web front and notifications.
    donor_link_secret: str = LOCAL_DONOR_LINK_SECRET
    reminder_batch_size: int = Field(default=200, ge=1, le=5_000)


def create_app(settings: SchedulingSettings | None = None) -> FastAPI:
    settings = settings or SchedulingSettings()
    runtime = Runtime(settings, files("pitchin_scheduling") / "migrations")
    handlers.register(runtime)
    app = runtime.http_app([api.public, api.router, router_for("scheduling", export)], title="Pitch In scheduling")
    service_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app_: FastAPI) -> AsyncIterator[None]:
        async with service_lifespan(app_):
            timer = ReminderTimer(
                runtime.uow, runtime.metrics, schema=settings.db_schema, batch_size=settings.reminder_batch_size
            )
            # A reminder is set with an event's facts, which always emit: a sooner one is seen at once.
            runtime.uow.on_committed_events(timer.wake)
            await timer.start()
            try:
                yield
            finally:
                await timer.stop()

    app.router.lifespan_context = lifespan
    enforce(app, runtime, RETENTION)  # docs/privacy.md
    return app


def main() -> None:
    serve("pitchin_scheduling.main:create_app", SchedulingSettings())


if __name__ == "__main__":
    main()
