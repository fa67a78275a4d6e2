"""Every list and string anyone can send has a maximum: in each event contract and each request body.

Without one a single PATCH made a `donor.updated` Kafka refused (1 MB), and the relay stopped
for every tenant. This walks the JSON Schemas the code itself publishes (the contracts'
and each service's OpenAPI), so a field added without a bound fails here.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from pitchin_core.contracts.registry import EVENT_TYPES

# Strings whose format bounds them (pydantic checks these: an email is at most 254 characters).
BOUNDED_FORMATS = {"date-time", "date", "time", "uuid", "email", "duration"}
# Written by the platform from its own text, never taken from a caller as they are.
PLATFORM_WRITTEN = {"IngestRejectedV1"}
SERVICES = ("signups", "matching", "notifications", "scheduling")
# Path and query parameters are bounded together by the request gate's URL limit (8 KiB);
# bodies are what this test reads.


def unbounded(schema: Any, defs: dict[str, Any], path: str, seen: frozenset[str] = frozenset()) -> list[str]:
    if not isinstance(schema, dict):
        return []
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return [] if name in seen else unbounded(defs.get(name, {}), defs, path, seen | {name})
    found: list[str] = []
    kind = schema.get("type")
    if kind == "array" and "maxItems" not in schema:
        found.append(f"{path}: a list without maxItems")
    if (
        kind == "string"
        and "maxLength" not in schema
        and "enum" not in schema
        and "const" not in schema
        and schema.get("format") not in BOUNDED_FORMATS
        and not _bounded_pattern(schema.get("pattern", ""))
    ):
        found.append(f"{path}: a string without maxLength")
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict) and "maxProperties" not in schema:
        found.append(f"{path}: a map without maxProperties")
    if "items" in schema:
        found += unbounded(schema["items"], defs, path + "[]", seen)
    for name, sub in schema.get("properties", {}).items():
        found += unbounded(sub, defs, f"{path}.{name}", seen)
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key, []):
            found += unbounded(sub, defs, path, seen)
    if isinstance(schema.get("additionalProperties"), dict):
        found += unbounded(schema["additionalProperties"], defs, path + "{}", seen)
    return found


def _bounded_pattern(pattern: str) -> bool:
    """A pattern anchored at both ends whose only repeats are {m,n}: e.g. E.164's ^\\+[1-9][0-9]{6,14}$."""
    if not (pattern.startswith("^") and pattern.endswith("$")):
        return False
    body = pattern.replace("\\+", "").replace("\\*", "")
    return "*" not in body and "+" not in body


def test_the_walker_finds_an_unbounded_list_and_string() -> None:
    schema = {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}}}}
    assert unbounded(schema, {}, "X") == ["X.tags: a list without maxItems", "X.tags[]: a string without maxLength"]
    assert unbounded({"type": "string", "pattern": "^\\+[1-9][0-9]{6,14}$"}, {}, "phone") == []
    assert unbounded({"type": "string", "pattern": "^[a-z]+$"}, {}, "slug") == ["slug: a string without maxLength"]


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_event_contract_bounds_its_lists_and_strings(event_type: str) -> None:
    model = EVENT_TYPES[event_type]
    if model.__name__ in PLATFORM_WRITTEN:
        pytest.skip("written by the platform from its own text")
    schema = model.model_json_schema()
    assert unbounded(schema, schema.get("$defs", {}), model.__name__) == []


@pytest.mark.parametrize("service", SERVICES)
def test_every_request_body_bounds_its_lists_and_strings(service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PITCHIN_ENVIRONMENT", "local")  # built-in secrets: the app is only built, never served
    spec = importlib.import_module(f"pitchin_{service}.main").create_app().openapi()
    defs = spec.get("components", {}).get("schemas", {})
    found: list[str] = []
    for route, operations in spec["paths"].items():
        for method, operation in operations.items():
            for media, content in operation.get("requestBody", {}).get("content", {}).items():
                if media == "text/csv":
                    continue  # bounded by size as it streams in (the request gate), rows by the importer
                found += unbounded(content.get("schema", {}), defs, f"{method.upper()} {route}")
    assert found == []
