"""Who may issue which API key, for how long: the rules of keys' life cycle (no I/O)."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pitchin_core.auth import FEDERATION_STAFF, ORGANISER, PLATFORM_OPERATOR, WEB_FRONT, Caller
from pitchin_core.contracts.common import Identifier
from pitchin_core.errors import Forbidden

# A key lives at most two years; without a choice, one year. Keys that never end were how a
# key copied into a spreadsheet years ago still worked (issue 17).
DEFAULT_LIFETIME_DAYS = 365
MAX_LIFETIME_DAYS = 730
# How long a rotated key may keep working beside its successor, so an integration can move over.
MAX_OVERLAP_SECONDS = 7 * 24 * 3600

# Roles issued here (the web front's narrow key too, to rotate it). Publishers' keys come with
# their registration (`/v1/publishers`).
ISSUABLE_ROLES = (ORGANISER, FEDERATION_STAFF, PLATFORM_OPERATOR, WEB_FRONT)
# Who may manage a federation's keys at all.
KEY_MANAGERS = (FEDERATION_STAFF, PLATFORM_OPERATOR)


class KeyRequest(BaseModel):
    """A key federation staff ask for."""

    model_config = ConfigDict(extra="forbid")

    role: str = Field(max_length=40, description=f"One of {', '.join(ISSUABLE_ROLES)}", examples=[ORGANISER])
    organisation_id: Identifier | None = Field(
        default=None, description="The member organisation an organiser's key acts for; none for staff keys"
    )
    label: str = Field(min_length=1, max_length=200, description="What it is for, e.g. 'Unite NW events team'")
    expires_in_days: int = Field(default=DEFAULT_LIFETIME_DAYS, ge=1, le=MAX_LIFETIME_DAYS)

    @model_validator(mode="after")
    def _scope_fits_role(self) -> KeyRequest:
        if self.role not in ISSUABLE_ROLES:
            raise ValueError(f"role: one of {', '.join(ISSUABLE_ROLES)}")
        if self.role == ORGANISER and self.organisation_id is None:
            raise ValueError("organisation_id: an organiser's key acts for one member organisation; name it")
        if self.role != ORGANISER and self.organisation_id is not None:
            raise ValueError(f"organisation_id: a {self.role} key acts for the whole federation; leave it out")
        return self


class KeyRotation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    old_key_works_for_seconds: int = Field(
        default=0,
        ge=0,
        le=MAX_OVERLAP_SECONDS,
        description="How long the old key keeps working beside the new one (0: it stops now)",
    )
    expires_in_days: int | None = Field(
        default=None, ge=1, le=MAX_LIFETIME_DAYS, description="The new key's lifetime; the default lifetime if left out"
    )


def may_manage_keys(caller: Caller) -> None:
    """Only federation staff and the platform's operators see or change a federation's keys."""
    if caller.role not in KEY_MANAGERS or caller.organisation_id is not None:
        raise Forbidden(f"Only federation staff manage API keys (this key's role: {caller.role}).")


def may_issue(caller: Caller, role: str) -> None:
    """Nobody hands out more power than they hold: only operators issue operators' keys."""
    may_manage_keys(caller)
    if role == PLATFORM_OPERATOR and caller.role != PLATFORM_OPERATOR:
        raise Forbidden("Only a platform operator may issue a platform-operator key.")


def expiry(now: datetime, days: int) -> datetime:
    return now + timedelta(days=days)


def overlap_end(now: datetime, seconds: int) -> datetime:
    return now + timedelta(seconds=seconds)
