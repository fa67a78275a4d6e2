"""Domain errors: what a rule refused, in the domain's words, with no transport in them.

Domain and service code raise these; the HTTP layer turns them into problem+json once
(`pitchin_core.http.install_error_handlers`) and ingest turns them into rejections once
(`pitchin_core.ingest.validation.Rejection.from_error`). Nothing below `api.py` knows
about status codes except through the class a rule picks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

# Problem types (RFC 9457 §3.1.1) are the identifiers clients compare to tell one refusal from
# another, so they are absolute and the same in every deployment: tag URIs (RFC 4151). A setting
# (the public base URL) would give the same refusal a different identity on each deployment, and
# an https URI on a domain we do not serve documentation from would be a locator that locates
# nothing; each service's OpenAPI document says what every type means instead (`PROBLEM_TYPES`).
# Code names a type by its short path, `/problems/<name>`, and `problem_type` makes it absolute.
PROBLEM_TYPE_PREFIX = "tag:pitchin.example,2026:problems/"
_SHORT_PREFIX = "/problems/"


def problem_type(kind: str) -> str:
    """The absolute type URI for `kind`: `/problems/<name>` (or a bare name) becomes the tag URI,
    an absolute URI such as `about:blank` is kept."""
    if kind.startswith(_SHORT_PREFIX):
        return PROBLEM_TYPE_PREFIX + kind.removeprefix(_SHORT_PREFIX)
    if ":" in kind:
        return kind
    return PROBLEM_TYPE_PREFIX + kind


# Every problem type an answer of ours can carry, and what it means (documented in the OpenAPI
# documents; tests/standards checks that every type named in code is here). `about:blank` means
# "nothing more than the status code says" (RFC 9457 §4.2.1).
PROBLEM_TYPES: dict[str, str] = {
    "about:blank": "Nothing more than the status code and title say.",
    "validation": "A field is not valid; `errors` names each.",
    "duplicate": "The same person or thing is already here.",
    "conflict": "It conflicts with the current state of the thing.",
    "clash": "A booking clashes with another (`clashes` names them).",
    "lifecycle": "Not possible in the thing's present stage of its life cycle.",
    "offer-closed": "The offer is no longer open.",
    "idempotency": "The Idempotency-Key is missing, malformed or reused with another request.",
    "ingest/bad-json": "The event is not JSON.",
    "ingest/schema": "The event breaks its published schema.",
    "ingest/unknown-type": "No such event type is taken.",
    "ingest/missing-attribute": "A required CloudEvents attribute is missing.",
    "ingest/tenant": "The publisher may not write for this tenant.",
    "ingest/unregistered-source": "The event's source is not a registered publisher.",
    "ingest/encoding": "The body is not UTF-8.",
    "ingest/stale": "A newer update of the same thing was already applied.",
    "ingest/id-reused": "The event id was used before for a different event.",
    "ingest/not-found": "The event names an external id Pitch In does not have.",
    "ingest/not-yet": "The event names something Pitch In does not know yet; send it again later.",
    "ingest/conflict": "The event conflicts with the current state.",
    "ingest/refused": "A rule refused the event's data.",
    "ingest/too-large": "The event is larger than ingest takes.",
    "ingest/rate-limited": "Too many events from this publisher; see Retry-After.",
    "ingest/unauthenticated": "No publisher key, or one that is not known.",
    "ingest/bad-signature": "The Standard Webhooks signature does not verify.",
}


@dataclass(frozen=True)
class FieldError:
    """One field a caller must change, and why (`field` is a dotted path such as `skills.0.skill`)."""

    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class DomainError(Exception):
    """A refusal a caller can act on. Subclasses say which kind; `extra` adds named facts."""

    status: ClassVar[int] = 400
    default_title: ClassVar[str] = "Refused"
    default_kind: ClassVar[str] = "about:blank"

    def __init__(
        self,
        detail: str,
        *,
        title: str | None = None,
        kind: str | None = None,
        errors: list[FieldError] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.title = title or self.default_title
        self.kind = problem_type(kind or self.default_kind)
        self.errors = list(errors or [])
        self.extra = extra

    def problem_body(self) -> dict[str, Any]:
        """The RFC 9457 body this error is answered with over HTTP."""
        body: dict[str, Any] = {"type": self.kind, "title": self.title, "status": self.status, "detail": self.detail}
        if self.errors:
            body["errors"] = [e.as_dict() for e in self.errors]
        body.update(self.extra)
        return body


class NotFound(DomainError):
    """Nothing by that id here, or nothing this caller may see: the two are answered alike."""

    status = 404
    default_title = "Not found"

    def __init__(self, what: str, ident: str, *, detail: str | None = None) -> None:
        super().__init__(detail or f"No {what} {ident} here.")
        self.what = what
        self.ident = ident


class Conflict(DomainError):
    """The request is well formed but the thing's present state does not allow it."""

    status = 409
    default_title = "Conflict"


class Refused(DomainError):
    """A value breaks a rule: the field to change and the reason, answered 422."""

    status = 422
    default_title = "Refused"
    default_kind = "/problems/validation"

    def __init__(self, field: str, reason: str, *, title: str | None = None, **extra: Any) -> None:
        super().__init__(f"{field}: {reason}", title=title, errors=[FieldError(field, reason)], **extra)
        self.field = field
        self.reason = reason

    def __str__(self) -> str:
        # Domain rules read their refusals as plain sentences ("a withdrawn donor cannot be changed").
        return self.reason


class Invalid(DomainError):
    """Several fields refused at once (e.g. every unknown skill in a list)."""

    status = 422
    default_title = "Invalid request"
    default_kind = "/problems/validation"

    def __init__(self, errors: list[FieldError], *, title: str | None = None, detail: str | None = None) -> None:
        names = ", ".join(e.field for e in errors)
        super().__init__(detail or f"These fields are not valid: {names}", title=title, errors=errors)


class Forbidden(DomainError):
    """The caller is known but their role or organisation may not do this."""

    status = 403
    default_title = "Forbidden"


class Unauthorised(DomainError):
    """No credential, or one that is not known, expired or revoked."""

    status = 401
    default_title = "Unauthorised"


class Unavailable(DomainError):
    """Not possible yet (a read model still catching up): try again after `retry_after` seconds."""

    status = 503
    default_title = "Not ready"

    def __init__(self, detail: str, *, retry_after: float = 1.0, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.retry_after = retry_after
