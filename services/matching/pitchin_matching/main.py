"""Entry point: builds the matching app from settings; nothing happens at import time."""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from importlib.resources import files

from fastapi import FastAPI
from pydantic import Field

from pitchin_core.http import run_beside
from pitchin_core.links import LOCAL_DONOR_LINK_SECRET
from pitchin_core.personal import PersonKeysSettings
from pitchin_core.retention import enforce
from pitchin_core.runtime import Runtime, serve
from pitchin_core.settings import local_secret
from pitchin_core.subject_access import router_for
from pitchin_matching import api, handlers
from pitchin_matching.clock import OfferClock
from pitchin_matching.erasure import RETENTION, export
from pitchin_matching.follow import IndexPoller
from pitchin_matching.index import DonorIndex
from pitchin_matching.service import Matching

log = logging.getLogger(__name__)


class MatchingSettings(PersonKeysSettings):
    service_name: str = "matching"
    http_port: int = 8002
    # Signs the donor links in offer emails; a `*_secret`, so refused outside local use unless real.
    offer_token_secret: str = local_secret("offer-token-secret")
    # Checks the donor links the web front forwards for a donor's page (pitchin_core.links), shared
    # with the web front and notifications.
    donor_link_secret: str = LOCAL_DONOR_LINK_SECRET
    offer_clock_seconds: float = Field(default=0.5, gt=0, le=60)
    # How often each process re-reads the donors other processes changed (follow.py).
    index_poll_seconds: float = Field(default=0.25, gt=0, le=60)
    waiting_sweep_seconds: float = Field(default=30.0, gt=0)
    needs_per_pass: int = Field(default=200, ge=1, le=10_000)
    retry_seconds: float = Field(default=60.0, ge=0)


def create_app(settings: MatchingSettings | None = None) -> FastAPI:
    settings = settings or MatchingSettings()
    runtime = Runtime(settings, files("pitchin_matching") / "migrations")
    matching = Matching(
        uow=runtime.uow,
        index=DonorIndex(),
        token_secret=settings.offer_token_secret,
        public_base_url=settings.public_base_url,
        max_needs_per_pass=settings.needs_per_pass,
        retry_seconds=settings.retry_seconds,
    )
    handlers.register(runtime, matching)
    app = runtime.http_app([api.router, router_for("matching", export)], title="Pitch In matching")
    app.state.matching = matching

    async def start_clock(workers: AsyncExitStack) -> None:
        await load_index(matching)
        poller = IndexPoller(matching.follower, matching.uow.pool, poll_seconds=settings.index_poll_seconds)
        await poller.start()
        workers.push_async_callback(poller.stop)
        clock = OfferClock(
            matching, poll_seconds=settings.offer_clock_seconds, sweep_seconds=settings.waiting_sweep_seconds
        )
        await clock.start()
        workers.push_async_callback(clock.stop)

    run_beside(app, start_clock)
    enforce(app, runtime, RETENTION)  # docs/privacy.md
    return app


async def load_index(matching: Matching) -> None:
    """Fill the in-memory index from the read model; handlers and the clock wait for it."""
    await matching.follower.load()
    matching.ready.set()


def main() -> None:
    serve("pitchin_matching.main:create_app", MatchingSettings())


if __name__ == "__main__":
    main()
