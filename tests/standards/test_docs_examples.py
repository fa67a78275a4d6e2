"""docs/ingest.md's examples judged by the published JSON Schemas (docs/contracts/schemas/, 2020-12).

Every example of event data in the guide is read out of the Markdown as a publisher would copy
it, and validated against the schema of its type with formats checked (`date-time` is RFC 3339:
an offset is required), by `jsonschema`, not by Pitch In's own models.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

ROOT = Path(__file__).parents[2]
GUIDE = ROOT / "docs" / "ingest.md"
SCHEMAS = ROOT / "docs" / "contracts" / "schemas"
P = "org.pitchin.ingest."

# The guide's examples of event data, in the order it gives them.
EXPECTED = [
    P + "person-signed-up.v1",
    P + "person-updated.v1",
    P + "person-withdrawn.v1",
    P + "fight-opened.v1",
    P + "event-created.v1",
    P + "event-changed.v1",
    P + "event-cancelled.v1",
    P + "rsvp-made.v1",
    P + "rsvp-cancelled.v1",
    P + "rejected.v1",
]


def examples() -> list[dict[str, Any]]:
    """The JSON objects of event data in the guide: ```json blocks (one or more objects each) and
    inline `{"federation_id": …}` examples, in document order."""
    text = GUIDE.read_text()
    found: list[tuple[int, dict[str, Any]]] = []
    decoder = json.JSONDecoder()
    for block in re.finditer(r"```json\n(.*?)```", text, re.S):
        body, at = block.group(1), 0
        while (start := body.find("{", at)) != -1:
            parsed, at = decoder.raw_decode(body, start)
            found.append((block.start() + start, parsed))
    for inline in re.finditer(r"`(\{\"federation_id\".*?\})`", text):
        found.append((inline.start(), json.loads(inline.group(1))))
    return [parsed for _, parsed in sorted(found, key=lambda item: item[0]) if "federation_id" in parsed]


def validator(event_type: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{event_type}.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def test_the_guide_gives_an_example_of_every_type_in_order() -> None:
    assert len(examples()) == len(EXPECTED)


@pytest.mark.parametrize(("index", "event_type"), list(enumerate(EXPECTED)), ids=EXPECTED)
def test_each_example_passes_its_published_schema(index: int, event_type: str) -> None:
    example = examples()[index]
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator(event_type).iter_errors(example)]
    assert not errors, errors


def test_the_format_checker_refuses_a_time_without_offset() -> None:
    # The judge itself: without rfc3339-validator, jsonschema would pass any date-time string.
    event_created = validator(P + "event-created.v1")
    example = dict(examples()[EXPECTED.index(P + "event-created.v1")], starts_at="2026-12-13T18:00:00")
    assert not event_created.is_valid(example)
