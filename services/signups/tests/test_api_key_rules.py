"""Who may issue which API key, and for how long."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pitchin_core.auth import Caller
from pitchin_core.errors import Forbidden
from pitchin_signups.domain.api_keys import MAX_LIFETIME_DAYS, KeyRequest, KeyRotation, may_issue, may_manage_keys

STAFF = Caller("fed-a", None, "federation-staff")
OPERATOR = Caller("fed-a", None, "platform-operator")
ORGANISER = Caller("fed-a", "org-1", "organiser")


def test_an_organisers_key_names_its_organisation_and_a_staff_key_none() -> None:
    assert KeyRequest(role="organiser", organisation_id="org-1", label="events team").expires_in_days == 365
    with pytest.raises(ValidationError, match="organisation_id"):
        KeyRequest(role="organiser", label="events team")
    with pytest.raises(ValidationError, match="organisation_id"):
        KeyRequest(role="federation-staff", organisation_id="org-1", label="x")


def test_the_web_fronts_narrow_key_is_issued_for_the_whole_federation() -> None:
    assert KeyRequest(role="web-front", label="public pages").organisation_id is None
    with pytest.raises(ValidationError, match="organisation_id"):
        KeyRequest(role="web-front", organisation_id="org-1", label="public pages")


def test_keys_always_end_within_two_years() -> None:
    KeyRequest(role="federation-staff", label="x", expires_in_days=MAX_LIFETIME_DAYS)
    with pytest.raises(ValidationError, match="expires_in_days"):
        KeyRequest(role="federation-staff", label="x", expires_in_days=MAX_LIFETIME_DAYS + 1)
    with pytest.raises(ValidationError, match="expires_in_days"):
        KeyRequest(role="federation-staff", label="x", expires_in_days=0)


@pytest.mark.parametrize("role", ["publisher", "root", ""])
def test_publishers_keys_and_unknown_roles_are_not_issued_here(role: str) -> None:
    with pytest.raises(ValidationError, match="role"):
        KeyRequest(role=role, label="x")


def test_only_staff_and_operators_manage_keys() -> None:
    may_manage_keys(STAFF)
    may_manage_keys(OPERATOR)
    with pytest.raises(Forbidden):
        may_manage_keys(ORGANISER)


def test_nobody_hands_out_more_power_than_they_hold() -> None:
    may_issue(STAFF, "organiser")
    may_issue(STAFF, "federation-staff")
    may_issue(OPERATOR, "platform-operator")
    with pytest.raises(Forbidden, match="platform operator"):
        may_issue(STAFF, "platform-operator")


def test_a_rotated_key_overlaps_its_successor_at_most_a_week() -> None:
    assert KeyRotation().old_key_works_for_seconds == 0
    with pytest.raises(ValidationError, match="old_key_works_for_seconds"):
        KeyRotation(old_key_works_for_seconds=7 * 24 * 3600 + 1)
