"""Entry point: builds the signups app from settings; nothing happens at import time."""

from __future__ import annotations

from contextlib import AsyncExitStack
from importlib.resources import files

from fastapi import FastAPI
from pydantic import Field
from starlette.middleware import Middleware

from pitchin_core.http import run_beside
from pitchin_core.ingest.http_door import MAX_BODY_BYTES
from pitchin_core.kafka_auth import kafka_credentials
from pitchin_core.links import LOCAL_DONOR_LINK_SECRET
from pitchin_core.personal import PersonKeysSettings
from pitchin_core.retention import enforce
from pitchin_core.runtime import Runtime, serve
from pitchin_signups import api, erasure_api, handlers, osdi_read, person_keys
from pitchin_signups.booking_door import BookingDoor
from pitchin_signups.ingest import osdi, routes
from pitchin_signups.ingest_trim import IngestTrimmer
from pitchin_signups.offer_clock import OfferClock
from pitchin_signups.service.bookings import BookingDesk
from pitchin_signups.service.erasure import RETENTION
from pitchin_signups.service.taxonomy import Taxonomies


class SignupsSettings(PersonKeysSettings):
    service_name: str = "signups"
    http_port: int = 8001
    # Checks the donor and booking links the web front forwards for a person (pitchin_core.links),
    # shared with the web front and notifications: the web's own key opens no donor or booking.
    donor_link_secret: str = LOCAL_DONOR_LINK_SECRET
    # How often the waitlist offer clock looks for due offers (offer_clock.py): an offer lapses
    # at most this long after its deadline.
    offer_clock_seconds: float = Field(default=1.0, gt=0, le=60)
    # How often what every ingest consumer has applied is deleted from the ingest topics
    # (ingest_trim.py): publishers' records in clear outlive their use by at most this long.
    ingest_trim_seconds: float = Field(default=10.0, gt=0, le=3600)


def create_app(settings: SignupsSettings | None = None) -> FastAPI:
    settings_ = settings or SignupsSettings()
    runtime = Runtime(settings_, files("pitchin_signups") / "migrations")
    # Signups holds the person keys: its relay and consumers read the table, not its own route.
    runtime.keep_person_keys(person_keys.LocalKeys(lambda: runtime.pool))
    handlers.register(runtime)
    app = runtime.http_app(
        [
            api.router,
            erasure_api.router,
            erasure_api.subject_access,
            routes.router,
            osdi.router,
            osdi_read.router,
            person_keys.router,
        ],
        title="Pitch In signups",
        # A donors' CSV may be a federation's whole list; ingest answers its own 413 (in its
        # problem format, counted) at MAX_BODY_BYTES, so the gate's bound there is only a backstop.
        larger_bodies={"/v1/donors/import": api.MAX_CSV_BYTES, "/v1/ingest": 2 * MAX_BODY_BYTES},
    )
    app.state.booking_desk = desk = BookingDesk(runtime.uow, metrics=runtime.metrics)
    # The rush's route as plain ASGI, innermost, so every middleware still applies (booking_door.py).
    app.user_middleware.append(Middleware(BookingDoor, desk=desk, keys=runtime.api_keys, pool=lambda: runtime.pool))
    app.state.taxonomies = Taxonomies()

    async def start_offer_clock(workers: AsyncExitStack) -> None:
        clock = OfferClock(runtime.uow, poll_seconds=settings_.offer_clock_seconds)
        app.state.offer_clock = clock
        await clock.start()
        workers.push_async_callback(clock.stop)

    async def start_ingest_trim(workers: AsyncExitStack) -> None:
        trimmer = IngestTrimmer(
            settings_.kafka_bootstrap, kafka_credentials(settings_), interval=settings_.ingest_trim_seconds
        )
        app.state.ingest_trimmer = trimmer
        await trimmer.start()
        workers.push_async_callback(trimmer.stop)

    run_beside(app, start_offer_clock)
    run_beside(app, start_ingest_trim)
    enforce(app, runtime, RETENTION)  # docs/privacy.md
    return app


def main() -> None:
    serve("pitchin_signups.main:create_app", SignupsSettings())


if __name__ == "__main__":
    main()
