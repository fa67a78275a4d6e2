"""Entry point: builds the scheduling app from settings; nothing happens at import time."""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI

from pitchin_core.runtime import Runtime, serve
from pitchin_core.settings import ServiceSettings
from pitchin_scheduling import api, handlers


class SchedulingSettings(ServiceSettings):
    service_name: str = "scheduling"
    http_port: int = 8004


def create_app(settings: SchedulingSettings | None = None) -> FastAPI:
    runtime = Runtime(settings or SchedulingSettings(), files("pitchin_scheduling") / "migrations")
    handlers.register(runtime)
    return runtime.http_app([api.router], title="Pitch In scheduling")


def main() -> None:
    settings = SchedulingSettings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
