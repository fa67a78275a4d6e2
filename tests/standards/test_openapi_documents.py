"""Each service's OpenAPI document, as FastAPI serves it at /openapi.json, judged by openapi-spec-validator."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from openapi_spec_validator import validate

SERVICES = ["signups", "matching", "notifications", "scheduling", "web"]


def document(service: str) -> dict[str, Any]:
    main = importlib.import_module(f"pitchin_{service}.main")
    openapi: dict[str, Any] = main.create_app().openapi()
    return openapi


@pytest.mark.parametrize("service", SERVICES)
def test_the_openapi_document_is_valid(service: str) -> None:
    validate(document(service))  # raises, naming the path, when it is not a valid OpenAPI 3.1 document


def test_the_ics_routes_declare_text_calendar() -> None:
    paths = document("scheduling")["paths"]
    feeds = [path for path in paths if path.endswith(".ics")]
    assert len(feeds) == 3
    for path in feeds:
        assert list(paths[path]["get"]["responses"]["200"]["content"]) == ["text/calendar"], path
