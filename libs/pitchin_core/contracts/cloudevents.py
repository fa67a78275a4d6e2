"""CloudEvents 1.0, Kafka protocol binding, binary content mode.

Written here rather than taken from the `cloudevents` package: its 2.x line moved its
whole API and calls itself work in progress, and the binding we need is a dozen header
rules that are easier to test than to pin around.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

SPEC_VERSION = "1.0"
JSON = "application/json"
_ATTRIBUTE_NAME = re.compile(r"^[a-z0-9]{1,20}$")
# ce_tenant is our extension: "<federation_id>" or "<federation_id>/<organisation_id>".
REQUIRED = ("id", "source", "type", "specversion")


class InvalidCloudEvent(ValueError):
    """A record that is not a CloudEvent we can read; the message says which part and why."""


@dataclass(frozen=True)
class CloudEvent:
    id: str
    source: str
    type: str
    data: dict[str, Any]
    time: datetime | None = None
    subject: str | None = None
    tenant: str | None = None
    datacontenttype: str = JSON
    dataschema: str | None = None
    extensions: dict[str, str] = field(default_factory=dict)

    @property
    def federation_id(self) -> str | None:
        return self.tenant.split("/", 1)[0] if self.tenant else None

    @property
    def organisation_id(self) -> str | None:
        if self.tenant and "/" in self.tenant:
            return self.tenant.split("/", 1)[1]
        return None


def tenant_of(federation_id: str, organisation_id: str | None) -> str:
    return f"{federation_id}/{organisation_id}" if organisation_id else federation_id


def to_kafka_headers(event: CloudEvent, extra: Iterable[tuple[str, str]] = ()) -> list[tuple[str, bytes]]:
    headers: list[tuple[str, str]] = [
        ("ce_specversion", SPEC_VERSION),
        ("ce_id", event.id),
        ("ce_source", event.source),
        ("ce_type", event.type),
        ("content-type", event.datacontenttype),
    ]
    if event.time is not None:
        headers.append(("ce_time", _format_time(event.time)))
    if event.subject:
        headers.append(("ce_subject", event.subject))
    if event.tenant:
        headers.append(("ce_tenant", event.tenant))
    if event.dataschema:
        headers.append(("ce_dataschema", event.dataschema))
    for name, value in event.extensions.items():
        if not _ATTRIBUTE_NAME.match(name):
            raise InvalidCloudEvent(f"extension attribute name {name!r} is not lower-case alphanumeric")
        headers.append((f"ce_{name}", value))
    headers.extend(extra)
    return [(k, v.encode("utf-8")) for k, v in headers]


def to_kafka_value(event: CloudEvent) -> bytes:
    return json.dumps(event.data, separators=(",", ":"), default=str).encode("utf-8")


def from_kafka(headers: Sequence[tuple[str, bytes | None]], value: bytes | None) -> CloudEvent:
    """Read a binary-mode record; every failure names the attribute that is wrong."""
    attributes: dict[str, str] = {}
    content_type = JSON
    for raw_name, raw_value in headers:
        name = raw_name.lower()
        if raw_value is None:
            continue
        if not (name.startswith("ce_") or name == "content-type"):
            continue
        try:
            text = raw_value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidCloudEvent(f"header {raw_name!r} is not valid UTF-8") from exc
        if name == "content-type":
            content_type = text
        else:
            attributes[name[3:]] = text
    for required in REQUIRED:
        if not attributes.get(required):
            raise InvalidCloudEvent(f"header ce_{required} is missing or empty")
    if attributes["specversion"] != SPEC_VERSION:
        raise InvalidCloudEvent(f"ce_specversion {attributes['specversion']!r} is not {SPEC_VERSION}")
    if not content_type.split(";")[0].strip().endswith("json"):
        raise InvalidCloudEvent(f"content-type {content_type!r} is not JSON")
    if value is None:
        raise InvalidCloudEvent("the record has no value (data)")
    try:
        data = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidCloudEvent(f"data is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidCloudEvent("data must be a JSON object")
    time = None
    if "time" in attributes:
        try:
            time = datetime.fromisoformat(attributes["time"].replace("Z", "+00:00"))
        except ValueError as exc:
            raise InvalidCloudEvent(f"ce_time {attributes['time']!r} is not an RFC 3339 timestamp") from exc
        if time.tzinfo is None:
            raise InvalidCloudEvent("ce_time has no UTC offset")
    known = {"id", "source", "type", "specversion", "time", "subject", "tenant", "dataschema"}
    return CloudEvent(
        id=attributes["id"],
        source=attributes["source"],
        type=attributes["type"],
        data=data,
        time=time,
        subject=attributes.get("subject"),
        tenant=attributes.get("tenant"),
        datacontenttype=content_type,
        dataschema=attributes.get("dataschema"),
        extensions={k: v for k, v in attributes.items() if k not in known},
    )


def _format_time(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise InvalidCloudEvent("event time must carry a UTC offset")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
