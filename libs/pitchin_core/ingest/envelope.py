"""Reading what a door received into an `Envelope`, which never raises.

Kafka binary mode (`ce_*` headers), HTTP binary mode (`ce-*` headers) and structured mode
(one JSON object, alone or in a batch) give the same attributes and data; whatever could not
be read is kept as `problems`, for `validate` to answer with.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pitchin_core.contracts.ingest import RejectionReason


@dataclass
class Envelope:
    """A published event as read, before any judgement; `problems` holds what could not be read."""

    door: str
    attributes: dict[str, str] = field(default_factory=dict)
    data: Any = None
    problems: list[RejectionReason] = field(default_factory=list)
    reason: str = ""
    index: int | None = None

    @property
    def id(self) -> str | None:
        return self.attributes.get("id") or None

    @property
    def source(self) -> str | None:
        return self.attributes.get("source") or None

    @property
    def type(self) -> str | None:
        return self.attributes.get("type") or None

    @property
    def subject(self) -> str | None:
        return self.attributes.get("subject") or None

    def problem(self, reason: str, where: str, message: str) -> None:
        self.reason = self.reason or reason
        self.problems.append(RejectionReason(field=where, message=message))


def _json_data(envelope: Envelope, value: bytes | None, where: str) -> None:
    if value is None or value == b"":
        envelope.problem("bad-json", where, "there is no data: send the event's data as a JSON object")
        return
    try:
        envelope.data = json.loads(value)
    except UnicodeDecodeError as exc:
        envelope.problem("encoding", where, f"not UTF-8 (byte {exc.start})")
    except json.JSONDecodeError as exc:
        envelope.problem("bad-json", where, f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")


def envelope_from_kafka(headers: Iterable[tuple[str, bytes | None]], value: bytes | None) -> Envelope:
    envelope = Envelope(door="kafka")
    content_type = "application/json"
    for raw_name, raw_value in headers:
        name = raw_name.lower()
        if raw_value is None or not (name.startswith("ce_") or name == "content-type"):
            continue
        try:
            text = raw_value.decode("utf-8")
        except UnicodeDecodeError as exc:
            envelope.problem("encoding", raw_name, f"header is not valid UTF-8 (byte {exc.start})")
            continue
        if name == "content-type":
            content_type = text
        else:
            envelope.attributes[name[3:]] = text
    _check_content_type(envelope, content_type, "content-type")
    _json_data(envelope, value, "data")
    return envelope


def envelope_from_http_binary(headers: Mapping[str, str], body: bytes) -> Envelope:
    """Binary mode over HTTP: `ce-*` headers and the data as the body. Starlette gives headers as latin-1."""
    envelope = Envelope(door="http")
    for name, value in headers.items():
        lower = name.lower()
        if not lower.startswith("ce-"):
            continue
        try:
            text = value.encode("latin-1").decode("utf-8")
        except (UnicodeDecodeError, UnicodeEncodeError):
            envelope.problem("encoding", lower, "header is not valid UTF-8")
            continue
        envelope.attributes[lower[3:]] = text
    _check_content_type(envelope, headers.get("content-type", "application/json"), "content-type")
    _json_data(envelope, body, "(body)")
    return envelope


def envelope_from_structured(event: Any, door: str = "http", index: int | None = None) -> Envelope:
    """Structured mode (`application/cloudevents+json`): attributes and `data` in one JSON object."""
    envelope = Envelope(door=door, index=index)
    where = "" if index is None else f"{index}."
    if not isinstance(event, dict):
        envelope.problem("bad-json", f"{where}(event)", "a CloudEvent is a JSON object")
        return envelope
    for name, value in event.items():
        if name == "data":
            continue
        if name == "data_base64":
            envelope.problem("bad-json", f"{where}data_base64", "send JSON data in `data`, not data_base64")
        elif isinstance(value, str):
            envelope.attributes[name] = value
        elif value is not None:
            envelope.problem("schema", f"{where}{name}", "a CloudEvents attribute is a string")
    if "datacontenttype" in envelope.attributes:
        _check_content_type(envelope, envelope.attributes["datacontenttype"], f"{where}datacontenttype")
    if "data" not in event:
        envelope.problem("schema", f"{where}data", "missing: the event's data as a JSON object")
    else:
        envelope.data = event["data"]
    return envelope


def _check_content_type(envelope: Envelope, content_type: str, where: str) -> None:
    if not content_type.split(";")[0].strip().lower().endswith("json"):
        envelope.problem("bad-json", where, f"{content_type!r} is not JSON")
