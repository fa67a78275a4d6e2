"""Entry point: builds the matching app from settings; nothing happens at import time."""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI

from pitchin_core.runtime import Runtime, serve
from pitchin_core.settings import ServiceSettings
from pitchin_matching import api, handlers


class MatchingSettings(ServiceSettings):
    service_name: str = "matching"
    http_port: int = 8002


def create_app(settings: MatchingSettings | None = None) -> FastAPI:
    runtime = Runtime(settings or MatchingSettings(), files("pitchin_matching") / "migrations")
    handlers.register(runtime)
    return runtime.http_app([api.router], title="Pitch In matching")


def main() -> None:
    settings = MatchingSettings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
