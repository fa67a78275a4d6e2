"""Domain errors: what a rule refused, in the domain's words, with no transport in them.

Domain and service code raise these; the HTTP layer turns them into problem+json once
(`pitchin_core.http.install_error_handlers`) and ingest turns them into rejections once
(`pitchin_core.ingest.validation.Rejection.from_error`). Nothing below `api.py` knows
about status codes except through the class a rule picks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


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
        self.kind = kind or self.default_kind
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
