"""Judging a read envelope: the CloudEvents rules, the public contract and the publisher's scope.

`validate` gives an `Accepted` event or raises a `Rejection` (the HTTP status, a reason
class and the failing fields); a use case's `DomainError` becomes one through
`Rejection.from_error`. The ids here are what every service derives alike: the event's
fingerprint, the Pitch In id of an event a publisher created, and the id of an event
signups relays from HTTP to its owner.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from pydantic import ValidationError

from pitchin_core.contracts.cloudevents import SPEC_VERSION, tenant_of
from pitchin_core.contracts.ingest import BY_TYPE, Published, RejectionReason
from pitchin_core.errors import DomainError, problem_type
from pitchin_core.ingest.envelope import Envelope
from pitchin_core.ingest.publishers import Registration

_FORWARD_NAMESPACE = uuid.UUID("7d1b6c2e-5a0f-4c4e-9a55-2f0a9d3f1e11")
FORWARDED_PREFIX = "http:"


class Rejection(Exception):
    """An event refused, with the HTTP status it is answered with and the failing fields."""

    def __init__(
        self, status: int, reason: str, reasons: list[RejectionReason], retry_after: float | None = None
    ) -> None:
        super().__init__("; ".join(f"{r.field}: {r.message}" for r in reasons))
        self.status = status
        self.reason = reason
        self.reasons = reasons
        self.retry_after = retry_after

    @classmethod
    def one(cls, status: int, reason: str, where: str, message: str, retry_after: float | None = None) -> Rejection:
        return cls(status, reason, [RejectionReason(field=where, message=message)], retry_after)

    @classmethod
    def from_error(cls, error: DomainError, prefix: str = "data.") -> Rejection:
        """A use case's refusal as the publisher hears it: its fields are fields of the event's data."""
        reasons = [RejectionReason(field=_field(prefix, e.field), message=e.message) for e in error.errors]
        if not reasons:
            reasons = [RejectionReason(field="data", message=error.detail)]
        reason = {404: "not-found", 409: "conflict", 403: "tenant"}.get(error.status, "refused")
        # A server-side status would tell the publisher to retry what will be refused again.
        return cls(error.status if error.status < 500 else 422, reason, reasons)

    def problem_body(self) -> dict[str, Any]:
        return {
            "type": problem_type(f"/problems/ingest/{self.reason}"),
            "title": _TITLES.get(self.reason, "Event refused"),
            "status": self.status,
            "detail": str(self),
            "errors": [r.model_dump() for r in self.reasons],
        }


def _field(prefix: str, name: str) -> str:
    # An error about no one field is about the data as a whole.
    return f"{prefix}{name}" if name else prefix.rstrip(".")


_TITLES = {
    "bad-json": "Not JSON",
    "schema": "Invalid event",
    "unknown-type": "Unknown event type",
    "missing-attribute": "Missing CloudEvents attribute",
    "tenant": "Not allowed for this tenant",
    "unregistered-source": "Unregistered source",
    "encoding": "Not UTF-8",
    "stale": "Stale update",
    "id-reused": "Event id reused",
    "not-found": "Unknown external id",
    "not-yet": "Not known yet",
    "conflict": "Conflict",
    "refused": "Refused",
    "too-large": "Too large",
    "rate-limited": "Too many events",
    "unauthenticated": "Unauthenticated",
    "bad-signature": "Bad signature",
}


@dataclass(frozen=True)
class Accepted:
    envelope: Envelope
    registration: Registration
    data: Published

    @property
    def source(self) -> str:
        return self.registration.source

    @property
    def id(self) -> str:
        return cast(str, self.envelope.id)


def validate(envelope: Envelope, registration: Registration | None) -> Accepted:
    """The envelope against the CloudEvents rules, the contract and the publisher's scope; raises Rejection."""
    if envelope.problems:
        status = 422 if envelope.reason == "schema" else 400
        raise Rejection(status, envelope.reason, envelope.problems)
    attrs = envelope.attributes
    missing = [name for name in ("id", "source", "type", "specversion") if not attrs.get(name)]
    if missing:
        raise Rejection(
            422,
            "missing-attribute",
            [RejectionReason(field=name, message="missing or empty CloudEvents attribute") for name in missing],
        )
    if attrs["specversion"] != SPEC_VERSION:
        raise Rejection.one(422, "schema", "specversion", f"{attrs['specversion']!r} is not {SPEC_VERSION}")
    if registration is None:
        raise Rejection.one(
            403, "unregistered-source", "source", f"{attrs['source']!r} is not a registered publisher (or was revoked)"
        )
    model = BY_TYPE.get(attrs["type"])
    if model is None:
        known = ", ".join(sorted(BY_TYPE))
        raise Rejection.one(422, "unknown-type", "type", f"{attrs['type']!r} is not published into Pitch In: {known}")
    if "time" in attrs:
        try:
            moment = datetime.fromisoformat(attrs["time"].replace("Z", "+00:00"))
            if moment.tzinfo is None:
                raise ValueError("no offset")
        except ValueError:
            raise Rejection.one(422, "schema", "time", "not an RFC 3339 timestamp with an offset") from None
    if not isinstance(envelope.data, dict):
        raise Rejection.one(422, "schema", "data", "the event's data must be a JSON object")
    try:
        data = model.model_validate(envelope.data)
    except ValidationError as exc:
        raise Rejection(
            422,
            "schema",
            [
                RejectionReason(
                    field=".".join(["data", *(str(p) for p in err["loc"])]), message=str(err["msg"]).lower()
                )
                for err in exc.errors()
            ],
        ) from exc
    if data.federation_id != registration.federation_id:
        raise Rejection.one(
            403, "tenant", "data.federation_id", f"this source publishes for {registration.federation_id} only"
        )
    if not registration.may_publish_for(data.organisation_id):
        raise Rejection.one(
            403,
            "tenant",
            "data.organisation_id",
            f"this source is not registered to publish for {data.organisation_id or 'the whole federation'}",
        )
    tenant = attrs.get("tenant")
    if tenant and tenant != tenant_of(data.federation_id, data.organisation_id):
        raise Rejection.one(403, "tenant", "tenant", "ce tenant names another federation or organisation than the data")
    return Accepted(envelope, registration, data)


def fingerprint(envelope: Envelope) -> str:
    """What makes two deliveries of one id the same event: type and data (canonical JSON)."""
    canonical = json.dumps([envelope.type, envelope.data], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def external_event_id(source: str, external_id: str) -> str:
    """The Pitch In id of an event a publisher created: derived, so every service can name it."""
    return "evt_" + hashlib.sha256(f"ingest|{source}|{external_id}".encode()).hexdigest()[:20]


def forwarded_id(source: str, original_id: str) -> uuid.UUID:
    """The outbox id of an HTTP-accepted event relayed to its owner on the ingest topic."""
    return uuid.uuid5(_FORWARD_NAMESPACE, f"{source}\n{original_id}")


def original_id(envelope: Envelope) -> str | None:
    """The publisher's id of a record: for one signups relayed from HTTP, the id the publisher sent."""
    subject, ident, source = envelope.subject, envelope.id, envelope.source
    if subject and subject.startswith(FORWARDED_PREFIX) and ident and source:
        candidate = subject[len(FORWARDED_PREFIX) :]
        if str(forwarded_id(source, candidate)) == ident:
            return candidate
    return ident
