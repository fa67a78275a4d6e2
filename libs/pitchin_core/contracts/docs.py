"""Generate the contract documents from the models: `python -m pitchin_core.contracts.docs [--check]`.

Writes `docs/contracts/asyncapi.json` (AsyncAPI 3.0: one channel per topic, one message per
event type, CloudEvents binary-mode headers) and `docs/contracts/schemas/<type>.json` (JSON
Schema 2020-12 of each event's data). `--check` fails when the committed files drift from
the models; the test suite runs it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pitchin_core.contracts.common import EventData
from pitchin_core.contracts.topics import TOPICS, TopicSpec

ROOT = Path(__file__).resolve().parents[3] / "docs" / "contracts"

CLOUDEVENTS_HEADERS: dict[str, Any] = {
    "type": "object",
    "required": ["ce_specversion", "ce_id", "ce_source", "ce_type", "content-type"],
    "properties": {
        "ce_specversion": {"const": "1.0"},
        "ce_id": {"type": "string", "minLength": 1, "description": "Unique per source; consumers de-duplicate on it"},
        "ce_source": {"type": "string", "minLength": 1, "examples": ["/pitchin/signups"]},
        "ce_type": {"type": "string", "examples": ["org.pitchin.donor.registered.v1"]},
        "ce_time": {"type": "string", "format": "date-time"},
        "ce_subject": {"type": "string"},
        "ce_tenant": {"type": "string", "description": "<federation_id> or <federation_id>/<organisation_id>"},
        "content-type": {"const": "application/json"},
        "traceparent": {"type": "string", "description": "W3C trace context"},
    },
}


def schema_of(model: type[EventData]) -> dict[str, Any]:
    schema = model.model_json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://pitchin.example/schemas/{model.event_type}.json"
    schema["title"] = model.event_type
    return schema


def _message_name(model: type[EventData]) -> str:
    return model.event_type.removeprefix("org.pitchin.").replace(".", "_").replace("-", "_")


def asyncapi() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for spec in TOPICS:
        channel = spec.name.replace(".", "_")
        channels[channel] = {
            "address": spec.name,
            "description": f"{spec.description} Key: {spec.key}. Consumers: {', '.join(spec.consumers)}.",
            "messages": {
                _message_name(m): {"$ref": f"#/components/messages/{_message_name(m)}"} for m in spec.event_types
            },
            "bindings": {"kafka": {"partitions": spec.partitions, "bindingVersion": "0.5.0"}},
        }
        operations[f"{spec.producer}_publishes_{channel}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel}"},
            "summary": f"{spec.producer} publishes through its outbox",
        }
        for consumer in spec.consumers:
            operations[f"{consumer}_consumes_{channel}"] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{channel}"},
                "summary": f"consumer group {consumer}; poison records go to {spec.dead_letter(consumer)}",
            }
        for model in spec.event_types:
            messages[_message_name(model)] = _message(spec, model)
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Pitch In events",
            "version": "1.0.0",
            "description": "CloudEvents 1.0 over Kafka, binary content mode. Generated from "
            "libs/pitchin_core/contracts; do not edit by hand.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def _message(spec: TopicSpec, model: type[EventData]) -> dict[str, Any]:
    return {
        "name": model.event_type,
        "title": model.event_type,
        "summary": (model.__doc__ or "").strip().split("\n")[0],
        "contentType": "application/json",
        "headers": CLOUDEVENTS_HEADERS,
        "payload": {"$ref": f"schemas/{model.event_type}.json"},
        "bindings": {"kafka": {"key": {"type": "string", "description": spec.key}, "bindingVersion": "0.5.0"}},
    }


def documents() -> dict[Path, str]:
    files = {ROOT / "asyncapi.json": json.dumps(asyncapi(), indent=2, sort_keys=True) + "\n"}
    for spec in TOPICS:
        for model in spec.event_types:
            files[ROOT / "schemas" / f"{model.event_type}.json"] = (
                json.dumps(schema_of(model), indent=2, sort_keys=True) + "\n"
            )
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the committed documents differ")
    args = parser.parse_args(argv)
    wanted = documents()
    existing = set((ROOT / "schemas").glob("*.json")) | ({ROOT / "asyncapi.json"} if ROOT.exists() else set())
    stale = sorted(str(p) for p in existing - set(wanted))
    changed = sorted(str(p) for p, text in wanted.items() if not p.exists() or p.read_text() != text)
    if args.check:
        if stale or changed:
            print("contract documents drift from the models; run `make contracts`:", *changed, *stale, sep="\n  ")
            return 1
        return 0
    for path, text in wanted.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for stale_path in stale:
        Path(stale_path).unlink()
    print(f"wrote {len(wanted)} documents under {ROOT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
